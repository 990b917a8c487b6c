//! Restores off the rebalance path: a bounded pool of threads, each owning
//! one [`PartitionReader`] for all the partitions it restores, rebuilds
//! assigned partitions' states in parallel (the latest snapshot from the
//! state topic, then a silent replay of the input up to the group's
//! committed offset) and reports each result on a channel the loop
//! drains. A job whose partition was revoked meanwhile sees its cancel
//! flag at its next read and stops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::kafka::config::KafkaConfig;
use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::processor::context::GroupContext;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::partition::Restored;
use crate::kafka::reader::{PartitionReader, Range, ReadError};
use crate::kafka::state_store::{self, StatePartition};
use crate::ops::telemetry;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};
use coupon_stream_core::snapshot;

/// Longest single committed-offset query; retried until the deadline.
const COMMITTED_CALL: Duration = Duration::from_secs(2);

/// One partition to restore.
pub(super) struct RestoreJob {
    pub(super) partition: i32,
    pub(super) epoch: u64,
    pub(super) cancel: Arc<AtomicBool>,
    /// A rewind after an aborted transaction: replay the input even
    /// without durable state.
    pub(super) rebuild: bool,
    /// The input's partition count, for the `wrong_partition` check.
    pub(super) partition_count: Option<u32>,
}

/// A finished restore, for the loop.
pub(super) struct RestoreDone {
    pub(super) partition: i32,
    pub(super) epoch: u64,
    pub(super) result: Result<Restored, ProcessorError>,
}

/// Jobs waiting for a thread; at most one per owned partition.
#[derive(Default)]
struct JobQueue {
    jobs: Mutex<VecDeque<RestoreJob>>,
    ready: Condvar,
    closed: AtomicBool,
}

impl JobQueue {
    /// The next job, waiting for one; `None` once closed.
    fn next(&self) -> Option<RestoreJob> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(job) = jobs.pop_front() {
                return Some(job);
            }
            jobs = self
                .ready
                .wait_timeout(jobs, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

pub(super) struct RestorePool {
    queue: Arc<JobQueue>,
    threads: Vec<JoinHandle<()>>,
    done: Receiver<RestoreDone>,
}

impl RestorePool {
    /// Starts `threads` restore threads reading with `config`'s brokers;
    /// `consumer` answers the group's committed offsets.
    pub(super) fn start(
        threads: usize,
        config: &KafkaConfig,
        core: CoreConfig,
        consumer: Arc<BaseConsumer<GroupContext>>,
    ) -> Result<RestorePool, ProcessorError> {
        let queue = Arc::new(JobQueue::default());
        let (done_tx, done) = mpsc::channel();
        let restorer = Arc::new(Restorer {
            config: config.clone(),
            core,
            consumer,
            queue: Arc::clone(&queue),
        });
        let mut handles = Vec::with_capacity(threads);
        let group = format!("{}-restore", config.group_id);
        let reader_lines = Arc::new(ErrorLogLimit::new());
        for i in 0..threads.max(1) {
            let reader = PartitionReader::new(
                &config.brokers,
                &group,
                &config.properties,
                Arc::clone(&reader_lines),
            )
            .map_err(|source| ProcessorError::Client {
                client: "state reader",
                source,
            })?;
            let restorer = Arc::clone(&restorer);
            let done = done_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("restore-{i}"))
                .spawn(move || restorer.serve(&reader, &done))
                .map_err(|_| ProcessorError::WorkerPanicked)?;
            handles.push(handle);
        }
        Ok(RestorePool {
            queue,
            threads: handles,
            done,
        })
    }

    pub(super) fn submit(&self, job: RestoreJob) {
        let mut jobs = self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.push_back(job);
        self.queue.ready.notify_one();
    }

    /// Restores finished since the last call.
    pub(super) fn finished(&self) -> Vec<RestoreDone> {
        self.done.try_iter().collect()
    }

    /// Stops every thread (running restores see it at their next read) and
    /// waits for them until `deadline`; a thread still decoding then is
    /// left to finish on its own.
    pub(super) fn close(self, deadline: Instant) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.ready.notify_all();
        while Instant::now() < deadline && !self.threads.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for thread in self.threads {
            if thread.is_finished() && thread.join().is_err() {
                warn!(message = "A restore thread panicked.");
            }
        }
    }
}

/// What every restore needs, shared by the pool's threads.
struct Restorer {
    config: KafkaConfig,
    core: CoreConfig,
    consumer: Arc<BaseConsumer<GroupContext>>,
    queue: Arc<JobQueue>,
}

impl Restorer {
    fn serve(&self, reader: &PartitionReader, done: &Sender<RestoreDone>) {
        while let Some(job) = self.queue.next() {
            if job.cancel.load(Ordering::Acquire) {
                continue;
            }
            let result = self.restore(reader, &job);
            let finished = RestoreDone {
                partition: job.partition,
                epoch: job.epoch,
                result,
            };
            if done.send(finished).is_err() {
                return;
            }
        }
    }

    /// The partition's state at the group's committed offset: its latest
    /// snapshot, replayed silently up to the committed offset, or an empty
    /// core. Without durable state a new owner starts empty, unless it is
    /// a rewind, which replays the input from its beginning.
    fn restore(
        &self,
        reader: &PartitionReader,
        job: &RestoreJob,
    ) -> Result<Restored, ProcessorError> {
        let started = Instant::now();
        let durable = self.config.snapshot_interval_ms > 0;
        if !durable && !job.rebuild {
            return Ok(Restored {
                core: DecisionCore::new(self.core),
                skip_below: -1,
                manifest: None,
                committed: None,
            });
        }
        let deadline = started + Duration::from_millis(self.config.restore_timeout_ms);
        let stop =
            || job.cancel.load(Ordering::Acquire) || self.queue.closed.load(Ordering::Acquire);
        let committed = self.committed_offset(job.partition, deadline, &stop)?;
        let loaded = if durable {
            state_store::load(
                reader,
                StatePartition {
                    topic: &self.config.state_topic,
                    partition: job.partition,
                    group: &self.config.group_id,
                },
                deadline,
                &stop,
            )?
        } else {
            None
        };
        let partition = job.partition;
        let (mut core, from, manifest) = match loaded {
            None => (DecisionCore::new(self.core), None, None),
            Some((manifest, bytes)) => (
                snapshot::decode(&bytes, self.core)
                    .map_err(|source| ProcessorError::Snapshot { partition, source })?,
                Some(manifest.next_offset),
                Some(manifest),
            ),
        };
        let mut skip_below = from.unwrap_or(-1);
        let mut replayed = 0;
        if let Some(committed) = committed.filter(|&c| c > from.unwrap_or(0)) {
            replayed = self.replay(reader, job, &mut core, from, committed, deadline, &stop)?;
            skip_below = committed;
        }
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!(telemetry::RESTORE_DURATION).record(seconds);
        info!(
            message = "Partition state restored.",
            partition,
            snapshot_offset = ?from,
            committed = ?committed,
            replayed,
            coupons = core.stats().coupons,
            seconds
        );
        Ok(Restored {
            core,
            skip_below,
            manifest,
            committed,
        })
    }

    /// The group's committed offset of an input partition, if any; retried
    /// while the coordinator is away, until `deadline` or `stop`.
    fn committed_offset(
        &self,
        partition: i32,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<i64>, ReadError> {
        let topic = &self.config.input_topic;
        let mut backoff = Duration::from_millis(50);
        loop {
            if stop() {
                return Err(ReadError::Cancelled {
                    topic: topic.clone(),
                    partition,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Timeout {
                    topic: topic.clone(),
                    partition,
                });
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            match self
                .consumer
                .committed_offsets(tpl, COMMITTED_CALL.min(left))
            {
                Ok(committed) => {
                    return Ok(committed.find_partition(topic, partition).and_then(|e| {
                        match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        }
                    }));
                }
                Err(error) => {
                    warn!(message = "Cannot read the committed offset yet; retrying.", partition, %error);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Feeds input offsets `from..until` of the job's partition to `core`,
    /// discarding the decisions: they were produced and acknowledged
    /// before. Returns how many records it replayed.
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &self,
        reader: &PartitionReader,
        job: &RestoreJob,
        core: &mut DecisionCore,
        from: Option<i64>,
        until: i64,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64, ProcessorError> {
        let partition = job.partition;
        let partition_count = if self.config.verify_partitioning {
            job.partition_count
        } else {
            None
        };
        let mut out = Vec::with_capacity(64 * 1024);
        let range = Range {
            from,
            until: Some(until),
        };
        let read = reader.read(
            &self.config.input_topic,
            partition,
            range,
            deadline,
            stop,
            |m| {
                out.clear();
                core.process(
                    &Message {
                        value: m.payload().unwrap_or_default(),
                        source: Source {
                            partition,
                            offset: m.offset(),
                        },
                        key_check: Some(KeyCheck {
                            key: m.key(),
                            partition_count,
                        }),
                    },
                    &mut out,
                );
            },
        )?;
        let span = (read.end - read.start).max(0) as u64;
        if read.records != span {
            // Gaps are legal in Kafka (transaction markers, compaction), but a
            // broker that skips records makes the restored state wrong: say so.
            warn!(
                message = "Replay saw fewer input records than the offset range holds; if the input topic has no transactions or compaction, the broker skipped records.",
                partition,
                replayed = read.records,
                span
            );
        }
        Ok(read.records)
    }
}
