//! [`Health`]: what `/healthz` and `/readyz` report, set by the processor
//! and read by the HTTP adapter.
//!
//! Ready means: the consumer has joined its group and holds an assignment
//! (possibly empty, when the group has more members than partitions), every
//! assigned partition's state is restored, the brokers are reachable, and
//! the processor is not shutting down.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    assigned: AtomicBool,
    restoring: AtomicBool,
    brokers_down: AtomicBool,
    stopping: AtomicBool,
}

/// Why the processor is not ready, for the `/readyz` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    NoAssignment,
    Restoring,
    BrokersDown,
    Stopping,
}

impl NotReady {
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::NoAssignment => "waiting for a partition assignment",
            NotReady::Restoring => "restoring partition state",
            NotReady::BrokersDown => "all brokers are down or unreachable",
            NotReady::Stopping => "shutting down",
        }
    }
}

impl Health {
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.stopping.load(Ordering::Relaxed) {
            Err(NotReady::Stopping)
        } else if !self.assigned.load(Ordering::Relaxed) {
            Err(NotReady::NoAssignment)
        } else if self.restoring.load(Ordering::Relaxed) {
            Err(NotReady::Restoring)
        } else if self.brokers_down.load(Ordering::Relaxed) {
            Err(NotReady::BrokersDown)
        } else {
            Ok(())
        }
    }

    /// The group handed this member an assignment (or took it all back).
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Relaxed);
        self.publish();
    }

    /// A newly assigned partition's state is being restored.
    pub fn set_restoring(&self, restoring: bool) {
        self.restoring.store(restoring, Ordering::Relaxed);
        self.publish();
    }

    /// librdkafka reported every broker down (`true`) or the client talked
    /// to a broker again (`false`).
    pub fn set_brokers_down(&self, down: bool) {
        if self.brokers_down.swap(down, Ordering::Relaxed) != down {
            self.publish();
        }
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.publish();
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
    fn ready_only_when_assigned_reachable_and_running() {
        let h = Health::default();
        assert_eq!(h.readiness(), Err(NotReady::NoAssignment));
        h.set_assigned(true);
        assert_eq!(h.readiness(), Ok(()));
        h.set_restoring(true);
        assert_eq!(h.readiness(), Err(NotReady::Restoring));
        h.set_restoring(false);
        assert_eq!(h.readiness(), Ok(()));
        h.set_brokers_down(true);
        assert_eq!(h.readiness(), Err(NotReady::BrokersDown));
        h.set_brokers_down(false);
        assert_eq!(h.readiness(), Ok(()));
        h.set_stopping();
        assert_eq!(h.readiness(), Err(NotReady::Stopping));
    }
}
