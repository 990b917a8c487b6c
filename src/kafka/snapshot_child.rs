//! Snapshots encoded off the hot path, as Redis `BGSAVE` does: the loop
//! thread forks while holding the partition table lock, so the child's
//! copy-on-write image is exactly the state at each partition's
//! `next_offset`, and the child runs [`snapshot::encode`] while the loop
//! goes on; the loop waits for the page-table copy only (why fork, and its
//! costs: docs/DESIGN.md). The process is multi-threaded, so the child only
//! encodes, writes length-prefixed bytes to a pipe and `_exit`s, with every
//! signal blocked; a silent child is killed and reaped, never waited on
//! forever. Linux only; elsewhere [`start`] encodes on the calling thread.

use thiserror::Error;

use coupon_stream_core::decision_core::DecisionCore;
use coupon_stream_core::snapshot;

/// Largest encoded snapshot accepted from a child, a sanity bound on the
/// length prefix (a 10-million-coupon partition encodes to about 100 MiB).
pub const CHILD_SNAPSHOT_BYTES_MAX: u64 = 1 << 36;

/// Exit code of a child whose encoder panicked.
const EXIT_PANICKED: i32 = 101;
/// Exit code of a child that could not write to the pipe.
const EXIT_WRITE_FAILED: i32 = 102;
/// Exit code of a child whose parent was gone before it started.
const EXIT_ORPHANED: i32 = 103;

#[derive(Debug, Error)]
pub enum ChildError {
    #[error("creating the pipe for the encoding child: {0}")]
    Pipe(#[source] std::io::Error),
    #[error("forking the encoding child: {0}")]
    Fork(#[source] std::io::Error),
    #[error("reading from encoding child {pid}: {source}")]
    Read {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding child {pid} sent nothing for {silence_ms} ms; killed ({status})")]
    Silent {
        pid: i32,
        silence_ms: u64,
        status: String,
    },
    #[error("encoding child {pid} stopped after {received} of {expected} snapshots ({status})")]
    Ended {
        pid: i32,
        received: usize,
        expected: usize,
        status: String,
    },
    #[error("encoding child {pid} announced a snapshot of {bytes} bytes, over the limit")]
    TooLarge { pid: i32, bytes: u64 },
    #[error("encoding child {pid} sent every snapshot but did not exit cleanly ({status})")]
    Exit { pid: i32, status: String },
}

/// Starts encoding `cores` (each with [`snapshot::encode`]) from a
/// copy-on-write image of the process taken now; the caller's state may
/// change as soon as this returns. Collect the bytes with
/// [`Encoding::collect`].
pub fn start(cores: &[&DecisionCore]) -> Result<Encoding, ChildError> {
    start_with(cores, snapshot::encode)
}

#[cfg(target_os = "linux")]
pub use linux::Encoding;

#[cfg(target_os = "linux")]
fn start_with<T>(items: &[&T], encode: fn(&T, &mut Vec<u8>)) -> Result<Encoding, ChildError> {
    linux::start_with(items, encode)
}

#[cfg(not(target_os = "linux"))]
pub use fallback::Encoding;

#[cfg(not(target_os = "linux"))]
fn start_with<T>(items: &[&T], encode: fn(&T, &mut Vec<u8>)) -> Result<Encoding, ChildError> {
    Ok(fallback::start_with(items, encode))
}

#[cfg(not(target_os = "linux"))]
mod fallback {
    use std::time::Duration;

    use super::ChildError;

    /// Snapshots encoded on the calling thread (no `fork` here).
    pub struct Encoding {
        encoded: Vec<Vec<u8>>,
    }

    pub(super) fn start_with<T>(items: &[&T], encode: fn(&T, &mut Vec<u8>)) -> Encoding {
        let encoded = items
            .iter()
            .map(|item| {
                let mut bytes = Vec::new();
                encode(item, &mut bytes);
                bytes
            })
            .collect();
        Encoding { encoded }
    }

    impl Encoding {
        /// No child process on this platform.
        pub fn child_id(&self) -> Option<u32> {
            None
        }

        /// The encoded bytes, in the order the items were given.
        pub fn collect(self, _silence: Duration) -> Result<Vec<Vec<u8>>, ChildError> {
            Ok(self.encoded)
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::{Duration, Instant};

    use super::{
        CHILD_SNAPSHOT_BYTES_MAX, ChildError, EXIT_ORPHANED, EXIT_PANICKED, EXIT_WRITE_FAILED,
    };

    /// A child process encoding snapshots, and the pipe it writes them to.
    pub struct Encoding {
        pid: libc::pid_t,
        pipe: OwnedFd,
        expected: usize,
        /// Set once the child has been waited for; until then dropping the
        /// value kills and reaps it.
        reaped: bool,
    }

    pub(super) fn start_with<T>(
        items: &[&T],
        encode: fn(&T, &mut Vec<u8>),
    ) -> Result<Encoding, ChildError> {
        let mut fds: [libc::c_int; 2] = [-1; 2];
        // SAFETY: `fds` is a writable array of two file descriptors, as
        // pipe2 requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(ChildError::Pipe(io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned
        // by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only `child_main`, which calls the pure
        // encoder, async-signal-safe libc functions and the allocator (made
        // fork-safe by its atfork handlers), and never returns (`_exit`).
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(ChildError::Fork(io::Error::last_os_error())),
            0 => child_main(items, encode, write.as_raw_fd(), parent),
            pid => {
                // The parent's copy of the write end must close, or the
                // read end never sees the child's end.
                drop(write);
                Ok(Encoding {
                    pid,
                    pipe: read,
                    expected: items.len(),
                    reaped: false,
                })
            }
        }
    }

    /// The child: encode each item, write `len u64 LE` and the bytes, exit.
    fn child_main<T>(
        items: &[&T],
        encode: fn(&T, &mut Vec<u8>),
        fd: RawFd,
        parent: libc::pid_t,
    ) -> ! {
        // SAFETY: the calls below only touch the child's own signal mask and
        // process attributes; all are async-signal-safe.
        unsafe {
            // Signals meant for the processor (SIGTERM's shutdown flag) must
            // not run its handlers here; SIGKILL still ends the child.
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            // Never outlive the processor (this fires when the forking
            // thread ends, which for the loop thread is the end of `run`).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(EXIT_ORPHANED);
            }
        }
        let code = match catch_unwind(AssertUnwindSafe(|| encode_all(items, encode, fd))) {
            Ok(true) => 0,
            Ok(false) => EXIT_WRITE_FAILED,
            Err(_) => EXIT_PANICKED,
        };
        // SAFETY: `_exit` ends the child without running the parent's
        // atexit handlers, destructors or stdio flushes.
        unsafe { libc::_exit(code) }
    }

    fn encode_all<T>(items: &[&T], encode: fn(&T, &mut Vec<u8>), fd: RawFd) -> bool {
        let mut bytes = Vec::new();
        for item in items {
            bytes.clear();
            encode(item, &mut bytes);
            if !write_all(fd, &(bytes.len() as u64).to_le_bytes()) || !write_all(fd, &bytes) {
                return false;
            }
        }
        true
    }

    fn write_all(fd: RawFd, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            // SAFETY: `bytes` is a live slice of `bytes.len()` bytes.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return false;
            }
            bytes = bytes.get(n as usize..).unwrap_or_default();
        }
        true
    }

    impl Encoding {
        /// The child's process id, for measurements.
        pub fn child_id(&self) -> Option<u32> {
            u32::try_from(self.pid).ok()
        }

        /// Reads every snapshot the child encodes, in the order the items
        /// were given, and reaps the child. A child that sends nothing for
        /// `silence` is killed; a child that dies, sends too little or
        /// exits with a failure is an error.
        pub fn collect(mut self, silence: Duration) -> Result<Vec<Vec<u8>>, ChildError> {
            let mut encoded = Vec::with_capacity(self.expected);
            while encoded.len() < self.expected {
                let mut len = [0u8; 8];
                self.read_exact(&mut len, silence, encoded.len())?;
                let len = u64::from_le_bytes(len);
                let Ok(size) = usize::try_from(len) else {
                    return Err(self.fail(|pid, _| ChildError::TooLarge { pid, bytes: len }));
                };
                if len > CHILD_SNAPSHOT_BYTES_MAX {
                    return Err(self.fail(|pid, _| ChildError::TooLarge { pid, bytes: len }));
                }
                let mut bytes = vec![0u8; size];
                self.read_exact(&mut bytes, silence, encoded.len())?;
                encoded.push(bytes);
            }
            let status = self.reap_within(silence);
            match status {
                Some(s) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => Ok(encoded),
                _ => {
                    let status = status.map_or_else(|| self.kill_and_reap(), describe);
                    Err(ChildError::Exit {
                        pid: self.pid,
                        status,
                    })
                }
            }
        }

        fn read_exact(
            &mut self,
            mut buf: &mut [u8],
            silence: Duration,
            received: usize,
        ) -> Result<(), ChildError> {
            let timeout_ms = i32::try_from(silence.as_millis()).unwrap_or(i32::MAX);
            while !buf.is_empty() {
                let mut poll = libc::pollfd {
                    fd: self.pipe.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: `poll` points to one initialized pollfd.
                let ready = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
                if ready == 0 {
                    let silence_ms = silence.as_millis() as u64;
                    return Err(self.fail(|pid, status| ChildError::Silent {
                        pid,
                        silence_ms,
                        status,
                    }));
                }
                let n = if ready < 0 {
                    -1
                } else {
                    // SAFETY: `buf` is a live, writable slice of `buf.len()`
                    // bytes.
                    unsafe { libc::read(self.pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
                };
                if n < 0 {
                    let error = io::Error::last_os_error();
                    if error.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(self.fail(|pid, _| ChildError::Read { pid, source: error }));
                }
                if n == 0 {
                    let expected = self.expected;
                    return Err(self.fail(|pid, status| ChildError::Ended {
                        pid,
                        received,
                        expected,
                        status,
                    }));
                }
                buf = &mut buf[n as usize..];
            }
            Ok(())
        }

        /// Kills and reaps the child, then builds the error with its pid
        /// and how it ended.
        fn fail(&mut self, error: impl FnOnce(i32, String) -> ChildError) -> ChildError {
            let status = self.kill_and_reap();
            error(self.pid, status)
        }

        /// Waits up to `within` for the child to exit by itself.
        fn reap_within(&mut self, within: Duration) -> Option<libc::c_int> {
            let started = Instant::now();
            loop {
                let mut status = 0;
                // SAFETY: `status` is a writable int; the pid is our child,
                // not yet reaped.
                let done = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
                if done == self.pid {
                    self.reaped = true;
                    return Some(status);
                }
                if done < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    self.reaped = true;
                    return None;
                }
                if started.elapsed() >= within {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        /// Sends SIGKILL (harmless to a child that already exited: it stays
        /// a zombie until reaped) and waits for it.
        fn kill_and_reap(&mut self) -> String {
            if self.reaped {
                return "already reaped".to_owned();
            }
            // SAFETY: the pid is our unreaped child, so it cannot have been
            // reused by another process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            loop {
                let mut status = 0;
                // SAFETY: as in `reap_within`.
                let done = unsafe { libc::waitpid(self.pid, &mut status, 0) };
                if done == self.pid {
                    self.reaped = true;
                    return describe(status);
                }
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    self.reaped = true;
                    return format!("cannot wait for it: {error}");
                }
            }
        }
    }

    impl Drop for Encoding {
        fn drop(&mut self) {
            self.kill_and_reap();
        }
    }

    /// A wait status in words.
    fn describe(status: libc::c_int) -> String {
        if libc::WIFEXITED(status) {
            match libc::WEXITSTATUS(status) {
                EXIT_PANICKED => "the encoder panicked".to_owned(),
                EXIT_WRITE_FAILED => "it could not write to the pipe".to_owned(),
                EXIT_ORPHANED => "its parent was gone".to_owned(),
                code => format!("exit code {code}"),
            }
        } else if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("wait status {status}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use coupon_stream_core::config::CoreConfig;
    use coupon_stream_core::decision::Source;
    use coupon_stream_core::decision_core::Message;
    use coupon_stream_core::synthetic;

    const SILENCE: Duration = Duration::from_secs(30);

    #[test]
    fn child_bytes_equal_in_thread_encoding() {
        let small = synthetic::build(20_000, 3_000);
        let other = synthetic::build(5_000, 10_000);
        let empty = DecisionCore::new(CoreConfig::default());
        let cores = [&small, &other, &empty];
        let encoded = start(&cores).unwrap().collect(SILENCE).unwrap();
        assert_eq!(encoded.len(), 3);
        for (core, bytes) in cores.iter().zip(&encoded) {
            let mut expected = Vec::new();
            snapshot::encode(core, &mut expected);
            assert_eq!(bytes, &expected);
        }
        // The image is the state at the fork, not at the collect.
        let mut expected = Vec::new();
        snapshot::encode(&small, &mut expected);
        let encoding = start(&[&small]).unwrap();
        let mut live = small;
        let late = format!(
            r#"{{"type":"seller","event_id":"late","ts":{},"seller_id":"late-seller","daily_issue_limit":5}}"#,
            coupon_stream_core::workload::START_TS + 86_400_000
        );
        live.process(
            &Message {
                value: late.as_bytes(),
                source: Source {
                    partition: 0,
                    offset: 1 << 40,
                },
                key_check: None,
            },
            &mut Vec::new(),
        );
        let mut now = Vec::new();
        snapshot::encode(&live, &mut now);
        assert_ne!(now, expected, "the event changed the state");
        let encoded = encoding.collect(SILENCE).unwrap();
        assert_eq!(encoded, vec![expected]);
    }

    #[test]
    fn nothing_to_encode_is_no_bytes() {
        let encoded = start(&[]).unwrap().collect(SILENCE).unwrap();
        assert!(encoded.is_empty());
    }

    #[cfg(target_os = "linux")]
    mod failures {
        use super::*;

        fn panics(_: &u8, _: &mut Vec<u8>) {
            panic!("the encoder failed");
        }

        fn aborts(_: &u8, out: &mut Vec<u8>) {
            out.push(1);
            std::process::abort();
        }

        fn hangs(_: &u8, _: &mut Vec<u8>) {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }

        fn writes(n: &u8, out: &mut Vec<u8>) {
            out.extend(std::iter::repeat_n(*n, 100_000));
        }

        #[test]
        fn a_panicking_child_is_an_error() {
            let error = start_with(&[&1u8], panics)
                .unwrap()
                .collect(SILENCE)
                .unwrap_err();
            assert!(
                matches!(&error, ChildError::Ended { received: 0, expected: 1, status, .. } if status == "the encoder panicked"),
                "{error}"
            );
        }

        #[test]
        fn a_crashing_child_is_an_error() {
            let error = start_with(&[&1u8, &2u8], aborts)
                .unwrap()
                .collect(SILENCE)
                .unwrap_err();
            assert!(
                matches!(&error, ChildError::Ended { received: 0, status, .. } if status.starts_with("killed by signal")),
                "{error}"
            );
        }

        #[test]
        fn a_silent_child_is_killed_in_bounded_time() {
            let started = std::time::Instant::now();
            let error = start_with(&[&1u8], hangs)
                .unwrap()
                .collect(Duration::from_millis(300))
                .unwrap_err();
            assert!(matches!(error, ChildError::Silent { .. }), "{error}");
            assert!(started.elapsed() < Duration::from_secs(10));
        }

        #[test]
        fn an_uncollected_child_is_killed_on_drop() {
            let encoding = start_with(&[&1u8], hangs).unwrap();
            let pid = encoding.child_id().unwrap() as libc::pid_t;
            drop(encoding);
            // SAFETY: signal 0 only checks whether the pid exists.
            assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the child was reaped");
        }

        #[test]
        fn large_outputs_pass_through_the_pipe() {
            let encoded = start_with(&[&7u8, &9u8], writes)
                .unwrap()
                .collect(SILENCE)
                .unwrap();
            assert_eq!(encoded, vec![vec![7u8; 100_000], vec![9u8; 100_000]]);
        }
    }
}
