//! Splitting replay input into lines: `\n` only, a final `\n` starts no new
//! line, and a line longer than `limit` bytes keeps its first `limit` bytes
//! (the core then decides it `too_large`) while the rest is skipped, never
//! buffered, so memory is bounded whatever the input.
//!
//! [`ChunkReader`] reads whole chunks of lines straight into a reusable
//! buffer that worker threads can share. Its tests check it against a
//! plain line-by-line reader of the same rules.

use std::io::{self, Read};

/// A run of whole input lines in one buffer, the unit the pipeline passes
/// between threads.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The bytes read; lines lie in it at `spans`, with the skipped tails of
    /// over-long lines and the `\n`s between them.
    data: Vec<u8>,
    /// Start and length of each line in `data`.
    spans: Vec<(u32, u32)>,
}

impl Chunk {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Line `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn line(&self, i: usize) -> &[u8] {
        let (start, len) = self.spans[i];
        &self.data[start as usize..(start + len) as usize]
    }

    /// Every line, in order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(start, len)| &self.data[start as usize..(start + len) as usize])
    }
}

/// Reads input in chunks of whole lines (see the module doc for what a line
/// is), each read going straight into the chunk's buffer: no copy but the
/// kernel's, except for the few bytes of a line cut by a chunk boundary.
#[derive(Debug)]
pub struct ChunkReader<R> {
    input: R,
    /// Most bytes kept of one line.
    limit: usize,
    /// A chunk ends at the first line end at or past this many bytes.
    target_bytes: usize,
    /// The start of a line the previous chunk could not finish.
    carry: Vec<u8>,
    /// The carried line was cut at `limit`: input up to its `\n` is dropped.
    skipping: bool,
    eof: bool,
}

impl<R: Read> ChunkReader<R> {
    /// A reader of chunks of about `target_bytes` (at least one line each),
    /// lines cut at `limit` bytes.
    ///
    /// # Panics
    /// If `target_bytes` or `limit` is 0, or if their sum reaches 4 GiB
    /// (spans are 32-bit).
    pub fn new(input: R, limit: usize, target_bytes: usize) -> ChunkReader<R> {
        assert!(limit > 0 && target_bytes > 0, "empty chunks or lines");
        assert!(
            target_bytes.saturating_add(limit).saturating_mul(2) < u32::MAX as usize,
            "chunks are indexed with 32 bits"
        );
        ChunkReader {
            input,
            limit,
            target_bytes,
            carry: Vec::new(),
            skipping: false,
            eof: false,
        }
    }

    /// Fills `chunk` (its buffers are reused) with the next lines; returns
    /// false, with `chunk` empty, once the input is exhausted.
    pub fn next_chunk(&mut self, chunk: &mut Chunk) -> io::Result<bool> {
        chunk.spans.clear();
        // Kept at its full length, so reads need no zeroing: zeroed once
        // when the buffer is first grown, then only overwritten.
        let capacity = self.target_bytes + self.limit + 1;
        if chunk.data.len() < capacity {
            chunk.data.resize(capacity, 0);
        }
        let data = &mut chunk.data;
        let mut filled = self.carry.len();
        data[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut line_start = 0;
        let mut scan_from = 0;
        loop {
            for nl in memchr::memchr_iter(b'\n', &data[scan_from..filled]) {
                let nl = scan_from + nl;
                let len = (nl - line_start).min(self.limit);
                chunk.spans.push((line_start as u32, len as u32));
                line_start = nl + 1;
                self.skipping = false;
            }
            scan_from = filled;
            if filled - line_start > self.limit {
                // An over-long line: keep its first `limit` bytes and
                // overwrite the rest with what follows.
                filled = line_start + self.limit;
                scan_from = filled;
                self.skipping = true;
            }
            if line_start >= self.target_bytes || self.eof {
                break;
            }
            let read = match self.input.read(&mut data[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if read == 0 {
                self.eof = true;
                if filled > line_start || self.skipping {
                    let len = (filled - line_start).min(self.limit);
                    chunk.spans.push((line_start as u32, len as u32));
                    line_start = filled;
                    self.skipping = false;
                }
                break;
            }
            filled += read;
        }
        // The unfinished line (at most `limit` bytes) starts the next chunk.
        self.carry.extend_from_slice(&data[line_start..filled]);
        Ok(!chunk.spans.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// The reference: calls `f` with each line of `input` (as the module
    /// doc defines them) one by one, until input ends or `f` returns false.
    fn for_each_line<R: BufRead>(
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

    fn lines(input: &[u8], limit: usize, capacity: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for_each_line(BufReader::with_capacity(capacity, input), limit, |l| {
            got.push(l.to_vec());
            true
        })
        .unwrap();
        got
    }

    /// Hands out at most `step` bytes per read, as a pipe may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn chunked(input: &[u8], limit: usize, target: usize, step: usize) -> Vec<Vec<u8>> {
        let mut reader = ChunkReader::new(Trickle { bytes: input, step }, limit, target);
        let mut chunk = Chunk::default();
        let mut got = Vec::new();
        while reader.next_chunk(&mut chunk).unwrap() {
            assert!(!chunk.is_empty());
            got.extend(chunk.lines().map(<[u8]>::to_vec));
        }
        // Exhausted stays exhausted.
        assert!(!reader.next_chunk(&mut chunk).unwrap());
        assert!(chunk.is_empty());
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

    #[test]
    fn chunks_split_as_lines_do() {
        let mut long = vec![b'y'; 5_000];
        long.push(b'\n');
        let inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a\n".to_vec(),
            b"a".to_vec(),
            b"a\n\nb".to_vec(),
            b"\n".to_vec(),
            b"\n\n\n".to_vec(),
            b"a\r\nb\n".to_vec(),
            b"one\ntwo\nthree\nfour\nfive\nsix".to_vec(),
            [b"ab\n".as_slice(), &long, b"cd\n", &long[..4_000], b"\nxyz"].concat(),
            [&long[..], &long[..]].concat(),
            long[..4_999].to_vec(),
        ];
        for input in &inputs {
            for limit in [1, 2, 3, 11, 4_000, 10_000] {
                let want = lines(input, limit, 1024);
                for target in [1, 2, 5, 64, 1 << 16] {
                    for step in [1, 3, 7, 100, 1 << 20] {
                        assert_eq!(
                            chunked(input, limit, target, step),
                            want,
                            "limit {limit} target {target} step {step} input {:?}",
                            String::from_utf8_lossy(&input[..input.len().min(40)])
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn chunk_memory_is_bounded_by_target_and_limit() {
        let input = vec![b'z'; 1 << 20];
        let mut reader = ChunkReader::new(input.as_slice(), 100, 1_000);
        let mut chunk = Chunk::default();
        assert!(reader.next_chunk(&mut chunk).unwrap());
        assert_eq!(chunk.len(), 1);
        assert_eq!(chunk.line(0), &input[..100]);
        assert!(chunk.data.len() <= 1_000 + 100 + 1);
        assert!(!reader.next_chunk(&mut chunk).unwrap());
    }
}
