//! The benchmark baseline: a plain consume-and-produce copy of the input
//! topic to the output topic, with the processor's own client settings
//! ([`KafkaConfig`]), batch polling, backpressure and enqueueing through a
//! topic handle, and no decision work. `bench --baseline` compares the processor against it: whatever the
//! copy cannot beat is the broker's and librdkafka's ceiling, not the
//! processor's. It commits no offsets (a benchmark reads from the start).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::message::Message as _;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Timestamp};

use crate::kafka::backpressure::produce_waiting_until;
use crate::kafka::config::KafkaConfig;
use crate::kafka::processor::{ProcessorError, subscribed};
use crate::kafka::topic_handle::TopicHandle;
use crate::ops::health::Health;

struct CopyContext {
    health: Arc<Health>,
}

impl ClientContext for CopyContext {}

impl ConsumerContext for CopyContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.health.set_assigned(true);
        }
    }
}

/// Copies records until `shutdown` is set; returns how many it copied.
pub fn copy(
    config: &KafkaConfig,
    health: Arc<Health>,
    shutdown: &AtomicBool,
) -> Result<u64, ProcessorError> {
    // Statistics feed nothing here (and librdkafka's default context would
    // log them at INFO).
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .producer_config()
        .set("statistics.interval.ms", "0")
        .create()
        .map_err(|source| ProcessorError::Client {
            client: "producer",
            source,
        })?;
    // Enqueued through a handle, as the processor's decisions are
    // ([`TopicHandle`]); declared after the producer, so it drops first.
    let output = TopicHandle::new(&producer, &config.output_topic).map_err(|source| {
        ProcessorError::Client {
            client: "producer",
            source,
        }
    })?;
    let consumer: BaseConsumer<CopyContext> = subscribed(
        config,
        config.consumer_config().set("statistics.interval.ms", "0"),
        CopyContext {
            health: Arc::clone(&health),
        },
    )?;
    let mut copied = 0u64;
    while !shutdown.load(Ordering::Relaxed) {
        let mut timeout = Duration::from_millis(100);
        for _ in 0..config.batch_messages_max {
            let Some(polled) = consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let Ok(m) = polled else {
                break;
            };
            let timestamp = match m.timestamp() {
                Timestamp::CreateTime(ts) | Timestamp::LogAppendTime(ts) => Some(ts),
                Timestamp::NotAvailable => None,
            };
            let payload = m.payload().unwrap_or_default();
            produce_waiting_until(&output, payload, m.key(), timestamp, 0, &|| false)
                .map_err(ProcessorError::Produce)?;
            copied += 1;
        }
    }
    health.set_stopping();
    producer
        .flush(Duration::from_millis(config.drain_timeout_ms))
        .map_err(ProcessorError::Produce)?;
    Ok(copied)
}
