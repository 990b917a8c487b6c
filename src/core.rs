//! [`DecisionCore`]: one partition's deterministic step from an input
//! message to its decision: decode (section 6), key and partition checks,
//! duplicate detection (section 4), the rules (section 3), and the decision
//! encoding (section 5). The Kafka processor, `replay` and the benchmarks all
//! drive this same type; it does no I/O and reads no clock.

use crate::config::CoreConfig;
use crate::decision::{Decision, Source};
use crate::decode::{Invalid, decode};
use crate::dedup::{DedupWindow, event_id_hash};
use crate::encode::encode_decision;
use crate::event::{Event, EventType};
use crate::partitioner::partition_for;
use crate::reason::{InvalidReason, Outcome, Reason};
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
}

pub struct DecisionCore {
    config: CoreConfig,
    state: PartitionState,
    dedup: DedupWindow,
    /// Largest `ts` of the valid events so far (section 4).
    watermark: u64,
}

impl DecisionCore {
    pub fn new(config: CoreConfig) -> DecisionCore {
        DecisionCore {
            config,
            state: PartitionState::new(config.seller_defaults),
            dedup: DedupWindow::new(config.dedup_window_ms),
            watermark: 0,
        }
    }

    /// A core restored from a snapshot: `state` and `dedup` must have been
    /// built for `config` (its seller defaults and duplicate window).
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
        let source = message.source;
        let event = match decode(message.value, self.config.max_event_bytes)
            .and_then(|event| check_key(event, message.key_check, source.partition))
        {
            Ok(event) => event,
            Err(invalid) => {
                let decision = Decision::Invalid {
                    source,
                    invalid: &invalid,
                };
                encode_decision(&decision, out);
                return verdict(&decision);
            }
        };

        self.watermark = self.watermark.max(event.ts);
        let id = event_id_hash(&event.event_id);
        if self.dedup.check_and_remember(id, event.ts, self.watermark) {
            let decision = Decision::Duplicate {
                source,
                event: &event,
            };
            encode_decision(&decision, out);
            return verdict(&decision);
        }

        let ruling = self.state.apply(&event);
        let issue_results = match event.event_type() {
            EventType::Issue => self.state.issue_results(),
            _ => &[],
        };
        let decision = Decision::Ruled {
            source,
            event: &event,
            ruling,
            issue_results,
        };
        encode_decision(&decision, out);
        verdict(&decision)
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
    }
}

fn check_key<'a>(
    event: Event<'a>,
    check: Option<KeyCheck<'_>>,
    partition: i32,
) -> Result<Event<'a>, Invalid> {
    let Some(check) = check else {
        return Ok(event);
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
    Ok(event)
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
}
