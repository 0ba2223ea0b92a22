//! On-disk layout: the segment header, the record header, their checksums, and the one function
//! every reader (tailer, `verify`, recovery) uses to decide what a record slot holds.
//!
//! Everything is little-endian and 8-byte aligned. See the module docs of [`super`] for the
//! byte-level tables.

use super::JournalError;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Magic bytes at offset 0 of every segment.
pub const MAGIC: [u8; 8] = *b"ALGOJRNL";

/// On-disk format version written into every segment header. A reader refuses any other value.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the segment header; the first record starts right after it.
pub const SEGMENT_HEADER_LEN: usize = 64;

/// Bytes of the per-record header; the payload starts right after it (8-byte aligned).
pub const RECORD_HEADER_LEN: usize = 32;

/// Alignment of every record and therefore of every payload.
pub const RECORD_ALIGN: usize = 8;

/// Commit-word value meaning "this segment ends here, continue in the next one".
pub const END_OF_SEGMENT: u32 = u32::MAX;

/// Bytes kept free at the end of every segment so the end-of-segment marker always fits.
pub const TAIL_RESERVE: usize = 8;

/// Smallest accepted segment size.
pub const MIN_SEGMENT_SIZE: u64 = 8192;

// Segment header field offsets.
const H_VERSION: usize = 8;
const H_HEADER_LEN: usize = 12;
const H_SCHEMA: usize = 16;
const H_INDEX: usize = 24;
const H_SEGMENT_SIZE: usize = 32;
const H_FIRST_SEQ: usize = 40;
const H_CREATED: usize = 48;
const H_CRC: usize = 56;

// Record header field offsets.
pub(crate) const R_KIND: usize = 4;
pub(crate) const R_FLAGS: usize = 6;
pub(crate) const R_SEQ: usize = 8;
pub(crate) const R_TIMESTAMP: usize = 16;
pub(crate) const R_LEN: usize = 24;
pub(crate) const R_CRC: usize = 28;

/// The header at the start of every segment file.
///
/// A segment whose 64 header bytes are all zero is a pre-allocated segment the appender has not
/// started yet; readers treat it as not part of the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Hash of the event schema the writer was built with (supplied by the user).
    pub schema_hash: u64,
    /// Segment index; equals the number in the file name.
    pub index: u64,
    /// Size of the segment file in bytes (header included).
    pub segment_size: u64,
    /// Sequence number of the first record stored in this segment.
    pub first_seq: u64,
    /// Wall-clock creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
}

/// What the 64 header bytes of a segment file say.
pub(crate) enum HeaderState {
    /// All zero: pre-allocated, not yet started by the appender.
    Unused,
    /// A complete, checksummed header.
    Valid(SegmentHeader),
}

impl SegmentHeader {
    /// Serialises the header, checksum included.
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[H_VERSION..H_VERSION + 4].copy_from_slice(&self.version.to_le_bytes());
        b[H_HEADER_LEN..H_HEADER_LEN + 4]
            .copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[H_SCHEMA..H_SCHEMA + 8].copy_from_slice(&self.schema_hash.to_le_bytes());
        b[H_INDEX..H_INDEX + 8].copy_from_slice(&self.index.to_le_bytes());
        b[H_SEGMENT_SIZE..H_SEGMENT_SIZE + 8].copy_from_slice(&self.segment_size.to_le_bytes());
        b[H_FIRST_SEQ..H_FIRST_SEQ + 8].copy_from_slice(&self.first_seq.to_le_bytes());
        b[H_CREATED..H_CREATED + 8].copy_from_slice(&self.created_unix_ns.to_le_bytes());
        let crc = crc32c::crc32c(&b[..H_CRC]);
        b[H_CRC..H_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and validates header bytes read from `path` (segment number `index_hint` from the
    /// file name). Checks magic, version, header length and checksum; not the schema.
    pub(crate) fn decode(
        b: &[u8; SEGMENT_HEADER_LEN],
        path: &Path,
        index_hint: u64,
    ) -> Result<HeaderState, JournalError> {
        if b.iter().all(|&x| x == 0) {
            return Ok(HeaderState::Unused);
        }
        if b[..8] != MAGIC {
            return Err(JournalError::BadMagic {
                path: path.to_path_buf(),
            });
        }
        let version = le_u32(b, H_VERSION);
        if version != FORMAT_VERSION {
            return Err(JournalError::IncompatibleVersion {
                path: path.to_path_buf(),
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let stored = le_u32(b, H_CRC);
        let computed = crc32c::crc32c(&b[..H_CRC]);
        if stored != computed {
            return Err(JournalError::Corrupt {
                segment: index_hint,
                offset: 0,
                reason: format!(
                    "segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            });
        }
        let header_len = le_u32(b, H_HEADER_LEN);
        if header_len as usize != SEGMENT_HEADER_LEN {
            return Err(JournalError::Corrupt {
                segment: index_hint,
                offset: 0,
                reason: format!(
                    "segment header length {header_len}, expected {SEGMENT_HEADER_LEN}"
                ),
            });
        }
        let h = SegmentHeader {
            version,
            schema_hash: le_u64(b, H_SCHEMA),
            index: le_u64(b, H_INDEX),
            segment_size: le_u64(b, H_SEGMENT_SIZE),
            first_seq: le_u64(b, H_FIRST_SEQ),
            created_unix_ns: le_u64(b, H_CREATED),
        };
        if h.index != index_hint {
            return Err(JournalError::Corrupt {
                segment: index_hint,
                offset: 0,
                reason: format!(
                    "file name says segment {index_hint} but its header says {}",
                    h.index
                ),
            });
        }
        if h.segment_size < MIN_SEGMENT_SIZE || h.segment_size % 4096 != 0 {
            return Err(JournalError::Corrupt {
                segment: index_hint,
                offset: 0,
                reason: format!("implausible segment size {} in header", h.segment_size),
            });
        }
        Ok(HeaderState::Valid(h))
    }

    /// Refuses the header when `expected` is given and differs from the stored schema hash.
    pub(crate) fn check_schema(
        &self,
        path: &Path,
        expected: Option<u64>,
    ) -> Result<(), JournalError> {
        match expected {
            Some(e) if e != self.schema_hash => Err(JournalError::SchemaMismatch {
                path: path.to_path_buf(),
                found: self.schema_hash,
                expected: e,
            }),
            _ => Ok(()),
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Total bytes a record with `payload_len` payload bytes occupies (header + payload, padded to 8).
#[inline(always)]
pub const fn record_len(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len + (RECORD_ALIGN - 1)) & !(RECORD_ALIGN - 1)
}

/// CRC32C of one record: the 28 header bytes that precede the CRC field, with the commit word
/// taken as the record length it will hold, followed by the payload.
#[inline(always)]
pub fn record_crc(
    rec_len: u32,
    kind: u16,
    flags: u16,
    seq: u64,
    timestamp: u64,
    payload: &[u8],
) -> u32 {
    let mut h = [0u8; R_CRC];
    h[0..4].copy_from_slice(&rec_len.to_le_bytes());
    h[R_KIND..R_KIND + 2].copy_from_slice(&kind.to_le_bytes());
    h[R_FLAGS..R_FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
    h[R_SEQ..R_SEQ + 8].copy_from_slice(&seq.to_le_bytes());
    h[R_TIMESTAMP..R_TIMESTAMP + 8].copy_from_slice(&timestamp.to_le_bytes());
    h[R_LEN..R_LEN + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&h), payload)
}

/// A record slot that checked out: header fields and where the payload is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord {
    pub len: usize,
    pub kind: u16,
    pub flags: u16,
    pub seq: u64,
    pub timestamp: u64,
    pub payload_off: usize,
    pub payload_len: usize,
}

/// What a reader finds at a record offset.
pub(crate) enum Slot {
    /// Commit word 0: nothing written (yet) — the live end of the journal.
    Empty,
    /// The end-of-segment marker: continue in the next segment.
    EndOfSegment,
    /// A whole record whose length, checksum and sequence number verify.
    Record(RawRecord),
    /// Anything else. `claimed_len` is the commit word when it is at least a plausible length
    /// (used by `verify` to try a safe resync).
    Bad {
        reason: String,
        claimed_len: Option<usize>,
    },
}

/// Reads the slot at `off` of a mapped segment of `seg_len` bytes starting at `base`.
///
/// The commit word is loaded with **Acquire**: it pairs with the appender's Release store of the
/// same word, so once a non-zero length is observed, every header and payload byte the appender
/// wrote before that store is visible here (also across processes: both mappings are the same
/// physical page-cache pages, and the hardware orders accesses to physical memory).
///
/// # Safety
/// `base` must point to a live mapping of at least `seg_len` bytes, `off` must be 8-aligned with
/// `off + TAIL_RESERVE <= seg_len`, and bytes of a record whose commit word is non-zero must not
/// be modified while this runs (true for the appender protocol: a record is immutable once
/// committed).
pub(crate) unsafe fn read_slot(
    base: *const u8,
    seg_len: usize,
    off: usize,
    expected_seq: u64,
) -> Slot {
    debug_assert!(off % RECORD_ALIGN == 0 && off + TAIL_RESERVE <= seg_len);
    // SAFETY: in bounds and 4-aligned per the caller's contract; the word may be written
    // concurrently by the appender, so it is only ever accessed atomically.
    let commit = unsafe { AtomicU32::from_ptr(base.add(off) as *mut u32) }.load(Ordering::Acquire);
    if commit == 0 {
        return Slot::Empty;
    }
    if commit == END_OF_SEGMENT {
        return Slot::EndOfSegment;
    }
    let len = commit as usize;
    if len < RECORD_HEADER_LEN || len % RECORD_ALIGN != 0 {
        return Slot::Bad {
            reason: format!("invalid record length {len} in commit word"),
            claimed_len: None,
        };
    }
    if off + len > seg_len - TAIL_RESERVE {
        return Slot::Bad {
            reason: format!("record length {len} runs past the end of the segment"),
            claimed_len: None,
        };
    }
    // SAFETY: the header lies within [off, off + len), inside the mapping; committed, so stable.
    let hdr = unsafe { std::slice::from_raw_parts(base.add(off), RECORD_HEADER_LEN) };
    let kind = u16::from_le_bytes([hdr[R_KIND], hdr[R_KIND + 1]]);
    let flags = u16::from_le_bytes([hdr[R_FLAGS], hdr[R_FLAGS + 1]]);
    let seq = le_u64(hdr, R_SEQ);
    let timestamp = le_u64(hdr, R_TIMESTAMP);
    let payload_len = le_u32(hdr, R_LEN) as usize;
    let stored = le_u32(hdr, R_CRC);
    if record_len(payload_len) != len {
        return Slot::Bad {
            reason: format!("payload length {payload_len} does not match record length {len}"),
            claimed_len: Some(len),
        };
    }
    // SAFETY: payload_len + header == len (rounded), within the mapping; committed, so stable.
    let payload =
        unsafe { std::slice::from_raw_parts(base.add(off + RECORD_HEADER_LEN), payload_len) };
    let computed = record_crc(commit, kind, flags, seq, timestamp, payload);
    if computed != stored {
        return Slot::Bad {
            reason: format!(
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            claimed_len: Some(len),
        };
    }
    if kind == 0 {
        return Slot::Bad {
            reason: "record kind 0 is reserved".into(),
            claimed_len: Some(len),
        };
    }
    if seq != expected_seq {
        return Slot::Bad {
            reason: format!("record has sequence {seq} where {expected_seq} was expected"),
            claimed_len: Some(len),
        };
    }
    Slot::Record(RawRecord {
        len,
        kind,
        flags,
        seq,
        timestamp,
        payload_off: off + RECORD_HEADER_LEN,
        payload_len,
    })
}

/// Offset of the first non-zero byte in `[from, to)` of the mapping, if any.
///
/// # Safety
/// `[base + from, base + to)` must be mapped and readable, and nobody may write it concurrently
/// (the caller holds the journal lock or knows no appender is live).
pub(crate) unsafe fn first_nonzero(base: *const u8, from: usize, to: usize) -> Option<usize> {
    const CHUNK: usize = 4096;
    let mut at = from;
    while at < to {
        let end = (at + CHUNK).min(to);
        // SAFETY: within the range the caller vouches for.
        let s = unsafe { std::slice::from_raw_parts(base.add(at), end - at) };
        if let Some(i) = s.iter().position(|&b| b != 0) {
            return Some(at + i);
        }
        at = end;
    }
    None
}

/// Offset one past the last non-zero byte in `[from, to)`, if any byte is non-zero.
///
/// # Safety
/// As for [`first_nonzero`].
pub(crate) unsafe fn last_nonzero_end(base: *const u8, from: usize, to: usize) -> Option<usize> {
    const CHUNK: usize = 4096;
    let mut end = to;
    while end > from {
        let start = end.saturating_sub(CHUNK).max(from);
        // SAFETY: within the range the caller vouches for.
        let s = unsafe { std::slice::from_raw_parts(base.add(start), end - start) };
        if let Some(i) = s.iter().rposition(|&b| b != 0) {
            return Some(start + i + 1);
        }
        end = start;
    }
    None
}
