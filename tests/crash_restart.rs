//! kill -9 and an immediate restart, as Kubernetes does, five times under
//! load, at moments spread over the heartbeat interval (whether Tansu 0.6
//! completes a generation with an empty assignment depends on where the
//! kill falls relative to the last heartbeat); then a clean run. Every
//! input offset has a decision equal to an uninterrupted recomputation,
//! and no restarted instance goes without partitions longer than the
//! session timeout, plus its restore, plus 5 s.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coupon_stream_core::workload::Profile;
use support::kafka::produce_with;
use support::lifecycle::Processor;
use support::logs::log_dir;
use support::messages::{Messages, keyed, workload};
use support::recompute::check_run;
use support::{Tansu, wait_for};

const PARTITIONS: i32 = 8;
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// librdkafka's heartbeat interval as the processor sets it.
const HEARTBEAT: Duration = Duration::from_secs(2);
const KILLS: u32 = 5;

fn generated(events: usize) -> Messages {
    keyed(&mut workload(Profile::FlashSale, 60, 20_000, 12), events)
}

/// Produces `messages` in slices with a pause between them, on a thread,
/// one record per batch (Tansu 0.6 skips the rest of a batch when a
/// consumer resumes inside it; tests/durability.rs says more).
fn produce_slowly(
    brokers: String,
    messages: Messages,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let handle = std::thread::spawn(move || {
        for chunk in messages.chunks(40) {
            produce_with(
                &brokers,
                "coupon-events",
                &chunk.to_vec(),
                &[("batch.num.messages", "1")],
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        flag.store(true, Ordering::Relaxed);
    });
    (done, handle)
}

/// How long `run` went without partitions: from its start until every
/// input partition was active, and the bound for it (session timeout +
/// its slowest restore + 5 s).
fn recovery(run: &Processor) -> Option<(Duration, Duration)> {
    let mut active: Vec<_> = run
        .events("Partition active.")
        .iter()
        .map(|e| e.ts_ms)
        .collect();
    active.sort();
    let last = *active.get(PARTITIONS as usize - 1)?;
    let took = Duration::from_millis(u64::try_from(last - run.started_ms).ok()?);
    let restore = run
        .events("Partition state restored.")
        .iter()
        .filter_map(|e| e.fields["seconds"].as_f64())
        .fold(0.0, f64::max);
    Some((
        took,
        SESSION_TIMEOUT + Duration::from_secs_f64(restore) + Duration::from_secs(5),
    ))
}

#[test]
fn kill_9_and_immediate_restart_loses_nothing_and_never_parks() {
    let tansu = Tansu::with_topics(PARTITIONS);
    let brokers = tansu.brokers();
    let dir = log_dir("crash-restart");
    let session = SESSION_TIMEOUT.as_millis().to_string();
    let flags = [
        "--session-timeout-ms",
        &session,
        "--snapshot-interval-ms",
        "1000",
        "--commit-interval-ms",
        "200",
    ];
    let messages = generated(6_000);
    let total = messages.len();
    let (produced, producer) = produce_slowly(brokers.clone(), messages);

    let mut recoveries = Vec::new();
    let mut rejoins = 0;
    for i in 0..KILLS {
        let run = Processor::start(&brokers, "crash", &dir.join(format!("run-{i}.log")), &flags);
        // Bounded well beyond the promise; the promise is checked below.
        wait_for("every partition active", Duration::from_secs(120), || {
            recovery(&run).is_some()
        });
        let (took, bound) = recovery(&run).unwrap();
        rejoins += run.log_text().matches("rejoining the group").count();
        eprintln!(
            "run {i}: all {PARTITIONS} partitions active {took:?} after start (bound {bound:?})"
        );
        assert!(
            took <= bound,
            "run {i} owned nothing for {took:?} (bound {bound:?}): {}",
            run.log_text()
        );
        recoveries.push(took);
        // The kill falls at a different phase of the heartbeat each time.
        std::thread::sleep(Duration::from_secs(1) + HEARTBEAT * i / KILLS);
        run.kill();
    }

    let mut last = Processor::start(&brokers, "crash", &dir.join("clean.log"), &flags);
    wait_for("the load to end", Duration::from_secs(300), || {
        produced.load(Ordering::Relaxed)
    });
    producer.join().unwrap();
    check_run(
        &brokers,
        PARTITIONS,
        total,
        Duration::from_secs(5),
        Duration::from_secs(240),
    );
    let (took, bound) = recovery(&last).expect("the clean run owns every partition");
    assert!(took <= bound, "clean run: {took:?} > {bound:?}");
    last.terminate_within(Duration::from_secs(40));
    eprintln!(
        "recoveries after kill -9: {:?}; clean run {took:?}; rejoins after empty assignments: {rejoins}",
        recoveries[1..].to_vec()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
