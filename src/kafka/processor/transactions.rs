//! Exactly once: the transaction's life cycle. Each commit interval's
//! decisions, dead letters and input offsets are committed atomically; a
//! failed transaction is aborted and every active partition is rewound
//! (restored again at its committed offset, off the loop, like a new
//! assignment). Retries stop on shutdown.
//!
//! Each transactional call runs on its own short-lived thread that the loop
//! waits for: librdkafka's transactional calls can block past their timeout
//! while the coordinator is away (`send_offsets_to_transaction` was seen
//! to), and cannot be cancelled, so once the processor is stopping the loop
//! stops waiting and leaves the call to finish on its own.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use crate::kafka::processor::commit::Handover;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Member;
use crate::kafka::processor::partition::Phase;
use crate::kafka::sink::DecisionSink;
use crate::ops::health::Health;
use crate::ops::telemetry;

/// Longest wait of one transactional call; retriable failures are retried.
pub(super) const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Exactly once: where the transaction stands.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    /// A transaction is open.
    pub(super) open: bool,
    /// The last transaction was aborted: every active partition's state is
    /// ahead of the committed offsets and must be rewound before anything
    /// else is decided.
    pub(super) rewind_pending: bool,
}

impl Member {
    /// The wait of one transactional call. Once shutdown began, at most
    /// half of what is left before `stop_by`: a commit makes two calls
    /// (flush and commit) after the offsets' one.
    fn call_timeout(&self) -> Duration {
        match self.stop_by {
            Some(by) => {
                TRANSACTION_CALL_TIMEOUT.min(by.saturating_duration_since(Instant::now()) / 2)
            }
            None => TRANSACTION_CALL_TIMEOUT,
        }
    }

    /// Runs a transactional call (built by `make` from the sink and this
    /// call's timeout) on its own thread, retrying the errors `retry`
    /// accepts until it succeeds or the processor stops.
    fn call<F>(
        &self,
        what: &str,
        retry: fn(&KafkaError) -> bool,
        make: impl Fn(Arc<DecisionSink>, Duration) -> F,
    ) -> KafkaResult<()>
    where
        F: FnOnce() -> KafkaResult<()> + Send + 'static,
    {
        retry_while(&self.health, what, retry, || {
            let call = make(Arc::clone(&self.sink), self.call_timeout());
            call_on_thread(&self.health, self.stop_by, call)
        })
    }

    /// Opens a transaction unless one is open. On failure the loop must not
    /// decide: the caller skips the batch (it is read again after the rewind).
    pub(super) fn begin_transaction(&mut self) -> bool {
        if self.txn.open || self.txn.rewind_pending || self.failure.is_some() {
            return self.txn.open;
        }
        match self.sink.begin_transaction() {
            Ok(()) => {
                self.txn.open = true;
                true
            }
            Err(error) => {
                // A failed commit or abort left the producer needing one.
                self.txn.open = true;
                self.abort_transaction(&error);
                false
            }
        }
    }

    pub(super) fn commit_or_abort(&mut self, handover: &mut Handover) {
        match self.commit_transaction(handover) {
            Ok(()) => {}
            // Nothing will be rewound any more: the broker aborts the open
            // transaction after its timeout, or the next instance with this
            // transactional.id fences it at once.
            Err(error) if self.health.is_stopping() => {
                warn!(message = "The last transaction did not commit before the shutdown's deadline; the broker aborts it.", %error);
            }
            Err(error) => self.abort_transaction(&error),
        }
    }

    /// Adds every partition's decided offset (active and handed over) to
    /// the open transaction and commits it. Retriable errors (a coordinator
    /// moving, a timeout, the broker away) are retried until they stop or
    /// the processor stops.
    fn commit_transaction(&mut self, handover: &mut Handover) -> Result<(), KafkaError> {
        if !self.txn.open {
            return Ok(());
        }
        let mut offsets: Vec<(i32, i64)> = Vec::new();
        for (&p, state) in self.table.active().iter() {
            offsets.extend(
                state
                    .next_offset()
                    .filter(|&o| o > state.committed)
                    .map(|o| (p, o)),
            );
        }
        for (p, revoking) in handover.iter() {
            let state = revoking.state();
            offsets.extend(
                state
                    .next_offset()
                    .filter(|&o| o > state.committed)
                    .map(|o| (*p, o)),
            );
        }
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for &(p, o) in &offsets {
                tpl.add_partition_offset(&self.config.input_topic, p, Offset::Offset(o))?;
            }
            let group = self
                .consumer
                .group_metadata()
                .ok_or(KafkaError::Global(RDKafkaErrorCode::State))?;
            let (tpl, group) = (Arc::new(tpl), Arc::new(group));
            self.call(
                "send offsets to transaction",
                is_retriable,
                |sink, timeout| {
                    let (tpl, group) = (Arc::clone(&tpl), Arc::clone(&group));
                    move || sink.send_offsets_to_transaction(&tpl, &group, timeout)
                },
            )?;
        }
        self.call("commit transaction", is_retriable, |sink, timeout| {
            move || sink.commit_transaction(timeout)
        })?;
        self.txn.open = false;
        metrics::counter!(telemetry::COMMITS).increment(1);
        let mut active = self.table.active();
        for (p, o) in offsets {
            match handover.iter_mut().find(|(q, _)| *q == p) {
                Some((_, revoking)) => revoking.state_mut().committed = o,
                None => {
                    if let Some(state) = active.get_mut(&p) {
                        state.committed = o;
                    }
                }
            }
        }
        Ok(())
    }

    /// Aborts the open transaction after `cause`, retrying while the
    /// broker is away (until shutdown), and marks every partition for a
    /// rewind. A fatal error (this producer was fenced by another with the
    /// same `transactional.id`) stops the processor.
    pub(super) fn abort_transaction(&mut self, cause: &KafkaError) {
        if is_fatal(cause) {
            error!(message = "Fatal transaction error; stopping.", error = %cause);
            self.failure
                .get_or_insert(ProcessorError::Transaction(cause.clone()));
            return;
        }
        warn!(message = "Transaction failed; aborting it and rewinding every partition to its committed offset.", error = %cause);
        metrics::counter!(telemetry::COMMIT_ERRORS).increment(1);
        let aborted = self.call("abort transaction", not_fatal, |sink, timeout| {
            move || sink.abort_transaction(timeout)
        });
        if let Err(error) = aborted {
            error!(message = "Cannot abort the transaction; stopping.", %error);
            self.failure
                .get_or_insert(ProcessorError::Transaction(error));
            return;
        }
        metrics::counter!(telemetry::TRANSACTION_ABORTS).increment(1);
        self.txn.open = false;
        self.txn.rewind_pending = true;
    }

    /// After an aborted transaction: every active partition becomes
    /// restoring again under a new epoch (paused, rebuilt at its committed
    /// offset on a restore thread, then sought back and resumed). Messages
    /// polled before the rewind are dropped by the epoch check.
    pub(super) fn rewind(&mut self) {
        self.txn.rewind_pending = false;
        // Acknowledgements of the aborted records belong to the old state.
        self.apply_acks(&mut Vec::new());
        let epoch = self.next_epoch();
        let partitions: Vec<i32> = self.table.active().keys().copied().collect();
        let mut paused = TopicPartitionList::new();
        for p in &partitions {
            paused.add_partition(&self.config.input_topic, *p);
        }
        if let Err(error) = self.consumer.pause(&paused) {
            warn!(message = "Cannot pause partitions for the rewind.", %error);
        }
        for p in partitions {
            if let Some(active) = self.table.take_active(p) {
                let restoring = active.rewind(epoch);
                self.table.set_phase(p, Some(Phase::Restoring));
                self.start_restore(p, restoring, true);
            }
        }
        info!(
            message = "Rewinding every partition to its committed offset.",
            epoch
        );
        self.publish_ownership();
    }
}

/// Exactly once: registers the transactional producer, retrying while the
/// broker is away (logged), until shutdown.
pub(super) fn init_transactions(
    sink: &Arc<DecisionSink>,
    health: &Health,
) -> Result<(), ProcessorError> {
    retry_while(health, "initialize transactions", not_fatal, || {
        let sink = Arc::clone(sink);
        call_on_thread(health, None, move || {
            sink.init_transactions(TRANSACTION_CALL_TIMEOUT)
        })
    })
    .map_err(ProcessorError::Transaction)
}

/// Runs `call` on its own thread and waits for its result; gives up (with
/// a timeout error, leaving the call to finish alone) once the processor is
/// stopping and `stop_by`, if any, has passed.
fn call_on_thread(
    health: &Health,
    stop_by: Option<Instant>,
    call: impl FnOnce() -> KafkaResult<()> + Send + 'static,
) -> KafkaResult<()> {
    let (result, answer) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("transaction".into())
        .spawn(move || {
            let _ = result.send(call());
        })
        .map_err(|_| KafkaError::Global(RDKafkaErrorCode::Fail))?;
    loop {
        match answer.recv_timeout(Duration::from_millis(10)) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(KafkaError::Global(RDKafkaErrorCode::Fail));
            }
            Err(RecvTimeoutError::Timeout) => {
                if health.is_stopping() && stop_by.is_none_or(|by| Instant::now() >= by) {
                    return Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
                }
            }
        }
    }
}

/// Runs `call`, retrying the errors `retry` accepts, with backoff, until it
/// succeeds or the processor stops.
fn retry_while(
    health: &Health,
    what: &str,
    retry: fn(&KafkaError) -> bool,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match call() {
            Ok(()) => return Ok(()),
            Err(error) if retry(&error) && !health.is_stopping() => {
                warn!(message = "Transactional call failed; retrying.", what, %error, ?backoff);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The producer cannot go on: fenced by a newer producer with the same
/// `transactional.id`, or a broker without transactions (Tansu 0.6 has no
/// EndTxn).
pub(super) fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            e.is_fatal() || e.code() == RDKafkaErrorCode::UnsupportedFeature
        }
        _ => false,
    }
}

fn not_fatal(error: &KafkaError) -> bool {
    !is_fatal(error)
}

fn is_retriable(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => {
            e.is_retriable() && !e.txn_requires_abort() && !is_fatal(error)
        }
        _ => false,
    }
}
