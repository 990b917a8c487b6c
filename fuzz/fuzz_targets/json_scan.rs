//! Differential fuzzing of the input scanner against serde_json: both must
//! agree on which inputs are JSON objects.

#![no_main]

use coupon_stream_core::json::scan_object;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = scan_object::<2>(data, |name| match name {
        "a" => Some(0),
        "b" => Some(1),
        _ => None,
    });
    // Two places where serde_json is not RFC 8259 as contract section 6
    // (v1.1) reads it: it refuses numbers beyond an f64 (the scanner takes
    // any number; serde_json is asked about the document with each replaced
    // by one of the same shape), and it stops at 127 levels of nesting
    // where the contract allows 128 (not compared there).
    if max_depth(data) >= 128 {
        return;
    }
    let theirs = serde_json::from_slice::<serde_json::Value>(&tame_numbers(data));
    let theirs_object = matches!(theirs, Ok(serde_json::Value::Object(_)));
    assert_eq!(
        ours.is_ok(),
        theirs_object,
        "scanner and serde_json disagree"
    );
    if let Ok(object) = ours {
        // Reading a validated member never fails or panics.
        let _ = object.get(0);
        let _ = object.get(1);
    }
});

/// Deepest nesting of brackets outside strings.
fn max_depth(doc: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in doc {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// `doc` with every number too large for an f64 (outside strings) replaced
/// by one of the same shape that is not, as in `json.rs`'s oracle test.
fn tame_numbers(doc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len());
    let (mut i, mut in_string) = (0, false);
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
                let lexeme = &doc[i..i + len];
                let finite = std::str::from_utf8(lexeme)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(f64::is_finite);
                if finite {
                    out.extend_from_slice(lexeme);
                } else {
                    if b == b'-' {
                        out.push(b'-');
                    }
                    out.extend_from_slice(match (fraction, exponent) {
                        (_, true) => &b"1e1"[..],
                        (true, false) => b"0.5",
                        (false, false) => b"18446744073709551616",
                    });
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

/// Length of the longest prefix of `s` that is a JSON number (0 if none),
/// and whether it has a fraction and an exponent.
fn number_lexeme(s: &[u8]) -> (usize, bool, bool) {
    let digits = |from: usize| s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = usize::from(s.first() == Some(&b'-'));
    let int = digits(i);
    if int == 0 {
        return (0, false, false);
    }
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
