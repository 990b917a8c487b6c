//! Restore time at scale, against a real broker (Tansu): a partition state
//! with 10 million issued coupons is snapshotted into the state topic, then
//! read back and decoded as a newly assigned partition would be:
//!
//! ```sh
//! cargo bench --bench restore_time
//! ```
//!
//! The read is measured two ways, alternating in one run: as a restore
//! thread reads now (one long-lived reader that asks for the watermarks and
//! assigns an explicit offset), and as restores read before issue 12 (a new
//! consumer per partition, assigned at the beginning before it knows the
//! leader, closed afterwards). `RESTORE_COUPONS`, `RESTORE_USERS` and
//! `RESTORE_RUNS` (3) resize it. Without `--bench` (as `cargo test
//! --all-targets` runs it) the state has 20,000 coupons, one run, and the
//! restored state must still equal the saved one.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::reader::PartitionReader;
use coupon_stream::kafka::state_store::{self, SnapshotStore, StatePartition};
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
    let reader = PartitionReader::new(
        &config.brokers,
        "restore-time-reader",
        &config.properties,
        Default::default(),
    )
    .unwrap();
    let runs = env("RESTORE_RUNS", if full { 3 } else { 1 });
    let (mut now_reads, mut before_reads, mut decodes) = (Vec::new(), Vec::new(), Vec::new());
    let mut manifest = None;
    for _ in 0..runs {
        let t = Instant::now();
        let at = StatePartition {
            topic: "coupon-state",
            partition: 0,
            group: &config.group_id,
        };
        let (m, loaded) = state_store::load(&reader, at, deadline, &|| false)
            .unwrap()
            .expect("a snapshot");
        now_reads.push(t.elapsed());
        assert_eq!(loaded, bytes);
        let t = Instant::now();
        let before = load_as_before(&config.brokers, &config.group_id);
        before_reads.push(t.elapsed());
        assert_eq!(before, bytes);
        let t = Instant::now();
        let restored = snapshot::decode(&loaded, CoreConfig::default()).unwrap();
        decodes.push(t.elapsed());
        assert_eq!(restored.stats().coupons, stats.coupons);
        manifest = Some(m);
    }
    let manifest = manifest.expect("at least one run");
    assert_eq!(manifest.next_offset, 1_000_000);
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (read, read_before, decode) = (
        median(&mut now_reads),
        median(&mut before_reads),
        median(&mut decodes),
    );
    println!(
        "{} coupons, {} users: snapshot {:.1} MiB in {} chunks; encode {encode:.2?}, write {write:.2?}",
        stats.coupons,
        stats.users,
        bytes.len() as f64 / f64::from(1 << 20),
        manifest.chunks,
    );
    println!(
        "restore (median of {runs}): read {read:.2?} + decode {decode:.2?} = {:.2?}; read as before issue 12 {read_before:.2?} (+ decode = {:.2?}); reads now {now_reads:.2?}, before {before_reads:.2?}",
        read + decode,
        read_before + decode,
    );
}

/// The snapshot read as restores did before issue 12: a new consumer (in
/// a group) per partition, assigned at the beginning before it knows the
/// leader, polled until the end of the partition, then dropped.
fn load_as_before(brokers: &str, group: &str) -> Vec<u8> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{group}-state-restore"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("coupon-state", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut assembler = state_store::Assembler::new(0);
    loop {
        match consumer.poll(std::time::Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(0))) => break,
            Some(Err(e)) => panic!("{e}"),
            Some(Ok(m)) => assembler.record(m.key(), m.payload()),
        }
    }
    drop(consumer);
    assembler.finish().unwrap().expect("a snapshot").1
}
