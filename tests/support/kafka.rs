//! Kafka clients of the tests: topics, a producer that partitions as
//! Kafka's Java client does, and readers of whole topics. [`Record`] is a
//! message as read back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use super::messages::Messages;
use super::recompute::decision_source;

/// The contract's topics, which must exist before the processor starts;
/// it creates its state topic (`coupon-state`, compacted) itself.
pub const TOPICS: [&str; 3] = ["coupon-events", "coupon-decisions", "coupon-events-dlq"];

/// Reads `topic` from the start, again and again, until the decisions
/// answer `count` distinct input offsets (repeats, from at-least-once
/// redeliveries or aborted transactions, mean that many records need not
/// cover them) or `deadline` passes. Each read lasts `read_for`.
pub fn read_covering(
    brokers: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    read_for: Duration,
    deadline: Duration,
) -> Vec<Record> {
    let started = Instant::now();
    loop {
        let decisions = read_all(brokers, topic, partitions, usize::MAX, read_for);
        let covered: HashSet<(i32, i64)> = decisions.iter().map(decision_source).collect();
        if covered.len() >= count || started.elapsed() > deadline {
            return decisions;
        }
    }
}

pub fn create_topic(brokers: &str, name: &str, partitions: i32) {
    {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results =
            futures_executor::block_on(admin.create_topics([&topic], &AdminOptions::new()))
                .unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
        }
    }
}

/// Creates the contract's three topics and a compacted `coupon-state`,
/// `partitions` each: a fresh broker as a deployment has it.
pub fn create_processor_topics(brokers: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut topics: Vec<NewTopic<'_>> = TOPICS
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    topics.push(
        NewTopic::new("coupon-state", partitions, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact"),
    );
    for r in futures_executor::block_on(admin.create_topics(&topics, &AdminOptions::new())).unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Produces `messages` (key, value), partitioned as Kafka's Java client
/// does (murmur2), and waits for all acknowledgements.
pub fn produce(brokers: &str, topic: &str, messages: &Messages) {
    produce_with(brokers, topic, messages, &[])
}

/// [`produce`] with extra librdkafka producer settings.
pub fn produce_with(brokers: &str, topic: &str, messages: &Messages, settings: &[(&str, &str)]) {
    {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true");
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let producer: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
        for (key, value) in messages {
            let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value.as_slice());
            if let Some(k) = key {
                record = record.key(k.as_slice());
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                if let Err((e, back)) = producer.send(r) {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "{e}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                    record = Some(back);
                }
            }
        }
        // Every acknowledgement, however slowly a loaded machine's broker
        // gives them: fails only when a whole minute delivers nothing.
        let mut in_flight = producer.in_flight_count();
        while let Err(e) = producer.flush(Duration::from_secs(60)) {
            let now = producer.in_flight_count();
            assert!(
                now < in_flight,
                "{topic}: no acknowledgement for 60 s, {now} messages in flight: {e}"
            );
            in_flight = now;
        }
    }
}

/// Reads every partition of `topic` from the start until `count` messages
/// arrived or `timeout` passed.
pub fn read_all(
    brokers: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<Record> {
    {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "coupon-stream-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let started = Instant::now();
        while out.len() < count && started.elapsed() < timeout {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
