//! Deciding one polled batch: split by partition, each active partition's
//! share decided in offset order by its own core (on scoped threads when
//! several partitions have input and the batch is large enough to pay for
//! them), decisions and dead letters enqueued, tallies flushed once per
//! batch.

use std::collections::HashMap;

use crate::kafka::offsets::OffsetTracker;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Polled;
use crate::kafka::processor::partition::Active;
use crate::kafka::sink::{DeadLetter, DecisionSink, OFFSET_MAX, PARTITION_MAX};
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{KeyCheck, Message, Verdict};
use coupon_stream_core::reason::{Outcome, Reason};

/// Fewest messages a batch needs before its partitions are decided in
/// parallel. Starting a thread costs tens of microseconds, the time of a
/// few dozen decisions, and a processor that keeps up polls small batches
/// (a few hundred messages at 100,000 events/s): those are decided on the
/// polling thread, one partition after the other.
const PARALLEL_MESSAGES_MIN: usize = 1_000;

/// What a run did, for the final log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    pub messages: u64,
    pub invalid: u64,
    pub coupons_issued: u64,
    /// Input offsets passed over without a record (see [`decide_partition`]).
    pub offsets_skipped: u64,
}

impl RunSummary {
    pub(super) fn add(&mut self, other: RunSummary) {
        self.messages += other.messages;
        self.invalid += other.invalid;
        self.coupons_issued += other.coupons_issued;
        self.offsets_skipped += other.offsets_skipped;
    }
}

/// One input message as a partition sees it: plain slices of the polled
/// message, so a batch can be shared with the worker threads.
pub(super) struct Input<'a> {
    /// The rebalance epoch when the message was polled.
    pub(super) epoch: u64,
    pub(super) offset: i64,
    pub(super) key: Option<&'a [u8]>,
    pub(super) value: &'a [u8],
    /// The input's Kafka timestamp (ms), carried over to its decision and
    /// dead letter as Kafka Streams does.
    pub(super) timestamp: Option<i64>,
}

/// What the batch needs besides the partitions.
pub(super) struct BatchEnv<'a> {
    pub(super) sink: &'a DecisionSink,
    pub(super) input_topic: &'a str,
    /// For the `wrong_partition` check; `None` when it is off.
    pub(super) partition_count: Option<u32>,
    pub(super) now_ms: u64,
}

/// Splits `batch` by partition. A few allocations per batch, none per
/// message.
pub(super) fn split<'a>(batch: &'a [Polled<'_>]) -> HashMap<i32, Vec<Input<'a>>> {
    let mut by_partition: HashMap<i32, Vec<Input<'a>>> = HashMap::new();
    for (epoch, m) in batch {
        by_partition.entry(m.partition()).or_default().push(Input {
            epoch: *epoch,
            offset: m.offset(),
            key: m.key(),
            value: m.payload().unwrap_or_default(),
            timestamp: m.timestamp_ms(),
        });
    }
    by_partition
}

/// Decides every active partition's share of the batch; the first error
/// wins, after every partition had its turn.
pub(super) fn decide(
    active: &mut HashMap<i32, Active>,
    by_partition: &HashMap<i32, Vec<Input<'_>>>,
    env: &BatchEnv<'_>,
) -> (RunSummary, Option<ProcessorError>) {
    let mut jobs: Vec<(i32, &mut Active, &[Input<'_>])> = active
        .iter_mut()
        .filter_map(|(&p, state)| {
            by_partition
                .get(&p)
                .filter(|inputs| !inputs.is_empty())
                .map(|inputs| (p, state, inputs.as_slice()))
        })
        .collect();
    let run = |(partition, state, inputs): (i32, &mut Active, &[Input<'_>])| {
        decide_partition(state, partition, inputs, env)
    };
    let messages: usize = jobs.iter().map(|(_, _, inputs)| inputs.len()).sum();
    let results: Vec<Result<RunSummary, ProcessorError>> =
        if jobs.len() <= 1 || messages < PARALLEL_MESSAGES_MIN {
            jobs.into_iter().map(run).collect()
        } else {
            // The largest share is decided on this thread, the others each
            // on a thread of its own.
            jobs.sort_unstable_by_key(|(_, _, inputs)| std::cmp::Reverse(inputs.len()));
            let mut jobs = jobs.into_iter();
            let here = jobs.next();
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs.map(|job| scope.spawn(move || run(job))).collect();
                let mut results: Vec<_> = here.into_iter().map(run).collect();
                results.extend(
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or(Err(ProcessorError::WorkerPanicked))),
                );
                results
            })
        };
    let mut summary = RunSummary::default();
    let mut failed = None;
    for result in results {
        match result {
            Ok(delta) => summary.add(delta),
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    (summary, failed)
}

/// Decides one partition's share of a batch, in offset order, and enqueues
/// its decisions and dead letters.
///
/// Counts the input offsets passed over: after the partition's first
/// record (or, before it, from the committed offset its state was restored
/// at, where the consumer starts), each record should be at the offset
/// after the last. Kafka leaves such gaps for the commit and abort markers
/// of a transactional producer (and for compaction, which an input topic
/// should not have); any other gap is input the broker did not deliver,
/// and the partition's state has missed it.
fn decide_partition(
    state: &mut Active,
    partition: i32,
    inputs: &[Input<'_>],
    env: &BatchEnv<'_>,
) -> Result<RunSummary, ProcessorError> {
    // Which inputs to decide. Offsets taken strictly increase (each must
    // be at or past the one after the last taken), so those acknowledged
    // before the restored snapshot, all below `skip_below`, come before
    // every input decided and are recorded here at once.
    let mut taken: Vec<&Input<'_>> = Vec::with_capacity(inputs.len());
    let mut messages: Vec<Message<'_>> = Vec::with_capacity(inputs.len());
    let mut next = state.next_offset();
    let mut expected = next.or((state.committed >= 0).then_some(state.committed));
    let mut offsets_skipped = 0;
    let mut out_of_range = None;
    for input in inputs {
        let offset = input.offset;
        // Polled before this partition was (re)assigned or rewound: the
        // current assignment reads it again from the committed offset.
        if state.epoch > input.epoch {
            continue;
        }
        if next.is_some_and(|next| offset < next) {
            continue;
        }
        if !(0..=PARTITION_MAX).contains(&partition) || !(0..=OFFSET_MAX).contains(&offset) {
            out_of_range = Some(ProcessorError::OutOfRange(partition, offset));
            break;
        }
        if let Some(expected) = expected.filter(|&e| offset > e) {
            offsets_skipped += (offset - expected) as u64;
        }
        next = Some(offset + 1);
        expected = next;
        if offset < state.skip_below {
            // Decided and acknowledged before the restored snapshot.
            state
                .tracker
                .get_or_insert_with(|| OffsetTracker::new(offset))
                .record(offset, 0);
            continue;
        }
        taken.push(input);
        messages.push(Message {
            value: input.value,
            source: Source { partition, offset },
            key_check: Some(KeyCheck {
                key: input.key,
                partition_count: env.partition_count,
            }),
        });
    }
    let mut summary = RunSummary {
        offsets_skipped,
        ..RunSummary::default()
    };
    let Active {
        core,
        out,
        tally,
        tracker,
        ..
    } = state;
    out.clear();
    core.process_batch(
        &messages,
        out,
        |i, verdict, out| -> Result<(), ProcessorError> {
            let input = taken[i];
            let records = send_records(partition, input, &verdict, out, env)?;
            out.clear();
            tally.record(&verdict, env.now_ms);
            if records == 2 {
                tally.record_dead_letter();
            }
            tracker
                .get_or_insert_with(|| OffsetTracker::new(input.offset))
                .record(input.offset, records);
            summary.messages += 1;
            summary.coupons_issued += verdict.coupons_issued as u64;
            if verdict.outcome == Outcome::Invalid {
                summary.invalid += 1;
            }
            Ok(())
        },
    )?;
    match out_of_range {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// Enqueues the decision in `decision` of `input`, and its dead letter if
/// it was invalid; returns how many records.
fn send_records(
    partition: i32,
    input: &Input<'_>,
    verdict: &Verdict,
    decision: &[u8],
    env: &BatchEnv<'_>,
) -> Result<u8, ProcessorError> {
    let offset = input.offset;
    env.sink
        .send_decision(partition, offset, input.key, input.timestamp, decision)
        .map_err(ProcessorError::Produce)?;
    if let (Outcome::Invalid, Some(Reason::Invalid(reason))) = (verdict.outcome, verdict.reason) {
        env.sink
            .send_dead_letter(&DeadLetter {
                source_topic: env.input_topic,
                partition,
                offset,
                key: input.key,
                timestamp: input.timestamp,
                value: input.value,
                reason: reason.as_str(),
            })
            .map_err(ProcessorError::Produce)?;
        return Ok(2);
    }
    Ok(1)
}
