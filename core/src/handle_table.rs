//! [`HandleTable`]: the hash index of an [`Interner`](crate::intern::Interner):
//! which `u32` handle a string has, found from the string's hash by reading
//! one cache line. A campaign's holders (`state::holdings`) are one too, a
//! set of user handles keyed by the handle's hash.
//!
//! Layout: groups of [`GROUP_SLOTS`] entries, each group one 64-byte cache
//! line holding 12 one-byte tags (8 bits of each entry's hash), the group's
//! fill count, how many entries passed it, and 12 handles. A hash picks its
//! home group; a group fills from its first entry on, and a full group's
//! overflow goes to the next group (wrapping), counted as having passed
//! every group between its home and its place (the F14 scheme of Folly's
//! hash tables). A lookup stops at the first group that no entry passed,
//! so an entry can be removed alone ([`HandleTable::remove`]): it leaves
//! its group and uncounts the groups it passed. The table is never full
//! (load at most [`LOAD_NUM`]/[`LOAD_DEN`]), and a lookup visits each group
//! at most once, so every lookup stops. A tag match is confirmed by the
//! caller's comparison of the strings; a mismatching tag costs nothing but
//! the tag compare.
//!
//! Compared with a general hash table holding the handles (hashbrown's, whose
//! control bytes and entries lie in two separate arrays), a lookup reads one
//! cache line instead of two, and a caller that knows a hash ahead can
//! [`HandleTable::prefetch`] that line. Memory: 64 bytes per 12 entries,
//! 6.1 to 12.2 bytes per string between growths.
//!
//! Growing places every entry again, which for a table of a million
//! entries is a cache miss or two per entry. An owner that keeps its keys
//! in handle order rebuilds the table from them in that order
//! ([`HandleTable::reserve_rebuilding`]): the keys are read one after the
//! other, and each entry's new group is fetched a few entries ahead of
//! placing it. Measured on 2,000,000 new event ids (the duplicate window),
//! the growth at 1,376,256 entries stalled one insert 160 ms when rehashing
//! through the old groups, 23 ms rebuilt in order. An owner that never
//! removes can instead grow a step at a time
//! ([`HandleTable::reserve_stepwise`]): the old groups stay as they are,
//! read by lookups first (they hold every entry held at the growth), while
//! the owner moves their entries into the new groups a few per insert;
//! the new groups are allocated zeroed, so the kernel zeroes their pages
//! as the moves first touch them (each placement writes its group before
//! reading it, so that first touch is a write: see `write_first`). The
//! interners grow this way:
//! 3,000,000 new ids, slowest insert 79-161 ms rebuilt in order, 1.2-2.0
//! ms a step at a time (`growth_stall`). An owner whose hash of a handle
//! costs no cache miss (the holdings) lets the table move whole old
//! groups itself ([`HandleTable::move_groups`]).

use crate::prefetch::prefetch;

/// Entries per group: with their tags and the fill count, one cache line.
pub const GROUP_SLOTS: usize = 12;

/// Most entries per slot of capacity before the table doubles: 7/8.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Group {
    tags: [u8; GROUP_SLOTS],
    /// Entries in use: `0..len`.
    len: u8,
    /// Always zero; written before a group is first read
    /// ([`write_first`]).
    spare: u8,
    /// Entries held in a later group whose home is this group or one
    /// before it (they passed this group while it was full). Saturates:
    /// a saturated count is never decremented, which costs only longer
    /// lookups.
    passed: u16,
    handles: [u32; GROUP_SLOTS],
}

const _: () = assert!(std::mem::size_of::<Group>() == 64);

impl Group {
    const EMPTY: Group = Group {
        tags: [0; GROUP_SLOTS],
        len: 0,
        spare: 0,
        passed: 0,
        handles: [0; GROUP_SLOTS],
    };

    fn is_full(&self) -> bool {
        usize::from(self.len) == GROUP_SLOTS
    }

    /// Entries in use whose tag is `tag`, as bit `8 * i + 7` for entry `i`.
    /// Exact for the lowest match; a higher bit may be a false match (the
    /// caller compares the strings anyway).
    fn matches(&self, tag: u8) -> u128 {
        const ONES: u128 = u128::from_le_bytes([1; 16]);
        const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
        let mut word = [0u8; 16];
        word[..GROUP_SLOTS].copy_from_slice(&self.tags);
        let x = u128::from_le_bytes(word) ^ (ONES * u128::from(tag));
        let in_use = (1u128 << (8 * u32::from(self.len))) - 1;
        x.wrapping_sub(ONES) & !x & HIGH & in_use
    }

    fn push(&mut self, tag: u8, handle: u32) {
        debug_assert!(!self.is_full());
        let i = usize::from(self.len);
        self.tags[i] = tag;
        self.handles[i] = handle;
        self.len += 1;
    }

    /// Removes the entry at `i`, moving the group's last entry there.
    fn swap_remove(&mut self, i: usize) {
        let last = usize::from(self.len) - 1;
        debug_assert!(i <= last);
        self.tags[i] = self.tags[last];
        self.handles[i] = self.handles[last];
        self.len -= 1;
    }
}

/// The hash index of handles; see the module doc.
#[derive(Default)]
pub struct HandleTable {
    /// A power of two of groups, or none before the first insert.
    groups: Vec<Group>,
    /// Entries held, in `groups` or only in `previous`.
    len: usize,
    /// While growing a step at a time ([`HandleTable::begin_growth`]): the
    /// groups before the growth, unchanged since, holding every entry the
    /// owner has not yet moved into `groups`. Empty otherwise.
    previous: Vec<Group>,
    /// While growing through [`HandleTable::move_groups`]: the previous
    /// groups whose entries were moved, `0..moved_groups`.
    moved_groups: usize,
}

/// Summarises: a table can hold millions of handles.
impl std::fmt::Debug for HandleTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleTable")
            .field("len", &self.len)
            .field("groups", &self.groups.len())
            .field("previous_groups", &self.previous.len())
            .finish()
    }
}

fn tag(hash: u64) -> u8 {
    (hash >> 56) as u8
}

impl HandleTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(&self, hash: u64) -> usize {
        home(&self.groups, hash)
    }

    /// Starts fetching the home group of `hash` into cache (both homes
    /// while growing a step at a time).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.groups.is_empty() {
            prefetch(&self.groups[self.home(hash)]);
        }
        if !self.previous.is_empty() {
            self.prefetch_previous(hash);
        }
    }

    #[cold]
    #[inline(never)]
    fn prefetch_previous(&self, hash: u64) {
        prefetch(&self.previous[home(&self.previous, hash)]);
    }

    /// The first handle in `hash`'s home group whose tag matches, without
    /// confirming it: most likely the handle [`HandleTable::find`] will
    /// return, for a caller that wants to fetch its data ahead.
    #[inline]
    pub fn likely(&self, hash: u64) -> Option<u32> {
        if !self.previous.is_empty() {
            return self.likely_growing(hash);
        }
        likely_in(&self.groups, hash)
    }

    /// [`HandleTable::likely`] during a growth: the previous groups first,
    /// as [`HandleTable::find_growing`] reads them.
    #[inline(never)]
    fn likely_growing(&self, hash: u64) -> Option<u32> {
        likely_in(&self.previous, hash).or_else(|| likely_in(&self.groups, hash))
    }

    /// The handle with this `hash` for which `eq` holds, if any.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.groups.is_empty() {
            return None;
        }
        if !self.previous.is_empty() {
            return self.find_growing(hash, eq);
        }
        position(&self.groups, hash, eq).map(|(_, _, handle)| handle)
    }

    /// [`HandleTable::find`] during a growth. The previous groups still
    /// hold every entry held when it began, moved or not, so they are read
    /// first: a string held since then costs one probe, and only one added
    /// since (or not held) costs two.
    #[inline(never)]
    fn find_growing(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        position(&self.previous, hash, &mut eq)
            .or_else(|| position(&self.groups, hash, &mut eq))
            .map(|(_, _, handle)| handle)
    }

    /// The group, entry and handle of the handle with this `hash` for which
    /// `eq` holds, if any. The table has groups.
    fn position(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<(usize, usize, u32)> {
        position(&self.groups, hash, eq)
    }

    /// Removes `handle`, held under `hash`; false if the table does not
    /// hold it. Keeps the capacity.
    ///
    /// # Panics
    /// While growing a step at a time, which owners that remove never do.
    pub fn remove(&mut self, hash: u64, handle: u32) -> bool {
        assert!(!self.is_growing(), "HandleTable::remove while growing");
        if self.groups.is_empty() {
            return false;
        }
        let Some((at, i, _)) = self.position(hash, |h| h == handle) else {
            return false;
        };
        self.groups[at].swap_remove(i);
        let mask = self.groups.len() - 1;
        let mut g = self.home(hash);
        while g != at {
            let passed = &mut self.groups[g].passed;
            debug_assert!(*passed > 0);
            if *passed != u16::MAX {
                *passed -= 1;
            }
            g = (g + 1) & mask;
        }
        self.len -= 1;
        true
    }

    /// Adds `handle`, which no entry holds yet, under `hash`; `rehash`
    /// gives the hash of any handle already held, for growing. Tests' way
    /// in: every owner grows a step at a time or by rebuilding.
    #[cfg(test)]
    pub fn insert_unique(&mut self, hash: u64, handle: u32, rehash: impl Fn(u32) -> u64) {
        self.reserve(1, rehash);
        self.insert_reserved(hash, handle);
    }

    /// Adds `handle`, which no entry holds yet, under `hash`, into room
    /// made by [`HandleTable::reserve_rebuilding`].
    ///
    /// # Panics
    /// If there is no room: the table must never fill (every lookup stops
    /// at a group that is not full).
    pub fn insert_reserved(&mut self, hash: u64, handle: u32) {
        assert!(
            (self.len + 1) * LOAD_DEN <= self.capacity_slots() * LOAD_NUM,
            "HandleTable::insert_reserved without room"
        );
        place(&mut self.groups, hash, handle);
        self.len += 1;
    }

    /// Makes room for `additional` more entries without growing.
    ///
    /// # Panics
    /// While growing a step at a time, which owners that reserve by
    /// rehashing never do.
    pub fn reserve(&mut self, additional: usize, rehash: impl Fn(u32) -> u64) {
        assert!(!self.is_growing(), "HandleTable::reserve while growing");
        let Some(groups) = self.groups_for(additional) else {
            return;
        };
        let old = std::mem::take(&mut self.groups);
        let held = old
            .iter()
            .flat_map(|group| &group.handles[..usize::from(group.len)])
            .map(|&handle| (rehash(handle), handle));
        self.fill(groups, held);
    }

    /// Makes room for `additional` more entries without growing. When the
    /// table must grow it is rebuilt from `entries()`: the hash and handle
    /// of every entry it is to hold, in any order (the entries it holds,
    /// less any the caller knows to be stale). A caller that keeps its keys
    /// in handle order yields them in that order, so growing reads the keys
    /// one after the other, where [`HandleTable::reserve`] reads each key
    /// at random, a cache miss per entry.
    pub fn reserve_rebuilding<I>(&mut self, additional: usize, entries: impl FnOnce() -> I)
    where
        I: Iterator<Item = (u64, u32)>,
    {
        if let Some(groups) = self.groups_for(additional) {
            self.fill(groups, entries());
        }
    }

    /// Whether the table is growing a step at a time: between
    /// [`HandleTable::begin_growth`] and [`HandleTable::end_growth`].
    pub fn is_growing(&self) -> bool {
        !self.previous.is_empty()
    }

    /// Makes room for `additional` more entries, growing a step at a time
    /// when the table must grow: larger groups take every insert from now
    /// on, while the current ones stay unchanged and lookups read them
    /// first. The owner then moves each entry held now into the new groups
    /// ([`HandleTable::move_entries`], a few per insert) and calls
    /// [`HandleTable::end_growth`]. Growing thus costs a step per insert
    /// instead of one stall that places every entry, at the price of a
    /// second probe, until the end, for entries added since and hashes not
    /// held. Returns whether growth began; a table with no groups yet, or
    /// with room, does not grow a step at a time.
    ///
    /// # Panics
    /// While growing: the owner ends a growth before the table can need
    /// the next (see [`HandleTable::end_growth`]).
    pub fn reserve_stepwise(&mut self, additional: usize) -> bool {
        assert!(
            !self.is_growing(),
            "HandleTable::reserve_stepwise while growing"
        );
        let Some(groups) = self.groups_for(additional) else {
            return false;
        };
        if self.len == 0 {
            self.fill(groups, std::iter::empty());
            return false;
        }
        self.previous = std::mem::replace(&mut self.groups, zeroed_groups(groups));
        self.moved_groups = 0;
        true
    }

    /// While growing a step at a time, for an owner that can hash a handle
    /// without a cache miss: moves every entry of the next `count` previous
    /// groups into the new groups (`rehash` giving each one's hash, their
    /// new lines fetched ahead), and ends the growth after the last group.
    /// A growth to twice the groups is over after `previous groups /
    /// count` calls, long before the next is due (10.5 inserts per
    /// previous group at 7/8 load). Returns whether the growth is over.
    pub fn move_groups(&mut self, count: usize, rehash: impl Fn(u32) -> u64) -> bool {
        debug_assert!(self.is_growing());
        let end = self
            .moved_groups
            .saturating_add(count)
            .min(self.previous.len());
        for g in self.moved_groups..end {
            let group = &self.previous[g];
            let held = usize::from(group.len);
            let mut pending = [(0u64, 0u32); GROUP_SLOTS];
            for (slot, &handle) in pending.iter_mut().zip(&group.handles[..held]) {
                *slot = (rehash(handle), handle);
            }
            self.move_entries(&pending[..held]);
        }
        self.moved_groups = end;
        if end < self.previous.len() {
            return false;
        }
        self.end_growth();
        true
    }

    /// Whether `additional` more entries fit without growing.
    pub fn has_room(&self, additional: usize) -> bool {
        self.groups_for(additional).is_none()
    }

    /// Places entries held before [`HandleTable::reserve_stepwise`] began
    /// a growth, each `(hash, handle)`, in the new groups: their lines are
    /// fetched first, so the cache misses overlap, then each is placed.
    /// The owner moves each such entry exactly once.
    pub fn move_entries(&mut self, moves: &[(u64, u32)]) {
        debug_assert!(self.is_growing());
        for &(hash, _) in moves {
            prefetch(&self.groups[self.home(hash)]);
        }
        for &(hash, handle) in moves {
            debug_assert!(
                position(&self.groups, hash, |h| h == handle).is_none(),
                "entry moved twice"
            );
            place(&mut self.groups, hash, handle);
        }
    }

    /// Ends a growth once every entry held at its start was moved: frees
    /// the previous groups.
    pub fn end_growth(&mut self) {
        debug_assert!(self.is_growing());
        debug_assert_eq!(
            self.groups
                .iter()
                .map(|g| usize::from(g.len))
                .sum::<usize>(),
            self.len,
            "HandleTable::end_growth before every entry was moved"
        );
        self.previous = Vec::new();
        self.moved_groups = 0;
    }

    /// Replaces every entry with `entries`, `count` of them (hash,
    /// handle), keeping the capacity if they fit.
    pub fn rebuild(&mut self, count: usize, entries: impl Iterator<Item = (u64, u32)>) {
        self.len = 0;
        let groups = self.groups_for(count).unwrap_or(self.groups.len());
        self.fill(groups, entries);
        assert_eq!(self.len, count, "HandleTable::rebuild: count differs");
    }

    /// How many groups `additional` more entries need, when that is more
    /// than the table has (or it has none).
    fn groups_for(&self, additional: usize) -> Option<usize> {
        let needed = self.len.saturating_add(additional);
        if needed * LOAD_DEN <= self.capacity_slots() * LOAD_NUM && !self.groups.is_empty() {
            return None;
        }
        let mut groups = self.groups.len().max(1);
        while needed * LOAD_DEN > groups * GROUP_SLOTS * LOAD_NUM {
            groups *= 2;
        }
        debug_assert_ne!(groups, self.groups.len());
        Some(groups)
    }

    /// Makes the table `groups` groups holding exactly `entries`. Each
    /// entry's group is fetched a few entries ahead of placing it, so the
    /// cache misses of a large table's placements overlap.
    fn fill(&mut self, groups: usize, entries: impl Iterator<Item = (u64, u32)>) {
        const AHEAD: usize = 8;
        assert!(groups.is_power_of_two());
        // The entries given are every entry: a growth under way is over.
        self.previous = Vec::new();
        self.moved_groups = 0;
        if self.groups.len() == groups {
            self.groups.fill(Group::EMPTY);
        } else {
            self.groups = vec![Group::EMPTY; groups];
        }
        let mask = groups - 1;
        let mut pending = [(0u64, 0u32); AHEAD];
        let mut n = 0;
        for entry in entries {
            let slot = &mut pending[n % AHEAD];
            if n >= AHEAD {
                place(&mut self.groups, slot.0, slot.1);
            }
            *slot = entry;
            prefetch(&self.groups[(entry.0 as usize) & mask]);
            n += 1;
        }
        for k in n.saturating_sub(AHEAD)..n {
            let (hash, handle) = pending[k % AHEAD];
            place(&mut self.groups, hash, handle);
        }
        assert!(
            n * LOAD_DEN <= self.capacity_slots() * LOAD_NUM,
            "HandleTable overfilled"
        );
        self.len = n;
    }

    fn capacity_slots(&self) -> usize {
        self.groups.len() * GROUP_SLOTS
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        (self.groups.capacity() + self.previous.capacity()) * std::mem::size_of::<Group>()
    }
}

/// `n` empty groups, allocated zeroed: a large allocation comes as fresh
/// pages the kernel zeroes when first touched, so a growth a step at a
/// time spreads that cost over its moves instead of writing every group
/// up front (33 MB, 25 ms here, for an index of 2.75 million strings).
fn zeroed_groups(n: usize) -> Vec<Group> {
    const _: () = assert!(std::mem::size_of::<Group>() > 0);
    let Ok(layout) = std::alloc::Layout::array::<Group>(n) else {
        // More bytes than the address space: the same failure as vec!'s.
        panic!("HandleTable of {n} groups overflows the address space");
    };
    if n == 0 {
        return Vec::new();
    }
    #[allow(unsafe_code)]
    // SAFETY: the layout has a non-zero size (n > 0, groups are not
    // zero-sized). A Group is integers only (`repr(C)`), so all-zero bytes
    // are a valid Group, and they are `Group::EMPTY`. The pointer comes
    // from the global allocator with `Layout::array::<Group>(n)`, the
    // layout `Vec<Group>` with capacity `n` frees with, and all `n`
    // elements are initialised (zeroed).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<Group>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(ptr, n, n)
    }
}

/// The home group of `hash` among `groups` (a power of two of them).
#[inline(always)]
fn home(groups: &[Group], hash: u64) -> usize {
    // Truncation keeps the low bits, which are all the mask keeps.
    (hash as usize) & (groups.len() - 1)
}

/// [`HandleTable::likely`] among `groups`, which may be none.
fn likely_in(groups: &[Group], hash: u64) -> Option<u32> {
    if groups.is_empty() {
        return None;
    }
    let group = &groups[home(groups, hash)];
    let matches = group.matches(tag(hash));
    (matches != 0).then(|| group.handles[(matches.trailing_zeros() / 8) as usize])
}

/// The group, entry and handle of the handle with this `hash` among
/// `groups` (at least one) for which `eq` holds, if any.
#[inline(always)]
fn position(
    groups: &[Group],
    hash: u64,
    mut eq: impl FnMut(u32) -> bool,
) -> Option<(usize, usize, u32)> {
    let tag = tag(hash);
    let mask = groups.len() - 1;
    let mut g = home(groups, hash);
    // Each group at most once: removals can leave every group passed.
    for _ in 0..groups.len() {
        let group = &groups[g];
        let mut matches = group.matches(tag);
        while matches != 0 {
            let i = (matches.trailing_zeros() / 8) as usize;
            let handle = group.handles[i];
            if group.tags[i] == tag && eq(handle) {
                return Some((g, i, handle));
            }
            matches &= matches - 1;
        }
        if group.passed == 0 {
            return None;
        }
        g = (g + 1) & mask;
    }
    None
}

/// Puts `handle` in the first group from `hash`'s home on that has room,
/// counting the full groups it passes.
fn place(groups: &mut [Group], hash: u64, handle: u32) {
    let mask = groups.len() - 1;
    let mut g = (hash as usize) & mask;
    write_first(&mut groups[g]);
    while groups[g].is_full() {
        let passed = &mut groups[g].passed;
        *passed = passed.saturating_add(1);
        g = (g + 1) & mask;
    }
    groups[g].push(tag(hash), handle);
}

/// Writes `group`'s spare byte (always zero) before anything reads the
/// group, so that when the group lies on a page of [`zeroed_groups`] not
/// touched yet, the first touch is a write. The kernel serves a first
/// write with a fresh zeroed page. A first read instead maps the shared
/// zero page, and the write that follows is a second fault that copies
/// it and flushes the page's old mapping from every core running one of
/// the process's threads: an interrupt to the other core and a wait for
/// it. On 2 cores, `replay --threads 2` spent 6% of its CPU in that
/// flush (`perf`, docs/PERFORMANCE.md, fifteenth session), and the
/// Kafka processor shares its pages with librdkafka's threads.
#[inline(always)]
fn write_first(group: &mut Group) {
    #[allow(unsafe_code)]
    // SAFETY: the pointer comes from a `&mut u8`, so it is valid, aligned
    // and not aliased for the write.
    unsafe {
        std::ptr::write_volatile(&raw mut group.spare, 0);
    }
    // Keeps the compiler from moving the group's reads before the write
    // (a volatile write orders only against other volatile accesses).
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A table of handles `0..n` whose "strings" are the keys, hashed by a
    /// deliberately poor hash (many equal home groups and tags).
    fn build(keys: &[u64], hash: impl Fn(u64) -> u64 + Copy) -> HandleTable {
        let mut table = HandleTable::default();
        for (handle, &key) in keys.iter().enumerate() {
            table.insert_unique(hash(key), handle as u32, |h| hash(keys[h as usize]));
        }
        table
    }

    /// The same table grown the other way: rebuilt from the keys in handle
    /// order.
    fn build_rebuilding(keys: &[u64], hash: impl Fn(u64) -> u64 + Copy) -> HandleTable {
        let mut table = HandleTable::default();
        for (handle, &key) in keys.iter().enumerate() {
            table.reserve_rebuilding(1, || {
                keys[..handle]
                    .iter()
                    .enumerate()
                    .map(|(h, &k)| (hash(k), h as u32))
            });
            table.insert_reserved(hash(key), handle as u32);
        }
        table
    }

    #[test]
    fn rebuild_keeps_only_the_entries_given() {
        let keys: Vec<u64> = (0..1000).collect();
        let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut table = build_rebuilding(&keys, hash);
        let bytes = table.heap_bytes();
        let even = keys.iter().filter(|&&k| k % 2 == 0);
        table.rebuild(500, even.map(|&k| (hash(k), k as u32)));
        assert_eq!((table.len(), table.heap_bytes()), (500, bytes));
        for &k in &keys {
            let found = table.find(hash(k), |h| u64::from(h) == k);
            assert_eq!(found, (k % 2 == 0).then_some(k as u32));
        }
        // Growing past the capacity while rebuilding.
        table.rebuild(5000, (0..5000u64).map(|k| (hash(k), k as u32)));
        assert!(table.heap_bytes() > bytes);
        assert_eq!(table.find(hash(4999), |h| h == 4999), Some(4999));
    }

    #[test]
    #[should_panic(expected = "without room")]
    fn inserting_without_room_is_refused() {
        let mut table = HandleTable::default();
        table.insert_reserved(1, 0);
    }

    #[test]
    fn zeroed_groups_are_empty_groups() {
        let groups = zeroed_groups(3);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups.capacity(), 3);
        for g in &groups {
            assert_eq!(
                (g.tags, g.len, g.spare, g.passed, g.handles),
                (
                    Group::EMPTY.tags,
                    Group::EMPTY.len,
                    Group::EMPTY.spare,
                    Group::EMPTY.passed,
                    Group::EMPTY.handles
                )
            );
        }
        assert!(zeroed_groups(0).is_empty());
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let table = HandleTable::default();
        assert_eq!(table.find(7, |_| true), None);
        table.prefetch(7);
        assert!(table.is_empty());
    }

    #[test]
    fn full_groups_overflow_to_the_next_and_wrap() {
        // Every key has the same home group and tag: one long overflow run.
        let keys: Vec<u64> = (0..100).collect();
        let table = build(&keys, |_| u64::MAX);
        for (handle, &key) in keys.iter().enumerate() {
            assert_eq!(
                table.find(u64::MAX, |h| keys[h as usize] == key),
                Some(handle as u32)
            );
        }
        assert_eq!(table.find(u64::MAX, |_| false), None);
        assert!(table.len * LOAD_DEN <= table.capacity_slots() * LOAD_NUM);
    }

    #[test]
    fn a_tag_match_costs_one_comparison_and_others_none() {
        // Tags 0x00 then 0x01 in one group: the borrow trick also flags
        // the 0x01 entry when matching 0x00; that entry must not reach
        // the comparison.
        let hashes = [0x00 << 56, 0x01 << 56];
        let mut table = HandleTable::default();
        for (handle, &hash) in hashes.iter().enumerate() {
            table.insert_unique(hash, handle as u32, |h| hashes[h as usize]);
        }
        let group = &table.groups[0];
        assert_ne!(group.matches(0x00) & (0x80 << 8), 0, "the false match");
        let mut compared = Vec::new();
        let found = table.find(0x00 << 56, |h| {
            compared.push(h);
            false
        });
        assert_eq!((found, compared), (None, vec![0]));
        assert_eq!(group.matches(0x02), 0);
    }

    #[test]
    fn likely_is_the_first_tag_match_of_the_home_group() {
        let table = HandleTable::default();
        assert_eq!(table.likely(7), None);
        // Tags 0xAA, 0xBB and 0xAB in the one group of a small table.
        let hashes = [0xAA << 56, 0xBB << 56, 0xAA << 56 | 1 << 56];
        let mut table = HandleTable::default();
        for (handle, &hash) in hashes.iter().enumerate() {
            table.insert_unique(hash, handle as u32, |h| hashes[h as usize]);
        }
        assert_eq!(table.likely(0xAA << 56), Some(0));
        assert_eq!(table.likely(0xBB << 56), Some(1));
        assert_eq!(table.likely(0xCC << 56), None);
    }

    #[test]
    fn an_empty_rebuild_keeps_the_capacity_and_forgets_every_entry() {
        let keys: Vec<u64> = (0..1000).collect();
        let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut table = build(&keys, hash);
        let bytes = table.heap_bytes();
        table.rebuild(0, std::iter::empty());
        assert!(table.is_empty());
        assert_eq!(table.heap_bytes(), bytes);
        for &k in &keys {
            assert_eq!(table.find(hash(k), |_| true), None);
        }
        // Refilled without growing.
        for (handle, &key) in keys.iter().enumerate() {
            table.insert_unique(hash(key), handle as u32, |h| hash(keys[h as usize]));
        }
        assert_eq!(table.heap_bytes(), bytes);
        assert_eq!(table.find(hash(5), |h| h == 5), Some(5));
    }

    #[test]
    fn removing_uncounts_the_groups_an_entry_passed() {
        // Every key has the same home group: entries 12.. passed group 0.
        let keys: Vec<u64> = (0..30).collect();
        let mut table = build(&keys, |_| 0);
        assert_eq!(table.groups[0].passed, 18);
        assert!(!table.remove(0, 99), "a handle not held");
        for handle in (12..30).rev() {
            assert!(table.remove(0, handle));
            assert!(!table.remove(0, handle), "removed twice");
        }
        assert_eq!(table.groups.iter().map(|g| g.passed).sum::<u16>(), 0);
        assert_eq!(table.len(), 12);
        for handle in 0..12 {
            assert_eq!(table.find(0, |h| h == handle), Some(handle));
        }
        assert_eq!(table.find(0, |h| h == 12), None);
        assert!(!HandleTable::default().remove(0, 0));
    }

    #[test]
    fn a_lookup_stops_when_every_group_was_passed() {
        // Four groups; handle h's home is h / 100. Each group is filled,
        // passed by one more entry, then emptied, round the table: every
        // group is passed and none is full, so only the bound stops a miss.
        let mut table = HandleTable::default();
        let home = |h: u32| u64::from(h / 100);
        let insert = |table: &mut HandleTable, handles: std::ops::Range<u32>| {
            for h in handles {
                table.insert_unique(home(h), h, home);
            }
        };
        insert(&mut table, 0..13);
        insert(&mut table, 100..112);
        assert_eq!(table.groups.len(), 4);
        for h in 0..12 {
            assert!(table.remove(0, h));
        }
        insert(&mut table, 200..212);
        for h in 100..111 {
            assert!(table.remove(1, h));
        }
        insert(&mut table, 300..312);
        for h in (200..211).chain(300..311) {
            assert!(table.remove(home(h), h));
        }
        assert_eq!(table.groups.len(), 4);
        assert!(table.groups.iter().all(|g| g.passed > 0 && !g.is_full()));
        for hash in 0..4 {
            assert_eq!(table.find(hash, |_| false), None);
        }
        for h in [12, 111, 211, 311] {
            assert_eq!(table.find(home(h), |c| c == h), Some(h));
        }
    }

    proptest! {
        /// Against a map: every inserted key is found with its handle, and
        /// absent keys are not, whatever the hash's quality.
        #[test]
        fn finds_what_a_map_finds(
            keys in prop::collection::hash_set(any::<u64>(), 0..3000),
            absent in prop::collection::vec(any::<u64>(), 0..50),
            distinct in 1u64..5000,
        ) {
            let keys: Vec<u64> = keys.into_iter().collect();
            // At most `distinct` hashes: many keys share one when few.
            let hash = move |k: u64| (k % distinct).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let table = build(&keys, hash);
            let rebuilt = build_rebuilding(&keys, hash);
            prop_assert_eq!(rebuilt.len(), keys.len());
            prop_assert_eq!(rebuilt.heap_bytes(), table.heap_bytes());
            let map: HashMap<u64, u32> = keys.iter().enumerate().map(|(h, &k)| (k, h as u32)).collect();
            prop_assert_eq!(table.len(), keys.len());
            for (&k, &h) in &map {
                prop_assert_eq!(table.find(hash(k), |c| keys[c as usize] == k), Some(h));
                prop_assert_eq!(rebuilt.find(hash(k), |c| keys[c as usize] == k), Some(h));
            }
            for k in absent {
                if !map.contains_key(&k) {
                    prop_assert_eq!(table.find(hash(k), |c| keys[c as usize] == k), None);
                    prop_assert_eq!(rebuilt.find(hash(k), |c| keys[c as usize] == k), None);
                }
            }
        }

        /// Against a map, with removals: inserts and removes in any order,
        /// and every key held is found, every key removed is not.
        #[test]
        fn removes_what_a_map_removes(
            ops in prop::collection::vec((any::<bool>(), 0u64..400), 0..3000),
            distinct in 1u64..300,
        ) {
            let hash = move |k: u64| (k % distinct).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut table = HandleTable::default();
            let mut map: HashMap<u64, ()> = HashMap::new();
            for (insert, key) in ops {
                // The handle is the key itself.
                if insert {
                    if map.insert(key, ()).is_none() {
                        table.insert_unique(hash(key), key as u32, |h| hash(u64::from(h)));
                    }
                } else {
                    prop_assert_eq!(table.remove(hash(key), key as u32), map.remove(&key).is_some());
                }
                prop_assert_eq!(table.len(), map.len());
            }
            for key in 0..400u64 {
                let found = table.find(hash(key), |h| u64::from(h) == key);
                prop_assert_eq!(found, map.contains_key(&key).then_some(key as u32));
            }
            // Every count is exactly the entries that passed its group.
            let mask = table.groups.len().wrapping_sub(1);
            let mut recount = vec![0u16; table.groups.len()];
            for (at, group) in table.groups.iter().enumerate() {
                for &handle in &group.handles[..usize::from(group.len)] {
                    let mut g = (hash(u64::from(handle)) as usize) & mask;
                    while g != at {
                        recount[g] += 1;
                        g = (g + 1) & mask;
                    }
                }
            }
            let passed: Vec<u16> = table.groups.iter().map(|g| g.passed).collect();
            prop_assert_eq!(passed, recount);
        }
    }
}
