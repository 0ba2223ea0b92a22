//! Exact per-symbol statistics of a journal: what `algo-engine journal stats` prints.
//!
//! The point is a number that can be checked: every statistic is computed in fixed point from
//! the journaled [`MarketEvent`]s, so an independent reader of the *capture* (the stdlib-only
//! `scripts/check_stats.py`, using `decimal.Decimal`) must arrive at exactly the same counts,
//! sums and extremes, and at the same VWAP to the last unit of its scale. Any difference is a
//! bug in a decoder, the importer or the journal, not rounding noise.
//!
//! Per instrument and per event type (the [`MarketKind`] names):
//!
//! * `count`: events of that type (for `depth_level`, one per price level, snapshot levels
//!   included; `depth_updates` counts diff updates, i.e. levels carrying `FLAG_LAST` without
//!   `FLAG_SNAPSHOT`, and `snapshot_levels` the REST snapshot levels).
//! * `first_venue_ns` / `last_venue_ns`: the smallest and largest non-zero venue time
//!   (`stamps.venue_ns`); `null` when the messages carry none (spot `bookTicker`). Min/max rather
//!   than first/last in file order, because captures interleave streams whose venue clocks are
//!   not monotonic with respect to each other.
//! * `min_price` / `max_price`: trades and aggregated trades: the trade price; `book_ticker` and
//!   `quote`: the lowest non-zero bid and the highest non-zero ask; `depth_level`: the level price
//!   (removals included); `kline`: the lowest low and the highest high.
//! * Trades and aggregated trades only: `buy_qty`, `sell_qty`, `unknown_qty` (quantity by
//!   aggressor side), `qty` (their sum), `notional` (`sum(price * qty)`, exact, at
//!   `price_scale + qty_scale`) and `vwap = notional / qty` at `vwap_scale = price_scale +`
//!   [`VWAP_EXTRA_DECIMALS`] decimals, rounded **half to even** once, by exact long division.
//!
//! Per instrument also `book_gaps` (Gap records of kind `sequence`) and `book_resyncs` (Gap
//! records whose action was `resync`), from the records `hotpath::book` describes; and for the
//! journal, record counts by kind and the number of `FeedError` records.
//!
//! Decimal values are printed as exact decimal strings at the instrument's scale. Instrument
//! names come from the `instruments.json` file the importer writes next to the segments (the
//! journal format has no record kind for instrument definitions); without it instruments are
//! named `#<id>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hotpath::book::{GapAction, GapKind, GapRecord};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{Aggressor, MarketEvent, MarketKind};
use ringbuffers::journal::JournalError;
use serde::{Deserialize, Serialize};

use crate::import::{read_instruments, InstrumentInfo};

/// Decimals the VWAP carries beyond the instrument's price scale.
pub const VWAP_EXTRA_DECIMALS: u8 = 4;

/// Errors computing statistics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The instrument file could not be read.
    #[error("reading the instrument file: {0}")]
    Instruments(String),
}

/// Statistics of one event type of one instrument.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    /// Number of events.
    pub count: u64,
    /// Smallest non-zero venue time (ns since the epoch).
    pub first_venue_ns: Option<u64>,
    /// Largest venue time.
    pub last_venue_ns: Option<u64>,
    /// Lowest price (see the module documentation for which field).
    pub min_price: Option<String>,
    /// Highest price.
    pub max_price: Option<String>,
    /// Trades: quantity whose aggressor was a buyer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_qty: Option<String>,
    /// Trades: quantity whose aggressor was a seller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sell_qty: Option<String>,
    /// Trades: quantity with an unknown aggressor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_qty: Option<String>,
    /// Trades: total quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<String>,
    /// Trades: `sum(price * qty)`, exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notional: Option<String>,
    /// Trades: `notional / qty` at `vwap_scale`, half-even.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vwap: Option<String>,
    /// Trades: decimals of `vwap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vwap_scale: Option<u8>,
    /// Depth: diff updates (levels with `FLAG_LAST`, not from a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth_updates: Option<u64>,
    /// Depth: REST snapshot levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_levels: Option<u64>,
}

/// Statistics of one instrument.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolStats {
    /// Instrument id in the journal.
    pub instrument: u32,
    /// Venue name (`binance_spot`, ...), empty if unknown.
    pub venue: String,
    /// Venue symbol (`#<id>` if unknown).
    pub symbol: String,
    /// Price scale of its events.
    pub price_scale: u8,
    /// Quantity scale of its events.
    pub qty_scale: u8,
    /// By event type name (`trade`, `agg_trade`, `book_ticker`, `depth_level`, `kline`, `quote`).
    pub events: BTreeMap<String, KindStats>,
    /// Sequence gaps in its depth stream.
    pub book_gaps: u64,
    /// Times its book was un-proven and a new snapshot requested.
    pub book_resyncs: Option<u64>,
}

/// Everything `journal stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStats {
    /// Journal directory.
    pub dir: String,
    /// Records read.
    pub records: u64,
    /// Records by kind name.
    pub record_kinds: BTreeMap<String, u64>,
    /// `FeedError` records (decode errors and malformed capture lines).
    pub feed_errors: u64,
    /// Market records that failed validation (should be 0).
    pub invalid_events: u64,
    /// Per instrument, keyed `venue:SYMBOL` (or `#id`).
    pub symbols: BTreeMap<String, SymbolStats>,
}

/// Running sums for one (instrument, kind).
#[derive(Debug, Clone, Default)]
struct Acc {
    count: u64,
    first: Option<u64>,
    last: Option<u64>,
    min_px: Option<i64>,
    max_px: Option<i64>,
    buy: i128,
    sell: i128,
    unknown: i128,
    notional: i128,
    depth_updates: u64,
    snapshot_levels: u64,
}

impl Acc {
    fn price(&mut self, p: i64) {
        self.min_px = Some(self.min_px.map_or(p, |m| m.min(p)));
        self.max_px = Some(self.max_px.map_or(p, |m| m.max(p)));
    }

    fn add(&mut self, e: &MarketEvent) {
        self.count += 1;
        let t = e.stamps.venue_ns;
        if t != 0 {
            self.first = Some(self.first.map_or(t, |m| m.min(t)));
            self.last = Some(self.last.map_or(t, |m| m.max(t)));
        }
        match e.kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                self.price(e.price.0);
                let q = i128::from(e.qty.0);
                match e.aggressor {
                    Aggressor::Buy => self.buy += q,
                    Aggressor::Sell => self.sell += q,
                    Aggressor::Unknown => self.unknown += q,
                }
                self.notional += i128::from(e.price.0) * q;
            }
            MarketKind::BookTicker | MarketKind::Quote => {
                if e.bid_px.0 != 0 {
                    self.min_px = Some(self.min_px.map_or(e.bid_px.0, |m| m.min(e.bid_px.0)));
                }
                if e.ask_px.0 != 0 {
                    self.max_px = Some(self.max_px.map_or(e.ask_px.0, |m| m.max(e.ask_px.0)));
                }
            }
            MarketKind::DepthLevel => {
                self.price(e.price.0);
                if e.has(MarketEvent::FLAG_SNAPSHOT) {
                    self.snapshot_levels += 1;
                } else if e.is_last() {
                    self.depth_updates += 1;
                }
            }
            MarketKind::Kline => {
                // Kline: bid_px holds the low, ask_px the high.
                self.min_px = Some(self.min_px.map_or(e.bid_px.0, |m| m.min(e.bid_px.0)));
                self.max_px = Some(self.max_px.map_or(e.ask_px.0, |m| m.max(e.ask_px.0)));
            }
        }
    }

    fn finish(&self, kind: MarketKind, ps: u8, qs: u8) -> KindStats {
        let px = |m: Option<i64>| m.map(|v| format_i128(i128::from(v), ps));
        let mut k = KindStats {
            count: self.count,
            first_venue_ns: self.first,
            last_venue_ns: self.last,
            min_price: px(self.min_px),
            max_price: px(self.max_px),
            ..KindStats::default()
        };
        match kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                let total = self.buy + self.sell + self.unknown;
                k.buy_qty = Some(format_i128(self.buy, qs));
                k.sell_qty = Some(format_i128(self.sell, qs));
                k.unknown_qty = Some(format_i128(self.unknown, qs));
                k.qty = Some(format_i128(total, qs));
                k.notional = Some(format_i128(self.notional, ps + qs));
                let vs = ps + VWAP_EXTRA_DECIMALS;
                k.vwap = vwap_mantissa(self.notional, total, VWAP_EXTRA_DECIMALS)
                    .map(|v| format_i128(v, vs));
                k.vwap_scale = Some(vs);
            }
            MarketKind::DepthLevel => {
                k.depth_updates = Some(self.depth_updates);
                k.snapshot_levels = Some(self.snapshot_levels);
            }
            _ => {}
        }
        k
    }
}

/// `notional / qty` as a mantissa at `price_scale + extra` decimals, rounded half to even, by
/// exact long division; `notional` is at `price_scale + qty_scale`, `qty` at `qty_scale`.
/// `None` when `qty` is not positive or `notional` is negative.
///
/// `notional / 10^(ps+qs) / (qty / 10^qs) = notional / (qty * 10^ps)`; at `ps + extra` decimals
/// that is `notional * 10^extra / qty`: integer part first, then one decimal digit at a time
/// (`r * 10 / qty`, with `r < qty`, so nothing overflows while `qty < i128::MAX / 10`).
pub fn vwap_mantissa(notional: i128, qty: i128, extra: u8) -> Option<i128> {
    if qty <= 0 || notional < 0 || qty > i128::MAX / 10 {
        return None;
    }
    let mut q = notional / qty;
    let mut r = notional % qty;
    for _ in 0..extra {
        r *= 10;
        q = q.checked_mul(10)?.checked_add(r / qty)?;
        r %= qty;
    }
    // Half to even on the remainder r / qty.
    let twice = r * 2; // r < qty <= i128::MAX / 10
    if twice > qty || (twice == qty && q % 2 == 1) {
        q += 1;
    }
    Some(q)
}

/// An `i128` mantissa as an exact decimal string at `scale`.
pub fn format_i128(m: i128, scale: u8) -> String {
    let neg = m < 0;
    let digits = m.unsigned_abs().to_string();
    let s = usize::from(scale);
    let mut out = String::with_capacity(digits.len() + 3);
    if neg {
        out.push('-');
    }
    if s == 0 {
        out.push_str(&digits);
    } else if digits.len() > s {
        let (i, f) = digits.split_at(digits.len() - s);
        let _ = write!(out, "{i}.{f}");
    } else {
        let _ = write!(out, "0.{}{digits}", "0".repeat(s - digits.len()));
    }
    out
}

/// Read every record of the journal in `dir` and compute the statistics.
pub fn journal_stats(dir: &Path) -> Result<JournalStats, StatsError> {
    let instruments: BTreeMap<u32, InstrumentInfo> = read_instruments(dir)
        .map_err(|e| StatsError::Instruments(e.to_string()))?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let mut tailer = codec::open_tailer(dir)?;
    let mut out = JournalStats {
        dir: dir.display().to_string(),
        ..JournalStats::default()
    };
    // (instrument, kind) -> sums; instrument -> (ps, qs); instrument -> (gaps, resyncs).
    let mut accs: BTreeMap<(u32, u8), Acc> = BTreeMap::new();
    let mut scales: BTreeMap<u32, (u8, u8)> = BTreeMap::new();
    let mut gaps: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    while let Some(rec) = tailer.next()? {
        out.records += 1;
        *out.record_kinds
            .entry(crate::inspect::kind_name(rec.kind))
            .or_insert(0) += 1;
        match RecordKind::from_u16(rec.kind) {
            Some(RecordKind::Market) => match codec::decode::<MarketEvent>(rec.payload) {
                Ok(e) => {
                    let id = e.instrument.0;
                    let sc = *scales.entry(id).or_insert((e.price_scale, e.qty_scale));
                    if sc != (e.price_scale, e.qty_scale) {
                        out.invalid_events += 1;
                        continue;
                    }
                    accs.entry((id, e.kind.as_u8())).or_default().add(&e);
                }
                Err(_) => out.invalid_events += 1,
            },
            Some(RecordKind::FeedError) => out.feed_errors += 1,
            Some(RecordKind::Gap) => {
                if let Some(g) = GapRecord::parse(rec.payload) {
                    let e = gaps.entry(g.instrument.0).or_default();
                    if g.kind == GapKind::Sequence {
                        e.0 += 1;
                    }
                    if g.action == GapAction::Resync {
                        e.1 += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let ids: std::collections::BTreeSet<u32> = scales
        .keys()
        .chain(gaps.keys())
        .chain(instruments.keys())
        .copied()
        .collect();
    for id in ids {
        let info = instruments.get(&id);
        let (ps, qs) = scales
            .get(&id)
            .copied()
            .or_else(|| info.map(|i| (i.price_scale, i.qty_scale)))
            .unwrap_or((0, 0));
        let (g, r) = gaps.get(&id).copied().unwrap_or((0, 0));
        let mut s = SymbolStats {
            instrument: id,
            venue: info.map(|i| i.venue.clone()).unwrap_or_default(),
            symbol: info.map_or_else(|| format!("#{id}"), |i| i.symbol.clone()),
            price_scale: ps,
            qty_scale: qs,
            events: BTreeMap::new(),
            book_gaps: g,
            book_resyncs: Some(r),
        };
        for ((_, k), acc) in accs.range((id, 0)..=(id, u8::MAX)) {
            if let Some(kind) = MarketKind::from_u8(*k) {
                s.events
                    .insert(kind.name().to_string(), acc.finish(kind, ps, qs));
            }
        }
        let key = if s.venue.is_empty() {
            s.symbol.clone()
        } else {
            format!("{}:{}", s.venue, s.symbol)
        };
        out.symbols.insert(key, s);
    }
    Ok(out)
}

/// The statistics as text (what `journal stats` prints without `--json`).
pub fn render_text(s: &JournalStats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "journal {}", s.dir);
    let _ = writeln!(
        o,
        "records: {}  feed errors: {}  invalid events: {}",
        s.records, s.feed_errors, s.invalid_events
    );
    let kinds: Vec<String> = s
        .record_kinds
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let _ = writeln!(o, "by record kind: {}", kinds.join(" "));
    for (key, sym) in &s.symbols {
        let _ = writeln!(
            o,
            "\n{key}  (instrument #{}, price scale {}, qty scale {}; book gaps {}, resyncs {})",
            sym.instrument,
            sym.price_scale,
            sym.qty_scale,
            sym.book_gaps,
            sym.book_resyncs.unwrap_or(0)
        );
        for (kind, k) in &sym.events {
            let t = |v: Option<u64>| v.map_or_else(|| "-".into(), crate::inspect::format_unix_ns);
            let _ = writeln!(
                o,
                "  {kind:<12} count {:>8}  venue time {} .. {}  price {} .. {}",
                k.count,
                t(k.first_venue_ns),
                t(k.last_venue_ns),
                k.min_price.as_deref().unwrap_or("-"),
                k.max_price.as_deref().unwrap_or("-"),
            );
            if let (Some(b), Some(sl), Some(q)) = (&k.buy_qty, &k.sell_qty, &k.qty) {
                let _ = writeln!(
                    o,
                    "  {:<12} qty {q} (buy {b}, sell {sl}, unknown {})  vwap {}",
                    "",
                    k.unknown_qty.as_deref().unwrap_or("0"),
                    k.vwap.as_deref().unwrap_or("-")
                );
            }
            if let (Some(u), Some(sn)) = (k.depth_updates, k.snapshot_levels) {
                let _ = writeln!(o, "  {:<12} diff updates {u}, snapshot levels {sn}", "");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings() {
        assert_eq!(format_i128(12_345, 2), "123.45");
        assert_eq!(format_i128(5, 3), "0.005");
        assert_eq!(format_i128(-5, 3), "-0.005");
        assert_eq!(format_i128(0, 2), "0.00");
        assert_eq!(format_i128(42, 0), "42");
    }

    #[test]
    fn vwap_rounds_half_even_exactly() {
        // 1.5 at scale 0 (extra 0): ties to even -> 2; 2.5 -> 2; 2.5000001 -> 3.
        assert_eq!(vwap_mantissa(3, 2, 0), Some(2));
        assert_eq!(vwap_mantissa(5, 2, 0), Some(2));
        assert_eq!(vwap_mantissa(25_000_001, 10_000_000, 0), Some(3));
        // 10/3 at 4 extra decimals = 3.3333
        assert_eq!(vwap_mantissa(10, 3, 4), Some(33_333));
        // 20/3 = 6.66666.. -> 6.6667
        assert_eq!(vwap_mantissa(20, 3, 4), Some(66_667));
        assert_eq!(vwap_mantissa(1, 0, 4), None);
        // Large values do not overflow: 1e30 / 7.
        let v = vwap_mantissa(10i128.pow(30), 7, 4).unwrap();
        assert_eq!(v, (10i128.pow(34) + 3) / 7);
    }
}
