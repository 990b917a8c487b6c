//! The processor against a real Kafka-protocol broker (Tansu): for every
//! input partition, the decisions it produces equal a recomputation by the
//! decision core over that partition's input, one decision per input offset;
//! the dead-letter topic holds exactly the invalid values with their
//! headers; and SIGTERM drains and exits 0.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use coupon_stream_core::workload::Profile;
use support::logs::{log_dir, owned_partitions};
use support::recompute::{check_decisions, decision_source, expected_decisions};
use support::{Messages, Record, Running, Tansu, messages, wait_for};

const PARTITIONS: i32 = 3;

/// The input: both contract vector files and generated traffic, keyed by
/// seller, then a message without a key and one keyed by another seller.
fn input_messages() -> Messages {
    let mut input = messages::fixture("basics");
    input.extend(messages::fixture("generated-seed1"));
    let mut workload = messages::workload(Profile::Steady, 40, 2000, 9);
    input.extend(messages::keyed(&mut workload, 20_000));
    let seller = br#"{"type":"seller","event_id":"k1","ts":1,"seller_id":"s1"}"#.to_vec();
    input.push((None, seller.clone()));
    input.push((Some(b"s2".to_vec()), seller));
    input
}

/// A broker with the processor's topics and `messages` produced; returns
/// the input as stored, and how many of its values are invalid.
fn broker_with_input(tansu: &Tansu, messages: &Messages) -> (Vec<Record>, usize) {
    let input = tansu.produce_and_read_back("coupon-events", PARTITIONS, messages);
    let invalid = expected_decisions(&input, PARTITIONS)
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

/// Starts the processor binary; warnings go to the test's stderr.
fn start_processor(tansu: &Tansu, group: &str) -> Running {
    Running::spawn(
        processor_command(tansu, group)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
}

/// A processor logging JSON lines at info level to `log`.
fn start_logged_processor(tansu: &Tansu, group: &str, log: &std::path::Path) -> Running {
    Running::spawn(
        processor_command(tansu, group)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(log).unwrap()),
    )
}

fn processor_command(tansu: &Tansu, group: &str) -> Command {
    let mut command = support::processes::processor_command(&tansu.brokers(), group);
    command.args([
        "--commit-interval-ms",
        "200",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    command
}

fn check_output(input: &[Record], decisions: &[Record], dead_letters: &[Record]) {
    let expected = expected_decisions(input, PARTITIONS);
    let seen = check_decisions(decisions, &expected);
    for d in decisions {
        let source = decision_source(d);
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
    let tansu = Tansu::with_topics(PARTITIONS);
    // Produced before the processor ever ran: a new group starts from the
    // earliest offset, so none may be skipped.
    let (input, invalid_count) = broker_with_input(&tansu, &input_messages());
    // A thread per partition whatever the cores (the default leaves one
    // core to librdkafka): batches of 10,000 spread over three deciding
    // threads must decide the same bytes as one.
    let processor = Running::spawn(
        processor_command(&tansu, "coupon-stream-e2e")
            .args(["--decision-threads", "3"])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    );
    let (decisions, dead_letters) = read_output(&tansu, input.len(), invalid_count);
    let status = processor.terminate();
    assert!(
        status.success(),
        "processor exit status after SIGTERM: {status}"
    );
    check_output(&input, &decisions, &dead_letters);
}

#[test]
fn two_processors_split_the_partitions() {
    let tansu = Tansu::with_topics(PARTITIONS);
    let dir = log_dir("pair");
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let a = start_logged_processor(&tansu, "coupon-stream-pair", &log_a);
    let b = start_logged_processor(&tansu, "coupon-stream-pair", &log_b);
    // The group settles before input flows, so that both own partitions
    // (moves mid-stream are tests/durability.rs's subject).
    wait_for(
        "both processors to own partitions",
        Duration::from_secs(60),
        || {
            let (a, b) = (owned_partitions(&log_a), owned_partitions(&log_b));
            !a.is_empty() && !b.is_empty() && a.len() + b.len() == PARTITIONS as usize
        },
    );
    let (input, invalid_count) = broker_with_input(&tansu, &input_messages());
    let (decisions, dead_letters) = read_output(&tansu, input.len(), invalid_count);
    let (owned_a, owned_b) = (owned_partitions(&log_a), owned_partitions(&log_b));
    let (sa, sb) = (a.terminate(), b.terminate());
    assert!(sa.success() && sb.success(), "exit statuses {sa} {sb}");
    assert!(
        !owned_a.is_empty() && !owned_b.is_empty(),
        "both processors own partitions: {owned_a:?} {owned_b:?}"
    );
    assert!(owned_a.is_disjoint(&owned_b), "{owned_a:?} {owned_b:?}");
    assert_eq!(owned_a.len() + owned_b.len(), PARTITIONS as usize);
    let _ = std::fs::remove_dir_all(&dir);
    check_output(&input, &decisions, &dead_letters);
}

/// `loadgen` produces keyed, murmur2-partitioned traffic that the processor
/// accepts: no decision may be `key_mismatch` or `wrong_partition`.
#[test]
fn loadgen_feeds_the_processor() {
    let tansu = Tansu::with_topics(PARTITIONS);
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
    assert!(processor.terminate().success());
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
