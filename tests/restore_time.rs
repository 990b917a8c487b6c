//! Restore time at scale, against a real broker (Tansu): a partition state
//! with 10 million issued coupons is snapshotted into the state topic, then
//! read back and decoded as a newly assigned partition would be. A
//! measurement, not a timed test (ignored by default):
//!
//! ```sh
//! cargo test --release --test restore_time -- --ignored --nocapture
//! ```
//!
//! `RESTORE_COUPONS` and `RESTORE_USERS` resize the state.

mod support;

use std::time::Instant;

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::reader::PartitionReader;
use coupon_stream::kafka::state_store::{self, SnapshotStore};
use coupon_stream::kafka::topics::StateTopicPolicy;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::{snapshot, synthetic};
use support::Tansu;

#[test]
#[ignore = "builds 10 million coupons; a measurement, run in release"]
fn restore_ten_million_coupons() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let coupons = env("RESTORE_COUPONS", 10_000_000);
    let users = env("RESTORE_USERS", 2_000_000);
    let tansu = Tansu::start();
    tansu.create_topic("coupon-state", 1);
    let config = KafkaConfig {
        brokers: tansu.brokers(),
        group_id: "restore-time".into(),
        input_topic: "coupon-events".into(),
        output_topic: "coupon-decisions".into(),
        dlq_topic: "coupon-events-dlq".into(),
        verify_partitioning: true,
        properties: vec![],
        batch_messages_max: 10_000,
        commit_interval_ms: 1_000,
        drain_timeout_ms: 30_000,
        state_topic: "coupon-state".into(),
        snapshot_interval_ms: 60_000,
        restore_timeout_ms: 300_000,
        restore_threads: 1,
        state_topic_policy: StateTopicPolicy::default(),
        topic_wait_timeout_ms: 60_000,
        session_timeout_ms: 10_000,
        guarantee: Guarantee::AtLeastOnce,
        transactional_id: String::new(),
        transaction_timeout_ms: 10_000,
    };

    let core = synthetic::build(coupons, users);
    let stats = core.stats();
    let t = Instant::now();
    let mut bytes = Vec::new();
    snapshot::encode(&core, &mut bytes);
    let encode = t.elapsed();
    drop(core);
    let store = SnapshotStore::new(&config).unwrap();
    let t = Instant::now();
    let deadline = t + std::time::Duration::from_secs(300);
    store.save(0, 1_000_000, &bytes, None, deadline).unwrap();
    let write = t.elapsed();

    // As a restore thread reads it: one long-lived reader.
    let reader =
        PartitionReader::new(&config.brokers, "restore-time-reader", &config.properties).unwrap();
    let t = Instant::now();
    let (manifest, loaded) = state_store::load(&reader, "coupon-state", 0, deadline, &|| false)
        .unwrap()
        .expect("a snapshot");
    let read = t.elapsed();
    let t = Instant::now();
    let restored = snapshot::decode(&loaded, CoreConfig::default()).unwrap();
    let decode = t.elapsed();
    assert_eq!(manifest.next_offset, 1_000_000);
    assert_eq!(loaded, bytes);
    assert_eq!(restored.stats().coupons, stats.coupons);
    println!(
        "{} coupons, {} users: snapshot {:.1} MiB in {} chunks; encode {encode:.2?}, write {write:.2?}; restore: read {read:.2?} + decode {decode:.2?} = {:.2?}",
        stats.coupons,
        stats.users,
        bytes.len() as f64 / f64::from(1 << 20),
        manifest.chunks,
        read + decode,
    );
}
