//! [`DecisionCore`]: one partition's deterministic step from an input
//! message to its decision: decode (section 6), key and partition checks,
//! duplicate detection (section 4), the rules (section 3), and the decision
//! encoding (section 5). The Kafka processor, `replay` and the benchmarks all
//! drive this same type; it does no I/O and reads no clock.
//!
//! State retention runs here too, in a fixed place: when a valid event has
//! moved the watermark, campaigns whose retention deadline lies behind it
//! are dropped *before* that event (even a duplicate) is decided, so the
//! same input drops the same campaigns at the same event in `run`, `replay`
//! and after a restore. The count is in the event's [`Verdict`].

use crate::config::CoreConfig;
use crate::decision::{Decision, Source};
use crate::decode::{Invalid, decode};
use crate::dedup::{DedupWindow, event_id_hash};
use crate::encode::encode_decision;
use crate::event::{Event, EventType};
use crate::partitioner::partition_for;
use crate::reason::{InvalidReason, Outcome, Reason};
use crate::state::partition_state::{Located, PrefetchStage};
use crate::state::{PartitionState, StateStats};

/// How the message reached the processor, for the checks only Kafka input
/// allows (`key_mismatch`, `wrong_partition`).
#[derive(Debug, Clone, Copy)]
pub struct KeyCheck<'a> {
    /// The message key; `None` for a message without one.
    pub key: Option<&'a [u8]>,
    /// The input topic's partition count, or `None` to skip the
    /// `wrong_partition` check.
    pub partition_count: Option<u32>,
}

/// One input message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub value: &'a [u8],
    pub source: Source,
    /// `None` offline, where messages have no key.
    pub key_check: Option<KeyCheck<'a>>,
}

/// A summary of one decision, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub event_type: Option<EventType>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub coupons_issued: usize,
    /// The event's `ts` (ms), when the value was a valid event.
    pub ts: Option<u64>,
    /// Campaigns dropped by retention just before this event was decided.
    pub campaigns_evicted: u32,
}

/// Messages between one fetch stage of [`DecisionCore::process_batch`] and
/// the next: deciding a message takes a few hundred nanoseconds, time
/// enough for a line fetched by one stage to arrive before the next reads
/// it. Of 1, 2, 3, 4 and 8, 1 replayed fastest (docs/PERFORMANCE.md).
const STAGE_SPACING: usize = 1;

/// How many messages ahead of the one being decided
/// [`DecisionCore::process_batch`] decodes and starts fetching: the first
/// of its three fetch stages, [`STAGE_SPACING`] apart, runs this far ahead,
/// and the last one [`STAGE_SPACING`] ahead of the rules. Few enough that
/// what it fetches (two lines per id) is still in cache when the rules
/// need it.
pub const DECODE_AHEAD: usize = 3 * STAGE_SPACING;

/// Messages in flight in [`DecisionCore::process_batch`]: decoded and not
/// yet decided, a power of two above [`DECODE_AHEAD`].
const IN_FLIGHT: usize = (DECODE_AHEAD + 1).next_power_of_two();

/// A decoded message: its event and the hash of its id, or why it is
/// invalid.
type Decoded<'m> = Result<(Event<'m>, u128), Invalid>;

pub struct DecisionCore {
    config: CoreConfig,
    state: PartitionState,
    dedup: DedupWindow,
    /// Largest `ts` of the valid events so far (section 4).
    watermark: u64,
}

/// Summarises rather than dumps: a core can hold tens of millions of coupons.
impl std::fmt::Debug for DecisionCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCore")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("dedup", &self.dedup)
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl DecisionCore {
    pub fn new(config: CoreConfig) -> DecisionCore {
        DecisionCore {
            config,
            state: PartitionState::with_retention(config.seller_defaults, config.retention_ms),
            dedup: DedupWindow::new(config.dedup_window_ms),
            watermark: 0,
        }
    }

    /// A core restored from a snapshot: `state` and `dedup` must have been
    /// built for `config` (its seller defaults, retention and duplicate
    /// window) and `state` advanced to `watermark`.
    pub(crate) fn from_parts(
        config: CoreConfig,
        state: PartitionState,
        dedup: DedupWindow,
        watermark: u64,
    ) -> DecisionCore {
        DecisionCore {
            config,
            state,
            dedup,
            watermark,
        }
    }

    /// The duplicate window, for snapshots.
    pub(crate) fn dedup(&self) -> &DedupWindow {
        &self.dedup
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn state(&self) -> &PartitionState {
        &self.state
    }

    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Decides one message and appends its decision's JSON to `out`.
    pub fn process(&mut self, message: &Message<'_>, out: &mut Vec<u8>) -> Verdict {
        let decoded = self.decode(message);
        self.decide(message.source, &decoded, &Located::default(), out)
    }

    /// Decides `messages` in order, as [`DecisionCore::process`] would one
    /// by one (the same decisions, byte for byte), calling `decided` with
    /// each message's index, its verdict and `out` right after its
    /// decision was appended to `out`. If `decided` fails, the messages
    /// after that one are left undecided (the state has seen none of them)
    /// and its error is returned.
    ///
    /// Faster than one by one for state larger than the processor's
    /// caches: it decodes [`DECODE_AHEAD`] messages ahead of the one it
    /// decides and starts fetching, in three stages [`STAGE_SPACING`]
    /// messages apart, the duplicate window's entries and the seller,
    /// campaign, coupon, user and order lookups their rules will make, so
    /// that those cache misses overlap each other and the rules instead of
    /// each being waited for in turn.
    pub fn process_batch<E>(
        &mut self,
        messages: &[Message<'_>],
        out: &mut Vec<u8>,
        mut decided: impl FnMut(usize, Verdict, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        // A software pipeline: at step `s`, message `s - DECODE_AHEAD` is
        // decided; then message `s - 2 * STAGE_SPACING` enters the third fetch
        // stage, message `s` is decoded and enters the first, and message `s -
        // STAGE_SPACING` the second. The third stage thus runs right after the
        // message before its own was decided: it sees the state its message's
        // rules will see (it guesses the handles of new users from it), and the
        // next message's decoding and fetches give what it fetches time to
        // arrive. Measured on `replay` of 1 M steady events, against deciding
        // last in a step without the guess: 0.96x the CPU (20 pairs), 0.98x on
        // 5 M (14 pairs). Fetches go out while the rules run, not in bursts
        // that fill the processor's miss buffers and then leave them idle. A
        // message's place in the ring is its index modulo `IN_FLIGHT`, free
        // again once it is decided. Reused for every message: a batch allocates
        // nothing.
        let mut decoded: [Option<Decoded<'_>>; IN_FLIGHT] = [const { None }; IN_FLIGHT];
        let mut located = [Located::default(); IN_FLIGHT];
        let count = messages.len();
        let in_batch = |step: usize, behind: usize| step.checked_sub(behind).filter(|&i| i < count);
        for step in 0..count + DECODE_AHEAD {
            if let Some(i) = in_batch(step, DECODE_AHEAD) {
                let at = i % IN_FLIGHT;
                let message = &messages[i];
                // Most events are new, and each takes an entry of the
                // window: the one a new id some way on will take is
                // fetched now.
                self.dedup.prefetch_free_at(DECODE_AHEAD);
                // Always filled by an earlier step; decoding again would
                // give the same.
                // Decided where it lies: an event is a few hundred bytes,
                // and moving it out cost a copy per event.
                let slot = &mut decoded[at];
                let decoded = slot.get_or_insert_with(|| self.decode(message));
                let verdict = self.decide(message.source, decoded, &located[at], out);
                *slot = None;
                decided(i, verdict, out)?;
            }
            if let Some(i) = in_batch(step, 2 * STAGE_SPACING) {
                let at = i % IN_FLIGHT;
                if let Some(Ok((event, _))) = &decoded[at] {
                    self.state
                        .prefetch(event, PrefetchStage::Third, &mut located[at]);
                }
            }
            if let Some(i) = in_batch(step, 0) {
                let at = i % IN_FLIGHT;
                debug_assert!(decoded[at].is_none(), "a message in flight is overwritten");
                let fresh = self.decode(&messages[i]);
                if let Ok((event, id)) = &fresh {
                    self.dedup.prefetch_index(*id);
                    self.state
                        .prefetch(event, PrefetchStage::First, &mut located[at]);
                }
                decoded[at] = Some(fresh);
            }
            if let Some(i) = in_batch(step, STAGE_SPACING) {
                let at = i % IN_FLIGHT;
                if let Some(Ok((event, id))) = &decoded[at] {
                    self.dedup.prefetch_entry(*id);
                    self.state
                        .prefetch(event, PrefetchStage::Second, &mut located[at]);
                }
            }
        }
        Ok(())
    }

    /// A message's event and the hash of its id, or why it is invalid.
    fn decode<'m>(&self, message: &Message<'m>) -> Decoded<'m> {
        let event = decode(message.value, self.config.max_event_bytes)?;
        check_key(&event, message.key_check, message.source.partition)?;
        let id = event_id_hash(&event.event_id);
        Ok((event, id))
    }

    /// Decides a decoded message and appends its decision to `out`.
    fn decide(
        &mut self,
        source: Source,
        decoded: &Decoded<'_>,
        located: &Located,
        out: &mut Vec<u8>,
    ) -> Verdict {
        let (event, id) = match decoded {
            Ok((event, id)) => (event, *id),
            Err(invalid) => {
                let decision = Decision::Invalid { source, invalid };
                encode_decision(&decision, out);
                return verdict(&decision);
            }
        };

        self.watermark = self.watermark.max(event.ts);
        let campaigns_evicted = self.state.advance(self.watermark);
        if self.dedup.check_and_remember(id, event.ts, self.watermark) {
            let decision = Decision::Duplicate { source, event };
            encode_decision(&decision, out);
            return Verdict {
                campaigns_evicted,
                ..verdict(&decision)
            };
        }

        let ruling = self.state.apply(event, located);
        let issue_results = match event.event_type() {
            EventType::Issue => self.state.issue_results(),
            _ => &[],
        };
        let decision = Decision::Ruled {
            source,
            event,
            ruling,
            issue_results,
        };
        encode_decision(&decision, out);
        Verdict {
            campaigns_evicted,
            ..verdict(&decision)
        }
    }

    /// Sizes of the state, the duplicate window included in `heap_bytes`.
    pub fn stats(&self) -> StateStats {
        let mut stats = self.state.stats();
        stats.heap_bytes += self.dedup.heap_bytes();
        stats
    }

    /// Event ids held in the duplicate window.
    pub fn dedup_len(&self) -> usize {
        self.dedup.len()
    }
}

fn verdict(decision: &Decision<'_>) -> Verdict {
    Verdict {
        event_type: decision.event_type(),
        outcome: decision.outcome(),
        reason: decision.reason(),
        coupons_issued: decision.coupons_issued(),
        ts: match decision {
            Decision::Invalid { .. } => None,
            Decision::Duplicate { event, .. } | Decision::Ruled { event, .. } => Some(event.ts),
        },
        campaigns_evicted: 0,
    }
}

fn check_key(
    event: &Event<'_>,
    check: Option<KeyCheck<'_>>,
    partition: i32,
) -> Result<(), Invalid> {
    let Some(check) = check else {
        return Ok(());
    };
    let seller = event.seller_id.as_bytes();
    if check.key != Some(seller) {
        return Err(Invalid::new(
            InvalidReason::KeyMismatch,
            match check.key {
                None => "message has no key; it must be the seller_id".to_owned(),
                Some(key) => format!(
                    "message key {:?} is not the seller_id {:?}",
                    String::from_utf8_lossy(key),
                    event.seller_id
                ),
            },
        ));
    }
    if let Some(count) = check.partition_count.filter(|&c| c > 0) {
        let expected = partition_for(seller, count);
        if i64::from(expected) != i64::from(partition) {
            return Err(Invalid::new(
                InvalidReason::WrongPartition,
                format!(
                    "seller {:?} belongs on partition {expected} of {count} (murmur2), not {partition}",
                    event.seller_id
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        core: &mut DecisionCore,
        value: &str,
        key_check: Option<KeyCheck<'_>>,
        partition: i32,
    ) -> serde_json::Value {
        let mut out = Vec::new();
        core.process(
            &Message {
                value: value.as_bytes(),
                source: Source {
                    partition,
                    offset: 7,
                },
                key_check,
            },
            &mut out,
        );
        serde_json::from_slice(&out).unwrap()
    }

    const SELLER: &str = r#"{"type":"seller","event_id":"e1","ts":10,"seller_id":"seller-1"}"#;

    #[test]
    fn key_must_be_the_seller_id() {
        let mut core = DecisionCore::new(CoreConfig::default());
        let check = |key| {
            Some(KeyCheck {
                key,
                partition_count: None,
            })
        };
        assert_eq!(
            run(&mut core, SELLER, check(Some(b"other")), 0)["reason"],
            "key_mismatch"
        );
        assert_eq!(
            run(&mut core, SELLER, check(None), 0)["reason"],
            "key_mismatch"
        );
        assert_eq!(
            run(&mut core, SELLER, check(Some(b"seller-1")), 0)["outcome"],
            "applied"
        );
        // An invalid event neither is remembered nor moves the watermark.
        assert_eq!(core.watermark(), 10);
    }

    #[test]
    fn partition_must_follow_murmur2() {
        let mut core = DecisionCore::new(CoreConfig::default());
        let count = 6;
        let right = partition_for(b"seller-1", count) as i32;
        let wrong = (right + 1) % count as i32;
        let check = Some(KeyCheck {
            key: Some(b"seller-1"),
            partition_count: Some(count),
        });
        let d = run(&mut core, SELLER, check, wrong);
        assert_eq!(d["reason"], "wrong_partition");
        assert!(d.get("event_id").is_none());
        assert_eq!(run(&mut core, SELLER, check, right)["outcome"], "applied");
        let off = Some(KeyCheck {
            key: Some(b"seller-1"),
            partition_count: None,
        });
        let again = SELLER.replace("e1", "e2");
        assert_eq!(run(&mut core, &again, off, wrong)["outcome"], "applied");
    }

    #[test]
    fn invalid_events_do_not_move_the_watermark() {
        let mut core = DecisionCore::new(CoreConfig::default());
        run(
            &mut core,
            r#"{"type":"seller","event_id":"x","ts":true,"seller_id":"s"}"#,
            None,
            0,
        );
        assert_eq!(core.watermark(), 0);
        assert_eq!(core.dedup_len(), 0);
        let d = run(&mut core, SELLER, None, 0);
        assert_eq!(d["source"]["offset"], 7);
        assert_eq!(run(&mut core, SELLER, None, 0)["outcome"], "duplicate");
    }

    /// Retention scenarios: a core with `retention_ms` fed JSON values.
    struct Retained {
        core: DecisionCore,
        n: usize,
    }

    impl Retained {
        fn new(retention_ms: u64) -> Retained {
            Retained {
                core: DecisionCore::new(CoreConfig {
                    retention_ms,
                    ..CoreConfig::default()
                }),
                n: 0,
            }
        }

        /// Decides `fields` (merged into a fresh event id, seller `s`) and
        /// returns the decision and the verdict.
        fn send(&mut self, ts: u64, fields: serde_json::Value) -> (serde_json::Value, Verdict) {
            self.n += 1;
            let mut v =
                serde_json::json!({"event_id": format!("e{}", self.n), "ts": ts, "seller_id": "s"});
            for (k, x) in fields.as_object().unwrap() {
                v[k] = x.clone();
            }
            let mut out = Vec::new();
            let value = serde_json::to_vec(&v).unwrap();
            let verdict = self.core.process(
                &Message {
                    value: &value,
                    source: Source {
                        partition: 0,
                        offset: self.n as i64,
                    },
                    key_check: None,
                },
                &mut out,
            );
            (serde_json::from_slice(&out).unwrap(), verdict)
        }

        fn campaign(&mut self, ts: u64, id: &str, budget: u64, valid_until: u64) -> Verdict {
            self.send(
                ts,
                serde_json::json!({"type": "campaign", "campaign_id": id, "budget": budget,
                    "valid_from": 0, "valid_until": valid_until, "discount_cents": 100,
                    "discount_budget_cents": 250}),
            )
            .1
        }

        fn issue(&mut self, ts: u64, id: &str, users: &[&str]) -> serde_json::Value {
            self.send(
                ts,
                serde_json::json!({"type": "issue", "campaign_id": id, "user_ids": users}),
            )
            .0
        }

        fn redeem(&mut self, ts: u64, coupon: &str, user: &str, order: &str) -> serde_json::Value {
            self.send(
                ts,
                serde_json::json!({"type": "redeem", "coupon_id": coupon, "user_id": user,
                    "order_id": order, "order_cents": 1000}),
            )
            .0
        }

        fn release(&mut self, ts: u64, coupon: &str, order: &str) -> serde_json::Value {
            self.send(
                ts,
                serde_json::json!({"type": "release", "coupon_id": coupon, "order_id": order}),
            )
            .0
        }

        fn seller(&mut self, ts: u64) -> Verdict {
            self.send(ts, serde_json::json!({"type": "seller"})).1
        }
    }

    fn coupon_ids(d: &serde_json::Value) -> Vec<String> {
        d["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["coupon_id"].as_str().unwrap_or("-").to_owned())
            .collect()
    }

    #[test]
    fn a_campaign_is_dropped_after_its_deadline_and_late_events_get_unknown() {
        let mut r = Retained::new(1_000);
        r.campaign(10, "c", 10, 100);
        assert_eq!(coupon_ids(&r.issue(20, "c", &["u1", "u2"])), ["c:1", "c:2"]);
        assert_eq!(r.redeem(30, "c:1", "u1", "o1")["outcome"], "accepted");
        // Deadline 100 + 1000: kept at a watermark of 1100, dropped after.
        assert_eq!(r.seller(1_100).campaigns_evicted, 0);
        assert_eq!(r.core.stats().campaigns, 1);
        assert_eq!(r.seller(1_101).campaigns_evicted, 1);
        let stats = r.core.stats();
        assert_eq!((stats.campaigns, stats.coupons), (0, 0));
        assert_eq!(stats.evicted_campaigns, 1);
        // Late events: the contract's reasons for what is not there.
        let d = r.issue(50, "c", &["u3"]);
        assert_eq!(
            (d["outcome"].as_str(), d["reason"].as_str()),
            (Some("rejected"), Some("unknown_campaign"))
        );
        assert_eq!(r.redeem(50, "c:2", "u2", "o2")["reason"], "unknown_coupon");
        // Even an idempotent retry of an accepted redemption.
        assert_eq!(r.redeem(50, "c:1", "u1", "o1")["reason"], "unknown_coupon");
        assert_eq!(r.release(2_000, "c:1", "o1")["reason"], "unknown_coupon");
        assert_eq!(r.core.stats().evicted_campaigns, 1);
    }

    #[test]
    fn a_recreated_campaign_continues_numbering_and_budgets() {
        let mut r = Retained::new(1_000);
        r.campaign(10, "c", 3, 100);
        r.issue(20, "c", &["u1", "u2"]);
        assert_eq!(r.redeem(30, "c:1", "u1", "o1")["discount_cents"], 100);
        assert_eq!(r.seller(5_000).campaigns_evicted, 1);
        // The same id again: serials go on from 3, never naming c:1 or c:2
        // anew; the budget of 3 counts the two issued before.
        r.campaign(5_000, "c", 3, 9_000);
        let d = r.issue(5_001, "c", &["u1", "u9"]);
        assert_eq!(d["outcome"], "partial");
        assert_eq!(coupon_ids(&d), ["c:3", "-"]);
        assert_eq!(d["results"][1]["reason"], "budget_exhausted");
        assert_eq!(
            r.redeem(5_002, "c:1", "u1", "o1")["reason"],
            "unknown_coupon"
        );
        assert_eq!(
            r.redeem(5_002, "c:2", "u2", "o2")["reason"],
            "unknown_coupon"
        );
        // The discount spent before stays spent (budget 250, 100 spent).
        assert_eq!(r.redeem(5_003, "c:3", "u1", "o3")["outcome"], "accepted");
        r.campaign(5_004, "c", 5, 9_000);
        r.issue(5_005, "c", &["u4"]);
        assert_eq!(
            r.redeem(5_006, "c:4", "u4", "o4")["reason"],
            "discount_budget_exhausted"
        );
        let view = crate::state::query::campaign_view(r.core.state(), 5_006, "s", "c").unwrap();
        assert_eq!((view.issued, view.discount_spent_cents), (4, 200));
    }

    #[test]
    fn coupons_and_issue_windows_outliving_valid_until_keep_a_campaign() {
        let mut r = Retained::new(1_000);
        r.campaign(10, "c", 10, 5_000);
        r.issue(20, "c", &["u1"]);
        // A new definition ends the campaign at 100, but c:1 expires at 5000.
        r.campaign(30, "c", 10, 100);
        assert_eq!(r.seller(5_900).campaigns_evicted, 0);
        assert_eq!(r.redeem(4_999, "c:1", "u1", "o1")["outcome"], "accepted");
        assert_eq!(r.seller(6_001).campaigns_evicted, 1);
        // An issuance window past valid_until keeps it too.
        r.send(
            6_001,
            serde_json::json!({"type": "campaign", "campaign_id": "w", "budget": 5,
                "valid_from": 0, "valid_until": 6_001, "issue_from": 6_001,
                "issue_until": 20_000, "discount_cents": 1}),
        );
        assert_eq!(r.seller(20_000).campaigns_evicted, 0);
        assert_eq!(r.issue(20_000, "w", &["u1"])["outcome"], "issued");
        assert_eq!(r.seller(21_001).campaigns_evicted, 1);
    }

    #[test]
    fn retention_off_keeps_everything() {
        let mut r = Retained::new(0);
        r.campaign(10, "c", 10, 100);
        r.issue(20, "c", &["u1"]);
        assert_eq!(r.seller(u64::from(u32::MAX)).campaigns_evicted, 0);
        assert_eq!(r.redeem(200, "c:1", "u1", "o1")["reason"], "expired");
    }

    #[test]
    fn daily_counts_before_the_horizon_are_retired_and_closed() {
        const DAY: u64 = 86_400_000;
        let mut r = Retained::new(2 * DAY);
        r.campaign(0, "c", 1_000, 100 * DAY);
        for day in 0..10 {
            let (a, b) = (format!("a{day}"), format!("b{day}"));
            assert_eq!(r.issue(day * DAY + 1, "c", &[&a, &b])["outcome"], "issued");
        }
        // Two days of retention, the day that ends within 26 hours west of
        // UTC (another zone could still need its count), and today.
        let days = r.core.state().seller("s").unwrap().daily.days_tracked();
        assert!(days <= 5, "{days} days tracked");
        // A late issue on a retired day is refused rather than counted
        // from zero; one inside the retention is counted as usual.
        let d = r.issue(DAY, "c", &["x"]);
        assert_eq!(d["results"][0]["reason"], "daily_quota_exhausted");
        assert_eq!(r.issue(8 * DAY + 2, "c", &["y"])["outcome"], "issued");
    }

    /// Contract section 8: a day that ended at or before the horizon is
    /// refused for every recipient even if nothing was issued on it.
    #[test]
    fn a_forgotten_day_is_refused_whether_or_not_it_had_a_count() {
        const DAY: u64 = 86_400_000;
        const HOUR: u64 = 3_600_000;
        let mut r = Retained::new(DAY);
        r.send(0, serde_json::json!({"type": "seller", "timezone": "UTC"}));
        r.campaign(1, "c", 1_000, 100 * DAY);
        r.seller(10 * DAY + 5 * HOUR);
        // Day 8 ended at 9 days, before the horizon of 9 days 5 hours; it
        // never had a count. Day 9 has not ended.
        let d = r.issue(8 * DAY + 23 * HOUR, "c", &["a", "b"]);
        assert_eq!(d["outcome"], "rejected");
        for result in d["results"].as_array().unwrap() {
            assert_eq!(result["reason"], "daily_quota_exhausted");
        }
        assert_eq!(r.issue(9 * DAY, "c", &["a"])["outcome"], "issued");
        // The instant the day ends, at the horizon exactly.
        r.seller(11 * DAY);
        assert_eq!(
            r.issue(9 * DAY + HOUR, "c", &["b"])["results"][0]["reason"],
            "daily_quota_exhausted"
        );
        assert_eq!(r.issue(10 * DAY, "c", &["b"])["outcome"], "issued");
        // Retention off: nothing is ever forgotten.
        let mut off = Retained::new(0);
        off.campaign(1, "c", 1_000, 100 * DAY);
        off.seller(90 * DAY);
        assert_eq!(off.issue(2, "c", &["a"])["outcome"], "issued");
    }

    /// "Ended" is judged in the zone in force at the issue: a seller that
    /// moves west has a date that an eastern zone had closed open again,
    /// and its count, kept, still limits it.
    #[test]
    fn a_day_ended_in_an_earlier_zone_is_judged_in_the_zone_in_force() {
        const DAY: u64 = 86_400_000;
        const HOUR: u64 = 3_600_000;
        // 2024-10-04T00:00Z: Kiritimati has been at +14 since 1995.
        const T0: u64 = 20_000 * DAY;
        let mut r = Retained::new(DAY);
        r.send(
            T0,
            serde_json::json!({"type": "seller", "timezone": "Pacific/Kiritimati",
                "daily_issue_limit": 2}),
        );
        r.campaign(T0, "c", 1_000, T0 + 100 * DAY);
        // 8 days 11 hours UTC is day 9, 01:00, at +14.
        assert_eq!(
            r.issue(T0 + 8 * DAY + 11 * HOUR, "c", &["a"])["outcome"],
            "issued"
        );
        // At 10 days 11 hours the horizon is 9 days 11 hours: day 9 at +14
        // ended at 9 days 10 hours, so an issue on it is refused...
        r.seller(T0 + 10 * DAY + 11 * HOUR);
        let d = r.issue(T0 + 8 * DAY + 12 * HOUR, "c", &["b"]);
        assert_eq!(d["results"][0]["reason"], "daily_quota_exhausted");
        // ...but at -12 the same instant 10 days 11 hours is day 9, 23:00:
        // on time, and day 9 holds one coupon of a limit of 2.
        r.send(
            T0 + 10 * DAY + 11 * HOUR,
            serde_json::json!({"type": "seller", "timezone": "Etc/GMT+12"}),
        );
        let d = r.issue(T0 + 10 * DAY + 11 * HOUR, "c", &["b", "c"]);
        assert_eq!(d["outcome"], "partial");
        assert_eq!(d["results"][1]["reason"], "daily_quota_exhausted");
        // Back east, the date is closed again.
        r.send(
            T0 + 10 * DAY + 11 * HOUR,
            serde_json::json!({"type": "seller", "timezone": "Pacific/Kiritimati"}),
        );
        let d = r.issue(T0 + 8 * DAY + 12 * HOUR, "c", &["d"]);
        assert_eq!(d["results"][0]["reason"], "daily_quota_exhausted");
    }

    /// Contract section 7: the discount spent is exact at the extremes.
    #[test]
    fn money_never_saturates() {
        const MAX: u64 = (1 << 53) - 1;
        let mut r = Retained::new(0);
        r.send(
            1,
            serde_json::json!({"type": "seller", "max_recipients": 3_000}),
        );
        let define = |r: &mut Retained, budget: Option<u64>| {
            r.send(
                2,
                serde_json::json!({"type": "campaign", "campaign_id": "m", "budget": 5_000,
                    "valid_from": 0, "valid_until": MAX, "discount_cents": MAX,
                    "per_user_limit": 1, "discount_budget_cents": budget}),
            )
        };
        let redeem = |r: &mut Retained, n: u64, order: &str, cents: u64| {
            r.send(
                3,
                serde_json::json!({"type": "redeem", "coupon_id": format!("m:{n}"),
                    "user_id": format!("u{n}"), "order_id": order, "order_cents": cents}),
            )
            .0
        };
        // A budget of exactly one maximal discount: spent may equal it.
        define(&mut r, Some(MAX));
        let users: Vec<String> = (1..=2_100).map(|n| format!("u{n}")).collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        assert_eq!(r.issue(3, "m", &refs)["outcome"], "issued");
        assert_eq!(redeem(&mut r, 1, "o1", MAX)["discount_cents"], MAX);
        assert_eq!(
            redeem(&mut r, 2, "o2", 1)["reason"],
            "discount_budget_exhausted"
        );
        assert_eq!(r.release(3, "m:1", "o1")["discount_cents"], MAX);
        assert_eq!(redeem(&mut r, 2, "o2", MAX)["outcome"], "accepted");
        assert_eq!(r.release(3, "m:2", "o2")["outcome"], "released");
        // Without a discount budget, 2,049 maximal discounts sum to more
        // than 2^64 (a u64 saturates there)...
        define(&mut r, None);
        for n in 1..=2_049 {
            assert_eq!(
                redeem(&mut r, n, &format!("p{n}"), MAX)["outcome"],
                "accepted"
            );
        }
        let view = crate::state::query::campaign_view(r.core.state(), 3, "s", "m").unwrap();
        assert_eq!(view.discount_spent_cents, 2_049 * u128::from(MAX));
        assert!(view.discount_spent_cents > u128::from(u64::MAX));
        // ...and after 2,048 releases one maximal discount is still spent:
        // with a budget of 2^53-1 again, not even one cent more fits.
        for n in 2..=2_049 {
            assert_eq!(
                r.release(3, &format!("m:{n}"), &format!("p{n}"))["outcome"],
                "released"
            );
        }
        define(&mut r, Some(MAX));
        assert_eq!(
            redeem(&mut r, 2_050, "q", 1)["reason"],
            "discount_budget_exhausted"
        );
        assert_eq!(r.release(3, "m:1", "p1")["discount_cents"], MAX);
        assert_eq!(redeem(&mut r, 2_050, "q", 1)["discount_cents"], 1);
        let view = crate::state::query::campaign_view(r.core.state(), 3, "s", "m").unwrap();
        assert_eq!(view.discount_spent_cents, 1);
        assert_eq!(view.remaining_discount_budget_cents, Some(MAX - 1));
    }

    /// Other counters at their limits: expiry, serials, daily counts.
    #[test]
    fn counters_at_their_limits_are_exact() {
        const MAX: u64 = (1 << 53) - 1;
        let mut r = Retained::new(0);
        // ts + ttl_ms beyond 2^53 is still compared exactly with valid_until.
        r.send(
            MAX - 10,
            serde_json::json!({"type": "campaign", "campaign_id": "t", "budget": MAX,
                "valid_from": 0, "valid_until": MAX, "discount_cents": 1, "ttl_ms": MAX,
                "issue_from": 0, "issue_until": MAX, "per_user_limit": MAX}),
        );
        let d = r.issue(MAX - 5, "t", &["a"]);
        assert_eq!(d["results"][0]["expires_at"], MAX);
        assert_eq!(d["results"][0]["coupon_id"], "t:1");
        // A redemption at the last valid instant.
        assert_eq!(r.redeem(MAX, "t:1", "a", "o")["outcome"], "accepted");
        // The daily limit at 2^53-1 is a limit like any other.
        r.send(
            MAX,
            serde_json::json!({"type": "seller", "daily_issue_limit": MAX}),
        );
        assert_eq!(r.issue(MAX, "t", &["a", "a"])["outcome"], "issued");
        r.send(
            MAX,
            serde_json::json!({"type": "seller", "daily_issue_limit": 3}),
        );
        let d = r.issue(MAX, "t", &["a", "b"]);
        assert_eq!(d["outcome"], "rejected");
        assert_eq!(d["results"][0]["reason"], "daily_quota_exhausted");
    }

    #[test]
    fn duplicates_and_invalid_values_around_eviction() {
        let mut r = Retained::new(1_000);
        r.campaign(10, "c", 10, 100);
        // A duplicate moves the watermark and evicts like any valid event.
        let mut out = Vec::new();
        let dup = br#"{"type":"seller","event_id":"e1","ts":2000,"seller_id":"s"}"#;
        let v = r.core.process(
            &Message {
                value: dup,
                source: Source {
                    partition: 0,
                    offset: 0,
                },
                key_check: None,
            },
            &mut out,
        );
        assert_eq!((v.outcome, v.campaigns_evicted), (Outcome::Duplicate, 1));
        // An invalid value neither moves the watermark nor evicts.
        r.campaign(2_000, "d", 10, 100);
        let bad = br#"{"type":"seller","event_id":"x","ts":9000}"#;
        let v = r.core.process(
            &Message {
                value: bad,
                source: Source {
                    partition: 0,
                    offset: 1,
                },
                key_check: None,
            },
            &mut out,
        );
        assert_eq!((v.outcome, v.campaigns_evicted), (Outcome::Invalid, 0));
        assert_eq!(r.core.stats().campaigns, 1);
    }

    mod batch {
        use super::super::*;
        use crate::workload::{Profile, Workload, WorkloadConfig};
        use proptest::prelude::*;

        /// Generated events (with duplicates and invalid values) as
        /// messages of partition 0.
        fn values(seed: u64, n: usize) -> Vec<Vec<u8>> {
            Workload::new(WorkloadConfig {
                profile: if seed.is_multiple_of(2) {
                    Profile::Steady
                } else {
                    Profile::FlashSale
                },
                sellers: 4,
                users: 40,
                seed,
                duplicate_fraction: 0.1,
                invalid_fraction: 0.05,
            })
            .values(n)
        }

        fn messages(values: &[Vec<u8>]) -> Vec<Message<'_>> {
            values
                .iter()
                .enumerate()
                .map(|(offset, value)| Message {
                    value,
                    source: Source {
                        partition: 0,
                        offset: offset as i64,
                    },
                    key_check: None,
                })
                .collect()
        }

        /// Each message's decision and verdict, one by one.
        fn one_by_one(
            core: &mut DecisionCore,
            messages: &[Message<'_>],
        ) -> Vec<(Vec<u8>, Verdict)> {
            messages
                .iter()
                .map(|m| {
                    let mut out = Vec::new();
                    let verdict = core.process(m, &mut out);
                    (out, verdict)
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Batches of any size decide as one by one, byte for byte,
            /// and a failing callback leaves the rest undecided.
            #[test]
            fn batches_decide_as_one_by_one(
                seed in 0u64..1_000,
                sizes in prop::collection::vec(1usize..80, 1..12),
                fail_at in prop::option::of(0usize..400),
            ) {
                let values = values(seed, 400);
                let messages = messages(&values);
                let want = one_by_one(&mut DecisionCore::new(CoreConfig::default()), &messages);

                let mut core = DecisionCore::new(CoreConfig::default());
                let mut got: Vec<(Vec<u8>, Verdict)> = Vec::new();
                let mut start = 0;
                let mut stopped = false;
                for size in sizes.iter().cycle() {
                    if start >= messages.len() || stopped {
                        break;
                    }
                    let end = (start + size).min(messages.len());
                    let mut out = Vec::new();
                    let mut from = 0;
                    let result = core.process_batch(&messages[start..end], &mut out, |i, verdict, out| {
                        got.push((out[from..].to_vec(), verdict));
                        from = out.len();
                        if fail_at == Some(start + i) { Err(start + i) } else { Ok(()) }
                    });
                    match result {
                        Ok(()) => prop_assert!(fail_at.is_none_or(|k| k < start || k >= end)),
                        Err(k) => {
                            prop_assert_eq!(Some(k), fail_at);
                            stopped = true;
                        }
                    }
                    start = end;
                }
                let decided = got.len();
                prop_assert_eq!(&got[..], &want[..decided]);
                if let Some(k) = fail_at {
                    prop_assert_eq!(decided, k + 1);
                    // The state saw exactly the decided messages: the rest,
                    // one by one, decide as they did in the reference.
                    let rest = one_by_one(&mut core, &messages[decided..]);
                    prop_assert_eq!(&rest[..], &want[decided..]);
                } else {
                    prop_assert_eq!(decided, messages.len());
                }
            }
        }
    }
}
