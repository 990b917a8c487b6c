//! The oracle of the Kafka tests: each input partition decided again, in
//! offset order, by one uninterrupted decision core with the Kafka key
//! checks. Whatever the processor went through (kills, moves, aborted
//! transactions), its decisions must equal these.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};

use super::kafka::{Record, read_all, read_covering};

/// Decides each partition's input and calls `decided` with every
/// (partition, offset) and its decision; returns each partition's core.
fn decide_partitions(
    input: &[Record],
    partitions: i32,
    mut decided: impl FnMut((i32, i64), &[u8]),
) -> HashMap<i32, DecisionCore> {
    let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
    for r in input {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let mut cores = HashMap::new();
    let mut out = Vec::new();
    for (partition, mut records) in by_partition {
        records.sort_by_key(|r| r.offset);
        let mut core = DecisionCore::new(CoreConfig::default());
        for r in records {
            out.clear();
            core.process(
                &Message {
                    value: &r.value,
                    source: Source {
                        partition,
                        offset: r.offset,
                    },
                    key_check: Some(KeyCheck {
                        key: r.key.as_deref(),
                        partition_count: Some(partitions as u32),
                    }),
                },
                &mut out,
            );
            decided((partition, r.offset), &out);
        }
        cores.insert(partition, core);
    }
    cores
}

/// The decision for each input record, by (partition, offset).
pub fn expected_decisions(input: &[Record], partitions: i32) -> HashMap<(i32, i64), Vec<u8>> {
    let mut expected = HashMap::new();
    decide_partitions(input, partitions, |source, decision| {
        expected.insert(source, decision.to_vec());
    });
    expected
}

/// Each partition's core after deciding its whole input: the state the
/// processor's queries must report.
pub fn recomputed_cores(input: &[Record], partitions: i32) -> HashMap<i32, DecisionCore> {
    decide_partitions(input, partitions, |_, _| {})
}

/// The (partition, offset) a decision answers.
pub fn decision_source(decision: &Record) -> (i32, i64) {
    let v: serde_json::Value = serde_json::from_slice(&decision.value).unwrap();
    (
        v["source"]["partition"].as_i64().unwrap() as i32,
        v["source"]["offset"].as_i64().unwrap(),
    )
}

/// Checks every decision against the recomputation: each equals the one
/// computed for its input offset, and repeats of an offset are identical.
/// Returns the first decision per input offset.
pub fn check_decisions(
    decisions: &[Record],
    expected: &HashMap<(i32, i64), Vec<u8>>,
) -> HashMap<(i32, i64), Vec<u8>> {
    let mut seen: HashMap<(i32, i64), Vec<u8>> = HashMap::new();
    for d in decisions {
        let source = decision_source(d);
        let want = expected
            .get(&source)
            .unwrap_or_else(|| panic!("decision for unknown input {source:?}"));
        assert_eq!(
            String::from_utf8_lossy(&d.value),
            String::from_utf8_lossy(want),
            "decision for input {source:?} differs from the uninterrupted recomputation"
        );
        if let Some(previous) = seen.insert(source, d.value.clone()) {
            assert_eq!(previous, d.value, "a redelivered decision differs");
        }
    }
    seen
}

/// What [`check_run`] read.
#[derive(Debug)]
pub struct CheckedRun {
    /// The first decision per input offset.
    pub seen: HashMap<(i32, i64), Vec<u8>>,
    /// Decision records read, repeats included.
    pub records: usize,
}

/// Checks a run's whole output against the recomputation of its whole
/// input: reads the `total` records of `coupon-events`, then
/// `coupon-decisions` until the decisions cover every input offset or
/// `deadline` passes (reads of `read_for` each, [`read_covering`]), checks
/// each decision with [`check_decisions`], and asserts that every input
/// offset has its decision.
pub fn check_run(
    brokers: &str,
    partitions: i32,
    total: usize,
    read_for: Duration,
    deadline: Duration,
) -> CheckedRun {
    let input = read_all(
        brokers,
        "coupon-events",
        partitions,
        total,
        Duration::from_secs(120),
    );
    assert_eq!(input.len(), total, "the whole input is readable");
    let expected = expected_decisions(&input, partitions);
    let decisions = read_covering(
        brokers,
        "coupon-decisions",
        partitions,
        total,
        read_for,
        deadline,
    );
    let seen = check_decisions(&decisions, &expected);
    assert_eq!(seen.len(), total, "one decision per input offset");
    CheckedRun {
        seen,
        records: decisions.len(),
    }
}
