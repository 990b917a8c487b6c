//! The decision step's tail, batch by batch: decides a file of JSON lines
//! on one core in batches (as the processor decides a fetch's messages),
//! timing each [`DecisionCore::process_batch`], and prints the batch times'
//! percentiles, then each batch of 8 ms or more with the state's counts
//! before and after it (which table grew). Default configuration, every
//! line on partition 0.
//!
//! Run: `cargo run --release -p coupon-stream-core --example batch_tail --
//! FILE` (a file from `coupon-stream loadgen -o FILE`); `BATCH=N` sets the
//! batch size (default 1000). Uses the processor's allocator (jemalloc).

use std::convert::Infallible;
use std::error::Error;
use std::time::{Duration, Instant};

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Batches at least this slow are listed one by one.
const LISTED: Duration = Duration::from_millis(8);

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: batch_tail FILE (JSON lines)")?;
    let batch: usize = match std::env::var("BATCH") {
        Ok(v) => v.parse().map_err(|e| format!("BATCH={v}: {e}"))?,
        Err(_) => 1000,
    };
    if batch == 0 {
        return Err("BATCH must be at least 1".into());
    }
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let messages: Vec<Message<'_>> = data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, value)| Message {
            value,
            source: Source {
                partition: 0,
                offset: i as i64,
            },
            key_check: None,
        })
        .collect();
    let mut core = DecisionCore::new(CoreConfig::default());
    let mut out = Vec::with_capacity(1 << 20);
    let mut times = Vec::with_capacity(messages.len() / batch + 1);
    let start = Instant::now();
    for (k, run) in messages.chunks(batch).enumerate() {
        let (before, dedup_before) = (core.stats(), core.dedup_len());
        let t = Instant::now();
        let decided: Result<(), Infallible> = core.process_batch(run, &mut out, |_, _, out| {
            out.push(b'\n');
            Ok(())
        });
        let Ok(()) = decided;
        let took = t.elapsed();
        out.clear();
        times.push(took);
        if took >= LISTED {
            let after = core.stats();
            println!(
                "batch {k}: {:.1} ms; users {} -> {}, orders {} -> {}, coupons {} -> {}, \
                 event ids {} -> {}, state heap bytes {} -> {}",
                took.as_secs_f64() * 1e3,
                before.users,
                after.users,
                before.orders,
                after.orders,
                before.coupons,
                after.coupons,
                dedup_before,
                core.dedup_len(),
                before.heap_bytes,
                after.heap_bytes,
            );
        }
    }
    let total = start.elapsed();
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len().saturating_sub(1)) as f64 * q) as usize;
        times.get(i).map_or(0.0, |t| t.as_secs_f64() * 1e3)
    };
    println!(
        "{} events in {} batches of {batch} in {:.3} s; batch ms: p50 {:.2}, p99 {:.2}, \
         p99.9 {:.2}, max {:.2}; {} batches of {} ms or more",
        messages.len(),
        times.len(),
        total.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
        times.iter().filter(|&&t| t >= LISTED).count(),
        LISTED.as_millis(),
    );
    Ok(())
}
