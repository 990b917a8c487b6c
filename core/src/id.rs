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

#[cfg(test)]
mod tests {
    use super::*;

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
