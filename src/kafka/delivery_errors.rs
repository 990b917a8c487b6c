//! [`DeliveryErrors`]: a producer context that counts the records the
//! broker refused and keeps the first refusal's message, for producers
//! that check their deliveries in bulk after a flush (`loadgen`, the
//! snapshot store). It also logs the client's own errors and log lines
//! (a broker that cannot be reached, a refused connection), which
//! librdkafka retries on its own: without them a producer whose broker is
//! down would wait out its message timeout in silence.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use tracing::warn;

use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::sink::log_librdkafka;

#[derive(Debug)]
pub struct DeliveryErrors {
    /// The client's name in log lines (`loadgen`, `state-producer`).
    client: &'static str,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Client errors are logged at most once per interval.
    logged: ErrorLogLimit,
}

impl DeliveryErrors {
    pub fn new(client: &'static str) -> DeliveryErrors {
        DeliveryErrors {
            client,
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            logged: ErrorLogLimit::new(),
        }
    }

    /// Refusals since the last [`DeliveryErrors::take`], without taking
    /// them.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The refusals since the last call, and the first one's message.
    pub fn take(&self) -> Option<(u64, String)> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        (failed > 0).then_some((failed, first))
    }
}

impl ClientContext for DeliveryErrors {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(self.client, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let Some(suppressed) = self.logged.admit(Instant::now()) else {
            return;
        };
        warn!(
            message = "Producer error; librdkafka retries.",
            client = self.client,
            %error,
            reason,
            suppressed
        );
    }
}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_refused_takes_none() {
        let errors = DeliveryErrors::new("test");
        assert_eq!(errors.failed(), 0);
        assert_eq!(errors.take(), None);
    }
}
