//! Snapshots: the binary form of one partition's [`DecisionCore`], so that
//! a restarted or reassigned worker resumes from durable state instead of
//! replaying the partition from its first event. [`encode`] writes
//! everything that can influence a later decision; [`decode`] rebuilds a
//! core that decides every continuation byte for byte as the original
//! would, and that encodes to the same bytes again.
//!
//! - `envelope`: magic, format version, the configuration check and the
//!   checksum around the sections;
//! - `writer`: the sections' layout (documented there) and [`encode`];
//! - `reader`: [`decode`], which treats its input as untrusted;
//! - `wire`: varints, zigzag, strings and the bounds-checked cursor;
//! - `error`: [`SnapshotError`], why a snapshot was refused.
//!
//! [`DecisionCore`]: crate::decision_core::DecisionCore

mod envelope;
mod error;
mod reader;
mod wire;
mod writer;

#[cfg(test)]
mod tests;

pub use envelope::{FORMAT_VERSION, FORMAT_VERSION_V1, MAGIC};
pub use error::SnapshotError;
pub use reader::decode;
pub use writer::encode;
