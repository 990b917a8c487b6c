//! The processor against a real Kafka-protocol broker (Tansu): for every
//! input partition, the decisions it produces equal a recomputation by the
//! decision core over that partition's input, one decision per input offset;
//! the dead-letter topic holds exactly the invalid values with their
//! headers; and SIGTERM drains and exits 0.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coupon_stream_core::workload::{Workload, WorkloadConfig};
use support::{Record, Tansu};

const PARTITIONS: i32 = 3;

/// The input: both contract vector files and generated traffic, keyed by
/// seller (a line without a readable seller gets a key of its own).
fn input_messages() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut messages = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for name in ["basics", "generated-seed1"] {
        let bytes = std::fs::read(format!("{dir}/{name}.events.jsonl")).unwrap();
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for line in lines {
            let key = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| {
                    v.get("seller_id")
                        .and_then(|s| s.as_str())
                        .map(|s| s.as_bytes().to_vec())
                })
                .unwrap_or_else(|| b"no-seller".to_vec());
            messages.push((Some(key), line.to_vec()));
        }
    }
    let mut workload = Workload::new(WorkloadConfig {
        sellers: 40,
        users: 2000,
        seed: 9,
        ..WorkloadConfig::default()
    });
    let mut value = Vec::new();
    for _ in 0..20_000 {
        let seller = workload.next_into(&mut value);
        messages.push((
            Some(workload.seller_id(seller).as_bytes().to_vec()),
            value.clone(),
        ));
    }
    // A message without a key, and one keyed by another seller.
    let seller = br#"{"type":"seller","event_id":"k1","ts":1,"seller_id":"s1"}"#.to_vec();
    messages.push((None, seller.clone()));
    messages.push((Some(b"s2".to_vec()), seller));
    messages
}

fn expected_decisions(input: &[Record]) -> HashMap<(i32, i64), Vec<u8>> {
    support::expected_decisions(input, PARTITIONS)
}

/// A broker with the processor's topics and `messages` produced; returns
/// the input as stored, and how many of its values are invalid.
fn broker_with_input(
    tansu: &Tansu,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
) -> (Vec<Record>, usize) {
    tansu.produce("coupon-events", messages);
    let input = tansu.read_all(
        "coupon-events",
        PARTITIONS,
        messages.len(),
        Duration::from_secs(60),
    );
    assert_eq!(input.len(), messages.len());
    let invalid = expected_decisions(&input)
        .values()
        .filter(|d| d.windows(19).any(|w| w == b"\"outcome\":\"invalid\""))
        .count();
    (input, invalid)
}

/// The decisions and dead letters, once as many as expected arrived.
fn read_output(tansu: &Tansu, decisions: usize, dead_letters: usize) -> (Vec<Record>, Vec<Record>) {
    (
        tansu.read_all(
            "coupon-decisions",
            PARTITIONS,
            decisions,
            Duration::from_secs(120),
        ),
        tansu.read_all(
            "coupon-events-dlq",
            PARTITIONS,
            dead_letters,
            Duration::from_secs(30),
        ),
    )
}

fn create_topics(tansu: &Tansu) {
    for topic in support::TOPICS {
        tansu.create_topic(topic, PARTITIONS);
    }
}

/// Starts the processor binary; warnings go to the test's stderr.
fn start_processor(tansu: &Tansu, group: &str) -> Child {
    processor_command(tansu, group)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A processor logging JSON lines at info level to `log`.
fn start_logged_processor(tansu: &Tansu, group: &str, log: &std::path::Path) -> Child {
    processor_command(tansu, group)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn processor_command(tansu: &Tansu, group: &str) -> Command {
    let mut command = support::processor_command(&tansu.brokers(), group);
    command.args([
        "--commit-interval-ms",
        "200",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    command
}

/// Partitions a processor's log says it was assigned, minus those revoked.
fn owned_partitions(log: &std::path::Path) -> std::collections::BTreeSet<i64> {
    let mut owned = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        let list = |k: &str| -> Vec<i64> {
            v["fields"][k]
                .as_str()
                .unwrap_or("[]")
                .trim_matches(['[', ']'])
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        };
        match message {
            "Partitions assigned." => owned.extend(list("assigned")),
            "Partitions revoked." => {
                for p in list("revoked") {
                    owned.remove(&p);
                }
            }
            _ => {}
        }
    }
    owned
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    // SAFETY-free: kill(1) sends SIGTERM, the signal the processor drains on.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "processor did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_output(input: &[Record], decisions: &[Record], dead_letters: &[Record]) {
    let expected = expected_decisions(input);
    let seen = support::check_decisions(decisions, &expected);
    for d in decisions {
        let source = support::decision_source(d);
        let input_key = input
            .iter()
            .find(|r| (r.partition, r.offset) == source)
            .and_then(|r| r.key.clone());
        assert_eq!(d.key, input_key, "decision key is the input key");
    }
    assert_eq!(seen.len(), expected.len(), "one decision per input offset");

    let invalid: HashMap<(i32, i64), String> = expected
        .iter()
        .filter_map(|(src, bytes)| {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            (v["outcome"] == "invalid").then(|| (*src, v["reason"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert!(invalid.len() > 100, "the input exercises invalid values");
    let mut dlq_seen = HashMap::new();
    for r in dead_letters {
        let src = (
            r.header("source.partition")
                .unwrap()
                .parse::<i32>()
                .unwrap(),
            r.header("source.offset").unwrap().parse::<i64>().unwrap(),
        );
        assert_eq!(r.header("source.topic"), Some("coupon-events"));
        assert_eq!(
            r.header("error"),
            invalid.get(&src).map(String::as_str),
            "dead letter {src:?}"
        );
        let original = input
            .iter()
            .find(|i| (i.partition, i.offset) == src)
            .unwrap();
        assert_eq!(
            r.value, original.value,
            "dead letter is the value byte for byte"
        );
        dlq_seen.insert(src, ());
    }
    assert_eq!(
        dlq_seen.len(),
        invalid.len(),
        "the dead-letter topic holds exactly the invalid values"
    );
}

#[test]
fn decisions_match_replay_per_partition() {
    let tansu = Tansu::start();
    create_topics(&tansu);
    // Produced before the processor ever ran: a new group starts from the
    // earliest offset, so none may be skipped.
    let (input, invalid_count) = broker_with_input(&tansu, &input_messages());
    let processor = start_processor(&tansu, "coupon-stream-e2e");
    let (decisions, dead_letters) = read_output(&tansu, input.len(), invalid_count);
    let status = terminate(processor);
    assert!(
        status.success(),
        "processor exit status after SIGTERM: {status}"
    );
    check_output(&input, &decisions, &dead_letters);
}

#[test]
fn two_processors_split_the_partitions() {
    let tansu = Tansu::start();
    create_topics(&tansu);
    let dir = std::env::temp_dir().join(format!("coupon-stream-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = start_logged_processor(&tansu, "coupon-stream-pair", &log_a);
    let b = start_logged_processor(&tansu, "coupon-stream-pair", &log_b);
    // Let the group settle before input flows, so that both own partitions
    // (moves mid-stream are tests/durability.rs's subject).
    std::thread::sleep(Duration::from_secs(8));
    let (input, invalid_count) = broker_with_input(&tansu, &input_messages());
    let (decisions, dead_letters) = read_output(&tansu, input.len(), invalid_count);
    let (owned_a, owned_b) = (owned_partitions(&log_a), owned_partitions(&log_b));
    let (sa, sb) = (terminate(a), terminate(b));
    assert!(sa.success() && sb.success(), "exit statuses {sa} {sb}");
    assert!(
        !owned_a.is_empty() && !owned_b.is_empty(),
        "both processors own partitions: {owned_a:?} {owned_b:?}"
    );
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} {owned_b:?}");
    assert_eq!(owned_a.len() + owned_b.len(), PARTITIONS as usize);
    check_output(&input, &decisions, &dead_letters);
}

/// `loadgen` produces keyed, murmur2-partitioned traffic that the processor
/// accepts: no decision may be `key_mismatch` or `wrong_partition`.
#[test]
fn loadgen_feeds_the_processor() {
    let tansu = Tansu::start();
    create_topics(&tansu);
    let events = 30_000;
    let out = Command::new(env!("CARGO_BIN_EXE_coupon-stream"))
        .args([
            "loadgen",
            "--brokers",
            &tansu.brokers(),
            "--events",
            &events.to_string(),
            "--sellers",
            "30",
            "--seed",
            "4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains(&format!("produced {events} events")),
        "{summary}"
    );

    let processor = start_processor(&tansu, "coupon-stream-loadgen");
    let decisions = tansu.read_all(
        "coupon-decisions",
        PARTITIONS,
        events,
        Duration::from_secs(120),
    );
    assert!(terminate(processor).success());
    assert_eq!(decisions.len(), events);
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.value).unwrap();
        let key = v["reason"]
            .as_str()
            .unwrap_or(v["outcome"].as_str().unwrap())
            .to_owned();
        *by_reason.entry(key).or_default() += 1;
    }
    assert_eq!(by_reason.get("key_mismatch"), None, "{by_reason:?}");
    assert_eq!(by_reason.get("wrong_partition"), None, "{by_reason:?}");
    assert!(
        by_reason.get("issued").copied().unwrap_or(0) > 5_000,
        "{by_reason:?}"
    );
}
