//! SIGINT / SIGTERM handling: both only set the shared stop flag.
//!
//! The handler does nothing else (no allocation, no locks, no I/O: it runs in signal context).
//! Threads see the flag at their next poll round, finish the event in hand and shut their stages
//! down, so the journal is never left with a half-written record by an orderly stop; a second
//! signal while stopping kills the process outright, which is safe because a torn tail is
//! recovered on the next open.

use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Registers SIGINT and SIGTERM to set `stop`; a second signal terminates immediately.
pub fn install(stop: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional shutdown must be registered first so that it only fires
        // when the flag is already set, i.e. on the second signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(stop))
            .context("installing signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(stop)).context("installing signal handler")?;
    }
    Ok(())
}
