//! [`Holdings`]: how many coupons of one campaign each user holds, the
//! counter behind `per_user_limit`.
//!
//! Most campaigns allow one coupon per user, so nearly every holder holds
//! exactly one. Holders are therefore a set of 4-byte user handles (a
//! [`HandleTable`], 6 to 12 bytes per holder between growths), and only
//! users holding two or more have an entry in a second map.
//!
//! The holders' table grows a step at a time: a campaign every user holds
//! (a platform-wide coupon) has millions of holders, and placing them all
//! again in the one add that grows the table stalled it (51-80 ms at 2.75
//! million holders, `growth_stall`). A growth's larger groups take every
//! add from then on, and each add first moves the holders of the next
//! [`GROUPS_MOVED_PER_ADD`] old groups.

use hashbrown::HashMap;

use crate::handle_table::HandleTable;

/// Old groups whose holders each add moves while the table grows: about
/// 32 holders at the 7/8 load a growth starts at (hashing a handle is a
/// multiply, so a move costs the placement's line only).
const GROUPS_MOVED_PER_ADD: usize = 3;

/// Counts are u32: a user's count is bounded by the coupons one campaign
/// can hold, so it is exact (contract section 7).
const _: () = assert!(crate::state::coupon_ledger::COUPONS_MAX < u32::MAX as u64);

#[derive(Debug, Default)]
pub struct Holdings {
    /// Users holding at least one coupon, in a table whose line for a user
    /// can be fetched ahead ([`Holdings::prefetch`]); holders are never
    /// removed (coupons are never removed), which the table requires.
    holders: HandleTable,
    /// Users holding two or more: their count.
    multiple: HashMap<u32, u32>,
}

/// The hash of a user handle: a multiply whose high half is folded into
/// the low, so that both the table's home group (low bits) and its tag
/// (high bits) depend on every bit of the handle.
fn hash_user(user: u32) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let product = u128::from(u64::from(user) ^ 0x2545_F491_4F6C_DD1D) * u128::from(K);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Holdings {
    fn holds(&self, user: u32) -> bool {
        self.holders.find(hash_user(user), |u| u == user).is_some()
    }

    /// Coupons `user` holds.
    pub fn count(&self, user: u32) -> u64 {
        if let Some(&n) = self.multiple.get(&user) {
            return u64::from(n);
        }
        u64::from(self.holds(user))
    }

    /// Starts fetching into cache, without waiting, what a lookup of
    /// `user` reads first.
    pub fn prefetch(&self, user: u32) {
        self.holders.prefetch(hash_user(user));
    }

    /// Records one more coupon for `user` if `user` holds fewer than
    /// `limit`; returns whether it did. In the common case (a user new to
    /// the campaign) this reads one line of the holders.
    pub fn add_below(&mut self, user: u32, limit: u64) -> bool {
        if limit == 0 {
            return false;
        }
        if self.holders.is_growing() {
            self.holders.move_groups(GROUPS_MOVED_PER_ADD, hash_user);
        }
        let hash = hash_user(user);
        if self.holders.find(hash, |u| u == user).is_none() {
            if !self.holders.has_room(1) {
                // A table with no groups yet is sized at once.
                self.holders.reserve_stepwise(1);
            }
            self.holders.insert_reserved(hash, user);
            return true;
        }
        match self.multiple.entry(user) {
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
        self.holders.heap_bytes()
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

    #[test]
    fn grows_a_step_at_a_time_and_counts_every_holder_meanwhile() {
        let mut h = Holdings::default();
        let mut growths = 0;
        let mut was_growing = false;
        for u in 0..50_000u32 {
            // Every third step adds a second coupon to an earlier holder.
            h.add(u);
            if u % 3 == 0 {
                h.add(u / 2);
            }
            let growing = h.holders.is_growing();
            growths += usize::from(growing && !was_growing);
            was_growing = growing;
            if growing || u % 997 == 0 {
                // Holders from before the growth, moved or not, and new.
                for v in [0, u / 2, u.saturating_sub(1), u] {
                    assert!(h.count(v) >= 1, "holder {v} lost at {u}");
                }
                assert_eq!(h.count(u + 1), 0);
            }
        }
        assert!(growths >= 8, "{growths} growths");
        // Every holder: once, plus once per u with u % 3 == 0 and u / 2 == v.
        for v in 0..50_000u32 {
            let extra = [2 * v, 2 * v + 1]
                .iter()
                .filter(|&&u| u < 50_000 && u % 3 == 0)
                .count() as u64;
            assert_eq!(h.count(v), 1 + extra, "holder {v}");
        }
        assert_eq!(h.count(50_000), 0);
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_map(
            adds in proptest::collection::vec((0u32..3_000, 0u64..4), 1..6_000)
        ) {
            let mut h = Holdings::default();
            let mut model: std::collections::HashMap<u32, u64> = Default::default();
            for &(user, limit) in &adds {
                let held = model.get(&user).copied().unwrap_or(0);
                let added = h.add_below(user, limit);
                proptest::prop_assert_eq!(added, held < limit);
                if added {
                    *model.entry(user).or_insert(0) += 1;
                }
                proptest::prop_assert_eq!(h.count(user), model.get(&user).copied().unwrap_or(0));
            }
            for (&user, &n) in &model {
                proptest::prop_assert_eq!(h.count(user), n);
            }
            proptest::prop_assert_eq!(h.len(), model.len());
        }
    }
}
