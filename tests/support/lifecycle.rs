//! Processor processes for the lifecycle tests: start one with JSON logs
//! on a free metrics port, signal it, wait for its exit within a bound,
//! read its log events with their timestamps, and probe its HTTP endpoint
//! with a deadline per request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `f` holds, polling every 50 ms; panics after `bound`.
pub fn wait_until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < bound,
            "timed out after {bound:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// A scratch directory for one test's logs.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coupon-stream-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `coupon-stream run`, killed when dropped so a failed
/// assertion leaves nothing running.
pub struct Processor {
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_port: u16,
    pub started: Instant,
    pub started_at: DateTime<Utc>,
}

impl Processor {
    /// Starts `coupon-stream run` against `brokers` in `group`, logging JSON
    /// at info level to `log`, with `extra` flags.
    pub fn start(brokers: &str, group: &str, log: &Path, extra: &[&str]) -> Processor {
        let metrics_port = free_port();
        let child = super::processor_command(brokers, group)
            .args(["--log-format", "json"])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Processor {
            child: Some(child),
            log: log.to_owned(),
            metrics_port,
            started: Instant::now(),
            started_at: Utc::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
    }

    /// SIGKILL, and reaped.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the exit, at most `bound`; returns its status and how long
    /// it took, or `None` when it was still running at the bound.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some((status, started.elapsed()));
            }
            if started.elapsed() >= bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit within `bound`, which must be clean.
    pub fn terminate_within(&mut self, bound: Duration) -> Duration {
        self.signal("-TERM");
        let (status, took) = self.wait_exit(bound).unwrap_or_else(|| {
            panic!(
                "still running {bound:?} after SIGTERM; log: {}",
                self.log.display()
            )
        });
        assert!(
            status.success(),
            "exit status after SIGTERM: {status}; log: {}",
            self.log.display()
        );
        took
    }

    /// The log's events with `message`.
    pub fn events(&self, message: &str) -> Vec<LogEvent> {
        log_events(&self.log, message)
    }

    /// The whole log, for assertion messages and searches.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str, timeout: Duration) -> Option<Response> {
        http_get(self.metrics_port, path, timeout)
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One JSON log line.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub at: DateTime<Utc>,
    pub fields: serde_json::Value,
}

impl LogEvent {
    /// A `?`-formatted list field such as `[0, 3]`.
    pub fn list(&self, name: &str) -> Vec<i32> {
        self.fields[name]
            .as_str()
            .unwrap_or_default()
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }

    pub fn f64(&self, name: &str) -> Option<f64> {
        self.fields[name].as_f64()
    }
}

pub fn log_events(log: &Path, message: &str) -> Vec<LogEvent> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["fields"]["message"] == message)
        .filter_map(|v| {
            let at = v["timestamp"].as_str()?.parse::<DateTime<Utc>>().ok()?;
            Some(LogEvent {
                at,
                fields: v["fields"].clone(),
            })
        })
        .collect()
}

/// An HTTP answer and how long it took.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub took: Duration,
}

/// A plain HTTP/1.1 GET that gives up after `timeout` (connect, write and
/// read together).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<Response> {
    let started = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if started.elapsed() > timeout {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
    let took = started.elapsed();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some(Response { status, body, took })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n + 2 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The sum of every sample of metric `name` in a Prometheus text page.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Probes `/metrics`, `/healthz` and `/readyz` once each; panics unless
/// every one answers within `bound`. Returns the `/readyz` body.
pub fn probe_within(port: u16, bound: Duration) -> String {
    let mut ready = String::new();
    for path in ["/metrics", "/healthz", "/readyz"] {
        // The client's own deadline is generous, so a slow answer shows as
        // a measured time, not as a missing one.
        let response = http_get(port, path, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{path} did not answer within 5 s"));
        assert!(
            response.took <= bound,
            "{path} took {:?} (bound {bound:?})",
            response.took
        );
        if path == "/readyz" {
            ready = response.body;
        }
    }
    ready
}

/// A processor configuration for tests that build library parts directly
/// (a snapshot store, a reader); callers set `brokers` and what they need.
pub fn test_config() -> coupon_stream::kafka::config::KafkaConfig {
    use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
    use coupon_stream::kafka::topics::StateTopicPolicy;
    KafkaConfig {
        brokers: String::new(),
        group_id: "coupon-stream-test".into(),
        input_topic: "coupon-events".into(),
        output_topic: "coupon-decisions".into(),
        dlq_topic: "coupon-events-dlq".into(),
        verify_partitioning: true,
        properties: vec![],
        batch_messages_max: 10_000,
        commit_interval_ms: 200,
        drain_timeout_ms: 5_000,
        state_topic: "coupon-state".into(),
        snapshot_interval_ms: 1_000,
        restore_timeout_ms: 60_000,
        restore_threads: 2,
        state_topic_policy: StateTopicPolicy::default(),
        topic_wait_timeout_ms: 30_000,
        session_timeout_ms: 6_000,
        guarantee: Guarantee::AtLeastOnce,
        transactional_id: String::new(),
        transaction_timeout_ms: 10_000,
    }
}
