//! Conformance with the contract's example vectors (tests/fixtures, copied
//! from the spec): every decision, field by field, on every field contract
//! section 5 names, with absent and `null` treated alike. `detail` is free
//! text and not compared.

use std::io::BufReader;

use coupon_stream::replay::replay;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision_core::DecisionCore;
use serde_json::Value;

#[path = "support/decision_fields.rs"]
mod decision_fields;

fn check_vectors(name: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let events = std::fs::read(format!("{dir}/{name}.events.jsonl")).unwrap();
    let expected = std::fs::read_to_string(format!("{dir}/{name}.decisions.jsonl")).unwrap();

    // The vectors follow the contract, which keeps every campaign forever;
    // some events come 20 days after their campaign ended, past the
    // default 7-day retention, so they are checked with retention off.
    let mut core = DecisionCore::new(CoreConfig {
        retention_ms: 0,
        ..CoreConfig::default()
    });
    let mut out = Vec::new();
    let tally = replay(&mut core, BufReader::new(events.as_slice()), &mut out).unwrap();
    let got = String::from_utf8(out).unwrap();

    let expected: Vec<Value> = expected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: one decision per input line"
    );
    assert_eq!(tally.messages as usize, expected.len());

    let mismatches = decision_fields::mismatches(name, &expected, &got);
    for (line, have) in got.iter().enumerate() {
        if have["outcome"] == "invalid" {
            assert!(
                have["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "line {line}: invalid without detail"
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{name}: {} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

#[test]
fn basics_vectors() {
    check_vectors("basics");
}

#[test]
fn generated_seed1_vectors() {
    check_vectors("generated-seed1");
}
