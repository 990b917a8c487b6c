//! The load generator of `coupon-stream loadgen`: writes generated traffic
//! ([`Workload`]) as JSON lines, or produces it to a topic keyed by seller
//! id with Kafka's murmur2 partitioner, as upstream checkout services must.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use thiserror::Error;

use crate::kafka::backpressure::send_waiting_until;
use crate::kafka::delivery_errors::DeliveryErrors;
use coupon_stream_core::workload::Workload;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("creating the producer: {0}")]
    Client(#[source] KafkaError),
    #[error("enqueueing an event: {0}")]
    Produce(#[source] KafkaError),
    #[error("{failed} of {events} events were not delivered; first error: {first}")]
    Undelivered {
        failed: u64,
        events: u64,
        first: String,
    },
}

/// What a load run produced.
#[derive(Debug, Clone, Copy)]
pub struct LoadSummary {
    pub events: u64,
    pub seconds: f64,
}

/// Writes `events` events from `workload` to `out`, one JSON value a line,
/// in blocks of about 1 MiB.
pub fn write_lines(workload: &mut Workload, events: u64, out: &mut dyn Write) -> io::Result<()> {
    const BLOCK_BYTES: usize = 1 << 20;
    let mut value = Vec::with_capacity(512);
    let mut block = Vec::with_capacity(BLOCK_BYTES);
    for _ in 0..events {
        workload.next_into(&mut value);
        block.extend_from_slice(&value);
        block.push(b'\n');
        if block.len() >= BLOCK_BYTES {
            out.write_all(&block)?;
            block.clear();
        }
    }
    out.write_all(&block)?;
    out.flush()
}

/// How long the final flush waits for deliveries, and how long after a
/// stop signal (each record also times out on its own after
/// `message.timeout.ms`, [`producer_config`]).
const FLUSH: Duration = Duration::from_secs(300);
const STOPPED_FLUSH: Duration = Duration::from_secs(5);

/// Waits for every enqueued record's delivery, at most [`FLUSH`], and at
/// most [`STOPPED_FLUSH`] once `stop` is set (also when it is set during
/// the wait): a user who stopped the load waits seconds, not a message
/// timeout.
fn flush(producer: &ThreadedProducer<DeliveryErrors>, stop: &AtomicBool) -> Result<(), KafkaError> {
    let started = Instant::now();
    let mut stopped_at = None;
    loop {
        let error = match producer.flush(Duration::from_millis(250)) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            let since = *stopped_at.get_or_insert(now);
            if now.duration_since(since) >= STOPPED_FLUSH {
                return Err(error);
            }
        }
        if now.duration_since(started) >= FLUSH {
            return Err(error);
        }
    }
}

/// Produces `events` events from `workload` to `topic`, at most `rate`
/// events per second (`None`: as fast as the broker takes them), calling
/// `progress` with the count produced so far every 10,000 events. Stops
/// early, after delivering what it enqueued, once `stop` is set or once a
/// record could not be delivered (then the error says how many were not):
/// producing on into a broker that refuses or cannot be reached would only
/// queue more records to time out. The client's errors are logged as they
/// happen ([`DeliveryErrors`]).
pub fn produce(
    producer_config: &ClientConfig,
    topic: &str,
    workload: &mut Workload,
    events: u64,
    rate: Option<u64>,
    stop: &AtomicBool,
    mut progress: impl FnMut(u64),
) -> Result<LoadSummary, LoadError> {
    let producer: ThreadedProducer<DeliveryErrors> = producer_config
        .create_with_context(DeliveryErrors::new("loadgen"))
        .map_err(LoadError::Client)?;
    let started = Instant::now();
    let mut value = Vec::with_capacity(512);
    let mut produced = 0;
    for n in 0..events {
        if n % 100 == 0 && (stop.load(Ordering::Relaxed) || producer.context().failed() > 0) {
            break;
        }
        if let Some(rate) = rate.filter(|&r| r > 0)
            && n % 100 == 0
        {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let seller = workload.next_into(&mut value);
        let key = workload.seller_id(seller).as_bytes();
        let record = BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(&value);
        let stopped = || stop.load(Ordering::Relaxed);
        match send_waiting_until(&producer, record, &stopped) {
            Ok(()) => {}
            // A stop while the queue was full.
            Err(_) if stopped() => break,
            Err(error) => return Err(LoadError::Produce(error)),
        }
        produced = n + 1;
        if produced % 10_000 == 0 {
            progress(produced);
        }
    }
    let events = produced;
    if let Err(error) = flush(&producer, stop) {
        let waiting = producer.in_flight_count().max(0) as u64;
        let (failed, first) =
            producer
                .context()
                .take()
                .unwrap_or_else(|| match stop.load(Ordering::Relaxed) {
                    true => (0, format!("stopped before the broker took them ({error})")),
                    false => (0, error.to_string()),
                });
        // Nothing left to wait for: the records still queued are dropped
        // and counted as not delivered.
        producer.purge(PurgeConfig::default().queue().inflight());
        return Err(LoadError::Undelivered {
            failed: failed + waiting,
            events,
            first,
        });
    }
    progress(events);
    if let Some((failed, first)) = producer.context().take() {
        return Err(LoadError::Undelivered {
            failed,
            events,
            first,
        });
    }
    Ok(LoadSummary {
        events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The producer settings for load: idempotent, batched, murmur2 by key.
/// `properties` (`-X`) are applied last.
pub fn producer_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "120000")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}
