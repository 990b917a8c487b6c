//! JSON encoding of a [`Decision`], written by hand into a reused buffer:
//! fields in the contract's order, absent fields omitted (the contract
//! treats absent and `null` alike), compact, and byte-identical for the same
//! decision so that a replay reproduces its output exactly.
//!
//! A string the decoder borrowed from the input ([`Cow::Borrowed`]) was
//! held there unescaped, so it has no quote, backslash or control
//! character (the decoder only borrows such strings, and JSON allows no
//! raw control character in a string): it is copied as it is, without the
//! escape scan every other string gets.

use std::borrow::Cow;

use crate::decision::{Decision, Source};
use crate::event::{Body, Event};
use crate::json::first_special_byte;
use crate::state::{Ruling, UserResult};

/// Appends the JSON object of `decision` to `out` (no newline).
pub fn encode_decision(decision: &Decision<'_>, out: &mut Vec<u8>) {
    match *decision {
        Decision::Invalid { source, invalid } => {
            out.extend_from_slice(b"{\"outcome\":\"invalid\",\"reason\":\"");
            out.extend_from_slice(invalid.reason.as_str().as_bytes());
            out.extend_from_slice(b"\",");
            source_field(out, source);
            out.extend_from_slice(b",\"detail\":");
            string(out, &invalid.detail);
            out.push(b'}');
        }
        Decision::Duplicate { source, event } => {
            header(out, event);
            out.extend_from_slice(b",\"outcome\":\"duplicate\",");
            source_field(out, source);
            out.push(b'}');
        }
        Decision::Ruled {
            source,
            event,
            ruling,
            issue_results,
        } => {
            header(out, event);
            out.extend_from_slice(b",\"outcome\":\"");
            out.extend_from_slice(decision.outcome().as_str().as_bytes());
            out.push(b'"');
            if let Some(reason) = decision.reason() {
                out.extend_from_slice(b",\"reason\":\"");
                out.extend_from_slice(reason.as_str().as_bytes());
                out.push(b'"');
            }
            out.push(b',');
            source_field(out, source);
            body(out, event, ruling, issue_results);
            out.push(b'}');
        }
    }
}

fn header(out: &mut Vec<u8>, event: &Event<'_>) {
    out.extend_from_slice(b"{\"event_id\":");
    text(out, &event.event_id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(event.event_type().as_str().as_bytes());
    out.extend_from_slice(b"\",\"seller_id\":");
    text(out, &event.seller_id);
    out.extend_from_slice(b",\"ts\":");
    uint(out, event.ts);
}

fn source_field(out: &mut Vec<u8>, source: Source) {
    out.extend_from_slice(b"\"source\":{\"partition\":");
    out.extend_from_slice(itoa::Buffer::new().format(source.partition).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(itoa::Buffer::new().format(source.offset).as_bytes());
    out.push(b'}');
}

fn body(out: &mut Vec<u8>, event: &Event<'_>, ruling: Ruling, issue_results: &[UserResult]) {
    match &event.body {
        Body::Seller(_) => {}
        Body::Campaign(c) => {
            out.extend_from_slice(b",\"campaign_id\":");
            text(out, &c.campaign_id);
        }
        Body::Issue(issue) => {
            out.extend_from_slice(b",\"campaign_id\":");
            text(out, &issue.campaign_id);
            out.extend_from_slice(b",\"results\":[");
            for (i, (user_id, result)) in issue.user_ids.iter().zip(issue_results).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"user_id\":");
                text(out, user_id);
                match *result {
                    UserResult::Issued { serial, expires_at } => {
                        out.extend_from_slice(b",\"outcome\":\"issued\",\"coupon_id\":");
                        coupon_id(out, &issue.campaign_id, serial);
                        out.extend_from_slice(b",\"expires_at\":");
                        uint(out, expires_at);
                    }
                    UserResult::Rejected(reason) => {
                        out.extend_from_slice(b",\"outcome\":\"rejected\",\"reason\":\"");
                        out.extend_from_slice(reason.as_str().as_bytes());
                        out.push(b'"');
                    }
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        Body::Redeem(r) => {
            out.extend_from_slice(b",\"coupon_id\":");
            text(out, &r.coupon_id);
            out.extend_from_slice(b",\"order_id\":");
            text(out, &r.order_id);
            out.extend_from_slice(b",\"user_id\":");
            text(out, &r.user_id);
            if let Ruling::Redeemed {
                discount_cents,
                duplicate,
            } = ruling
            {
                out.extend_from_slice(b",\"discount_cents\":");
                uint(out, discount_cents);
                out.extend_from_slice(if duplicate {
                    b",\"duplicate\":true"
                } else {
                    b",\"duplicate\":false"
                });
            }
        }
        Body::Release(r) => {
            out.extend_from_slice(b",\"coupon_id\":");
            text(out, &r.coupon_id);
            out.extend_from_slice(b",\"order_id\":");
            text(out, &r.order_id);
            if let Ruling::Released { discount_cents } = ruling {
                out.extend_from_slice(b",\"discount_cents\":");
                uint(out, discount_cents);
            }
        }
    }
}

#[expect(
    clippy::ptr_arg,
    reason = "the Cow variant says whether the string needs its escape scan"
)]
fn coupon_id(out: &mut Vec<u8>, campaign_id: &Cow<'_, str>, serial: u64) {
    out.push(b'"');
    text_escaped(out, campaign_id);
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(serial).as_bytes());
    out.push(b'"');
}

fn uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes a decoded string as a JSON string (see the module doc).
#[expect(
    clippy::ptr_arg,
    reason = "the Cow variant says whether the string needs its escape scan"
)]
fn text(out: &mut Vec<u8>, s: &Cow<'_, str>) {
    out.push(b'"');
    text_escaped(out, s);
    out.push(b'"');
}

/// Writes a decoded string's escaped content: a borrowed one as it is.
#[expect(
    clippy::ptr_arg,
    reason = "the Cow variant says whether the string needs its escape scan"
)]
fn text_escaped(out: &mut Vec<u8>, s: &Cow<'_, str>) {
    match s {
        Cow::Borrowed(plain) => {
            debug_assert_eq!(
                first_special_byte(plain.as_bytes()),
                None,
                "the decoder borrows only plain strings"
            );
            out.extend_from_slice(plain.as_bytes());
        }
        Cow::Owned(s) => escaped(out, s),
    }
}

/// Writes `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

fn escaped(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    // Runs of plain text are found eight bytes a step and copied whole.
    while let Some(at) = first_special_byte(rest) {
        out.extend_from_slice(&rest[..at]);
        let b = rest[at];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_a_json_parser() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\n tab\t cr\r",
            "\u{1}\u{1f}",
            "店 é 😀",
            "",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    /// Borrowed strings are copied as they are, owned (unescaped by the
    /// decoder) ones escaped again: both read back as the input's strings.
    #[test]
    fn decoded_strings_encode_as_they_were_sent() {
        use crate::decision::Source;
        use crate::reason::Rejection;
        let input = br#"{"event_id":"e\"1","type":"redeem","ts":5,"seller_id":"s1","coupon_id":"c\\1:2","user_id":"u\u00e9","order_id":"o1","order_cents":100}"#;
        let event = crate::decode::decode(input, 4096).unwrap();
        assert!(matches!(event.seller_id, Cow::Borrowed(_)));
        assert!(matches!(event.event_id, Cow::Owned(_)));
        let mut out = Vec::new();
        encode_decision(
            &Decision::Ruled {
                source: Source {
                    partition: 0,
                    offset: 0,
                },
                event: &event,
                ruling: Ruling::Rejected(Rejection::UnknownCoupon),
                issue_results: &[],
            },
            &mut out,
        );
        let sent: serde_json::Value = serde_json::from_slice(input).unwrap();
        let decided: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for field in ["event_id", "seller_id", "coupon_id", "user_id", "order_id"] {
            assert_eq!(decided[field], sent[field], "{field}");
        }
    }
}
