//! Storage export: journal -> per-symbol Parquet files that DuckDB and pandas read directly.
//!
//! The journal is the source of truth (DESIGN.md); this tailer turns it into the seed's
//! per-symbol storage layout, `data/{exchange}/{market_type}/{symbol}/`, one directory per
//! table:
//!
//! | table | from | rows |
//! |---|---|---|
//! | `trades` | `Market` records of kind trade / agg_trade | one per trade |
//! | `candles_1m`, `candles_5m`, `candles_15m` | the same trades, through `hotpath::analytics::candles::CandleBuilder` (the strategy's own candle code: epoch-aligned buckets, event time, taker buy/sell volume and counts) | one per closed candle |
//! | `decisions` | `Decision` records (the strategy journal) | one per evaluation, every level value |
//! | `executions` | `Exec` records | one per execution report |
//!
//! **Decimals** are exact: prices and quantities are Parquet `DECIMAL(38, scale)` columns at
//! the instrument's scale (DuckDB `sum(qty)` is exact), each with a `*_f64` convenience column
//! for pandas. The execution fee, whose scale varies by fee asset, is `fee_mantissa` +
//! `fee_scale` + `fee` (f64). Times are `TIMESTAMP(ns, UTC)`; `seq` is the journal sequence
//! number of the record.
//!
//! **Files** roll per UTC day: `<table>/<YYYY-MM-DD>-<source>-<first seq>.parquet`, each a
//! closed part (written to a temporary name, `fsync`ed, renamed). A day normally has one part
//! per flush (the end of [`run_once`], or every [`ExportConfig::flush_interval`] when tailing);
//! read a table with a glob (`read_parquet('.../trades/*.parquet')`). A part is named after the
//! journal sequence number of its first row, so a re-export after a crash overwrites rather
//! than duplicates. A row whose day is earlier than the newest day seen still joins its own
//! day's buffer, as long as that day is not more than [`ExportConfig::day_grace`] in the past.
//!
//! **Cursors**: each journal source is read through a [`CursorTailer`] whose cursor
//! (`<state dir>/<source>.cursor`) is committed only after every row from the records before it
//! is in a closed file. Candles that are still open at a commit are not written; the state
//! file `<source>.candles.json` (written before the cursor) records from which sequence number
//! each open candle was built, and a restart rebuilds them by re-reading those trades, so a
//! candle is never split across a restart. [`ExportConfig::finalize`] closes every open candle
//! at the end of [`run_once`] instead (for a finished journal: an import or a replay).
//!
//! **Retention** ([`Retention`], default the seed's table [`Retention::SEED`]): after each
//! flush, files whose whole UTC day is older than their table's rule are deleted. The reference
//! time is the newest event time exported (so replaying an old journal keeps its data) or the
//! wall clock ([`RetentionClock`]).
//!
//! Candles count trades and aggregated trades alike (a feed subscribes to one of the two);
//! forex quotes are not exported. Instruments are named from `instruments.json` in the source
//! directories (written by `import`, `record` and `run`) or [`ExportConfig::instruments`];
//! unknown ids go under `unknown/unknown/id-<n>/`.

mod layout;
mod sheet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotpath::analytics::candles::{Candle, CandleBuilder, CandleSource, TickClassifier, Timeframe};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{Decision, ExecEvent, MarketEvent, MarketKind};
use ringbuffers::journal::{RecordRef, Tailer};
use serde::{Deserialize, Serialize};

use crate::cursor::{CursorError, CursorTailer};
use crate::import::{read_instruments, InstrumentInfo};

pub use layout::{apply_retention, day_name, part_path, symbol_path, Retention, Table, DAY_NS};
use sheet::{write_parquet, ColType, Sheet, Val};

/// One journal directory to export, with the name its cursor and file names use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSource {
    /// Short name (`market`, `strategy`, `gateway`): `[A-Za-z0-9_]`, unique per export root.
    pub name: String,
    /// The journal directory.
    pub dir: PathBuf,
}

impl JournalSource {
    /// A source.
    pub fn new(name: &str, dir: impl Into<PathBuf>) -> Self {
        JournalSource {
            name: name.to_string(),
            dir: dir.into(),
        }
    }
}

/// The journals of an engine run under `root` that exist: `root` itself (`market`: feed
/// events), `root/strategy` (decisions) and `root/gateway` (execution reports).
pub fn engine_sources(root: &Path) -> Vec<JournalSource> {
    let mut v = vec![JournalSource::new("market", root)];
    for sub in ["strategy", "gateway"] {
        let d = root.join(sub);
        if d.is_dir() {
            v.push(JournalSource::new(sub, d));
        }
    }
    v
}

/// Which clock retention is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionClock {
    /// The newest event time exported so far (deterministic; right for replays).
    EventTime,
    /// The system wall clock.
    Wall,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Retention per table.
    pub retention: Retention,
    /// Reference clock of the retention.
    pub retention_clock: RetentionClock,
    /// Close (and write) every open candle at the end of [`run_once`]: for a journal that is
    /// finished. Leave it off for a journal that will grow.
    pub finalize: bool,
    /// Where cursors and candle state live (default `<out_root>/.export`).
    pub state_dir: Option<PathBuf>,
    /// Instruments in addition to the sources' `instruments.json` files (by id).
    pub instruments: Vec<InstrumentInfo>,
    /// A part is closed when it reaches this many rows.
    pub max_rows_per_file: usize,
    /// How long after a UTC day ends (in event time) its buffers stay open for late rows.
    pub day_grace: Duration,
    /// Tailing ([`spawn`]): how often buffered rows are written and cursors committed.
    pub flush_interval: Duration,
    /// Tailing: how long to sleep when no source has new records.
    pub poll_interval: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            retention: Retention::SEED,
            retention_clock: RetentionClock::EventTime,
            finalize: false,
            state_dir: None,
            instruments: Vec::new(),
            max_rows_per_file: 1_000_000,
            day_grace: Duration::from_secs(60),
            flush_interval: Duration::from_secs(300),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A journal or cursor could not be opened.
    #[error("{source_name}: {error}")]
    Open {
        /// The journal source.
        source_name: String,
        /// The error.
        error: CursorError,
    },
    /// A journal could not be read.
    #[error("{0}: reading the journal: {1}")]
    Journal(String, ringbuffers::journal::JournalError),
    /// A file (Parquet, cursor, state) could not be written or deleted.
    #[error("{0}")]
    Io(String),
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Records read, per source.
    pub records: BTreeMap<String, u64>,
    /// Rows written, per table directory name.
    pub rows: BTreeMap<String, u64>,
    /// Parquet files written.
    pub files_written: Vec<PathBuf>,
    /// Files deleted by retention.
    pub files_deleted: Vec<PathBuf>,
    /// Records that failed validation, or whose scales differed from the file's (skipped).
    pub invalid: u64,
    /// Candles rebuilt from trades before the cursor after a restart.
    pub candle_ticks_replayed: u64,
    /// Cursor position (next sequence number) per source after the export.
    pub cursors: BTreeMap<String, u64>,
}

impl ExportSummary {
    fn merge(&mut self, o: ExportSummary) {
        for (k, v) in o.records {
            *self.records.entry(k).or_default() += v;
        }
        for (k, v) in o.rows {
            *self.rows.entry(k).or_default() += v;
        }
        self.files_written.extend(o.files_written);
        self.files_deleted.extend(o.files_deleted);
        self.invalid += o.invalid;
        self.candle_ticks_replayed += o.candle_ticks_replayed;
        self.cursors.extend(o.cursors);
    }
}

/// Rows of one (instrument, table, day) not yet written.
struct Buf {
    first_seq: u64,
    price_scale: u8,
    qty_scale: u8,
    sheet: Sheet,
}

/// The candle builders of one instrument, with the sequence number that opened each open
/// candle.
struct Candles {
    classifier: TickClassifier,
    builders: [CandleBuilder; 3],
    open_from: [Option<u64>; 3],
}

impl Candles {
    fn new() -> Self {
        Candles {
            classifier: TickClassifier::new(CandleSource::Trades),
            builders: Timeframe::ALL.map(CandleBuilder::new),
            open_from: [None; 3],
        }
    }
}

/// Persisted candle state of a source (see the module documentation).
#[derive(Debug, Default, Serialize, Deserialize)]
struct CandleState {
    /// The cursor position this state belongs to.
    seq: u64,
    /// `(instrument, timeframe index, first sequence number)` of every open candle.
    open: Vec<(u32, usize, u64)>,
}

/// One journal source being exported.
struct SourceRun {
    name: String,
    dir: PathBuf,
    ct: CursorTailer,
    state_path: PathBuf,
    candles: BTreeMap<u32, Candles>,
    bufs: BTreeMap<(u32, Table, u64), Buf>,
    newest_ns: u64,
    summary: ExportSummary,
}

/// The shared context of an export.
struct Ctx<'a> {
    out_root: &'a Path,
    config: &'a ExportConfig,
    names: BTreeMap<u32, (String, String, String)>,
}

impl Ctx<'_> {
    fn sym(&self, id: u32) -> (String, String, String) {
        self.names.get(&id).cloned().unwrap_or_else(|| {
            (
                "unknown".to_string(),
                "unknown".to_string(),
                format!("id-{id}"),
            )
        })
    }
}

fn state_dir(out_root: &Path, config: &ExportConfig) -> PathBuf {
    config
        .state_dir
        .clone()
        .unwrap_or_else(|| out_root.join(".export"))
}

fn io_err(what: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Io(format!("{}: {e}", what.display()))
}

impl SourceRun {
    /// Open the source at its cursor and rebuild the candles that were open at the last commit.
    fn open(src: &JournalSource, state_dir: &Path) -> Result<SourceRun, ExportError> {
        let open_err = |error| ExportError::Open {
            source_name: src.name.clone(),
            error,
        };
        let cursor_path = state_dir.join(format!("{}.cursor", src.name));
        let state_path = state_dir.join(format!("{}.candles.json", src.name));
        let mut ct = CursorTailer::open(&src.dir, &cursor_path).map_err(open_err)?;
        let state: Option<CandleState> = match std::fs::read(&state_path) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| io_err(&state_path, e))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&state_path, e)),
        };
        let mut replay = None;
        if let Some(state) = state {
            let cursor = ct.cursor.next_seq();
            if state.seq > cursor {
                // Crashed between writing the state and committing the cursor: the files up to
                // `state.seq` are closed, so the cursor may move there.
                ct.cursor
                    .commit(state.seq)
                    .map_err(|e| io_err(ct.cursor.path(), e))?;
                drop(ct);
                ct = CursorTailer::open(&src.dir, &cursor_path).map_err(open_err)?;
                replay = Some(state);
            } else if state.seq == cursor {
                replay = Some(state);
            } else {
                tracing::warn!(source = %src.name, "export candle state is older than the cursor; open candles restart empty");
            }
        }
        let mut run = SourceRun {
            name: src.name.clone(),
            dir: src.dir.clone(),
            ct,
            state_path,
            candles: BTreeMap::new(),
            bufs: BTreeMap::new(),
            newest_ns: 0,
            summary: ExportSummary::default(),
        };
        if let Some(state) = replay {
            run.replay_open_candles(&state)?;
        }
        Ok(run)
    }

    /// Feed the trades of the candles open at `state.seq` back into fresh builders.
    fn replay_open_candles(&mut self, state: &CandleState) -> Result<(), ExportError> {
        let Some(from) = state.open.iter().map(|o| o.2).min() else {
            return Ok(());
        };
        for &(id, tf, first) in &state.open {
            if tf < 3 {
                self.candles
                    .entry(id)
                    .or_insert_with(Candles::new)
                    .open_from[tf] = Some(first);
            }
        }
        let mut t = Tailer::open_at(&self.dir, Some(codec::SCHEMA_HASH), from)
            .map_err(|e| ExportError::Journal(self.name.clone(), e))?;
        while let Some(r) = t
            .next()
            .map_err(|e| ExportError::Journal(self.name.clone(), e))?
        {
            if r.seq >= state.seq {
                break;
            }
            if r.kind != RecordKind::Market.as_u16() {
                continue;
            }
            let Ok(e) = codec::decode::<MarketEvent>(r.payload) else {
                continue;
            };
            let Some(c) = self.candles.get_mut(&e.instrument.0) else {
                continue;
            };
            let Some(tick) = c.classifier.classify(&e) else {
                continue;
            };
            for i in 0..3 {
                if c.open_from[i].is_some_and(|f| r.seq >= f) {
                    // The candle was open at the commit, so these ticks cannot close it.
                    let _ = c.builders[i].on_tick(&tick);
                }
            }
            self.summary.candle_ticks_replayed += 1;
        }
        Ok(())
    }

    /// Read every available record (at most `limit`); returns how many were read.
    fn pump(&mut self, ctx: &Ctx<'_>, limit: u64) -> Result<u64, ExportError> {
        let mut n = 0;
        while n < limit {
            let rec = match self.ct.tailer.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Err(ExportError::Journal(self.name.clone(), e)),
            };
            n += 1;
            // Copy what we need out of the borrowed record before touching `self` mutably.
            let (seq, ts) = (rec.seq, rec.timestamp);
            let item = Item::of(&rec);
            match item {
                Item::Market(e) => self.on_market(ctx, seq, ts, &e)?,
                Item::Decision(d) => self.on_decision(ctx, seq, &d)?,
                Item::Exec(x) => self.on_exec(ctx, seq, ts, &x)?,
                Item::Invalid => self.summary.invalid += 1,
                Item::Other => {}
            }
        }
        *self.summary.records.entry(self.name.clone()).or_default() += n;
        Ok(n)
    }

    fn on_market(
        &mut self,
        ctx: &Ctx<'_>,
        seq: u64,
        ts: u64,
        e: &MarketEvent,
    ) -> Result<(), ExportError> {
        if !matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
            return Ok(());
        }
        let (ps, qs) = (e.price_scale, e.qty_scale);
        let time = if e.stamps.venue_ns != 0 {
            e.stamps.venue_ns
        } else {
            ts
        };
        let row = [
            Val::Ts(time),
            Val::U64(seq),
            Val::Str(e.kind.name()),
            Val::U64(e.id),
            Val::Str(e.aggressor.name()),
            Val::Dec(e.price.0),
            Val::Dec(e.qty.0),
            Val::F64(e.price.to_f64(ps)),
            Val::F64(e.qty.to_f64(qs)),
        ];
        let id = e.instrument.0;
        self.emit(ctx, id, Table::Trades, time, seq, (ps, qs), &row)?;
        let c = self.candles.entry(id).or_insert_with(Candles::new);
        let Some(tick) = c.classifier.classify(e) else {
            return Ok(());
        };
        let mut closed: [Option<Candle>; 3] = [None; 3];
        for (i, slot) in closed.iter_mut().enumerate() {
            let before = c.builders[i].current().map(|k| k.open_time_ns);
            *slot = c.builders[i].on_tick(&tick);
            let after = c.builders[i].current().map(|k| k.open_time_ns);
            if after.is_some() && after != before {
                c.open_from[i] = Some(seq);
            }
        }
        for (i, k) in closed.iter().enumerate() {
            if let Some(k) = k {
                self.emit_candle(ctx, id, i, seq, k)?;
            }
        }
        Ok(())
    }

    fn emit_candle(
        &mut self,
        ctx: &Ctx<'_>,
        id: u32,
        tf: usize,
        seq: u64,
        k: &Candle,
    ) -> Result<(), ExportError> {
        let row = [
            Val::Ts(k.open_time_ns),
            Val::Ts(k.close_time_ns()),
            Val::U64(seq),
            Val::Dec(k.open.0),
            Val::Dec(k.high.0),
            Val::Dec(k.low.0),
            Val::Dec(k.close.0),
            Val::Dec(k.volume.0),
            Val::Dec(k.buy_volume.0),
            Val::Dec(k.sell_volume.0),
            Val::U32(k.ticks),
            Val::U32(k.buy_ticks),
            Val::U32(k.sell_ticks),
            Val::U32(k.late_ticks),
            Val::Ts(k.first_tick_ns),
            Val::Ts(k.last_tick_ns),
            Val::F64(k.close_f64()),
            Val::F64(k.volume.to_f64(k.qty_scale)),
        ];
        self.emit(
            ctx,
            id,
            Table::candles(tf),
            k.open_time_ns,
            seq,
            (k.price_scale, k.qty_scale),
            &row,
        )
    }

    fn on_decision(&mut self, ctx: &Ctx<'_>, seq: u64, d: &Decision) -> Result<(), ExportError> {
        let ps = d.price_scale;
        let mut row = vec![
            Val::Ts(d.time_ns),
            Val::U64(seq),
            Val::Str(d.outcome.name()),
            Val::U8(d.level),
            Val::Str(d.reason.name()),
            Val::Str(d.trend.name()),
            Val::Dec(d.price.0),
            Val::Str(d.zone_kind.name()),
            Val::Dec(d.zone_low.0),
            Val::Dec(d.zone_high.0),
            Val::U64(d.zone_id),
            Val::U32(d.zone_strength),
            Val::Bool(d.flags & Decision::FLAG_BOOK_PROVEN != 0),
            Val::Bool(d.flags & Decision::FLAG_SHORT_SIDE != 0),
            Val::U8(d.filter_mask),
        ];
        for v in [
            d.adx,
            d.hurst,
            d.hurst_corrected,
            d.mean_reversion,
            d.atr,
            d.imbalance_1m,
            d.imbalance_5m,
            d.imbalance_15m,
            d.bounce,
            d.volume_ratio,
            d.zscore,
            d.autocorr,
            d.confluence,
        ] {
            row.push(Val::F64(v));
        }
        row.extend(d.contributions.iter().map(|v| Val::F64(*v)));
        row.push(Val::F64(d.price.to_f64(ps)));
        self.emit(
            ctx,
            d.instrument.0,
            Table::Decisions,
            d.time_ns,
            seq,
            (ps, 0),
            &row,
        )
    }

    fn on_exec(
        &mut self,
        ctx: &Ctx<'_>,
        seq: u64,
        ts: u64,
        x: &ExecEvent,
    ) -> Result<(), ExportError> {
        let (ps, qs) = (x.price_scale, x.qty_scale);
        let time = if x.stamps.venue_ns != 0 {
            x.stamps.venue_ns
        } else {
            ts
        };
        let row = [
            Val::Ts(time),
            Val::U64(seq),
            Val::Str(x.kind.name()),
            Val::Str(x.side.name()),
            Val::U64(x.client_order_id),
            Val::U64(x.venue_order_id),
            Val::U64(x.trade_id),
            Val::Dec(x.last_px.0),
            Val::Dec(x.last_qty.0),
            Val::Dec(x.cum_qty.0),
            Val::Dec(x.leaves_qty.0),
            Val::I64(x.fee),
            Val::U8(x.fee_scale),
            Val::F64(x.fee_decimal().to_f64()),
            Val::Bool(x.is_maker),
            Val::I64(i64::from(x.venue_error)),
            Val::F64(x.last_px.to_f64(ps)),
            Val::F64(x.last_qty.to_f64(qs)),
        ];
        self.emit(
            ctx,
            x.instrument.0,
            Table::Executions,
            time,
            seq,
            (ps, qs),
            &row,
        )
    }

    /// Buffer a row of `table` for instrument `id` at event time `time`; flush the buffers of
    /// days that are over (past the grace) or full.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        ctx: &Ctx<'_>,
        id: u32,
        table: Table,
        time: u64,
        seq: u64,
        scales: (u8, u8),
        row: &[Val],
    ) -> Result<(), ExportError> {
        self.newest_ns = self.newest_ns.max(time);
        let day = time / DAY_NS;
        let key = (id, table, day);
        let buf = self.bufs.entry(key).or_insert_with(|| Buf {
            first_seq: seq,
            price_scale: scales.0,
            qty_scale: scales.1,
            sheet: Sheet::new(&columns(table, scales.0, scales.1)),
        });
        if (buf.price_scale, buf.qty_scale) != scales {
            self.summary.invalid += 1;
            return Ok(());
        }
        buf.sheet.push(row).map_err(ExportError::Io)?;
        *self
            .summary
            .rows
            .entry(table.dir().to_string())
            .or_default() += 1;
        let full = buf.sheet.len() >= ctx.config.max_rows_per_file;
        if full {
            self.write_buf(ctx, key)?;
        }
        // Days whose end (plus grace) is behind the newest event time are complete.
        let grace = u64::try_from(ctx.config.day_grace.as_nanos()).unwrap_or(u64::MAX);
        let done: Vec<_> = self
            .bufs
            .keys()
            .filter(|k| (k.2 + 1).saturating_mul(DAY_NS).saturating_add(grace) <= self.newest_ns)
            .copied()
            .collect();
        for k in done {
            self.write_buf(ctx, k)?;
        }
        Ok(())
    }

    fn write_buf(&mut self, ctx: &Ctx<'_>, key: (u32, Table, u64)) -> Result<(), ExportError> {
        let Some(mut buf) = self.bufs.remove(&key) else {
            return Ok(());
        };
        if buf.sheet.is_empty() {
            return Ok(());
        }
        let path = part_path(
            ctx.out_root,
            &ctx.sym(key.0),
            key.1,
            key.2,
            &self.name,
            buf.first_seq,
        );
        let batch = buf.sheet.take_batch().map_err(|e| io_err(&path, e))?;
        write_parquet(&path, &batch).map_err(ExportError::Io)?;
        self.summary.files_written.push(path);
        Ok(())
    }

    /// Close every open candle (finalize).
    fn close_all_candles(&mut self, ctx: &Ctx<'_>) -> Result<(), ExportError> {
        let seq = self.ct.tailer.next_seq();
        let mut closed = Vec::new();
        for (id, c) in &mut self.candles {
            for i in 0..3 {
                if let Some(k) = c.builders[i].advance_to(u64::MAX) {
                    closed.push((*id, i, k));
                }
                c.open_from[i] = None;
            }
        }
        for (id, i, k) in closed {
            self.emit_candle(ctx, id, i, seq, &k)?;
        }
        Ok(())
    }

    /// Write every buffer, then the candle state, then commit the cursor.
    fn commit(&mut self, ctx: &Ctx<'_>) -> Result<(), ExportError> {
        let keys: Vec<_> = self.bufs.keys().copied().collect();
        for k in keys {
            self.write_buf(ctx, k)?;
        }
        let seq = self.ct.tailer.next_seq();
        let state = CandleState {
            seq,
            open: self
                .candles
                .iter()
                .flat_map(|(id, c)| {
                    (0..3).filter_map(move |i| {
                        c.builders[i].current()?;
                        c.open_from[i].map(|f| (*id, i, f))
                    })
                })
                .collect(),
        };
        write_atomic(
            &self.state_path,
            &serde_json::to_vec(&state).map_err(|e| io_err(&self.state_path, e))?,
        )?;
        self.ct
            .commit()
            .map_err(|e| io_err(self.ct.cursor.path(), e))?;
        self.summary.cursors.insert(self.name.clone(), seq);
        Ok(())
    }
}

/// A record's content, copied out of the mapping.
enum Item {
    Market(MarketEvent),
    Decision(Box<Decision>),
    Exec(ExecEvent),
    Invalid,
    Other,
}

impl Item {
    fn of(r: &RecordRef<'_>) -> Item {
        match RecordKind::from_u16(r.kind) {
            Some(RecordKind::Market) => {
                codec::decode::<MarketEvent>(r.payload).map_or(Item::Invalid, Item::Market)
            }
            Some(RecordKind::Decision) => codec::decode::<Decision>(r.payload)
                .map_or(Item::Invalid, |d| Item::Decision(Box::new(d))),
            Some(RecordKind::Exec) => {
                codec::decode::<ExecEvent>(r.payload).map_or(Item::Invalid, Item::Exec)
            }
            _ => Item::Other,
        }
    }
}

/// The columns of `table` at the given scales.
fn columns(table: Table, ps: u8, qs: u8) -> Vec<(&'static str, ColType)> {
    use ColType::*;
    match table {
        Table::Trades => vec![
            ("time", Ts),
            ("seq", U64),
            ("kind", Str),
            ("trade_id", U64),
            ("side", Str),
            ("price", Dec(ps)),
            ("qty", Dec(qs)),
            ("price_f64", F64),
            ("qty_f64", F64),
        ],
        Table::Candles1m | Table::Candles5m | Table::Candles15m => vec![
            ("timestamp", Ts),
            ("close_time", Ts),
            ("seq", U64),
            ("open", Dec(ps)),
            ("high", Dec(ps)),
            ("low", Dec(ps)),
            ("close", Dec(ps)),
            ("volume", Dec(qs)),
            ("buy_volume", Dec(qs)),
            ("sell_volume", Dec(qs)),
            ("num_trades", U32),
            ("num_buy_trades", U32),
            ("num_sell_trades", U32),
            ("late_trades", U32),
            ("first_trade_time", Ts),
            ("last_trade_time", Ts),
            ("close_f64", F64),
            ("volume_f64", F64),
        ],
        Table::Decisions => vec![
            ("time", Ts),
            ("seq", U64),
            ("outcome", Str),
            ("level", U8),
            ("reason", Str),
            ("trend", Str),
            ("price", Dec(ps)),
            ("zone_kind", Str),
            ("zone_low", Dec(ps)),
            ("zone_high", Dec(ps)),
            ("zone_id", U64),
            ("zone_strength", U32),
            ("book_proven", Bool),
            ("short_side", Bool),
            ("filter_mask", U8),
            ("adx", F64),
            ("hurst", F64),
            ("hurst_corrected", F64),
            ("mean_reversion", F64),
            ("atr", F64),
            ("imbalance_1m", F64),
            ("imbalance_5m", F64),
            ("imbalance_15m", F64),
            ("bounce", F64),
            ("volume_ratio", F64),
            ("zscore", F64),
            ("autocorr", F64),
            ("confluence", F64),
            ("score_market_profile", F64),
            ("score_mean_reversion", F64),
            ("score_autocorrelation", F64),
            ("score_demand_zone", F64),
            ("score_supply_target", F64),
            ("score_fair_value_gap", F64),
            ("price_f64", F64),
        ],
        Table::Executions => vec![
            ("time", Ts),
            ("seq", U64),
            ("kind", Str),
            ("side", Str),
            ("client_order_id", U64),
            ("venue_order_id", U64),
            ("trade_id", U64),
            ("last_px", Dec(ps)),
            ("last_qty", Dec(qs)),
            ("cum_qty", Dec(qs)),
            ("leaves_qty", Dec(qs)),
            ("fee_mantissa", I64),
            ("fee_scale", U8),
            ("fee", F64),
            ("is_maker", Bool),
            ("venue_error", I64),
            ("last_px_f64", F64),
            ("last_qty_f64", F64),
        ],
    }
}

/// Write a small file atomically (temporary file, `fsync`, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write as _;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Instrument names by id: `config.instruments`, then each source's `instruments.json`.
fn instrument_names(
    sources: &[JournalSource],
    config: &ExportConfig,
) -> BTreeMap<u32, (String, String, String)> {
    let mut m = BTreeMap::new();
    for i in &config.instruments {
        m.insert(i.id, symbol_path(i));
    }
    for s in sources {
        match read_instruments(&s.dir) {
            Ok(v) => {
                for i in v {
                    m.entry(i.id).or_insert_with(|| symbol_path(&i));
                }
            }
            Err(e) => {
                tracing::warn!(dir = %s.dir.display(), error = %e, "export: instruments.json unreadable")
            }
        }
    }
    m
}

/// The retention reference time.
fn reference_ns(config: &ExportConfig, newest_event_ns: u64) -> u64 {
    match config.retention_clock {
        RetentionClock::EventTime => newest_event_ns,
        RetentionClock::Wall => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// Export everything the sources hold beyond their cursors into `out_root`, write and commit,
/// apply retention, and return what was done.
pub fn run_once(
    sources: &[JournalSource],
    out_root: &Path,
    config: &ExportConfig,
) -> Result<ExportSummary, ExportError> {
    let ctx = Ctx {
        out_root,
        config,
        names: instrument_names(sources, config),
    };
    let sd = state_dir(out_root, config);
    let mut total = ExportSummary::default();
    let mut newest = 0;
    for src in sources {
        let mut run = SourceRun::open(src, &sd)?;
        run.pump(&ctx, u64::MAX)?;
        if config.finalize {
            run.close_all_candles(&ctx)?;
        }
        run.commit(&ctx)?;
        newest = newest.max(run.newest_ns);
        total.merge(std::mem::take(&mut run.summary));
    }
    if newest > 0 || config.retention_clock == RetentionClock::Wall {
        total.files_deleted =
            apply_retention(out_root, &config.retention, reference_ns(config, newest))
                .map_err(|e| io_err(out_root, e))?;
        // A part written in this run and deleted at once is not "written".
        total
            .files_written
            .retain(|p| !total.files_deleted.contains(p));
    }
    Ok(total)
}

/// A running tailing exporter; dropping it stops the thread after a final flush and commit.
pub struct ExportHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<ExportSummary, ExportError>>>,
}

impl ExportHandle {
    /// Stop, flush, commit, and return the summary of the whole run.
    pub fn stop(mut self) -> Result<ExportSummary, ExportError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ExportError::Io("export thread panicked".into())),
            None => Ok(ExportSummary::default()),
        }
    }
}

impl Drop for ExportHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Tail the sources on a cold thread (`export`): read new records as they are appended, write
/// and commit every `flush_interval` (and on stop), apply retention after each write.
/// Candles close when a trade of a later bucket arrives (event time); `finalize` is ignored.
pub fn spawn(
    sources: Vec<JournalSource>,
    out_root: PathBuf,
    config: ExportConfig,
) -> Result<ExportHandle, ExportError> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sd = state_dir(&out_root, &config);
    // Open now so that a bad journal or cursor is reported to the caller, not only logged.
    let mut runs = sources
        .iter()
        .map(|s| SourceRun::open(s, &sd))
        .collect::<Result<Vec<_>, _>>()?;
    let thread = std::thread::Builder::new()
        .name("export".into())
        .spawn(move || -> Result<ExportSummary, ExportError> {
            let ctx = Ctx {
                out_root: &out_root,
                config: &config,
                names: instrument_names(&sources, &config),
            };
            let mut total = ExportSummary::default();
            let mut last_flush = Instant::now();
            let mut dirty = false;
            loop {
                let stopping = flag.load(Ordering::Acquire);
                let mut read = 0;
                for r in &mut runs {
                    read += r.pump(&ctx, 65_536)?;
                }
                dirty |= read > 0;
                if (dirty && last_flush.elapsed() >= config.flush_interval) || stopping {
                    let mut newest = 0;
                    for r in &mut runs {
                        r.commit(&ctx)?;
                        newest = newest.max(r.newest_ns);
                        total.merge(std::mem::take(&mut r.summary));
                    }
                    let deleted = apply_retention(
                        &out_root,
                        &config.retention,
                        reference_ns(&config, newest),
                    )
                    .map_err(|e| io_err(&out_root, e))?;
                    total.files_deleted.extend(deleted);
                    last_flush = Instant::now();
                    dirty = false;
                    if stopping {
                        return Ok(total);
                    }
                }
                if read == 0 {
                    std::thread::sleep(config.poll_interval);
                }
            }
        })
        .map_err(|e| ExportError::Io(format!("spawning the export thread: {e}")))?;
    Ok(ExportHandle {
        stop,
        thread: Some(thread),
    })
}
