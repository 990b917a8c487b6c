//! Input messages as upstream services produce them, keyed by seller id:
//! generated traffic and the contract's fixture files.

use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};

/// (key, value) pairs to produce.
pub type Messages = Vec<(Option<Vec<u8>>, Vec<u8>)>;

/// A generator of `profile` traffic over `sellers` and `users`, with the
/// default duplicate and invalid fractions.
pub fn workload(profile: Profile, sellers: u32, users: u32, seed: u64) -> Workload {
    Workload::new(WorkloadConfig {
        profile,
        sellers,
        users,
        seed,
        ..WorkloadConfig::default()
    })
}

/// The next `n` events of `workload`, each keyed by its seller id.
pub fn keyed(workload: &mut Workload, n: usize) -> Messages {
    let mut value = Vec::new();
    (0..n)
        .map(|_| {
            let seller = workload.next_into(&mut value);
            (
                Some(workload.seller_id(seller).as_bytes().to_vec()),
                value.clone(),
            )
        })
        .collect()
}

/// The lines of `tests/fixtures/{name}.events.jsonl`, each keyed by its
/// `seller_id` (a line without a readable one gets the key `no-seller`).
pub fn fixture(name: &str) -> Messages {
    let path = format!(
        "{}/tests/fixtures/{name}.events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| {
            let key = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("seller_id")?.as_str().map(|s| s.as_bytes().to_vec()))
                .unwrap_or_else(|| b"no-seller".to_vec());
            (Some(key), line.to_vec())
        })
        .collect()
}
