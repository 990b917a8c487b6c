//! Fuzzes the rules, not the decoder: structured event sequences (built
//! with `arbitrary`, rendered as valid JSON, with late events, repeats and
//! state retention) go through one partition's `DecisionCore`, and after
//! every step the invariants of contract section 3 are checked against a
//! model kept from the decisions alone:
//!
//! - a campaign never issues more than its budget in force, coupons are
//!   numbered 1, 2, ... (across re-creations after a retention drop);
//! - no user is issued more than the per-user limit in force (per
//!   incarnation: a dropped campaign's users start afresh);
//! - no seller issues more than its daily limit on one local day;
//! - the discount granted never exceeds the discount budget in force;
//! - no coupon is accepted twice without a release in between, an
//!   idempotent retry returns the original discount, and a release returns
//!   what was granted.
//!
//! The core's state is read only to learn which campaigns retention
//! dropped. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run rules`.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};
use coupon_stream_core::local_day::local_day;
use coupon_stream_core::zone::Zone;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const INT_MAX: u64 = (1 << 53) - 1;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
/// 2025-11-10T16:00:00Z.
const BASE_TS: u64 = 1_762_790_400_000;
const ZONES: [&str; 5] = [
    "Asia/Shanghai",
    "America/New_York",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "America/St_Johns",
];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Amount {
    Small(u16),
    Max,
    NearMax(u8),
    Any(u64),
}

impl Amount {
    fn cents(self) -> u64 {
        match self {
            Amount::Small(n) => u64::from(n),
            Amount::Max => INT_MAX,
            Amount::NearMax(k) => INT_MAX - u64::from(k),
            Amount::Any(n) => n & INT_MAX,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Seller {
        seller: bool,
        daily: Option<u8>,
        max_recipients: Option<u8>,
        zone: Option<u8>,
    },
    Campaign {
        seller: bool,
        campaign: u8,
        budget: u8,
        valid_from_h: i8,
        valid_hours: u8,
        discount: Amount,
        min_order: Option<u16>,
        per_user: Option<u8>,
        ttl_h: Option<u8>,
        discount_budget: Option<Amount>,
        active: Option<bool>,
        issue_hours: Option<(i8, u8)>,
    },
    Issue {
        seller: bool,
        campaign: u8,
        users: Vec<u8>,
    },
    Redeem {
        seller: bool,
        campaign: u8,
        serial: u8,
        user: u8,
        order: u8,
        order_cents: Amount,
    },
    Release {
        seller: bool,
        campaign: u8,
        serial: u8,
        order: u8,
    },
    /// The value of an earlier event again, byte for byte.
    Repeat { back: u8 },
    /// The clock moves on.
    Advance { minutes: u16 },
    /// The next event is this many minutes late.
    Late { minutes: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0: off; otherwise hours of retention.
    retention_hours: u8,
    steps: Vec<Step>,
}

#[derive(Default)]
struct CampaignModel {
    budget: u64,
    per_user: u64,
    discount_budget: Option<u64>,
    /// Coupons ever issued under this id (continues after a drop).
    issued: u64,
    /// The serial the core's ledger starts after (changes with a drop).
    base: u64,
    /// Discount of the coupons currently redeemed (and of those redeemed
    /// when a drop happened: they stay spent).
    spent: u128,
    held: HashMap<String, u64>,
}

#[derive(Default)]
struct Model {
    /// seller -> (daily limit, zone).
    sellers: HashMap<String, (u64, Zone)>,
    campaigns: HashMap<(String, String), CampaignModel>,
    /// (seller, coupon) -> holder.
    holders: HashMap<(String, String), String>,
    /// (seller, coupon) -> (order, discount) while redeemed.
    redeemed: HashMap<(String, String), (String, u64)>,
    /// (seller, local day) -> coupons issued.
    daily: HashMap<(String, i64), u64>,
}

fn seller_id(s: bool) -> &'static str {
    if s { "s1" } else { "s0" }
}

fuzz_target!(|input: Input| {
    let retention_ms = u64::from(input.retention_hours % 50) * HOUR;
    let config = CoreConfig {
        retention_ms,
        ..CoreConfig::default()
    };
    let defaults = config.seller_defaults;
    let mut core = DecisionCore::new(config);
    let mut model = Model::default();
    let mut clock = BASE_TS;
    let mut late = 0;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();

    for (i, step) in input.steps.iter().take(400).enumerate() {
        let ts = clock.saturating_sub(late);
        late = 0;
        let mut v = json!({"event_id": format!("e{i}"), "ts": ts});
        let c = |n: u8| format!("c{}", n % 3);
        let value = match step {
            Step::Advance { minutes } => {
                clock += u64::from(*minutes) * MINUTE;
                continue;
            }
            Step::Late { minutes } => {
                late = u64::from(*minutes) * MINUTE;
                continue;
            }
            Step::Repeat { back } => {
                if sent.is_empty() {
                    continue;
                }
                sent[sent.len() - 1 - usize::from(*back) % sent.len()].clone()
            }
            Step::Seller {
                seller,
                daily,
                max_recipients,
                zone,
            } => {
                v["type"] = json!("seller");
                v["seller_id"] = json!(seller_id(*seller));
                v["daily_issue_limit"] = json!(daily.map(|d| d % 8));
                v["max_recipients"] = json!(max_recipients.map(|m| 1 + m % 5));
                v["timezone"] = json!(zone.map(|z| ZONES[usize::from(z) % ZONES.len()]));
                serde_json::to_vec(&v).unwrap()
            }
            Step::Campaign {
                seller,
                campaign,
                budget,
                valid_from_h,
                valid_hours,
                discount,
                min_order,
                per_user,
                ttl_h,
                discount_budget,
                active,
                issue_hours,
            } => {
                let from = ts.saturating_add_signed(i64::from(*valid_from_h) * HOUR as i64);
                let until = from + u64::from(*valid_hours) * HOUR;
                v["type"] = json!("campaign");
                v["seller_id"] = json!(seller_id(*seller));
                v["campaign_id"] = json!(c(*campaign));
                v["budget"] = json!(budget % 12);
                v["valid_from"] = json!(from);
                v["valid_until"] = json!(until);
                v["discount_cents"] = json!(discount.cents());
                v["min_order_cents"] = json!(min_order);
                v["per_user_limit"] = json!(per_user.map(|p| p % 4));
                v["ttl_ms"] = json!(ttl_h.map(|h| u64::from(h) * HOUR));
                v["discount_budget_cents"] = json!(discount_budget.map(Amount::cents));
                v["active"] = json!(active);
                if let Some((start_h, hours)) = issue_hours {
                    let start = ts.saturating_add_signed(i64::from(*start_h) * HOUR as i64);
                    v["issue_from"] = json!(start);
                    v["issue_until"] = json!(start + u64::from(*hours) * HOUR);
                }
                serde_json::to_vec(&v).unwrap()
            }
            Step::Issue {
                seller,
                campaign,
                users,
            } => {
                let users: Vec<String> = users
                    .iter()
                    .take(6)
                    .map(|u| format!("u{}", u % 4))
                    .collect();
                if users.is_empty() {
                    continue;
                }
                v["type"] = json!("issue");
                v["seller_id"] = json!(seller_id(*seller));
                v["campaign_id"] = json!(c(*campaign));
                v["user_ids"] = json!(users);
                serde_json::to_vec(&v).unwrap()
            }
            Step::Redeem {
                seller,
                campaign,
                serial,
                user,
                order,
                order_cents,
            } => {
                v["type"] = json!("redeem");
                v["seller_id"] = json!(seller_id(*seller));
                v["coupon_id"] = json!(format!("{}:{}", c(*campaign), serial % 16));
                v["user_id"] = json!(format!("u{}", user % 4));
                v["order_id"] = json!(format!("o{}", order % 6));
                v["order_cents"] = json!(order_cents.cents());
                serde_json::to_vec(&v).unwrap()
            }
            Step::Release {
                seller,
                campaign,
                serial,
                order,
            } => {
                v["type"] = json!("release");
                v["seller_id"] = json!(seller_id(*seller));
                v["coupon_id"] = json!(format!("{}:{}", c(*campaign), serial % 16));
                v["order_id"] = json!(format!("o{}", order % 6));
                serde_json::to_vec(&v).unwrap()
            }
        };

        out.clear();
        let verdict = core.process(
            &Message {
                value: &value,
                source: Source {
                    partition: 0,
                    offset: i as i64,
                },
                key_check: None,
            },
            &mut out,
        );
        let d: Value = serde_json::from_slice(&out).expect("a decision is JSON");
        assert_eq!(d["outcome"], verdict.outcome.as_str());
        sent.push(value.clone());

        // Retention drops (before this event, which may re-create the
        // campaign: its ledger then starts after a new base): per-user
        // counts and coupons go with the campaign; serials and the discount
        // spent carry over.
        if verdict.campaigns_evicted > 0 {
            for ((s, id), m) in model.campaigns.iter_mut() {
                let base = core.state().campaign(s, id).map(|c| c.coupons.base());
                if base != Some(m.base) {
                    m.base = base.unwrap_or(m.issued);
                    m.held.clear();
                    let prefix = format!("{id}:");
                    model
                        .holders
                        .retain(|(hs, coupon), _| !(hs == s && coupon.starts_with(&prefix)));
                    model
                        .redeemed
                        .retain(|(rs, coupon), _| !(rs == s && coupon.starts_with(&prefix)));
                }
            }
        }
        if d["outcome"] == "invalid" || d["outcome"] == "duplicate" {
            continue;
        }
        check(
            &mut model,
            &value,
            &d,
            defaults.daily_issue_limit,
            defaults.timezone,
        );
    }
});

/// Updates the model with one ruled decision and asserts the invariants.
fn check(model: &mut Model, value: &[u8], d: &Value, default_daily: u64, default_zone: Zone) {
    let e: Value = serde_json::from_slice(value).expect("rendered JSON");
    let seller = e["seller_id"].as_str().unwrap().to_owned();
    let ts = e["ts"].as_u64().unwrap();
    match e["type"].as_str().unwrap() {
        "seller" => {
            let entry = model
                .sellers
                .entry(seller)
                .or_insert((default_daily, default_zone));
            if let Some(limit) = e["daily_issue_limit"].as_u64() {
                entry.0 = limit;
            }
            if let Some(zone) = e["timezone"].as_str() {
                entry.1 = Zone::parse(zone).unwrap();
            }
        }
        "campaign" => {
            model
                .sellers
                .entry(seller.clone())
                .or_insert((default_daily, default_zone));
            let key = (seller, e["campaign_id"].as_str().unwrap().to_owned());
            let m = model.campaigns.entry(key).or_default();
            m.budget = e["budget"].as_u64().unwrap();
            m.per_user = e["per_user_limit"].as_u64().unwrap_or(1);
            m.discount_budget = e["discount_budget_cents"].as_u64();
        }
        "issue" => {
            let campaign = e["campaign_id"].as_str().unwrap().to_owned();
            let (limit, zone) = model
                .sellers
                .get(&seller)
                .copied()
                .unwrap_or((default_daily, default_zone));
            let day = local_day(zone, ts);
            for r in d["results"].as_array().unwrap() {
                if r["outcome"] != "issued" {
                    continue;
                }
                let user = r["user_id"].as_str().unwrap().to_owned();
                let m = model
                    .campaigns
                    .get_mut(&(seller.clone(), campaign.clone()))
                    .expect("issued from a defined campaign");
                m.issued += 1;
                let coupon = r["coupon_id"].as_str().unwrap().to_owned();
                assert_eq!(coupon, format!("{campaign}:{}", m.issued), "serials");
                assert!(m.issued <= m.budget, "budget {} exceeded", m.budget);
                let held = m.held.entry(user.clone()).or_default();
                *held += 1;
                assert!(
                    *held <= m.per_user,
                    "per-user limit {} exceeded",
                    m.per_user
                );
                let n = model.daily.entry((seller.clone(), day)).or_default();
                *n += 1;
                assert!(*n <= limit, "daily limit {limit} exceeded");
                model.holders.insert((seller.clone(), coupon), user);
            }
        }
        "redeem" if d["outcome"] == "accepted" => {
            let coupon = e["coupon_id"].as_str().unwrap().to_owned();
            let order = e["order_id"].as_str().unwrap().to_owned();
            let key = (seller.clone(), coupon.clone());
            assert_eq!(
                model.holders.get(&key).map(String::as_str),
                e["user_id"].as_str(),
                "redeemed by its holder"
            );
            let discount = d["discount_cents"].as_u64().unwrap();
            if d["duplicate"] == true {
                assert_eq!(model.redeemed.get(&key), Some(&(order, discount)));
            } else {
                assert!(
                    !model.redeemed.contains_key(&key),
                    "{coupon} accepted twice"
                );
                let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
                let m = model.campaigns.get_mut(&(seller, campaign)).unwrap();
                m.spent += u128::from(discount);
                if let Some(budget) = m.discount_budget {
                    assert!(m.spent <= u128::from(budget), "discount budget exceeded");
                }
                model.redeemed.insert(key, (order, discount));
            }
        }
        "release" if d["outcome"] == "released" => {
            let coupon = e["coupon_id"].as_str().unwrap().to_owned();
            let key = (seller.clone(), coupon.clone());
            let (order, discount) = model
                .redeemed
                .remove(&key)
                .expect("released a redeemed coupon");
            assert_eq!(e["order_id"].as_str(), Some(order.as_str()));
            assert_eq!(d["discount_cents"].as_u64(), Some(discount));
            let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
            model.campaigns.get_mut(&(seller, campaign)).unwrap().spent -= u128::from(discount);
        }
        _ => {}
    }
}
