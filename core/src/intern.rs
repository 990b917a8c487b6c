//! [`Interner`]: maps strings such as user and order ids to dense `u32`
//! handles, so state refers to a user with 4 bytes instead of a heap string.
//!
//! Layout, chosen for tens of millions of ids per partition: the bytes of all
//! strings sit back to back in fixed-size chunks (no reallocation copies and
//! at most one partly filled chunk), each id has one packed `u64` span (also
//! in chunks), and
//! the hash table holds only the 4-byte handle; hashes are recomputed from
//! the bytes when the table grows instead of being stored.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::id::{ID_BYTES_MAX, ids_equal};

/// Bytes per arena chunk. Every interned string fits in one chunk.
const CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(ID_BYTES_MAX < CHUNK_BYTES);

/// Most strings one interner holds: handles are `u32`.
pub const INTERNED_MAX: usize = u32::MAX as usize;

/// Spans per span chunk: spans grow by whole chunks, never by copying.
const SPANS_PER_CHUNK: usize = 8192;

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
    table: HashTable<u32>,
    /// Span of each handle, in chunks of [`SPANS_PER_CHUNK`].
    spans: Vec<Vec<u64>>,
    len: usize,
    chunks: Vec<Vec<u8>>,
    hasher: DefaultHashBuilder,
}

/// Summarises rather than dumps: an interner can hold millions of strings.
impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The handle of `s`, if it was interned.
    pub fn get(&self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s.as_bytes());
        self.table
            .find(hash, |&id| ids_equal(self.bytes(id), s.as_bytes()))
            .copied()
    }

    /// The handle of `s`, if it was interned, with the hash that
    /// [`Interner::intern_probed`] reuses: one hash and one probe where a
    /// caller first asks and then interns.
    pub fn probe(&self, s: &str) -> Probe {
        let hash = self.hasher.hash_one(s.as_bytes());
        let handle = self
            .table
            .find(hash, |&id| ids_equal(self.bytes(id), s.as_bytes()))
            .copied();
        Probe { hash, handle }
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
        if let Some(id) = probe.handle {
            return Ok(id);
        }
        if bytes.len() > ID_BYTES_MAX {
            return Err(InternError::TooLong(bytes.len()));
        }
        let hash = probe.hash;
        if self.len >= INTERNED_MAX {
            return Err(InternError::Full);
        }
        let id = self.len as u32;
        let span = self.push_bytes(bytes);
        match self.spans.last_mut() {
            Some(chunk) if chunk.len() < SPANS_PER_CHUNK => chunk.push(span),
            _ => {
                let mut chunk = Vec::with_capacity(SPANS_PER_CHUNK);
                chunk.push(span);
                self.spans.push(chunk);
            }
        }
        self.len += 1;
        let Interner {
            table,
            spans,
            chunks,
            hasher,
            ..
        } = self;
        table.insert_unique(hash, id, |&other| {
            hasher.hash_one(span_bytes(chunks, span_of(spans, other)))
        });
        Ok(id)
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
        span_bytes(&self.chunks, span_of(&self.spans, id))
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
        self.spans
            .iter()
            .flatten()
            .map(|&span| span_bytes(&self.chunks, span))
    }

    /// Makes room in the hash table for `additional` more strings, so that
    /// restoring a snapshot interns without rehashing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let Interner {
            table,
            spans,
            chunks,
            hasher,
            ..
        } = self;
        table.reserve(additional, |&other| {
            hasher.hash_one(span_bytes(chunks, span_of(spans, other)))
        });
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.spans.iter().map(Vec::capacity).sum::<usize>() * std::mem::size_of::<u64>()
            + self.chunks.iter().map(Vec::capacity).sum::<usize>()
    }
}

fn span_of(spans: &[Vec<u64>], id: u32) -> u64 {
    let id = id as usize;
    spans[id / SPANS_PER_CHUNK][id % SPANS_PER_CHUNK]
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
