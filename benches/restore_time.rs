//! Restore time at scale, against a real broker (Tansu): a partition state
//! with 10 million issued coupons is snapshotted into the state topic, then
//! read back and decoded as a newly assigned partition would be:
//!
//! ```sh
//! cargo bench --bench restore_time
//! ```
//!
//! `RESTORE_COUPONS` and `RESTORE_USERS` resize the state. Without
//! `--bench` (as `cargo test --all-targets` runs it) the state has 20,000
//! coupons, and the restored state must still equal the saved one.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::reader::PartitionReader;
use coupon_stream::kafka::state_store::{self, SnapshotStore};
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::{snapshot, synthetic};
use support::Tansu;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` nothing.
    let full = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let coupons = env("RESTORE_COUPONS", if full { 10_000_000 } else { 20_000 });
    let users = env("RESTORE_USERS", if full { 2_000_000 } else { 3_000 });
    let tansu = Tansu::start();
    tansu.create_topic("coupon-state", 1);
    let config = KafkaConfig {
        group_id: "restore-time".into(),
        ..KafkaConfig::new(tansu.brokers(), Guarantee::AtLeastOnce)
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
