//! `coupon-stream bench`: the end-to-end benchmark harness. Against a
//! broker (embedded unless `--brokers`), it starts the processor as a child
//! process (`coupon-stream run`, so its CPU time and peak memory are its
//! own), produces `events` generated events at `rate` (or as fast as the
//! broker takes them) into fresh topics, reads the decisions back, and
//! reports throughput, end-to-end latency percentiles (event produced to
//! decision readable, from the Kafka timestamps the processor carries over
//! from input to decision), outcome counts, CPU seconds per million events
//! and peak resident memory. With `baseline`, it first runs the same events
//! through `coupon-stream copy` (consume and produce, no decisions, same
//! client settings): the ceiling the processor is compared against.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use thiserror::Error;

use crate::kafka::admin::{AdminError, ensure_topics};
use crate::kafka::config::Guarantee;
use crate::tools::broker::{BrokerChoice, BrokerError};
use crate::tools::loadgen::{self, LoadError};
use coupon_stream_core::reason::Outcome;
use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};

/// Longest wait for a child to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Events produced in the first this-long of a run are left out of the
/// latency histogram: clients fetch metadata and open connections then.
const WARM_UP: Duration = Duration::from_secs(1);
/// Largest latency the histogram holds, in microseconds (one hour).
const LATENCY_MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Topics(#[from] AdminError),
    #[error("starting {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what} was not ready within {READY_TIMEOUT:?}")]
    NotReady { what: &'static str },
    #[error("{what} exited early: {status}")]
    ChildExited {
        what: &'static str,
        status: std::process::ExitStatus,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("reading the output: {0}")]
    Read(#[source] rdkafka::error::KafkaError),
    #[error("only {read} of {expected} records arrived within {timeout:?}")]
    Incomplete {
        read: u64,
        expected: u64,
        timeout: Duration,
    },
    #[error("a benchmark thread panicked")]
    Panicked,
    #[error("creating the latency histogram: {0}")]
    Histogram(String),
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub brokers: Option<String>,
    pub properties: Vec<(String, String)>,
    pub events: u64,
    /// Events per second offered; `None` for saturation.
    pub rate: Option<u64>,
    pub partitions: i32,
    pub profile: Profile,
    pub sellers: u32,
    pub seed: u64,
    pub baseline: bool,
    /// The processor runs once per guarantee listed, side by side.
    pub guarantees: Vec<Guarantee>,
    /// `--retention-ms` of the processor child.
    pub retention_ms: u64,
    /// The `coupon-stream` binary the children run.
    pub exe: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `coupon-stream copy`: consume and produce, no decisions.
    Baseline,
    /// `coupon-stream run`.
    Processor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline copy",
            Mode::Processor => "processor",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub mode: Mode,
    /// The processor's guarantee (`None` for the baseline).
    pub guarantee: Option<Guarantee>,
    pub broker: String,
    pub embedded_broker: bool,
    pub partitions: i32,
    pub events: u64,
    /// Offered rate, events/s; `None` at saturation.
    pub rate: Option<u64>,
    /// From the first event produced to the last record read back.
    pub seconds: f64,
    pub events_per_second: f64,
    /// The load generator's own rate.
    pub produced_per_second: f64,
    pub latency_ms: LatencyMs,
    /// Decisions by outcome (empty for the baseline).
    pub outcomes: Vec<(String, u64)>,
    pub cpu_seconds: f64,
    pub cpu_seconds_per_million_events: f64,
    pub peak_rss_bytes: u64,
}

/// Runs the baseline (when asked) and the processor on the same broker
/// with the same events.
pub fn run_bench(options: &BenchOptions) -> Result<Vec<BenchReport>, BenchError> {
    let broker = BrokerChoice::connect_or_start(options.brokers.as_deref())?;
    let mut reports = Vec::new();
    if options.baseline {
        reports.push(run_one(options, &broker, Mode::Baseline, None)?);
    }
    for &guarantee in &options.guarantees {
        reports.push(run_one(options, &broker, Mode::Processor, Some(guarantee))?);
    }
    Ok(reports)
}

fn run_one(
    options: &BenchOptions,
    broker: &BrokerChoice,
    mode: Mode,
    guarantee: Option<Guarantee>,
) -> Result<BenchReport, BenchError> {
    let brokers = broker.bootstrap_servers();
    let run_id = format!(
        "bench-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let input = format!("{run_id}-events");
    let output = format!("{run_id}-decisions");
    let dlq = format!("{run_id}-dlq");
    // The processor creates its state topic (compacted) itself.
    let state = format!("{run_id}-state");
    ensure_topics(
        brokers,
        &options.properties,
        &[
            (&input, options.partitions),
            (&output, options.partitions),
            (&dlq, options.partitions),
        ],
        Duration::from_secs(30),
    )?;

    let port = free_port().map_err(|source| BenchError::Spawn {
        what: "the child",
        source,
    })?;
    let (what, mut command) = match mode {
        Mode::Baseline => ("coupon-stream copy", Command::new(&options.exe)),
        Mode::Processor => ("coupon-stream run", Command::new(&options.exe)),
    };
    command
        .arg(match mode {
            Mode::Baseline => "copy",
            Mode::Processor => "run",
        })
        .args(["--brokers", brokers, "--group-id", &run_id])
        .args(["--input-topic", &input, "--output-topic", &output])
        .args(["--dlq-topic", &dlq]);
    if mode == Mode::Processor {
        command.args(["--state-topic", &state]);
        command.args(["--retention-ms", &options.retention_ms.to_string()]);
    }
    if let Some(guarantee) = guarantee {
        command.args(["--guarantee", guarantee.as_str()]);
    }
    command.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
    for (k, v) in &options.properties {
        command.arg("-X").arg(format!("{k}={v}"));
    }
    let child = command
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BenchError::Spawn { what, source })?;
    let mut child = ChildGuard(child);
    wait_ready(&mut child.0, port, what)?;

    // Load in the background; read back on this thread.
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = {
        let config = loadgen::producer_config(brokers, &options.properties);
        let mut workload = Workload::new(WorkloadConfig {
            profile: options.profile,
            sellers: options.sellers,
            users: 1_000_000,
            seed: options.seed,
            duplicate_fraction: 0.01,
            invalid_fraction: 0.005,
        });
        let (input, events, rate) = (input.clone(), options.events, options.rate);
        let stop = Arc::clone(&stop);
        let produced = Arc::clone(&produced);
        std::thread::Builder::new()
            .name("bench-load".into())
            .spawn(move || {
                loadgen::produce(&config, &input, &mut workload, events, rate, &stop, |n| {
                    produced.store(n, Ordering::Relaxed)
                })
            })
            .map_err(|source| BenchError::Spawn {
                what: "the load generator",
                source,
            })?
    };
    let timeout = Duration::from_secs(60).max(Duration::from_secs(
        options.events / options.rate.unwrap_or(10_000).clamp(1, 10_000) * 3,
    ));
    let read = read_back(
        brokers,
        &options.properties,
        &output,
        options.partitions,
        options.events,
        timeout,
        &mut child.0,
        what,
    );
    stop.store(true, Ordering::Relaxed);
    let load = load.join().map_err(|_| BenchError::Panicked)??;
    let read = read?;
    let seconds = read.last_read.duration_since(started).as_secs_f64();
    let (cpu_seconds, peak_rss_bytes) = child_usage(child.0.id());
    let latency = |q: f64| read.latency_us.value_at_quantile(q) as f64 / 1000.0;
    Ok(BenchReport {
        mode,
        guarantee,
        broker: brokers.to_owned(),
        embedded_broker: broker.is_embedded(),
        partitions: options.partitions,
        events: options.events,
        rate: options.rate,
        seconds,
        events_per_second: options.events as f64 / seconds.max(1e-9),
        produced_per_second: load.events as f64 / load.seconds.max(1e-9),
        latency_ms: LatencyMs {
            p50: latency(0.5),
            p99: latency(0.99),
            p999: latency(0.999),
            max: read.latency_us.max() as f64 / 1000.0,
        },
        outcomes: match mode {
            Mode::Baseline => Vec::new(),
            Mode::Processor => Outcome::ALL
                .iter()
                .zip(read.outcomes)
                .filter(|(_, n)| *n > 0)
                .map(|(o, n)| (o.as_str().to_owned(), n))
                .collect(),
        },
        cpu_seconds,
        cpu_seconds_per_million_events: cpu_seconds / (options.events as f64 / 1e6),
        peak_rss_bytes,
    })
}

/// Kills the child if the benchmark ends early; terminates it gracefully
/// otherwise.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

fn wait_ready(child: &mut Child, port: u16, what: &'static str) -> Result<(), BenchError> {
    let started = Instant::now();
    while http_status(port, "/readyz") != Some(200) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::ChildExited { what, status });
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(BenchError::NotReady { what });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

struct ReadBack {
    last_read: Instant,
    latency_us: Histogram<u64>,
    outcomes: [u64; Outcome::ALL.len()],
}

/// Reads `expected` records from every partition of `topic`, recording for
/// each the time since its Kafka timestamp (which the processor and the
/// copy carry over from the input event).
#[allow(clippy::too_many_arguments)]
fn read_back(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
    expected: u64,
    timeout: Duration,
    child: &mut Child,
    what: &'static str,
) -> Result<ReadBack, BenchError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("queued.min.messages", "200000");
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().map_err(BenchError::Read)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(BenchError::Read)?;
    }
    consumer.assign(&tpl).map_err(BenchError::Read)?;
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))?;
    let mut outcomes = [0u64; Outcome::ALL.len()];
    let finder = memchr::memmem::Finder::new(b"\"outcome\":\"");
    let mut read = 0u64;
    let warm_up_until_ms = (SystemTime::now() + WARM_UP)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut last_read = Instant::now();
    let started = Instant::now();
    let mut last_child_check = Instant::now();
    while read < expected {
        if started.elapsed() > timeout {
            return Err(BenchError::Incomplete {
                read,
                expected,
                timeout,
            });
        }
        if last_child_check.elapsed() > Duration::from_secs(1) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::ChildExited { what, status });
            }
            last_child_check = Instant::now();
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = polled.map_err(BenchError::Read)?;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        if let Some(ts_ms) = m.timestamp().to_millis()
            && ts_ms >= warm_up_until_ms
        {
            let lag = now_us.saturating_sub(ts_ms.max(0) as u64 * 1000);
            latency_us.saturating_record(lag.clamp(1, LATENCY_MAX_US));
        }
        if let Some(value) = m.payload()
            && let Some(at) = finder.find(value)
        {
            let rest = &value[at + 11..];
            if let Some(i) = Outcome::ALL
                .iter()
                .position(|o| rest.starts_with(o.as_str().as_bytes()))
            {
                outcomes[i] += 1;
            }
        }
        read += 1;
        last_read = Instant::now();
    }
    Ok(ReadBack {
        last_read,
        latency_us,
        outcomes,
    })
}

/// CPU seconds (user + system) and peak resident set size of a process,
/// from `/proc`; zeros where `/proc` is not readable.
fn child_usage(pid: u32) -> (f64, u64) {
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / CLOCK_TICKS_PER_SECOND)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    (cpu, rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After this thread has burned CPU, `/proc` reports some for the
    /// process (the parser finds the fields), and a resident set above
    /// the 64 MiB just touched.
    #[test]
    fn reads_this_process_usage() {
        let touched = vec![1u8; 64 << 20];
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while child_usage(std::process::id()).0 < 0.05 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no CPU time reported"
            );
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let (cpu, rss) = child_usage(std::process::id());
        assert!(cpu < 3600.0, "{cpu}");
        assert!(rss > 64 << 20, "{rss}");
        assert_eq!(std::hint::black_box(&touched)[touched.len() - 1], 1);
    }
}
