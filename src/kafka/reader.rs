//! [`PartitionReader`]: reads an offset range of one partition, for
//! restores (a snapshot from the state topic, then the input between the
//! snapshot and the committed offset). One reader, one librdkafka client
//! that never joins a group, serves many partitions one after another: no
//! client is created or closed per partition. It asks for the partition's
//! watermarks before assigning an explicit offset, so librdkafka knows the
//! leader and never looks the offset up (which, for a partition whose
//! leader is not known yet, arms a fixed 500 ms timer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use thiserror::Error;

use crate::kafka::config::FETCH_QUEUE_BACKOFF_MS;
use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::sink::{log_librdkafka, log_librdkafka_counted};

/// Longest single broker call; longer waits are retried in slices so a
/// cancel is seen.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("reading {topic} partition {partition}: {error}")]
    Read {
        topic: String,
        partition: i32,
        error: KafkaError,
    },
    #[error("reading {topic} partition {partition} did not finish by its deadline")]
    Timeout { topic: String, partition: i32 },
    #[error("reading {topic} partition {partition} was cancelled")]
    Cancelled { topic: String, partition: i32 },
}

/// The context of every reader: end-of-partition is how a read knows it
/// is done, not an error worth a log line; statistics go to DEBUG.
pub struct ReaderContext {
    /// Client errors are logged at most once per interval.
    logged: ErrorLogLimit,
    /// librdkafka's own lines of warning level or worse, shared by the
    /// readers of one restore pool. An idle reader's lines wait in its
    /// queue until it is polled again: after an outage, the readers' queued
    /// connection failures (`fac="FAIL"`) came out together at shutdown,
    /// 24 ERROR lines at once. Lines left out are logged at DEBUG.
    lines: Arc<ErrorLogLimit>,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) > RDKafkaLogLevel::Warning as i32 {
            log_librdkafka("reader", level, fac, message);
            return;
        }
        match self.lines.admit(Instant::now()) {
            Some(suppressed) => {
                log_librdkafka_counted("reader", level, fac, message, Some(suppressed));
            }
            None => log_librdkafka("reader", RDKafkaLogLevel::Debug, fac, message),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if end_of_partition {
            return;
        }
        if let Some(suppressed) = self.logged.admit(Instant::now()) {
            tracing::warn!(message = "Reader error; librdkafka retries.", %error, reason, suppressed);
        }
    }

    fn stats(&self, statistics: Statistics) {
        tracing::debug!(message = "Reader statistics.", name = %statistics.name);
    }
}

impl ConsumerContext for ReaderContext {}

/// Which offsets to read: `from` (the partition's start when `None`) up to
/// but excluding `until` (its end as of the start of the read when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

/// What a read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    /// The first offset asked for.
    pub start: i64,
    /// One past the last offset asked for.
    pub end: i64,
    /// Records handed to the visitor.
    pub records: u64,
}

pub struct PartitionReader {
    consumer: BaseConsumer<ReaderContext>,
}

impl PartitionReader {
    /// A reader with the cluster's connection settings (`properties`, the
    /// users' `-X`, minus group membership), under group name `group`,
    /// which it never joins. It reads `read_committed`, as the processor's
    /// consumer does. `lines` limits librdkafka's warnings and errors,
    /// shared with the other readers of a pool (see [`ReaderContext`]).
    pub fn new(
        brokers: &str,
        group: &str,
        properties: &[(String, String)],
        lines: Arc<ErrorLogLimit>,
    ) -> Result<PartitionReader, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            // librdkafka assigns partitions only in a group's name; this
            // client never joins it and never commits.
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            // An offset that is gone (retention) fails the read instead of
            // silently starting elsewhere: a restore must be exact.
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", "10")
            .set("queued.max.messages.kbytes", "262144")
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        for (k, v) in properties {
            if !k.starts_with("group.") && k != "statistics.interval.ms" {
                config.set(k, v);
            }
        }
        Ok(PartitionReader {
            consumer: config.create_with_context(ReaderContext {
                logged: ErrorLogLimit::new(),
                lines,
            })?,
        })
    }

    /// Reads `range` of `topic`/`partition` in offset order, handing each
    /// record to `visit`, until the range is read, `deadline` passes or
    /// `stop` says so. Transient broker errors are retried meanwhile.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        range: Range,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
        mut visit: impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<ReadSummary, ReadError> {
        let call = Call {
            topic,
            partition,
            deadline,
            stop,
        };
        let (low, high) = call.retry(|timeout| {
            self.consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(Some)
        })?;
        let start = range.from.map_or(low, |f| f.max(low));
        let end = range.until.unwrap_or(high);
        let mut summary = ReadSummary {
            start,
            end,
            records: 0,
        };
        if start >= end {
            return Ok(summary);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| call.error(e))?;
        self.consumer.assign(&tpl).map_err(|e| call.error(e))?;
        let read = self.read_assigned(&call, end, &mut summary, &mut visit);
        // The next read assigns afresh; nothing is fetched meanwhile.
        let _ = self.consumer.unassign();
        read.map(|()| summary)
    }

    fn read_assigned(
        &self,
        call: &Call<'_>,
        end: i64,
        summary: &mut ReadSummary,
        visit: &mut impl FnMut(&BorrowedMessage<'_>),
    ) -> Result<(), ReadError> {
        loop {
            call.check()?;
            let message = match self.consumer.poll(POLL) {
                None => continue,
                // The end of what the broker has, as of one fetch: done
                // only once the position has reached `end` (Tansu 0.6 was
                // seen to report an end before the last batch is visible).
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    if self.position(call) >= Some(end) {
                        return Ok(());
                    }
                    continue;
                }
                Some(Err(error)) if is_transient(&error) => continue,
                Some(Err(error)) => return Err(call.error(error)),
                Some(Ok(m)) => m,
            };
            let offset = message.offset();
            if offset >= end {
                return Ok(());
            }
            visit(&message);
            summary.records += 1;
            if offset + 1 >= end {
                return Ok(());
            }
        }
    }

    fn position(&self, call: &Call<'_>) -> Option<i64> {
        let positions = self.consumer.position().ok()?;
        match positions
            .find_partition(call.topic, call.partition)?
            .offset()
        {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }
}

/// One read's bounds, for retries and errors.
struct Call<'a> {
    topic: &'a str,
    partition: i32,
    deadline: Instant,
    stop: &'a dyn Fn() -> bool,
}

impl Call<'_> {
    fn error(&self, source: KafkaError) -> ReadError {
        ReadError::Read {
            topic: self.topic.to_owned(),
            partition: self.partition,
            error: source,
        }
    }

    fn check(&self) -> Result<(), ReadError> {
        if (self.stop)() {
            return Err(ReadError::Cancelled {
                topic: self.topic.to_owned(),
                partition: self.partition,
            });
        }
        if Instant::now() >= self.deadline {
            return Err(ReadError::Timeout {
                topic: self.topic.to_owned(),
                partition: self.partition,
            });
        }
        Ok(())
    }

    /// Calls `f` with a timeout slice until it succeeds, fails for good
    /// (`Err(Some(_))` that is not transient), or the read's bounds end.
    fn retry<T>(
        &self,
        mut f: impl FnMut(Duration) -> Result<T, Option<KafkaError>>,
    ) -> Result<T, ReadError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            self.check()?;
            let slice = CALL_TIMEOUT.min(self.deadline.saturating_duration_since(Instant::now()));
            match f(slice) {
                Ok(value) => return Ok(value),
                Err(Some(error)) if !is_transient(&error) => return Err(self.error(error)),
                Err(_) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Errors librdkafka recovers from by itself once the broker is back.
pub fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::WaitingForCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
        )
    )
}
