//! [`SnapshotStore`]: durable partition state in a Kafka topic
//! (`coupon-state`, compacted in production), so any instance on any
//! machine can restore a partition it is assigned, with no local disk.
//!
//! Partition `p` of the input is stored in partition `p` of the state topic
//! (which has at least as many partitions as the input). A snapshot is the
//! encoded state after deciding every input offset below `next_offset`,
//! split into chunks of at most [`CHUNK_BYTES`] under the keys
//! `p/next_offset/i`; a manifest under the key `p`, produced only after
//! every chunk is acknowledged, names the chunks, their total size and an
//! xxh3-64 checksum. A crash mid-snapshot therefore leaves the previous
//! manifest in force. After a new manifest is acknowledged, the previous
//! snapshot's chunks get tombstones, so compaction keeps one snapshot per
//! partition.

use std::collections::BTreeMap;
use std::time::Instant;

use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kafka::backpressure::send_waiting_until;
use crate::kafka::config::KafkaConfig;
use crate::kafka::delivery_errors::DeliveryErrors;
use crate::kafka::reader::{PartitionReader, Range, ReadError};
use rdkafka::error::KafkaError;

/// Largest chunk value: below Kafka's default 1 MB record limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// Largest snapshot a restore accepts, and the most chunk bytes it buffers
/// while reading a partition of the state topic: what the topic says is
/// checked against it before anything is allocated. 10 million coupons
/// take about 100 MiB.
pub const SNAPSHOT_BYTES_MAX: u64 = 4 << 30;

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
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "state topic {topic} holds the snapshot of partition {partition} of consumer group {owner:?}, not of this processor's group {group:?}: a state topic belongs to one group; give this group its own --state-topic (or run it as group {owner:?})"
    )]
    OtherGroup {
        topic: String,
        partition: i32,
        owner: String,
        group: String,
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
    /// The consumer group whose processor wrote the snapshot. Manifests
    /// written before this field existed have none, and are accepted by
    /// any group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

pub struct SnapshotStore {
    topic: String,
    /// The consumer group, recorded in every manifest.
    group: String,
    producer: ThreadedProducer<DeliveryErrors>,
}

impl SnapshotStore {
    pub fn new(config: &KafkaConfig) -> Result<SnapshotStore, StoreError> {
        let mut producer = config.producer_config();
        producer
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            // A snapshot that cannot be written in time fails and is retried
            // at the next interval; the previous one stays in force.
            .set("message.timeout.ms", "120000")
            // This producer's statistics feed nothing.
            .set("statistics.interval.ms", "0");
        let producer = producer
            .create_with_context(DeliveryErrors::new("state-producer"))
            .map_err(|source| StoreError::Client {
                client: "producer",
                source,
            })?;
        Ok(SnapshotStore {
            topic: config.state_topic.clone(),
            group: config.group_id.clone(),
            producer,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes a snapshot of `partition` covering inputs below
    /// `next_offset`, and returns its manifest once the broker has
    /// acknowledged it, or fails at `deadline`. `previous` (the last
    /// manifest written) gets its chunks tombstoned afterwards.
    pub fn save(
        &self,
        partition: i32,
        next_offset: i64,
        bytes: &[u8],
        previous: Option<&Manifest>,
        deadline: Instant,
    ) -> Result<Manifest, StoreError> {
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let key = chunk_key(partition, next_offset, i as u32);
            self.send(
                BaseRecord::to(&self.topic)
                    .partition(partition)
                    .key(key.as_bytes())
                    .payload(*chunk),
                deadline,
            )?;
        }
        self.flush(deadline)?;
        let manifest = Manifest {
            partition,
            next_offset,
            chunks: chunks.len() as u32,
            bytes: bytes.len() as u64,
            checksum: xxhash_rust::xxh3::xxh3_64(bytes),
            group: Some(self.group.clone()),
        };
        let value = serde_json::to_vec(&manifest).unwrap_or_default();
        let key = partition.to_string();
        self.send(
            BaseRecord::to(&self.topic)
                .partition(partition)
                .key(key.as_bytes())
                .payload(value.as_slice()),
            deadline,
        )?;
        self.flush(deadline)?;
        if let Some(previous) = previous.filter(|p| p.next_offset != next_offset) {
            for i in 0..previous.chunks {
                let key = chunk_key(partition, previous.next_offset, i);
                self.send(
                    BaseRecord::<[u8], [u8]>::to(&self.topic)
                        .partition(partition)
                        .key(key.as_bytes()),
                    deadline,
                )?;
            }
            self.flush(deadline)?;
        }
        Ok(manifest)
    }

    fn send(
        &self,
        record: BaseRecord<'_, [u8], [u8]>,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        send_waiting_until(&self.producer, record, &|| Instant::now() >= deadline).map_err(
            |source| StoreError::Produce {
                topic: self.topic.clone(),
                source,
            },
        )
    }

    fn flush(&self, deadline: Instant) -> Result<(), StoreError> {
        self.producer
            .flush(deadline.saturating_duration_since(Instant::now()))
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
}

/// Where [`load`] reads: a partition of a state topic, for a consumer group.
#[derive(Debug, Clone, Copy)]
pub struct StatePartition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// The group restoring: a snapshot another group wrote is refused.
    pub group: &'a str,
}

/// The latest complete snapshot of a state partition, if any: its
/// manifest and its bytes, checksum verified. Reads the whole partition
/// with `reader` until `deadline` or `stop`. A snapshot written by another
/// consumer group is an error, never restored: its offsets are that
/// group's, and restoring it would skip input this group never decided.
pub fn load(
    reader: &PartitionReader,
    at: StatePartition<'_>,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
    let StatePartition {
        topic, partition, ..
    } = at;
    let mut snapshot = Assembler::new(partition);
    let everything = Range {
        from: None,
        until: None,
    };
    reader.read(topic, partition, everything, deadline, stop, |m| {
        snapshot.record(m.key(), m.payload())
    })?;
    let found = snapshot.finish()?;
    if let Some((manifest, _)) = &found {
        check_owner(at, manifest)?;
    }
    Ok(found)
}

/// Refuses a manifest another consumer group wrote (see [`load`]).
fn check_owner(at: StatePartition<'_>, manifest: &Manifest) -> Result<(), StoreError> {
    match manifest.group.as_deref() {
        Some(owner) if owner != at.group => Err(StoreError::OtherGroup {
            topic: at.topic.to_owned(),
            partition: at.partition,
            owner: owner.to_owned(),
            group: at.group.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Collects a snapshot from the records of one state partition, in offset
/// order. Every size it is given is checked against [`CHUNK_BYTES`] and
/// [`SNAPSHOT_BYTES_MAX`] before it is used.
#[derive(Debug)]
pub struct Assembler {
    partition: i32,
    manifest_key: String,
    chunk_prefix: String,
    manifest: Option<Manifest>,
    /// next_offset -> chunk index -> bytes, for snapshots not older than
    /// the current manifest.
    chunks: BTreeMap<i64, BTreeMap<u32, Vec<u8>>>,
    /// Bytes held in `chunks`.
    buffered: u64,
    /// The first record that broke a limit.
    damaged: Option<StoreError>,
}

impl Assembler {
    pub fn new(partition: i32) -> Assembler {
        Assembler {
            partition,
            manifest_key: partition.to_string(),
            chunk_prefix: format!("{partition}/"),
            manifest: None,
            chunks: BTreeMap::new(),
            buffered: 0,
            damaged: None,
        }
    }

    /// Takes the next record of the state partition.
    pub fn record(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        if self.damaged.is_some() {
            return;
        }
        let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        if key == self.manifest_key {
            if let Some(found) = value.and_then(|v| serde_json::from_slice::<Manifest>(v).ok()) {
                self.chunks.retain(|&offset, _| offset >= found.next_offset);
                self.buffered = self
                    .chunks
                    .values()
                    .flat_map(|c| c.values())
                    .map(|v| v.len() as u64)
                    .sum();
                self.manifest = Some(found);
            }
            return;
        }
        let Some((offset, index)) = key
            .strip_prefix(&self.chunk_prefix)
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(o, i)| Some((o.parse::<i64>().ok()?, i.parse::<u32>().ok()?)))
        else {
            return;
        };
        if self
            .manifest
            .as_ref()
            .is_some_and(|m| offset < m.next_offset)
        {
            return;
        }
        match value {
            Some(value) => self.chunk(offset, index, value),
            None => {
                let removed = self.chunks.get_mut(&offset).and_then(|c| c.remove(&index));
                self.buffered -= removed.map_or(0, |v| v.len() as u64);
            }
        }
    }

    fn chunk(&mut self, offset: i64, index: u32, value: &[u8]) {
        let len = value.len() as u64;
        if value.len() > CHUNK_BYTES || self.buffered + len > SNAPSHOT_BYTES_MAX {
            self.damaged = Some(StoreError::Damaged {
                partition: self.partition,
                next_offset: offset,
                why: format!(
                    "chunk {index} is {len} bytes (at most {CHUNK_BYTES}), with {} bytes of chunks held (at most {SNAPSHOT_BYTES_MAX})",
                    self.buffered
                ),
            });
            return;
        }
        let previous = self
            .chunks
            .entry(offset)
            .or_default()
            .insert(index, value.to_vec());
        self.buffered = self.buffered + len - previous.map_or(0, |v| v.len() as u64);
    }

    /// The current manifest's snapshot, verified; `None` when the
    /// partition holds no manifest.
    pub fn finish(mut self) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
        if let Some(damaged) = self.damaged.take() {
            return Err(damaged);
        }
        let Some(manifest) = self.manifest.take() else {
            return Ok(None);
        };
        let damaged = |why: String| StoreError::Damaged {
            partition: self.partition,
            next_offset: manifest.next_offset,
            why,
        };
        let expected_chunks = manifest.bytes.div_ceil(CHUNK_BYTES as u64);
        if manifest.bytes > SNAPSHOT_BYTES_MAX || u64::from(manifest.chunks) != expected_chunks {
            return Err(damaged(format!(
                "the manifest says {} bytes in {} chunks (at most {SNAPSHOT_BYTES_MAX} bytes, {CHUNK_BYTES} per chunk)",
                manifest.bytes, manifest.chunks
            )));
        }
        let mut parts = self
            .chunks
            .remove(&manifest.next_offset)
            .unwrap_or_default();
        let held: u64 = parts.values().map(|p| p.len() as u64).sum();
        if held < manifest.bytes {
            let missing = (0..manifest.chunks).find(|i| !parts.contains_key(i));
            return Err(damaged(match missing {
                Some(i) => format!("chunk {i} of {} is missing", manifest.chunks),
                None => format!("{held} bytes, the manifest says {}", manifest.bytes),
            }));
        }
        // Bounded by what was read, and checked against the limit above.
        let mut bytes = Vec::with_capacity(manifest.bytes as usize);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(partition: i32, next_offset: i64, bytes: &[u8], chunks: u32) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            partition,
            next_offset,
            chunks,
            bytes: bytes.len() as u64,
            checksum: xxhash_rust::xxh3::xxh3_64(bytes),
            group: Some("g".to_owned()),
        })
        .unwrap()
    }

    fn feed(assembler: &mut Assembler, key: &str, value: Option<&[u8]>) {
        assembler.record(Some(key.as_bytes()), value);
    }

    #[test]
    fn assembles_the_latest_complete_snapshot() {
        let old = vec![1u8; 10];
        let new: Vec<u8> = (0..CHUNK_BYTES + 5).map(|i| i as u8).collect();
        let mut a = Assembler::new(3);
        feed(&mut a, "3/10/0", Some(&old));
        feed(&mut a, "3", Some(&manifest(3, 10, &old, 1)));
        feed(&mut a, "3/20/0", Some(&new[..CHUNK_BYTES]));
        feed(&mut a, "3/20/1", Some(&new[CHUNK_BYTES..]));
        feed(&mut a, "7/20/0", Some(b"another partition's"));
        feed(&mut a, "3", Some(&manifest(3, 20, &new, 2)));
        feed(&mut a, "3/10/0", None);
        // A snapshot cut short by a crash: chunks without a manifest.
        feed(&mut a, "3/30/0", Some(b"partial"));
        let (m, bytes) = a.finish().unwrap().unwrap();
        assert_eq!((m.next_offset, m.chunks), (20, 2));
        assert_eq!(bytes, new);
        assert!(Assembler::new(3).finish().unwrap().is_none());
    }

    #[test]
    fn a_manifest_cannot_size_an_allocation() {
        // 2^62 bytes claimed, with the chunk count that would match.
        let claim = serde_json::to_vec(&Manifest {
            partition: 0,
            next_offset: 5,
            chunks: u32::MAX,
            bytes: 1 << 62,
            checksum: 0,
            group: None,
        })
        .unwrap();
        let mut a = Assembler::new(0);
        feed(&mut a, "0/5/0", Some(b"tiny"));
        feed(&mut a, "0", Some(&claim));
        let error = a.finish().unwrap_err().to_string();
        assert!(error.contains("the manifest says"), "{error}");

        // A plausible size, but the chunks are not there.
        let mut a = Assembler::new(0);
        feed(&mut a, "0", Some(&manifest(0, 5, &[0; 100], 1)));
        assert!(
            a.finish()
                .unwrap_err()
                .to_string()
                .contains("chunk 0 of 1 is missing")
        );

        // Chunk count and size disagree.
        let mut a = Assembler::new(0);
        feed(&mut a, "0/5/0", Some(&[0; 100]));
        feed(&mut a, "0", Some(&manifest(0, 5, &[0; 100], 7)));
        assert!(a.finish().unwrap_err().to_string().contains("7 chunks"));
    }

    #[test]
    fn oversized_chunks_and_checksums_are_damage() {
        let mut a = Assembler::new(0);
        feed(&mut a, "0/5/0", Some(&vec![0; CHUNK_BYTES + 1]));
        assert!(
            a.finish()
                .unwrap_err()
                .to_string()
                .contains("is 524289 bytes")
        );

        let mut a = Assembler::new(0);
        feed(&mut a, "0/5/0", Some(b"abc"));
        feed(&mut a, "0", Some(&manifest(0, 5, b"abd", 1)));
        assert!(a.finish().unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn a_snapshot_belongs_to_the_group_that_wrote_it() {
        let at = StatePartition {
            topic: "coupon-state",
            partition: 2,
            group: "coupon-stream",
        };
        let bytes = manifest(2, 10, b"state", 1);
        let mut m: Manifest = serde_json::from_slice(&bytes).unwrap();
        m.group = Some("coupon-stream".to_owned());
        assert!(check_owner(at, &m).is_ok());
        m.group = Some("other".to_owned());
        let refused = check_owner(at, &m).unwrap_err().to_string();
        assert!(refused.contains("consumer group \"other\""), "{refused}");
        assert!(refused.contains("--state-topic"), "{refused}");
        // Written before manifests named their group: accepted.
        let old = br#"{"partition":2,"next_offset":10,"chunks":1,"bytes":5,"checksum":1}"#;
        let m: Manifest = serde_json::from_slice(old).unwrap();
        assert_eq!(m.group, None);
        assert!(check_owner(at, &m).is_ok());
    }
}
