//! [`Campaign`]: one campaign's current definition and the counters that a
//! new definition keeps: coupons issued (the ledger), coupons per user and
//! discount spent.

use hashbrown::HashMap;

use crate::event::CampaignDefinition;
use crate::state::coupon_ledger::CouponLedger;

#[derive(Debug)]
pub struct Campaign {
    pub definition: CampaignDefinition,
    /// Sum of the discounts of the currently redeemed coupons.
    pub discount_spent_cents: u64,
    /// Interned user id -> coupons of this campaign issued to the user.
    holdings: HashMap<u32, u32>,
    pub coupons: CouponLedger,
}

impl Campaign {
    pub fn new(definition: CampaignDefinition) -> Campaign {
        Campaign {
            definition,
            discount_spent_cents: 0,
            holdings: HashMap::new(),
            coupons: CouponLedger::default(),
        }
    }

    /// Coupons ever issued.
    pub fn issued(&self) -> u64 {
        self.coupons.len()
    }

    /// Coupons issued to `user` (an interned id, or `None` for a user the
    /// partition has never issued to).
    pub fn held_by(&self, user: Option<u32>) -> u64 {
        user.and_then(|u| self.holdings.get(&u))
            .map_or(0, |&n| u64::from(n))
    }

    /// Records that one more coupon went to `user`.
    pub fn add_holding(&mut self, user: u32) {
        let n = self.holdings.entry(user).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Users holding at least one coupon.
    pub fn holders(&self) -> usize {
        self.holdings.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.holdings.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
            + self.coupons.heap_bytes()
    }
}
