//! Replay on several threads, byte for byte the output of
//! [`super::sequential::replay_on_cores`] with the same partitions.
//!
//! The calling thread reads the input in chunks of whole lines
//! ([`ChunkReader`]), finds each line's partition ([`partition_of`]) and
//! shares the chunk with every worker. Worker `w` owns the cores of the
//! partitions `p` with `p % threads == w` and decides its lines of the
//! chunk in input order, which is each partition's order, each
//! partition's lines as one batch ([`PartitionBatches`]). The calling
//! thread then writes the workers' decisions in input order straight from
//! the workers' buffers: each run of consecutive lines one worker decided
//! is one slice of a vectored write, so the calling thread never copies
//! (or even reads) the decisions itself; the kernel does, when the output
//! is a file or a pipe. Copying them into one block first cost about 3%
//! more wall time on 2 cores (docs/PERFORMANCE.md, nineteenth session). A partition's events meet its core in the same order
//! as on one thread, and cores share nothing, so the decisions are the
//! same whatever the thread count.
//!
//! Memory is bounded: at most `chunks_in_flight` chunks (and their
//! decisions) exist at once, every channel is bounded, and buffers are
//! recycled rather than reallocated.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};

use super::grouped::PartitionBatches;
use super::key::partition_of;
use super::lines::{Chunk, ChunkReader};
use super::sequential::partition_count;
use super::tally::{ReplayError, ReplayTally};

/// How the pipeline is cut.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Worker threads deciding (at most one per partition).
    pub threads: usize,
    /// Input bytes per chunk (a chunk always ends at a line end).
    pub chunk_bytes: usize,
    /// Chunks read ahead of the one being merged, at most.
    pub chunks_in_flight: usize,
}

/// Where the time of a pipelined replay went. The calling thread's stages
/// are wall-clock times measured around each step (per chunk, not per
/// line); `*_cpu` are the threads' CPU times where the platform reports
/// them.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// Reading input into chunks, the line scan included.
    pub read: Duration,
    /// Finding each line's partition.
    pub split: Duration,
    /// Waiting for the workers' decisions.
    pub wait: Duration,
    /// Finding, in input order, the runs of lines each worker decided.
    pub merge: Duration,
    /// Writing the output (the vectored writes of the runs).
    pub write: Duration,
    /// CPU time of the calling thread during the pipeline.
    pub main_cpu: Option<Duration>,
    /// Per worker: time spent deciding its lines.
    pub decide: Vec<Duration>,
    /// Per worker: its thread's CPU time.
    pub worker_cpu: Vec<Option<Duration>>,
}

/// A chunk with each line's partition and the input line number of its
/// first line: what every worker reads.
#[derive(Debug, Default)]
struct Split {
    chunk: Chunk,
    partitions: Vec<u32>,
    first_line: u64,
}

/// One worker's decisions on one chunk: its lines' decisions (each ending
/// in `\n`) back to back, and where each ends.
#[derive(Debug, Default)]
struct Decided {
    out: Vec<u8>,
    ends: Vec<usize>,
}

/// What a worker hands back when the input ends.
struct WorkerDone {
    cores: Vec<DecisionCore>,
    tally: ReplayTally,
    decide: Duration,
    cpu: Option<Duration>,
}

/// Replays `input` through `cores` (core `p` is partition `p`) on
/// `options.threads` workers and returns the cores, in the same order, with
/// the tally and the stage times.
///
/// # Panics
/// If `cores` is empty or holds more than `i32::MAX` cores, or if
/// `options.threads`, `options.chunk_bytes` or `options.chunks_in_flight`
/// is 0.
pub fn replay_pipelined<R: Read, W: Write>(
    cores: Vec<DecisionCore>,
    options: PipelineOptions,
    input: R,
    mut output: W,
) -> Result<(Vec<DecisionCore>, ReplayTally, StageTimes), ReplayError> {
    let partitions = partition_count(cores.len());
    assert!(options.threads > 0 && options.chunks_in_flight > 0);
    let threads = options.threads.min(cores.len());
    let limit = cores[0].config().max_event_bytes + 1;
    let mut owned: Vec<Vec<DecisionCore>> = (0..threads).map(|_| Vec::new()).collect();
    for (p, core) in cores.into_iter().enumerate() {
        owned[p % threads].push(core);
    }
    std::thread::scope(|scope| {
        let mut inboxes = Vec::with_capacity(threads);
        let mut outboxes = Vec::with_capacity(threads);
        let mut recycle = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for (w, cores) in owned.into_iter().enumerate() {
            let (to_worker, inbox) = sync_channel::<Arc<Split>>(options.chunks_in_flight);
            let (outbox, from_worker) = sync_channel::<Decided>(options.chunks_in_flight);
            let (to_recycle, recycled) = sync_channel::<Decided>(options.chunks_in_flight);
            let worker = Worker {
                index: w,
                threads,
                cores,
            };
            let handle = std::thread::Builder::new()
                .name(format!("replay-{w}"))
                .spawn_scoped(scope, move || worker.run(inbox, outbox, recycled))
                .map_err(ReplayError::Spawn)?;
            inboxes.push(to_worker);
            outboxes.push(from_worker);
            recycle.push(to_recycle);
            handles.push(handle);
        }
        let reader = ChunkReader::new(input, limit, options.chunk_bytes);
        let mut stages = StageTimes::default();
        let cpu_before = thread_cpu_time();
        let result = drive(
            reader,
            &mut output,
            partitions,
            threads,
            options.chunks_in_flight,
            (&inboxes, &outboxes, &recycle),
            &mut stages,
        );
        stages.main_cpu = thread_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        // Closing the inboxes ends the workers, also after an error.
        drop(inboxes);
        drop(outboxes);
        let mut done = Vec::with_capacity(threads);
        for handle in handles {
            match handle.join() {
                Ok(d) => done.push(d),
                Err(_) => return Err(ReplayError::Panicked),
            }
        }
        result?;
        let mut tally = ReplayTally::default();
        let mut per_worker = Vec::with_capacity(threads);
        for d in done {
            tally.add(&d.tally);
            stages.decide.push(d.decide);
            stages.worker_cpu.push(d.cpu);
            per_worker.push(d.cores.into_iter());
        }
        // Core `p` came from worker `p % threads`, in increasing `p`.
        let cores = (0..partitions as usize)
            .filter_map(|p| per_worker[p % threads].next())
            .collect();
        Ok((cores, tally, stages))
    })
}

type Channels<'a> = (
    &'a [SyncSender<Arc<Split>>],
    &'a [Receiver<Decided>],
    &'a [SyncSender<Decided>],
);

/// The calling thread's loop: read ahead, split and hand out up to
/// `in_flight` chunks, then merge and write the oldest.
fn drive<R: Read, W: Write>(
    mut reader: ChunkReader<R>,
    output: &mut W,
    partitions: u32,
    threads: usize,
    in_flight: usize,
    (inboxes, outboxes, recycle): Channels<'_>,
    stages: &mut StageTimes,
) -> Result<(), ReplayError> {
    let owner: Vec<usize> = (0..partitions as usize).map(|p| p % threads).collect();
    let mut pool: Vec<Split> = Vec::new();
    let mut pending: VecDeque<Arc<Split>> = VecDeque::with_capacity(in_flight);
    let mut next_line = 0u64;
    let mut eof = false;
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut cursors = vec![(0usize, 0usize); threads];
    loop {
        while !eof && pending.len() < in_flight {
            let mut split = pool.pop().unwrap_or_default();
            let started = Instant::now();
            if !reader
                .next_chunk(&mut split.chunk)
                .map_err(ReplayError::Read)?
            {
                eof = true;
                break;
            }
            let read = Instant::now();
            stages.read += read - started;
            split.partitions.clear();
            split
                .partitions
                .extend(split.chunk.lines().map(|l| partition_of(l, partitions)));
            split.first_line = next_line;
            next_line += split.chunk.len() as u64;
            stages.split += read.elapsed();
            let split = Arc::new(split);
            for inbox in inboxes {
                inbox
                    .send(Arc::clone(&split))
                    .map_err(|_| ReplayError::Panicked)?;
            }
            pending.push_back(split);
        }
        let Some(split) = pending.pop_front() else {
            break;
        };
        let started = Instant::now();
        let decided = outboxes
            .iter()
            .map(Receiver::recv)
            .collect::<Result<Vec<Decided>, _>>()
            .map_err(|_| ReplayError::Panicked)?;
        let merge_started = Instant::now();
        stages.wait += merge_started - started;
        cursors.fill((0, 0));
        // Runs of consecutive lines decided by one worker, each one range of
        // that worker's buffer, written straight from there.
        runs.clear();
        for &p in &split.partitions {
            let w = owner[p as usize];
            let (line, start) = cursors[w];
            let end = decided[w].ends[line];
            cursors[w] = (line + 1, end);
            match runs.last_mut() {
                Some((last_w, _, last_end)) if *last_w == w => *last_end = end,
                _ => runs.push((w, start, end)),
            }
        }
        let write_started = Instant::now();
        stages.merge += write_started - merge_started;
        for group in runs.chunks(IOVECS_PER_WRITE) {
            let mut slices: Vec<IoSlice<'_>> = group
                .iter()
                .map(|&(w, start, end)| IoSlice::new(&decided[w].out[start..end]))
                .collect();
            write_all_vectored(output, &mut slices).map_err(ReplayError::Write)?;
        }
        stages.write += write_started.elapsed();
        for (d, to) in decided.into_iter().zip(recycle) {
            // Full or closed: the buffer is dropped instead of reused.
            let _ = to.try_send(d);
        }
        // Each worker dropped its handle before sending its decisions.
        if let Ok(split) = Arc::try_unwrap(split) {
            pool.push(split);
        }
    }
    let started = Instant::now();
    output.flush().map_err(ReplayError::Write)?;
    stages.write += started.elapsed();
    Ok(())
}

/// Slices per vectored write (Linux's `IOV_MAX` is 1024).
const IOVECS_PER_WRITE: usize = 1024;

/// Writes every byte of `slices`, in order, through as few vectored
/// writes as the writer allows.
fn write_all_vectored<W: Write>(output: &mut W, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match output.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One worker thread: the cores of partitions `index`, `index + threads`,
/// `index + 2 * threads`, ...
struct Worker {
    index: usize,
    threads: usize,
    cores: Vec<DecisionCore>,
}

impl Worker {
    fn run(
        mut self,
        inbox: Receiver<Arc<Split>>,
        outbox: SyncSender<Decided>,
        recycled: Receiver<Decided>,
    ) -> WorkerDone {
        let cpu_before = thread_cpu_time();
        let mut tally = ReplayTally::default();
        let mut decide = Duration::ZERO;
        let mut batches = PartitionBatches::default();
        for split in inbox {
            let mut d = recycled.try_recv().unwrap_or_default();
            d.out.clear();
            d.ends.clear();
            let started = Instant::now();
            // This worker's lines, in input order.
            let mut messages: Vec<Message<'_>> = Vec::new();
            for (i, &p) in split.partitions.iter().enumerate() {
                if p as usize % self.threads != self.index {
                    continue;
                }
                messages.push(Message {
                    value: split.chunk.line(i),
                    source: Source {
                        partition: p as i32,
                        offset: (split.first_line + i as u64) as i64,
                    },
                    key_check: None,
                });
            }
            let threads = self.threads;
            let ends = &mut d.ends;
            batches.decide(
                &mut self.cores,
                &messages,
                |m| m.source.partition as usize / threads,
                &mut d.out,
                &mut tally,
                |len| ends.push(len),
            );
            decide += started.elapsed();
            // Before sending, so the reader can reuse the chunk's buffers.
            drop(split);
            if outbox.send(d).is_err() {
                break;
            }
        }
        WorkerDone {
            cores: self.cores,
            tally,
            decide,
            cpu: thread_cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
        }
    }
}

/// CPU time the calling thread has used, where the platform tells.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}
