//! [`OffsetTracker`]: which input offsets of one partition may be committed.
//!
//! Every input message produces one or two records (a decision, and a dead
//! letter for invalid input). An input offset is done when all its records
//! are acknowledged by the broker; the committable offset is the first input
//! offset that is not done (Kafka commits name the next offset to read), so
//! a commit never passes a decision that could still be lost. Input offsets
//! may have gaps (compaction, transaction markers); acknowledgements may
//! arrive in any order.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct OffsetTracker {
    /// Input offsets in consumption order, with records not yet acknowledged.
    pending: VecDeque<(i64, u8)>,
    /// One past the last input offset recorded.
    next: i64,
}

impl OffsetTracker {
    /// A tracker for a partition whose next input offset is `start`.
    pub fn new(start: i64) -> OffsetTracker {
        OffsetTracker {
            pending: VecDeque::new(),
            next: start,
        }
    }

    /// Records that input `offset` produced `records` records in flight.
    /// Offsets must be recorded in increasing order.
    pub fn record(&mut self, offset: i64, records: u8) {
        debug_assert!(offset >= self.next || self.pending.is_empty());
        self.next = offset + 1;
        if records > 0 {
            self.pending.push_back((offset, records));
        }
    }

    /// Marks one record of input `offset` acknowledged. Returns false for an
    /// offset with nothing outstanding (a bug in the caller, or an
    /// acknowledgement for a partition that was revoked and reassigned).
    pub fn ack(&mut self, offset: i64) -> bool {
        let front = match self.pending.front() {
            Some(&(o, _)) => o,
            None => return false,
        };
        // Offsets are increasing; gaps make the index an upper bound.
        let guess = usize::try_from(offset - front).unwrap_or(usize::MAX);
        let index = if self.pending.get(guess).is_some_and(|&(o, _)| o == offset) {
            Some(guess)
        } else {
            self.pending.binary_search_by_key(&offset, |&(o, _)| o).ok()
        };
        let Some(index) = index else {
            return false;
        };
        let entry = &mut self.pending[index];
        if entry.1 == 0 {
            return false;
        }
        entry.1 -= 1;
        while self.pending.front().is_some_and(|&(_, n)| n == 0) {
            self.pending.pop_front();
        }
        true
    }

    /// The offset to commit: the first input offset not yet done.
    pub fn committable(&self) -> i64 {
        self.pending.front().map_or(self.next, |&(o, _)| o)
    }

    /// One past the last input offset recorded.
    pub fn next_offset(&self) -> i64 {
        self.next
    }

    /// Input messages whose records are not all acknowledged.
    pub fn in_flight(&self) -> usize {
        self.pending.iter().filter(|&&(_, n)| n > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_past_fully_acknowledged_offsets() {
        let mut t = OffsetTracker::new(10);
        assert_eq!(t.committable(), 10);
        t.record(10, 1);
        t.record(11, 2);
        t.record(14, 1); // a gap: 12 and 13 were never delivered
        assert_eq!(t.committable(), 10);
        assert!(t.ack(11));
        assert_eq!(t.committable(), 10);
        assert!(t.ack(10));
        assert_eq!(t.committable(), 11);
        assert!(t.ack(14));
        assert_eq!(t.committable(), 11);
        assert!(t.ack(11));
        assert_eq!(t.committable(), 15);
        assert!(!t.ack(11));
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// Whatever order acknowledgements arrive in, the committable offset
        /// never passes an input offset with an unacknowledged record.
        #[test]
        fn never_passes_an_unacknowledged_record(
            records in prop::collection::vec((1u8..3, 0i64..3), 1..60),
            seed in any::<u64>(),
        ) {
            let mut t = OffsetTracker::new(0);
            let mut offset = 0;
            let mut acks = Vec::new();
            for (n, gap) in &records {
                offset += gap;
                t.record(offset, *n);
                acks.extend(std::iter::repeat_n(offset, *n as usize));
                offset += 1;
            }
            let mut rng = coupon_stream_core::workload::SplitMix64::new(seed);
            for i in (1..acks.len()).rev() {
                acks.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let mut outstanding = acks.clone();
            for a in acks {
                prop_assert!(t.ack(a));
                let pos = outstanding.iter().position(|&o| o == a).unwrap();
                outstanding.remove(pos);
                let c = t.committable();
                prop_assert!(outstanding.iter().all(|&o| o >= c), "committed {} past {:?}", c, outstanding);
            }
            prop_assert_eq!(t.committable(), offset);
        }
    }
}
