//! Snapshots: the binary format of one partition's [`DecisionCore`], so that
//! a restarted or reassigned worker resumes from durable state instead of
//! replaying the partition from its first event.
//!
//! [`encode`] writes everything that can influence a later decision: the
//! [`CoreConfig`] the core was built with, the watermark, both interners
//! (with their handle numbering), every seller's settings, daily counts and
//! campaigns, every campaign's definition, counters and coupon ledger, and
//! the duplicate window. [`decode`] rebuilds a core that decides every
//! continuation byte for byte as the original would, and that encodes to
//! the same bytes again.
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
//!            sighting
//! checksum   xxh3_64 of all preceding bytes, u64 LE
//! ```
//!
//! `discount_spent_cents` is a varint of up to 128 bits (contract v1.1
//! keeps the sum exact); below 2^64 its bytes are those of the 64-bit
//! varint earlier builds wrote, so their snapshots read unchanged. The
//! retired-days floor is only ever set from such older snapshots: since
//! v1.1, which days are closed follows from the watermark and the zone.
//!
//! Version 2 added state retention (`--retention-ms`): the setting, each
//! seller's retired days and tombstones, and each ledger's base serial.
//! [`decode`] still reads version 1, written before retention existed, as
//! a state in which nothing was dropped yet, under whatever retention the
//! process runs with: the first event after the restore applies it. A
//! version 2 snapshot taken with a different retention is refused like
//! any other configuration mismatch, since retention changes decisions.
//!
//! Three things are derived rather than stored: coupons per user (one per
//! coupon held, rebuilt from the ledger), redemption slots (packed in
//! serial order with nothing free; a slot number never reaches a decision)
//! and the retention deadlines (a function of each campaign's definition
//! and coupons).
//!
//! Decoding treats its input as untrusted: every count is checked against
//! the bytes left before anything is allocated for it, every handle against
//! its interner, and any inconsistency is an error, never a panic.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::config::CoreConfig;
use crate::core::DecisionCore;
use crate::dedup::DedupWindow;
use crate::event::CampaignDefinition;
use crate::id::{ID_BYTES_MAX, INT_MAX, is_valid_id};
use crate::intern::Interner;
use crate::state::PartitionState;
use crate::state::campaign::{Campaign, Tombstone};
use crate::state::coupon_ledger::{COUPONS_MAX, CouponLedger, Redemption};
use crate::state::seller::{Seller, SellerSettings};

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 6] = b"CSSNAP";

/// The format [`encode`] writes and [`decode`] reads.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format [`decode`] still reads: before state retention.
pub const FORMAT_VERSION_V1: u32 = 1;

const HEADER_BYTES: usize = MAGIC.len() + 4;
const CHECKSUM_BYTES: usize = 8;

/// Longest time zone name accepted (IANA names have at most 32 bytes).
const TIMEZONE_BYTES_MAX: usize = 64;

/// Fewest bytes one encoded item of each kind takes, to check a count
/// against the input left before allocating for it.
const MIN_ID_BYTES: usize = 2;
/// Id, two settings, time zone, day and campaign counts.
const MIN_SELLER_BYTES: usize = 8;
const MIN_DAY_BYTES: usize = 2;
/// Id, flags, eight definition values, spent, ledger length and count.
const MIN_CAMPAIGN_BYTES: usize = 21;
const MIN_COUPON_BYTES: usize = 2;
const MIN_BUCKET_BYTES: usize = 2;
const MIN_DEDUP_ID_BYTES: usize = 17;
/// Id, issued, discount spent.
const MIN_TOMBSTONE_BYTES: usize = 4;

const FLAG_ACTIVE: u8 = 1;
const FLAG_TTL: u8 = 1 << 1;
const FLAG_DISCOUNT_BUDGET: u8 = 1 << 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot is truncated")]
    Truncated,
    #[error("not a snapshot (bad magic bytes)")]
    BadMagic,
    #[error(
        "snapshot format version {0} is not supported (this build reads {FORMAT_VERSION_V1} and {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error("invalid snapshot: {0}")]
    Invalid(&'static str),
    #[error("snapshot was taken with a different {0}")]
    ConfigMismatch(&'static str),
}

/// Appends the complete state of `core` (everything that can influence a
/// later decision: partition state, dedup window, watermark, and the
/// [`CoreConfig`] values it was built with) to `out`.
pub fn encode(core: &DecisionCore, out: &mut Vec<u8>) {
    encode_as(core, FORMAT_VERSION, out);
}

/// [`encode`] in format `version`. Version 1 has no place for retention
/// state, so it is written only by tests, of states that have none.
fn encode_as(core: &DecisionCore, version: u32, out: &mut Vec<u8>) {
    let v2 = version >= 2;
    let start = out.len();
    let state = core.state();
    let stats = state.stats();
    // Typical sizes: ~10 bytes per id, ~6 per coupon, ~18 per window id.
    out.reserve(
        64 + (stats.users + stats.orders) * 10 + stats.coupons as usize * 6 + core.dedup_len() * 18,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());

    let config = core.config();
    put_varint(out, config.dedup_window_ms);
    put_varint(out, config.max_event_bytes as u64);
    put_varint(out, config.seller_defaults.daily_issue_limit);
    put_varint(out, config.seller_defaults.max_recipients);
    put_str(out, config.seller_defaults.timezone.name());
    if v2 {
        put_varint(out, config.retention_ms);
    }
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

    let checksum = xxhash_rust::xxh3::xxh3_64(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// Rebuilds a core from [`encode`]'s bytes. `config` is the running
/// process's configuration; if it differs from the snapshot's in a value
/// that changes decisions, the result is [`SnapshotError::ConfigMismatch`]
/// naming the field (the caller logs it and starts from scratch).
pub fn decode(bytes: &[u8], config: CoreConfig) -> Result<DecisionCore, SnapshotError> {
    let (version, body) = open_envelope(bytes)?;
    let v2 = version >= 2;
    let mut r = Reader::new(body);
    check_config(&mut r, &config, v2)?;
    let watermark = r.varint()?;
    if watermark > INT_MAX {
        return Err(SnapshotError::Invalid(
            "watermark beyond the contract's ts range",
        ));
    }
    let users = read_interner(&mut r)?;
    let orders = read_interner(&mut r)?;
    let handles = Handles {
        users: users.len() as u64,
        orders: orders.len() as u64,
    };
    let seller_count = r.count(MIN_SELLER_BYTES)?;
    let mut sellers = HashMap::with_capacity(seller_count);
    let mut previous: Option<&str> = None;
    for _ in 0..seller_count {
        let id = r.id()?;
        if previous.is_some_and(|p| p >= id) {
            return Err(SnapshotError::Invalid("sellers not in ascending id order"));
        }
        previous = Some(id);
        sellers.insert(id.into(), read_seller(&mut r, handles, v2)?);
    }
    let dedup = read_dedup(&mut r, config.dedup_window_ms)?;
    if !r.rest.is_empty() {
        return Err(SnapshotError::Invalid("bytes after the last section"));
    }
    let state = PartitionState::restore(
        config.seller_defaults,
        config.retention_ms,
        watermark,
        sellers,
        users,
        orders,
    );
    Ok(DecisionCore::from_parts(config, state, dedup, watermark))
}

// ---------------------------------------------------------------- encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The same LEB128 bytes as [`put_varint`] for values below 2^64.
fn put_varint_u128(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
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
        .map(|(id, campaign)| (&**id, campaign))
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
    put_varint(out, dedup.len() as u64);
    let buckets: Vec<_> = dedup.buckets().collect();
    put_varint(out, buckets.len() as u64);
    let mut previous = 0u64;
    for (index, ids) in buckets {
        put_varint(out, zigzag(index.wrapping_sub(previous) as i64));
        previous = index;
        put_varint(out, ids.len() as u64);
        let start = index.wrapping_mul(bucket_ms);
        for &id in ids {
            out.extend_from_slice(&id.to_le_bytes());
            match dedup.first_seen(id) {
                // Every remembered id is filed in its first sighting's
                // bucket; a repeat filing there carries the same ts.
                Some(ts) if ts / bucket_ms == index => put_varint(out, ts - start + 1),
                _ => out.push(0),
            }
        }
    }
}

// ---------------------------------------------------------------- decoding

/// Checks magic, version and checksum; returns the version and the
/// sections between them.
fn open_envelope(bytes: &[u8]) -> Result<(u32, &[u8]), SnapshotError> {
    let Some((magic, rest)) = bytes.split_at_checked(MAGIC.len()) else {
        return Err(if MAGIC.starts_with(bytes) {
            SnapshotError::Truncated
        } else {
            SnapshotError::BadMagic
        });
    };
    if magic != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let Some((version, _)) = rest.split_first_chunk::<4>() else {
        return Err(SnapshotError::Truncated);
    };
    let version = u32::from_le_bytes(*version);
    if version != FORMAT_VERSION && version != FORMAT_VERSION_V1 {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let Some((covered, checksum)) = bytes.split_last_chunk::<CHECKSUM_BYTES>() else {
        return Err(SnapshotError::Truncated);
    };
    let Some(body) = covered.get(HEADER_BYTES..) else {
        return Err(SnapshotError::Truncated);
    };
    if xxhash_rust::xxh3::xxh3_64(covered) != u64::from_le_bytes(*checksum) {
        return Err(SnapshotError::Checksum);
    }
    Ok((version, body))
}

fn check_config(r: &mut Reader<'_>, config: &CoreConfig, v2: bool) -> Result<(), SnapshotError> {
    let mismatch = |field| Err(SnapshotError::ConfigMismatch(field));
    if r.varint()? != config.dedup_window_ms {
        return mismatch("dedup_window_ms");
    }
    if r.varint()? != config.max_event_bytes as u64 {
        return mismatch("max_event_bytes");
    }
    let defaults = &config.seller_defaults;
    if r.varint()? != defaults.daily_issue_limit {
        return mismatch("seller_defaults.daily_issue_limit");
    }
    if r.varint()? != defaults.max_recipients {
        return mismatch("seller_defaults.max_recipients");
    }
    if r.str(TIMEZONE_BYTES_MAX)? != defaults.timezone.name() {
        return mismatch("seller_defaults.timezone");
    }
    // Version 1 predates retention: nothing was dropped, which any
    // retention setting continues from.
    if v2 && r.varint()? != config.retention_ms {
        return mismatch("retention_ms");
    }
    Ok(())
}

/// Sizes of the interners, which bound every handle.
#[derive(Clone, Copy)]
struct Handles {
    users: u64,
    orders: u64,
}

fn read_interner(r: &mut Reader<'_>) -> Result<Interner, SnapshotError> {
    let count = r.count(MIN_ID_BYTES)?;
    let mut interner = Interner::new();
    interner.reserve(count);
    let mut buf = [0u8; ID_BYTES_MAX];
    let mut len = 0usize;
    for handle in 0..count {
        let shared = r.varint()?;
        let rest = r.varint()?;
        if shared > len as u64 {
            return Err(SnapshotError::Invalid(
                "id shares more than the previous id",
            ));
        }
        let shared = shared as usize;
        if (rest == 0 && shared == 0) || rest > (ID_BYTES_MAX - shared) as u64 {
            return Err(SnapshotError::Invalid("id length outside 1 to 128 bytes"));
        }
        len = shared + rest as usize;
        buf[shared..len].copy_from_slice(r.bytes(rest as usize)?);
        let id = std::str::from_utf8(&buf[..len])
            .map_err(|_| SnapshotError::Invalid("string is not UTF-8"))?;
        match interner.intern(id) {
            Ok(h) if h as usize == handle => {}
            Ok(_) => return Err(SnapshotError::Invalid("an interned id appears twice")),
            Err(_) => return Err(SnapshotError::Invalid("too many interned ids")),
        }
    }
    Ok(interner)
}

fn read_seller(r: &mut Reader<'_>, handles: Handles, v2: bool) -> Result<Seller, SnapshotError> {
    let daily_issue_limit = r.varint()?;
    let max_recipients = r.varint()?;
    let timezone = crate::config::parse_timezone(r.str(TIMEZONE_BYTES_MAX)?)
        .map_err(|_| SnapshotError::Invalid("unknown time zone"))?;
    let mut seller = Seller::new(SellerSettings {
        daily_issue_limit,
        max_recipients,
        timezone,
    });
    let day_count = r.count(MIN_DAY_BYTES)?;
    let mut day = 0i64;
    for i in 0..day_count {
        let next = day.wrapping_add(unzigzag(r.varint()?));
        if i > 0 && next <= day {
            return Err(SnapshotError::Invalid("days not in ascending order"));
        }
        day = next;
        // Appends: the day is after every day set so far.
        seller.daily.set_issued(day, r.varint()?);
    }
    if v2 {
        let floor = match r.byte()? {
            0 => None,
            1 => Some(unzigzag(r.varint()?)),
            _ => return Err(SnapshotError::Invalid("bad retired-days marker")),
        };
        if let (Some(floor), Some(&(oldest, _))) = (floor, seller.daily.days().first())
            && oldest < floor
        {
            return Err(SnapshotError::Invalid("a retired day still has a count"));
        }
        seller.daily.set_retired_before(floor);
    }
    let campaign_count = r.count(MIN_CAMPAIGN_BYTES)?;
    seller.campaigns.reserve(campaign_count);
    let mut previous: Option<&str> = None;
    for _ in 0..campaign_count {
        let id = r.id()?;
        if previous.is_some_and(|p| p >= id) {
            return Err(SnapshotError::Invalid(
                "campaigns not in ascending id order",
            ));
        }
        previous = Some(id);
        let definition = read_definition(r)?;
        let discount_spent_cents = r.varint_u128()?;
        let (coupons, redeemed_discounts) = read_ledger(r, handles, v2)?;
        // The rules keep the spent sum at least the redeemed coupons'
        // discounts (a release subtracts its coupon's).
        if discount_spent_cents < redeemed_discounts {
            return Err(SnapshotError::Invalid(
                "discount spent below the redeemed coupons' discounts",
            ));
        }
        seller.campaigns.insert(
            id.into(),
            Campaign::restore(definition, discount_spent_cents, coupons),
        );
    }
    if v2 {
        let tombstone_count = r.count(MIN_TOMBSTONE_BYTES)?;
        seller.evicted.reserve(tombstone_count);
        let mut previous: Option<&str> = None;
        for _ in 0..tombstone_count {
            let id = r.id()?;
            if previous.is_some_and(|p| p >= id) {
                return Err(SnapshotError::Invalid(
                    "tombstones not in ascending id order",
                ));
            }
            previous = Some(id);
            if seller.campaigns.contains_key(id) {
                return Err(SnapshotError::Invalid(
                    "a campaign is both held and dropped",
                ));
            }
            let tombstone = Tombstone {
                issued: r.varint()?,
                discount_spent_cents: r.varint_u128()?,
            };
            if tombstone.issued > INT_MAX {
                return Err(SnapshotError::Invalid("tombstone serial beyond 2^53-1"));
            }
            seller.evicted.insert(id.into(), tombstone);
        }
    }
    Ok(seller)
}

fn read_definition(r: &mut Reader<'_>) -> Result<CampaignDefinition, SnapshotError> {
    let flags = r.byte()?;
    if flags & !(FLAG_ACTIVE | FLAG_TTL | FLAG_DISCOUNT_BUDGET) != 0 {
        return Err(SnapshotError::Invalid("unknown campaign flags"));
    }
    Ok(CampaignDefinition {
        active: flags & FLAG_ACTIVE != 0,
        budget: r.varint()?,
        valid_from: r.varint()?,
        valid_until: r.varint()?,
        discount_cents: r.varint()?,
        min_order_cents: r.varint()?,
        per_user_limit: r.varint()?,
        issue_from: r.varint()?,
        issue_until: r.varint()?,
        ttl_ms: if flags & FLAG_TTL != 0 {
            Some(r.varint()?)
        } else {
            None
        },
        discount_budget_cents: if flags & FLAG_DISCOUNT_BUDGET != 0 {
            Some(r.varint()?)
        } else {
            None
        },
    })
}

/// A campaign's coupons, with the sum of the redeemed coupons' discounts.
fn read_ledger(
    r: &mut Reader<'_>,
    handles: Handles,
    v2: bool,
) -> Result<(CouponLedger, u128), SnapshotError> {
    let len = u64::from_le_bytes(r.fixed::<8>()?);
    let len = usize::try_from(len).map_err(|_| SnapshotError::Truncated)?;
    let mut block = Reader::new(r.bytes(len)?);
    let base = if v2 { block.varint()? } else { 0 };
    let count = block.count(MIN_COUPON_BYTES)? as u64;
    if count > COUPONS_MAX {
        return Err(SnapshotError::Invalid("ledger holds more coupons than fit"));
    }
    if base.checked_add(count).is_none_or(|last| last > INT_MAX) {
        return Err(SnapshotError::Invalid("coupon serial beyond 2^53-1"));
    }
    let mut ledger = CouponLedger::starting_after(base);
    let mut expires_at = 0u64;
    let mut redeemed_discounts = 0u128;
    for serial in base + 1..=base + count {
        let head = block.varint()?;
        let holder = head >> 1;
        if holder >= handles.users {
            return Err(SnapshotError::Invalid(
                "coupon holder is not an interned user",
            ));
        }
        expires_at = expires_at.wrapping_add(unzigzag(block.varint()?) as u64);
        // `count` is at most COUPONS_MAX, so the ledger has room.
        ledger.issue(holder as u32, expires_at);
        if head & 1 != 0 {
            let order = block.varint()?;
            if order >= handles.orders {
                return Err(SnapshotError::Invalid(
                    "redemption order is not an interned order",
                ));
            }
            let redemption = Redemption {
                order: order as u32,
                discount_cents: block.varint()?,
            };
            // At most 2^32 coupons of 2^64 cents: no overflow.
            redeemed_discounts += u128::from(redemption.discount_cents);
            if !ledger.redeem(serial, redemption) {
                return Err(SnapshotError::Invalid("coupon redeemed twice"));
            }
        }
    }
    if !block.rest.is_empty() {
        return Err(SnapshotError::Invalid("bytes after a ledger's last coupon"));
    }
    Ok((ledger, redeemed_discounts))
}

fn read_dedup(r: &mut Reader<'_>, window_ms: u64) -> Result<DedupWindow, SnapshotError> {
    let mut dedup = DedupWindow::new(window_ms);
    let bucket_ms = dedup.bucket_ms();
    let remembered = r.count(MIN_DEDUP_ID_BYTES)?;
    dedup.reserve(remembered);
    let bucket_count = r.count(MIN_BUCKET_BYTES)?;
    let mut index = 0u64;
    for i in 0..bucket_count {
        let next = index.wrapping_add(unzigzag(r.varint()?) as u64);
        if i > 0 && next <= index {
            return Err(SnapshotError::Invalid(
                "dedup buckets not in ascending order",
            ));
        }
        index = next;
        let start = match index.checked_mul(bucket_ms) {
            Some(start) if start <= INT_MAX => start,
            _ => {
                return Err(SnapshotError::Invalid(
                    "dedup bucket beyond the contract's ts range",
                ));
            }
        };
        let id_count = r.count(MIN_DEDUP_ID_BYTES)?;
        if id_count == 0 {
            return Err(SnapshotError::Invalid("empty dedup bucket"));
        }
        let mut ids = VecDeque::with_capacity(id_count);
        for _ in 0..id_count {
            let id = u128::from_le_bytes(r.fixed::<16>()?);
            match r.varint()? {
                0 => {}
                mark if mark - 1 < bucket_ms => {
                    if !dedup.restore_first_seen(id, start + (mark - 1)) {
                        return Err(SnapshotError::Invalid("dedup id first seen at two times"));
                    }
                }
                _ => return Err(SnapshotError::Invalid("dedup ts outside its bucket")),
            }
            ids.push_back(id);
        }
        if !dedup.restore_bucket(index, ids) {
            return Err(SnapshotError::Invalid("dedup bucket appears twice"));
        }
    }
    if dedup.len() != remembered {
        return Err(SnapshotError::Invalid("dedup id count does not match"));
    }
    Ok(dedup)
}

/// A cursor over untrusted bytes: every read checks the length left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn byte(&mut self) -> Result<u8, SnapshotError> {
        let (&b, rest) = self.rest.split_first().ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(*bytes)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let (bytes, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or(SnapshotError::Truncated)?;
        self.rest = rest;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u64, SnapshotError> {
        if let Some((&b, rest)) = self.rest.split_first()
            && b < 0x80
        {
            self.rest = rest;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err(SnapshotError::Invalid("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() < 10 {
            SnapshotError::Truncated
        } else {
            SnapshotError::Invalid("varint overflows 64 bits")
        })
    }

    /// A varint of up to 128 bits (19 bytes).
    fn varint_u128(&mut self) -> Result<u128, SnapshotError> {
        let mut v = 0u128;
        for (i, &b) in self.rest.iter().enumerate().take(19) {
            if i == 18 && b > 3 {
                return Err(SnapshotError::Invalid("varint overflows 128 bits"));
            }
            v |= u128::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(v);
            }
        }
        Err(if self.rest.len() < 19 {
            SnapshotError::Truncated
        } else {
            SnapshotError::Invalid("varint overflows 128 bits")
        })
    }

    /// A count of items that take at least `min_bytes` each, checked
    /// against the bytes left so that no allocation exceeds the input.
    fn count(&mut self, min_bytes: usize) -> Result<usize, SnapshotError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.rest.len() / min_bytes => Ok(n),
            _ => Err(SnapshotError::Truncated),
        }
    }

    fn str(&mut self, max_bytes: usize) -> Result<&'a str, SnapshotError> {
        let len = self.varint()?;
        if len > max_bytes as u64 {
            return Err(SnapshotError::Invalid("string too long"));
        }
        std::str::from_utf8(self.bytes(len as usize)?)
            .map_err(|_| SnapshotError::Invalid("string is not UTF-8"))
    }

    /// An id of the contract: 1 to 128 bytes of UTF-8.
    fn id(&mut self) -> Result<&'a str, SnapshotError> {
        let id = self.str(ID_BYTES_MAX)?;
        if !is_valid_id(id) {
            return Err(SnapshotError::Invalid("empty id"));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Message;
    use crate::decision::Source;
    use crate::state::StateStats;
    use crate::workload::{Profile, Workload, WorkloadConfig};
    use proptest::prelude::*;
    use serde_json::json;

    /// Decides `values` (offsets from `first_offset`), one decision a line.
    fn feed(core: &mut DecisionCore, values: &[Vec<u8>], first_offset: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, value) in values.iter().enumerate() {
            core.process(
                &Message {
                    value,
                    source: Source {
                        partition: 2,
                        offset: (first_offset + i) as i64,
                    },
                    key_check: None,
                },
                &mut out,
            );
            out.push(b'\n');
        }
        out
    }

    fn snapshot(core: &DecisionCore) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(core, &mut bytes);
        bytes
    }

    /// Replaces the checksum, so that a change reaches the section parser.
    fn reseal(bytes: &mut [u8]) {
        if bytes.len() >= HEADER_BYTES + CHECKSUM_BYTES {
            let end = bytes.len() - CHECKSUM_BYTES;
            let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[..end]);
            bytes[end..].copy_from_slice(&checksum.to_le_bytes());
        }
    }

    /// The first line where two decision streams differ.
    fn first_difference(a: &[u8], b: &[u8]) -> Option<(usize, String, String)> {
        let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
        let (mut la, mut lb) = (a.lines(), b.lines());
        for line in 0.. {
            match (la.next(), lb.next()) {
                (None, None) => return None,
                (x, y) if x != y => {
                    return Some((line, x.unwrap_or("").into(), y.unwrap_or("").into()));
                }
                _ => {}
            }
        }
        None
    }

    /// Feeds `values[..k]` to a core, snapshots and restores it, feeds the
    /// rest to both, and checks that decisions and snapshots are identical.
    fn check_continuation(
        config: CoreConfig,
        values: &[Vec<u8>],
        k: usize,
    ) -> Result<(), TestCaseError> {
        let mut original = DecisionCore::new(config);
        feed(&mut original, &values[..k], 0);
        let bytes = snapshot(&original);
        let mut restored =
            decode(&bytes, config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(snapshot(&restored) == bytes, "re-encoded snapshot differs");
        let stats = |core: &DecisionCore| {
            let s = core.stats();
            (
                s.sellers,
                s.campaigns,
                s.evicted_campaigns,
                s.coupons,
                s.redeemed_coupons,
                s.users,
                s.orders,
            )
        };
        prop_assert_eq!(stats(&restored), stats(&original));
        prop_assert_eq!(restored.dedup_len(), original.dedup_len());
        prop_assert_eq!(restored.watermark(), original.watermark());

        let expected = feed(&mut original, &values[k..], k);
        let actual = feed(&mut restored, &values[k..], k);
        if let Some((line, want, got)) = first_difference(&expected, &actual) {
            return Err(TestCaseError::fail(format!(
                "decision {} after the snapshot differs:\n original: {want}\n restored: {got}",
                k + line
            )));
        }
        prop_assert!(
            snapshot(&restored) == snapshot(&original),
            "final snapshots differ"
        );
        Ok(())
    }

    fn workload_values(config: WorkloadConfig, n: usize) -> Vec<Vec<u8>> {
        let mut workload = Workload::new(config);
        (0..n)
            .map(|_| {
                let mut value = Vec::new();
                workload.next_into(&mut value);
                value
            })
            .collect()
    }

    /// Small random traffic: 2 sellers, 2 campaigns, 4 users and orders,
    /// 30 event ids, tight limits, event time wandering back and forth and
    /// jumping across local midnights, and garbage now and then.
    fn small_values() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let step = (
            0u8..2,
            0u8..30,
            prop_oneof![30 => -3i64..8, 1 => 300i64..1500],
            0u8..7,
            prop::collection::vec(any::<u8>(), 10),
        );
        prop::collection::vec(step, 1..160).prop_map(|steps| {
            let mut ts: i64 = crate::workload::START_TS as i64;
            steps
                .into_iter()
                .map(|(seller, event, minutes, kind, r)| {
                    ts += minutes * 60_000;
                    let base = json!({
                        "event_id": format!("e{event}"),
                        "ts": ts,
                        "seller_id": format!("s{seller}"),
                    });
                    let mut v = base.as_object().cloned().unwrap_or_default();
                    let campaign = format!("c{}", r[0] % 2);
                    let mut put = |k: &str, val: serde_json::Value| {
                        v.insert(k.to_owned(), val);
                    };
                    match kind {
                        0 => {
                            put("type", json!("seller"));
                            if r[1] % 2 == 0 {
                                put("daily_issue_limit", json!(r[2] % 8));
                            }
                            if r[3] % 2 == 0 {
                                put("max_recipients", json!(1 + r[4] % 4));
                            }
                            if r[5] % 2 == 0 {
                                let tz = ["UTC", "America/New_York", "Asia/Kolkata"];
                                put("timezone", json!(tz[r[6] as usize % 3]));
                            }
                        }
                        1 => {
                            let from = ts + (i64::from(r[2] % 6) - 3) * 3_600_000;
                            put("type", json!("campaign"));
                            put("campaign_id", json!(campaign));
                            put("budget", json!(r[1] % 9));
                            put("valid_from", json!(from.max(0)));
                            put(
                                "valid_until",
                                json!(from.max(0) + i64::from(1 + r[3] % 48) * 3_600_000),
                            );
                            put("discount_cents", json!(u64::from(r[4]) * 3));
                            put("min_order_cents", json!(u64::from(r[5] % 4) * 100));
                            put("per_user_limit", json!(r[6] % 4));
                            if r[7] % 2 == 0 {
                                put("ttl_ms", json!(u64::from(1 + r[7] % 5) * 1_800_000));
                            }
                            if r[8] % 3 == 0 {
                                put("discount_budget_cents", json!(u64::from(r[8]) * 4));
                            }
                            put("active", json!(r[9] % 6 != 0));
                        }
                        2 | 3 => {
                            let users: Vec<String> = r[1..1 + (1 + r[2] % 4) as usize]
                                .iter()
                                .map(|u| format!("u{}", u % 4))
                                .collect();
                            put("type", json!("issue"));
                            put("campaign_id", json!(campaign));
                            put("user_ids", json!(users));
                        }
                        4 | 5 => {
                            put("type", json!("redeem"));
                            put("coupon_id", json!(format!("{campaign}:{}", r[1] % 6)));
                            put("user_id", json!(format!("u{}", r[2] % 4)));
                            put("order_id", json!(format!("o{}", r[3] % 4)));
                            put("order_cents", json!(u64::from(r[4]) * 4));
                        }
                        _ if r[1] % 4 == 0 => return r,
                        _ => {
                            put("type", json!("release"));
                            put("coupon_id", json!(format!("{campaign}:{}", r[2] % 6)));
                            put("order_id", json!(format!("o{}", r[3] % 4)));
                        }
                    }
                    serde_json::to_vec(&v).unwrap_or_default()
                })
                .collect()
        })
    }

    /// Retention settings: off, and short enough (the generated campaigns
    /// last 1 to 48 hours) that campaigns are dropped and re-created.
    fn retention() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            1u64..7_200_000,
            Just(3_600_000),
            Just(86_400_000)
        ]
    }

    fn window() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            1u64..100,
            Just(60_000),
            Just(600_000),
            Just(3_600_000)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn workload_continuations_decide_identically(
            profile in prop_oneof![Just(Profile::Steady), Just(Profile::FlashSale)],
            seed in any::<u64>(),
            sellers in 1u32..6,
            users in 1u32..300,
            duplicate_fraction in 0.0f64..0.2,
            invalid_fraction in 0.0f64..0.1,
            n in 20usize..1500,
            cut in 0.0f64..=1.0,
            dedup_window_ms in window(),
        ) {
            let values = workload_values(
                WorkloadConfig { profile, sellers, users, seed, duplicate_fraction, invalid_fraction },
                n,
            );
            let config = CoreConfig { dedup_window_ms, ..CoreConfig::default() };
            check_continuation(config, &values, (cut * n as f64) as usize)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_continuations_decide_identically(
            values in small_values(),
            cut in 0.0f64..=1.0,
            dedup_window_ms in window(),
            retention_ms in retention(),
        ) {
            let config = CoreConfig { dedup_window_ms, retention_ms, ..CoreConfig::default() };
            check_continuation(config, &values, (cut * values.len() as f64) as usize)?;
        }

        #[test]
        fn damaged_snapshots_are_refused(
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
            resealed_at in any::<prop::sample::Index>(),
            resealed_mask in 1u8..=255,
        ) {
            let (config, bytes, _) = small_snapshot();
            let mut flipped = bytes.clone();
            flipped[at.index(bytes.len())] ^= mask;
            prop_assert!(decode(&flipped, config).is_err());

            // With a valid checksum the damage reaches the parser, which
            // may accept a different but consistent state: it must not
            // panic, then or while the restored core decides.
            let mut flipped = bytes.clone();
            let body = HEADER_BYTES..bytes.len() - CHECKSUM_BYTES;
            flipped[body.start + resealed_at.index(body.len())] ^= resealed_mask;
            reseal(&mut flipped);
            if let Ok(mut core) = decode(&flipped, config) {
                let values = workload_values(small_workload(), 400);
                feed(&mut core, &values, 0);
                snapshot(&core);
            }
        }

        #[test]
        fn arbitrary_bytes_are_refused_without_panic(
            mut body in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let config = CoreConfig::default();
            prop_assert!(decode(&body, config).is_err());
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.append(&mut body);
            bytes.extend_from_slice(&[0; CHECKSUM_BYTES]);
            reseal(&mut bytes);
            let _ = decode(&bytes, config);
        }
    }

    fn small_workload() -> WorkloadConfig {
        WorkloadConfig {
            sellers: 3,
            users: 40,
            seed: 11,
            duplicate_fraction: 0.1,
            invalid_fraction: 0.05,
            ..WorkloadConfig::default()
        }
    }

    /// A snapshot with every section populated: redeemed and released
    /// coupons, several days, and a duplicate window with expired buckets.
    fn small_snapshot() -> (CoreConfig, Vec<u8>, DecisionCore) {
        let config = CoreConfig {
            dedup_window_ms: 40,
            ..CoreConfig::default()
        };
        let mut core = DecisionCore::new(config);
        feed(&mut core, &workload_values(small_workload(), 300), 0);
        let stats = core.stats();
        assert!(
            stats.coupons > 20 && stats.redeemed_coupons > 0,
            "{stats:?}"
        );
        assert!(core.dedup().buckets().count() > 1);
        (config, snapshot(&core), core)
    }

    #[test]
    fn every_truncation_is_refused() {
        let (config, bytes, _) = small_snapshot();
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len], config).err();
            assert!(
                matches!(
                    err,
                    Some(SnapshotError::Truncated | SnapshotError::Checksum)
                ),
                "{len}: {err:?}"
            );
            // Resealed, a cut body reaches the parser, which runs out.
            if len >= HEADER_BYTES && len < bytes.len() - CHECKSUM_BYTES {
                let mut cut = bytes[..len].to_vec();
                cut.extend_from_slice(&[0; CHECKSUM_BYTES]);
                reseal(&mut cut);
                assert_eq!(
                    decode(&cut, config).err(),
                    Some(SnapshotError::Truncated),
                    "{len}"
                );
            }
        }
        assert!(decode(&bytes, config).is_ok());
    }

    #[test]
    fn envelope_errors_are_named() {
        let (config, bytes, _) = small_snapshot();
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad, config).err(), Some(SnapshotError::BadMagic));
        assert_eq!(decode(b"JSON", config).err(), Some(SnapshotError::BadMagic));
        let mut bad = bytes.clone();
        bad[MAGIC.len()..HEADER_BYTES].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            decode(&bad, config).err(),
            Some(SnapshotError::UnsupportedVersion(3))
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode(&bad, config).err(), Some(SnapshotError::Checksum));
        let mut bad = bytes.clone();
        bad.insert(bad.len() - CHECKSUM_BYTES, 0);
        reseal(&mut bad);
        assert_eq!(
            decode(&bad, config).err(),
            Some(SnapshotError::Invalid("bytes after the last section"))
        );
    }

    #[test]
    fn a_different_config_is_a_mismatch() {
        let (config, bytes, _) = small_snapshot();
        let mismatch = |other: CoreConfig| decode(&bytes, other).err();
        assert_eq!(
            mismatch(CoreConfig {
                dedup_window_ms: config.dedup_window_ms + 1,
                ..config
            }),
            Some(SnapshotError::ConfigMismatch("dedup_window_ms"))
        );
        assert_eq!(
            mismatch(CoreConfig {
                max_event_bytes: 1000,
                ..config
            }),
            Some(SnapshotError::ConfigMismatch("max_event_bytes"))
        );
        let mut other = config;
        other.seller_defaults.daily_issue_limit += 1;
        assert_eq!(
            mismatch(other),
            Some(SnapshotError::ConfigMismatch(
                "seller_defaults.daily_issue_limit"
            ))
        );
        let mut other = config;
        other.seller_defaults.max_recipients += 1;
        assert_eq!(
            mismatch(other),
            Some(SnapshotError::ConfigMismatch(
                "seller_defaults.max_recipients"
            ))
        );
        let mut other = config;
        other.seller_defaults.timezone = crate::zone::Zone::utc();
        assert_eq!(
            mismatch(other),
            Some(SnapshotError::ConfigMismatch("seller_defaults.timezone"))
        );
    }

    /// A core with retention whose state holds dropped campaigns
    /// (tombstones), a resumed campaign and forgotten days.
    fn retained_core(retention_ms: u64) -> DecisionCore {
        let config = CoreConfig {
            retention_ms,
            ..CoreConfig::default()
        };
        let mut core = DecisionCore::new(config);
        let day = 86_400_000u64;
        let mut values = Vec::new();
        values.push(
            json!({"type": "campaign", "event_id": "d", "ts": 1, "seller_id": "s",
            "campaign_id": "d", "budget": 1, "valid_from": 0, "valid_until": day,
            "discount_cents": 5}),
        );
        values.push(
            json!({"type": "issue", "event_id": "di", "ts": 2, "seller_id": "s",
            "campaign_id": "d", "user_ids": ["u1"]}),
        );
        for round in 0..6u64 {
            let ts = 1_000 + round * 3 * day;
            values.push(
                json!({"type": "campaign", "event_id": format!("c{round}"), "ts": ts,
                "seller_id": "s", "campaign_id": "c", "budget": 100, "valid_from": 0,
                "valid_until": ts + day, "discount_cents": 5}),
            );
            values.push(
                json!({"type": "issue", "event_id": format!("i{round}"), "ts": ts + 1,
                "seller_id": "s", "campaign_id": "c", "user_ids": ["u1", format!("v{round}")]}),
            );
            values.push(
                json!({"type": "redeem", "event_id": format!("r{round}"), "ts": ts + 2,
                "seller_id": "s", "coupon_id": format!("c:{}", 2 * round + 1), "user_id": "u1",
                "order_id": format!("o{round}"), "order_cents": 100}),
            );
        }
        let values: Vec<Vec<u8>> = values
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        feed(&mut core, &values, 0);
        core
    }

    #[test]
    fn retention_state_round_trips() {
        let day = 86_400_000u64;
        let core = retained_core(day);
        let s = core.state().seller("s").unwrap();
        assert!(core.state().campaign("s", "c").is_some());
        // The campaign was dropped and re-created five times: its ledger
        // starts after the ten coupons issued before.
        assert_eq!(core.state().campaign("s", "c").unwrap().coupons.base(), 10);
        // Counts of days that ended everywhere before the horizon are gone;
        // no floor is set (v1.1 closes days by the watermark and the zone).
        assert!(s.daily.days_tracked() < 6, "{}", s.daily.days_tracked());
        assert_eq!(s.daily.retired_before(), None);
        // "d" was dropped for good; "c" holds its own count again.
        assert_eq!(s.evicted.keys().map(|k| &**k).collect::<Vec<_>>(), ["d"]);
        assert_eq!(s.evicted["d"].issued, 1);
        let bytes = snapshot(&core);
        let restored = decode(&bytes, *core.config()).unwrap();
        assert_eq!(snapshot(&restored), bytes);
        let sizes = |c: &DecisionCore| StateStats {
            heap_bytes: 0,
            ..c.stats()
        };
        assert_eq!(sizes(&restored), sizes(&core));
        // Dropped state leaves the snapshot.
        assert!(bytes.len() < snapshot(&retained_core(0)).len());
        // Retention changes decisions, so a different one is refused.
        let other = CoreConfig {
            retention_ms: 2 * day,
            ..*core.config()
        };
        assert_eq!(
            decode(&bytes, other).err(),
            Some(SnapshotError::ConfigMismatch("retention_ms"))
        );
    }

    #[test]
    fn version_1_snapshots_are_read_under_any_retention() {
        let (config, _, original) = small_snapshot();
        let mut v1 = Vec::new();
        encode_as(&original, FORMAT_VERSION_V1, &mut v1);
        assert_eq!(v1[MAGIC.len()..HEADER_BYTES], 1u32.to_le_bytes());
        let same = decode(&v1, config).unwrap();
        assert_eq!(snapshot(&same), snapshot(&original));
        // Nothing was dropped in a version 1 state; a retention given now
        // applies from the next event.
        let retained = CoreConfig {
            retention_ms: 1,
            ..config
        };
        let mut core = decode(&v1, retained).unwrap();
        assert_eq!(core.stats().campaigns, original.stats().campaigns);
        let later = format!(
            r#"{{"type":"seller","event_id":"late","ts":{},"seller_id":"s0"}}"#,
            crate::id::INT_MAX
        );
        feed(&mut core, &[later.into_bytes()], 0);
        assert_eq!(core.stats().campaigns, 0);
        assert_eq!(core.stats().evicted_campaigns, original.stats().campaigns);
    }

    /// Contract section 7: the discount spent is exact beyond 2^64, and
    /// is written as the same varint earlier builds wrote below it.
    #[test]
    fn money_beyond_2_pow_64_round_trips() {
        for v in [0u64, 1, 127, 128, 300, 1 << 53, u64::MAX - 1, u64::MAX] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            put_varint(&mut a, v);
            put_varint_u128(&mut b, u128::from(v));
            assert_eq!(a, b, "{v}");
            assert_eq!(Reader::new(&b).varint_u128(), Ok(u128::from(v)));
        }
        for v in [
            u128::from(u64::MAX) + 1,
            2_049 * ((1u128 << 53) - 1),
            u128::MAX,
        ] {
            let mut b = Vec::new();
            put_varint_u128(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint_u128(), Ok(v));
            assert!(r.rest.is_empty());
            assert!(Reader::new(&b).varint().is_err(), "{v} as 64 bits");
        }
        assert!(Reader::new(&[0xff; 19]).varint_u128().is_err());
        assert!(Reader::new(&[0xff; 3]).varint_u128().is_err());
        let mut over = vec![0xff; 18];
        over.push(4);
        assert!(Reader::new(&over).varint_u128().is_err());

        let max = crate::id::INT_MAX;
        let mut values = vec![
            format!(
                r#"{{"type":"seller","event_id":"s","ts":1,"seller_id":"s","max_recipients":3000}}"#
            ),
            format!(
                r#"{{"type":"campaign","event_id":"c","ts":1,"seller_id":"s","campaign_id":"m","budget":3000,"valid_from":0,"valid_until":{max},"discount_cents":{max}}}"#
            ),
        ];
        let users: Vec<String> = (0..2_049).map(|n| format!("\"u{n}\"")).collect();
        values.push(format!(
            r#"{{"type":"issue","event_id":"i","ts":1,"seller_id":"s","campaign_id":"m","user_ids":[{}]}}"#,
            users.join(",")
        ));
        for n in 0..2_049 {
            values.push(format!(
                r#"{{"type":"redeem","event_id":"r{n}","ts":1,"seller_id":"s","coupon_id":"m:{}","user_id":"u{n}","order_id":"o{n}","order_cents":{max}}}"#,
                n + 1
            ));
        }
        let values: Vec<Vec<u8>> = values.into_iter().map(String::into_bytes).collect();
        let config = CoreConfig {
            retention_ms: 0,
            ..CoreConfig::default()
        };
        let mut core = DecisionCore::new(config);
        feed(&mut core, &values, 0);
        let spent = core
            .state()
            .campaign("s", "m")
            .unwrap()
            .discount_spent_cents;
        assert_eq!(spent, 2_049 * u128::from(max));
        let bytes = snapshot(&core);
        let mut restored = decode(&bytes, config).unwrap();
        assert_eq!(snapshot(&restored), bytes);
        let later = [
            format!(
                r#"{{"type":"campaign","event_id":"d","ts":2,"seller_id":"s","campaign_id":"m","budget":3000,"valid_from":0,"valid_until":{max},"discount_cents":{max},"discount_budget_cents":{max}}}"#
            )
            .into_bytes(),
            br#"{"type":"release","event_id":"x","ts":2,"seller_id":"s","coupon_id":"m:1","order_id":"o0"}"#.to_vec(),
            br#"{"type":"redeem","event_id":"y","ts":2,"seller_id":"s","coupon_id":"m:1","user_id":"u0","order_id":"o0","order_cents":1}"#.to_vec(),
        ];
        let a = feed(&mut core, &later, 10_000);
        assert_eq!(feed(&mut restored, &later, 10_000), a);
        assert!(String::from_utf8_lossy(&a).contains("discount_budget_exhausted"));
    }

    #[test]
    fn equal_states_encode_equally() {
        // Two cores hash their maps with different seeds, so their
        // iteration orders differ; their snapshots must not.
        let (config, bytes, _) = small_snapshot();
        let (_, again, _) = small_snapshot();
        assert_eq!(bytes, again);
        let empty = snapshot(&DecisionCore::new(config));
        assert!(decode(&empty, config).is_ok());
        assert!(empty.len() < 64, "{}", empty.len());
    }

    #[test]
    fn restored_holdings_and_handles_match() {
        let (config, bytes, original) = small_snapshot();
        let restored = decode(&bytes, config).unwrap();
        let (a, b) = (original.state(), restored.state());
        assert_eq!(a.users().len(), b.users().len());
        assert!(a.users().iter_bytes().eq(b.users().iter_bytes()));
        assert!(a.orders().iter_bytes().eq(b.orders().iter_bytes()));
        for (seller_id, seller) in a.sellers() {
            for (campaign_id, campaign) in &seller.campaigns {
                let other = b.campaign(seller_id, campaign_id).unwrap();
                for user in 0..a.users().len() as u32 {
                    assert_eq!(campaign.held_by(Some(user)), other.held_by(Some(user)));
                }
                assert_eq!(campaign.holders(), other.holders());
                assert_eq!(campaign.discount_spent_cents, other.discount_spent_cents);
                assert_eq!(campaign.definition, other.definition);
                assert_eq!(campaign.coupons.len(), other.coupons.len());
                // Redemption slots are re-packed; what each coupon says stays.
                for serial in 1..=campaign.coupons.len() {
                    let (x, y) = (
                        campaign.coupons.get(serial).unwrap(),
                        other.coupons.get(serial).unwrap(),
                    );
                    assert_eq!((x.holder, x.expires_at), (y.holder, y.expires_at));
                    assert_eq!(campaign.coupons.redemption(x), other.coupons.redemption(y));
                }
            }
        }
    }

    #[test]
    fn oversized_counts_are_refused_before_allocating() {
        let config = CoreConfig::default();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        put_varint(&mut bytes, config.dedup_window_ms);
        put_varint(&mut bytes, config.max_event_bytes as u64);
        put_varint(&mut bytes, config.seller_defaults.daily_issue_limit);
        put_varint(&mut bytes, config.seller_defaults.max_recipients);
        put_str(&mut bytes, config.seller_defaults.timezone.name());
        put_varint(&mut bytes, config.retention_ms);
        put_varint(&mut bytes, 0); // watermark
        put_varint(&mut bytes, u64::MAX); // users
        bytes.extend_from_slice(&[0; CHECKSUM_BYTES]);
        reseal(&mut bytes);
        assert_eq!(decode(&bytes, config).err(), Some(SnapshotError::Truncated));
    }

    /// Encode and decode times for a large state built through the core:
    /// `cargo test --release --lib snapshot::tests::large_state_round_trip
    /// -- --ignored --nocapture` (`SNAPSHOT_COUPONS`, `SNAPSHOT_USERS` to
    /// resize; every coupon to a new user with `SNAPSHOT_USERS` equal to
    /// the coupon count).
    #[test]
    #[ignore = "builds 10 million coupons; run in release"]
    fn large_state_round_trip() {
        use std::time::Instant;

        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let coupons = env("SNAPSHOT_COUPONS", 10_000_000);
        let users = env("SNAPSHOT_USERS", 2_000_000);
        let built = Instant::now();
        let core = crate::large_state::build(coupons, users);
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
        let restored = decode(&bytes, CoreConfig::default()).unwrap();
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
}
