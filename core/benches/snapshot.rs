//! Snapshot encode and decode times for a large partition state built
//! through the core (`synthetic::build`), and the snapshot's size per
//! coupon:
//!
//! ```sh
//! cargo bench -p coupon-stream-core --bench snapshot
//! ```
//!
//! `SNAPSHOT_COUPONS` and `SNAPSHOT_USERS` resize it (every coupon to a new
//! user with `SNAPSHOT_USERS` equal to the coupon count). Without `--bench`
//! (as `cargo test --all-targets` runs it) the state has 20,000 coupons,
//! and the restored core must still encode to the same bytes.

use std::time::Instant;

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::snapshot::{decode, encode};
use coupon_stream_core::synthetic;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` nothing.
    let full = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let coupons = env("SNAPSHOT_COUPONS", if full { 10_000_000 } else { 20_000 });
    let users = env("SNAPSHOT_USERS", if full { 2_000_000 } else { 3_000 });
    let built = Instant::now();
    let core = synthetic::build(coupons, users);
    let stats = core.stats();
    println!(
        "built in {:.1?}: {} coupons ({} redeemed), {} users, {} orders, {} campaigns, {} ids in the duplicate window",
        built.elapsed(),
        stats.coupons,
        stats.redeemed_coupons,
        stats.users,
        stats.orders,
        stats.campaigns,
        core.dedup_len(),
    );

    let mut bytes = Vec::new();
    let t = Instant::now();
    encode(&core, &mut bytes);
    let encode_time = t.elapsed();
    let t = Instant::now();
    let restored = decode(&bytes, CoreConfig::default()).expect("the snapshot decodes");
    let decode_time = t.elapsed();
    println!(
        "snapshot: {:.1} MiB ({:.2} bytes/coupon); encode {encode_time:.2?}, decode {decode_time:.2?}",
        bytes.len() as f64 / f64::from(1 << 20),
        bytes.len() as f64 / stats.coupons as f64,
    );
    let mut again = Vec::new();
    encode(&restored, &mut again);
    assert!(again == bytes, "re-encoded snapshot differs");
}
