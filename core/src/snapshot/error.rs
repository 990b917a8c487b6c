//! [`SnapshotError`]: why [`decode`](super::decode) refused a snapshot. The
//! caller logs it and restores nothing (the partition is replayed from its
//! first event), so each variant names what was wrong.

use super::envelope::{FORMAT_VERSION, FORMAT_VERSION_V1};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot is truncated")]
    Truncated,
    #[error("not a snapshot (bad magic bytes)")]
    BadMagic,
    #[error(
        "snapshot format version {0} is not supported (this build reads {FORMAT_VERSION_V1} and {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error("invalid snapshot: {0}")]
    Invalid(&'static str),
    #[error("snapshot was taken with a different {0}")]
    ConfigMismatch(&'static str),
}
