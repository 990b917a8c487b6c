//! Which partition a replayed line belongs to, the way Kafka would place
//! it: the key is the event's `seller_id` (producers key events by seller,
//! contract section 1), and the partition is Kafka's default partitioner,
//! murmur2 of the key modulo the partition count
//! ([`coupon_stream_core::partitioner`]).
//!
//! The key is read by a light scan, not the decoder: the member `seller_id`
//! of the line's top-level JSON object, when its value is a string
//! (unescaped; the last one when the name repeats, as the decoder reads
//! it). A line where the scan finds no such string (not an object, no
//! `seller_id`, a `seller_id` that is not a string, an over-long line) goes
//! to partition 0. The scan does not validate the rest of the line, which
//! the decoder does: a malformed line that still shows a top-level
//! `seller_id` string goes to that seller's partition, where a producer
//! that keyed the event by its seller would have put it. For every line
//! the decoder accepts as a JSON object, the key is exactly the decoder's
//! `seller_id`.

use std::borrow::Cow;

use coupon_stream_core::json::{Raw, scan_object};
use coupon_stream_core::partitioner::partition_for;

/// The partition of `line` among `partition_count` partitions.
///
/// # Panics
/// If `partition_count` is 0.
pub fn partition_of(line: &[u8], partition_count: u32) -> u32 {
    if partition_count == 1 {
        return 0;
    }
    match seller_key(line) {
        Some(key) => partition_for(&key, partition_count),
        None => 0,
    }
}

/// The `seller_id` string of `line` as the module doc defines it, or
/// `None`.
pub fn seller_key(line: &[u8]) -> Option<Cow<'_, [u8]>> {
    let scan = match quick_scan(line) {
        Some(scan) => scan,
        None => light_scan(line),
    };
    match scan {
        Scan::Found(start, end) => Some(Cow::Borrowed(&line[start..end])),
        Scan::NotFound => None,
        Scan::Escaped => strict_key(line),
    }
}

/// What the light scan saw.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The last top-level `seller_id` is a string without escapes at this
    /// range.
    Found(usize, usize),
    /// No top-level `seller_id` string, or the line stops being an object.
    NotFound,
    /// A member name or the `seller_id` value has escapes: the decoder's
    /// scanner reads the line instead.
    Escaped,
}

/// `"seller_id"`, quotes included.
const NAME: &[u8] = b"\"seller_id\"";

/// The common case in one vectorised pass (the member-by-member walk costs
/// as much as reading, merging and writing together): a line without
/// backslashes, in which `"seller_id"` occurs once, with no `{` between the
/// object's own and the name, and `:` and a string after it. In a valid
/// object without backslashes every `"` delimits a string, and a string
/// cannot be followed by `s`, so the occurrence is a string token; no `{`
/// before it means no object it could be nested in (an array holds no
/// member names), and `:` after it makes it a member name, so it is the
/// top-level `seller_id`. One `memchr3` pass finds every backslash, every
/// `{` and every `l` (the name's rarest byte in event JSON), and each `l`
/// is checked for the name around it. `None`: not the common case, ask
/// [`light_scan`].
fn quick_scan(line: &[u8]) -> Option<Scan> {
    let open = line.iter().position(|&b| !is_ws(b))?;
    if line[open] != b'{' {
        return Some(Scan::NotFound);
    }
    let body = open + 1;
    let mut name_at = None;
    for i in memchr::memchr3_iter(b'l', b'\\', b'{', &line[body..]) {
        let i = body + i;
        match line[i] {
            // The name's first `l` is its fourth byte.
            b'l' => {
                if i >= 3 && line[i - 3..].starts_with(NAME) {
                    if name_at.is_some() {
                        return None;
                    }
                    name_at = Some(i - 3);
                }
            }
            b'{' if name_at.is_some() => {}
            // A backslash, or a `{` before the name.
            _ => return None,
        }
    }
    // No escapes, so no other spelling of the name either.
    let Some(at) = name_at else {
        return Some(Scan::NotFound);
    };
    let mut c = Cursor {
        bytes: line,
        pos: at + NAME.len(),
    };
    c.skip_ws();
    if c.peek() != Some(b':') {
        return None;
    }
    c.pos += 1;
    c.skip_ws();
    if c.peek() != Some(b'"') {
        return Some(Scan::NotFound);
    }
    let start = c.pos + 1;
    Some(match memchr::memchr(b'"', &line[start..]) {
        Some(len) => Scan::Found(start, start + len),
        None => Scan::NotFound,
    })
}

/// The decoder's own reading, for the rare line with escapes.
fn strict_key(line: &[u8]) -> Option<Cow<'_, [u8]>> {
    let object = scan_object::<1>(line, |name| (name == "seller_id").then_some(0)).ok()?;
    match object.get(0) {
        Raw::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s.as_bytes())),
        Raw::Str(Cow::Owned(s)) => Some(Cow::Owned(s.into_bytes())),
        _ => None,
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A cursor over the line's bytes; every step is bounds-checked, so no
/// input can make it read out of range.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// At an opening quote: moves past the closing one and returns the
    /// string's content range and whether it has escapes; `None` if the
    /// line ends first.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        // A byte loop: member names and ids are short, and a library
        // search costs more per call than it saves on them.
        let start = self.pos + 1;
        let mut escaped = false;
        let mut i = start;
        loop {
            match *self.bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    return Some((start, i, escaped));
                }
                // A backslash escapes the next byte, whatever it is.
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
    }

    /// Skips one value of any kind without validating it; `None` if the
    /// line ends first.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                // Nesting is counted, not checked: `{]` closes as `{}`.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                // A number or literal: up to the next delimiter.
                while self
                    .peek()
                    .is_some_and(|b| !is_ws(b) && !matches!(b, b',' | b'}' | b']'))
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

/// Walks the members of the top-level object, reading member names and
/// skipping values, and remembers the last `seller_id` member.
fn light_scan(line: &[u8]) -> Scan {
    let mut c = Cursor {
        bytes: line,
        pos: 0,
    };
    c.skip_ws();
    if c.peek() != Some(b'{') {
        return Scan::NotFound;
    }
    c.pos += 1;
    let mut found = None;
    loop {
        c.skip_ws();
        match c.peek() {
            Some(b'"') => {}
            Some(b'}') => break,
            _ => return Scan::NotFound,
        }
        let Some((start, end, escaped)) = c.string() else {
            return Scan::NotFound;
        };
        if escaped {
            return Scan::Escaped;
        }
        let is_seller = &line[start..end] == b"seller_id";
        c.skip_ws();
        if c.peek() != Some(b':') {
            return Scan::NotFound;
        }
        c.pos += 1;
        c.skip_ws();
        if is_seller {
            found = None;
            if c.peek() == Some(b'"') {
                match c.string() {
                    Some((_, _, true)) => return Scan::Escaped,
                    Some((s, e, false)) => found = Some((s, e)),
                    None => return Scan::NotFound,
                }
            } else if c.skip_value().is_none() {
                return Scan::NotFound;
            }
        } else if c.skip_value().is_none() {
            return Scan::NotFound;
        }
        c.skip_ws();
        match c.peek() {
            Some(b',') => c.pos += 1,
            Some(b'}') => break,
            _ => return Scan::NotFound,
        }
    }
    match found {
        Some((start, end)) => Scan::Found(start, end),
        None => Scan::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(line: &str) -> Option<String> {
        seller_key(line.as_bytes()).map(|k| String::from_utf8(k.into_owned()).unwrap())
    }

    #[test]
    fn reads_the_top_level_seller_id() {
        let cases: [(&str, Option<&str>); 22] = [
            (r#"{"type":"redeem","seller_id":"s1","ts":1}"#, Some("s1")),
            (r#" { "seller_id" : "s 2" } "#, Some("s 2")),
            (r#"{"seller_id":""}"#, Some("")),
            (
                r#"{"a":{"seller_id":"inner"},"seller_id":"outer"}"#,
                Some("outer"),
            ),
            (
                r#"{"seller_id":"outer","a":{"seller_id":"inner"}}"#,
                Some("outer"),
            ),
            (r#"{"a":["seller_id",{"seller_id":"x"}]}"#, None),
            (r#"{"a":"\"seller_id\":\"x\""}"#, None),
            (r#"{"seller_id":"first","seller_id":"last"}"#, Some("last")),
            (r#"{"seller_id":"first","seller_id":7}"#, None),
            (r#"{"seller_id":7,"seller_id":"last"}"#, Some("last")),
            (r#"{"seller_id":null}"#, None),
            (r#"{"seller_id":"s\u0031"}"#, Some("s1")),
            (r#"{"seller\u005fid":"s9"}"#, Some("s9")),
            (r#"{"seller_id":"a\"b"}"#, Some("a\"b")),
            (r#"{"x":"a\\","seller_id":"s3"}"#, Some("s3")),
            (r#"{"type":"redeem","#, None),
            (r#"[1,2,3]"#, None),
            (r#""seller_id""#, None),
            ("", None),
            (r#"{"seller_id":"unterminated"#, None),
            (r#"{"seller_id" "s1"}"#, None),
            // Not validated beyond what the key needs: the decoder says
            // `malformed`, the partition follows the seller.
            (r#"{"seller_id":"s4","ts":01}"#, Some("s4")),
        ];
        for (line, want) in cases {
            assert_eq!(key(line).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn the_quick_scan_leaves_what_it_cannot_prove_to_the_walk() {
        let quick = |l: &str| quick_scan(l.as_bytes());
        assert_eq!(
            quick(r#"{"type":"redeem","seller_id":"s1","ts":1}"#),
            Some(Scan::Found(30, 32))
        );
        assert_eq!(quick(r#"{"type":"redeem"}"#), Some(Scan::NotFound));
        assert_eq!(quick(r#"{"seller_id":7}"#), Some(Scan::NotFound));
        assert_eq!(quick(r#"[{"seller_id":"s"}]"#), Some(Scan::NotFound));
        // Repeated, nested before, escaped, or inside a string: walked.
        assert_eq!(quick(r#"{"seller_id":"a","seller_id":"b"}"#), None);
        assert_eq!(quick(r#"{"a":{"b":1},"seller_id":"s"}"#), None);
        assert_eq!(quick(r#"{"a":[{"b":1}],"seller_id":"s"}"#), None);
        assert_eq!(
            quick(r#"{"a":[1,"x"],"seller_id":"s"}"#),
            Some(Scan::Found(26, 27))
        );
        assert_eq!(quick(r#"{"a":[1,"seller_id"],"seller_id":"s"}"#), None);
        assert_eq!(quick(r#"{"a":["seller_id"]}"#), None);
        assert_eq!(quick(r#"{"a":"x\"","seller_id":"s"}"#), None);
        assert_eq!(quick(r#"{"x":"seller_id","seller_id":"s"}"#), None);
        // Malformed, so the partition is whatever the scan finds.
        assert_eq!(
            quick(r#"{"a":"b"seller_id":"s"}"#),
            Some(Scan::Found(20, 21))
        );
    }

    #[test]
    fn escaped_keys_and_values_fall_back_to_the_decoder() {
        // Valid JSON with escapes: the decoder's reading.
        assert_eq!(light_scan(br#"{"seller_id":"s\u0031"}"#), Scan::Escaped);
        // Malformed with escapes: the decoder reads nothing.
        assert_eq!(key(r#"{"seller_id":"s\u0031",}"#), None);
    }

    #[test]
    fn partition_follows_kafka() {
        let line = br#"{"type":"issue","seller_id":"foobar"}"#;
        for n in 1..50u32 {
            assert_eq!(partition_of(line, n), partition_for(b"foobar", n));
        }
        assert_eq!(partition_of(b"not json", 7), 0);
    }

    /// JSON values of every kind, nested, with strings that may need
    /// escapes and names that may be `seller_id`.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z\"\\\\ \u{e9}\u{1F600}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec((prop_oneof!["seller_id", "[a-z_]{1,9}"], inner), 0..4)
                    .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// On every JSON object, with any spacing, repeated names and
        /// escapes, the light scan reads what the decoder's scanner reads.
        #[test]
        fn agrees_with_the_decoder_on_objects(
            members in prop::collection::vec(
                (prop_oneof!["seller_id", "seller\\\\u005fid", "type", "[a-z_]{1,9}"], json_value()),
                0..6,
            ),
            pretty in any::<bool>(),
        ) {
            // Written by hand so names can repeat (a map would merge them).
            let sep = if pretty { " \n\t" } else { "" };
            let mut line = format!("{{{sep}");
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    line.push_str(&format!("{sep},{sep}"));
                }
                line.push_str(&format!("\"{name}\"{sep}:{sep}{value}"));
            }
            line.push_str(&format!("{sep}}}"));
            prop_assert_eq!(seller_key(line.as_bytes()), strict_key(line.as_bytes()), "{}", line);
            if let Some(quick) = quick_scan(line.as_bytes()) {
                let light = light_scan(line.as_bytes());
                prop_assert_eq!(quick, light, "{}", line);
            }
        }

        /// On arbitrary bytes the scan never panics, and whatever it finds
        /// the decoder finds too when the bytes are a valid object.
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let light = seller_key(&bytes);
            if scan_object::<1>(&bytes, |_| None).is_ok() {
                prop_assert_eq!(light, strict_key(&bytes));
            }
        }
    }
}
