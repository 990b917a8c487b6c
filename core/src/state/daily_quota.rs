//! [`DailyQuota`]: how many coupons a seller has issued on each local day.
//!
//! Events may arrive out of event-time order, so the count of any day that
//! is still referenced must stay exact; counts are kept per day in a short
//! vector sorted by day, where the current day is the last element and is
//! found first.
//!
//! With retention on (contract section 8), an `issue` on a local day that
//! ended at or before `watermark - retention_ms`, in the zone in force at
//! that issue, is refused whatever the day's count (the rule is applied in
//! `state::partition_state`), so such a count is never read again.
//! [`DailyQuota::forget_ended`] drops a count once its day has ended by the
//! horizon in *every* zone: the seller may move to another zone, where the
//! same date ends up to [`OFFSET_BOUND_MS`] later, and a count that a later
//! issue can still be checked against must not be lost.
//!
//! Snapshots written before contract v1.1 may carry a floor below which an
//! older build dropped counts under the zone of that time; an `issue` on
//! such a day is refused ([`DailyQuota::count_lost`]) rather than counted
//! from zero, which could over-issue after a move to a zone further west.

use crate::local_day::OFFSET_BOUND_MS;

const DAY_MS: i128 = crate::local_day::DAY_MS as i128;

#[derive(Debug, Default, Clone)]
pub struct DailyQuota {
    /// (local day number, coupons issued that day), ascending by day.
    days: Vec<(i64, u64)>,
    /// Days before this one had their counts dropped by a build before
    /// contract v1.1 (restored from its snapshot); `None` otherwise.
    retired_before: Option<i64>,
}

impl DailyQuota {
    /// Whether `day`'s count was dropped by an older build: an `issue` on
    /// it cannot be checked against the limit and is refused.
    pub fn count_lost(&self, day: i64) -> bool {
        self.retired_before.is_some_and(|floor| day < floor)
    }

    /// The floor of counts an older build dropped, for snapshots.
    pub(crate) fn retired_before(&self) -> Option<i64> {
        self.retired_before
    }

    /// A restored floor: counts below it were dropped by an older build.
    pub(crate) fn set_retired_before(&mut self, floor: Option<i64>) {
        self.retired_before = floor;
    }

    /// Drops the counts of the days that ended at or before `horizon` (ms)
    /// in every zone. Costs one comparison when nothing is due.
    pub fn forget_ended(&mut self, horizon: u64) {
        match self.days.first() {
            Some(&(oldest, _)) if ended_everywhere(oldest, horizon) => {}
            _ => return,
        }
        let ended = self
            .days
            .partition_point(|&(d, _)| ended_everywhere(d, horizon));
        self.days.drain(..ended);
    }

    /// Starts fetching the newest days' counts, which an issue reads.
    pub fn prefetch(&self) {
        if let Some(newest) = self.days.last() {
            crate::prefetch::prefetch(newest);
        }
    }

    pub fn issued_on(&self, day: i64) -> u64 {
        match self.position(day) {
            Ok(i) => self.days[i].1,
            Err(_) => 0,
        }
    }

    pub fn set_issued(&mut self, day: i64, issued: u64) {
        match self.position(day) {
            Ok(i) => self.days[i].1 = issued,
            Err(i) => self.days.insert(i, (day, issued)),
        }
    }

    /// (local day, coupons issued) of every tracked day, ascending by day,
    /// for snapshots.
    pub(crate) fn days(&self) -> &[(i64, u64)] {
        &self.days
    }

    /// Days with a count.
    pub fn days_tracked(&self) -> usize {
        self.days.len()
    }

    /// Drops the counts of days before `day`.
    pub fn forget_before(&mut self, day: i64) {
        self.days.retain(|&(d, _)| d >= day);
    }

    fn position(&self, day: i64) -> Result<usize, usize> {
        // Fast path: today, the newest day.
        match self.days.last() {
            Some(&(d, _)) if d == day => Ok(self.days.len() - 1),
            Some(&(d, _)) if d < day => Err(self.days.len()),
            _ => self.days.binary_search_by_key(&day, |&(d, _)| d),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.days.capacity() * std::mem::size_of::<(i64, u64)>()
    }
}

/// Whether local date `day` has ended by `horizon` whatever the zone.
fn ended_everywhere(day: i64, horizon: u64) -> bool {
    (i128::from(day) + 1) * DAY_MS + i128::from(OFFSET_BOUND_MS) <= i128::from(horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_day_even_out_of_order() {
        let mut q = DailyQuota::default();
        q.set_issued(10, 3);
        q.set_issued(12, 1);
        q.set_issued(11, 2);
        assert_eq!(q.issued_on(10), 3);
        assert_eq!(q.issued_on(11), 2);
        assert_eq!(q.issued_on(12), 1);
        assert_eq!(q.issued_on(9), 0);
        assert_eq!(q.issued_on(13), 0);
        q.set_issued(12, 5);
        assert_eq!(q.issued_on(12), 5);
        q.forget_before(11);
        assert_eq!(q.issued_on(10), 0);
        assert_eq!(q.days_tracked(), 2);
    }

    #[test]
    fn counts_are_forgotten_once_their_day_ended_in_every_zone() {
        const DAY: u64 = 86_400_000;
        let mut q = DailyQuota::default();
        for day in [3, 5, 9] {
            q.set_issued(day, 1);
        }
        // Day 3 ends at 4 days UTC, and 26 hours later west of UTC.
        let end_3 = 4 * DAY + OFFSET_BOUND_MS;
        q.forget_ended(end_3 - 1);
        assert_eq!(q.days_tracked(), 3);
        q.forget_ended(end_3);
        assert_eq!(q.days(), &[(5, 1), (9, 1)]);
        q.forget_ended(9 * DAY);
        assert_eq!(q.days(), &[(9, 1)]);
        q.forget_ended(u64::MAX);
        assert_eq!(q.days_tracked(), 0);
        // Days far outside the calendar (a crafted snapshot) do not overflow.
        q.set_issued(i64::MAX, 1);
        q.set_issued(i64::MIN, 1);
        q.forget_ended(u64::MAX);
        assert_eq!(q.days(), &[(i64::MAX, 1)]);
        assert!(!q.count_lost(0));
        q.set_retired_before(Some(6));
        assert!(q.count_lost(5) && !q.count_lost(6));
    }
}
