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

/// One fill of [`OpenPosition::steps_to`]: `qty` on `side` at `px`.
pub type PositionStep = (Side, Qty, Price);

impl OpenPosition {
    /// The signed quantity (mantissa): > 0 long, < 0 short.
    pub fn signed_qty(&self) -> i64 {
        self.qty.0 * self.side.sign()
    }

    /// The fills (at most two) that take `held` (`None`: flat) to a position of `target`
    /// (signed quantity mantissa) entered at `target_px`: what start-up reconciliation
    /// applies where a venue that states positions (USD-M) holds another one than the
    /// journal's fills give. The venue wins.
    ///
    /// Adding to a position on its own side is one fill at `target_px`; reducing it is one
    /// fill at the held entry price, so the correction books no profit or loss; anything else
    /// (a flip, or a position the journal has not) closes what is held at its entry price and
    /// opens the venue's at `target_px`, since a fill past flat would not be applied as an
    /// opening one (exits are reduce-only).
    pub fn steps_to(
        held: Option<&OpenPosition>,
        target: i64,
        target_px: Price,
    ) -> Vec<PositionStep> {
        let now = held.map_or(0, OpenPosition::signed_qty);
        let diff = target - now;
        let side_of = |q: i64| if q > 0 { Side::Buy } else { Side::Sell };
        let mut steps = Vec::with_capacity(2);
        if diff == 0 {
            return steps;
        }
        match held {
            Some(h) if target != 0 && target.signum() == now.signum() => {
                let px = if target.abs() > now.abs() {
                    target_px
                } else {
                    h.entry_px
                };
                steps.push((side_of(diff), Qty(diff.abs()), px));
            }
            _ => {
                if let Some(h) = held {
                    steps.push((h.side.opposite(), h.qty, h.entry_px));
                }
                if target != 0 {
                    steps.push((side_of(target), Qty(target.abs()), target_px));
                }
            }
        }
        steps
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn held(side: Side, qty: i64, px: i64) -> OpenPosition {
        OpenPosition {
            side,
            qty: Qty(qty),
            entry_px: Price(px),
            open_ns: 1,
            entry_cid: 7,
            fills: 1,
        }
    }

    /// Applies steps to a signed quantity the way the risk engine applies fills (a fill past
    /// flat is not applied beyond it).
    fn apply(mut q: i64, steps: &[PositionStep]) -> i64 {
        for &(side, qty, _) in steps {
            let d = qty.0 * side.sign();
            q = if q == 0 || q.signum() == d.signum() {
                q + d
            } else {
                q + d.signum() * qty.0.min(q.abs())
            };
        }
        q
    }

    #[test]
    fn steps_take_any_held_position_to_the_venues() {
        let px = Price(5_000_000);
        let cases: &[(Option<OpenPosition>, i64)] = &[
            (None, 0),
            (None, 30),
            (None, -30),
            (Some(held(Side::Buy, 10, 4_900_000)), 10),
            (Some(held(Side::Buy, 10, 4_900_000)), 25),
            (Some(held(Side::Buy, 10, 4_900_000)), 4),
            (Some(held(Side::Buy, 10, 4_900_000)), 0),
            (Some(held(Side::Buy, 10, 4_900_000)), -6),
            (Some(held(Side::Sell, 10, 4_900_000)), -25),
            (Some(held(Side::Sell, 10, 4_900_000)), 6),
        ];
        for (h, target) in cases {
            let steps = OpenPosition::steps_to(h.as_ref(), *target, px);
            let now = h.as_ref().map_or(0, OpenPosition::signed_qty);
            assert_eq!(apply(now, &steps), *target, "{h:?} -> {target}: {steps:?}");
            assert!(steps.len() <= 2);
            assert_eq!(steps.is_empty(), now == *target);
        }
        // Adding books at the venue's price; reducing and closing at the held entry, so the
        // correction itself makes no profit or loss.
        let h = held(Side::Buy, 10, 4_900_000);
        assert_eq!(
            OpenPosition::steps_to(Some(&h), 25, px),
            vec![(Side::Buy, Qty(15), px)]
        );
        assert_eq!(
            OpenPosition::steps_to(Some(&h), 4, px),
            vec![(Side::Sell, Qty(6), Price(4_900_000))]
        );
        assert_eq!(
            OpenPosition::steps_to(Some(&h), -6, px),
            vec![
                (Side::Sell, Qty(10), Price(4_900_000)),
                (Side::Sell, Qty(6), px)
            ]
        );
    }
}
