//! [`RetentionIndex`]: when each campaign may be dropped from state, so that
//! a partition's memory follows its live campaigns instead of every
//! campaign it has ever seen (`--retention-ms`).
//!
//! A campaign's *last relevant moment* is the latest event time at which
//! anything about it can still change a decision by the contract's rules:
//! the end of its redemption window (`valid_until`), the end of its
//! issuance window (`issue_until`, which the contract allows past
//! `valid_until`), and the latest `expires_at` of its coupons (fixed at
//! issue, so a later definition that shortens `valid_until` does not shorten
//! them). Its *deadline* is that moment plus the retention; once the
//! partition watermark passes the deadline (`deadline < watermark`), the
//! campaign is dropped with its coupons, redemptions and per-user counts.
//!
//! Everything here is a function of event time and the input order: the
//! index is keyed by (deadline, seller, campaign) in a sorted set, and the
//! earliest deadline is cached, so the per-event cost is one comparison and
//! a scan happens only when the watermark passes that deadline. The index
//! is derived from the campaigns (nothing in it is stored in a snapshot),
//! so a restored state rebuilds exactly the same index.

use std::collections::BTreeSet;

/// The retention setting and the deadline of every campaign in state.
#[derive(Debug, Default)]
pub struct RetentionIndex {
    /// 0: retention off, nothing is ever dropped and the index stays empty.
    retention_ms: u64,
    /// (deadline, seller id, campaign id). A sorted set rather than a heap:
    /// a campaign upsert that moves the deadline removes the old key
    /// exactly, so no stale entries pile up, and rulings never depend on
    /// hash order.
    deadlines: BTreeSet<(u64, Box<str>, Box<str>)>,
    /// The smallest deadline in `deadlines`, `u64::MAX` when empty; read on
    /// every event, so it is cached rather than looked up in the tree.
    next_deadline: u64,
}

impl RetentionIndex {
    pub fn new(retention_ms: u64) -> RetentionIndex {
        RetentionIndex {
            retention_ms,
            deadlines: BTreeSet::new(),
            next_deadline: u64::MAX,
        }
    }

    pub fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    pub fn enabled(&self) -> bool {
        self.retention_ms > 0
    }

    /// The event time before which nothing is kept for events that arrive
    /// late: `watermark - retention`, or `None` with retention off or while
    /// the watermark is below the retention (no day can have ended before
    /// a negative instant).
    pub fn horizon(&self, watermark: u64) -> Option<u64> {
        if self.enabled() {
            watermark.checked_sub(self.retention_ms)
        } else {
            None
        }
    }

    /// Whether some campaign's deadline lies behind `watermark`: the hot
    /// path's only retention cost.
    #[inline]
    pub fn is_due(&self, watermark: u64) -> bool {
        self.next_deadline < watermark
    }

    /// Campaigns in the index.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    fn deadline(&self, last_relevant_ts: u64) -> u64 {
        last_relevant_ts.saturating_add(self.retention_ms)
    }

    /// Records that campaign `campaign_id` of `seller_id` now matters until
    /// `last_relevant_ts`; `previous` is the moment recorded before (when
    /// the campaign was already in state).
    pub fn track(
        &mut self,
        seller_id: &str,
        campaign_id: &str,
        previous: Option<u64>,
        last_relevant_ts: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let new = self.deadline(last_relevant_ts);
        if let Some(previous) = previous {
            let old = self.deadline(previous);
            if old == new {
                return;
            }
            self.deadlines
                .remove(&(old, Box::from(seller_id), Box::from(campaign_id)));
        }
        self.deadlines
            .insert((new, seller_id.into(), campaign_id.into()));
        self.refresh();
    }

    /// Removes and returns the campaign with the earliest deadline if that
    /// deadline lies behind `watermark`.
    pub fn pop_due(&mut self, watermark: u64) -> Option<(Box<str>, Box<str>)> {
        if !self.is_due(watermark) {
            return None;
        }
        let (_, seller_id, campaign_id) = self.deadlines.pop_first()?;
        self.refresh();
        Some((seller_id, campaign_id))
    }

    fn refresh(&mut self) {
        self.next_deadline = self.deadlines.first().map_or(u64::MAX, |&(d, _, _)| d);
    }

    /// Heap bytes held, roughly: a B-tree node per ~11 keys is not counted
    /// separately; each key's strings and tuple are.
    pub fn heap_bytes(&self) -> usize {
        self.deadlines
            .iter()
            .map(|(_, s, c)| std::mem::size_of::<(u64, Box<str>, Box<str>)>() + s.len() + c.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_tracks_nothing() {
        let mut r = RetentionIndex::new(0);
        r.track("s", "c", None, 10);
        assert!(r.is_empty());
        assert!(!r.is_due(u64::MAX));
        assert_eq!(r.horizon(1_000), None);
    }

    #[test]
    fn earliest_deadline_pops_first_and_moves_with_upserts() {
        let mut r = RetentionIndex::new(100);
        r.track("s", "a", None, 1_000);
        r.track("s", "b", None, 500);
        r.track("t", "a", None, 2_000);
        assert_eq!(r.horizon(150), Some(50));
        assert_eq!(r.horizon(100), Some(0));
        assert_eq!(r.horizon(50), None);
        // b's deadline is 600: due only strictly after it.
        assert!(!r.is_due(600));
        assert!(r.is_due(601));
        // Moving b later replaces its key; moving t:a earlier too.
        r.track("s", "b", Some(500), 5_000);
        r.track("t", "a", Some(2_000), 200);
        assert_eq!(r.len(), 3);
        assert_eq!(r.pop_due(601), Some(("t".into(), "a".into())));
        assert_eq!(r.pop_due(601), None);
        assert_eq!(r.pop_due(1_101), Some(("s".into(), "a".into())));
        assert_eq!(r.pop_due(1_101), None);
        assert_eq!(r.pop_due(u64::MAX), Some(("s".into(), "b".into())));
        assert!(r.is_empty());
        assert!(!r.is_due(u64::MAX));
    }

    #[test]
    fn deadlines_saturate() {
        let mut r = RetentionIndex::new(u64::MAX);
        r.track("s", "c", None, 10);
        assert!(!r.is_due(u64::MAX));
    }
}
