//! Journal inspection: what `algo-engine journal inspect` and `journal tail` print.
//!
//! `inspect` walks every segment with the journal's own verifier, so the CRC check a user runs
//! here is the same one recovery runs; it adds names for the record kinds and decoded one-line
//! summaries of the events, which only this layer (above both `ringbuffers` and `hotpath`) can
//! give.

use hotpath::codec::{self, RecordKind};
use ringbuffers::journal::{self, JournalError, RecordRef};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One segment file as seen by `inspect`.
#[derive(Debug, Serialize)]
pub struct SegmentSummary {
    /// File name.
    pub file: String,
    /// Segment index from its header.
    pub index: u64,
    /// First sequence number stored in it.
    pub first_seq: u64,
    /// Configured segment size in bytes.
    pub segment_size: u64,
    /// Format version.
    pub version: u32,
    /// Schema hash of the event types that wrote it.
    pub schema_hash: String,
}

/// A corruption found by the CRC check.
#[derive(Debug, Serialize)]
pub struct Corruption {
    /// Segment index.
    pub segment: u64,
    /// Byte offset of the bad record inside the segment file.
    pub offset: u64,
    /// What failed.
    pub reason: String,
}

/// Everything `journal inspect` reports.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Journal directory.
    pub dir: String,
    /// Schema hash this build writes and expects.
    pub build_schema_hash: String,
    /// True when every segment was written by a build with this build's schema.
    pub schema_matches: bool,
    /// Segment files in order.
    pub segments: Vec<SegmentSummary>,
    /// Records whose CRC verified.
    pub records: u64,
    /// Record counts by kind name.
    pub counts: BTreeMap<String, u64>,
    /// First and last sequence numbers.
    pub seq_range: Option<(u64, u64)>,
    /// First and last record timestamps (ns since the Unix epoch).
    pub time_range: Option<(u64, u64)>,
    /// Payload and header bytes of verified records.
    pub bytes: u64,
    /// CRC or framing failures; empty when the journal is whole.
    pub corruptions: Vec<Corruption>,
}

/// Reads and verifies a whole journal directory without changing it.
pub fn inspect(dir: &Path) -> Result<Inspection, JournalError> {
    let segs = journal::list_segments(dir)?;
    let report = journal::verify(dir, None)?;
    let schema_matches = segs
        .iter()
        .all(|s| s.header.schema_hash == codec::SCHEMA_HASH);
    let counts = report.counts.iter().map(|(k, n)| (kind_name(*k), *n)).fold(
        BTreeMap::new(),
        |mut m, (k, n)| {
            *m.entry(k).or_insert(0) += n;
            m
        },
    );
    Ok(Inspection {
        dir: dir.display().to_string(),
        build_schema_hash: format!("{:#018x}", codec::SCHEMA_HASH),
        schema_matches,
        segments: segs
            .iter()
            .map(|s| SegmentSummary {
                file: s
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                index: s.header.index,
                first_seq: s.header.first_seq,
                segment_size: s.header.segment_size,
                version: s.header.version,
                schema_hash: format!("{:#018x}", s.header.schema_hash),
            })
            .collect(),
        records: report.records,
        counts,
        seq_range: report.first_seq.zip(report.last_seq),
        time_range: report.first_timestamp.zip(report.last_timestamp),
        bytes: report.bytes,
        corruptions: report
            .corruptions
            .iter()
            .map(|c| Corruption {
                segment: c.segment,
                offset: c.offset,
                reason: c.reason.clone(),
            })
            .collect(),
    })
}

/// Name of a record kind, or `kind#N` for one this build does not know.
pub fn kind_name(kind: u16) -> String {
    RecordKind::from_u16(kind).map_or_else(|| format!("kind#{kind}"), |k| k.name().to_string())
}

/// One line describing a record, for `journal tail`.
pub fn render(rec: &RecordRef<'_>) -> String {
    format!(
        "{:>10} {:<14} ts={} len={:<5} {}",
        rec.seq,
        kind_name(rec.kind),
        format_unix_ns(rec.timestamp),
        rec.payload.len(),
        codec::summarize(rec.kind, rec.payload)
    )
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for a Unix-epoch nanosecond timestamp.
pub fn format_unix_ns(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_unix_ns(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-08-08T23:54:00.123456789Z, the start of the recorded Binance captures.
        assert_eq!(
            format_unix_ns(1_723_161_240_123_456_789),
            "2024-08-08T23:54:00.123456789Z"
        );
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
