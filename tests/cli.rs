//! The `coupon-stream` binary as a user runs it: `replay` through files and
//! pipes, and one-line errors with exit code 2 for bad flags and files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coupon-stream"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn assert_usage_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn replay_files_match_the_vectors_decision_for_decision() {
    let dir = tempdir();
    for name in ["basics", "generated-seed1"] {
        let output = format!("{dir}/{name}.out");
        let out = bin()
            .args([
                "replay",
                "--input",
                &fixture(&format!("{name}.events.jsonl")),
                "--output",
                &output,
                // The contract keeps campaigns forever (tests/conformance.rs).
                "--retention-ms",
                "0",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("replayed "), "{stderr}");
        let got = std::fs::read_to_string(&output).unwrap();
        let want = std::fs::read_to_string(fixture(&format!("{name}.decisions.jsonl"))).unwrap();
        assert_eq!(got.lines().count(), want.lines().count());
        for (g, w) in got.lines().zip(want.lines()) {
            let g: serde_json::Value = serde_json::from_str(g).unwrap();
            let w: serde_json::Value = serde_json::from_str(w).unwrap();
            assert_eq!(g["outcome"], w["outcome"]);
            assert_eq!(g["source"], w["source"]);
        }
    }
}

#[test]
fn replay_pipes_and_is_byte_identical_across_runs() {
    let input = std::fs::read(fixture("generated-seed1.events.jsonl")).unwrap();
    let run = |args: &[&str]| {
        let mut child = bin()
            .arg("replay")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let a = run(&["-q"]);
    let b = run(&["--input", "-", "--output", "-", "--quiet"]);
    assert_eq!(a, b);
    assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 3000);
}

#[test]
fn config_flags_change_decisions() {
    // With a 10-byte limit every non-empty line is too large.
    let out = bin()
        .args([
            "replay",
            "-q",
            "--max-event-bytes",
            "5",
            "--input",
            &fixture("basics.events.jsonl"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.contains("\"too_large\"")), "{text}");

    // Env vars configure the same values.
    let out = bin()
        .args(["replay", "-q", "--input", &fixture("basics.events.jsonl")])
        .env("COUPON_STREAM_MAX_EVENT_BYTES", "5")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .all(|l| l.contains("too_large"))
    );
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    assert_usage_error(
        &bin().args(["replay", "--no-such-flag"]).output().unwrap(),
        "--no-such-flag",
    );
    assert_usage_error(
        &bin()
            .args(["replay", "--dedup-window-ms", "soon"])
            .output()
            .unwrap(),
        "soon",
    );
    assert_usage_error(
        &bin()
            .args(["replay", "--default-timezone", "Mars/Olympus"])
            .output()
            .unwrap(),
        "Mars/Olympus",
    );
    assert_usage_error(
        &bin()
            .args(["replay", "--max-event-bytes", "0"])
            .output()
            .unwrap(),
        "max event bytes",
    );
    for command in ["replay", "run", "demo", "bench"] {
        assert_usage_error(
            &bin()
                .args([command, "--retention-ms", "-1"])
                .output()
                .unwrap(),
            "-1",
        );
        assert_usage_error(
            &bin()
                .args([command, "--retention-ms", "9007199254740992"])
                .output()
                .unwrap(),
            "retention 9007199254740992 ms exceeds",
        );
    }
    for (flag, value, expected) in [
        ("--state-topic", "", "cannot be empty"),
        ("--input-topic", "coupon events", "not a legal topic name"),
        ("--output-topic", "..", "not a legal topic name"),
        ("--dlq-topic", "dlq/1", "not a legal topic name"),
    ] {
        assert_usage_error(
            &bin().args(["run", flag, value]).output().unwrap(),
            expected,
        );
    }
    assert_usage_error(
        &bin().args(["loadgen", "--topic", ""]).output().unwrap(),
        "cannot be empty",
    );
    assert_usage_error(&bin().arg("frobnicate").output().unwrap(), "frobnicate");
    assert_usage_error(
        &bin().args(["run", "-X", "novalue"]).output().unwrap(),
        "key=value",
    );
    assert_usage_error(
        &bin().args(["run", "--log-format", "xml"]).output().unwrap(),
        "xml",
    );
    assert_usage_error(
        &bin()
            .args(["run", "--commit-interval-ms", "0"])
            .output()
            .unwrap(),
        "commit-interval-ms",
    );
    assert_usage_error(
        &bin()
            .args(["run", "--default-timezone", "Nowhere/Town"])
            .output()
            .unwrap(),
        "Nowhere/Town",
    );
    assert_usage_error(
        &bin().args(["loadgen", "--rate", "fast"]).output().unwrap(),
        "fast",
    );
    assert_usage_error(
        &bin()
            .args(["loadgen", "-o", "-", "--invalid-fraction", "2"])
            .output()
            .unwrap(),
        "between 0 and 1",
    );
}

#[test]
fn retention_changes_only_late_events_for_dropped_campaigns() {
    // The generated vectors span 20 days and refer to campaigns long over.
    // With 7 days of retention, every decision that departs from the
    // contract's is a late event's: unknown_campaign, unknown_coupon, or a
    // recipient refused on a retired day; the environment variable works
    // like the flag.
    let dir = tempdir();
    let output = format!("{dir}/retained.out");
    let out = bin()
        .args([
            "replay",
            "--quiet",
            "--input",
            &fixture("generated-seed1.events.jsonl"),
            "--output",
            &output,
        ])
        .env("COUPON_STREAM_RETENTION_MS", "604800000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = std::fs::read_to_string(&output).unwrap();
    let want = std::fs::read_to_string(fixture("generated-seed1.decisions.jsonl")).unwrap();
    assert_eq!(got.lines().count(), want.lines().count());
    let mut differing = 0;
    for (g, w) in got.lines().zip(want.lines()) {
        let g: serde_json::Value = serde_json::from_str(g).unwrap();
        let w: serde_json::Value = serde_json::from_str(w).unwrap();
        if g["outcome"] == w["outcome"] && g["reason"] == w["reason"] {
            continue;
        }
        differing += 1;
        let late = match g["reason"].as_str() {
            Some("unknown_campaign" | "unknown_coupon") => true,
            _ => g["results"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["reason"] == "daily_quota_exhausted")),
        };
        assert!(late, "{g} (contract: {w})");
    }
    assert!(differing > 100, "{differing}");
}

#[test]
fn unreadable_files_are_one_line_and_exit_2() {
    assert_usage_error(
        &bin()
            .args(["replay", "--input", "/nonexistent/events.jsonl"])
            .output()
            .unwrap(),
        "/nonexistent/events.jsonl",
    );
    assert_usage_error(
        &bin()
            .args([
                "replay",
                "--input",
                &fixture("basics.events.jsonl"),
                "--output",
                "/nonexistent/dir/out",
            ])
            .output()
            .unwrap(),
        "/nonexistent/dir/out",
    );
}

#[test]
fn loadgen_output_replays_cleanly() {
    let dir = tempdir();
    let path = format!("{dir}/gen.jsonl");
    let out = bin()
        .args([
            "loadgen",
            "--events",
            "20000",
            "--sellers",
            "20",
            "--seed",
            "3",
            "--output",
            &path,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 20_000);
    let out = bin()
        .args(["replay", "--input", &path, "--output", "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("replayed 20000 messages"), "{summary}");
    assert!(summary.contains("issued="), "{summary}");
}

/// `loadgen` producing to a broker nobody listens on: it says so while
/// librdkafka retries, and a Ctrl-C ends it within seconds with the count
/// of events not delivered, not after a flush or message timeout (here
/// 300 and 600 s).
#[test]
fn loadgen_says_the_broker_is_unreachable_and_stops_on_a_signal() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args(["loadgen", "--events", "10", "--brokers"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-X", "message.timeout.ms=600000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("Connection refused"))
    {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no connection error logged ({e}): {seen:?}"),
        }
    }
    // SAFETY: a plain signal to the child this test spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let signalled = Instant::now();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    reader.join().unwrap();
    seen.extend(received.try_iter());
    assert!(!status.success(), "{status}: {seen:?}");
    assert!(
        took < Duration::from_secs(60),
        "{took:?} after the signal: {seen:?}"
    );
    let last = seen.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.contains("10 of 10 events were not delivered"),
        "{seen:?}"
    );
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!(
        "coupon-stream-cli-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}
