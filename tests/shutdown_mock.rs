//! SIGTERM (the shutdown flag the signal handler sets) in the states
//! librdkafka's mock cluster can hold the processor in: deciding a stream
//! that keeps arriving, and, under exactly-once, with the broker gone while
//! the transaction's commit is being retried. Each run ends within
//! `--drain-timeout-ms` plus 5 s, and nothing is lost: a second instance
//! decides the rest, every decision equal to the recomputation.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coupon_stream::kafka::config::{Guarantee, KafkaConfig};
use coupon_stream::kafka::processor::{Processor, ProcessorError, RunSummary};
use coupon_stream::ops::health::{Health, NotReady};
use coupon_stream::ops::telemetry::Progress;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::workload::Profile;
use rdkafka::mocking::MockCluster;
use support::kafka::produce;
use support::messages::{keyed, workload};
use support::recompute::check_run;
use support::wait_for;

const PARTITIONS: i32 = 2;
const DRAIN_MS: u64 = 2_000;
/// `--drain-timeout-ms` plus the 5 s the shutdown may add.
const BOUND: Duration = Duration::from_millis(DRAIN_MS + 5_000);

fn config(brokers: &str, guarantee: Guarantee, id: &str) -> KafkaConfig {
    KafkaConfig {
        group_id: format!("shutdown-{id}"),
        batch_messages_max: 100,
        drain_timeout_ms: DRAIN_MS,
        snapshot_interval_ms: 1_000,
        transactional_id: format!("shutdown-{id}"),
        ..KafkaConfig::new(brokers, guarantee)
    }
}

struct Started {
    health: Arc<Health>,
    progress: Arc<Progress>,
    shutdown: Arc<AtomicBool>,
    run: JoinHandle<Result<RunSummary, ProcessorError>>,
}

fn start(config: KafkaConfig) -> Started {
    // The processor's log, when asked for (RUST_LOG=info cargo test ...).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let health = Arc::new(Health::default());
    let processor = Processor::new(config, CoreConfig::default(), Arc::clone(&health));
    let progress = processor.progress();
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let run = std::thread::spawn(move || processor.run(&flag));
    Started {
        health,
        progress,
        shutdown,
        run,
    }
}

impl Started {
    /// Sets the shutdown flag and waits for the run to end, at most
    /// [`BOUND`]; returns its result and how long it took.
    fn stop(self) -> (Result<RunSummary, ProcessorError>, Duration) {
        let asked = Instant::now();
        self.shutdown.store(true, Ordering::Relaxed);
        let took = wait_for("the processor to stop", BOUND, || self.run.is_finished());
        (
            self.run.join().expect("no panic"),
            took.max(asked.elapsed()),
        )
    }
}

fn cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    for topic in support::TOPICS.into_iter().chain(["coupon-state"]) {
        cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    }
    (cluster, brokers)
}

#[test]
fn sigterm_while_deciding_a_stream_stops_in_bound_and_loses_nothing() {
    let (_cluster, brokers) = cluster();
    let mut traffic = workload(Profile::Steady, 10, 500, 21);
    let first = keyed(&mut traffic, 600);
    let rest = keyed(&mut traffic, 600);
    produce(&brokers, "coupon-events", &first);
    let started = start(config(&brokers, Guarantee::AtLeastOnce, "deciding"));
    wait_for("decisions to flow", Duration::from_secs(60), || {
        started.progress.decisions() >= 100
    });
    // More input keeps arriving while it stops.
    let producer = {
        let brokers = brokers.clone();
        std::thread::spawn(move || produce(&brokers, "coupon-events", &rest))
    };
    let (result, took) = started.stop();
    eprintln!("stopped while deciding after {took:?}");
    result.expect("a clean stop");
    producer.join().unwrap();

    // The next instance decides the rest; every decision is exact.
    let total = 1_200;
    let next = start(config(&brokers, Guarantee::AtLeastOnce, "deciding"));
    check_run(
        &brokers,
        PARTITIONS,
        total,
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    next.stop().0.expect("a clean stop");
}

#[test]
fn sigterm_with_the_broker_gone_under_exactly_once_stops_in_bound() {
    let (cluster, brokers) = cluster();
    let mut traffic = workload(Profile::Steady, 10, 500, 22);
    produce(&brokers, "coupon-events", &keyed(&mut traffic, 300));
    let started = start(config(&brokers, Guarantee::ExactlyOnce, "eos-outage"));
    wait_for("decisions to flow", Duration::from_secs(60), || {
        started.progress.decisions() >= 50
    });
    cluster.broker_down(1).unwrap();
    // Transactions commit every 100 ms: from here on each commit retries.
    wait_for(
        "the brokers to be seen down",
        Duration::from_secs(60),
        || started.health.readiness() == Err(NotReady::BrokersDown),
    );
    let (result, took) = started.stop();
    eprintln!(
        "stopped with the broker gone after {took:?}: {:?}",
        result.as_ref().map(|_| ())
    );
    assert!(took <= BOUND, "{took:?}");
}
