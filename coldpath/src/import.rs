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
//!   captures: an embedded excerpt of Binance's `exchangeInfo` for them (filters and
//!   precisions), parsed by the engine's own `exchangeInfo` parser with its default
//!   `ScalePolicy::Venue`, so an import with and without `exchangeInfo` gives the same scales.
//!   What the data carries decided this (measured over every message of the captures):
//!
//!   | venue | symbol | tick / step | decimals the data uses (price / qty) | scales |
//!   |---|---|---|---|---|
//!   | spot | BTCUSDT | 0.01 / 0.00001 | 2 / **6**: strings have 8 decimals; depth has quantities like `"25.42618900"`, finer than the step (orders left from an older step) | 8 / 8 (Binance's spot precision) |
//!   | spot | ETHUSDT | 0.01 / 0.0001 | 2 / **5** (finer than the step) | 8 / 8 |
//!   | USD-M | BTCUSDT | 0.10 / 0.001 | 1 / 3 (`"61800.20"`: 2 printed decimals, the second always 0) | 2 / 3 (`pricePrecision` / `quantityPrecision`) |
//!   | USD-M | ETHUSDT | 0.01 / 0.001 | 2 / 3 | 2 / 3 |
//!
//!   Scales taken from the tick and step (2/5 for spot BTCUSDT) would reject real depth
//!   messages as too precise; the import test requires zero feed errors on these captures.
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

use hotpath::book::{BookSet, BookSync, GapInfo, SyncMode, SyncStats, MAX_GAP_PAYLOAD};
use hotpath::codec::{self, AppendError, RecordKind};
use hotpath::event::{DepthIds, MarketEvent, MarketKind, Stamps};
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
    /// Minimum order quantity, exact decimal (absent in journals written before it was
    /// recorded: then the built-in spec or the step is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_qty: Option<String>,
    /// Minimum order notional, exact decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_notional: Option<String>,
    /// Contract size, exact decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_size: Option<String>,
}

impl InstrumentInfo {
    /// The stored form of `spec` (instrument `id`), defined by `source`.
    pub fn from_spec(id: InstrumentId, spec: &InstrumentSpec, source: &str) -> InstrumentInfo {
        InstrumentInfo {
            id: id.0,
            venue: spec.venue.name().to_string(),
            symbol: spec.symbol.as_str().to_string(),
            kind: kind_name(spec.kind).to_string(),
            price_scale: spec.price_scale,
            qty_scale: spec.qty_scale,
            tick: spec.tick.to_decimal(spec.price_scale).to_string(),
            step: spec.step.to_decimal(spec.qty_scale).to_string(),
            source: source.to_string(),
            min_qty: Some(spec.min_qty.to_decimal(spec.qty_scale).to_string()),
            min_notional: Some(spec.min_notional.to_string()),
            contract_size: Some(spec.contract_size.to_string()),
        }
    }

    /// The spec this entry describes.
    pub fn to_spec(&self) -> Result<InstrumentSpec, ImportError> {
        let bad = |what: &str| {
            ImportError::Instrument(format!("{} in {INSTRUMENTS_FILE}: {what}", self.symbol))
        };
        let venue = Venue::from_name(&self.venue).ok_or_else(|| bad("unknown venue"))?;
        let kind = kind_from_name(&self.kind).ok_or_else(|| bad("unknown kind"))?;
        let builtin = builtin_spec(venue, &self.symbol);
        let min_qty = match (&self.min_qty, &builtin) {
            (Some(q), _) => q.clone(),
            (None, Some(b)) => b.min_qty.to_decimal(b.qty_scale).to_string(),
            (None, None) => self.step.clone(),
        };
        let min_notional = match (&self.min_notional, &builtin) {
            (Some(n), _) => n.clone(),
            (None, Some(b)) => b.min_notional.to_string(),
            (None, None) => "0".to_string(),
        };
        let mut spec = InstrumentSpec::from_filters(
            venue,
            self.symbol.as_bytes(),
            kind,
            self.tick.as_bytes(),
            self.step.as_bytes(),
            min_qty.as_bytes(),
            min_notional.as_bytes(),
        )
        .map_err(|e| bad(&e.to_string()))?;
        // The journal's events are at the stored scales, which may carry more decimals than
        // the tick needs (venue scale); keep them.
        spec.price_scale = self.price_scale;
        spec.qty_scale = self.qty_scale;
        spec.tick = Price::parse(self.tick.as_bytes(), self.price_scale)
            .map_err(|e| bad(&format!("tick: {e:?}")))?;
        spec.step = Qty::parse(self.step.as_bytes(), self.qty_scale)
            .map_err(|e| bad(&format!("step: {e:?}")))?;
        spec.min_qty = Qty::parse(min_qty.as_bytes(), self.qty_scale)
            .map_err(|e| bad(&format!("min qty: {e:?}")))?;
        match (&self.contract_size, &builtin) {
            (Some(c), _) => {
                spec.contract_size = Decimal::parse(c.as_bytes())
                    .map_err(|e| bad(&format!("contract size: {e:?}")))?
            }
            (None, Some(b)) => spec.contract_size = b.contract_size,
            (None, None) => {}
        }
        spec.validate().map_err(|e| bad(&e.to_string()))?;
        Ok(spec)
    }
}

/// The instrument table of a journal, rebuilt from its [`INSTRUMENTS_FILE`] with the same ids
/// (a replay decodes the journal's raw frames into events with the ids the engine used).
pub fn table_from_infos(infos: &[InstrumentInfo]) -> Result<InstrumentTable, ImportError> {
    let mut sorted: Vec<&InstrumentInfo> = infos.iter().collect();
    sorted.sort_by_key(|i| i.id);
    let mut table = InstrumentTable::with_capacity(sorted.len().max(1));
    for info in sorted {
        let id = table
            .intern(info.to_spec()?)
            .map_err(|e| ImportError::Instrument(format!("{}: {e}", info.symbol)))?;
        if id.0 != info.id {
            return Err(ImportError::Instrument(format!(
                "{}: ids in {INSTRUMENTS_FILE} are not dense (expected {}, got {})",
                info.symbol, id.0, info.id
            )));
        }
    }
    Ok(table)
}

/// Writes `table` as [`INSTRUMENTS_FILE`] into journal directory `dir` (every entry with
/// `source`), so tools reading the journal later know its instruments.
pub fn write_instruments(
    dir: &Path,
    table: &InstrumentTable,
    source: &str,
) -> Result<(), ImportError> {
    let infos: Vec<InstrumentInfo> = table
        .iter()
        .map(|(id, s)| InstrumentInfo::from_spec(id, s, source))
        .collect();
    let json = serde_json::to_vec_pretty(&infos).map_err(|e| ImportError::Output(e.to_string()))?;
    let path = dir.join(INSTRUMENTS_FILE);
    std::fs::write(&path, json)
        .map_err(|e| ImportError::Output(format!("writing {}: {e}", path.display())))
}

/// The [`InstrumentKind`] named by [`kind_name`].
pub fn kind_from_name(name: &str) -> Option<InstrumentKind> {
    Some(match name {
        "spot" => InstrumentKind::Spot,
        "perp" => InstrumentKind::Perp,
        "inverse_perp" => InstrumentKind::InversePerp,
        "future" => InstrumentKind::Future,
        "inverse_future" => InstrumentKind::InverseFuture,
        "forex" => InstrumentKind::Forex,
        _ => return None,
    })
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
    binance::builtin(venue, symbol)
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
        let _ = writeln!(
            self.err_buf,
            "feed_error line={line} source={source} reason={}",
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

/// The books of one import: a [`BookSet`] created lazily as instruments show depth data, with
/// every gap journaled.
struct Books {
    set: BookSet,
}

impl Books {
    /// Journal `e` and run it through its instrument's book; journal the gaps it reports.
    fn event(
        &mut self,
        table: &InstrumentTable,
        sink: &mut Sink,
        e: &MarketEvent,
        ns: u64,
    ) -> Result<(), ImportError> {
        sink.market(e, ns)?;
        if e.kind != MarketKind::DepthLevel {
            return Ok(());
        }
        self.set.ensure(table, e.instrument);
        let mut res = Ok(());
        self.set.on_event(e, |inst, g| {
            if res.is_ok() {
                res = sink.gap(inst, g, ns);
            }
        });
        res
    }

    /// A depth update or snapshot without levels (no events, but its ids move the chain).
    fn empty_update(
        &mut self,
        table: &InstrumentTable,
        sink: &mut Sink,
        id: InstrumentId,
        ids: DepthIds,
        snapshot: bool,
        ns: u64,
    ) -> Result<(), ImportError> {
        self.set.ensure(table, id);
        let mut res = Ok(());
        self.set.on_empty_update(id, ids, snapshot, 0, |inst, g| {
            if res.is_ok() {
                res = sink.gap(inst, g, ns);
            }
        });
        res
    }

    /// A new WebSocket session: every diff chain restarts.
    fn session(&mut self) {
        self.set.reset_all();
    }
}

/// Instruments and books of one import.
struct Engine {
    table: InstrumentTable,
    sources: BTreeMap<u32, &'static str>,
    books: Books,
}

impl Engine {
    fn new(sync_mode: SyncMode) -> Self {
        Engine {
            table: InstrumentTable::with_capacity(MAX_INSTRUMENTS),
            sources: BTreeMap::new(),
            books: Books {
                set: BookSet::new(sync_mode),
            },
        }
    }

    fn intern(
        &mut self,
        spec: InstrumentSpec,
        source: &'static str,
    ) -> Result<InstrumentId, ImportError> {
        let id = self
            .table
            .intern(spec)
            .map_err(|e| ImportError::Instrument(format!("{}: {e}", spec.symbol)))?;
        self.sources.entry(id.0).or_insert(source);
        Ok(id)
    }

    fn instrument_infos(&self) -> Vec<InstrumentInfo> {
        self.table
            .iter()
            .map(|(id, s)| {
                let source = self.sources.get(&id.0).copied().unwrap_or("builtin");
                InstrumentInfo::from_spec(id, s, source)
            })
            .collect()
    }

    fn book_reports(&self) -> Vec<BookReport> {
        self.books
            .set
            .iter()
            .map(|b| BookReport::new(self.table.get(b.instrument()).symbol.as_str(), b))
            .collect()
    }
}

/// Import the capture at `capture` into a new journal at `out` (created; it must not exist or
/// be empty).
pub fn import(
    capture: &Path,
    out: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
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
            binance::import_binance(capture, opts, &mut sink, &mut engine)?
        }
    }
    let mut report = sink.report;
    sink.app.flush()?;
    sink.app.close()?;
    report.books = engine.book_reports();
    report.instruments = engine.instrument_infos();
    let json = serde_json::to_vec_pretty(&report.instruments)
        .map_err(|e| ImportError::Output(e.to_string()))?;
    let path = out.join(INSTRUMENTS_FILE);
    std::fs::write(&path, json)
        .map_err(|e| ImportError::Output(format!("writing {}: {e}", path.display())))?;
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
    std::fs::create_dir_all(out)
        .map_err(|e| ImportError::Output(format!("creating {}: {e}", out.display())))
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
        match (
            Price::parse(bid, inst.price_scale),
            Price::parse(ask, inst.price_scale),
        ) {
            (Ok(b), Ok(a)) => {
                let e = MarketEvent::quote(
                    inst,
                    Stamps::new(item.recv_ns, 0),
                    (b, Qty::ZERO),
                    (a, Qty::ZERO),
                    0,
                );
                engine.books.event(&engine.table, sink, &e, item.recv_ns)
            }
            (Err(e), _) | (_, Err(e)) => sink.feed_error(
                item.recv_ns,
                item.line,
                "csv",
                &format!("bad quote price: {e}"),
                raw,
            ),
        }
    })
}

mod binance {
    //! The Binance half of the import (hftbacktest and cryptofeed captures).

    use super::*;
    use hotpath::venue::binance::{ExchangeInfo, ScalePolicy, Scanner};

    /// The instruments of the hftbacktest captures as Binance's `exchangeInfo` described them
    /// (the fields the parser reads), parsed by the engine's own `exchangeInfo` parser with its
    /// default [`ScalePolicy::Venue`]: spot scales are Binance's 8-decimal formatting precision
    /// (the spot BTCUSDT capture has depth quantities such as `"25.42618900"`, finer than the
    /// 0.00001 step, left by orders placed under an older step), USD-M scales are
    /// `pricePrecision`/`quantityPrecision` (2/3) or the tick's decimals if finer.
    const BUILTIN_SPOT: &str = r#"{"symbols":[
        {"symbol":"BTCUSDT","status":"TRADING","baseAssetPrecision":8,"quoteAssetPrecision":8,
         "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01000000"},
                    {"filterType":"LOT_SIZE","minQty":"0.00001000","stepSize":"0.00001000"},
                    {"filterType":"NOTIONAL","minNotional":"5.00000000"}]},
        {"symbol":"ETHUSDT","status":"TRADING","baseAssetPrecision":8,"quoteAssetPrecision":8,
         "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01000000"},
                    {"filterType":"LOT_SIZE","minQty":"0.00010000","stepSize":"0.00010000"},
                    {"filterType":"NOTIONAL","minNotional":"5.00000000"}]}]}"#;

    /// See [`BUILTIN_SPOT`].
    const BUILTIN_USDM: &str = r#"{"symbols":[
        {"symbol":"BTCUSDT","status":"TRADING","contractType":"PERPETUAL",
         "pricePrecision":2,"quantityPrecision":3,
         "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"},
                    {"filterType":"LOT_SIZE","minQty":"0.001","stepSize":"0.001"},
                    {"filterType":"MIN_NOTIONAL","notional":"100"}]},
        {"symbol":"ETHUSDT","status":"TRADING","contractType":"PERPETUAL",
         "pricePrecision":2,"quantityPrecision":3,
         "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01"},
                    {"filterType":"LOT_SIZE","minQty":"0.001","stepSize":"0.001"},
                    {"filterType":"MIN_NOTIONAL","notional":"20"}]}]}"#;

    /// Provisional scale of the derivation pass: Binance never sends more than 8 decimals.
    const PROVISIONAL_SCALE: u8 = 8;

    /// The built-in spec of `symbol` on `venue` (see [`BUILTIN_SPOT`]).
    pub(super) fn builtin(venue: Venue, symbol: &str) -> Option<InstrumentSpec> {
        let json = match venue {
            Venue::BinanceSpot => BUILTIN_SPOT,
            Venue::BinanceUsdM => BUILTIN_USDM,
            _ => return None,
        };
        let mut body = json.as_bytes().to_vec();
        let info = ExchangeInfo::parse(&mut body, venue, ScalePolicy::Venue).ok()?;
        info.get(symbol)?.spec.as_ref().ok().copied()
    }

    /// What the capture says about itself before decoding.
    #[derive(Default)]
    struct Meta {
        venue: Option<Venue>,
        /// Symbols named by the file name, the subscribed streams or REST URLs (upper case).
        symbols: Vec<String>,
        /// hftbacktest: the symbol of the file (inline REST snapshots are for it).
        file_symbol: Option<String>,
        /// `exchangeInfo` bodies found in the REST log.
        exchange_info: Vec<Vec<u8>>,
    }

    fn add_symbol(meta: &mut Meta, s: &str) {
        let s = s.to_ascii_uppercase();
        if !s.is_empty() && !meta.symbols.contains(&s) {
            meta.symbols.push(s);
        }
    }

    /// Symbols of a combined-stream URL (`.../stream?streams=btcusdt@trade/ethusdt@depth`).
    fn stream_symbols(meta: &mut Meta, url: &str) {
        if let Some(q) = url.split("streams=").nth(1) {
            for s in q.split('/') {
                add_symbol(meta, s.split('@').next().unwrap_or(""));
            }
        }
    }

    /// `symbol=` of a REST URL.
    pub(super) fn url_symbol(url: &str) -> Option<String> {
        let q = url.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix("symbol="))
            .map(str::to_ascii_uppercase)
    }

    /// Is this hftbacktest line an inline REST depth snapshot (the recorder writes the
    /// snapshot it fetched into the stream as a bare `{"lastUpdateId":..}` body)? A
    /// classification of the envelope only; the decoder validates the body.
    fn is_inline_snapshot(frame: &[u8]) -> bool {
        let has = |n: &[u8]| frame.windows(n.len()).any(|w| w == n);
        has(b"\"lastUpdateId\"") && !has(b"\"stream\"")
    }

    fn metadata(capture: &Path, opts: &ImportOptions) -> Result<Meta, ImportError> {
        let mut meta = Meta {
            venue: opts.venue,
            ..Meta::default()
        };
        match opts.format {
            CaptureFormat::Hftbacktest => {
                if meta.venue.is_none() {
                    meta.venue = venue_from_path(capture);
                }
                let name = capture.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let sym = name
                    .split(['_', '.'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if !sym.is_empty() {
                    add_symbol(&mut meta, &sym);
                    meta.file_symbol = Some(sym);
                }
            }
            _ => {
                let mut r = capture::CryptofeedReader::open(capture)?;
                for h in r.http_responses() {
                    if meta.venue.is_none() {
                        meta.venue = venue_from_url(&h.url);
                    }
                    if h.url.contains("exchangeInfo") {
                        meta.exchange_info.push(h.body.clone());
                    } else if let Some(s) = url_symbol(&h.url) {
                        add_symbol(&mut meta, &s);
                    }
                }
                // Sessions name the subscribed streams; later ones may add symbols.
                while let Ok(Some(item)) = r.next_item() {
                    if let ItemKind::Session { url } = item.kind {
                        if opts.venue.is_none() {
                            meta.venue = meta.venue.or_else(|| venue_from_url(url));
                        }
                        let url = url.to_string();
                        stream_symbols(&mut meta, &url);
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Contract kind of a symbol without `exchangeInfo`: Binance's naming (`_PERP`, `_YYMMDD`).
    fn derived_kind(venue: Venue, symbol: &str) -> InstrumentKind {
        let dated = symbol
            .rsplit_once('_')
            .is_some_and(|(_, d)| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()));
        match venue {
            Venue::BinanceUsdM if dated => InstrumentKind::Future,
            Venue::BinanceUsdM => InstrumentKind::Perp,
            Venue::BinanceCoinM if dated => InstrumentKind::InverseFuture,
            Venue::BinanceCoinM => InstrumentKind::InversePerp,
            _ => InstrumentKind::Spot,
        }
    }

    /// Decimals a mantissa at [`PROVISIONAL_SCALE`] really uses.
    fn used_decimals(m: i64) -> u8 {
        if m == 0 {
            return 0;
        }
        let mut d = PROVISIONAL_SCALE;
        let mut m = m;
        while d > 0 && m % 10 == 0 {
            m /= 10;
            d -= 1;
        }
        d
    }

    /// Derivation pass: decode the capture with every unknown symbol at the provisional scale
    /// and record the decimals its prices and quantities use. Returns `(price, qty)` scales.
    fn derive_scales(
        capture: &Path,
        opts: &ImportOptions,
        venue: Venue,
        symbols: &[String],
        file_symbol: Option<&str>,
    ) -> Result<BTreeMap<String, (u8, u8)>, ImportError> {
        let mut table = InstrumentTable::with_capacity(symbols.len().max(1));
        for s in symbols {
            let sym = Symbol::new(s.as_bytes())
                .map_err(|e| ImportError::Instrument(format!("{s}: {e}")))?;
            let spec = InstrumentSpec::new(
                venue,
                sym,
                derived_kind(venue, s),
                PROVISIONAL_SCALE,
                PROVISIONAL_SCALE,
            );
            table
                .intern(spec)
                .map_err(|e| ImportError::Instrument(format!("{s}: {e}")))?;
        }
        let mut used: BTreeMap<u32, (u8, u8)> = BTreeMap::new();
        let mut note = |e: MarketEvent| {
            let (px, qty): (&[i64], &[i64]) = match e.kind {
                MarketKind::Trade | MarketKind::AggTrade | MarketKind::DepthLevel => {
                    (&[e.price.0], &[e.qty.0])
                }
                MarketKind::BookTicker | MarketKind::Quote => {
                    (&[e.bid_px.0, e.ask_px.0], &[e.bid_qty.0, e.ask_qty.0])
                }
                MarketKind::Kline => (
                    &[e.aux_px.0, e.ask_px.0, e.bid_px.0, e.price.0],
                    &[e.qty.0, e.bid_qty.0],
                ),
            };
            let u = used.entry(e.instrument.0).or_default();
            for &p in px {
                u.0 = u.0.max(used_decimals(p));
            }
            for &q in qty {
                u.1 = u.1.max(used_decimals(q));
            }
        };
        let mut scanner = Scanner::new(&table, venue);
        let mut src = capture::open(capture, opts.format)?;
        while let Ok(Some(item)) = src.next_item() {
            match item.kind {
                ItemKind::Frame(bytes) => {
                    let snap =
                        opts.format == CaptureFormat::Hftbacktest && is_inline_snapshot(bytes);
                    let _ = match (
                        snap,
                        file_symbol.and_then(|s| table.lookup(venue, s.as_bytes())),
                    ) {
                        (true, Some(id)) => scanner.decode_depth_snapshot(bytes, id, 0, &mut note),
                        _ => scanner.decode(bytes, 0, &mut note),
                    };
                }
                ItemKind::Http { url, body } => {
                    if let Some(id) =
                        url_symbol(url).and_then(|s| table.lookup(venue, s.as_bytes()))
                    {
                        if url.contains("/depth") {
                            let _ = scanner.decode_depth_snapshot(body, id, 0, &mut note);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(table
            .iter()
            .map(|(id, s)| {
                (
                    s.symbol.as_str().to_string(),
                    used.get(&id.0).copied().unwrap_or((0, 0)),
                )
            })
            .collect())
    }

    /// Fill the instrument table: `exchangeInfo` from the capture, then the built-in table,
    /// then scales derived from the data.
    fn instruments(
        capture: &Path,
        opts: &ImportOptions,
        meta: &Meta,
        venue: Venue,
        engine: &mut Engine,
    ) -> Result<(), ImportError> {
        let mut missing: Vec<String> = Vec::new();
        let mut infos = Vec::new();
        for body in &meta.exchange_info {
            let mut b = body.clone();
            if let Ok(info) = ExchangeInfo::parse(&mut b, venue, ScalePolicy::Venue) {
                infos.push(info);
            }
        }
        for s in &meta.symbols {
            let from_info = infos
                .iter()
                .find_map(|i| i.get(s).and_then(|si| si.spec.as_ref().ok().copied()));
            if let Some(spec) = from_info {
                engine.intern(spec, "exchange_info")?;
            } else if let Some(spec) = builtin_spec(venue, s) {
                engine.intern(spec, "builtin")?;
            } else {
                missing.push(s.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let scales = derive_scales(capture, opts, venue, &missing, meta.file_symbol.as_deref())?;
        for s in &missing {
            let (ps, qs) = scales.get(s).copied().unwrap_or((0, 0));
            let sym = Symbol::new(s.as_bytes())
                .map_err(|e| ImportError::Instrument(format!("{s}: {e}")))?;
            let mut spec = InstrumentSpec::new(venue, sym, derived_kind(venue, s), ps, qs);
            if venue == Venue::BinanceCoinM {
                // COIN-M contract face value: 100 USD for BTC contracts, 10 USD for the others.
                let face = if s.starts_with("BTCUSD") { 100 } else { 10 };
                spec.contract_size = Decimal::new(face, 0);
            }
            engine.intern(spec, "derived")?;
        }
        Ok(())
    }

    pub(super) fn import_binance(
        capture: &Path,
        opts: &ImportOptions,
        sink: &mut Sink,
        engine: &mut Engine,
    ) -> Result<(), ImportError> {
        let meta = metadata(capture, opts)?;
        let venue = meta
            .venue
            .ok_or_else(|| ImportError::UnknownVenue(capture.to_path_buf()))?;
        instruments(capture, opts, &meta, venue, engine)?;
        let Engine { table, books, .. } = engine;
        let table: &InstrumentTable = table;
        let file_inst = meta
            .file_symbol
            .as_deref()
            .and_then(|s| table.lookup(venue, s.as_bytes()));
        let mut scanner = Scanner::new(table, venue);
        let mut events: Vec<MarketEvent> = Vec::with_capacity(16_384);
        let mut src = capture::open(capture, opts.format)?;
        drain(src.as_mut(), sink, |sink, item| {
            let ns = item.recv_ns;
            let (result, source, bytes, snapshot) = match item.kind {
                ItemKind::Session { .. } => {
                    sink.report.sessions += 1;
                    books.session();
                    return Ok(());
                }
                ItemKind::Frame(bytes) => {
                    events.clear();
                    let mut push = |e: MarketEvent| events.push(e);
                    match file_inst {
                        Some(id)
                            if opts.format == CaptureFormat::Hftbacktest
                                && is_inline_snapshot(bytes) =>
                        {
                            sink.raw(RAW_REST, ns, bytes)?;
                            (
                                scanner.decode_depth_snapshot(bytes, id, 0, &mut push),
                                "rest",
                                bytes,
                                true,
                            )
                        }
                        _ => {
                            sink.raw(RAW_WS, ns, bytes)?;
                            (scanner.decode(bytes, 0, &mut push), "ws", bytes, false)
                        }
                    }
                }
                ItemKind::Http { url, body } => {
                    sink.raw(RAW_REST, ns, body)?;
                    if !url.contains("/depth") {
                        // exchangeInfo (already used) or another response: raw frame only.
                        return Ok(());
                    }
                    events.clear();
                    let mut push = |e: MarketEvent| events.push(e);
                    match url_symbol(url).and_then(|s| table.lookup(venue, s.as_bytes())) {
                        Some(id) => (
                            scanner.decode_depth_snapshot(body, id, 0, &mut push),
                            "rest",
                            body,
                            true,
                        ),
                        None => {
                            return sink.feed_error(
                                ns,
                                item.line,
                                "rest",
                                "depth snapshot for a symbol not in the instrument table",
                                body,
                            );
                        }
                    }
                }
                ItemKind::Quote { .. } | ItemKind::Malformed { .. } => return Ok(()),
            };
            match result {
                Ok(d) => {
                    for e in &events {
                        books.event(table, sink, e, ns)?;
                    }
                    if let (MarketKind::DepthLevel, 0, Some(ids)) = (d.kind, d.events, d.depth) {
                        books.empty_update(table, sink, d.instrument, ids, snapshot, ns)?;
                    }
                    Ok(())
                }
                Err(e) => sink.feed_error(ns, item.line, source, &e.to_string(), bytes),
            }
        })
    }
}
