//! [`Health`]: what `/healthz` and `/readyz` report, set by the processor
//! and read by the HTTP adapter without waiting on anything.
//!
//! Ready means: the processor is not shutting down; the consumer has
//! received an assignment since it (last) joined its group; it owns a
//! partition, or the group is known to own every input partition without
//! it (an instance beyond the partition count is idle but ready); no owned
//! partition is still restoring; and a broker is reachable.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Health {
    assigned: AtomicBool,
    unowned: AtomicBool,
    restoring: AtomicBool,
    brokers_down: AtomicBool,
    stopping: AtomicBool,
    /// When shutdown was first asked for: every shutdown bound counts from it.
    stop_requested: OnceLock<Instant>,
}

/// Why the processor is not ready, for the `/readyz` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    NoAssignment,
    Unowned,
    Restoring,
    BrokersDown,
    Stopping,
}

impl NotReady {
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::NoAssignment => "waiting for a partition assignment",
            NotReady::Unowned => {
                "this instance owns no partition while input partitions may be unowned; rejoining the group"
            }
            NotReady::Restoring => "restoring partition state",
            NotReady::BrokersDown => "all brokers are down or unreachable",
            NotReady::Stopping => "shutting down",
        }
    }
}

impl Health {
    /// The flags are read in the order the processor sets them last to
    /// first (`assigned` after the restores it starts), each load seeing
    /// every store made before the one it reads, so a reader never
    /// combines a new assignment with the restoring flag from before it.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.stopping.load(Ordering::Acquire) {
            Err(NotReady::Stopping)
        } else if !self.assigned.load(Ordering::Acquire) {
            Err(NotReady::NoAssignment)
        } else if self.unowned.load(Ordering::Acquire) {
            Err(NotReady::Unowned)
        } else if self.restoring.load(Ordering::Acquire) {
            Err(NotReady::Restoring)
        } else if self.brokers_down.load(Ordering::Acquire) {
            Err(NotReady::BrokersDown)
        } else {
            Ok(())
        }
    }

    /// The group handed this member an assignment (`true`), or the member
    /// left to join again (`false`).
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Release);
        self.publish();
    }

    /// This member owns nothing while the group is not known to own every
    /// input partition.
    pub fn set_unowned(&self, unowned: bool) {
        if self.unowned.swap(unowned, Ordering::AcqRel) != unowned {
            self.publish();
        }
    }

    /// An owned partition's state is being restored.
    pub fn set_restoring(&self, restoring: bool) {
        if self.restoring.swap(restoring, Ordering::AcqRel) != restoring {
            self.publish();
        }
    }

    /// librdkafka reported every broker down (`true`) or the client talked
    /// to a broker again (`false`).
    pub fn set_brokers_down(&self, down: bool) {
        if self.brokers_down.swap(down, Ordering::AcqRel) != down {
            self.publish();
        }
    }

    /// Shutdown was asked for: everything that waits gives up.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn set_stopping(&self) {
        let _ = self.stop_requested.set(Instant::now());
        self.stopping.store(true, Ordering::Release);
        self.publish();
    }

    /// When shutdown was first asked for.
    pub fn stop_requested_at(&self) -> Option<Instant> {
        self.stop_requested.get().copied()
    }

    fn publish(&self) {
        let ready = if self.readiness().is_ok() { 1.0 } else { 0.0 };
        metrics::gauge!(crate::ops::telemetry::READY).set(ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_assigned_owning_reachable_and_running() {
        let h = Health::default();
        assert_eq!(h.readiness(), Err(NotReady::NoAssignment));
        h.set_assigned(true);
        assert_eq!(h.readiness(), Ok(()));
        h.set_unowned(true);
        assert_eq!(h.readiness(), Err(NotReady::Unowned));
        h.set_unowned(false);
        h.set_restoring(true);
        assert_eq!(h.readiness(), Err(NotReady::Restoring));
        h.set_restoring(false);
        assert_eq!(h.readiness(), Ok(()));
        h.set_brokers_down(true);
        assert_eq!(h.readiness(), Err(NotReady::BrokersDown));
        h.set_brokers_down(false);
        // Rejoining the group: not ready until the next assignment.
        h.set_assigned(false);
        assert_eq!(h.readiness(), Err(NotReady::NoAssignment));
        h.set_assigned(true);
        assert_eq!(h.readiness(), Ok(()));
        assert!(h.stop_requested_at().is_none());
        h.set_stopping();
        assert_eq!(h.readiness(), Err(NotReady::Stopping));
        let first = h.stop_requested_at();
        h.set_stopping();
        assert!(first.is_some() && h.stop_requested_at() == first);
    }
}
