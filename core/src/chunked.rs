//! [`ChunkedVec`]: a growable list indexed by position whose growth never
//! copies what it holds.
//!
//! A `Vec` that doubles copies every item it holds into a new allocation,
//! and the kernel zeroes the new pages first: for state that grows to
//! hundreds of megabytes (coupons, interned ids, remembered event ids) that
//! is a copy and a double page-zeroing of everything on the hot path,
//! measured at several percent of a processor's CPU while its state is
//! young. Here the first `CHUNK` items live in one `Vec` that doubles (so a
//! list of a few items stays small: most campaigns' coupon ledgers), and
//! every later item in a chunk of exactly `CHUNK` allocated once and never
//! moved. Position `i` is found by arithmetic: in the first chunk, or in
//! chunk `i / CHUNK - 1` of the rest at `i % CHUNK`. At most one chunk is
//! partly filled.

use std::mem::size_of;

/// A list of `T` in chunks of `CHUNK` items (a power of two).
#[derive(Debug, Clone)]
pub struct ChunkedVec<T, const CHUNK: usize> {
    /// Positions `0..CHUNK` (grows by doubling up to `CHUNK`).
    first: Vec<T>,
    /// Later positions: chunk `k` holds `(k + 1) * CHUNK` on, each
    /// allocated with room for exactly `CHUNK`.
    rest: Vec<Vec<T>>,
}

impl<T, const CHUNK: usize> Default for ChunkedVec<T, CHUNK> {
    fn default() -> Self {
        ChunkedVec::new()
    }
}

impl<T, const CHUNK: usize> ChunkedVec<T, CHUNK> {
    const VALID: () = assert!(CHUNK.is_power_of_two(), "CHUNK must be a power of two");

    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        ChunkedVec {
            first: Vec::new(),
            rest: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        match self.rest.last() {
            None => self.first.len(),
            Some(last) => CHUNK * self.rest.len() + last.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// Appends `item`; returns its position.
    pub fn push(&mut self, item: T) -> usize {
        let at = self.len();
        if self.first.len() < CHUNK {
            self.first.push(item);
        } else {
            match self.rest.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => chunk.push(item),
                _ => {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    chunk.push(item);
                    self.rest.push(chunk);
                }
            }
        }
        debug_assert_eq!(self.len(), at + 1);
        at
    }

    #[inline]
    pub fn get(&self, at: usize) -> Option<&T> {
        if at < CHUNK {
            self.first.get(at)
        } else {
            self.rest.get(at / CHUNK - 1)?.get(at % CHUNK)
        }
    }

    #[inline]
    pub fn get_mut(&mut self, at: usize) -> Option<&mut T> {
        if at < CHUNK {
            self.first.get_mut(at)
        } else {
            self.rest.get_mut(at / CHUNK - 1)?.get_mut(at % CHUNK)
        }
    }

    /// The items from position `at` to the end of its chunk (or of the
    /// list), mutably: a walk over many positions indexes once per chunk.
    /// Empty when `at` is past the end.
    pub fn run_from_mut(&mut self, at: usize) -> &mut [T] {
        let (chunk, from) = if at < CHUNK {
            (&mut self.first, at)
        } else {
            match self.rest.get_mut(at / CHUNK - 1) {
                Some(chunk) => (chunk, at % CHUNK),
                None => return &mut [],
            }
        };
        chunk.get_mut(from..).unwrap_or_default()
    }

    /// Every item in position order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.first.iter().chain(self.rest.iter().flatten())
    }

    /// Every item in position order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.first.iter_mut().chain(self.rest.iter_mut().flatten())
    }

    /// Makes room for `additional` more items in the first chunk (the rest
    /// are allocated whole as they are reached): a list restored to a known
    /// size stops doubling there.
    pub fn reserve(&mut self, additional: usize) {
        let room = CHUNK - self.first.len().min(CHUNK);
        self.first.reserve(additional.min(room));
    }

    /// Heap bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.first.capacity() * size_of::<T>()
            + self.rest.capacity() * size_of::<Vec<T>>()
            + self.rest.iter().map(Vec::capacity).sum::<usize>() * size_of::<T>()
    }
}

/// Positions the list holds; a position past the end is a bug in the
/// caller (positions come from [`ChunkedVec::push`]).
impl<T, const CHUNK: usize> std::ops::Index<usize> for ChunkedVec<T, CHUNK> {
    type Output = T;

    #[inline]
    fn index(&self, at: usize) -> &T {
        match self.get(at) {
            Some(item) => item,
            None => past_the_end(at),
        }
    }
}

impl<T, const CHUNK: usize> std::ops::IndexMut<usize> for ChunkedVec<T, CHUNK> {
    #[inline]
    fn index_mut(&mut self, at: usize) -> &mut T {
        match self.get_mut(at) {
            Some(item) => item,
            None => past_the_end(at),
        }
    }
}

#[cold]
#[track_caller]
fn past_the_end(at: usize) -> ! {
    panic!("ChunkedVec: position {at} past the end")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_cross_chunks() {
        let mut v: ChunkedVec<u64, 4> = ChunkedVec::new();
        assert!(v.is_empty());
        for i in 0..13u64 {
            assert_eq!(v.push(i * 10), i as usize);
        }
        assert_eq!(v.len(), 13);
        assert_eq!(v.get(0), Some(&0));
        assert_eq!(v.get(4), Some(&40));
        assert_eq!(v[12], 120);
        assert_eq!(v.get(13), None);
        assert_eq!(v.get(400), None);
        v[5] = 7;
        *v.get_mut(12).unwrap() += 1;
        assert_eq!(
            v.iter().copied().collect::<Vec<_>>(),
            vec![0, 10, 20, 30, 40, 7, 60, 70, 80, 90, 100, 110, 121]
        );
        for x in v.iter_mut() {
            *x += 1;
        }
        assert_eq!(v[0], 1);
        assert_eq!(v[12], 122);
    }

    #[test]
    fn runs_end_at_chunk_ends() {
        let mut v: ChunkedVec<u64, 4> = ChunkedVec::new();
        assert!(v.run_from_mut(0).is_empty());
        for i in 0..10u64 {
            v.push(i);
        }
        assert_eq!(v.run_from_mut(0), &[0, 1, 2, 3]);
        assert_eq!(v.run_from_mut(2), &[2, 3]);
        assert_eq!(v.run_from_mut(4), &[4, 5, 6, 7]);
        assert_eq!(v.run_from_mut(7), &[7]);
        assert_eq!(v.run_from_mut(8), &[8, 9]);
        assert!(v.run_from_mut(10).is_empty());
        assert!(v.run_from_mut(13).is_empty());
        v.run_from_mut(5)[0] = 50;
        assert_eq!(v[5], 50);
        // Runs from 0, one after another, visit every position once.
        let mut at = 0;
        let mut seen = Vec::new();
        while at < v.len() {
            let run = v.run_from_mut(at);
            seen.extend_from_slice(run);
            at += run.len();
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 50, 6, 7, 8, 9]);
    }

    #[test]
    #[should_panic(expected = "position 9 past the end")]
    fn indexing_past_the_end_panics() {
        let mut v: ChunkedVec<u8, 4> = ChunkedVec::new();
        for i in 0..6 {
            v.push(i);
        }
        let _ = v[9];
    }

    #[test]
    fn later_chunks_are_allocated_whole() {
        let mut v: ChunkedVec<u32, 1024> = ChunkedVec::new();
        for i in 0..1025 {
            v.push(i);
        }
        // The first chunk doubled to exactly 1024; the second has room for
        // 1024 from its first item on, so it never reallocates.
        assert!(v.heap_bytes() >= 2048 * 4);
        let p = std::ptr::from_ref(&v[1024]);
        for i in 1025..2048 {
            v.push(i);
        }
        assert_eq!(std::ptr::from_ref(&v[1024]), p);
        assert_eq!(v.len(), 2048);
    }

    #[test]
    fn reserve_stays_within_the_first_chunk() {
        let mut v: ChunkedVec<u8, 64> = ChunkedVec::new();
        v.reserve(1_000_000);
        assert!(v.heap_bytes() < 1_000);
        v.reserve(10);
        for i in 0..70 {
            v.push(i);
        }
        assert_eq!(v.len(), 70);
    }

    proptest! {
        /// Behaves as a `Vec` under pushes, writes and reads.
        #[test]
        fn matches_a_vec(ops in proptest::collection::vec((any::<bool>(), any::<u16>()), 0..600)) {
            let mut model: Vec<u16> = Vec::new();
            let mut v: ChunkedVec<u16, 8> = ChunkedVec::new();
            for (write, x) in ops {
                if write && !model.is_empty() {
                    let at = usize::from(x) % model.len();
                    model[at] = x;
                    v[at] = x;
                } else {
                    prop_assert_eq!(v.push(x), model.len());
                    model.push(x);
                }
                prop_assert_eq!(v.len(), model.len());
            }
            prop_assert_eq!(v.iter().copied().collect::<Vec<_>>(), model.clone());
            for (at, x) in model.iter().enumerate() {
                prop_assert_eq!(v.get(at), Some(x));
            }
            prop_assert_eq!(v.get(model.len()), None);
        }
    }
}
