//! [`decode`]: a core rebuilt from snapshot bytes (the layout is in
//! `writer.rs`), under the running process's configuration.
//!
//! Version 2 added state retention (`--retention-ms`): the setting, each
//! seller's retired days and tombstones, and each ledger's base serial.
//! [`decode`] still reads version 1, written before retention existed, as
//! a state in which nothing was dropped yet, under whatever retention the
//! process runs with: the first event after the restore applies it. A
//! version 2 snapshot taken with a different retention is refused like
//! any other configuration mismatch, since retention changes decisions.
//!
//! Decoding treats its input as untrusted: every count is checked against
//! the bytes left before anything is allocated for it, every handle against
//! its interner, and any inconsistency is an error, never a panic.

use crate::config::CoreConfig;
use crate::decision_core::DecisionCore;
use crate::dedup::DedupWindow;
use crate::event::CampaignDefinition;
use crate::id::{ID_BYTES_MAX, INT_MAX};
use crate::id_map::IdMap;
use crate::intern::Interner;
use crate::state::PartitionState;
use crate::state::campaign::{Campaign, Tombstone};
use crate::state::coupon_ledger::{COUPONS_MAX, CouponLedger, Redemption};
use crate::state::seller::{Seller, SellerSettings};

use super::SnapshotError;
use super::envelope::{TIMEZONE_BYTES_MAX, check_config, open_envelope};
use super::wire::{Reader, unzigzag};
use super::writer::{FLAG_ACTIVE, FLAG_DISCOUNT_BUDGET, FLAG_TTL};

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
    let mut sellers = IdMap::new();
    sellers.reserve(seller_count);
    let mut previous: Option<&str> = None;
    for _ in 0..seller_count {
        let id = r.id()?;
        if previous.is_some_and(|p| p >= id) {
            return Err(SnapshotError::Invalid("sellers not in ascending id order"));
        }
        previous = Some(id);
        sellers.insert(id, Box::new(read_seller(&mut r, handles, v2)?));
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
            id,
            Box::new(Campaign::restore(definition, discount_spent_cents, coupons)),
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
        }
    }
    if dedup.len() != remembered {
        return Err(SnapshotError::Invalid("dedup id count does not match"));
    }
    Ok(dedup)
}
