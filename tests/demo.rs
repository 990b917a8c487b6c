//! `coupon-stream demo` end to end: the embedded broker, topics, processor,
//! load generator and HTTP endpoint in one process. Every event produced is
//! decided, and the broker acknowledges every decision and dead letter.

use std::process::Command;

#[test]
fn demo_decides_everything_it_produces() {
    let out = Command::new(env!("CARGO_BIN_EXE_coupon-stream"))
        .args([
            "demo",
            "--duration",
            "3",
            "--rate",
            "5000",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary: "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let numbers: Vec<u64> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (produced, decided) = (numbers[0], numbers[1]);
    assert!(produced >= 5_000, "{summary}");
    assert_eq!(produced, decided, "{summary}");
    assert!(!summary.contains("not caught up"), "{summary}");
    let acknowledged = stdout
        .lines()
        .find(|l| l.contains("records acknowledged by the broker"))
        .unwrap_or_else(|| panic!("no acknowledgement line in {stdout}"));
    assert!(acknowledged.contains(", all)"), "{acknowledged}");
    assert!(stdout.contains("metrics at http://127.0.0.1:"), "{stdout}");
}

#[test]
fn demo_rejects_bad_flags_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_coupon-stream"))
        .args(["demo", "--duration", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
