//! Typed, validated input events (contract sections 2 and 3). Strings borrow
//! from the input value where it holds them unescaped, so decoding a typical
//! event allocates nothing but the recipient list of an `issue`.

use std::borrow::Cow;

use crate::zone::Zone;

/// The five event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Seller,
    Campaign,
    Issue,
    Redeem,
    Release,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::Seller,
        EventType::Campaign,
        EventType::Issue,
        EventType::Redeem,
        EventType::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Seller => "seller",
            EventType::Campaign => "campaign",
            EventType::Issue => "issue",
            EventType::Redeem => "redeem",
            EventType::Release => "release",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        match s {
            "seller" => Some(EventType::Seller),
            "campaign" => Some(EventType::Campaign),
            "issue" => Some(EventType::Issue),
            "redeem" => Some(EventType::Redeem),
            "release" => Some(EventType::Release),
            _ => None,
        }
    }
}

/// One valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    /// Event time, ms since the Unix epoch, at most 2^53-1.
    pub ts: u64,
    pub seller_id: Cow<'a, str>,
    pub body: Body<'a>,
}

impl Event<'_> {
    pub fn event_type(&self) -> EventType {
        match self.body {
            Body::Seller(_) => EventType::Seller,
            Body::Campaign(_) => EventType::Campaign,
            Body::Issue(_) => EventType::Issue,
            Body::Redeem(_) => EventType::Redeem,
            Body::Release(_) => EventType::Release,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    Seller(SellerUpdate),
    Campaign(CampaignUpsert<'a>),
    Issue(IssueRequest<'a>),
    Redeem(RedeemRequest<'a>),
    Release(ReleaseRequest<'a>),
}

/// A `seller` event: `None` keeps the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SellerUpdate {
    pub daily_issue_limit: Option<u64>,
    pub max_recipients: Option<u64>,
    pub timezone: Option<Zone>,
}

/// A `campaign` event: the complete new definition of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignUpsert<'a> {
    pub campaign_id: Cow<'a, str>,
    pub definition: CampaignDefinition,
}

/// A campaign's rules, with the contract's defaults already applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CampaignDefinition {
    pub budget: u64,
    pub valid_from: u64,
    pub valid_until: u64,
    pub discount_cents: u64,
    pub min_order_cents: u64,
    pub per_user_limit: u64,
    pub issue_from: u64,
    pub issue_until: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_budget_cents: Option<u64>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest<'a> {
    pub campaign_id: Cow<'a, str>,
    /// One or more ids, in request order, repeats kept.
    pub user_ids: Vec<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemRequest<'a> {
    pub coupon_id: Cow<'a, str>,
    pub user_id: Cow<'a, str>,
    pub order_id: Cow<'a, str>,
    pub order_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest<'a> {
    pub coupon_id: Cow<'a, str>,
    pub order_id: Cow<'a, str>,
}
