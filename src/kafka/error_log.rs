//! [`ErrorLogLimit`]: at most one log line per client per interval for the
//! errors librdkafka reports and retries on its own. A broker that cannot
//! be reached is reported on every reconnect attempt, several times a
//! second per client, and a processor has several clients (the group
//! consumer, the decision producer, the snapshot store's producer, a reader
//! per restore thread): unthrottled, an outage would flood the log. Each
//! line that is written says how many were left out since the last one;
//! `coupon_stream_broker_errors_total` still counts every error of the
//! group consumer and the decision producer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A client's errors are logged at most once per this interval.
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct ErrorLogLimit {
    /// When the last line was written, and how many errors came since.
    last: Mutex<Option<(Instant, u64)>>,
}

impl ErrorLogLimit {
    pub fn new() -> ErrorLogLimit {
        ErrorLogLimit::default()
    }

    /// Whether an error reported `now` is logged: `Some(left out)` with how
    /// many errors were not logged since the last line, or `None` while the
    /// interval since that line runs (the error is counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let left_out = match *last {
            Some((at, count)) if now.saturating_duration_since(at) < ERROR_LOG_INTERVAL => {
                *last = Some((at, count + 1));
                return None;
            }
            Some((_, count)) => count,
            None => 0,
        };
        *last = Some((now, 0));
        Some(left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_reporting_how_many_were_left_out() {
        let limit = ErrorLogLimit::new();
        let start = Instant::now();
        assert_eq!(limit.admit(start), Some(0));
        assert_eq!(limit.admit(start + Duration::from_millis(100)), None);
        assert_eq!(limit.admit(start + Duration::from_secs(9)), None);
        assert_eq!(limit.admit(start + ERROR_LOG_INTERVAL), Some(2));
        assert_eq!(limit.admit(start + ERROR_LOG_INTERVAL), None);
        assert_eq!(limit.admit(start + 2 * ERROR_LOG_INTERVAL), Some(1));
        // A clock read before the last line (another thread's) is inside
        // the interval, never a panic.
        assert_eq!(limit.admit(start), None);
    }
}
