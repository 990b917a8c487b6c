//! Offline replay: one input value per line in, one decision per line out,
//! in input order, through the same `DecisionCore` the Kafka processor
//! uses, optionally sharded into partitions the way Kafka shards and
//! decided on several threads.
//!
//! - [`lines`]: what a line is, and reading them (one by one, or in chunks).
//! - [`grouped`]: a thread's lines of several partitions decided as one
//!   batch per partition.
//! - [`key`]: which partition a line belongs to (murmur2 of its `seller_id`).
//! - [`sequential`]: every line on the calling thread, in order.
//! - [`pipeline`]: partitions decided on worker threads, merged back into
//!   input order, byte-identical to the sequential replay.
//! - [`sharded`]: the entry point that picks between them.

mod grouped;
pub mod key;
pub mod lines;
pub mod pipeline;
pub mod sequential;
pub mod sharded;
pub mod tally;

pub use sequential::{replay, replay_on_cores};
pub use sharded::{ReplayOptions, ReplayReport, replay_sharded};
pub use tally::{ReplayError, ReplayTally};
