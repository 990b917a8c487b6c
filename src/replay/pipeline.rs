//! Replay on several threads, byte for byte the output of
//! [`super::sequential::replay_on_cores`] with the same partitions.
//!
//! Worker `w` owns the cores of the partitions `p` with `p % threads == w`
//! and decides its lines of every chunk in input order, which is each
//! partition's order, each partition's lines as one batch
//! ([`PartitionBatches`]). A partition's events meet its core in the same
//! order as on one thread, and cores share nothing, so the decisions are
//! the same whatever the thread count.
//!
//! There is no reading thread: the workers share the rest of the work
//! too. A worker that wants a chunk nobody has read yet reads it
//! ([`ChunkReader`]), finds each line's partition ([`partition_of`]) and
//! publishes it to the others; it is the worker furthest ahead, so the
//! reading costs the worker that has time to spare, and a worker whose
//! next chunk another is still reading reads the one after it rather
//! than wait (chunks are numbered in the order they are read). The
//! worker that completes the oldest chunk (every worker has decided its lines of it)
//! writes that chunk's decisions, in input order, straight from the
//! workers' buffers: each run of consecutive lines one worker decided is
//! one slice of a vectored write. On 2 cores a separate reading thread
//! took a core's time from a worker whenever it ran, and left a worker
//! idle whenever the other fell behind (docs/PERFORMANCE.md, twentieth
//! session).
//!
//! Memory is bounded: at most `chunks_in_flight` chunks (read, being
//! decided, or waiting to be written) exist at once; a worker ahead by
//! that many waits. Chunk and decision buffers are recycled rather than
//! reallocated. The only locks are taken once or twice per chunk (a chunk
//! is hundreds of lines), never per line.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// Chunks read and not yet written, at most.
    pub chunks_in_flight: usize,
}

/// Where the time of a pipelined replay went. The stages are wall-clock
/// times measured around each step (per chunk, not per line), summed over
/// the workers; `worker_cpu` are the threads' CPU times where the platform
/// reports them.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// Reading input into chunks, the line scan included.
    pub read: Duration,
    /// Finding each line's partition.
    pub split: Duration,
    /// Waiting: for a chunk another worker is reading, or, ahead by
    /// `chunks_in_flight` chunks, for the oldest to be written.
    pub wait: Duration,
    /// Finding, in input order, the runs of lines each worker decided.
    pub merge: Duration,
    /// Writing the output (the vectored writes of the runs, and the final
    /// flush).
    pub write: Duration,
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

/// A chunk read (or being read) and not yet written.
struct InFlight {
    /// `None` while its reader reads and splits it.
    split: Option<Arc<Split>>,
    /// Per worker, its decisions once it has made them.
    decided: Vec<Option<Decided>>,
    /// Workers that have decided it.
    done: usize,
}

/// What the workers share under one lock: the chunks in flight, oldest
/// first, and the recycled buffers.
struct Window {
    /// The number of the oldest chunk in flight (chunks count from 0 in
    /// input order); every earlier chunk is written.
    oldest: u64,
    chunks: VecDeque<InFlight>,
    /// The input has ended: no chunk will follow the last in flight.
    ended: bool,
    /// The first error; every worker stops at its next chunk.
    error: Option<ReplayError>,
    /// A worker is writing: the others leave the chunks they complete to
    /// it.
    writing: bool,
    /// Chunk buffers to reuse.
    spare_splits: Vec<Split>,
    /// Per worker, decision buffers to reuse.
    spare_decided: Vec<Vec<Decided>>,
}

/// The input, read by one worker at a time.
struct Input<R> {
    reader: ChunkReader<R>,
    /// The number of the next chunk read, and of its first line.
    next_chunk: u64,
    next_line: u64,
}

struct Shared<'o, R, W> {
    window: Mutex<Window>,
    /// Signalled when a chunk is published or written, the input ends, or
    /// an error stops the replay.
    changed: Condvar,
    input: Mutex<Input<R>>,
    output: Mutex<&'o mut W>,
    threads: usize,
    partitions: u32,
    chunks_in_flight: usize,
}

/// A worker's scratch space for merging a chunk's decisions back into
/// input order.
#[derive(Default)]
struct Merge {
    /// Runs of consecutive lines one worker decided: the worker and the
    /// range of its buffer.
    runs: Vec<(usize, usize, usize)>,
    /// Per worker, the next line's index among its lines and where its
    /// decision starts.
    cursors: Vec<(usize, usize)>,
}

/// What a worker hands back when the input ends.
struct WorkerDone {
    cores: Vec<DecisionCore>,
    tally: ReplayTally,
    stages: StageTimes,
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
pub fn replay_pipelined<R: Read + Send, W: Write + Send>(
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
    let shared = Shared {
        window: Mutex::new(Window {
            oldest: 0,
            chunks: VecDeque::with_capacity(options.chunks_in_flight),
            ended: false,
            error: None,
            writing: false,
            spare_splits: Vec::new(),
            spare_decided: (0..threads).map(|_| Vec::new()).collect(),
        }),
        changed: Condvar::new(),
        input: Mutex::new(Input {
            reader: ChunkReader::new(input, limit, options.chunk_bytes),
            next_chunk: 0,
            next_line: 0,
        }),
        output: Mutex::new(&mut output),
        threads,
        partitions,
        chunks_in_flight: options.chunks_in_flight,
    };
    let done = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for (w, cores) in owned.into_iter().enumerate() {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("replay-{w}"))
                .spawn_scoped(scope, move || {
                    // A worker that panics leaves its chunk undecided: stop
                    // the others rather than let them wait for it.
                    let worked = panic::catch_unwind(AssertUnwindSafe(|| work(shared, w, cores)));
                    worked.unwrap_or_else(|payload| {
                        shared.fail(ReplayError::Panicked);
                        panic::resume_unwind(payload)
                    })
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    // The workers already started stop at their next chunk
                    // (the scope joins them).
                    shared.fail(ReplayError::Spawn(error));
                    return None;
                }
            }
        }
        let mut done = Vec::with_capacity(threads);
        for handle in handles {
            match handle.join() {
                Ok(d) => done.push(d),
                Err(_) => shared.fail(ReplayError::Panicked),
            }
        }
        Some(done)
    });
    let window = shared
        .window
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(error) = window.error {
        return Err(error);
    }
    let Some(done) = done.filter(|d| d.len() == threads) else {
        return Err(ReplayError::Panicked);
    };
    assert!(
        window.chunks.is_empty(),
        "every chunk is written when the workers end"
    );
    let started = Instant::now();
    output.flush().map_err(ReplayError::Write)?;
    let mut stages = StageTimes {
        write: started.elapsed(),
        ..StageTimes::default()
    };
    let mut tally = ReplayTally::default();
    let mut per_worker = Vec::with_capacity(threads);
    for d in done {
        tally.add(&d.tally);
        stages.read += d.stages.read;
        stages.split += d.stages.split;
        stages.wait += d.stages.wait;
        stages.merge += d.stages.merge;
        stages.write += d.stages.write;
        stages.decide.push(d.decide);
        stages.worker_cpu.push(d.cpu);
        per_worker.push(d.cores.into_iter());
    }
    // Core `p` came from worker `p % threads`, in increasing `p`.
    let cores = (0..partitions as usize)
        .filter_map(|p| per_worker[p % threads].next())
        .collect();
    Ok((cores, tally, stages))
}

/// Worker `w`: decides its lines of every chunk, in order, reading and
/// writing chunks as they fall to it.
fn work<R: Read, W: Write>(
    shared: &Shared<'_, R, W>,
    w: usize,
    mut cores: Vec<DecisionCore>,
) -> WorkerDone {
    let cpu_before = thread_cpu_time();
    let mut tally = ReplayTally::default();
    let mut stages = StageTimes::default();
    let mut decide = Duration::ZERO;
    let mut batches = PartitionBatches::default();
    let mut merge = Merge::default();
    let threads = shared.threads;
    let mut number = 0u64;
    while let Some((split, mut d)) = shared.chunk(number, w, &mut stages) {
        let started = Instant::now();
        d.out.clear();
        d.ends.clear();
        // This worker's lines, in input order.
        let mut messages: Vec<Message<'_>> = Vec::new();
        for (i, &p) in split.partitions.iter().enumerate() {
            if p as usize % threads != w {
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
        let ends = &mut d.ends;
        batches.decide(
            &mut cores,
            &messages,
            |m| m.source.partition as usize / threads,
            &mut d.out,
            &mut tally,
            |len| ends.push(len),
        );
        drop(messages);
        // Before handing the decisions over, so the writer can reuse the
        // chunk's buffers.
        drop(split);
        decide += started.elapsed();
        shared.decided(number, w, d, &mut merge, &mut stages);
        number += 1;
    }
    WorkerDone {
        cores,
        tally,
        stages,
        decide,
        cpu: thread_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before)),
    }
}

impl<R: Read, W: Write> Shared<'_, R, W> {
    fn lock(&self) -> MutexGuard<'_, Window> {
        // A worker that panicked holding the lock left the window whole:
        // every change to it is made in one step.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the replay's first error and wakes every waiting worker.
    fn fail(&self, error: ReplayError) {
        self.lock().error.get_or_insert(error);
        self.changed.notify_all();
    }

    /// Chunk `number` for worker `w`, with a buffer for its decisions:
    /// published by another worker, or read here when nobody has read it
    /// yet. While another worker reads it, this one reads the chunk after
    /// it, if the window has room, rather than wait. `None` once the input
    /// has ended before it, or after an error.
    fn chunk(
        &self,
        number: u64,
        w: usize,
        stages: &mut StageTimes,
    ) -> Option<(Arc<Split>, Decided)> {
        let mut window = self.lock();
        loop {
            if window.error.is_some() {
                return None;
            }
            // Chunk `number` is not written (this worker has not decided
            // it) and every earlier one was read (this worker decided
            // them): it is in flight or the next to read.
            debug_assert!(number >= window.oldest);
            let index = (number - window.oldest) as usize;
            let wanted = window.chunks.get(index);
            if let Some(split) = wanted.and_then(|c| c.split.as_ref()) {
                let split = Arc::clone(split);
                let d = window.spare_decided[w].pop().unwrap_or_default();
                return Some((split, d));
            }
            if wanted.is_none() && window.ended {
                return None;
            }
            if !window.ended && window.chunks.len() < self.chunks_in_flight {
                window.chunks.push_back(InFlight {
                    split: None,
                    decided: (0..self.threads).map(|_| None).collect(),
                    done: 0,
                });
                let split = window.spare_splits.pop().unwrap_or_default();
                drop(window);
                let read = self.read(split, stages);
                window = self.lock();
                if let Some((read_number, split)) = read
                    && read_number == number
                {
                    let d = window.spare_decided[w].pop().unwrap_or_default();
                    return Some((split, d));
                }
                continue;
            }
            let started = Instant::now();
            window = self.changed.wait(window).unwrap_or_else(|e| e.into_inner());
            stages.wait += started.elapsed();
        }
    }

    /// Reads and splits the next chunk of the input, for which this worker
    /// has just put an empty place in flight, and publishes it; returns its
    /// number. Chunks are numbered in the order they are read, under the
    /// input's lock, so workers reading at once fill the empty places in
    /// order. `None` at the end of the input (the newest empty place is
    /// taken back out) or on a read error.
    fn read(&self, mut split: Split, stages: &mut StageTimes) -> Option<(u64, Arc<Split>)> {
        let started = Instant::now();
        let (read, number) = {
            let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
            let read = input.reader.next_chunk(&mut split.chunk);
            let number = input.next_chunk;
            if let Ok(true) = read {
                split.first_line = input.next_line;
                input.next_line += split.chunk.len() as u64;
                input.next_chunk += 1;
            }
            (read, number)
        };
        let read_done = Instant::now();
        stages.read += read_done - started;
        match read {
            Ok(true) => {}
            Ok(false) => {
                let mut window = self.lock();
                // No chunk will fill it: every place after the last chunk
                // read is empty, the newest one included.
                let taken_back = window.chunks.pop_back();
                assert!(
                    taken_back.is_some_and(|c| c.split.is_none()),
                    "the place taken back after the end is empty"
                );
                window.ended = true;
                window.spare_splits.push(split);
                self.changed.notify_all();
                return None;
            }
            Err(error) => {
                self.fail(ReplayError::Read(error));
                return None;
            }
        }
        split.partitions.clear();
        split.partitions.extend(
            split
                .chunk
                .lines()
                .map(|l| partition_of(l, self.partitions)),
        );
        stages.split += read_done.elapsed();
        let split = Arc::new(split);
        let mut window = self.lock();
        debug_assert!(number >= window.oldest);
        let index = (number - window.oldest) as usize;
        debug_assert!(window.chunks[index].split.is_none());
        window.chunks[index].split = Some(Arc::clone(&split));
        self.changed.notify_all();
        Some((number, split))
    }

    /// Hands over worker `w`'s decisions on chunk `number`, then writes
    /// the oldest chunks, in order, while they are complete and no other
    /// worker is writing.
    fn decided(
        &self,
        number: u64,
        w: usize,
        d: Decided,
        merge: &mut Merge,
        stages: &mut StageTimes,
    ) {
        let mut window = self.lock();
        let index = (number - window.oldest) as usize;
        let in_flight = &mut window.chunks[index];
        debug_assert!(in_flight.decided[w].is_none());
        in_flight.decided[w] = Some(d);
        in_flight.done += 1;
        loop {
            // Another worker writes what completes meanwhile; an error
            // leaves the rest unwritten; an oldest chunk not complete is
            // written by the worker that completes it.
            let ready = window
                .chunks
                .front()
                .is_some_and(|c| c.done == self.threads);
            if window.writing || window.error.is_some() || !ready {
                return;
            }
            let Some(oldest) = window.chunks.pop_front() else {
                return;
            };
            window.oldest += 1;
            window.writing = true;
            drop(window);
            let (split, decided) = complete(oldest);
            let result = self.write(&split, &decided, merge, stages);
            window = self.lock();
            window.writing = false;
            for (w, d) in decided.into_iter().enumerate() {
                window.spare_decided[w].push(d);
            }
            // Every worker dropped its handle before handing over.
            if let Ok(split) = Arc::try_unwrap(split) {
                window.spare_splits.push(split);
            }
            if let Err(error) = result {
                window.error.get_or_insert(ReplayError::Write(error));
            }
            self.changed.notify_all();
        }
    }

    /// Writes one chunk's decisions in input order: each run of
    /// consecutive lines one worker decided is one range of that worker's
    /// buffer, written straight from there.
    fn write(
        &self,
        split: &Split,
        decided: &[Decided],
        merge: &mut Merge,
        stages: &mut StageTimes,
    ) -> io::Result<()> {
        let started = Instant::now();
        let Merge { runs, cursors } = merge;
        cursors.clear();
        cursors.resize(self.threads, (0, 0));
        runs.clear();
        for &p in &split.partitions {
            let w = p as usize % self.threads;
            let (line, start) = cursors[w];
            let end = decided[w].ends[line];
            cursors[w] = (line + 1, end);
            match runs.last_mut() {
                Some((last_w, _, last_end)) if *last_w == w => *last_end = end,
                _ => runs.push((w, start, end)),
            }
        }
        let write_started = Instant::now();
        stages.merge += write_started - started;
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let mut result = Ok(());
        for group in runs.chunks(IOVECS_PER_WRITE) {
            let mut slices: Vec<IoSlice<'_>> = group
                .iter()
                .map(|&(w, start, end)| IoSlice::new(&decided[w].out[start..end]))
                .collect();
            result = write_all_vectored(&mut **output, &mut slices);
            if result.is_err() {
                break;
            }
        }
        stages.write += write_started.elapsed();
        result
    }
}

/// A chunk every worker has decided, as its lines and their decisions.
fn complete(chunk: InFlight) -> (Arc<Split>, Vec<Decided>) {
    let split = chunk
        .split
        .expect("a chunk every worker decided was published");
    let decided = chunk
        .decided
        .into_iter()
        .map(|d| d.expect("every worker handed over its decisions"))
        .collect();
    (split, decided)
}

/// Slices per vectored write (Linux's `IOV_MAX` is 1024).
const IOVECS_PER_WRITE: usize = 1024;

/// Writes every byte of `slices`, in order, through as few vectored
/// writes as the writer allows.
fn write_all_vectored<W: Write + ?Sized>(
    output: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
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
