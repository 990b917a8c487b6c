//! Bounded waits on a condition. Every "until X" in the tests is one of
//! these, never a bare sleep: the wait ends as soon as X holds, and the
//! bound turns a hang into a failure that names X.

use std::time::{Duration, Instant};

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `done` holds; panics naming `what` after `timeout`.
/// Returns how long it took.
pub fn wait_for(what: &str, timeout: Duration, done: impl FnMut() -> bool) -> Duration {
    try_wait_for(what, timeout, done).unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_for`], with the timeout as an error for callers that report it.
pub fn try_wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(POLL);
    }
    Ok(started.elapsed())
}
