//! Offline replay: one input value per line in, one decision per line out,
//! in order, through the same [`DecisionCore`] the Kafka processor uses.
//! Lines are split on `\n` only; a final `\n` starts no new message. The
//! source of line `n` (0-based) is partition 0, offset `n`.
//!
//! Memory is bounded whatever the input: a line longer than the core's
//! `max_event_bytes` is decided `too_large` from its first
//! `max_event_bytes + 1` bytes, and the rest is skipped, never buffered.

use std::io::{self, BufRead, Write};

use thiserror::Error;

use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message, Verdict};
use coupon_stream_core::reason::Outcome;

/// Output is handed to the writer in blocks of about this size.
const OUTPUT_BLOCK_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("reading input: {0}")]
    Read(#[source] io::Error),
    #[error("writing decisions: {0}")]
    Write(#[source] io::Error),
}

/// Counts of a replay's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayTally {
    pub messages: u64,
    pub coupons_issued: u64,
    by_outcome: [u64; Outcome::ALL.len()],
}

impl ReplayTally {
    pub fn record(&mut self, verdict: &Verdict) {
        self.messages += 1;
        self.coupons_issued += verdict.coupons_issued as u64;
        self.by_outcome[verdict.outcome as usize] += 1;
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.by_outcome[outcome as usize]
    }
}

/// Replays every line of `input` through `core`, writing decisions to
/// `output`, and flushes it.
pub fn replay<R: BufRead, W: Write>(
    core: &mut DecisionCore,
    input: R,
    mut output: W,
) -> Result<ReplayTally, ReplayError> {
    let mut tally = ReplayTally::default();
    let mut out = Vec::with_capacity(OUTPUT_BLOCK_BYTES + 64 * 1024);
    let mut write_error = None;
    let limit = core.config().max_event_bytes + 1;
    for_each_line(input, limit, |value| {
        let message = Message {
            value,
            source: Source {
                partition: 0,
                offset: tally.messages as i64,
            },
            key_check: None,
        };
        let verdict = core.process(&message, &mut out);
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

/// Calls `f` with each `\n`-separated line of `input`, truncated to `limit`
/// bytes, until input ends or `f` returns false. A line that lies whole in
/// the reader's buffer is passed without copying.
pub fn for_each_line<R: BufRead>(
    mut input: R,
    limit: usize,
    mut f: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let mut partial: Vec<u8> = Vec::new();
    let mut in_line = false;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if in_line && !f(&partial) {
                return Ok(());
            }
            return Ok(());
        }
        let mut consumed = 0;
        while consumed < available.len() {
            let rest = &available[consumed..];
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let keep_going = if in_line {
                        append_bounded(&mut partial, &rest[..i], limit);
                        let go = f(&partial);
                        partial.clear();
                        go
                    } else {
                        f(&rest[..i.min(limit)])
                    };
                    in_line = false;
                    consumed += i + 1;
                    if !keep_going {
                        input.consume(consumed);
                        return Ok(());
                    }
                }
                None => {
                    append_bounded(&mut partial, rest, limit);
                    in_line = true;
                    consumed = available.len();
                }
            }
        }
        input.consume(consumed);
    }
}

fn append_bounded(buf: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let room = limit.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn lines(input: &[u8], limit: usize, capacity: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for_each_line(BufReader::with_capacity(capacity, input), limit, |l| {
            got.push(l.to_vec());
            true
        })
        .unwrap();
        got
    }

    #[test]
    fn splits_on_newline_only() {
        for cap in [1, 2, 3, 8, 1024] {
            assert_eq!(lines(b"", 100, cap), Vec::<Vec<u8>>::new());
            assert_eq!(lines(b"a\n", 100, cap), vec![b"a".to_vec()]);
            assert_eq!(lines(b"a", 100, cap), vec![b"a".to_vec()]);
            assert_eq!(
                lines(b"a\n\nb", 100, cap),
                vec![b"a".to_vec(), vec![], b"b".to_vec()]
            );
            assert_eq!(lines(b"\n", 100, cap), vec![Vec::<u8>::new()]);
            assert_eq!(
                lines(b"a\r\nb\n", 100, cap),
                vec![b"a\r".to_vec(), b"b".to_vec()]
            );
        }
    }

    #[test]
    fn long_lines_are_truncated_not_buffered() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nshort\n");
        for cap in [7, 64, 100_000] {
            let got = lines(&input, 11, cap);
            assert_eq!(got, vec![vec![b'x'; 11], b"short".to_vec()]);
        }
    }
}
