//! The processor as an SRE sees it, against a real broker (Tansu) and a
//! real Prometheus server: `/healthz` and `/readyz`, every metric name in
//! `/metrics` (checked by `promtool check metrics`), counters that add up to
//! the events produced (read back through Prometheus's query API), and the
//! state queries answering what a recomputation of the same input holds.
//! `promtool` and `prometheus` come from Debian's `prometheus` package,
//! installed by `.ci/run`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coupon_stream::ops::telemetry;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};
use coupon_stream_core::state::query::{campaign_view, coupon_view};
use coupon_stream_core::workload::{Workload, WorkloadConfig};
use support::{Record, Tansu};

const PARTITIONS: i32 = 2;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET; returns the status code and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
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
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn input_messages() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut messages = Vec::new();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/basics.events.jsonl"
    ))
    .unwrap();
    for line in fixture.lines() {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["seller_id"].as_str().map(|s| s.as_bytes().to_vec()))
            .unwrap_or_else(|| b"no-seller".to_vec());
        messages.push((Some(key), line.as_bytes().to_vec()));
    }
    let mut workload = Workload::new(WorkloadConfig {
        sellers: 20,
        users: 500,
        seed: 3,
        ..WorkloadConfig::default()
    });
    let mut value = Vec::new();
    for _ in 0..5_000 {
        let seller = workload.next_into(&mut value);
        messages.push((
            Some(workload.seller_id(seller).as_bytes().to_vec()),
            value.clone(),
        ));
    }
    messages
}

/// One decision core per partition, fed that partition's input in order.
fn recompute(input: &[Record]) -> HashMap<i32, DecisionCore> {
    let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in input {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let mut cores = HashMap::new();
    for (partition, mut records) in by_partition {
        records.sort_by_key(|r| r.offset);
        let mut core = DecisionCore::new(CoreConfig::default());
        let mut out = Vec::new();
        for r in records {
            out.clear();
            core.process(
                &Message {
                    value: &r.value,
                    source: Source {
                        partition,
                        offset: r.offset,
                    },
                    key_check: Some(KeyCheck {
                        key: r.key.as_deref(),
                        partition_count: Some(PARTITIONS as u32),
                    }),
                },
                &mut out,
            );
        }
        cores.insert(partition, core);
    }
    cores
}

fn start_processor(tansu: &Tansu, metrics_port: u16) -> Child {
    support::processor_command(&tansu.brokers(), "coupon-stream-ops")
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--snapshot-interval-ms",
            "1000",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Sum of every sample of `name` in Prometheus text.
fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sample_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &std::path::Path, port: u16, target_port: u16) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: coupon-stream\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start prometheus ({e}); install Debian's prometheus package or run `bash .ci/run`")
        });
    Prometheus(child)
}

/// The value of a scalar-valued instant query, if Prometheus has one.
fn prometheus_query(port: u16, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn metrics_health_and_state_queries() {
    let tansu = Tansu::start();
    for topic in support::TOPICS {
        tansu.create_topic(topic, PARTITIONS);
    }
    let messages = input_messages();
    tansu.produce("coupon-events", &messages);
    let input = tansu.read_all(
        "coupon-events",
        PARTITIONS,
        messages.len(),
        Duration::from_secs(60),
    );
    assert_eq!(input.len(), messages.len());
    let total = input.len() as f64;

    let port = free_port();
    let mut processor = start_processor(&tansu, port);
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    wait_for("/readyz", Duration::from_secs(60), || {
        http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });

    let dir = std::env::temp_dir().join(format!("coupon-stream-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prometheus_port = free_port();
    let _prometheus = start_prometheus(&dir, prometheus_port, port);

    // Every event decided, counted once in each family.
    let mut metrics = String::new();
    wait_for("every decision counted", Duration::from_secs(120), || {
        metrics = http_get(port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        sum_samples(&metrics, telemetry::DECISIONS) == total
    });
    assert_eq!(sum_samples(&metrics, telemetry::EVENTS_CONSUMED), total);
    let invalid = sum_samples(&metrics, telemetry::INVALID_EVENTS);
    assert!(invalid > 0.0, "the input holds invalid values");
    assert_eq!(sum_samples(&metrics, telemetry::DEAD_LETTERS), invalid);
    assert_eq!(sum_samples(&metrics, telemetry::READY), 1.0);
    assert_eq!(
        sum_samples(&metrics, telemetry::ASSIGNED_PARTITIONS),
        f64::from(PARTITIONS)
    );
    let histogram_count = format!("{}_count", telemetry::EVENT_TIME_LAG);
    assert_eq!(
        sum_samples(&metrics, &histogram_count),
        total - invalid,
        "one event-time lag per valid event"
    );

    // Every exported name is present once the periodic gauges (consumer
    // lag from librdkafka's statistics, state size) have been published.
    wait_for("every metric name", Duration::from_secs(30), || {
        metrics = http_get(port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let names = sample_names(&metrics);
        telemetry::ALL.iter().all(|name| {
            names
                .iter()
                .any(|n| n == name || n == &format!("{name}_bucket"))
        })
    });
    assert!(sum_samples(&metrics, telemetry::STATE_COUPONS) > 0.0);
    assert!(metrics.contains("# TYPE coupon_stream_event_time_lag_seconds histogram"));
    assert!(metrics.contains("# TYPE coupon_stream_decisions_total counter"));
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); install Debian's prometheus package or run `bash .ci/run`"));
    promtool
        .stdin
        .as_ref()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // State queries answer what the same input, recomputed, holds.
    let cores = recompute(&input);
    let partition_of = |seller: &str| {
        coupon_stream_core::partitioner::partition_for(seller.as_bytes(), PARTITIONS as u32) as i32
    };
    let core = &cores[&partition_of("seller-1")];
    let want = campaign_view(core.state(), core.watermark(), "seller-1", "double11").unwrap();
    let (status, body) = http_get(port, "/v1/sellers/seller-1/campaigns/double11").unwrap();
    assert_eq!(status, 200, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got, serde_json::to_value(&want).unwrap());
    let want = coupon_view(core.state(), core.watermark(), "seller-1", "double11:1").unwrap();
    let (status, body) = http_get(port, "/v1/sellers/seller-1/coupons/double11:1").unwrap();
    assert_eq!(status, 200, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got, serde_json::to_value(&want).unwrap());
    let (status, body) = http_get(port, "/v1/sellers/seller-1/campaigns/no-such").unwrap();
    assert_eq!(status, 404, "{body}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["error"], "not_found");
    assert_eq!(got["partition"], partition_of("seller-1"));

    // A real Prometheus server scraping the processor sees the same totals.
    let sum_decisions = format!("sum({})", telemetry::DECISIONS);
    wait_for("Prometheus to scrape", Duration::from_secs(60), || {
        prometheus_query(prometheus_port, &sum_decisions) == Some(total)
    });
    assert_eq!(
        prometheus_query(
            prometheus_port,
            &format!("sum({})", telemetry::EVENTS_CONSUMED)
        ),
        Some(total)
    );
    assert_eq!(
        prometheus_query(prometheus_port, "up{job=\"coupon-stream\"}"),
        Some(1.0)
    );

    Command::new("kill")
        .args(["-TERM", &processor.id().to_string()])
        .status()
        .unwrap();
    let status = processor.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
