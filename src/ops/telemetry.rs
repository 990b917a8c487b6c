//! Prometheus metrics: every name the processor exports, its help text and
//! histogram buckets, the recorder install, and [`BatchTally`], the
//! per-batch counts a partition worker keeps so the hot path touches no
//! shared counter per event: fixed arrays indexed by decision kind and lag
//! bucket, added to the shared metrics once per batch.
//!
//! The event-time lag histogram is kept here ([`EVENT_TIME_LAGS`]) rather
//! than in the exporter, whose histograms store every sample (a clock read
//! and a push per decision) until upkeep folds them into buckets; `/metrics`
//! renders it after the exporter's families ([`render_event_time_lag`]).
//!
//! Names follow Prometheus conventions: `coupon_stream_` prefix, base units
//! in the name, counters end in `_total`, and every label has a closed set
//! of values (event types, outcomes, reason codes, partition numbers).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use coupon_stream_core::decision_core::Verdict;
use coupon_stream_core::event::EventType;
use coupon_stream_core::reason::{InvalidReason, Outcome, Reason, Rejection};

pub const EVENTS_CONSUMED: &str = "coupon_stream_events_consumed_total";
pub const DECISIONS: &str = "coupon_stream_decisions_total";
pub const INVALID_EVENTS: &str = "coupon_stream_invalid_events_total";
pub const DEAD_LETTERS: &str = "coupon_stream_dead_letters_total";
pub const COUPONS_ISSUED: &str = "coupon_stream_coupons_issued_total";
pub const EVENT_TIME_LAG: &str = "coupon_stream_event_time_lag_seconds";
pub const BATCH_DURATION: &str = "coupon_stream_batch_duration_seconds";
pub const CONSUMER_LAG: &str = "coupon_stream_consumer_lag_messages";
pub const ASSIGNED_PARTITIONS: &str = "coupon_stream_assigned_partitions";
pub const READY: &str = "coupon_stream_ready";
pub const STATE_COUPONS: &str = "coupon_stream_state_coupons";
pub const STATE_CAMPAIGNS: &str = "coupon_stream_state_campaigns";
pub const STATE_BYTES: &str = "coupon_stream_state_bytes";
pub const PRODUCE_ERRORS: &str = "coupon_stream_produce_errors_total";
pub const PRODUCE_RETRIES: &str = "coupon_stream_produce_retries_total";
pub const COMMITS: &str = "coupon_stream_commits_total";
pub const COMMIT_ERRORS: &str = "coupon_stream_commit_errors_total";
pub const TRANSACTION_ABORTS: &str = "coupon_stream_transaction_aborts_total";
pub const BROKER_ERRORS: &str = "coupon_stream_broker_errors_total";
pub const SNAPSHOT_DURATION: &str = "coupon_stream_snapshot_duration_seconds";
pub const SNAPSHOT_STALL: &str = "coupon_stream_snapshot_stall_seconds";
pub const SNAPSHOT_BYTES: &str = "coupon_stream_snapshot_bytes";
pub const SNAPSHOT_FAILURES: &str = "coupon_stream_snapshot_failures_total";
pub const RESTORE_DURATION: &str = "coupon_stream_restore_duration_seconds";
pub const CAMPAIGNS_EVICTED: &str = "coupon_stream_campaigns_evicted_total";
pub const INPUT_PARTITIONS: &str = "coupon_stream_input_partitions";
pub const RESTORING_PARTITIONS: &str = "coupon_stream_restoring_partitions";
pub const GROUP_REJOINS: &str = "coupon_stream_group_rejoins_total";
pub const INPUT_OFFSETS_SKIPPED: &str = "coupon_stream_input_offsets_skipped_total";

/// Every name above, for tests and docs.
pub const ALL: [&str; 29] = [
    EVENTS_CONSUMED,
    DECISIONS,
    INVALID_EVENTS,
    DEAD_LETTERS,
    COUPONS_ISSUED,
    EVENT_TIME_LAG,
    BATCH_DURATION,
    CONSUMER_LAG,
    ASSIGNED_PARTITIONS,
    READY,
    STATE_COUPONS,
    STATE_CAMPAIGNS,
    STATE_BYTES,
    PRODUCE_ERRORS,
    PRODUCE_RETRIES,
    COMMITS,
    COMMIT_ERRORS,
    TRANSACTION_ABORTS,
    BROKER_ERRORS,
    SNAPSHOT_DURATION,
    SNAPSHOT_STALL,
    SNAPSHOT_BYTES,
    SNAPSHOT_FAILURES,
    RESTORE_DURATION,
    CAMPAIGNS_EVICTED,
    INPUT_PARTITIONS,
    RESTORING_PARTITIONS,
    GROUP_REJOINS,
    INPUT_OFFSETS_SKIPPED,
];

/// Event-time lag buckets (s): from 1 ms to 10 min, for both live traffic
/// and a replay of old input.
const LAG_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
    600.0,
];
/// The same bounds in whole milliseconds, as lags are measured: a lag of
/// `n` ms is at most a bound of `b` s exactly when `n <= floor(1000 b)`.
const LAG_BUCKETS_MS: [u64; 16] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000, 300_000, 600_000,
];
const LAG_HELP: &str = "Decision time minus the event's ts.";
/// Snapshot and restore buckets (s): from 1 ms to 2 min.
const SNAPSHOT_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0, 120.0,
];
/// Batch processing buckets (s).
const BATCH_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The processor's Prometheus recorder (its histogram buckets), not yet
/// installed.
pub fn recorder() -> Result<PrometheusRecorder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BATCH_DURATION.to_owned()), &BATCH_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(SNAPSHOT_DURATION.to_owned()),
            &SNAPSHOT_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(SNAPSHOT_STALL.to_owned()), &SNAPSHOT_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(RESTORE_DURATION.to_owned()),
            &SNAPSHOT_BUCKETS,
        )?
        .build_recorder())
}

/// Installs the global Prometheus recorder and describes every metric.
/// Call once per process; returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    describe();
    // Present from the first scrape, before any traffic.
    metrics::gauge!(READY).set(0.0);
    metrics::gauge!(ASSIGNED_PARTITIONS).set(0.0);
    metrics::gauge!(RESTORING_PARTITIONS).set(0.0);
    for name in [
        DEAD_LETTERS,
        COUPONS_ISSUED,
        PRODUCE_ERRORS,
        PRODUCE_RETRIES,
        COMMITS,
        COMMIT_ERRORS,
        TRANSACTION_ABORTS,
        BROKER_ERRORS,
        SNAPSHOT_FAILURES,
        CAMPAIGNS_EVICTED,
        GROUP_REJOINS,
        INPUT_OFFSETS_SKIPPED,
    ] {
        counter!(name).absolute(0);
    }
    metrics::gauge!(SNAPSHOT_BYTES).set(0.0);
    Ok(handle)
}

fn describe() {
    describe_counter!(
        EVENTS_CONSUMED,
        "Input messages decided, by event type (unknown: the value was invalid)."
    );
    describe_counter!(
        DECISIONS,
        "Decisions produced, by event type, outcome and reason (none when the decision has no reason)."
    );
    describe_counter!(INVALID_EVENTS, "Invalid input messages, by reason.");
    describe_counter!(
        DEAD_LETTERS,
        "Invalid values copied to the dead-letter topic."
    );
    describe_counter!(COUPONS_ISSUED, "Coupons issued (budget burn).");
    describe_counter!(
        INPUT_OFFSETS_SKIPPED,
        "Input offsets the consumer passed over without a record: transaction markers of a transactional producer, or records the broker did not deliver."
    );
    describe_histogram!(
        BATCH_DURATION,
        Unit::Seconds,
        "Time to decide one polled batch."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages between the group's committed offset and the end of each assigned input partition (librdkafka statistics, every 5 s)."
    );
    describe_gauge!(
        ASSIGNED_PARTITIONS,
        "Input partitions assigned to this instance."
    );
    describe_gauge!(
        INPUT_PARTITIONS,
        "Partitions of the input topic, as this instance last read them."
    );
    describe_gauge!(
        RESTORING_PARTITIONS,
        "Assigned input partitions whose state is still being restored."
    );
    describe_counter!(
        GROUP_REJOINS,
        "Times this instance left and rejoined its group, or replaced its Kafka clients, because it owned no partition while the group did not own them all."
    );
    describe_gauge!(READY, "1 when /readyz answers ready, else 0.");
    describe_gauge!(
        STATE_COUPONS,
        "Coupons held in state, all assigned partitions."
    );
    describe_gauge!(
        STATE_CAMPAIGNS,
        "Campaigns held in state, all assigned partitions."
    );
    describe_gauge!(
        STATE_BYTES,
        Unit::Bytes,
        "Heap bytes of the partition states, duplicate windows included."
    );
    describe_counter!(PRODUCE_ERRORS, "Records the broker refused for good.");
    describe_counter!(PRODUCE_RETRIES, "Produce requests librdkafka retried.");
    describe_counter!(
        COMMITS,
        "Successful offset commits (exactly-once: committed transactions)."
    );
    describe_counter!(
        COMMIT_ERRORS,
        "Failed offset commits (retried at the next interval) or failed transactions (aborted and rewound)."
    );
    describe_counter!(
        TRANSACTION_ABORTS,
        "Exactly-once transactions aborted; every partition was rewound to its committed offset."
    );
    describe_histogram!(
        SNAPSHOT_DURATION,
        Unit::Seconds,
        "Time to write one partition snapshot to the state topic (off the hot path)."
    );
    describe_histogram!(
        SNAPSHOT_STALL,
        Unit::Seconds,
        "Time the processing loop waits to take snapshots (flush, commit, fork; encode on revoke and shutdown)."
    );
    describe_gauge!(
        SNAPSHOT_BYTES,
        Unit::Bytes,
        "Size of the last snapshot written, summed over partitions."
    );
    describe_counter!(
        SNAPSHOT_FAILURES,
        "Snapshots that could not be written (retried next interval)."
    );
    describe_histogram!(
        RESTORE_DURATION,
        Unit::Seconds,
        "Time to restore one assigned partition: read its snapshot, decode it, replay to the committed offset."
    );
    describe_counter!(
        CAMPAIGNS_EVICTED,
        "Campaigns dropped from state by retention (--retention-ms), with their coupons and counters."
    );
    describe_counter!(
        BROKER_ERRORS,
        "Client-level errors reported by librdkafka (brokers down, transport failures)."
    );
}

/// Kinds of decision counted apart: event type (or none, for invalid
/// input) x outcome x reason (or none).
const TYPE_SLOTS: usize = EventType::ALL.len() + 1;
const REASON_SLOTS: usize = 1 + Rejection::ALL.len() + InvalidReason::ALL.len();
const DECISION_SLOTS: usize = TYPE_SLOTS * Outcome::ALL.len() * REASON_SLOTS;

/// The slot of a kind of decision in [`BatchTally`]'s counts.
fn decision_slot(event_type: Option<EventType>, outcome: Outcome, reason: Option<Reason>) -> usize {
    let t = event_type.map_or(EventType::ALL.len(), |t| t as usize);
    let r = match reason {
        None => 0,
        Some(Reason::Rejected(r)) => 1 + r as usize,
        Some(Reason::Invalid(r)) => 1 + Rejection::ALL.len() + r as usize,
    };
    (t * Outcome::ALL.len() + outcome as usize) * REASON_SLOTS + r
}

/// The kind of decision counted in `slot`.
fn slot_decision(slot: usize) -> (Option<EventType>, Outcome, Option<Reason>) {
    let r = slot % REASON_SLOTS;
    let o = slot / REASON_SLOTS % Outcome::ALL.len();
    let t = slot / REASON_SLOTS / Outcome::ALL.len();
    let reason = match r {
        0 => None,
        r if r <= Rejection::ALL.len() => Some(Reason::Rejected(Rejection::ALL[r - 1])),
        r => Some(Reason::Invalid(
            InvalidReason::ALL[r - 1 - Rejection::ALL.len()],
        )),
    };
    (EventType::ALL.get(t).copied(), Outcome::ALL[o], reason)
}

/// Event-time lags counted per bucket of [`LAG_BUCKETS`] (the last slot is
/// above the largest bound), with their sum.
#[derive(Debug, Clone, Default)]
struct LagCounts {
    buckets: [u64; LAG_BUCKETS_MS.len() + 1],
    sum_ms: u128,
}

impl LagCounts {
    fn record(&mut self, lag_ms: u64) {
        let bucket = LAG_BUCKETS_MS.partition_point(|&bound| bound < lag_ms);
        self.buckets[bucket] += 1;
        self.sum_ms += u128::from(lag_ms);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The process's event-time lag histogram (`coupon_stream_event_time_lag_seconds`):
/// counts per bucket, added once per batch.
#[derive(Debug)]
pub struct LagHistogram {
    /// Counts per bucket, not cumulative; the last is above every bound.
    buckets: [AtomicU64; LAG_BUCKETS_MS.len() + 1],
    /// The sum of the lags in seconds, as `f64` bits.
    sum_seconds: AtomicU64,
}

/// Every partition worker of the process adds its batches here.
pub static EVENT_TIME_LAGS: LagHistogram = LagHistogram {
    buckets: [const { AtomicU64::new(0) }; LAG_BUCKETS_MS.len() + 1],
    sum_seconds: AtomicU64::new(0),
};

impl LagHistogram {
    fn add(&self, counts: &LagCounts) {
        for (bucket, &n) in self.buckets.iter().zip(&counts.buckets) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
        let seconds = counts.sum_ms as f64 / 1000.0;
        // Only this update writes the sum; the closure never refuses.
        let _ = self
            .sum_seconds
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
    }

    /// Lags recorded so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends the histogram in Prometheus' text format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        let name = EVENT_TIME_LAG;
        let _ = writeln!(out, "# HELP {name} {LAG_HELP}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LAG_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LAG_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = f64::from_bits(self.sum_seconds.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The exporter's rendering of every other metric, then the event-time lag
/// histogram: the text `/metrics` serves.
pub fn render_event_time_lag(exporter_text: String) -> String {
    let mut out = exporter_text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    EVENT_TIME_LAGS.render(&mut out);
    out
}

/// The counters of one kind of decision, registered on its first flush.
struct DecisionCounters {
    consumed: Counter,
    decisions: Counter,
    invalid: Option<Counter>,
}

impl DecisionCounters {
    fn register(slot: usize) -> DecisionCounters {
        let (event_type, outcome, reason) = slot_decision(slot);
        let type_label = event_type.map_or("unknown", EventType::as_str);
        let reason_label = reason.map_or("none", Reason::as_str);
        DecisionCounters {
            consumed: counter!(EVENTS_CONSUMED, "type" => type_label),
            decisions: counter!(DECISIONS, "type" => type_label, "outcome" => outcome.as_str(), "reason" => reason_label),
            invalid: match reason {
                Some(Reason::Invalid(r)) => Some(counter!(INVALID_EVENTS, "reason" => r.as_str())),
                _ => None,
            },
        }
    }
}

/// What one worker decided in one batch, flushed into the global metrics
/// once per batch. Recording a decision is an array increment: no hashing,
/// no allocation, no clock.
pub struct BatchTally {
    /// Decisions per [`decision_slot`].
    counts: Box<[u64]>,
    /// Slots counted since the last flush, so a flush reads only those.
    touched: Vec<u16>,
    decisions: u64,
    coupons_issued: u64,
    campaigns_evicted: u64,
    dead_letters: u64,
    lags: LagCounts,
    /// Counter handles by slot, registered once.
    counters: HashMap<u16, DecisionCounters>,
}

impl std::fmt::Debug for BatchTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTally")
            .field("decisions", &self.decisions)
            .field("kinds", &self.touched.len())
            .field("coupons_issued", &self.coupons_issued)
            .field("campaigns_evicted", &self.campaigns_evicted)
            .field("dead_letters", &self.dead_letters)
            .finish_non_exhaustive()
    }
}

impl Default for BatchTally {
    fn default() -> BatchTally {
        BatchTally {
            counts: vec![0; DECISION_SLOTS].into_boxed_slice(),
            touched: Vec::new(),
            decisions: 0,
            coupons_issued: 0,
            campaigns_evicted: 0,
            dead_letters: 0,
            lags: LagCounts::default(),
            counters: HashMap::new(),
        }
    }
}

impl BatchTally {
    /// Counts one decision taken at `now_ms` (wall clock).
    pub fn record(&mut self, verdict: &Verdict, now_ms: u64) {
        let slot = decision_slot(verdict.event_type, verdict.outcome, verdict.reason);
        let count = &mut self.counts[slot];
        if *count == 0 {
            self.touched.push(slot as u16);
        }
        *count += 1;
        self.decisions += 1;
        self.coupons_issued += verdict.coupons_issued as u64;
        self.campaigns_evicted += u64::from(verdict.campaigns_evicted);
        if let Some(ts) = verdict.ts {
            self.lags.record(now_ms.saturating_sub(ts));
        }
    }

    pub fn record_dead_letter(&mut self) {
        self.dead_letters += 1;
    }

    /// Decisions counted so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Decisions counted so far with `outcome`.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.touched
            .iter()
            .filter(|&&slot| slot_decision(slot.into()).1 == outcome)
            .map(|&slot| self.counts[usize::from(slot)])
            .sum()
    }

    pub fn coupons_issued(&self) -> u64 {
        self.coupons_issued
    }

    /// Campaigns dropped by retention so far.
    pub fn campaigns_evicted(&self) -> u64 {
        self.campaigns_evicted
    }

    /// Adds the counts to the global metrics and clears them.
    pub fn flush(&mut self) {
        for slot in self.touched.drain(..) {
            let n = std::mem::take(&mut self.counts[usize::from(slot)]);
            let counters = self
                .counters
                .entry(slot)
                .or_insert_with(|| DecisionCounters::register(slot.into()));
            counters.consumed.increment(n);
            counters.decisions.increment(n);
            if let Some(invalid) = &counters.invalid {
                invalid.increment(n);
            }
        }
        self.decisions = 0;
        if self.coupons_issued > 0 {
            counter!(COUPONS_ISSUED).increment(self.coupons_issued);
        }
        if self.dead_letters > 0 {
            counter!(DEAD_LETTERS).increment(self.dead_letters);
        }
        if self.campaigns_evicted > 0 {
            counter!(CAMPAIGNS_EVICTED).increment(self.campaigns_evicted);
        }
        if self.lags.count() > 0 {
            EVENT_TIME_LAGS.add(&self.lags);
        }
        self.coupons_issued = 0;
        self.campaigns_evicted = 0;
        self.dead_letters = 0;
        self.lags = LagCounts::default();
    }
}

/// Running totals since start, for a live display (`demo`, `bench`):
/// decisions, by outcome, and coupons issued. Updated once per batch.
#[derive(Debug, Default)]
pub struct Progress {
    decisions: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    coupons_issued: AtomicU64,
    acknowledged: AtomicU64,
}

impl Progress {
    /// The broker acknowledged `n` more produced records.
    pub fn add_acknowledged(&self, n: u64) {
        self.acknowledged.fetch_add(n, Ordering::Relaxed);
    }

    /// Decisions and dead letters the broker acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    pub fn add(&self, tally: &BatchTally) {
        for &slot in &tally.touched {
            let n = tally.counts[usize::from(slot)];
            let outcome = slot_decision(slot.into()).1;
            self.outcomes[outcome as usize].fetch_add(n, Ordering::Relaxed);
        }
        self.decisions.fetch_add(tally.decisions, Ordering::Relaxed);
        self.coupons_issued
            .fetch_add(tally.coupons_issued, Ordering::Relaxed);
    }

    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn coupons_issued(&self) -> u64 {
        self.coupons_issued.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coupon_stream_core::reason::InvalidReason;

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in ALL {
            assert!(name.starts_with("coupon_stream_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        for counter in [
            EVENTS_CONSUMED,
            DECISIONS,
            DEAD_LETTERS,
            COMMITS,
            BROKER_ERRORS,
            CAMPAIGNS_EVICTED,
            GROUP_REJOINS,
        ] {
            assert!(counter.ends_with("_total"));
        }
        assert!(EVENT_TIME_LAG.ends_with("_seconds") && BATCH_DURATION.ends_with("_seconds"));
        assert!(LAG_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(BATCH_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tally_counts_by_outcome() {
        let mut t = BatchTally::default();
        let issued = Verdict {
            event_type: Some(EventType::Issue),
            outcome: Outcome::Issued,
            reason: None,
            coupons_issued: 3,
            ts: Some(1_000),
            campaigns_evicted: 2,
        };
        let invalid = Verdict {
            event_type: None,
            outcome: Outcome::Invalid,
            reason: Some(Reason::Invalid(InvalidReason::Malformed)),
            coupons_issued: 0,
            ts: None,
            campaigns_evicted: 0,
        };
        t.record(&issued, 1_500);
        t.record(&issued, 900);
        t.record(&invalid, 2_000);
        t.record_dead_letter();
        let progress = Progress::default();
        progress.add(&t);
        assert_eq!(progress.decisions(), 3);
        assert_eq!(progress.outcome(Outcome::Issued), 2);
        assert_eq!(progress.coupons_issued(), 6);
        assert_eq!(t.decisions(), 3);
        assert_eq!(t.outcome(Outcome::Issued), 2);
        assert_eq!(t.outcome(Outcome::Invalid), 1);
        assert_eq!(t.coupons_issued(), 6);
        assert_eq!(t.campaigns_evicted(), 4);
        // A ts in the future counts as no lag (the first bucket).
        assert_eq!(t.lags.count(), 2);
        assert_eq!(t.lags.buckets[0], 1);
        assert_eq!(
            t.lags.buckets[LAG_BUCKETS_MS.partition_point(|&b| b < 500)],
            1
        );
        assert_eq!(t.lags.sum_ms, 500);
        let lags_before = EVENT_TIME_LAGS.count();
        t.flush();
        assert!(EVENT_TIME_LAGS.count() >= lags_before + 2);
        assert_eq!(t.decisions(), 0);
        assert_eq!(t.outcome(Outcome::Issued), 0);
        assert_eq!(t.campaigns_evicted(), 0);
        assert_eq!(t.lags.count(), 0);
        assert!(t.counts.iter().all(|&n| n == 0));
    }

    /// The slots rely on each enum's `ALL` listing its variants in
    /// declaration order.
    #[test]
    fn every_kind_of_decision_has_its_own_slot() {
        for (i, t) in EventType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        for (i, r) in Rejection::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, r) in InvalidReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let types = EventType::ALL.iter().map(|&t| Some(t)).chain([None]);
        let reasons: Vec<Option<Reason>> = [None]
            .into_iter()
            .chain(Rejection::ALL.iter().map(|&r| Some(Reason::Rejected(r))))
            .chain(InvalidReason::ALL.iter().map(|&r| Some(Reason::Invalid(r))))
            .collect();
        let mut seen = vec![false; DECISION_SLOTS];
        for t in types {
            for &o in &Outcome::ALL {
                for &r in &reasons {
                    let slot = decision_slot(t, o, r);
                    assert!(!seen[slot], "slot {slot} twice");
                    seen[slot] = true;
                    assert_eq!(slot_decision(slot), (t, o, r));
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert!(DECISION_SLOTS <= usize::from(u16::MAX));
    }

    /// Each lag lands in the bucket the Prometheus bounds (seconds) say,
    /// and the rendering is cumulative and ends in the count.
    #[test]
    fn lags_land_in_their_buckets() {
        for (bound_ms, bound_s) in LAG_BUCKETS_MS.iter().zip(LAG_BUCKETS) {
            assert_eq!(*bound_ms, (bound_s * 1000.0).floor() as u64);
        }
        for lag_ms in [0u64, 1, 2, 3, 999, 1_000, 1_001, 600_000, 600_001, u64::MAX] {
            let mut counts = LagCounts::default();
            counts.record(lag_ms);
            let bucket = counts.buckets.iter().position(|&n| n == 1).unwrap();
            let seconds = lag_ms as f64 / 1000.0;
            match LAG_BUCKETS.get(bucket) {
                Some(&bound) => assert!(seconds <= bound, "{lag_ms} ms in le={bound}"),
                None => assert!(seconds > LAG_BUCKETS[LAG_BUCKETS.len() - 1]),
            }
            if bucket > 0 {
                assert!(
                    seconds > LAG_BUCKETS[bucket - 1],
                    "{lag_ms} ms above le={}",
                    LAG_BUCKETS[bucket - 1]
                );
            }
        }
        let histogram = LagHistogram {
            buckets: [const { AtomicU64::new(0) }; LAG_BUCKETS_MS.len() + 1],
            sum_seconds: AtomicU64::new(0),
        };
        let mut counts = LagCounts::default();
        for lag_ms in [0, 3, 3, 700_000] {
            counts.record(lag_ms);
        }
        histogram.add(&counts);
        histogram.add(&counts);
        let mut text = String::new();
        histogram.render(&mut text);
        let name = EVENT_TIME_LAG;
        assert!(
            text.contains(&format!("# TYPE {name} histogram\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"0.001\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"0.0025\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"0.005\"}} 6\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"600\"}} 6\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"+Inf\"}} 8\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{name}_sum 1400.012\n")), "{text}");
        assert!(text.ends_with(&format!("{name}_count 8\n")), "{text}");
    }
}
