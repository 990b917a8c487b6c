//! Identifier and integer limits of the wire contract (section 2).

/// Longest id, in UTF-8 bytes.
pub const ID_BYTES_MAX: usize = 128;

/// Largest integer the contract admits: 2^53 - 1, the largest integer every
/// JSON implementation represents exactly.
pub const INT_MAX: u64 = (1 << 53) - 1;

/// Whether `s` is a valid id: 1 to [`ID_BYTES_MAX`] bytes.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_BYTES_MAX
}

/// Whether two ids are equal, inline: ids are mostly a few bytes long, where
/// a call to the C library's `memcmp` (what `==` on slices becomes) costs
/// more than the comparison. Up to 16 bytes this is two overlapping loads
/// per side; longer ids compare as slices.
#[inline]
pub fn ids_equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // 1 to 3 bytes: first, middle and last cover every byte.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// An id held as a map key (seller and campaign ids): up to 24 bytes sit
/// inline in the key, so a lookup compares it where the table slot is
/// instead of following a pointer to a heap string (a cache miss per map
/// on the hot path); longer ids are on the heap. Hashes as `str` does.
pub type StoredId = compact_str::CompactString;

/// Heap bytes behind a [`StoredId`]: none unless it is longer than 24 bytes.
pub fn stored_id_heap_bytes(id: &StoredId) -> usize {
    if id.is_heap_allocated() {
        id.capacity()
    } else {
        0
    }
}

/// An id as a lookup key of a map keyed by [`StoredId`]: hashes as the
/// `str` does, compares with [`ids_equal`].
#[derive(Debug, Clone, Copy)]
pub struct IdKey<'a>(pub &'a str);

impl std::hash::Hash for IdKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl hashbrown::Equivalent<StoredId> for IdKey<'_> {
    fn equivalent(&self, key: &StoredId) -> bool {
        ids_equal(self.0.as_bytes(), key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ids_equal_is_slice_equality(
            a in prop::collection::vec(0u8..3, 0..40),
            b in prop::collection::vec(0u8..3, 0..40),
        ) {
            prop_assert_eq!(ids_equal(&a, &b), a == b);
            prop_assert!(ids_equal(&a, &a.clone()));
        }
    }

    #[test]
    fn id_keys_find_what_str_keys_find() {
        let mut map: hashbrown::HashMap<StoredId, u32> = hashbrown::HashMap::new();
        for (i, id) in [
            "s",
            "s0",
            "s10",
            "seller-0001",
            "exactly-24-bytes-inline!",
            "seller-with-a-long-name-1",
            &"店".repeat(42),
        ]
        .iter()
        .enumerate()
        {
            map.insert((*id).into(), i as u32);
        }
        for (id, &i) in &map {
            assert_eq!(map.get(&IdKey(id)), Some(&i));
        }
        assert_eq!(map.get(&IdKey("s1")), None);
    }

    #[test]
    fn id_length_is_counted_in_bytes() {
        assert!(!is_valid_id(""));
        assert!(is_valid_id("a"));
        assert!(is_valid_id(&"a".repeat(128)));
        assert!(!is_valid_id(&"a".repeat(129)));
        // 43 three-byte characters are 129 bytes.
        assert!(!is_valid_id(&"店".repeat(43)));
        assert!(is_valid_id(&"店".repeat(42)));
    }
}
