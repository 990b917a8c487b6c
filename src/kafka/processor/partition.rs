//! The lifecycle of one owned input partition, as types:
//!
//! ```text
//! assigned --> Restoring --restored--> Active --revoked--> Revoking --handed over--> (gone)
//!                  |                     |
//!                  +--revoked: cancelled +--transaction aborted: Restoring again (rewind)
//! ```
//!
//! A [`Restoring`] partition is paused while a restore thread rebuilds its
//! state; an [`Active`] one holds its decision core and offsets and is
//! decided in batches; a [`Revoking`] one has left the table and is owned
//! by the handover alone. Each transition takes `self`, so a partition is
//! in exactly one state. [`PartitionTable`] is what the state queries and
//! `/readyz` read: every owned partition's phase, and the active states,
//! each behind its own lock so a query never waits on a restore or a
//! handover.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::kafka::offsets::OffsetTracker;
use crate::kafka::processor::batch::HeldDecision;
use crate::kafka::state_store::Manifest;
use crate::ops::telemetry::BatchTally;
use coupon_stream_core::decision_core::DecisionCore;

/// What a restore produced: the state at the group's committed offset.
pub(super) struct Restored {
    pub(super) core: DecisionCore,
    /// Input offsets below this were decided and acknowledged before the
    /// restored snapshot or commit: skipped, not decided again. -1 when
    /// nothing was restored.
    pub(super) skip_below: i64,
    pub(super) manifest: Option<Manifest>,
    /// The group's committed offset, if any.
    pub(super) committed: Option<i64>,
}

/// A partition whose state a restore thread is rebuilding. Paused.
#[derive(Debug)]
pub(super) struct Restoring {
    epoch: u64,
    /// Tells the restore thread to give up (revoked, or shutting down).
    cancel: Arc<AtomicBool>,
    started: Instant,
    /// The consumer must seek to the committed offset before resuming:
    /// after a rewind, or when a message of this assignment was dropped
    /// while the partition was not active.
    seek: bool,
}

impl Restoring {
    pub(super) fn new(epoch: u64, seek: bool) -> Restoring {
        Restoring {
            epoch,
            cancel: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
            seek,
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    pub(super) fn needs_seek(&self) -> bool {
        self.seek
    }

    /// A message of this assignment was polled and dropped: the consumer's
    /// position moved past it, so it must seek back on activation.
    pub(super) fn require_seek(&mut self) {
        self.seek = true;
    }

    pub(super) fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The state is ready: the partition becomes active.
    pub(super) fn activate(self, restored: Restored) -> Active {
        Active {
            epoch: self.epoch,
            core: restored.core,
            tracker: None,
            committed: restored.committed.unwrap_or(-1),
            out: Vec::with_capacity(64 * 1024),
            held: Vec::new(),
            tally: BatchTally::default(),
            skip_below: restored.skip_below,
            manifest: restored.manifest,
            snapshot_pending: false,
            unsent: false,
        }
    }

    /// Revoked (or shutting down) before the restore finished: the restore
    /// thread stops at its next check and its result is dropped.
    pub(super) fn cancel(self) {
        self.cancel.store(true, Ordering::Release);
    }
}

/// A partition being decided.
pub(super) struct Active {
    /// The rebalance epoch of its assignment: messages polled before it
    /// belong to an earlier owner and are dropped.
    pub(super) epoch: u64,
    pub(super) core: DecisionCore,
    /// Created on the first message, at its offset.
    pub(super) tracker: Option<OffsetTracker>,
    /// Last committed offset, -1 when none is known.
    pub(super) committed: i64,
    /// The encoded decisions of a run not yet enqueued, back to back
    /// (reused from batch to batch).
    pub(super) out: Vec<u8>,
    /// Which decisions `out` holds (empty between batches).
    pub(super) held: Vec<HeldDecision>,
    /// This batch's counts, flushed to the metrics after the batch.
    pub(super) tally: BatchTally,
    /// See [`Restored::skip_below`].
    pub(super) skip_below: i64,
    /// The partition's current snapshot in the state topic.
    pub(super) manifest: Option<Manifest>,
    /// A snapshot of this partition is being written.
    pub(super) snapshot_pending: bool,
    /// A decision the core applied could not be enqueued (the processor
    /// stopped while the producer's queue was full): the state is ahead of
    /// the tracker's offsets, and no snapshot may be taken of it.
    pub(super) unsent: bool,
}

impl Active {
    /// The first input offset not yet decided, once anything was.
    pub(super) fn next_offset(&self) -> Option<i64> {
        self.tracker.as_ref().map(OffsetTracker::next_offset)
    }

    /// The offset to commit: the first input offset whose records are not
    /// all acknowledged.
    pub(super) fn committable(&self) -> Option<i64> {
        self.tracker.as_ref().map(OffsetTracker::committable)
    }

    /// Revoked: leaves the table for its handover.
    pub(super) fn revoke(self) -> Revoking {
        Revoking(self)
    }

    /// The transaction that held its latest decisions was aborted: its
    /// state is rebuilt at the committed offset, under a new epoch.
    pub(super) fn rewind(self, epoch: u64) -> Restoring {
        Restoring::new(epoch, true)
    }
}

/// A revoked partition, owned by its handover: flushed, committed and
/// snapshotted, then dropped.
pub(super) struct Revoking(Active);

impl Revoking {
    pub(super) fn state(&self) -> &Active {
        &self.0
    }

    pub(super) fn state_mut(&mut self) -> &mut Active {
        &mut self.0
    }

    /// Handed over: nothing of the partition stays here.
    pub(super) fn done(self) {}
}

/// An owned partition's phase, as the state queries see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Restoring,
    Active,
}

/// Every owned partition's phase and the active partitions' states.
#[derive(Default)]
pub(super) struct PartitionTable {
    /// Held for a lookup or a transition only, never across I/O or a
    /// batch: `/readyz`, metrics and state queries read it without waiting.
    phases: Mutex<HashMap<i32, Phase>>,
    /// Locked by the loop for one batch at a time (milliseconds), and by a
    /// state query of an active partition.
    active: Mutex<HashMap<i32, Active>>,
    /// The input topic's partition count; 0 until known.
    partition_count: AtomicU32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock ends the run anyway.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PartitionTable {
    pub(super) fn phase(&self, partition: i32) -> Option<Phase> {
        lock(&self.phases).get(&partition).copied()
    }

    pub(super) fn set_phase(&self, partition: i32, phase: Option<Phase>) {
        let mut phases = lock(&self.phases);
        match phase {
            Some(phase) => phases.insert(partition, phase),
            None => phases.remove(&partition),
        };
    }

    /// Owned partitions, restoring or active.
    pub(super) fn owned(&self) -> BTreeSet<i32> {
        lock(&self.phases).keys().copied().collect()
    }

    /// (owned, restoring) counts.
    pub(super) fn counts(&self) -> (usize, usize) {
        let phases = lock(&self.phases);
        let restoring = phases.values().filter(|&&p| p == Phase::Restoring).count();
        (phases.len(), restoring)
    }

    pub(super) fn active(&self) -> MutexGuard<'_, HashMap<i32, Active>> {
        lock(&self.active)
    }

    /// Makes `state` the partition's active state.
    pub(super) fn insert_active(&self, partition: i32, state: Active) {
        self.active().insert(partition, state);
        self.set_phase(partition, Some(Phase::Active));
    }

    /// Takes an active partition out of the table (revoke, rewind).
    pub(super) fn take_active(&self, partition: i32) -> Option<Active> {
        let taken = self.active().remove(&partition);
        if taken.is_some() {
            self.set_phase(partition, None);
        }
        taken
    }

    pub(super) fn partition_count(&self) -> Option<u32> {
        match self.partition_count.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    pub(super) fn set_partition_count(&self, count: u32) {
        self.partition_count.store(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coupon_stream_core::config::CoreConfig;

    fn restored(committed: Option<i64>) -> Restored {
        Restored {
            core: DecisionCore::new(CoreConfig::default()),
            skip_below: committed.unwrap_or(-1),
            manifest: None,
            committed,
        }
    }

    #[test]
    fn a_partition_moves_through_its_phases() {
        let table = PartitionTable::default();
        let restoring = Restoring::new(3, false);
        let cancel = restoring.cancel_flag();
        table.set_phase(5, Some(Phase::Restoring));
        assert_eq!(table.phase(5), Some(Phase::Restoring));
        assert_eq!(table.counts(), (1, 1));

        let active = restoring.activate(restored(Some(42)));
        assert!(!cancel.load(Ordering::Acquire));
        assert_eq!(
            (active.epoch, active.committed, active.skip_below),
            (3, 42, 42)
        );
        assert_eq!(active.next_offset(), None);
        table.insert_active(5, active);
        assert_eq!(table.phase(5), Some(Phase::Active));
        assert_eq!(table.counts(), (1, 0));

        let revoking = table.take_active(5).map(Active::revoke);
        assert!(revoking.is_some());
        assert_eq!(table.phase(5), None);
        assert!(table.take_active(5).is_none());
        assert!(table.owned().is_empty());
    }

    #[test]
    fn a_cancelled_restore_tells_its_thread() {
        let restoring = Restoring::new(1, false);
        let cancel = restoring.cancel_flag();
        restoring.cancel();
        assert!(cancel.load(Ordering::Acquire));
    }

    #[test]
    fn a_rewound_partition_seeks_under_its_new_epoch() {
        let active = Restoring::new(1, false).activate(restored(None));
        assert_eq!(active.committed, -1);
        let rewound = active.rewind(9);
        assert_eq!(rewound.epoch(), 9);
        assert!(rewound.needs_seek());
    }
}
