//! Signals as a shutdown flag: the first SIGTERM or SIGINT sets it, and the
//! processor drains, flushes, commits and exits; a second one exits at once
//! with status 1 (an operator who asks twice means it).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Registers the handlers; returns the flag they set.
pub fn shutdown_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&shutdown))?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown))?;
    }
    Ok(shutdown)
}
