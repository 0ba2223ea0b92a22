//! [`RiskEngine`]: positions, the execution chain, the exit monitors and the portfolio risk
//! manager of every symbol, driven by market events, entry decisions, fills and controls.
//!
//! Everything is preallocated in [`RiskEngine::new`] (a slot per instrument id, the
//! correlation rings, the [`Outbox`]); the per-event paths only read and write those. What
//! the engine decides goes to the outbox, which the caller drains after each call: order
//! intents (entries, exits with their `EXIT_*` / `RISK_*` reason), [`RiskReject`]s and
//! [`TradeClose`]s to journal.
//!
//! **Positions come from fills only.** An entry intent marks an entry *in flight* (it counts
//! toward the limits at once, so two decisions cannot both pass the exposure check) until its
//! fill or a terminal report; an exit is sent once per position until it ends. The gateway
//! answers every intent, so an order stays in flight until its terminal report, however long
//! that takes; only a run without a gateway sets `pending_timeout_ns`, the event time after
//! which an order nobody answered is forgotten (see [`RiskConfig::pending_timeout_ns`] for
//! why a deadline in event time cannot serve live or simulated runs). The monitor is activated by the
//! first entry fill, at the fill price.
//!
//! **Reversals** are sequenced: the close of the opposite position goes out at once and the
//! new entry, approved and already counted in flight, is sent when that close has filled (the
//! position is flat). Sent together, the entry could fill first and net against the position
//! the close was sized for, leaving the close to open a position nobody approved. A close that
//! ends without flattening (rejected, expired) drops the held entry, journaled as a rejection
//! ([`ReasonCode::RISK_REJECT_EXISTING`]); a close forgotten unanswered takes it along.
//!
//! **Exposure** ([`RiskEngine::exposure`]) holds everything the account may end up holding:
//! every open position, including one whose close is in flight (a reversal's or an exit's: it
//! is released only as the close fills, since a close can be rejected or expire), plus the
//! unfilled part of every entry in flight (a held reversal entry included). Quantity is valued
//! at the reference price the chain approved its entry at (a fill's own price only for fills of
//! no entry in flight), so fills move quantity from "in flight" to "open" at the same value
//! whatever their price: exposure rises only when the chain approves an entry (by at most what
//! it checked), and otherwise only falls. The exposure limit therefore holds through any
//! sequence of fills, partial fills and rejections of the orders the engine sent.
//!
//! **Clock.** The market data's event time, and nothing else: positions open and close, stops
//! and the 2-second checks run, deadlines and cool-downs expire on the times of the market
//! events the strategy has seen. An execution report is applied at that clock whatever its own
//! stamp says: live, the venue stamps executions milliseconds after the market data the
//! strategy has (or a little before it: the two streams are not one), so nothing is lost; but a
//! simulator replaying at full speed runs ahead of its client by whatever the socket buffers
//! hold (minutes of market time were measured on the 12 h synthetic market), and the gateway
//! stamps its local rejections and timeouts with the wall clock. Neither may move the
//! strategy's clock: it would jump past the market it trades on and stall every time-based
//! check until the data caught up.

use crate::codec::fnv1a64;
use crate::event::{
    ControlKind, ExecEvent, ExecKind, MarketEvent, MarketKind, OrderIntent, OrderType, ReasonCode,
    Side, Stamps, TimeInForce,
};
use crate::fixed::{mantissa_to_f64, rescale, Price, Qty, Rounding};
use crate::instrument::{InstrumentId, InstrumentKind, InstrumentRef, InstrumentSpec};

use super::chain::{ChainContext, ExecutionChain};
use super::monitor::PositionMonitor;
use super::portfolio::{
    drawdown_level, dump_signals, health_score, next_midnight_ns, Breaker, Correlation,
    DrawdownLevel, HealthAction, HealthInputs, MinuteBars,
};
use super::state::{TradingState, TradingStates};
use super::{OpenPosition, RiskConfig, RiskReject, TradeClose, PNL_SCALE};

/// Per-symbol risk attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolRisk {
    /// A meme coin (own size cap and hold limit).
    pub meme: bool,
    /// The market leader (BTC): its dumps close correlated longs.
    pub leader: bool,
    /// Per-market notional cap, quote currency.
    pub market_cap: f64,
}

impl SymbolRisk {
    /// Defaults for `spec`: the leader is the first `BTC*` symbol, no meme coins, no
    /// per-market cap beyond the chain's.
    pub fn for_instrument(spec: &InstrumentSpec) -> Self {
        SymbolRisk {
            meme: false,
            leader: spec.symbol.as_bytes().starts_with(b"BTC"),
            market_cap: f64::INFINITY,
        }
    }
}

/// Capacity of each outbox list.
const OUT: usize = 32;

/// What the engine decided since the last drain (fixed capacity; overflow is counted).
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Order intents, in order.
    pub intents: [OrderIntent; OUT],
    /// Number of valid `intents`.
    pub n_intents: usize,
    /// Rejections.
    pub rejects: [RiskReject; 8],
    /// Number of valid `rejects`.
    pub n_rejects: usize,
    /// Closed trades.
    pub closes: [TradeClose; 8],
    /// Number of valid `closes`.
    pub n_closes: usize,
    /// Items dropped because a list was full.
    pub overflow: u64,
}

impl Outbox {
    fn new(inst: InstrumentRef) -> Self {
        let intent = OrderIntent::new_order(
            inst,
            Side::Buy,
            OrderType::Market,
            TimeInForce::Ioc,
            Price::ZERO,
            Qty::ZERO,
            0,
        );
        let reject = RiskReject {
            instrument: InstrumentId::NONE,
            side: Side::Buy,
            state: 0,
            reason: ReasonCode::NONE,
            price_scale: 0,
            qty_scale: 0,
            reserved: 0,
            open_positions: 0,
            time_ns: 0,
            price: Price::ZERO,
            qty: Qty::ZERO,
            value: 0.0,
            limit: 0.0,
            decision_seq: 0,
        };
        let close = TradeClose {
            instrument: InstrumentId::NONE,
            side: Side::Buy,
            price_scale: 0,
            qty_scale: 0,
            pnl_scale: PNL_SCALE,
            reason: ReasonCode::NONE,
            fills: 0,
            hold_secs: 0,
            open_ns: 0,
            close_ns: 0,
            entry_px: Price::ZERO,
            exit_px: Price::ZERO,
            qty: Qty::ZERO,
            gross_pnl: 0,
            fees: 0,
            net_pnl: 0,
            entry_cid: 0,
            exit_cid: 0,
        };
        Outbox {
            intents: [intent; OUT],
            n_intents: 0,
            rejects: [reject; 8],
            n_rejects: 0,
            closes: [close; 8],
            n_closes: 0,
            overflow: 0,
        }
    }

    /// Empty every list.
    #[inline]
    pub fn clear(&mut self) {
        self.n_intents = 0;
        self.n_rejects = 0;
        self.n_closes = 0;
    }

    /// True if nothing is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n_intents == 0 && self.n_rejects == 0 && self.n_closes == 0
    }

    /// The waiting intents.
    pub fn intents(&self) -> &[OrderIntent] {
        &self.intents[..self.n_intents]
    }

    /// The waiting rejections.
    pub fn rejects(&self) -> &[RiskReject] {
        &self.rejects[..self.n_rejects]
    }

    /// The waiting closed trades.
    pub fn closes(&self) -> &[TradeClose] {
        &self.closes[..self.n_closes]
    }

    fn intent(&mut self, i: OrderIntent) {
        if self.n_intents < OUT {
            self.intents[self.n_intents] = i;
            self.n_intents += 1;
        } else {
            self.overflow += 1;
        }
    }

    fn reject(&mut self, r: RiskReject) {
        if self.n_rejects < self.rejects.len() {
            self.rejects[self.n_rejects] = r;
            self.n_rejects += 1;
        } else {
            self.overflow += 1;
        }
    }

    fn close(&mut self, c: TradeClose) {
        if self.n_closes < self.closes.len() {
            self.closes[self.n_closes] = c;
            self.n_closes += 1;
        } else {
            self.overflow += 1;
        }
    }
}

/// An order in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pending {
    cid: u64,
    reason: ReasonCode,
    /// Forgotten at this event time if still unanswered.
    deadline_ns: u64,
    /// The venue has answered (acknowledged or filled part of it): in flight until its end.
    answered: bool,
    /// Ordered quantity (mantissa; 0 for exits, which add no exposure).
    qty: i64,
    /// Filled so far, by fills of this order.
    filled: i64,
    /// Reference price the chain approved it at, quote per unit of quantity.
    px: f64,
}

impl Pending {
    /// A new order in flight.
    fn new(cid: u64, reason: ReasonCode, deadline_ns: u64, qty: i64, px: f64) -> Self {
        Pending {
            cid,
            reason,
            deadline_ns,
            answered: false,
            qty,
            filled: 0,
            px,
        }
    }

    /// Still in flight at `now_ns`.
    fn live(&self, now_ns: u64) -> bool {
        self.answered || now_ns < self.deadline_ns
    }

    /// The exposure of what is still unfilled, quote.
    fn unfilled_notional(&self, qty_scale: u8) -> f64 {
        self.px * mantissa_to_f64(self.qty.saturating_sub(self.filled).max(0), qty_scale)
    }
}

/// A position built from fills.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Position {
    /// Signed quantity (mantissa): > 0 long, < 0 short.
    qty: i64,
    /// Sum of price * qty of the entry fills (at price_scale + qty_scale).
    entry_value: i128,
    entry_qty: i64,
    /// Sum of price * qty of the exit fills.
    exit_value: i128,
    exit_qty: i64,
    /// Fees at PNL_SCALE.
    fees: i128,
    fills: u16,
    open_ns: u64,
    entry_cid: u64,
    /// Exposure value of the open quantity (quote, f64): each unit at the reference price of
    /// the entry it came from (see the module docs).
    notional: f64,
}

impl Position {
    fn side(&self) -> Option<Side> {
        match self.qty.signum() {
            1 => Some(Side::Buy),
            -1 => Some(Side::Sell),
            _ => None,
        }
    }
}

/// One symbol's risk state.
#[derive(Debug, Clone)]
struct Slot {
    inst: InstrumentRef,
    step: Qty,
    min_qty: Qty,
    reduce_only: bool,
    risk: SymbolRisk,
    venue: usize,
    last_px: Price,
    last_ts: u64,
    pos: Position,
    monitor: Option<PositionMonitor>,
    entry: Option<Pending>,
    exit: Option<Pending>,
    /// A reversal's entry and its reference price, approved and counted as in flight
    /// (`entry`), held back until the close of the opposite position has filled.
    deferred: Option<(OrderIntent, Price)>,
    /// Trades in sessions with a weekly close (forex).
    session: bool,
    bars: MinuteBars,
    corr: Correlation,
    breaker: Breaker,
    orders: u64,
    unrealized: f64,
}

/// Venues tracked by the venue breakers.
const VENUES: usize = 16;

/// Counters of the risk layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RiskCounters {
    /// Entries that passed the chain.
    pub entries: u64,
    /// Entries refused.
    pub rejects: u64,
    /// Exit intents sent.
    pub exits: u64,
    /// Positions closed.
    pub closes: u64,
    /// Drawdown alerts (2% level).
    pub drawdown_alerts: u64,
    /// Leader dumps detected.
    pub leader_dumps: u64,
    /// Breaker trips (symbol + venue).
    pub breaker_trips: u64,
    /// Fills for unknown instruments or with bad values.
    pub bad_fills: u64,
}

/// The risk layer of the strategy (see the module docs).
#[derive(Debug, Clone)]
pub struct RiskEngine {
    cfg: RiskConfig,
    slots: Box<[Option<Slot>]>,
    states: TradingStates,
    chain: ExecutionChain,
    out: Outbox,
    now_ns: u64,
    day: u64,
    day_start_equity: f64,
    realized_today: f64,
    unreal_total: f64,
    equity: f64,
    dd_level: DrawdownLevel,
    health_next_ns: u64,
    health: f64,
    health_action: HealthAction,
    venue_breakers: [Breaker; VENUES],
    venue_reduce_until: [u64; VENUES],
    leader: Option<usize>,
    leader_closes: [(u64, Price); 16],
    leader_ret: (u64, f64),
    leader_dump_minute: u64,
    /// Some instrument is session-based.
    has_sessions: bool,
    /// The current or next blocked session window `[start, end)`, ns.
    session_window: (u64, u64),
    counters: RiskCounters,
}

impl RiskEngine {
    /// An engine for the instruments `specs` yields (id, spec), with `risk(spec)` giving each
    /// symbol's attributes. Allocates here only.
    pub fn new<'a>(
        cfg: RiskConfig,
        specs: impl Iterator<Item = (InstrumentId, &'a InstrumentSpec, InstrumentRef)>,
        mut risk: impl FnMut(&InstrumentSpec) -> SymbolRisk,
    ) -> Self {
        let mut slots: Vec<Option<Slot>> = Vec::new();
        let mut venues: Vec<crate::instrument::Venue> = Vec::new();
        let mut leader = None;
        let mut any = None;
        for (id, spec, inst) in specs {
            let i = id.0 as usize;
            if slots.len() <= i {
                slots.resize_with(i + 1, || None);
            }
            let venue = match venues.iter().position(|v| *v == spec.venue) {
                Some(v) => v,
                None => {
                    venues.push(spec.venue);
                    venues.len() - 1
                }
            };
            let r = risk(spec);
            if r.leader && leader.is_none() {
                leader = Some(i);
            }
            any = Some(inst);
            slots[i] = Some(Slot {
                inst,
                step: spec.step,
                min_qty: spec.min_qty,
                reduce_only: !matches!(spec.kind, InstrumentKind::Spot),
                risk: r,
                venue: venue.min(VENUES - 1),
                last_px: Price::ZERO,
                last_ts: 0,
                pos: Position::default(),
                monitor: None,
                entry: None,
                exit: None,
                deferred: None,
                session: spec.is_session_based(),
                bars: MinuteBars::default(),
                corr: Correlation::new(1440),
                breaker: Breaker::default(),
                orders: 0,
                unrealized: 0.0,
            });
        }
        let n = slots.len();
        let has_sessions = slots.iter().flatten().any(|s| s.session);
        let filler = any.unwrap_or(InstrumentRef {
            id: InstrumentId::NONE,
            price_scale: 0,
            qty_scale: 0,
        });
        RiskEngine {
            chain: ExecutionChain::new(cfg.chain),
            cfg,
            slots: slots.into_boxed_slice(),
            states: TradingStates::new(n),
            out: Outbox::new(filler),
            now_ns: 0,
            day: 0,
            day_start_equity: cfg.starting_equity,
            realized_today: 0.0,
            unreal_total: 0.0,
            equity: cfg.starting_equity,
            dd_level: DrawdownLevel::Normal,
            health_next_ns: 0,
            health: 100.0,
            health_action: HealthAction::None,
            venue_breakers: [Breaker::default(); VENUES],
            venue_reduce_until: [0; VENUES],
            leader,
            leader_closes: [(u64::MAX, Price::ZERO); 16],
            leader_ret: (u64::MAX, 0.0),
            leader_dump_minute: u64::MAX,
            has_sessions,
            session_window: (0, 0),
            counters: RiskCounters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RiskConfig {
        &self.cfg
    }

    /// The outbox (drain it after each call with [`Outbox::clear`]).
    pub fn outbox(&self) -> &Outbox {
        &self.out
    }

    /// The outbox, mutable (to clear it).
    pub fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// Counters.
    pub fn counters(&self) -> RiskCounters {
        self.counters
    }

    /// The trading states.
    pub fn states(&self) -> &TradingStates {
        &self.states
    }

    /// Effective state of `id` now (venue breaker included).
    pub fn state_of(&self, id: InstrumentId) -> TradingState {
        let i = id.0 as usize;
        let s = self.states.effective(i, self.now_ns);
        match self.slots.get(i).and_then(Option::as_ref) {
            Some(slot) if self.now_ns < self.venue_reduce_until[slot.venue] => {
                s.max(TradingState::Reducing)
            }
            Some(_) => s,
            None => TradingState::Halted,
        }
    }

    /// Current equity (starting equity plus realized P&L), quote.
    pub fn equity(&self) -> f64 {
        self.equity
    }

    /// Latest health score.
    pub fn health(&self) -> f64 {
        self.health
    }

    /// Today's drawdown level.
    pub fn drawdown_level(&self) -> DrawdownLevel {
        self.dd_level
    }

    /// Event time of the last event seen.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Signed position quantity of `id` (mantissa).
    pub fn position_qty(&self, id: InstrumentId) -> i64 {
        self.slot(id).map_or(0, |s| s.pos.qty)
    }

    /// The exit monitor of `id`'s position, if one is open.
    pub fn monitor(&self, id: InstrumentId) -> Option<&PositionMonitor> {
        self.slot(id).and_then(|s| s.monitor.as_ref())
    }

    /// `id`'s open position, if any.
    pub fn open_position(&self, id: InstrumentId) -> Option<OpenPosition> {
        let s = self.slot(id)?;
        let p = &s.pos;
        Some(OpenPosition {
            side: p.side()?,
            qty: Qty(p.qty.abs()),
            entry_px: vwap(p.entry_value, p.entry_qty),
            open_ns: p.open_ns,
            entry_cid: p.entry_cid,
            fills: p.fills,
        })
    }

    /// Takes over the positions earlier runs left open (at start-up, before any event).
    ///
    /// `fills` are the earlier runs' fills in journal order, instrument ids already this
    /// engine's. They are applied to a flat copy of this engine, each at its own venue time,
    /// by the same code that applies live fills; the positions the copy ends with (quantity,
    /// entry value, fees, open time, entry order, a monitor activated at the first entry fill)
    /// become this engine's, so their stops, exits and P&L work as for positions it opened.
    /// Nothing else of the past is taken: the trades it closed were journaled by the runs that
    /// closed them, and equity, breakers and limits start afresh as on any start. Returns the
    /// instruments left with a position.
    pub fn inherit<'a>(
        &mut self,
        fills: impl IntoIterator<Item = &'a ExecEvent>,
    ) -> Vec<InstrumentId> {
        let mut past = self.clone();
        for s in past.slots.iter_mut().flatten() {
            s.pos = Position::default();
            s.monitor = None;
        }
        for x in fills {
            if !matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) {
                continue;
            }
            past.advance(x.stamps.venue_ns);
            past.on_exec(x);
            past.out.clear();
        }
        let mut held = Vec::new();
        for (mine, theirs) in self.slots.iter_mut().zip(&past.slots) {
            if let (Some(m), Some(t)) = (mine.as_mut(), theirs.as_ref()) {
                m.pos = t.pos;
                m.monitor = t.monitor;
                if t.pos.qty != 0 {
                    held.push(m.inst.id);
                }
            }
        }
        held
    }

    /// Open positions plus entries in flight.
    pub fn open_positions(&self) -> u32 {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.pos.qty != 0 || s.entry.is_some_and(|p| p.live(self.now_ns)))
            .count() as u32
    }

    /// Exposure, quote: every open position (one being closed included: it is released as
    /// its close fills) plus the unfilled part of every entry in flight, valued at the
    /// reference prices the chain approved (see the module docs).
    pub fn exposure(&self) -> f64 {
        self.slots
            .iter()
            .flatten()
            .map(|s| {
                s.pos.notional
                    + s.entry
                        .filter(|p| p.live(self.now_ns))
                        .map_or(0.0, |p| p.unfilled_notional(s.inst.qty_scale))
            })
            .sum()
    }

    /// Whether session-based instruments are in their blocked window now (from the pre-close
    /// lead until the weekly open); always false without session-based instruments.
    #[inline]
    fn session_closed(&mut self) -> bool {
        if !self.has_sessions || !self.cfg.session.enabled {
            return false;
        }
        let now = self.now_ns;
        if now >= self.session_window.1 {
            self.session_window = self.cfg.session.window_at(now);
        }
        now >= self.session_window.0
    }

    /// Close every open position of a session-based instrument (once per position until
    /// answered, as every exit).
    fn close_sessions(&mut self, stamps: Stamps) {
        for j in 0..self.slots.len() {
            if matches!(&self.slots[j], Some(s) if s.session && s.pos.qty != 0) {
                self.exit(j, ReasonCode::EXIT_SESSION_CLOSE, stamps);
            }
        }
    }

    fn slot(&self, id: InstrumentId) -> Option<&Slot> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn advance(&mut self, ts: u64) {
        if ts <= self.now_ns {
            return;
        }
        self.now_ns = ts;
        let day = ts / 86_400_000_000_000;
        if day != self.day {
            self.day = day;
            self.day_start_equity = self.equity;
            self.realized_today = 0.0;
            self.dd_level = DrawdownLevel::Normal;
            self.states.account_mut().reducing = false;
        }
    }

    /// Drop `i`'s unanswered in-flight orders past their deadline (checked lazily where they
    /// matter, so no per-event sweep over every symbol).
    fn expire(&mut self, i: usize) {
        let now = self.now_ns;
        if let Some(Some(s)) = self.slots.get_mut(i) {
            if s.entry.is_some_and(|p| !p.live(now)) {
                s.entry = None;
                s.deferred = None;
            }
            if s.exit.is_some_and(|p| !p.live(now)) {
                s.exit = None;
            }
        }
    }

    /// One market event. Trades move the monitors and the portfolio checks; trades and quotes
    /// (forex venues have no trade prints) move the clock and, in a session's pre-close
    /// window, close session-based positions; exits go to the outbox. `imbalances` gives the
    /// symbol's current 1m/5m/15m imbalances (read only when a check needs them).
    #[inline]
    pub fn on_market(
        &mut self,
        e: &MarketEvent,
        imbalances: impl Fn(InstrumentId) -> [Option<f64>; 3],
    ) {
        let trade = matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade);
        if !trade && e.kind != MarketKind::Quote {
            return;
        }
        let i = e.instrument.0 as usize;
        let ts = e.stamps.venue_ns;
        if ts != 0 {
            self.advance(ts);
        }
        if self.session_closed() {
            self.close_sessions(e.stamps);
        }
        if !trade {
            return;
        }
        self.expire(i);
        let now = self.now_ns;
        let cfg = self.cfg;
        let Some(Some(s)) = self.slots.get_mut(i) else {
            return;
        };
        let before = s.unrealized;
        s.last_px = e.price;
        s.last_ts = now;
        let closed = s.bars.on_trade(
            now,
            e.price,
            e.qty.0 as f64,
            !matches!(e.aggressor, crate::event::Aggressor::Sell),
        );
        let mut exit = None;
        if let Some(m) = s.monitor.as_mut() {
            if let Some(sig) = m.on_trade(&cfg.monitor, e.price, now, || imbalances(e.instrument)) {
                exit = Some(sig.reason);
            }
            s.unrealized = unrealized(s);
            let max_hold = if s.risk.meme {
                cfg.portfolio.meme_max_hold_ns
            } else {
                cfg.portfolio.max_hold_ns
            };
            if exit.is_none() && max_hold > 0 && now.saturating_sub(s.pos.open_ns) > max_hold {
                exit = Some(ReasonCode::EXIT_MAX_HOLD);
            }
            if exit.is_none() && closed.is_some() {
                if let Some(side) = s.pos.side() {
                    let fired = dump_signals(
                        &s.bars,
                        side,
                        cfg.portfolio.dump_bars,
                        cfg.portfolio.dump_flip_ratio,
                        imbalances(e.instrument)[0],
                    );
                    if fired >= cfg.portfolio.dump_min_signals.max(1) {
                        exit = Some(ReasonCode::EXIT_DUMP);
                    }
                }
            }
        }
        self.unreal_total += s.unrealized - before;
        if let Some(reason) = exit {
            self.exit(i, reason, e.stamps);
        }
        if let Some(bar) = closed {
            self.on_bar(i, bar.minute, bar.close);
        }
        if self.leader == Some(i) {
            self.check_leader(i, e.stamps);
        }
        if self.unreal_total != 0.0 || self.realized_today != 0.0 {
            self.check_drawdown(e.stamps);
        }
        if now >= self.health_next_ns {
            self.health_next_ns = now.saturating_add(cfg.portfolio.health_interval_ns.max(1));
            self.check_health(e.stamps, &imbalances);
        }
    }

    /// A closed 1m bar of symbol `i`: returns for the correlation.
    fn on_bar(&mut self, i: usize, minute: u64, close: Price) {
        if self.leader == Some(i) {
            let k = (minute % 16) as usize;
            let prev = self.leader_closes[((minute + 15) % 16) as usize];
            if prev.0 == minute.wrapping_sub(1) && prev.1 .0 > 0 {
                self.leader_ret = (minute, close.0 as f64 / prev.1 .0 as f64 - 1.0);
            }
            self.leader_closes[k] = (minute, close);
            return;
        }
        let (lm, lr) = self.leader_ret;
        let Some(Some(s)) = self.slots.get_mut(i) else {
            return;
        };
        if let Some(prev) = s.bars.back(1) {
            if lm == minute && prev.minute + 1 == minute && prev.close.0 > 0 {
                s.corr.push(close.0 as f64 / prev.close.0 as f64 - 1.0, lr);
            }
        }
    }

    /// Leader dump: the leader's price against its 1m close `leader_window` ago.
    fn check_leader(&mut self, i: usize, stamps: Stamps) {
        let Some(Some(s)) = self.slots.get(i) else {
            return;
        };
        let minute = self.now_ns / 60_000_000_000;
        let back = (self.cfg.portfolio.leader_window_ns / 60_000_000_000).clamp(1, 15);
        let then = minute.saturating_sub(back);
        let (m, px) = self.leader_closes[(then % 16) as usize];
        if m != then || px.0 <= 0 || self.leader_dump_minute == minute {
            return;
        }
        let change = s.last_px.0 as f64 / px.0 as f64 - 1.0;
        if change > -self.cfg.portfolio.leader_drop_frac {
            return;
        }
        self.leader_dump_minute = minute;
        self.counters.leader_dumps += 1;
        let min_pairs = self.cfg.portfolio.correlation_min_pairs;
        let thr = self.cfg.portfolio.correlation_exit;
        for j in 0..self.slots.len() {
            let close = match &self.slots[j] {
                Some(s) if j != i && s.pos.qty > 0 => {
                    s.corr.value(min_pairs).is_some_and(|c| c > thr)
                }
                _ => false,
            };
            if close {
                self.exit(j, ReasonCode::RISK_CORRELATION, stamps);
            }
        }
    }

    fn check_drawdown(&mut self, stamps: Stamps) {
        let dd = -(self.realized_today + self.unreal_total)
            / self.day_start_equity.max(f64::MIN_POSITIVE);
        let level = drawdown_level(&self.cfg.portfolio.drawdown_levels, dd);
        if level <= self.dd_level {
            return;
        }
        self.dd_level = level;
        match level {
            DrawdownLevel::Normal => {}
            DrawdownLevel::Alert => self.counters.drawdown_alerts += 1,
            DrawdownLevel::CloseWorstHalf => {
                self.states.account_mut().reducing = true;
                let n = self.open_count();
                self.close_worst(n.div_ceil(2), ReasonCode::RISK_DRAWDOWN, stamps);
            }
            DrawdownLevel::CloseAll | DrawdownLevel::Halt => {
                self.states.account_mut().reducing = true;
                if level == DrawdownLevel::Halt {
                    self.states.account_mut().halt_until_ns = next_midnight_ns(self.now_ns);
                }
                for j in 0..self.slots.len() {
                    self.exit(j, ReasonCode::RISK_DRAWDOWN, stamps);
                }
            }
        }
    }

    fn open_count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.pos.qty != 0)
            .count()
    }

    /// Close the `n` positions with the worst unrealized P&L relative to their notional.
    fn close_worst(&mut self, n: usize, reason: ReasonCode, stamps: Stamps) {
        for _ in 0..n {
            let mut worst: Option<(usize, f64)> = None;
            for (j, s) in self.slots.iter().enumerate() {
                let Some(s) = s else { continue };
                if s.pos.qty == 0 || s.exit.is_some() {
                    continue;
                }
                let r = s.unrealized / s.pos.notional.max(f64::MIN_POSITIVE);
                if worst.is_none_or(|(_, w)| r < w) {
                    worst = Some((j, r));
                }
            }
            match worst {
                Some((j, _)) => self.exit(j, reason, stamps),
                None => break,
            }
        }
    }

    fn check_health(
        &mut self,
        stamps: Stamps,
        imbalances: &impl Fn(InstrumentId) -> [Option<f64>; 3],
    ) {
        let cfg = self.cfg.portfolio;
        let (mut n, mut unreal, mut quality, mut hold, mut vol) = (0u32, 0.0, 0.0, 0.0, 0.0);
        let (mut correlated, mut meme_over) = (0u32, 0u32);
        for s in self.slots.iter().flatten() {
            let Some(side) = s.pos.side() else { continue };
            n += 1;
            unreal += s.unrealized;
            let volume_up = match (s.bars.back(0), s.bars.back(1)) {
                (Some(a), Some(b)) => a.buy + a.sell >= b.buy + b.sell,
                _ => true,
            };
            let flow_with_us = match imbalances(s.inst.id)[0] {
                Some(i) => (i >= 1.0) == (side == Side::Buy),
                None => true,
            };
            let liquid = self.now_ns.saturating_sub(s.last_ts) < cfg.health_interval_ns * 2;
            quality +=
                f64::from(u8::from(volume_up) + u8::from(flow_with_us) + u8::from(liquid)) / 3.0;
            let held = self.now_ns.saturating_sub(s.pos.open_ns);
            hold += held as f64 / 60e9;
            if s.risk.meme && held > 86_400_000_000_000 {
                meme_over += 1;
            }
            vol += s.bars.volatility_ratio();
            if s.corr
                .value(cfg.correlation_min_pairs)
                .is_some_and(|c| c > cfg.correlation_exit)
            {
                correlated += 1;
            }
        }
        if n == 0 {
            self.health = 100.0;
            self.health_action = HealthAction::None;
            self.states.account_mut().reducing = self.dd_level >= DrawdownLevel::CloseWorstHalf;
            return;
        }
        let nf = f64::from(n);
        let x = HealthInputs {
            unrealized_pct: 100.0 * unreal / self.equity.max(f64::MIN_POSITIVE),
            quality: quality / nf,
            correlated,
            avg_hold_min: hold / nf,
            meme_over_day: meme_over,
            volatility_ratio: vol / nf,
        };
        let score = health_score(&cfg.health, &x).total;
        self.health = score;
        let action = cfg.health.action(score);
        self.states.account_mut().reducing =
            action >= HealthAction::StopEntries || self.dd_level >= DrawdownLevel::CloseWorstHalf;
        if action >= HealthAction::TightenStops {
            let ppm = self.cfg.monitor.tight_trail_ppm;
            for s in self.slots.iter_mut().flatten() {
                if let Some(m) = s.monitor.as_mut() {
                    m.tighten(ppm);
                }
            }
        }
        if action == HealthAction::CloseWorstTwo && self.health_action != action {
            self.close_worst(2, ReasonCode::RISK_HEALTH, stamps);
        }
        self.health_action = action;
    }

    /// Send the closing order of symbol `i`'s position (once until answered).
    fn exit(&mut self, i: usize, reason: ReasonCode, stamps: Stamps) {
        let timeout = self.cfg.pending_timeout_ns;
        let now = self.now_ns;
        let Some(Some(s)) = self.slots.get_mut(i) else {
            return;
        };
        let Some(side) = s.pos.side() else { return };
        if s.exit.is_some_and(|p| p.live(now)) {
            return;
        }
        s.orders += 1;
        let cid = client_id(s.inst.id, now, side.opposite(), s.orders);
        let mut intent = OrderIntent::new_order(
            s.inst,
            side.opposite(),
            OrderType::Market,
            TimeInForce::Ioc,
            Price::ZERO,
            Qty(s.pos.qty.abs()),
            cid,
        )
        .because(reason, 0)
        .with_stamps(stamps);
        intent.reduce_only = s.reduce_only;
        s.exit = Some(Pending::new(
            cid,
            reason,
            now.saturating_add(timeout),
            0,
            0.0,
        ));
        self.counters.exits += 1;
        self.out.intent(intent);
    }

    /// An entry decision for `id` on `side` at reference price `price` (the decision's),
    /// caused by the decision journaled at `decision_seq`. Sizes it, runs the chain, and
    /// writes the entry intent (for a reversal the close, the entry following once the close
    /// has filled) or a rejection to the outbox. Returns true if the entry passed the chain.
    pub fn on_entry(
        &mut self,
        id: InstrumentId,
        side: Side,
        price: Price,
        time_ns: u64,
        decision_seq: u64,
        stamps: Stamps,
    ) -> bool {
        self.advance(time_ns);
        let i = id.0 as usize;
        self.expire(i);
        let state = self.state_of(id);
        let open = self.open_positions();
        let exposure = self.exposure();
        let sessions_closed = self.session_closed();
        let equity = self.equity;
        let sizing = self.cfg.sizing;
        let Some(Some(s)) = self.slots.get(i) else {
            return false;
        };
        let inst = s.inst;
        let mut reject = RiskReject {
            instrument: id,
            side,
            state: state.as_u8(),
            reason: ReasonCode::RISK_REJECT_SIZING,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            reserved: 0,
            open_positions: open,
            time_ns: self.now_ns,
            price,
            qty: Qty::ZERO,
            value: 0.0,
            limit: 0.0,
            decision_seq,
        };
        let notional = sizing.capped_notional(equity, s.risk.market_cap, s.risk.meme);
        let qty = match sizing.qty_for(
            notional,
            price,
            inst.price_scale,
            inst.qty_scale,
            s.step,
            s.min_qty,
        ) {
            Ok(q) => q,
            Err(_) => {
                reject.value = notional;
                self.counters.rejects += 1;
                self.out.reject(reject);
                return false;
            }
        };
        reject.qty = qty;
        let px = mantissa_to_f64(price.0, inst.price_scale);
        let order_notional = px * mantissa_to_f64(qty.0, inst.qty_scale);
        let ctx = ChainContext {
            now_ns: self.now_ns,
            state,
            position_sign: s.pos.qty.signum(),
            pending_entry: s.entry.is_some(),
            session_closed: sessions_closed && s.session,
            open_positions: open,
            exposure,
            last_price: mantissa_to_f64(s.last_px.0, inst.price_scale),
        };
        match self.chain.check(&ctx, side.sign(), px, order_notional) {
            Err(r) => {
                reject.reason = r.reason;
                reject.value = r.value;
                reject.limit = r.limit;
                self.counters.rejects += 1;
                self.out.reject(reject);
                false
            }
            Ok(order) => {
                if order.reverse_first {
                    self.exit(i, ReasonCode::EXIT_REVERSAL, stamps);
                }
                let timeout = self.cfg.pending_timeout_ns;
                let now = self.now_ns;
                let Some(Some(s)) = self.slots.get_mut(i) else {
                    return false;
                };
                s.orders += 1;
                let cid = client_id(id, time_ns, side, s.orders);
                s.entry = Some(Pending::new(
                    cid,
                    ReasonCode::NONE,
                    now.saturating_add(timeout),
                    qty.0,
                    px,
                ));
                let reason = match side {
                    Side::Buy => ReasonCode::ENTRY_LONG,
                    Side::Sell => ReasonCode::ENTRY_SHORT,
                };
                let intent = OrderIntent::new_order(
                    inst,
                    side,
                    OrderType::Market,
                    TimeInForce::Ioc,
                    Price::ZERO,
                    qty,
                    cid,
                )
                .because(reason, decision_seq)
                .with_stamps(stamps);
                self.counters.entries += 1;
                if order.reverse_first {
                    s.deferred = Some((intent, price));
                } else {
                    self.out.intent(intent);
                }
                true
            }
        }
    }

    /// An execution report: fills update the position, its exposure value, equity and fees; a
    /// position that goes flat writes its [`TradeClose`]; terminal reports end the order's
    /// in-flight state. Executions never move the clock (see the module docs).
    pub fn on_exec(&mut self, x: &ExecEvent) {
        let is_fill = matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill);
        if is_fill && (x.last_qty.0 <= 0 || x.last_px.0 <= 0) {
            self.counters.bad_fills += 1;
            return;
        }
        let i = x.instrument.0 as usize;
        self.expire(i);
        let now = self.now_ns;
        let sessions_closed = self.session_closed();
        let cfg = self.cfg;
        let Some(Some(s)) = self.slots.get_mut(i) else {
            self.counters.bad_fills += 1;
            return;
        };
        for p in [s.entry.as_mut(), s.exit.as_mut()].into_iter().flatten() {
            if p.cid == x.client_order_id {
                p.answered = true;
            }
        }
        let fee = rescale(x.fee, x.fee_scale, PNL_SCALE, Rounding::HalfEven).unwrap_or(0);
        let mut closed = None;
        if is_fill {
            let q = x.last_qty.0 * x.side.sign();
            let value = i128::from(x.last_px.0) * i128::from(x.last_qty.0);
            // An entry's quantity is worth what the chain approved it at, whatever its fill
            // price (see the module docs).
            let unit_value = match s.entry.as_mut().filter(|e| e.cid == x.client_order_id) {
                Some(e) => {
                    e.filled = e.filled.saturating_add(x.last_qty.0);
                    e.px
                }
                None => mantissa_to_f64(x.last_px.0, s.inst.price_scale),
            };
            let p = &mut s.pos;
            p.fees += i128::from(fee);
            p.fills = p.fills.saturating_add(1);
            if p.qty == 0 || p.qty.signum() == q.signum() {
                if p.qty == 0 {
                    *p = Position {
                        fees: i128::from(fee),
                        fills: 1,
                        open_ns: now,
                        entry_cid: x.client_order_id,
                        ..Position::default()
                    };
                    s.monitor = Some(PositionMonitor::activate(
                        &cfg.monitor,
                        x.side,
                        x.last_px,
                        now,
                    ));
                }
                p.qty += q;
                p.entry_value += value;
                p.entry_qty += x.last_qty.0;
                p.notional += unit_value * mantissa_to_f64(x.last_qty.0, s.inst.qty_scale);
            } else {
                // A reducing fill; anything beyond flat is ignored (exits are reduce-only).
                let before = p.qty.abs();
                let take = x.last_qty.0.min(before);
                p.exit_value += i128::from(x.last_px.0) * i128::from(take);
                p.exit_qty += take;
                p.qty += take * q.signum();
                // The closed share of the position releases the same share of its value.
                p.notional *= (before - take) as f64 / before as f64;
                if p.qty == 0 {
                    let reason = match s.exit {
                        Some(e) if e.cid == x.client_order_id => e.reason,
                        _ => ReasonCode::MANUAL,
                    };
                    closed = Some(trade_close(s, reason, x.client_order_id, now));
                    s.pos = Position::default();
                    s.monitor = None;
                    s.exit = None;
                    self.unreal_total -= s.unrealized;
                    s.unrealized = 0.0;
                }
            }
        }
        if x.is_terminal() {
            if s.entry.is_some_and(|e| e.cid == x.client_order_id) {
                s.entry = None;
            }
            if s.exit.is_some_and(|e| e.cid == x.client_order_id) {
                s.exit = None;
            }
        }
        let mut dropped = None;
        if s.deferred.is_some() {
            if s.pos.qty == 0 {
                // The reversal's close has filled: its entry goes out now.
                if let (Some((mut intent, _)), Some(e)) = (s.deferred.take(), s.entry.as_mut()) {
                    e.deadline_ns = now.saturating_add(cfg.pending_timeout_ns);
                    intent.stamps = x.stamps;
                    self.out.intent(intent);
                }
            } else if s.exit.is_none() {
                // The close ended without flattening: the reversal cannot go on.
                dropped = s.deferred.take();
                s.entry = None;
            }
        }
        // A session-based position filled inside the pre-close window goes straight out.
        let session_exit = sessions_closed && s.session && s.pos.qty != 0;
        if let Some(c) = closed {
            let venue = s.venue;
            let tripped = s
                .breaker
                .on_trade(c.net_pnl, cfg.portfolio.symbol_breaker_losses);
            let pnl = mantissa_to_f64(c.net_pnl, PNL_SCALE);
            self.equity += pnl;
            self.realized_today += pnl;
            self.counters.closes += 1;
            if tripped {
                self.counters.breaker_trips += 1;
                if let Some(st) = self.states.symbol_mut(i) {
                    st.reduce_until_ns = now.saturating_add(cfg.portfolio.symbol_cooldown_ns);
                }
            }
            if self.venue_breakers[venue].on_trade(c.net_pnl, cfg.portfolio.venue_breaker_losses) {
                self.counters.breaker_trips += 1;
                self.venue_reduce_until[venue] =
                    now.saturating_add(cfg.portfolio.venue_cooldown_ns);
            }
            self.out.close(c);
        }
        if let Some((d, price)) = dropped {
            let reject = RiskReject {
                instrument: d.instrument,
                side: d.side,
                state: self.state_of(d.instrument).as_u8(),
                reason: ReasonCode::RISK_REJECT_EXISTING,
                price_scale: d.price_scale,
                qty_scale: d.qty_scale,
                reserved: 0,
                open_positions: self.open_positions(),
                time_ns: now,
                price,
                qty: d.qty,
                // The opposite position the close left open.
                value: mantissa_to_f64(self.position_qty(d.instrument).abs(), d.qty_scale),
                limit: 0.0,
                decision_seq: d.decision_seq,
            };
            self.counters.rejects += 1;
            self.out.reject(reject);
        }
        if session_exit {
            self.exit(i, ReasonCode::EXIT_SESSION_CLOSE, x.stamps);
        }
    }

    /// A control command: Halt / Resume for the account ([`InstrumentId::NONE`]) or one
    /// symbol. Halt stops entries only; exits keep flowing. Resume lifts the admin halt (a
    /// drawdown halt stays until 00:00 UTC). Watchlist add / renew set a symbol's watch expiry
    /// (the command's argument) and remove ends it now: off the watchlist a symbol is REDUCING
    /// (see [`super::state`]).
    pub fn on_control(&mut self, c: &crate::event::Control) {
        let watch_expires_ns = match c.kind {
            ControlKind::WatchlistAdd | ControlKind::WatchlistRenew => Some(c.arg),
            ControlKind::WatchlistRemove => Some(0),
            _ => None,
        };
        if let Some(expires) = watch_expires_ns {
            // The watchlist is per symbol; the admin API never sends it account-wide.
            if let Some(s) = self.states.symbol_mut(c.instrument.0 as usize) {
                s.watch_expires_ns = expires;
            }
            return;
        }
        let halt = match c.kind {
            ControlKind::Halt => true,
            ControlKind::Resume => false,
            _ => return,
        };
        if c.instrument == InstrumentId::NONE {
            self.states.account_mut().admin_halt = halt;
        } else if let Some(s) = self.states.symbol_mut(c.instrument.0 as usize) {
            s.admin_halt = halt;
        }
    }
}

/// Unrealized P&L of a slot at its last price, quote (f64).
fn unrealized(s: &Slot) -> f64 {
    if s.pos.qty == 0 || s.last_px.0 <= 0 {
        return 0.0;
    }
    let scale = u32::from(s.inst.price_scale) + u32::from(s.inst.qty_scale);
    let now_value = i128::from(s.last_px.0) * i128::from(s.pos.qty.abs());
    let open_part = if s.pos.entry_qty > 0 {
        s.pos.entry_value * i128::from(s.pos.qty.abs()) / i128::from(s.pos.entry_qty)
    } else {
        0
    };
    let diff = (now_value - open_part) * i128::from(s.pos.qty.signum());
    diff as f64 / 10f64.powi(scale as i32)
}

/// The closed-trade record of a slot whose position just went flat.
/// The volume-weighted price of `q` (mantissa) worth `v` (price * qty mantissas).
fn vwap(v: i128, q: i64) -> Price {
    if q <= 0 {
        return Price::ZERO;
    }
    Price(i64::try_from(div_half_even(v, i128::from(q))).unwrap_or(0))
}

fn trade_close(s: &Slot, reason: ReasonCode, exit_cid: u64, now: u64) -> TradeClose {
    let p = &s.pos;
    let side = if p.exit_qty > 0 && p.entry_qty > 0 {
        // The entry fills' side: exits were the opposite.
        match s.monitor.map(|m| m.side()) {
            Some(side) => side,
            None => Side::Buy,
        }
    } else {
        Side::Buy
    };
    let vs = s.inst.price_scale + s.inst.qty_scale;
    let gross_raw = (p.exit_value - p.entry_value) * i128::from(side.sign());
    let gross = rescale_i128(gross_raw, vs, PNL_SCALE);
    let fees = i64::try_from(p.fees).unwrap_or(i64::MAX);
    TradeClose {
        instrument: s.inst.id,
        side,
        price_scale: s.inst.price_scale,
        qty_scale: s.inst.qty_scale,
        pnl_scale: PNL_SCALE,
        reason,
        fills: p.fills,
        hold_secs: u32::try_from(now.saturating_sub(p.open_ns) / 1_000_000_000).unwrap_or(u32::MAX),
        open_ns: p.open_ns,
        close_ns: now,
        entry_px: vwap(p.entry_value, p.entry_qty),
        exit_px: vwap(p.exit_value, p.exit_qty),
        qty: Qty(p.exit_qty),
        gross_pnl: gross,
        fees,
        net_pnl: gross.saturating_sub(fees),
        entry_cid: p.entry_cid,
        exit_cid,
    }
}

/// `v / d` rounded half to even (d > 0).
fn div_half_even(v: i128, d: i128) -> i128 {
    let q = v.div_euclid(d);
    let r = v.rem_euclid(d);
    match (2 * r).cmp(&d) {
        core::cmp::Ordering::Less => q,
        core::cmp::Ordering::Greater => q + 1,
        core::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// `v` at scale `from` re-expressed at scale `to` (half-even), saturating to `i64`.
fn rescale_i128(v: i128, from: u8, to: u8) -> i64 {
    let r = if to >= from {
        v.saturating_mul(10i128.pow(u32::from(to - from)))
    } else {
        div_half_even(v, 10i128.pow(u32::from(from - to)))
    };
    i64::try_from(r).unwrap_or(if r < 0 { i64::MIN } else { i64::MAX })
}

/// Deterministic client order id: instrument, event time, side and the slot's order count.
#[inline]
fn client_id(id: InstrumentId, time_ns: u64, side: Side, n: u64) -> u64 {
    let mut key = [0u8; 21];
    key[..4].copy_from_slice(&id.0.to_le_bytes());
    key[4..12].copy_from_slice(&time_ns.to_le_bytes());
    key[12] = side.as_u8();
    key[13..21].copy_from_slice(&n.to_le_bytes());
    fnv1a64(&key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Aggressor;
    use crate::fixed::Decimal;
    use crate::instrument::{InstrumentTable, Symbol, Venue};

    const S: u64 = 1_000_000_000;
    /// 2014-05-09 00:00 UTC, a Friday (the last day of the FX data set's week).
    const FRI: u64 = 1_399_593_600 * S;
    const MIN: u64 = 60 * S;

    fn spec(venue: Venue, name: &[u8], kind: InstrumentKind, ps: u8, qs: u8) -> InstrumentSpec {
        let mut s = InstrumentSpec::new(venue, Symbol::new(name).unwrap(), kind, ps, qs);
        s.min_qty = Qty(1);
        s
    }

    /// BTCUSDT (spot, price scale 2, qty scale 5) and EURUSD (forex, 5 / 0).
    fn table() -> InstrumentTable {
        let mut t = InstrumentTable::with_capacity(4);
        t.intern(spec(
            Venue::BinanceSpot,
            b"BTCUSDT",
            InstrumentKind::Spot,
            2,
            5,
        ))
        .unwrap();
        t.intern(spec(Venue::Fxcm, b"EURUSD", InstrumentKind::Forex, 5, 0))
            .unwrap();
        t
    }

    fn engine(t: &InstrumentTable, cfg: RiskConfig) -> RiskEngine {
        RiskEngine::new(
            cfg,
            t.iter().map(|(id, s)| (id, s, t.instrument_ref(id))),
            SymbolRisk::for_instrument,
        )
    }

    fn trade(inst: InstrumentRef, ts: u64, p: i64) -> MarketEvent {
        MarketEvent::trade(
            inst,
            Stamps::new(ts, 0),
            Price(p),
            Qty(1),
            Aggressor::Buy,
            1,
        )
    }

    fn quote(inst: InstrumentRef, ts: u64, bid: i64) -> MarketEvent {
        MarketEvent::quote(
            inst,
            Stamps::new(ts, 0),
            (Price(bid), Qty(0)),
            (Price(bid + 2), Qty(0)),
            0,
        )
    }

    fn exec(i: &OrderIntent, kind: ExecKind, p: i64, q: i64, ts: u64) -> ExecEvent {
        let inst = InstrumentRef {
            id: i.instrument,
            price_scale: i.price_scale,
            qty_scale: i.qty_scale,
        };
        ExecEvent::new(inst, kind, i.side, i.client_order_id, 1, Stamps::new(ts, 0))
            .with_fill(Price(p), Qty(q), Qty(q), Qty::ZERO, 1)
            .with_fee(Decimal::new(1, 0), false)
    }

    /// Take the outbox's intents.
    fn intents(r: &mut RiskEngine) -> Vec<OrderIntent> {
        let v = r.outbox().intents().to_vec();
        r.outbox_mut().clear();
        v
    }

    /// An engine over [`table`] whose BTC trade at `t0` (50,000.00) is followed by a long
    /// entry decision there: the engine and the entry's intent.
    fn long_btc_at(cfg: RiskConfig, t0: u64) -> (RiskEngine, InstrumentRef, OrderIntent) {
        let t = table();
        let btc = t.instrument_ref(InstrumentId(0));
        let mut r = engine(&t, cfg);
        r.on_market(&trade(btc, t0, 5_000_000), |_| [None; 3]);
        assert!(r.on_entry(
            btc.id,
            Side::Buy,
            Price(5_000_000),
            t0,
            1,
            Stamps::default()
        ));
        let e = intents(&mut r)[0];
        (r, btc, e)
    }

    #[test]
    fn executions_never_move_the_clock_off_the_market() {
        let none = |_| [None; 3];
        let t0 = FRI + 10 * MIN;
        let (mut r, btc, e) = long_btc_at(RiskConfig::default(), t0);
        // Live, the venue's execution clock can be a little behind its market data.
        r.on_exec(&exec(
            &e,
            ExecKind::Fill,
            5_000_000,
            e.qty.0,
            t0 - 3_000_000,
        ));
        assert_eq!(r.now_ns(), t0);
        // A rejection the gateway stamped with its own wall clock (today) moves nothing.
        let wall = t0 + 10 * 365 * 86_400 * S;
        r.on_exec(&exec(&e, ExecKind::Rejected, 0, 0, wall));
        assert_eq!(r.now_ns(), t0);
        // The trailing stop closes it 90 s later; the trade's times are the market's.
        r.on_market(&trade(btc, t0 + 90 * S, 4_970_000), none);
        let x = intents(&mut r)[0];
        assert_eq!(x.reason, ReasonCode::EXIT_TRAILING_STOP);
        r.on_exec(&exec(
            &x,
            ExecKind::Fill,
            4_970_000,
            x.qty.0,
            t0 + 90 * S - S / 100,
        ));
        let c = r.outbox().closes()[0];
        assert_eq!((c.open_ns, c.close_ns, c.hold_secs), (t0, t0 + 90 * S, 90));
        r.outbox_mut().clear();

        // A simulator replaying at full speed runs ahead of its client: a fill stamped 30 s
        // past what the strategy has seen. The position opens on the market's clock, and its
        // 2-second checks run on the trades that follow.
        let t1 = t0 + 200 * S;
        r.on_market(&trade(btc, t1, 5_000_000), none);
        assert!(r.on_entry(
            btc.id,
            Side::Sell,
            Price(5_000_000),
            t1,
            2,
            Stamps::default()
        ));
        let e = intents(&mut r)[0];
        r.on_exec(&exec(&e, ExecKind::Fill, 5_000_000, e.qty.0, t1 + 30 * S));
        assert_eq!(r.now_ns(), t1);
        let m = r.monitor(btc.id).unwrap();
        assert_eq!(m.side(), Side::Sell);
        // Five adverse 2 s checks in a row (a loss below 0.3%: five are needed) close it at
        // t1 + 10 s of market time, long before the venue's stamp of the fill.
        for k in 1..=5u64 {
            assert!(r.outbox().intents().is_empty(), "check {k}");
            r.on_market(
                &trade(btc, t1 + 2 * k * S, 5_000_000 + 100 * k as i64),
                none,
            );
        }
        let x = intents(&mut r)[0];
        assert_eq!(x.reason, ReasonCode::EXIT_ADVERSE_MOVES);
        r.on_exec(&exec(&x, ExecKind::Fill, 5_000_600, x.qty.0, t1 + 45 * S));
        let c = r.outbox().closes()[0];
        assert_eq!(
            (c.open_ns, c.close_ns, c.reason),
            (t1, t1 + 10 * S, x.reason)
        );
    }

    #[test]
    fn an_answered_order_stays_in_flight_past_its_deadline() {
        // A run with no gateway (offline) forgets unanswered orders after 10 s of market.
        let cfg = RiskConfig {
            pending_timeout_ns: 10 * S,
            ..RiskConfig::default()
        };
        let none = |_| [None; 3];
        let t0 = FRI + 10 * MIN;
        let (mut r, btc, e) = long_btc_at(cfg, t0);
        let approved = r.exposure();
        // Acknowledged, then 20 s of market (past the 10 s deadline) before its fills.
        r.on_exec(&exec(&e, ExecKind::Ack, 0, 0, t0));
        r.on_market(&trade(btc, t0 + 20 * S, 5_000_000), none);
        assert_eq!(r.exposure(), approved, "still in flight");
        assert!(!r.on_entry(
            btc.id,
            Side::Buy,
            Price(5_000_000),
            t0 + 20 * S,
            2,
            Stamps::default()
        ));
        assert_eq!(
            r.outbox().rejects()[0].reason,
            ReasonCode::RISK_REJECT_EXISTING
        );
        r.outbox_mut().clear();
        r.on_exec(&exec(&e, ExecKind::Fill, 5_010_000, e.qty.0, t0 + 20 * S));
        assert_eq!(r.exposure(), approved, "worth what was approved");
        // An order never answered is forgotten after the deadline.
        r.on_market(&trade(btc, t0 + 40 * S, 4_900_000), none);
        let x = intents(&mut r)[0];
        assert_eq!(x.reason, ReasonCode::EXIT_TRAILING_STOP);
        r.on_market(&trade(btc, t0 + 49 * S, 4_900_000), none);
        assert!(r.outbox().intents().is_empty(), "in flight for 10 s");
        r.on_market(&trade(btc, t0 + 51 * S, 4_900_000), none);
        let again = intents(&mut r);
        assert_eq!(again.len(), 1, "sent again once the first is forgotten");
        assert_ne!(again[0].client_order_id, x.client_order_id);
    }

    /// With a gateway attached (the default), an order is in flight until the gateway answers
    /// it, however much market time that takes: at full simulator speed an hour of market can
    /// pass while the venue is still filling a close, and a close sent twice would sell what
    /// the account no longer holds.
    #[test]
    fn an_unanswered_exit_is_sent_once_however_long_the_venue_takes() {
        let none = |_| [None; 3];
        let t0 = FRI + 10 * MIN;
        let (mut r, btc, e) = long_btc_at(RiskConfig::default(), t0);
        r.on_exec(&exec(&e, ExecKind::Fill, 5_000_000, e.qty.0, t0));
        r.on_market(&trade(btc, t0 + 40 * S, 4_900_000), none);
        let x = intents(&mut r);
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].reason, ReasonCode::EXIT_TRAILING_STOP);
        // An hour of falling market, every stop and check still firing: nothing more goes out.
        for k in 1..=1_800u64 {
            r.on_market(&trade(btc, t0 + 40 * S + 2 * k * S, 4_800_000), none);
        }
        assert!(r.outbox().intents().is_empty(), "the close is in flight");
        assert!(!r.on_entry(
            btc.id,
            Side::Buy,
            Price(4_800_000),
            t0 + 3_640 * S,
            2,
            Stamps::default()
        ));
        r.outbox_mut().clear();
        // The venue answers at last: the position closes on that fill, once.
        r.on_exec(&exec(
            &x[0],
            ExecKind::Fill,
            4_900_000,
            x[0].qty.0,
            t0 + 3_641 * S,
        ));
        assert_eq!(r.position_qty(btc.id), 0);
        assert_eq!(r.outbox().closes().len(), 1);
        let c = r.outbox().closes()[0];
        assert_eq!(
            (c.exit_cid, c.reason),
            (x[0].client_order_id, ReasonCode::EXIT_TRAILING_STOP)
        );
    }

    #[test]
    fn a_position_being_closed_counts_against_exposure_until_its_close_fills() {
        let mut cfg = RiskConfig::default();
        // 8,000 per entry (2% of 10,000 at a 0.5% stop and 5x); room for 1.5 of them.
        cfg.chain.max_exposure = 12_000.0;
        let t0 = FRI + 10 * MIN;
        let (mut r, btc, e) = long_btc_at(cfg, t0);
        assert_eq!(e.qty, Qty(16_000));
        assert_eq!(r.exposure(), 8_000.0, "in flight counts at once");
        // Filled 1% above the reference: worth what the chain approved, 8,000.
        r.on_exec(&exec(&e, ExecKind::PartialFill, 5_050_000, 10_000, t0 + 1));
        assert_eq!(r.exposure(), 8_000.0);
        r.on_exec(&exec(&e, ExecKind::Fill, 5_050_000, 6_000, t0 + 2));
        assert_eq!(r.exposure(), 8_000.0);
        // A reversal would hold the long being closed and the new short: 16,000 > 12,000.
        assert!(!r.on_entry(
            btc.id,
            Side::Sell,
            Price(5_000_000),
            t0 + 3,
            2,
            Stamps::default()
        ));
        let rej = r.outbox().rejects()[0];
        assert_eq!(rej.reason, ReasonCode::RISK_REJECT_EXPOSURE);
        assert_eq!((rej.value, rej.limit), (16_000.0, 12_000.0));
        r.outbox_mut().clear();

        // With room for both, the reversal goes out: the close now, the entry once the close
        // has filled; both count from the start.
        cfg.chain.max_exposure = 16_000.0;
        let t = table();
        let reversal = |t0: u64| {
            let mut r = engine(&t, cfg);
            r.on_market(&trade(btc, t0, 5_000_000), |_| [None; 3]);
            r.on_entry(
                btc.id,
                Side::Buy,
                Price(5_000_000),
                t0,
                1,
                Stamps::default(),
            );
            let e = intents(&mut r)[0];
            r.on_exec(&exec(&e, ExecKind::Fill, 5_000_000, e.qty.0, t0 + 1));
            assert!(r.on_entry(
                btc.id,
                Side::Sell,
                Price(5_000_000),
                t0 + 2,
                2,
                Stamps::default()
            ));
            let close = intents(&mut r);
            assert_eq!(close.len(), 1, "the entry waits for the close: {close:?}");
            assert_eq!(close[0].reason, ReasonCode::EXIT_REVERSAL);
            assert_eq!(
                r.exposure(),
                16_000.0,
                "the long is held until its close fills"
            );
            (r, close[0])
        };
        let (mut r, close) = reversal(t0);
        // Half the close fills: half the long is released.
        r.on_exec(&exec(
            &close,
            ExecKind::PartialFill,
            5_000_000,
            8_000,
            t0 + 3,
        ));
        assert_eq!(r.exposure(), 12_000.0);
        // The rest expires: that half is still held, and the reversal's entry is dropped.
        r.on_exec(&exec(&close, ExecKind::Expired, 0, 0, t0 + 4));
        assert_eq!(r.position_qty(btc.id), 8_000);
        assert_eq!(r.exposure(), 4_000.0);
        assert!(r.outbox().intents().is_empty());
        let rej = r.outbox().rejects()[0];
        assert_eq!(
            (rej.reason, rej.side, rej.decision_seq, rej.value),
            (ReasonCode::RISK_REJECT_EXISTING, Side::Sell, 2, 0.08)
        );

        let (mut r, close) = reversal(t0);
        r.on_exec(&exec(
            &close,
            ExecKind::Fill,
            4_990_000,
            close.qty.0,
            t0 + 3,
        ));
        assert_eq!(r.outbox().closes()[0].reason, ReasonCode::EXIT_REVERSAL);
        let short = intents(&mut r);
        assert_eq!(
            (
                short.len(),
                short[0].reason,
                short[0].qty,
                short[0].decision_seq
            ),
            (1, ReasonCode::ENTRY_SHORT, Qty(16_000), 2)
        );
        assert_eq!(r.exposure(), 8_000.0);
        // Filled below the reference: the short is worth what the chain approved.
        r.on_exec(&exec(&short[0], ExecKind::Fill, 4_950_000, 16_000, t0 + 4));
        assert_eq!(r.position_qty(btc.id), -16_000);
        assert_eq!(r.exposure(), 8_000.0);
    }

    #[test]
    fn forex_closes_from_friday_2330_utc_and_crypto_trades_on() {
        let t = table();
        let (btc, fx) = (
            t.instrument_ref(InstrumentId(0)),
            t.instrument_ref(InstrumentId(1)),
        );
        let mut r = engine(&t, RiskConfig::default());
        let none = |_| [None; 3];
        let at = |h: u64, m: u64| FRI + h * 60 * MIN + m * MIN;
        // Friday 20:00: a EUR/USD long and a BTC long, both filled.
        r.on_market(&quote(fx, at(20, 0), 137_600), none);
        r.on_market(&trade(btc, at(20, 0), 5_000_000), none);
        assert!(r.on_entry(
            fx.id,
            Side::Buy,
            Price(137_600),
            at(20, 0),
            1,
            Stamps::default()
        ));
        assert!(r.on_entry(
            btc.id,
            Side::Buy,
            Price(5_000_000),
            at(20, 0),
            2,
            Stamps::default()
        ));
        let [efx, ebtc] = intents(&mut r)[..] else {
            panic!("two entries")
        };
        r.on_exec(&exec(
            &efx,
            ExecKind::Fill,
            137_600,
            efx.qty.0,
            at(20, 0) + 1,
        ));
        r.on_exec(&exec(
            &ebtc,
            ExecKind::Fill,
            5_000_000,
            ebtc.qty.0,
            at(20, 0) + 1,
        ));
        // Friday 23:29:59.999: still open, nothing sent.
        r.on_market(&quote(fx, at(23, 30) - 1_000_000, 137_610), none);
        assert!(r.outbox().intents().is_empty());
        // 23:30:00.000 on the first event of any symbol (a BTC trade here): the forex position
        // goes out with a market order, the session-close reason; BTC stays.
        r.on_market(&trade(btc, at(23, 30), 5_000_100), none);
        let x = intents(&mut r);
        assert_eq!(x.len(), 1, "{x:?}");
        assert_eq!(
            (x[0].instrument, x[0].side, x[0].qty, x[0].reason),
            (fx.id, Side::Sell, efx.qty, ReasonCode::EXIT_SESSION_CLOSE)
        );
        assert_eq!(x[0].order_type, OrderType::Market);
        // Sent once while in flight.
        r.on_market(&quote(fx, at(23, 30) + 5 * S, 137_600), none);
        assert!(r.outbox().intents().is_empty());
        // The close fills: the trade log carries the session-close reason.
        r.on_exec(&exec(
            &x[0],
            ExecKind::Fill,
            137_605,
            efx.qty.0,
            at(23, 30) + 6 * S,
        ));
        let c = r.outbox().closes()[0];
        assert_eq!(
            (c.instrument, c.reason, c.open_ns, c.close_ns),
            (
                fx.id,
                ReasonCode::EXIT_SESSION_CLOSE,
                at(20, 0),
                at(23, 30) + 5 * S
            )
        );
        r.outbox_mut().clear();
        assert_eq!(r.position_qty(fx.id), 0);
        assert_ne!(r.position_qty(btc.id), 0, "crypto is 24/7");
        // No new forex entry in the window; crypto enters as usual.
        assert!(!r.on_entry(
            fx.id,
            Side::Sell,
            Price(137_600),
            at(23, 40),
            3,
            Stamps::default()
        ));
        assert_eq!(
            r.outbox().rejects()[0].reason,
            ReasonCode::RISK_REJECT_SESSION
        );
        r.outbox_mut().clear();
        assert!(r.on_entry(
            btc.id,
            Side::Sell,
            Price(5_000_000),
            at(23, 40),
            4,
            Stamps::default()
        ));
        assert_eq!(intents(&mut r)[0].reason, ReasonCode::EXIT_REVERSAL);
        // Saturday and Sunday before 22:00: still no forex entries.
        let sun = FRI + 2 * 86_400 * S;
        r.on_market(&quote(fx, sun + 22 * 60 * MIN - 1, 137_500), none);
        assert!(!r.on_entry(
            fx.id,
            Side::Buy,
            Price(137_500),
            sun + 22 * 60 * MIN - 1,
            4,
            Stamps::default()
        ));
        assert_eq!(
            r.outbox().rejects()[0].reason,
            ReasonCode::RISK_REJECT_SESSION
        );
        r.outbox_mut().clear();
        // Sunday 22:00: the new week trades.
        r.on_market(&quote(fx, sun + 22 * 60 * MIN, 137_500), none);
        assert!(r.on_entry(
            fx.id,
            Side::Buy,
            Price(137_500),
            sun + 22 * 60 * MIN,
            5,
            Stamps::default()
        ));
    }

    #[test]
    fn a_forex_fill_inside_the_window_is_closed_at_once() {
        let t = table();
        let fx = t.instrument_ref(InstrumentId(1));
        let mut r = engine(&t, RiskConfig::default());
        let none = |_| [None; 3];
        let t0 = FRI + 23 * 60 * MIN + 30 * MIN;
        r.on_market(&quote(fx, t0 - S / 10, 137_600), none);
        assert!(r.on_entry(
            fx.id,
            Side::Sell,
            Price(137_600),
            t0 - S / 10,
            1,
            Stamps::default()
        ));
        let e = intents(&mut r)[0];
        // 23:30:00.100: the window is on, nothing to close yet; the entry fills after it.
        r.on_market(&quote(fx, t0 + S / 10, 137_590), none);
        assert!(r.outbox().intents().is_empty());
        r.on_exec(&exec(&e, ExecKind::Fill, 137_590, e.qty.0, t0 + S / 10));
        let x = intents(&mut r);
        assert_eq!(x.len(), 1);
        assert_eq!(
            (x[0].side, x[0].qty, x[0].reason),
            (Side::Buy, e.qty, ReasonCode::EXIT_SESSION_CLOSE)
        );
    }
}
