//! The loop's side of a rebalance, after the callbacks reported it: a
//! newly assigned partition becomes [`Restoring`] and goes to the restore
//! pool; a restored one becomes [`Active`](super::partition::Active) and
//! is resumed; a revoked one is cancelled (restoring) or handed over
//! (active: drain, commit, snapshot) and then released to librdkafka, so
//! its next owner starts from what this one committed and snapshotted.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use crate::kafka::processor::commit::Handover;
use crate::kafka::processor::context::{GroupEvent, release};
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Member;
use crate::kafka::processor::partition::{Phase, Restoring};
use crate::kafka::processor::restore::{RestoreDone, RestoreJob};

/// Longest seek of the consumer back to a committed offset.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

impl Member {
    /// Acts on everything the callbacks reported since the last call.
    pub(super) fn handle_events(&mut self) {
        let (mut moved, mut assigned) = (false, false);
        while let Ok(event) = self.events.try_recv() {
            match event {
                GroupEvent::Assigned { partitions, epoch } => {
                    self.assigned(&partitions, epoch);
                    self.idle.on_event(Instant::now(), true);
                    moved = true;
                    assigned = true;
                }
                GroupEvent::Revoked {
                    partitions,
                    tpl,
                    lost,
                    released,
                } => {
                    self.revoked(&partitions, lost);
                    if !released {
                        release(self.consumer.as_ref(), &tpl);
                    }
                    self.idle.on_event(Instant::now(), false);
                    moved = true;
                }
                GroupEvent::Committed(result) => self.committed(result),
                GroupEvent::Failed(error) => warn!(message = "Rebalance error.", %error),
            }
        }
        if moved {
            self.publish_ownership();
            // Owning nothing right after a rebalance counts as unowned
            // work until the never-idle watch finds the group covers it.
            self.health.set_unowned(self.table.counts().0 == 0);
        }
        // Last: `/readyz` must not see the assignment before the restores
        // it starts (it read ready for a moment in between, and a state
        // query right after answered `restoring`).
        if assigned {
            self.health.set_assigned(true);
        }
    }

    fn assigned(&mut self, partitions: &[i32], epoch: u64) {
        if partitions.is_empty() {
            info!(
                message = "Rebalance assigned no new partition.",
                owned = self.table.counts().0
            );
            return;
        }
        if partitions
            .iter()
            .any(|&p| self.table.partition_count().is_none_or(|n| p >= n as i32))
        {
            self.refresh_partition_count();
        }
        for &p in partitions {
            if self.table.phase(p).is_some() {
                continue;
            }
            self.table.set_phase(p, Some(Phase::Restoring));
            self.start_restore(p, Restoring::new(epoch, false), false);
        }
        // At once, for a member that was ready before this assignment.
        self.publish_ownership();
        info!(message = "Partitions assigned.", assigned = ?partitions, owned = self.table.counts().0, partition_count = ?self.table.partition_count());
    }

    /// Hands `restoring` to the restore pool.
    pub(super) fn start_restore(&mut self, partition: i32, restoring: Restoring, rebuild: bool) {
        self.restores.submit(RestoreJob {
            partition,
            epoch: restoring.epoch(),
            cancel: restoring.cancel_flag(),
            rebuild,
            partition_count: self.table.partition_count(),
        });
        self.restoring.insert(partition, restoring);
    }

    fn revoked(&mut self, partitions: &[i32], lost: bool) {
        let mut handover: Handover = Vec::new();
        for &p in partitions {
            if let Some(restoring) = self.restoring.remove(&p) {
                self.table.set_phase(p, None);
                restoring.cancel();
            } else if let Some(active) = self.table.take_active(p) {
                handover.push((p, active.revoke()));
            }
        }
        if lost {
            // The group moved on without this member: committing or
            // snapshotting now could overwrite the new owner's progress.
            warn!(message = "Partitions lost (session expired); dropped without a commit.", lost = ?partitions);
        } else if !handover.is_empty() {
            self.hand_over(&mut handover);
        }
        for (_, revoking) in handover {
            revoking.done();
        }
        info!(message = "Partitions revoked.", revoked = ?partitions, remaining = self.table.counts().0);
    }

    /// Drains, commits and snapshots the revoked partitions, each step
    /// bounded by `--drain-timeout-ms`.
    fn hand_over(&mut self, handover: &mut Handover) {
        let drain = Duration::from_millis(self.config.drain_timeout_ms);
        self.drain(handover, Instant::now() + drain, false);
        self.commit_handover(handover);
        self.snapshot_handover(handover, Instant::now() + drain);
    }

    /// Activates every partition whose restore finished; a failed restore
    /// stops the processor.
    pub(super) fn activate_restored(&mut self) {
        let finished = self.restores.finished();
        if finished.is_empty() {
            return;
        }
        for done in finished {
            self.activate(done);
        }
        self.publish_ownership();
    }

    fn activate(&mut self, done: RestoreDone) {
        let RestoreDone {
            partition,
            epoch,
            result,
        } = done;
        // Revoked (and maybe assigned again) since the job started.
        if self
            .restoring
            .get(&partition)
            .is_none_or(|r| r.epoch() != epoch)
        {
            return;
        }
        let Some(restoring) = self.restoring.remove(&partition) else {
            return;
        };
        let restored = match result {
            Ok(restored) => restored,
            Err(error) => {
                error!(message = "Cannot restore partition state; stopping.", partition, %error);
                self.table.set_phase(partition, None);
                self.failure.get_or_insert(error);
                return;
            }
        };
        let needs_seek = restoring.needs_seek();
        let committed = restored.committed;
        let waited = restoring.elapsed_seconds();
        let active = restoring.activate(restored);
        // Resumed, then sought to the committed offset, and only then
        // active. The seek puts the consumer back there when a message was
        // polled and dropped while restoring (`needs_seek`). Otherwise the
        // consumer resumes there anyway, and the seek only wakes the
        // fetcher: librdkafka's resume does not wake its broker thread,
        // which, when every partition it fetches was paused, sleeps up to
        // 1 s before fetching this one, while a seek changes the
        // partition's fetch state, which wakes it (docs/PERFORMANCE.md,
        // "Where the start-up wait comes from"). This thread is the one
        // that polls, so no message of the partition reaches the loop
        // between the resume and the seek, and whatever was fetched in
        // between is discarded by the seek.
        let tpl = self.input_partition(partition);
        if let Err(error) = self.consumer.resume(&tpl) {
            warn!(message = "Cannot resume a restored partition.", partition, %error);
        }
        match self.seek(partition, committed) {
            Ok(()) => {}
            Err(error) if needs_seek => {
                error!(message = "Cannot seek back to the committed offset; stopping.", partition, %error);
                if let Err(error) = self.consumer.pause(&tpl) {
                    warn!(message = "Cannot pause a partition again.", partition, %error);
                }
                self.table.set_phase(partition, None);
                self.failure.get_or_insert(error);
                return;
            }
            // Only the wake-up is lost: the position is already right.
            Err(error) => {
                warn!(message = "Cannot seek a resumed partition to its committed offset; its first fetch may wait up to 1 s.", partition, %error);
            }
        }
        self.table.insert_active(partition, active);
        info!(message = "Partition active.", partition, seconds = waited);
    }

    fn seek(&self, partition: i32, committed: Option<i64>) -> Result<(), ProcessorError> {
        let position = committed.map_or(Offset::Beginning, Offset::Offset);
        self.consumer
            .seek(&self.config.input_topic, partition, position, SEEK_TIMEOUT)
            .map_err(|error| ProcessorError::Seek { partition, error })
    }

    fn input_partition(&self, partition: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.config.input_topic, partition);
        tpl
    }
}
