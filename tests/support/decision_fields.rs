//! Decisions compared as the contract defines them: field by field over the
//! contract's fields, with `null` and absent equal. The conformance vectors
//! and the retention vectors compare this way; `conformance.rs` and
//! `retention_vectors.rs` include this file alone (by path), without the
//! Kafka support.

use serde_json::Value;

/// The decision fields the contract defines (`detail` is free text).
pub const FIELDS: [&str; 14] = [
    "event_id",
    "type",
    "seller_id",
    "ts",
    "outcome",
    "reason",
    "source",
    "campaign_id",
    "results",
    "coupon_id",
    "order_id",
    "user_id",
    "discount_cents",
    "duplicate",
];

/// Drops `null` members recursively, so absent and null compare equal.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Every field in which a decision differs from the one wanted, line by
/// line, each as "`label` line N `field`: want W, got G".
pub fn mismatches(label: &str, want: &[Value], have: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for (line, (want, have)) in want.iter().zip(have).enumerate() {
        for field in FIELDS {
            let w = normalize(want.get(field).unwrap_or(&Value::Null));
            let h = normalize(have.get(field).unwrap_or(&Value::Null));
            if w != h {
                found.push(format!("{label} line {line} `{field}`: want {w}, got {h}"));
            }
        }
    }
    found
}
