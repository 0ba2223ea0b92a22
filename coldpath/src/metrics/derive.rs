//! Metrics derived from journal records: [`JournalMetrics`] folds every record of every engine
//! journal into counters, gauges and latency histograms, and renders them.
//!
//! Everything here is computed from what the hot stages journaled, so the hot side pays
//! nothing for it (no lock, no atomic, no extra store): the tailer threads of
//! [`super::spawn`] feed records in with [`JournalMetrics::observe`], and the HTTP handler
//! renders under the same cold-side mutex.
//!
//! What each record contributes:
//!
//! * every record: `algo_events_total{stage,kind}` and `algo_journal_bytes_total{stage}` (the
//!   record's size in the journal, header and padding included); kinds this build cannot name
//!   are counted as `kind#N`. A fixed-size event that fails validation counts in
//!   `algo_errors_total{kind="invalid_record"}`.
//! * `Market` (feed): events by symbol and market kind, book state (`FLAG_BOOK_PROVEN` of the
//!   symbol's latest event), last trade price (the mark for unrealised P&L), the decode latency
//!   (receive TSC -> `Decoded`), and venue time -> local receive time, whose rolling minimum is
//!   the clock offset estimate.
//! * `FeedError`: `algo_errors_total{kind="feed_error"}`. `Gap`: book gaps and resyncs by symbol
//!   (parsed with [`hotpath::book::GapRecord`]), and the connection records
//!   (`market_data_connection_lost` / `_restored`): disconnects, reconnects, connected state.
//! * `Decision` (strategy): decisions by symbol, outcome and reason; the ring hop (`Decoded` ->
//!   `StrategyIn`) and strategy (`StrategyIn` -> `StrategyOut`) latencies of the triggering event.
//! * `Intent`: intents by symbol, action and reason; when the gateway stamped `GatewaySend`, the
//!   gateway (`StrategyOut` -> `GatewaySend`) and tick-to-trade (receive -> `GatewaySend`) latencies.
//! * `Exec`: order updates by state, orders by last state (`open` while not terminal), venue
//!   rejections by reason (`venue_<code>`), positions and P&L from fills (average-cost
//!   accounting in the quote currency, fees subtracted as quote), equity peak and drawdown.
//!
//! # Time
//!
//! Latencies between two TSC stamps of one event are converted with `quanta`'s calibration in
//! this process: the stamps are raw counter readings of the same machine (`quanta::Clock::raw`,
//! the invariant TSC, or the monotonic clock on machines without one, which every process of the
//! machine picks alike), so a delta converts correctly in any process there. Venue -> receive is
//! a difference of two wall clocks (the venue's event time and the journal record's receive
//! timestamp), so it includes the clock offset between the machines; it is exported separately
//! and never mixed with TSC deltas.
//!
//! The health score is on the design's 0-100 scale: 100 times the mean of three parts in
//! `[0, 1]`: the share of known symbols whose book is proven, market-data connectivity (1 unless
//! the latest connection record is a loss), and journal integrity (1 unless a tailer is stuck on
//! a corrupt record). It is the exporter's own view; the risk manager's score, when the live
//! source supplies `algo_health_score`, takes its place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hotpath::book::GapRecord;
use hotpath::codec::{self, RecordKind};
use hotpath::event::{
    Decision, ExecEvent, ExecKind, MarketEvent, MarketKind, OrderIntent, Stage, Stamps,
};
use ringbuffers::journal::{record_len, RecordRef};

use super::exposition::{Exposition, LatencyHistogram, MetricType};

/// A gauge family: metric name, help text, and how to read the value.
type GaugeDef<F> = (&'static str, &'static str, F);
/// A per-journal gauge.
type JournalReader = fn(&JournalState) -> f64;
type JournalGauge = GaugeDef<JournalReader>;
/// A per-symbol price gauge.
type PriceReader = fn(&SymbolState) -> Option<f64>;
type PriceGauge = GaugeDef<PriceReader>;
/// A per-position gauge (position, last price).
type PositionReader = fn(&Position, Option<f64>) -> f64;
type PositionGauge = GaugeDef<PositionReader>;

/// Latency hops, in the order they are rendered (the `stage` label of
/// `algo_stage_latency_seconds`).
pub const HOPS: [&str; 5] = ["decode", "ring_hop", "strategy", "gateway", "tick_to_trade"];

/// Market events between two publications of the clock offset estimate.
const OFFSET_WINDOW: u64 = 1024;

/// Per journal (per `stage` label) bookkeeping.
#[derive(Debug, Default)]
struct JournalState {
    events: BTreeMap<String, u64>,
    bytes: u64,
    errors: BTreeMap<&'static str, u64>,
    next_seq: u64,
    segment: u64,
    up: bool,
    corrupt: bool,
    /// When the tailer last found nothing new; `None` before its first read.
    caught_up_at: Option<Instant>,
    /// Whether the last poll ended at the journal's end.
    at_end: bool,
}

/// Per-symbol book and mark state.
#[derive(Debug, Default)]
struct SymbolState {
    proven: bool,
    last_trade: Option<f64>,
    best_bid: Option<f64>,
    best_ask: Option<f64>,
    gaps: BTreeMap<&'static str, u64>,
    resyncs: u64,
}

/// A position with average-cost accounting.
#[derive(Debug, Default, Clone, Copy)]
struct Position {
    qty: f64,
    avg_px: f64,
    realized: f64,
    fees: f64,
}

impl Position {
    fn fill(&mut self, signed_qty: f64, px: f64) {
        if self.qty == 0.0 || self.qty.signum() == signed_qty.signum() {
            let total = self.qty.abs() + signed_qty.abs();
            self.avg_px = (self.avg_px * self.qty.abs() + px * signed_qty.abs()) / total;
            self.qty += signed_qty;
            return;
        }
        let closed = signed_qty.abs().min(self.qty.abs());
        self.realized += closed * (px - self.avg_px) * self.qty.signum();
        let new_qty = self.qty + signed_qty;
        if new_qty == 0.0 || new_qty.abs() < 1e-12 {
            self.qty = 0.0;
            self.avg_px = 0.0;
        } else if new_qty.signum() != self.qty.signum() {
            self.qty = new_qty;
            self.avg_px = px;
        } else {
            self.qty = new_qty;
        }
    }

    fn unrealized(&self, mark: Option<f64>) -> f64 {
        match mark {
            Some(m) if self.qty != 0.0 => self.qty * (m - self.avg_px),
            _ => 0.0,
        }
    }
}

/// Every metric derived from the journals.
#[derive(Debug)]
pub struct JournalMetrics {
    clock: quanta::Clock,
    capital: Option<f64>,
    names: BTreeMap<u32, String>,
    journals: BTreeMap<String, JournalState>,
    market: BTreeMap<(u32, MarketKind), u64>,
    symbols: BTreeMap<u32, SymbolState>,
    disconnects: u64,
    reconnects: u64,
    connected: Option<bool>,
    decisions: BTreeMap<(u32, &'static str, &'static str), u64>,
    intents: BTreeMap<(u32, &'static str, String), u64>,
    order_updates: BTreeMap<&'static str, u64>,
    open_orders: BTreeSet<u64>,
    orders_ended: BTreeMap<&'static str, u64>,
    rejects: BTreeMap<String, u64>,
    positions: BTreeMap<u32, Position>,
    equity_peak: f64,
    latency: [LatencyHistogram; HOPS.len()],
    venue_to_recv: LatencyHistogram,
    venue_ahead: u64,
    offset_min_ns: i64,
    offset_seen: u64,
    clock_offset_ns: Option<i64>,
}

impl JournalMetrics {
    /// Empty metrics. `capital` (quote currency) turns drawdown into a ratio
    /// (`algo_drawdown_ratio`); without it only the absolute drawdown is exported.
    pub fn new(capital: Option<f64>) -> Self {
        JournalMetrics {
            clock: quanta::Clock::new(),
            capital: capital.filter(|c| *c > 0.0 && c.is_finite()),
            names: BTreeMap::new(),
            journals: BTreeMap::new(),
            market: BTreeMap::new(),
            symbols: BTreeMap::new(),
            disconnects: 0,
            reconnects: 0,
            connected: None,
            decisions: BTreeMap::new(),
            intents: BTreeMap::new(),
            order_updates: BTreeMap::new(),
            open_orders: BTreeSet::new(),
            orders_ended: BTreeMap::new(),
            rejects: BTreeMap::new(),
            positions: BTreeMap::new(),
            equity_peak: 0.0,
            latency: Default::default(),
            venue_to_recv: LatencyHistogram::default(),
            venue_ahead: 0,
            offset_min_ns: i64::MAX,
            offset_seen: 0,
            clock_offset_ns: None,
        }
    }

    /// Names instrument `id` `symbol` in labels (otherwise `#<id>`).
    pub fn set_symbol(&mut self, id: u32, symbol: &str) {
        self.names.insert(id, symbol.to_string());
    }

    /// True if an instrument was seen that has no name yet.
    pub fn missing_symbols(&self) -> bool {
        self.symbols.keys().any(|id| !self.names.contains_key(id))
    }

    /// Registers the journal `stage` (so it is rendered before its first record).
    pub fn register(&mut self, stage: &str) {
        self.journals.entry(stage.to_string()).or_default();
    }

    /// Whether the tailer of `stage` has its journal open.
    pub fn set_up(&mut self, stage: &str, up: bool) {
        self.journals.entry(stage.to_string()).or_default().up = up;
    }

    /// Counts an error of `kind` on `stage` (the tailer reports its own failures here).
    pub fn error(&mut self, stage: &str, kind: &'static str) {
        *self
            .journals
            .entry(stage.to_string())
            .or_default()
            .errors
            .entry(kind)
            .or_insert(0) += 1;
    }

    /// Marks the tailer of `stage` stuck on a corrupt record (or recovered from it).
    pub fn set_corrupt(&mut self, stage: &str, corrupt: bool) {
        self.journals.entry(stage.to_string()).or_default().corrupt = corrupt;
    }

    /// Whether the tailer of `stage` is stuck on a corrupt record.
    pub fn is_corrupt(&self, stage: &str) -> bool {
        self.journals.get(stage).is_some_and(|j| j.corrupt)
    }

    /// The tailer of `stage` finished a poll: `at_end` if it reached the journal's end.
    pub fn polled(&mut self, stage: &str, at_end: bool, now: Instant) {
        let j = self.journals.entry(stage.to_string()).or_default();
        j.at_end = at_end;
        if at_end || j.caught_up_at.is_none() {
            j.caught_up_at = Some(now);
        }
    }

    /// Folds one journal record of `stage` in.
    pub fn observe(&mut self, stage: &str, rec: &RecordRef<'_>) {
        let j = self.journals.entry(stage.to_string()).or_default();
        *j.events
            .entry(crate::inspect::kind_name(rec.kind))
            .or_insert(0) += 1;
        j.bytes += record_len(rec.payload.len()) as u64;
        j.next_seq = rec.seq + 1;
        j.segment = rec.segment;
        let ok = match RecordKind::from_u16(rec.kind) {
            Some(RecordKind::Market) => codec::decode::<MarketEvent>(rec.payload)
                .map(|e| self.market(&e, rec.timestamp))
                .is_ok(),
            Some(RecordKind::Decision) => codec::decode::<Decision>(rec.payload)
                .map(|d| self.decision(&d))
                .is_ok(),
            Some(RecordKind::Intent) => codec::decode::<OrderIntent>(rec.payload)
                .map(|i| self.intent(&i))
                .is_ok(),
            Some(RecordKind::Exec) => codec::decode::<ExecEvent>(rec.payload)
                .map(|x| self.exec(&x))
                .is_ok(),
            Some(RecordKind::FeedError) => {
                self.error(stage, "feed_error");
                true
            }
            Some(RecordKind::Gap) => {
                self.gap(rec.payload);
                true
            }
            _ => true,
        };
        if !ok {
            self.error(stage, "invalid_record");
        }
    }

    fn hop(&mut self, hop: usize, ticks: Option<u64>) {
        if let Some(t) = ticks {
            let ns = self.clock.delta_as_nanos(0, t);
            self.latency[hop].record_ns(ns);
        }
    }

    fn market(&mut self, e: &MarketEvent, recv_ns: u64) {
        let id = e.instrument.0;
        *self.market.entry((id, e.kind)).or_insert(0) += 1;
        let s = self.symbols.entry(id).or_default();
        s.proven = e.has(MarketEvent::FLAG_BOOK_PROVEN);
        match e.kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                s.last_trade = Some(e.price.to_f64(e.price_scale));
                self.mark_equity();
            }
            MarketKind::BookTicker | MarketKind::Quote => {
                s.best_bid = Some(e.bid_px.to_f64(e.price_scale));
                s.best_ask = Some(e.ask_px.to_f64(e.price_scale));
            }
            _ => {}
        }
        self.hop(0, e.stamps.since_recv(Stage::Decoded));
        let venue = e.stamps.venue_ns;
        if venue != 0 && recv_ns != 0 {
            let diff = recv_ns as i128 - venue as i128;
            if diff >= 0 {
                self.venue_to_recv
                    .record_ns(diff.min(u64::MAX as i128) as u64);
            } else {
                self.venue_ahead += 1;
            }
            let diff = diff.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            self.offset_min_ns = self.offset_min_ns.min(diff);
            self.offset_seen += 1;
            if self.offset_seen >= OFFSET_WINDOW {
                self.clock_offset_ns = Some(self.offset_min_ns);
                self.offset_min_ns = i64::MAX;
                self.offset_seen = 0;
            }
        }
    }

    fn decision(&mut self, d: &Decision) {
        *self
            .decisions
            .entry((d.instrument.0, d.outcome.name(), d.reason.name()))
            .or_insert(0) += 1;
        self.hop(1, d.stamps.between(Stage::Decoded, Stage::StrategyIn));
        self.hop(2, d.stamps.between(Stage::StrategyIn, Stage::StrategyOut));
    }

    fn intent(&mut self, i: &OrderIntent) {
        let reason = i
            .reason
            .name()
            .map_or_else(|| format!("code_{}", i.reason.0), str::to_string);
        *self
            .intents
            .entry((i.instrument.0, i.action.name(), reason))
            .or_insert(0) += 1;
        self.gateway_hops(&i.stamps);
    }

    fn gateway_hops(&mut self, s: &Stamps) {
        self.hop(3, s.between(Stage::StrategyOut, Stage::GatewaySend));
        self.hop(4, s.since_recv(Stage::GatewaySend));
    }

    fn exec(&mut self, x: &ExecEvent) {
        *self.order_updates.entry(x.kind.name()).or_insert(0) += 1;
        if x.is_terminal() {
            self.open_orders.remove(&x.client_order_id);
            *self.orders_ended.entry(x.kind.name()).or_insert(0) += 1;
        } else {
            self.open_orders.insert(x.client_order_id);
        }
        if x.kind == ExecKind::Rejected {
            *self
                .rejects
                .entry(format!("venue_{}", x.venue_error))
                .or_insert(0) += 1;
        }
        if matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) && x.last_qty.0 != 0 {
            let qty = x.last_qty.to_f64(x.qty_scale) * x.side.sign() as f64;
            let px = x.last_px.to_f64(x.price_scale);
            let p = self.positions.entry(x.instrument.0).or_default();
            p.fill(qty, px);
            p.fees += x.fee_decimal().to_f64();
            self.symbols.entry(x.instrument.0).or_default();
            self.mark_equity();
        }
    }

    fn gap(&mut self, payload: &[u8]) {
        if let Some(g) = GapRecord::parse(payload) {
            let s = self.symbols.entry(g.instrument.0).or_default();
            *s.gaps.entry(g.kind.name()).or_insert(0) += 1;
            if g.action == hotpath::book::GapAction::Resync {
                s.resyncs += 1;
            }
        } else if payload.starts_with(b"market_data_connection_lost") {
            self.disconnects += 1;
            self.connected = Some(false);
        } else if payload.starts_with(b"market_data_connection_restored") {
            self.reconnects += 1;
            self.connected = Some(true);
        }
    }

    /// Total P&L (realised - fees + unrealised at the last trade price), quote currency.
    pub fn equity(&self) -> f64 {
        self.positions
            .iter()
            .map(|(id, p)| {
                let mark = self.symbols.get(id).and_then(|s| s.last_trade);
                p.realized - p.fees + p.unrealized(mark)
            })
            .sum()
    }

    fn mark_equity(&mut self) {
        if !self.positions.is_empty() {
            self.equity_peak = self.equity_peak.max(self.equity());
        }
    }

    /// Current drawdown from the equity peak, quote currency (>= 0).
    pub fn drawdown(&self) -> f64 {
        (self.equity_peak - self.equity()).max(0.0)
    }

    /// The health score in `[0, 100]` (see the module documentation).
    pub fn health(&self) -> f64 {
        let books = if self.symbols.is_empty() {
            0.0
        } else {
            self.symbols.values().filter(|s| s.proven).count() as f64 / self.symbols.len() as f64
        };
        let connected = if self.connected == Some(false) {
            0.0
        } else {
            1.0
        };
        let journals = if self.journals.values().any(|j| j.corrupt) {
            0.0
        } else {
            1.0
        };
        100.0 * (books + connected + journals) / 3.0
    }

    /// Observations of latency hop `hop` (one of [`HOPS`]).
    pub fn latency(&self, hop: &str) -> Option<&LatencyHistogram> {
        HOPS.iter()
            .position(|h| *h == hop)
            .map(|i| &self.latency[i])
    }

    fn symbol(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Renders every derived metric into `out`; `now` dates the tailer lag.
    pub fn render(&self, out: &mut Exposition, now: Instant) {
        use MetricType::{Counter, Gauge, Histogram};

        if out.family(
            "algo_events_total",
            "Journal records by stage (journal) and record kind.",
            Counter,
        ) {
            for (stage, j) in &self.journals {
                for (kind, n) in &j.events {
                    out.sample(
                        "algo_events_total",
                        &[("stage", stage), ("kind", kind)],
                        *n as f64,
                    );
                }
            }
        }
        if out.family(
            "algo_errors_total",
            "Errors by stage and kind (feed_error, invalid_record, journal_corrupt, journal_open).",
            Counter,
        ) {
            for (stage, j) in &self.journals {
                for (kind, n) in &j.errors {
                    out.sample(
                        "algo_errors_total",
                        &[("stage", stage), ("kind", kind)],
                        *n as f64,
                    );
                }
            }
        }
        if out.family(
            "algo_journal_bytes_total",
            "Bytes of journal records read (headers and padding included).",
            Counter,
        ) {
            for (stage, j) in &self.journals {
                out.sample(
                    "algo_journal_bytes_total",
                    &[("stage", stage)],
                    j.bytes as f64,
                );
            }
        }
        let gauges: [JournalGauge; 3] = [
            (
                "algo_tailer_next_seq",
                "Sequence number of the next record the metrics tailer will read.",
                |j| j.next_seq as f64,
            ),
            (
                "algo_journal_segment",
                "Segment index of the last record read.",
                |j| j.segment as f64,
            ),
            (
                "algo_tailer_up",
                "1 when the metrics tailer has its journal open and is not stuck on corruption.",
                |j| f64::from(u8::from(j.up && !j.corrupt)),
            ),
        ];
        for (name, help, f) in gauges {
            if out.family(name, help, Gauge) {
                for (stage, j) in &self.journals {
                    out.sample(name, &[("stage", stage)], f(j));
                }
            }
        }
        if out.family(
            "algo_tailer_lag_seconds",
            "Seconds since the metrics tailer was last at the end of its journal (0 while it keeps up).",
            Gauge,
        ) {
            for (stage, j) in &self.journals {
                let lag = match (j.at_end, j.caught_up_at) {
                    (false, Some(t)) => now.saturating_duration_since(t),
                    _ => Duration::ZERO,
                };
                out.sample("algo_tailer_lag_seconds", &[("stage", stage)], lag.as_secs_f64());
            }
        }

        if out.family(
            "algo_market_events_total",
            "Market events by symbol and kind.",
            Counter,
        ) {
            for ((id, kind), n) in &self.market {
                let sym = self.symbol(*id);
                out.sample(
                    "algo_market_events_total",
                    &[("symbol", &sym), ("kind", kind.name())],
                    *n as f64,
                );
            }
        }
        if out.family(
            "algo_book_proven",
            "1 when the symbol's L2 book is proven (synchronised, no gap since its snapshot).",
            Gauge,
        ) {
            for (id, s) in &self.symbols {
                let sym = self.symbol(*id);
                out.sample(
                    "algo_book_proven",
                    &[("symbol", &sym)],
                    f64::from(u8::from(s.proven)),
                );
            }
        }
        if out.family(
            "algo_book_gaps_total",
            "Book synchronisation failures by symbol and gap kind.",
            Counter,
        ) {
            for (id, s) in &self.symbols {
                let sym = self.symbol(*id);
                for (kind, n) in &s.gaps {
                    out.sample(
                        "algo_book_gaps_total",
                        &[("symbol", &sym), ("kind", kind)],
                        *n as f64,
                    );
                }
            }
        }
        if out.family(
            "algo_book_resyncs_total",
            "Book resynchronisations by symbol.",
            Counter,
        ) {
            for (id, s) in &self.symbols {
                let sym = self.symbol(*id);
                out.sample(
                    "algo_book_resyncs_total",
                    &[("symbol", &sym)],
                    s.resyncs as f64,
                );
            }
        }
        let prices: [PriceGauge; 3] = [
            (
                "algo_last_trade_price",
                "Price of the symbol's latest trade.",
                |s| s.last_trade,
            ),
            (
                "algo_best_bid_price",
                "Best bid of the symbol's latest book ticker.",
                |s| s.best_bid,
            ),
            (
                "algo_best_ask_price",
                "Best ask of the symbol's latest book ticker.",
                |s| s.best_ask,
            ),
        ];
        for (name, help, f) in prices {
            if out.family(name, help, Gauge) {
                for (id, s) in &self.symbols {
                    if let Some(v) = f(s) {
                        let sym = self.symbol(*id);
                        out.sample(name, &[("symbol", &sym)], v);
                    }
                }
            }
        }
        if out.family(
            "algo_feed_disconnects_total",
            "Market-data sessions lost.",
            Counter,
        ) {
            out.sample("algo_feed_disconnects_total", &[], self.disconnects as f64);
        }
        if out.family(
            "algo_feed_reconnects_total",
            "Market-data sessions restored after a loss.",
            Counter,
        ) {
            out.sample("algo_feed_reconnects_total", &[], self.reconnects as f64);
        }
        if out.family(
            "algo_feed_connected",
            "0 after a market-data connection loss until it is restored, else 1.",
            Gauge,
        ) {
            let c = self.connected != Some(false);
            out.sample("algo_feed_connected", &[], f64::from(u8::from(c)));
        }

        if out.family(
            "algo_decisions_total",
            "Strategy decisions by symbol, outcome and reason.",
            Counter,
        ) {
            for ((id, outcome, reason), n) in &self.decisions {
                let sym = self.symbol(*id);
                out.sample(
                    "algo_decisions_total",
                    &[("symbol", &sym), ("state", outcome), ("reason", reason)],
                    *n as f64,
                );
            }
        }
        if out.family(
            "algo_intents_total",
            "Order intents by symbol, action and reason.",
            Counter,
        ) {
            for ((id, action, reason), n) in &self.intents {
                let sym = self.symbol(*id);
                out.sample(
                    "algo_intents_total",
                    &[("symbol", &sym), ("kind", action), ("reason", reason)],
                    *n as f64,
                );
            }
        }
        if out.family(
            "algo_order_updates_total",
            "Execution reports by order state.",
            Counter,
        ) {
            for (state, n) in &self.order_updates {
                out.sample("algo_order_updates_total", &[("state", state)], *n as f64);
            }
        }
        if out.family(
            "algo_orders",
            "Orders by last known state: open, or the terminal state they ended in.",
            Gauge,
        ) {
            out.sample(
                "algo_orders",
                &[("state", "open")],
                self.open_orders.len() as f64,
            );
            for (state, n) in &self.orders_ended {
                out.sample("algo_orders", &[("state", state)], *n as f64);
            }
        }
        if out.family(
            "algo_order_rejects_total",
            "Order rejections by reason (venue_<error code>).",
            Counter,
        ) {
            for (reason, n) in &self.rejects {
                out.sample("algo_order_rejects_total", &[("reason", reason)], *n as f64);
            }
        }
        let pos: [PositionGauge; 3] = [
            (
                "algo_position",
                "Signed position (base units) from fills.",
                |p, _| p.qty,
            ),
            (
                "algo_pnl_realized",
                "Realised P&L net of fees, quote currency.",
                |p, _| p.realized - p.fees,
            ),
            (
                "algo_pnl_unrealized",
                "Unrealised P&L at the last trade price, quote currency.",
                |p, m| p.unrealized(m),
            ),
        ];
        for (name, help, f) in pos {
            if out.family(name, help, Gauge) {
                for (id, p) in &self.positions {
                    let sym = self.symbol(*id);
                    let mark = self.symbols.get(id).and_then(|s| s.last_trade);
                    out.sample(name, &[("symbol", &sym)], f(p, mark));
                }
            }
        }
        if out.family(
            "algo_equity_pnl",
            "Total P&L (realised + unrealised), quote currency.",
            Gauge,
        ) {
            out.sample("algo_equity_pnl", &[], self.equity());
        }
        if out.family(
            "algo_drawdown",
            "Drawdown from the P&L peak, quote currency.",
            Gauge,
        ) {
            out.sample("algo_drawdown", &[], self.drawdown());
        }
        if let Some(capital) = self.capital {
            if out.family(
                "algo_drawdown_ratio",
                "Drawdown as a fraction of the capital.",
                Gauge,
            ) {
                out.sample("algo_drawdown_ratio", &[], self.drawdown() / capital);
            }
        }
        if out.family(
            "algo_health_score",
            "Health score 0-100: mean of proven-book share, connectivity and journal integrity.",
            Gauge,
        ) {
            out.sample("algo_health_score", &[], self.health());
        }

        if out.family(
            "algo_stage_latency_seconds",
            "Per-hop latency from the events' TSC stamps (decode, ring_hop, strategy, gateway, tick_to_trade).",
            Histogram,
        ) {
            for (hop, h) in HOPS.iter().zip(&self.latency) {
                out.histogram("algo_stage_latency_seconds", &[("stage", hop)], h);
            }
        }
        if out.family(
            "algo_venue_to_recv_seconds",
            "Venue event time to local receive time (wall clocks of two machines: includes their offset).",
            Histogram,
        ) {
            out.histogram("algo_venue_to_recv_seconds", &[], &self.venue_to_recv);
        }
        if out.family(
            "algo_venue_time_ahead_total",
            "Market events whose venue time was after their local receive time.",
            Counter,
        ) {
            out.sample("algo_venue_time_ahead_total", &[], self.venue_ahead as f64);
        }
        if let Some(off) = self.clock_offset_ns {
            if out.family(
                "algo_clock_offset_seconds",
                "Minimum of receive time minus venue time over the last 1024 market events.",
                Gauge,
            ) {
                out.sample("algo_clock_offset_seconds", &[], off as f64 / 1e9);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_cost_position_and_realised_pnl() {
        let mut p = Position::default();
        p.fill(2.0, 100.0);
        p.fill(1.0, 106.0);
        assert_eq!((p.qty, p.avg_px), (3.0, 102.0));
        p.fill(-1.0, 110.0);
        assert_eq!(p.realized, 8.0);
        p.fill(-4.0, 90.0); // closes 2 at -12 each, then short 2 at 90
        assert_eq!(p.realized, 8.0 - 24.0);
        assert_eq!((p.qty, p.avg_px), (-2.0, 90.0));
        assert_eq!(p.unrealized(Some(80.0)), 20.0);
    }
}
