//! [`DedupWindow`]: which `event_id`s a partition has seen within the
//! duplicate window (contract section 4), bounded by event time.
//!
//! It owns the remembered ids and their first-seen `ts`, decides whether an
//! event is a duplicate, forgets ids once they can no longer make one, and
//! gives snapshots a canonical view of what it holds.
//!
//! An id is its 128-bit xxh3 hash (a false duplicate needs a collision among
//! the ids of one window: about n^2 / 2^129, below 1e-20 for a billion ids).
//! Each remembered id has an entry (its hash's low 64 bits, the high 64 bits
//! as a check, its first-seen `ts`) in a dense list (a [`ChunkedVec`]: a
//! growing window never copies its entries), found through a
//! [`HandleTable`] keyed by the low 64 bits: a check reads one line of the
//! index and the entry, and a batch can start fetching both ahead
//! ([`DedupWindow::prefetch_index`], [`DedupWindow::prefetch_entry`]).
//! An id whose low 64 bits match another remembered id's (about n^2 / 2^65:
//! one in 10^7 windows of a million ids) goes to a small side map keyed by
//! all 128 bits, so the window stays exact.
//!
//! Expiry is a sweep, not per-event upkeep, and the sweep is spread over
//! the checks so that no check waits for a whole window's worth of work:
//! whenever the watermark enters a new sweep period (a quarter of the
//! window), every id first seen before the start of that period minus the
//! window is due to be dropped, and every [`SWEEP_EVERY`] checks the sweep
//! walks the next [`SWEEP_SLICE`] entries (a lap of every entry starts at
//! each new period), freeing each due entry for a later id and removing
//! its handle from the index. So the index holds exactly the entries in
//! use, never grows past the most ids held at once, and never needs a
//! rebuild; the slowest check does one slice, tens of microseconds. An
//! entry already outside the window but not yet swept is never reported as
//! a duplicate, so sweep timing affects memory only: at most the events of
//! 1.3 windows while the event rate holds (1.25 once a lap ends). The snapshot view
//! leaves out entries already due, so what it holds is a function of the
//! events and the watermark alone (not of when the window was restored or
//! how far the sweep got), and a restored window encodes exactly as the
//! original would.
//!
//! While the window first fills (a partition's first window after a cold
//! start, or a rate higher than ever), its index grows, and a growth that
//! placed every id again at once stalled one check (33 ms at 688,000 ids
//! here, hundreds of ms at tens of millions). It grows a step at a time
//! instead ([`HandleTable::reserve_stepwise`]): each new id moves the next
//! [`MOVES_PER_PUSH`] entries, in position order, into the larger index.
//! A growth begins this way only with no free entry, and a slice of the
//! sweep that walks entries finishes a growth under way first, so no entry
//! is freed or reused mid-growth (the moves would place it twice). While
//! nothing can be due (every id held was first seen at or after the lap's
//! cutoff, as throughout the first window) a lap walks nothing at all.

use std::collections::BTreeMap;

use crate::chunked::ChunkedVec;
use crate::handle_table::HandleTable;
use crate::prefetch::prefetch;

/// Buckets per window in the snapshot format: a bucket is window / 16.
const BUCKETS_PER_WINDOW: u64 = 16;

/// Sweep periods per window: memory holds 1 + 1/4 windows of ids, and
/// the ids of the entries a lap has not reached yet.
const SWEEPS_PER_WINDOW: u64 = 4;

/// Checks between two slices of the sweep.
const SWEEP_EVERY: u32 = 64;

/// Entries a slice of the sweep walks: 32 a check. A lap walks every entry
/// (1 + 1/4 windows' worth of ids at a steady rate), and the entries due
/// may be the last it reaches, so until it ends the window holds up to
/// 1/32 of that more: 1 + 1/4 + 1/25 windows' worth at most. A lap walks
/// the same entries however fast; a slice is tens of microseconds.
const SWEEP_SLICE: usize = 32 * SWEEP_EVERY as usize;

/// Entries each new id moves into a growing index: as the interners
/// (`intern::MOVES_PER_INTERN`), so a growth to twice the size ends after
/// 1/32 of the ids it makes room for.
pub const MOVES_PER_PUSH: usize = 32;

pub fn event_id_hash(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

/// A remembered id and its first sighting.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The id hash's low 64 bits: the index's key.
    low: u64,
    /// The id hash's high 64 bits.
    check: u64,
    /// The `ts` the id was first seen at.
    ts: u64,
}

impl Seen {
    fn id(&self) -> u128 {
        u128::from(self.check) << 64 | u128::from(self.low)
    }
}

/// Entries per chunk of the list: 1.5 MiB.
const ENTRIES_PER_CHUNK: usize = 1 << 16;

type Entries = ChunkedVec<Seen, ENTRIES_PER_CHUNK>;

/// The `ts` of a free entry (a valid `ts` is at most 2^53-1).
const FREE: u64 = u64::MAX;

/// Most ids the entries hold: the index's handles are `u32`. Ids beyond it
/// (about 100 GiB of entries, far past any window that fits in memory) go
/// to the side map, so the window stays exact.
const ENTRIES_MAX: usize = u32::MAX as usize;

pub struct DedupWindow {
    window_ms: u64,
    bucket_ms: u64,
    sweep_ms: u64,
    /// The start of the next sweep period: a check whose watermark reaches
    /// it starts a lap (`sweep_ms`, the start of period 1, before the first
    /// lap; the watermark never moves back, so one comparison a check stands
    /// for comparing periods).
    next_sweep_at: u64,
    /// Ids first seen before this are outside the window for every later
    /// check: due to be swept, and out of the snapshot view.
    sweep_cutoff: u64,
    /// The next entry the sweep walks (wrapping at the end of the entries).
    sweep_at: usize,
    /// Entries the current lap still has to walk.
    sweep_left: usize,
    /// Checks until the next slice of the sweep.
    sweep_countdown: u32,
    /// A slice's due entries (index key, position): scratch, kept for its
    /// capacity.
    due: Vec<(u64, u32)>,
    /// The remembered ids, in no particular order, and free entries
    /// (`ts` [`FREE`]) that the next new ids take.
    entries: Entries,
    /// Positions of the free entries.
    free: Vec<u32>,
    /// While the index grows a step at a time: the positions still to move
    /// into it (every one in use). Empty otherwise.
    moving: std::ops::Range<usize>,
    /// No remembered id was first seen before this (a lower bound: the
    /// least `ts` ever remembered). A lap whose cutoff is not above it has
    /// nothing to sweep.
    oldest_ts: u64,
    /// An id's low 64 bits -> its position in `entries`, for exactly the
    /// entries in use. The low bits are unique among them.
    index: HandleTable,
    /// Ids whose low 64 bits are taken in `entries` by another id (or, past
    /// [`ENTRIES_MAX`], any id) -> first-seen `ts`. An id is in `entries` or
    /// here, never both.
    overflow: BTreeMap<u128, u64>,
}

/// Summarises rather than dumps: the window can hold millions of ids.
impl std::fmt::Debug for DedupWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupWindow")
            .field("window_ms", &self.window_ms)
            .field("ids", &self.len())
            .finish_non_exhaustive()
    }
}

impl DedupWindow {
    pub fn new(window_ms: u64) -> DedupWindow {
        DedupWindow {
            window_ms,
            bucket_ms: (window_ms / BUCKETS_PER_WINDOW).max(1),
            sweep_ms: (window_ms / SWEEPS_PER_WINDOW).max(1),
            next_sweep_at: (window_ms / SWEEPS_PER_WINDOW).max(1),
            sweep_cutoff: 0,
            sweep_at: 0,
            sweep_left: 0,
            sweep_countdown: SWEEP_EVERY,
            due: Vec::new(),
            entries: ChunkedVec::new(),
            free: Vec::new(),
            moving: 0..0,
            oldest_ts: FREE,
            index: HandleTable::default(),
            overflow: BTreeMap::new(),
        }
    }

    /// Ids currently remembered (some may be outside the window, not yet
    /// swept).
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len() + self.overflow.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts fetching into cache, without waiting, the index line a check
    /// of `id` reads first. A hint only.
    pub fn prefetch_index(&self, id: u128) {
        self.index.prefetch(id as u64);
    }

    /// Starts fetching the entry `id` most likely has (reading the index
    /// line [`DedupWindow::prefetch_index`] fetched). A hint only.
    pub fn prefetch_entry(&self, id: u128) {
        if let Some(seen) = self
            .index
            .likely(id as u64)
            .and_then(|at| self.entries.get(at as usize))
        {
            prefetch(seen);
        }
    }

    /// Starts fetching the entry the new id `ahead` new ids from now will
    /// take (0: the next): freed ones lie anywhere in the entries, and
    /// writing one the cache does not hold waits for it. A hint only.
    pub fn prefetch_free_at(&self, ahead: usize) {
        if let Some(&at) = self.free.iter().rev().nth(ahead)
            && let Some(seen) = self.entries.get(at as usize)
        {
            prefetch(seen);
        }
    }

    /// Where the id with these low 64 bits has its entry, if it has one.
    fn find(&self, low: u64) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(low, |at| {
                let seen = &entries[at as usize];
                debug_assert!(seen.ts != FREE, "the index holds a freed entry");
                seen.low == low
            })
            .map(|at| at as usize)
    }

    /// Adds an entry for an id whose low 64 bits no entry in use has;
    /// false (and nothing added) if the entries are full.
    fn push(&mut self, seen: Seen) -> bool {
        debug_assert!(seen.ts != FREE);
        if self.free.is_empty() && self.entries.len() >= ENTRIES_MAX {
            return false;
        }
        if self.index.is_growing() {
            self.move_step();
        }
        if !self.index.has_room(1) {
            self.grow();
        }
        self.oldest_ts = self.oldest_ts.min(seen.ts);
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at as usize] = seen;
                at
            }
            None => self.entries.push(seen) as u32,
        };
        self.index.insert_reserved(seen.low, at);
        true
    }

    /// Makes room for one more id: a step at a time when no entry is free
    /// (see the module doc), else rebuilt from the entries in use.
    #[cold]
    fn grow(&mut self) {
        // Not reached while every growth doubles (see MOVES_PER_PUSH);
        // bounded all the same.
        self.finish_growth();
        if self.free.is_empty() && self.index.reserve_stepwise(1) {
            self.moving = 0..self.entries.len();
        } else {
            let entries = &self.entries;
            self.index.reserve_rebuilding(1, || in_use(entries));
        }
    }

    /// Moves the next [`MOVES_PER_PUSH`] entries into the growing index,
    /// ending the growth after the last; their new lines are fetched first,
    /// so the cache misses overlap, and the entries of the step after are
    /// fetched for the next call.
    #[inline(never)]
    fn move_step(&mut self) {
        debug_assert!(self.index.is_growing() && !self.moving.is_empty());
        let start = self.moving.start;
        let end = self.moving.end.min(start + MOVES_PER_PUSH);
        let mut moves = [(0u64, 0u32); MOVES_PER_PUSH];
        for (slot, at) in moves.iter_mut().zip(start..end) {
            let seen = &self.entries[at];
            debug_assert!(seen.ts != FREE, "a free entry while growing");
            *slot = (seen.low, at as u32);
        }
        self.index.move_entries(&moves[..end - start]);
        self.moving.start = end;
        if self.moving.is_empty() {
            self.index.end_growth();
            return;
        }
        // The next step's entries, one line in two of 24-byte entries:
        // read long ago, they are no longer cached.
        let next = end..self.moving.end.min(end + MOVES_PER_PUSH);
        for at in next.step_by(2) {
            prefetch(&self.entries[at]);
        }
    }

    /// Moves every entry left to move and ends the growth, if one is under
    /// way.
    fn finish_growth(&mut self) {
        while self.index.is_growing() {
            self.move_step();
        }
    }

    /// Whether the valid event `(id, ts)` is a duplicate given the partition
    /// `watermark` (which already includes `ts`, and never moves back); if
    /// not, remembers it.
    pub fn check_and_remember(&mut self, id: u128, ts: u64, watermark: u64) -> bool {
        debug_assert!(ts <= watermark);
        if watermark >= self.next_sweep_at {
            self.start_sweep(watermark);
        }
        self.sweep_countdown -= 1;
        if self.sweep_countdown == 0 {
            self.sweep_slice();
        }
        let cutoff = watermark.saturating_sub(self.window_ms);
        let (low, check) = (id as u64, (id >> 64) as u64);
        match self.find(low) {
            Some(at) => {
                let seen = &mut self.entries[at];
                if seen.check == check {
                    if seen.ts >= cutoff {
                        return true;
                    }
                    // The earlier sighting fell out of the window. An event
                    // already outside the window can never make a later one
                    // a duplicate.
                    if ts >= cutoff {
                        seen.ts = ts;
                    }
                    return false;
                }
            }
            None => {
                // A new id: an entry, if in the window (entries full: the
                // side map below takes it).
                if (self.overflow.is_empty() || !self.overflow.contains_key(&id))
                    && (ts < cutoff || self.push(Seen { low, check, ts }))
                {
                    return false;
                }
            }
        }
        // Another id holds these low 64 bits, or this one is already here.
        match self.overflow.get_mut(&id) {
            Some(ts0) if *ts0 >= cutoff => true,
            Some(ts0) => {
                if ts >= cutoff {
                    *ts0 = ts;
                }
                false
            }
            None => {
                if ts >= cutoff {
                    self.overflow.insert(id, ts);
                }
                false
            }
        }
    }

    /// Starts a lap of the sweep for `watermark`'s period: ids first seen
    /// before the start of the period minus the window (all outside the
    /// window) are due. Entries the last lap did not reach are walked in
    /// this one.
    #[cold]
    fn start_sweep(&mut self, watermark: u64) {
        let period = watermark / self.sweep_ms;
        self.next_sweep_at = (period + 1).saturating_mul(self.sweep_ms);
        self.sweep_cutoff = (period * self.sweep_ms).saturating_sub(self.window_ms);
        // Nothing held was first seen before the cutoff (the first window):
        // a lap would walk every entry and free none.
        self.sweep_left = if self.sweep_cutoff <= self.oldest_ts {
            0
        } else {
            self.entries.len()
        };
        if !self.overflow.is_empty() {
            let cutoff = self.sweep_cutoff;
            self.overflow.retain(|_, ts0| *ts0 >= cutoff);
        }
    }

    /// Walks the lap's next [`SWEEP_SLICE`] entries, freeing the due ones
    /// and removing their handles from the index (each handle's group
    /// fetched a few removals ahead). Entries and index keep their
    /// capacity: the next ids take the freed room.
    #[cold]
    fn sweep_slice(&mut self) {
        const AHEAD: usize = 8;
        self.sweep_countdown = SWEEP_EVERY;
        let len = self.entries.len();
        let mut walk = self.sweep_left.min(SWEEP_SLICE).min(len);
        if walk == 0 {
            return;
        }
        // Entries may be freed: no growth may be under way.
        self.finish_growth();
        self.sweep_left -= walk;
        self.due.clear();
        let cutoff = self.sweep_cutoff;
        while walk > 0 {
            if self.sweep_at >= len {
                self.sweep_at = 0;
            }
            // The rest of the entry's chunk, or of the slice.
            let run = self.entries.run_from_mut(self.sweep_at);
            let run_len = run.len().min(walk);
            assert!(run_len > 0, "the sweep walks held entries only");
            for (k, seen) in run[..run_len].iter_mut().enumerate() {
                // A free entry's `ts` is above every cutoff.
                if seen.ts < cutoff {
                    let at = (self.sweep_at + k) as u32;
                    self.due.push((seen.low, at));
                    seen.ts = FREE;
                    self.free.push(at);
                }
            }
            self.sweep_at += run_len;
            walk -= run_len;
        }
        for k in 0..self.due.len() {
            if let Some(&(low, _)) = self.due.get(k + AHEAD) {
                self.index.prefetch(low);
            }
            let (low, at) = self.due[k];
            let removed = self.index.remove(low, at);
            debug_assert!(removed, "a swept entry had no handle");
        }
    }

    /// Width of one snapshot bucket in ms.
    pub(crate) fn bucket_ms(&self) -> u64 {
        self.bucket_ms
    }

    /// Every remembered id not yet due to be swept, with its first-seen
    /// `ts`, as `(ts, id)` sorted
    /// ascending (so also by snapshot bucket, ts / `bucket_ms`): the same
    /// ids always give the same view, whatever the table's layout.
    pub(crate) fn entries_by_ts(&self) -> Vec<(u64, u128)> {
        let mut all: Vec<(u64, u128)> = Vec::with_capacity(self.len());
        // Entries due to be swept are left out, swept yet or not (a free
        // entry's `ts` is above every cutoff).
        let cutoff = self.sweep_cutoff;
        all.extend(
            self.entries
                .iter()
                .filter(|seen| seen.ts >= cutoff && seen.ts != FREE)
                .map(|seen| (seen.ts, seen.id())),
        );
        // The side map holds no id due to be swept: a lap's start drops
        // them, and an id enters it (or moves) only inside the window.
        debug_assert!(self.overflow.values().all(|&ts| ts >= cutoff));
        all.extend(self.overflow.iter().map(|(&id, &ts)| (ts, id)));
        all.sort_unstable();
        all
    }

    /// Makes room for `additional` more remembered ids.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.finish_growth();
        self.entries.reserve(additional);
        let entries = &self.entries;
        self.index
            .reserve_rebuilding(additional, || in_use(entries));
    }

    /// Restoring a snapshot: remembers `id` as first seen at `ts`. Returns
    /// false (and changes nothing) if it is remembered at another `ts`, or
    /// if `ts` is no valid `ts`.
    pub(crate) fn restore_first_seen(&mut self, id: u128, ts: u64) -> bool {
        if ts == FREE {
            return false;
        }
        let (low, check) = (id as u64, (id >> 64) as u64);
        match self.find(low) {
            Some(at) if self.entries[at].check == check => self.entries[at].ts == ts,
            Some(_) => *self.overflow.entry(id).or_insert(ts) == ts,
            None => match self.overflow.get(&id) {
                Some(&ts0) => ts0 == ts,
                None => {
                    if !self.push(Seen { low, check, ts }) {
                        self.overflow.insert(id, ts);
                    }
                    true
                }
            },
        }
    }

    /// Heap bytes held: the entries and the index by capacity, and the side
    /// map's entries (rarely any) at 64 bytes each.
    pub fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + self.index.heap_bytes()
            + self.overflow.len() * 64
    }
}

/// The index key and position of every entry in use, in position order
/// (which reads the entries one after the other): what the index holds.
fn in_use(entries: &Entries) -> impl Iterator<Item = (u64, u32)> + '_ {
    entries
        .iter()
        .enumerate()
        .filter(|(_, seen)| seen.ts != FREE)
        .map(|(at, seen)| (seen.low, at as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        assert!(d.len() <= MOST_HELD, "{}", d.len());
    }

    /// The most ids a window of 1000 ms holds at one id a millisecond: one
    /// window and a half (see the module doc).
    const MOST_HELD: usize = 1500;

    #[test]
    fn swept_ids_free_their_entries_and_their_handles() {
        let mut d = DedupWindow::new(1000);
        let mut most = 0;
        for ts in 0..50_000u64 {
            let id = event_id_hash(&ts.to_string());
            assert!(!d.check_and_remember(id, ts, ts));
            let live = d.entries.len() - d.free.len();
            // Entries are reused: never more than the most ever held at once.
            most = most.max(d.entries.len());
            assert!(d.entries.len() <= MOST_HELD, "{}", d.entries.len());
            // The index holds the entries in use, no more.
            assert_eq!(d.index.len(), live);
        }
        // No period is swept before the next one starts.
        assert!(most > 1250, "{most}");
        // An id swept long ago is new again, and then a duplicate.
        let old = event_id_hash("7");
        assert!(!d.check_and_remember(old, 50_000, 50_000));
        assert!(d.check_and_remember(old, 50_000, 50_000));
        // Every id in the window is still found.
        for ts in 49_000..50_000u64 {
            assert!(d.check_and_remember(event_id_hash(&ts.to_string()), 50_000, 50_000));
        }
        assert!(!d.restore_first_seen(event_id_hash("x"), FREE));
    }

    #[test]
    fn grows_a_step_at_a_time_while_it_first_fills() {
        let id = |k: u64| event_id_hash(&format!("ev-{k}"));
        let n = 60_000u64;
        let mut d = DedupWindow::new(1 << 40);
        let (mut growths, mut was_growing) = (0, false);
        for k in 0..n {
            let ts = 1_000 + k;
            assert!(!d.check_and_remember(id(k), ts, ts), "{k} new");
            let growing = d.index.is_growing();
            growths += usize::from(growing && !was_growing);
            was_growing = growing;
            if growing || k % 1_009 == 0 {
                // Ids from before the growth, moved or not, and since.
                for j in [0, k / 2, k.saturating_sub(1), k] {
                    assert!(d.check_and_remember(id(j), ts, ts), "{j} at {k}");
                }
            }
            assert_eq!(d.index.len(), d.entries.len());
        }
        assert!(growths >= 8, "{growths} growths");
        assert!(!d.index.is_growing());
        for k in 0..n {
            assert!(d.check_and_remember(id(k), 1_000 + n, 1_000 + n), "{k}");
        }
        assert_eq!(d.len() as u64, n);
    }

    #[test]
    fn a_growth_ends_before_a_sweep_frees_entries() {
        let id = |k: u64| event_id_hash(&format!("ev-{k}"));
        let mut d = DedupWindow::new(1_000);
        // Ids at one ts until the index grows past 5,000: more entries to
        // move than the checks before the next slice of a sweep move.
        let mut k = 0;
        while !(d.index.is_growing() && d.entries.len() > 5_000) {
            assert!(!d.check_and_remember(id(k), 100, 100));
            k += 1;
        }
        assert!(d.free.is_empty());
        // Two windows on, every id held is due: the lap's first slice
        // frees entries, so it must end the growth first.
        for j in 0..SWEEP_EVERY as u64 {
            assert!(!d.check_and_remember(id(k + j), 3_000, 3_000));
        }
        assert!(!d.index.is_growing());
        assert!(!d.free.is_empty());
        assert_eq!(d.index.len(), d.entries.len() - d.free.len());
        // Swept ids are new again; the new ones are still held.
        assert!(!d.check_and_remember(id(0), 3_000, 3_000));
        assert!(d.check_and_remember(id(k), 3_000, 3_000));
    }

    #[test]
    fn a_rising_rate_grows_the_index_as_the_reference_says() {
        // One id a millisecond for two windows, then twenty: the index grows
        // while laps free the ids of the first two windows.
        let window = 1_000u64;
        let mut d = DedupWindow::new(window);
        let mut reference = Reference::default();
        let mut rng = crate::workload::SplitMix64::new(5);
        let mut ids = Vec::new();
        let mut growths = 0;
        let mut was_growing = false;
        for ms in 0..6_000u64 {
            for _ in 0..if ms < 2 * window { 1 } else { 20 } {
                let new = u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
                ids.push(new);
                // Now and then a repeat of a recent or an old id.
                let id = match rng.next_u64() % 16 {
                    0 => ids[ids.len() - 1 - (rng.next_u64() as usize % ids.len().min(5_000))],
                    _ => new,
                };
                let want = reference.check_and_remember(id, ms, ms, window);
                assert_eq!(d.check_and_remember(id, ms, ms), want, "at {ms}");
                assert_eq!(d.index.len(), d.entries.len() - d.free.len());
                let growing = d.index.is_growing();
                assert!(!growing || d.free.is_empty());
                growths += usize::from(growing && !was_growing);
                was_growing = growing;
            }
        }
        assert!(growths >= 3, "{growths} growths a step at a time");
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

    #[test]
    fn ids_sharing_their_low_64_bits_stay_distinct() {
        let mut d = DedupWindow::new(1000);
        let (a, b, c) = (7u128, 1 << 64 | 7, 2 << 64 | 7);
        assert!(!d.check_and_remember(a, 10, 10));
        assert!(!d.check_and_remember(b, 20, 20));
        assert!(!d.check_and_remember(c, 30, 30));
        assert!(d.check_and_remember(a, 30, 30));
        assert!(d.check_and_remember(b, 30, 30));
        assert!(d.check_and_remember(c, 30, 30));
        assert_eq!(d.len(), 3);
        // `a` leaves the table; `b` and `c` are still found beside it.
        assert!(!d.check_and_remember(99, 1015, 1015));
        assert!(d.check_and_remember(b, 1015, 1015));
        assert!(!d.check_and_remember(a, 1015, 1015));
        assert!(d.check_and_remember(a, 1015, 1015));
        let mut restored = DedupWindow::new(1000);
        for (ts, id) in d.entries_by_ts() {
            assert!(restored.restore_first_seen(id, ts));
            assert!(restored.restore_first_seen(id, ts));
            assert!(!restored.restore_first_seen(id, ts + 1));
        }
        assert_eq!(restored.len(), d.entries_by_ts().len());
    }

    /// The contract's rule, directly: id -> first-seen `ts`, never forgotten.
    #[derive(Default)]
    struct Reference(BTreeMap<u128, u64>);

    impl Reference {
        fn check_and_remember(&mut self, id: u128, ts: u64, watermark: u64, window: u64) -> bool {
            let cutoff = watermark.saturating_sub(window);
            match self.0.get(&id) {
                Some(&ts0) if ts0 >= cutoff => true,
                _ => {
                    if ts >= cutoff {
                        self.0.insert(id, ts);
                    }
                    false
                }
            }
        }
    }

    /// Ids from a few low halves and a few high halves, so that low-64-bit
    /// collisions are the rule; events with small `ts` steps, some late.
    fn events() -> impl Strategy<Value = Vec<(u128, u64, bool)>> {
        prop::collection::vec(
            (0u64..6, 0u64..3, 0u64..40, any::<bool>()).prop_map(|(low, high, step, late)| {
                (u128::from(high) << 64 | u128::from(low), step, late)
            }),
            0..400,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn agrees_with_the_reference(
            window in prop_oneof![Just(0u64), 1u64..10, 10u64..200],
            events in events(),
            restore_at in any::<prop::sample::Index>(),
        ) {
            let mut d = DedupWindow::new(window);
            let mut reference = Reference::default();
            let mut watermark = 0u64;
            let restore_at = restore_at.index(events.len() + 1);
            for (i, &(id, step, late)) in events.iter().enumerate() {
                if i == restore_at {
                    let mut restored = DedupWindow::new(window);
                    for (ts, id) in d.entries_by_ts() {
                        prop_assert!(restored.restore_first_seen(id, ts));
                    }
                    prop_assert_eq!(restored.len(), d.entries_by_ts().len());
                    d = restored;
                }
                // Late events lie up to `step` behind the watermark.
                let ts = if late { watermark.saturating_sub(step) } else { watermark + step };
                watermark = watermark.max(ts);
                let want = reference.check_and_remember(id, ts, watermark, window);
                prop_assert_eq!(d.check_and_remember(id, ts, watermark), want, "event {}", i);
                // Held: every id the reference has in the window, and only
                // ids it has, at the same `ts`.
                let cutoff = watermark.saturating_sub(window);
                let held: BTreeMap<u128, u64> =
                    d.entries_by_ts().into_iter().map(|(ts, id)| (id, ts)).collect();
                // The view leaves out entries due to be swept, no others.
                prop_assert!(held.len() <= d.len());
                let due = d.entries.iter().filter(|seen| seen.ts < d.sweep_cutoff).count()
                    + d.overflow.values().filter(|&&ts0| ts0 < d.sweep_cutoff).count();
                prop_assert_eq!(held.len() + due, d.len());
                prop_assert_eq!(d.index.len(), d.entries.len() - d.free.len());
                for (id, ts0) in &held {
                    prop_assert_eq!(reference.0.get(id), Some(ts0));
                }
                for (id, ts0) in &reference.0 {
                    if *ts0 >= cutoff {
                        prop_assert_eq!(held.get(id), Some(ts0));
                    }
                }
            }
        }
    }
}
