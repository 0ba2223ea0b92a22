//! Wilder indicators on candle closes: RSI, ATR, +DI / -DI and ADX, incremental and O(1).
//!
//! Why TA-Lib's definitions: "ADX(14) > 25" in the regime filter only means something if ADX is
//! the ADX every charting package shows, and TA-Lib is the reference implementation most of
//! them follow. Each indicator here reproduces TA-Lib's algorithm step for step (same seeding,
//! same order of floating-point operations), so the engine agrees with TA-Lib to the last few
//! ulps (`hotpath/tests/analytics_talib.rs` checks 1e-9 relative on real FX data):
//!
//! * **RSI(n)**: the first value comes after `n + 1` closes: average gain and average loss are
//!   the simple means of the first `n` close-to-close changes; afterwards
//!   `avg = (avg * (n - 1) + x) / n` (Wilder smoothing). `RSI = 100 * gain / (gain + loss)`.
//! * **ATR(n)**: true range `max(high - low, |high - prev close|, |low - prev close|)` from the
//!   second candle on; the first ATR (after `n + 1` candles) is the simple mean of the first
//!   `n` true ranges, then Wilder smoothing.
//! * **+DI / -DI(n)**: directional movements `up = high - prev high`, `down = prev low - low`;
//!   `-DM = down` if `down > 0 && up < down`, else `+DM = up` if `up > 0 && up > down`.
//!   The first `n - 1` DMs and true ranges are summed; from the `n`-th on, each sum is updated
//!   Wilder-style `s = s - s / n + x`, and `DI = 100 * DM / TR`. First values after `n + 1`
//!   candles.
//! * **ADX(n)**: `DX = 100 * |+DI - -DI| / (+DI + -DI)`; the first ADX is the mean of the first
//!   `n` DX values (after `2n` candles: TA-Lib's look-back of `2n - 1`), then
//!   `ADX = (ADX * (n - 1) + DX) / n`.
//!
//! NaN-free by construction: every division is guarded, and the guarded cases have a defined
//! result.
//!
//! * Until warm, an indicator returns `None` (a single candle, or fewer than the look-back).
//! * RSI with no movement at all over its smoothing (gain + loss = 0: identical prices) is
//!   **50** (neutral). TA-Lib outputs 0 there; the test treats that one case explicitly.
//! * Zero range (true-range sum 0): +DI = -DI = 0, as TA-Lib; the DX of such a candle is
//!   undefined and, as in TA-Lib, contributes 0 to the first ADX's mean and leaves a warm ADX
//!   unchanged. The same holds when +DI + -DI = 0 (no directional movement).
//! * ATR of identical prices is 0.
//!
//! TA-Lib treats values within 1e-8 of zero as zero in those guards; the engine guards exact
//! zero only (prices are fixed-point, so "no movement" is exactly zero). Inputs are the
//! candles' fixed-point prices converted with [`Price::to_f64`](crate::fixed::Price::to_f64);
//! volume does not enter these indicators, so zero volume changes nothing.

/// RSI with Wilder smoothing (TA-Lib `RSI`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rsi {
    period: u32,
    seen: u32,
    prev: f64,
    gain: f64,
    loss: f64,
    value: Option<f64>,
}

impl Rsi {
    /// RSI over `period` (at least 1; 0 is taken as 1).
    pub const fn new(period: u32) -> Self {
        Rsi {
            period: if period == 0 { 1 } else { period },
            seen: 0,
            prev: 0.0,
            gain: 0.0,
            loss: 0.0,
            value: None,
        }
    }

    /// The period.
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// The latest value (`None` until `period + 1` closes were seen).
    pub const fn value(&self) -> Option<f64> {
        self.value
    }

    /// Add a close; returns the new value once warm.
    #[inline]
    pub fn update(&mut self, close: f64) -> Option<f64> {
        if self.seen == 0 {
            self.prev = close;
            self.seen = 1;
            return None;
        }
        let diff = close - self.prev;
        self.prev = close;
        let p = f64::from(self.period);
        if self.seen <= self.period {
            if diff < 0.0 {
                self.loss -= diff;
            } else {
                self.gain += diff;
            }
            self.seen += 1;
            if self.seen <= self.period {
                return None;
            }
            self.loss /= p;
            self.gain /= p;
        } else {
            self.loss *= f64::from(self.period - 1);
            self.gain *= f64::from(self.period - 1);
            if diff < 0.0 {
                self.loss -= diff;
            } else {
                self.gain += diff;
            }
            self.loss /= p;
            self.gain /= p;
        }
        let total = self.gain + self.loss;
        let v = if total == 0.0 {
            50.0
        } else {
            100.0 * (self.gain / total)
        };
        self.value = Some(v);
        self.value
    }
}

/// True range of a candle against the previous close (TA-Lib `TRANGE`).
#[inline]
pub fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut tr = high - low;
    let a = (prev_close - high).abs();
    if a > tr {
        tr = a;
    }
    let b = (prev_close - low).abs();
    if b > tr {
        tr = b;
    }
    tr
}

/// Average true range with Wilder smoothing (TA-Lib `ATR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Atr {
    period: u32,
    seen: u32,
    prev_close: f64,
    acc: f64,
    value: Option<f64>,
}

impl Atr {
    /// ATR over `period` (0 is taken as 1).
    pub const fn new(period: u32) -> Self {
        Atr {
            period: if period == 0 { 1 } else { period },
            seen: 0,
            prev_close: 0.0,
            acc: 0.0,
            value: None,
        }
    }

    /// The latest value (`None` until `period + 1` candles were seen).
    pub const fn value(&self) -> Option<f64> {
        self.value
    }

    /// Add a candle; returns the new value once warm.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        if self.seen == 0 {
            self.prev_close = close;
            self.seen = 1;
            return None;
        }
        let tr = true_range(high, low, self.prev_close);
        self.prev_close = close;
        let p = f64::from(self.period);
        if self.seen <= self.period {
            self.acc += tr;
            self.seen += 1;
            if self.seen <= self.period {
                return None;
            }
            self.acc /= p;
        } else {
            self.acc *= f64::from(self.period - 1);
            self.acc += tr;
            self.acc /= p;
        }
        self.value = Some(self.acc);
        self.value
    }
}

/// The directional-movement values of one candle.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DmiValue {
    /// +DI (0..=100), once warm.
    pub plus_di: Option<f64>,
    /// -DI (0..=100), once warm.
    pub minus_di: Option<f64>,
    /// ADX (0..=100), once warm.
    pub adx: Option<f64>,
}

/// +DI, -DI and ADX with Wilder smoothing (TA-Lib `PLUS_DI`, `MINUS_DI`, `ADX`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dmi {
    period: u32,
    seen: u32,
    prev_high: f64,
    prev_low: f64,
    prev_close: f64,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    sum_dx: f64,
    adx: f64,
    value: DmiValue,
}

impl Dmi {
    /// DMI over `period` (0 is taken as 1).
    pub const fn new(period: u32) -> Self {
        Dmi {
            period: if period == 0 { 1 } else { period },
            seen: 0,
            prev_high: 0.0,
            prev_low: 0.0,
            prev_close: 0.0,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            sum_dx: 0.0,
            adx: 0.0,
            value: DmiValue {
                plus_di: None,
                minus_di: None,
                adx: None,
            },
        }
    }

    /// The latest values.
    pub const fn value(&self) -> DmiValue {
        self.value
    }

    /// Add a candle; returns the values after it.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> DmiValue {
        if self.seen == 0 {
            self.prev_high = high;
            self.prev_low = low;
            self.prev_close = close;
            self.seen = 1;
            return self.value;
        }
        let up = high - self.prev_high;
        let down = self.prev_low - low;
        let tr = true_range(high, low, self.prev_close);
        self.prev_high = high;
        self.prev_low = low;
        self.prev_close = close;
        let n = self.period;
        let p = f64::from(n);
        // Candle index (0-based) of this update.
        let idx = self.seen;
        self.seen = self.seen.saturating_add(1);
        if idx < n {
            if down > 0.0 && up < down {
                self.minus_dm += down;
            } else if up > 0.0 && up > down {
                self.plus_dm += up;
            }
            self.tr += tr;
            return self.value;
        }
        self.minus_dm -= self.minus_dm / p;
        self.plus_dm -= self.plus_dm / p;
        if down > 0.0 && up < down {
            self.minus_dm += down;
        } else if up > 0.0 && up > down {
            self.plus_dm += up;
        }
        self.tr = self.tr - (self.tr / p) + tr;
        let (plus, minus) = if self.tr == 0.0 {
            (0.0, 0.0)
        } else {
            (
                100.0 * (self.plus_dm / self.tr),
                100.0 * (self.minus_dm / self.tr),
            )
        };
        let dx = if self.tr != 0.0 && plus + minus != 0.0 {
            Some(100.0 * ((minus - plus).abs() / (minus + plus)))
        } else {
            None
        };
        self.value.plus_di = Some(plus);
        self.value.minus_di = Some(minus);
        let first_adx = 2 * n - 1;
        if idx <= first_adx {
            self.sum_dx += dx.unwrap_or(0.0);
            if idx == first_adx {
                self.adx = self.sum_dx / p;
                self.value.adx = Some(self.adx);
            }
        } else if let Some(dx) = dx {
            self.adx = ((self.adx * f64::from(n - 1)) + dx) / p;
            self.value.adx = Some(self.adx);
        }
        self.value
    }
}
