//! [`CoreArgs`]: the contract's configuration values, shared by every
//! command that decides, and their conversion into a validated
//! [`CoreConfig`]. The defaults are [`CoreConfig::default`]'s.

use clap::Args;
use coupon_stream_core::config::{
    ConfigError, CoreConfig, RETENTION_MS_DEFAULT, SellerDefaults, parse_timezone,
};

#[derive(Args, Debug, Clone)]
pub struct CoreArgs {
    /// Duplicate window in milliseconds of event time (contract section 4).
    #[arg(long, env = "COUPON_STREAM_DEDUP_WINDOW_MS", default_value_t = CoreConfig::default().dedup_window_ms)]
    pub dedup_window_ms: u64,
    /// Largest accepted input value in bytes; longer values are `too_large`.
    #[arg(long, env = "COUPON_STREAM_MAX_EVENT_BYTES", default_value_t = CoreConfig::default().max_event_bytes)]
    pub max_event_bytes: usize,
    /// Coupons a seller may issue per local day until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_DAILY_ISSUE_LIMIT",
        default_value_t = SellerDefaults::default().daily_issue_limit
    )]
    pub default_daily_issue_limit: u64,
    /// Most recipients of one `issue` event until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_MAX_RECIPIENTS",
        default_value_t = SellerDefaults::default().max_recipients
    )]
    pub default_max_recipients: u64,
    /// IANA time zone where a seller's day starts until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_TIMEZONE",
        default_value = SellerDefaults::default().timezone.name()
    )]
    pub default_timezone: String,
    #[arg(
        long,
        env = "COUPON_STREAM_RETENTION_MS",
        default_value_t = RETENTION_MS_DEFAULT,
        help = retention_help()
    )]
    pub retention_ms: u64,
}

/// `--retention-ms` help, with the default from the constant the core uses.
pub(super) fn retention_help() -> String {
    format!(
        "How long (ms of event time) a campaign is kept after the last moment it can matter \
         (valid_until, issue_until, its coupons' expiry) before it is dropped with its coupons \
         and counters; the default, {RETENTION_MS_DEFAULT}, is {} days; 0 keeps every campaign. \
         Late events for a dropped campaign get unknown_campaign / unknown_coupon",
        RETENTION_MS_DEFAULT / 86_400_000
    )
}

impl TryFrom<&CoreArgs> for CoreConfig {
    type Error = ConfigError;

    fn try_from(args: &CoreArgs) -> Result<CoreConfig, ConfigError> {
        let config = CoreConfig {
            dedup_window_ms: args.dedup_window_ms,
            max_event_bytes: args.max_event_bytes,
            seller_defaults: SellerDefaults {
                daily_issue_limit: args.default_daily_issue_limit,
                max_recipients: args.default_max_recipients,
                timezone: parse_timezone(&args.default_timezone)?,
            },
            retention_ms: args.retention_ms,
        };
        config.validate()?;
        Ok(config)
    }
}
