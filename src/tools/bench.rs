//! `coupon-stream bench`: the end-to-end benchmark harness. Against a
//! broker (embedded unless `--brokers`), it starts the processor as a child
//! process (`coupon-stream run`, so its CPU time and peak memory are its
//! own), produces `events` generated events at `rate` (or as fast as the
//! broker takes them) into fresh topics, reads the decisions back, and
//! reports throughput, end-to-end latency percentiles (event produced to
//! decision readable, from the Kafka timestamps the processor carries over
//! from input to decision), outcome counts, CPU seconds per million events
//! and peak resident memory, and the processor's own decision-batch times
//! from its `/metrics`. With `baseline`, it first runs the same events
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
use crate::ops::telemetry;
use crate::tools::broker::{BrokerChoice, BrokerError};
use crate::tools::loadgen::{self, LoadError};
use crate::tools::scrape::{self, DecisionBatches};
use coupon_stream_core::reason::Outcome;
use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};

/// Longest wait for a child to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// Events produced before the first record is read back, or within this
/// long after it, are left out of the latency histogram. Until the first
/// record, clients fetch metadata, open connections and join the group
/// (on Tansu here 0.5 s in some runs and 1.0-1.25 s in others, for the
/// copy and the processor alike); the backlog of that wait drains in the
/// second after it. A fixed second from the start of the load let a slow
/// start's backlog into the percentiles of some runs and not others
/// (`--rate 100000`: p99 of 33-35 ms, or of 150-260 ms with every slow
/// record produced in the first 0.2 s after that second). The wait itself
/// is reported ([`BenchReport::first_record_seconds`]).
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

/// End-to-end latency percentiles, in milliseconds, and what they are
/// over.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Records the percentiles are over.
    pub samples: u64,
    /// True when records of events produced before the first record was
    /// read back, or in the second after it ([`WARM_UP`]), were left out:
    /// they are whenever at least a tenth of the events, and 1,000, were
    /// produced later. A short saturation run produces everything by then;
    /// its percentiles are then over every record (false here).
    pub warm_up_excluded: bool,
}

/// CPU time of the child's threads of one name (librdkafka names its
/// threads `rdk:main`, `rdk:broker<id>`; the processor's loop runs on the
/// main thread, `coupon-stream`).
#[derive(Debug, Clone, Serialize)]
pub struct ThreadCpu {
    pub name: String,
    /// Live threads of that name when sampled.
    pub threads: u32,
    pub cpu_seconds: f64,
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
    /// `events` over `seconds`: the start-up wait included.
    pub events_per_second: f64,
    /// From the first event produced to the first record read back: the
    /// clients' start-up (metadata, connections, the group join) as the
    /// load sees it. Part of `seconds`; on Tansu here about 0.5 s in some
    /// runs and 1.0 s in others, for the copy and the processor alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_record_seconds: Option<f64>,
    /// The load generator's own rate.
    pub produced_per_second: f64,
    /// Event produced to decision (or copy) readable. Absent only when no
    /// record carried a timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyMs>,
    /// Decisions by outcome (empty for the baseline).
    pub outcomes: Vec<(String, u64)>,
    pub cpu_seconds: f64,
    pub cpu_seconds_per_million_events: f64,
    /// The child's CPU by thread name, largest first, sampled when the last
    /// record was read. Threads that had already exited (the processor's
    /// per-batch partition threads) are summed under `(exited threads)`:
    /// the process total minus the live threads.
    pub cpu_by_thread: Vec<ThreadCpu>,
    pub peak_rss_bytes: u64,
    /// The processor's own batch times, from its `/metrics` after the last
    /// record was read (absent for the baseline, or when not readable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_batches: Option<DecisionBatches>,
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
    let first_record_seconds = read
        .first_read
        .map(|first| first.saturating_duration_since(started).as_secs_f64());
    let decision_batches = match mode {
        Mode::Baseline => None,
        Mode::Processor => decision_batches(port),
    };
    let (cpu_seconds, peak_rss_bytes) = child_usage(child.0.id());
    let cpu_by_thread = cpu_by_thread(child.0.id(), cpu_seconds);
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
        first_record_seconds,
        produced_per_second: load.events as f64 / load.seconds.max(1e-9),
        latency_ms: read.latency_ms(options.events),
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
        cpu_by_thread,
        peak_rss_bytes,
        decision_batches,
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

/// `GET path` from the child's HTTP endpoint: the status and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
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
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Some((status, body))
}

/// The processor child's decision batches, read from its `/metrics`;
/// `None` when the endpoint does not answer or has no such histogram.
fn decision_batches(port: u16) -> Option<DecisionBatches> {
    let (status, body) = http_get(port, "/metrics")?;
    if status != 200 {
        return None;
    }
    scrape::histogram(&body, telemetry::BATCH_DURATION).map(|h| DecisionBatches::from_histogram(&h))
}

fn wait_ready(child: &mut Child, port: u16, what: &'static str) -> Result<(), BenchError> {
    let started = Instant::now();
    while http_get(port, "/readyz").map(|(status, _)| status) != Some(200) {
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
    /// When the first record was read, if any was.
    first_read: Option<Instant>,
    last_read: Instant,
    /// Every record's latency.
    latency_all_us: Histogram<u64>,
    /// Latencies of events produced after the warm-up.
    latency_steady_us: Histogram<u64>,
    outcomes: [u64; Outcome::ALL.len()],
}

impl ReadBack {
    /// The percentiles after the warm-up when enough events came after it,
    /// else over every record ([`LatencyMs::warm_up_excluded`]).
    fn latency_ms(&self, events: u64) -> Option<LatencyMs> {
        let steady = self.latency_steady_us.len();
        let warm_up_excluded = steady >= (events / 10).max(1_000);
        let histogram = if warm_up_excluded {
            &self.latency_steady_us
        } else {
            &self.latency_all_us
        };
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencyMs {
            p50: ms(histogram.value_at_quantile(0.5)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            samples: histogram.len(),
            warm_up_excluded,
        })
    }
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
    let histogram = || {
        Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
            .map_err(|e| BenchError::Histogram(e.to_string()))
    };
    let mut latency_all_us = histogram()?;
    let mut latency_steady_us = histogram()?;
    let mut outcomes = [0u64; Outcome::ALL.len()];
    let finder = memchr::memmem::Finder::new(b"\"outcome\":\"");
    let mut read = 0u64;
    // Set when the first record arrives (see `WARM_UP`).
    let mut warm_up_until_ms = i64::MAX;
    let mut first_read = None;
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
        if first_read.is_none() {
            first_read = Some(Instant::now());
            warm_up_until_ms = ((now_us / 1000) as i64).saturating_add(WARM_UP.as_millis() as i64);
        }
        if let Some(ts_ms) = m.timestamp().to_millis() {
            let lag = now_us
                .saturating_sub(ts_ms.max(0) as u64 * 1000)
                .clamp(1, LATENCY_MAX_US);
            latency_all_us.saturating_record(lag);
            if ts_ms >= warm_up_until_ms {
                latency_steady_us.saturating_record(lag);
            }
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
        first_read,
        last_read,
        latency_all_us,
        latency_steady_us,
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

/// The CPU seconds of each live thread of `pid`, summed by thread name,
/// largest first, plus `(exited threads)`: `process_cpu_seconds` minus the
/// live threads' sum. Empty where `/proc` is not readable.
fn cpu_by_thread(pid: u32, process_cpu_seconds: f64) -> Vec<ThreadCpu> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut by_name: Vec<ThreadCpu> = Vec::new();
    for task in tasks.flatten() {
        let Some((name, seconds)) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
        else {
            continue;
        };
        match by_name.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                t.threads += 1;
                t.cpu_seconds += seconds;
            }
            None => by_name.push(ThreadCpu {
                name,
                threads: 1,
                cpu_seconds: seconds,
            }),
        }
    }
    if by_name.is_empty() {
        return by_name;
    }
    let live: f64 = by_name.iter().map(|t| t.cpu_seconds).sum();
    by_name.push(ThreadCpu {
        name: "(exited threads)".to_owned(),
        threads: 0,
        cpu_seconds: (process_cpu_seconds - live).max(0.0),
    });
    by_name.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
    by_name
}

/// The command name and CPU seconds (user + system) of a `/proc/.../stat`
/// line.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    // The name is in parentheses and may itself hold spaces or `)`.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / CLOCK_TICKS_PER_SECOND))
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

    #[test]
    fn reads_threads_by_name() {
        let (spun, spinning) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let spin = std::thread::Builder::new()
            .name("bench-test-spin".into())
            .spawn(move || {
                let started = Instant::now();
                let mut x = 0u64;
                // 0.3 s of CPU, however busy the machine.
                while started.elapsed() < Duration::from_secs(30) {
                    x = std::hint::black_box(x.wrapping_add(1));
                    if x.is_multiple_of(1_000_000) {
                        let (cpu, _) = child_usage(std::process::id());
                        let mine = cpu_by_thread(std::process::id(), cpu)
                            .into_iter()
                            .find(|t| t.name == "bench-test-spin")
                            .map_or(0.0, |t| t.cpu_seconds);
                        if mine >= 0.3 {
                            break;
                        }
                    }
                }
                spun.send(()).unwrap();
                let _ = released.recv();
            })
            .unwrap();
        spinning.recv().unwrap();
        let (cpu, _) = child_usage(std::process::id());
        let threads = cpu_by_thread(std::process::id(), cpu);
        release.send(()).unwrap();
        spin.join().unwrap();
        let spinner = threads
            .iter()
            .find(|t| t.name == "bench-test-spin")
            .unwrap();
        assert_eq!(spinner.threads, 1);
        assert!(spinner.cpu_seconds >= 0.3, "{threads:?}");
        assert!(cpu >= spinner.cpu_seconds, "{threads:?}");
        assert!(threads.iter().any(|t| t.name == "(exited threads)"));
        assert!(
            threads
                .windows(2)
                .all(|w| w[0].cpu_seconds >= w[1].cpu_seconds)
        );
    }

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let stat = "42 (rdk:broker) 1) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(parse_stat(stat), Some(("rdk:broker) 1".to_owned(), 3.0)));
        assert_eq!(parse_stat("42 (x) S"), None);
    }

    fn read_back_with(all: &[u64], steady: &[u64]) -> ReadBack {
        let mut read = ReadBack {
            first_read: None,
            last_read: Instant::now(),
            latency_all_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).unwrap(),
            latency_steady_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).unwrap(),
            outcomes: [0; Outcome::ALL.len()],
        };
        for &us in all {
            read.latency_all_us.record(us).unwrap();
        }
        for &us in steady {
            read.latency_steady_us.record(us).unwrap();
        }
        read
    }

    /// A short saturation run produces everything in the warm-up second:
    /// its latencies are over every record, never zeros.
    #[test]
    fn latency_is_measured_when_every_event_is_in_the_warm_up() {
        let all: Vec<u64> = (1..=300_000).map(|i| 1_000_000 + i).collect();
        let latency = read_back_with(&all, &[]).latency_ms(300_000).unwrap();
        assert!(!latency.warm_up_excluded);
        assert_eq!(latency.samples, 300_000);
        assert!((latency.p50 - 1_150.0).abs() < 2.0, "{latency:?}");
        assert!(latency.p99 > latency.p50 && latency.max >= latency.p999);
    }

    #[test]
    fn latency_leaves_the_warm_up_out_when_enough_came_after() {
        let all: Vec<u64> = (0..20_000)
            .map(|i| if i < 10_000 { 900_000 } else { 5_000 })
            .collect();
        let steady = vec![5_000; 10_000];
        let latency = read_back_with(&all, &steady).latency_ms(20_000).unwrap();
        assert!(latency.warm_up_excluded);
        assert_eq!(latency.samples, 10_000);
        assert!((latency.max - 5.0).abs() < 0.01, "{latency:?}");
        assert!(read_back_with(&[], &[]).latency_ms(10).is_none());
    }
}
