//! Asynchronous offset commits whose results come back. rust-rdkafka 0.39's
//! `Consumer::commit(.., CommitMode::Async)` calls librdkafka's
//! `rd_kafka_commit` without a reply queue, and librdkafka then reports
//! the result to nobody: `ConsumerContext::commit_callback` never runs
//! (fede1024/rust-rdkafka#856). A processor that learns of its commits
//! from that callback never saw one land: it counted none, committed the
//! same offsets again every interval, and on shutdown waited out its whole
//! drain bound for an answer. Here the commit names the consumer's own
//! queue as the reply queue (as the proposed upstream fix, #857, does), so
//! the result arrives as an offset-commit event that the consumer's next
//! `poll` hands to `commit_callback`.

use rdkafka::TopicPartitionList;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// Sends a commit of `offsets` for `consumer`'s group without waiting; its
/// result reaches `consumer`'s context through `commit_callback` on a
/// later `poll` of `consumer`. An error here means nothing was sent.
pub fn commit_async<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
) -> KafkaResult<()> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle of `consumer`, borrowed for this
    // call. `rd_kafka_queue_get_consumer` returns a new reference to the
    // consumer queue (or null without a group), released below once the
    // commit holds its own reference to the queue (librdkafka's reply
    // queue keeps one). librdkafka copies `offsets` before returning and
    // does not keep the pointer. With a reply queue given,
    // `rd_kafka_commit_queue` only enqueues the request and returns.
    let error = unsafe {
        let queue = rdsys::rd_kafka_queue_get_consumer(rk);
        if queue.is_null() {
            return Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownGroup));
        }
        let error =
            rdsys::rd_kafka_commit_queue(rk, offsets.ptr(), queue, None, std::ptr::null_mut());
        rdsys::rd_kafka_queue_destroy(queue);
        error
    };
    if error == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::ConsumerCommit(error.into()))
    }
}
