//! How long taking a snapshot stops the processing loop, at scale: a
//! partition state with 10 million issued coupons, encoded on the calling
//! thread and in a forked child (`src/kafka/snapshot_child.rs`: the loop
//! waits only for the fork). Also measures what the child costs the parent
//! while it lives: deciding events then copies each page it writes
//! (copy-on-write faults), and both processes' private memory. Linux only:
//!
//! ```sh
//! cargo bench --bench snapshot_stall
//! ```
//!
//! `STALL_COUPONS`, `STALL_USERS` and `STALL_EVENTS` (issue requests
//! decided per phase) resize it. Without `--bench` (as `cargo test
//! --all-targets` runs it) the state has 20,000 coupons, and the child's
//! bytes must still equal the in-thread encoding.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use coupon_stream::kafka::snapshot_child;
use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::synthetic::Feeder;
use coupon_stream_core::{snapshot, synthetic, workload};

const SILENCE: Duration = Duration::from_secs(300);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `kB` field of a /proc status or smaps_rollup file, in MiB.
fn proc_mib(path: &str, field: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn minor_faults() -> i64 {
    // SAFETY: zeroed rusage is a valid out-parameter for getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt
}

/// Decides `requests` issue requests (20 random existing users each) for
/// a fresh campaign per seller: writes land all over the state (ledger
/// tails, holdings, interners, duplicate window), as live traffic does.
fn decide(core: &mut DecisionCore, users: u64, first: u64, requests: u64) -> Duration {
    let ts = workload::START_TS + 3_600_000;
    let mut value = String::new();
    let mut rng = workload::SplitMix64::new(first);
    let mut feeder = Feeder::new((1i64 << 40) + 1);
    let mut process = |core: &mut DecisionCore, value: &str| {
        feeder.feed(core, value);
    };
    if first == 0 {
        for s in 0..100 {
            value.clear();
            let _ = write!(
                value,
                r#"{{"type":"campaign","event_id":"late-s{s}","ts":{ts},"seller_id":"seller-{s}","campaign_id":"late","budget":100000000,"valid_from":{ts},"valid_until":{},"discount_cents":1000,"ttl_ms":1800000}}"#,
                ts + 86_400_000
            );
            process(core, &value);
        }
    }
    let started = Instant::now();
    for r in first..first + requests {
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"issue","event_id":"late-r{r}","ts":{},"seller_id":"seller-{}","campaign_id":"late","user_ids":["#,
            ts + r / 10,
            r % 100
        );
        for k in 0..20 {
            let user = rng.next_u64() % users;
            let _ = write!(value, "{}\"user-{user:08}\"", if k > 0 { "," } else { "" });
        }
        value.push_str("]}");
        process(core, &value);
    }
    started.elapsed()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("snapshot_stall measures fork(); it runs on Linux only");
}

#[cfg(target_os = "linux")]
fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` nothing.
    let full = std::env::args().any(|a| a == "--bench");
    let coupons = env("STALL_COUPONS", if full { 10_000_000 } else { 20_000 });
    let users = env("STALL_USERS", if full { 2_000_000 } else { 3_000 });
    let requests = env("STALL_EVENTS", if full { 100_000 } else { 1_000 });
    let mut core = synthetic::build(coupons, users);
    let stats = core.stats();
    let rss = proc_mib("/proc/self/status", "VmRSS:");
    let huge = proc_mib("/proc/self/smaps_rollup", "AnonHugePages:");
    println!(
        "{} coupons, {} users: state {:.0} MiB by capacity, process RSS {rss:.0} MiB ({huge:.0} MiB in huge pages)",
        stats.coupons,
        stats.users,
        stats.heap_bytes as f64 / f64::from(1 << 20),
    );

    // Before: the loop encoded on its own thread.
    let t = Instant::now();
    let mut expected = Vec::new();
    snapshot::encode(&core, &mut expected);
    println!(
        "in-thread encode (the stall without the fork): {:.3} s, {:.1} MiB",
        t.elapsed().as_secs_f64(),
        expected.len() as f64 / f64::from(1 << 20)
    );

    // After: the loop waits for the fork only.
    for round in 1..=5 {
        let t = Instant::now();
        let encoding = snapshot_child::start(&[&core]).unwrap();
        let stall = t.elapsed();
        let t = Instant::now();
        let encoded = encoding.collect(SILENCE).unwrap();
        let collect = t.elapsed();
        assert_eq!(encoded, vec![expected.clone()], "child bytes differ");
        println!(
            "fork {round}: stall {:.2} ms; child encoded and sent in {:.3} s",
            stall.as_secs_f64() * 1e3,
            collect.as_secs_f64()
        );
    }

    // What the parent pays while a child holds the copy-on-write image.
    let dirty_before = proc_mib("/proc/self/smaps_rollup", "Private_Dirty:");
    let encoding = snapshot_child::start(&[&core]).unwrap();
    let child = encoding.child_id().unwrap();
    let dirty_forked = proc_mib("/proc/self/smaps_rollup", "Private_Dirty:");
    let faults = minor_faults();
    let with_child = decide(&mut core, users, 0, requests);
    let faults_with_child = minor_faults() - faults;
    let dirty_after = proc_mib("/proc/self/smaps_rollup", "Private_Dirty:");
    let child_private = proc_mib(&format!("/proc/{child}/smaps_rollup"), "Private_Dirty:");
    let child_rss = proc_mib(&format!("/proc/{child}/smaps_rollup"), "Rss:");
    let encoded = encoding.collect(SILENCE).unwrap();
    assert_eq!(
        encoded,
        vec![expected],
        "the child saw the state at the fork"
    );
    let faults = minor_faults();
    let without_child = decide(&mut core, users, requests, requests);
    let faults_without_child = minor_faults() - faults;
    println!(
        "{requests} issue requests (20 users each): {:.3} s with the child alive ({faults_with_child} minor faults), {:.3} s after it was reaped ({faults_without_child} minor faults)",
        with_child.as_secs_f64(),
        without_child.as_secs_f64(),
    );
    println!(
        "parent private dirty: {dirty_before:.0} MiB before the fork, {dirty_forked:.0} MiB right after, {dirty_after:.0} MiB after the requests (copied or new); child: private dirty {child_private:.0} MiB, RSS {child_rss:.0} MiB; parent peak RSS {:.0} MiB",
        proc_mib("/proc/self/status", "VmHWM:"),
    );
}
