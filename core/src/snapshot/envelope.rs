//! The frame around a snapshot's sections: magic bytes and format version
//! in front, the configuration the state was built under, and an xxh3
//! checksum of everything at the end. A snapshot whose frame does not
//! check out is refused before any section is parsed.

use crate::config::CoreConfig;

use super::SnapshotError;
use super::wire::{Reader, put_str, put_varint};

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 6] = b"CSSNAP";

/// The format [`encode`](super::encode) writes and [`decode`](super::decode) reads.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format [`decode`](super::decode) still reads: before state retention.
pub const FORMAT_VERSION_V1: u32 = 1;

pub(super) const HEADER_BYTES: usize = MAGIC.len() + 4;
pub(super) const CHECKSUM_BYTES: usize = 8;

/// Longest time zone name accepted (IANA names have at most 32 bytes).
pub(super) const TIMEZONE_BYTES_MAX: usize = 64;

/// Magic and format version.
pub(super) fn put_header(out: &mut Vec<u8>, version: u32) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
}

/// The [`CoreConfig`] values that change decisions, which a restore must
/// run under too ([`check_config`]).
pub(super) fn put_config(out: &mut Vec<u8>, config: &CoreConfig, v2: bool) {
    put_varint(out, config.dedup_window_ms);
    put_varint(out, config.max_event_bytes as u64);
    put_varint(out, config.seller_defaults.daily_issue_limit);
    put_varint(out, config.seller_defaults.max_recipients);
    put_str(out, config.seller_defaults.timezone.name());
    if v2 {
        put_varint(out, config.retention_ms);
    }
}

/// Appends the checksum of everything written since `start`.
pub(super) fn seal(out: &mut Vec<u8>, start: usize) {
    let checksum = xxhash_rust::xxh3::xxh3_64(&out[start..]);
    out.extend_from_slice(&checksum.to_le_bytes());
}

/// Checks magic, version and checksum; returns the version and the
/// sections between them.
pub(super) fn open_envelope(bytes: &[u8]) -> Result<(u32, &[u8]), SnapshotError> {
    let Some((magic, rest)) = bytes.split_at_checked(MAGIC.len()) else {
        return Err(if MAGIC.starts_with(bytes) {
            SnapshotError::Truncated
        } else {
            SnapshotError::BadMagic
        });
    };
    if magic != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let Some((version, _)) = rest.split_first_chunk::<4>() else {
        return Err(SnapshotError::Truncated);
    };
    let version = u32::from_le_bytes(*version);
    if version != FORMAT_VERSION && version != FORMAT_VERSION_V1 {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let Some((covered, checksum)) = bytes.split_last_chunk::<CHECKSUM_BYTES>() else {
        return Err(SnapshotError::Truncated);
    };
    let Some(body) = covered.get(HEADER_BYTES..) else {
        return Err(SnapshotError::Truncated);
    };
    if xxhash_rust::xxh3::xxh3_64(covered) != u64::from_le_bytes(*checksum) {
        return Err(SnapshotError::Checksum);
    }
    Ok((version, body))
}

pub(super) fn check_config(
    r: &mut Reader<'_>,
    config: &CoreConfig,
    v2: bool,
) -> Result<(), SnapshotError> {
    let mismatch = |field| Err(SnapshotError::ConfigMismatch(field));
    if r.varint()? != config.dedup_window_ms {
        return mismatch("dedup_window_ms");
    }
    if r.varint()? != config.max_event_bytes as u64 {
        return mismatch("max_event_bytes");
    }
    let defaults = &config.seller_defaults;
    if r.varint()? != defaults.daily_issue_limit {
        return mismatch("seller_defaults.daily_issue_limit");
    }
    if r.varint()? != defaults.max_recipients {
        return mismatch("seller_defaults.max_recipients");
    }
    if r.str(TIMEZONE_BYTES_MAX)? != defaults.timezone.name() {
        return mismatch("seller_defaults.timezone");
    }
    // Version 1 predates retention: nothing was dropped, which any
    // retention setting continues from.
    if v2 && r.varint()? != config.retention_ms {
        return mismatch("retention_ms");
    }
    Ok(())
}
