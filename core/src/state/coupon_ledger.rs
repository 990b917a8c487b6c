//! [`CouponLedger`]: every coupon a campaign has issued, indexed by serial.
//!
//! The serial in `campaign:n` is the coupon's position, so a coupon needs no
//! id of its own and no hash entry: 16 bytes hold its holder (an interned
//! user), its expiry, and a link to its redemption. Coupons live in a
//! [`ChunkedVec`] with chunks of [`CHUNK_COUPONS`], so a growing campaign
//! never copies its coupons and wastes at most one partly filled chunk. The
//! first chunk is held directly, so finding one of a small campaign's
//! coupons reads the ledger and the coupon, not a list of chunks in
//! between. Redemptions, a minority, sit in a side table whose
//! slots are recycled on release.
//!
//! A campaign re-created after retention dropped it continues its old
//! numbering: its ledger starts after a *base* serial, the coupons issued
//! before the drop, which it no longer holds and never names again.

use crate::chunked::ChunkedVec;

/// Coupons per chunk: 4 KiB of coupons, a page. A campaign's unfilled
/// capacity is at most a chunk, and capacity costs resident memory like
/// coupons do: at 4,096 a chunk, replaying 5 M events held 243 MB at peak
/// and took 4% more CPU, most of it the kernel zeroing fresh pages; 128
/// and 512 were no better (docs/PERFORMANCE.md).
pub const CHUNK_COUPONS: usize = 256;

/// Most coupons one campaign's ledger holds.
pub const COUPONS_MAX: u64 = u32::MAX as u64 - 1;

/// No redemption.
const NOT_REDEEMED: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coupon {
    /// Interned user id of the holder.
    pub holder: u32,
    /// `NOT_REDEEMED`, or 1 + the index of its redemption.
    redemption: u32,
    /// Last instant (inclusive, ms) the coupon may be redeemed.
    pub expires_at: u64,
}

const _: () = assert!(std::mem::size_of::<Coupon>() == 16);

/// An accepted redemption: by which order, for what discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redemption {
    /// Interned order id.
    pub order: u32,
    pub discount_cents: u64,
}

#[derive(Debug, Default)]
pub struct CouponLedger {
    /// The coupons held: serial `base + 1 + i` at position `i`.
    coupons: ChunkedVec<Coupon, CHUNK_COUPONS>,
    /// Serials up to this one were issued before retention dropped the
    /// campaign; they are not held and name nothing.
    base: u64,
    /// The latest `expires_at` among the coupons held, 0 when none.
    max_expires_at: u64,
    redemptions: Vec<Redemption>,
    free_redemptions: Vec<u32>,
}

impl CouponLedger {
    /// An empty ledger whose first coupon gets serial `base + 1`.
    pub fn starting_after(base: u64) -> CouponLedger {
        CouponLedger {
            base,
            ..CouponLedger::default()
        }
    }

    /// Coupons issued so far, which is also the last serial; includes the
    /// `base` coupons issued before a drop.
    pub fn len(&self) -> u64 {
        self.base + self.held()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last serial issued before retention dropped the campaign (0 if
    /// it never was).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Coupons held: serials `base + 1 ..= len`.
    pub fn held(&self) -> u64 {
        self.coupons.len() as u64
    }

    /// The latest expiry among the coupons held, 0 when none.
    pub fn max_expires_at(&self) -> u64 {
        self.max_expires_at
    }

    /// Whether another coupon fits.
    pub fn has_room(&self) -> bool {
        self.held() < COUPONS_MAX && self.len() < crate::id::INT_MAX
    }

    /// Appends a coupon; returns its serial (1-based).
    ///
    /// # Panics
    /// If the ledger is full; callers check [`CouponLedger::has_room`].
    pub fn issue(&mut self, holder: u32, expires_at: u64) -> u64 {
        assert!(self.has_room(), "coupon ledger full");
        let coupon = Coupon {
            holder,
            redemption: NOT_REDEEMED,
            expires_at,
        };
        self.coupons.push(coupon);
        self.max_expires_at = self.max_expires_at.max(expires_at);
        self.len()
    }

    /// Starts fetching the newest coupon held, next to which an issue
    /// writes the next one.
    pub fn prefetch_newest(&self) {
        if let Some(newest) = self
            .coupons
            .len()
            .checked_sub(1)
            .and_then(|i| self.coupons.get(i))
        {
            crate::prefetch::prefetch(newest);
        }
    }

    /// The coupon with this serial, if issued and held.
    pub fn get(&self, serial: u64) -> Option<&Coupon> {
        if serial <= self.base || serial > self.len() {
            return None;
        }
        self.coupons.get((serial - self.base - 1) as usize)
    }

    fn get_mut(&mut self, serial: u64) -> Option<&mut Coupon> {
        if serial <= self.base || serial > self.len() {
            return None;
        }
        self.coupons.get_mut((serial - self.base - 1) as usize)
    }

    /// Every coupon held in serial order (serial `base + 1` first), for
    /// snapshots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Coupon> + '_ {
        self.coupons.iter()
    }

    /// The redemption of a coupon, if it is redeemed.
    pub fn redemption(&self, coupon: &Coupon) -> Option<Redemption> {
        match coupon.redemption {
            NOT_REDEEMED => None,
            slot => self.redemptions.get(slot as usize - 1).copied(),
        }
    }

    /// Marks an issued, unredeemed coupon redeemed. Returns false (and
    /// changes nothing) if the serial is unknown or already redeemed.
    pub fn redeem(&mut self, serial: u64, redemption: Redemption) -> bool {
        match self.get(serial) {
            Some(c) if c.redemption == NOT_REDEEMED => {}
            _ => return false,
        }
        let slot = match self.free_redemptions.pop() {
            Some(slot) => {
                self.redemptions[slot as usize] = redemption;
                slot
            }
            None => {
                self.redemptions.push(redemption);
                (self.redemptions.len() - 1) as u32
            }
        };
        if let Some(c) = self.get_mut(serial) {
            c.redemption = slot + 1;
        }
        true
    }

    /// Clears a coupon's redemption; returns what it was.
    pub fn release(&mut self, serial: u64) -> Option<Redemption> {
        let coupon = self.get_mut(serial)?;
        let slot = match coupon.redemption {
            NOT_REDEEMED => return None,
            s => s - 1,
        };
        coupon.redemption = NOT_REDEEMED;
        self.free_redemptions.push(slot);
        self.redemptions.get(slot as usize).copied()
    }

    /// Coupons currently redeemed.
    pub fn redeemed_count(&self) -> usize {
        self.redemptions.len() - self.free_redemptions.len()
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.coupons.heap_bytes()
            + self.redemptions.capacity() * std::mem::size_of::<Redemption>()
            + self.free_redemptions.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_index_coupons_across_chunks() {
        let mut l = CouponLedger::default();
        for k in 0..(CHUNK_COUPONS as u64 * 2 + 5) {
            assert_eq!(l.issue(k as u32, k), k + 1);
        }
        assert_eq!(l.get(0), None);
        assert_eq!(l.get(1).unwrap().holder, 0);
        let last = l.len();
        assert_eq!(l.get(last).unwrap().holder as u64, last - 1);
        assert_eq!(l.get(last + 1), None);
        assert_eq!(
            l.get(CHUNK_COUPONS as u64 + 1).unwrap().expires_at,
            CHUNK_COUPONS as u64
        );
        for serial in 1..=last {
            assert_eq!(l.get(serial).unwrap().expires_at, serial - 1);
        }
        let in_order: Vec<u64> = l.iter().map(|c| c.expires_at).collect();
        assert_eq!(in_order, (0..last).collect::<Vec<_>>());
        let r = Redemption {
            order: 1,
            discount_cents: 1,
        };
        for serial in [1, CHUNK_COUPONS as u64, CHUNK_COUPONS as u64 + 1, last] {
            assert!(l.redeem(serial, r));
            assert_eq!(l.redemption(l.get(serial).unwrap()), Some(r));
        }
    }

    #[test]
    fn redeem_release_cycle_recycles_slots() {
        let mut l = CouponLedger::default();
        l.issue(1, 100);
        l.issue(2, 100);
        let r = Redemption {
            order: 9,
            discount_cents: 50,
        };
        assert!(l.redeem(1, r));
        assert!(!l.redeem(1, r));
        assert_eq!(l.redemption(l.get(1).unwrap()), Some(r));
        assert_eq!(l.redemption(l.get(2).unwrap()), None);
        assert_eq!(l.redeemed_count(), 1);
        assert_eq!(l.release(1), Some(r));
        assert_eq!(l.release(1), None);
        assert_eq!(l.redeemed_count(), 0);
        let r2 = Redemption {
            order: 10,
            discount_cents: 70,
        };
        assert!(l.redeem(2, r2));
        assert_eq!(l.redemptions.len(), 1, "slot reused");
        assert_eq!(l.redemption(l.get(2).unwrap()), Some(r2));
        assert!(!l.redeem(3, r2));
    }

    #[test]
    fn a_base_hides_earlier_serials() {
        let mut l = CouponLedger::starting_after(7);
        assert_eq!(l.len(), 7);
        assert_eq!(l.held(), 0);
        assert_eq!(l.get(7), None);
        assert_eq!(l.issue(3, 50), 8);
        assert_eq!(l.issue(4, 40), 9);
        assert_eq!(l.max_expires_at(), 50);
        for old in 0..=7 {
            assert_eq!(l.get(old), None, "{old}");
            assert_eq!(l.release(old), None);
        }
        assert_eq!(l.get(8).unwrap().holder, 3);
        assert_eq!(l.iter().count(), 2);
        let r = Redemption {
            order: 1,
            discount_cents: 5,
        };
        assert!(!l.redeem(7, r));
        assert!(l.redeem(9, r));
        assert_eq!(l.release(9), Some(r));
        assert_eq!(l.get(10), None);
    }
}
