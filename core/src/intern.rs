//! [`Interner`]: maps strings such as user and order ids to dense `u32`
//! handles, so state refers to a user with 4 bytes instead of a heap string.
//!
//! Layout, chosen for tens of millions of ids per partition: each handle has
//! a 16-byte slot (in chunks, so growth never copies), found from the
//! handle by arithmetic. An id of up to 15 bytes, which most user and order
//! ids are, sits in its slot, so a lookup reads the table and then one slot;
//! a longer id's bytes sit back to back in fixed-size arena chunks (no
//! reallocation copies, at most one partly filled chunk) and its slot holds
//! where. The hash index ([`HandleTable`]) holds the 4-byte handle and one
//! byte of its hash, a dozen to a cache line; full hashes are recomputed
//! from the bytes when it grows instead of being stored. A lookup reads one
//! line of the index and the slot.
//!
//! The index grows a step at a time ([`HandleTable::reserve_stepwise`]):
//! at a growth, the strings held stay in the old index, and each later
//! call of [`Interner::intern_probed`] moves the next [`MOVES_PER_INTERN`]
//! of them, in handle order, into the new one. An interner of tens of
//! millions of order ids thus never stops to rehash them all at once (the
//! growth at 5.5 million took 225 ms in one insert here); until the move
//! ends, a lookup reads the old index first (it still holds every string
//! held at the growth) and the new one only for strings added since or
//! not held.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use crate::chunked::ChunkedVec;
use crate::handle_table::HandleTable;
use crate::prefetch::prefetch;

use crate::id::{ID_BYTES_MAX, ids_equal};

/// Bytes per arena chunk. Every interned string fits in one chunk.
const CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(ID_BYTES_MAX < CHUNK_BYTES);

/// Most strings one interner holds: handles are `u32`.
pub const INTERNED_MAX: usize = u32::MAX as usize;

/// Strings moved into a growing index per call of
/// [`Interner::intern_probed`] (hit or new): a growth to twice the
/// capacity has moved every string long before the next growth is due
/// (that takes at least as many new strings as are held, and each brings a
/// call). Fewer per call spread the moves over more calls, but keep the
/// growth, and the second probe of strings added meanwhile, going longer.
/// Measured on 1 M steady events (`replay` under cachegrind: 6.416 G
/// instructions growing all at once) and 3 M new ids (`growth_stall`, 1.0
/// s all at once): 4 per call, +3.4% instructions; 8, +2.0% and 1.26-1.30
/// s; 16, +1.3%; 32, +1.0% and 1.04 s. The slowest batch of 1,000 events
/// at a growth (`batch_tail`) hardly differs between them: the first
/// touches of the new index's fresh pages, not the moves, dominate it.
pub const MOVES_PER_INTERN: usize = 32;

/// Slots per slot chunk: past the first, slots grow by whole chunks, never
/// by copying.
const SLOTS_PER_CHUNK: usize = 8192;

/// A handle's slot: an id of up to [`INLINE_MAX`] bytes, its length in the
/// last byte; or, with [`IN_ARENA`] in the last byte, the id's arena span
/// in the first eight (little-endian).
type Slot = [u8; SLOT_BYTES];
const SLOT_BYTES: usize = 16;
const INLINE_MAX: usize = SLOT_BYTES - 1;
const IN_ARENA: u8 = u8::MAX;
const _: () = assert!(INLINE_MAX < IN_ARENA as usize);

type Slots = ChunkedVec<Slot, SLOTS_PER_CHUNK>;

/// A span packs `chunk << 32 | offset << 8 | len`.
const LEN_BITS: u32 = 8;
const _: () = assert!(ID_BYTES_MAX < (1 << LEN_BITS));

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InternError {
    #[error("string of {0} bytes is longer than the {ID_BYTES_MAX}-byte id limit")]
    TooLong(usize),
    #[error("interner is full ({INTERNED_MAX} strings)")]
    Full,
}

/// What [`Interner::probe`] found: the handle, if the string is interned,
/// and the string's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    hash: u64,
    pub handle: Option<u32>,
}

#[derive(Default)]
pub struct Interner {
    table: HandleTable,
    /// Slot of each handle, at the handle's position.
    slots: Slots,
    /// Arena of the ids longer than [`INLINE_MAX`] bytes.
    chunks: Vec<Vec<u8>>,
    hasher: DefaultHashBuilder,
    /// While the index grows a step at a time: the next handle to move
    /// into the new index, and the end of the handles to move (those held
    /// when the growth began).
    moving: std::ops::Range<u32>,
}

/// Summarises rather than dumps: an interner can hold millions of strings.
impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The hash of `s` in this interner, which the `_hashed` lookups take
    /// so that a caller looking `s` up several times hashes it once.
    pub fn hash(&self, s: &str) -> u64 {
        self.hasher.hash_one(s.as_bytes())
    }

    /// The handle of `s`, if it was interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.get_hashed(s, self.hash(s))
    }

    /// [`Interner::get`], given `hash`, [`Interner::hash`] of `s`.
    pub fn get_hashed(&self, s: &str, hash: u64) -> Option<u32> {
        debug_assert_eq!(hash, self.hash(s), "hash of another string");
        self.table
            .find(hash, |id| ids_equal(self.bytes(id), s.as_bytes()))
    }

    /// Starts fetching into cache, without waiting, the index line where
    /// the string of `hash` is or would be: the first of the two lines a
    /// lookup reads.
    pub fn prefetch_index(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    /// Starts fetching the slot of the handle the string of `hash` most
    /// likely has (the second line a lookup reads), reading its index
    /// line. Best called some time after [`Interner::prefetch_index`] of
    /// the same hash.
    pub fn prefetch_slot(&self, hash: u64) {
        if let Some(id) = self.table.likely(hash) {
            let id = id as usize;
            if let Some(slot) = self.slots.get(id) {
                prefetch(slot);
            }
        }
    }

    /// The handle of `s`, if it was interned, with the hash that
    /// [`Interner::intern_probed`] reuses: one hash and one probe where a
    /// caller first asks and then interns.
    pub fn probe(&self, s: &str) -> Probe {
        self.probe_hashed(s, self.hash(s))
    }

    /// [`Interner::probe`], given `hash`, [`Interner::hash`] of `s`.
    pub fn probe_hashed(&self, s: &str, hash: u64) -> Probe {
        Probe {
            hash,
            handle: self.get_hashed(s, hash),
        }
    }

    /// The handle of `s`, interning it if new.
    pub fn intern(&mut self, s: &str) -> Result<u32, InternError> {
        let probe = self.probe(s);
        self.intern_probed(s, probe)
    }

    /// The handle of `s`, interning it if new, given `probe`, the result of
    /// [`Interner::probe`] of the same `s` with no change to the interner
    /// since.
    pub fn intern_probed(&mut self, s: &str, probe: Probe) -> Result<u32, InternError> {
        let bytes = s.as_bytes();
        debug_assert_eq!(
            probe.hash,
            self.hasher.hash_one(bytes),
            "probe of another string"
        );
        if self.table.is_growing() {
            self.move_step();
        }
        if let Some(id) = probe.handle {
            return Ok(id);
        }
        if bytes.len() > ID_BYTES_MAX {
            return Err(InternError::TooLong(bytes.len()));
        }
        let hash = probe.hash;
        if self.slots.len() >= INTERNED_MAX {
            return Err(InternError::Full);
        }
        let id = self.slots.len() as u32;
        let mut slot: Slot = [0; SLOT_BYTES];
        if bytes.len() <= INLINE_MAX {
            slot[..bytes.len()].copy_from_slice(bytes);
            slot[INLINE_MAX] = bytes.len() as u8;
        } else {
            let span = self.push_bytes(bytes);
            slot[..8].copy_from_slice(&span.to_le_bytes());
            slot[INLINE_MAX] = IN_ARENA;
        }
        if !self.table.has_room(1) {
            if self.table.is_growing() {
                // Not reached while every growth doubles (see
                // MOVES_PER_INTERN); bounded all the same.
                self.finish_growth();
            }
            if self.table.reserve_stepwise(1) {
                self.moving = 0..id;
            }
        }
        self.slots.push(slot);
        self.table.insert_reserved(hash, id);
        Ok(id)
    }

    /// Moves the next [`MOVES_PER_INTERN`] strings into the growing index,
    /// ending the growth after the last. Hashes them first and fetches
    /// their new lines ahead, so the cache misses overlap.
    #[inline(never)]
    fn move_step(&mut self) {
        let Interner {
            table,
            slots,
            chunks,
            hasher,
            moving,
        } = self;
        debug_assert!(table.is_growing() && moving.start < moving.end);
        let start = moving.start;
        let end = moving.end.min(start + MOVES_PER_INTERN as u32);
        let mut moves = [(0u64, 0u32); MOVES_PER_INTERN];
        for (slot, id) in moves.iter_mut().zip(start..end) {
            *slot = (hasher.hash_one(handle_bytes(slots, chunks, id)), id);
        }
        table.move_entries(&moves[..(end - start) as usize]);
        moving.start = end;
        if moving.start == moving.end {
            table.end_growth();
        }
    }

    /// Moves every string left to move and ends the growth.
    fn finish_growth(&mut self) {
        while self.table.is_growing() {
            self.move_step();
        }
    }

    /// The string behind a handle this interner returned.
    ///
    /// # Panics
    /// On a handle this interner never returned, which is a bug in the caller.
    pub fn resolve(&self, id: u32) -> &str {
        let bytes = self.bytes(id);
        // The bytes were copied from a `&str` in `intern`.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    fn bytes(&self, id: u32) -> &[u8] {
        handle_bytes(&self.slots, &self.chunks, id)
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> u64 {
        let needs_chunk = match self.chunks.last() {
            Some(chunk) => chunk.len() + bytes.len() > CHUNK_BYTES,
            None => true,
        };
        if needs_chunk {
            self.chunks.push(Vec::with_capacity(CHUNK_BYTES));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let offset = chunk.len();
        chunk.extend_from_slice(bytes);
        ((chunk_index as u64) << 32) | ((offset as u64) << LEN_BITS) | bytes.len() as u64
    }

    /// The bytes of every interned string, in handle order: the `n`th item
    /// is the string of handle `n` (for snapshots).
    pub(crate) fn iter_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.slots.iter().map(|slot| slot_bytes(&self.chunks, slot))
    }

    /// Makes room in the hash table for `additional` more strings, so that
    /// restoring a snapshot interns without rehashing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.finish_growth();
        let Interner {
            table,
            slots,
            chunks,
            hasher,
            moving: _,
        } = self;
        table.reserve_rebuilding(additional, || held(slots, chunks, hasher));
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.slots.heap_bytes()
            + self.chunks.iter().map(Vec::capacity).sum::<usize>()
    }
}

/// The hash and handle of every string interned, in handle order (which
/// reads the slots one after the other): what the hash index holds.
fn held<'a>(
    slots: &'a Slots,
    chunks: &'a [Vec<u8>],
    hasher: &'a DefaultHashBuilder,
) -> impl Iterator<Item = (u64, u32)> + 'a {
    slots
        .iter()
        .enumerate()
        .map(|(id, slot)| (hasher.hash_one(slot_bytes(chunks, slot)), id as u32))
}

fn handle_bytes<'a>(slots: &'a Slots, chunks: &'a [Vec<u8>], id: u32) -> &'a [u8] {
    slot_bytes(chunks, &slots[id as usize])
}

fn slot_bytes<'a>(chunks: &'a [Vec<u8>], slot: &'a Slot) -> &'a [u8] {
    match slot[INLINE_MAX] {
        IN_ARENA => {
            let mut span = [0u8; 8];
            span.copy_from_slice(&slot[..8]);
            span_bytes(chunks, u64::from_le_bytes(span))
        }
        len => &slot[..usize::from(len)],
    }
}

fn span_bytes(chunks: &[Vec<u8>], span: u64) -> &[u8] {
    let chunk = (span >> 32) as usize;
    let offset = ((span as u32) >> LEN_BITS) as usize;
    let len = (span & ((1 << LEN_BITS) - 1)) as usize;
    &chunks[chunk][offset..offset + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_resolves() {
        let mut i = Interner::new();
        let a = i.intern("alice").unwrap();
        let b = i.intern("bob").unwrap();
        assert_ne!(a, b);
        assert_eq!(i.intern("alice").unwrap(), a);
        assert_eq!(i.get("bob"), Some(b));
        assert_eq!(i.get("carol"), None);
        assert_eq!(i.resolve(a), "alice");
        assert_eq!(i.resolve(b), "bob");
        assert_eq!(i.len(), 2);
        assert_eq!(i.intern(&"x".repeat(129)), Err(InternError::TooLong(129)));
    }

    #[test]
    fn ids_inline_and_in_the_arena_resolve() {
        let mut i = Interner::new();
        let ids: Vec<String> = (0..=40)
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        let handles: Vec<u32> = ids.iter().map(|s| i.intern(s).unwrap()).collect();
        for (s, &h) in ids.iter().zip(&handles) {
            assert_eq!(i.resolve(h), s);
            assert_eq!(i.get(s), Some(h));
        }
        let all: Vec<&[u8]> = i.iter_bytes().collect();
        assert_eq!(all, ids.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
        assert_eq!(i.get(&"é".repeat(21)), None);
    }

    /// Every growth past the first table is a step at a time: the strings
    /// held stay findable while they move, each growth ends (every string
    /// moved) before the next is due, and a new string interned meanwhile
    /// is found in the new index.
    #[test]
    fn grows_a_step_at_a_time_and_finds_every_string_meanwhile() {
        let mut i = Interner::new();
        let n = 20_000u32;
        let (mut began, mut ended) = (0, 0);
        for k in 0..n {
            let was_growing = i.table.is_growing();
            let id = i.intern(&format!("order-{k}")).unwrap();
            assert_eq!(id, k);
            match (was_growing, i.table.is_growing()) {
                (false, true) => began += 1,
                (true, false) => ended += 1,
                _ => {}
            }
            if i.table.is_growing() || k % 997 == 0 {
                // Mid-growth (and now and then), every string so far.
                let step = if i.table.is_growing() { 101 } else { 1 };
                for j in (0..=k).step_by(step) {
                    assert_eq!(i.get(&format!("order-{j}")), Some(j), "at {k}");
                }
                assert_eq!(i.get(&format!("order-{k}")), Some(k));
                assert_eq!(i.get("absent"), None);
            }
        }
        assert!(began >= 8, "only {began} growths");
        assert!(ended + 1 >= began && ended <= began);
        // Moved in handle order: the moves left equal the strings left.
        if i.table.is_growing() {
            assert!(i.moving.start < i.moving.end);
        }
        i.finish_growth();
        assert!(!i.table.is_growing());
        for j in 0..n {
            assert_eq!(i.get(&format!("order-{j}")), Some(j));
        }
    }

    proptest::proptest! {
        /// Interning and looking up any sequence of strings, across
        /// growths and restores' bulk reserves, agrees with a map.
        #[test]
        fn agrees_with_a_map(
            ops in proptest::collection::vec((0u32..3_000, 0u8..20), 1..4_000)
        ) {
            let mut i = Interner::new();
            let mut map = std::collections::HashMap::new();
            for (key, op) in ops {
                let s = format!("id-{key}");
                match op {
                    0 => {
                        // A bulk reserve, as a restore makes.
                        i.reserve(usize::from(key as u16 % 512));
                    }
                    1..=5 => {
                        proptest::prop_assert_eq!(i.get(&s), map.get(&s).copied());
                    }
                    _ => {
                        let next = map.len() as u32;
                        let id = *map.entry(s.clone()).or_insert(next);
                        proptest::prop_assert_eq!(i.intern(&s), Ok(id));
                    }
                }
            }
            for (s, &id) in &map {
                proptest::prop_assert_eq!(i.get(s), Some(id));
                proptest::prop_assert_eq!(i.resolve(id), s.as_str());
            }
        }
    }

    #[test]
    fn survives_growth_across_chunks() {
        let mut i = Interner::new();
        let n = 40_000;
        let ids: Vec<u32> = (0..n)
            .map(|k| i.intern(&format!("user-{k:0>100}")).unwrap())
            .collect();
        assert!(i.chunks.len() > 1);
        for (k, &id) in ids.iter().enumerate() {
            let s = format!("user-{k:0>100}");
            assert_eq!(i.resolve(id), s);
            assert_eq!(i.get(&s), Some(id));
        }
    }
}
