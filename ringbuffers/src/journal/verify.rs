//! Offline (or live) integrity check of a whole journal.

use super::appender::flock_within;
use super::format::{
    first_nonzero, read_slot, HeaderState, Slot, SEGMENT_HEADER_LEN, TAIL_RESERVE,
};
use super::segment::{read_header, segment_files, ReadSegment, LOCK_FILE};
use super::JournalError;
use std::collections::BTreeMap;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// One problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Segment index.
    pub segment: u64,
    /// Byte offset inside the segment (0 for header problems).
    pub offset: u64,
    /// What is wrong, in words.
    pub reason: String,
    /// Where checking resumed: `Some((segment, offset))` after a safe resync, `None` if the rest
    /// of the segment was not checked (checking resumed at the next segment, if any).
    pub resumed_at: Option<(u64, u64)>,
}

/// Everything [`verify`] learned about a journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments with a valid header.
    pub segments: u64,
    /// Records that verified.
    pub records: u64,
    /// Bytes those records occupy (headers and padding included).
    pub bytes: u64,
    /// Payload bytes of those records.
    pub payload_bytes: u64,
    /// Verified records per kind.
    pub counts: BTreeMap<u16, u64>,
    /// Sequence number of the first verified record.
    pub first_seq: Option<u64>,
    /// Sequence number of the last verified record.
    pub last_seq: Option<u64>,
    /// Timestamp of the first verified record.
    pub first_timestamp: Option<u64>,
    /// Timestamp of the last verified record.
    pub last_timestamp: Option<u64>,
    /// Problems, in file order.
    pub corruptions: Vec<Corruption>,
    /// An appender held the journal lock during the check (the tail was still being written, so
    /// bytes after the last record were not required to be zero).
    pub live: bool,
}

impl VerifyReport {
    /// No corruption was found.
    pub fn is_clean(&self) -> bool {
        self.corruptions.is_empty()
    }
}

/// True if an appender currently holds the journal's lock (a lock that looks held only while a
/// forked child has yet to exec is not: see [`flock_within`]).
fn is_live(dir: &Path) -> bool {
    let Ok(f) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    match flock_within(&f, libc::LOCK_SH) {
        Ok(true) => {
            // SAFETY: flock on an fd we own; releases the shared probe taken above.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            false
        }
        Ok(false) => true,
        Err(_) => false,
    }
}

/// Scans every record of every segment of the journal in `dir`: header checks (magic, version,
/// checksum, schema when `schema_hash` is given), record length, CRC32C, kind, sequence
/// continuity within and across segments, the end-of-segment markers, and (unless an appender
/// is live) that nothing but zeros follows the last record.
///
/// A corruption is recorded with its exact segment and offset. Checking continues past it only
/// where it can resynchronise safely: inside a segment when the damaged record's claimed length
/// leads to a record that verifies with the next sequence number, otherwise at the next segment
/// (whose header is independently checksummed). Schema and version mismatches are returned as
/// errors: the journal as a whole is not readable by this build.
pub fn verify(dir: &Path, schema_hash: Option<u64>) -> Result<VerifyReport, JournalError> {
    let files = segment_files(dir)?;
    if files.is_empty() {
        return Err(JournalError::NotAJournal {
            path: dir.to_path_buf(),
        });
    }
    let mut rep = VerifyReport {
        live: is_live(dir),
        ..VerifyReport::default()
    };
    // Sequence number the next segment must start at, when known.
    let mut expected: Option<u64> = None;
    let mut prev_index: Option<u64> = None;
    // Index (into `files`) of the last segment that is not a blank pre-allocated file.
    let last_started = files
        .iter()
        .rposition(|(j, p)| !matches!(read_header(p, *j), Ok((HeaderState::Unused, _))))
        .unwrap_or(0);
    for (i, (idx, path)) in files.iter().enumerate() {
        let idx = *idx;
        let later_exists = i < last_started;
        let seg = match ReadSegment::open(path, idx, schema_hash) {
            Ok(Some(s)) => s,
            Ok(None) => {
                // Pre-allocated but not started: fine at the end of the journal only.
                if later_exists {
                    rep.corruptions.push(Corruption {
                        segment: idx,
                        offset: 0,
                        reason: "segment header is blank but later segments exist".into(),
                        resumed_at: None,
                    });
                    expected = None;
                    prev_index = Some(idx);
                    continue;
                }
                break;
            }
            Err(
                e
                @ (JournalError::SchemaMismatch { .. } | JournalError::IncompatibleVersion { .. }),
            ) => return Err(e),
            Err(e) => {
                rep.corruptions.push(Corruption {
                    segment: idx,
                    offset: 0,
                    reason: e.to_string(),
                    resumed_at: None,
                });
                expected = None;
                prev_index = Some(idx);
                continue;
            }
        };
        rep.segments += 1;
        if let Some(p) = prev_index {
            if p + 1 != idx {
                rep.corruptions.push(Corruption {
                    segment: idx,
                    offset: 0,
                    reason: format!("segment {} is missing", p + 1),
                    resumed_at: Some((idx, SEGMENT_HEADER_LEN as u64)),
                });
                expected = None;
            }
        }
        prev_index = Some(idx);
        if let Some(exp) = expected {
            if seg.header.first_seq != exp {
                rep.corruptions.push(Corruption {
                    segment: idx,
                    offset: 0,
                    reason: format!(
                        "segment starts at seq {} but the previous segment ended at seq {exp}",
                        seg.header.first_seq
                    ),
                    resumed_at: Some((idx, SEGMENT_HEADER_LEN as u64)),
                });
            }
        }
        expected = scan_segment(&seg, idx, later_exists, &mut rep);
    }
    Ok(rep)
}

/// Checks one segment's records; returns the sequence number the next segment must start at,
/// or `None` when that is unknown because the scan stopped at a corruption.
fn scan_segment(
    seg: &ReadSegment,
    idx: u64,
    later_exists: bool,
    rep: &mut VerifyReport,
) -> Option<u64> {
    let base = seg.base();
    let len = seg.len();
    let mut off = SEGMENT_HEADER_LEN;
    let mut seq = seg.header.first_seq;
    loop {
        // SAFETY: `off` is 8-aligned and `off + TAIL_RESERVE <= len` (record ends never pass
        // `len - TAIL_RESERVE`); committed records are immutable.
        match unsafe { read_slot(base, len, off, seq) } {
            Slot::Record(r) => {
                rep.records += 1;
                rep.bytes += r.len as u64;
                rep.payload_bytes += r.payload_len as u64;
                *rep.counts.entry(r.kind).or_insert(0) += 1;
                rep.first_seq.get_or_insert(r.seq);
                rep.first_timestamp.get_or_insert(r.timestamp);
                rep.last_seq = Some(r.seq);
                rep.last_timestamp = Some(r.timestamp);
                off += r.len;
                seq += 1;
            }
            Slot::EndOfSegment => return Some(seq),
            Slot::Empty => {
                if later_exists {
                    rep.corruptions.push(Corruption {
                        segment: idx,
                        offset: off as u64,
                        reason:
                            "records end without an end-of-segment marker but later segments exist"
                                .into(),
                        resumed_at: None,
                    });
                } else if !rep.live {
                    // SAFETY: [off, len) is mapped; no appender is live (lock probe above), so
                    // nothing writes it.
                    if let Some(nz) = unsafe { first_nonzero(base, off, len) } {
                        rep.corruptions.push(Corruption {
                            segment: idx,
                            offset: off as u64,
                            reason: format!(
                                "non-zero bytes (first at offset {nz}) after the last committed record: torn or corrupt tail"
                            ),
                            resumed_at: None,
                        });
                    }
                }
                return Some(seq);
            }
            Slot::Bad {
                reason,
                claimed_len,
            } => {
                // Safe resync inside the segment: the damaged record's claimed length must lead
                // to a record that verifies completely *and* carries the next sequence number.
                let resync = claimed_len.and_then(|cl| {
                    let next = off + cl;
                    if next + TAIL_RESERVE > len {
                        return None;
                    }
                    // SAFETY: as above, bounds checked just now.
                    match unsafe { read_slot(base, len, next, seq + 1) } {
                        Slot::Record(_) => Some(next),
                        _ => None,
                    }
                });
                rep.corruptions.push(Corruption {
                    segment: idx,
                    offset: off as u64,
                    reason,
                    resumed_at: resync.map(|n| (idx, n as u64)),
                });
                match resync {
                    Some(n) => {
                        off = n;
                        seq += 1;
                    }
                    None => return None,
                }
            }
        }
    }
}
