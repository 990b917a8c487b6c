//! The fast path of [`super::decode`] for the three event types that make up
//! nearly all traffic (`issue`, `redeem`, `release`), in the shape producers
//! write them: each of the type's fields once and no other member, strings
//! without escapes, integers without sign, fraction or exponent, whitespace
//! only between tokens.
//!
//! It never judges a value: it returns the event the strict decoder returns
//! for the same bytes, or `None`, and then the caller runs the strict
//! decoder, which gives every error and every other event. One pass over the
//! bytes builds the event directly; the strict decoder's two passes (scan
//! into a field table, then validate the table) and its generic value type
//! are what this skips. Anything outside the narrow grammar (an escape,
//! `null`, a repeated, unknown or irrelevant member, a missing field, another
//! type, a number the contract refuses) is `None`. The unit property test
//! below and the `decode_paths` fuzz target check the claim: whenever this
//! returns an event, the strict decoder returns the same one.

use std::borrow::Cow;

use super::Field;
use crate::event::{Body, Event, EventType, IssueRequest, RedeemRequest, ReleaseRequest};
use crate::id::{INT_MAX, is_valid_id};
use crate::json::first_special_byte;
#[cfg(target_arch = "x86_64")]
use crate::json::{digit_bytes_16, special_bytes_16};

/// Most recipients the fast path collects before leaving a request to the
/// strict decoder; only bounds the work of a value that will be refused.
const USER_IDS_MAX: usize = 1024;

/// A set of [`Field`]s as bits.
const fn mask(fields: &[Field]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < fields.len() {
        m |= 1 << fields[i] as u32;
        i += 1;
    }
    m
}

/// The members an event of each type carries on the fast path: `type`, the
/// common required fields and the type's own, exactly as the strict
/// decoder requires them.
const COMMON: u32 = 1 << Field::Type as u32 | mask(&Field::COMMON_REQUIRED);
const ISSUE: u32 = COMMON | mask(Field::required_for(EventType::Issue));
const REDEEM: u32 = COMMON | mask(Field::required_for(EventType::Redeem));
const RELEASE: u32 = COMMON | mask(Field::required_for(EventType::Release));

/// The event the strict decoder would return for `value`, or `None` when
/// `value` is outside the fast path's grammar (valid or not).
pub(super) fn decode_fast(value: &[u8]) -> Option<Event<'_>> {
    // Strings are sliced from the text: their bounds are ASCII quotes, so
    // every slice of valid UTF-8 between them is valid UTF-8 too.
    // SIMD validation, chosen at run time: about half the instructions of
    // std's on an event's ~150 bytes (callgrind).
    let text = simdutf8::basic::from_utf8(value).ok()?;
    let mut cursor = Cursor {
        text,
        bytes: value,
        pos: 0,
    };
    let mut seen = 0u32;
    let mut event_type = "";
    let (mut event_id, mut seller_id, mut campaign_id) = ("", "", "");
    let (mut coupon_id, mut user_id, mut order_id) = ("", "", "");
    let (mut ts, mut order_cents) = (0u64, 0u64);
    let mut user_ids: Vec<Cow<'_, str>> = Vec::new();

    cursor.skip_ws();
    cursor.expect(b'{')?;
    loop {
        cursor.skip_ws();
        let field = cursor.field_name()?;
        let bit = 1u32 << field as u32;
        if seen & bit != 0 || (ISSUE | REDEEM | RELEASE) & bit == 0 {
            return None;
        }
        seen |= bit;
        cursor.skip_ws();
        cursor.expect(b':')?;
        cursor.skip_ws();
        match field {
            Field::Ts => ts = cursor.int()?,
            Field::OrderCents => order_cents = cursor.int()?,
            Field::UserIds => cursor.ids(&mut user_ids)?,
            Field::Type => event_type = cursor.plain_string()?,
            _ => {
                let id = cursor.id()?;
                match field {
                    Field::EventId => event_id = id,
                    Field::SellerId => seller_id = id,
                    Field::CampaignId => campaign_id = id,
                    Field::CouponId => coupon_id = id,
                    Field::UserId => user_id = id,
                    Field::OrderId => order_id = id,
                    _ => return None,
                }
            }
        }
        cursor.skip_ws();
        match cursor.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    cursor.skip_ws();
    if cursor.pos != value.len() {
        return None;
    }

    let (expected, body) = match EventType::parse(event_type)? {
        EventType::Issue => (
            ISSUE,
            Body::Issue(IssueRequest {
                campaign_id: Cow::Borrowed(campaign_id),
                user_ids,
            }),
        ),
        EventType::Redeem => (
            REDEEM,
            Body::Redeem(RedeemRequest {
                coupon_id: Cow::Borrowed(coupon_id),
                user_id: Cow::Borrowed(user_id),
                order_id: Cow::Borrowed(order_id),
                order_cents,
            }),
        ),
        EventType::Release => (
            RELEASE,
            Body::Release(ReleaseRequest {
                coupon_id: Cow::Borrowed(coupon_id),
                order_id: Cow::Borrowed(order_id),
            }),
        ),
        EventType::Seller | EventType::Campaign => return None,
    };
    if seen != expected {
        return None;
    }
    Some(Event {
        event_id: Cow::Borrowed(event_id),
        ts,
        seller_id: Cow::Borrowed(seller_id),
        body,
    })
}

/// A name of at most 16 bytes as two little-endian words of its bytes
/// (the first 8, the next 8), the bytes above its end zero.
const fn name_words(name: &[u8]) -> (u64, u64) {
    assert!(name.len() <= 16);
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < name.len() {
        words[i / 8] |= (name[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    (words[0], words[1])
}

/// The [`name_words`] of a name of `len` bytes (below 16) at the start of
/// `window`.
fn window_words(window: &[u8; 16], len: usize) -> (u64, u64) {
    /// Per name length, the masks of its bytes in each word.
    const MASKS: [(u64, u64); 16] = {
        let mut masks = [(0, 0); 16];
        let mut len = 1;
        while len < 16 {
            masks[len] = if len < 8 {
                ((1 << (8 * len)) - 1, 0)
            } else if len == 8 {
                (u64::MAX, 0)
            } else {
                (u64::MAX, (1 << (8 * (len - 8))) - 1)
            };
            len += 1;
        }
        masks
    };
    let (low_mask, high_mask) = MASKS[len];
    let (low, high) = window.split_at(8);
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        u64::from_le_bytes(word)
    };
    (word(low) & low_mask, word(high) & high_mask)
}

const TYPE_NAME: (u64, u64) = name_words(b"type");
const EVENT_ID_NAME: (u64, u64) = name_words(b"event_id");
const TS_NAME: (u64, u64) = name_words(b"ts");
const SELLER_ID_NAME: (u64, u64) = name_words(b"seller_id");
const CAMPAIGN_ID_NAME: (u64, u64) = name_words(b"campaign_id");
const USER_IDS_NAME: (u64, u64) = name_words(b"user_ids");
const COUPON_ID_NAME: (u64, u64) = name_words(b"coupon_id");
const USER_ID_NAME: (u64, u64) = name_words(b"user_id");
const ORDER_ID_NAME: (u64, u64) = name_words(b"order_id");
const ORDER_CENTS_NAME: (u64, u64) = name_words(b"order_cents");

/// The field of the fast path's events that a member name names, from the
/// name's [`name_words`]: a few word comparisons instead of a length switch
/// and byte comparisons. Exact for a name without a zero byte (two names
/// of different lengths then differ in their words). Any other name is
/// `None`, which is what the fast path makes of a field outside its three
/// types anyway.
fn hot_field(name: (u64, u64)) -> Option<Field> {
    Some(match name {
        TYPE_NAME => Field::Type,
        EVENT_ID_NAME => Field::EventId,
        TS_NAME => Field::Ts,
        SELLER_ID_NAME => Field::SellerId,
        CAMPAIGN_ID_NAME => Field::CampaignId,
        USER_IDS_NAME => Field::UserIds,
        COUPON_ID_NAME => Field::CouponId,
        USER_ID_NAME => Field::UserId,
        ORDER_ID_NAME => Field::OrderId,
        ORDER_CENTS_NAME => Field::OrderCents,
        _ => return None,
    })
}

/// The value of the first `digits` (at most 16) bytes of `window`, all
/// ASCII digits: eight digits at a time in a word, each step adding pairs
/// of neighbours (SWAR), instead of a multiply and a branch per digit.
#[cfg(target_arch = "x86_64")]
fn digits_value(window: &[u8; 16], digits: usize) -> u64 {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    /// The value of eight digits in a word, the first in its lowest byte.
    fn eight(word: u64) -> u64 {
        let pairs = (word * 10 + (word >> 8)) & 0x00ff_00ff_00ff_00ff;
        let quads = (pairs * 100 + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
        (quads * 10_000 + (quads >> 32)) & 0xffff_ffff
    }
    let word = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&window[at..at + 8]);
        u64::from_le_bytes(word).wrapping_sub(ZEROS)
    };
    // `n` (1 to 8) digits at `at`: shifted up so that the bytes after them
    // leave the word and zeros (leading zeros) come in below.
    let first = |at: usize, n: usize| eight(word(at) << (8 * (8 - n)));
    match digits {
        0 => 0,
        1..=8 => first(0, digits),
        _ => first(0, digits - 8) * 100_000_000 + eight(word(digits - 8)),
    }
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn skip_ws(&mut self) {
        // Producers mostly write no whitespace at all, and every JSON
        // whitespace byte is at most a space: one comparison for the
        // common case.
        if self.bytes.get(self.pos).is_none_or(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The field a member name names, at its `"`. No field's name holds a
    /// quote, backslash or control character, so the name is the bytes up
    /// to the next quote, compared with the known names: a name with an
    /// escape or a control character names no field (`None`, as for an
    /// unknown member), without the plain-string checks.
    fn field_name(&mut self) -> Option<Field> {
        self.expect(b'"')?;
        let start = self.pos;
        let rest = &self.bytes[start..];
        #[cfg(target_arch = "x86_64")]
        if let Some(window) = rest.first_chunk::<16>() {
            // The fast path's longest field name has 11 bytes: a name
            // whose quote is not in the first 16 is none of them, and
            // neither is one with an escape or a control character before
            // its quote (which also keeps zero bytes out of the words).
            let len = special_bytes_16(window).trailing_zeros() as usize;
            if window.get(len) != Some(&b'"') {
                return None;
            }
            self.pos = start + len + 1;
            return hot_field(window_words(window, len));
        }
        let len = rest.iter().position(|&b| b == b'"')?;
        self.pos = start + len + 1;
        Field::from_name_bytes(&rest[..len])
    }

    /// A string without escapes or control characters, at its `"`.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = start + first_special_byte(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        Some(&self.text[start..end])
    }

    /// A plain string that is a valid id.
    fn id(&mut self) -> Option<&'a str> {
        self.plain_string().filter(|s| is_valid_id(s))
    }

    /// A JSON integer in 0..=2^53-1 without sign, fraction or exponent
    /// (what follows it is checked by the caller: only `,`, `}`, `]` or
    /// whitespace continue the fast path).
    fn int(&mut self) -> Option<u64> {
        let start = self.pos;
        #[cfg(target_arch = "x86_64")]
        let (digits, value) = match self.bytes[start..].first_chunk::<16>() {
            Some(window) => {
                let digits = digit_bytes_16(window).trailing_ones() as usize;
                // 16 digits hold 2^53-1; a 17th is refused or left to the
                // strict decoder.
                if digits == 16 && self.bytes.get(start + 16).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                (digits, digits_value(window, digits))
            }
            None => self.int_bytewise()?,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (digits, value) = self.int_bytewise()?;
        self.pos = start + digits;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') || value > INT_MAX {
            return None;
        }
        Some(value)
    }

    /// The digits at the cursor, without moving it, and their value; `None`
    /// past 16 digits.
    fn int_bytewise(&self) -> Option<(usize, u64)> {
        let mut value: u64 = 0;
        let mut digits = 0;
        while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos + digits) {
            if digits == 16 {
                return None;
            }
            value = value * 10 + u64::from(d - b'0');
            digits += 1;
        }
        Some((digits, value))
    }

    /// A non-empty array of valid ids, into `out` (empty on entry).
    fn ids(&mut self, out: &mut Vec<Cow<'a, str>>) -> Option<()> {
        self.expect(b'[')?;
        loop {
            self.skip_ws();
            if out.len() == USER_IDS_MAX {
                return None;
            }
            out.push(Cow::Borrowed(self.id()?));
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_strict as strict;
    use proptest::prelude::*;

    const ISSUE_EVENT: &str = r#"{"type":"issue","event_id":"e1","ts":1762790400000,"seller_id":"s0","campaign_id":"c0","user_ids":["u1","u2"]}"#;
    const REDEEM_EVENT: &str = r#"{"type":"redeem","event_id":"e2","ts":5,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o","order_cents":100}"#;
    const RELEASE_EVENT: &str = r#" { "type" : "release" , "event_id":"e3","ts":0,"seller_id":"店","coupon_id":"c:1","order_id":"o" } "#;

    #[test]
    fn takes_the_three_hot_types_as_the_strict_decoder_does() {
        for value in [ISSUE_EVENT, REDEEM_EVENT, RELEASE_EVENT] {
            let fast = decode_fast(value.as_bytes()).expect("on the fast path");
            assert_eq!(Ok(fast), strict(value.as_bytes()), "{value}");
        }
    }

    /// What the fast path makes of a member name: its field if that is one
    /// of the three hot types' fields.
    fn expected_hot(name: &[u8]) -> Option<Field> {
        Field::from_name_bytes(name).filter(|&f| (ISSUE | REDEEM | RELEASE) & (1 << f as u32) != 0)
    }

    #[test]
    fn hot_field_names_exactly_the_fast_paths_fields() {
        for field in Field::ALL {
            let name = field.name().as_bytes();
            if name.len() < 16 {
                assert_eq!(
                    hot_field(name_words(name)),
                    expected_hot(name),
                    "{}",
                    field.name()
                );
            }
            // Every prefix and one-byte extension of a name too.
            for len in 0..name.len().min(16) {
                let prefix = &name[..len];
                assert_eq!(hot_field(name_words(prefix)), expected_hot(prefix));
            }
            for extra in [b's', b'_', b'd', b'x'] {
                let mut longer = name.to_vec();
                longer.push(extra);
                if longer.len() < 16 {
                    assert_eq!(hot_field(name_words(&longer)), expected_hot(&longer));
                }
            }
        }
    }

    #[test]
    fn window_words_are_the_names_words_whatever_follows() {
        let name = b"abcdefghijklmnop";
        for len in 0..16 {
            for fill in [0u8, b'"', 0xff, b'a'] {
                let mut window = [fill; 16];
                window[..len].copy_from_slice(&name[..len]);
                assert_eq!(
                    window_words(&window, len),
                    name_words(&name[..len]),
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn digits_value_is_the_digits_number() {
        for digits in 0..=16 {
            for (pattern, after) in [(b"9876543210123456", b'"'), (b"0000000000000001", 0xff)] {
                let mut window = [after; 16];
                window[..digits].copy_from_slice(&pattern[..digits]);
                let expected = pattern[..digits]
                    .iter()
                    .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
                assert_eq!(digits_value(&window, digits), expected, "{digits}");
            }
        }
    }

    #[test]
    fn masks_are_the_fields_each_type_requires() {
        for (event_type, expected) in [
            (EventType::Issue, ISSUE),
            (EventType::Redeem, REDEEM),
            (EventType::Release, RELEASE),
        ] {
            let required = Field::COMMON_REQUIRED
                .iter()
                .chain(Field::required_for(event_type))
                .fold(1 << Field::Type as u32, |m, &f| m | 1 << f as u32);
            assert_eq!(expected, required, "{event_type:?}");
        }
    }

    #[test]
    fn leaves_everything_else_to_the_strict_decoder() {
        let outside = [
            // Escapes, null, a repeated, unknown or irrelevant member.
            r#"{"type":"redeem","event_id":"e\u0032","ts":5,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o","order_cents":100}"#,
            r#"{"type":"redeem","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o","order_cents":100,"x":null}"#,
            r#"{"type":"redeem","event_id":"e","ts":5,"ts":6,"seller_id":"s","coupon_id":"c:1","user_id":"u","order_id":"o","order_cents":100}"#,
            r#"{"type":"release","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1","order_id":"o","order_cents":1}"#,
            // Names with a zero byte, a control character or an escape
            // (the strict decoder reads the last one as `ts`).
            "{\"type\":\"release\",\"event_id\":\"e\",\"ts\u{0}\":5,\"seller_id\":\"s\",\"coupon_id\":\"c:1\",\"order_id\":\"o\"}",
            "{\"type\":\"release\",\"event_id\":\"e\",\"ts\u{1f}\":5,\"seller_id\":\"s\",\"coupon_id\":\"c:1\",\"order_id\":\"o\"}",
            r#"{"type":"release","event_id":"e","t\u0073":5,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            // Numbers: too large, leading zero, fraction, exponent, sign.
            r#"{"type":"release","event_id":"e","ts":9007199254740992,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":05,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":5.0,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":5e0,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":-0,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":12345678901234567,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            // A missing field, an empty or long id, an empty recipient list.
            r#"{"type":"release","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1"}"#,
            r#"{"type":"release","event_id":"","ts":5,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"issue","event_id":"e","ts":5,"seller_id":"s","campaign_id":"c","user_ids":[]}"#,
            // Other types, trailing bytes, not an object.
            r#"{"type":"seller","event_id":"e","ts":5,"seller_id":"s"}"#,
            r#"{"type":"refund","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1","order_id":"o"}"#,
            r#"{"type":"release","event_id":"e","ts":5,"seller_id":"s","coupon_id":"c:1","order_id":"o"}x"#,
            r#"["type"]"#,
            "",
        ];
        for value in outside {
            assert_eq!(decode_fast(value.as_bytes()), None, "{value}");
        }
        let long = format!(
            r#"{{"type":"release","event_id":"{}","ts":5,"seller_id":"s","coupon_id":"c:1","order_id":"o"}}"#,
            "e".repeat(129)
        );
        assert_eq!(decode_fast(long.as_bytes()), None);
    }

    /// Values built from pieces of valid hot events, with the kinds of
    /// damage and variation real producers and attackers send.
    fn near_hot_event() -> impl Strategy<Value = Vec<u8>> {
        let base = prop::sample::select(vec![ISSUE_EVENT, REDEEM_EVENT, RELEASE_EVENT]);
        let edit = (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![
                "",
                " ",
                "\"",
                "\\",
                ",",
                ":",
                "}",
                "]",
                "[",
                "0",
                "9",
                "-",
                ".",
                "e",
                "null",
                "\"x\"",
                "\u{e9}",
                "\n",
                "\u{0}",
                "\"ts\":1,",
                "\"x\":1,",
                "99999999999999999",
            ]),
            0usize..4,
        );
        (base, prop::collection::vec(edit, 0..4)).prop_map(|(base, edits)| {
            let mut bytes = base.as_bytes().to_vec();
            for (at, insert, cut) in edits {
                let at = at.index(bytes.len() + 1);
                let cut = cut.min(bytes.len() - at);
                bytes.splice(at..at + cut, insert.bytes());
            }
            bytes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn never_differs_from_the_strict_decoder(value in near_hot_event()) {
            if let Some(fast) = decode_fast(&value) {
                prop_assert_eq!(Ok(fast), strict(&value));
            }
        }

        #[test]
        fn int_reads_digits_as_the_bytewise_reading_does(
            digits in "[0-9]{0,20}",
            after in prop::sample::select(vec!["", ",", "}", " ", ".5", "e1", "\"", "1234567890123456789"]),
        ) {
            let text = format!("{digits}{after}");
            let mut fast = Cursor { text: &text, bytes: text.as_bytes(), pos: 0 };
            let slow = Cursor { text: &text, bytes: text.as_bytes(), pos: 0 };
            let expected = slow.int_bytewise().and_then(|(n, value)| {
                (n > 0 && !(n > 1 && text.as_bytes()[0] == b'0') && value <= INT_MAX).then_some((n, value))
            });
            let got = fast.int().map(|value| (fast.pos, value));
            prop_assert_eq!(got, expected, "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_differ(value in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Some(fast) = decode_fast(&value) {
                prop_assert_eq!(Ok(fast), strict(&value));
            }
        }
    }
}
