//! Durable state against a real broker (Tansu): the processor is killed
//! with SIGKILL at random moments while a generated stream flows, and
//! restarted each time; after a final clean run every input offset has a
//! decision, every repeated decision is identical, and all of them equal a
//! recomputation of each partition's input by one uninterrupted decision
//! core. Since the uninterrupted core never over-issues or double-redeems
//! (tests/invariants.rs), neither did the killed and restored processors.
//! A second test scales out and in (1 -> 2 -> 1 instances) under load with
//! the same checks.

mod support;

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coupon_stream::tools::embedded_broker::EmbeddedBroker;
use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};
use support::Tansu;

const PARTITIONS: i32 = 3;

fn generated(events: usize, seed: u64) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut workload = Workload::new(WorkloadConfig {
        profile: Profile::FlashSale,
        sellers: 60,
        users: 20_000,
        seed,
        ..WorkloadConfig::default()
    });
    let mut value = Vec::new();
    (0..events)
        .map(|_| {
            let seller = workload.next_into(&mut value);
            (
                Some(workload.seller_id(seller).as_bytes().to_vec()),
                value.clone(),
            )
        })
        .collect()
}

/// Starts a processor logging JSON at info level to `log`, with `extra`
/// flags (the guarantee).
/// A processor child process, killed when dropped, so a failed assertion
/// leaves no processor running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(brokers: &str, group: &str, log: &std::path::Path, extra: &[&str]) -> Running {
    let child = support::processor_command(brokers, group)
        .args([
            "--commit-interval-ms",
            "200",
            "--snapshot-interval-ms",
            "1000",
            "--metrics-addr",
            "127.0.0.1:0",
            "--session-timeout-ms",
            "6000",
            "--log-format",
            "json",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Running(child)
}

fn terminate(mut child: Running) {
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// Produces `messages` in slices of `slice` with a pause between them, on
/// a thread, so the stream flows while processors come and go.
fn produce_slowly(
    brokers: String,
    messages: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    slice: usize,
    pause: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let handle = std::thread::spawn(move || {
        for chunk in messages.chunks(slice) {
            // One record per batch: Tansu 0.6 answers a fetch from an
            // offset inside a record batch with the batches after it, so a
            // consumer resuming from a committed offset mid-batch silently
            // misses the rest of that batch (seen here: a replay from a
            // snapshot offset missed 42 records, and decisions after it
            // differed). Apache Kafka returns the batch holding the offset.
            support::produce_with(
                &brokers,
                "coupon-events",
                chunk,
                &[("batch.num.messages", "1")],
            );
            std::thread::sleep(pause);
        }
        flag.store(true, Ordering::Relaxed);
    });
    (done, handle)
}

/// Every input offset has a decision, repeats are identical, and all equal
/// the uninterrupted recomputation.
fn check(brokers: &str, total: usize) {
    let input = support::read_all(
        brokers,
        "coupon-events",
        PARTITIONS,
        total,
        Duration::from_secs(120),
    );
    assert_eq!(input.len(), total);
    let expected = support::expected_decisions(&input, PARTITIONS);
    let decisions = support::read_covering(
        brokers,
        "coupon-decisions",
        PARTITIONS,
        expected.len(),
        Duration::from_secs(8),
        Duration::from_secs(240),
    );
    let seen = support::check_decisions(&decisions, &expected);
    assert_eq!(seen.len(), expected.len(), "one decision per input offset");
}

/// Restores in the logs that started from a snapshot, and that replayed
/// input up to the committed offset.
fn restores(logs: &[std::path::PathBuf]) -> (usize, usize) {
    let (mut from_snapshot, mut replaying) = (0, 0);
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["fields"]["message"] != "Partition state restored." {
                continue;
            }
            if v["fields"]["snapshot_offset"]
                .as_str()
                .is_some_and(|s| s.starts_with("Some"))
            {
                from_snapshot += 1;
            }
            if v["fields"]["replayed"].as_u64().is_some_and(|n| n > 0) {
                replaying += 1;
            }
        }
    }
    (from_snapshot, replaying)
}

fn log_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("coupon-stream-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const EXACTLY_ONCE: &[&str] = &["--guarantee", "exactly-once"];

#[test]
fn sigkill_at_random_moments_loses_and_changes_nothing() {
    let tansu = Tansu::start();
    for topic in support::TOPICS {
        tansu.create_topic(topic, PARTITIONS);
    }
    let stream = Stream {
        events: 200_000,
        slice: 10_000,
        pause: Duration::from_millis(400),
    };
    sigkill_at_random_moments(&tansu.brokers(), &stream, &[], "coupon-stream-kill");
}

/// The same under exactly-once, with a `transactional.id` that survives
/// the restarts, so each restart fences its killed predecessor and aborts
/// its open transaction. On the embedded broker (Tansu in this process,
/// with the EndTxn route the `tansu` binary lacks). Tansu keeps aborted
/// records visible to `read_committed` readers, so the check sees them
/// too: they must equal the recomputation like every other decision.
#[test]
fn sigkill_at_random_moments_exactly_once() {
    let broker = embedded_broker();
    let stream = Stream {
        events: 200_000,
        slice: 10_000,
        pause: Duration::from_millis(400),
    };
    let args = [
        EXACTLY_ONCE,
        &["--transactional-id", "coupon-stream-kill-eos-0"],
    ]
    .concat();
    sigkill_at_random_moments(
        &broker.bootstrap_servers(),
        &stream,
        &args,
        "coupon-stream-kill-eos",
    );
}

/// A generated input stream, produced in slices with pauses.
struct Stream {
    events: usize,
    slice: usize,
    pause: Duration,
}

fn embedded_broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::start(2).unwrap();
    for topic in support::TOPICS {
        support::create_topic(&broker.bootstrap_servers(), topic, PARTITIONS);
    }
    broker
}

fn sigkill_at_random_moments(brokers: &str, stream: &Stream, extra: &[&str], group: &str) {
    let messages = generated(stream.events, 21);
    let total = messages.len();
    let (_, producer) = produce_slowly(brokers.to_owned(), messages, stream.slice, stream.pause);
    // A fixed-seed sequence of kill moments between 3 and 6 s of uptime
    // (joining the group takes about a second, snapshots come every second).
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let dir = log_dir(group);
    let mut logs = Vec::new();
    for run in 0..5 {
        logs.push(dir.join(format!("run-{run}.log")));
        let mut child = start(brokers, group, &logs[run], extra);
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let uptime = Duration::from_millis(3_000 + (seed >> 33) % 3_000);
        std::thread::sleep(uptime);
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        // Restart once the group has noticed the death (session timeout,
        // 6 s): Tansu 0.6's coordinator was seen to never complete a
        // rebalance when a new member joined while a killed one was still
        // in the group. Against Apache Kafka the restart can be immediate.
        std::thread::sleep(Duration::from_secs(7));
    }
    producer.join().unwrap();
    logs.push(dir.join("final.log"));
    let last = start(brokers, group, &logs[5], extra);
    check(brokers, total);
    terminate(last);
    // The checks above would pass vacuously if every run had decided the
    // whole input from scratch: the restarts must have used snapshots.
    let (from_snapshot, replaying) = restores(&logs);
    assert!(from_snapshot > 0, "no restart restored a snapshot");
    eprintln!(
        "restores from a snapshot: {from_snapshot}; with a replay to the committed offset: {replaying}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scale_out_and_in_under_load() {
    let tansu = Tansu::start();
    for topic in support::TOPICS {
        tansu.create_topic(topic, PARTITIONS);
    }
    let stream = Stream {
        events: 60_000,
        slice: 5_000,
        pause: Duration::from_millis(500),
    };
    scale_out_and_in(&tansu.brokers(), &stream, &[], "coupon-stream-scale");
}

/// The same under exactly-once, on the embedded broker (see above).
#[test]
fn scale_out_and_in_exactly_once() {
    let broker = embedded_broker();
    let stream = Stream {
        events: 60_000,
        slice: 5_000,
        pause: Duration::from_millis(500),
    };
    scale_out_and_in(
        &broker.bootstrap_servers(),
        &stream,
        EXACTLY_ONCE,
        "coupon-stream-scale-eos",
    );
}

fn scale_out_and_in(brokers: &str, stream: &Stream, extra: &[&str], group: &str) {
    let messages = generated(stream.events, 22);
    let total = messages.len();
    let (_, producer) = produce_slowly(brokers.to_owned(), messages, stream.slice, stream.pause);
    let dir = log_dir(group);
    let logs = [dir.join("a.log"), dir.join("b.log")];
    let a = start(brokers, group, &logs[0], extra);
    std::thread::sleep(Duration::from_secs(3));
    let b = start(brokers, group, &logs[1], extra);
    std::thread::sleep(Duration::from_secs(6));
    terminate(b);
    producer.join().unwrap();
    check(brokers, total);
    terminate(a);
    // Partitions moved to b and back to a, each time through a snapshot.
    let (from_snapshot, _) = restores(&logs);
    assert!(from_snapshot > 0, "no partition moved through a snapshot");
    let _ = std::fs::remove_dir_all(&dir);
}
