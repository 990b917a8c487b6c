//! A strict RFC 8259 scanner for the one shape of input the contract has:
//! a JSON object whose members are read into a fixed table of known fields.
//!
//! Why not serde_json: decoding was two thirds of the instructions of a
//! decision (callgrind, docs/PERFORMANCE.md). This scanner validates UTF-8
//! once for the whole value, records only where each known member's value
//! lies, and builds a value (borrowing every string without escapes) only
//! when the decoder asks for it. It accepts exactly the RFC 8259 documents
//! that are objects (property-tested against serde_json, see the tests for
//! the one place serde_json differs), and nesting is bounded by
//! [`DEPTH_MAX`], so no input exhausts the stack.
//!
//! Readings of contract section 6 (v1.1): a number is valid whatever its
//! size (`1e400`, a 400-digit integer), so only its spelling is checked;
//! a string escape of an unpaired UTF-16 surrogate is not text and is
//! refused; more than [`DEPTH_MAX`] nested arrays/objects are refused; a
//! repeated member name keeps its last value; `-0` is the integer 0.

use std::borrow::Cow;

/// Deepest nesting accepted, in arrays/objects, the outer object included
/// (contract section 6, v1.1: more than 128 is malformed).
pub const DEPTH_MAX: usize = 128;

/// The nesting level of an array or object that is a member's value.
const MEMBER_LEVEL: usize = 2;

/// One JSON value as captured for a known field. `null` is captured as
/// [`Raw::Absent`]: the contract treats both alike.
#[derive(Debug, Default, PartialEq)]
pub enum Raw<'a> {
    #[default]
    Absent,
    Bool(bool),
    /// A non-negative integer without fraction or exponent that fits u64.
    UInt(u64),
    /// Any other number: negative, fractional, exponent or too large,
    /// whatever its magnitude (JSON numbers have no range).
    OtherNumber,
    Str(Cow<'a, str>),
    Array(Vec<Raw<'a>>),
    Object,
}

impl Raw<'_> {
    /// How the value reads in an error message.
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Absent => "null",
            Raw::Bool(_) => "a boolean",
            Raw::UInt(_) | Raw::OtherNumber => "a number",
            Raw::Str(_) => "a string",
            Raw::Array(_) => "an array",
            Raw::Object => "an object",
        }
    }
}

/// Why a value is not a JSON object; the text goes into `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct Malformed {
    pub what: &'static str,
    pub at: usize,
}

/// Where one member's value lies in the input, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
    /// A string without escapes: its text is the span minus the quotes.
    plain_string: bool,
}

/// A validated JSON object and the spans of its known members' values.
/// Spans are plain offsets, so recording them costs no allocation and
/// dropping them nothing; a value is built only when asked for.
#[derive(Debug)]
pub struct Object<'a, const N: usize> {
    text: &'a str,
    spans: [Option<Span>; N],
}

impl<'a, const N: usize> Object<'a, N> {
    /// The value of the member in `slot`, or [`Raw::Absent`] when missing.
    pub fn get(&self, slot: usize) -> Raw<'a> {
        let Some(Some(span)) = self.spans.get(slot) else {
            return Raw::Absent;
        };
        if span.plain_string {
            let (start, end) = (span.start as usize + 1, span.end as usize - 1);
            return Raw::Str(Cow::Borrowed(&self.text[start..end]));
        }
        let mut p = Parser {
            text: self.text,
            bytes: self.text.as_bytes(),
            pos: span.start as usize,
        };
        // The scan validated this value; parsing it again cannot fail.
        p.value(MEMBER_LEVEL).unwrap_or(Raw::Absent)
    }

    /// Whether the member in `slot` is missing or `null`.
    pub fn is_absent(&self, slot: usize) -> bool {
        match self.spans.get(slot) {
            Some(Some(span)) => &self.text[span.start as usize..span.end as usize] == "null",
            _ => true,
        }
    }
}

/// Scans `input`, which must be one JSON object and nothing else, and
/// records the span of each member whose name `slot_of` maps to a slot below
/// `N` (a repeated name keeps its last value).
pub fn scan_object<const N: usize>(
    input: &[u8],
    slot_of: impl Fn(&str) -> Option<usize>,
) -> Result<Object<'_, N>, Malformed> {
    let text = std::str::from_utf8(input).map_err(|e| Malformed {
        what: "not UTF-8",
        at: e.valid_up_to(),
    })?;
    if input.len() > u32::MAX as usize {
        return Err(Malformed {
            what: "value too long",
            at: 0,
        });
    }
    let mut object = Object {
        text,
        spans: [None; N],
    };
    let mut p = Parser {
        text,
        bytes: input,
        pos: 0,
    };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err(p.error("not a JSON object"));
    }
    p.pos += 1;
    p.skip_ws();
    if p.peek() == Some(b'}') {
        p.pos += 1;
    } else {
        loop {
            p.skip_ws();
            if p.peek() != Some(b'"') {
                return Err(p.error("expected a member name"));
            }
            let name = p.string()?;
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            let start = p.pos;
            let plain_string = if p.peek() == Some(b'"') {
                matches!(p.string()?, Cow::Borrowed(_))
            } else {
                p.skip_value(MEMBER_LEVEL)?;
                false
            };
            if let Some(slot) = slot_of(&name).filter(|&s| s < N) {
                object.spans[slot] = Some(Span {
                    start: start as u32,
                    end: p.pos as u32,
                    plain_string,
                });
            }
            p.skip_ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(p.error("expected `,` or `}`")),
            }
        }
    }
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.error("trailing characters after the object"));
    }
    Ok(object)
}

/// The index of the first byte that ends the plain text of a JSON string
/// (`"`, `\\` or a control character), or `None` if there is none. Sixteen
/// bytes a step while sixteen remain (on x86_64), then eight, so a string's
/// end is found without a branch per byte (the decoder's scans and the
/// encoder's escaping). Ids are mostly shorter than sixteen bytes: one step.
#[inline]
pub fn first_special_byte(bytes: &[u8]) -> Option<usize> {
    // The first step here, where the caller's values are, and the rest in
    // a call.
    #[cfg(target_arch = "x86_64")]
    if let Some(chunk) = bytes.first_chunk::<16>() {
        let special = special_bytes_16(chunk);
        if special != 0 {
            return Some(special.trailing_zeros() as usize);
        }
        return first_special_byte_after(bytes, 16);
    }
    first_special_byte_after(bytes, 0)
}

/// [`first_special_byte`] of `bytes`, none of whose first `i` bytes is
/// special.
#[inline(never)]
fn first_special_byte_after(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, bit 7 is set where the byte is zero: exact for the lowest
    // such byte, which is the one returned (a borrow only runs upwards).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let special = special_bytes_16(chunk);
        if special != 0 {
            return Some(i + special.trailing_zeros() as usize);
        }
        i += 16;
    }
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let special = zero_bytes(x ^ (ONES * u64::from(b'"')))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')))
            // Below 0x20: the same borrow trick against 0x20 per byte.
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if special != 0 {
            return Some(i + (special.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| i + p)
}

/// One bit per byte of a 16-byte `chunk` (bit `k` for `chunk[k]`), set
/// where the byte is `"`, `\\` or a control character: SSE2 compares.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn special_bytes_16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    #[allow(unsafe_code)]
    // SAFETY: SSE2, which these instructions need, is part of every x86_64
    // processor; the unaligned load reads exactly the 16 bytes of `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20, unsigned: the byte is its own minimum with 0x1f.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        // The sign bits of the 16 lanes: a 16-bit mask, never negative.
        _mm_movemask_epi8(special) as u32
    }
}

/// One bit per byte of a 16-byte `chunk` (bit `k` for `chunk[k]`), set
/// where the byte is an ASCII digit: SSE2 compares.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn digit_bytes_16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_sub_epi8,
    };
    #[allow(unsafe_code)]
    // SAFETY: SSE2, which these instructions need, is part of every x86_64
    // processor; the unaligned load reads exactly the 16 bytes of `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // A digit is at most 9 above '0', unsigned (wrapping below '0').
        let offset = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let digit = _mm_cmpeq_epi8(_mm_min_epu8(offset, _mm_set1_epi8(9)), offset);
        _mm_movemask_epi8(digit) as u32
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &'static str) -> Malformed {
        Malformed { what, at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Result<(), Malformed> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            self.pos = self.pos.saturating_sub(1);
            Err(self.error("unexpected character"))
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// One value; `level` is the nesting level it has if it is an array
    /// or object (the outer object is level 1).
    fn value(&mut self, level: usize) -> Result<Raw<'a>, Malformed> {
        if level > DEPTH_MAX && matches!(self.peek(), Some(b'[' | b'{')) {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => Ok(Raw::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Raw::Bool(true)),
            Some(b'f') => self.literal(b"false", Raw::Bool(false)),
            Some(b'n') => self.literal(b"null", Raw::Absent),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Raw::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(level + 1)?);
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(Raw::Array(items)),
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
            Some(b'{') => {
                self.skip_value(level)?;
                Ok(Raw::Object)
            }
            _ => Err(self.error("expected a value")),
        }
    }

    /// Validates and skips one value without building it; `level` as for
    /// [`Parser::value`].
    fn skip_value(&mut self, level: usize) -> Result<(), Malformed> {
        if level > DEPTH_MAX && matches!(self.peek(), Some(b'[' | b'{')) {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't') => self.literal(b"true", Raw::Absent).map(drop),
            Some(b'f') => self.literal(b"false", Raw::Absent).map(drop),
            Some(b'n') => self.literal(b"null", Raw::Absent).map(drop),
            Some(open @ (b'[' | b'{')) => {
                let close = if open == b'[' { b']' } else { b'}' };
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.error("expected a member name"));
                        }
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                        self.skip_ws();
                    }
                    self.skip_value(level + 1)?;
                    self.skip_ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(c) if c == close => return Ok(()),
                        _ => return Err(self.error("expected `,` or a closing bracket")),
                    }
                }
            }
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static [u8], raw: Raw<'a>) -> Result<Raw<'a>, Malformed> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(raw)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number of any size; only its spelling can be wrong.
    fn number(&mut self) -> Result<Raw<'a>, Malformed> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 {
            return Err(self.error("invalid number"));
        }
        if int_digits > 1 && self.bytes[int_start] == b'0' {
            return Err(Malformed {
                what: "invalid number: leading zero",
                at: int_start,
            });
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digit after `.`"));
            }
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digit in exponent"));
            }
            integral = false;
        }
        // `-0` is the integer zero, as serde_json reads it.
        if negative && integral && int_digits == 1 && self.bytes[int_start] == b'0' {
            return Ok(Raw::UInt(0));
        }
        if !negative && integral {
            let mut value: u64 = 0;
            let mut fits = true;
            for &d in &self.bytes[int_start..self.pos] {
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) => value = v,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                return Ok(Raw::UInt(value));
            }
        }
        Ok(Raw::OtherNumber)
    }

    /// A string at `"`; borrowed when it holds no escape.
    fn string(&mut self) -> Result<Cow<'a, str>, Malformed> {
        self.pos += 1;
        let start = self.pos;
        let stop = first_special_byte(&self.bytes[start..]);
        let Some(len) = stop else {
            self.pos = self.bytes.len();
            return Err(self.error("unterminated string"));
        };
        self.pos = start + len;
        match self.bytes[self.pos] {
            b'"' => {
                let s = &self.text[start..self.pos];
                self.pos += 1;
                return Ok(Cow::Borrowed(s));
            }
            b'\\' => {}
            _ => return Err(self.error("control character in string")),
        }
        let mut owned = String::with_capacity(self.pos - start + 16);
        owned.push_str(&self.text[start..self.pos]);
        loop {
            match self.next() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => return Ok(Cow::Owned(owned)),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.error("invalid escape")),
                    };
                    owned.push(c);
                }
                Some(0..=0x1f) => return Err(self.error("control character in string")),
                Some(_) => {
                    // Copy the rest of this UTF-8 run up to the next special byte.
                    let run_start = self.pos - 1;
                    while let Some(b) = self.peek() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    owned.push_str(&self.text[run_start..self.pos]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Malformed> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, Malformed> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(self.error("lone leading surrogate"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("invalid trailing surrogate"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone trailing surrogate")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(name: &str) -> Option<usize> {
        match name {
            "a" => Some(0),
            "b" => Some(1),
            _ => None,
        }
    }

    fn parse(s: &[u8]) -> Result<[Raw<'_>; 2], Malformed> {
        let object = scan_object::<2>(s, slot)?;
        assert_eq!(object.is_absent(0), matches!(object.get(0), Raw::Absent));
        Ok([object.get(0), object.get(1)])
    }

    #[test]
    fn captures_known_members() {
        let f = parse(br#" { "a" : "x\u00e9\"y" , "z": [1, {"q": [true]}], "b": [1, -2, 3.5, "s", null, {}] } "#).unwrap();
        assert_eq!(f[0], Raw::Str(Cow::Owned("xé\"y".into())));
        assert_eq!(
            f[1],
            Raw::Array(vec![
                Raw::UInt(1),
                Raw::OtherNumber,
                Raw::OtherNumber,
                Raw::Str(Cow::Borrowed("s")),
                Raw::Absent,
                Raw::Object
            ])
        );
        let f = parse(br#"{"a":18446744073709551615,"b":18446744073709551616}"#).unwrap();
        assert_eq!(f[0], Raw::UInt(u64::MAX));
        assert_eq!(f[1], Raw::OtherNumber);
        let f = parse(br#"{"a":"\ud83d\ude00","a":"last"}"#).unwrap();
        assert_eq!(f[0], Raw::Str(Cow::Borrowed("last")));
        assert!(matches!(parse(b"{}").unwrap()[0], Raw::Absent));
    }

    #[test]
    fn rejects_what_is_not_a_json_object() {
        for bad in [
            &b""[..],
            b"[]",
            b"1",
            b"\"s\"",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{,}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":tru}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\udc00\"}",
            b"{\"z\":\"\\ud800x\"}",
            b"{} {}",
            b"{\"a\":1}x",
            b"\xff",
            b"{\"a\":\"\xc3\"}",
            b"{'a':1}",
            b"{\"a\":[1 2]}",
            b"{\"a\":1e400.5}",
            b"{\"a\":-1e}",
            b"{\"a\":1e400e5}",
            b"{\"z\":{\"k\" 1}}",
            b"{\"a\":+1}",
            b"{\"a\":.5}",
            b"{\"a\":NaN}",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"z\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(deep.as_bytes()).unwrap_err().what, "nesting too deep");
        let ok = format!("{{\"z\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    /// Contract section 6 (v1.1): a value nested more than 128
    /// arrays/objects deep, the outer object included, is malformed.
    /// (serde_json's default limit refuses 128 levels already; the oracle
    /// below never nests that deep.)
    #[test]
    fn nesting_beyond_128_levels_is_refused() {
        for (inner, ok) in [(127, true), (128, false)] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let doc = format!("{{\"z\":{}1{}}}", open.repeat(inner), close.repeat(inner));
                assert_eq!(parse(doc.as_bytes()).is_ok(), ok, "{inner} {open}");
                // Containers count, whatever they hold.
                let doc = format!("{{\"z\":{}{}}}", open.repeat(inner), close.repeat(inner))
                    .replace(":}", ":1}");
                assert_eq!(parse(doc.as_bytes()).is_ok(), ok, "{inner} {open} empty");
                let doc = format!("{{\"a\":{}1{}}}", open.repeat(inner), close.repeat(inner));
                assert_eq!(parse(doc.as_bytes()).is_ok(), ok, "{inner} {open} known");
            }
        }
    }

    #[test]
    fn numbers_of_any_size_are_numbers() {
        let huge_int = "9".repeat(400);
        for n in [
            "1e400",
            "-1e400",
            "1E+400",
            "1e-400",
            "1.5e99999999999999999999",
            "0e99999999999999999999",
            huge_int.as_str(),
            &format!("-{huge_int}"),
            &format!("{huge_int}.5"),
        ] {
            let doc = format!(r#"{{"a":{n},"z":{n},"b":[{n}]}}"#);
            let f = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(f[0], Raw::OtherNumber, "{n}");
            assert_eq!(f[1], Raw::Array(vec![Raw::OtherNumber]), "{n}");
        }
        let f = parse(br#"{"a":-0,"b":18446744073709551615}"#).unwrap();
        assert_eq!(f, [Raw::UInt(0), Raw::UInt(u64::MAX)]);
        let f = parse(br#"{"a":1.0,"b":1e3}"#).unwrap();
        assert_eq!(f, [Raw::OtherNumber, Raw::OtherNumber]);
    }

    /// `doc` with every number too large for an f64 replaced by one of the
    /// same shape (sign, fraction, exponent) that is not. RFC 8259 sets no
    /// limit on numbers and neither does the scanner (contract section 6,
    /// v1.1); serde_json refuses such numbers as out of range, so the
    /// oracle below is asked about the tamed document, which is valid
    /// exactly when `doc` is. Outside strings only; a lexeme is the
    /// longest prefix the number grammar matches, as a parser reads it.
    fn tame_numbers(doc: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(doc.len());
        let mut i = 0;
        let mut in_string = false;
        while i < doc.len() {
            let b = doc[i];
            if in_string {
                out.push(b);
                if b == b'\\' && i + 1 < doc.len() {
                    out.push(doc[i + 1]);
                    i += 1;
                } else if b == b'"' {
                    in_string = false;
                }
                i += 1;
                continue;
            }
            if b == b'"' {
                in_string = true;
            } else if b == b'-' || b.is_ascii_digit() {
                let (len, fraction, exponent) = number_lexeme(&doc[i..]);
                if len > 0 {
                    let lexeme = std::str::from_utf8(&doc[i..i + len]).unwrap();
                    if !lexeme.parse::<f64>().is_ok_and(f64::is_finite) {
                        if b == b'-' {
                            out.push(b'-');
                        }
                        out.extend_from_slice(match (fraction, exponent) {
                            (_, true) => &b"1e1"[..],
                            (true, false) => b"0.5",
                            (false, false) => b"18446744073709551616",
                        });
                    } else {
                        out.extend_from_slice(lexeme.as_bytes());
                    }
                    i += len;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        out
    }

    /// Length of the longest prefix of `s` that is a JSON number (0 if
    /// none), and whether it has a fraction and an exponent.
    fn number_lexeme(s: &[u8]) -> (usize, bool, bool) {
        let digits = |from: usize| s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut i = usize::from(s.first() == Some(&b'-'));
        let int = digits(i);
        if int == 0 {
            return (0, false, false);
        }
        // A leading zero ends the integer part.
        i += if s[i] == b'0' { 1 } else { int };
        let mut fraction = false;
        if s.get(i) == Some(&b'.') && digits(i + 1) > 0 {
            i += 1 + digits(i + 1);
            fraction = true;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = s.get(i) {
            let sign = usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
            let n = digits(i + 1 + sign);
            if n > 0 {
                i += 1 + sign + n;
                exponent = true;
            }
        }
        (i, fraction, exponent)
    }

    #[test]
    fn taming_keeps_the_shape_of_numbers() {
        let huge = "9".repeat(400);
        let doc =
            format!(r#"{{"a":[1e400,-1E+400,{huge},-{huge}.5,1e-400,2,"1e400"],"b":01e400}}"#);
        assert_eq!(
            String::from_utf8(tame_numbers(doc.as_bytes())).unwrap(),
            r#"{"a":[1e1,-1e1,18446744073709551616,-0.5,1e-400,2,"1e400"],"b":01e1}"#
        );
    }

    /// A JSON-ish byte soup: mostly structural characters, so that random
    /// strings are often nearly valid.
    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let tokens = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"a\"",
            "\"b\"",
            "\"z\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "1",
            "0",
            "-1",
            "1.5",
            "1e5",
            "01",
            "true",
            "null",
            "fals",
            " ",
            "\"",
            "\\",
            "é",
            "\u{1}",
            "18446744073709551616",
            "1e400",
            "-1e400",
            "1E+400",
            "1e-400",
            ".5",
            "e400",
            "9999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999",
        ]);
        prop::collection::vec(tokens, 0..24).prop_map(|t| t.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn first_special_byte_is_the_first_quote_backslash_or_control(
            bytes in prop::collection::vec(
                prop::sample::select(vec![b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'0']),
                0..40,
            )
        ) {
            let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(first_special_byte(&bytes), expected);
        }

        /// Accepts exactly what serde_json accepts as an object, and
        /// captures the same values, numbers too large for serde_json
        /// aside (see `tame_numbers`).
        #[test]
        fn agrees_with_serde_json(doc in soup()) {
            let ours = parse(&doc);
            let theirs = serde_json::from_slice::<serde_json::Value>(&tame_numbers(&doc));
            match (&ours, &theirs) {
                (Ok(f), Ok(serde_json::Value::Object(m))) => {
                    for (i, key) in ["a", "b"].iter().enumerate() {
                        let want = m.get(*key).cloned().unwrap_or(serde_json::Value::Null);
                        prop_assert!(same(&f[i], &want), "{:?} vs {:?}", f[i], want);
                    }
                }
                (Err(_), Err(_)) | (Err(_), Ok(_)) if !matches!(theirs, Ok(serde_json::Value::Object(_))) => {}
                _ => prop_assert!(false, "disagree on {:?}: ours {:?}, serde_json {:?}", String::from_utf8_lossy(&doc), ours.is_ok(), theirs.is_ok()),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(doc in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&doc);
        }
    }

    fn same(raw: &Raw<'_>, v: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (raw, v) {
            (Raw::Absent, Value::Null) => true,
            (Raw::Bool(a), Value::Bool(b)) => a == b,
            (Raw::UInt(a), Value::Number(n)) => n.as_u64() == Some(*a),
            (Raw::OtherNumber, Value::Number(n)) => n.as_u64().is_none(),
            (Raw::Str(a), Value::String(b)) => a == b,
            (Raw::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (Raw::Object, Value::Object(_)) => true,
            _ => false,
        }
    }
}
