//! [`DecisionSink`]: produces decisions and dead letters with an idempotent
//! producer and reports each acknowledgement, tagged with the input
//! partition and offset it answers, on a channel the processor drains.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::kafka::backpressure::{produce_waiting_until, send_waiting_until};
use crate::kafka::config::KafkaConfig;
use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::topic_handle::TopicHandle;
use crate::ops::health::Health;
use crate::ops::telemetry;

/// Largest input partition number the delivery tag can carry.
pub const PARTITION_MAX: i32 = (1 << 15) - 1;
/// Largest input offset the delivery tag can carry.
pub const OFFSET_MAX: i64 = (1 << 48) - 1;

/// The broker's answer for one produced record.
#[derive(Debug)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
    /// `None` when the record is durably written.
    pub error: Option<String>,
}

/// Packs an input (partition, offset) into librdkafka's per-message opaque
/// pointer, so acknowledging costs no allocation.
fn tag(partition: i32, offset: i64) -> usize {
    debug_assert!((0..=PARTITION_MAX).contains(&partition));
    debug_assert!((0..=OFFSET_MAX).contains(&offset));
    ((partition as usize) << 48) | offset as usize
}

fn untag(tag: usize) -> (i32, i64) {
    ((tag >> 48) as i32, (tag & ((1 << 48) - 1)) as i64)
}

pub struct AckContext {
    acks: Sender<Ack>,
    health: Arc<Health>,
    logged: ErrorLogLimit,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka("producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        metrics::counter!(telemetry::BROKER_ERRORS).increment(1);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_brokers_down(true);
        }
        if let Some(suppressed) = self.logged.admit(Instant::now()) {
            warn!(message = "Producer error; librdkafka retries.", %error, reason, suppressed);
        }
    }

    fn stats(&self, statistics: Statistics) {
        let retries: u64 = statistics.brokers.values().map(|b| b.txretries).sum();
        metrics::counter!(telemetry::PRODUCE_RETRIES).absolute(retries);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let (partition, offset) = untag(opaque);
        let error = result.as_ref().err().map(|(e, _)| e.to_string());
        // The receiver is gone only while the processor shuts down.
        let _ = self.acks.send(Ack {
            partition,
            offset,
            error,
        });
    }
}

/// Forwards librdkafka's log lines to `tracing`.
pub fn log_librdkafka(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    log_librdkafka_counted(client, level, fac, message, None);
}

/// [`log_librdkafka`], with how many lines of the same client were left
/// out since the last one (`suppressed`) when lines are throttled.
pub fn log_librdkafka_counted(
    client: &str,
    level: RDKafkaLogLevel,
    fac: &str,
    message: &str,
    suppressed: Option<u64>,
) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(client, fac, message, suppressed),
        RDKafkaLogLevel::Warning => warn!(client, fac, message, suppressed),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(client, fac, message, suppressed),
        RDKafkaLogLevel::Debug => debug!(client, fac, message, suppressed),
    }
}

/// An invalid input value and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub source_topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub timestamp: Option<i64>,
    pub value: &'a [u8],
    /// The invalid reason code, the `error` header.
    pub reason: &'a str,
}

pub struct DecisionSink {
    /// Declared before `producer`, so it is released first.
    output: TopicHandle,
    producer: ThreadedProducer<AckContext>,
    dlq_topic: String,
}

impl DecisionSink {
    pub fn new(
        config: &KafkaConfig,
        acks: Sender<Ack>,
        health: Arc<Health>,
    ) -> Result<DecisionSink, KafkaError> {
        let producer = config
            .decision_producer_config()
            .create_with_context(AckContext {
                acks,
                health,
                logged: ErrorLogLimit::new(),
            })?;
        Ok(DecisionSink {
            output: TopicHandle::new(&producer, &config.output_topic)?,
            producer,
            dlq_topic: config.dlq_topic.clone(),
        })
    }

    /// Produces the decision for input (`partition`, `offset`) under the
    /// input's key and with the input's timestamp.
    pub fn send_decision(
        &self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        timestamp: Option<i64>,
        decision: &[u8],
    ) -> Result<(), KafkaError> {
        let opaque = tag(partition, offset);
        produce_waiting_until(&self.output, decision, key, timestamp, opaque, &|| {
            self.stopping()
        })
    }

    /// Produces an invalid input value, byte for byte, to the dead-letter
    /// topic with the contract's headers.
    pub fn send_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), KafkaError> {
        let DeadLetter {
            source_topic,
            partition,
            offset,
            key,
            timestamp,
            value,
            reason,
        } = *letter;
        let partition_text = partition.to_string();
        let offset_text = offset.to_string();
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "error",
                value: Some(reason),
            })
            .insert(Header {
                key: "source.topic",
                value: Some(source_topic),
            })
            .insert(Header {
                key: "source.partition",
                value: Some(&partition_text),
            })
            .insert(Header {
                key: "source.offset",
                value: Some(&offset_text),
            });
        let mut record = BaseRecord::with_opaque_to(&self.dlq_topic, tag(partition, offset))
            .payload(value)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(timestamp) = timestamp {
            record = record.timestamp(timestamp);
        }
        self.send(record)
    }

    /// Enqueues a record, waiting while librdkafka's queue is full (the
    /// broker is slow or away): backpressure, never a dropped decision.
    /// Gives up once the processor is stopping, so a shutdown is not held
    /// by a full queue.
    fn send(&self, record: BaseRecord<'_, [u8], [u8], usize>) -> Result<(), KafkaError> {
        send_waiting_until(&self.producer, record, &|| self.stopping())
    }

    /// Whether the processor is stopping: a send waiting on a full queue
    /// then gives up.
    fn stopping(&self) -> bool {
        self.producer.context().health.is_stopping()
    }

    /// Waits until every enqueued record is acknowledged or `timeout` passes.
    ///
    /// Not rdkafka's `flush`: on a `ThreadedProducer` it polls from this
    /// thread in 100 ms slices while the producer's own thread serves the
    /// delivery reports, so any flush with a record in flight took at least
    /// 100 ms (measured), once per commit under exactly-once. This asks
    /// librdkafka to send what lingers, then waits on the queue length.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let started = Instant::now();
        // Timeout 0: wakes the broker threads to send at once, then returns.
        let _ = self.producer.flush(Duration::ZERO);
        let mut pause = Duration::from_micros(100);
        while self.producer.in_flight_count() > 0 {
            if started.elapsed() >= timeout {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Registers the transactional producer with its coordinator, fencing
    /// any earlier producer with the same `transactional.id` and aborting
    /// its open transaction (exactly-once only).
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.init_transactions(timeout)
    }

    pub fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.producer.begin_transaction()
    }

    /// Adds the consumer's input offsets to the open transaction, fenced by
    /// the consumer's group generation (KIP-447).
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        self.producer
            .send_offsets_to_transaction(offsets, group, timeout)
    }

    /// Flushes and commits the open transaction.
    pub fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        // Wait here (see `flush`); librdkafka's own flush inside the commit
        // then finds nothing in flight. A record that fails makes the
        // commit fail, whatever this returns.
        let _ = self.flush(timeout);
        self.producer.commit_transaction(timeout)
    }

    /// Aborts the open transaction; records not yet sent are purged.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.abort_transaction(timeout)
    }

    /// Records enqueued and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for (p, o) in [(0, 0), (5, 123_456_789), (PARTITION_MAX, OFFSET_MAX)] {
            assert_eq!(untag(tag(p, o)), (p, o));
        }
    }
}
