//! [`send_waiting`]: enqueue a record, waiting while librdkafka's queue is
//! full (the broker is slow or away): backpressure, never a dropped record.
//! Every producer of the crate enqueues through it or through
//! [`produce_waiting_until`], its form for a [`TopicHandle`];
//! [`send_waiting_until`] gives up when told to (shutdown, a deadline), so a
//! full queue during a broker outage never holds a shutdown.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use tracing::warn;

use crate::kafka::topic_handle::TopicHandle;

/// Pause between two tries on a full queue.
const RETRY_PAUSE: Duration = Duration::from_millis(2);
/// A warning every this long of waiting.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Enqueues `record`, retrying for as long as the queue is full; returns
/// any other error at once.
pub fn send_waiting<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), KafkaError> {
    send_waiting_until(producer, record, &|| false)
}

/// [`send_waiting`], giving up with the queue-full error once `stop` says
/// so.
// The closure's error is rdkafka's own `send` result: the record comes back
// with the error, as large as it is.
#[allow(clippy::result_large_err)]
pub fn send_waiting_until<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
    stop: &dyn Fn() -> bool,
) -> Result<(), KafkaError> {
    retry_while_full(record, stop, |record| producer.send(record))
}

/// Enqueues a record through `topic` ([`TopicHandle::produce`]), retrying
/// for as long as the queue is full and giving up with the queue-full error
/// once `stop` says so; returns any other error at once.
pub fn produce_waiting_until(
    topic: &TopicHandle,
    payload: &[u8],
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    opaque: usize,
    stop: &dyn Fn() -> bool,
) -> Result<(), KafkaError> {
    retry_while_full((), stop, |()| {
        topic
            .produce(payload, key, timestamp, opaque)
            .map_err(|code| (KafkaError::MessageProduction(code), ()))
    })
}

/// Offers `item` to `try_send` until it is taken, retrying for as long as
/// `try_send` hands it back with a full queue and giving up with that error
/// once `stop` says so; any other error is returned at once.
fn retry_while_full<T>(
    mut item: T,
    stop: &dyn Fn() -> bool,
    mut try_send: impl FnMut(T) -> Result<(), (KafkaError, T)>,
) -> Result<(), KafkaError> {
    let mut waited = Duration::ZERO;
    let mut next_warning = WARN_EVERY;
    loop {
        match try_send(item) {
            Ok(()) => return Ok(()),
            Err((error @ KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if stop() {
                    return Err(error);
                }
                item = back;
                if waited >= next_warning {
                    warn!(
                        message = "Producer queue full; waiting for the broker.",
                        waited_ms = waited.as_millis() as u64
                    );
                    next_warning += WARN_EVERY;
                }
                std::thread::sleep(RETRY_PAUSE);
                waited += RETRY_PAUSE;
            }
            Err((error, _)) => return Err(error),
        }
    }
}
