//! Position sizing: how much to buy or sell for an entry.
//!
//! The seed's rule (section 2.7.1.1): risk a share of equity per trade, with the stop distance
//! and the leverage in the denominator: `notional = equity * risk / (stop * leverage)`
//! (2% of 10,000 at a 0.5% stop and 5x is 8,000). The leverage is capped at the configured
//! hard limit (never above 10x by default), and the notional is then capped by the margin the
//! equity allows at that leverage, by the per-market cap, and for meme coins by their own
//! cap. The quantity is the notional over the price, rounded **down** to the instrument's step
//! in integers, so the order never exceeds the caps; below the minimum quantity there is no
//! order.

use crate::fixed::{mantissa_to_f64, Price, Qty};

/// Sizing parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SizingConfig {
    /// Share of equity risked per trade (0.02 = 2%).
    pub risk_per_trade: f64,
    /// Stop distance used for sizing, as a fraction of the entry price (0.005 = 0.5%).
    pub stop_frac: f64,
    /// Leverage applied.
    pub leverage: f64,
    /// Hard leverage limit: `leverage` is clamped to it.
    pub max_leverage: f64,
    /// Meme coins: notional at most this share of equity times leverage.
    pub meme_cap_frac: f64,
}

impl Default for SizingConfig {
    fn default() -> Self {
        SizingConfig {
            risk_per_trade: 0.02,
            stop_frac: 0.005,
            leverage: 5.0,
            max_leverage: 10.0,
            meme_cap_frac: 0.25,
        }
    }
}

/// Why no quantity could be sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    /// Price, equity or a parameter is not positive / finite.
    #[error("sizing inputs are not positive and finite")]
    BadInput,
    /// The sized quantity rounds below the instrument's minimum quantity.
    #[error("sized quantity is below the minimum quantity")]
    BelowMinimum,
}

impl SizingConfig {
    /// The leverage used: the configured one, clamped to `[1, max_leverage]`.
    #[inline]
    pub fn effective_leverage(&self) -> f64 {
        self.leverage.min(self.max_leverage).max(1.0)
    }

    /// The target notional (quote) for `equity` before any cap:
    /// `equity * risk_per_trade / (stop_frac * leverage)`.
    #[inline]
    pub fn risk_notional(&self, equity: f64) -> f64 {
        equity * self.risk_per_trade / (self.stop_frac * self.effective_leverage())
    }

    /// The notional after the margin cap (`equity * leverage`), the per-market cap
    /// `market_cap` and, for a meme coin, `meme_cap_frac * equity * leverage`.
    pub fn capped_notional(&self, equity: f64, market_cap: f64, meme: bool) -> f64 {
        let lev = self.effective_leverage();
        let mut n = self.risk_notional(equity).min(equity * lev).min(market_cap);
        if meme {
            n = n.min(self.meme_cap_frac * equity * lev);
        }
        n.max(0.0)
    }

    /// The quantity for `notional` at `price`, rounded down to `step` and at least
    /// `min_qty`. `contract_value` is the quote value of one unit of quantity per unit of
    /// price (1 for linear instruments).
    pub fn qty_for(
        &self,
        notional: f64,
        price: Price,
        price_scale: u8,
        qty_scale: u8,
        step: Qty,
        min_qty: Qty,
    ) -> Result<Qty, SizingError> {
        let px = mantissa_to_f64(price.0, price_scale);
        if !(px > 0.0 && notional.is_finite() && notional > 0.0) {
            return Err(SizingError::BadInput);
        }
        // The relative nudge absorbs f64 noise (16000 computed as 15999.999...) without ever
        // adding a step: it is far below one unit of any realistic quantity.
        let units = notional / px * 10f64.powi(i32::from(qty_scale)) * (1.0 + 1e-12);
        if !(units.is_finite() && units < i64::MAX as f64) {
            return Err(SizingError::BadInput);
        }
        // `as` truncates toward zero: never above the notional.
        let mut q = units as i64;
        if step.0 > 0 {
            q -= q % step.0;
        }
        if q <= 0 || q < min_qty.0 {
            return Err(SizingError::BelowMinimum);
        }
        Ok(Qty(q))
    }
}
