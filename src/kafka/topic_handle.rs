//! [`TopicHandle`]: a producer's librdkafka handle of one topic, made once,
//! and the enqueueing of a record through it.
//!
//! rdkafka's `send` names the topic of every record, and librdkafka's
//! `rd_kafka_producev` then looks the name up under the client's write
//! lock, a lock the client's broker threads take too: per record one
//! write lock, one topic reference and one C string. Profiled on the
//! processor at saturation, `rd_kafka_topic_new0` waiting for that lock
//! was an eighth of the decision thread's context switches
//! (docs/PERFORMANCE.md). With a handle, records are enqueued with
//! `RD_KAFKA_VTYPE_RKT`: the same call without the lookup. The handle takes
//! the producer's default topic configuration, as the lookup by name
//! does.
//!
//! The handle must be released before its producer's client is destroyed
//! (librdkafka's rule for application topic handles): an owner keeps the
//! handle in a field declared before the producer's, so it drops first.

use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr::{self, NonNull};

use rdkafka::bindings as rdsys;
use rdkafka::error::{IsError, KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;

/// librdkafka's "any partition": the producer's partitioner chooses.
const PARTITION_UNASSIGNED: i32 = -1;

pub struct TopicHandle {
    topic: NonNull<rdsys::rd_kafka_topic_t>,
    /// The client the handle belongs to, for enqueueing.
    client: NonNull<rdsys::rd_kafka_t>,
}

// SAFETY: librdkafka's client and topic handles are thread-safe (its
// documentation: every API call may be made from any thread); the handle
// owns one reference to the topic, released once in `Drop`.
unsafe impl Send for TopicHandle {}
// SAFETY: as for `Send`: `produce` only passes the pointers to librdkafka.
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A handle of `topic` for `producer`. The caller keeps it no longer
    /// than `producer` (see the module documentation).
    pub fn new<C: ProducerContext>(
        producer: &ThreadedProducer<C>,
        topic: &str,
    ) -> Result<TopicHandle, KafkaError> {
        let name = CString::new(topic)?;
        let client = NonNull::new(producer.client().native_ptr()).ok_or(
            KafkaError::ClientCreation("producer without a client".to_owned()),
        )?;
        // SAFETY: `client` is the producer's live client and `name` a valid
        // C string for the call's duration; a null configuration takes the
        // client's default topic configuration.
        let handle =
            unsafe { rdsys::rd_kafka_topic_new(client.as_ptr(), name.as_ptr(), ptr::null_mut()) };
        match NonNull::new(handle) {
            Some(topic) => Ok(TopicHandle { topic, client }),
            None => {
                // SAFETY: reads the calling thread's last librdkafka error.
                let code: RDKafkaErrorCode = unsafe { rdsys::rd_kafka_last_error() }.into();
                Err(KafkaError::ClientCreation(format!(
                    "no handle for topic {topic:?}: {code}"
                )))
            }
        }
    }

    /// Enqueues a record with `payload`, `key` and `timestamp` (ms; `None`:
    /// librdkafka's enqueue time) on the partition the producer's
    /// partitioner picks; librdkafka copies the bytes before returning.
    /// `opaque` comes back in the delivery report, as rdkafka's
    /// `IntoOpaque` for `usize` carries it.
    pub fn produce(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
        timestamp: Option<i64>,
        opaque: usize,
    ) -> Result<(), RDKafkaErrorCode> {
        let (key_ptr, key_len) = match key {
            Some(key) => (key.as_ptr() as *mut c_void, key.len()),
            None => (ptr::null_mut(), 0),
        };
        use rdsys::rd_kafka_vtype_t::*;
        // SAFETY: the client and topic pointers are live while `self` is
        // (module documentation); the arguments are the (type, value)
        // pairs rdkafka's own `send` passes, with the topic handle in place
        // of the name; `RD_KAFKA_MSG_F_COPY` makes librdkafka copy payload
        // and key before returning, so the borrows need not outlive the
        // call; `opaque` is an integer carried as a pointer, never
        // dereferenced.
        let error: RDKafkaRespErr = unsafe {
            rdsys::rd_kafka_producev(
                self.client.as_ptr(),
                RD_KAFKA_VTYPE_RKT,
                self.topic.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                PARTITION_UNASSIGNED,
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                payload.as_ptr() as *mut c_void,
                payload.len(),
                RD_KAFKA_VTYPE_KEY,
                key_ptr,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                opaque as *mut c_void,
                RD_KAFKA_VTYPE_TIMESTAMP,
                timestamp.unwrap_or(0),
                RD_KAFKA_VTYPE_END,
            )
        };
        if error.is_error() {
            Err(error.into())
        } else {
            Ok(())
        }
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: releases the one reference `new` took; records enqueued
        // through it hold references of their own.
        unsafe { rdsys::rd_kafka_topic_destroy(self.topic.as_ptr()) };
    }
}
