//! First decision after assignment: a fresh instance joins a new group and
//! gets 8 input partitions with empty state, one event waiting on each;
//! how long from its assignment to its first decision. Against Tansu
//! (`tansu` on PATH or `TANSU_BIN`), each run on a fresh broker with only
//! the contract's topics (plus a compacted `coupon-state`, which older
//! builds do not create).
//!
//! ```sh
//! cargo bench --bench first_decision
//! # side by side with another build of the binary (paired, alternating):
//! COUPON_STREAM_BASE=/path/to/old/coupon-stream cargo bench --bench first_decision
//! ```
//!
//! The assignment time is taken from the binary's JSON log (the
//! "Partitions assigned." line, or for builds that restore inside the
//! rebalance callback, the first "Partition state restored." line minus
//! its duration: the callback's start); the first decision is the first
//! `/metrics` scrape (every 5 ms) with a decision counted. Without
//! `--bench` (as `cargo test --all-targets` runs it) it makes one run of
//! this build and checks that it decides.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

#[path = "../tests/support/mod.rs"]
mod support;

const PARTITIONS: i32 = 8;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu() -> (Killed, String) {
    let port = support::http::free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = std::env::var("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home =
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
            if home.exists() {
                home
            } else {
                PathBuf::from("tansu")
            }
        });
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu on PATH (cargo install tansu --locked --features dynostore)");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tansu did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Killed(child), format!("127.0.0.1:{port}"))
}

fn prepare(brokers: &str) {
    support::kafka::create_processor_topics(brokers, PARTITIONS);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        let value = format!(r#"{{"type":"seller","event_id":"e{p}","ts":1,"seller_id":"s{p}"}}"#);
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to("coupon-events")
                    .partition(p)
                    .payload(value.as_bytes()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn decisions(port: u16) -> Option<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    Some(
        page.lines()
            .filter(|l| l.starts_with("coupon_stream_decisions_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// The assignment's time, from the log (see the module doc).
fn assigned_at(log: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(log).ok()?;
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |v: &serde_json::Value| v["timestamp"].as_str()?.parse::<DateTime<Utc>>().ok();
    if let Some(v) = events
        .iter()
        .find(|v| v["fields"]["message"] == "Partitions assigned.")
    {
        let logged = at(v)?;
        // Builds that restore inside the callback log this line after
        // restoring: their callback started before the first restore.
        let restored = events
            .iter()
            .find(|v| v["fields"]["message"] == "Partition state restored.");
        return match restored {
            Some(r) if at(r)? <= logged => {
                let seconds = r["fields"]["seconds"].as_f64()?;
                Some(at(r)? - chrono::Duration::microseconds((seconds * 1e6) as i64))
            }
            _ => Some(logged),
        };
    }
    None
}

/// One run of `binary`: seconds from assignment to first decision.
fn measure(binary: &Path, dir: &Path, run: usize) -> f64 {
    let (_broker, brokers) = tansu();
    prepare(&brokers);
    let port = support::http::free_port();
    let log = dir.join(format!("run-{run}.log"));
    let child = Command::new(binary)
        .args(["run", "--brokers", &brokers, "--log-format", "json"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _child = Killed(child);
    let started = Instant::now();
    let first = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no decision within 60 s: {}",
            log.display()
        );
        if decisions(port).is_some_and(|n| n > 0.0) {
            break Utc::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let assigned =
        assigned_at(&log).unwrap_or_else(|| panic!("no assignment in {}", log.display()));
    (first - assigned).as_seconds_f64()
}

fn summary(name: &str, mut seconds: Vec<f64>) {
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    println!(
        "{name:<44} median {median:.3} s  min {:.3} s  max {:.3} s  ({} runs: {:?})",
        seconds[0],
        seconds[seconds.len() - 1],
        seconds.len(),
        seconds
            .iter()
            .map(|s| (s * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let this = PathBuf::from(env!("CARGO_BIN_EXE_coupon-stream"));
    let base = std::env::var_os("COUPON_STREAM_BASE").map(PathBuf::from);
    let dir = std::env::temp_dir().join(format!(
        "coupon-stream-first-decision-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = if bench { 7 } else { 1 };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        ours.push(measure(&this, &dir, 2 * run));
        if bench && let Some(base) = &base {
            theirs.push(measure(base, &dir, 2 * run + 1));
        }
    }
    println!("first decision after assignment, {PARTITIONS} partitions with empty state, Tansu:");
    summary(&this.display().to_string(), ours);
    if let Some(base) = base.filter(|_| !theirs.is_empty()) {
        summary(&base.display().to_string(), theirs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
