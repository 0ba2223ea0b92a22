//! Risk and positions: the protective half of the strategy stage.
//!
//! The strategy's four-level decision says *when* to enter; this module says *whether*, *how
//! much*, and *when to get out*. It is built from small, allocation-free pieces that all run on
//! the strategy thread in event time (the timestamps of the market events, never the wall
//! clock, nor an execution's own stamp: see [`engine`]), so a replay of a journal reproduces
//! every decision byte for byte:
//!
//! * [`state`]: the trading states ACTIVE / REDUCING / HALTED of the account and of each symbol,
//!   driven by the portfolio risk manager and by the admin kill switch. No state ever blocks an
//!   exit.
//! * [`sizing`]: position size from the risk per trade as a share of equity, the stop distance
//!   and the leverage (capped at the hard limit), then the per-market and meme-coin caps.
//! * [`chain`]: the execution chain every entry passes, a static sequence of checks (trading
//!   state, existing position, reversal, position limit, exposure, price band, max notional,
//!   rate-limit budget) that either approves the order or returns a [`RiskReject`] record with
//!   the failing check's reason code, value and limit.
//! * [`monitor`]: the per-position exit monitor: the 0.5% trailing stop evaluated on every
//!   trade, and every 2 s of event time the dynamic exits (cascade reversal, then consecutive
//!   adverse moves with profit-based thresholds); no fixed take-profit.
//! * [`portfolio`]: the portfolio risk manager: daily drawdown levels, the leader-dump
//!   correlation exit, the health score and its actions, maximum hold times, dump detection and
//!   the per-symbol / per-venue circuit breakers with cool-downs.
//! * [`session`]: the weekly session of session-based instruments (forex): their positions
//!   are force-closed from 30 minutes before the Friday close and no entries are taken until
//!   the market reopens; crypto is 24/7 and untouched.
//! * [`engine`]: [`RiskEngine`] ties them together per symbol and for the account, tracks
//!   positions from fills ([`ExecEvent`](crate::event::ExecEvent)s) and writes what it decides
//!   into an [`Outbox`]: order intents, rejections, closed trades.
//!
//! Every threshold lives in [`RiskConfig`]. Prices and quantities stay fixed-point; equity,
//! exposure and statistics are `f64` in quote currency, which is precise enough for limits.
//! The journaled per-trade P&L ([`TradeClose`]) is computed exactly in integers.

pub mod chain;
pub mod engine;
pub mod monitor;
pub mod portfolio;
pub mod session;
pub mod sizing;
pub mod state;

use rkyv::{Archive, Deserialize, Serialize};

use crate::event::{ReasonCode, Side};
use crate::fixed::{Price, Qty};
use crate::instrument::InstrumentId;

pub use chain::{ChainContext, EntryOrder, ExecutionChain};
pub use engine::{Outbox, RiskEngine, SymbolRisk};
pub use monitor::{ExitSignal, MonitorConfig, PositionMonitor};
pub use portfolio::{DrawdownLevel, HealthAction, HealthInputs, HealthScore, PortfolioConfig};
pub use session::SessionConfig;
pub use sizing::{SizingConfig, SizingError};
pub use state::{TradingState, TradingStates};

/// Scale of the P&L and fee mantissas of [`TradeClose`] (quote currency, 10^-8).
pub const PNL_SCALE: u8 = 8;

/// Every threshold of the risk layer (see each part's config for the meaning of its fields).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// False: entries pass straight through as before (one step of quantity, no chain, no
    /// monitor). Used as the baseline of the benchmark.
    pub enabled: bool,
    /// Account equity at start, quote currency.
    pub starting_equity: f64,
    /// Position sizing.
    pub sizing: SizingConfig,
    /// Execution chain limits.
    pub chain: chain::ChainConfig,
    /// Exit monitor.
    pub monitor: MonitorConfig,
    /// Portfolio risk manager.
    pub portfolio: PortfolioConfig,
    /// Weekly session of session-based instruments (forex).
    pub session: SessionConfig,
    /// An order with no answer at all after this much event time is forgotten, so the symbol
    /// can trade again (ns); an answered order stays in flight until its terminal report.
    ///
    /// Never (`u64::MAX`) by default, and it should stay so wherever a gateway is attached: the
    /// gateway answers every intent (acknowledgement, fill, rejection, or after its own
    /// wall-clock timeout the venue's answer to a query), and the rings between them lose
    /// nothing ([`ringbuffers::outlet`]). A deadline in *event* time cannot tell a lost order
    /// from a slow answer: against a simulator at full speed, ten seconds of market time pass
    /// in milliseconds, and an exit forgotten while the venue was still filling it goes out a
    /// second time (the venue then rejects it for lack of balance, or worse, fills it). Only a
    /// run with no gateway (offline over a capture, where intents are merely counted) sets it.
    pub pending_timeout_ns: u64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: true,
            starting_equity: 10_000.0,
            sizing: SizingConfig::default(),
            chain: chain::ChainConfig::default(),
            monitor: MonitorConfig::default(),
            portfolio: PortfolioConfig::default(),
            session: SessionConfig::default(),
            pending_timeout_ns: u64::MAX,
        }
    }
}

impl RiskConfig {
    /// The configuration with the risk layer off.
    pub fn disabled() -> Self {
        RiskConfig {
            enabled: false,
            ..RiskConfig::default()
        }
    }
}

/// A rejected entry: which check of the execution chain refused it, with the value it saw
/// and the limit it applied (journaled as `RecordKind::RiskReject`).
///
/// 64 bytes, 8-aligned, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct RiskReject {
    /// Instrument (0, 4).
    pub instrument: InstrumentId,
    /// Side of the refused entry (4, 1).
    pub side: Side,
    /// Trading state of the symbol at the time ([`TradingState::as_u8`]) (5, 1).
    pub state: u8,
    /// The check that refused it: a `RISK_REJECT_*` [`ReasonCode`] (6, 2).
    pub reason: ReasonCode,
    /// Price scale (8, 1).
    pub price_scale: u8,
    /// Quantity scale (9, 1).
    pub qty_scale: u8,
    /// Zero (10, 2).
    pub reserved: u16,
    /// Open positions at the time (12, 4).
    pub open_positions: u32,
    /// Event time, ns (16, 8).
    pub time_ns: u64,
    /// Entry reference price (the decision's price) (24, 8).
    pub price: Price,
    /// Sized quantity (0 if sizing itself failed) (32, 8).
    pub qty: Qty,
    /// The value the check saw (exposure after the order, notional, deviation, ...) (40, 8).
    pub value: f64,
    /// The limit it applied (48, 8).
    pub limit: f64,
    /// Journal sequence number of the decision that asked for the entry (56, 8).
    pub decision_seq: u64,
}

/// An open position as the risk engine holds it ([`RiskEngine::open_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPosition {
    /// Long ([`Side::Buy`]) or short.
    pub side: Side,
    /// Open quantity (mantissa at the instrument's quantity scale).
    pub qty: Qty,
    /// Volume-weighted price of the entry fills.
    pub entry_px: Price,
    /// Event time of the first entry fill, ns.
    pub open_ns: u64,
    /// Client order id of the order whose fill opened it.
    pub entry_cid: u64,
    /// Fills so far.
    pub fills: u16,
}

/// A closed position, from its fills: the per-trade log (journaled as
/// `RecordKind::TradeClose`). P&L is exact: the sums of `price * qty` over the entry and exit
/// fills, at `price_scale + qty_scale`, rescaled once to [`PNL_SCALE`]; fees are the fills'
/// fees (taken as quote currency) at the same scale.
///
/// 96 bytes, 8-aligned, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct TradeClose {
    /// Instrument (0, 4).
    pub instrument: InstrumentId,
    /// Position side (buy = long) (4, 1).
    pub side: Side,
    /// Price scale (5, 1).
    pub price_scale: u8,
    /// Quantity scale (6, 1).
    pub qty_scale: u8,
    /// Scale of the P&L fields ([`PNL_SCALE`]) (7, 1).
    pub pnl_scale: u8,
    /// Why it was closed (`EXIT_*` / `RISK_*` reason of the closing order) (8, 2).
    pub reason: ReasonCode,
    /// Fills that made the position (entry and exit) (10, 2).
    pub fills: u16,
    /// Holding time in seconds (saturating) (12, 4).
    pub hold_secs: u32,
    /// Event time the first entry fill was applied at (the strategy's market clock; see
    /// [`engine`]), ns (16, 8).
    pub open_ns: u64,
    /// Event time the last exit fill was applied at, ns (24, 8).
    pub close_ns: u64,
    /// Volume-weighted entry price (rounded half-even to the price scale) (32, 8).
    pub entry_px: Price,
    /// Volume-weighted exit price (40, 8).
    pub exit_px: Price,
    /// Quantity closed (48, 8).
    pub qty: Qty,
    /// P&L before fees, at `pnl_scale` (56, 8).
    pub gross_pnl: i64,
    /// Fees of every fill, at `pnl_scale` (64, 8).
    pub fees: i64,
    /// P&L after fees, at `pnl_scale` (72, 8).
    pub net_pnl: i64,
    /// Client order id of the first entry order (80, 8).
    pub entry_cid: u64,
    /// Client order id of the closing order (88, 8).
    pub exit_cid: u64,
}

const _: () = assert!(core::mem::size_of::<RiskReject>() == 64);
const _: () = assert!(core::mem::size_of::<TradeClose>() == 96);
