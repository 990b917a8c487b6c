//! Prometheus metrics: every name the processor exports, its help text and
//! histogram buckets, the recorder install, and [`BatchTally`], the
//! per-batch counts a partition worker keeps so the hot path touches no
//! shared counter per event.
//!
//! Names follow Prometheus conventions: `coupon_stream_` prefix, base units
//! in the name, counters end in `_total`, and every label has a closed set
//! of values (event types, outcomes, reason codes, partition numbers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use coupon_stream_core::decision_core::Verdict;
use coupon_stream_core::event::EventType;
use coupon_stream_core::reason::{Outcome, Reason};

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

/// Every name above, for tests and docs.
pub const ALL: [&str; 28] = [
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
];

/// Event-time lag buckets (s): from 1 ms to 10 min, for both live traffic
/// and a replay of old input.
const LAG_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
    600.0,
];
/// Snapshot and restore buckets (s): from 1 ms to 2 min.
const SNAPSHOT_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0, 120.0,
];
/// Batch processing buckets (s).
const BATCH_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Installs the global Prometheus recorder and describes every metric.
/// Call once per process; returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(EVENT_TIME_LAG.to_owned()), &LAG_BUCKETS)?
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
        .build_recorder();
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
    describe_histogram!(
        EVENT_TIME_LAG,
        Unit::Seconds,
        "Decision time minus the event's ts."
    );
    describe_histogram!(
        BATCH_DURATION,
        Unit::Seconds,
        "Time to decide one polled batch."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages between the consumer's position and the end of each assigned input partition."
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
        "Times this instance left and rejoined its group because it owned no partition while the group did not own them all."
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

type DecisionKey = (Option<EventType>, Outcome, Option<Reason>);

/// What one worker decided in one batch, flushed into the global metrics
/// once per batch.
#[derive(Debug, Default)]
pub struct BatchTally {
    decisions: HashMap<DecisionKey, u64>,
    coupons_issued: u64,
    campaigns_evicted: u64,
    dead_letters: u64,
    /// Event-time lags of this batch, in seconds.
    lags: Vec<f64>,
}

impl BatchTally {
    /// Counts one decision taken at `now_ms` (wall clock).
    pub fn record(&mut self, verdict: &Verdict, now_ms: u64) {
        *self
            .decisions
            .entry((verdict.event_type, verdict.outcome, verdict.reason))
            .or_default() += 1;
        self.coupons_issued += verdict.coupons_issued as u64;
        self.campaigns_evicted += u64::from(verdict.campaigns_evicted);
        if let Some(ts) = verdict.ts {
            self.lags.push(now_ms.saturating_sub(ts) as f64 / 1000.0);
        }
    }

    pub fn record_dead_letter(&mut self) {
        self.dead_letters += 1;
    }

    /// Decisions counted so far.
    pub fn decisions(&self) -> u64 {
        self.decisions.values().sum()
    }

    /// Decisions counted so far with `outcome`.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.decisions
            .iter()
            .filter(|((_, o, _), _)| *o == outcome)
            .map(|(_, n)| n)
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
        for ((event_type, outcome, reason), n) in self.decisions.drain() {
            let type_label = event_type.map_or("unknown", EventType::as_str);
            let reason_label = reason.map_or("none", Reason::as_str);
            counter!(EVENTS_CONSUMED, "type" => type_label).increment(n);
            counter!(DECISIONS, "type" => type_label, "outcome" => outcome.as_str(), "reason" => reason_label)
                .increment(n);
            if let Some(Reason::Invalid(r)) = reason {
                counter!(INVALID_EVENTS, "reason" => r.as_str()).increment(n);
            }
        }
        if self.coupons_issued > 0 {
            counter!(COUPONS_ISSUED).increment(self.coupons_issued);
        }
        if self.dead_letters > 0 {
            counter!(DEAD_LETTERS).increment(self.dead_letters);
        }
        if self.campaigns_evicted > 0 {
            counter!(CAMPAIGNS_EVICTED).increment(self.campaigns_evicted);
        }
        let lag = histogram!(EVENT_TIME_LAG);
        for &seconds in &self.lags {
            lag.record(seconds);
        }
        self.coupons_issued = 0;
        self.campaigns_evicted = 0;
        self.dead_letters = 0;
        self.lags.clear();
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
        for ((_, outcome, _), n) in &tally.decisions {
            let i = Outcome::ALL.iter().position(|o| o == outcome).unwrap_or(0);
            self.outcomes[i].fetch_add(*n, Ordering::Relaxed);
            self.decisions.fetch_add(*n, Ordering::Relaxed);
        }
        self.coupons_issued
            .fetch_add(tally.coupons_issued, Ordering::Relaxed);
    }

    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        Outcome::ALL
            .iter()
            .position(|&o| o == outcome)
            .map_or(0, |i| self.outcomes[i].load(Ordering::Relaxed))
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
        // A ts in the future counts as no lag.
        assert_eq!(t.lags, vec![0.5, 0.0]);
        t.flush();
        assert_eq!(t.decisions(), 0);
        assert_eq!(t.campaigns_evicted(), 0);
        assert!(t.lags.is_empty());
    }
}
