//! The Kafka processor: a consumer-group member that decides every input
//! message with its partition's [`DecisionCore`] and produces the decision
//! (and, for invalid input, a dead letter), committing input offsets only
//! after the broker has acknowledged every record they produced.
//!
//! One thread runs the loop: it polls a batch of messages, splits it by
//! partition and hands each partition's share to that partition's worker
//! (its own core, on its own scoped thread when several partitions have
//! input), under one lock of the partition table taken per batch, never per
//! message; then it commits acknowledged offsets every `commit_interval_ms`.
//! Rebalance callbacks run inside `poll` on the same thread: on revoke they
//! flush the producer, commit what is acknowledged, snapshot the partition's
//! state and drop it; on assign they restore the partition's latest
//! snapshot and replay the input from its offset to the committed offset
//! without producing. Messages polled before a rebalance that re-assigned
//! their partition are discarded, since the new owner re-reads them from
//! the committed offset. Every `snapshot_interval_ms` the loop flushes,
//! commits and forks a child process that encodes the partitions that
//! moved from a copy-on-write image of their state ([`snapshot_child`]:
//! the loop waits for the fork only); a snapshot thread collects the bytes
//! and writes them ([`SnapshotStore`]). Revoke and shutdown encode on the
//! loop thread, since they wait for the write anyway.
//!
//! Guarantee: at least once, with redelivered decisions byte-identical to
//! the first ones: a crash re-delivers input from the last commit, and the
//! restored state is exactly the state at that offset.
//!
//! Known limits (README, "Running against Kafka"): while `send` waits on a
//! full producer queue the consumer is not polled, so an outage longer than
//! `max.poll.interval.ms` makes the instance leave the group; and an
//! acknowledgement arriving after a timed-out revoke flush carries no
//! assignment epoch, so it could count for a re-assigned partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use thiserror::Error;
use tracing::{debug, error, info, warn};

use crate::kafka::config::{Guarantee, KafkaConfig};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::sink::{
    Ack, DeadLetter, DecisionSink, OFFSET_MAX, PARTITION_MAX, log_librdkafka,
};
use crate::kafka::snapshot_child::{self, Encoding};
use crate::kafka::state_store::{Manifest, ReaderContext, SnapshotStore, StoreError};
use crate::ops::health::Health;
use crate::ops::http::{QueryAnswer, StateQueries};
use crate::ops::telemetry::{self, BatchTally, Progress};
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};
use coupon_stream_core::partitioner::partition_for;
use coupon_stream_core::reason::{Outcome, Reason};
use coupon_stream_core::snapshot::{self, SnapshotError};
use coupon_stream_core::state::query::{CampaignView, CouponView, campaign_view, coupon_view};

/// How often a progress line is logged.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// At most one warning about invalid input per this interval: a flood of
/// bad values must not become a flood of log lines.
const INVALID_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait of one transactional call; retriable failures are retried
/// up to the transaction timeout.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ProcessorError {
    #[error("creating the Kafka {client}: {source}")]
    Client {
        client: &'static str,
        source: KafkaError,
    },
    #[error("subscribing to {topic}: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error("enqueueing a record: {0}")]
    Produce(#[source] KafkaError),
    #[error("the broker refused the record for input {partition}/{offset}: {error}")]
    Delivery {
        partition: i32,
        offset: i64,
        error: String,
    },
    #[error("input partition {0} or offset {1} is beyond the processor's limits")]
    OutOfRange(i32, i64),
    #[error("a partition worker panicked")]
    WorkerPanicked,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the snapshot of partition {partition} cannot be used: {source}")]
    Snapshot {
        partition: i32,
        source: SnapshotError,
    },
    #[error("the transactional producer cannot go on: {0}")]
    Transaction(#[source] KafkaError),
    #[error("replaying input partition {partition} from {from}: {source}")]
    Replay {
        partition: i32,
        from: String,
        source: KafkaError,
    },
}

/// What a run did, for the final log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    pub messages: u64,
    pub invalid: u64,
    pub coupons_issued: u64,
}

/// One assigned partition.
struct Worker {
    core: DecisionCore,
    /// Created on the first message, at its offset.
    tracker: Option<OffsetTracker>,
    /// Last committed offset.
    committed: i64,
    /// Rebalance generation in which the partition was assigned.
    generation: u64,
    /// Reused buffer for one encoded decision.
    out: Vec<u8>,
    /// This batch's counts, flushed to the metrics after the batch.
    tally: BatchTally,
    /// Input offsets below this were decided, and their decisions
    /// acknowledged, before the restored snapshot was taken: they are
    /// skipped, not decided again. -1 when nothing was restored.
    skip_below: i64,
    /// The partition's current snapshot in the state topic.
    manifest: Option<Manifest>,
    /// A snapshot of this partition is being written.
    snapshot_pending: bool,
}

impl Worker {
    fn new(
        core: DecisionCore,
        generation: u64,
        skip_below: i64,
        manifest: Option<Manifest>,
    ) -> Worker {
        Worker {
            core,
            tracker: None,
            committed: -1,
            generation,
            out: Vec::with_capacity(64 * 1024),
            tally: BatchTally::default(),
            skip_below,
            manifest,
            snapshot_pending: false,
        }
    }
}

/// One partition's snapshot to write. `bytes` are empty while a child
/// process is still encoding them.
struct SnapshotJob {
    partition: i32,
    next_offset: i64,
    bytes: Vec<u8>,
    previous: Option<Manifest>,
}

/// The periodic snapshots of one interval, handed to the snapshot thread:
/// the due partitions, encoded by one forked child from the image the loop
/// took under the partition table lock (`src/snapshot_child.rs`).
struct SnapshotBatch {
    encoding: Encoding,
    /// In the order the cores were given to the child.
    jobs: Vec<SnapshotJob>,
}

/// What the snapshot thread reports back: the partition's new manifest, or
/// `None` when the snapshot failed and the previous one stays in force.
struct SnapshotDone {
    partition: i32,
    manifest: Option<Manifest>,
}

/// Durable state: where snapshots go, and the thread writing them.
struct Durable {
    store: Arc<SnapshotStore>,
    jobs: mpsc::SyncSender<SnapshotBatch>,
    /// A batch is with the snapshot thread (its child encoding, or its
    /// bytes being written). Set by the loop before it forks, cleared by
    /// the thread when the batch is done: at most one child at a time, so
    /// copy-on-write memory is bounded by one extra image of the state.
    busy: Arc<AtomicBool>,
    interval: Duration,
}

/// A child encoding snapshots that sends nothing for this long is killed
/// and its snapshots count as failed (a 10-million-coupon partition takes
/// about 0.5 s; the bound is for a hung child, not a slow one).
const SNAPSHOT_CHILD_SILENCE: Duration = Duration::from_secs(120);

/// One input message as a partition worker sees it: plain slices of the
/// polled message, so a batch can be shared with the worker threads.
struct Input<'a> {
    /// Rebalance generation when the message was polled.
    generation: u64,
    offset: i64,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    /// The input's Kafka timestamp (ms), carried over to its decision and
    /// dead letter as Kafka Streams does.
    timestamp: Option<i64>,
}

/// Decides one partition's share of a batch, in offset order, and enqueues
/// its decisions and dead letters.
fn decide_partition(
    worker: &mut Worker,
    partition: i32,
    inputs: &[Input<'_>],
    partition_count: Option<u32>,
    sink: &DecisionSink,
    input_topic: &str,
    now_ms: u64,
) -> Result<RunSummary, ProcessorError> {
    let mut summary = RunSummary::default();
    for input in inputs {
        let offset = input.offset;
        // Polled before this partition was (re)assigned: the new assignment
        // re-reads it from the committed offset.
        if worker.generation > input.generation {
            continue;
        }
        if worker
            .tracker
            .as_ref()
            .is_some_and(|t| offset < t.next_offset())
        {
            continue;
        }
        if !(0..=PARTITION_MAX).contains(&partition) || !(0..=OFFSET_MAX).contains(&offset) {
            return Err(ProcessorError::OutOfRange(partition, offset));
        }
        if offset < worker.skip_below {
            // Decided and acknowledged before the restored snapshot.
            worker
                .tracker
                .get_or_insert_with(|| OffsetTracker::new(offset))
                .record(offset, 0);
            continue;
        }
        worker.out.clear();
        let verdict = worker.core.process(
            &Message {
                value: input.value,
                source: Source { partition, offset },
                key_check: Some(KeyCheck {
                    key: input.key,
                    partition_count,
                }),
            },
            &mut worker.out,
        );
        sink.send_decision(partition, offset, input.key, input.timestamp, &worker.out)
            .map_err(ProcessorError::Produce)?;
        let mut records = 1;
        if let (Outcome::Invalid, Some(Reason::Invalid(reason))) = (verdict.outcome, verdict.reason)
        {
            sink.send_dead_letter(&DeadLetter {
                source_topic: input_topic,
                partition,
                offset,
                key: input.key,
                timestamp: input.timestamp,
                value: input.value,
                reason: reason.as_str(),
            })
            .map_err(ProcessorError::Produce)?;
            records = 2;
            worker.tally.record_dead_letter();
        }
        worker.tally.record(&verdict, now_ms);
        worker
            .tracker
            .get_or_insert_with(|| OffsetTracker::new(offset))
            .record(offset, records);
        summary.messages += 1;
        summary.coupons_issued += verdict.coupons_issued as u64;
        if verdict.outcome == Outcome::Invalid {
            summary.invalid += 1;
        }
    }
    Ok(summary)
}

struct Shared {
    workers: HashMap<i32, Worker>,
    acks: Receiver<Ack>,
    /// Input topic partition count, for the `wrong_partition` check.
    partition_count: Option<u32>,
    /// The first delivery the broker refused, or a restore that failed;
    /// the processor stops on it.
    failure: Option<ProcessorError>,
    /// Results from the snapshot thread.
    snapshots_done: Option<Receiver<SnapshotDone>>,
    /// Exactly-once: a transaction is open.
    txn_open: bool,
    /// Exactly-once: the last transaction was aborted, so every worker's
    /// state is ahead of the committed offsets; the loop rebuilds them
    /// (restore to the committed offset) and seeks back before it decides
    /// anything else.
    rewind_pending: bool,
}

struct SourceContext {
    config: KafkaConfig,
    core: CoreConfig,
    sink: Arc<DecisionSink>,
    shared: Arc<Mutex<Shared>>,
    generation: AtomicU64,
    health: Arc<Health>,
    progress: Arc<Progress>,
    durable: Option<Durable>,
}

impl SourceContext {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock would already have ended the run.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for outstanding records, then applies every acknowledgement.
    fn drain(&self, shared: &mut Shared) {
        let timeout = Duration::from_millis(self.config.drain_timeout_ms);
        if let Err(error) = self.sink.flush(timeout) {
            warn!(
                message = "Not every decision was acknowledged in time; their offsets stay uncommitted.",
                %error,
                in_flight = self.sink.in_flight()
            );
        }
        self.apply_acks(shared);
    }

    /// Commits the progress of each listed partition (all when `None`):
    /// at least once, its acknowledged offset; exactly once, the open
    /// transaction, which holds every partition's records and offsets.
    fn commit(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        shared: &mut Shared,
        only: Option<&[i32]>,
    ) {
        match self.config.guarantee {
            Guarantee::AtLeastOnce => self.commit_acknowledged(consumer, shared, only),
            Guarantee::ExactlyOnce => {
                if let Err(error) = self.commit_transaction(consumer, shared) {
                    self.abort_transaction(shared, &error);
                }
            }
        }
    }

    /// Commits each listed partition's acknowledged offset (all when `None`).
    fn commit_acknowledged(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        shared: &mut Shared,
        only: Option<&[i32]>,
    ) {
        let mut tpl = TopicPartitionList::new();
        let mut advanced = Vec::new();
        for (&partition, worker) in &shared.workers {
            if only.is_some_and(|ps| !ps.contains(&partition)) {
                continue;
            }
            let Some(tracker) = &worker.tracker else {
                continue;
            };
            let offset = tracker.committable();
            if offset > worker.committed {
                if let Err(error) = tpl.add_partition_offset(
                    &self.config.input_topic,
                    partition,
                    Offset::Offset(offset),
                ) {
                    warn!(message = "Cannot list offset for commit.", %error, partition, offset);
                    continue;
                }
                advanced.push((partition, offset));
            }
        }
        if advanced.is_empty() {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                metrics::counter!(telemetry::COMMITS).increment(1);
                for (partition, offset) in advanced {
                    if let Some(w) = shared.workers.get_mut(&partition) {
                        w.committed = offset;
                    }
                }
            }
            Err(error) => {
                metrics::counter!(telemetry::COMMIT_ERRORS).increment(1);
                warn!(message = "Failed to commit offsets; will retry.", %error);
            }
        }
    }
}

/// Exactly-once: the transaction's life cycle.
impl SourceContext {
    /// Opens a transaction unless one is open. On failure the loop must not
    /// decide: the caller skips the batch (it is re-read after the rewind).
    fn begin_transaction(&self, shared: &mut Shared) -> bool {
        if shared.txn_open || shared.rewind_pending || shared.failure.is_some() {
            return shared.txn_open;
        }
        match self.sink.begin_transaction() {
            Ok(()) => {
                shared.txn_open = true;
                true
            }
            Err(error) => {
                // A failed commit or abort left the producer needing one.
                shared.txn_open = true;
                self.abort_transaction(shared, &error);
                false
            }
        }
    }

    /// Adds every partition's decided offset to the open transaction and
    /// commits it. Retriable errors (a coordinator moving, a timeout, the
    /// broker away) are retried until they stop: librdkafka allows no abort
    /// while a retriable commit is pending, and once the broker is back the
    /// commit either succeeds or fails for good (the broker aborted the
    /// transaction after its timeout), and is aborted and rewound.
    fn commit_transaction(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        shared: &mut Shared,
    ) -> Result<(), KafkaError> {
        if !shared.txn_open {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        let mut advanced = Vec::new();
        for (&partition, worker) in &shared.workers {
            let Some(offset) = worker.tracker.as_ref().map(OffsetTracker::next_offset) else {
                continue;
            };
            if offset > worker.committed {
                tpl.add_partition_offset(
                    &self.config.input_topic,
                    partition,
                    Offset::Offset(offset),
                )?;
                advanced.push((partition, offset));
            }
        }
        if !advanced.is_empty() {
            let group = consumer
                .group_metadata()
                .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            retry_transactional("send offsets to transaction", || {
                self.sink
                    .send_offsets_to_transaction(&tpl, &group, TRANSACTION_CALL_TIMEOUT)
            })?;
        }
        retry_transactional("commit transaction", || {
            self.sink.commit_transaction(TRANSACTION_CALL_TIMEOUT)
        })?;
        shared.txn_open = false;
        metrics::counter!(telemetry::COMMITS).increment(1);
        for (partition, offset) in advanced {
            if let Some(w) = shared.workers.get_mut(&partition) {
                w.committed = offset;
            }
        }
        Ok(())
    }

    /// Aborts the open transaction after `cause`, retrying while the
    /// broker is away, and marks every partition for a rewind. A fatal
    /// error (this producer was fenced by another with the same
    /// `transactional.id`) stops the processor.
    fn abort_transaction(&self, shared: &mut Shared, cause: &KafkaError) {
        if is_fatal(cause) {
            error!(message = "Fatal transaction error; stopping.", error = %cause);
            if shared.failure.is_none() {
                shared.failure = Some(ProcessorError::Transaction(cause.clone()));
            }
            return;
        }
        warn!(message = "Transaction failed; aborting it and rewinding every partition to its committed offset.", error = %cause);
        metrics::counter!(telemetry::COMMIT_ERRORS).increment(1);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.sink.abort_transaction(TRANSACTION_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(error) if is_fatal(&error) => {
                    error!(message = "Cannot abort the transaction; stopping.", %error);
                    if shared.failure.is_none() {
                        shared.failure = Some(ProcessorError::Transaction(error));
                    }
                    return;
                }
                Err(error) => {
                    warn!(message = "Aborting the transaction failed; retrying.", %error, ?backoff);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        metrics::counter!(telemetry::TRANSACTION_ABORTS).increment(1);
        shared.txn_open = false;
        shared.rewind_pending = true;
    }

    /// Rebuilds every assigned partition's state at its committed offset
    /// (snapshot plus silent replay) and seeks the consumer back there,
    /// after an aborted transaction. Messages polled before the rewind are
    /// dropped by the generation check.
    fn rewind(&self, consumer: &BaseConsumer<SourceContext>, shared: &mut Shared) {
        shared.rewind_pending = false;
        // Acknowledgements of the aborted records belong to the old state.
        self.apply_acks(shared);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let partitions: Vec<i32> = shared.workers.keys().copied().collect();
        self.health.set_restoring(true);
        for partition in partitions {
            let restored = self.restore(consumer, partition, shared.partition_count, true);
            let (core, skip_below, manifest, committed) = match restored {
                Ok(r) => r,
                Err(error) => {
                    error!(message = "Cannot rebuild partition state after an abort; stopping.", partition, %error);
                    if shared.failure.is_none() {
                        shared.failure = Some(error);
                    }
                    break;
                }
            };
            let position = committed.map_or(Offset::Beginning, Offset::Offset);
            if let Err(error) = consumer.seek(
                &self.config.input_topic,
                partition,
                position,
                Duration::from_secs(10),
            ) {
                error!(message = "Cannot seek back after an abort; stopping.", partition, %error);
                if shared.failure.is_none() {
                    shared.failure = Some(ProcessorError::Transaction(error));
                }
                break;
            }
            let mut worker = Worker::new(core, generation, skip_below, manifest);
            worker.committed = committed.unwrap_or(-1);
            shared.workers.insert(partition, worker);
            info!(message = "Partition rewound to its committed offset.", partition, offset = ?committed);
        }
        self.health.set_restoring(false);
    }
}

impl SourceContext {
    /// The state to start partition `partition` with: its latest snapshot,
    /// replayed silently up to the committed offset, or an empty core.
    /// Returns the core, the offset below which input is skipped, the
    /// snapshot's manifest and the committed offset. Without durable state
    /// a new owner starts empty, unless `rebuild` (a rewind after an
    /// aborted transaction), which replays the input from its beginning.
    #[allow(clippy::type_complexity)]
    fn restore(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        partition: i32,
        partition_count: Option<u32>,
        rebuild: bool,
    ) -> Result<(DecisionCore, i64, Option<Manifest>, Option<i64>), ProcessorError> {
        let loaded = match &self.durable {
            Some(durable) => durable.store.load(partition)?,
            None if rebuild => None,
            None => return Ok((DecisionCore::new(self.core), -1, None, None)),
        };
        let started = Instant::now();
        let committed = committed_offset(consumer, &self.config.input_topic, partition);
        // No snapshot yet: the state is what the input from its beginning
        // up to the committed offset makes it.
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
        let mut replayed = 0u64;
        if let Some(committed) = committed.filter(|&c| c > from.unwrap_or(0)) {
            replayed = replay_silently(
                &self.config,
                &mut core,
                partition,
                from.map_or(Offset::Beginning, Offset::Offset),
                committed,
                if self.config.verify_partitioning {
                    partition_count
                } else {
                    None
                },
            )?;
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
        Ok((core, skip_below, manifest, committed))
    }

    /// Takes snapshots of the listed partitions (all when `None`) whose
    /// state moved since their last one: flushes and commits first, so a
    /// snapshot never covers an input offset whose decision is not durably
    /// written and committed. `wait`: write them on this thread (revoke,
    /// shutdown); otherwise hand them to the snapshot thread.
    fn snapshot(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        shared: &mut Shared,
        only: Option<&[i32]>,
        wait: bool,
    ) {
        let Some(durable) = &self.durable else {
            return;
        };
        let started = Instant::now();
        self.drain(shared);
        self.commit(consumer, shared, only);
        // Partitions whose state moved since their last snapshot, with
        // every input committed.
        let mut due: Vec<(i32, i64)> = Vec::new();
        for (&partition, worker) in &shared.workers {
            if only.is_some_and(|ps| !ps.contains(&partition)) || worker.snapshot_pending {
                continue;
            }
            let Some(next_offset) = worker.tracker.as_ref().map(OffsetTracker::next_offset) else {
                continue;
            };
            if worker.committed != next_offset
                || worker
                    .manifest
                    .as_ref()
                    .is_some_and(|m| m.next_offset >= next_offset)
            {
                continue;
            }
            due.push((partition, next_offset));
        }
        if due.is_empty() {
            return;
        }
        if wait {
            // Revoke and shutdown block until written anyway: encode here.
            for (partition, next_offset) in due {
                let Some(worker) = shared.workers.get_mut(&partition) else {
                    continue;
                };
                let mut bytes = Vec::new();
                snapshot::encode(&worker.core, &mut bytes);
                let job = SnapshotJob {
                    partition,
                    next_offset,
                    bytes,
                    previous: worker.manifest.clone(),
                };
                if let Some(manifest) = write_snapshot(&durable.store, job).manifest {
                    worker.manifest = Some(manifest);
                }
            }
        } else {
            self.snapshot_in_child(durable, shared, &due);
        }
        metrics::histogram!(telemetry::SNAPSHOT_STALL).record(started.elapsed().as_secs_f64());
    }

    /// Forks a child that encodes the `due` partitions from the state as it
    /// is now (the caller holds the partition table lock) and hands it to
    /// the snapshot thread; the loop waits only for the fork. Skipped while
    /// the previous batch is still with the snapshot thread.
    fn snapshot_in_child(&self, durable: &Durable, shared: &mut Shared, due: &[(i32, i64)]) {
        if durable.busy.swap(true, Ordering::AcqRel) {
            debug!(message = "Previous snapshots still being written; next interval retries.");
            return;
        }
        let cores: Vec<&DecisionCore> = due
            .iter()
            .filter_map(|(p, _)| shared.workers.get(p).map(|w| &w.core))
            .collect();
        let encoding = match snapshot_child::start(&cores) {
            Ok(encoding) => encoding,
            Err(error) => {
                durable.busy.store(false, Ordering::Release);
                metrics::counter!(telemetry::SNAPSHOT_FAILURES).increment(due.len() as u64);
                warn!(message = "Cannot start encoding snapshots; the previous ones stay in force and the next interval retries.", %error);
                return;
            }
        };
        let jobs: Vec<SnapshotJob> = due
            .iter()
            .filter_map(|&(partition, next_offset)| {
                shared.workers.get(&partition).map(|w| SnapshotJob {
                    partition,
                    next_offset,
                    bytes: Vec::new(),
                    previous: w.manifest.clone(),
                })
            })
            .collect();
        let partitions: Vec<i32> = jobs.iter().map(|j| j.partition).collect();
        match durable.jobs.try_send(SnapshotBatch { encoding, jobs }) {
            Ok(()) => {
                for p in partitions {
                    if let Some(w) = shared.workers.get_mut(&p) {
                        w.snapshot_pending = true;
                    }
                }
            }
            Err(_) => {
                // The snapshot thread is gone (or, impossibly, busy): the
                // dropped batch kills and reaps its child.
                durable.busy.store(false, Ordering::Release);
                metrics::counter!(telemetry::SNAPSHOT_FAILURES).increment(due.len() as u64);
                warn!(
                    message = "The snapshot thread is not taking snapshots; the previous ones stay in force."
                );
            }
        }
    }
}

/// The snapshot thread's work on one batch: collects the child's bytes,
/// then writes each partition's snapshot. A child that fails fails every
/// snapshot of its batch, like any other snapshot failure.
fn write_batch(store: &SnapshotStore, batch: SnapshotBatch) -> Vec<SnapshotDone> {
    let SnapshotBatch { encoding, jobs } = batch;
    match encoding.collect(SNAPSHOT_CHILD_SILENCE) {
        Ok(encoded) => jobs
            .into_iter()
            .zip(encoded)
            .map(|(job, bytes)| write_snapshot(store, SnapshotJob { bytes, ..job }))
            .collect(),
        Err(error) => {
            metrics::counter!(telemetry::SNAPSHOT_FAILURES).increment(jobs.len() as u64);
            let partitions: Vec<i32> = jobs.iter().map(|j| j.partition).collect();
            warn!(message = "Encoding snapshots failed; the previous ones stay in force and the next interval retries.", ?partitions, %error);
            jobs.into_iter()
                .map(|job| SnapshotDone {
                    partition: job.partition,
                    manifest: None,
                })
                .collect()
        }
    }
}

/// Applies the snapshot thread's results to the workers.
fn apply_snapshots_done(shared: &mut Shared) {
    let Some(done) = &shared.snapshots_done else {
        return;
    };
    let results: Vec<SnapshotDone> = done.try_iter().collect();
    for done in results {
        if let Some(worker) = shared.workers.get_mut(&done.partition) {
            worker.snapshot_pending = false;
            if let Some(manifest) = done.manifest {
                worker.manifest = Some(manifest);
            }
        }
    }
    let bytes: u64 = shared
        .workers
        .values()
        .filter_map(|w| w.manifest.as_ref().map(|m| m.bytes))
        .sum();
    metrics::gauge!(telemetry::SNAPSHOT_BYTES).set(bytes as f64);
}

/// Writes one snapshot, with its metrics and log line.
fn write_snapshot(store: &SnapshotStore, job: SnapshotJob) -> SnapshotDone {
    let started = Instant::now();
    let result = store.save(
        job.partition,
        job.next_offset,
        &job.bytes,
        job.previous.as_ref(),
    );
    match &result {
        Ok(manifest) => {
            metrics::histogram!(telemetry::SNAPSHOT_DURATION)
                .record(started.elapsed().as_secs_f64());
            debug!(
                message = "Snapshot written.",
                partition = job.partition,
                next_offset = job.next_offset,
                bytes = manifest.bytes
            );
        }
        Err(error) => {
            metrics::counter!(telemetry::SNAPSHOT_FAILURES).increment(1);
            warn!(message = "Snapshot failed; the previous one stays in force and the next interval retries.", partition = job.partition, %error);
        }
    }
    SnapshotDone {
        partition: job.partition,
        manifest: result.ok(),
    }
}

/// Exactly once: registers the transactional producer, retrying while the
/// broker is away (logged), until `shutdown`.
fn init_transactions(sink: &DecisionSink, shutdown: &AtomicBool) -> Result<(), ProcessorError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sink.init_transactions(TRANSACTION_CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(error) if is_fatal(&error) || shutdown.load(Ordering::Relaxed) => {
                return Err(ProcessorError::Transaction(error));
            }
            Err(error) => {
                warn!(message = "Cannot initialize transactions yet; retrying.", %error, ?backoff);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs one transactional call, retrying retriable errors (logged, with
/// backoff up to 5 s) for as long as they last.
fn retry_transactional(
    what: &str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(error) if is_retriable(&error) => {
                warn!(message = "Transactional call failed; retrying.", what, %error, ?backoff);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The producer cannot go on: fenced by a newer producer with the same
/// `transactional.id`, or a broker without transactions (Tansu 0.6 has no
/// EndTxn).
fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            e.is_fatal() || e.code() == RDKafkaErrorCode::UnsupportedFeature
        }
        _ => false,
    }
}

fn is_retriable(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            e.is_retriable() && !e.txn_requires_abort() && !is_fatal(error)
        }
        _ => false,
    }
}

/// The group's committed offset of an input partition, if any.
fn committed_offset(
    consumer: &BaseConsumer<SourceContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .ok()?;
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// Feeds input offsets `from..until` of `partition` to `core`, discarding
/// the decisions: they were produced and acknowledged before the restart.
fn replay_silently(
    config: &KafkaConfig,
    core: &mut DecisionCore,
    partition: i32,
    from: Offset,
    until: i64,
    partition_count: Option<u32>,
) -> Result<u64, ProcessorError> {
    let replay_error = |source| ProcessorError::Replay {
        partition,
        from: format!("{from:?}"),
        source,
    };
    let from_offset = match from {
        Offset::Offset(o) => Some(o),
        _ => None,
    };
    let mut c = config.consumer_config();
    c.set("group.id", format!("{}-state-replay", config.group_id))
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<ReaderContext> =
        c.create_with_context(ReaderContext).map_err(replay_error)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&config.input_topic, partition, from)
        .map_err(replay_error)?;
    consumer.assign(&tpl).map_err(replay_error)?;
    let started = Instant::now();
    let timeout = Duration::from_millis(config.restore_timeout_ms);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut replayed = 0;
    loop {
        if started.elapsed() > timeout {
            return Err(replay_error(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            // The end of what the broker has, as of one fetch: done only
            // if the position has reached `until` (a broker may report an
            // end before the last batch is visible; Tansu 0.6 was seen to).
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let position = consumer.position().ok().and_then(|tpl| {
                    tpl.find_partition(&config.input_topic, partition)
                        .map(|e| e.offset())
                });
                if matches!(position, Some(Offset::Offset(p)) if p >= until) {
                    break;
                }
                continue;
            }
            Some(Err(error)) => return Err(replay_error(error)),
            Some(Ok(m)) => m,
        };
        let offset = m.offset();
        if offset >= until {
            break;
        }
        out.clear();
        core.process(
            &Message {
                value: m.payload().unwrap_or_default(),
                source: Source { partition, offset },
                key_check: Some(KeyCheck {
                    key: m.key(),
                    partition_count,
                }),
            },
            &mut out,
        );
        replayed += 1;
        if offset + 1 >= until {
            break;
        }
    }
    let span = until - from_offset.unwrap_or(until - replayed as i64);
    if replayed as i64 != span {
        // Gaps are legal in Kafka (transaction markers, compaction), but a
        // broker that skips records makes the restored state wrong: say so.
        warn!(
            message = "Replay saw fewer input records than the offset range holds; if the input topic has no transactions or compaction, the broker skipped records.",
            partition, replayed, span
        );
    }
    Ok(replayed)
}

impl SourceContext {
    /// Applies the acknowledgements received since the last call to the
    /// offset trackers; a refused record stops an at-least-once processor.
    fn apply_acks(&self, shared: &mut Shared) {
        let mut acknowledged = 0;
        while let Ok(ack) = shared.acks.try_recv() {
            match ack.error {
                // Exactly once: the transaction's commit fails on it, and the
                // processor aborts and rewinds; records purged by an abort
                // report errors too.
                Some(error) if self.config.guarantee == Guarantee::ExactlyOnce => {
                    metrics::counter!(telemetry::PRODUCE_ERRORS).increment(1);
                    debug!(message = "Record of a failed transaction.", partition = ack.partition, offset = ack.offset, %error);
                }
                Some(error) => {
                    metrics::counter!(telemetry::PRODUCE_ERRORS).increment(1);
                    error!(message = "Broker refused a record.", partition = ack.partition, offset = ack.offset, %error);
                    if shared.failure.is_none() {
                        shared.failure = Some(ProcessorError::Delivery {
                            partition: ack.partition,
                            offset: ack.offset,
                            error,
                        });
                    }
                }
                None => {
                    acknowledged += 1;
                    if let Some(tracker) = shared
                        .workers
                        .get_mut(&ack.partition)
                        .and_then(|w| w.tracker.as_mut())
                    {
                        tracker.ack(ack.offset);
                    }
                }
            }
        }
        self.progress.add_acknowledged(acknowledged);
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka("consumer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        metrics::counter!(telemetry::BROKER_ERRORS).increment(1);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_brokers_down(true);
        }
        warn!(message = "Consumer error; librdkafka retries.", %error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.health.set_brokers_down(false);
        }
        let Some(topic) = statistics.topics.get(&self.config.input_topic) else {
            return;
        };
        let owned: Vec<i32> = self.lock().workers.keys().copied().collect();
        for (&partition, p) in &topic.partitions {
            // -1: librdkafka does not know yet; partitions not owned are
            // reported as 0 rather than left stale.
            let lag = if owned.contains(&partition) {
                p.consumer_lag.max(0)
            } else {
                0
            };
            if partition >= 0 {
                metrics::gauge!(telemetry::CONSUMER_LAG, "partition" => partition.to_string())
                    .set(lag as f64);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        let revoked: Vec<i32> = tpl
            .elements_for_topic(&self.config.input_topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut shared = self.lock();
        self.drain(&mut shared);
        self.commit(consumer, &mut shared, Some(&revoked));
        // The next owner restores from here, replaying nothing.
        self.snapshot(consumer, &mut shared, Some(&revoked), true);
        for p in &revoked {
            shared.workers.remove(p);
        }
        metrics::gauge!(telemetry::ASSIGNED_PARTITIONS).set(shared.workers.len() as f64);
        info!(
            message = "Partitions revoked.",
            ?revoked,
            remaining = shared.workers.len()
        );
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            if let Rebalance::Error(error) = rebalance {
                warn!(message = "Rebalance error.", %error);
            }
            return;
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // Read even when the check is off: state queries locate sellers by it.
        let partition_count = {
            match consumer.fetch_metadata(Some(&self.config.input_topic), Duration::from_secs(10)) {
                Ok(m) => m
                    .topics()
                    .iter()
                    .find(|t| t.name() == self.config.input_topic)
                    .map(|t| t.partitions().len() as u32)
                    .filter(|&n| n > 0),
                Err(error) => {
                    warn!(message = "Cannot read the input topic's partition count; wrong_partition is not checked until the next rebalance.", %error);
                    None
                }
            }
        };
        let assigned: Vec<i32> = tpl
            .elements_for_topic(&self.config.input_topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut shared = self.lock();
        if partition_count.is_some() {
            shared.partition_count = partition_count;
        }
        let fresh: Vec<i32> = assigned
            .iter()
            .copied()
            .filter(|p| !shared.workers.contains_key(p))
            .collect();
        if !fresh.is_empty() && self.durable.is_some() {
            self.health.set_restoring(true);
        }
        for p in fresh {
            match self.restore(consumer, p, shared.partition_count, false) {
                Ok((core, skip_below, manifest, _)) => {
                    shared
                        .workers
                        .insert(p, Worker::new(core, generation, skip_below, manifest));
                }
                Err(error) => {
                    error!(message = "Cannot restore partition state; stopping.", partition = p, %error);
                    if shared.failure.is_none() {
                        shared.failure = Some(error);
                    }
                }
            }
        }
        self.health.set_restoring(false);
        metrics::gauge!(telemetry::ASSIGNED_PARTITIONS).set(shared.workers.len() as f64);
        self.health.set_assigned(true);
        if !assigned.is_empty() {
            info!(message = "Partitions assigned.", ?assigned, total = shared.workers.len(), partition_count = ?shared.partition_count);
        }
    }
}

/// The processor's partition table, shared with the HTTP state queries.
#[derive(Clone)]
pub struct LiveState {
    shared: Arc<Mutex<Shared>>,
}

impl LiveState {
    fn lookup<T>(
        &self,
        seller_id: &str,
        view: impl FnOnce(&DecisionCore) -> Option<T>,
    ) -> QueryAnswer<T> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let Some(count) = shared.partition_count else {
            return QueryAnswer::Unavailable("the input topic's partition count is not known yet");
        };
        let partition = partition_for(seller_id.as_bytes(), count) as i32;
        match shared.workers.get(&partition) {
            None => QueryAnswer::NotOwned { partition },
            Some(worker) => match view(&worker.core) {
                Some(found) => QueryAnswer::Found(found),
                None => QueryAnswer::NotFound { partition },
            },
        }
    }
}

impl StateQueries for LiveState {
    fn campaign(&self, seller_id: &str, campaign_id: &str) -> QueryAnswer<CampaignView> {
        self.lookup(seller_id, |core| {
            campaign_view(core.state(), core.watermark(), seller_id, campaign_id)
        })
    }

    fn coupon(&self, seller_id: &str, coupon_id: &str) -> QueryAnswer<CouponView> {
        self.lookup(seller_id, |core| {
            coupon_view(core.state(), core.watermark(), seller_id, coupon_id)
        })
    }
}

/// One consumer-group member: build it, hand its [`LiveState`] and
/// [`Progress`] to the adapters that read them, then [`Processor::run`].
pub struct Processor {
    config: KafkaConfig,
    core: CoreConfig,
    health: Arc<Health>,
    progress: Arc<Progress>,
    live: LiveState,
    acks: mpsc::Sender<Ack>,
}

impl Processor {
    pub fn new(config: KafkaConfig, core: CoreConfig, health: Arc<Health>) -> Processor {
        let (acks, acks_rx) = mpsc::channel();
        Processor {
            config,
            core,
            health,
            progress: Arc::new(Progress::default()),
            live: LiveState {
                shared: Arc::new(Mutex::new(Shared {
                    workers: HashMap::new(),
                    acks: acks_rx,
                    partition_count: None,
                    failure: None,
                    snapshots_done: None,
                    txn_open: false,
                    rewind_pending: false,
                })),
            },
            acks,
        }
    }

    pub fn live_state(&self) -> LiveState {
        self.live.clone()
    }

    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Runs until `shutdown` is set, then drains, commits and leaves the
    /// group.
    pub fn run(self, shutdown: &AtomicBool) -> Result<RunSummary, ProcessorError> {
        let Processor {
            config,
            core,
            health,
            progress,
            live,
            acks,
        } = self;
        let sink = Arc::new(
            DecisionSink::new(&config, acks, Arc::clone(&health)).map_err(|source| {
                ProcessorError::Client {
                    client: "producer",
                    source,
                }
            })?,
        );
        if config.guarantee == Guarantee::ExactlyOnce {
            init_transactions(&sink, shutdown)?;
        }
        let mut snapshot_thread = None;
        let durable = if config.snapshot_interval_ms > 0 {
            let store = Arc::new(SnapshotStore::new(&config)?);
            let (jobs, queued) = mpsc::sync_channel::<SnapshotBatch>(1);
            let (done_tx, done_rx) = mpsc::channel();
            let writer = Arc::clone(&store);
            let busy = Arc::new(AtomicBool::new(false));
            let idle = Arc::clone(&busy);
            let thread = std::thread::Builder::new()
                .name("snapshots".into())
                .spawn(move || {
                    for batch in queued {
                        let sent = write_batch(&writer, batch)
                            .into_iter()
                            .all(|done| done_tx.send(done).is_ok());
                        idle.store(false, Ordering::Release);
                        if !sent {
                            break;
                        }
                    }
                })
                .map_err(|_| ProcessorError::WorkerPanicked)?;
            snapshot_thread = Some(thread);
            live.shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .snapshots_done = Some(done_rx);
            Some(Durable {
                store,
                jobs,
                busy,
                interval: Duration::from_millis(config.snapshot_interval_ms),
            })
        } else {
            None
        };
        let context = SourceContext {
            config: config.clone(),
            core,
            sink: Arc::clone(&sink),
            shared: live.shared,
            generation: AtomicU64::new(0),
            health: Arc::clone(&health),
            progress: Arc::clone(&progress),
            durable,
        };
        let consumer: BaseConsumer<SourceContext> = config
            .consumer_config()
            .create_with_context(context)
            .map_err(|source| ProcessorError::Client {
                client: "consumer",
                source,
            })?;
        consumer
            .subscribe(&[&config.input_topic])
            .map_err(|source| ProcessorError::Subscribe {
                topic: config.input_topic.clone(),
                source,
            })?;
        info!(
            message = "Processor started.",
            brokers = %config.brokers,
            group = %config.group_id,
            input = %config.input_topic,
            output = %config.output_topic,
            dlq = %config.dlq_topic
        );
        let result = consume(&consumer, &config, &sink, &progress, shutdown);
        health.set_stopping();
        let context = consumer.context();
        info!(
            message = "Draining before exit.",
            in_flight = sink.in_flight()
        );
        {
            let mut shared = context.lock();
            context.drain(&mut shared);
            context.commit(&consumer, &mut shared, None);
            // The next owner of each partition restores from here.
            context.snapshot(&consumer, &mut shared, None, true);
        }
        consumer.unsubscribe();
        // Closes the snapshot queue; the thread finishes what it holds, so
        // no client of this processor outlives `run`.
        drop(consumer);
        if let Some(thread) = snapshot_thread
            && thread.join().is_err()
        {
            warn!(message = "The snapshot thread panicked.");
        }
        if let Ok(summary) = &result {
            info!(
                message = "Processor stopped.",
                messages = summary.messages,
                invalid = summary.invalid
            );
        }
        result
    }
}

/// The poll, decide, commit loop.
fn consume(
    consumer: &BaseConsumer<SourceContext>,
    config: &KafkaConfig,
    sink: &DecisionSink,
    progress: &Progress,
    shutdown: &AtomicBool,
) -> Result<RunSummary, ProcessorError> {
    let mut summary = RunSummary::default();
    let mut batch: Vec<(u64, BorrowedMessage<'_>)> = Vec::with_capacity(config.batch_messages_max);
    let commit_interval = Duration::from_millis(config.commit_interval_ms);
    let mut last_commit = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_snapshot = Instant::now();
    let mut invalid_warned: Option<(Instant, u64)> = None;
    let context = consumer.context();
    let batch_duration = metrics::histogram!(telemetry::BATCH_DURATION);

    loop {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(summary);
        }
        batch.clear();
        let mut timeout = Duration::from_millis(100);
        while batch.len() < config.batch_messages_max {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => batch.push((context.generation.load(Ordering::SeqCst), m)),
                Some(Err(error)) => {
                    warn!(message = "Consumer error; librdkafka retries.", %error);
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if !batch.is_empty() {
            context.health.set_brokers_down(false);
        }
        let started = Instant::now();
        let now_ms = wall_clock_ms();

        let mut shared = context.lock();
        context.apply_acks(&mut shared);
        if shared.rewind_pending {
            context.rewind(consumer, &mut shared);
            continue;
        }
        if let Some(failure) = shared.failure.take() {
            return Err(failure);
        }
        if config.guarantee == Guarantee::ExactlyOnce
            && !batch.is_empty()
            && !context.begin_transaction(&mut shared)
        {
            // Aborted: the rewind re-reads this batch.
            continue;
        }
        let partition_count = if config.verify_partitioning {
            shared.partition_count
        } else {
            None
        };
        // Split the batch by partition; each partition's messages go to its
        // own worker, on its own thread when several partitions have input.
        // A few allocations per batch, none per message.
        let mut by_partition: HashMap<i32, Vec<Input<'_>>> = HashMap::new();
        for (generation, m) in &batch {
            by_partition.entry(m.partition()).or_default().push(Input {
                generation: *generation,
                offset: m.offset(),
                key: m.key(),
                value: m.payload().unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            });
        }
        let jobs: Vec<(i32, &mut Worker, &[Input<'_>])> = shared
            .workers
            .iter_mut()
            .filter_map(|(&p, w)| {
                by_partition
                    .get(&p)
                    .filter(|inputs| !inputs.is_empty())
                    .map(|inputs| (p, w, inputs.as_slice()))
            })
            .collect();
        let decide = |(partition, worker, inputs): (i32, &mut Worker, &[Input<'_>])| {
            decide_partition(
                worker,
                partition,
                inputs,
                partition_count,
                sink,
                &config.input_topic,
                now_ms,
            )
        };
        let results: Vec<Result<RunSummary, ProcessorError>> = if jobs.len() <= 1 {
            jobs.into_iter().map(decide).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .into_iter()
                    .map(|job| scope.spawn(move || decide(job)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(Err(ProcessorError::WorkerPanicked)))
                    .collect()
            })
        };
        for worker in shared.workers.values_mut() {
            progress.add(&worker.tally);
            worker.tally.flush();
        }
        let mut failed = None;
        for result in results {
            match result {
                Ok(delta) => {
                    summary.messages += delta.messages;
                    summary.invalid += delta.invalid;
                    summary.coupons_issued += delta.coupons_issued;
                }
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        match failed {
            None => {}
            // Exactly once: the producer refuses records once its
            // transaction has failed; abort it and rewind.
            Some(ProcessorError::Produce(error)) if config.guarantee == Guarantee::ExactlyOnce => {
                context.abort_transaction(&mut shared, &error);
                continue;
            }
            Some(failure) => return Err(failure),
        }
        if !batch.is_empty() {
            batch_duration.record(started.elapsed().as_secs_f64());
        }
        if last_commit.elapsed() >= commit_interval {
            context.apply_acks(&mut shared);
            context.commit(consumer, &mut shared, None);
            last_commit = Instant::now();
        }
        apply_snapshots_done(&mut shared);
        if let Some(durable) = &context.durable
            && last_snapshot.elapsed() >= durable.interval
        {
            context.snapshot(consumer, &mut shared, None, false);
            last_snapshot = Instant::now();
        }
        let warned = invalid_warned.map_or(0, |(_, n)| n);
        if summary.invalid > warned
            && invalid_warned.is_none_or(|(at, _)| at.elapsed() >= INVALID_WARNING_INTERVAL)
        {
            warn!(
                message = "Invalid input values; each got an `invalid` decision and a copy in the dead-letter topic.",
                since_last_warning = summary.invalid - warned,
                total = summary.invalid,
                dlq = %config.dlq_topic
            );
            invalid_warned = Some((Instant::now(), summary.invalid));
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            publish_state_size(&shared);
            info!(
                message = "Progress.",
                messages = summary.messages,
                invalid = summary.invalid,
                partitions = shared.workers.len(),
                in_flight = sink.in_flight()
            );
            last_progress = Instant::now();
        }
    }
}

/// Sets the state-size gauges from every assigned partition.
fn publish_state_size(shared: &Shared) {
    let (mut coupons, mut campaigns, mut bytes) = (0u64, 0u64, 0u64);
    for worker in shared.workers.values() {
        let stats = worker.core.stats();
        coupons += stats.coupons;
        campaigns += stats.campaigns as u64;
        bytes += stats.heap_bytes as u64;
    }
    metrics::gauge!(telemetry::STATE_COUPONS).set(coupons as f64);
    metrics::gauge!(telemetry::STATE_CAMPAIGNS).set(campaigns as f64);
    metrics::gauge!(telemetry::STATE_BYTES).set(bytes as f64);
}

/// Milliseconds since the Unix epoch, for the event-time lag metric only:
/// decisions never read the clock.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs a processor with no HTTP adapter reading its state or health.
pub fn run(
    config: KafkaConfig,
    core: CoreConfig,
    shutdown: &AtomicBool,
) -> Result<RunSummary, ProcessorError> {
    Processor::new(config, core, Arc::new(Health::default())).run(shutdown)
}
