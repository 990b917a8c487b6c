//! [`DedupWindow`]: which `event_id`s a partition has seen within the
//! duplicate window (contract section 4), bounded by event time.
//!
//! An id is remembered by its 128-bit xxh3 hash (a false duplicate needs a
//! collision among the ids of one window: about n^2 / 2^129, below 1e-20
//! for a billion ids) together with the `ts` it was first seen at. Entries are
//! filed in buckets by first-seen time; once the watermark has moved a whole
//! bucket past the window, the bucket is dropped in one step. Memory is
//! therefore proportional to the events of one window, whatever the run's
//! length, and no per-event work is spent on expiry.

use std::collections::{BTreeMap, VecDeque, btree_map};
use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

/// Buckets per window: expiry granularity is window / 16.
const BUCKETS_PER_WINDOW: u64 = 16;

/// Hashes a u128 that is already a good hash by keeping its low bits.
#[derive(Debug, Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Prehashed = BuildHasherDefault<PrehashedHasher>;

pub fn event_id_hash(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

pub struct DedupWindow {
    window_ms: u64,
    bucket_ms: u64,
    /// id hash -> `ts` the id was first seen at.
    first_seen: HashMap<u128, u64, Prehashed>,
    /// bucket index (first-seen ts / bucket_ms) -> ids filed there.
    buckets: BTreeMap<u64, VecDeque<u128>>,
}

/// Summarises rather than dumps: the window can hold millions of ids.
impl std::fmt::Debug for DedupWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupWindow")
            .field("window_ms", &self.window_ms)
            .field("ids", &self.first_seen.len())
            .finish_non_exhaustive()
    }
}

impl DedupWindow {
    pub fn new(window_ms: u64) -> DedupWindow {
        DedupWindow {
            window_ms,
            bucket_ms: (window_ms / BUCKETS_PER_WINDOW).max(1),
            first_seen: HashMap::default(),
            buckets: BTreeMap::new(),
        }
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.first_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_seen.is_empty()
    }

    /// Whether the valid event `(id, ts)` is a duplicate given the partition
    /// `watermark` (which already includes `ts`); if not, remembers it.
    pub fn check_and_remember(&mut self, id: u128, ts: u64, watermark: u64) -> bool {
        debug_assert!(ts <= watermark);
        self.expire(watermark);
        let cutoff = watermark.saturating_sub(self.window_ms);
        if let Some(&ts0) = self.first_seen.get(&id)
            && ts0 >= cutoff
        {
            return true;
        }
        // First sighting, or the earlier one fell out of the window. An event
        // already outside the window can never make a later one a duplicate.
        if ts >= cutoff {
            self.first_seen.insert(id, ts);
            self.buckets
                .entry(ts / self.bucket_ms)
                .or_default()
                .push_back(id);
        }
        false
    }

    /// Width of one bucket in ms.
    pub(crate) fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }

    /// Every bucket, ascending by index, with its ids in filing order (for
    /// snapshots). An id may be filed more than once (seen again after its
    /// first sighting left the window); every remembered id is filed in the
    /// bucket of its first-seen `ts`.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, &VecDeque<u128>)> + '_ {
        self.buckets.iter().map(|(&index, ids)| (index, ids))
    }

    /// The `ts` a remembered id was first seen at.
    pub(crate) fn first_seen(&self, id: u128) -> Option<u64> {
        self.first_seen.get(&id).copied()
    }

    /// Makes room for `additional` more remembered ids.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.first_seen.reserve(additional);
    }

    /// Restoring a snapshot: sets bucket `index`'s ids. Returns false (and
    /// changes nothing) if the bucket already has ids.
    pub(crate) fn restore_bucket(&mut self, index: u64, ids: VecDeque<u128>) -> bool {
        match self.buckets.entry(index) {
            btree_map::Entry::Vacant(entry) => {
                entry.insert(ids);
                true
            }
            btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Restoring a snapshot: remembers `id` as first seen at `ts`. Returns
    /// false (and changes nothing) if it is remembered at another `ts`.
    pub(crate) fn restore_first_seen(&mut self, id: u128, ts: u64) -> bool {
        *self.first_seen.entry(id).or_insert(ts) == ts
    }

    /// Drops the buckets that lie wholly before the window.
    fn expire(&mut self, watermark: u64) {
        let cutoff = watermark.saturating_sub(self.window_ms);
        while let Some(entry) = self.buckets.first_entry() {
            let bucket_end = (entry.key() + 1).saturating_mul(self.bucket_ms);
            if bucket_end > cutoff {
                break;
            }
            for id in entry.remove() {
                // The id may have been seen again since and refiled later.
                if let Some(&ts0) = self.first_seen.get(&id)
                    && ts0 < cutoff
                {
                    self.first_seen.remove(&id);
                }
            }
        }
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.first_seen.capacity() * (std::mem::size_of::<(u128, u64)>() + 1)
            + self
                .buckets
                .values()
                .map(|b| b.capacity() * std::mem::size_of::<u128>() + 64)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_window_is_duplicate_and_beyond_is_not() {
        let mut d = DedupWindow::new(1000);
        let a = event_id_hash("a");
        assert!(!d.check_and_remember(a, 100, 100));
        assert!(d.check_and_remember(a, 100, 100));
        assert!(d.check_and_remember(a, 1100, 1100)); // watermark - ts0 == window
        assert!(!d.check_and_remember(a, 1101, 1101)); // one past the window
        // Re-remembered at 1101.
        assert!(d.check_and_remember(a, 1101, 2101));
    }

    #[test]
    fn expiry_bounds_memory() {
        let mut d = DedupWindow::new(1000);
        for ts in 0..100_000u64 {
            assert!(!d.check_and_remember(ts as u128 * 7919, ts, ts));
        }
        assert!(d.len() <= 1000 + 1000 / 16 + 1, "{}", d.len());
    }

    #[test]
    fn events_older_than_the_window_are_not_remembered() {
        let mut d = DedupWindow::new(1000);
        assert!(!d.check_and_remember(1, 10_000, 10_000));
        assert!(!d.check_and_remember(2, 5, 10_000));
        assert!(!d.check_and_remember(2, 5, 10_000));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn zero_window_only_catches_repeats_at_the_watermark() {
        let mut d = DedupWindow::new(0);
        assert!(!d.check_and_remember(1, 10, 10));
        assert!(d.check_and_remember(1, 10, 10));
        assert!(!d.check_and_remember(1, 11, 11));
    }
}
