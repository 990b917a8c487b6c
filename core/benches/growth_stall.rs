//! The longest single insert while a partition's largest tables grow: the
//! interner (user ids), one campaign's holdings (users holding its
//! coupons) and the duplicate window (event ids), each taking `IDS` new
//! ids one at a time. A growing hash index places every entry
//! again at once, so the insert that grows it waits for all of them; that
//! wait is a batch's stall and lands in the decision latency's tail.
//!
//! Prints, for each table, the total time, the slowest insert (its number
//! is the ids held then: a growth point) and how many inserts took 1 ms or
//! more; then the same for a duplicate window through three windows of
//! new ids, the first two (growing, first sweeps) and the third (steady
//! state: sweeping, and reusing the entries it frees) apart.
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
use coupon_stream_core::state::holdings::Holdings;
use coupon_stream_core::workload::SplitMix64;

/// How long `n` inserts took.
struct Timing {
    total: Duration,
    slowest: Duration,
    /// `k` of the slowest insert.
    slowest_at: u64,
    /// Inserts that took 1 ms or more.
    over_1ms: u64,
}

/// Times `insert(k)` for `k` in `range`.
fn timed(range: std::ops::Range<u64>, mut insert: impl FnMut(u64)) -> Timing {
    let mut timing = Timing {
        total: Duration::ZERO,
        slowest: Duration::ZERO,
        slowest_at: 0,
        over_1ms: 0,
    };
    let start = Instant::now();
    for k in range {
        let t = Instant::now();
        insert(k);
        let took = t.elapsed();
        if took > timing.slowest {
            (timing.slowest, timing.slowest_at) = (took, k);
        }
        timing.over_1ms += u64::from(took >= Duration::from_millis(1));
    }
    timing.total = start.elapsed();
    timing
}

fn report(table: &str, n: u64, timing: &Timing) {
    println!(
        "{table}: {n} in {:.3} s; slowest {:.2} ms, the {}th; {} took 1 ms or more",
        timing.total.as_secs_f64(),
        timing.slowest.as_secs_f64() * 1e3,
        timing.slowest_at,
        timing.over_1ms,
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
    let interned = timed(0..n, |k| {
        // Every id is new and short: interning cannot fail.
        let _ = interner.intern(&users[k as usize]);
    });
    assert_eq!(interner.len() as u64, n);
    report("interner, new ids", n, &interned);

    // One campaign's holders (a platform-wide coupon): every user new to
    // it, handles in the order an interner gives them.
    let mut holdings = Holdings::default();
    let held = timed(0..n, |k| holdings.add(k as u32));
    assert_eq!(holdings.len() as u64, n);
    report("holdings, new holders", n, &held);

    let ids: Vec<u128> = (0..n).map(|k| event_id_hash(&format!("ev-{k}"))).collect();
    // A window longer than the run: every id stays.
    let mut window = DedupWindow::new(u64::MAX / 4);
    let remembered = timed(0..n, |k| {
        let ts = 1 + k;
        let duplicate = window.check_and_remember(ids[k as usize], ts, ts);
        debug_assert!(!duplicate);
    });
    assert_eq!(window.len() as u64, n);
    report("duplicate window, new ids", n, &remembered);

    // Steady state: one new id a millisecond through a window of `n` ms
    // for three windows, so the window holds about `n` ids, sweeps every
    // quarter window and reuses the entries it frees.
    let mut window = DedupWindow::new(n);
    let mut rng = SplitMix64::new(11);
    let ids: Vec<u128> = (0..3 * n)
        .map(|_| u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()))
        .collect();
    let mut check = |k: u64| {
        let ts = 1 + k;
        let duplicate = window.check_and_remember(ids[k as usize], ts, ts);
        debug_assert!(!duplicate);
    };
    // The first two windows: growing, then the first sweeps.
    let first = timed(0..2 * n, &mut check);
    report("duplicate window, first two windows", 2 * n, &first);
    // The third: steady state.
    let steady = timed(2 * n..3 * n, &mut check);
    report("duplicate window, third window", n, &steady);
    println!(
        "duplicate window: {} ids held at the end in {:.1} heap bytes each",
        window.len(),
        window.heap_bytes() as f64 / window.len().max(1) as f64,
    );
}
