//! The processor never goes blind (against Tansu behind a fault-injecting
//! proxy): `/metrics`, `/healthz` and `/readyz` answer within 100 ms while
//! a large partition state restores and while the broker is away; a state
//! query for a partition still restoring answers 503 `restoring` at once;
//! and SIGTERM ends the process within `--drain-timeout-ms` plus 5 s both
//! during a restore and during a broker outage.

mod support;

use std::time::{Duration, Instant};

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::state_store::SnapshotStore;
use coupon_stream_core::partitioner::partition_for;
use coupon_stream_core::{snapshot, synthetic};
use support::lifecycle::{Processor, Response, timed_get};
use support::logs::log_dir;
use support::proxy::ProxiedTansu;
use support::wait_for;

const PARTITIONS: i32 = 8;
/// What the issue promises for the HTTP endpoint, in every state.
const ANSWER_BOUND: Duration = Duration::from_millis(100);
const DRAIN_MS: u64 = 2_000;
/// `--drain-timeout-ms` plus the 5 s the shutdown may add.
const SHUTDOWN_BOUND: Duration = Duration::from_millis(DRAIN_MS + 5_000);

/// The consumer group of this file's processors, whose snapshot
/// [`large_snapshot`] writes.
const GROUP: &str = "blind";

/// Writes a synthetic partition state of `coupons` coupons as partition
/// 0's snapshot, as group [`GROUP`]'s processor would.
fn large_snapshot(brokers: &str, coupons: u64) -> usize {
    let core = synthetic::build(coupons, coupons / 5);
    let mut bytes = Vec::new();
    snapshot::encode(&core, &mut bytes);
    let config = KafkaConfig {
        group_id: GROUP.to_owned(),
        ..KafkaConfig::new(brokers, Guarantee::AtLeastOnce)
    };
    let store = SnapshotStore::new(&config).unwrap();
    store
        .save(
            0,
            0,
            &bytes,
            None,
            Instant::now() + Duration::from_secs(120),
        )
        .unwrap();
    bytes.len()
}

/// A seller whose events go to `partition`.
fn seller_on(partition: u32) -> String {
    (0..)
        .map(|i| format!("s{i}"))
        .find(|s| partition_for(s.as_bytes(), PARTITIONS as u32) == partition)
        .unwrap()
}

/// GETs each of `paths` once; every answer must come within
/// [`ANSWER_BOUND`]. Returns the answers and the slowest time.
fn probe(run: &Processor, paths: &[&str]) -> (Vec<Response>, Duration) {
    let mut slowest = Duration::ZERO;
    let answers = paths
        .iter()
        .map(|path| {
            // The client's own limit is generous, so a slow answer shows as
            // a measured time rather than as no answer.
            let answer = timed_get(run.metrics_port, path, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{path} did not answer within 5 s"));
            assert!(
                answer.took <= ANSWER_BOUND,
                "{path} took {:?} (bound {ANSWER_BOUND:?})",
                answer.took
            );
            slowest = slowest.max(answer.took);
            answer
        })
        .collect();
    (answers, slowest)
}

const ENDPOINTS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

#[test]
fn answers_at_once_while_restoring_and_stops_in_bound_during_a_restore() {
    let tansu = ProxiedTansu::start();
    let brokers = tansu.brokers();
    support::kafka::create_processor_topics(&brokers, PARTITIONS);
    let bytes = large_snapshot(&brokers, 300_000);
    let dir = log_dir("blind-restore");
    let query = format!("/v1/sellers/{}/campaigns/c0", seller_on(0));
    let flags = [
        "--drain-timeout-ms",
        &DRAIN_MS.to_string(),
        "--restore-threads",
        "2",
    ];

    // Slow the broker down so the restore lasts: every forwarded chunk
    // (at most 64 KiB) waits 100 ms.
    tansu.proxy.set_latency(Duration::from_millis(100));
    let mut run = Processor::start(&brokers, GROUP, &dir.join("restore.log"), &flags);
    wait_for("partition 0 to restore", Duration::from_secs(60), || {
        run.get(&query, Duration::from_secs(5))
            .is_some_and(|r| r.body.contains("restoring"))
    });
    // Probe every 20 ms for 2 s while partition 0 restores: its state
    // query answers 503 `restoring` at once, and so do the endpoints.
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(2) {
        let (answers, took) = probe(&run, &[&query, ENDPOINTS[0], ENDPOINTS[1], ENDPOINTS[2]]);
        assert_eq!(answers[0].status, 503, "{}", answers[0].body);
        assert!(
            answers[0].body.contains("\"error\":\"restoring\""),
            "{}",
            answers[0].body
        );
        assert!(
            answers[3].body.contains("restoring partition state"),
            "{}",
            answers[3].body
        );
        probes += 1;
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{probes} probes while restoring a {bytes}-byte snapshot, slowest {slowest:?}");
    assert!(probes >= 20, "{probes} probes only");
    // SIGTERM in the middle of it.
    let still = run.get(&query, Duration::from_secs(5)).unwrap();
    assert!(
        still.body.contains("restoring"),
        "the restore ended before SIGTERM"
    );
    let took = run.terminate_within(SHUTDOWN_BOUND);
    eprintln!("SIGTERM during the restore: exited after {took:?}");

    // Without the latency the same restore finishes, and the partition is
    // queried from live state (which holds no campaign c0 of this seller).
    tansu.proxy.set_latency(Duration::ZERO);
    let mut run = Processor::start(&brokers, GROUP, &dir.join("restored.log"), &flags);
    wait_for("ready", Duration::from_secs(120), || run.is_ready());
    let answer = timed_get(run.metrics_port, &query, Duration::from_secs(5)).unwrap();
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        answer.body.contains("\"error\":\"not_found\""),
        "{}",
        answer.body
    );
    let restored = run.events("Partition state restored.");
    assert!(
        restored
            .iter()
            .any(|e| e.fields["partition"] == 0 && e.fields["coupons"] == 300_000),
        "partition 0 restored its 300,000 coupons"
    );
    run.terminate_within(SHUTDOWN_BOUND);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn answers_at_once_while_the_broker_is_away_and_stops_in_bound() {
    let tansu = ProxiedTansu::start();
    let brokers = tansu.brokers();
    support::kafka::create_processor_topics(&brokers, PARTITIONS);
    let dir = log_dir("blind-outage");
    let events: support::messages::Messages = (0..200)
        .map(|i| {
            let seller = format!("s{}", i % 16);
            let value = format!(
                r#"{{"type":"seller","event_id":"e{i}","ts":{},"seller_id":"{seller}","daily_issue_limit":100}}"#,
                1_700_000_000_000u64 + i
            );
            (Some(seller.into_bytes()), value.into_bytes())
        })
        .collect();
    support::kafka::produce(&brokers, "coupon-events", &events);
    let query = format!("/v1/sellers/{}/campaigns/c0", seller_on(3));
    let mut run = Processor::start(
        &brokers,
        GROUP,
        &dir.join("outage.log"),
        &[
            "--drain-timeout-ms",
            &DRAIN_MS.to_string(),
            "--commit-interval-ms",
            "200",
        ],
    );
    wait_for("ready", Duration::from_secs(60), || run.is_ready());

    // The broker goes away: nothing crosses the proxy for 30 s.
    tansu.proxy.black_hole(Duration::from_secs(30));
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(4) {
        let (answers, took) = probe(&run, &[ENDPOINTS[0], ENDPOINTS[1], ENDPOINTS[2], &query]);
        assert_eq!(answers[0].status, 200);
        // Partition 3 is active: its state answers (no such campaign).
        assert_eq!(answers[3].status, 404, "{}", answers[3].body);
        probes += 1;
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{probes} probes during the outage, slowest {slowest:?}");
    assert!(probes >= 40, "{probes}");
    // SIGTERM while the broker is still away.
    let took = run.terminate_within(SHUTDOWN_BOUND);
    eprintln!("SIGTERM during the outage: exited after {took:?}");
    tansu.proxy.heal();
    let _ = std::fs::remove_dir_all(&dir);
}
