//! Capture → journal: what `algo-engine import` does.
//!
//! A recorded capture becomes a journal exactly like the one the live feed stage writes, so
//! everything downstream (replay, statistics, the strategy's back-tests) reads one format:
//!
//! 1. every inbound message is appended first as a `RawFrame` record (the bytes as recorded,
//!    record timestamp = local receive time in ns since the epoch, flags = [`RAW_WS`],
//!    [`RAW_REST`] or [`RAW_CSV`]);
//! 2. then the `Market` events the real venue decoder makes of it (`hotpath::venue::binance`;
//!    the FX CSV is three fields and is parsed here), each with the same timestamp;
//! 3. every depth level also goes through a per-instrument [`BookSync`]; each synchronisation
//!    failure it reports is appended as a `Gap` record ([`GapInfo::write_payload`]);
//! 4. a message the decoder rejects, or a capture line without the format's framing, is a
//!    `FeedError` record (payload: a one-line header `feed_error line=<n> source=<..>
//!    reason=<..>`, a newline, then the raw bytes). It is counted and the import goes on: bad
//!    input is data about the feed, not a reason to stop. An I/O error that ends the capture
//!    early (a truncated gzip stream) is journaled the same way and ends the import normally,
//!    with [`ImportReport::truncated`] set.
//!
//! The journal format has no record kind for instrument definitions, so the instrument table
//! of the import is written next to the segments as [`INSTRUMENTS_FILE`] (JSON, one
//! [`InstrumentInfo`] per id); `journal stats` reads it for names.
//!
//! # Instruments
//!
//! * Where the capture has Binance `exchangeInfo` (a REST response in a cryptofeed `.http`
//!   log), its `PRICE_FILTER`/`LOT_SIZE` filters define the instruments.
//! * Otherwise the built-in table [`builtin_spec`] covers the symbols of the hftbacktest
//!   captures, with the filters Binance published for them (checked against the data: every
//!   price and quantity in those captures parses exactly at these scales, which the import test
//!   asserts by requiring zero feed errors):
//!
//!   | venue | symbol | tick | step | price/qty scale | seen in the data |
//!   |---|---|---|---|---|---|
//!   | spot | BTCUSDT | 0.01 | 0.00001 | 2 / 5 | `"61837.63000000"`, `"0.02000000"`: 8 decimals, trailing zeros beyond the tick/step |
//!   | spot | ETHUSDT | 0.01 | 0.0001 | 2 / 4 | as above |
//!   | USD-M | BTCUSDT | 0.10 | 0.001 | 1 / 3 | `"61800.20"`, `"0.006"` (prices printed with 2 decimals, the second always 0) |
//!   | USD-M | ETHUSDT | 0.01 | 0.001 | 2 / 3 | `"2614.57"`, `"0.011"` |
//!
//! * For any other symbol (the cryptofeed sessions carry no `exchangeInfo`), the scales are
//!   **derived from the data**: a first pass decodes the capture with a provisional spec at
//!   scale 8/8 (Binance never sends more than 8 decimals), records for each symbol the most
//!   significant decimals any price and any quantity actually used, and the real pass interns a
//!   spec with exactly those scales (tick and step one unit at that scale: the true tick is not
//!   knowable from data, only an upper bound on its precision). Such instruments are marked
//!   `"source": "derived"` in [`INSTRUMENTS_FILE`].
//! * FX quotes become `MarketKind::Quote` events of a forex instrument (`EURUSD` on
//!   `Venue::Fxcm`), price scale 5 (FXCM quotes EUR/USD in 1/10 pip), quantity scale 0 (the
//!   Lean files carry no sizes, so sizes are 0).

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use hotpath::book::{BookConfig, BookSync, GapInfo, SyncMode, SyncStats, MAX_GAP_PAYLOAD};
use hotpath::codec::{self, AppendError, RecordKind};
use hotpath::event::{MarketEvent, MarketKind, Stamps};
use hotpath::fixed::{Decimal, Price, Qty};
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use ringbuffers::journal::{Appender, JournalConfig, JournalError};
use serde::{Deserialize, Serialize};

use crate::capture::{self, CaptureError, CaptureFormat, CaptureSource, ItemKind};

/// `RawFrame` flags: a WebSocket message (in hftbacktest captures also the inline REST depth
/// snapshot, which the recorder wrote into the same stream).
pub const RAW_WS: u16 = 0;
/// `RawFrame` flags: a REST response body.
pub const RAW_REST: u16 = 1;
/// `RawFrame` flags: a CSV line (Lean FX quotes).
pub const RAW_CSV: u16 = 2;

/// Name of the instrument table written next to the journal segments.
pub const INSTRUMENTS_FILE: &str = "instruments.json";

/// Instruments a journal can hold.
pub const MAX_INSTRUMENTS: usize = 4096;

/// One instrument of an imported journal, as stored in [`INSTRUMENTS_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentInfo {
    /// Instrument id used in the journal's events.
    pub id: u32,
    /// Venue name (`binance_spot`, ...).
    pub venue: String,
    /// Venue symbol.
    pub symbol: String,
    /// Contract kind (`spot`, `perp`, `inverse_perp`, `future`, `inverse_future`, `forex`).
    pub kind: String,
    /// Price scale.
    pub price_scale: u8,
    /// Quantity scale.
    pub qty_scale: u8,
    /// Tick size, exact decimal.
    pub tick: String,
    /// Step size, exact decimal.
    pub step: String,
    /// Where the definition came from: `exchange_info`, `builtin` or `derived`.
    pub source: String,
}

/// Name of an [`InstrumentKind`].
pub fn kind_name(k: InstrumentKind) -> &'static str {
    match k {
        InstrumentKind::Spot => "spot",
        InstrumentKind::Perp => "perp",
        InstrumentKind::InversePerp => "inverse_perp",
        InstrumentKind::Future => "future",
        InstrumentKind::InverseFuture => "inverse_future",
        InstrumentKind::Forex => "forex",
    }
}

/// Read [`INSTRUMENTS_FILE`] from a journal directory (empty if there is none).
pub fn read_instruments(dir: &Path) -> io::Result<Vec<InstrumentInfo>> {
    match std::fs::read(dir.join(INSTRUMENTS_FILE)) {
        Ok(b) => serde_json::from_slice(&b).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The built-in spec of a symbol of the hftbacktest captures (see the module documentation),
/// `None` for any other.
pub fn builtin_spec(venue: Venue, symbol: &str) -> Option<InstrumentSpec> {
    let (kind, tick, step, min_notional): (_, &[u8], &[u8], &[u8]) =
        match (venue, symbol.to_ascii_uppercase().as_str()) {
            (Venue::BinanceSpot, "BTCUSDT") => (InstrumentKind::Spot, b"0.01", b"0.00001", b"5"),
            (Venue::BinanceSpot, "ETHUSDT") => (InstrumentKind::Spot, b"0.01", b"0.0001", b"5"),
            (Venue::BinanceUsdM, "BTCUSDT") => (InstrumentKind::Perp, b"0.10", b"0.001", b"100"),
            (Venue::BinanceUsdM, "ETHUSDT") => (InstrumentKind::Perp, b"0.01", b"0.001", b"20"),
            _ => return None,
        };
    InstrumentSpec::from_filters(venue, symbol.as_bytes(), kind, tick, step, step, min_notional)
        .ok()
}

/// The forex instrument of a Lean FX capture: price scale 5, quantity scale 0.
pub fn forex_spec(pair: &str) -> Result<InstrumentSpec, ImportError> {
    let sym = Symbol::new(pair.as_bytes()).map_err(|e| ImportError::Instrument(e.to_string()))?;
    let mut s = InstrumentSpec::new(Venue::Fxcm, sym, InstrumentKind::Forex, 5, 0);
    s.tick = Price(1);
    s.step = Qty(1);
    Ok(s)
}

/// What to import and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Capture format.
    pub format: CaptureFormat,
    /// Venue of the capture; `None`: from the path (`spot`/`usdm`/`coinm` directory) for
    /// hftbacktest, from the session URL for cryptofeed, FXCM for Lean FX.
    pub venue: Option<Venue>,
    /// How books are synchronised ([`SyncMode::Snapshot`] unless the capture has no REST
    /// snapshots).
    pub sync_mode: SyncMode,
    /// Journal segment size in bytes (a multiple of 4096).
    pub segment_size: u64,
}

impl ImportOptions {
    /// Defaults for `format`: venue from the capture, snapshot sync, 64 MiB segments.
    pub fn new(format: CaptureFormat) -> Self {
        ImportOptions {
            format,
            venue: None,
            sync_mode: SyncMode::Snapshot,
            segment_size: codec::journal_config().segment_size,
        }
    }
}

/// Errors that stop an import (bad input lines do not: they become `FeedError` records).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The capture could not be opened.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The journal could not be written.
    #[error("writing the journal: {0}")]
    Journal(#[from] JournalError),
    /// An event could not be appended.
    #[error("appending to the journal: {0}")]
    Append(#[from] AppendError),
    /// The output directory is not empty or could not be created.
    #[error("{0}")]
    Output(String),
    /// An instrument could not be defined.
    #[error("instrument: {0}")]
    Instrument(String),
    /// The venue could not be determined.
    #[error("cannot tell the venue of {0}; pass --venue")]
    UnknownVenue(PathBuf),
}

/// Book synchronisation summary of one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookReport {
    /// Venue symbol.
    pub symbol: String,
    /// Final state.
    pub state: String,
    /// Counters.
    pub updates_applied: u64,
    /// Diff updates dropped as stale.
    pub stale_dropped: u64,
    /// Snapshots loaded.
    pub snapshots: u64,
    /// Times the book became proven.
    pub syncs: u64,
    /// Sequence gaps.
    pub gaps: u64,
    /// Resync requests after a failure.
    pub resyncs: u64,
    /// Crossed books detected.
    pub crossed: u64,
    /// Levels not stored because a side was full.
    pub capacity_drops: u64,
}

impl BookReport {
    fn new(symbol: &str, sync: &BookSync) -> Self {
        let s: SyncStats = sync.stats();
        BookReport {
            symbol: symbol.to_string(),
            state: sync.state().name().to_string(),
            updates_applied: s.updates_applied,
            stale_dropped: s.stale_dropped,
            snapshots: s.snapshots,
            syncs: s.syncs,
            gaps: s.gaps,
            resyncs: s.resyncs,
            crossed: s.crossed,
            capacity_drops: s.capacity_drops,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Capture file.
    pub capture: String,
    /// Format name.
    pub format: String,
    /// Journal directory.
    pub out: String,
    /// `RawFrame` records.
    pub raw_frames: u64,
    /// `Market` records.
    pub market_events: u64,
    /// `FeedError` records.
    pub feed_errors: u64,
    /// `Gap` records.
    pub gap_records: u64,
    /// Capture lines without the format's framing (included in `feed_errors`).
    pub malformed_lines: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// WebSocket sessions in the capture.
    pub sessions: u64,
    /// Set when an I/O error ended the capture early (the import is still complete up to it).
    pub truncated: Option<String>,
    /// First receive time, ns.
    pub first_recv_ns: Option<u64>,
    /// Last receive time, ns.
    pub last_recv_ns: Option<u64>,
    /// Books per instrument.
    pub books: Vec<BookReport>,
    /// The instrument table written to [`INSTRUMENTS_FILE`].
    pub instruments: Vec<InstrumentInfo>,
}

/// Venue of a hftbacktest capture from its path (`.../spot/...`, `.../usdm/...`,
/// `.../coinm/...`).
pub fn venue_from_path(path: &Path) -> Option<Venue> {
    path.components().rev().find_map(|c| {
        match c.as_os_str().to_str()?.to_ascii_lowercase().as_str() {
            "spot" => Some(Venue::BinanceSpot),
            "usdm" => Some(Venue::BinanceUsdM),
            "coinm" => Some(Venue::BinanceCoinM),
            _ => None,
        }
    })
}

/// Venue of a Binance URL (`stream.binance.com`/`api.binance.com` spot, `fstream`/`fapi`
/// USD-M, `dstream`/`dapi` COIN-M).
pub fn venue_from_url(url: &str) -> Option<Venue> {
    let host = url.split("://").nth(1)?.split(['/', ':', '?']).next()?;
    if host.starts_with("fstream") || host.starts_with("fapi") {
        Some(Venue::BinanceUsdM)
    } else if host.starts_with("dstream") || host.starts_with("dapi") {
        Some(Venue::BinanceCoinM)
    } else if host.contains("binance") {
        Some(Venue::BinanceSpot)
    } else {
        None
    }
}

/// The journal being written, with the counters of the report.
struct Sink {
    app: Appender,
    report: ImportReport,
    gap_buf: [u8; MAX_GAP_PAYLOAD],
    err_buf: Vec<u8>,
}

impl Sink {
    fn seen(&mut self, ns: u64) {
        let r = &mut self.report;
        r.first_recv_ns = Some(r.first_recv_ns.map_or(ns, |m| m.min(ns)));
        r.last_recv_ns = Some(r.last_recv_ns.map_or(ns, |m| m.max(ns)));
    }

    fn raw(&mut self, flags: u16, ns: u64, bytes: &[u8]) -> Result<(), ImportError> {
        self.seen(ns);
        codec::append_bytes(&mut self.app, RecordKind::RawFrame, flags, ns, bytes)?;
        self.report.raw_frames += 1;
        Ok(())
    }

    fn market(&mut self, e: &MarketEvent, ns: u64) -> Result<(), ImportError> {
        codec::append(&mut self.app, e, 0, ns)?;
        self.report.market_events += 1;
        Ok(())
    }

    fn feed_error(
        &mut self,
        ns: u64,
        line: u64,
        source: &str,
        reason: &str,
        raw: &[u8],
    ) -> Result<(), ImportError> {
        self.err_buf.clear();
        let _ = write!(
            self.err_buf,
            "feed_error line={line} source={source} reason={}\n",
            reason.replace('\n', " ")
        );
        let max = self.app.max_payload();
        let room = max.saturating_sub(self.err_buf.len());
        self.err_buf.extend_from_slice(&raw[..raw.len().min(room)]);
        codec::append_bytes(&mut self.app, RecordKind::FeedError, 0, ns, &self.err_buf)?;
        self.report.feed_errors += 1;
        Ok(())
    }

    fn gap(&mut self, inst: InstrumentId, g: &GapInfo, ns: u64) -> Result<(), ImportError> {
        let n = g.write_payload(inst, &mut self.gap_buf);
        codec::append_bytes(&mut self.app, RecordKind::Gap, 0, ns, &self.gap_buf[..n])?;
        self.report.gap_records += 1;
        Ok(())
    }
}

/// Instruments, books and the decoder state of one import.
struct Engine {
    table: InstrumentTable,
    sources: BTreeMap<u32, &'static str>,
    books: BTreeMap<u32, BookSync>,
    sync_mode: SyncMode,
}

impl Engine {
    fn new(sync_mode: SyncMode) -> Self {
        Engine {
            table: InstrumentTable::with_capacity(MAX_INSTRUMENTS),
            sources: BTreeMap::new(),
            books: BTreeMap::new(),
            sync_mode,
        }
    }

    fn intern(&mut self, spec: InstrumentSpec, source: &'static str) -> Result<InstrumentId, ImportError> {
        let id = self
            .table
            .intern(spec)
            .map_err(|e| ImportError::Instrument(format!("{}: {e}", spec.symbol)))?;
        self.sources.entry(id.0).or_insert(source);
        Ok(id)
    }

    /// Journal `e` and run it through its instrument's book.
    fn event(&mut self, sink: &mut Sink, e: &MarketEvent, ns: u64) -> Result<(), ImportError> {
        sink.market(e, ns)?;
        if e.kind != MarketKind::DepthLevel {
            return Ok(());
        }
        let id = e.instrument;
        let mode = self.sync_mode;
        let venue = self.table.get(id).venue;
        let book = self
            .books
            .entry(id.0)
            .or_insert_with(|| BookSync::new(id, BookConfig::for_venue(venue).with_mode(mode)));
        let _ = book.on_event(e);
        while let Some(g) = book.pop_gap() {
            sink.gap(id, &g, ns)?;
        }
        Ok(())
    }

    /// A new WebSocket session: every diff chain restarts.
    fn session(&mut self) {
        for b in self.books.values_mut() {
            b.reset();
        }
    }

    fn instrument_infos(&self) -> Vec<InstrumentInfo> {
        self.table
            .iter()
            .map(|(id, s)| InstrumentInfo {
                id: id.0,
                venue: s.venue.name().to_string(),
                symbol: s.symbol.as_str().to_string(),
                kind: kind_name(s.kind).to_string(),
                price_scale: s.price_scale,
                qty_scale: s.qty_scale,
                tick: s.tick.to_decimal(s.price_scale).to_string(),
                step: s.step.to_decimal(s.qty_scale).to_string(),
                source: self.sources.get(&id.0).copied().unwrap_or("builtin").to_string(),
            })
            .collect()
    }

    fn book_reports(&self) -> Vec<BookReport> {
        self.books
            .iter()
            .map(|(id, b)| BookReport::new(self.table.get(InstrumentId(*id)).symbol.as_str(), b))
            .collect()
    }
}

/// Import the capture at `capture` into a new journal at `out` (created; it must not exist or
/// be empty).
pub fn import(capture: &Path, out: &Path, opts: &ImportOptions) -> Result<ImportReport, ImportError> {
    prepare_out(out)?;
    let mut cfg: JournalConfig = codec::journal_config();
    cfg.segment_size = opts.segment_size;
    let app = Appender::open(out, cfg)?;
    let mut sink = Sink {
        app,
        report: ImportReport {
            capture: capture.display().to_string(),
            format: opts.format.name().to_string(),
            out: out.display().to_string(),
            ..ImportReport::default()
        },
        gap_buf: [0; MAX_GAP_PAYLOAD],
        err_buf: Vec::new(),
    };
    let mut engine = Engine::new(opts.sync_mode);
    match opts.format {
        CaptureFormat::LeanFx => import_fx(capture, &mut sink, &mut engine)?,
        CaptureFormat::Hftbacktest | CaptureFormat::Cryptofeed => {
            crate::import::binance::import_binance(capture, opts, &mut sink, &mut engine)?
        }
    }
    let mut report = sink.report;
    sink.app.flush()?;
    sink.app.close()?;
    report.books = engine.book_reports();
    report.instruments = engine.instrument_infos();
    let json = serde_json::to_vec_pretty(&report.instruments).map_err(|e| ImportError::Output(e.to_string()))?;
    let path = out.join(INSTRUMENTS_FILE);
    std::fs::write(&path, json).map_err(|e| ImportError::Output(format!("writing {}: {e}", path.display())))?;
    Ok(report)
}

/// Create `out`, refusing a non-empty directory (an import never appends to an old journal).
fn prepare_out(out: &Path) -> Result<(), ImportError> {
    if out.exists() {
        let mut rd = std::fs::read_dir(out)
            .map_err(|e| ImportError::Output(format!("{}: {e}", out.display())))?;
        if rd.next().is_some() {
            return Err(ImportError::Output(format!(
                "{} is not empty; import writes a new journal",
                out.display()
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| ImportError::Output(format!("creating {}: {e}", out.display())))
}

/// Drain one capture item by item with `f`; an I/O error ends it as a journaled truncation.
fn drain(
    src: &mut dyn CaptureSource,
    sink: &mut Sink,
    mut f: impl FnMut(&mut Sink, capture::CaptureItem<'_>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    loop {
        match src.next_item() {
            Ok(Some(item)) => {
                if let ItemKind::Malformed { raw, reason } = item.kind {
                    sink.report.malformed_lines += 1;
                    sink.feed_error(item.recv_ns, item.line, "capture", reason, raw)?;
                    continue;
                }
                f(sink, item)?;
            }
            Ok(None) => break,
            Err(e) => {
                let ns = sink.report.last_recv_ns.unwrap_or(0);
                let msg = e.to_string();
                sink.feed_error(ns, 0, "capture", &format!("capture ends early: {msg}"), b"")?;
                sink.report.truncated = Some(msg);
                break;
            }
        }
    }
    sink.report.blank_lines += src.blank_lines();
    Ok(())
}

/// Lean FX: one `Quote` per CSV line.
fn import_fx(path: &Path, sink: &mut Sink, engine: &mut Engine) -> Result<(), ImportError> {
    let mut reader = capture::LeanFxReader::open(path)?;
    let spec = forex_spec(reader.pair())?;
    let id = engine.intern(spec, "builtin")?;
    let inst: InstrumentRef = engine.table.instrument_ref(id);
    drain(&mut reader, sink, |sink, item| {
        let ItemKind::Quote { raw, bid, ask } = item.kind else {
            return Ok(());
        };
        sink.raw(RAW_CSV, item.recv_ns, raw)?;
        match (Price::parse(bid, inst.price_scale), Price::parse(ask, inst.price_scale)) {
            (Ok(b), Ok(a)) => {
                let e = MarketEvent::quote(
                    inst,
                    Stamps::new(item.recv_ns, 0),
                    (b, Qty::ZERO),
                    (a, Qty::ZERO),
                    0,
                );
                engine.event(sink, &e, item.recv_ns)
            }
            (Err(e), _) | (_, Err(e)) => {
                sink.feed_error(item.recv_ns, item.line, "csv", &format!("bad quote price: {e}"), raw)
            }
        }
    })
}

mod binance {
    //! The Binance half of the import (hftbacktest and cryptofeed captures).
    use super::*;

    pub(super) fn import_binance(
        _capture: &Path,
        _opts: &ImportOptions,
        _sink: &mut Sink,
        _engine: &mut Engine,
    ) -> Result<(), ImportError> {
        Err(ImportError::Output("the Binance decoders are not available yet".into()))
    }
}
