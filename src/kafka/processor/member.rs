//! [`Member`]: one consumer-group member's loop. Each turn polls a batch,
//! applies acknowledgements and what the rebalance callbacks reported,
//! activates partitions whose restore finished, decides the batch for the
//! active partitions, and does the periodic work (commit, snapshot, the
//! never-idle watch, progress). Nothing in a turn waits longer than
//! `--drain-timeout-ms`, and every wait gives up on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use tracing::{info, warn};

use crate::kafka::config::{Guarantee, KafkaConfig};
use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::group;
use crate::kafka::processor::batch::{self, BatchEnv, RunSummary};
use crate::kafka::processor::context::{GroupContext, GroupEvent};
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::feed::{Feed, Fetched};
use crate::kafka::processor::idle::{Idle, IdleWatch};
use crate::kafka::processor::partition::{PartitionTable, Restoring};
use crate::kafka::processor::restore::RestorePool;
use crate::kafka::processor::snapshots::Durable;
use crate::kafka::processor::transactions::Transaction;
use crate::kafka::sink::{Ack, DecisionSink};
use crate::ops::health::Health;
use crate::ops::telemetry::{self, Progress};

/// How often a progress line is logged.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// At most one warning of a kind (invalid input, skipped offsets) per
/// this interval.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// Poll wait while nothing is restoring; shorter while something is, so a
/// restored partition is resumed promptly.
const POLL_IDLE: Duration = Duration::from_millis(100);
const POLL_RESTORING: Duration = Duration::from_millis(5);
/// Longest single wait on the feed: the consumer's queue is served at
/// least this often while the feed is empty.
const POLL_SLICE: Duration = Duration::from_millis(5);
/// Most polls of the consumer's queue (events, and messages of partitions
/// not on the feed) per turn: it is served until empty, but a flood of
/// events (debug logs) must not starve the feed.
const EVENTS_PER_TURN_MAX: usize = 10_000;
/// Longest metadata or group request the loop makes.
const GROUP_CALL: Duration = Duration::from_secs(1);

/// Why a member's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Shutdown was asked for.
    Stopped,
    /// Its group client is stuck ([`super::idle`]): the processor carries
    /// on with a new member.
    Replaced,
}

/// A message of a batch with the rebalance epoch at the time it was read.
pub(super) type Polled<'a> = (u64, Received<'a>);

/// An input message: read from the [`Feed`], or, for a partition that
/// could not be split onto it, polled from the consumer's queue.
pub(super) enum Received<'a> {
    Fed(Fetched<'a>),
    Polled(BorrowedMessage<'a>),
}

impl Received<'_> {
    pub(super) fn partition(&self) -> i32 {
        match self {
            Received::Fed(m) => m.partition(),
            Received::Polled(m) => m.partition(),
        }
    }

    pub(super) fn offset(&self) -> i64 {
        match self {
            Received::Fed(m) => m.offset(),
            Received::Polled(m) => m.offset(),
        }
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        match self {
            Received::Fed(m) => m.key(),
            Received::Polled(m) => m.key(),
        }
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        match self {
            Received::Fed(m) => m.payload(),
            Received::Polled(m) => m.payload(),
        }
    }

    /// The input's Kafka timestamp (ms), if it has one.
    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        match self {
            Received::Fed(m) => m.timestamp_ms(),
            Received::Polled(m) => m.timestamp().to_millis(),
        }
    }
}

/// Everything one member's loop owns.
pub(super) struct Member {
    /// Declared before `consumer`, which it must not outlive.
    pub(super) feed: Arc<Feed>,
    pub(super) consumer: Arc<BaseConsumer<GroupContext>>,
    pub(super) config: KafkaConfig,
    pub(super) sink: Arc<DecisionSink>,
    pub(super) table: Arc<PartitionTable>,
    pub(super) events: Receiver<GroupEvent>,
    pub(super) acks: Receiver<Ack>,
    /// Shared with the callbacks, which bump it on every rebalance event.
    pub(super) epoch: Arc<AtomicU64>,
    pub(super) restores: RestorePool,
    /// Partitions being restored; they are in the table as `Restoring`.
    pub(super) restoring: HashMap<i32, Restoring>,
    pub(super) durable: Option<Durable>,
    pub(super) txn: Transaction,
    pub(super) idle: IdleWatch,
    /// Why the run must stop, once something failed for good.
    pub(super) failure: Option<ProcessorError>,
    pub(super) health: Arc<Health>,
    pub(super) progress: Arc<Progress>,
    pub(super) summary: RunSummary,
    pub(super) timers: Timers,
    /// Set once shutdown began: no broker call may wait past it.
    pub(super) stop_by: Option<Instant>,
    /// Set when the never-idle watch found the group client stuck.
    pub(super) replace: bool,
}

/// When the periodic work last ran.
pub(super) struct Timers {
    commit: Instant,
    snapshot: Instant,
    progress: Instant,
    invalid_warned: Throttle,
    skipped_warned: Throttle,
    /// Errors polled from the consumer's queue (a broker away: several a
    /// second), logged at most once per interval.
    consumer_errors: ErrorLogLimit,
}

/// A warning about a growing total, logged at most once per
/// [`WARNING_INTERVAL`] and only when the total grew: remembers the last
/// one and the total it reported.
#[derive(Default)]
struct Throttle(Option<(Instant, u64)>);

impl Throttle {
    /// How much `total` grew since the last warning, when a warning is due
    /// now (which it then records).
    fn due(&mut self, now: Instant, total: u64) -> Option<u64> {
        let warned = self.0.map_or(0, |(_, n)| n);
        let quiet = self
            .0
            .is_none_or(|(at, _)| now.duration_since(at) >= WARNING_INTERVAL);
        (total > warned && quiet).then(|| {
            self.0 = Some((now, total));
            total - warned
        })
    }
}

impl Timers {
    pub(super) fn new(now: Instant) -> Timers {
        Timers {
            commit: now,
            snapshot: now,
            progress: now,
            invalid_warned: Throttle::default(),
            skipped_warned: Throttle::default(),
            consumer_errors: ErrorLogLimit::new(),
        }
    }
}

impl Member {
    /// Runs turns until `shutdown` is set, the member must be replaced, or
    /// something fails for good.
    pub(super) fn consume(&mut self, shutdown: &AtomicBool) -> Result<Ended, ProcessorError> {
        let consumer = Arc::clone(&self.consumer);
        let feed = Arc::clone(&self.feed);
        let mut batch: Vec<Polled<'_>> = Vec::with_capacity(self.config.batch_messages_max);
        while !shutdown.load(Ordering::Relaxed) {
            batch.clear();
            self.poll(&consumer, &feed, &mut batch);
            if let Err(error) = self.turn(&batch) {
                // A full producer queue gives up on shutdown: that is a stop.
                if shutdown.load(Ordering::Relaxed) && matches!(error, ProcessorError::Produce(_)) {
                    warn!(message = "Stopped while the producer queue was full.", %error);
                    return Ok(Ended::Stopped);
                }
                return Err(error);
            }
            if self.replace {
                return Ok(Ended::Replaced);
            }
        }
        Ok(Ended::Stopped)
    }

    /// Serves the consumer's queue without waiting (rebalances, commits,
    /// and the messages of any partition not split onto the feed), then
    /// reads the feed. While both are empty it waits for the feed's first
    /// message in slices of [`POLL_SLICE`], serving the consumer's queue
    /// between them, up to [`POLL_IDLE`] ([`POLL_RESTORING`] while a
    /// partition restores).
    fn poll<'a>(
        &self,
        consumer: &'a BaseConsumer<GroupContext>,
        feed: &'a Feed,
        batch: &mut Vec<Polled<'a>>,
    ) {
        let max = self.config.batch_messages_max;
        let wait = if self.restoring.is_empty() {
            POLL_IDLE
        } else {
            POLL_RESTORING
        };
        let deadline = Instant::now() + wait;
        loop {
            self.serve_consumer_queue(consumer, feed, batch);
            let now = Instant::now();
            let slice = if batch.is_empty() && !feed.events_pending() {
                POLL_SLICE.min(deadline.saturating_duration_since(now))
            } else {
                Duration::ZERO
            };
            // Callbacks run only in `consumer.poll`, on this thread: the
            // epoch holds for the whole read.
            let epoch = self.epoch.load(Ordering::SeqCst);
            let room = max.saturating_sub(batch.len());
            feed.read(slice, room, |m| batch.push((epoch, Received::Fed(m))));
            if !batch.is_empty() || slice.is_zero() || Instant::now() >= deadline {
                break;
            }
        }
        if !batch.is_empty() {
            self.health.set_brokers_down(false);
        }
    }

    /// Polls the consumer's queue without waiting until it is empty, the
    /// batch is full, or [`EVENTS_PER_TURN_MAX`] polls.
    fn serve_consumer_queue<'a>(
        &self,
        consumer: &'a BaseConsumer<GroupContext>,
        feed: &Feed,
        batch: &mut Vec<Polled<'a>>,
    ) {
        for _ in 0..EVENTS_PER_TURN_MAX {
            if batch.len() >= self.config.batch_messages_max {
                break;
            }
            match consumer.poll(Duration::ZERO) {
                None if feed.events_pending() => {}
                None => break,
                Some(Ok(m)) => batch.push((self.epoch.load(Ordering::SeqCst), Received::Polled(m))),
                Some(Err(error)) => {
                    if let Some(suppressed) = self.timers.consumer_errors.admit(Instant::now()) {
                        warn!(message = "Consumer error; librdkafka retries.", %error, suppressed);
                    }
                    break;
                }
            }
        }
    }

    fn turn(&mut self, batch: &[Polled<'_>]) -> Result<(), ProcessorError> {
        self.apply_acks(&mut Vec::new());
        self.handle_events();
        self.activate_restored();
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        if self.txn.rewind_pending {
            self.rewind();
            return Ok(());
        }
        self.decide(batch)?;
        self.periodic();
        Ok(())
    }

    /// Decides the batch for the active partitions.
    fn decide(&mut self, batch: &[Polled<'_>]) -> Result<(), ProcessorError> {
        self.note_dropped(batch);
        let has_active_input = {
            let active = self.table.active();
            batch
                .iter()
                .any(|(_, m)| active.contains_key(&m.partition()))
        };
        if !has_active_input {
            return Ok(());
        }
        if self.config.guarantee == Guarantee::ExactlyOnce && !self.begin_transaction() {
            // Aborted: the rewind reads this batch again.
            return Ok(());
        }
        let started = Instant::now();
        let by_partition = batch::split(batch);
        let env = BatchEnv {
            sink: &self.sink,
            input_topic: &self.config.input_topic,
            partition_count: self
                .config
                .verify_partitioning
                .then(|| self.table.partition_count())
                .flatten(),
            now_ms: wall_clock_ms(),
            decision_threads: self.config.decision_threads,
        };
        let (summary, failed) = {
            let mut active = self.table.active();
            let decided = batch::decide(&mut active, &by_partition, &env);
            for state in active.values_mut() {
                self.progress.add(&state.tally);
                state.tally.flush();
            }
            decided
        };
        self.summary.messages += summary.messages;
        self.summary.invalid += summary.invalid;
        self.summary.coupons_issued += summary.coupons_issued;
        if summary.offsets_skipped > 0 {
            self.summary.offsets_skipped += summary.offsets_skipped;
            metrics::counter!(telemetry::INPUT_OFFSETS_SKIPPED).increment(summary.offsets_skipped);
        }
        metrics::histogram!(telemetry::BATCH_DURATION).record(started.elapsed().as_secs_f64());
        match failed {
            None => Ok(()),
            // Exactly once: the producer refuses records once its
            // transaction has failed; abort it and rewind.
            Some(ProcessorError::Produce(error))
                if self.config.guarantee == Guarantee::ExactlyOnce =>
            {
                self.abort_transaction(&error);
                Ok(())
            }
            Some(failure) => Err(failure),
        }
    }

    /// A message of a restoring partition's current assignment was polled
    /// (it should have been paused): it is dropped, so that partition must
    /// seek back to its committed offset before it resumes.
    fn note_dropped(&mut self, batch: &[Polled<'_>]) {
        if self.restoring.is_empty() {
            return;
        }
        for (epoch, m) in batch {
            if let Some(restoring) = self.restoring.get_mut(&m.partition())
                && restoring.epoch() <= *epoch
                && !restoring.needs_seek()
            {
                restoring.require_seek();
            }
        }
    }

    /// Commits, snapshots, the never-idle watch and progress, each when due.
    fn periodic(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.timers.commit)
            >= Duration::from_millis(self.config.commit_interval_ms)
        {
            self.commit();
            self.timers.commit = Instant::now();
        }
        self.apply_snapshots_done();
        if self
            .durable
            .as_ref()
            .is_some_and(|d| now.duration_since(self.timers.snapshot) >= d.interval)
        {
            self.snapshot_periodic();
            self.timers.snapshot = Instant::now();
        }
        self.watch_idle(now);
        self.warn_invalid(now);
        self.warn_skipped(now);
        if now.duration_since(self.timers.progress) >= PROGRESS_INTERVAL {
            self.log_progress();
            self.timers.progress = now;
        }
    }

    /// Rejoins the group when this member owns nothing while the group is
    /// not known to own every input partition (see [`super::idle`]).
    fn watch_idle(&mut self, now: Instant) {
        let owned = self.table.counts().0;
        if owned > 0 {
            self.idle.owning();
            self.health.set_unowned(false);
            return;
        }
        if self.idle.poll(now, owned) == Idle::Wait {
            return;
        }
        let Some(partitions) = self.refresh_partition_count() else {
            return;
        };
        let covered = group::owned_by_group(
            &self.consumer,
            &self.config.group_id,
            &self.config.input_topic,
            GROUP_CALL,
        );
        if covered.is_some_and(|n| n >= partitions as usize) {
            self.health.set_unowned(false);
            self.idle.covered(Instant::now());
            return;
        }
        self.health.set_unowned(true);
        if self.idle.client_stuck() {
            metrics::counter!(telemetry::GROUP_REJOINS).increment(1);
            warn!(
                message = "Rejoining brought no assignment, not even an empty one; replacing this member with new Kafka clients.",
                input_partitions = partitions,
                owned_by_group = ?covered
            );
            self.replace = true;
            return;
        }
        self.rejoin(partitions, covered);
    }

    /// Leaves the group and joins it again as a new member.
    fn rejoin(&mut self, partitions: u32, covered: Option<usize>) {
        let attempt = self.idle.rejoined(Instant::now());
        metrics::counter!(telemetry::GROUP_REJOINS).increment(1);
        warn!(
            message = "This instance owns no partition while the group does not own them all; rejoining the group.",
            input_partitions = partitions,
            owned_by_group = ?covered,
            attempt,
            next_check_s = self.idle.backoff().as_secs()
        );
        self.health.set_assigned(false);
        self.consumer.unsubscribe();
        if let Err(error) = self.consumer.subscribe(&[&self.config.input_topic]) {
            warn!(message = "Cannot subscribe again; the next check retries.", %error);
        }
    }

    /// Reads the input's partition count from the brokers; keeps and
    /// exports it, and returns it when known.
    pub(super) fn refresh_partition_count(&mut self) -> Option<u32> {
        let topic = &self.config.input_topic;
        match self.consumer.fetch_metadata(Some(topic), GROUP_CALL) {
            Ok(metadata) => {
                let count = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| t.partitions().len() as u32)
                    .filter(|&n| n > 0);
                if let Some(n) = count {
                    self.table.set_partition_count(n);
                    metrics::gauge!(telemetry::INPUT_PARTITIONS).set(f64::from(n));
                }
                count.or(self.table.partition_count())
            }
            Err(error) => {
                warn!(message = "Cannot read the input topic's partition count.", %error);
                self.table.partition_count()
            }
        }
    }

    /// Publishes how many partitions this member owns and restores.
    pub(super) fn publish_ownership(&self) {
        let (owned, restoring) = self.table.counts();
        metrics::gauge!(telemetry::ASSIGNED_PARTITIONS).set(owned as f64);
        metrics::gauge!(telemetry::RESTORING_PARTITIONS).set(restoring as f64);
        self.health.set_restoring(restoring > 0);
        if owned > 0 {
            self.health.set_unowned(false);
        }
    }

    /// A new rebalance epoch, for a rewind.
    pub(super) fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn warn_invalid(&mut self, now: Instant) {
        let total = self.summary.invalid;
        if let Some(since_last_warning) = self.timers.invalid_warned.due(now, total) {
            warn!(
                message = "Invalid input values; each got an `invalid` decision and a copy in the dead-letter topic.",
                since_last_warning,
                total,
                dlq = %self.config.dlq_topic
            );
        }
    }

    fn warn_skipped(&mut self, now: Instant) {
        let total = self.summary.offsets_skipped;
        if let Some(since_last_warning) = self.timers.skipped_warned.due(now, total) {
            warn!(
                message = "Input offsets passed over without a record; if the input topic has no transactional producer, the broker did not deliver them and the state has missed them.",
                since_last_warning,
                total,
                input = %self.config.input_topic
            );
        }
    }

    fn log_progress(&self) {
        let (mut coupons, mut campaigns, mut bytes) = (0u64, 0u64, 0u64);
        let owned = {
            let active = self.table.active();
            for state in active.values() {
                let stats = state.core.stats();
                coupons += stats.coupons;
                campaigns += stats.campaigns as u64;
                bytes += stats.heap_bytes as u64;
            }
            self.table.counts()
        };
        metrics::gauge!(telemetry::STATE_COUPONS).set(coupons as f64);
        metrics::gauge!(telemetry::STATE_CAMPAIGNS).set(campaigns as f64);
        metrics::gauge!(telemetry::STATE_BYTES).set(bytes as f64);
        info!(
            message = "Progress.",
            messages = self.summary.messages,
            invalid = self.summary.invalid,
            partitions = owned.0,
            restoring = owned.1,
            in_flight = self.sink.in_flight()
        );
    }
}

/// Milliseconds since the Unix epoch, for the event-time lag metric only:
/// decisions never read the clock.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_warning_reports_growth_at_most_once_per_interval() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.due(start, 0), None, "nothing to report");
        assert_eq!(throttle.due(start, 5), Some(5));
        assert_eq!(throttle.due(start + Duration::from_secs(1), 9), None);
        let later = start + WARNING_INTERVAL;
        assert_eq!(throttle.due(later, 9), Some(4));
        assert_eq!(throttle.due(later + WARNING_INTERVAL, 9), None, "no growth");
    }
}
