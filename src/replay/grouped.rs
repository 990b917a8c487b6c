//! [`PartitionBatches`]: decides lines of several partitions, in input
//! order, with one [`DecisionCore::process_batch`] per partition, and hands
//! the decisions back in input order.
//!
//! A batch overlaps the cache misses of its messages, so it pays to make
//! batches long. A thread that owns several partitions sees their lines
//! interleaved (with 4 partitions, a run of one partition's lines is about
//! 1.3 lines long), so deciding each run as its own batch leaves little to
//! overlap. Here each partition's lines of a chunk are gathered, in one
//! pass and stably, into one batch; the decisions, written in that grouped
//! order, are then copied back into input order. A partition's events
//! still meet its core in input order, so the decisions are the same as
//! one by one.
//!
//! The work besides deciding is one pass to count, one to place and one to
//! copy the decisions back, plus a pass over the cores: O(lines + cores)
//! per chunk, into buffers kept from chunk to chunk, except the grouped
//! messages themselves: they borrow the chunk's lines, so they take one
//! vector per chunk (a few KiB).

use std::convert::Infallible;

use coupon_stream_core::decision_core::{DecisionCore, Message};

use super::tally::ReplayTally;

#[derive(Debug, Default)]
pub(super) struct PartitionBatches {
    /// Per core, where its batch starts in the grouped order (one more
    /// entry than cores: the last is the end); while placing, the next
    /// place of the core's next message.
    starts: Vec<usize>,
    /// Per message (input order), its core.
    core_of: Vec<u32>,
    /// Per message (input order), its place in the grouped order.
    place: Vec<u32>,
    /// The decisions in the grouped order, each ending in `\n`, and where
    /// each ends.
    decided: Vec<u8>,
    ends: Vec<usize>,
}

impl PartitionBatches {
    /// Decides `messages`, message `i` by `cores[core(&messages[i])]`, each
    /// core's messages as one batch in input order. Appends each decision
    /// and a `\n` to `out` in input order, records each in `tally`, and
    /// calls `appended` with `out.len()` after each.
    ///
    /// # Panics
    /// If `core` returns an index out of `cores`, or `messages` holds more
    /// than `u32::MAX` messages (a chunk holds far fewer).
    pub(super) fn decide(
        &mut self,
        cores: &mut [DecisionCore],
        messages: &[Message<'_>],
        core: impl Fn(&Message<'_>) -> usize,
        out: &mut Vec<u8>,
        tally: &mut ReplayTally,
        mut appended: impl FnMut(usize),
    ) {
        assert!(u32::try_from(messages.len()).is_ok(), "a chunk's lines");
        // One core (one partition, or a thread per partition): nothing to
        // group.
        if let [only] = cores {
            debug_assert!(messages.iter().all(|m| core(m) == 0), "core out of range");
            decide_batch(only, messages, out, tally, appended);
            return;
        }
        self.core_of.clear();
        self.starts.clear();
        self.starts.resize(cores.len() + 1, 0);
        for m in messages {
            let c = core(m);
            assert!(c < cores.len(), "core {c} of {}", cores.len());
            self.core_of.push(c as u32);
            self.starts[c + 1] += 1;
        }
        // One core holds every message: its decisions are already in input
        // order.
        if let Some(&only) = self.core_of.first()
            && self.starts[only as usize + 1] == messages.len()
        {
            decide_batch(&mut cores[only as usize], messages, out, tally, appended);
            return;
        }
        // Counts to starts, then each message to the next place of its core.
        for c in 1..self.starts.len() {
            self.starts[c] += self.starts[c - 1];
        }
        let mut grouped: Vec<Message<'_>> = messages.to_vec();
        self.place.clear();
        for (m, &c) in messages.iter().zip(&self.core_of) {
            let at = self.starts[c as usize];
            grouped[at] = *m;
            self.place.push(at as u32);
            self.starts[c as usize] = at + 1;
        }
        // Each core's next place is now where the next core's batch starts.
        self.decided.clear();
        self.ends.clear();
        let mut start = 0;
        for (c, core) in cores.iter_mut().enumerate() {
            let end = self.starts[c];
            if end > start {
                let ends = &mut self.ends;
                decide_batch(
                    core,
                    &grouped[start..end],
                    &mut self.decided,
                    tally,
                    |len| ends.push(len),
                );
            }
            start = end;
        }
        debug_assert_eq!(self.ends.len(), messages.len());
        for &at in &self.place {
            let at = at as usize;
            let from = at.checked_sub(1).map_or(0, |before| self.ends[before]);
            out.extend_from_slice(&self.decided[from..self.ends[at]]);
            appended(out.len());
        }
    }
}

/// Decides `messages`, all of `core`'s partition, as one batch, appending
/// each decision and a `\n` to `out` and calling `appended` with
/// `out.len()` after each.
fn decide_batch(
    core: &mut DecisionCore,
    messages: &[Message<'_>],
    out: &mut Vec<u8>,
    tally: &mut ReplayTally,
    mut appended: impl FnMut(usize),
) {
    let decided: Result<(), Infallible> = core.process_batch(messages, out, |_, verdict, out| {
        out.push(b'\n');
        tally.record(&verdict);
        appended(out.len());
        Ok(())
    });
    let Ok(()) = decided;
}

#[cfg(test)]
mod tests {
    use coupon_stream_core::config::CoreConfig;
    use coupon_stream_core::decision::Source;

    use super::*;

    fn message(value: &[u8], partition: i32, offset: i64) -> Message<'_> {
        Message {
            value,
            source: Source { partition, offset },
            key_check: None,
        }
    }

    /// Lines of three partitions, interleaved, with duplicates whose
    /// verdict depends on what the partition's core saw before: grouped,
    /// the decisions match deciding each line in turn, and `appended`
    /// sees each one's end.
    #[test]
    fn grouped_decisions_match_one_by_one_in_input_order() {
        let lines: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    r#"{{"type":"seller","event_id":"e{}","ts":{},"seller_id":"s{}","daily_issue_limit":{}}}"#,
                    i % 7,
                    1_700_000_000_000u64 + i,
                    i % 3,
                    100 + i
                )
            })
            .collect();
        let messages: Vec<Message<'_>> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| message(l.as_bytes(), (i * 7 % 3) as i32, i as i64))
            .collect();
        let new_cores = || -> Vec<DecisionCore> {
            (0..3)
                .map(|_| DecisionCore::new(CoreConfig::default()))
                .collect()
        };

        let mut expected = Vec::new();
        let mut one_by_one = new_cores();
        for m in &messages {
            one_by_one[m.source.partition as usize].process(m, &mut expected);
            expected.push(b'\n');
        }

        let mut cores = new_cores();
        let mut batches = PartitionBatches::default();
        let mut tally = ReplayTally::default();
        let mut out = b"before\n".to_vec();
        let mut ends = Vec::new();
        // Twice: the buffers kept from the first call must not leak into
        // the second.
        for half in messages.chunks(25) {
            batches.decide(
                &mut cores,
                half,
                |m| m.source.partition as usize,
                &mut out,
                &mut tally,
                |len| ends.push(len),
            );
        }
        assert_eq!(&out[..7], b"before\n");
        assert_eq!(
            String::from_utf8_lossy(&out[7..]),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(tally.messages, messages.len() as u64);
        assert_eq!(ends.len(), messages.len());
        assert_eq!(ends.last(), Some(&out.len()));
        assert!(ends.iter().all(|&end| out[end - 1] == b'\n'));
        assert!(expected.windows(9).any(|w| w == b"duplicate"));
    }

    #[test]
    fn one_busy_core_decides_in_place() {
        let line = br#"{"type":"seller","event_id":"e","ts":1,"seller_id":"s"}"#;
        let messages = [message(line, 1, 0), message(line, 1, 1)];
        let mut cores: Vec<DecisionCore> = (0..2)
            .map(|_| DecisionCore::new(CoreConfig::default()))
            .collect();
        let mut batches = PartitionBatches::default();
        let mut tally = ReplayTally::default();
        let mut out = Vec::new();
        batches.decide(
            &mut cores,
            &messages,
            |m| m.source.partition as usize,
            &mut out,
            &mut tally,
            |_| {},
        );
        assert_eq!(tally.messages, 2);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(batches.decided.is_empty(), "not copied through the buffer");
    }
}
