//! The processor's JSON logs (`--log-format json`) as the tests read them:
//! which partitions a processor owns, and how it restored them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One log line.
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The module that logged it.
    pub target: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    pub message: String,
    pub fields: serde_json::Value,
}

/// A fresh directory for one test's logs, under the temporary directory.
pub fn log_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coupon-stream-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Shown with a failing test's output (the test removes the directory
    // when it passes).
    eprintln!("processor logs of this test: {}", dir.display());
    dir
}

/// The JSON lines of `log` so far (nothing if it does not exist yet).
pub fn log_lines(log: &Path) -> Vec<LogLine> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let ts = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
            Some(LogLine {
                ts_ms: ts.timestamp_millis(),
                target: v["target"].as_str().unwrap_or_default().to_owned(),
                level: v["level"].as_str().unwrap_or_default().to_owned(),
                message: v["fields"]["message"].as_str()?.to_owned(),
                fields: v["fields"].clone(),
            })
        })
        .collect()
}

/// `"[1, 3]"` (a Debug-formatted list of partitions) as a set.
pub fn partition_list(field: &serde_json::Value) -> BTreeSet<i32> {
    field
        .as_str()
        .unwrap_or_default()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The partitions a processor owns according to its log: assigned and not
/// revoked since.
pub fn owned_partitions(log: &Path) -> BTreeSet<i32> {
    let mut owned = BTreeSet::new();
    for line in log_lines(log) {
        match line.message.as_str() {
            "Partitions assigned." => owned.extend(partition_list(&line.fields["assigned"])),
            "Partitions revoked." => {
                for p in partition_list(&line.fields["revoked"]) {
                    owned.remove(&p);
                }
            }
            _ => {}
        }
    }
    owned
}

/// Restores in `logs` that started from a snapshot, and those that
/// replayed input up to the committed offset.
pub fn restores(logs: &[PathBuf]) -> (usize, usize) {
    let (mut from_snapshot, mut replaying) = (0, 0);
    for line in logs.iter().flat_map(|log| log_lines(log)) {
        if line.message != "Partition state restored." {
            continue;
        }
        if line.fields["snapshot_offset"]
            .as_str()
            .is_some_and(|s| s.starts_with("Some"))
        {
            from_snapshot += 1;
        }
        if line.fields["replayed"].as_u64().is_some_and(|n| n > 0) {
            replaying += 1;
        }
    }
    (from_snapshot, replaying)
}
