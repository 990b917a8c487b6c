//! The Kafka processor: a consumer-group member that decides every input
//! message with its partition's decision core and produces the decision
//! (and, for invalid input, a dead letter), committing input offsets only
//! after the broker has acknowledged every record they produced.
//!
//! One thread runs the loop ([`member`]), reading input a batch at a time
//! ([`feed`]). The rebalance callbacks ([`context`]) only report: a newly
//! assigned partition is split onto the feed, paused and
//! restored on a bounded pool of threads ([`restore`]), then resumed; a
//! revoked one is handed over by the loop (drain, commit, snapshot) before
//! librdkafka may give it to its next owner ([`rebalance`]). Each owned
//! partition's lifecycle is a type ([`partition`]: restoring, active,
//! revoking). Batches are decided per partition ([`batch`]); offsets are
//! committed once acknowledged ([`commit`]) or, exactly once, in
//! transactions ([`transactions`]); state is snapshotted into the state
//! topic ([`snapshots`]). A member that owns nothing while partitions go
//! unowned rejoins its group ([`idle`]). HTTP reads the partition table
//! ([`live`]) and never waits on a restore or a handover; shutdown is
//! bounded in every state ([`run`]).
//!
//! Guarantee: at least once, with redelivered decisions byte-identical to
//! the first ones: a crash re-delivers input from the last commit, and the
//! restored state is exactly the state at that offset.

mod batch;
mod commit;
mod context;
mod error;
mod feed;
mod idle;
mod live;
mod member;
mod partition;
mod rebalance;
mod restore;
mod run;
mod snapshots;
mod transactions;

pub use batch::RunSummary;
pub use error::ProcessorError;
pub use live::LiveState;
pub(crate) use run::subscribed;
pub use run::{Processor, run};
