//! Replay on the calling thread: every line, in input order, through the
//! core of its partition ([`super::key`]). With one partition (the default)
//! that is one core, and the source of line `n` (0-based) is partition 0,
//! offset `n`; with several, partition `p`, still offset `n`, the line
//! number, so a decision leads back to its line (offsets within a
//! partition then have gaps, as Kafka offsets may). This is the reference
//! the threaded pipeline ([`super::pipeline`]) must match byte for byte.

use std::io::{Read, Write};

use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};

use super::grouped::PartitionBatches;
use super::key::partition_of;
use super::lines::{Chunk, ChunkReader};
use super::tally::{ReplayError, ReplayTally};

/// `cores` as a partition count.
///
/// # Panics
/// If `cores` is 0 or above `i32::MAX`.
pub(super) fn partition_count(cores: usize) -> u32 {
    assert!(
        cores > 0 && cores <= i32::MAX as usize,
        "between 1 and i32::MAX partitions"
    );
    cores as u32
}

/// Output is handed to the writer in blocks of about this size (in
/// `replay_on_cores`, after each chunk's decisions, so a block holds at
/// least a chunk's decisions). Small enough that the block is
/// still in the core's cache when it is written (see [`CHUNK_BYTES`]).
pub(super) const OUTPUT_BLOCK_BYTES: usize = 32 << 10;

/// Replays every line of `input` through `core` (one partition, 0),
/// writing decisions to `output`, and flushes it.
pub fn replay<R: Read, W: Write>(
    core: &mut DecisionCore,
    input: R,
    output: W,
) -> Result<ReplayTally, ReplayError> {
    replay_on_cores(std::slice::from_mut(core), input, output)
}

/// Replays every line of `input` through `cores[p]`, `p` the line's
/// partition among `cores.len()` partitions, writing decisions to
/// `output` in input order, and flushes it. Input is read a chunk of lines
/// at a time, and each partition's lines of a chunk are decided as one
/// batch with [`DecisionCore::process_batch`], which overlaps the batch's
/// cache misses ([`PartitionBatches`]).
///
/// # Panics
/// If `cores` is empty or holds more than `i32::MAX` cores (Kafka's
/// partition numbers are `i32`).
pub fn replay_on_cores<R: Read, W: Write>(
    cores: &mut [DecisionCore],
    input: R,
    mut output: W,
) -> Result<ReplayTally, ReplayError> {
    let partitions = partition_count(cores.len());
    let mut tally = ReplayTally::default();
    // A block in progress plus one chunk's decisions: about twice the
    // chunk's bytes (1.8x for the steady and flash-sale workloads), so the
    // buffer rarely grows.
    let mut out = Vec::with_capacity(OUTPUT_BLOCK_BYTES + 2 * CHUNK_BYTES);
    let mut batches = PartitionBatches::default();
    // Every core has the same configuration.
    let limit = cores[0].config().max_event_bytes + 1;
    let mut reader = ChunkReader::new(input, limit, CHUNK_BYTES);
    let mut chunk = Chunk::default();
    while reader.next_chunk(&mut chunk).map_err(ReplayError::Read)? {
        let first = tally.messages;
        let messages: Vec<Message<'_>> =
            Vec::from_iter(chunk.lines().enumerate().map(|(i, value)| Message {
                value,
                source: Source {
                    partition: partition_of(value, partitions) as i32,
                    offset: (first + i as u64) as i64,
                },
                key_check: None,
            }));
        batches.decide(
            cores,
            &messages,
            |m| m.source.partition as usize,
            &mut out,
            &mut tally,
            |_| {},
        );
        if out.len() >= OUTPUT_BLOCK_BYTES {
            output.write_all(&out).map_err(ReplayError::Write)?;
            out.clear();
        }
    }
    output.write_all(&out).map_err(ReplayError::Write)?;
    output.flush().map_err(ReplayError::Write)?;
    Ok(tally)
}

/// Input is read in chunks of about this many bytes (a read fills the
/// chunk's buffer, this plus the longest line). A chunk and its decisions
/// (about twice its bytes) stay in a core's 2 MiB L2 cache while it is
/// decoded, decided, encoded and written, with the state's tables beside
/// them. With 1 MiB chunks and output blocks, the decoder read input and
/// the encoder wrote output that the state's random accesses had evicted:
/// 7.7 M misses of a simulated 2 MiB last-level cache per 300,000 events
/// against 4.3 M (cachegrind; docs/PERFORMANCE.md, twelfth session).
const CHUNK_BYTES: usize = 64 << 10;
