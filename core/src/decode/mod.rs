//! Decoding of one input value into a typed [`Event`], with the invalid-input
//! checks of contract section 6 in their order: `too_large`, `malformed`,
//! `unknown_type`, `missing_field`, `bad_value`. (`key_mismatch` and
//! `wrong_partition` need the Kafka message and live in [`crate::decision_core`].)
//!
//! Parsing is one pass of [`crate::json`] over the value into a fixed table
//! of the fields the contract names, each captured as a borrowed [`Raw`]
//! JSON value; unknown fields are skipped without being built. Validation then runs over
//! the table, so the check order does not depend on the order of the keys in
//! the input. A key given twice keeps its last value, as in JavaScript.
//!
//! Before that, [`fast`] tries the common shape of the three hot event types
//! in one pass; it returns an event only where the strict path would return
//! the same one, and otherwise leaves the value to the strict path.

mod fast;

use std::borrow::Cow;

use crate::config::parse_timezone;
use crate::event::{
    Body, CampaignDefinition, CampaignUpsert, Event, EventType, IssueRequest, RedeemRequest,
    ReleaseRequest, SellerUpdate,
};
use crate::id::{ID_BYTES_MAX, INT_MAX, is_valid_id};
use crate::json::{Malformed, Object, Raw, scan_object};
use crate::reason::InvalidReason;

/// Why a value is invalid, with a human-readable `detail` for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: InvalidReason,
    pub detail: String,
}

impl Invalid {
    pub fn new(reason: InvalidReason, detail: impl Into<String>) -> Invalid {
        Invalid {
            reason,
            detail: detail.into(),
        }
    }
}

/// Decodes and validates one input value.
pub fn decode(value: &[u8], max_event_bytes: usize) -> Result<Event<'_>, Invalid> {
    if value.len() > max_event_bytes {
        return Err(Invalid::new(
            InvalidReason::TooLarge,
            format!("value is longer than the limit of {max_event_bytes} bytes"),
        ));
    }
    if let Some(event) = fast::decode_fast(value) {
        return Ok(event);
    }
    decode_strict(value)
}

/// The strict decoder alone, without the size limit and the fast path: every
/// error, in the contract's order (for tests and the differential fuzz target).
#[doc(hidden)]
pub fn decode_strict(value: &[u8]) -> Result<Event<'_>, Invalid> {
    let mut raw = RawEvent::parse(value).map_err(|e| {
        Invalid::new(
            InvalidReason::Malformed,
            format!("not a UTF-8 JSON object: {e}"),
        )
    })?;
    raw.validate()
}

/// The fields the contract names. Their position in [`Field::ALL`] is their
/// slot in [`RawEvent::fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    EventId,
    Ts,
    SellerId,
    DailyIssueLimit,
    MaxRecipients,
    Timezone,
    CampaignId,
    Budget,
    ValidFrom,
    ValidUntil,
    DiscountCents,
    MinOrderCents,
    PerUserLimit,
    IssueFrom,
    IssueUntil,
    TtlMs,
    DiscountBudgetCents,
    Active,
    UserIds,
    CouponId,
    UserId,
    OrderId,
    OrderCents,
}

const FIELD_COUNT: usize = 24;

impl Field {
    #[cfg(test)]
    const ALL: [Field; FIELD_COUNT] = [
        Field::Type,
        Field::EventId,
        Field::Ts,
        Field::SellerId,
        Field::DailyIssueLimit,
        Field::MaxRecipients,
        Field::Timezone,
        Field::CampaignId,
        Field::Budget,
        Field::ValidFrom,
        Field::ValidUntil,
        Field::DiscountCents,
        Field::MinOrderCents,
        Field::PerUserLimit,
        Field::IssueFrom,
        Field::IssueUntil,
        Field::TtlMs,
        Field::DiscountBudgetCents,
        Field::Active,
        Field::UserIds,
        Field::CouponId,
        Field::UserId,
        Field::OrderId,
        Field::OrderCents,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::EventId => "event_id",
            Field::Ts => "ts",
            Field::SellerId => "seller_id",
            Field::DailyIssueLimit => "daily_issue_limit",
            Field::MaxRecipients => "max_recipients",
            Field::Timezone => "timezone",
            Field::CampaignId => "campaign_id",
            Field::Budget => "budget",
            Field::ValidFrom => "valid_from",
            Field::ValidUntil => "valid_until",
            Field::DiscountCents => "discount_cents",
            Field::MinOrderCents => "min_order_cents",
            Field::PerUserLimit => "per_user_limit",
            Field::IssueFrom => "issue_from",
            Field::IssueUntil => "issue_until",
            Field::TtlMs => "ttl_ms",
            Field::DiscountBudgetCents => "discount_budget_cents",
            Field::Active => "active",
            Field::UserIds => "user_ids",
            Field::CouponId => "coupon_id",
            Field::UserId => "user_id",
            Field::OrderId => "order_id",
            Field::OrderCents => "order_cents",
        }
    }

    /// Matches a key by length first, so an event's keys cost one or two
    /// short comparisons each instead of a scan over every name.
    fn from_name(name: &str) -> Option<Field> {
        Field::from_name_bytes(name.as_bytes())
    }

    /// [`Field::from_name`] of a name's bytes.
    fn from_name_bytes(b: &[u8]) -> Option<Field> {
        let field = match b.len() {
            2 if b == b"ts" => Field::Ts,
            4 if b == b"type" => Field::Type,
            6 => match b {
                b"budget" => Field::Budget,
                b"active" => Field::Active,
                b"ttl_ms" => Field::TtlMs,
                _ => return None,
            },
            7 if b == b"user_id" => Field::UserId,
            8 => match b {
                b"event_id" => Field::EventId,
                b"timezone" => Field::Timezone,
                b"user_ids" => Field::UserIds,
                b"order_id" => Field::OrderId,
                _ => return None,
            },
            9 => match b {
                b"seller_id" => Field::SellerId,
                b"coupon_id" => Field::CouponId,
                _ => return None,
            },
            10 => match b {
                b"valid_from" => Field::ValidFrom,
                b"issue_from" => Field::IssueFrom,
                _ => return None,
            },
            11 => match b {
                b"campaign_id" => Field::CampaignId,
                b"valid_until" => Field::ValidUntil,
                b"issue_until" => Field::IssueUntil,
                b"order_cents" => Field::OrderCents,
                _ => return None,
            },
            14 => match b {
                b"max_recipients" => Field::MaxRecipients,
                b"discount_cents" => Field::DiscountCents,
                b"per_user_limit" => Field::PerUserLimit,
                _ => return None,
            },
            15 if b == b"min_order_cents" => Field::MinOrderCents,
            17 if b == b"daily_issue_limit" => Field::DailyIssueLimit,
            21 if b == b"discount_budget_cents" => Field::DiscountBudgetCents,
            _ => return None,
        };
        Some(field)
    }

    /// Fields every event must carry, after `type` (section 2).
    const COMMON_REQUIRED: [Field; 3] = [Field::EventId, Field::Ts, Field::SellerId];

    /// Fields an event of this type must carry besides the common ones.
    const fn required_for(event_type: EventType) -> &'static [Field] {
        match event_type {
            EventType::Seller => &[],
            EventType::Campaign => &[
                Field::CampaignId,
                Field::Budget,
                Field::ValidFrom,
                Field::ValidUntil,
                Field::DiscountCents,
            ],
            EventType::Issue => &[Field::CampaignId, Field::UserIds],
            EventType::Redeem => &[
                Field::CouponId,
                Field::UserId,
                Field::OrderId,
                Field::OrderCents,
            ],
            EventType::Release => &[Field::CouponId, Field::OrderId],
        }
    }
}

/// The scanned object, with its known fields' values still unparsed.
struct RawEvent<'a> {
    object: Object<'a, FIELD_COUNT>,
}

impl<'a> RawEvent<'a> {
    /// Scans `value`, which must be exactly one JSON object.
    fn parse(value: &'a [u8]) -> Result<RawEvent<'a>, Malformed> {
        let object = scan_object(value, |name| Field::from_name(name).map(|f| f as usize))?;
        Ok(RawEvent { object })
    }
}

fn bad_value(field: Field, expected: &str, got: &Raw<'_>) -> Invalid {
    Invalid::new(
        InvalidReason::BadValue,
        format!("`{}` must be {expected}, got {}", field.name(), got.kind()),
    )
}

const INT_EXPECTED: &str = "an integer in 0..=2^53-1";
const ID_EXPECTED: &str = "a string of 1 to 128 bytes";

impl<'a> RawEvent<'a> {
    fn take(&mut self, field: Field) -> Raw<'a> {
        self.object.get(field as usize)
    }

    fn is_absent(&self, field: Field) -> bool {
        self.object.is_absent(field as usize)
    }

    fn validate(&mut self) -> Result<Event<'a>, Invalid> {
        let event_type = match &self.take(Field::Type) {
            Raw::Str(s) => EventType::parse(s).ok_or_else(|| {
                Invalid::new(
                    InvalidReason::UnknownType,
                    format!("`type` {s:?} is not one of seller, campaign, issue, redeem, release"),
                )
            })?,
            Raw::Absent => {
                return Err(Invalid::new(
                    InvalidReason::UnknownType,
                    "`type` is absent or null",
                ));
            }
            other => {
                return Err(Invalid::new(
                    InvalidReason::UnknownType,
                    format!("`type` must be a string, got {}", other.kind()),
                ));
            }
        };
        let required = Field::COMMON_REQUIRED
            .iter()
            .chain(Field::required_for(event_type));
        for &field in required {
            if self.is_absent(field) {
                return Err(Invalid::new(
                    InvalidReason::MissingField,
                    format!(
                        "required field `{}` of a {} event is absent or null",
                        field.name(),
                        event_type.as_str()
                    ),
                ));
            }
        }

        let event_id = self.id(Field::EventId)?;
        let ts = self.int(Field::Ts)?;
        let seller_id = self.id(Field::SellerId)?;
        let body = match event_type {
            EventType::Seller => Body::Seller(self.seller()?),
            EventType::Campaign => Body::Campaign(self.campaign()?),
            EventType::Issue => Body::Issue(IssueRequest {
                campaign_id: self.id(Field::CampaignId)?,
                user_ids: self.user_ids()?,
            }),
            EventType::Redeem => Body::Redeem(RedeemRequest {
                coupon_id: self.id(Field::CouponId)?,
                user_id: self.id(Field::UserId)?,
                order_id: self.id(Field::OrderId)?,
                order_cents: self.int(Field::OrderCents)?,
            }),
            EventType::Release => Body::Release(ReleaseRequest {
                coupon_id: self.id(Field::CouponId)?,
                order_id: self.id(Field::OrderId)?,
            }),
        };
        Ok(Event {
            event_id,
            ts,
            seller_id,
            body,
        })
    }

    /// A present id field.
    fn id(&mut self, field: Field) -> Result<Cow<'a, str>, Invalid> {
        match self.take(field) {
            Raw::Str(s) if is_valid_id(&s) => Ok(s),
            Raw::Str(s) => Err(Invalid::new(
                InvalidReason::BadValue,
                format!(
                    "`{}` must be 1 to {ID_BYTES_MAX} bytes, got {}",
                    field.name(),
                    s.len()
                ),
            )),
            other => Err(bad_value(field, ID_EXPECTED, &other)),
        }
    }

    /// A present integer field.
    fn int(&mut self, field: Field) -> Result<u64, Invalid> {
        self.opt_int(field)?
            .ok_or_else(|| bad_value(field, INT_EXPECTED, &Raw::Absent))
    }

    /// An optional integer field.
    fn opt_int(&mut self, field: Field) -> Result<Option<u64>, Invalid> {
        match self.take(field) {
            Raw::Absent => Ok(None),
            Raw::UInt(v) if v <= INT_MAX => Ok(Some(v)),
            Raw::UInt(_) => Err(Invalid::new(
                InvalidReason::BadValue,
                format!("`{}` is larger than 2^53-1", field.name()),
            )),
            other => Err(bad_value(field, INT_EXPECTED, &other)),
        }
    }

    fn seller(&mut self) -> Result<SellerUpdate, Invalid> {
        let daily_issue_limit = self.opt_int(Field::DailyIssueLimit)?;
        let max_recipients = self.opt_int(Field::MaxRecipients)?;
        if max_recipients == Some(0) {
            return Err(Invalid::new(
                InvalidReason::BadValue,
                "`max_recipients` must be at least 1",
            ));
        }
        let timezone =
            match self.take(Field::Timezone) {
                Raw::Absent => None,
                Raw::Str(name) => Some(parse_timezone(&name).map_err(|e| {
                    Invalid::new(InvalidReason::BadValue, format!("`timezone`: {e}"))
                })?),
                other => return Err(bad_value(Field::Timezone, "an IANA time zone name", &other)),
            };
        Ok(SellerUpdate {
            daily_issue_limit,
            max_recipients,
            timezone,
        })
    }

    fn campaign(&mut self) -> Result<CampaignUpsert<'a>, Invalid> {
        let campaign_id = self.id(Field::CampaignId)?;
        let budget = self.int(Field::Budget)?;
        let valid_from = self.int(Field::ValidFrom)?;
        let valid_until = self.int(Field::ValidUntil)?;
        let discount_cents = self.int(Field::DiscountCents)?;
        let min_order_cents = self.opt_int(Field::MinOrderCents)?.unwrap_or(0);
        let per_user_limit = self.opt_int(Field::PerUserLimit)?.unwrap_or(1);
        let issue_from = self.opt_int(Field::IssueFrom)?.unwrap_or(valid_from);
        let issue_until = self.opt_int(Field::IssueUntil)?.unwrap_or(valid_until);
        let ttl_ms = self.opt_int(Field::TtlMs)?;
        let discount_budget_cents = self.opt_int(Field::DiscountBudgetCents)?;
        let active = match self.take(Field::Active) {
            Raw::Absent => true,
            Raw::Bool(b) => b,
            other => return Err(bad_value(Field::Active, "a boolean", &other)),
        };
        if valid_from > valid_until {
            return Err(Invalid::new(
                InvalidReason::BadValue,
                format!("`valid_from` {valid_from} is after `valid_until` {valid_until}"),
            ));
        }
        // Checked on the effective window, defaults included: an issuance
        // window that can never open is a mistake whichever end was given.
        if issue_from > issue_until {
            return Err(Invalid::new(
                InvalidReason::BadValue,
                format!(
                    "issuance window is empty: `issue_from` {issue_from} is after `issue_until` {issue_until}"
                ),
            ));
        }
        Ok(CampaignUpsert {
            campaign_id,
            definition: CampaignDefinition {
                budget,
                valid_from,
                valid_until,
                discount_cents,
                min_order_cents,
                per_user_limit,
                issue_from,
                issue_until,
                ttl_ms,
                discount_budget_cents,
                active,
            },
        })
    }

    fn user_ids(&mut self) -> Result<Vec<Cow<'a, str>>, Invalid> {
        let items = match self.take(Field::UserIds) {
            Raw::Array(items) => items,
            other => return Err(bad_value(Field::UserIds, "an array of ids", &other)),
        };
        if items.is_empty() {
            return Err(Invalid::new(
                InvalidReason::BadValue,
                "`user_ids` must hold at least one id",
            ));
        }
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Raw::Str(s) if is_valid_id(&s) => ids.push(s),
                other => {
                    return Err(Invalid::new(
                        InvalidReason::BadValue,
                        format!(
                            "`user_ids[{i}]` must be {ID_EXPECTED}, got {}",
                            match &other {
                                Raw::Str(s) => format!("{} bytes", s.len()),
                                other => other.kind().to_owned(),
                            }
                        ),
                    ));
                }
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(value: &str) -> InvalidReason {
        decode(value.as_bytes(), 65_536).unwrap_err().reason
    }

    const REDEEM: &str = r#"{"type":"redeem","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o","order_cents":100}"#;

    #[test]
    fn decodes_every_type() {
        let ev = decode(REDEEM.as_bytes(), 65_536).unwrap();
        assert_eq!(ev.event_type(), EventType::Redeem);
        assert_eq!(ev.ts, 5);
        assert!(matches!(ev.event_id, Cow::Borrowed("e")));
        let ev = decode(
            br#"{"type":"campaign","event_id":"e","ts":1,"seller_id":"s","campaign_id":"c","budget":3,"valid_from":10,"valid_until":20,"discount_cents":5,"extra":{"a":[1,2]}}"#,
            65_536,
        )
        .unwrap();
        let Body::Campaign(c) = ev.body else { panic!() };
        assert_eq!(c.definition.issue_from, 10);
        assert_eq!(c.definition.issue_until, 20);
        assert_eq!(c.definition.per_user_limit, 1);
        assert!(c.definition.active);
        assert_eq!(c.definition.ttl_ms, None);
        let ev = decode(
            br#"{"type":"seller","event_id":"e","ts":1,"seller_id":"s","timezone":"America/New_York","max_recipients":null}"#,
            65_536,
        )
        .unwrap();
        assert_eq!(
            ev.body,
            Body::Seller(SellerUpdate {
                daily_issue_limit: None,
                max_recipients: None,
                timezone: crate::zone::Zone::parse("America/New_York")
            })
        );
        let ev = decode(
            br#"{"type":"issue","event_id":"e","ts":1,"seller_id":"s\u00e9","campaign_id":"c","user_ids":["a","a","b"]}"#,
            65_536,
        )
        .unwrap();
        assert_eq!(ev.seller_id, "sé");
        let Body::Issue(i) = ev.body else { panic!() };
        assert_eq!(i.user_ids, vec!["a", "a", "b"]);
    }

    #[test]
    fn size_is_checked_first() {
        let v = REDEEM.as_bytes();
        assert_eq!(
            decode(v, v.len() - 1).unwrap_err().reason,
            InvalidReason::TooLarge
        );
        assert!(decode(v, v.len()).is_ok());
        assert_eq!(
            decode(b"not json at all", 3).unwrap_err().reason,
            InvalidReason::TooLarge
        );
    }

    #[test]
    fn malformed_values() {
        for v in [
            "",
            "not json",
            "[1,2,3]",
            "\"s\"",
            "1",
            "null",
            "{\"type\":\"redeem\",",
            "{} x",
            "{\"type\":\"\\ud800\"}",
        ] {
            assert_eq!(reason(v), InvalidReason::Malformed, "{v}");
        }
        assert_eq!(
            decode(b"\xff\xfe not utf8", 100).unwrap_err().reason,
            InvalidReason::Malformed
        );
        assert_eq!(
            decode(b"{\"type\":\"a\xffb\"}", 100).unwrap_err().reason,
            InvalidReason::Malformed
        );
        let deep = "[".repeat(10_000);
        assert_eq!(reason(&format!("{{\"x\":{deep}")), InvalidReason::Malformed);
    }

    #[test]
    fn unknown_types() {
        for v in [
            r#"{}"#,
            r#"{"type":"refund"}"#,
            r#"{"type":5}"#,
            r#"{"type":null}"#,
            r#"{"type":"Redeem"}"#,
        ] {
            assert_eq!(reason(v), InvalidReason::UnknownType, "{v}");
        }
    }

    #[test]
    fn missing_fields_come_before_bad_values() {
        assert_eq!(
            reason(r#"{"type":"redeem","event_id":"z","ts":1,"seller_id":"s"}"#),
            InvalidReason::MissingField
        );
        // A bad `ts` does not hide a missing `order_cents`.
        assert_eq!(
            reason(
                r#"{"type":"redeem","event_id":"z","ts":-1,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o"}"#
            ),
            InvalidReason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"type":"release","event_id":"z","ts":1,"seller_id":null,"coupon_id":"c:1","order_id":"o"}"#
            ),
            InvalidReason::MissingField
        );
        assert_eq!(
            reason(r#"{"type":"seller","event_id":"z","seller_id":"s"}"#),
            InvalidReason::MissingField
        );
        assert_eq!(
            reason(r#"{"type":"issue","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c"}"#),
            InvalidReason::MissingField
        );
    }

    #[test]
    fn bad_values() {
        let cases = [
            r#"{"type":"seller","event_id":"z","ts":true,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":9007199254740992,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":1.5,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":1e3,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":-1,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":"1","seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":99999999999999999999999,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"","ts":1,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":7,"ts":1,"seller_id":"s"}"#,
            r#"{"type":"seller","event_id":"z","ts":1,"seller_id":"s","timezone":"Mars/Olympus"}"#,
            r#"{"type":"seller","event_id":"z","ts":1,"seller_id":"s","timezone":5}"#,
            r#"{"type":"seller","event_id":"z","ts":1,"seller_id":"s","max_recipients":0}"#,
            r#"{"type":"seller","event_id":"z","ts":1,"seller_id":"s","daily_issue_limit":-3}"#,
            r#"{"type":"campaign","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","budget":1,"valid_from":10,"valid_until":5,"discount_cents":1}"#,
            r#"{"type":"campaign","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","budget":1,"valid_from":1,"valid_until":5,"discount_cents":1,"issue_from":4,"issue_until":3}"#,
            r#"{"type":"campaign","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","budget":1,"valid_from":1,"valid_until":5,"discount_cents":1,"issue_from":6}"#,
            r#"{"type":"campaign","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","budget":1,"valid_from":1,"valid_until":5,"discount_cents":1,"active":"yes"}"#,
            r#"{"type":"campaign","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","budget":[1],"valid_from":1,"valid_until":5,"discount_cents":1}"#,
            r#"{"type":"issue","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","user_ids":[]}"#,
            r#"{"type":"issue","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","user_ids":"u"}"#,
            r#"{"type":"issue","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","user_ids":["u",null]}"#,
            r#"{"type":"issue","event_id":"z","ts":1,"seller_id":"s","campaign_id":"c","user_ids":["u",""]}"#,
            r#"{"type":"redeem","event_id":"z","ts":1,"seller_id":"s","coupon_id":"x:1","user_id":"u","order_id":"o","order_cents":-1}"#,
            r#"{"type":"redeem","event_id":"z","ts":1,"seller_id":"s","coupon_id":"x:1","user_id":{},"order_id":"o","order_cents":1}"#,
        ];
        for v in cases {
            assert_eq!(reason(v), InvalidReason::BadValue, "{v}");
        }
        let long = "u".repeat(129);
        let v = format!(
            r#"{{"type":"release","event_id":"z","ts":1,"seller_id":"s","coupon_id":"x:1","order_id":"{long}"}}"#
        );
        assert_eq!(reason(&v), InvalidReason::BadValue);
    }

    #[test]
    fn fields_of_other_types_and_unknown_fields_are_ignored() {
        let v = r#"{"type":"release","event_id":"z","ts":1,"seller_id":"s","coupon_id":"x:1","order_id":"o","budget":"lots","user_ids":7,"new":[{}]}"#;
        assert!(decode(v.as_bytes(), 65_536).is_ok());
    }

    #[test]
    fn field_names_round_trip() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(Field::from_name(f.name()), Some(*f));
        }
    }

    /// Contract section 6, v1.1 paragraph, and the zone names.
    #[test]
    fn contract_v1_1_readings() {
        const SELLER: &str = r#"{"type":"seller","event_id":"z","ts":1,"seller_id":"s""#;
        let with = |extra: &str| format!("{SELLER},{extra}}}");
        let huge = "9".repeat(400);
        // A number of any size is JSON: out of range in a named field...
        for n in [
            "1e400",
            "-1e400",
            "1E+400",
            huge.as_str(),
            &format!("-{huge}"),
            "1e-400",
        ] {
            for field in ["daily_issue_limit", "max_recipients", "ts"] {
                let v = with(&format!(r#""{field}":{n}"#));
                assert_eq!(reason(&v), InvalidReason::BadValue, "{v}");
            }
            let v = REDEEM.replace(r#""order_cents":100"#, &format!(r#""order_cents":{n}"#));
            assert_eq!(reason(&v), InvalidReason::BadValue, "{v}");
            // ...and ignored anywhere else, even where another type's
            // field would be.
            for extra in [
                format!(r#""note":{n}"#),
                format!(r#""x":[{{"y":{n}}}]"#),
                format!(r#""budget":{n}"#),
            ] {
                let v = with(&extra);
                assert!(decode(v.as_bytes(), 65_536).is_ok(), "{v}");
            }
        }
        // A huge number is still checked after missing fields.
        let v = r#"{"type":"redeem","event_id":"z","ts":1e400,"seller_id":"s"}"#;
        assert_eq!(reason(v), InvalidReason::MissingField);
        // -0 is the integer 0; 1.0 and 1e3 are not integers.
        assert_eq!(
            decode(with(r#""daily_issue_limit":-0"#).as_bytes(), 65_536).map(|e| e.body),
            Ok(Body::Seller(SellerUpdate {
                daily_issue_limit: Some(0),
                ..SellerUpdate::default()
            }))
        );
        for n in ["1.0", "1e3", "1E0", "0.0", "-1", "-0.0"] {
            assert_eq!(
                reason(&with(&format!(r#""daily_issue_limit":{n}"#))),
                InvalidReason::BadValue,
                "{n}"
            );
        }
        // Unpaired surrogate escapes are not text, anywhere.
        for s in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""a\ud83dz""#,
            r#""\ud83d\u0041""#,
        ] {
            assert_eq!(
                reason(&with(&format!(r#""note":{s}"#))),
                InvalidReason::Malformed,
                "{s}"
            );
        }
        assert!(decode(with(r#""note":"\ud83d\ude00""#).as_bytes(), 65_536).is_ok());
        // More than 128 levels of arrays/objects, the event included.
        let nested = |n: usize| with(&format!(r#""note":{}{}"#, "[".repeat(n), "]".repeat(n)));
        assert!(decode(nested(127).as_bytes(), 65_536).is_ok());
        assert_eq!(reason(&nested(128)), InvalidReason::Malformed);
        // A key given twice keeps its last value, null included.
        let v = with(r#""daily_issue_limit":5,"daily_issue_limit":null"#);
        assert_eq!(
            decode(v.as_bytes(), 65_536).map(|e| e.body),
            Ok(Body::Seller(SellerUpdate::default()))
        );
        let v = with(r#""daily_issue_limit":"x","daily_issue_limit":7"#);
        assert!(decode(v.as_bytes(), 65_536).is_ok());
        // Zones: canonical names and links; not the database's other files.
        for tz in [
            "America/New_York",
            "US/Eastern",
            "Etc/GMT-14",
            "UTC",
            "Asia/Calcutta",
        ] {
            assert!(
                decode(with(&format!(r#""timezone":"{tz}""#)).as_bytes(), 65_536).is_ok(),
                "{tz}"
            );
        }
        for tz in [
            "Factory",
            "localtime",
            "posixrules",
            "posix/Asia/Shanghai",
            "right/UTC",
            "utc",
            "EST5EDT,M3.2.0,M11.1.0",
            "",
        ] {
            assert_eq!(
                reason(&with(&format!(r#""timezone":"{tz}""#))),
                InvalidReason::BadValue,
                "{tz}"
            );
        }
    }

    #[test]
    fn last_duplicate_key_wins() {
        let v = r#"{"type":"release","event_id":"z","ts":"x","ts":3,"seller_id":"s","coupon_id":"x:1","order_id":"o"}"#;
        assert_eq!(decode(v.as_bytes(), 65_536).unwrap().ts, 3);
    }
}
