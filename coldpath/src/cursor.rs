//! Persisted journal cursors: where a cold-path consumer resumes after a restart.
//!
//! Every cold consumer (metrics, notifications, storage export) tails one or more journal
//! directories and must neither lose nor repeat work across restarts. Its progress is a
//! [`Cursor`]: the sequence number of the next record to process in one journal directory, kept
//! in a small file written atomically (write a temporary file, `fsync` it, rename it over the
//! old one, `fsync` the directory), so a crash leaves either the old or the new value, never a
//! torn one. A consumer commits only after the effect of the records is durable (an alert
//! delivered, a Parquet file closed), which gives at-least-once processing; consumers that must
//! not repeat an effect (notifications) also de-duplicate by record sequence number.
//!
//! [`CursorTailer`] pairs a cursor with a [`Tailer`] opened at it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ringbuffers::journal::{JournalError, Tailer};

/// The persisted position of one consumer in one journal directory.
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    next_seq: u64,
}

impl Cursor {
    /// Loads the cursor stored at `path`, or a cursor at sequence 0 (the start of the journal)
    /// if the file does not exist yet. A file that exists but does not hold a number is an
    /// error: silently restarting from 0 would repeat every side effect.
    pub fn load(path: impl Into<PathBuf>) -> io::Result<Cursor> {
        let path = path.into();
        let next_seq = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<u64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "cursor file {}: {e} (content {:?})",
                        path.display(),
                        s.trim()
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Cursor { path, next_seq })
    }

    /// Sequence number of the next record to process.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Where the cursor is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably records that every record before `next_seq` has been processed. Moving a cursor
    /// backwards is refused: it would replay side effects.
    pub fn commit(&mut self, next_seq: u64) -> io::Result<()> {
        if next_seq < self.next_seq {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cursor {} would move back from {} to {next_seq}",
                    self.path.display(),
                    self.next_seq
                ),
            ));
        }
        if next_seq == self.next_seq && self.path.exists() {
            return Ok(());
        }
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{next_seq}")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        File::open(dir)?.sync_all()?;
        self.next_seq = next_seq;
        Ok(())
    }
}

/// A [`Tailer`] opened at a persisted [`Cursor`].
pub struct CursorTailer {
    /// The tailer, positioned at the cursor.
    pub tailer: Tailer,
    /// The cursor; commit `tailer.next_seq()` once the records read so far are fully handled.
    pub cursor: Cursor,
}

impl CursorTailer {
    /// Opens the journal in `journal_dir` (with the engine's schema hash) at the cursor stored
    /// in `cursor_path`.
    pub fn open(journal_dir: &Path, cursor_path: impl Into<PathBuf>) -> Result<Self, CursorError> {
        let cursor = Cursor::load(cursor_path)?;
        let tailer = Tailer::open_at(
            journal_dir,
            Some(hotpath::codec::SCHEMA_HASH),
            cursor.next_seq(),
        )?;
        Ok(CursorTailer { tailer, cursor })
    }

    /// Commits the tailer's current position.
    pub fn commit(&mut self) -> io::Result<()> {
        self.cursor.commit(self.tailer.next_seq())
    }
}

/// Why a [`CursorTailer`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The cursor file could not be read.
    #[error("cursor: {0}")]
    Io(#[from] io::Error),
    /// The journal could not be opened at the cursor.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_survives_reload_and_refuses_to_move_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c/metrics.cursor");
        let mut c = Cursor::load(&p).unwrap();
        assert_eq!(c.next_seq(), 0);
        c.commit(42).unwrap();
        assert_eq!(Cursor::load(&p).unwrap().next_seq(), 42);
        assert!(c.commit(41).is_err());
        assert_eq!(Cursor::load(&p).unwrap().next_seq(), 42);
        fs::write(&p, "garbage").unwrap();
        assert!(Cursor::load(&p).is_err());
    }
}
