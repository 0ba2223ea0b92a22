//! Readers: [`Tailer`] (follows a live journal record by record) and [`list_segments`].

use super::format::{read_slot, HeaderState, SegmentHeader, Slot, SEGMENT_HEADER_LEN};
use super::segment::{read_header, segment_files, segment_path, ReadSegment};
use super::JournalError;
use std::path::{Path, PathBuf};

/// One record, borrowed from the tailer's read-only mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Global sequence number (contiguous across segments).
    pub seq: u64,
    /// Caller-defined record kind (never 0).
    pub kind: u16,
    /// Caller-defined flags.
    pub flags: u16,
    /// Caller-supplied timestamp.
    pub timestamp: u64,
    /// The payload; starts 8-byte aligned in the mapping (suitable for zero-copy rkyv access).
    pub payload: &'a [u8],
    /// Segment the record is stored in.
    pub segment: u64,
    /// Byte offset of the record (its header) inside the segment.
    pub offset: u64,
}

/// A file of the journal, as reported by [`list_segments`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Path of the segment file.
    pub path: PathBuf,
    /// Its validated header.
    pub header: SegmentHeader,
    /// File length in bytes.
    pub len: u64,
}

/// Lists the segments of the journal in `dir` in index order, with validated headers (magic,
/// version, checksum, length; the schema is not checked). Pre-allocated segments that the
/// appender has not started yet are left out.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>, JournalError> {
    let mut out = Vec::new();
    for (idx, path) in segment_files(dir)? {
        if let (HeaderState::Valid(header), len) = read_header(&path, idx)? {
            out.push(SegmentInfo { path, header, len });
        }
    }
    Ok(out)
}

/// Follows a journal record by record, in this or another process than the appender.
///
/// Each tailer has its own read-only shared mapping of the segment it is in. [`Tailer::next`]
/// Acquire-loads the commit word of the next slot; a non-zero length means the appender's Release
/// store published the whole record, which is then checked (length, CRC32C, sequence number)
/// before it is returned. `Ok(None)` means "nothing new yet": poll again to follow a live journal.
/// A record that fails a check is reported as `Corrupt { segment, offset, reason }` (on every
/// call, without skipping it): corrupt data is never returned as a record.
///
/// A tailer never blocks the appender and never writes to the journal.
pub struct Tailer {
    dir: PathBuf,
    schema: Option<u64>,
    seg: ReadSegment,
    off: usize,
    expected_seq: u64,
    skip_until: u64,
}

impl Tailer {
    /// Opens a tailer at the first record of the oldest segment in `dir`. With
    /// `Some(schema_hash)`, every segment's schema must match; `None` accepts any (inspection
    /// tools). Fails with `NotAJournal` if the directory holds no started segment yet.
    pub fn open(dir: &Path, schema_hash: Option<u64>) -> Result<Tailer, JournalError> {
        for (idx, path) in segment_files(dir)? {
            if let Some(seg) = ReadSegment::open(&path, idx, schema_hash)? {
                let first = seg.header.first_seq;
                return Ok(Tailer::at(dir, schema_hash, seg, first));
            }
        }
        Err(JournalError::NotAJournal {
            path: dir.to_path_buf(),
        })
    }

    /// Opens a tailer whose first returned record is `from_seq` (records before it are read,
    /// verified and skipped). If `from_seq` is beyond the end, the tailer waits for it. Fails with
    /// `SeqUnavailable` if the journal's oldest segment starts after `from_seq`.
    pub fn open_at(
        dir: &Path,
        schema_hash: Option<u64>,
        from_seq: u64,
    ) -> Result<Tailer, JournalError> {
        let mut chosen: Option<(u64, PathBuf)> = None;
        let mut first: Option<u64> = None;
        for (idx, path) in segment_files(dir)? {
            match read_header(&path, idx)?.0 {
                HeaderState::Unused => break,
                HeaderState::Valid(h) => {
                    h.check_schema(&path, schema_hash)?;
                    first.get_or_insert(h.first_seq);
                    if h.first_seq > from_seq {
                        break;
                    }
                    chosen = Some((idx, path));
                }
            }
        }
        let Some(first) = first else {
            return Err(JournalError::NotAJournal {
                path: dir.to_path_buf(),
            });
        };
        let Some((idx, path)) = chosen else {
            return Err(JournalError::SeqUnavailable {
                path: dir.to_path_buf(),
                seq: from_seq,
                first,
            });
        };
        let seg = ReadSegment::open(&path, idx, schema_hash)?.ok_or_else(|| {
            JournalError::NotAJournal {
                path: dir.to_path_buf(),
            }
        })?;
        Ok(Tailer::at(dir, schema_hash, seg, from_seq))
    }

    fn at(dir: &Path, schema: Option<u64>, seg: ReadSegment, skip_until: u64) -> Tailer {
        let expected_seq = seg.header.first_seq;
        Tailer {
            dir: dir.to_path_buf(),
            schema,
            seg,
            off: SEGMENT_HEADER_LEN,
            expected_seq,
            skip_until,
        }
    }

    /// The next record, `Ok(None)` if the appender has not committed one yet, or an error
    /// (`Corrupt` for a record that fails its checks; the tailer stays at that position).
    // Not `Iterator::next`: the returned record borrows the tailer (a lending iterator), and
    // `Ok(None)` means "not yet", not "finished".
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Result<Option<RecordRef<'_>>, JournalError> {
        loop {
            // SAFETY: the mapping is `len` bytes; `off` is 8-aligned and never passes
            // `len - TAIL_RESERVE` (records end at most there, and a marker fits after them).
            // Committed records are immutable, and read_slot only reads a record's bytes after
            // its Acquire load saw the commit.
            let slot =
                unsafe { read_slot(self.seg.base(), self.seg.len(), self.off, self.expected_seq) };
            match slot {
                Slot::Empty => return Ok(None),
                Slot::EndOfSegment => self.advance_segment()?,
                Slot::Bad { reason, .. } => {
                    return Err(JournalError::Corrupt {
                        segment: self.seg.header.index,
                        offset: self.off as u64,
                        reason,
                    })
                }
                Slot::Record(r) => {
                    let offset = self.off as u64;
                    self.off += r.len;
                    self.expected_seq = r.seq + 1;
                    if r.seq < self.skip_until {
                        continue;
                    }
                    // SAFETY: read_slot checked the payload lies inside the mapping; the record
                    // is committed and therefore never written again. The borrow of `self` keeps
                    // the mapping alive for the slice's lifetime.
                    let payload = unsafe {
                        std::slice::from_raw_parts(
                            self.seg.base().add(r.payload_off),
                            r.payload_len,
                        )
                    };
                    return Ok(Some(RecordRef {
                        seq: r.seq,
                        kind: r.kind,
                        flags: r.flags,
                        timestamp: r.timestamp,
                        payload,
                        segment: self.seg.header.index,
                        offset,
                    }));
                }
            }
        }
    }

    /// Moves to the next segment after an end-of-segment marker. The appender wrote that
    /// segment's header before the marker's Release store, and we observed the marker with an
    /// Acquire load, so the header is complete.
    fn advance_segment(&mut self) -> Result<(), JournalError> {
        let cur = self.seg.header.index;
        let next = cur + 1;
        let path = segment_path(&self.dir, next);
        let corrupt = |reason: String| JournalError::Corrupt {
            segment: cur,
            offset: 0,
            reason,
        };
        let seg = match ReadSegment::open(&path, next, self.schema) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(corrupt(format!(
                    "end-of-segment marker at offset {} but segment {next} has a blank header",
                    self.off
                )))
            }
            Err(JournalError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(corrupt(format!(
                    "end-of-segment marker at offset {} but {} is missing",
                    self.off,
                    path.display()
                )))
            }
            Err(e) => return Err(e),
        };
        if seg.header.first_seq != self.expected_seq {
            return Err(JournalError::Corrupt {
                segment: next,
                offset: 0,
                reason: format!(
                    "segment starts at seq {} but segment {cur} ended at seq {}",
                    seg.header.first_seq, self.expected_seq
                ),
            });
        }
        self.seg = seg;
        self.off = SEGMENT_HEADER_LEN;
        Ok(())
    }

    /// Header of the segment the tailer is currently reading.
    pub fn header(&self) -> &SegmentHeader {
        &self.seg.header
    }

    /// Sequence number of the next record this tailer will return (a cursor to persist and pass
    /// to [`Tailer::open_at`] later).
    pub fn next_seq(&self) -> u64 {
        self.expected_seq.max(self.skip_until)
    }

    /// Current position: (segment, byte offset of the next slot).
    pub fn position(&self) -> (u64, u64) {
        (self.seg.header.index, self.off as u64)
    }
}
