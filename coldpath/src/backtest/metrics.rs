//! The performance statistics of a backtest, as pure functions over plain numbers.
//!
//! Why separate: every number in a report must be checkable by hand, so each one is a small
//! function of a slice with no journal, clock or I/O behind it, and the unit tests below feed
//! them hand-computed cases. The definitions are the conventional ones, stated exactly:
//!
//! * standard deviations are **sample** deviations (divisor `n - 1`);
//! * the **Sortino** ratio uses the downside deviation below a target of zero,
//!   `sqrt(sum(min(r, 0)^2) / n)` over **all** `n` observations (Sortino and Price's definition);
//! * **percentiles** interpolate linearly between the closest ranks (NumPy's default), so the
//!   median of an even count is the mean of the two middle values;
//! * **drawdown** is measured on the equity curve after each closed trade, from the running
//!   peak (the starting equity counts as the first peak): in quote currency and as a percentage
//!   of that peak;
//! * **daily returns** bucket closed trades by the UTC day of their close (event time), each
//!   day's P&L divided by the equity at the start of that day; days without a trade are zero
//!   returns. Annualisation multiplies a daily ratio by `sqrt(365)`: crypto venues trade every
//!   day of the year.
//!
//! Ratios that are undefined (too few observations, zero deviation, no losing trade) are
//! `None`, never NaN or infinity, so they serialise as `null` and print as `-`.

/// Nanoseconds in a UTC day.
pub const DAY_NS: u64 = 86_400_000_000_000;

/// Trading days per year used to annualise daily ratios (crypto trades every day).
pub const DAYS_PER_YEAR: f64 = 365.0;

/// Sum starting from +0.0: the standard library's float `Sum` of nothing is -0.0, which would
/// print as `-0` in a report of a run without trades.
pub fn sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    xs.into_iter().fold(0.0, |a, x| a + x)
}

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(sum(xs.iter().copied()) / xs.len() as f64)
}

/// Sample variance (divisor `n - 1`); `None` for fewer than two values.
pub fn sample_variance(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    Some(xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64)
}

/// Sample standard deviation (divisor `n - 1`); `None` for fewer than two values.
pub fn sample_sd(xs: &[f64]) -> Option<f64> {
    sample_variance(xs).map(f64::sqrt)
}

/// The `p`-th percentile (`0..=100`) with linear interpolation between closest ranks (NumPy's
/// default); `None` for an empty slice. NaNs sort last.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// The median (the 50th [`percentile`]).
pub fn median(xs: &[f64]) -> Option<f64> {
    percentile(xs, 50.0)
}

/// Sharpe ratio of a series of returns with a zero risk-free rate: `mean / sample sd`, not
/// annualised. `None` for fewer than two returns or a zero deviation.
pub fn sharpe(returns: &[f64]) -> Option<f64> {
    let sd = sample_sd(returns)?;
    (sd > 0.0).then(|| mean(returns).unwrap_or(0.0) / sd)
}

/// Downside deviation below zero: `sqrt(sum(min(r, 0)^2) / n)`; `None` for no returns.
pub fn downside_deviation(returns: &[f64]) -> Option<f64> {
    if returns.is_empty() {
        return None;
    }
    let sq: f64 = returns.iter().map(|r| r.min(0.0) * r.min(0.0)).sum();
    Some((sq / returns.len() as f64).sqrt())
}

/// Sortino ratio with a zero target: `mean / downside deviation`, not annualised. `None` for
/// no returns or no return below zero.
pub fn sortino(returns: &[f64]) -> Option<f64> {
    let dd = downside_deviation(returns)?;
    (dd > 0.0).then(|| mean(returns).unwrap_or(0.0) / dd)
}

/// A daily ratio scaled to a year: `ratio * sqrt(365)`.
pub fn annualise(daily_ratio: f64) -> f64 {
    daily_ratio * DAYS_PER_YEAR.sqrt()
}

/// Share of trades with a positive P&L, `0..=1`; `None` with no trades.
pub fn win_rate(pnl: &[f64]) -> Option<f64> {
    if pnl.is_empty() {
        return None;
    }
    Some(pnl.iter().filter(|p| **p > 0.0).count() as f64 / pnl.len() as f64)
}

/// Gross profit over gross loss: `sum(p > 0) / |sum(p < 0)|`. `None` when no trade lost
/// (the ratio is unbounded, or 0/0 with no trades at all).
pub fn profit_factor(pnl: &[f64]) -> Option<f64> {
    let won = sum(pnl.iter().copied().filter(|p| *p > 0.0));
    let lost = sum(pnl.iter().filter(|p| **p < 0.0).map(|p| -p));
    (lost > 0.0).then(|| won / lost)
}

/// Expectancy: the mean P&L per trade (quote currency); `None` with no trades.
pub fn expectancy(pnl: &[f64]) -> Option<f64> {
    mean(pnl)
}

/// The worst drawdown of an equity curve, with where it happened.
///
/// Indices are positions on the curve `[start, start + p1, start + p1 + p2, ...]`: 0 is the
/// starting equity, `i` the equity after the `i`-th trade.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Drawdown {
    /// Largest fall from a running peak, quote currency (0 if equity never fell).
    pub max: f64,
    /// Largest fall from a running peak as a percentage of that peak (may come from another
    /// episode than [`max`](Self::max): a smaller fall from a lower peak can be a larger
    /// share).
    pub max_pct: f64,
    /// Curve index of the peak before the largest fall.
    pub peak: usize,
    /// Curve index of the trough of the largest fall.
    pub trough: usize,
    /// First curve index after the trough where equity is back at the peak or above; `None`
    /// if it never recovered (or there was no fall).
    pub recovery: Option<usize>,
}

/// The equity curve of `pnl` from `start`: `start` followed by the running sums.
pub fn equity_curve(start: f64, pnl: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pnl.len() + 1);
    let mut e = start;
    out.push(e);
    for p in pnl {
        e += p;
        out.push(e);
    }
    out
}

/// Drawdown of each point of `curve` from its running peak, as `(quote, percent of peak)`.
pub fn drawdown_series(curve: &[f64]) -> Vec<(f64, f64)> {
    let mut peak = f64::NEG_INFINITY;
    curve
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            let dd = peak - e;
            let pct = if peak > 0.0 { dd / peak * 100.0 } else { 0.0 };
            (dd, pct)
        })
        .collect()
}

/// The worst drawdown of the equity curve of `pnl` from `start`, and its recovery.
pub fn drawdown(start: f64, pnl: &[f64]) -> Drawdown {
    let curve = equity_curve(start, pnl);
    let mut out = Drawdown::default();
    let (mut peak, mut peak_at) = (curve[0], 0);
    for (i, &e) in curve.iter().enumerate() {
        if e > peak {
            peak = e;
            peak_at = i;
        }
        let dd = peak - e;
        if dd > out.max {
            out.max = dd;
            out.peak = peak_at;
            out.trough = i;
        }
        if peak > 0.0 {
            out.max_pct = out.max_pct.max(dd / peak * 100.0);
        }
    }
    if out.max > 0.0 {
        let level = curve[out.peak];
        out.recovery = (out.trough + 1..curve.len()).find(|&j| curve[j] >= level);
    }
    out
}

/// Daily returns of closed trades `(close time ns, P&L)` from `start` equity, over the UTC days
/// `first_day..=last_day` (day numbers since the epoch): each day's P&L over the equity at the
/// start of that day. Trades outside the range are counted on the nearest end day. A day that
/// starts with non-positive equity has no meaningful return and is reported as 0.
pub fn daily_returns(start: f64, closes: &[(u64, f64)], first_day: u64, last_day: u64) -> Vec<f64> {
    if last_day < first_day {
        return Vec::new();
    }
    let days = (last_day - first_day + 1) as usize;
    let mut pnl = vec![0.0; days];
    for &(ns, p) in closes {
        let d = (ns / DAY_NS).clamp(first_day, last_day) - first_day;
        pnl[d as usize] += p;
    }
    let mut equity = start;
    pnl.iter()
        .map(|p| {
            let r = if equity > 0.0 { p / equity } else { 0.0 };
            equity += p;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn mean_sd_percentiles_by_hand() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        // Squared deviations sum to 32; sample variance 32 / 7.
        assert!(close(sample_variance(&xs).unwrap(), 32.0 / 7.0));
        assert_eq!(median(&xs), Some(4.5));
        // rank = 0.95 * 7 = 6.65: 7 + 0.65 * (9 - 7) = 8.3.
        assert!(close(percentile(&xs, 95.0).unwrap(), 8.3));
        assert_eq!(percentile(&xs, 0.0), Some(2.0));
        assert_eq!(percentile(&xs, 100.0), Some(9.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_sd(&[1.0]), None);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn four_trades_sharpe_sortino_by_hand() {
        // Returns +2%, -1%, +3%, -2%: mean 0.5%, deviations 1.5, -1.5, 2.5, -2.5 (in %),
        // squares 2.25 + 2.25 + 6.25 + 6.25 = 17 -> sample variance 17/3 (%^2).
        let r = [0.02, -0.01, 0.03, -0.02];
        let sd = (17.0f64 / 3.0).sqrt() / 100.0;
        assert!(close(sharpe(&r).unwrap(), 0.005 / sd));
        assert!(close(sharpe(&r).unwrap(), 0.210_042_012_604_201_4));
        // Downside: sqrt((0.01^2 + 0.02^2) / 4) = sqrt(0.000125).
        assert!(close(downside_deviation(&r).unwrap(), 0.000125f64.sqrt()));
        assert!(close(sortino(&r).unwrap(), 0.005 / 0.000125f64.sqrt()));
        assert!(close(sortino(&r).unwrap(), 0.447_213_595_499_957_9));
        // Undefined cases.
        assert_eq!(sharpe(&[0.01]), None);
        assert_eq!(sharpe(&[0.01, 0.01]), None);
        assert_eq!(sortino(&[0.01, 0.02]), None);
        assert!(close(annualise(1.0), 365f64.sqrt()));
    }

    #[test]
    fn four_trades_win_rate_profit_factor_expectancy_by_hand() {
        let pnl = [100.0, -50.0, 30.0, -20.0];
        assert_eq!(win_rate(&pnl), Some(0.5));
        // 130 won over 70 lost.
        assert!(close(profit_factor(&pnl).unwrap(), 130.0 / 70.0));
        assert_eq!(expectancy(&pnl), Some(15.0));
        assert_eq!(profit_factor(&[10.0, 0.0]), None);
        assert_eq!(profit_factor(&[]), None);
        assert_eq!(win_rate(&[]), None);
        assert_eq!(win_rate(&[0.0, -1.0, 2.0]), Some(1.0 / 3.0));
    }

    #[test]
    fn four_trades_drawdown_and_recovery_by_hand() {
        // Equity 1000 -> 1100 -> 1050 -> 1080 -> 1060: peak 1100 at index 1, trough 1050 at
        // index 2 (fall 50 = 4.545...% of 1100), never back at 1100.
        let dd = drawdown(1000.0, &[100.0, -50.0, 30.0, -20.0]);
        assert_eq!(dd.max, 50.0);
        assert!(close(dd.max_pct, 50.0 / 1100.0 * 100.0));
        assert_eq!((dd.peak, dd.trough, dd.recovery), (1, 2, None));
        // Recovered at the fourth trade: 1000 -> 1100 -> 1000 -> 1050 -> 1150.
        let dd = drawdown(1000.0, &[100.0, -100.0, 50.0, 100.0]);
        assert_eq!(
            (dd.max, dd.peak, dd.trough, dd.recovery),
            (100.0, 1, 2, Some(4))
        );
        // A fall from the starting equity itself: peak index 0.
        let dd = drawdown(1000.0, &[-10.0, -10.0, 25.0]);
        assert_eq!(
            (dd.max, dd.peak, dd.trough, dd.recovery),
            (20.0, 0, 2, Some(3))
        );
        assert!(close(dd.max_pct, 2.0));
        // Never down: no drawdown, no recovery.
        let dd = drawdown(1000.0, &[1.0, 2.0]);
        assert_eq!((dd.max, dd.max_pct, dd.recovery), (0.0, 0.0, None));
        assert_eq!(drawdown(1000.0, &[]).max, 0.0);
    }

    #[test]
    fn percent_drawdown_can_come_from_a_smaller_fall() {
        // 100 -> 50 (50 %, 50 quote) -> 1050 -> 980 (70 quote, 6.67 %).
        let dd = drawdown(100.0, &[-50.0, 1000.0, -70.0]);
        assert_eq!(dd.max, 70.0);
        assert!(close(dd.max_pct, 50.0));
        let s = drawdown_series(&equity_curve(100.0, &[-50.0, 1000.0, -70.0]));
        assert_eq!(s[1], (50.0, 50.0));
        assert!(close(s[3].1, 70.0 / 1050.0 * 100.0));
    }

    #[test]
    fn daily_returns_bucket_by_utc_day_of_close() {
        let d0 = 19_943; // 2024-08-08
        let at = |day: u64, h: u64| day * DAY_NS + h * 3_600_000_000_000;
        // Day 0: +100 and -50 on 1000; day 1: nothing; day 2: -21 on 1050.
        let closes = [
            (at(d0, 1), 100.0),
            (at(d0, 23), -50.0),
            (at(d0 + 2, 5), -21.0),
        ];
        let r = daily_returns(1000.0, &closes, d0, d0 + 2);
        assert_eq!(r.len(), 3);
        assert!(close(r[0], 0.05));
        assert_eq!(r[1], 0.0);
        assert!(close(r[2], -0.02));
        // mean -> 0.01, sample sd of [0.05, 0, -0.02]: deviations .04 -.01 -.03 -> .0026/2.
        assert!(close(sharpe(&r).unwrap(), 0.01 / 0.0013f64.sqrt()));
        assert!(daily_returns(1000.0, &closes, 5, 4).is_empty());
    }
}
