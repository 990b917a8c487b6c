//! Acknowledgements and commits: the broker's answers for produced records
//! move each partition's [`OffsetTracker`](crate::kafka::offsets::OffsetTracker),
//! and only acknowledged input offsets are committed. Waits here are
//! bounded by a deadline and give up on shutdown.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, warn};

use crate::kafka::config::Guarantee;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Member;
use crate::kafka::processor::partition::{Active, Revoking};
use crate::kafka::reported_commit;
use crate::ops::telemetry;

/// Revoked partitions during their handover: out of the table, still
/// waiting for acknowledgements and a commit.
pub(super) type Handover = Vec<(i32, Revoking)>;

impl Member {
    /// Waits until every enqueued record is acknowledged, `deadline` passes
    /// or the processor is stopping (`shutting_down`: the shutdown's own
    /// drain, which only the deadline ends), then applies the
    /// acknowledgements. Returns whether everything was acknowledged.
    pub(super) fn drain(
        &mut self,
        handover: &mut Handover,
        deadline: Instant,
        shutting_down: bool,
    ) -> bool {
        let mut pause = Duration::from_micros(100);
        // Wakes librdkafka to send what lingers.
        let _ = self.sink.flush(Duration::ZERO);
        let drained = loop {
            if self.sink.in_flight() == 0 {
                break true;
            }
            if Instant::now() >= deadline || (!shutting_down && self.health.is_stopping()) {
                break false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        if !drained {
            warn!(
                message =
                    "Not every decision was acknowledged in time; their offsets stay uncommitted.",
                in_flight = self.sink.in_flight()
            );
        }
        self.apply_acks(handover);
        drained
    }

    /// Applies the acknowledgements received since the last call to the
    /// offset trackers of the active and handed-over partitions; a refused
    /// record stops an at-least-once processor.
    pub(super) fn apply_acks(&mut self, handover: &mut Handover) {
        let mut acknowledged = 0;
        let eos = self.config.guarantee == Guarantee::ExactlyOnce;
        let mut active = self.table.active();
        while let Ok(ack) = self.acks.try_recv() {
            match ack.error {
                // Exactly once: the transaction's commit fails on it, and the
                // processor aborts and rewinds; records purged by an abort
                // report errors too.
                Some(error) if eos => {
                    metrics::counter!(telemetry::PRODUCE_ERRORS).increment(1);
                    debug!(message = "Record of a failed transaction.", partition = ack.partition, offset = ack.offset, %error);
                }
                Some(error) => {
                    metrics::counter!(telemetry::PRODUCE_ERRORS).increment(1);
                    error!(message = "Broker refused a record.", partition = ack.partition, offset = ack.offset, %error);
                    self.failure.get_or_insert(ProcessorError::Delivery {
                        partition: ack.partition,
                        offset: ack.offset,
                        error,
                    });
                }
                None => {
                    acknowledged += 1;
                    let state = match handover.iter_mut().find(|(p, _)| *p == ack.partition) {
                        Some((_, revoking)) => Some(revoking.state_mut()),
                        None => active.get_mut(&ack.partition),
                    };
                    if let Some(tracker) = state.and_then(|s| s.tracker.as_mut()) {
                        tracker.ack(ack.offset);
                    }
                }
            }
        }
        self.progress.add_acknowledged(acknowledged);
    }

    /// Commits progress: at least once, every active partition's
    /// acknowledged offset (asynchronously: the result comes back as a
    /// group event); exactly once, the open transaction.
    pub(super) fn commit(&mut self) {
        match self.config.guarantee {
            Guarantee::AtLeastOnce => {
                let offsets = committable(self.table.active().iter());
                self.commit_offsets(&offsets, CommitMode::Async);
            }
            Guarantee::ExactlyOnce => self.commit_or_abort(&mut Vec::new()),
        }
    }

    /// Commits the handed-over partitions' progress before they go: their
    /// acknowledged offsets, synchronously (at least once), or the open
    /// transaction, which holds their records too (exactly once).
    pub(super) fn commit_handover(&mut self, handover: &mut Handover) {
        match self.config.guarantee {
            Guarantee::AtLeastOnce => {
                let offsets = committable(handover.iter().map(|(p, r)| (p, r.state())));
                if self.commit_offsets(&offsets, CommitMode::Sync) {
                    for (p, revoking) in handover.iter_mut() {
                        if let Some(&(_, o)) = offsets.iter().find(|(q, _)| q == p) {
                            revoking.state_mut().committed = o;
                        }
                    }
                }
            }
            Guarantee::ExactlyOnce => self.commit_or_abort(handover),
        }
    }

    /// Sends a commit of `offsets`; a synchronous one reports whether it
    /// succeeded, an asynchronous one whether it was sent.
    pub(super) fn commit_offsets(&self, offsets: &[(i32, i64)], mode: CommitMode) -> bool {
        if offsets.is_empty() {
            return true;
        }
        let mut tpl = TopicPartitionList::new();
        for &(partition, offset) in offsets {
            if let Err(error) = tpl.add_partition_offset(
                &self.config.input_topic,
                partition,
                Offset::Offset(offset),
            ) {
                warn!(message = "Cannot list offset for commit.", %error, partition, offset);
            }
        }
        let sent = match mode {
            // The result comes back as a group event (`committed`).
            CommitMode::Async => reported_commit::commit_async(&self.consumer, &tpl),
            CommitMode::Sync => self.consumer.commit(&tpl, mode),
        };
        match sent {
            Ok(()) => {
                if matches!(mode, CommitMode::Sync) {
                    metrics::counter!(telemetry::COMMITS).increment(1);
                }
                true
            }
            Err(error) => {
                metrics::counter!(telemetry::COMMIT_ERRORS).increment(1);
                warn!(message = "Failed to commit offsets; will retry.", %error);
                false
            }
        }
    }

    /// An asynchronous commit finished.
    pub(super) fn committed(&mut self, result: rdkafka::error::KafkaResult<Vec<(i32, i64)>>) {
        match result {
            Ok(offsets) => {
                metrics::counter!(telemetry::COMMITS).increment(1);
                let mut active = self.table.active();
                for (partition, offset) in offsets {
                    if let Some(state) = active.get_mut(&partition) {
                        state.committed = state.committed.max(offset);
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

/// Each partition whose acknowledged offset moved past its last commit.
fn committable<'a>(states: impl Iterator<Item = (&'a i32, &'a Active)>) -> Vec<(i32, i64)> {
    states
        .filter_map(|(&p, state)| {
            let offset = state.committable()?;
            (offset > state.committed).then_some((p, offset))
        })
        .collect()
}
