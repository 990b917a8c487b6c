//! The longest single insert while a partition's largest tables grow: the
//! interner (user ids) and the duplicate window (event ids), each taking
//! `IDS` new ids one at a time. A growing hash index places every entry
//! again at once, so the insert that grows it waits for all of them; that
//! wait is a batch's stall and lands in the decision latency's tail.
//!
//! Prints, for each table, the total time, the slowest insert and the
//! number of ids held when it happened (a growth point); then the same for
//! a duplicate window in steady state, where a quarter of the window is
//! swept at a time and freed entries are reused.
//!
//! Run: `cargo bench -p coupon-stream-core --bench growth_stall` (seconds);
//! `IDS=5000000 cargo bench -p coupon-stream-core --bench growth_stall`
//! for larger tables. Without `--bench` (as `cargo test --all-targets`
//! runs it) a smoke version with 10,000 ids. Uses the processor's
//! allocator (jemalloc) with its default options.

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use coupon_stream_core::dedup::{DedupWindow, event_id_hash};
use coupon_stream_core::intern::Interner;
use coupon_stream_core::workload::SplitMix64;

/// Times `insert(k)` for `k` in `0..n`: (total, slowest, k of the slowest).
fn timed(n: u64, mut insert: impl FnMut(u64)) -> (Duration, Duration, u64) {
    let mut slowest = (Duration::ZERO, 0);
    let start = Instant::now();
    for k in 0..n {
        let t = Instant::now();
        insert(k);
        let took = t.elapsed();
        if took > slowest.0 {
            slowest = (took, k);
        }
    }
    (start.elapsed(), slowest.0, slowest.1)
}

fn report(table: &str, n: u64, (total, slowest, at): (Duration, Duration, u64)) {
    println!(
        "{table}: {n} new ids in {:.3} s; slowest insert {:.1} ms, with {at} ids held",
        total.as_secs_f64(),
        slowest.as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    // and runs a small smoke version.
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 2_000_000 } else { 10_000 });
    // Ids formatted ahead, so the timings hold only the inserts.
    let mut rng = SplitMix64::new(7);
    let users: Vec<String> = (0..n)
        .map(|k| format!("user-{k:08}-{:04x}", rng.next_u64() & 0xffff))
        .collect();
    let mut interner = Interner::default();
    let interned = timed(n, |k| {
        // Every id is new and short: interning cannot fail.
        let _ = interner.intern(&users[k as usize]);
    });
    assert_eq!(interner.len() as u64, n);
    report("interner", n, interned);

    let ids: Vec<u128> = (0..n).map(|k| event_id_hash(&format!("ev-{k}"))).collect();
    // A window longer than the run: every id stays.
    let mut window = DedupWindow::new(u64::MAX / 4);
    let remembered = timed(n, |k| {
        let ts = 1 + k;
        let duplicate = window.check_and_remember(ids[k as usize], ts, ts);
        debug_assert!(!duplicate);
    });
    assert_eq!(window.len() as u64, n);
    report("duplicate window", n, remembered);

    // Steady state: one new id a millisecond through a window of `n` ms
    // for three windows, so the window holds about `n` ids, sweeps every
    // quarter window and reuses the entries it frees.
    let mut window = DedupWindow::new(n);
    let mut rng = SplitMix64::new(11);
    let ids: Vec<u128> = (0..3 * n)
        .map(|_| u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
        .collect();
    let steady = timed(3 * n, |k| {
        let ts = 1 + k;
        let duplicate = window.check_and_remember(ids[k as usize], ts, ts);
        debug_assert!(!duplicate);
    });
    let (total, slowest, at) = steady;
    println!(
        "duplicate window, steady: {} checks in {:.3} s; slowest check {:.1} ms, the {at}th, \
         with {} ids held at the end in {:.1} heap bytes each",
        3 * n,
        total.as_secs_f64(),
        slowest.as_secs_f64() * 1e3,
        window.len(),
        window.heap_bytes() as f64 / window.len().max(1) as f64,
    );
}
