//! [`SnapshotStore`]: durable partition state in a Kafka topic
//! (`coupon-state`, compacted in production), so any instance on any
//! machine can restore a partition it is assigned, with no local disk.
//!
//! Partition `p` of the input is stored in partition `p` of the state topic
//! (the two topics have the same partition count). A snapshot is the
//! encoded state after deciding every input offset below `next_offset`,
//! split into chunks of at most [`CHUNK_BYTES`] under the keys
//! `p/next_offset/i`; a manifest under the key `p`, produced only after
//! every chunk is acknowledged, names the chunks, their total size and an
//! xxh3-64 checksum. A crash mid-snapshot therefore leaves the previous
//! manifest in force. After a new manifest is acknowledged, the previous
//! snapshot's chunks get tombstones, so compaction keeps one snapshot per
//! partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kafka::backpressure::send_waiting;
use crate::kafka::config::KafkaConfig;
use crate::kafka::delivery_errors::DeliveryErrors;

/// Largest chunk value: below Kafka's default 1 MB record limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("creating the state {client}: {source}")]
    Client {
        client: &'static str,
        source: KafkaError,
    },
    #[error("writing to state topic {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("the broker refused {failed} snapshot records for state topic {topic}: {first}")]
    Refused {
        topic: String,
        failed: u64,
        first: String,
    },
    #[error("reading state topic {topic} partition {partition}: {source}")]
    Read {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
    #[error("reading state topic {topic} partition {partition} took longer than {timeout:?}")]
    Timeout {
        topic: String,
        partition: i32,
        timeout: Duration,
    },
    #[error("snapshot of partition {partition} at offset {next_offset} is damaged: {why}")]
    Damaged {
        partition: i32,
        next_offset: i64,
        why: String,
    },
}

/// The record that makes a snapshot current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub partition: i32,
    /// The first input offset the snapshot's state has not seen.
    pub next_offset: i64,
    pub chunks: u32,
    pub bytes: u64,
    pub checksum: u64,
}

/// A reader's context: end-of-partition is how a restore knows it has read
/// everything, not an error worth a log line.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::warn!(message = "State reader error; librdkafka retries.", %error, reason);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

pub struct SnapshotStore {
    topic: String,
    producer: ThreadedProducer<DeliveryErrors>,
    reader: ClientConfig,
    timeout: Duration,
}

impl SnapshotStore {
    pub fn new(config: &KafkaConfig) -> Result<SnapshotStore, StoreError> {
        let mut producer = config.producer_config();
        producer
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            // A snapshot that cannot be written in time fails and is retried
            // at the next interval; the previous one stays in force.
            .set("message.timeout.ms", "120000");
        let producer = producer
            .create_with_context(DeliveryErrors::default())
            .map_err(|source| StoreError::Client {
                client: "producer",
                source,
            })?;
        let mut reader = ClientConfig::new();
        reader
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", format!("{}-state-restore", config.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .set("queued.max.messages.kbytes", "262144");
        for (k, v) in &config.properties {
            reader.set(k, v);
        }
        Ok(SnapshotStore {
            topic: config.state_topic.clone(),
            producer,
            reader,
            timeout: Duration::from_millis(config.restore_timeout_ms),
        })
    }

    /// Writes a snapshot of `partition` covering inputs below
    /// `next_offset`, and returns its manifest once the broker has
    /// acknowledged it. `previous` (the last manifest written) gets its
    /// chunks tombstoned afterwards.
    pub fn save(
        &self,
        partition: i32,
        next_offset: i64,
        bytes: &[u8],
        previous: Option<&Manifest>,
    ) -> Result<Manifest, StoreError> {
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let key = chunk_key(partition, next_offset, i as u32);
            self.send(
                BaseRecord::to(&self.topic)
                    .partition(partition)
                    .key(key.as_bytes())
                    .payload(*chunk),
            )?;
        }
        self.flush()?;
        let manifest = Manifest {
            partition,
            next_offset,
            chunks: chunks.len() as u32,
            bytes: bytes.len() as u64,
            checksum: xxhash_rust::xxh3::xxh3_64(bytes),
        };
        let value = serde_json::to_vec(&manifest).unwrap_or_default();
        let key = partition.to_string();
        self.send(
            BaseRecord::to(&self.topic)
                .partition(partition)
                .key(key.as_bytes())
                .payload(value.as_slice()),
        )?;
        self.flush()?;
        if let Some(previous) = previous.filter(|p| p.next_offset != next_offset) {
            for i in 0..previous.chunks {
                let key = chunk_key(partition, previous.next_offset, i);
                self.send(
                    BaseRecord::<[u8], [u8]>::to(&self.topic)
                        .partition(partition)
                        .key(key.as_bytes()),
                )?;
            }
            self.flush()?;
        }
        Ok(manifest)
    }

    fn send(&self, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), StoreError> {
        send_waiting(&self.producer, record).map_err(|source| StoreError::Produce {
            topic: self.topic.clone(),
            source,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.producer
            .flush(Duration::from_secs(120))
            .map_err(|source| StoreError::Produce {
                topic: self.topic.clone(),
                source,
            })?;
        if let Some((failed, first)) = self.producer.context().take() {
            return Err(StoreError::Refused {
                topic: self.topic.clone(),
                failed,
                first,
            });
        }
        Ok(())
    }

    /// The latest complete snapshot of `partition`, if any: its manifest
    /// and its bytes, checksum verified.
    pub fn load(&self, partition: i32) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
        let read_error = |source| StoreError::Read {
            topic: self.topic.clone(),
            partition,
            source,
        };
        let consumer: BaseConsumer<ReaderContext> = self
            .reader
            .create_with_context(ReaderContext)
            .map_err(read_error)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Beginning)
            .map_err(read_error)?;
        consumer.assign(&tpl).map_err(read_error)?;
        let manifest_key = partition.to_string();
        let chunk_prefix = format!("{partition}/");
        let mut manifest: Option<Manifest> = None;
        // next_offset -> chunk index -> bytes, for snapshots not older than
        // the current manifest.
        let mut chunks: BTreeMap<i64, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
        let started = Instant::now();
        loop {
            if started.elapsed() > self.timeout {
                return Err(StoreError::Timeout {
                    topic: self.topic.clone(),
                    partition,
                    timeout: self.timeout,
                });
            }
            let m = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(source)) => return Err(read_error(source)),
                Some(Ok(m)) => m,
            };
            let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if key == manifest_key {
                let Some(found) = m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<Manifest>(v).ok())
                else {
                    continue;
                };
                chunks.retain(|&offset, _| offset >= found.next_offset);
                manifest = Some(found);
            } else if let Some((offset, index)) = key
                .strip_prefix(&chunk_prefix)
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(o, i)| Some((o.parse::<i64>().ok()?, i.parse::<u32>().ok()?)))
            {
                if manifest.as_ref().is_some_and(|m| offset < m.next_offset) {
                    continue;
                }
                match m.payload() {
                    Some(value) => {
                        chunks
                            .entry(offset)
                            .or_default()
                            .insert(index, value.to_vec());
                    }
                    None => {
                        if let Some(c) = chunks.get_mut(&offset) {
                            c.remove(&index);
                        }
                    }
                }
            }
        }
        let Some(manifest) = manifest else {
            return Ok(None);
        };
        let damaged = |why: String| StoreError::Damaged {
            partition,
            next_offset: manifest.next_offset,
            why,
        };
        let mut parts = chunks.remove(&manifest.next_offset).unwrap_or_default();
        let mut bytes = Vec::with_capacity(usize::try_from(manifest.bytes).unwrap_or(0));
        for i in 0..manifest.chunks {
            let part = parts
                .remove(&i)
                .ok_or_else(|| damaged(format!("chunk {i} of {} is missing", manifest.chunks)))?;
            bytes.extend_from_slice(&part);
        }
        if bytes.len() as u64 != manifest.bytes {
            return Err(damaged(format!(
                "{} bytes, the manifest says {}",
                bytes.len(),
                manifest.bytes
            )));
        }
        if xxhash_rust::xxh3::xxh3_64(&bytes) != manifest.checksum {
            return Err(damaged("checksum mismatch".to_owned()));
        }
        Ok(Some((manifest, bytes)))
    }
}

fn chunk_key(partition: i32, next_offset: i64, index: u32) -> String {
    format!("{partition}/{next_offset}/{index}")
}
