//! Price statistics of the regime filter and the confluence score: the tick z-score, lag-1
//! autocorrelation of candle log returns, the Hurst exponent by rescaled range, and
//! mean-reversion strength.
//!
//! Why these shapes:
//!
//! * The **z-score** is evaluated on every tick (the seed's mean-reversion filter compares the
//!   current price with the mean and standard deviation of the last 15 minutes of ticks), so it
//!   is O(1) amortised: a fixed-capacity ring of ticks plus running sums. The sums are **exact
//!   integers** (`i128` over price mantissas relative to a reference price), so there is no
//!   floating-point drift however long the symbol runs, and no cancellation error in the
//!   variance of a price of 60,000 that moves by cents.
//! * The candle statistics (autocorrelation, Hurst, mean reversion) change once per candle, so
//!   they are computed at candle close from a fixed ring of the last closes in O(window)
//!   (at most a few thousand floating-point operations once a minute), which keeps them simple
//!   enough to check against a textbook batch implementation
//!   (`hotpath/tests/analytics_batch.rs`).
//!
//! Every function returns `None` rather than NaN when its input cannot define a value; the
//! exact conditions are on each item.

use crate::fixed::{mantissa_to_f64, Price};

/// Default z-score window: 15 minutes of event time.
pub const ZSCORE_WINDOW_NS: u64 = 15 * 60 * 1_000_000_000;

/// Default z-score ring capacity (ticks): 32,768 ticks, 16 bytes each (512 KiB per symbol).
pub const ZSCORE_CAPACITY: usize = 32_768;

/// Largest `|price - reference|` (in mantissa units) kept relative to the current reference
/// before the sums are rebuilt around a new one; keeps `count * sum((p - ref)^2)` far below
/// `i128::MAX` for any capacity up to 2^24.
const REBASE_LIMIT: i64 = 1 << 47;

/// Mean, standard deviation and z-score of the tick window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ZScore {
    /// `(price - mean) / std`; 0 when `std` is 0 (all prices identical, or a single tick).
    pub z: f64,
    /// Mean price of the window.
    pub mean: f64,
    /// Population standard deviation of the window's prices.
    pub std: f64,
    /// The price the z-score is of (the latest tick).
    pub price: f64,
    /// Ticks in the window (the latest included).
    pub ticks: u32,
}

/// Rolling z-score of the latest price against the ticks of the last `window_ns` of event time.
///
/// The window holds ticks with `age < window_ns`, age measured from the latest tick time seen
/// (event time; a tick with an earlier time than one already seen is counted at the latest
/// time, so the window never moves backwards). Memory is bounded by the capacity fixed at
/// construction: when the ring is full, the oldest tick is evicted even if it is younger than
/// the window (the window then covers only the last `capacity` ticks) and
/// [`TickZScore::evicted_early`] counts it. Population statistics (divisor `n`).
#[derive(Debug, Clone)]
pub struct TickZScore {
    window_ns: u64,
    ring: Box<[(u64, i64)]>,
    head: usize,
    len: usize,
    reference: i64,
    sum: i128,
    sum_sq: i128,
    scale: u8,
    now_ns: u64,
    evicted_early: u64,
    last: Option<ZScore>,
}

impl TickZScore {
    /// A window of `window_ns` holding at most `capacity` ticks (at least 1). Allocates the ring
    /// here, once.
    pub fn new(window_ns: u64, capacity: usize) -> Self {
        TickZScore {
            window_ns,
            ring: vec![(0u64, 0i64); capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            reference: 0,
            sum: 0,
            sum_sq: 0,
            scale: 0,
            now_ns: 0,
            evicted_early: 0,
            last: None,
        }
    }

    /// Ring capacity in ticks.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// Heap bytes owned (the ring).
    pub fn heap_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.ring)
    }

    /// Ticks evicted because the ring was full while they were still inside the window.
    pub const fn evicted_early(&self) -> u64 {
        self.evicted_early
    }

    /// Ticks currently in the window.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True before the first tick.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The latest z-score (after the latest tick).
    pub const fn last(&self) -> Option<ZScore> {
        self.last
    }

    #[inline]
    fn add_sums(&mut self, m: i64) {
        let d = i128::from(m - self.reference);
        self.sum += d;
        self.sum_sq += d * d;
    }

    #[inline]
    fn sub_sums(&mut self, m: i64) {
        let d = i128::from(m - self.reference);
        self.sum -= d;
        self.sum_sq -= d * d;
    }

    /// `(head + i) mod capacity` for `i <= capacity`, without a division.
    #[inline]
    fn slot(&self, i: usize) -> usize {
        let j = self.head + i;
        if j >= self.ring.len() {
            j - self.ring.len()
        } else {
            j
        }
    }

    #[inline]
    fn pop_oldest(&mut self) {
        let (_, m) = self.ring[self.head];
        self.sub_sums(m);
        self.head = self.slot(1);
        self.len -= 1;
    }

    /// Rebuild the sums around `reference` (rare: only when the price moved by more than
    /// 2^47 mantissa units from the previous reference).
    #[cold]
    fn rebase(&mut self, reference: i64) {
        self.reference = reference;
        self.sum = 0;
        self.sum_sq = 0;
        for i in 0..self.len {
            let (_, m) = self.ring[self.slot(i)];
            self.add_sums(m);
        }
    }

    /// Add a tick at `ns` with price mantissa `price` at `scale`; returns the z-score of that
    /// price against the window including it.
    ///
    /// A change of scale (which an instrument never does) restarts the window.
    #[inline]
    pub fn update(&mut self, ns: u64, price: Price, scale: u8) -> ZScore {
        if ns > self.now_ns {
            self.now_ns = ns;
        }
        let now = self.now_ns;
        if scale != self.scale {
            self.len = 0;
            self.scale = scale;
        }
        // Expire ticks that left the window.
        while self.len > 0 {
            let (t, _) = self.ring[self.head];
            if now.saturating_sub(t) >= self.window_ns {
                self.pop_oldest();
            } else {
                break;
            }
        }
        if self.len == self.ring.len() {
            self.pop_oldest();
            self.evicted_early += 1;
        }
        let m = price.0;
        if self.len == 0 {
            self.reference = m;
            self.sum = 0;
            self.sum_sq = 0;
        } else if m.saturating_sub(self.reference).unsigned_abs() > REBASE_LIMIT as u64 {
            self.rebase(m);
        }
        let tail = self.slot(self.len);
        self.ring[tail] = (now, m);
        self.len += 1;
        self.add_sums(m);
        let z = self.compute(m);
        self.last = Some(z);
        z
    }

    /// Statistics of the window for the price `m`.
    #[inline]
    fn compute(&self, m: i64) -> ZScore {
        let n = self.len as i128;
        // Exact: n^2 * variance = n * sum_sq - sum^2 (>= 0 by Cauchy-Schwarz).
        let n2var = n * self.sum_sq - self.sum * self.sum;
        let scale_f = mantissa_to_f64(1, self.scale);
        let mean_rel = self.sum as f64 / n as f64;
        let mean = (self.reference as f64 + mean_rel) * scale_f;
        let std = if n2var <= 0 {
            0.0
        } else {
            (n2var as f64).sqrt() / n as f64 * scale_f
        };
        let price = mantissa_to_f64(m, self.scale);
        let z = if std > 0.0 {
            let dev = (i128::from(m - self.reference) * n - self.sum) as f64 / n as f64 * scale_f;
            dev / std
        } else {
            0.0
        };
        ZScore {
            z,
            mean,
            std,
            price,
            ticks: self.len as u32,
        }
    }
}

/// The last `N` candle closes (as `f64`), oldest first on iteration. Fixed-size, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloseHistory<const N: usize> {
    buf: [f64; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for CloseHistory<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> CloseHistory<N> {
    /// Empty.
    pub const fn new() -> Self {
        CloseHistory {
            buf: [0.0; N],
            head: 0,
            len: 0,
        }
    }

    /// Append a close, evicting the oldest when full.
    #[inline]
    pub fn push(&mut self, close: f64) {
        if N == 0 {
            return;
        }
        let tail = (self.head + self.len) % N;
        self.buf[tail] = close;
        if self.len == N {
            self.head = (self.head + 1) % N;
        } else {
            self.len += 1;
        }
    }

    /// Number of closes held.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th close, oldest first (`i < len`).
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        self.buf[(self.head + i) % N]
    }

    /// Copy the last `out.len()` closes (or fewer) into `out`, oldest first; returns how many.
    #[inline]
    pub fn copy_last(&self, out: &mut [f64]) -> usize {
        let k = out.len().min(self.len);
        let start = self.len - k;
        for (j, o) in out.iter_mut().take(k).enumerate() {
            *o = self.get(start + j);
        }
        k
    }
}

/// Log returns `ln(c[i+1] / c[i])` of `closes` into `out` (length `closes.len() - 1`); returns
/// how many were written, or `None` if a close is not positive (no log return exists).
#[inline]
pub fn log_returns(closes: &[f64], out: &mut [f64]) -> Option<usize> {
    let n = closes.len().saturating_sub(1).min(out.len());
    for i in 0..n {
        let (a, b) = (closes[i], closes[i + 1]);
        if a <= 0.0 || b <= 0.0 {
            return None;
        }
        out[i] = (b / a).ln();
    }
    Some(n)
}

/// Lag-1 sample autocorrelation of `x`:
/// `sum_{i<n-1} (x_i - m)(x_{i+1} - m) / sum_i (x_i - m)^2` with `m` the mean of all of `x`
/// (the standard ACF estimator, as `statsmodels.tsa.stattools.acf`).
///
/// `None` for fewer than 3 values; `Some(0.0)` when all values are equal (zero variance: no
/// linear dependence can be measured).
pub fn autocorrelation_lag1(x: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 {
        return None;
    }
    let m = x.iter().sum::<f64>() / n as f64;
    let den: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    if den == 0.0 {
        return Some(0.0);
    }
    let num: f64 = x.windows(2).map(|w| (w[0] - m) * (w[1] - m)).sum();
    Some(num / den)
}

/// Sub-period lengths used by [`hurst_rs`].
pub const HURST_SIZES: [usize; 4] = [8, 16, 32, 64];

/// Hurst exponent of the series of returns `x` by rescaled range (R/S) analysis, clamped to
/// `[0, 1]`.
///
/// For each sub-period length `n` in [`HURST_SIZES`] with `n <= x.len()`, the **most recent**
/// `k * n` values (`k = x.len() / n`) are split into `k` consecutive chunks; in each chunk the
/// cumulative sum of deviations from the chunk mean has range `R` (max minus min, the empty
/// prefix 0 excluded) and the chunk's population standard deviation is `S`; chunks with
/// `S = 0` are skipped and `R/S` is averaged over the rest. The exponent is the least-squares
/// slope of `ln(R/S)` against `ln(n)`.
///
/// `None` when fewer than two lengths give a defined `R/S` (fewer than 16 values, or flat
/// prices). No small-sample correction: on windows of 50-100 returns plain R/S is biased
/// upwards (an uncorrelated series scores about 0.57); [`hurst_rs_corrected`] removes most of
/// that bias.
pub fn hurst_rs(x: &[f64]) -> Option<f64> {
    let (pts, np) = rs_points(x);
    slope(&pts[..np]).map(|h| h.clamp(0.0, 1.0))
}

/// Hurst exponent by R/S with the Anis-Lloyd / Peters small-sample correction, clamped to
/// `[0, 1]`: `0.5 +` the least-squares slope of `ln(R/S) - ln(E[R/S])` against `ln(n)`, where
/// `E[R/S](n) = (n - 1/2)/n * Gamma((n-1)/2) / (sqrt(pi) Gamma(n/2)) * sum_{i=1}^{n-1} sqrt((n-i)/i)`
/// is the expected R/S of `n` independent normal values. An uncorrelated series scores near
/// 0.5 (0.455 on average over windows of 99 synthetic i.i.d. returns in
/// `hotpath/tests/analytics_batch.rs`, where plain R/S gives 0.572), which is what the seed's
/// thresholds (0.45-0.55 random, > 0.55 persistent) assume.
/// Same chunks and `None` cases as [`hurst_rs`].
pub fn hurst_rs_corrected(x: &[f64]) -> Option<f64> {
    let (mut pts, np) = rs_points(x);
    for p in &mut pts[..np] {
        p.1 -= expected_rs(p.2).ln();
    }
    slope(&pts[..np]).map(|h| (0.5 + h).clamp(0.0, 1.0))
}

/// Anis-Lloyd / Peters expected R/S of `n >= 2` independent values.
pub fn expected_rs(n: usize) -> f64 {
    // Gamma((n-1)/2) / Gamma(n/2) by the recurrence Gamma(a + 1) = a Gamma(a), starting from
    // Gamma(1/2)/Gamma(1) = sqrt(pi) (n = 2) or Gamma(1)/Gamma(3/2) = 2/sqrt(pi) (n = 3).
    let sqrt_pi = core::f64::consts::PI.sqrt();
    let (mut ratio, mut m) = if n % 2 == 0 {
        (sqrt_pi, 2)
    } else {
        (2.0 / sqrt_pi, 3)
    };
    while m < n {
        // From n = m to m + 2: Gamma((m+1)/2)/Gamma((m+2)/2) = ratio * ((m-1)/2) / (m/2).
        ratio *= (m as f64 - 1.0) / m as f64;
        m += 2;
    }
    let nf = n as f64;
    let sum: f64 = (1..n).map(|i| ((nf - i as f64) / i as f64).sqrt()).sum();
    (nf - 0.5) / nf * ratio / sqrt_pi * sum
}

/// `(ln n, ln R/S, n)` for each usable sub-period length (see [`hurst_rs`]).
fn rs_points(x: &[f64]) -> ([(f64, f64, usize); HURST_SIZES.len()], usize) {
    let mut pts = [(0.0f64, 0.0f64, 0usize); HURST_SIZES.len()];
    let mut np = 0;
    for &n in &HURST_SIZES {
        if n > x.len() || n < 2 {
            continue;
        }
        let k = x.len() / n;
        let base = x.len() - k * n;
        let mut total = 0.0;
        let mut used = 0u32;
        for c in 0..k {
            let chunk = &x[base + c * n..base + (c + 1) * n];
            let mean = chunk.iter().sum::<f64>() / n as f64;
            let (mut cum, mut lo, mut hi, mut ss) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0.0);
            for v in chunk {
                let d = v - mean;
                cum += d;
                lo = lo.min(cum);
                hi = hi.max(cum);
                ss += d * d;
            }
            let s = (ss / n as f64).sqrt();
            if s > 0.0 {
                total += (hi - lo) / s;
                used += 1;
            }
        }
        if used > 0 {
            let rs = total / f64::from(used);
            if rs > 0.0 {
                pts[np] = ((n as f64).ln(), rs.ln(), n);
                np += 1;
            }
        }
    }
    (pts, np)
}

/// Least-squares slope of `y` on `x`; `None` for fewer than two points.
fn slope(pts: &[(f64, f64, usize)]) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let np = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / np;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / np;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// Parameters of [`mean_reversion_strength`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanReversionConfig {
    /// Closes before a candle that define its mean and standard deviation.
    pub lookback: usize,
    /// Displacement, in standard deviations, that starts an excursion.
    pub sigma: f64,
    /// Candles after the excursion within which it must revert.
    pub horizon: usize,
    /// "Reverted" means back within this many standard deviations of the mean.
    pub back_within: f64,
}

impl Default for MeanReversionConfig {
    /// Lookback 20, 2 sigma, horizon 5 candles, back within 1 sigma.
    fn default() -> Self {
        MeanReversionConfig {
            lookback: 20,
            sigma: 2.0,
            horizon: 5,
            back_within: 1.0,
        }
    }
}

/// Mean-reversion strength of a series of closes: the fraction of 2-sigma excursions that
/// reverted quickly, in `[0, 1]`.
///
/// Candle `i` (with `i >= lookback`) is displaced when `|c_i - m_i| >= sigma * s_i`, where
/// `m_i`, `s_i` are the mean and population standard deviation of the `lookback` closes before
/// it and `s_i > 0`. An **excursion** starts at a displaced candle whose predecessor was not
/// displaced, and is scored only if `horizon` candles follow it; it **reverted** if any of
/// them has `|c_j - m_i| <= back_within * s_i` (the price came back near the mean it was
/// displaced from). Strength = reverted excursions / scored excursions: near 1 the market
/// snaps back (ranging), near 0 displacements persist (trending).
///
/// `None` when no excursion could be scored (too few closes, flat prices, or no 2-sigma move
/// in the window): there is no evidence either way.
pub fn mean_reversion_strength(closes: &[f64], cfg: &MeanReversionConfig) -> Option<f64> {
    let l = cfg.lookback.max(2);
    let n = closes.len();
    let mut scored = 0u32;
    let mut reverted = 0u32;
    let mut prev_displaced = false;
    for i in l..n {
        let w = &closes[i - l..i];
        let m = w.iter().sum::<f64>() / l as f64;
        let s = (w.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / l as f64).sqrt();
        let displaced = s > 0.0 && (closes[i] - m).abs() >= cfg.sigma * s;
        if displaced && !prev_displaced && i + cfg.horizon < n {
            scored += 1;
            if closes[i + 1..=i + cfg.horizon]
                .iter()
                .any(|c| (c - m).abs() <= cfg.back_within * s)
            {
                reverted += 1;
            }
        }
        prev_displaced = displaced;
    }
    (scored > 0).then(|| f64::from(reverted) / f64::from(scored))
}
