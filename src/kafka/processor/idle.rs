//! Never idle while work waits. A member that owns no partition while the
//! input topic has partitions nobody is known to own rejoins its group,
//! with a bounded exponential backoff, logged. This is what recovers from
//! a coordinator that completed a generation with an empty assignment and
//! never rebalances again (Tansu 0.6 does, when a dead leader's session
//! expires between a follower's JoinGroup and SyncGroup): the member
//! cannot tell that from the inside, only that it owns nothing.
//!
//! Rejoining is done by the member's librdkafka client. When that client
//! itself makes no progress (two rejoins in a row end without any
//! assignment, not even an empty one: its coordinator connection or its
//! group state is stuck), the member is replaced by a new one with new
//! clients, connections and member id, as a restarted process would be.
//!
//! An instance beyond the partition count owns nothing legitimately; it
//! stays put when the group's description shows every partition owned by
//! the others. A broker that does not describe member assignments
//! (Tansu 0.6) leaves that unknown, and the member rejoins, at most once
//! per backoff.

use std::time::{Duration, Instant};

/// The first wait after a rebalance left this member with nothing: long
/// enough for the second half of a cooperative rebalance (revoke, then
/// assign) to arrive.
pub(super) const BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// The longest wait between two rejoins.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Rejoins in a row that end without any assignment before the member
/// is replaced by a new one (new clients): the first rejoin recovers from
/// a coordinator that forgot this member; the second failing too means
/// the client itself is stuck.
const REJOINS_BEFORE_NEW_MEMBER: u32 = 2;
/// A join that has not produced an assignment after this many session
/// timeouts (plus the backoff) counts as stuck: by then the coordinator has
/// expired any dead member it was waiting for.
const JOIN_PATIENCE_SESSIONS: u32 = 3;

/// What to do about a member with no partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// It owns partitions, or has not waited long enough to tell.
    Wait,
    /// Time to look at the group.
    Check,
}

/// The never-idle watch: when this member last saw its group move, and
/// how long to wait before rejoining.
#[derive(Debug)]
pub(super) struct IdleWatch {
    /// The last assignment, revoke or (re)join.
    last_event: Instant,
    /// An assignment arrived since the member (re)joined.
    assigned: bool,
    /// A join can wait for a dead member's session to expire: this long
    /// (three session timeouts) before a missing assignment counts as stuck.
    join_patience: Duration,
    backoff: Duration,
    rejoins: u64,
    /// Rejoins since the last assignment (or ownership).
    rejoins_unanswered: u32,
}

impl IdleWatch {
    pub(super) fn new(now: Instant, session_timeout: Duration) -> IdleWatch {
        IdleWatch {
            last_event: now,
            assigned: false,
            join_patience: session_timeout * JOIN_PATIENCE_SESSIONS,
            backoff: BACKOFF_INITIAL,
            rejoins: 0,
            rejoins_unanswered: 0,
        }
    }

    /// The group moved: an assignment (`assigned`: a generation completed)
    /// or a revoke (librdkafka joins again; until the next assignment the
    /// member counts as joining).
    pub(super) fn on_event(&mut self, now: Instant, assigned: bool) {
        self.last_event = now;
        self.assigned = assigned;
        if assigned {
            self.rejoins_unanswered = 0;
        }
    }

    /// Whether a member owning `owned` partitions should look at its group.
    pub(super) fn poll(&self, now: Instant, owned: usize) -> Idle {
        if owned > 0 {
            return Idle::Wait;
        }
        // A completed generation that left this member nothing is checked
        // after the backoff; a join in progress gets longer, since a slow
        // join (the coordinator waiting for a dead member's session to
        // expire, or for members to finish revoking) only restarts if
        // interrupted.
        let patience = if self.assigned {
            self.backoff
        } else {
            self.join_patience + self.backoff
        };
        if now.duration_since(self.last_event) >= patience {
            Idle::Check
        } else {
            Idle::Wait
        }
    }

    /// It owns partitions: the next idle spell starts from the first wait.
    pub(super) fn owning(&mut self) {
        self.backoff = BACKOFF_INITIAL;
        self.rejoins_unanswered = 0;
    }

    /// The group covers every partition without this member: look again
    /// after the next backoff.
    pub(super) fn covered(&mut self, now: Instant) {
        self.last_event = now;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// The member left and rejoined: wait for the new generation, longer
    /// next time. Returns the attempt number.
    pub(super) fn rejoined(&mut self, now: Instant) -> u64 {
        self.last_event = now;
        self.assigned = false;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.rejoins += 1;
        self.rejoins_unanswered += 1;
        self.rejoins
    }

    /// Whether rejoining has stopped working: the last rejoins all ended
    /// without an assignment, so the next step is a new member.
    pub(super) fn client_stuck(&self) -> bool {
        self.rejoins_unanswered >= REJOINS_BEFORE_NEW_MEMBER
    }

    #[cfg(test)]
    fn assigned_since_join(&self) -> bool {
        self.assigned
    }

    pub(super) fn backoff(&self) -> Duration {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);

    #[test]
    fn a_member_with_partitions_never_checks() {
        let t0 = Instant::now();
        let watch = IdleWatch::new(t0, SESSION);
        assert_eq!(watch.poll(t0 + Duration::from_secs(3600), 1), Idle::Wait);
    }

    #[test]
    fn an_empty_assignment_is_checked_after_the_backoff() {
        let t0 = Instant::now();
        let mut watch = IdleWatch::new(t0, SESSION);
        watch.on_event(t0, true);
        assert_eq!(watch.poll(t0 + BACKOFF_INITIAL / 2, 0), Idle::Wait);
        assert_eq!(watch.poll(t0 + BACKOFF_INITIAL, 0), Idle::Check);
        // A revoke or assignment meanwhile restarts the wait.
        watch.on_event(t0 + BACKOFF_INITIAL, false);
        assert_eq!(
            watch.poll(t0 + BACKOFF_INITIAL + Duration::from_millis(10), 0),
            Idle::Wait
        );
    }

    #[test]
    fn a_join_gets_three_session_timeouts_before_it_counts_as_stuck() {
        let t0 = Instant::now();
        let watch = IdleWatch::new(t0, SESSION);
        assert_eq!(watch.poll(t0 + SESSION * 3, 0), Idle::Wait);
        assert_eq!(
            watch.poll(t0 + SESSION * 3 + BACKOFF_INITIAL, 0),
            Idle::Check
        );
    }

    #[test]
    fn a_revoke_that_leaves_nothing_waits_for_the_join() {
        let t0 = Instant::now();
        let mut watch = IdleWatch::new(t0, SESSION);
        watch.on_event(t0, true);
        // Lost or revoked everything: librdkafka joins again.
        watch.on_event(t0, false);
        assert_eq!(watch.poll(t0 + BACKOFF_INITIAL * 2, 0), Idle::Wait);
        // The join completed with nothing for this member: checked soon.
        watch.on_event(t0 + SESSION, true);
        assert_eq!(watch.poll(t0 + SESSION + BACKOFF_INITIAL, 0), Idle::Check);
    }

    #[test]
    fn rejoins_back_off_to_a_bound_and_reset_on_ownership() {
        let mut now = Instant::now();
        let mut watch = IdleWatch::new(now, SESSION);
        watch.on_event(now, true);
        let mut waits = Vec::new();
        for attempt in 1..=8 {
            now += watch.backoff();
            assert_eq!(watch.rejoined(now), attempt);
            assert!(!watch.assigned_since_join());
            watch.on_event(now, true);
            waits.push(watch.backoff().as_secs());
        }
        assert_eq!(waits, vec![4, 8, 16, 32, 60, 60, 60, 60]);
        watch.owning();
        assert_eq!(watch.backoff(), BACKOFF_INITIAL);
    }

    #[test]
    fn rejoins_that_bring_no_assignment_at_all_mean_a_stuck_client() {
        let mut now = Instant::now();
        let mut watch = IdleWatch::new(now, SESSION);
        assert!(!watch.client_stuck());
        now += SESSION * 4;
        watch.rejoined(now);
        assert!(!watch.client_stuck(), "one rejoin is the ordinary remedy");
        // A revoke is not an answer to the join.
        watch.on_event(now, false);
        now += SESSION * 4;
        watch.rejoined(now);
        assert!(watch.client_stuck());

        // Any assignment, even an empty one, shows the client works.
        watch.on_event(now, true);
        assert!(!watch.client_stuck());
        watch.rejoined(now);
        assert!(!watch.client_stuck());
        watch.owning();
        watch.rejoined(now);
        assert!(!watch.client_stuck());
    }
}
