//! Resident memory per issued coupon, measured with 10 million coupons.
//!
//! Issues coupons through the real decision core (decode, duplicate window,
//! rules) and reads the process's resident set size from /proc before and
//! after. Two populations of recipients:
//!
//! - `shared-users`: 2 million users across 500 campaigns of 100 sellers, so
//!   a user holds ~5 coupons (a marketplace: users collect coupons from many
//!   sellers);
//! - `distinct-users`: every coupon to a new user (worst case: each coupon
//!   also pays for interning its holder's id).
//!
//! Run: `cargo bench --bench state_memory` (about a minute);
//! `COUPONS=1000000 cargo bench --bench state_memory` for a quicker look.

use std::fmt::Write as _;

// The processor's allocator, so the figures are the processor's. Its
// transparent-huge-page options are passed to each scenario process in
// `_RJEM_MALLOC_CONF` (see `main`; a value already set wins): setting them in code takes an unsafe
// symbol export, which this crate forbids.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The options `src/allocator.rs` compiles into the processor.
const JEMALLOC_CONF: &str = "thp:default,metadata_thp:disabled";

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::synthetic::Feeder;
use coupon_stream_core::workload::SplitMix64;

const SELLERS: u64 = 100;
const CAMPAIGNS_PER_SELLER: u64 = 5;
const RECIPIENTS: u64 = 20;
const START_TS: u64 = 1_762_790_400_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn measure(name: &str, coupons: u64, users: u64) {
    let mut core = DecisionCore::new(CoreConfig::default());
    let mut value = String::with_capacity(1024);
    let mut feeder = Feeder::new(0);
    let mut process = |core: &mut DecisionCore, value: &str| feeder.feed(core, value);
    let campaigns = SELLERS * CAMPAIGNS_PER_SELLER;
    let budget = coupons.div_ceil(campaigns);
    for s in 0..SELLERS {
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"seller","event_id":"setup-s{s}","ts":{START_TS},"seller_id":"seller-{s}","daily_issue_limit":100000000}}"#
        );
        process(&mut core, &value);
        for c in 0..CAMPAIGNS_PER_SELLER {
            value.clear();
            let _ = write!(
                value,
                r#"{{"type":"campaign","event_id":"setup-s{s}-c{c}","ts":{START_TS},"seller_id":"seller-{s}","campaign_id":"double11-{c}","budget":{budget},"valid_from":{START_TS},"valid_until":{},"discount_cents":1000,"ttl_ms":1800000}}"#,
                START_TS + 86_400_000
            );
            process(&mut core, &value);
        }
    }
    let before = resident_bytes();
    let mut issued = 0u64;
    let mut next_user = 0u64;
    let mut request = 0u64;
    let mut idle_requests = 0u32;
    let mut rng = SplitMix64::new(7);
    while issued < coupons {
        let seller = request % SELLERS;
        let campaign = (request / SELLERS) % CAMPAIGNS_PER_SELLER;
        // Ten requests per millisecond of event time: the duplicate window
        // holds ten minutes of them, as in production.
        let ts = START_TS + request / 10;
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"issue","event_id":"req-{request}","ts":{ts},"seller_id":"seller-{seller}","campaign_id":"double11-{campaign}","user_ids":["#
        );
        for k in 0..RECIPIENTS {
            if k > 0 {
                value.push(',');
            }
            // Distinct users: a new user per coupon. Shared users: drawn at
            // random from the pool (a campaign meets a repeat now and then,
            // which per_user_limit rejects, as in production).
            let user = if users >= coupons {
                next_user
            } else {
                rng.next_u64() % users
            };
            next_user += 1;
            let _ = write!(value, "\"user-{user:08}\"");
        }
        value.push_str("]}");
        let n = process(&mut core, &value).coupons_issued as u64;
        issued += n;
        idle_requests = if n == 0 { idle_requests + 1 } else { 0 };
        assert!(
            idle_requests < 10_000,
            "benchmark bug: no coupon issued in 10000 requests at {issued} coupons"
        );
        request += 1;
    }
    let after = resident_bytes();
    let stats = core.stats();
    println!(
        "{name}: {} coupons, {} users, {} campaigns: resident {:.1} MiB more = {:.1} bytes/coupon; state heap by capacity {:.1} bytes/coupon; duplicate window {} ids",
        stats.coupons,
        stats.users,
        stats.campaigns,
        (after - before) as f64 / (1 << 20) as f64,
        (after - before) as f64 / stats.coupons as f64,
        stats.heap_bytes as f64 / stats.coupons as f64,
        core.dedup_len(),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and runs a small smoke version.
    let full = std::env::args().any(|a| a == "--bench");
    let coupons: u64 = std::env::var("COUPONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10_000_000 } else { 100_000 });
    // Each scenario runs in a fresh process, so one scenario's freed pages
    // cannot hide in the next one's resident-set delta.
    match std::env::var("STATE_MEMORY_SCENARIO").as_deref() {
        Ok("shared-users") => measure("shared-users", coupons, 2_000_000.min(coupons)),
        Ok("distinct-users") => measure("distinct-users", coupons, coupons),
        _ => {
            let exe = std::env::current_exe().expect("path of the running benchmark");
            for scenario in ["shared-users", "distinct-users"] {
                let status = std::process::Command::new(&exe)
                    .args(std::env::args().skip(1))
                    .env("STATE_MEMORY_SCENARIO", scenario)
                    .env(
                        "_RJEM_MALLOC_CONF",
                        std::env::var("_RJEM_MALLOC_CONF").unwrap_or(JEMALLOC_CONF.into()),
                    )
                    .env("COUPONS", coupons.to_string())
                    .status()
                    .expect("run a scenario");
                assert!(status.success(), "{scenario} failed");
            }
        }
    }
}
