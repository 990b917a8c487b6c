//! [`replay_sharded`]: replay sharded the way Kafka shards, on one thread
//! or several, with the same output either way.

use std::io::{Read, Write};

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::state::StateStats;

use super::pipeline::{PipelineOptions, StageTimes, replay_pipelined};
use super::sequential::replay_on_cores;
use super::tally::{ReplayError, ReplayTally};

/// Input bytes per chunk of the pipeline: large enough that handing a
/// chunk between threads costs nothing per line, small enough that a
/// chunk is still in cache when the workers read it.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks in flight per worker thread: how far the worker furthest ahead
/// may run before it waits for the oldest chunk to be written (with a
/// separate reading thread, 2 per worker left the workers idle about a
/// tenth of the time on 2 cores, and 4 or 16 did no better than 8;
/// docs/PERFORMANCE.md). At most 2 MiB of input per worker.
pub const CHUNKS_IN_FLIGHT_PER_THREAD: usize = 8;

/// How a replay spreads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Partitions, each with its own core, as an input topic's partition
    /// count; a line goes to the partition of its `seller_id`
    /// ([`super::key`]).
    pub partitions: u32,
    /// Threads deciding, at most one per partition; 1 decides on the
    /// calling thread.
    pub threads: usize,
}

impl Default for ReplayOptions {
    fn default() -> ReplayOptions {
        ReplayOptions {
            partitions: 1,
            threads: 1,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub tally: ReplayTally,
    /// The partitions' state sizes, summed (a user with coupons in two
    /// partitions counts twice).
    pub stats: StateStats,
    /// Threads that decided.
    pub threads: usize,
    /// Where the time went, when several threads decided.
    pub stages: Option<StageTimes>,
}

/// Replays every line of `input` on `options.partitions` fresh cores built
/// from `config`, writing decisions in input order to `output`.
///
/// # Panics
/// If `options.partitions` is 0 or above `i32::MAX`, or `options.threads`
/// is 0.
pub fn replay_sharded<R: Read + Send, W: Write + Send>(
    config: CoreConfig,
    options: ReplayOptions,
    input: R,
    output: W,
) -> Result<ReplayReport, ReplayError> {
    assert!(options.threads > 0, "at least one thread");
    let threads = options.threads.min(options.partitions as usize);
    let mut cores: Vec<DecisionCore> = (0..options.partitions)
        .map(|_| DecisionCore::new(config))
        .collect();
    let (cores, tally, stages) = if threads <= 1 {
        let tally = replay_on_cores(&mut cores, input, output)?;
        (cores, tally, None)
    } else {
        let options = PipelineOptions {
            threads,
            chunk_bytes: CHUNK_BYTES,
            chunks_in_flight: CHUNKS_IN_FLIGHT_PER_THREAD * threads,
        };
        let (cores, tally, stages) = replay_pipelined(cores, options, input, output)?;
        (cores, tally, Some(stages))
    };
    Ok(ReplayReport {
        tally,
        stats: total_stats(&cores),
        threads: threads.max(1),
        stages,
    })
}

fn total_stats(cores: &[DecisionCore]) -> StateStats {
    let mut total = StateStats::default();
    for core in cores {
        let s = core.stats();
        total.sellers += s.sellers;
        total.campaigns += s.campaigns;
        total.evicted_campaigns += s.evicted_campaigns;
        total.coupons += s.coupons;
        total.redeemed_coupons += s.redeemed_coupons;
        total.users += s.users;
        total.orders += s.orders;
        total.heap_bytes += s.heap_bytes;
    }
    total
}
