//! [`Feed`]: the queue the input partitions' messages arrive on, read a
//! batch at a time, and [`Fetched`], one message read from it.
//!
//! rdkafka's `BaseConsumer::poll` returns one message per call. Each call
//! reads the clock three times (rdkafka's own timeout, and librdkafka's
//! `max.poll.interval.ms` bookkeeping as the poll starts and ends) and
//! allocates an `Arc` for the message's event: profiled at saturation, the
//! clock reads alone were 5% of the deciding thread (docs/PERFORMANCE.md).
//! A batch read reads the clock once or twice per batch (it still takes
//! the queue's lock per message). librdkafka's
//! `rd_kafka_consume_batch_queue` returns a batch per call, but it serves
//! any rebalance it meets itself (an unassign, as if there were no
//! callback), so it cannot read the consumer's queue, which carries the
//! group's events too.
//!
//! So the rebalance callback forwards each assigned input partition's
//! fetch queue to the feed's own queue ([`FeedLink::split`]) before it
//! assigns the partition, and only messages arrive there. librdkafka keeps
//! a forwarding the application set when it starts or restarts a fetch
//! (`RD_KAFKA_Q_F_FWD_APP`), so the split lasts for the consumer's life.
//! The consumer's queue keeps the events (rebalances, commits, errors),
//! served by `poll` without a wait before the feed is read; the member waits
//! on the feed in short slices, serving the consumer's queue between them.
//! (A wake-up callback on the consumer's queue that yields the feed was
//! tried instead: it fired once per consumer and never again, and with the
//! feed waited on 100 ms at a time the first message after an assignment
//! came 1.04 s after the partition was active instead of 0.55 s.)
//!
//! Order: a partition split before its assignment has every message on
//! the feed, in offset order; one that could not be split (librdkafka had
//! no partition object to give) has every message on the consumer's queue,
//! where `poll` returns it as before. No partition mixes the two.
//!
//! Lifetimes, librdkafka's rules for application queues and messages: the
//! feed holds its consumer, and destroys its queue (after detaching the
//! link) before it lets the consumer go; a [`Fetched`] borrows its feed
//! and is destroyed before the feed is.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{IsError, KafkaError, RDKafkaErrorCode};
use tracing::warn;

use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::processor::context::GroupContext;

/// A pointer to a librdkafka queue, shared between threads.
#[derive(Clone, Copy)]
struct QueuePtr(NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: librdkafka's queues are thread-safe (every call on a queue takes
// its lock); the pointer is only passed to librdkafka.
unsafe impl Send for QueuePtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for QueuePtr {}

/// Room for the message pointers one read returns; empty between reads.
struct ReadRoom(Vec<*mut rdsys::rd_kafka_message_t>);

// SAFETY: the pointers are only held during a read, under the feed's lock,
// and are handed out as [`Fetched`] (which only the reading thread holds).
unsafe impl Send for ReadRoom {}

/// The rebalance callback's way to the feed: empty until the feed exists
/// and again once it is gone, so a split never names a destroyed queue.
#[derive(Default)]
pub(super) struct FeedLink(Mutex<Option<QueuePtr>>);

impl FeedLink {
    /// Forwards the fetch queues of `topic`'s `partitions` to the feed, if
    /// there is one. Called before the partitions are assigned, so nothing
    /// of theirs has been fetched to the consumer's queue yet. Returns the
    /// partitions that stay on the consumer's queue.
    pub(super) fn split<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partitions: &[i32],
    ) -> Vec<i32> {
        let link = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(feed), Ok(name)) = (*link, CString::new(topic)) else {
            return partitions.to_vec();
        };
        let client = consumer.client().native_ptr();
        let mut unsplit = Vec::new();
        for &partition in partitions {
            // SAFETY: `client` is the consumer's live client and `name` a
            // valid C string for the call; librdkafka makes the partition's
            // object if it has none yet. The feed's queue is alive while the
            // link holds it (the lock is held), and the partition's handle
            // is destroyed after use (the forwarding stays on the queue).
            let forwarded = unsafe {
                let queue = rdsys::rd_kafka_queue_get_partition(client, name.as_ptr(), partition);
                if queue.is_null() {
                    false
                } else {
                    rdsys::rd_kafka_queue_forward(queue, feed.0.as_ptr());
                    rdsys::rd_kafka_queue_destroy(queue);
                    true
                }
            };
            if !forwarded {
                unsplit.push(partition);
            }
        }
        unsplit
    }

    fn set(&self, feed: Option<QueuePtr>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = feed;
    }
}

/// The feed of one consumer (see the module documentation).
pub(super) struct Feed {
    queue: QueuePtr,
    /// A handle of the consumer's queue, to tell whether it holds events;
    /// `None` if librdkafka gave none.
    consumer_queue: Option<QueuePtr>,
    /// Room for the pointers one read returns (locked by the one reader,
    /// once per batch).
    read: Mutex<ReadRoom>,
    consumer: Arc<BaseConsumer<GroupContext>>,
    /// Error messages read (a broker away), logged at most once per
    /// interval.
    errors_logged: ErrorLogLimit,
}

impl Feed {
    /// A feed for `consumer`, linked to its rebalance callback. Made before
    /// the consumer is first polled, so every partition it is assigned is
    /// split.
    pub(super) fn new(consumer: &Arc<BaseConsumer<GroupContext>>, batch_max: usize) -> Feed {
        let client = consumer.client().native_ptr();
        // SAFETY: `client` is the consumer's live client. An application
        // queue is never null (librdkafka allocates it or aborts).
        let queue = QueuePtr(
            NonNull::new(unsafe { rdsys::rd_kafka_queue_new(client) })
                .expect("librdkafka allocates queues or aborts"),
        );
        // SAFETY: as above; null when the client has no group.
        let consumer_queue =
            NonNull::new(unsafe { rdsys::rd_kafka_queue_get_consumer(client) }).map(QueuePtr);
        consumer.context().feed().set(Some(queue));
        Feed {
            queue,
            consumer_queue,
            read: Mutex::new(ReadRoom(Vec::with_capacity(batch_max.max(1)))),
            consumer: Arc::clone(consumer),
            errors_logged: ErrorLogLimit::new(),
        }
    }

    /// Reads up to `max` messages, in order, and hands each to `each`.
    /// When the feed is empty, waits up to `wait` (at least a millisecond)
    /// for the first one; never waits for the rest. Messages librdkafka
    /// marks as errors are logged and destroyed.
    pub(super) fn read<'f>(
        &'f self,
        wait: Duration,
        max: usize,
        mut each: impl FnMut(Fetched<'f>),
    ) {
        let mut room = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        let read = &mut room.0;
        read.clear();
        self.read_more(read, 0, max);
        if read.is_empty() && !wait.is_zero() {
            // Wait for one message only: a batch read with a wait would
            // wait on for the whole batch.
            let wait_ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
            self.read_more(read, wait_ms, 1);
            if !read.is_empty() {
                self.read_more(read, 0, max);
            }
        }
        for message in read.drain(..) {
            let Some(message) = NonNull::new(message) else {
                continue;
            };
            let fetched = Fetched {
                message,
                _feed: PhantomData,
            };
            // SAFETY: a message librdkafka returned, not yet destroyed.
            let err = unsafe { message.as_ref().err };
            if err.is_error() {
                let error = KafkaError::MessageConsumption(RDKafkaErrorCode::from(err));
                if let Some(suppressed) = self.errors_logged.admit(Instant::now()) {
                    warn!(message = "Consumer error; librdkafka retries.", %error, partition = fetched.partition(), suppressed);
                }
                continue;
            }
            each(fetched);
        }
    }

    /// Whether the consumer's queue holds events (or messages) not yet
    /// served: `BaseConsumer::poll` without a wait serves one event per
    /// call and then reports nothing, whether or not more are queued.
    pub(super) fn events_pending(&self) -> bool {
        // SAFETY: the handle is alive (owned by `self`).
        self.consumer_queue
            .is_some_and(|q| unsafe { rdsys::rd_kafka_queue_length(q.0.as_ptr()) } > 0)
    }

    /// One `rd_kafka_consume_batch_queue` appending to `read` until it
    /// holds `upto` messages (at most its capacity).
    fn read_more(
        &self,
        read: &mut Vec<*mut rdsys::rd_kafka_message_t>,
        timeout_ms: i32,
        upto: usize,
    ) {
        let held = read.len();
        let room = upto.min(read.capacity()).saturating_sub(held);
        if room == 0 {
            return;
        }
        // SAFETY: the queue is alive (owned by `self`), and `read` has room
        // for `room` more pointers past `held`, of which librdkafka writes
        // the first `n` (a negative `n` is an error: none written).
        unsafe {
            let n = rdsys::rd_kafka_consume_batch_queue(
                self.queue.0.as_ptr(),
                timeout_ms,
                read.as_mut_ptr().add(held),
                room,
            );
            let n = usize::try_from(n).unwrap_or(0).min(room);
            read.set_len(held + n);
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.consumer.context().feed().set(None);
        // SAFETY: both handles are alive and destroyed once, here, while
        // `self.consumer` still holds the client.
        unsafe {
            if let Some(events) = self.consumer_queue {
                rdsys::rd_kafka_queue_destroy(events.0.as_ptr());
            }
            rdsys::rd_kafka_queue_destroy(self.queue.0.as_ptr());
        }
    }
}

/// One message read from a [`Feed`], destroyed when dropped.
pub(super) struct Fetched<'f> {
    message: NonNull<rdsys::rd_kafka_message_t>,
    _feed: PhantomData<&'f Feed>,
}

impl Fetched<'_> {
    fn raw(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: alive until `drop`.
        unsafe { self.message.as_ref() }
    }

    pub(super) fn partition(&self) -> i32 {
        self.raw().partition
    }

    pub(super) fn offset(&self) -> i64 {
        self.raw().offset
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: librdkafka's payload is `len` bytes, alive with the
        // message.
        (!m.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) })
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: as for the payload.
        (!m.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.key.cast::<u8>(), m.key_len) })
    }

    /// The Kafka timestamp (ms), if the record has one (as rdkafka reads
    /// it: -1 is none).
    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message and a place for the type.
        let ms = unsafe { rdsys::rd_kafka_message_timestamp(self.message.as_ptr(), &mut kind) };
        (kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ms != -1)
            .then_some(ms)
    }
}

impl Drop for Fetched<'_> {
    fn drop(&mut self) {
        // SAFETY: destroyed once, here.
        unsafe { rdsys::rd_kafka_message_destroy(self.message.as_ptr()) }
    }
}
