//! Replay on the calling thread: every line, in input order, through the
//! core of its partition ([`super::key`]). With one partition (the default)
//! that is one core, and the source of line `n` (0-based) is partition 0,
//! offset `n`; with several, partition `p`, still offset `n`, the line
//! number, so a decision leads back to its line (offsets within a
//! partition then have gaps, as Kafka offsets may). This is the reference
//! the threaded pipeline ([`super::pipeline`]) must match byte for byte.

use std::io::{BufRead, Write};

use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};

use super::key::partition_of;
use super::lines::for_each_line;
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

/// Output is handed to the writer in blocks of about this size.
pub(super) const OUTPUT_BLOCK_BYTES: usize = 1 << 20;

/// Replays every line of `input` through `core` (one partition, 0),
/// writing decisions to `output`, and flushes it.
pub fn replay<R: BufRead, W: Write>(
    core: &mut DecisionCore,
    input: R,
    output: W,
) -> Result<ReplayTally, ReplayError> {
    replay_on_cores(std::slice::from_mut(core), input, output)
}

/// Replays every line of `input` through `cores[p]`, `p` the line's
/// partition among `cores.len()` partitions, writing decisions to
/// `output` in input order, and flushes it.
///
/// # Panics
/// If `cores` is empty or holds more than `i32::MAX` cores (Kafka's
/// partition numbers are `i32`).
pub fn replay_on_cores<R: BufRead, W: Write>(
    cores: &mut [DecisionCore],
    input: R,
    mut output: W,
) -> Result<ReplayTally, ReplayError> {
    let partitions = partition_count(cores.len());
    let mut tally = ReplayTally::default();
    let mut out = Vec::with_capacity(OUTPUT_BLOCK_BYTES + 64 * 1024);
    let mut write_error = None;
    // Every core has the same configuration.
    let limit = cores[0].config().max_event_bytes + 1;
    for_each_line(input, limit, |value| {
        let partition = partition_of(value, partitions);
        let message = Message {
            value,
            source: Source {
                partition: partition as i32,
                offset: tally.messages as i64,
            },
            key_check: None,
        };
        let verdict = cores[partition as usize].process(&message, &mut out);
        out.push(b'\n');
        tally.record(&verdict);
        if out.len() >= OUTPUT_BLOCK_BYTES {
            if let Err(e) = output.write_all(&out) {
                write_error = Some(e);
                return false;
            }
            out.clear();
        }
        true
    })
    .map_err(ReplayError::Read)?;
    if let Some(e) = write_error {
        return Err(ReplayError::Write(e));
    }
    output.write_all(&out).map_err(ReplayError::Write)?;
    output.flush().map_err(ReplayError::Write)?;
    Ok(tally)
}
