//! Durable state: every `snapshot_interval_ms` the loop drains, commits and
//! forks a child that encodes the partitions whose state moved, from a
//! copy-on-write image ([`snapshot_child`]; the loop waits for the fork
//! only); a snapshot thread collects the bytes and writes them to the
//! state topic ([`SnapshotStore`]). A handover (revoke, shutdown) encodes
//! on the loop thread, since it waits for the write anyway. A snapshot
//! never covers an input whose records are not durably written (at least
//! once: acknowledged; exactly once: committed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::kafka::config::{Guarantee, KafkaConfig};
use crate::kafka::processor::commit::Handover;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Member;
use crate::kafka::processor::partition::Active;
use crate::kafka::snapshot_child::{self, Encoding};
use crate::kafka::state_store::{Manifest, SnapshotStore};
use crate::ops::telemetry;
use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::snapshot;

/// A child encoding snapshots that sends nothing for this long is killed
/// and its snapshots count as failed (a 10-million-coupon partition takes
/// about 0.5 s; the bound is for a hung child, not a slow one).
const SNAPSHOT_CHILD_SILENCE: Duration = Duration::from_secs(120);
/// Longest write of one periodic snapshot batch by the snapshot thread.
const SNAPSHOT_WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// One partition's snapshot to write. `bytes` are empty while a child
/// process is still encoding them.
struct SnapshotJob {
    partition: i32,
    next_offset: i64,
    bytes: Vec<u8>,
    previous: Option<Manifest>,
}

/// The periodic snapshots of one interval, handed to the snapshot thread.
struct SnapshotBatch {
    encoding: Encoding,
    /// In the order the cores were given to the child.
    jobs: Vec<SnapshotJob>,
}

/// What the snapshot thread reports back: the partition's new manifest, or
/// `None` when the snapshot failed and the previous one stays in force.
pub(super) struct SnapshotDone {
    partition: i32,
    manifest: Option<Manifest>,
}

/// Where snapshots go, and the thread writing them.
pub(super) struct Durable {
    pub(super) store: Arc<SnapshotStore>,
    jobs: Option<SyncSender<SnapshotBatch>>,
    done: Receiver<SnapshotDone>,
    /// A batch is with the snapshot thread. Set by the loop before it
    /// forks, cleared by the thread when the batch is done: at most one
    /// child at a time, so copy-on-write memory is bounded by one extra
    /// image of the state.
    busy: Arc<AtomicBool>,
    pub(super) interval: Duration,
    thread: Option<JoinHandle<()>>,
}

impl Durable {
    pub(super) fn start(config: &KafkaConfig) -> Result<Durable, ProcessorError> {
        let store = Arc::new(SnapshotStore::new(config)?);
        // One batch at a time: the loop skips an interval rather than queue.
        let (jobs, queued) = mpsc::sync_channel::<SnapshotBatch>(1);
        let (done_tx, done) = mpsc::channel();
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
        Ok(Durable {
            store,
            jobs: Some(jobs),
            done,
            busy,
            interval: Duration::from_millis(config.snapshot_interval_ms),
            thread: Some(thread),
        })
    }

    /// Closes the snapshot queue and waits for the thread to finish what it
    /// holds, until `deadline`; after that it is left to finish alone.
    pub(super) fn close(mut self, deadline: Instant) {
        self.jobs = None;
        let Some(thread) = self.thread.take() else {
            return;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() && thread.join().is_err() {
            warn!(message = "The snapshot thread panicked.");
        } else if !self.busy.load(Ordering::Acquire) {
            debug!(message = "Snapshot thread idle at exit.");
        }
    }
}

impl Member {
    /// The periodic snapshot: drains and commits, then forks a child that
    /// encodes every partition whose state moved. Skipped while the
    /// previous batch is still with the snapshot thread.
    pub(super) fn snapshot_periodic(&mut self) {
        let Some(durable) = &self.durable else {
            return;
        };
        if durable.busy.load(Ordering::Acquire) {
            debug!(message = "Previous snapshots still being written; next interval retries.");
            return;
        }
        let started = Instant::now();
        let drain_until = started + Duration::from_millis(self.config.drain_timeout_ms);
        self.drain(&mut Vec::new(), drain_until, false);
        self.commit();
        let Some(durable) = &self.durable else {
            return;
        };
        let mut active = self.table.active();
        let due: Vec<(i32, i64)> = active
            .iter()
            .filter_map(|(&p, state)| due(state, self.config.guarantee).map(|o| (p, o)))
            .collect();
        if !due.is_empty() && snapshot_in_child(durable, &active, &due) {
            for (p, _) in &due {
                if let Some(state) = active.get_mut(p) {
                    state.snapshot_pending = true;
                }
            }
        }
        drop(active);
        metrics::histogram!(telemetry::SNAPSHOT_STALL).record(started.elapsed().as_secs_f64());
    }

    /// Snapshots the handed-over partitions whose state moved, on this
    /// thread, writing until `deadline`: their next owner restores from here.
    pub(super) fn snapshot_handover(&mut self, handover: &mut Handover, deadline: Instant) {
        let Some(durable) = &self.durable else {
            return;
        };
        let started = Instant::now();
        for (partition, revoking) in handover.iter_mut() {
            let state = revoking.state_mut();
            let Some(next_offset) = due(state, self.config.guarantee) else {
                continue;
            };
            let mut bytes = Vec::new();
            snapshot::encode(&state.core, &mut bytes);
            let job = SnapshotJob {
                partition: *partition,
                next_offset,
                bytes,
                previous: state.manifest.clone(),
            };
            if let Some(manifest) = write_snapshot(&durable.store, job, deadline).manifest {
                state.manifest = Some(manifest);
            }
        }
        metrics::histogram!(telemetry::SNAPSHOT_STALL).record(started.elapsed().as_secs_f64());
    }

    /// Applies the snapshot thread's results.
    pub(super) fn apply_snapshots_done(&mut self) {
        let Some(durable) = &self.durable else {
            return;
        };
        let results: Vec<SnapshotDone> = durable.done.try_iter().collect();
        let mut active = self.table.active();
        for done in results {
            if let Some(state) = active.get_mut(&done.partition) {
                state.snapshot_pending = false;
                if let Some(manifest) = done.manifest {
                    state.manifest = Some(manifest);
                }
            }
        }
        let bytes: u64 = active
            .values()
            .filter_map(|s| s.manifest.as_ref().map(|m| m.bytes))
            .sum();
        metrics::gauge!(telemetry::SNAPSHOT_BYTES).set(bytes as f64);
    }
}

/// The offset a snapshot of `state` would cover, if one is due: its state
/// moved since its last snapshot and everything it decided is durable
/// (and was enqueued: see [`Active::unsent`]).
fn due(state: &Active, guarantee: Guarantee) -> Option<i64> {
    if state.unsent {
        return None;
    }
    let next = state.next_offset()?;
    let durable_to = match guarantee {
        Guarantee::AtLeastOnce => state.committable()?,
        Guarantee::ExactlyOnce => state.committed,
    };
    let moved = state.manifest.as_ref().is_none_or(|m| m.next_offset < next);
    (!state.snapshot_pending && durable_to == next && moved).then_some(next)
}

/// Forks a child that encodes the `due` partitions from the state as it
/// is now (the caller holds the active-partition lock, so no batch runs)
/// and hands it to the snapshot thread; the loop waits only for the fork.
/// Returns whether the snapshot thread took the batch.
fn snapshot_in_child(durable: &Durable, active: &HashMap<i32, Active>, due: &[(i32, i64)]) -> bool {
    durable.busy.store(true, Ordering::Release);
    let cores: Vec<&DecisionCore> = due
        .iter()
        .filter_map(|(p, _)| active.get(p).map(|s| &s.core))
        .collect();
    let failed = |why: &str| {
        durable.busy.store(false, Ordering::Release);
        metrics::counter!(telemetry::SNAPSHOT_FAILURES).increment(due.len() as u64);
        warn!(
            message = "Cannot take snapshots; the previous ones stay in force and the next interval retries.",
            why
        );
    };
    let encoding = match snapshot_child::start(&cores) {
        Ok(encoding) => encoding,
        Err(error) => {
            failed(&error.to_string());
            return false;
        }
    };
    let jobs: Vec<SnapshotJob> = due
        .iter()
        .filter_map(|&(partition, next_offset)| {
            active.get(&partition).map(|s| SnapshotJob {
                partition,
                next_offset,
                bytes: Vec::new(),
                previous: s.manifest.clone(),
            })
        })
        .collect();
    let sent = durable
        .jobs
        .as_ref()
        .is_some_and(|queue| queue.try_send(SnapshotBatch { encoding, jobs }).is_ok());
    if !sent {
        // The dropped batch kills and reaps its child.
        failed("the snapshot thread is not taking snapshots");
    }
    sent
}

/// The snapshot thread's work on one batch: collects the child's bytes,
/// then writes each partition's snapshot. A child that fails fails every
/// snapshot of its batch, like any other snapshot failure.
fn write_batch(store: &SnapshotStore, batch: SnapshotBatch) -> Vec<SnapshotDone> {
    let SnapshotBatch { encoding, jobs } = batch;
    match encoding.collect(SNAPSHOT_CHILD_SILENCE) {
        Ok(encoded) => {
            let deadline = Instant::now() + SNAPSHOT_WRITE_TIMEOUT;
            jobs.into_iter()
                .zip(encoded)
                .map(|(job, bytes)| write_snapshot(store, SnapshotJob { bytes, ..job }, deadline))
                .collect()
        }
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

/// Writes one snapshot, with its metrics and log line.
fn write_snapshot(store: &SnapshotStore, job: SnapshotJob, deadline: Instant) -> SnapshotDone {
    let started = Instant::now();
    let result = store.save(
        job.partition,
        job.next_offset,
        &job.bytes,
        job.previous.as_ref(),
        deadline,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::offsets::OffsetTracker;
    use crate::kafka::processor::partition::{Restored, Restoring};
    use coupon_stream_core::config::CoreConfig;

    /// An active partition that decided offsets 10 to 12, all acknowledged.
    fn decided_and_acknowledged() -> Active {
        let mut state = Restoring::new(1, false).activate(Restored {
            core: DecisionCore::new(CoreConfig::default()),
            skip_below: 10,
            manifest: None,
            committed: Some(10),
        });
        let mut tracker = OffsetTracker::new(10);
        for offset in 10..13 {
            tracker.record(offset, 1);
        }
        for offset in 10..13 {
            assert!(tracker.ack(offset));
        }
        state.tracker = Some(tracker);
        state
    }

    #[test]
    fn a_snapshot_is_due_once_everything_decided_is_acknowledged() {
        let state = decided_and_acknowledged();
        assert_eq!(due(&state, Guarantee::AtLeastOnce), Some(13));
    }

    #[test]
    fn no_snapshot_covers_a_state_with_a_decision_not_enqueued() {
        let mut state = decided_and_acknowledged();
        state.unsent = true;
        assert_eq!(due(&state, Guarantee::AtLeastOnce), None);
        assert_eq!(due(&state, Guarantee::ExactlyOnce), None);
    }
}
