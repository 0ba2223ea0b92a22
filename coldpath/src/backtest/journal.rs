//! Reading a run's journals into the plain records the metrics work on.
//!
//! Why a one-shot reader instead of a tailer: a backtest report is computed once the run has
//! ended, over everything the run wrote, so each journal is read from its first record to its
//! last with the codec's validating decoders and no cursor. What is read, from the layout
//! `algo-engine run` writes (`<root>`, `<root>/strategy`, `<root>/gateway`):
//!
//! * `<root>/strategy`: `TradeClose` (the closed trades, with exact P&L after fees),
//!   `Decision` (the reference price of an entry) and `OrderIntent` (which order was an entry or
//!   an exit, and for which decision);
//! * `<root>/gateway` (and the strategy journal, should it ever carry them): `ExecEvent` fills,
//!   de-duplicated by order, trade id and cumulative quantity;
//! * `<root>`: the feed's market trades, for each symbol's event-time span and for the
//!   *arrival price* of orders that have no other reference (exits: the last trade of the
//!   symbol at the event time that triggered the order);
//! * `<root>/instruments.json` for symbol names and `<root>/config.toml` for the starting
//!   equity of `[risk]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use hotpath::codec::{self, RecordKind};
use hotpath::event::{Decision, ExecEvent, ExecKind, MarketEvent, MarketKind, OrderIntent};
use hotpath::event::{ReasonCode, Side};
use hotpath::fixed::mantissa_to_f64;
use hotpath::risk::TradeClose;
use ringbuffers::journal::JournalError;

use super::{Role, Slippage, TradeRecord};

/// Why a run's journals could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A journal could not be opened or read.
    #[error("journal {dir}: {source}")]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// The cause.
        source: JournalError,
    },
    /// A record failed validation.
    #[error("journal {dir}: record {seq}: {source}")]
    Record {
        /// The journal directory.
        dir: PathBuf,
        /// Its sequence number.
        seq: u64,
        /// The cause.
        source: codec::CodecError,
    },
    /// A side file (instruments, configuration) could not be read.
    #[error("{0}")]
    File(String),
}

/// Event-time span of a symbol's market trades, ns since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First trade's event time.
    pub first_ns: u64,
    /// Last trade's event time.
    pub last_ns: u64,
}

/// Everything a report is computed from.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    /// Closed trades in journal order.
    pub trades: Vec<TradeRecord>,
    /// One slippage observation per fill whose order has a reference price.
    pub slippage: Vec<Slippage>,
    /// Fills whose order had no reference price (unknown order, or no trade seen before it).
    pub unreferenced_fills: usize,
    /// Event-time span of each symbol's market trades (empty when the feed journal is absent).
    pub spans: BTreeMap<String, Span>,
    /// Equity at the start of the run (`[risk] starting_equity` of the run's configuration).
    pub starting_equity: f64,
}

/// What an order intent tells about its fills.
#[derive(Debug, Clone, Copy)]
struct IntentInfo {
    side: Side,
    role: Role,
    /// Explicit price (limit orders), mantissa and scale; 0 for market orders.
    price: i64,
    price_scale: u8,
    decision_seq: u64,
    venue_ns: u64,
    instrument: u32,
}

/// Reads every record of the journal in `dir`, in order.
fn for_each_record(
    dir: &Path,
    mut f: impl FnMut(&ringbuffers::journal::RecordRef<'_>) -> Result<(), codec::CodecError>,
) -> Result<(), LoadError> {
    let journal_err = |source| LoadError::Journal {
        dir: dir.to_path_buf(),
        source,
    };
    let mut t = codec::open_tailer(dir).map_err(journal_err)?;
    while let Some(r) = t.next().map_err(journal_err)? {
        f(&r).map_err(|source| LoadError::Record {
            dir: dir.to_path_buf(),
            seq: r.seq,
            source,
        })?;
    }
    Ok(())
}

/// The symbol names of the journal rooted at `root` by instrument id (`instruments.json`).
pub fn symbols(root: &Path) -> Result<HashMap<u32, String>, LoadError> {
    let infos = crate::import::read_instruments(root)
        .map_err(|e| LoadError::File(format!("{}/instruments.json: {e}", root.display())))?;
    Ok(infos.into_iter().map(|i| (i.id, i.symbol)).collect())
}

/// `[risk] starting_equity` of the configuration written beside the journal (`config.toml`),
/// or the risk layer's default when there is none or it does not set it.
pub fn starting_equity(root: &Path) -> Result<f64, LoadError> {
    let default = hotpath::risk::RiskConfig::default().starting_equity;
    let path = root.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(default),
        Err(e) => return Err(LoadError::File(format!("{}: {e}", path.display()))),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| LoadError::File(format!("{}: {e}", path.display())))?;
    Ok(table
        .get("risk")
        .and_then(|r| r.get("starting_equity"))
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .unwrap_or(default))
}

fn symbol_of(names: &HashMap<u32, String>, id: u32) -> String {
    names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
}

/// The closed trades of the run rooted at `root` (its strategy journal's `TradeClose`
/// records, in journal order), without reading the other journals: what a sweep needs from
/// each run.
pub fn load_trades(root: &Path) -> Result<Vec<TradeRecord>, LoadError> {
    let names = symbols(root)?;
    let mut trades = Vec::new();
    let strategy = root.join("strategy");
    if strategy.is_dir() {
        for_each_record(&strategy, |r| {
            if r.kind == RecordKind::TradeClose.as_u16() {
                let c: TradeClose = codec::decode(r.payload)?;
                trades.push(TradeRecord::from_close(
                    &c,
                    &symbol_of(&names, c.instrument.0),
                ));
            }
            Ok(())
        })?;
    }
    Ok(trades)
}

/// Reads the journals of the run rooted at `root` (see the module documentation).
pub fn load_run(root: &Path) -> Result<RunData, LoadError> {
    let names = symbols(root)?;
    let symbol = |id: u32| symbol_of(&names, id);
    let trades = load_trades(root)?;

    let mut decisions: HashMap<u64, (i64, u8)> = HashMap::new();
    let mut intents: HashMap<u64, IntentInfo> = HashMap::new();
    let mut execs: Vec<ExecEvent> = Vec::new();
    let mut seen_fills: HashSet<(u64, u64, i64, u8)> = HashSet::new();
    let mut on_exec = |x: ExecEvent, execs: &mut Vec<ExecEvent>| {
        if matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill)
            && x.last_qty.0 > 0
            && seen_fills.insert((x.client_order_id, x.trade_id, x.cum_qty.0, x.kind as u8))
        {
            execs.push(x);
        }
    };

    let strategy = root.join("strategy");
    if strategy.is_dir() {
        for_each_record(&strategy, |r| {
            match RecordKind::from_u16(r.kind) {
                Some(RecordKind::Decision) => {
                    let d: Decision = codec::decode(r.payload)?;
                    if d.is_entry() {
                        decisions.insert(r.seq, (d.price.0, d.price_scale));
                    }
                }
                Some(RecordKind::Intent) => {
                    let i: OrderIntent = codec::decode(r.payload)?;
                    let role =
                        if matches!(i.reason, ReasonCode::ENTRY_LONG | ReasonCode::ENTRY_SHORT) {
                            Role::Entry
                        } else {
                            Role::Exit
                        };
                    intents.insert(
                        i.client_order_id,
                        IntentInfo {
                            side: i.side,
                            role,
                            price: i.price.0,
                            price_scale: i.price_scale,
                            decision_seq: i.decision_seq,
                            venue_ns: i.stamps.venue_ns,
                            instrument: i.instrument.0,
                        },
                    );
                }
                Some(RecordKind::Exec) => on_exec(codec::decode(r.payload)?, &mut execs),
                _ => {}
            }
            Ok(())
        })?;
    }
    let gateway = root.join("gateway");
    if gateway.is_dir() {
        for_each_record(&gateway, |r| {
            if r.kind == RecordKind::Exec.as_u16() {
                on_exec(codec::decode(r.payload)?, &mut execs);
            }
            Ok(())
        })?;
    }

    // Reference price of each fill: the order's own price, else its decision's, else the
    // arrival price (resolved below from the feed journal).
    enum Reference {
        Known(f64, &'static str),
        Arrival(usize),
    }
    let mut refs: Vec<Option<Reference>> = Vec::with_capacity(execs.len());
    let mut arrivals: Vec<(u64, u32, Option<f64>)> = Vec::new();
    for x in &execs {
        let r = intents.get(&x.client_order_id).map(|i| {
            if i.price != 0 {
                Reference::Known(mantissa_to_f64(i.price, i.price_scale), "limit")
            } else if let Some((px, sc)) = decisions
                .get(&i.decision_seq)
                .filter(|_| i.role == Role::Entry)
            {
                Reference::Known(mantissa_to_f64(*px, *sc), "decision")
            } else {
                arrivals.push((i.venue_ns, i.instrument, None));
                Reference::Arrival(arrivals.len() - 1)
            }
        });
        refs.push(r);
    }

    let spans = if has_segments(root) {
        market_pass(root, &names, &mut arrivals)?
    } else {
        BTreeMap::new()
    };

    let mut slippage = Vec::new();
    let mut unreferenced = 0;
    for (x, r) in execs.iter().zip(refs) {
        let (reference, kind) = match r {
            Some(Reference::Known(px, kind)) => (Some(px), kind),
            Some(Reference::Arrival(i)) => (arrivals[i].2, "arrival"),
            None => (None, ""),
        };
        let info = intents.get(&x.client_order_id);
        match (reference, info) {
            (Some(reference), Some(info)) if reference > 0.0 => slippage.push(Slippage::new(
                symbol(x.instrument.0),
                x.client_order_id,
                info.role,
                info.side,
                kind,
                reference,
                x.last_px.to_f64(x.price_scale),
                x.last_qty.to_f64(x.qty_scale),
            )),
            _ => unreferenced += 1,
        }
    }

    Ok(RunData {
        trades,
        slippage,
        unreferenced_fills: unreferenced,
        spans,
        starting_equity: starting_equity(root)?,
    })
}

fn has_segments(root: &Path) -> bool {
    ringbuffers::journal::list_segments(root).is_ok_and(|s| !s.is_empty())
}

/// One pass over the feed journal's market trades: each symbol's event-time span, and the
/// arrival price of each `(event ns, instrument, _)` request (the last trade of the instrument
/// at or before that event time, in journal order).
fn market_pass(
    root: &Path,
    names: &HashMap<u32, String>,
    arrivals: &mut [(u64, u32, Option<f64>)],
) -> Result<BTreeMap<String, Span>, LoadError> {
    let mut order: Vec<usize> = (0..arrivals.len()).collect();
    order.sort_by_key(|&i| arrivals[i].0);
    let mut next = 0;
    let mut last_px: HashMap<u32, f64> = HashMap::new();
    let mut spans: HashMap<u32, Span> = HashMap::new();
    for_each_record(root, |r| {
        if r.kind != RecordKind::Market.as_u16() {
            return Ok(());
        }
        let e: MarketEvent = codec::decode(r.payload)?;
        if !matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
            return Ok(());
        }
        let t = e.stamps.venue_ns;
        // Orders decided before this trade's time saw the prices before it.
        while next < order.len() && arrivals[order[next]].0 < t {
            let a = &mut arrivals[order[next]];
            a.2 = last_px.get(&a.1).copied();
            next += 1;
        }
        last_px.insert(e.instrument.0, e.price.to_f64(e.price_scale));
        if t != 0 {
            spans
                .entry(e.instrument.0)
                .and_modify(|s| {
                    s.first_ns = s.first_ns.min(t);
                    s.last_ns = s.last_ns.max(t);
                })
                .or_insert(Span {
                    first_ns: t,
                    last_ns: t,
                });
        }
        Ok(())
    })?;
    // Orders after the last trade: its price is their arrival price, unless they are stamped
    // far beyond it (another clock than the market's), where no market price is known.
    for &i in &order[next..] {
        let a = &mut arrivals[i];
        let on_clock = spans
            .get(&a.1)
            .is_some_and(|s| a.0 <= s.last_ns.saturating_add(super::CLOCK_TOLERANCE_NS));
        a.2 = last_px.get(&a.1).copied().filter(|_| on_clock);
    }
    Ok(spans
        .into_iter()
        .map(|(id, s)| (symbol_of(names, id), s))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotpath::event::{
        Aggressor, DecisionOutcome, DecisionReason, ExecKind, MarketEvent, Stamps, TimeInForce,
        Trend, ZoneSource,
    };
    use hotpath::event::{OrderType, ReasonCode};
    use hotpath::fixed::{Decimal, Price, Qty};
    use hotpath::instrument::{InstrumentRef, InstrumentTable, Venue};
    use ringbuffers::journal::Appender;

    const S: u64 = 1_000_000_000;
    /// 2024-08-08 00:00 UTC.
    const T0: u64 = 1_723_075_200 * S;

    fn decision(inst: InstrumentRef, time_ns: u64, price: Price) -> Decision {
        Decision {
            instrument: inst.id,
            outcome: DecisionOutcome::EnterLong,
            level: 0,
            reason: DecisionReason::Entry,
            trend: Trend::Up,
            time_ns,
            price,
            zone_low: Price(0),
            zone_high: Price(0),
            zone_id: 0,
            zone_strength: 0,
            price_scale: inst.price_scale,
            zone_kind: ZoneSource::None,
            filter_mask: 0,
            flags: 0,
            adx: 30.0,
            hurst: 0.6,
            hurst_corrected: 0.6,
            mean_reversion: 0.1,
            atr: 10.0,
            imbalance_1m: 3.0,
            imbalance_5m: 2.0,
            imbalance_15m: 1.0,
            bounce: 0.8,
            volume_ratio: 2.0,
            zscore: 0.0,
            autocorr: 0.0,
            confluence: 3.5,
            contributions: [0.0; 6],
            stamps: Stamps::new(time_ns, 0),
        }
    }

    fn intent(
        inst: InstrumentRef,
        side: Side,
        cid: u64,
        reason: ReasonCode,
        seq: u64,
        at: u64,
    ) -> OrderIntent {
        OrderIntent::new_order(
            inst,
            side,
            OrderType::Market,
            TimeInForce::Ioc,
            Price::ZERO,
            Qty(10_000),
            cid,
        )
        .because(reason, seq)
        .with_stamps(Stamps::new(at, 0))
    }

    fn fill(inst: InstrumentRef, side: Side, cid: u64, px: i64, trade_id: u64) -> ExecEvent {
        ExecEvent::new(
            inst,
            ExecKind::Fill,
            side,
            cid,
            cid + 1000,
            Stamps::new(T0, 0),
        )
        .with_fill(Price(px), Qty(10_000), Qty(10_000), Qty(0), trade_id)
        .with_fee(Decimal::new(6, 1), false)
    }

    #[test]
    fn a_run_is_read_with_its_references_spans_and_equity() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut table = InstrumentTable::with_capacity(4);
        let id = table
            .intern(crate::import::builtin_spec(Venue::BinanceSpot, "BTCUSDT").unwrap())
            .unwrap();
        let spec = table.get(id);
        let inst = InstrumentRef {
            id,
            price_scale: spec.price_scale,
            qty_scale: spec.qty_scale,
        };
        let px = |p: i64| Price(p * 10i64.pow(u32::from(inst.price_scale)));
        crate::import::write_instruments(root, &table, "builtin").unwrap();
        std::fs::write(
            root.join("config.toml"),
            "[risk]\nstarting_equity = 5000.0\n",
        )
        .unwrap();

        // Feed: trades at +1000 s .. +1030 s.
        let mut feed = Appender::open(root, codec::journal_config()).unwrap();
        for (i, (t, p)) in [
            (1000, 60_000),
            (1010, 60_010),
            (1020, 59_990),
            (1030, 60_100),
        ]
        .into_iter()
        .enumerate()
        {
            let e = MarketEvent::trade(
                inst,
                Stamps::new(T0 + t * S, 0),
                px(p),
                Qty(1),
                Aggressor::Buy,
                i as u64,
            );
            codec::append(&mut feed, &e, 0, T0 + t * S).unwrap();
        }
        drop(feed);

        // Strategy: the entry decision and its intent, two exits, the closed trade.
        let sdir = root.join("strategy");
        std::fs::create_dir_all(&sdir).unwrap();
        let mut st = Appender::open(&sdir, codec::journal_config()).unwrap();
        let dseq =
            codec::append(&mut st, &decision(inst, T0 + 1005 * S, px(60_000)), 0, 0).unwrap();
        for i in [
            intent(
                inst,
                Side::Buy,
                11,
                ReasonCode::ENTRY_LONG,
                dseq,
                T0 + 1005 * S,
            ),
            intent(
                inst,
                Side::Sell,
                12,
                ReasonCode::EXIT_TRAILING_STOP,
                0,
                T0 + 1025 * S,
            ),
            // Stamped a day after the market: no price is known there.
            intent(
                inst,
                Side::Sell,
                14,
                ReasonCode::EXIT_MAX_HOLD,
                0,
                T0 + 87_000 * S,
            ),
        ] {
            codec::append(&mut st, &i, 0, 0).unwrap();
        }
        let close = TradeClose {
            instrument: id,
            side: Side::Buy,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            pnl_scale: 8,
            reason: ReasonCode::EXIT_TRAILING_STOP,
            fills: 2,
            hold_secs: 20,
            open_ns: T0 + 1006 * S,
            close_ns: T0 + 1026 * S,
            entry_px: px(60_003),
            exit_px: px(59_985),
            qty: Qty(10_000),
            gross_pnl: -180_000_000,
            fees: 120_000_000,
            net_pnl: -300_000_000,
            entry_cid: 11,
            exit_cid: 12,
        };
        codec::append(&mut st, &close, 0, 0).unwrap();
        drop(st);

        // Gateway: an ack (ignored), the fills, a duplicate report of one, an orphan fill.
        let gdir = root.join("gateway");
        std::fs::create_dir_all(&gdir).unwrap();
        let mut gw = Appender::open(&gdir, codec::journal_config()).unwrap();
        let ack = ExecEvent::new(inst, ExecKind::Ack, Side::Buy, 11, 1011, Stamps::new(T0, 0));
        for x in [
            ack,
            fill(inst, Side::Buy, 11, px(60_003).0, 1),
            fill(inst, Side::Sell, 12, px(59_985).0, 2),
            fill(inst, Side::Sell, 12, px(59_985).0, 2),
            fill(inst, Side::Sell, 14, px(59_000).0, 3),
            fill(inst, Side::Sell, 99, px(59_000).0, 4),
        ] {
            codec::append(&mut gw, &x, 0, 0).unwrap();
        }
        drop(gw);

        let run = load_run(root).unwrap();
        assert_eq!(run.starting_equity, 5000.0);
        assert_eq!(run.trades.len(), 1);
        assert_eq!(run.trades[0].symbol, "BTCUSDT");
        assert_eq!(run.trades[0].net.to_string(), "-3.00000000");
        assert_eq!(load_trades(root).unwrap(), run.trades);
        assert_eq!(
            run.spans["BTCUSDT"],
            Span {
                first_ns: T0 + 1000 * S,
                last_ns: T0 + 1030 * S
            }
        );
        // The entry against its decision (60,000): bought 3 higher = 0.5 bps. The exit against
        // the last trade before it was decided (59,990 at +1020 s): sold 5 lower.
        assert_eq!(run.slippage.len(), 2, "{:?}", run.slippage);
        let entry = &run.slippage[0];
        assert_eq!(
            (entry.role, entry.reference_kind, entry.client_order_id),
            (Role::Entry, "decision", 11)
        );
        assert!((entry.bps - 0.5).abs() < 1e-9, "{entry:?}");
        let exit = &run.slippage[1];
        assert_eq!(
            (exit.role, exit.reference_kind, exit.reference),
            (Role::Exit, "arrival", 59_990.0)
        );
        assert!((exit.bps - 5.0 / 59_990.0 * 1e4).abs() < 1e-9, "{exit:?}");
        // Order 14 (no market price at its time) and order 99 (no intent) have no reference.
        assert_eq!(run.unreferenced_fills, 2);

        let r = super::super::Report::compute(&run);
        assert!(r.market_clock && r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.return_pct, -3.0 / 5000.0 * 100.0);
        assert_eq!(r.symbols[0].span_hours, 30.0 / 3600.0);
    }

    #[test]
    fn a_directory_without_journals_reads_as_an_empty_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = load_run(dir.path()).unwrap();
        assert!(run.trades.is_empty() && run.spans.is_empty());
        assert_eq!(
            run.starting_equity,
            hotpath::risk::RiskConfig::default().starting_equity
        );
    }
}
