//! The local calendar day of an instant in a seller's IANA time zone, the
//! unit of the daily issuance quota. Offsets come from the tz database, so
//! daylight-saving days of 23 or 25 hours start at the seller's own midnight.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of the local date of `ts_ms` in `tz`.
pub fn local_day(tz: Tz, ts_ms: u64) -> i64 {
    // ts is at most 2^53-1, well inside i64 and chrono's range.
    let ts = ts_ms as i64;
    let offset_ms = match tz.timestamp_millis_opt(ts) {
        chrono::LocalResult::Single(dt) => i64::from(dt.offset().fix().local_minus_utc()) * 1000,
        // Unreachable for a UTC instant; treat as UTC rather than fail.
        _ => 0,
    };
    (ts + offset_ms).div_euclid(DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        tz.from_local_datetime(
            &NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, 0)
                .unwrap(),
        )
        .earliest()
        .unwrap()
        .timestamp_millis() as u64
    }

    #[test]
    fn shanghai_day_starts_at_16_utc() {
        let tz = chrono_tz::Asia::Shanghai;
        // 2025-11-10T16:00Z is 2025-11-11 00:00 in Shanghai.
        let midnight = 1_762_790_400_000u64;
        assert_eq!(local_day(tz, midnight) - local_day(tz, midnight - 1), 1);
        assert_eq!(
            local_day(tz, midnight),
            local_day(tz, midnight + DAY_MS as u64 - 1)
        );
    }

    #[test]
    fn new_york_days_follow_daylight_saving() {
        let tz = chrono_tz::America::New_York;
        // 2025-03-09 is 23 hours long, 2025-11-02 is 25 hours long.
        for (y, m, d, hours) in [(2025, 3, 9, 23), (2025, 11, 2, 25), (2025, 6, 1, 24)] {
            let start = ms(tz, y, m, d, 0, 0);
            let end = start + hours * 3_600_000;
            assert_eq!(local_day(tz, start), local_day(tz, start - 1) + 1);
            assert_eq!(local_day(tz, end - 1), local_day(tz, start));
            assert_eq!(local_day(tz, end), local_day(tz, start) + 1);
        }
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let kolkata = chrono_tz::Asia::Kolkata;
        let start = ms(kolkata, 2025, 11, 11, 0, 0);
        assert_eq!(local_day(kolkata, start), local_day(kolkata, start - 1) + 1);
        let chatham = chrono_tz::Pacific::Chatham;
        let start = ms(chatham, 2025, 11, 11, 0, 0);
        assert_eq!(local_day(chatham, start), local_day(chatham, start - 1) + 1);
        assert_eq!(local_day(chrono_tz::UTC, 0), 0);
        assert_eq!(local_day(chrono_tz::America::Los_Angeles, 0), -1);
    }
}
