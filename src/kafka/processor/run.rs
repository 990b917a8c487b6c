//! [`Processor`]: builds a member (topics checked, clients, restore pool,
//! snapshot thread), runs its loop until shutdown, then stops it within
//! `--drain-timeout-ms` plus a few seconds whatever it was doing: the
//! shutdown drains until the drain deadline, and commits, snapshots and
//! closes with what is left of the bound, giving up on whatever the broker
//! does not answer in time (at least once, what is not committed is decided
//! again by the next owner).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use tracing::{error, info, warn};

use crate::kafka::config::{Guarantee, KafkaConfig};
use crate::kafka::processor::batch::RunSummary;
use crate::kafka::processor::commit::Handover;
use crate::kafka::processor::context::{GroupContext, GroupEvent};
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::feed::Feed;
use crate::kafka::processor::idle::IdleWatch;
use crate::kafka::processor::live::LiveState;
use crate::kafka::processor::member::{Ended, Member, Timers};
use crate::kafka::processor::partition::PartitionTable;
use crate::kafka::processor::restore::RestorePool;
use crate::kafka::processor::snapshots::Durable;
use crate::kafka::processor::transactions::{Transaction, init_transactions};
use crate::kafka::sink::DecisionSink;
use crate::kafka::topics::{self, TopicError};
use crate::ops::health::Health;
use crate::ops::telemetry::{self, Progress};
use coupon_stream_core::config::CoreConfig;

/// What the shutdown may take beyond `--drain-timeout-ms`: committing,
/// the handover snapshots and closing the consumer share it. The promise
/// is the drain timeout plus 5 s; this leaves a margin for process exit.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(4_000);

/// One consumer-group member: build it, hand its [`LiveState`] and
/// [`Progress`] to the adapters that read them, then [`Processor::run`].
pub struct Processor {
    config: KafkaConfig,
    core: CoreConfig,
    health: Arc<Health>,
    progress: Arc<Progress>,
    table: Arc<PartitionTable>,
}

impl Processor {
    pub fn new(config: KafkaConfig, core: CoreConfig, health: Arc<Health>) -> Processor {
        Processor {
            config,
            core,
            health,
            progress: Arc::new(Progress::default()),
            table: Arc::new(PartitionTable::default()),
        }
    }

    pub fn live_state(&self) -> LiveState {
        LiveState {
            table: Arc::clone(&self.table),
        }
    }

    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Runs until `shutdown` is set, then drains, commits, snapshots and
    /// leaves the group, within `--drain-timeout-ms` plus 5 s.
    pub fn run(self, shutdown: &AtomicBool) -> Result<RunSummary, ProcessorError> {
        let health = Arc::clone(&self.health);
        let finished = AtomicBool::new(false);
        std::thread::scope(|scope| {
            // Every wait in the processor watches `health.is_stopping()`:
            // this sets it the moment shutdown is asked for, even while the
            // loop is blocked in one of them.
            scope.spawn(|| {
                while !finished.load(Ordering::Acquire) {
                    if shutdown.load(Ordering::Relaxed) {
                        health.set_stopping();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            let result = self.members(shutdown);
            finished.store(true, Ordering::Release);
            result
        })
    }

    /// Runs one member after another: a member whose group client is stuck
    /// ends, and a new one (new clients) takes over, as a restarted process
    /// would, until shutdown or a failure.
    fn members(&self, shutdown: &AtomicBool) -> Result<RunSummary, ProcessorError> {
        let mut summary = RunSummary::default();
        loop {
            let Some(member) = self.start(shutdown)? else {
                return Ok(summary);
            };
            let (run, ended) = member.run(shutdown)?;
            summary.add(run);
            // A shutdown asked for while a member was being replaced ends
            // here, before a new member is started.
            if ended == Ended::Stopped || shutdown.load(Ordering::Relaxed) {
                info!(
                    message = "Processor stopped.",
                    messages = summary.messages,
                    invalid = summary.invalid
                );
                return Ok(summary);
            }
        }
    }

    /// Checks the topics and creates the clients; `None` when shutdown
    /// came first.
    fn start(&self, shutdown: &AtomicBool) -> Result<Option<Member>, ProcessorError> {
        let config = self.config.clone();
        let core = self.core;
        let health = Arc::clone(&self.health);
        let progress = Arc::clone(&self.progress);
        let table = Arc::clone(&self.table);
        let layout = match topics::prepare(&config, shutdown) {
            Ok(layout) => layout,
            Err(TopicError::Stopped) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        table.set_partition_count(layout.input_partitions);
        metrics::gauge!(telemetry::INPUT_PARTITIONS).set(f64::from(layout.input_partitions));
        let (acks_tx, acks) = mpsc::channel();
        let sink = DecisionSink::new(&config, acks_tx, Arc::clone(&health)).map_err(|source| {
            ProcessorError::Client {
                client: "producer",
                source,
            }
        })?;
        let sink = Arc::new(sink);
        if config.guarantee == Guarantee::ExactlyOnce {
            match init_transactions(&sink, &health) {
                Err(_) if health.is_stopping() => return Ok(None),
                other => other?,
            }
        }
        let durable = match config.snapshot_interval_ms {
            0 => None,
            _ => Some(Durable::start(&config)?),
        };
        let (events_tx, events) = mpsc::channel::<GroupEvent>();
        let epoch = Arc::new(AtomicU64::new(0));
        let context = GroupContext::new(
            config.input_topic.clone(),
            events_tx,
            Arc::clone(&epoch),
            Arc::clone(&health),
            Arc::clone(&table),
        );
        let consumer = subscribe(&config, context)?;
        let feed = Arc::new(Feed::new(&consumer, config.batch_messages_max));
        let restores =
            RestorePool::start(config.restore_threads, &config, core, Arc::clone(&consumer))?;
        log_started(&config, layout.input_partitions);
        let now = Instant::now();
        Ok(Some(Member {
            idle: IdleWatch::new(now, Duration::from_millis(config.session_timeout_ms)),
            feed,
            consumer,
            config,
            sink,
            table,
            events,
            acks,
            epoch,
            restores,
            restoring: HashMap::new(),
            durable,
            txn: Transaction::default(),
            failure: None,
            health,
            progress,
            summary: RunSummary::default(),
            timers: Timers::new(now),
            stop_by: None,
            replace: false,
        }))
    }
}

/// The group consumer, subscribed to the input topic.
fn subscribe(
    config: &KafkaConfig,
    context: GroupContext,
) -> Result<Arc<BaseConsumer<GroupContext>>, ProcessorError> {
    subscribed(config, &config.consumer_config(), context).map(Arc::new)
}

/// A consumer made from `client` with `context`, subscribed to `config`'s
/// input topic.
pub(crate) fn subscribed<C: ConsumerContext>(
    config: &KafkaConfig,
    client: &ClientConfig,
    context: C,
) -> Result<BaseConsumer<C>, ProcessorError> {
    let consumer: BaseConsumer<C> =
        client
            .create_with_context(context)
            .map_err(|source| ProcessorError::Client {
                client: "consumer",
                source,
            })?;
    consumer
        .subscribe(&[&config.input_topic])
        .map_err(|source| ProcessorError::Subscribe {
            topic: config.input_topic.clone(),
            source,
        })?;
    Ok(consumer)
}

fn log_started(config: &KafkaConfig, input_partitions: u32) {
    info!(
        message = "Processor started.",
        brokers = %config.brokers,
        group = %config.group_id,
        input = %config.input_topic,
        output = %config.output_topic,
        dlq = %config.dlq_topic,
        input_partitions,
        restore_threads = config.restore_threads,
        decision_threads = config.decision_threads
    );
}

impl Member {
    /// The loop, then the bounded shutdown: of the process, or of this
    /// member only when it is being replaced.
    fn run(mut self, shutdown: &AtomicBool) -> Result<(RunSummary, Ended), ProcessorError> {
        let result = self.consume(shutdown);
        if let Err(error) = &result {
            error!(message = "Stopping after a failure.", %error);
        }
        let replaced = matches!(result, Ok(Ended::Replaced));
        let asked = if replaced {
            Instant::now()
        } else {
            self.health.set_stopping();
            self.health.stop_requested_at().unwrap_or_else(Instant::now)
        };
        let drain_deadline = asked + Duration::from_millis(self.config.drain_timeout_ms);
        let deadline = drain_deadline + SHUTDOWN_SLACK;
        self.stop_by = Some(deadline);
        info!(
            message = if replaced {
                "Draining before the member is replaced."
            } else {
                "Draining before exit."
            },
            in_flight = self.sink.in_flight()
        );
        let mut handover = self.take_everything();
        self.drain(&mut handover, drain_deadline, true);
        self.consumer.context().set_closing();
        self.final_commit(&mut handover, deadline - Duration::from_millis(2_500));
        // The next owner of each partition restores from here.
        self.snapshot_handover(&mut handover, deadline - Duration::from_millis(1_000));
        let summary = self.summary;
        self.close(deadline);
        result.map(|ended| (summary, ended))
    }

    /// Every partition out of the table: restores cancelled, active ones
    /// handed over.
    fn take_everything(&mut self) -> Handover {
        for (p, restoring) in self.restoring.drain() {
            self.table.set_phase(p, None);
            restoring.cancel();
        }
        let owned: Vec<i32> = self.table.active().keys().copied().collect();
        let handover = owned
            .into_iter()
            .filter_map(|p| self.table.take_active(p).map(|a| (p, a.revoke())))
            .collect();
        self.publish_ownership();
        handover
    }

    /// The last commit: at least once, the acknowledged offsets, waiting
    /// for the broker's answer until `deadline`; exactly once, the open
    /// transaction (its retries give up, since the processor is stopping).
    fn final_commit(&mut self, handover: &mut Handover, deadline: Instant) {
        if self.config.guarantee == Guarantee::ExactlyOnce {
            let overall = self.stop_by.replace(deadline);
            self.commit_handover(handover);
            self.stop_by = overall;
            return;
        }
        let offsets: Vec<(i32, i64)> = handover
            .iter()
            .filter_map(|(p, r)| {
                let state = r.state();
                state
                    .committable()
                    .filter(|&o| o > state.committed)
                    .map(|o| (*p, o))
            })
            .collect();
        if offsets.is_empty() || !self.commit_offsets(&offsets, CommitMode::Async) {
            return;
        }
        while Instant::now() < deadline {
            let _ = self.consumer.poll(Duration::from_millis(20));
            while let Ok(event) = self.events.try_recv() {
                // An earlier periodic commit's answer may come first.
                if let GroupEvent::Committed(result) = event {
                    match result {
                        Ok(committed) => {
                            let done = covers(&committed, &offsets);
                            self.committed(Ok(committed));
                            if done {
                                return;
                            }
                        }
                        Err(error) => {
                            warn!(message = "The final commit failed; the next owner decides those inputs again.", %error);
                            return;
                        }
                    }
                }
            }
        }
        warn!(
            message = "The final commit got no answer in time; the next owner decides those inputs again."
        );
    }

    /// Closes the restore and snapshot threads, the consumer (which leaves
    /// the group) and the producer, until `deadline`.
    fn close(self, deadline: Instant) {
        let Member {
            feed,
            consumer,
            sink,
            restores,
            durable,
            ..
        } = self;
        restores.close(deadline - Duration::from_millis(500));
        if let Some(durable) = durable {
            durable.close(deadline - Duration::from_millis(500));
        }
        // Dropping the consumer leaves the group and waits for librdkafka to
        // close it, and dropping a transactional producer waits for its
        // coordinator: without bound while the broker is away. On a thread,
        // waited for until the deadline, then left to the process exit.
        let Ok(closer) = std::thread::Builder::new()
            .name("kafka-close".into())
            .spawn(move || {
                // The feed's queue goes before its consumer.
                drop(feed);
                drop(consumer);
                drop(sink);
            })
        else {
            return;
        };
        while !closer.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !closer.is_finished() {
            warn!(
                message =
                    "The Kafka clients did not close in time; exiting without waiting for them."
            );
        }
    }
}

/// Whether a commit's answer (`committed`) holds every offset in `wanted`,
/// or a later one.
fn covers(committed: &[(i32, i64)], wanted: &[(i32, i64)]) -> bool {
    wanted.iter().all(|&(partition, offset)| {
        committed
            .iter()
            .any(|&(p, o)| p == partition && o >= offset)
    })
}

/// Runs a processor with no HTTP adapter reading its state or health.
pub fn run(
    config: KafkaConfig,
    core: CoreConfig,
    shutdown: &AtomicBool,
) -> Result<RunSummary, ProcessorError> {
    Processor::new(config, core, Arc::new(Health::default())).run(shutdown)
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_commit_answer_covers_the_offsets_it_holds_or_passed() {
        let wanted = [(0, 10), (2, 7)];
        assert!(covers(&[(0, 10), (1, 3), (2, 7)], &wanted));
        assert!(covers(&[(2, 9), (0, 11)], &wanted));
        // An earlier commit's answer: one partition behind, or missing.
        assert!(!covers(&[(0, 9), (2, 7)], &wanted));
        assert!(!covers(&[(0, 10)], &wanted));
        assert!(covers(&[], &[]));
    }
}
