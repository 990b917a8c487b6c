//! [`Campaign`]: one campaign's current definition and the counters that a
//! new definition keeps: coupons issued (the ledger), coupons per user and
//! discount spent.
//!
//! Coupons per user are a function of the ledger (every coupon ever issued
//! counts for its holder, and coupons are never removed), so a campaign
//! restored from a snapshot rebuilds them from its coupons.

use crate::event::CampaignDefinition;
use crate::state::coupon_ledger::CouponLedger;
use crate::state::holdings::Holdings;

#[derive(Debug)]
pub struct Campaign {
    pub definition: CampaignDefinition,
    /// Sum of the discounts of the currently redeemed coupons.
    pub discount_spent_cents: u64,
    /// Coupons of this campaign issued to each user (interned id).
    holdings: Holdings,
    pub coupons: CouponLedger,
}

impl Campaign {
    pub fn new(definition: CampaignDefinition) -> Campaign {
        Campaign {
            definition,
            discount_spent_cents: 0,
            holdings: Holdings::default(),
            coupons: CouponLedger::default(),
        }
    }

    /// A campaign restored from a snapshot: its holdings are rebuilt from
    /// the ledger, one per coupon held.
    pub(crate) fn restore(
        definition: CampaignDefinition,
        discount_spent_cents: u64,
        coupons: CouponLedger,
    ) -> Campaign {
        let mut holdings = Holdings::default();
        for coupon in coupons.iter() {
            holdings.add(coupon.holder);
        }
        Campaign {
            definition,
            discount_spent_cents,
            holdings,
            coupons,
        }
    }

    /// Coupons ever issued.
    pub fn issued(&self) -> u64 {
        self.coupons.len()
    }

    /// Coupons issued to `user` (an interned id, or `None` for a user the
    /// partition has never issued to).
    pub fn held_by(&self, user: Option<u32>) -> u64 {
        user.map_or(0, |u| self.holdings.count(u))
    }

    /// Records that one more coupon went to `user`.
    pub fn add_holding(&mut self, user: u32) {
        self.holdings.add(user);
    }

    /// Users holding at least one coupon.
    pub fn holders(&self) -> usize {
        self.holdings.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.holdings.heap_bytes() + self.coupons.heap_bytes()
    }
}
