//! Input the broker does not deliver is reported, not silently decided
//! around. Tansu 0.6 answers a fetch from an offset inside a record batch
//! with the batches after it (a fault of that broker; Apache Kafka returns
//! the batch holding the offset), so a processor resuming from a committed
//! offset in the middle of a batch is never given the rest of that batch,
//! and its state misses those events. The processor counts the offsets it
//! passed over (`coupon_stream_input_offsets_skipped_total`) and warns;
//! this test checks the count against what it really did not decide,
//! whether or not the broker skips.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use coupon_stream_core::workload::Profile;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::kafka::{produce_with, read_all};
use support::lifecycle::Processor;
use support::logs::log_dir;
use support::messages::{keyed, workload};
use support::recompute::decision_source;
use support::{Tansu, wait_for};

const GROUP: &str = "input-gaps";
/// Events produced as one record batch, then in a batch of their own.
const FIRST: usize = 3_000;
const SECOND: usize = 100;
/// The group's committed offset: inside the first batch.
const COMMITTED: i64 = 1_000;

/// Commits `offset` for partition 0 of the input in `GROUP`, as a processor
/// that decided the events before it and was then killed leaves it.
fn commit(brokers: &str, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("coupon-events", 0, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
}

#[test]
fn offsets_the_broker_does_not_deliver_are_counted_and_reported() {
    let tansu = Tansu::with_topics(1);
    let brokers = tansu.brokers();
    let input = keyed(&mut workload(Profile::Steady, 20, 2_000, 4), FIRST + SECOND);
    // One batch: nothing is sent before the whole first part is queued.
    let one_batch = [
        ("linger.ms", "2000"),
        ("batch.num.messages", "100000"),
        ("batch.size", "100000000"),
    ];
    produce_with(
        &brokers,
        "coupon-events",
        &input[..FIRST].to_vec(),
        &one_batch,
    );
    produce_with(&brokers, "coupon-events", &input[FIRST..].to_vec(), &[]);
    commit(&brokers, COMMITTED);

    let dir = log_dir("input-gaps");
    let run = Processor::start(
        &brokers,
        GROUP,
        &dir.join("processor.log"),
        &["--commit-interval-ms", "200"],
    );
    let last = (FIRST + SECOND) as i64 - 1;
    let mut decided = HashSet::new();
    wait_for(
        "the decision of the last input record",
        Duration::from_secs(120),
        || {
            decided = read_all(
                &brokers,
                "coupon-decisions",
                1,
                usize::MAX,
                Duration::from_secs(2),
            )
            .iter()
            .map(|d| decision_source(d).1)
            .collect();
            decided.contains(&last)
        },
    );
    // Every record from the committed offset on that has no decision was
    // passed over (decisions come in offset order, the last one is here).
    let not_decided = (COMMITTED..=last).filter(|o| !decided.contains(o)).count();
    let counted = run
        .metric("coupon_stream_input_offsets_skipped_total")
        .expect("metrics answer");
    assert_eq!(counted, not_decided as f64, "{}", run.log_text());
    let warned = run
        .log_text()
        .contains("Input offsets passed over without a record");
    assert_eq!(warned, not_decided > 0, "{}", run.log_text());
    eprintln!("offsets the broker did not deliver: {not_decided}");
    drop(run);
    let _ = std::fs::remove_dir_all(dir);
}
