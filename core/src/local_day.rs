//! The local calendar day of an instant in a seller's [`Zone`], the unit of
//! the daily issuance quota (contract sections 3, 7 and 8).
//!
//! Offsets come from the tz database through jiff, including the POSIX TZ
//! rule that continues each zone after its last listed transition, so
//! daylight saving goes on after 2037 and 2099. jiff's calendar ends in the
//! year 9999 while a `ts` may be up to 2^53-1 ms (about the year 287396):
//! from [`SHIFT_FROM_MS`] on, an instant is evaluated 400·k Gregorian years
//! earlier and the day moved back by k·146097. That is exact because no
//! zone lists a transition after the 21st century, so only its POSIX rule
//! applies there, and the Gregorian calendar, and with it every POSIX rule
//! (month, week and weekday, or day of year), repeats every 146097 days.
//!
//! [`DayCache`] keeps, per seller, the span of instants around the last
//! lookup over which the offset and the day do not change, so the common
//! case (events of today) is two comparisons.
//!
//! Local days are not monotonic in every zone: until 2010 Newfoundland,
//! Goose Bay and Moncton set clocks back at 00:01, so a date could return
//! for an hour after the next one had begun. [`day_ended_by`] therefore
//! asks whether a date occurs again, not only what the date is now.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::zone::Zone;

/// Milliseconds in a day of 24 hours (a local day may be 23 or 25 hours;
/// days are counted from local midnights, never by adding this).
pub const DAY_MS: u64 = 86_400_000;

/// Days in 400 Gregorian years: also exactly 20871 weeks, so calendar dates
/// and weekdays, and therefore every POSIX TZ rule, repeat with this period.
pub const CYCLE_DAYS: i64 = 146_097;

const CYCLE_MS: u64 = CYCLE_DAYS as u64 * DAY_MS;

/// Bound on any zone's offset from UTC: jiff's offsets lie within
/// ±25:59:59. From `(d + 1)` days + this on, every zone's date is after `d`.
pub const OFFSET_BOUND_MS: u64 = 26 * 3_600_000;

/// Instants from 9000-01-01T00:00:00Z on are evaluated 400·k years earlier,
/// in [8600, 9000), far after the last listed transition of any zone (the
/// latest, Morocco's, are in 2087) and far before jiff's last instant.
pub const SHIFT_FROM_MS: u64 = days_from_civil(9000, 1, 1) as u64 * DAY_MS;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm), for constants and for tests that check jiff independently.
pub const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * CYCLE_DAYS + day_of_era - 719_468
}

/// Instants `start <= ts < end` (ms) over which `zone`'s offset stays the
/// same and the local day is `day` (days since 1970-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub day: i64,
    pub start: u64,
    pub end: u64,
}

impl DaySpan {
    /// A span that contains no instant.
    pub const EMPTY: DaySpan = DaySpan {
        day: 0,
        start: 0,
        end: 0,
    };

    #[inline]
    pub fn contains(&self, ts: u64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// Days since 1970-01-01 of the local date of `ts_ms` in `zone`.
pub fn local_day(zone: Zone, ts_ms: u64) -> i64 {
    let (cycles, ts) = shift(ts_ms);
    let offset = offset_ms(zone.rules(), ts);
    (ts as i64 + offset).div_euclid(DAY_MS as i64) + cycles as i64 * CYCLE_DAYS
}

/// The offset from UTC (ms) of `zone` at `ts_ms`.
pub fn offset_at(zone: Zone, ts_ms: u64) -> i64 {
    offset_ms(zone.rules(), shift(ts_ms).1)
}

/// The local day of `ts_ms` in `zone` with the span of instants around it
/// that have the same offset and day.
pub fn day_span(zone: Zone, ts_ms: u64) -> DaySpan {
    let (cycles, ts) = shift(ts_ms);
    let rules = zone.rules();
    let at = timestamp(ts);
    let offset = offset_ms(rules, ts);
    let day = (ts as i64 + offset).div_euclid(DAY_MS as i64);
    let day_ms = DAY_MS as i64;
    // The local midnights around `ts` under its offset, as instants.
    let mut start = day * day_ms - offset;
    let mut end = start + day_ms;
    // Transitions at or before `ts` (jiff's `preceding` is strict) and
    // after it: the offset is the same between them.
    if let Some(t) = rules.preceding(timestamp(ts + 1)).next() {
        start = start.max(t.timestamp().as_millisecond());
    }
    if let Some(t) = rules.following(at).next() {
        end = end.min(t.timestamp().as_millisecond());
    }
    let moved = cycles.saturating_mul(CYCLE_MS);
    DaySpan {
        day: day + cycles as i64 * CYCLE_DAYS,
        start: (start.max(0) as u64).saturating_add(moved),
        end: (end.max(0) as u64).saturating_add(moved),
    }
}

/// Whether local date `day` has ended, in `zone`, at or before `horizon`:
/// no instant from `horizon` on falls on it (contract section 8).
pub fn day_ended_by(zone: Zone, day: i64, horizon: u64) -> bool {
    let settled = (i128::from(day) + 1) * i128::from(DAY_MS) + i128::from(OFFSET_BOUND_MS);
    // Walks the spans from `horizon` to where no zone can be on `day`: a
    // few spans, as `horizon` is at most a day or two before that.
    let mut t = horizon;
    while i128::from(t) < settled {
        let span = day_span(zone, t);
        if span.day == day {
            return false;
        }
        if span.end <= t {
            break;
        }
        t = span.end;
    }
    true
}

/// `(k, ts - k·400 years)` with the result below [`SHIFT_FROM_MS`].
#[inline]
fn shift(ts_ms: u64) -> (u64, u64) {
    if ts_ms < SHIFT_FROM_MS {
        return (0, ts_ms);
    }
    let cycles = (ts_ms - SHIFT_FROM_MS) / CYCLE_MS + 1;
    (cycles, ts_ms - cycles * CYCLE_MS)
}

/// An instant below [`SHIFT_FROM_MS`], always inside jiff's range.
fn timestamp(ts: u64) -> Timestamp {
    debug_assert!(ts <= SHIFT_FROM_MS);
    Timestamp::from_millisecond(ts as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn offset_ms(rules: &TimeZone, ts: u64) -> i64 {
    i64::from(rules.to_offset(timestamp(ts)).seconds()) * 1000
}

/// One seller's last [`DaySpan`], so that the day of most events costs two
/// comparisons instead of a time zone lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCache {
    zone: Zone,
    span: DaySpan,
}

impl DayCache {
    pub fn new(zone: Zone) -> DayCache {
        DayCache {
            zone,
            span: DaySpan::EMPTY,
        }
    }

    /// The span holding `ts_ms` in `zone` (a zone change refills it).
    #[inline]
    pub fn span(&mut self, zone: Zone, ts_ms: u64) -> DaySpan {
        if self.zone != zone || !self.span.contains(ts_ms) {
            self.refill(zone, ts_ms);
        }
        self.span
    }

    #[cold]
    fn refill(&mut self, zone: Zone, ts_ms: u64) {
        self.zone = zone;
        self.span = day_span(zone, ts_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const INT_MAX: u64 = (1 << 53) - 1;

    fn zone(name: &str) -> Zone {
        Zone::parse(name).unwrap()
    }

    /// ms of a UTC civil time.
    fn utc(y: i64, mo: i64, d: i64, h: u64) -> u64 {
        days_from_civil(y, mo, d) as u64 * DAY_MS + h * HOUR
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2025, 11, 11), 20_403);
        assert_eq!(
            days_from_civil(2400, 1, 1) - days_from_civil(2000, 1, 1),
            CYCLE_DAYS
        );
        // 400 years are whole weeks.
        assert_eq!(CYCLE_DAYS % 7, 0);
        assert_eq!(SHIFT_FROM_MS, 221_845_392_000_000);
    }

    #[test]
    fn shanghai_day_starts_at_16_utc() {
        let tz = zone("Asia/Shanghai");
        // 2025-11-10T16:00Z is 2025-11-11 00:00 in Shanghai.
        let midnight = 1_762_790_400_000u64;
        assert_eq!(local_day(tz, midnight), days_from_civil(2025, 11, 11));
        assert_eq!(local_day(tz, midnight - 1), days_from_civil(2025, 11, 10));
        assert_eq!(
            local_day(tz, midnight + DAY_MS - 1),
            local_day(tz, midnight)
        );
    }

    #[test]
    fn new_york_days_follow_daylight_saving() {
        let tz = zone("America/New_York");
        // 2025-03-09 is 23 hours long, 2025-11-02 25 hours, 2025-06-01 24.
        for (start, hours) in [
            (utc(2025, 3, 9, 5), 23),
            (utc(2025, 11, 2, 4), 25),
            (utc(2025, 6, 1, 4), 24),
        ] {
            let end = start + hours * HOUR;
            assert_eq!(local_day(tz, start), local_day(tz, start - 1) + 1);
            assert_eq!(local_day(tz, end - 1), local_day(tz, start));
            assert_eq!(local_day(tz, end), local_day(tz, start) + 1);
        }
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let kolkata = zone("Asia/Kolkata");
        let start = utc(2025, 11, 10, 18) + HOUR / 2; // 00:00 +05:30
        assert_eq!(local_day(kolkata, start), local_day(kolkata, start - 1) + 1);
        let chatham = zone("Pacific/Chatham");
        // 2025-11-11 00:00 +13:45 is 2025-11-10T10:15Z.
        let start = utc(2025, 11, 10, 10) + HOUR / 4;
        assert_eq!(local_day(chatham, start), days_from_civil(2025, 11, 11));
        assert_eq!(local_day(chatham, start - 1), days_from_civil(2025, 11, 10));
        assert_eq!(local_day(Zone::utc(), 0), 0);
        assert_eq!(local_day(zone("America/Los_Angeles"), 0), -1);
    }

    #[test]
    fn spans_hold_one_day_and_one_offset() {
        let tz = zone("America/New_York");
        // Spring forward at 2025-03-09T07:00Z: the day's span ends there.
        let s = day_span(tz, utc(2025, 3, 9, 6));
        assert_eq!(
            s,
            DaySpan {
                day: days_from_civil(2025, 3, 9),
                start: utc(2025, 3, 9, 5),
                end: utc(2025, 3, 9, 7),
            }
        );
        let s = day_span(tz, utc(2025, 3, 9, 7));
        assert_eq!((s.start, s.end), (utc(2025, 3, 9, 7), utc(2025, 3, 10, 4)));
        // An ordinary day is one span from midnight to midnight.
        let s = day_span(tz, utc(2025, 6, 1, 12));
        assert_eq!((s.start, s.end), (utc(2025, 6, 1, 4), utc(2025, 6, 2, 4)));
        // Before the epoch's midnight, spans start at 0.
        let s = day_span(zone("Asia/Shanghai"), 5);
        assert_eq!((s.day, s.start, s.end), (0, 0, 16 * HOUR));
        let s = day_span(tz, INT_MAX);
        assert!(s.contains(INT_MAX));
        let s = day_span(tz, u64::MAX);
        assert!(s.start < u64::MAX && s.end == u64::MAX);
    }

    #[test]
    fn the_cache_follows_the_zone_and_the_day() {
        let ny = zone("America/New_York");
        let sh = zone("Asia/Shanghai");
        let mut cache = DayCache::new(ny);
        // 14:00 on June 1 in New York, 02:00 on June 2 in Shanghai.
        let t = utc(2025, 6, 1, 18);
        assert_eq!(cache.span(ny, t).day, local_day(ny, t));
        assert_eq!(cache.span(sh, t).day, local_day(sh, t));
        assert_ne!(local_day(ny, t), local_day(sh, t));
        assert_eq!(cache.span(sh, t + DAY_MS).day, local_day(sh, t) + 1);
        assert_eq!(cache.span(ny, t - DAY_MS).day, local_day(ny, t) - 1);
    }

    /// New York by the US rule in force since 2007, computed without jiff:
    /// daylight time from the second Sunday of March 02:00 EST (07:00Z) to
    /// the first Sunday of November 02:00 EDT (06:00Z).
    fn new_york_by_rule(ts: u64) -> i64 {
        let utc_day = (ts / DAY_MS) as i64;
        // Year of the UTC date: the civil year of `utc_day`.
        let mut year = 1970 + utc_day / 366;
        while days_from_civil(year + 1, 1, 1) <= utc_day {
            year += 1;
        }
        let nth_sunday = |month: i64, n: i64| {
            let first = days_from_civil(year, month, 1);
            // 1970-01-01 was a Thursday; weekday 0 is Sunday.
            let weekday = (first + 4).rem_euclid(7);
            first + (7 - weekday) % 7 + 7 * (n - 1)
        };
        let dst_start = nth_sunday(3, 2) as u64 * DAY_MS + 7 * HOUR;
        let dst_end = nth_sunday(11, 1) as u64 * DAY_MS + 6 * HOUR;
        let offset = if dst_start <= ts && ts < dst_end {
            -4
        } else {
            -5
        };
        (ts as i64 + offset * HOUR as i64).div_euclid(DAY_MS as i64)
    }

    #[test]
    fn new_york_keeps_daylight_saving_for_every_valid_ts() {
        let ny = zone("America/New_York");
        // Every hour of a year around 2100, 2500 and the last valid years,
        // and the last valid instant itself.
        for year in [2026, 2100, 2101, 2500, 8999, 9000, 9001, 287_395] {
            let first = days_from_civil(year, 1, 1) as u64 * DAY_MS;
            for h in 0..(366 * 24 + 48) {
                for ts in [first + h * HOUR, first + h * HOUR + HOUR - 1] {
                    assert_eq!(local_day(ny, ts), new_york_by_rule(ts), "ts {ts}");
                    assert_eq!(day_span(ny, ts).day, new_york_by_rule(ts), "ts {ts}");
                }
            }
        }
        for ts in [INT_MAX - 7 * DAY_MS, INT_MAX - HOUR, INT_MAX] {
            assert_eq!(local_day(ny, ts), new_york_by_rule(ts));
        }
        // 2100-03-14 (the second Sunday) is 23 hours long in New York, as
        // is 2500-03-14; chrono-tz's tables end before 2100.
        for (y, d) in [(2100, 14), (2500, 14)] {
            let midnight = days_from_civil(y, 3, d) as u64 * DAY_MS + 5 * HOUR;
            assert_eq!(local_day(ny, midnight), days_from_civil(y, 3, d));
            assert_eq!(local_day(ny, midnight - 1), days_from_civil(y, 3, d) - 1);
            let next = midnight + 23 * HOUR;
            assert_eq!(local_day(ny, next), days_from_civil(y, 3, d) + 1);
            assert_eq!(local_day(ny, next - 1), days_from_civil(y, 3, d));
        }
        // 2^53-1 ms is 287396-10-12T08:59:00.991Z, a Wednesday in daylight
        // time in New York (04:59 EDT): the local date is 287396-10-12.
        assert_eq!(local_day(ny, INT_MAX), days_from_civil(287_396, 10, 12));
        assert_eq!(
            local_day(Zone::utc(), INT_MAX),
            days_from_civil(287_396, 10, 12)
        );
    }

    /// Where jiff can still evaluate an instant directly, the 400-year
    /// shift gives the same local day, for every zone.
    #[test]
    fn the_shift_agrees_with_direct_evaluation_for_every_zone() {
        let direct = |rules: &TimeZone, ts: u64| -> i64 {
            let t = Timestamp::from_millisecond(ts as i64).unwrap();
            let offset = i64::from(rules.to_offset(t).seconds()) * 1000;
            (ts as i64 + offset).div_euclid(DAY_MS as i64)
        };
        let mut checked = 0;
        for name in Zone::names() {
            let z = zone(name);
            let rules = z.rules();
            // An instant every three years or so over [9000, 9900), and
            // the two transitions after it, from either side.
            let mut ts = SHIFT_FROM_MS;
            while ts < utc(9900, 1, 1, 0) {
                assert_eq!(local_day(z, ts), direct(rules, ts), "{name} at {ts}");
                let jiff_ts = Timestamp::from_millisecond(ts as i64).unwrap();
                for t in rules.following(jiff_ts).take(2) {
                    let at = t.timestamp().as_millisecond() as u64;
                    for probe in [at - 1, at, at + 1] {
                        assert_eq!(local_day(z, probe), direct(rules, probe), "{name}");
                    }
                }
                ts += 1_103 * DAY_MS + 7 * HOUR + 13;
                checked += 1;
            }
        }
        assert!(checked > 150_000, "{checked}");
    }

    /// Local days go back only where a zone set its clocks back across
    /// midnight: Newfoundland's and Moncton's 00:01 rules until 2010 and
    /// one Antarctic station, never by more than a day, and not at all
    /// under any zone's POSIX rule (a whole 400-year cycle is checked, from
    /// 2100 to 2500, which repeats after). A day may be skipped, as Samoa
    /// skipped 2011-12-30.
    #[test]
    fn local_days_go_back_only_where_clocks_were_set_back_over_midnight() {
        let end = Timestamp::from_millisecond(utc(2500, 1, 1, 0) as i64).unwrap();
        let mut transitions = 0;
        let mut skipped = Vec::new();
        let mut back = std::collections::BTreeMap::<&str, u64>::new();
        for name in Zone::names() {
            let z = zone(name);
            for t in z.rules().following(Timestamp::UNIX_EPOCH) {
                if t.timestamp() > end {
                    break;
                }
                let at = t.timestamp().as_millisecond() as u64;
                let (before, after) = (local_day(z, at - 1), local_day(z, at));
                if after < before {
                    assert_eq!(after, before - 1, "{name} at {at}");
                    assert!(offset_at(z, at) < offset_at(z, at - 1));
                    // A date that comes back has not ended.
                    assert!(!day_ended_by(z, after, at - 1));
                    let latest = back.entry(name).or_default();
                    *latest = (*latest).max(at);
                }
                if after > before + 1 {
                    skipped.push(name);
                }
                transitions += 1;
            }
        }
        assert!(transitions > 100_000, "{transitions}");
        assert!(skipped.contains(&"Pacific/Apia"), "{skipped:?}");
        assert_eq!(
            back.keys().copied().collect::<Vec<_>>(),
            [
                "America/Goose_Bay",
                "America/Moncton",
                "America/St_Johns",
                "Antarctica/Casey",
                "Canada/Newfoundland"
            ]
        );
        assert!(back.values().all(|&at| at < utc(2011, 1, 1, 0)), "{back:?}");
    }

    #[test]
    fn a_day_ends_when_no_later_instant_falls_on_it() {
        let ny = zone("America/New_York");
        let day = days_from_civil(2025, 6, 1);
        let next_midnight = utc(2025, 6, 2, 4);
        assert!(!day_ended_by(ny, day, next_midnight - 1));
        assert!(day_ended_by(ny, day, next_midnight));
        assert!(day_ended_by(ny, day - 1, next_midnight - 1));
        assert!(!day_ended_by(ny, day + 1, next_midnight));
        // Far ahead or far behind, and at the ends of u64.
        assert!(day_ended_by(ny, day, u64::MAX));
        assert!(!day_ended_by(ny, day, 0));
        assert!(day_ended_by(ny, i64::MIN, 0));
        // A date no instant reaches: the walk stops at the last instant.
        day_ended_by(ny, i64::MAX, u64::MAX - 1);
        // 2^53-1 itself: its day has not ended then, the day before has.
        let last = local_day(ny, INT_MAX);
        assert!(!day_ended_by(ny, last, INT_MAX));
        assert!(day_ended_by(ny, last - 1, INT_MAX));
        // St. John's, 2010-11-07: at 00:01 NDT clocks went back to 23:01
        // NST of the 6th, so the 6th had not ended when the 7th began.
        let sj = zone("America/St_Johns");
        let sixth = days_from_civil(2010, 11, 6);
        let seventh_began = utc(2010, 11, 7, 2) + HOUR / 2; // 00:00 NDT
        assert_eq!(local_day(sj, seventh_began), sixth + 1);
        assert!(!day_ended_by(sj, sixth, seventh_began));
        // It ended at the second midnight, 00:00 NST (03:30Z).
        assert!(!day_ended_by(sj, sixth, utc(2010, 11, 7, 3) + HOUR / 2 - 1));
        assert!(day_ended_by(sj, sixth, utc(2010, 11, 7, 3) + HOUR / 2));
    }

    /// Up to the tz release chrono-tz carries (2025b), it and jiff agree on
    /// every zone's local days. (From 2026-09 Morocco, Cuba and western
    /// Canada follow rules published in later releases, which jiff's data,
    /// 2026f, has.)
    #[test]
    fn agrees_with_chrono_tz_up_to_its_tz_release() {
        use chrono::{Offset, TimeZone as _};
        let chrono_day = |tz: chrono_tz::Tz, ts: u64| {
            let offset = tz
                .offset_from_utc_datetime(
                    &chrono::DateTime::from_timestamp_millis(ts as i64)
                        .unwrap()
                        .naive_utc(),
                )
                .fix()
                .local_minus_utc();
            (ts as i64 + i64::from(offset) * 1000).div_euclid(DAY_MS as i64)
        };
        let end = utc(2026, 9, 1, 0);
        let mut differ = std::collections::BTreeSet::new();
        let mut compared = 0;
        for tz in chrono_tz::TZ_VARIANTS {
            let z = zone(tz.name());
            let mut ts = 0;
            while ts < end {
                for probe in [ts, day_span(z, ts).end - 1, day_span(z, ts).end] {
                    if local_day(z, probe) != chrono_day(tz, probe) {
                        differ.insert(tz.name());
                    }
                    compared += 1;
                }
                ts += 17 * DAY_MS + 5 * HOUR + 7;
            }
        }
        assert!(compared > 500_000);
        // Baja California's 1970 data was revised after 2025b.
        let changed = [
            "America/Ensenada",
            "America/Santa_Isabel",
            "America/Tijuana",
            "Mexico/BajaNorte",
        ];
        let unexplained: Vec<_> = differ.iter().filter(|n| !changed.contains(n)).collect();
        assert!(differ.len() <= changed.len());
        assert!(unexplained.is_empty(), "{unexplained:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 20_000,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// The local day of `ts` and of `ts + 1` ms differ only across a
        /// local midnight: with the same offset on both sides, exactly
        /// when `ts + 1` is 00:00:00.000 local time; across a transition,
        /// never backwards. Where jiff has a calendar, the day is the date
        /// jiff's own civil conversion gives; every span holds its day.
        #[test]
        fn days_change_only_at_local_midnight(
            which in proptest::prelude::any::<proptest::sample::Index>(),
            raw in proptest::prop_oneof![
                0u64..SHIFT_FROM_MS + 2 * CYCLE_MS,
                0u64..=INT_MAX,
                SHIFT_FROM_MS - 2 * DAY_MS..SHIFT_FROM_MS + 2 * DAY_MS,
                INT_MAX - 3 * DAY_MS..INT_MAX,
            ],
            edge in 0u8..4,
        ) {
            let names: Vec<&str> = Zone::names().collect();
            let z = zone(names[which.index(names.len())]);
            let span = day_span(z, raw);
            // Mostly the instants around a span's end: midnights and
            // transitions.
            let ts = match edge {
                0 => raw,
                1 => span.end.saturating_sub(1).min(INT_MAX - 1),
                2 => span.start.min(INT_MAX - 1),
                _ => span.end.saturating_sub(2).min(INT_MAX - 1),
            };
            let (d0, d1) = (local_day(z, ts), local_day(z, ts + 1));
            let (o0, o1) = (offset_at(z, ts), offset_at(z, ts + 1));
            let wall = (ts + 1) as i64 + o1;
            if o0 == o1 {
                let midnight = wall.rem_euclid(DAY_MS as i64) == 0;
                proptest::prop_assert_eq!(d1 - d0, i64::from(midnight), "{:?} at {}", z, ts);
            } else {
                // A transition: the wall clock jumps, by less than a day
                // back (see the test above) and at most a day and a bit on.
                proptest::prop_assert!((-1..=2).contains(&(d1 - d0)), "{:?} at {}", z, ts);
            }
            let span = day_span(z, ts);
            proptest::prop_assert!(span.contains(ts));
            proptest::prop_assert_eq!(span.day, d0);
            proptest::prop_assert_eq!(local_day(z, span.start), d0);
            proptest::prop_assert_eq!(local_day(z, span.end - 1), d0);
            proptest::prop_assert_eq!(offset_at(z, span.start), o0);
            proptest::prop_assert_eq!(offset_at(z, span.end - 1), o0);
            if ts < utc(9999, 1, 1, 0) {
                for (t, d) in [(ts, d0), (ts + 1, d1)] {
                    let civil = z
                        .rules()
                        .to_datetime(Timestamp::from_millisecond(t as i64).unwrap())
                        .date();
                    let days = days_from_civil(
                        i64::from(civil.year()),
                        i64::from(civil.month()),
                        i64::from(civil.day()),
                    );
                    proptest::prop_assert_eq!(d, days);
                }
            }
        }
    }
}
