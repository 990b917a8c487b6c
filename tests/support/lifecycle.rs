//! What the lifecycle tests (topics, crash and restart, faults, never
//! blind) need beyond the shared parts: a processor handle that knows its
//! log, metrics port and start time and waits for its exit within a bound,
//! an HTTP GET that measures how long the answer took, and a Prometheus
//! sample sum.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::http::free_port;
use super::logs::{LogLine, log_lines};
use super::processes::{Running, processor_command};

/// A running `coupon-stream run` with JSON logs at info level, killed when
/// dropped.
pub struct Processor {
    child: Option<Running>,
    pub log: PathBuf,
    pub metrics_port: u16,
    /// Milliseconds since the Unix epoch at start, comparable with the
    /// log's timestamps.
    pub started_ms: i64,
}

impl Processor {
    /// Starts `coupon-stream run` against `brokers` in `group`, logging to
    /// `log`, with `extra` flags.
    pub fn start(brokers: &str, group: &str, log: &Path, extra: &[&str]) -> Processor {
        let metrics_port = free_port();
        let started_ms = now_ms();
        let child = Running::spawn(
            processor_command(brokers, group)
                .args(["--log-format", "json"])
                .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
                .args(extra)
                .env("RUST_LOG", "info")
                .stderr(std::fs::File::create(log).unwrap()),
        );
        Processor {
            child: Some(child),
            log: log.to_owned(),
            metrics_port,
            started_ms,
        }
    }

    /// SIGKILL, as a crash would, and reaped.
    pub fn kill(mut self) {
        if let Some(child) = self.child.take() {
            child.kill();
        }
    }

    /// Waits for the exit, at most `bound`; returns its status and how long
    /// it took, or `None` when it was still running at the bound.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                self.child = None;
                return Some((status, started.elapsed()));
            }
            if started.elapsed() >= bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then a clean exit within `bound`; returns how long it took.
    pub fn terminate_within(&mut self, bound: Duration) -> Duration {
        if let Some(child) = &self.child {
            child.sigterm();
        }
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

    /// The log's lines with `message`.
    pub fn events(&self, message: &str) -> Vec<LogLine> {
        log_lines(&self.log)
            .into_iter()
            .filter(|l| l.message == message)
            .collect()
    }

    /// The whole log, for assertion messages and searches.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        self.get("/readyz", Duration::from_secs(5))
            .is_some_and(|r| r.status == 200)
    }

    pub fn get(&self, path: &str, timeout: Duration) -> Option<Response> {
        timed_get(self.metrics_port, path, timeout)
    }

    /// The sum of metric `name`'s samples, from one scrape.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.get("/metrics", Duration::from_secs(5))
            .map(|r| metric_sum(&r.body, name))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An HTTP answer and how long it took.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub took: Duration,
}

/// A plain HTTP/1.1 GET that gives up after `timeout` (connect, write and
/// read together) and measures the answer's time.
pub fn timed_get(port: u16, path: &str, timeout: Duration) -> Option<Response> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
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
    let (status, body) = super::http::parse_response(&String::from_utf8_lossy(&response))?;
    Some(Response { status, body, took })
}

/// The sum of every sample of metric `name` in a Prometheus text page.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
