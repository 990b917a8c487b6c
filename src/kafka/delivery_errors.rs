//! [`DeliveryErrors`]: a producer context that counts the records the
//! broker refused and keeps the first refusal's message, for producers
//! that check their deliveries in bulk after a flush (`loadgen`, the
//! snapshot store).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

#[derive(Debug, Default)]
pub struct DeliveryErrors {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl DeliveryErrors {
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

impl ClientContext for DeliveryErrors {}

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
        assert_eq!(DeliveryErrors::default().take(), None);
    }
}
