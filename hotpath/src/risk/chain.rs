//! The execution chain: the checks an entry passes before it becomes an order (seed 2.2.4,
//! plus the design's price band, max notional, rate-limit budget and trading state).
//!
//! The seed builds it as a linked chain of handler objects; here it is one function that runs
//! the checks in a fixed order and stops at the first refusal (fail-fast), with no dynamic
//! dispatch and no allocation:
//!
//! 0. trading state: the symbol must be ACTIVE (HALTED and REDUCING refuse entries);
//!    session: a session-based instrument (forex) must be outside its weekly pre-close window
//!    ([`super::session`]);
//! 1. existing position: a position (or an entry in flight) on the **same** side refuses;
//! 2. reversal: a position on the **opposite** side is closed first (the engine emits the
//!    close before the entry); the symbol's slot is reused, so it does not count twice toward
//!    the position limit, but its position **still counts toward the exposure** until the
//!    close has filled: until then the account holds it, and a close that is rejected or
//!    expires leaves it there;
//! 3. position limit: open positions (plus entries in flight) below the maximum;
//! 4. exposure: total exposure (open positions, including those being closed, and the unfilled
//!    part of entries in flight) plus this order's notional within the limit;
//! 5. price band (fat finger): the order's reference price within a band around the last
//!    traded price;
//! 6. max notional of one order;
//! 7. rate-limit budget: at most N entries per window of event time (exits never consume
//!    budget, so they are never blocked).
//!
//! Order placement (the intent) and monitoring activation (on the fill) are the engine's.
//! A refusal is a `RISK_REJECT_*` reason with the value seen and the limit applied; the engine
//! journals it as a [`RiskReject`](super::RiskReject).

use crate::event::ReasonCode;

use super::state::TradingState;

/// Limits of the chain.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// Maximum open positions (entries in flight count).
    pub max_open_positions: u32,
    /// Maximum total exposure, quote currency (entry notional).
    pub max_exposure: f64,
    /// Price band: maximum relative deviation of the order's reference price from the last
    /// trade (0.01 = 1%).
    pub price_band_frac: f64,
    /// Maximum notional of one order, quote currency.
    pub max_order_notional: f64,
    /// Entries allowed per rate window.
    pub max_entries_per_window: u32,
    /// Rate window, ns of event time.
    pub rate_window_ns: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            max_open_positions: 5,
            max_exposure: 50_000.0,
            price_band_frac: 0.01,
            max_order_notional: 25_000.0,
            max_entries_per_window: 10,
            rate_window_ns: 1_000_000_000,
        }
    }
}

/// What the chain needs to know about the account and the symbol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainContext {
    /// Event time, ns.
    pub now_ns: u64,
    /// Effective trading state of the symbol.
    pub state: TradingState,
    /// The symbol's position side (+1 long, -1 short, 0 flat).
    pub position_sign: i64,
    /// An entry of the symbol is in flight (sent, not filled, not timed out).
    pub pending_entry: bool,
    /// The symbol is session-based and its session is in the pre-close window or closed.
    pub session_closed: bool,
    /// Open positions plus entries in flight, account-wide.
    pub open_positions: u32,
    /// Exposure, account-wide: open positions (those being closed included) plus the unfilled
    /// part of entries in flight (see [`RiskEngine::exposure`](super::RiskEngine::exposure)).
    pub exposure: f64,
    /// Last traded price of the symbol (f64, for the band), 0 if none yet.
    pub last_price: f64,
}

/// An entry that passed the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryOrder {
    /// Close the opposite position first.
    pub reverse_first: bool,
}

/// A refusal: the check's reason code, the value it saw and its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    /// `RISK_REJECT_*`.
    pub reason: ReasonCode,
    /// Value seen.
    pub value: f64,
    /// Limit applied.
    pub limit: f64,
}

/// The chain with its rate budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecutionChain {
    cfg: ChainConfig,
    window_start_ns: u64,
    used: u32,
}

impl ExecutionChain {
    /// A chain with a full rate budget.
    pub fn new(cfg: ChainConfig) -> Self {
        ExecutionChain {
            cfg,
            window_start_ns: 0,
            used: 0,
        }
    }

    /// The limits.
    pub fn config(&self) -> &ChainConfig {
        &self.cfg
    }

    /// Run the checks for an entry of `side_sign` (+1 buy, -1 sell) at reference price
    /// `price` with entry notional `notional`. On success one unit of rate budget is used.
    #[inline]
    pub fn check(
        &mut self,
        ctx: &ChainContext,
        side_sign: i64,
        price: f64,
        notional: f64,
    ) -> Result<EntryOrder, Refusal> {
        let refuse = |reason, value, limit| {
            Err(Refusal {
                reason,
                value,
                limit,
            })
        };
        if !ctx.state.allows_entry() {
            return refuse(
                ReasonCode::RISK_REJECT_STATE,
                f64::from(ctx.state.as_u8()),
                f64::from(TradingState::Active.as_u8()),
            );
        }
        if ctx.session_closed {
            return refuse(ReasonCode::RISK_REJECT_SESSION, 1.0, 0.0);
        }
        if ctx.pending_entry || ctx.position_sign == side_sign {
            return refuse(ReasonCode::RISK_REJECT_EXISTING, 1.0, 0.0);
        }
        let reverse_first = ctx.position_sign == -side_sign;
        let mut positions = ctx.open_positions;
        if reverse_first {
            positions = positions.saturating_sub(1);
        }
        let exposure = ctx.exposure;
        if positions >= self.cfg.max_open_positions {
            return refuse(
                ReasonCode::RISK_REJECT_POSITION_LIMIT,
                f64::from(positions),
                f64::from(self.cfg.max_open_positions),
            );
        }
        let after = exposure + notional;
        if after.is_nan() || after > self.cfg.max_exposure {
            return refuse(
                ReasonCode::RISK_REJECT_EXPOSURE,
                after,
                self.cfg.max_exposure,
            );
        }
        if ctx.last_price > 0.0 {
            let dev = ((price - ctx.last_price) / ctx.last_price).abs();
            if dev.is_nan() || dev > self.cfg.price_band_frac {
                return refuse(
                    ReasonCode::RISK_REJECT_PRICE_BAND,
                    dev,
                    self.cfg.price_band_frac,
                );
            }
        }
        if notional.is_nan() || notional > self.cfg.max_order_notional {
            return refuse(
                ReasonCode::RISK_REJECT_MAX_NOTIONAL,
                notional,
                self.cfg.max_order_notional,
            );
        }
        if ctx.now_ns >= self.window_start_ns.saturating_add(self.cfg.rate_window_ns) {
            self.window_start_ns = ctx.now_ns;
            self.used = 0;
        }
        if self.used >= self.cfg.max_entries_per_window {
            return refuse(
                ReasonCode::RISK_REJECT_RATE_LIMIT,
                f64::from(self.used),
                f64::from(self.cfg.max_entries_per_window),
            );
        }
        self.used += 1;
        Ok(EntryOrder { reverse_first })
    }
}
