//! The strategy stage: market events in, decisions journaled, order intents out.
//!
//! Why a stage of its own: the design puts the per-symbol analytics and the four-level decision
//! on the strategy thread, between the feed's `MarketEvent` ring and the gateway's
//! `OrderIntent` ring, so the same code runs fused with the feed on one core or alone on its own
//! core. Per event it stamps `StrategyIn`, routes the event to its symbol's
//! [`SymbolSignals`] (a fixed table indexed by instrument id, allocated at construction), and
//! when a 1-minute candle closes it evaluates the decision ([`crate::signals`]), journals the
//! [`Decision`], and for an entry emits an [`OrderIntent`] stamped `StrategyOut`.
//!
//! **Journal.** The stage owns its own [`Appender`] in a directory of its own (by convention
//! `<journal>/strategy/`, next to the feed's journal, which the feed's appender holds: one
//! appender per directory is enforced by a lock). Chosen over handing decisions back to the
//! feed's thread through another ring because it keeps the stages independent in the split
//! layout and costs one wait-free append per minute per symbol. Both journals share the schema
//! hash; an entry's intent is journaled right after its decision and carries the decision's
//! journal sequence number in `decision_seq`.
//!
//! **Book.** An entry needs the symbol's book proven. The feed owns the book and says so
//! in-band: [`MarketEvent::FLAG_BOOK_PROVEN`] on every event of an instrument whose book is
//! proven, so the gate is deterministic in replay whatever the thread layout. Replays of
//! trade-only data can set [`StrategyIo::assume_books_proven`].
//!
//! **Risk.** Every entry decision passes the [`crate::risk`] layer ([`RiskEngine`]): sizing
//! from equity, the execution chain (trading state, existing position, reversal, limits,
//! exposure, price band, max notional, rate budget), and on fills the position monitor
//! (trailing stop, dynamic exits) and the portfolio risk manager, which emit exit intents with
//! `EXIT_*` / `RISK_*` reasons. Refusals are journaled as [`RiskReject`] records, closed
//! positions as [`TradeClose`] records. Fills come back as [`ExecEvent`]s
//! ([`Strategy::on_exec`], or the stage's optional exec ring) and the admin kill switch as
//! [`Control`] Halt/Resume ([`Strategy::on_control`], or the control ring). With
//! [`RiskConfig::disabled`] every entry decision becomes a market IOC intent of one step of
//! quantity ([`Strategy::intent_for`]), as before the risk layer existed. The intent ring's
//! consumer (the gateway) is the caller's.
//!
//! No allocation after construction: the symbol table, every analytics buffer and the report
//! are preallocated; the journal appends in place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ringbuffers::journal::Appender;
use ringbuffers::outlet::Outlet;
use ringbuffers::spsc::{Consumer, Producer};

use crate::codec::{append, append_bytes, fnv1a64, Applied, AppliedKind, RecordKind};
use crate::event::{
    Control, Decision, DecisionOutcome, ExecEvent, MarketEvent, OrderIntent, OrderType, ReasonCode,
    Side, Stage as StampStage, TimeInForce,
};
use crate::fixed::Qty;
use crate::instrument::{InstrumentId, InstrumentRef, InstrumentSpec, InstrumentTable};
use crate::latency::LatencyReport;
use crate::risk::{Outbox, RiskConfig, RiskEngine, RiskReject, SymbolRisk, TradeClose};
use crate::runtime::Stage;
use crate::signals::{SymbolConfig, SymbolConfigError, SymbolSignals};

/// Counters of the strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrategyReport {
    /// Market events taken off the ring.
    pub events: u64,
    /// Events of instruments outside the table.
    pub unknown_instrument: u64,
    /// Decisions evaluated.
    pub decisions: u64,
    /// Long entries.
    pub entries_long: u64,
    /// Short entries.
    pub entries_short: u64,
    /// Intents pushed to the output ring.
    pub intents: u64,
    /// Intents that found the output ring full and waited in the stage's backlog (none is
    /// ever dropped: see [`ringbuffers::outlet`]).
    pub intents_held: u64,
    /// Journal append failures.
    pub journal_errors: u64,
    /// Entries refused by the risk layer.
    pub risk_rejects: u64,
    /// Exit intents (monitor and portfolio risk).
    pub exits: u64,
    /// Positions closed (from fills).
    pub trade_closes: u64,
    /// Execution reports taken.
    pub exec_events: u64,
    /// Control commands taken.
    pub controls: u64,
}

/// One symbol's slot in the table.
#[derive(Debug, Clone)]
struct Slot {
    inst: InstrumentRef,
    qty: Qty,
    signals: SymbolSignals,
}

/// The decision logic without rings or journal: routes events to symbols and turns entries
/// into intents. Used by [`StrategyStage`] and by replay tools (`algo-engine explain`).
#[derive(Debug, Clone)]
pub struct Strategy {
    slots: Box<[Option<Slot>]>,
    report: StrategyReport,
    risk: RiskEngine,
}

impl Strategy {
    /// A strategy for every instrument of `table`, each configured by `config` (e.g.
    /// [`SymbolConfig::for_instrument`]); intents are for one step of quantity (or the
    /// minimum quantity if larger) until sizing exists.
    pub fn new(
        table: &InstrumentTable,
        config: impl FnMut(&InstrumentSpec) -> SymbolConfig,
    ) -> Result<Self, SymbolConfigError> {
        Self::with_risk(
            table,
            config,
            RiskConfig::default(),
            SymbolRisk::for_instrument,
        )
    }

    /// A strategy with the risk layer configured by `risk` and each symbol's risk attributes
    /// from `symbol_risk` (e.g. [`SymbolRisk::for_instrument`]).
    pub fn with_risk(
        table: &InstrumentTable,
        mut config: impl FnMut(&InstrumentSpec) -> SymbolConfig,
        risk: RiskConfig,
        symbol_risk: impl FnMut(&InstrumentSpec) -> SymbolRisk,
    ) -> Result<Self, SymbolConfigError> {
        let len = table
            .iter()
            .map(|(id, _)| id.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slots: Vec<Option<Slot>> = (0..len).map(|_| None).collect();
        for (id, spec) in table.iter() {
            slots[id.0 as usize] = Some(Slot {
                inst: table.instrument_ref(id),
                qty: Qty(spec.step.0.max(spec.min_qty.0)),
                signals: SymbolSignals::new(id, &config(spec))?,
            });
        }
        let engine = RiskEngine::new(
            risk,
            table
                .iter()
                .map(|(id, spec)| (id, spec, table.instrument_ref(id))),
            symbol_risk,
        );
        Ok(Strategy {
            slots: slots.into_boxed_slice(),
            report: StrategyReport::default(),
            risk: engine,
        })
    }

    /// Counters so far.
    pub fn report(&self) -> StrategyReport {
        let mut r = self.report;
        let c = self.risk.counters();
        r.risk_rejects = c.rejects;
        r.exits = c.exits;
        r.trade_closes = c.closes;
        r
    }

    /// The risk layer (positions, states, equity).
    pub fn risk(&self) -> &RiskEngine {
        &self.risk
    }

    /// Takes over the positions earlier runs left open, from their fills (start-up, before
    /// any event); see [`RiskEngine::inherit`].
    pub fn inherit<'a>(
        &mut self,
        fills: impl IntoIterator<Item = &'a ExecEvent>,
    ) -> Vec<InstrumentId> {
        self.risk.inherit(fills)
    }

    /// True when the risk layer is on.
    pub fn risk_enabled(&self) -> bool {
        self.risk.config().enabled
    }

    /// What the risk layer emitted since the last [`Strategy::clear_outbox`].
    pub fn outbox(&self) -> &Outbox {
        self.risk.outbox()
    }

    /// Empty the outbox (after journaling and forwarding its contents).
    pub fn clear_outbox(&mut self) {
        self.risk.outbox_mut().clear();
    }

    /// An entry decision through the risk layer: sizing and the execution chain; the
    /// resulting intents (a reversal's close, then the entry) or the rejection go to the
    /// outbox. `decision_seq` is the decision's journal sequence number. Returns true if an
    /// entry intent was emitted. With the risk layer off, the legacy intent
    /// ([`Strategy::intent_for`]) is what the caller sends.
    pub fn enter(&mut self, d: &Decision, decision_seq: u64) -> bool {
        let side = match d.outcome {
            DecisionOutcome::EnterLong => Side::Buy,
            DecisionOutcome::EnterShort => Side::Sell,
            DecisionOutcome::Reject => return false,
        };
        self.risk.on_entry(
            d.instrument,
            side,
            d.price,
            d.time_ns,
            decision_seq,
            d.stamps,
        )
    }

    /// Market events fed so far ([`on_event`](Self::on_event) calls): where an execution or a
    /// control command lands among them (see [`crate::codec::Applied`]).
    #[inline]
    pub fn events_seen(&self) -> u64 {
        self.report.events
    }

    /// An execution report from the gateway: updates positions, equity and fees; a closed
    /// position's [`TradeClose`] goes to the outbox.
    pub fn on_exec(&mut self, x: &ExecEvent) {
        self.report.exec_events += 1;
        if self.risk.config().enabled {
            self.risk.on_exec(x);
        }
    }

    /// A control command: Halt / Resume (account-wide for [`InstrumentId::NONE`], else that
    /// symbol). Other kinds are not the strategy's.
    pub fn on_control(&mut self, c: &Control) {
        self.report.controls += 1;
        self.risk.on_control(c);
    }

    /// The state of instrument `id`.
    pub fn symbol(&self, id: InstrumentId) -> Option<&SymbolSignals> {
        self.slots
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .map(|s| &s.signals)
    }

    /// Feed one market event; returns the decision if one was evaluated.
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent, book_proven: bool) -> Option<Decision> {
        self.report.events += 1;
        let Some(slot) = self
            .slots
            .get_mut(e.instrument.0 as usize)
            .and_then(Option::as_mut)
        else {
            self.report.unknown_instrument += 1;
            return None;
        };
        let d = slot.signals.on_event(e, book_proven);
        if self.risk.config().enabled {
            let slots = &self.slots;
            self.risk.on_market(e, |id| {
                slots
                    .get(id.0 as usize)
                    .and_then(Option::as_ref)
                    .map_or([None; 3], |s| s.signals.order_flow().cascade())
            });
        }
        let d = d?;
        self.report.decisions += 1;
        match d.outcome {
            DecisionOutcome::EnterLong => self.report.entries_long += 1,
            DecisionOutcome::EnterShort => self.report.entries_short += 1,
            DecisionOutcome::Reject => {}
        }
        Some(d)
    }

    /// The intent for an entry decision (`None` for a rejection), caused by the decision with
    /// journal sequence number `decision_seq`. The client order id is a hash of the instrument,
    /// the decision time and the side, so a replay reproduces it.
    pub fn intent_for(&self, d: &Decision, decision_seq: u64) -> Option<OrderIntent> {
        let (side, reason) = match d.outcome {
            DecisionOutcome::EnterLong => (Side::Buy, ReasonCode::ENTRY_LONG),
            DecisionOutcome::EnterShort => (Side::Sell, ReasonCode::ENTRY_SHORT),
            DecisionOutcome::Reject => return None,
        };
        let slot = self
            .slots
            .get(d.instrument.0 as usize)
            .and_then(Option::as_ref)?;
        let mut key = [0u8; 13];
        key[..4].copy_from_slice(&d.instrument.0.to_le_bytes());
        key[4..12].copy_from_slice(&d.time_ns.to_le_bytes());
        key[12] = side.as_u8();
        let cid = fnv1a64(&key);
        Some(
            OrderIntent::new_order(
                slot.inst,
                side,
                OrderType::Market,
                TimeInForce::Ioc,
                crate::fixed::Price::ZERO,
                slot.qty,
                cid,
            )
            .because(reason, decision_seq)
            .with_stamps(d.stamps),
        )
    }
}

/// An execution or control command a replay applies at a recorded place (see
/// [`crate::codec::Applied`]).
#[derive(Debug, Clone, Copy)]
pub enum Scheduled {
    /// An execution report, as the gateway journaled it.
    Exec(ExecEvent),
    /// A control command, as the strategy journaled it.
    Control(Control),
}

/// What a replay's strategy stage applies between market events: `(after_events, item)` in
/// the recorded order, in place of the live exec and control rings.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    items: Vec<(u64, Scheduled)>,
    next: usize,
}

impl Schedule {
    /// A schedule of `items`, which must be in journal order (non-decreasing `after_events`).
    pub fn new(items: Vec<(u64, Scheduled)>) -> Self {
        Schedule { items, next: 0 }
    }

    /// Items not applied yet.
    pub fn pending(&self) -> usize {
        self.items.len() - self.next
    }
}

/// Where the stage reads, writes and reports.
pub struct StrategyIo {
    /// The feed's market events.
    pub input: Consumer<MarketEvent>,
    /// Intents for the gateway.
    pub output: Producer<OrderIntent>,
    /// Treat every book as proven (replays of data without depth); otherwise the feed's
    /// [`MarketEvent::FLAG_BOOK_PROVEN`] decides.
    pub assume_books_proven: bool,
    /// The stage's own journal (`<journal>/strategy/`), or `None` to journal nothing.
    pub journal: Option<Appender>,
    /// Set by the feed when it has published its last event.
    pub upstream_done: Arc<AtomicBool>,
    /// Events taken per poll at most.
    pub batch: usize,
    /// Receives the report at shutdown.
    pub report: Arc<Mutex<StrategyReport>>,
}

/// The strategy stage (see the module docs).
pub struct StrategyStage {
    strategy: Strategy,
    io: Wired,
    exec: Option<Consumer<ExecEvent>>,
    control: Option<Consumer<Control>>,
    schedule: Option<Schedule>,
    clock: quanta::Clock,
    latency: Option<(LatencyReport, Arc<Mutex<LatencyReport>>)>,
    intents: u64,
    journal_errors: u64,
}

/// [`StrategyIo`] as the stage holds it: the intent ring behind an [`Outlet`], so an intent
/// that finds the ring full waits instead of being lost.
struct Wired {
    input: Consumer<MarketEvent>,
    output: Outlet<OrderIntent>,
    assume_books_proven: bool,
    journal: Option<Appender>,
    upstream_done: Arc<AtomicBool>,
    batch: usize,
    report: Arc<Mutex<StrategyReport>>,
}

/// Intents the outlet holds before its backlog allocates: more than the venue could take in
/// the time one poll lasts.
const INTENT_BACKLOG: usize = 256;

impl StrategyStage {
    /// A stage for `strategy` on `io`.
    pub fn new(strategy: Strategy, io: StrategyIo) -> Self {
        let io = Wired {
            input: io.input,
            output: Outlet::new(io.output, INTENT_BACKLOG),
            assume_books_proven: io.assume_books_proven,
            journal: io.journal,
            upstream_done: io.upstream_done,
            batch: io.batch.max(1),
            report: io.report,
        };
        StrategyStage {
            strategy,
            io,
            exec: None,
            control: None,
            schedule: None,
            clock: quanta::Clock::new(),
            latency: None,
            intents: 0,
            journal_errors: 0,
        }
    }

    /// Also records each event's receive -> decoded and decoded -> strategy latencies into
    /// preallocated histograms, handed to `out` at shutdown.
    pub fn with_latency(mut self, out: Arc<Mutex<LatencyReport>>) -> Self {
        self.latency = Some((LatencyReport::default(), out));
        self
    }

    /// Also takes the gateway's execution reports from `exec` (fills update positions; see
    /// [`Strategy::on_exec`]), drained at the start of every poll.
    pub fn with_exec(mut self, exec: Consumer<ExecEvent>) -> Self {
        self.exec = Some(exec);
        self
    }

    /// Also takes control commands (Halt / Resume) from `control`, drained at the start of
    /// every poll, before any market event.
    pub fn with_control(mut self, control: Consumer<Control>) -> Self {
        self.control = Some(control);
        self
    }

    /// Replay: applies the recorded executions and control commands of `schedule` at their
    /// recorded places among the market events, instead of reading the live rings.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Scheduled items not applied (a replay that ended early, or a journal that does not
    /// match its schedule).
    pub fn schedule_pending(&self) -> usize {
        self.schedule.as_ref().map_or(0, Schedule::pending)
    }

    /// The strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// The strategy, to prepare before the stage runs (e.g. [`Strategy::inherit`]).
    pub fn strategy_mut(&mut self) -> &mut Strategy {
        &mut self.strategy
    }

    /// Counters so far.
    pub fn report(&self) -> StrategyReport {
        let mut r = self.strategy.report();
        r.intents = self.intents;
        r.intents_held = self.io.output.held();
        r.journal_errors = self.journal_errors;
        r
    }
}

impl Stage for StrategyStage {
    fn name(&self) -> &str {
        "strategy"
    }

    fn poll(&mut self) -> usize {
        let StrategyStage {
            strategy,
            io,
            exec,
            control,
            schedule,
            clock,
            latency,
            intents,
            journal_errors,
        } = self;
        let Wired {
            input,
            output,
            assume_books_proven,
            journal,
            batch,
            upstream_done,
            ..
        } = io;
        // Intents held back by a full ring go first, ahead of anything this poll decides.
        let mut work = output.flush();
        if let Some(c) = control.as_mut() {
            work += c.read_batch(*batch, |c| {
                apply(
                    strategy,
                    journal,
                    output,
                    intents,
                    journal_errors,
                    &Scheduled::Control(*c),
                );
            });
        }
        if let Some(x) = exec.as_mut() {
            work += x.read_batch(*batch, |x| {
                apply(
                    strategy,
                    journal,
                    output,
                    intents,
                    journal_errors,
                    &Scheduled::Exec(*x),
                );
            });
        }
        // Replay: what the live run applied after exactly the events consumed so far.
        let mut apply_due = |strategy: &mut Strategy,
                             journal: &mut Option<Appender>,
                             output: &mut Outlet<OrderIntent>,
                             intents: &mut u64,
                             journal_errors: &mut u64| {
            let Some(s) = schedule.as_mut() else {
                return;
            };
            while let Some((after, item)) = s.items.get(s.next) {
                if *after != strategy.events_seen() {
                    break;
                }
                s.next += 1;
                apply(strategy, journal, output, intents, journal_errors, item);
            }
        };
        work += input.read_batch(*batch, |ev| {
            apply_due(strategy, journal, output, intents, journal_errors);
            let mut e = *ev;
            e.stamps.stamp(StampStage::StrategyIn, clock.raw());
            if let Some((hist, _)) = latency.as_mut() {
                hist.record(clock, &e.stamps);
            }
            let proven = *assume_books_proven || e.has(MarketEvent::FLAG_BOOK_PROVEN);
            let decision = strategy.on_event(&e, proven);
            if let Some(mut d) = decision {
                d.stamps.stamp(StampStage::StrategyOut, clock.raw());
                let mut seq = strategy.report().decisions;
                if let Some(j) = journal.as_mut() {
                    match append(j, &d, 0, d.time_ns) {
                        Ok(s) => seq = s,
                        Err(_) => *journal_errors += 1,
                    }
                }
                if strategy.risk_enabled() {
                    strategy.enter(&d, seq);
                } else if let Some(intent) = strategy.intent_for(&d, seq) {
                    if let Some(j) = journal.as_mut() {
                        if append(j, &intent, 0, d.time_ns).is_err() {
                            *journal_errors += 1;
                        }
                    }
                    output.send(intent);
                    *intents += 1;
                }
            }
            if !strategy.outbox().is_empty() {
                let t = e.stamps.venue_ns;
                let now = clock.raw();
                drain_stamped(strategy, journal, output, intents, journal_errors, t, now);
            }
        });
        // Acquire pairs with the feed's Release store of `done`: every event is in the ring.
        if upstream_done.load(Ordering::Acquire) && input.is_empty() {
            apply_due(strategy, journal, output, intents, journal_errors);
        }
        work
    }

    fn finished(&self) -> bool {
        // Acquire pairs with the feed's Release store of `done`. Held intents must reach the
        // ring before the stage may stop.
        self.io.upstream_done.load(Ordering::Acquire)
            && self.io.input.is_empty()
            && self.io.output.backlog() == 0
    }

    fn shutdown(&mut self) {
        if let Some(j) = self.io.journal.as_mut() {
            if j.flush().is_err() {
                self.journal_errors += 1;
            }
        }
        let r = self.report();
        if let Ok(mut out) = self.io.report.lock() {
            *out = r;
        }
        if let Some((hist, out)) = self.latency.as_ref() {
            if let Ok(mut out) = out.lock() {
                *out = hist.clone();
            }
        }
    }
}

/// Applies an execution or a control command: journals where it landed ([`Applied`]; a
/// control command's own record follows it, an execution's is in the gateway journal), then
/// hands it to the strategy and forwards what that produced.
fn apply(
    strategy: &mut Strategy,
    journal: &mut Option<Appender>,
    output: &mut Outlet<OrderIntent>,
    intents: &mut u64,
    journal_errors: &mut u64,
    item: &Scheduled,
) {
    // Journaled at the strategy's event clock (the market data's): an execution's own stamp
    // may lie behind or ahead of it (a simulator at full speed runs ahead), or be the
    // gateway's local clock (a local rejection).
    let clock = |strategy: &Strategy, own: u64| match strategy.risk().now_ns() {
        0 => own,
        t => t,
    };
    let (what, time_ns) = match item {
        Scheduled::Exec(x) => (AppliedKind::Exec, clock(strategy, x.stamps.venue_ns)),
        Scheduled::Control(c) => (AppliedKind::Control, clock(strategy, c.stamps.venue_ns)),
    };
    if let Some(j) = journal.as_mut() {
        let marker = Applied {
            after_events: strategy.events_seen(),
            what,
        };
        if append_bytes(j, RecordKind::Applied, 0, time_ns, &marker.to_bytes()).is_err() {
            *journal_errors += 1;
        }
        if let Scheduled::Control(c) = item {
            if append(j, c, 0, time_ns).is_err() {
                *journal_errors += 1;
            }
        }
    }
    match item {
        Scheduled::Exec(x) => {
            strategy.on_exec(x);
            let time_ns = clock(strategy, time_ns);
            drain(strategy, journal, output, intents, journal_errors, time_ns);
        }
        Scheduled::Control(c) => strategy.on_control(c),
    }
}

/// Journal and forward what the risk layer put in the outbox: rejections, intents (pushed to
/// the gateway ring), closed trades; then clear it.
fn drain(
    strategy: &mut Strategy,
    journal: &mut Option<Appender>,
    output: &mut Outlet<OrderIntent>,
    intents: &mut u64,
    journal_errors: &mut u64,
    time_ns: u64,
) {
    drain_stamped(
        strategy,
        journal,
        output,
        intents,
        journal_errors,
        time_ns,
        0,
    );
}

/// [`drain`], stamping each intent `StrategyOut` at `out_tsc` (0: leave the stamps).
#[allow(clippy::too_many_arguments)]
fn drain_stamped(
    strategy: &mut Strategy,
    journal: &mut Option<Appender>,
    output: &mut Outlet<OrderIntent>,
    intents: &mut u64,
    journal_errors: &mut u64,
    time_ns: u64,
    out_tsc: u64,
) {
    let out = strategy.outbox();
    if let Some(j) = journal.as_mut() {
        for r in out.rejects() {
            if append::<RiskReject>(j, r, 0, time_ns).is_err() {
                *journal_errors += 1;
            }
        }
    }
    for i in out.intents() {
        let mut i = *i;
        if out_tsc != 0 {
            i.stamps.stamp(StampStage::StrategyOut, out_tsc);
        }
        if let Some(j) = journal.as_mut() {
            if append(j, &i, 0, time_ns).is_err() {
                *journal_errors += 1;
            }
        }
        output.send(i);
        *intents += 1;
    }
    if let Some(j) = journal.as_mut() {
        for c in out.closes() {
            if append::<TradeClose>(j, c, 0, time_ns).is_err() {
                *journal_errors += 1;
            }
        }
    }
    strategy.clear_outbox();
}
