//! [`ProcessorError`]: why a processor run stopped.

use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::kafka::reader::ReadError;
use crate::kafka::state_store::StoreError;
use crate::kafka::topics::TopicError;
use coupon_stream_core::snapshot::SnapshotError;

#[derive(Debug, Error)]
pub enum ProcessorError {
    #[error("creating the Kafka {client}: {source}")]
    Client {
        client: &'static str,
        source: KafkaError,
    },
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error("subscribing to {topic}: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error("enqueueing a record: {0}")]
    Produce(#[source] KafkaError),
    #[error("the broker refused the record for input {partition}/{offset}: {error}")]
    Delivery {
        partition: i32,
        offset: i64,
        error: String,
    },
    #[error("input partition {0} or offset {1} is beyond the processor's limits")]
    OutOfRange(i32, i64),
    #[error("a partition worker panicked")]
    WorkerPanicked,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the snapshot of partition {partition} cannot be used: {source}")]
    Snapshot {
        partition: i32,
        source: SnapshotError,
    },
    #[error("the transactional producer cannot go on: {0}")]
    Transaction(#[source] KafkaError),
    #[error("seeking input partition {partition} back to its committed offset: {error}")]
    Seek { partition: i32, error: KafkaError },
}
