//! Network faults between the processor and the broker (Tansu behind a
//! fault-injecting proxy on loopback): latency on every forwarded chunk,
//! connection resets in the middle of a stream, and a black hole of
//! several seconds. Decisions stay exact (one per input offset, equal to
//! an uninterrupted recomputation) and the processor recovers when each
//! fault ends, without a restart, logging the client errors at most once
//! per 10 s from each place that reports them. A stop while the producer's
//! queue is full (a slow broker) loses no decision across the restart; a
//! stop during an outage writes the idle restore readers' connection
//! failures once, not one line per reader and broker.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};
use support::kafka::{create_topic, produce_with, read_covering};
use support::lifecycle::Processor;
use support::logs::{LogLine, log_dir, log_lines};
use support::messages::{keyed, workload};
use support::proxy::ProxiedTansu;
use support::recompute::{check_run, decision_source};
use support::tansu::Tansu;
use support::wait_for;

const PARTITIONS: i32 = 4;

fn covered(brokers: &str, count: usize, deadline: Duration) -> usize {
    let decisions = read_covering(
        brokers,
        "coupon-decisions",
        PARTITIONS,
        count,
        Duration::from_secs(2),
        deadline,
    );
    decisions
        .iter()
        .map(decision_source)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[test]
fn latency_resets_and_a_black_hole_change_no_decision() {
    let tansu = ProxiedTansu::start();
    let brokers = tansu.brokers();
    for topic in support::TOPICS {
        create_topic(&brokers, topic, PARTITIONS);
    }
    let mut traffic = workload(Profile::Steady, 30, 3_000, 5);
    let mut batch = |n: usize| keyed(&mut traffic, n);
    let one_per_batch = [("batch.num.messages", "1")];
    let dir = log_dir("proxy-faults");
    let mut run = Processor::start(
        &brokers,
        "faults",
        &dir.join("faults.log"),
        &[
            "--commit-interval-ms",
            "200",
            "--snapshot-interval-ms",
            "1000",
            "--drain-timeout-ms",
            "5000",
        ],
    );
    wait_for("ready", Duration::from_secs(60), || run.is_ready());
    let mut total = 0;

    // Latency: 30 ms on every forwarded chunk, both ways.
    tansu.proxy.set_latency(Duration::from_millis(30));
    let events = batch(300);
    total += events.len();
    produce_with(&brokers, "coupon-events", &events, &one_per_batch);
    assert_eq!(
        covered(&brokers, total, Duration::from_secs(120)),
        total,
        "under latency"
    );
    tansu.proxy.set_latency(Duration::ZERO);

    // Connection resets while a stream flows.
    let events = batch(600);
    total += events.len();
    let producer = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            for chunk in events.chunks(50) {
                produce_with(
                    &brokers,
                    "coupon-events",
                    &chunk.to_vec(),
                    &[("batch.num.messages", "1")],
                );
            }
        })
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let reset = tansu.proxy.reset_connections();
        eprintln!("reset {reset} connections");
    }
    producer.join().unwrap();
    assert_eq!(
        covered(&brokers, total, Duration::from_secs(120)),
        total,
        "after resets"
    );

    // A black hole: input waiting, nothing crosses for 8 s, then it heals.
    let events = batch(300);
    total += events.len();
    produce_with(&brokers, "coupon-events", &events, &one_per_batch);
    tansu.proxy.black_hole(Duration::from_secs(8));
    wait_for("the black hole to end", Duration::from_secs(20), || {
        !tansu.proxy.black_holed()
    });
    assert_eq!(
        covered(&brokers, total, Duration::from_secs(120)),
        total,
        "after the black hole"
    );
    wait_for("ready again", Duration::from_secs(60), || run.is_ready());

    // Exact: every decision equals the recomputation.
    check_run(
        &brokers,
        PARTITIONS,
        total,
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    assert!(run.events("Processor started.").len() == 1, "no restart");
    // Client errors librdkafka retries itself are logged at most once per
    // 10 s by each place that logs them (a client's callbacks, the
    // consumer's queue, the feed), with how many were left out: the resets
    // and the black hole report several a second. (The restore threads'
    // readers log "Reader error" each on its own, so two may log together.)
    // The restore readers' own librdkafka lines of warning level or worse
    // (connection failures), queued while the readers are idle and written
    // at shutdown, are throttled in all: the stop comes first.
    run.terminate_within(Duration::from_secs(10));
    let mut by_place: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for line in log_lines(&dir.join("faults.log")) {
        let reader_warning = is_readers_librdkafka_warning(&line);
        if line.message == "Consumer error; librdkafka retries."
            || line.message == "Producer error; librdkafka retries."
        {
            by_place
                .entry((line.target, line.message))
                .or_default()
                .push(line.ts_ms);
        } else if reader_warning {
            by_place
                .entry(("reader".into(), "librdkafka's own lines".into()))
                .or_default()
                .push(line.ts_ms);
        }
    }
    eprintln!("client error lines (ms since the Unix epoch): {by_place:?}");
    for ((target, message), times) in &by_place {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 9_950,
                "{message:?} from {target} twice within {} ms",
                pair[1] - pair[0]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_while_the_producer_queue_is_full_loses_no_decision() {
    let tansu = ProxiedTansu::start();
    let brokers = tansu.brokers();
    for topic in support::TOPICS {
        create_topic(&brokers, topic, 1);
    }
    // No duplicates or invalid values in the input: every event changes
    // the state, so one decided twice is seen (the second time as a
    // duplicate).
    let mut traffic = Workload::new(WorkloadConfig {
        profile: Profile::Steady,
        sellers: 5,
        users: 200,
        seed: 11,
        duplicate_fraction: 0.0,
        invalid_fraction: 0.0,
    });
    let events = keyed(&mut traffic, 400);
    let total = events.len();
    // One record per batch: Tansu 0.6 skips the rest of a batch when a
    // fetch starts inside it, and the second run starts mid-input.
    produce_with(
        &brokers,
        "coupon-events",
        &events,
        &[("batch.num.messages", "1")],
    );
    let dir = log_dir("proxy-full-queue");
    // A producer queue of 5 records behind a broker 300 ms away: the input
    // is fetched in large chunks while the decisions leave 5 at a time
    // (400 take 48 s or more), so the processor is waiting on a full queue
    // when it is told to stop.
    let flags = [
        "--commit-interval-ms",
        "200",
        "--drain-timeout-ms",
        "30000",
        "-X",
        "queue.buffering.max.messages=5",
    ];
    tansu.proxy.set_latency(Duration::from_millis(300));
    let mut first = Processor::start(&brokers, "full-queue", &dir.join("first.log"), &flags);
    wait_for("the partition active", Duration::from_secs(120), || {
        !first.events("Partition active.").is_empty()
    });
    // Placed in the 48 s it takes; the log line below checks the stop
    // found the queue full.
    std::thread::sleep(Duration::from_secs(5));
    first.terminate_within(Duration::from_secs(90));
    assert_eq!(
        first
            .events("Stopped while the producer queue was full.")
            .len(),
        1,
        "stopped while waiting on the full queue; log: {}",
        first.log.display()
    );
    tansu.proxy.set_latency(Duration::ZERO);

    // The next run restores what the first made durable and decides the
    // rest: every input offset has its decision, equal to a recomputation
    // (a decision applied to the state but never enqueued must not be in
    // a snapshot: the next run would find its event a duplicate).
    let mut second = Processor::start(&brokers, "full-queue", &dir.join("second.log"), &flags);
    check_run(
        &brokers,
        1,
        total,
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    second.terminate_within(Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_during_an_outage_logs_the_readers_failures_at_most_once() {
    let tansu = Tansu::with_topics(2);
    let brokers = tansu.brokers();
    let dir = log_dir("proxy-outage");
    let mut run = Processor::start(
        &brokers,
        "outage",
        &dir.join("outage.log"),
        &["--drain-timeout-ms", "2000"],
    );
    wait_for("ready", Duration::from_secs(60), || run.is_ready());
    // The broker goes away for good; the outage lasts while the restore
    // readers, idle since the start, fail to reconnect (their librdkafka
    // lines wait in their queues), then the processor is stopped.
    drop(tansu);
    std::thread::sleep(Duration::from_secs(5));
    run.terminate_within(Duration::from_secs(30));
    let lines: Vec<i64> = log_lines(&dir.join("outage.log"))
        .into_iter()
        .filter(is_readers_librdkafka_warning)
        .map(|l| l.ts_ms)
        .collect();
    eprintln!("the readers' librdkafka warnings and errors at (ms): {lines:?}");
    assert!(
        !lines.is_empty(),
        "no reader line to check: the outage was not seen; log: {}",
        dir.display()
    );
    for pair in lines.windows(2) {
        assert!(
            pair[1] - pair[0] >= 9_950,
            "two reader lines within {} ms; log: {}",
            pair[1] - pair[0],
            dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restore reader's own librdkafka line (it has a `fac`) of warning level
/// or worse: the lines the pool's shared limit throttles.
fn is_readers_librdkafka_warning(line: &LogLine) -> bool {
    line.fields["client"] == "reader"
        && line.fields["fac"].is_string()
        && matches!(line.level.as_str(), "WARN" | "ERROR")
}
