//! [`DailyQuota`]: how many coupons a seller has issued on each local day.
//!
//! Events may arrive out of event-time order, so the count of any day that
//! is still referenced must stay exact; counts are kept per day in a short
//! vector sorted by day, where the current day is the last element and is
//! found first.

#[derive(Debug, Default, Clone)]
pub struct DailyQuota {
    /// (local day number, coupons issued that day), ascending by day.
    days: Vec<(i64, u64)>,
}

impl DailyQuota {
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
}
