//! [`Holdings`]: how many coupons of one campaign each user holds, the
//! counter behind `per_user_limit`.
//!
//! Most campaigns allow one coupon per user, so nearly every holder holds
//! exactly one. Holders are therefore a set of 4-byte user handles, and only
//! users holding two or more have an entry in a second map: the common case
//! costs 5 bytes of table per holder instead of 9 for a user -> count map.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

/// Counts are u32: a user's count is bounded by the coupons one campaign
/// can hold, so it is exact (contract section 7).
const _: () = assert!(crate::state::coupon_ledger::COUPONS_MAX < u32::MAX as u64);

#[derive(Debug, Default)]
pub struct Holdings {
    /// Users holding at least one coupon.
    holders: HashTable<u32>,
    /// Users holding two or more: their count.
    multiple: HashMap<u32, u32>,
    hasher: DefaultHashBuilder,
}

impl Holdings {
    /// Coupons `user` holds.
    pub fn count(&self, user: u32) -> u64 {
        if let Some(&n) = self.multiple.get(&user) {
            return u64::from(n);
        }
        let hash = self.hasher.hash_one(user);
        u64::from(self.holders.find(hash, |&u| u == user).is_some())
    }

    /// Records one more coupon for `user` if `user` holds fewer than
    /// `limit`; returns whether it did. In the common case (a user new to
    /// the campaign) this is one probe of the holders.
    pub fn add_below(&mut self, user: u32, limit: u64) -> bool {
        if limit == 0 {
            return false;
        }
        let hash = self.hasher.hash_one(user);
        let hasher = &self.hasher;
        match self
            .holders
            .entry(hash, |&u| u == user, |&u| hasher.hash_one(u))
        {
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(user);
                true
            }
            hashbrown::hash_table::Entry::Occupied(_) => match self.multiple.entry(user) {
                hashbrown::hash_map::Entry::Occupied(mut n) => {
                    if u64::from(*n.get()) < limit {
                        // Counts stay below u32::MAX (asserted above): this
                        // never saturates.
                        *n.get_mut() = n.get().saturating_add(1);
                        true
                    } else {
                        false
                    }
                }
                hashbrown::hash_map::Entry::Vacant(n) => {
                    if limit > 1 {
                        n.insert(2);
                        true
                    } else {
                        false
                    }
                }
            },
        }
    }

    /// Records one more coupon for `user`.
    pub fn add(&mut self, user: u32) {
        // A user holds at most every coupon of the ledger, which is below
        // u32::MAX (asserted above): no limit applies.
        let added = self.add_below(user, u64::MAX);
        debug_assert!(added);
    }

    /// Users holding at least one coupon.
    pub fn len(&self) -> usize {
        self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.holders.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.multiple.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_user() {
        let mut h = Holdings::default();
        assert_eq!(h.count(7), 0);
        h.add(7);
        assert_eq!(h.count(7), 1);
        h.add(7);
        h.add(7);
        h.add(9);
        assert_eq!(h.count(7), 3);
        assert_eq!(h.count(9), 1);
        assert_eq!(h.count(8), 0);
        assert_eq!(h.len(), 2);
        for u in 0..10_000 {
            h.add(u);
        }
        assert_eq!(h.count(7), 4);
        assert_eq!(h.count(9_999), 1);
        assert_eq!(h.len(), 10_000);
    }

    #[test]
    fn add_below_stops_at_the_limit() {
        for limit in 0..5u64 {
            let mut h = Holdings::default();
            let mut added = 0;
            for _ in 0..7 {
                if h.add_below(3, limit) {
                    added += 1;
                }
                assert_eq!(h.count(3), added);
            }
            assert_eq!(added, limit);
            assert_eq!(h.count(4), 0);
        }
    }
}
