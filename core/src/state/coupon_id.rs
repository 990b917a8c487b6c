//! Parsing of a coupon id, `campaign_id:n` (contract section 3, `redeem`).
//! A coupon is named only by its exact issued spelling: the serial is
//! decimal, at least 1, with no sign and no leading zero.

/// Longest serial accepted, in digits: 2^53-1 has 16.
const SERIAL_DIGITS_MAX: usize = 16;

/// The campaign id and serial a coupon id names, or `None` when no coupon
/// could ever have been issued under that id.
pub fn parse_coupon_id(coupon_id: &str) -> Option<(&str, u64)> {
    let (campaign_id, serial) = coupon_id.rsplit_once(':')?;
    let digits = serial.as_bytes();
    let well_formed = !digits.is_empty()
        && digits.len() <= SERIAL_DIGITS_MAX
        && digits[0] != b'0'
        && digits.iter().all(u8::is_ascii_digit);
    if !well_formed || campaign_id.is_empty() {
        return None;
    }
    let serial = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((campaign_id, serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_spelling_only() {
        assert_eq!(parse_coupon_id("c:1"), Some(("c", 1)));
        assert_eq!(parse_coupon_id("a:b:12"), Some(("a:b", 12)));
        assert_eq!(parse_coupon_id("双11:7"), Some(("双11", 7)));
        for bad in [
            "c:01",
            "c:+1",
            "c:0",
            "c:-1",
            "c:",
            "c",
            ":1",
            "c:1a",
            "c: 1",
            "c:99999999999999999",
        ] {
            assert_eq!(parse_coupon_id(bad), None, "{bad}");
        }
        assert_eq!(
            parse_coupon_id("c:9007199254740991"),
            Some(("c", 9_007_199_254_740_991))
        );
    }
}
