//! `coupon-stream bench --baseline` end to end on the embedded broker: the
//! copy and the processor each deliver every event to the output topic, and
//! the report accounts for every one of them, with the processor's own
//! batch times.

use std::process::Command;

use serde_json::Value;

const EVENTS: u64 = 5_000;

#[test]
fn bench_baseline_reports_the_copy_and_the_processor() {
    let out = Command::new(env!("CARGO_BIN_EXE_coupon-stream"))
        .args(["bench", "--baseline", "--json", "--events"])
        .arg(EVENTS.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let reports: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let modes: Vec<&str> = reports
        .iter()
        .map(|r| r["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["baseline", "processor"], "{stdout}");
    for report in &reports {
        assert_eq!(report["events"], EVENTS, "{report}");
        // Every event's copy or decision was read back and timed.
        assert_eq!(report["latency_ms"]["samples"], EVENTS, "{report}");
        assert!(
            report["events_per_second"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        assert!(report["cpu_seconds"].as_f64().unwrap() >= 0.0, "{report}");
        // The start-up wait lies within the run.
        let seconds = report["seconds"].as_f64().unwrap();
        let first = report["first_record_seconds"].as_f64().unwrap();
        assert!(first > 0.0 && first <= seconds, "{report}");
    }
    // The copy decides nothing; the processor decides every event once.
    assert_eq!(reports[0]["outcomes"], serde_json::json!([]), "{stdout}");
    let decided: u64 = reports[1]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap())
        .sum();
    assert_eq!(decided, EVENTS, "{stdout}");
    // The processor's own batch times, read from its /metrics: every event
    // was decided in some batch; the copy has none.
    assert!(reports[0].get("decision_batches").is_none(), "{stdout}");
    let batches = &reports[1]["decision_batches"];
    let count = batches["batches"].as_u64().unwrap();
    assert!((1..=EVENTS).contains(&count), "{stdout}");
    assert!(batches["seconds"].as_f64().unwrap() > 0.0, "{stdout}");
    assert!(batches["mean_ms"].as_f64().unwrap() > 0.0, "{stdout}");
}
