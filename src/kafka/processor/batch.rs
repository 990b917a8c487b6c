//! Deciding one polled batch: split by partition, each active partition's
//! share decided in offset order by one thread (the partitions spread over
//! up to `--decision-threads` scoped threads when several have input and
//! the batch is large enough to pay for them), its decisions held in runs
//! of up to [`HELD_BYTES_MAX`] and each run enqueued at once with its dead
//! letters, tallies flushed once per batch.

use std::collections::HashMap;

use crate::kafka::offsets::OffsetTracker;
use crate::kafka::processor::error::ProcessorError;
use crate::kafka::processor::member::Polled;
use crate::kafka::processor::partition::Active;
use crate::kafka::sink::{DeadLetter, DecisionSink, OFFSET_MAX, PARTITION_MAX};
use crate::ops::telemetry::BatchTally;
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
    /// Most threads deciding the batch ([`KafkaConfig::decision_threads`]).
    ///
    /// [`KafkaConfig::decision_threads`]: crate::kafka::config::KafkaConfig::decision_threads
    pub(super) decision_threads: usize,
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

/// One partition's share of a batch, with `T` (its state when deciding).
type Share<'b, 'i, T> = (i32, T, &'b [Input<'i>]);
type Job<'s, 'b, 'i> = Share<'b, 'i, &'s mut Active>;

/// Decides every active partition's share of the batch; the first error
/// wins, after every partition had its turn.
pub(super) fn decide(
    active: &mut HashMap<i32, Active>,
    by_partition: &HashMap<i32, Vec<Input<'_>>>,
    env: &BatchEnv<'_>,
) -> (RunSummary, Option<ProcessorError>) {
    let jobs: Vec<Job<'_, '_, '_>> = active
        .iter_mut()
        .filter_map(|(&p, state)| {
            by_partition
                .get(&p)
                .filter(|inputs| !inputs.is_empty())
                .map(|inputs| (p, state, inputs.as_slice()))
        })
        .collect();
    let messages: usize = jobs.iter().map(|(_, _, inputs)| inputs.len()).sum();
    let threads = if messages < PARALLEL_MESSAGES_MIN {
        1
    } else {
        env.decision_threads.min(jobs.len())
    };
    let results: Vec<Result<RunSummary, ProcessorError>> = if threads <= 1 {
        jobs.into_iter().map(|job| run_job(job, env)).collect()
    } else {
        // The first group is decided on this thread, the others each on a
        // thread of its own.
        let mut groups = spread(jobs, threads).into_iter();
        let here = groups.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .map(|group| {
                    scope.spawn(move || {
                        group
                            .into_iter()
                            .map(|job| run_job(job, env))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut results: Vec<_> = here.into_iter().map(|job| run_job(job, env)).collect();
            for handle in handles {
                match handle.join() {
                    Ok(group) => results.extend(group),
                    Err(_) => results.push(Err(ProcessorError::WorkerPanicked)),
                }
            }
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

fn run_job(
    (partition, state, inputs): Job<'_, '_, '_>,
    env: &BatchEnv<'_>,
) -> Result<RunSummary, ProcessorError> {
    decide_partition(state, partition, inputs, env)
}

/// Spreads the partitions' shares over `threads` groups (at least one),
/// largest share first onto the group with the fewest messages so far, so
/// the groups' message counts are close; the largest group comes first.
fn spread<'b, 'i, T>(
    mut jobs: Vec<Share<'b, 'i, T>>,
    threads: usize,
) -> Vec<Vec<Share<'b, 'i, T>>> {
    let threads = threads.max(1);
    jobs.sort_unstable_by_key(|(partition, _, inputs)| {
        (std::cmp::Reverse(inputs.len()), *partition)
    });
    let mut groups: Vec<(usize, Vec<Share<'b, 'i, T>>)> =
        (0..threads).map(|_| (0, Vec::new())).collect();
    for job in jobs {
        let lightest = (0..groups.len())
            .min_by_key(|&g| groups[g].0)
            .unwrap_or_default();
        groups[lightest].0 += job.2.len();
        groups[lightest].1.push(job);
    }
    groups.retain(|(_, group)| !group.is_empty());
    groups.sort_by_key(|(load, _)| std::cmp::Reverse(*load));
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Most bytes of decisions held before they are enqueued: a partition's
/// share is decided in runs of up to this much, and each run's decisions
/// are then enqueued one after the other, so that librdkafka's structures
/// are not pushed out of the caches by the state between two records.
/// At saturation a partition's share of a batch (up to 5,000 decisions of
/// about 270 bytes in `bench`) takes about three runs. Against 128 KiB
/// (`bench --baseline`, 10 pairs a series, docs/PERFORMANCE.md): the
/// processor's CPU per event 0.976x and 0.974x at the medians of two
/// series run with one binary, 0.978x plain-built and 1.002x
/// profile-guided against the commit before; its rate 1.031x and 1.026x
/// in the first two, 1.003x and 0.994x in the others.
/// 256 KiB and 2 MiB did no better. An active partition keeps the room
/// of its largest run: this many bytes, and [`HELD_DECISIONS_MAX`]
/// entries of its held-decisions list at most.
const HELD_BYTES_MAX: usize = 512 * 1024;
/// Most decisions held before they are enqueued (a run of short
/// decisions, such as duplicates, ends here before it reaches
/// [`HELD_BYTES_MAX`]).
const HELD_DECISIONS_MAX: usize = 4_096;

/// A decision appended to the partition's buffer and not yet enqueued:
/// its index in the batch's decided inputs, its verdict, and the end of
/// its bytes in the buffer.
pub(super) type HeldDecision = (usize, Verdict, usize);

/// The partition's held decisions, with what enqueueing them updates.
struct Held<'a> {
    /// Empty between runs; kept in [`Active`] so that its room is reused.
    decided: &'a mut Vec<HeldDecision>,
    summary: &'a mut RunSummary,
    tally: &'a mut BatchTally,
    tracker: &'a mut Option<OffsetTracker>,
}

impl Held<'_> {
    /// Enqueues the held decisions (and dead letters) in order, records
    /// each in the tracker and the tallies, and empties `out`. On an error
    /// the decisions after the failed one are dropped unsent.
    fn enqueue(
        &mut self,
        partition: i32,
        taken: &[&Input<'_>],
        out: &mut Vec<u8>,
        env: &BatchEnv<'_>,
    ) -> Result<(), ProcessorError> {
        let mut start = 0;
        let result = self.decided.iter().try_for_each(|&(i, verdict, end)| {
            let input = taken[i];
            let records = send_records(partition, input, &verdict, &out[start..end], env)?;
            start = end;
            self.tally.record(&verdict, env.now_ms);
            if records == 2 {
                self.tally.record_dead_letter();
            }
            self.tracker
                .get_or_insert_with(|| OffsetTracker::new(input.offset))
                .record(input.offset, records);
            self.summary.messages += 1;
            self.summary.coupons_issued += verdict.coupons_issued as u64;
            if verdict.outcome == Outcome::Invalid {
                self.summary.invalid += 1;
            }
            Ok(())
        });
        self.decided.clear();
        out.clear();
        result
    }
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
        held: held_decisions,
        tally,
        tracker,
        unsent,
        ..
    } = state;
    out.clear();
    held_decisions.clear();
    let mut held = Held {
        decided: held_decisions,
        summary: &mut summary,
        tally,
        tracker,
    };
    let decided = core.process_batch(
        &messages,
        out,
        |i, verdict, out| -> Result<(), ProcessorError> {
            held.decided.push((i, verdict, out.len()));
            if out.len() >= HELD_BYTES_MAX || held.decided.len() >= HELD_DECISIONS_MAX {
                held.enqueue(partition, &taken, out, env)?;
            }
            Ok(())
        },
    );
    let enqueued = decided.and_then(|()| held.enqueue(partition, &taken, out, env));
    if enqueued.is_err() {
        // The core applied decisions that were not enqueued: its state is
        // ahead of what the tracker records, so no snapshot may cover it.
        *unsent = true;
    }
    enqueued?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::kafka::config::{Guarantee, KafkaConfig};
    use crate::kafka::processor::partition::{Restored, Restoring};
    use crate::ops::health::Health;
    use coupon_stream_core::config::CoreConfig;
    use coupon_stream_core::decision_core::DecisionCore;

    fn inputs(n: usize) -> Vec<Input<'static>> {
        (0..n)
            .map(|i| Input {
                epoch: 0,
                offset: i as i64,
                key: None,
                value: b"{}",
                timestamp: None,
            })
            .collect()
    }

    fn spread_sizes(sizes: &[usize], threads: usize) -> Vec<Vec<(i32, usize)>> {
        let shares: Vec<Vec<Input<'static>>> = sizes.iter().map(|&n| inputs(n)).collect();
        let jobs = shares
            .iter()
            .enumerate()
            .map(|(p, share)| (p as i32, (), share.as_slice()))
            .collect();
        spread(jobs, threads)
            .into_iter()
            .map(|group| group.into_iter().map(|(p, (), s)| (p, s.len())).collect())
            .collect()
    }

    /// Decides two seller events of partition 0 with a decision producer
    /// whose queue holds `queued` records, whose broker cannot be reached,
    /// and which is stopping (a full queue gives up at once).
    fn decide_two(queued: &str) -> (Result<RunSummary, ProcessorError>, Active) {
        let mut config = KafkaConfig::new("127.0.0.1:1", Guarantee::AtLeastOnce);
        config
            .properties
            .push(("queue.buffering.max.messages".into(), queued.into()));
        let health = Arc::new(Health::default());
        health.set_stopping();
        let (acks, _acks) = std::sync::mpsc::channel();
        let sink = DecisionSink::new(&config, acks, health).expect("a producer");
        let mut state = Restoring::new(1, false).activate(Restored {
            core: DecisionCore::new(CoreConfig::default()),
            skip_below: -1,
            manifest: None,
            committed: None,
        });
        let values = [
            r#"{"type":"seller","event_id":"e1","ts":1,"seller_id":"s0","daily_issue_limit":5}"#,
            r#"{"type":"seller","event_id":"e2","ts":2,"seller_id":"s0","daily_issue_limit":6}"#,
        ];
        let inputs: Vec<Input<'_>> = values
            .iter()
            .enumerate()
            .map(|(offset, value)| Input {
                epoch: 1,
                offset: offset as i64,
                key: Some(b"s0"),
                value: value.as_bytes(),
                timestamp: None,
            })
            .collect();
        let env = BatchEnv {
            sink: &sink,
            input_topic: "coupon-events",
            partition_count: None,
            now_ms: 0,
            decision_threads: 1,
        };
        let result = decide_partition(&mut state, 0, &inputs, &env);
        (result, state)
    }

    #[test]
    fn decisions_enqueued_are_tracked_and_the_state_may_be_snapshotted() {
        let (result, state) = decide_two("10");
        assert_eq!(result.map(|s| s.messages).ok(), Some(2));
        assert_eq!(state.next_offset(), Some(2));
        assert!(!state.unsent);
    }

    #[test]
    fn a_decision_that_could_not_be_enqueued_keeps_the_state_from_snapshots() {
        let (result, state) = decide_two("1");
        assert!(
            matches!(result, Err(ProcessorError::Produce(_))),
            "{result:?}"
        );
        // The first decision was enqueued and is tracked; the second was
        // applied to the state and not enqueued.
        assert_eq!(state.next_offset(), Some(1));
        assert!(state.unsent);
    }

    #[test]
    fn each_partition_goes_to_exactly_one_group_and_the_groups_are_balanced() {
        let groups = spread_sizes(&[500, 100, 400, 300, 200, 100], 3);
        assert_eq!(groups.len(), 3);
        let mut partitions: Vec<i32> = groups.iter().flatten().map(|(p, _)| *p).collect();
        partitions.sort_unstable();
        assert_eq!(partitions, vec![0, 1, 2, 3, 4, 5]);
        let loads: Vec<usize> = groups
            .iter()
            .map(|g| g.iter().map(|(_, n)| n).sum())
            .collect();
        // 1,600 messages over 3 groups: largest first onto the lightest.
        assert_eq!(loads, vec![600, 500, 500]);
    }

    #[test]
    fn one_thread_takes_every_partition_and_more_threads_than_partitions_leave_none_empty() {
        let one = spread_sizes(&[3, 7, 5], 1);
        assert_eq!(one, vec![vec![(1, 7), (2, 5), (0, 3)]]);
        let many = spread_sizes(&[3, 7], 8);
        assert_eq!(many, vec![vec![(1, 7)], vec![(0, 3)]]);
        assert!(spread_sizes(&[], 4).is_empty());
        assert_eq!(spread_sizes(&[2], 0), vec![vec![(0, 2)]]);
    }
}
