//! The closed vocabularies of a decision: outcomes and reason codes
//! (contract sections 3, 5 and 6). Each has exactly one wire spelling.

/// The `outcome` of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Applied,
    Issued,
    Partial,
    Rejected,
    Accepted,
    Released,
    Duplicate,
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Applied,
        Outcome::Issued,
        Outcome::Partial,
        Outcome::Rejected,
        Outcome::Accepted,
        Outcome::Released,
        Outcome::Duplicate,
        Outcome::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Issued => "issued",
            Outcome::Partial => "partial",
            Outcome::Rejected => "rejected",
            Outcome::Accepted => "accepted",
            Outcome::Released => "released",
            Outcome::Duplicate => "duplicate",
            Outcome::Invalid => "invalid",
        }
    }
}

/// Why a request, a recipient or a redemption was rejected (section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    UnknownCampaign,
    TooManyRecipients,
    CampaignInactive,
    OutsideIssueWindow,
    DailyQuotaExhausted,
    BudgetExhausted,
    UserLimitReached,
    UnknownCoupon,
    NotOwner,
    AlreadyRedeemed,
    NotYetValid,
    Expired,
    BelowMinimum,
    DiscountBudgetExhausted,
    NotRedeemed,
    OrderMismatch,
}

impl Rejection {
    pub const ALL: [Rejection; 16] = [
        Rejection::UnknownCampaign,
        Rejection::TooManyRecipients,
        Rejection::CampaignInactive,
        Rejection::OutsideIssueWindow,
        Rejection::DailyQuotaExhausted,
        Rejection::BudgetExhausted,
        Rejection::UserLimitReached,
        Rejection::UnknownCoupon,
        Rejection::NotOwner,
        Rejection::AlreadyRedeemed,
        Rejection::NotYetValid,
        Rejection::Expired,
        Rejection::BelowMinimum,
        Rejection::DiscountBudgetExhausted,
        Rejection::NotRedeemed,
        Rejection::OrderMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::UnknownCampaign => "unknown_campaign",
            Rejection::TooManyRecipients => "too_many_recipients",
            Rejection::CampaignInactive => "campaign_inactive",
            Rejection::OutsideIssueWindow => "outside_issue_window",
            Rejection::DailyQuotaExhausted => "daily_quota_exhausted",
            Rejection::BudgetExhausted => "budget_exhausted",
            Rejection::UserLimitReached => "user_limit_reached",
            Rejection::UnknownCoupon => "unknown_coupon",
            Rejection::NotOwner => "not_owner",
            Rejection::AlreadyRedeemed => "already_redeemed",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Expired => "expired",
            Rejection::BelowMinimum => "below_minimum",
            Rejection::DiscountBudgetExhausted => "discount_budget_exhausted",
            Rejection::NotRedeemed => "not_redeemed",
            Rejection::OrderMismatch => "order_mismatch",
        }
    }
}

/// Why an input message is invalid (section 6), in the order checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidReason {
    TooLarge,
    Malformed,
    UnknownType,
    MissingField,
    BadValue,
    KeyMismatch,
    WrongPartition,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 7] = [
        InvalidReason::TooLarge,
        InvalidReason::Malformed,
        InvalidReason::UnknownType,
        InvalidReason::MissingField,
        InvalidReason::BadValue,
        InvalidReason::KeyMismatch,
        InvalidReason::WrongPartition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::TooLarge => "too_large",
            InvalidReason::Malformed => "malformed",
            InvalidReason::UnknownType => "unknown_type",
            InvalidReason::MissingField => "missing_field",
            InvalidReason::BadValue => "bad_value",
            InvalidReason::KeyMismatch => "key_mismatch",
            InvalidReason::WrongPartition => "wrong_partition",
        }
    }
}

/// Any `reason` a decision can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Rejected(Rejection),
    Invalid(InvalidReason),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected(r) => r.as_str(),
            Reason::Invalid(r) => r.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn wire_spellings_are_unique_snake_case() {
        let mut seen = HashSet::new();
        let all = Rejection::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(InvalidReason::ALL.iter().map(|r| r.as_str()));
        for s in all {
            assert!(seen.insert(s), "duplicate reason {s}");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let outcomes: HashSet<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(outcomes.len(), Outcome::ALL.len());
    }
}
