//! [`Workload`]: a seeded, deterministic generator of contract-valid coupon
//! traffic, for `loadgen`, tests and benchmarks.
//!
//! It first defines every seller and its campaigns, then emits a stream of
//! `issue`, `redeem` and `release` events with occasional setting changes,
//! keeping a model of the coupons it expects to exist so that most redeems
//! and releases name real coupons and orders. Optional fractions of
//! verbatim duplicates and invalid values exercise sections 4 and 6.
//!
//! Profiles: `steady` spreads traffic evenly over the sellers; `flash-sale`
//! skews it Zipf-wise towards a few sellers and gives seller 0 a hot campaign
//! whose small budget is exhausted within seconds of event time.

use std::collections::VecDeque;

use crate::encode;

/// Event time of the first generated event: 2025-11-11 00:00 in Shanghai.
pub const START_TS: u64 = 1_762_790_400_000;

/// Recent events kept to repeat as duplicates.
const RECENT_EVENTS_MAX: usize = 256;
/// Redemptions per campaign remembered for later releases.
const OPEN_REDEMPTIONS_MAX: usize = 1024;

/// The shape of the generated traffic (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Steady,
    FlashSale,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadConfig {
    pub profile: Profile,
    pub sellers: u32,
    /// Distinct users across all sellers.
    pub users: u32,
    pub seed: u64,
    /// Fraction of events that repeat a recent event verbatim.
    pub duplicate_fraction: f64,
    /// Fraction of events that are invalid values.
    pub invalid_fraction: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            profile: Profile::Steady,
            sellers: 1000,
            users: 1_000_000,
            seed: 1,
            duplicate_fraction: 0.01,
            invalid_fraction: 0.005,
        }
    }
}

/// SplitMix64: tiny, fast, and fixed forever, so a seed names one workload.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct CampaignModel {
    id: String,
    budget: u64,
    /// Expected holder (user index) of each serial.
    holders: Vec<u32>,
    /// (serial, order number) of redemptions not yet released.
    open_redemptions: VecDeque<(u64, u64)>,
}

struct SellerModel {
    id: String,
    max_recipients: u64,
    campaigns: Vec<CampaignModel>,
}

enum Phase {
    /// Emitting the setup events of seller `.0`, step `.1`.
    Setup(usize, usize),
    Stream,
}

pub struct Workload {
    config: WorkloadConfig,
    rng: SplitMix64,
    ts: u64,
    sequence: u64,
    sellers: Vec<SellerModel>,
    /// Cumulative seller weights, for skewed picks.
    seller_cdf: Vec<f64>,
    phase: Phase,
    recent: VecDeque<(usize, Vec<u8>)>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("config", &self.config)
            .field("ts", &self.ts)
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

const TIMEZONES: [&str; 6] = [
    "Asia/Shanghai",
    "Asia/Shanghai",
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
];

impl Workload {
    pub fn new(config: WorkloadConfig) -> Workload {
        let seller_count = config.sellers.max(1) as usize;
        let mut rng = SplitMix64::new(config.seed);
        let sellers: Vec<SellerModel> = (0..seller_count)
            .map(|s| {
                // A few sellers carry non-ASCII ids, as real shop names do.
                let id = if s % 17 == 5 {
                    format!("s{s}-店铺")
                } else {
                    format!("s{s}")
                };
                let campaign_count = 2 + rng.below(3) as usize;
                let campaigns = (0..campaign_count)
                    .map(|c| CampaignModel {
                        id: format!("c{c}"),
                        budget: if config.profile == Profile::FlashSale && s == 0 && c == 0 {
                            20_000
                        } else {
                            5_000_000
                        },
                        holders: Vec::new(),
                        open_redemptions: VecDeque::new(),
                    })
                    .collect();
                SellerModel {
                    id,
                    max_recipients: if s % 10 == 0 { 20 } else { 5 },
                    campaigns,
                }
            })
            .collect();
        let exponent = match config.profile {
            Profile::Steady => 0.0,
            Profile::FlashSale => 1.1,
        };
        let mut total = 0.0;
        let seller_cdf = (0..seller_count)
            .map(|s| {
                total += 1.0 / ((s + 1) as f64).powf(exponent);
                total
            })
            .collect();
        Workload {
            config,
            rng,
            ts: START_TS,
            sequence: 0,
            sellers,
            seller_cdf,
            phase: Phase::Setup(0, 0),
            recent: VecDeque::with_capacity(RECENT_EVENTS_MAX),
        }
    }

    /// The seller id (and so the message key) of seller index `seller`.
    pub fn seller_id(&self, seller: usize) -> &str {
        &self.sellers[seller].id
    }

    /// The next `n` events' values, for tests.
    #[cfg(test)]
    pub(crate) fn values(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let mut value = Vec::new();
                self.next_into(&mut value);
                value
            })
            .collect()
    }

    /// Writes the next event's value into `value` (cleared first) and returns
    /// the index of its seller, whose id is the message key.
    pub fn next_into(&mut self, value: &mut Vec<u8>) -> usize {
        value.clear();
        if let Phase::Setup(seller, step) = self.phase {
            self.setup_event(seller, step, value);
            let campaigns = self.sellers[seller].campaigns.len();
            self.phase = if step < campaigns {
                Phase::Setup(seller, step + 1)
            } else if seller + 1 < self.sellers.len() {
                Phase::Setup(seller + 1, 0)
            } else {
                Phase::Stream
            };
            return seller;
        }
        self.ts += self.rng.below(3);
        let roll = self.rng.unit();
        if roll < self.config.duplicate_fraction && !self.recent.is_empty() {
            let i = self.rng.below(self.recent.len() as u64) as usize;
            let (seller, bytes) = &self.recent[i];
            value.extend_from_slice(bytes);
            return *seller;
        }
        let seller = self.pick_seller();
        if roll < self.config.duplicate_fraction + self.config.invalid_fraction {
            self.invalid_event(seller, value);
            return seller;
        }
        self.stream_event(seller, value);
        // Reuse the evicted event's buffer: no allocation per event once
        // the ring is full.
        let mut copy = match self.recent.len() {
            RECENT_EVENTS_MAX => self.recent.pop_front().map(|(_, v)| v).unwrap_or_default(),
            _ => Vec::new(),
        };
        copy.clear();
        copy.extend_from_slice(value);
        self.recent.push_back((seller, copy));
        seller
    }

    fn pick_seller(&mut self) -> usize {
        let total = self.seller_cdf.last().copied().unwrap_or(1.0);
        let x = self.rng.unit() * total;
        self.seller_cdf
            .partition_point(|&c| c <= x)
            .min(self.sellers.len() - 1)
    }

    fn next_event_id(&mut self) -> String {
        self.sequence += 1;
        format!("ev-{}-{}", self.config.seed, self.sequence)
    }

    fn setup_event(&mut self, seller: usize, step: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        let s = &self.sellers[seller];
        let mut o = JsonObject::new(out);
        if step == 0 {
            let daily = if self.config.profile == Profile::FlashSale && seller == 0 {
                1_000_000
            } else {
                16_000
            };
            o.str("type", "seller")
                .str("event_id", &event_id)
                .uint("ts", self.ts)
                .str("seller_id", &s.id)
                .uint("daily_issue_limit", daily)
                .uint("max_recipients", s.max_recipients)
                .str("timezone", TIMEZONES[seller % TIMEZONES.len()]);
        } else {
            o.str("type", "campaign")
                .str("event_id", &event_id)
                .uint("ts", self.ts)
                .str("seller_id", &s.id);
            campaign_definition(&mut o, step - 1, &s.campaigns[step - 1]);
        }
        o.finish();
    }

    fn stream_event(&mut self, seller: usize, out: &mut Vec<u8>) {
        let roll = self.rng.below(1000);
        let campaign = if self.config.profile == Profile::FlashSale && seller == 0 {
            // The hot campaign takes most of the hot seller's traffic.
            if self.rng.below(4) == 0 {
                self.rng.below(self.sellers[seller].campaigns.len() as u64) as usize
            } else {
                0
            }
        } else {
            self.rng.below(self.sellers[seller].campaigns.len() as u64) as usize
        };
        let has_coupons = !self.sellers[seller].campaigns[campaign].holders.is_empty();
        match roll {
            0..=4 => self.seller_update(seller, out),
            5..=9 => self.campaign_update(seller, campaign, out),
            _ if roll < 420 || !has_coupons => self.issue(seller, campaign, out),
            _ if roll < 900 => self.redeem(seller, campaign, out),
            _ => self.release(seller, campaign, out),
        }
    }

    fn seller_update(&mut self, seller: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        let s = &self.sellers[seller];
        JsonObject::new(out)
            .str("type", "seller")
            .str("event_id", &event_id)
            .uint("ts", self.ts)
            .str("seller_id", &s.id)
            .uint("max_recipients", s.max_recipients)
            .finish();
    }

    fn campaign_update(&mut self, seller: usize, campaign: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        // Mostly active; now and then paused.
        let active = self.rng.below(5) != 0;
        let s = &self.sellers[seller];
        let mut o = JsonObject::new(out);
        o.str("type", "campaign")
            .str("event_id", &event_id)
            .uint("ts", self.ts)
            .str("seller_id", &s.id);
        campaign_definition(&mut o, campaign, &s.campaigns[campaign]);
        o.bool("active", active).finish();
    }

    fn issue(&mut self, seller: usize, campaign: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        let max = self.sellers[seller].max_recipients;
        // Mostly within the seller's limit, now and then one over.
        let recipients = if self.rng.below(50) == 0 {
            max + 1
        } else {
            1 + self.rng.below(max.min(3))
        };
        let users: Vec<u32> = (0..recipients)
            .map(|_| self.rng.below(u64::from(self.config.users.max(1))) as u32)
            .collect();
        let s = &mut self.sellers[seller];
        let c = &mut s.campaigns[campaign];
        if recipients <= max {
            for &u in &users {
                if (c.holders.len() as u64) < c.budget {
                    c.holders.push(u);
                }
            }
        }
        let mut o = JsonObject::new(out);
        o.str("type", "issue")
            .str("event_id", &event_id)
            .uint("ts", self.ts)
            .str("seller_id", &s.id)
            .str("campaign_id", &c.id);
        o.key("user_ids");
        o.out.push(b'[');
        for (i, u) in users.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            o.out.extend_from_slice(format!("\"u{u}\"").as_bytes());
        }
        o.out.push(b']');
        o.finish();
    }

    fn redeem(&mut self, seller: usize, campaign: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        let order_number = self.sequence;
        let issued = self.sellers[seller].campaigns[campaign].holders.len() as u64;
        // Recent coupons are redeemed more often than old ones.
        let serial = issued - self.rng.below(issued.min(2_000));
        let wrong_user = self.rng.below(20) == 0;
        let order_cents = 1_000 + self.rng.below(50_000);
        let random_user = self.rng.below(u64::from(self.config.users.max(1))) as u32;
        let s = &mut self.sellers[seller];
        let c = &mut s.campaigns[campaign];
        let user = if wrong_user {
            random_user
        } else {
            c.holders[(serial - 1) as usize]
        };
        if c.open_redemptions.len() == OPEN_REDEMPTIONS_MAX {
            c.open_redemptions.pop_front();
        }
        c.open_redemptions.push_back((serial, order_number));
        JsonObject::new(out)
            .str("type", "redeem")
            .str("event_id", &event_id)
            .uint("ts", self.ts)
            .str("seller_id", &s.id)
            .raw_str("coupon_id", format_args!("{}:{serial}", c.id))
            .raw_str("user_id", format_args!("u{user}"))
            .raw_str("order_id", format_args!("o{order_number}"))
            .uint("order_cents", order_cents)
            .finish();
    }

    fn release(&mut self, seller: usize, campaign: usize, out: &mut Vec<u8>) {
        let pick = self.sellers[seller].campaigns[campaign]
            .open_redemptions
            .pop_front();
        let Some((serial, order)) = pick else {
            return self.issue(seller, campaign, out);
        };
        let event_id = self.next_event_id();
        let s = &self.sellers[seller];
        let c = &s.campaigns[campaign];
        JsonObject::new(out)
            .str("type", "release")
            .str("event_id", &event_id)
            .uint("ts", self.ts)
            .str("seller_id", &s.id)
            .raw_str("coupon_id", format_args!("{}:{serial}", c.id))
            .raw_str("order_id", format_args!("o{order}"))
            .finish();
    }

    fn invalid_event(&mut self, seller: usize, out: &mut Vec<u8>) {
        let event_id = self.next_event_id();
        let s = &self.sellers[seller].id;
        let ts = self.ts;
        let text = match self.rng.below(6) {
            0 => "{\"type\":\"redeem\",".to_owned(),
            1 => format!(
                r#"{{"type":"refund","event_id":"{event_id}","ts":{ts},"seller_id":"{s}"}}"#
            ),
            2 => format!(
                r#"{{"type":"redeem","event_id":"{event_id}","ts":{ts},"seller_id":"{s}","coupon_id":"c0:1","user_id":"u1","order_id":"o"}}"#
            ),
            3 => format!(
                r#"{{"type":"redeem","event_id":"{event_id}","ts":{ts},"seller_id":"{s}","coupon_id":"c0:1","user_id":"u1","order_id":"o","order_cents":-5}}"#
            ),
            4 => format!(
                r#"{{"type":"seller","event_id":"{event_id}","ts":{ts},"seller_id":"{s}","timezone":"Mars/Olympus"}}"#
            ),
            _ => "[1,2,3]".to_owned(),
        };
        out.extend_from_slice(text.as_bytes());
    }
}

/// The definition of campaign number `index` of its seller: every field of a
/// `campaign` event but the envelope and `active`. The setup event and every
/// later update write it here, whole, because a `campaign` event replaces
/// the whole definition: an update that left out `ttl_ms` or
/// `discount_budget_cents` would silently drop that rule.
fn campaign_definition(o: &mut JsonObject<'_>, index: usize, c: &CampaignModel) {
    o.str("campaign_id", &c.id)
        .uint("budget", c.budget)
        .uint("valid_from", START_TS - 86_400_000)
        .uint("valid_until", START_TS + 30 * 86_400_000)
        .uint("discount_cents", 500 * (index as u64 + 2))
        .uint("min_order_cents", if index == 0 { 0 } else { 3_000 })
        .uint("per_user_limit", 3);
    if index == 1 {
        o.uint("ttl_ms", 1_800_000);
    }
    if index == 2 {
        o.uint("discount_budget_cents", 50_000_000);
    }
}

/// Writes one flat JSON object.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Self {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        encode::string(self.out, key);
        self.out.push(b':');
        self
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        encode::string(self.out, value);
        self
    }

    fn raw_str(&mut self, key: &str, value: std::fmt::Arguments<'_>) -> &mut Self {
        self.str(key, &value.to_string())
    }

    fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    fn finish(&mut self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CoreConfig;
    use crate::decision::Source;
    use crate::decision_core::{DecisionCore, Message};
    use crate::reason::Outcome;
    use std::collections::HashMap;

    fn run(config: WorkloadConfig, n: usize) -> HashMap<&'static str, usize> {
        let mut w = Workload::new(config);
        let mut core = DecisionCore::new(CoreConfig::default());
        let mut value = Vec::new();
        let mut out = Vec::new();
        let mut counts = HashMap::new();
        for offset in 0..n {
            let seller = w.next_into(&mut value);
            if value.starts_with(b"{\"type\"")
                && !value.starts_with(b"{\"type\":\"redeem\",\"event_id\":\"x")
            {
                assert!(
                    std::str::from_utf8(&value)
                        .unwrap()
                        .contains(w.seller_id(seller))
                        || value.len() < 40
                );
            }
            out.clear();
            let v = core.process(
                &Message {
                    value: &value,
                    source: Source {
                        partition: 0,
                        offset: offset as i64,
                    },
                    key_check: None,
                },
                &mut out,
            );
            *counts.entry(v.outcome.as_str()).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn steady_traffic_is_mostly_valid_and_accepted() {
        let counts = run(
            WorkloadConfig {
                sellers: 50,
                users: 5000,
                ..WorkloadConfig::default()
            },
            50_000,
        );
        let n = |o: Outcome| counts.get(o.as_str()).copied().unwrap_or(0);
        assert!(n(Outcome::Issued) > 10_000, "{counts:?}");
        assert!(n(Outcome::Accepted) > 5_000, "{counts:?}");
        assert!(n(Outcome::Released) > 500, "{counts:?}");
        assert!(n(Outcome::Duplicate) > 100, "{counts:?}");
        assert!(
            n(Outcome::Invalid) > 50 && n(Outcome::Invalid) < 1000,
            "{counts:?}"
        );
    }

    #[test]
    fn flash_sale_exhausts_the_hot_budget() {
        let mut w = Workload::new(WorkloadConfig {
            profile: Profile::FlashSale,
            sellers: 100,
            ..WorkloadConfig::default()
        });
        let mut core = DecisionCore::new(CoreConfig::default());
        let (mut value, mut out) = (Vec::new(), Vec::new());
        let mut exhausted = 0;
        for offset in 0..200_000 {
            w.next_into(&mut value);
            out.clear();
            core.process(
                &Message {
                    value: &value,
                    source: Source {
                        partition: 0,
                        offset,
                    },
                    key_check: None,
                },
                &mut out,
            );
            if out.windows(16).any(|w| w == b"budget_exhausted") {
                exhausted += 1;
            }
        }
        assert_eq!(core.state().campaign("s0", "c0").unwrap().issued(), 20_000);
        assert!(exhausted > 1000, "{exhausted}");
    }

    /// A `campaign` event replaces the whole definition, so every update
    /// must restate what the setup event defined, `active` aside.
    #[test]
    fn campaign_updates_restate_the_whole_definition() {
        let mut w = Workload::new(WorkloadConfig {
            sellers: 20,
            ..WorkloadConfig::default()
        });
        let mut definitions: HashMap<(String, String), serde_json::Value> = HashMap::new();
        let (mut value, mut updates) = (Vec::new(), 0);
        for _ in 0..100_000 {
            w.next_into(&mut value);
            let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&value) else {
                continue;
            };
            if event["type"] != "campaign" {
                continue;
            }
            let fields = event.as_object_mut().unwrap();
            for envelope in ["event_id", "ts", "active"] {
                fields.remove(envelope);
            }
            let key = (
                fields["seller_id"].as_str().unwrap().to_owned(),
                fields["campaign_id"].as_str().unwrap().to_owned(),
            );
            match definitions.get(&key) {
                None => {
                    definitions.insert(key, event);
                }
                Some(defined) => {
                    assert_eq!(&event, defined, "update of {key:?}");
                    updates += 1;
                }
            }
        }
        assert!(updates > 100, "{updates} updates");
        let with = |field: &str| {
            definitions
                .values()
                .filter(|d| d.get(field).is_some())
                .count()
        };
        assert!(with("ttl_ms") > 0 && with("discount_budget_cents") > 0);
    }

    #[test]
    fn a_seed_names_one_workload() {
        let generate = |seed| {
            let mut w = Workload::new(WorkloadConfig {
                seed,
                ..WorkloadConfig::default()
            });
            let mut v = Vec::new();
            (0..5000)
                .map(|_| {
                    w.next_into(&mut v);
                    v.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(generate(7), generate(7));
        assert_ne!(generate(7), generate(8));
    }
}
