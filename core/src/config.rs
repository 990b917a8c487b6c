//! The decision core's configuration: the contract's tunable values, with
//! their defaults and the limits they are validated against at start-up.

use thiserror::Error;

use crate::id::INT_MAX;
use crate::zone::Zone;

/// Longest duplicate window accepted: 7 days. The window's memory grows with
/// event rate times window, so an unbounded value is refused up front.
pub const DEDUP_WINDOW_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// Largest accepted `max_event_bytes`: 16 MiB, far above any coupon event and
/// below what a Kafka message may carry by default configuration.
pub const MAX_EVENT_BYTES_MAX: usize = 16 << 20;

/// Default state retention: 7 days of event time, so
/// memory does not grow forever. Retention changes the contract's answer
/// to events that refer to a campaign over for longer than that (see
/// `state::retention`); the contract's own conformance vectors contain such
/// events (up to 20 days late) and are checked with retention off (`0`).
pub const RETENTION_MS_DEFAULT: u64 = RETENTION_MS_RECOMMENDED;

/// The recommended retention: 7 days of event time.
pub const RETENTION_MS_RECOMMENDED: u64 = 7 * 24 * 3_600_000;

/// Defaults every seller starts with until a `seller` event changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellerDefaults {
    pub daily_issue_limit: u64,
    pub max_recipients: u64,
    pub timezone: Zone,
}

impl Default for SellerDefaults {
    fn default() -> Self {
        SellerDefaults {
            daily_issue_limit: 16_000,
            max_recipients: 20,
            timezone: Zone::shanghai(),
        }
    }
}

/// Configuration of one partition's decision core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreConfig {
    /// How far behind the watermark a first sighting still makes a repeat
    /// of its `event_id` a duplicate (contract section 4).
    pub dedup_window_ms: u64,
    /// Longest accepted input value in bytes (contract section 6).
    pub max_event_bytes: usize,
    pub seller_defaults: SellerDefaults,
    /// How far behind the watermark (ms of event time) the last moment a
    /// campaign can matter may fall before the campaign, its coupons and its
    /// counters are dropped from state (`state::retention`); 0 keeps every
    /// campaign forever.
    pub retention_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            dedup_window_ms: 600_000,
            max_event_bytes: 65_536,
            seller_defaults: SellerDefaults::default(),
            retention_ms: RETENTION_MS_DEFAULT,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("dedup window {0} ms exceeds the limit of {DEDUP_WINDOW_MS_MAX} ms")]
    DedupWindowTooLong(u64),
    #[error("max event bytes must be between 1 and {MAX_EVENT_BYTES_MAX}, got {0}")]
    MaxEventBytesOutOfRange(usize),
    #[error("default daily issue limit {0} exceeds 2^53-1")]
    DailyIssueLimitOutOfRange(u64),
    #[error("default max recipients must be between 1 and 2^53-1, got {0}")]
    MaxRecipientsOutOfRange(u64),
    #[error("retention {0} ms exceeds 2^53-1 (the contract's ts range)")]
    RetentionOutOfRange(u64),
    #[error("unknown time zone {0:?} (expected an IANA name such as Asia/Shanghai)")]
    UnknownTimezone(String),
}

impl CoreConfig {
    /// Checks every value against its limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dedup_window_ms > DEDUP_WINDOW_MS_MAX {
            return Err(ConfigError::DedupWindowTooLong(self.dedup_window_ms));
        }
        if self.max_event_bytes == 0 || self.max_event_bytes > MAX_EVENT_BYTES_MAX {
            return Err(ConfigError::MaxEventBytesOutOfRange(self.max_event_bytes));
        }
        if self.retention_ms > INT_MAX {
            return Err(ConfigError::RetentionOutOfRange(self.retention_ms));
        }
        let defaults = &self.seller_defaults;
        if defaults.daily_issue_limit > INT_MAX {
            return Err(ConfigError::DailyIssueLimitOutOfRange(
                defaults.daily_issue_limit,
            ));
        }
        if defaults.max_recipients == 0 || defaults.max_recipients > INT_MAX {
            return Err(ConfigError::MaxRecipientsOutOfRange(
                defaults.max_recipients,
            ));
        }
        Ok(())
    }
}

/// Parses an IANA time zone name exactly as the contract's `timezone` field
/// is parsed, so a flag and an event accept the same names.
pub fn parse_timezone(name: &str) -> Result<Zone, ConfigError> {
    Zone::parse(name).ok_or_else(|| ConfigError::UnknownTimezone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = CoreConfig::default();
        assert_eq!(c.dedup_window_ms, 600_000);
        assert_eq!(c.max_event_bytes, 65_536);
        assert_eq!(c.seller_defaults.daily_issue_limit, 16_000);
        assert_eq!(c.seller_defaults.max_recipients, 20);
        assert_eq!(c.seller_defaults.timezone.name(), "Asia/Shanghai");
        assert_eq!(c.retention_ms, 7 * 24 * 3_600_000);
        assert_eq!(c.validate(), Ok(()));
        let on = CoreConfig {
            retention_ms: RETENTION_MS_RECOMMENDED,
            ..CoreConfig::default()
        };
        assert_eq!(on.validate(), Ok(()));
        assert_eq!(RETENTION_MS_RECOMMENDED, 604_800_000);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let c = CoreConfig {
            max_event_bytes: 0,
            ..CoreConfig::default()
        };
        assert!(c.validate().is_err());
        let c = CoreConfig {
            dedup_window_ms: DEDUP_WINDOW_MS_MAX + 1,
            ..CoreConfig::default()
        };
        assert!(c.validate().is_err());
        let c = CoreConfig {
            retention_ms: INT_MAX + 1,
            ..CoreConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::RetentionOutOfRange(INT_MAX + 1))
        );
        let mut c = CoreConfig::default();
        c.seller_defaults.max_recipients = 0;
        assert!(c.validate().is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert_eq!(
            parse_timezone("America/New_York").map(Zone::name),
            Ok("America/New_York")
        );
        assert!(parse_timezone("Factory").is_err());
    }
}
