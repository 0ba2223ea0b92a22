//! Loading a recorded capture as the market data of `algo-engine run`.
//!
//! The capture is read and decompressed here, before any hot thread starts, so that the feed
//! stage replays it from memory exactly as it would read a socket.

use anyhow::{bail, Context, Result};
use coldpath::capture::{CaptureSource, HftbacktestReader, ItemKind};
use hotpath::feed::BinanceFeedDecoder;
use hotpath::instrument::{InstrumentTable, Venue};
use hotpath::venue::binance::Scanner;
use std::path::Path;

/// A capture loaded for replay.
pub struct ReplayInput {
    /// The venue the capture was recorded from.
    pub venue: Venue,
    /// Its instrument(s).
    pub table: InstrumentTable,
    /// `(receive ns, raw frame)` in capture order.
    pub frames: Vec<(u64, Vec<u8>)>,
}

/// Frames of an hftbacktest capture with their receive times, and the instrument table for its
/// symbol (venue from the path, symbol from the file name, as `import` does).
pub fn load_hftbacktest(path: &Path) -> Result<ReplayInput> {
    let venue = coldpath::import::venue_from_path(path).unwrap_or(Venue::BinanceSpot);
    let stem = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let symbol = stem.split(['_', '.']).next().unwrap_or_default().to_ascii_uppercase();
    let Some(spec) = coldpath::import::builtin_spec(venue, &symbol) else {
        bail!(
            "no built-in instrument for {symbol} on {}; `algo-engine import` the capture with its exchangeInfo instead",
            venue.name()
        );
    };
    let mut table = InstrumentTable::with_capacity(16);
    table.intern(spec).context("interning the capture's instrument")?;

    let mut reader =
        HftbacktestReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut frames = Vec::new();
    while let Some(item) = reader.next_item().with_context(|| format!("reading {}", path.display()))? {
        match item.kind {
            ItemKind::Frame(bytes) => frames.push((item.recv_ns, bytes.to_vec())),
            // A line without framing still reaches the feed, which counts and journals it.
            ItemKind::Malformed { raw, .. } => frames.push((item.recv_ns, raw.to_vec())),
            _ => {}
        }
    }
    Ok(ReplayInput { venue, table, frames })
}

/// The feed's Binance decoder over `table`, which lives for the rest of the process
/// (instruments are interned once at start-up and read by the hot thread until exit). Depth
/// snapshots in the capture belong to its single instrument.
pub fn decoder(table: InstrumentTable, venue: Venue) -> BinanceFeedDecoder {
    let single = (table.len() == 1).then(|| table.iter().next().map(|(id, _)| id)).flatten();
    let table: &'static InstrumentTable = Box::leak(Box::new(table));
    BinanceFeedDecoder::new(Scanner::new(table, venue), single)
}
