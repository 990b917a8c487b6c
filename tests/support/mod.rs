//! Test support: a real Kafka-protocol broker (Tansu) on a free loopback
//! port, and small Kafka client helpers. Tansu is installed by `.ci/run`
//! (`cargo install tansu --locked --features dynostore`); `TANSU_BIN`
//! overrides where it is found.

#![allow(dead_code)]

pub mod lifecycle;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message as CoreMessage};

/// The contract's topics, which must exist before the processor starts;
/// it creates its state topic (`coupon-state`, compacted) itself.
pub const TOPICS: [&str; 3] = ["coupon-events", "coupon-decisions", "coupon-events-dlq"];

/// What the decision core says about each input record, recomputed per
/// partition in offset order with the Kafka key checks.
pub fn expected_decisions(input: &[Record], partitions: i32) -> HashMap<(i32, i64), Vec<u8>> {
    let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in input {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let mut expected = HashMap::new();
    for (partition, mut records) in by_partition {
        records.sort_by_key(|r| r.offset);
        let mut core = DecisionCore::new(CoreConfig::default());
        for r in records {
            let mut out = Vec::new();
            core.process(
                &CoreMessage {
                    value: &r.value,
                    source: Source {
                        partition,
                        offset: r.offset,
                    },
                    key_check: Some(KeyCheck {
                        key: r.key.as_deref(),
                        partition_count: Some(partitions as u32),
                    }),
                },
                &mut out,
            );
            expected.insert((partition, r.offset), out);
        }
    }
    expected
}

/// The (partition, offset) a decision answers.
pub fn decision_source(decision: &Record) -> (i32, i64) {
    let v: serde_json::Value = serde_json::from_slice(&decision.value).unwrap();
    (
        v["source"]["partition"].as_i64().unwrap() as i32,
        v["source"]["offset"].as_i64().unwrap(),
    )
}

/// `coupon-stream run` in group `group` against `brokers`, stdout
/// discarded; callers add their flags, environment and stderr.
pub fn processor_command(brokers: &str, group: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coupon-stream"));
    command
        .args(["run", "--brokers", brokers, "--group-id", group])
        .stdout(Stdio::null());
    command
}

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
        let covered: std::collections::HashSet<(i32, i64)> =
            decisions.iter().map(decision_source).collect();
        if covered.len() >= count || started.elapsed() > deadline {
            return decisions;
        }
    }
}

/// Checks every decision against the recomputation: each equals the one
/// computed for its input offset, and repeats of an offset are identical.
/// Returns the first decision per input offset.
pub fn check_decisions(
    decisions: &[Record],
    expected: &HashMap<(i32, i64), Vec<u8>>,
) -> HashMap<(i32, i64), Vec<u8>> {
    let mut seen: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    for d in decisions {
        let source = decision_source(d);
        let want = expected
            .get(&source)
            .unwrap_or_else(|| panic!("decision for unknown input {source:?}"));
        assert_eq!(
            String::from_utf8_lossy(&d.value),
            String::from_utf8_lossy(want),
            "decision for input {source:?} differs from the uninterrupted recomputation"
        );
        if let Some(previous) = seen.insert(source, d.value.clone()) {
            assert_eq!(previous, d.value, "a redelivered decision differs");
        }
    }
    seen
}

pub struct Tansu {
    child: Child,
    pub port: u16,
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let home_bin =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if home_bin.exists() {
        return home_bin;
    }
    PathBuf::from("tansu")
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({e}); install it with `cargo install tansu --locked --features dynostore` or run `bash .ci/run`")
            });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tansu did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { child, port }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        create_topic(&self.brokers(), name, partitions)
    }

    pub fn produce(&self, topic: &str, messages: &[(Option<Vec<u8>>, Vec<u8>)]) {
        produce(&self.brokers(), topic, messages)
    }

    pub fn read_all(
        &self,
        topic: &str,
        partitions: i32,
        count: usize,
        timeout: Duration,
    ) -> Vec<Record> {
        read_all(&self.brokers(), topic, partitions, count, timeout)
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

/// Produces `messages` (key, value), partitioned as Kafka's Java client
/// does (murmur2), and waits for all acknowledgements.
pub fn produce(brokers: &str, topic: &str, messages: &[(Option<Vec<u8>>, Vec<u8>)]) {
    produce_with(brokers, topic, messages, &[])
}

/// [`produce`] with extra librdkafka producer settings.
pub fn produce_with(
    brokers: &str,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
    settings: &[(&str, &str)],
) {
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
        producer.flush(Duration::from_secs(60)).unwrap();
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

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
