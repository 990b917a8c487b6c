//! Property tests of the invariants that cost money when broken, checked on
//! random event sequences over a small universe (so that collisions, limits
//! and repeats are frequent):
//!
//! - a campaign never issues more than its budget, a user never more than
//!   the per-user limit, a seller never more than its daily limit per local
//!   day;
//! - a coupon is never accepted twice without a release in between, and an
//!   idempotent retry returns the original discount;
//! - the discount granted never exceeds the discount budget;
//! - the same input gives byte-identical output, one decision per message,
//!   and no input (arbitrary bytes included) makes the core panic.
//!
//! The checks use only the decisions and the configuration those decisions
//! applied, never the core's internal state.

use std::collections::HashMap;

use coupon_stream::config::CoreConfig;
use coupon_stream::core::{DecisionCore, Message};
use coupon_stream::decision::Source;
use coupon_stream::local_day::local_day;
use proptest::prelude::*;
use serde_json::{Value, json};

const BASE_TS: u64 = 1_762_790_400_000;
const HOUR: i64 = 3_600_000;
const TIMEZONES: [&str; 3] = ["UTC", "America/New_York", "Asia/Shanghai"];

#[derive(Debug, Clone)]
enum Spec {
    Seller {
        daily: Option<u64>,
        max_recipients: Option<u64>,
        tz: Option<usize>,
    },
    Campaign {
        campaign: u8,
        budget: u64,
        valid_from_h: i64,
        valid_hours: i64,
        discount: u64,
        min_order: Option<u64>,
        per_user: Option<u64>,
        ttl_h: Option<u64>,
        discount_budget: Option<u64>,
        active: Option<bool>,
    },
    Issue {
        campaign: u8,
        users: Vec<u8>,
    },
    Redeem {
        campaign: u8,
        serial: u8,
        user: u8,
        order: u8,
        order_cents: u64,
    },
    Release {
        campaign: u8,
        serial: u8,
        order: u8,
    },
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Step {
    seller: u8,
    event: u8,
    dt_minutes: i64,
    spec: Spec,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        1 => (prop::option::of(0u64..6), prop::option::of(1u64..4), prop::option::of(0usize..3))
            .prop_map(|(daily, max_recipients, tz)| Spec::Seller { daily, max_recipients, tz }),
        3 => (0u8..2, 0u64..7, -3i64..3, 1i64..72, 0u64..500, prop::option::of(0u64..300),
              prop::option::of(prop_oneof![1 => Just(0u64), 6 => 1u64..4]), prop::option::of(1u64..3), prop::option::of(0u64..1200),
              prop::option::of(prop::bool::weighted(0.85)))
            .prop_map(|(campaign, budget, valid_from_h, valid_hours, discount, min_order, per_user, ttl_h, discount_budget, active)|
                Spec::Campaign { campaign, budget, valid_from_h, valid_hours, discount, min_order, per_user, ttl_h, discount_budget, active }),
        5 => (0u8..2, prop::collection::vec(0u8..3, 1..5)).prop_map(|(campaign, users)| Spec::Issue { campaign, users }),
        8 => (0u8..2, serial(), 0u8..3, 0u8..4, 0u64..700)
            .prop_map(|(campaign, serial, user, order, order_cents)| Spec::Redeem { campaign, serial, user, order, order_cents }),
        3 => (0u8..2, serial(), 0u8..4).prop_map(|(campaign, serial, order)| Spec::Release { campaign, serial, order }),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Spec::Garbage),
    ]
}

/// Mostly serials that exist in a small campaign.
fn serial() -> impl Strategy<Value = u8> {
    prop_oneof![8 => 1u8..4, 1 => 0u8..9]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..2, 0u8..60, minutes_step(), spec()).prop_map(|(seller, event, dt_minutes, spec)| {
            Step {
                seller,
                event,
                dt_minutes,
                spec,
            }
        }),
        1..120,
    )
}

/// Event time mostly creeps forward (sometimes back); now and then it
/// jumps most of a day, so sequences cross local midnights.
fn minutes_step() -> impl Strategy<Value = i64> {
    prop_oneof![30 => -2i64..8, 1 => 360i64..1200]
}

/// Renders steps as input values; returns them with each value's `ts`.
fn render(steps: &[Step]) -> Vec<(Vec<u8>, u64)> {
    let mut ts = BASE_TS as i64;
    steps
        .iter()
        .map(|s| {
            ts = (ts + s.dt_minutes * 60_000).max(0);
            let mut v = json!({"event_id": format!("e{}", s.event), "ts": ts, "seller_id": format!("s{}", s.seller)});
            let c = |n: u8| format!("c{n}");
            let obj = v.as_object_mut().unwrap();
            let mut put = |k: &str, val: Value| {
                obj.insert(k.to_owned(), val);
            };
            match &s.spec {
                Spec::Seller { daily, max_recipients, tz } => {
                    put("type", json!("seller"));
                    put("daily_issue_limit", json!(daily));
                    put("max_recipients", json!(max_recipients));
                    put("timezone", json!(tz.map(|i| TIMEZONES[i])));
                }
                Spec::Campaign { campaign, budget, valid_from_h, valid_hours, discount, min_order, per_user, ttl_h, discount_budget, active } => {
                    // Windows open around the event's own time, so they stay live.
                    let from = (ts + valid_from_h * HOUR).max(0);
                    put("type", json!("campaign"));
                    put("campaign_id", json!(c(*campaign)));
                    put("budget", json!(budget));
                    put("valid_from", json!(from));
                    put("valid_until", json!(from + valid_hours * HOUR));
                    put("discount_cents", json!(discount));
                    put("min_order_cents", json!(min_order));
                    put("per_user_limit", json!(per_user));
                    put("ttl_ms", json!(ttl_h.map(|h| h as i64 * HOUR)));
                    put("discount_budget_cents", json!(discount_budget));
                    put("active", json!(active));
                }
                Spec::Issue { campaign, users } => {
                    put("type", json!("issue"));
                    put("campaign_id", json!(c(*campaign)));
                    put("user_ids", json!(users.iter().map(|u| format!("u{u}")).collect::<Vec<_>>()));
                }
                Spec::Redeem { campaign, serial, user, order, order_cents } => {
                    put("type", json!("redeem"));
                    put("coupon_id", json!(format!("c{campaign}:{serial}")));
                    put("user_id", json!(format!("u{user}")));
                    put("order_id", json!(format!("o{order}")));
                    put("order_cents", json!(order_cents));
                }
                Spec::Release { campaign, serial, order } => {
                    put("type", json!("release"));
                    put("coupon_id", json!(format!("c{campaign}:{serial}")));
                    put("order_id", json!(format!("o{order}")));
                }
                Spec::Garbage(bytes) => return (bytes.clone(), ts as u64),
            }
            (serde_json::to_vec(&v).unwrap(), ts as u64)
        })
        .collect()
}

fn run(values: &[(Vec<u8>, u64)]) -> Vec<u8> {
    let mut core = DecisionCore::new(CoreConfig::default());
    let mut out = Vec::new();
    for (offset, (value, _)) in values.iter().enumerate() {
        core.process(
            &Message {
                value,
                source: Source {
                    partition: 3,
                    offset: offset as i64,
                },
                key_check: None,
            },
            &mut out,
        );
        out.push(b'\n');
    }
    out
}

#[derive(Default, Clone, Copy)]
struct CampaignModel {
    budget: u64,
    per_user: u64,
    discount_budget: Option<u64>,
    issued: u64,
    spent: u64,
}

/// Checks the invariants on the decisions of `values`.
fn check(values: &[(Vec<u8>, u64)], output: &[u8]) -> Result<(), TestCaseError> {
    let decisions: Vec<Value> = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    prop_assert_eq!(decisions.len(), values.len());

    let defaults = CoreConfig::default().seller_defaults;
    let mut sellers: HashMap<String, (u64, chrono_tz::Tz)> = HashMap::new();
    let mut campaigns: HashMap<(String, String), CampaignModel> = HashMap::new();
    let mut holders: HashMap<(String, String), String> = HashMap::new();
    let mut held: HashMap<(String, String, String), u64> = HashMap::new();
    let mut daily: HashMap<(String, i64), u64> = HashMap::new();
    let mut redeemed: HashMap<(String, String), (String, u64)> = HashMap::new();

    for (i, (d, (value, _))) in decisions.iter().zip(values).enumerate() {
        prop_assert_eq!(&d["source"], &json!({"partition": 3, "offset": i}));
        let outcome = d["outcome"].as_str().unwrap();
        if outcome == "invalid" || outcome == "duplicate" {
            continue;
        }
        let input: Value = serde_json::from_slice(value).unwrap();
        let seller = input["seller_id"].as_str().unwrap().to_owned();
        let ts = input["ts"].as_u64().unwrap();
        match input["type"].as_str().unwrap() {
            "seller" => {
                let entry = sellers
                    .entry(seller)
                    .or_insert((defaults.daily_issue_limit, defaults.timezone));
                if let Some(limit) = input["daily_issue_limit"].as_u64() {
                    entry.0 = limit;
                }
                if let Some(tz) = input["timezone"].as_str() {
                    entry.1 = tz.parse().unwrap();
                }
            }
            "campaign" => {
                sellers
                    .entry(seller.clone())
                    .or_insert((defaults.daily_issue_limit, defaults.timezone));
                let key = (seller, input["campaign_id"].as_str().unwrap().to_owned());
                let m = campaigns.entry(key).or_default();
                m.budget = input["budget"].as_u64().unwrap();
                m.per_user = input["per_user_limit"].as_u64().unwrap_or(1);
                m.discount_budget = input["discount_budget_cents"].as_u64();
            }
            "issue" => {
                let campaign = input["campaign_id"].as_str().unwrap().to_owned();
                let (limit, tz) = sellers
                    .get(&seller)
                    .copied()
                    .unwrap_or((defaults.daily_issue_limit, defaults.timezone));
                let day = local_day(tz, ts);
                for r in d["results"].as_array().unwrap() {
                    if r["outcome"] != "issued" {
                        continue;
                    }
                    let user = r["user_id"].as_str().unwrap().to_owned();
                    let m = campaigns
                        .get_mut(&(seller.clone(), campaign.clone()))
                        .expect("issued from a known campaign");
                    m.issued += 1;
                    prop_assert_eq!(
                        r["coupon_id"].as_str().unwrap(),
                        format!("{campaign}:{}", m.issued)
                    );
                    prop_assert!(m.issued <= m.budget, "budget {} exceeded", m.budget);
                    let h = held
                        .entry((seller.clone(), campaign.clone(), user.clone()))
                        .or_default();
                    *h += 1;
                    prop_assert!(*h <= m.per_user, "per-user limit {} exceeded", m.per_user);
                    let n = daily.entry((seller.clone(), day)).or_default();
                    *n += 1;
                    prop_assert!(*n <= limit, "daily limit {} exceeded", limit);
                    holders.insert(
                        (seller.clone(), r["coupon_id"].as_str().unwrap().to_owned()),
                        user,
                    );
                }
            }
            "redeem" => {
                let coupon = input["coupon_id"].as_str().unwrap().to_owned();
                let order = input["order_id"].as_str().unwrap().to_owned();
                if outcome != "accepted" {
                    continue;
                }
                let key = (seller.clone(), coupon.clone());
                let holder = holders.get(&key).map(String::as_str);
                prop_assert_eq!(holder, input["user_id"].as_str());
                let discount = d["discount_cents"].as_u64().unwrap();
                if d["duplicate"] == true {
                    prop_assert_eq!(redeemed.get(&key), Some(&(order, discount)));
                } else {
                    prop_assert!(!redeemed.contains_key(&key), "{} accepted twice", coupon);
                    let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
                    let m = campaigns.get_mut(&(seller.clone(), campaign)).unwrap();
                    m.spent += discount;
                    if let Some(budget) = m.discount_budget {
                        prop_assert!(
                            m.spent <= budget,
                            "discount budget {} exceeded: {}",
                            budget,
                            m.spent
                        );
                    }
                    redeemed.insert(key, (order, discount));
                }
            }
            "release" => {
                if outcome != "released" {
                    continue;
                }
                let coupon = input["coupon_id"].as_str().unwrap().to_owned();
                let key = (seller.clone(), coupon.clone());
                let (order, discount) = redeemed.remove(&key).expect("released a redeemed coupon");
                prop_assert_eq!(input["order_id"].as_str().unwrap(), order);
                prop_assert_eq!(d["discount_cents"].as_u64().unwrap(), discount);
                let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
                campaigns.get_mut(&(seller, campaign)).unwrap().spent -= discount;
            }
            other => prop_assert!(false, "unexpected type {}", other),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn money_invariants_hold(steps in steps()) {
        let values = render(&steps);
        let output = run(&values);
        check(&values, &output)?;
    }

    #[test]
    fn replay_is_deterministic(steps in steps()) {
        let values = render(&steps);
        prop_assert_eq!(run(&values), run(&values));
    }

    #[test]
    fn arbitrary_bytes_never_panic(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let values: Vec<(Vec<u8>, u64)> = values.into_iter().map(|v| (v, 0)).collect();
        let output = run(&values);
        let decisions: Vec<Value> = output.split(|&b| b == b'\n').filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap()).collect();
        prop_assert_eq!(decisions.len(), values.len());
    }

    /// Valid events with one field replaced by an arbitrary JSON value:
    /// decided or invalid, never a panic, always one well-formed decision.
    #[test]
    fn mutated_fields_never_panic(steps in steps(), field in 0usize..24, replacement in json_value()) {
        let mut values = render(&steps);
        for (value, _) in values.iter_mut() {
            if let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(value) {
                let keys: Vec<String> = obj.keys().cloned().collect();
                let key = keys[field % keys.len()].clone();
                obj.insert(key, replacement.clone());
                *value = serde_json::to_vec(&obj).unwrap();
            }
        }
        let output = run(&values);
        prop_assert_eq!(output.iter().filter(|&&b| b == b'\n').count(), values.len());
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,140}".prop_map(Value::from),
        Just(Value::from((1u64 << 53) - 1)),
        Just(Value::from(1u64 << 53)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The generator must reach the interesting paths, or the properties above
/// would pass vacuously.
#[test]
fn generated_sequences_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let output = run(&render(&steps));
        for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let d: Value = serde_json::from_slice(line).unwrap();
            let key = match d["reason"].as_str() {
                Some(r) => r.to_owned(),
                None => d["outcome"].as_str().unwrap().to_owned(),
            };
            *counts.entry(key).or_default() += 1;
            for r in d["results"].as_array().into_iter().flatten() {
                if let Some(reason) = r["reason"].as_str() {
                    *counts.entry(reason.to_owned()).or_default() += 1;
                }
            }
        }
    }
    for key in [
        "applied",
        "issued",
        "partial",
        "accepted",
        "released",
        "duplicate",
        "malformed",
        "budget_exhausted",
        "user_limit_reached",
        "daily_quota_exhausted",
        "already_redeemed",
        "discount_budget_exhausted",
        "not_owner",
        "order_mismatch",
        "not_redeemed",
        "expired",
        "below_minimum",
        "campaign_inactive",
        "outside_issue_window",
        "too_many_recipients",
    ] {
        assert!(
            counts.get(key).copied().unwrap_or(0) >= 5,
            "{key} reached {:?} times: {counts:?}",
            counts.get(key)
        );
    }
}
