//! Read-only views of one partition's state for the HTTP state queries:
//! a campaign with its counters, and a coupon with its holder and state.
//! "Now" is the partition's watermark (largest event `ts` seen), never the
//! wall clock, so a view is a deterministic function of the input so far.

use serde::Serialize;

use crate::event::CampaignDefinition;
use crate::local_day::local_day;
use crate::state::PartitionState;
use crate::state::coupon_id::parse_coupon_id;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignView {
    pub seller_id: String,
    pub campaign_id: String,
    /// The current definition, defaults applied.
    pub definition: CampaignDefinition,
    /// Coupons ever issued.
    pub issued: u64,
    /// `budget - issued`, never below zero.
    pub remaining_budget: u64,
    /// Coupons currently redeemed.
    pub redeemed: u64,
    /// Sum of the discounts of the currently redeemed coupons (exact; may
    /// exceed 2^64 for a campaign without a discount budget).
    pub discount_spent_cents: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_discount_budget_cents: Option<u64>,
    /// Coupons the seller issued (all campaigns) on the seller's local day
    /// of `as_of_ts`.
    pub seller_issued_today: u64,
    pub seller_daily_issue_limit: u64,
    /// The partition watermark the view is taken at (ms).
    pub as_of_ts: u64,
}

/// Where a coupon stands at the partition watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponState {
    /// Issued, not redeemed, not past its expiry.
    Issued,
    Redeemed,
    /// Not redeemed and past `expires_at`.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponView {
    pub seller_id: String,
    pub coupon_id: String,
    pub campaign_id: String,
    pub holder: String,
    pub state: CouponState,
    /// Last instant (inclusive, ms) the coupon may be redeemed.
    pub expires_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_cents: Option<u64>,
    pub as_of_ts: u64,
}

/// The campaign `campaign_id` of `seller_id`, as of `watermark`.
pub fn campaign_view(
    state: &PartitionState,
    watermark: u64,
    seller_id: &str,
    campaign_id: &str,
) -> Option<CampaignView> {
    let seller = state.seller(seller_id)?;
    let campaign = seller.campaigns.get(campaign_id)?;
    let d = &campaign.definition;
    let issued = campaign.issued();
    let day = local_day(seller.settings.timezone, watermark);
    Some(CampaignView {
        seller_id: seller_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        definition: *d,
        issued,
        remaining_budget: d.budget.saturating_sub(issued),
        redeemed: campaign.coupons.redeemed_count() as u64,
        discount_spent_cents: campaign.discount_spent_cents,
        remaining_discount_budget_cents: d.discount_budget_cents.map(|b| {
            // What is left, never below zero; at most `b`, so a u64.
            let left = u128::from(b).saturating_sub(campaign.discount_spent_cents);
            u64::try_from(left).unwrap_or(0)
        }),
        seller_issued_today: seller.daily.issued_on(day),
        seller_daily_issue_limit: seller.settings.daily_issue_limit,
        as_of_ts: watermark,
    })
}

/// The coupon `coupon_id` of `seller_id`, as of `watermark`.
pub fn coupon_view(
    state: &PartitionState,
    watermark: u64,
    seller_id: &str,
    coupon_id: &str,
) -> Option<CouponView> {
    let (campaign_id, serial) = parse_coupon_id(coupon_id)?;
    let campaign = state.campaign(seller_id, campaign_id)?;
    let coupon = campaign.coupons.get(serial)?;
    let redemption = campaign.coupons.redemption(coupon);
    let coupon_state = match redemption {
        Some(_) => CouponState::Redeemed,
        None if watermark > coupon.expires_at => CouponState::Expired,
        None => CouponState::Issued,
    };
    Some(CouponView {
        seller_id: seller_id.to_owned(),
        coupon_id: coupon_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        holder: state.user_id(coupon.holder).to_owned(),
        state: coupon_state,
        expires_at: coupon.expires_at,
        order_id: redemption.map(|r| state.order_id(r.order).to_owned()),
        discount_cents: redemption.map(|r| r.discount_cents),
        as_of_ts: watermark,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::decision::Source;
    use crate::decision_core::{DecisionCore, Message};

    fn feed(core: &mut DecisionCore, lines: &[&str]) {
        let mut out = Vec::new();
        for (offset, line) in lines.iter().enumerate() {
            out.clear();
            core.process(
                &Message {
                    value: line.as_bytes(),
                    source: Source {
                        partition: 0,
                        offset: offset as i64,
                    },
                    key_check: None,
                },
                &mut out,
            );
        }
    }

    #[test]
    fn views_follow_the_state() {
        let mut core = DecisionCore::new(CoreConfig::default());
        feed(
            &mut core,
            &[
                r#"{"type":"campaign","event_id":"c","ts":1000,"seller_id":"s1","campaign_id":"c1","budget":3,"valid_from":0,"valid_until":100000,"discount_cents":100,"min_order_cents":300,"per_user_limit":5,"ttl_ms":5000,"discount_budget_cents":1000}"#,
                r#"{"type":"issue","event_id":"i","ts":2000,"seller_id":"s1","campaign_id":"c1","user_ids":["u1","u2"]}"#,
                r#"{"type":"redeem","event_id":"r","ts":3000,"seller_id":"s1","coupon_id":"c1:1","user_id":"u1","order_id":"o9","order_cents":500}"#,
            ],
        );
        let w = core.watermark();
        assert_eq!(w, 3000);
        let c = campaign_view(core.state(), w, "s1", "c1").expect("campaign");
        assert_eq!(c.issued, 2);
        assert_eq!(c.remaining_budget, 1);
        assert_eq!(c.redeemed, 1);
        assert_eq!(c.discount_spent_cents, 100);
        assert_eq!(c.remaining_discount_budget_cents, Some(900));
        assert_eq!(c.seller_issued_today, 2);
        assert_eq!(c.seller_daily_issue_limit, 16_000);

        let one = coupon_view(core.state(), w, "s1", "c1:1").expect("coupon 1");
        assert_eq!(one.holder, "u1");
        assert_eq!(one.state, CouponState::Redeemed);
        assert_eq!(one.order_id.as_deref(), Some("o9"));
        assert_eq!(one.discount_cents, Some(100));
        assert_eq!(one.expires_at, 2000 + 5000);
        let two = coupon_view(core.state(), w, "s1", "c1:2").expect("coupon 2");
        assert_eq!(two.state, CouponState::Issued);
        assert_eq!(two.order_id, None);
        assert_eq!(
            coupon_view(core.state(), 7001, "s1", "c1:2").map(|v| v.state),
            Some(CouponState::Expired)
        );

        assert_eq!(coupon_view(core.state(), w, "s1", "c1:3"), None);
        assert_eq!(coupon_view(core.state(), w, "s1", "c1:01"), None);
        assert_eq!(coupon_view(core.state(), w, "s2", "c1:1"), None);
        assert_eq!(campaign_view(core.state(), w, "s1", "nope"), None);
    }
}
