//! [`Campaign`]: one campaign's current definition and the counters that a
//! new definition keeps: coupons issued (the ledger), coupons per user and
//! discount spent.
//!
//! Coupons per user are a function of the ledger (every coupon ever issued
//! counts for its holder, and coupons are never removed), so a campaign
//! restored from a snapshot rebuilds them from its coupons.
//!
//! [`Tombstone`]: what is kept of a campaign that retention dropped, so
//! that re-creating it continues its serial numbering and its budgets.

use crate::event::CampaignDefinition;
use crate::state::coupon_ledger::CouponLedger;
use crate::state::holdings::Holdings;

#[derive(Debug)]
pub struct Campaign {
    pub definition: CampaignDefinition,
    /// Sum of the discounts of the currently redeemed coupons (and of those
    /// redeemed when retention dropped an earlier incarnation): exact, see
    /// `state::partition_state`.
    pub discount_spent_cents: u128,
    /// Coupons of this campaign issued to each user (interned id).
    holdings: Holdings,
    pub coupons: CouponLedger,
}

/// What a seller keeps of a campaign dropped by retention: enough that a
/// later `campaign` event with the same id neither names an old coupon with
/// a new serial nor grants the spent budgets again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// Coupons ever issued, which is the last serial used.
    pub issued: u64,
    /// Discount of the coupons redeemed when the campaign was dropped; they
    /// can no longer be released, so it stays spent.
    pub discount_spent_cents: u128,
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

    /// A campaign re-created after retention dropped it: serials continue
    /// after the old ones, and the issued count and discount spent carry
    /// over (the contract keeps a campaign's counters across definitions).
    /// Per-user counts start afresh: the old coupons are gone.
    pub fn resume(definition: CampaignDefinition, tombstone: Tombstone) -> Campaign {
        Campaign {
            definition,
            discount_spent_cents: tombstone.discount_spent_cents,
            holdings: Holdings::default(),
            coupons: CouponLedger::starting_after(tombstone.issued),
        }
    }

    /// What retention keeps when it drops this campaign.
    pub fn tombstone(&self) -> Tombstone {
        Tombstone {
            issued: self.issued(),
            discount_spent_cents: self.discount_spent_cents,
        }
    }

    /// The latest event time at which this campaign can still change a
    /// decision: the end of its redemption and issuance windows and the
    /// latest expiry of its coupons (see `state::retention`).
    pub fn last_relevant_ts(&self) -> u64 {
        let d = &self.definition;
        d.valid_until
            .max(d.issue_until)
            .max(self.coupons.max_expires_at())
    }

    /// A campaign restored from a snapshot: its holdings are rebuilt from
    /// the ledger, one per coupon held.
    pub(crate) fn restore(
        definition: CampaignDefinition,
        discount_spent_cents: u128,
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

    /// Records that one more coupon goes to `user` if `user` holds fewer
    /// than the per-user limit; returns whether it did (one probe, where
    /// [`Campaign::held_by`] then [`Campaign::add_holding`] take two).
    pub fn add_holding_within_limit(&mut self, user: u32) -> bool {
        self.holdings
            .add_below(user, self.definition.per_user_limit)
    }

    /// Starts fetching into cache what [`Campaign::add_holding_within_limit`]
    /// of `user` reads first.
    pub fn prefetch_holding(&self, user: u32) {
        self.holdings.prefetch(user);
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
