//! The memory-mapped, segmented, append-only journal (in the spirit of Chronicle Queue).
//!
//! One [`Appender`] per journal directory writes records into a memory-mapped segment file; any
//! number of [`Tailer`]s, in this or other processes, read them through their own read-only
//! shared mappings of the same files. Appending is wait-free: a bounds check, a copy, one
//! CRC32C, and one Release store. Everything slow (creating, pre-allocating and pre-faulting the
//! next segment, `msync` and `munmap` of finished ones) happens on a cold helper thread.
//!
//! # Files
//!
//! A journal is a directory holding `journal.lock` (the appender's advisory `flock`) and segment
//! files `NNNNNNNNNN.seg` (zero-padded index, contiguous), each exactly `segment_size` bytes
//! (a multiple of 4096, default 64 MiB). Files named `*.seg.prep-*` are segments being prepared
//! and are never read. A segment file whose 64 header bytes are all zero has been pre-allocated
//! but not started; readers ignore it and the appender removes it when it reopens the journal.
//!
//! # Segment header (64 bytes, little-endian)
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `b"ALGOJRNL"` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 4 | header length (64) |
//! | 16 | 8 | schema hash (user supplied; readers refuse a different one) |
//! | 24 | 8 | segment index (equals the file name) |
//! | 32 | 8 | segment size in bytes |
//! | 40 | 8 | sequence number of the segment's first record |
//! | 48 | 8 | creation time, Unix nanoseconds |
//! | 56 | 4 | CRC32C of bytes 0..56 |
//! | 60 | 4 | reserved, 0 |
//!
//! # Record (8-byte aligned, little-endian), starting at offset 64
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | **commit word**: total record length (header + payload + padding, a multiple of 8, ≥ 32); 0 = not written yet; `u32::MAX` = end of segment |
//! | 4 | 2 | kind (caller-defined, never 0) |
//! | 6 | 2 | flags (caller-defined) |
//! | 8 | 8 | sequence number (global, contiguous across segments, starting at 0) |
//! | 16 | 8 | timestamp (caller-defined) |
//! | 24 | 4 | payload length |
//! | 28 | 4 | CRC32C over bytes 0..28 (with the commit word's final value) and the payload |
//! | 32 | n | payload, zero-padded to a multiple of 8 |
//!
//! The last [`TAIL_RESERVE`] (8) bytes of a segment are never used by records, so the
//! end-of-segment marker always fits. The maximum payload is `max_record`, clamped to what fits
//! in an empty segment (`segment_size - 104`).
//!
//! # Protocol and memory ordering
//!
//! Appender, per record at offset `p` (the bytes from `p` on are zero and unpublished):
//! 1. write the payload (`append` copies, `append_with` lets the caller write in place);
//! 2. write kind, flags, seq, timestamp, length, then the CRC;
//! 3. store the record length into the commit word at `p` with **Release**.
//!
//! Tailer, at offset `p`: load the commit word with **Acquire**. 0: nothing yet (`Ok(None)`).
//! Otherwise the Release/Acquire pair makes every byte of step 1–2 visible, so the tailer checks
//! the length, the CRC and the sequence number and returns the record, or reports `Corrupt`.
//! The pair works across processes because both mappings are the same page-cache pages. A
//! committed record is never written again, which is what makes handing out `&[u8]` into the
//! mapping sound.
//!
//! Rollover, when a record does not fit: take the segment the helper prepared (or create it on
//! the spot, counted in [`AppenderStats::slow_rollovers`]), write its header (with the first
//! sequence number it will hold), then store `u32::MAX` into the commit word at the end of the
//! old segment with **Release**. A tailer that Acquire-loads that marker opens the next file and
//! is guaranteed to find its header complete. The next segment's file is linked under its name
//! only after it is full length, so a reader never maps a short file.
//!
//! The helper thread keeps the next two segments prepared. It and the appender exchange
//! prepared and retired segments through uncontended mutex slots (an uncontended lock is one
//! atomic RMW, no syscall, no allocation) and an `AtomicU64` "wanted index" (Release by the
//! appender, Acquire by the helper; it publishes nothing but the number). The appender wakes the
//! helper with `Thread::unpark` at each rollover — a fast rollover's only syscall (a futex wake).
//! `flush` `fsync`s the segments rolled away from since the last flush by path (fsync works on
//! the inode, so it covers pages dirtied through an already unmapped mapping).
//!
//! # Crashes
//!
//! `kill -9` loses nothing that `append` returned for: the bytes are in the page cache. A record
//! being written when the process died has commit word 0 (uncommitted) and maybe some of its
//! bytes. [`Appender::open`] scans the last segment (and the one before), keeps every record whose
//! length, CRC and sequence verify, zeroes everything after the last one (a torn tail, including a
//! record with its commit word set but a bad CRC, which only power loss or media errors produce),
//! seals a previous segment whose end-of-segment marker is missing, and continues after the last
//! good record; see [`RecoveryReport`]. Against power loss call [`Appender::flush`] (`msync`).
//! The model in `ringbuffers/verification/journal.pml` checks this protocol with Spin.
//!
//! Corruption in the middle of a segment is never returned as data: [`Tailer::next`] reports
//! `Corrupt { segment, offset, reason }` and [`verify`] lists every corruption it finds.
//!
//! # Limits
//!
//! - Truncating a segment file while it is mapped makes readers fault (SIGBUS); segment files
//!   must only be deleted whole, never shortened.
//! - A commit word overwritten with zeros in the middle of a segment looks like the live end of
//!   the journal to a tailer; [`verify`] detects it.
//! - On a disk-backed file system, writeback of dirty pages write-protects them again, so the
//!   first store to a page after writeback takes a minor fault (as for any shared file mapping);
//!   a tmpfs/hugetlbfs directory avoids it.

mod appender;
mod format;
mod prefault;
mod segment;
mod tailer;
mod verify;

pub use appender::{Appender, AppenderStats, RecoveryReport};
pub use format::{
    record_crc, record_len, SegmentHeader, END_OF_SEGMENT, FORMAT_VERSION, MAGIC, RECORD_ALIGN,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, TAIL_RESERVE,
};
pub use segment::{segment_path, LOCK_FILE};
pub use tailer::{list_segments, RecordRef, SegmentInfo, Tailer};
pub use verify::{verify, Corruption, VerifyReport};

use std::path::PathBuf;

/// Configuration of an [`Appender`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size of each segment file in bytes: a multiple of 4096, at least 8192.
    pub segment_size: u64,
    /// Hash of the event schema; stored in every segment header and checked by readers.
    pub schema_hash: u64,
    /// Largest payload accepted by `append` (clamped to what fits in one segment).
    pub max_record: u32,
    /// Pre-fault every page of the next segment on the helper thread, so the appending thread
    /// takes no page fault after a rollover. Off: the next segment is still created and
    /// pre-allocated on the helper thread, but its pages fault in on first write.
    pub prefault: bool,
}

impl JournalConfig {
    /// Defaults: 64 MiB segments, 1 MiB maximum record, prefault on.
    pub fn new(schema_hash: u64) -> Self {
        JournalConfig {
            segment_size: 64 << 20,
            schema_hash,
            max_record: 1 << 20,
            prefault: true,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), JournalError> {
        if self.segment_size % 4096 != 0
            || self.segment_size < format::MIN_SEGMENT_SIZE
            || self.segment_size > (1 << 40)
        {
            return Err(JournalError::InvalidConfig {
                reason: format!(
                    "segment size {} must be a multiple of 4096 between {} bytes and 1 TiB",
                    self.segment_size,
                    format::MIN_SEGMENT_SIZE
                ),
            });
        }
        Ok(())
    }

    /// Largest payload an appender with this configuration accepts.
    pub fn max_payload(&self) -> usize {
        let fits =
            self.segment_size as usize - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN - TAIL_RESERVE;
        let fits = fits.min(u32::MAX as usize - 64);
        (self.max_record as usize).min(fits)
    }
}

/// Everything that can go wrong opening, appending to or reading a journal. Every message is one
/// line naming the file and what is wrong.
#[derive(thiserror::Error, Debug)]
pub enum JournalError {
    /// An operating-system error on `path`.
    #[error("journal I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the journal magic.
    #[error("{} is not a journal segment (bad magic bytes)", path.display())]
    BadMagic {
        /// The segment file.
        path: PathBuf,
    },
    /// Written in an on-disk format this build does not read.
    #[error("journal {} uses format version {found} but this build reads version {expected}", path.display())]
    IncompatibleVersion {
        /// The segment file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// [`FORMAT_VERSION`].
        expected: u32,
    },
    /// Written by a build with different event types.
    #[error("journal {} was written with schema {found:#x} but this build expects {expected:#x}", path.display())]
    SchemaMismatch {
        /// The segment file.
        path: PathBuf,
        /// Schema hash in the file.
        found: u64,
        /// Schema hash the caller expects.
        expected: u64,
    },
    /// The file is shorter than a segment header.
    #[error("journal segment {} is only {len} bytes, shorter than its {SEGMENT_HEADER_LEN}-byte header", path.display())]
    TruncatedHeader {
        /// The segment file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Bytes that fail a check (length, checksum, sequence, marker).
    #[error("journal segment {segment} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// Segment index.
        segment: u64,
        /// Byte offset in the segment.
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// The payload exceeds the maximum record size.
    #[error("record payload of {len} bytes exceeds the journal's maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload length asked for.
        len: usize,
        /// The maximum.
        max: u32,
    },
    /// Another appender holds the journal.
    #[error("journal is already open for appending by another appender (lock held on {})", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory does not exist or holds no journal segment.
    #[error("{} is not a journal (no segment files found)", path.display())]
    NotAJournal {
        /// The directory.
        path: PathBuf,
    },
    /// The requested sequence number is older than the oldest segment.
    #[error("journal {} starts at seq {first}; seq {seq} is no longer available", path.display())]
    SeqUnavailable {
        /// The directory.
        path: PathBuf,
        /// Sequence number asked for.
        seq: u64,
        /// First sequence number still in the journal.
        first: u64,
    },
    /// Record kind 0 is reserved.
    #[error("record kind 0 is reserved and cannot be appended")]
    InvalidKind,
    /// A configuration value is out of range.
    #[error("invalid journal configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}
