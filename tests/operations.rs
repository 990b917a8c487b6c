//! The processor as an SRE sees it, against a real broker (Tansu) and a
//! real Prometheus server: `/healthz` and `/readyz`, every metric name in
//! `/metrics` (checked by `promtool check metrics`), counters that add up to
//! the events produced (read back through Prometheus's query API), and the
//! state queries answering what a recomputation of the same input holds.
//! `promtool` and `prometheus` come from Debian's `prometheus` package,
//! installed by `.ci/run`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use coupon_stream::ops::telemetry;
use coupon_stream_core::state::query::{campaign_view, coupon_view};
use coupon_stream_core::workload::Profile;
use support::http::{free_port, http_get, wait_for_ok};
use support::recompute::recomputed_cores;
use support::{Messages, Running, Tansu, messages, wait_for};

const PARTITIONS: i32 = 2;

/// The contract's basic vectors, then generated traffic.
fn input_messages() -> Messages {
    let mut input = messages::fixture("basics");
    let mut workload = messages::workload(Profile::Steady, 20, 500, 3);
    input.extend(messages::keyed(&mut workload, 5_000));
    input
}

fn start_processor(tansu: &Tansu, metrics_port: u16) -> Running {
    Running::spawn(
        support::processes::processor_command(&tansu.brokers(), "coupon-stream-ops")
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--snapshot-interval-ms",
                "1000",
            ])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
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

fn start_prometheus(dir: &std::path::Path, port: u16, target_port: u16) -> Running {
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
    Running(child)
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
    let tansu = Tansu::with_topics(PARTITIONS);
    let input = tansu.produce_and_read_back("coupon-events", PARTITIONS, &input_messages());
    let total = input.len() as f64;

    let port = free_port();
    let processor = start_processor(&tansu, port);
    wait_for_ok(port, "/healthz", Duration::from_secs(30));
    wait_for_ok(port, "/readyz", Duration::from_secs(60));

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
    // The periodic commits' results come back to the processor, which
    // counts them: librdkafka reports an asynchronous commit only to a
    // reply queue, and without one (rust-rdkafka's own async commit) the
    // processor never learnt of a commit, counted none and, on SIGTERM,
    // waited out its whole drain bound for the final one's answer.
    wait_for("a commit's result counted", Duration::from_secs(30), || {
        metrics = http_get(port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        sum_samples(&metrics, telemetry::COMMITS) > 0.0
    });
    assert_eq!(sum_samples(&metrics, telemetry::COMMIT_ERRORS), 0.0);
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
    let cores = recomputed_cores(&input, PARTITIONS);
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

    let status = processor.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
