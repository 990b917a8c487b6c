//! The processor (or any helper) as a child process: the command line every
//! test starts the processor with, and [`Running`], which signals a child,
//! waits for it with a bound, and kills it when dropped so that a failed
//! assertion leaves nothing running.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait::wait_for;

/// How long a processor may take to drain and exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// `coupon-stream run` in group `group` against `brokers`, stdout
/// discarded; callers add their flags, environment and stderr.
pub fn processor_command(brokers: &str, group: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coupon-stream"));
    command
        .args(["run", "--brokers", brokers, "--group-id", group])
        .stdout(Stdio::null());
    command
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Running(pub Child);

impl Running {
    pub fn spawn(command: &mut Command) -> Running {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        Running(child)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Sends SIGTERM: the processor drains, flushes, commits and exits.
    pub fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a valid signal number has no memory effects;
        // the pid is our own child, not yet reaped (we hold its `Child`).
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            sent,
            0,
            "SIGTERM to {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// SIGTERM, then its exit status once it exited (bounded).
    pub fn terminate(mut self) -> ExitStatus {
        self.sigterm();
        let mut status = None;
        wait_for("the processor to exit after SIGTERM", EXIT_TIMEOUT, || {
            status = self.0.try_wait().unwrap();
            status.is_some()
        });
        status.expect("exited")
    }

    /// SIGKILL, as a crash would, and reaps it.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
