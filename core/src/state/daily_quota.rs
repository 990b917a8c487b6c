//! [`DailyQuota`]: how many coupons a seller has issued on each local day.
//!
//! Events may arrive out of event-time order, so the count of any day that
//! is still referenced must stay exact; counts are kept per day in a short
//! vector sorted by day, where the current day is the last element and is
//! found first.
//!
//! With retention on, days that lie wholly before the retention horizon are
//! retired ([`DailyQuota::retire`]), so the vector holds about a retention's
//! worth of days; a day once retired stays closed: its count is gone, so an
//! `issue` on it could not be checked against the limit and is refused.

use chrono_tz::Tz;

use crate::local_day::local_day;

const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Default, Clone)]
pub struct DailyQuota {
    /// (local day number, coupons issued that day), ascending by day.
    days: Vec<(i64, u64)>,
    /// Days before this one have been retired; `None` if none was.
    retired_before: Option<i64>,
}

impl DailyQuota {
    /// Whether `day`'s count was retired (an `issue` on it is refused).
    pub fn is_retired(&self, day: i64) -> bool {
        self.retired_before.is_some_and(|floor| day < floor)
    }

    /// Days before this one were retired, for snapshots.
    pub(crate) fn retired_before(&self) -> Option<i64> {
        self.retired_before
    }

    /// A restored floor: counts below it were retired.
    pub(crate) fn set_retired_before(&mut self, floor: Option<i64>) {
        self.retired_before = floor;
    }

    /// Retires the counts of the days that end before `horizon` (ms) in
    /// `tz`: those before the local day of `horizon`. Cheap when nothing is
    /// due: the oldest day is compared with a bound before any time zone
    /// lookup.
    pub fn retire(&mut self, tz: Tz, horizon: u64) {
        let Some(&(oldest, _)) = self.days.first() else {
            return;
        };
        // A local day is at most one day off the UTC day (offsets < 24 h).
        let utc_day = (horizon / DAY_MS) as i64;
        if oldest > utc_day {
            return;
        }
        let floor = local_day(tz, horizon);
        let retired = self.days.partition_point(|&(d, _)| d < floor);
        if retired == 0 {
            return;
        }
        // The newest retired day bounds what is closed; days between it and
        // `floor` had no count, so their count of 0 is still exact.
        let newest_retired = self.days[retired - 1].0;
        self.days.drain(..retired);
        self.retired_before = Some(newest_retired + 1);
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
    fn retire_closes_days_before_the_horizon() {
        let tz = chrono_tz::UTC;
        let mut q = DailyQuota::default();
        for day in [3, 5, 9] {
            q.set_issued(day, 1);
        }
        q.retire(tz, 3 * DAY_MS + 5);
        assert_eq!(q.days_tracked(), 3, "the horizon's own day stays");
        assert!(!q.is_retired(3));
        q.retire(tz, 7 * DAY_MS);
        assert_eq!(q.days(), &[(9, 1)]);
        assert!(q.is_retired(5) && q.is_retired(2));
        // Day 6 had no count; it is not closed.
        assert!(!q.is_retired(6) && !q.is_retired(9));
        assert_eq!(q.retired_before(), Some(6));
        q.retire(tz, 100 * DAY_MS);
        assert_eq!(q.days_tracked(), 0);
        assert!(q.is_retired(9) && !q.is_retired(10));
    }
}
