//! `coupon-stream demo`: the whole product in one process. It starts a
//! broker (the embedded one unless `brokers` is given), creates the topics,
//! runs the processor and the load generator against it for a while,
//! serves `/metrics` meanwhile, reports progress every second, and at the
//! end waits for the processor to decide everything that was produced and
//! for the broker to acknowledge every decision and dead letter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::kafka::admin::{AdminError, ensure_topics};
use crate::kafka::config::{Guarantee, KafkaConfig};
use crate::kafka::processor::{Processor, ProcessorError};
use crate::ops::health::Health;
use crate::ops::http::{HttpError, HttpServer};
use crate::ops::telemetry::Progress;
use crate::tools::broker::{BrokerChoice, BrokerError};
use crate::tools::loadgen::{self, LoadError};
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::reason::Outcome;
use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};

/// Longest wait, after the load stops, for the processor to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum DemoError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Topics(#[from] AdminError),
    #[error("installing the metrics recorder: {0}")]
    Metrics(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the processor failed: {0}")]
    Processor(#[from] ProcessorError),
    #[error("the load generator failed: {0}")]
    Load(#[from] LoadError),
    #[error("a demo thread panicked")]
    Panicked,
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A real cluster; `None` starts the embedded broker.
    pub brokers: Option<String>,
    pub properties: Vec<(String, String)>,
    pub duration: Duration,
    pub partitions: i32,
    /// Events per second offered; `None` for as fast as possible.
    pub rate: Option<u64>,
    pub profile: Profile,
    pub sellers: u32,
    pub seed: u64,
    pub metrics_addr: SocketAddr,
    pub core: CoreConfig,
    pub guarantee: Guarantee,
}

/// A once-a-second look at the run.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub elapsed: Duration,
    pub produced: u64,
    pub decided: u64,
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub brokers: String,
    pub embedded: bool,
    pub metrics_addr: SocketAddr,
    pub produced: u64,
    pub decided: u64,
    /// From the first event produced to the last one decided.
    pub seconds: f64,
    pub outcomes: Vec<(Outcome, u64)>,
    pub coupons_issued: u64,
    /// Records (decisions and dead letters) the broker acknowledged.
    pub acknowledged: u64,
    pub invalid: u64,
    pub caught_up: bool,
}

const INPUT: &str = "coupon-events";
const OUTPUT: &str = "coupon-decisions";
const DLQ: &str = "coupon-events-dlq";
const STATE: &str = "coupon-state";

pub fn run_demo(
    options: &DemoOptions,
    stop: &AtomicBool,
    mut on_tick: impl FnMut(&Tick, &Progress),
    on_ready: impl FnOnce(&str, SocketAddr),
) -> Result<DemoReport, DemoError> {
    let broker = BrokerChoice::connect_or_start(options.brokers.as_deref())?;
    let brokers = broker.bootstrap_servers().to_owned();

    ensure_topics(
        &brokers,
        &options.properties,
        &[
            (INPUT, options.partitions),
            (OUTPUT, options.partitions),
            (DLQ, options.partitions),
        ],
        TOPIC_TIMEOUT,
    )?;

    let metrics =
        crate::ops::telemetry::install().map_err(|e| DemoError::Metrics(e.to_string()))?;
    let health = Arc::new(Health::default());
    let kafka = KafkaConfig {
        group_id: "coupon-stream-demo".to_owned(),
        input_topic: INPUT.to_owned(),
        output_topic: OUTPUT.to_owned(),
        dlq_topic: DLQ.to_owned(),
        state_topic: STATE.to_owned(),
        properties: options.properties.clone(),
        // A demo runs for seconds, not hours: snapshots show in the metrics.
        snapshot_interval_ms: 10_000,
        transactional_id: format!("coupon-stream-demo-{}", std::process::id()),
        ..KafkaConfig::new(brokers.clone(), options.guarantee)
    };
    let processor = Processor::new(kafka, options.core, Arc::clone(&health));
    let progress = processor.progress();
    let http = HttpServer::start(
        options.metrics_addr,
        metrics,
        health,
        Arc::new(processor.live_state()),
    )?;
    on_ready(&brokers, http.local_addr());

    let processor_stop = Arc::new(AtomicBool::new(false));
    let processor_thread = {
        let stop = Arc::clone(&processor_stop);
        std::thread::Builder::new()
            .name("processor".into())
            .spawn(move || processor.run(&stop))
            .map_err(|_| DemoError::Panicked)?
    };

    let load_stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let load_thread = {
        let stop = Arc::clone(&load_stop);
        let produced = Arc::clone(&produced);
        let config = loadgen::producer_config(&brokers, &options.properties);
        let mut workload = Workload::new(WorkloadConfig {
            profile: options.profile,
            sellers: options.sellers,
            users: 1_000_000,
            seed: options.seed,
            duplicate_fraction: 0.01,
            invalid_fraction: 0.005,
        });
        let rate = options.rate;
        std::thread::Builder::new()
            .name("loadgen".into())
            .spawn(move || {
                loadgen::produce(&config, INPUT, &mut workload, u64::MAX, rate, &stop, |n| {
                    produced.store(n, Ordering::Relaxed)
                })
            })
            .map_err(|_| DemoError::Panicked)?
    };

    let started = Instant::now();
    let mut next_tick = Duration::from_secs(1);
    while started.elapsed() < options.duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if load_thread.is_finished() || processor_thread.is_finished() {
            break;
        }
        if started.elapsed() >= next_tick {
            on_tick(
                &Tick {
                    elapsed: started.elapsed(),
                    produced: produced.load(Ordering::Relaxed),
                    decided: progress.decisions(),
                },
                &progress,
            );
            next_tick += Duration::from_secs(1);
        }
    }
    load_stop.store(true, Ordering::Relaxed);
    let load = load_thread.join().map_err(|_| DemoError::Panicked)?;
    let produced = match load {
        Ok(summary) => summary.events,
        Err(e) => {
            processor_stop.store(true, Ordering::Relaxed);
            let _ = processor_thread.join();
            return Err(e.into());
        }
    };

    // Let the processor decide what is still queued.
    let catch_up = Instant::now();
    while progress.decisions() < produced
        && catch_up.elapsed() < CATCH_UP_TIMEOUT
        && !stop.load(Ordering::Relaxed)
        && !processor_thread.is_finished()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    let caught_up = progress.decisions() >= produced;
    processor_stop.store(true, Ordering::Relaxed);
    let summary = processor_thread.join().map_err(|_| DemoError::Panicked)??;
    drop(http);

    Ok(DemoReport {
        brokers,
        embedded: broker.is_embedded(),
        metrics_addr: options.metrics_addr,
        produced,
        decided: summary.messages,
        seconds,
        outcomes: Outcome::ALL
            .iter()
            .map(|&o| (o, progress.outcome(o)))
            .filter(|&(_, n)| n > 0)
            .collect(),
        coupons_issued: progress.coupons_issued(),
        acknowledged: progress.acknowledged(),
        invalid: progress.outcome(Outcome::Invalid),
        caught_up,
    })
}
