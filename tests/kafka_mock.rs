//! Broker trouble, on librdkafka's in-process mock cluster: the broker goes
//! down in the middle of a stream and comes back; produce and commit
//! requests fail with retriable errors; under exactly-once, transactions
//! fail and are aborted. The processor must wait, retry,
//! resume, and lose nothing: every input offset gets exactly the decision
//! the core computes for it, and the run ends cleanly on shutdown.
//!
//! The mock broker keeps aborted records and reports no aborted
//! transactions to `read_committed` readers (so does Tansu 0.6): these
//! tests therefore see the records of aborted transactions too, and check
//! that each of them equals the decision the rewound processor made again
//! for the same input, which is what proves the rewind exact.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::processor;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::workload::{Profile, Workload};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::kafka::{produce, read_all};
use support::lifecycle::Processor;
use support::messages::keyed as messages;
use support::recompute::check_run;

const PARTITIONS: i32 = 2;

/// A one-broker mock cluster with the processor's topics.
fn cluster() -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // The mock cluster cannot create topics on request: the state topic too.
    for topic in support::TOPICS.into_iter().chain(["coupon-state"]) {
        cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    }
    (cluster, brokers)
}

fn workload(seed: u64) -> Workload {
    support::messages::workload(Profile::Steady, 10, 500, seed)
}

type Run = std::thread::JoinHandle<Result<processor::RunSummary, processor::ProcessorError>>;

/// Runs a processor on a thread until `shutdown`.
fn spawn(config: KafkaConfig, shutdown: &Arc<AtomicBool>) -> Run {
    let shutdown = Arc::clone(shutdown);
    std::thread::spawn(move || processor::run(config, CoreConfig::default(), &shutdown))
}

/// Waits until some decisions flow.
fn await_processing(brokers: &str) {
    let early = read_all(
        brokers,
        "coupon-decisions",
        PARTITIONS,
        50,
        Duration::from_secs(60),
    );
    assert!(early.len() >= 50, "processing started: {}", early.len());
}

/// Some decisions flow, then the broker disappears for 3 s and comes back,
/// and more input arrives.
fn outage_loses_nothing(guarantee: Guarantee, seed: u64) {
    let (cluster, brokers) = cluster();
    let mut workload = workload(seed);
    let first = messages(&mut workload, 300);
    produce(&brokers, "coupon-events", &first);
    let shutdown = Arc::new(AtomicBool::new(false));
    let config = match guarantee {
        Guarantee::AtLeastOnce => mock_config(&brokers),
        Guarantee::ExactlyOnce => exactly_once(mock_config(&brokers), "mock-tx-outage"),
    };
    let run = spawn(config, &shutdown);
    await_processing(&brokers);
    cluster.broker_down(1).unwrap();
    // The outage's length (the scenario), not a wait for anything.
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up(1).unwrap();
    let second = messages(&mut workload, 300);
    produce(&brokers, "coupon-events", &second);
    let total = first.len() + second.len();
    let (summary, _) = finish(&brokers, total, &shutdown, run);
    assert!(summary.messages as usize >= total);
}

#[test]
fn broker_outage_mid_stream_loses_nothing() {
    outage_loses_nothing(Guarantee::AtLeastOnce, 5);
}

/// Exactly once: open transactions time out or fail during the outage, are
/// aborted and rewound once the broker is back; nothing is lost.
#[test]
fn exactly_once_broker_outage_loses_nothing() {
    outage_loses_nothing(Guarantee::ExactlyOnce, 8);
}

/// Produce and offset-commit requests fail with retriable errors: the
/// producer retries (idempotently) and the commit is retried at the next
/// interval; nothing is lost or decided differently.
#[test]
fn retriable_request_errors_lose_nothing() {
    let (cluster, brokers) = cluster();
    let input = messages(&mut workload(6), 400);
    produce(&brokers, "coupon-events", &input);
    // Injected after the input is in: only the processor's requests fail.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        ],
    );
    let shutdown = Arc::new(AtomicBool::new(false));
    let run = spawn(mock_config(&brokers), &shutdown);
    let (summary, _) = finish(&brokers, input.len(), &shutdown, run);
    assert_eq!(summary.messages as usize, input.len());
}

/// Exactly once: an add-partitions and an add-offsets request fail with
/// errors that abort the transaction, and an end-transaction request with
/// a retriable one. The processor aborts, rebuilds each partition's state
/// at its committed offset, re-reads from there and decides again: every
/// decision, the aborted ones included, equals the uninterrupted
/// recomputation.
#[test]
fn exactly_once_aborted_transactions_rewind_exactly() {
    let (cluster, brokers) = cluster();
    let mut workload = workload(7);
    let first = messages(&mut workload, 300);
    produce(&brokers, "coupon-events", &first);
    let shutdown = Arc::new(AtomicBool::new(false));
    let run = spawn(
        exactly_once(mock_config(&brokers), "mock-tx-abort"),
        &shutdown,
    );
    await_processing(&brokers);
    // Non-retriable errors of transactional requests (the input producer
    // never sends these): each fails the transaction it hits.
    cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    cluster.request_errors(
        RDKafkaApiKey::AddOffsetsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
    );
    let second = messages(&mut workload, 200);
    produce(&brokers, "coupon-events", &second);
    // A retriable one: the commit is retried, not aborted.
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS],
    );
    let third = messages(&mut workload, 200);
    produce(&brokers, "coupon-events", &third);

    let total = first.len() + second.len() + third.len();
    let (summary, records) = finish(&brokers, total, &shutdown, run);
    assert!(
        summary.messages as usize > total,
        "transactions were aborted and their input decided again: {} decided for {total}",
        summary.messages
    );
    assert!(records >= total);
}

/// The flags of the stuck-client tests: a 6 s session, frequent commits
/// and snapshots, a 5 s drain bound.
const STUCK_FLAGS: &[&str] = &[
    "--session-timeout-ms",
    "6000",
    "--commit-interval-ms",
    "200",
    "--snapshot-interval-ms",
    "1000",
    "--drain-timeout-ms",
    "5000",
];
/// What the processor logs when it replaces a stuck member.
const REPLACED: &str = "Rejoining brought no assignment, not even an empty one; replacing this member with new Kafka clients.";

/// Starts the processor binary in `group` (logging under a directory named
/// after it, returned too), waits until it decides, then makes every answer
/// of the broker take 25 s, longer than the session (6 s) and than the
/// processor waits for a join, and waits until the processor replaced its
/// member.
fn stuck_processor(
    cluster: &MockCluster<'static, DefaultProducerContext>,
    brokers: &str,
    group: &str,
) -> (Processor, std::path::PathBuf) {
    let dir = support::logs::log_dir(group);
    let processor = Processor::start(brokers, group, &dir.join("processor.log"), STUCK_FLAGS);
    await_processing(brokers);
    cluster
        .broker_round_trip_time(1, Duration::from_secs(25))
        .unwrap();
    support::wait_for(
        "the stuck member to be replaced",
        Duration::from_secs(240),
        || !processor.events(REPLACED).is_empty(),
    );
    (processor, dir)
}

/// A group client that cannot complete a join: the member loses its
/// partitions, rejoins twice without getting any assignment, and is
/// replaced by a new member with new clients; once the broker answers
/// promptly again, the new member owns the partitions, restores them, and
/// every input gets its decision. The processor runs as a child process,
/// so its log shows the replacement.
#[test]
fn a_stuck_group_client_is_replaced_and_loses_nothing() {
    let (cluster, brokers) = cluster();
    let mut workload = workload(11);
    let first = messages(&mut workload, 300);
    produce(&brokers, "coupon-events", &first);
    let (mut processor, dir) = stuck_processor(&cluster, &brokers, "coupon-stream-stuck");
    cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
    let second = messages(&mut workload, 300);
    produce(&brokers, "coupon-events", &second);
    check_run(
        &brokers,
        PARTITIONS,
        first.len() + second.len(),
        Duration::from_secs(3),
        Duration::from_secs(180),
    );
    processor.terminate_within(SHUTDOWN_BOUND);
    let rejoins = processor
        .events("This instance owns no partition while the group does not own them all; rejoining the group.")
        .len();
    assert!(
        rejoins >= 2,
        "the member rejoined before it was replaced: {rejoins}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM just after a stuck member began to be replaced, with the broker
/// still answering 25 s late: the process exits 0 within
/// `--drain-timeout-ms` plus 5 s, as in every other state.
#[test]
fn sigterm_while_a_stuck_member_is_replaced_stops_in_bound() {
    let (cluster, brokers) = cluster();
    produce(&brokers, "coupon-events", &messages(&mut workload(12), 300));
    let (mut processor, dir) = stuck_processor(&cluster, &brokers, "coupon-stream-stuck-sigterm");
    let took = processor.terminate_within(SHUTDOWN_BOUND);
    eprintln!("exited {took:?} after SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state topic belongs to one consumer group. A processor of a second
/// group, pointed at the state topic where the first group left its
/// snapshots, stops with exit code 1 and names the group that wrote them,
/// rather than restoring them: their offsets are the first group's, and
/// restoring them would skip input the second group never decided. It
/// decides nothing.
#[test]
fn another_groups_snapshot_is_refused_not_restored() {
    let (_cluster, brokers) = cluster();
    let input = messages(&mut workload(13), 200);
    produce(&brokers, "coupon-events", &input);
    let dir = support::logs::log_dir("coupon-stream-state-owner");
    let mut owner = Processor::start(
        &brokers,
        "coupon-stream-state-owner",
        &dir.join("owner.log"),
        &[],
    );
    let decided = check_run(
        &brokers,
        PARTITIONS,
        input.len(),
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    // Shutdown snapshots every partition it hands over (the refusal
    // below can only come from one of those snapshots).
    owner.terminate_within(Duration::from_secs(20));
    let mut other = Processor::start(
        &brokers,
        "coupon-stream-state-other",
        &dir.join("other.log"),
        &[],
    );
    let (status, _) = other
        .wait_exit(Duration::from_secs(120))
        .unwrap_or_else(|| panic!("still running; log: {}", other.log.display()));
    assert_eq!(status.code(), Some(1), "log: {}", other.log.display());
    let log = other.log_text();
    assert!(
        log.contains(r#"of consumer group \"coupon-stream-state-owner\", not of this processor's group \"coupon-stream-state-other\""#),
        "the refusal names both groups; log: {}",
        other.log.display()
    );
    let after = read_all(
        &brokers,
        "coupon-decisions",
        PARTITIONS,
        decided.records + 1,
        Duration::from_secs(5),
    );
    assert_eq!(
        after.len(),
        decided.records,
        "the second group decided nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shutdown promise for the stuck-client tests' flags: the drain
/// bound (5 s) plus 5 s.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn exactly_once(config: KafkaConfig, transactional_id: &str) -> KafkaConfig {
    // The processor's log, when asked for (RUST_LOG=info cargo test ...).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    KafkaConfig {
        guarantee: Guarantee::ExactlyOnce,
        transactional_id: transactional_id.to_owned(),
        commit_interval_ms: Guarantee::ExactlyOnce.commit_interval_ms_default(),
        ..config
    }
}

fn mock_config(brokers: &str) -> KafkaConfig {
    KafkaConfig {
        group_id: "coupon-stream-mock".into(),
        // Small batches and frequent commits and snapshots: the mock
        // cluster is slow, and the tests want many of each.
        batch_messages_max: 100,
        commit_interval_ms: 200,
        snapshot_interval_ms: 1_000,
        restore_timeout_ms: 60_000,
        ..KafkaConfig::new(brokers, Guarantee::AtLeastOnce)
    }
}

/// Waits for a decision per input message, stops the processor, and checks
/// every decision against the core's recomputation (repeats included).
/// Returns the run's summary and the number of decision records read.
fn finish(
    brokers: &str,
    total: usize,
    shutdown: &AtomicBool,
    run: Run,
) -> (processor::RunSummary, usize) {
    let checked = check_run(
        brokers,
        PARTITIONS,
        total,
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    shutdown.store(true, Ordering::Relaxed);
    let summary = run.join().unwrap().expect("processor ends cleanly");
    (summary, checked.records)
}
