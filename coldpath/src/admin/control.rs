//! How admin commands reach the hot path: the [`ControlSink`] trait and its SPSC + journal
//! implementation.

use std::path::Path;
use std::sync::Mutex;

use hotpath::codec;
use hotpath::event::Control;
use ringbuffers::journal::{Appender, JournalError};
use ringbuffers::spsc::Producer;

/// Sub-directory of the engine's journal root that holds the admin API's own journal (one
/// writer per journal: the admin thread writes only here).
pub const ADMIN_JOURNAL_DIR: &str = "admin";

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The control ring is full (the hot path is not draining it); nothing was journaled.
    #[error("the control ring is full")]
    Full,
    /// The command was delivered but could not be journaled.
    #[error("journaling the command: {0}")]
    Journal(String),
}

/// Where accepted commands go. Implementations must deliver the command to the hot path and
/// journal it; the returned number is the command's journal sequence number.
pub trait ControlSink: Send + Sync {
    /// Deliver and journal `cmd`.
    fn send(&self, cmd: Control) -> Result<u64, ControlError>;
}

/// A [`ControlSink`] over the producer end of the hot path's SPSC control ring and a journal.
///
/// The producer is single-producer by construction, and axum handlers run concurrently, so
/// both live behind one mutex; holding it across push and append also makes the journal order
/// the ring order.
pub struct RingControlSink {
    inner: Mutex<(Producer<Control>, Appender)>,
}

impl RingControlSink {
    /// A sink pushing into `producer` and journaling into `journal_dir` (created if missing,
    /// recovered if it exists), e.g. `<journal>/admin/`.
    pub fn open(producer: Producer<Control>, journal_dir: &Path) -> Result<Self, JournalError> {
        let app = Appender::open(journal_dir, codec::journal_config())?;
        Ok(RingControlSink {
            inner: Mutex::new((producer, app)),
        })
    }
}

impl ControlSink for RingControlSink {
    fn send(&self, cmd: Control) -> Result<u64, ControlError> {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (producer, app) = &mut *g;
        producer.try_push(cmd).map_err(|_| ControlError::Full)?;
        let seq = codec::append(app, &cmd, 0, cmd.issued_unix_ns)
            .map_err(|e| ControlError::Journal(e.to_string()))?;
        // Operator commands are rare and must survive a power loss: flush each one.
        app.flush()
            .map_err(|e| ControlError::Journal(e.to_string()))?;
        Ok(seq)
    }
}
