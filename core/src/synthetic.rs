//! A synthetic partition state of a chosen size, built through the real
//! decision core: sellers, campaigns, `coupons` coupons issued to `users`
//! distinct users 20 per request, one in ten redeemed and one in ten of
//! those released. Used to measure snapshots and restores at the scale of
//! tens of millions of coupons (the snapshot tests, `tests/restore_time.rs`).

use std::fmt::Write as _;

use crate::config::CoreConfig;
use crate::decision::Source;
use crate::decision_core::{DecisionCore, Message, Verdict};

/// Feeds event values to a core at consecutive offsets of partition 0 with
/// one reused output buffer: the harness of the state builders, the memory
/// bench and the snapshot measurements.
pub struct Feeder {
    offset: i64,
    out: Vec<u8>,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Feeder {
    /// The first value fed gets offset `first_offset`.
    pub fn new(first_offset: i64) -> Feeder {
        Feeder {
            offset: first_offset,
            out: Vec::with_capacity(1 << 16),
        }
    }

    pub fn feed(&mut self, core: &mut DecisionCore, value: &str) -> Verdict {
        self.out.clear();
        let verdict = core.process(
            &Message {
                value: value.as_bytes(),
                source: Source {
                    partition: 0,
                    offset: self.offset,
                },
                key_check: None,
            },
            &mut self.out,
        );
        self.offset += 1;
        verdict
    }
}

/// A core holding `coupons` issued coupons (rounded up to whole requests)
/// over `users` users (every coupon to a new user when `users >= coupons`).
pub fn build(coupons: u64, users: u64) -> DecisionCore {
    let (sellers, campaigns_per_seller, recipients) = (100u64, 5u64, 20u64);
    let start_ts = crate::workload::START_TS;
    let budget = coupons.div_ceil(sellers * campaigns_per_seller);

    let mut core = DecisionCore::new(CoreConfig::default());
    let mut value = String::new();
    let mut feeder = Feeder::new(1);
    let mut process = |core: &mut DecisionCore, value: &str| feeder.feed(core, value);
    for s in 0..sellers {
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"seller","event_id":"s{s}","ts":{start_ts},"seller_id":"seller-{s}","daily_issue_limit":100000000}}"#
        );
        process(&mut core, &value);
        for c in 0..campaigns_per_seller {
            value.clear();
            let _ = write!(
                value,
                r#"{{"type":"campaign","event_id":"s{s}c{c}","ts":{start_ts},"seller_id":"seller-{s}","campaign_id":"double11-{c}","budget":{budget},"valid_from":{start_ts},"valid_until":{},"discount_cents":1000,"ttl_ms":1800000}}"#,
                start_ts + 86_400_000
            );
            process(&mut core, &value);
        }
    }
    let mut rng = crate::workload::SplitMix64::new(7);
    let (mut issued, mut request, mut next_user) = (0u64, 0u64, 0u64);
    while issued < coupons {
        let seller = request % sellers;
        let campaign = (request / sellers) % campaigns_per_seller;
        // Ten requests per ms: the window holds ten minutes of them.
        let ts = start_ts + request / 10;
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"issue","event_id":"r{request}","ts":{ts},"seller_id":"seller-{seller}","campaign_id":"double11-{campaign}","user_ids":["#
        );
        for k in 0..recipients {
            let user = if users >= coupons {
                next_user
            } else {
                rng.next_u64() % users
            };
            next_user += 1;
            let _ = write!(value, "{}\"user-{user:08}\"", if k > 0 { "," } else { "" });
        }
        value.push_str("]}");
        issued += process(&mut core, &value).coupons_issued as u64;
        request += 1;
    }
    // Redeem one coupon in ten, then release one redemption in ten.
    let ts = start_ts + request / 10;
    for step in 0..coupons / 10 {
        let seller = step % sellers;
        let campaign = (step / sellers) % campaigns_per_seller;
        let serial = 1 + (step / (sellers * campaigns_per_seller)) * 10;
        let seller_id = format!("seller-{seller}");
        let campaign_id = format!("double11-{campaign}");
        let Some(coupon) = core
            .state()
            .campaign(&seller_id, &campaign_id)
            .and_then(|c| c.coupons.get(serial).copied())
        else {
            continue;
        };
        let holder = core.state().user_id(coupon.holder).to_owned();
        value.clear();
        let _ = write!(
            value,
            r#"{{"type":"redeem","event_id":"x{step}","ts":{ts},"seller_id":"{seller_id}","coupon_id":"{campaign_id}:{serial}","user_id":"{holder}","order_id":"order-{step}","order_cents":5000}}"#
        );
        process(&mut core, &value);
        if step % 10 == 0 {
            value.clear();
            let _ = write!(
                value,
                r#"{{"type":"release","event_id":"y{step}","ts":{ts},"seller_id":"{seller_id}","coupon_id":"{campaign_id}:{serial}","order_id":"order-{step}"}}"#
            );
            process(&mut core, &value);
        }
    }
    core
}
