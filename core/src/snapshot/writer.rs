//! [`encode`]: one partition's core as snapshot sections, in the layout
//! below: the [`CoreConfig`](crate::config::CoreConfig) the core was built
//! with, the watermark, both interners (with their handle numbering), every
//! seller's settings, daily counts and campaigns, every campaign's
//! definition, counters and coupon ledger, and the duplicate window.
//!
//! Format version 2. Integers are unsigned LEB128 varints unless noted,
//! `zz` marks a zigzag varint of a wrapping difference, and a string is a
//! varint byte length and UTF-8 bytes. Maps are written sorted by key, so
//! the same state always gives the same bytes.
//!
//! ```text
//! magic      b"CSSNAP", version u32 LE
//! config     dedup_window_ms, max_event_bytes, default daily_issue_limit,
//!            default max_recipients, default timezone (IANA name),
//!            retention_ms (v2)
//! watermark
//! users      count, then each id in handle order, front-coded: bytes
//!            shared with the previous id, then the rest as a string
//! orders     the same
//! sellers    count, then by ascending id: id, daily_issue_limit,
//!            max_recipients, timezone, day count and per day (zz day,
//!            issued), retired days (v2: 0 for none, or 1 and zz the first
//!            day not retired), campaign count and per campaign by
//!            ascending id:
//!              id, flags (active | ttl given << 1 | discount budget given
//!              << 2), budget, valid_from, valid_until, discount_cents,
//!              min_order_cents, per_user_limit, issue_from, issue_until,
//!              [ttl_ms], [discount_budget_cents], discount_spent_cents,
//!              ledger block: byte length u64 LE, base serial (v2), count
//!              of coupons held, then per coupon in serial order: holder
//!              << 1 | redeemed, zz expires_at, and when redeemed: order,
//!              discount_cents
//!            then (v2) tombstone count and per tombstone by ascending id:
//!              id, coupons issued, discount_spent_cents
//! dedup      remembered ids, bucket count, then per bucket ascending: zz
//!            index, id count, per id: id u128 LE and 0, or 1 + (first-seen
//!            ts - bucket start) when this bucket files the id's first
//!            sighting; since the 64-bit-keyed window, each remembered
//!            id appears once, and a bucket's ids are sorted by (ts, id)
//! checksum   xxh3_64 of all preceding bytes, u64 LE
//! ```
//!
//! `discount_spent_cents` is a varint of up to 128 bits (contract v1.1
//! keeps the sum exact); below 2^64 its bytes are those of the 64-bit
//! varint earlier builds wrote, so their snapshots read unchanged. The
//! retired-days floor is only ever set from such older snapshots: since
//! v1.1, which days are closed follows from the watermark and the zone.
//!
//! Three things are derived rather than stored: coupons per user (one per
//! coupon held, rebuilt from the ledger), redemption slots (packed in
//! serial order with nothing free; a slot number never reaches a decision)
//! and the retention deadlines (a function of each campaign's definition
//! and coupons).

use crate::decision_core::DecisionCore;
use crate::dedup::DedupWindow;
use crate::event::CampaignDefinition;
use crate::intern::Interner;
use crate::state::campaign::Campaign;
use crate::state::coupon_ledger::CouponLedger;
use crate::state::seller::Seller;

use super::envelope::{FORMAT_VERSION, put_config, put_header, seal};
use super::wire::{put_bytes, put_str, put_varint, put_varint_u128, zigzag};

/// Campaign flag bits.
pub(super) const FLAG_ACTIVE: u8 = 1;
pub(super) const FLAG_TTL: u8 = 1 << 1;
pub(super) const FLAG_DISCOUNT_BUDGET: u8 = 1 << 2;

/// Appends the complete state of `core` (everything that can influence a
/// later decision: partition state, dedup window, watermark, and the
/// [`CoreConfig`](crate::config::CoreConfig) values it was built with) to
/// `out`.
pub fn encode(core: &DecisionCore, out: &mut Vec<u8>) {
    encode_as(core, FORMAT_VERSION, out);
}

/// [`encode`] in format `version`. Version 1 has no place for retention
/// state, so it is written only by tests, of states that have none.
pub(super) fn encode_as(core: &DecisionCore, version: u32, out: &mut Vec<u8>) {
    let v2 = version >= 2;
    let start = out.len();
    let state = core.state();
    let stats = state.stats();
    // Typical sizes: ~10 bytes per id, ~6 per coupon, ~18 per window id.
    out.reserve(
        64 + (stats.users + stats.orders) * 10 + stats.coupons as usize * 6 + core.dedup_len() * 18,
    );
    put_header(out, version);
    put_config(out, core.config(), v2);
    put_varint(out, core.watermark());

    put_interner(out, state.users());
    put_interner(out, state.orders());

    let mut sellers: Vec<(&str, &Seller)> = state.sellers().collect();
    sellers.sort_unstable_by_key(|&(id, _)| id);
    put_varint(out, sellers.len() as u64);
    for (id, seller) in sellers {
        put_seller(out, id, seller, v2);
    }

    put_dedup(out, core.dedup());

    seal(out, start);
}

/// Ids in handle order, each as its prefix shared with the one before and
/// the rest: ids that arrive in sequence share most of their bytes.
fn put_interner(out: &mut Vec<u8>, interner: &Interner) {
    put_varint(out, interner.len() as u64);
    let mut previous: &[u8] = &[];
    for bytes in interner.iter_bytes() {
        let shared = bytes
            .iter()
            .zip(previous)
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(out, shared as u64);
        put_bytes(out, &bytes[shared..]);
        previous = bytes;
    }
}

fn put_seller(out: &mut Vec<u8>, id: &str, seller: &Seller, v2: bool) {
    put_str(out, id);
    let settings = &seller.settings;
    put_varint(out, settings.daily_issue_limit);
    put_varint(out, settings.max_recipients);
    put_str(out, settings.timezone.name());
    let days = seller.daily.days();
    put_varint(out, days.len() as u64);
    let mut previous = 0i64;
    for &(day, issued) in days {
        put_varint(out, zigzag(day.wrapping_sub(previous)));
        put_varint(out, issued);
        previous = day;
    }
    if v2 {
        match seller.daily.retired_before() {
            None => out.push(0),
            Some(floor) => {
                out.push(1);
                put_varint(out, zigzag(floor));
            }
        }
    }
    let mut campaigns: Vec<(&str, &Campaign)> = seller
        .campaigns
        .iter()
        .map(|(id, campaign)| (&**id, &**campaign))
        .collect();
    campaigns.sort_unstable_by_key(|&(id, _)| id);
    put_varint(out, campaigns.len() as u64);
    for (id, campaign) in campaigns {
        put_str(out, id);
        put_definition(out, &campaign.definition);
        put_varint_u128(out, campaign.discount_spent_cents);
        put_ledger(out, &campaign.coupons, v2);
    }
    if v2 {
        let mut tombstones: Vec<_> = seller.evicted.iter().collect();
        tombstones.sort_unstable_by_key(|&(id, _)| id);
        put_varint(out, tombstones.len() as u64);
        for (id, tombstone) in tombstones {
            put_str(out, id);
            put_varint(out, tombstone.issued);
            put_varint_u128(out, tombstone.discount_spent_cents);
        }
    }
}

fn put_definition(out: &mut Vec<u8>, d: &CampaignDefinition) {
    let flags = if d.active { FLAG_ACTIVE } else { 0 }
        | if d.ttl_ms.is_some() { FLAG_TTL } else { 0 }
        | if d.discount_budget_cents.is_some() {
            FLAG_DISCOUNT_BUDGET
        } else {
            0
        };
    out.push(flags);
    for v in [
        d.budget,
        d.valid_from,
        d.valid_until,
        d.discount_cents,
        d.min_order_cents,
        d.per_user_limit,
        d.issue_from,
        d.issue_until,
    ] {
        put_varint(out, v);
    }
    if let Some(ttl) = d.ttl_ms {
        put_varint(out, ttl);
    }
    if let Some(budget) = d.discount_budget_cents {
        put_varint(out, budget);
    }
}

/// One campaign's coupons as a length-prefixed block.
fn put_ledger(out: &mut Vec<u8>, ledger: &CouponLedger, v2: bool) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    if v2 {
        put_varint(out, ledger.base());
    }
    put_varint(out, ledger.held());
    let mut previous_expiry = 0u64;
    for coupon in ledger.iter() {
        let redemption = ledger.redemption(coupon);
        put_varint(
            out,
            (u64::from(coupon.holder) << 1) | u64::from(redemption.is_some()),
        );
        put_varint(
            out,
            zigzag(coupon.expires_at.wrapping_sub(previous_expiry) as i64),
        );
        previous_expiry = coupon.expires_at;
        if let Some(r) = redemption {
            put_varint(out, u64::from(r.order));
            put_varint(out, r.discount_cents);
        }
    }
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

fn put_dedup(out: &mut Vec<u8>, dedup: &DedupWindow) {
    let bucket_ms = dedup.bucket_ms();
    // Each remembered id not yet due to be swept once, in its first
    // sighting's bucket, sorted by (ts, id) (earlier builds filed ids in
    // arrival order, and also wrote an older filing of an id seen again,
    // with 0).
    let entries = dedup.entries_by_ts();
    put_varint(out, entries.len() as u64);
    let buckets: Vec<&[(u64, u128)]> = entries
        .chunk_by(|a, b| a.0 / bucket_ms == b.0 / bucket_ms)
        .collect();
    put_varint(out, buckets.len() as u64);
    let mut previous = 0u64;
    for ids in buckets {
        // A chunk is never empty; its first `ts` names its bucket.
        let index = ids.first().map_or(0, |&(ts, _)| ts / bucket_ms);
        put_varint(out, zigzag(index.wrapping_sub(previous) as i64));
        previous = index;
        put_varint(out, ids.len() as u64);
        let start = index.wrapping_mul(bucket_ms);
        for &(ts, id) in ids {
            out.extend_from_slice(&id.to_le_bytes());
            put_varint(out, ts - start + 1);
        }
    }
}
