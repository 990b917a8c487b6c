//! The topics as a new user meets them (against Tansu): a fresh broker
//! with only the contract's three topics, where the processor creates its
//! compacted state topic, decides everything and restarts from its
//! snapshots; a missing or wrong topic is one line and exit 1 after the
//! bounded wait; the processor starts deciding as soon as the topics
//! appear; SIGTERM while it waits for them is a clean, prompt exit.

mod support;

use std::time::{Duration, Instant};

use coupon_stream_core::workload::Profile;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use support::kafka::{produce_with, read_covering};
use support::lifecycle::Processor;
use support::logs::log_dir;
use support::messages::{Messages, keyed, workload};
use support::recompute::{check_run, decision_source};
use support::{Tansu, wait_for};

const PARTITIONS: i32 = 8;
/// Tansu 0.6 answers a fetch from inside a record batch with the batches
/// after it: one record per batch, so a consumer resuming mid-stream
/// misses nothing (tests/durability.rs says more).
const ONE_PER_BATCH: &[(&str, &str)] = &[("batch.num.messages", "1")];

fn generated(events: usize, seed: u64) -> Messages {
    keyed(&mut workload(Profile::Steady, 40, 5_000, seed), events)
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap()
}

fn create_topic(brokers: &str, name: &str, partitions: i32, compact: bool) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    if compact {
        topic = topic.set("cleanup.policy", "compact");
    }
    let results =
        futures_executor::block_on(admin(brokers).create_topics([&topic], &AdminOptions::new()))
            .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// A topic's partition count and cleanup.policy, as the broker says.
fn describe(brokers: &str, name: &str) -> (usize, Option<String>) {
    let admin = admin(brokers);
    let metadata = admin
        .inner()
        .fetch_metadata(Some(name), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    let configs = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(name)], &AdminOptions::new()),
    )
    .unwrap();
    let policy = configs[0]
        .as_ref()
        .ok()
        .and_then(|c| c.get("cleanup.policy"))
        .and_then(|e| e.value.clone());
    (partitions, policy)
}

fn check_all_decided(brokers: &str, total: usize) {
    check_run(
        brokers,
        PARTITIONS,
        total,
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
}

const FAST: &[&str] = &[
    "--snapshot-interval-ms",
    "1000",
    "--commit-interval-ms",
    "200",
    "--drain-timeout-ms",
    "5000",
];
/// `--drain-timeout-ms` above plus the 5 s the shutdown may add.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

#[test]
fn creates_its_state_topic_decides_everything_and_restarts_from_snapshots() {
    let tansu = Tansu::with_topics(PARTITIONS);
    let brokers = tansu.brokers();
    let first = generated(2_000, 1);
    produce_with(&brokers, "coupon-events", &first, ONE_PER_BATCH);
    let dir = log_dir("topics-create");

    let mut run = Processor::start(&brokers, "topics", &dir.join("first.log"), FAST);
    check_all_decided(&brokers, first.len());
    assert_eq!(
        describe(&brokers, "coupon-state"),
        (PARTITIONS as usize, Some("compact".to_owned())),
        "the processor created coupon-state compacted, with the input's partition count"
    );
    assert_eq!(run.events("Created the state topic.").len(), 1);
    // Snapshots are being written before the stop, which writes more.
    wait_for("a snapshot", Duration::from_secs(30), || {
        run.metric("coupon_stream_snapshot_bytes")
            .is_some_and(|bytes| bytes > 0.0)
    });
    run.terminate_within(SHUTDOWN_BOUND);
    let log = run.log_text();
    assert!(
        !log.contains("Client stats") && !log.contains("Statistics {"),
        "librdkafka statistics are logged at DEBUG only"
    );

    let second = generated(1_000, 2);
    produce_with(&brokers, "coupon-events", &second, ONE_PER_BATCH);
    let mut again = Processor::start(&brokers, "topics", &dir.join("second.log"), FAST);
    check_all_decided(&brokers, first.len() + second.len());
    let restored = again.events("Partition state restored.");
    assert_eq!(restored.len(), PARTITIONS as usize);
    let from_snapshots = restored
        .iter()
        .filter(|e| {
            e.fields["snapshot_offset"]
                .as_str()
                .is_some_and(|s| s.starts_with("Some"))
        })
        .count();
    assert_eq!(
        from_snapshots,
        PARTITIONS as usize,
        "every partition restarted from its snapshot: {}",
        again.log_text()
    );
    assert!(again.events("Created the state topic.").is_empty());
    again.terminate_within(SHUTDOWN_BOUND);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a processor that must stop on its own with exit code 1 and one
/// error line containing every piece of `expected`, within `bound`.
fn expect_exit_1(
    brokers: &str,
    log: &std::path::Path,
    flags: &[&str],
    bound: Duration,
    expected: &[&str],
) -> Duration {
    let mut run = Processor::start(brokers, "topics-wrong", log, flags);
    let (status, took) = run
        .wait_exit(bound)
        .unwrap_or_else(|| panic!("still running after {bound:?}: {}", run.log_text()));
    assert_eq!(status.code(), Some(1), "{}", run.log_text());
    let log = run.log_text();
    let line = log
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {log}"));
    for piece in expected {
        assert!(line.contains(piece), "{line:?} lacks {piece:?}");
    }
    took
}

#[test]
fn a_missing_or_wrong_state_topic_is_one_line_and_exit_1() {
    let tansu = Tansu::with_topics(PARTITIONS);
    let brokers = tansu.brokers();
    let dir = log_dir("topics-wrong");
    let wait = ["--topic-wait-timeout-ms", "2000"];

    // Creation switched off: the state topic is waited for like the others.
    let flags = [&wait[..], &["--no-create-state-topic"]].concat();
    let took = expect_exit_1(
        &brokers,
        &dir.join("no-create.log"),
        &flags,
        Duration::from_secs(30),
        &[
            "state topic coupon-state does not exist",
            "--no-create-state-topic",
            "kafka-topics.sh --create --topic coupon-state --partitions 8 --config cleanup.policy=compact",
        ],
    );
    assert!(
        took >= Duration::from_secs(2),
        "it waited the 2 s first: {took:?}"
    );

    // Fewer partitions than the input.
    create_topic(&brokers, "small-state", 4, true);
    let flags = [&wait[..], &["--state-topic", "small-state"]].concat();
    expect_exit_1(
        &brokers,
        &dir.join("small.log"),
        &flags,
        Duration::from_secs(30),
        &["small-state has 4 partitions, fewer than the 8 of input topic coupon-events"],
    );

    // Not compacted (the broker's default policy, delete).
    create_topic(&brokers, "plain-state", 8, false);
    let flags = [&wait[..], &["--state-topic", "plain-state"]].concat();
    expect_exit_1(
        &brokers,
        &dir.join("plain.log"),
        &flags,
        Duration::from_secs(30),
        &[
            "plain-state has cleanup.policy=delete",
            "cleanup.policy=compact",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_input_topic_is_exit_1_after_the_bounded_wait() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("coupon-decisions", PARTITIONS);
    tansu.create_topic("coupon-events-dlq", PARTITIONS);
    let dir = log_dir("topics-input");
    let took = expect_exit_1(
        &brokers,
        &dir.join("missing.log"),
        &["--topic-wait-timeout-ms", "1500"],
        Duration::from_secs(30),
        &["topic coupon-events does not exist", "--input-topic"],
    );
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn starts_when_the_topics_appear_and_stops_promptly_while_waiting() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let dir = log_dir("topics-late");

    // SIGTERM while waiting for topics: a clean exit within the bound.
    let mut waiting = Processor::start(
        &brokers,
        "topics-late",
        &dir.join("sigterm.log"),
        &["--drain-timeout-ms", "1000"],
    );
    wait_for("the wait for topics", Duration::from_secs(30), || {
        !waiting
            .events("Waiting for a topic to be created.")
            .is_empty()
    });
    let ready = waiting.get("/readyz", Duration::from_secs(5)).unwrap();
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("waiting for a partition assignment"),
        "{}",
        ready.body
    );
    assert!(ready.took <= Duration::from_millis(100), "{:?}", ready.took);
    let took = waiting.terminate_within(Duration::from_secs(6));
    assert!(took < Duration::from_secs(6), "{took:?}");

    // Started before the topics exist: decides within 10 s of their creation.
    let run = Processor::start(&brokers, "topics-late", &dir.join("late.log"), FAST);
    wait_for("the wait for topics", Duration::from_secs(30), || {
        !run.events("Waiting for a topic to be created.").is_empty()
    });
    let created = Instant::now();
    for topic in support::TOPICS {
        tansu.create_topic(topic, PARTITIONS);
    }
    let events = generated(50, 3);
    produce_with(&brokers, "coupon-events", &events, ONE_PER_BATCH);
    // Counted by the processor itself, so the test's own reader is not timed.
    let decided_in = wait_for(
        "every event decided",
        Duration::from_secs(10) - created.elapsed(),
        || {
            run.metric("coupon_stream_decisions_total")
                .is_some_and(|n| n >= events.len() as f64)
        },
    );
    let after = created.elapsed();
    eprintln!(
        "decided 50 events {after:?} after creating the topics ({decided_in:?} after producing them)"
    );
    let decided = read_covering(
        &brokers,
        "coupon-decisions",
        PARTITIONS,
        events.len(),
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    let covered: std::collections::HashSet<(i32, i64)> =
        decided.iter().map(decision_source).collect();
    assert_eq!(covered.len(), events.len());
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}
