//! [`GroupContext`]: the consumer's callbacks. They only report: a
//! rebalance is recorded as a [`GroupEvent`] on a channel the loop drains,
//! newly assigned partitions are split onto the [feed](super::feed) and
//! paused until their state is restored, and revoked ones stay assigned
//! until the loop has handed them over (drain, commit, snapshot) and
//! releases them itself. librdkafka keeps heartbeating meanwhile, and
//! neither the HTTP endpoint nor anything else waits on a callback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::kafka::error_log::ErrorLogLimit;
use crate::kafka::processor::feed::FeedLink;
use crate::kafka::processor::partition::PartitionTable;
use crate::kafka::sink::log_librdkafka;
use crate::ops::health::Health;
use crate::ops::telemetry;

/// What a callback saw, for the loop to act on in order.
#[derive(Debug)]
pub(super) enum GroupEvent {
    /// Partitions added to this member's assignment, already paused.
    /// `epoch` orders the event against polled messages.
    Assigned { partitions: Vec<i32>, epoch: u64 },
    /// Partitions taken away. Unless `released`, they stay assigned until
    /// the loop hands them over and calls [`release`]. `lost`: the group
    /// moved on without this member (session expired), so nothing may be
    /// committed for them.
    Revoked {
        partitions: Vec<i32>,
        tpl: TopicPartitionList,
        lost: bool,
        released: bool,
    },
    /// An offset commit finished: the offsets it carried, or why it failed.
    Committed(KafkaResult<Vec<(i32, i64)>>),
    /// librdkafka reported a rebalance failure.
    Failed(KafkaError),
}

pub(super) struct GroupContext {
    input_topic: String,
    events: Sender<GroupEvent>,
    /// Counts rebalance events; a polled message carries the value it had,
    /// so the loop can tell messages of an earlier assignment.
    epoch: Arc<AtomicU64>,
    /// Set once the processor hands everything over and closes: a revoke
    /// then releases at once, since the loop no longer serves events.
    closing: AtomicBool,
    health: Arc<Health>,
    table: Arc<PartitionTable>,
    /// Where assigned partitions' messages are sent (the [feed](super::feed)).
    feed: FeedLink,
    /// Client errors are logged at most once per interval.
    logged: ErrorLogLimit,
}

impl GroupContext {
    pub(super) fn new(
        input_topic: String,
        events: Sender<GroupEvent>,
        epoch: Arc<AtomicU64>,
        health: Arc<Health>,
        table: Arc<PartitionTable>,
    ) -> GroupContext {
        GroupContext {
            input_topic,
            events,
            epoch,
            closing: AtomicBool::new(false),
            health,
            table,
            feed: FeedLink::default(),
            logged: ErrorLogLimit::new(),
        }
    }

    pub(super) fn feed(&self) -> &FeedLink {
        &self.feed
    }

    /// From now on revokes release their partitions in the callback.
    pub(super) fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.input_topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    fn report(&self, event: GroupEvent) {
        // The receiver is gone only after the loop ended.
        let _ = self.events.send(event);
    }

    fn assigned(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = self.partitions(tpl);
        // Before the assignment starts their fetch: every message of theirs
        // then arrives on the feed.
        let unsplit = self.feed.split(consumer, &self.input_topic, &partitions);
        if !unsplit.is_empty() {
            warn!(
                message = "Partitions not split onto the feed; read one message at a time.",
                ?unsplit
            );
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(error) = result {
            warn!(message = "Cannot take the assigned partitions.", %error);
        }
        // Paused until restored: nothing is fetched for them meanwhile, and
        // the loop resumes each one when its state is ready.
        if let Err(error) = consumer.pause(tpl) {
            warn!(message = "Cannot pause newly assigned partitions.", %error, ?partitions);
        }
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.report(GroupEvent::Assigned { partitions, epoch });
    }

    fn revoked(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let partitions = self.partitions(tpl);
        let lost = consumer.assignment_lost();
        // Nothing to hand over, or nobody left to do it: release now.
        let released = partitions.is_empty() || self.closing.load(Ordering::Acquire);
        if released {
            release(consumer, tpl);
        }
        self.report(GroupEvent::Revoked {
            partitions,
            tpl: tpl.clone(),
            lost,
            released,
        });
    }
}

/// Lets librdkafka give revoked partitions to their next owner: the end of
/// a handover.
pub(super) fn release<C: ConsumerContext>(consumer: &BaseConsumer<C>, tpl: &TopicPartitionList) {
    let result = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
        _ => consumer.unassign(),
    };
    if let Err(error) = result {
        warn!(message = "Cannot release revoked partitions.", %error);
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka("consumer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        metrics::counter!(telemetry::BROKER_ERRORS).increment(1);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_brokers_down(true);
        }
        if let Some(suppressed) = self.logged.admit(Instant::now()) {
            warn!(message = "Consumer error; librdkafka retries.", %error, reason, suppressed);
        }
    }

    /// Consumer lag per owned partition and broker reachability; the
    /// statistics themselves are logged at DEBUG only.
    fn stats(&self, statistics: Statistics) {
        debug!(message = "Consumer statistics.", name = %statistics.name, age_us = statistics.age);
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.health.set_brokers_down(false);
        }
        let Some(topic) = statistics.topics.get(&self.input_topic) else {
            return;
        };
        let owned = self.table.owned();
        for (&partition, p) in &topic.partitions {
            // -1: librdkafka does not know yet; partitions not owned are
            // reported as 0 rather than left stale.
            let lag = if owned.contains(&partition) {
                p.consumer_lag.max(0)
            } else {
                0
            };
            if partition >= 0 {
                metrics::gauge!(telemetry::CONSUMER_LAG, "partition" => partition.to_string())
                    .set(lag as f64);
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assigned(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoked(consumer, tpl),
            other => {
                // librdkafka wants the assignment dropped on an error.
                let code: RDKafkaErrorCode = other.into();
                release(consumer, tpl);
                self.report(GroupEvent::Failed(KafkaError::Rebalance(code)));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let committed = result.map(|()| {
            offsets
                .elements_for_topic(&self.input_topic)
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) if e.error().is_ok() => Some((e.partition(), o)),
                    _ => None,
                })
                .collect()
        });
        self.report(GroupEvent::Committed(committed));
    }
}
