//! Loading a recorded capture so the feed stage can replay it from memory.
//!
//! The capture is read and decompressed here, before any hot thread starts, so the feed replays
//! it exactly as it would read a socket: `algo-engine run` and the feed benchmark load captures
//! through this one function.

use crate::capture::{CaptureSource, HftbacktestReader, ItemKind};
use crate::import::{builtin_spec, venue_from_path, ImportError};
use hotpath::feed::BinanceFeedDecoder;
use hotpath::instrument::{InstrumentId, InstrumentTable, Venue};
use hotpath::venue::binance::Scanner;
use std::path::Path;

/// A capture loaded for replay.
pub struct ReplayInput {
    /// The venue it was recorded from (from the path, as `import` decides).
    pub venue: Venue,
    /// The symbol, from the file name (`btcusdt_20240808.gz` -> `BTCUSDT`).
    pub symbol: String,
    /// Its instrument.
    pub instrument: InstrumentId,
    /// The instrument table (one entry).
    pub table: InstrumentTable,
    /// `(receive ns, raw frame)` in capture order. Lines without the format's framing are kept
    /// as frames too: the feed counts and journals them like any malformed input.
    pub frames: Vec<(u64, Vec<u8>)>,
}

impl ReplayInput {
    /// The feed's Binance decoder for this capture. The instrument table is moved to the heap
    /// and leaked: instruments are interned once at start-up and read by the hot thread until
    /// the process exits. Depth snapshots in the capture belong to its single instrument.
    pub fn decoder(&self) -> BinanceFeedDecoder {
        let table: &'static InstrumentTable = Box::leak(Box::new(self.table.clone()));
        BinanceFeedDecoder::new(Scanner::new(table, self.venue), Some(self.instrument))
    }
}

/// Loads an hftbacktest capture (`<recv ns> <json>` lines, gzip or plain), at most `limit`
/// frames when given.
pub fn load_hftbacktest(path: &Path, limit: Option<usize>) -> Result<ReplayInput, ImportError> {
    let venue = venue_from_path(path).unwrap_or(Venue::BinanceSpot);
    let stem = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let symbol = stem
        .split(['_', '.'])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let spec = builtin_spec(venue, &symbol).ok_or_else(|| {
        ImportError::Instrument(format!(
            "no built-in instrument for {symbol} on {}; `algo-engine import` the capture with its exchangeInfo instead",
            venue.name()
        ))
    })?;
    let mut table = InstrumentTable::with_capacity(16);
    let instrument = table
        .intern(spec)
        .map_err(|e| ImportError::Instrument(format!("{symbol}: {e}")))?;
    let mut reader = HftbacktestReader::open(path)?;
    let mut frames = Vec::new();
    while let Some(item) = reader.next_item()? {
        match item.kind {
            ItemKind::Frame(bytes) => frames.push((item.recv_ns, bytes.to_vec())),
            ItemKind::Malformed { raw, .. } => frames.push((item.recv_ns, raw.to_vec())),
            _ => {}
        }
        if limit.is_some_and(|l| frames.len() >= l) {
            break;
        }
    }
    Ok(ReplayInput {
        venue,
        symbol,
        instrument,
        table,
        frames,
    })
}
