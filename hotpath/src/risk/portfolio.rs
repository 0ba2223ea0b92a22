//! The portfolio risk manager's rules (seed 2.2.5, seed 003 for the breakers), as pure
//! functions and small fixed-size trackers the [`RiskEngine`](super::RiskEngine) drives.
//!
//! * [`drawdown_level`]: the daily drawdown levels (2% alert, 3% close the worst half, 4%
//!   close all, 5% close all and halt until 00:00 UTC), from the day's P&L.
//! * [`health_score`]: the 0-100 health score from the seed's five weighted factors, and
//!   [`HealthAction`]: below 70 stop new entries, below 50 tighten every stop to 0.3%, below
//!   30 close the worst two positions. The seed's example (-2.5% P&L, quality 0.4, 4
//!   correlated positions, 18 min average hold, high volatility) scores 15+10+5+12+5 = 47.
//!   The seed gives the P&L factor's ends (-5% = 0, +5% = 30) and the example's -2.5% = 15;
//!   no straight line passes through all three, so the factor rises linearly from -5% to 0%
//!   and saturates there (so +5% still scores 30); both ends are configurable.
//! * [`Correlation`]: the rolling Pearson correlation of a symbol's 1m returns with the
//!   leader's over 24 h (1,440 pairs), O(1) per minute with running sums, re-summed at every
//!   wrap of the ring so rounding cannot drift.
//! * [`MinuteBars`]: 1m bars from trades (event time), for returns, dump detection and
//!   volatility.
//! * [`dump_signals`]: volume reversal, order-flow flip, momentum breakdown.
//! * [`Breaker`]: consecutive losing trades trip a cool-down (per symbol, per venue).

use crate::event::Side;
use crate::fixed::Price;

/// Daily drawdown levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum DrawdownLevel {
    /// Below the first level.
    #[default]
    Normal = 0,
    /// Alert (log, notify).
    Alert = 1,
    /// Close the worst half of the positions; no new entries.
    CloseWorstHalf = 2,
    /// Close every position; no new entries.
    CloseAll = 3,
    /// Close every position and halt until 00:00 UTC.
    Halt = 4,
}

/// The level of a drawdown of `dd` (a positive fraction of the day's starting equity; a
/// gain is negative) against `levels` (ascending: alert, close half, close all, halt).
pub fn drawdown_level(levels: &[f64; 4], dd: f64) -> DrawdownLevel {
    if dd >= levels[3] {
        DrawdownLevel::Halt
    } else if dd >= levels[2] {
        DrawdownLevel::CloseAll
    } else if dd >= levels[1] {
        DrawdownLevel::CloseWorstHalf
    } else if dd >= levels[0] {
        DrawdownLevel::Alert
    } else {
        DrawdownLevel::Normal
    }
}

/// The next 00:00 UTC strictly after `now_ns`.
#[inline]
pub fn next_midnight_ns(now_ns: u64) -> u64 {
    const DAY: u64 = 86_400_000_000_000;
    (now_ns / DAY + 1) * DAY
}

/// Health-score parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Maximum points of each factor: P&L, quality, concentration, hold time, market.
    pub weights: [f64; 5],
    /// Unrealized P&L (% of equity) scoring 0.
    pub pnl_zero_pct: f64,
    /// Unrealized P&L (%) scoring full points.
    pub pnl_full_pct: f64,
    /// Concentration points lost per correlated position beyond the first.
    pub concentration_penalty: f64,
    /// Average hold (minutes) up to which positions count as fresh (full points).
    pub hold_fresh_min: f64,
    /// Average hold (minutes) up to which a scalp is normal.
    pub hold_scalp_min: f64,
    /// Points for a normal hold.
    pub hold_normal_points: f64,
    /// Points beyond the scalp limit.
    pub hold_stale_points: f64,
    /// Volatility ratio (recent / average 1m range) above which conditions are "high".
    pub vol_high_ratio: f64,
    /// Points under high volatility.
    pub vol_high_points: f64,
    /// Ratio above which conditions are "extreme" (0 points).
    pub vol_extreme_ratio: f64,
    /// Score below which new entries stop.
    pub stop_entries_below: f64,
    /// Score below which stops tighten.
    pub tighten_below: f64,
    /// Score below which the worst two positions close.
    pub close_two_below: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            weights: [30.0, 25.0, 20.0, 15.0, 10.0],
            pnl_zero_pct: -5.0,
            pnl_full_pct: 0.0,
            concentration_penalty: 5.0,
            hold_fresh_min: 5.0,
            hold_scalp_min: 30.0,
            hold_normal_points: 12.0,
            hold_stale_points: 5.0,
            vol_high_ratio: 1.5,
            vol_high_points: 5.0,
            vol_extreme_ratio: 3.0,
            stop_entries_below: 70.0,
            tighten_below: 50.0,
            close_two_below: 30.0,
        }
    }
}

/// What the health score is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthInputs {
    /// Total unrealized P&L, % of equity.
    pub unrealized_pct: f64,
    /// Average position quality, 0..1 (share of good signs: volume up, order flow with us,
    /// liquidity present).
    pub quality: f64,
    /// Positions correlated above the threshold with the leader.
    pub correlated: u32,
    /// Average holding time, minutes.
    pub avg_hold_min: f64,
    /// Meme positions held longer than a day (major penalty: no hold points).
    pub meme_over_day: u32,
    /// Volatility ratio (recent 1m range over its average).
    pub volatility_ratio: f64,
}

/// The score and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthScore {
    /// Points per factor: P&L, quality, concentration, hold time, market.
    pub parts: [f64; 5],
    /// Sum, 0..100.
    pub total: f64,
}

/// What the score asks for (each includes the milder ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthAction {
    /// Normal operations.
    None = 0,
    /// Stop opening positions.
    StopEntries = 1,
    /// Also tighten every trailing stop.
    TightenStops = 2,
    /// Also close the worst two positions.
    CloseWorstTwo = 3,
}

/// The health score of `x`.
pub fn health_score(cfg: &HealthConfig, x: &HealthInputs) -> HealthScore {
    let w = cfg.weights;
    let span = (cfg.pnl_full_pct - cfg.pnl_zero_pct).max(f64::EPSILON);
    let pnl = w[0] * ((x.unrealized_pct - cfg.pnl_zero_pct) / span).clamp(0.0, 1.0);
    let quality = w[1] * x.quality.clamp(0.0, 1.0);
    let extra = f64::from(x.correlated.saturating_sub(1));
    let conc = (w[2] - cfg.concentration_penalty * extra).clamp(0.0, w[2]);
    let hold = if x.meme_over_day > 0 {
        0.0
    } else if x.avg_hold_min <= cfg.hold_fresh_min {
        w[3]
    } else if x.avg_hold_min <= cfg.hold_scalp_min {
        cfg.hold_normal_points.min(w[3])
    } else {
        cfg.hold_stale_points.min(w[3])
    };
    let market = if x.volatility_ratio.is_nan() || x.volatility_ratio <= cfg.vol_high_ratio {
        w[4]
    } else if x.volatility_ratio <= cfg.vol_extreme_ratio {
        cfg.vol_high_points.min(w[4])
    } else {
        0.0
    };
    let parts = [pnl, quality, conc, hold, market];
    HealthScore {
        parts,
        total: parts.iter().sum(),
    }
}

impl HealthConfig {
    /// The action for `score`.
    pub fn action(&self, score: f64) -> HealthAction {
        if score < self.close_two_below {
            HealthAction::CloseWorstTwo
        } else if score < self.tighten_below {
            HealthAction::TightenStops
        } else if score < self.stop_entries_below {
            HealthAction::StopEntries
        } else {
            HealthAction::None
        }
    }
}

/// Portfolio risk parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortfolioConfig {
    /// Daily drawdown levels (fractions of the day's starting equity).
    pub drawdown_levels: [f64; 4],
    /// Leader dump: relative drop over `leader_window_ns` that triggers (0.015 = 1.5%).
    pub leader_drop_frac: f64,
    /// Leader dump window (5 minutes; a multiple of a minute, at most 15).
    pub leader_window_ns: u64,
    /// Close longs whose correlation with the leader is above this.
    pub correlation_exit: f64,
    /// Minimum 1m return pairs before a correlation counts.
    pub correlation_min_pairs: usize,
    /// Health score parameters.
    pub health: HealthConfig,
    /// Health score cadence, ns of event time.
    pub health_interval_ns: u64,
    /// Maximum hold of a scalp, ns (0 = none).
    pub max_hold_ns: u64,
    /// Maximum hold of a meme-coin position, ns (0 = none).
    pub meme_max_hold_ns: u64,
    /// Dump detection: bars of against-side volume dominance (volume reversal) and of lower
    /// highs and lows (momentum breakdown).
    pub dump_bars: usize,
    /// Dump detection: order-flow flip when the 1m imbalance is at least this against the
    /// position (2.5 = 2.5:1).
    pub dump_flip_ratio: f64,
    /// Dump signals needed to exit (1 = any).
    pub dump_min_signals: u32,
    /// Symbol breaker: consecutive losing trades that trip it.
    pub symbol_breaker_losses: u32,
    /// Symbol breaker cool-down, ns.
    pub symbol_cooldown_ns: u64,
    /// Venue breaker: consecutive losing trades on the venue.
    pub venue_breaker_losses: u32,
    /// Venue breaker cool-down, ns.
    pub venue_cooldown_ns: u64,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        const MIN: u64 = 60_000_000_000;
        PortfolioConfig {
            drawdown_levels: [0.02, 0.03, 0.04, 0.05],
            leader_drop_frac: 0.015,
            leader_window_ns: 5 * MIN,
            correlation_exit: 0.7,
            correlation_min_pairs: 30,
            health: HealthConfig::default(),
            health_interval_ns: 5_000_000_000,
            max_hold_ns: 240 * MIN,
            meme_max_hold_ns: 1440 * MIN,
            dump_bars: 3,
            dump_flip_ratio: 2.5,
            dump_min_signals: 1,
            symbol_breaker_losses: 3,
            symbol_cooldown_ns: 30 * MIN,
            venue_breaker_losses: 5,
            venue_cooldown_ns: 60 * MIN,
        }
    }
}

/// Rolling Pearson correlation over the last `cap` pairs.
#[derive(Debug, Clone)]
pub struct Correlation {
    pairs: Box<[(f64, f64)]>,
    head: usize,
    len: usize,
    sums: [f64; 5],
}

impl Correlation {
    /// A window of `cap` pairs (allocated here only).
    pub fn new(cap: usize) -> Self {
        Correlation {
            pairs: vec![(0.0, 0.0); cap.max(2)].into_boxed_slice(),
            head: 0,
            len: 0,
            sums: [0.0; 5],
        }
    }

    /// Pairs in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a pair (the oldest leaves when full). Non-finite pairs are ignored.
    pub fn push(&mut self, x: f64, y: f64) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let cap = self.pairs.len();
        if self.len == cap {
            let (ox, oy) = self.pairs[self.head];
            self.add(ox, oy, -1.0);
            self.pairs[self.head] = (x, y);
            self.head = (self.head + 1) % cap;
            if self.head == 0 {
                self.resum();
            }
        } else {
            self.pairs[(self.head + self.len) % cap] = (x, y);
            self.len += 1;
        }
        self.add(x, y, 1.0);
    }

    fn add(&mut self, x: f64, y: f64, s: f64) {
        self.sums[0] += s * x;
        self.sums[1] += s * y;
        self.sums[2] += s * x * x;
        self.sums[3] += s * y * y;
        self.sums[4] += s * x * y;
    }

    fn resum(&mut self) {
        self.sums = [0.0; 5];
        for i in 0..self.len {
            let (x, y) = self.pairs[i];
            self.sums[0] += x;
            self.sums[1] += y;
            self.sums[2] += x * x;
            self.sums[3] += y * y;
            self.sums[4] += x * y;
        }
    }

    /// The correlation, if at least `min_pairs` pairs and both series vary.
    pub fn value(&self, min_pairs: usize) -> Option<f64> {
        if self.len < min_pairs.max(2) {
            return None;
        }
        let n = self.len as f64;
        let [sx, sy, sxx, syy, sxy] = self.sums;
        let cov = sxy - sx * sy / n;
        let vx = sxx - sx * sx / n;
        let vy = syy - sy * sy / n;
        if vx <= 0.0 || vy <= 0.0 {
            return None;
        }
        Some((cov / (vx * vy).sqrt()).clamp(-1.0, 1.0))
    }
}

/// One closed 1m bar.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinuteBar {
    /// Minute index (event time / 60 s).
    pub minute: u64,
    /// High.
    pub high: Price,
    /// Low.
    pub low: Price,
    /// Close.
    pub close: Price,
    /// Buy-aggressor volume (mantissa as f64).
    pub buy: f64,
    /// Sell-aggressor volume.
    pub sell: f64,
}

/// Bars kept.
pub const BARS: usize = 16;

/// 1m bars from trades, the last [`BARS`] kept.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinuteBars {
    cur: MinuteBar,
    started: bool,
    closed: [MinuteBar; BARS],
    len: usize,
    head: usize,
    /// EWMA of (high - low) / close of closed bars.
    range_avg: f64,
}

impl MinuteBars {
    /// One trade; returns the bar it closed, if the trade opened a new minute.
    #[inline]
    pub fn on_trade(&mut self, ts: u64, px: Price, qty: f64, buy: bool) -> Option<MinuteBar> {
        let minute = ts / 60_000_000_000;
        let mut out = None;
        if !self.started || minute != self.cur.minute {
            if self.started {
                let b = self.cur;
                self.closed[(self.head + self.len) % BARS] = b;
                if self.len == BARS {
                    self.head = (self.head + 1) % BARS;
                } else {
                    self.len += 1;
                }
                if b.close.0 > 0 {
                    let r = (b.high.0 - b.low.0) as f64 / b.close.0 as f64;
                    self.range_avg = if self.range_avg == 0.0 {
                        r
                    } else {
                        0.9 * self.range_avg + 0.1 * r
                    };
                }
                out = Some(b);
            }
            self.started = true;
            self.cur = MinuteBar {
                minute,
                high: px,
                low: px,
                close: px,
                buy: 0.0,
                sell: 0.0,
            };
        }
        let c = &mut self.cur;
        c.high = c.high.max(px);
        c.low = c.low.min(px);
        c.close = px;
        if buy {
            c.buy += qty;
        } else {
            c.sell += qty;
        }
        out
    }

    /// The `k`-th most recent closed bar (0 = newest).
    pub fn back(&self, k: usize) -> Option<&MinuteBar> {
        (k < self.len).then(|| &self.closed[(self.head + self.len - 1 - k) % BARS])
    }

    /// Closed bars kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first close.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Newest bar's range over the average range (1 when unknown).
    pub fn volatility_ratio(&self) -> f64 {
        match self.back(0) {
            Some(b) if self.range_avg > 0.0 && b.close.0 > 0 => {
                (b.high.0 - b.low.0) as f64 / b.close.0 as f64 / self.range_avg
            }
            _ => 1.0,
        }
    }
}

/// Dump signals for a position of `side` on the closed bars: volume reversal (against-side
/// volume dominant on each of the last `n` bars), order-flow flip (1m imbalance at least
/// `flip` to one against), momentum breakdown (lower highs and lows over `n` bars for a long,
/// higher for a short). Returns how many fired.
pub fn dump_signals(bars: &MinuteBars, side: Side, n: usize, flip: f64, i1: Option<f64>) -> u32 {
    let n = n.clamp(2, BARS);
    let mut fired = 0;
    if bars.len() >= n {
        let against = (0..n).all(|k| {
            bars.back(k).is_some_and(|b| match side {
                Side::Buy => b.sell > b.buy,
                Side::Sell => b.buy > b.sell,
            })
        });
        fired += u32::from(against);
        let breakdown = (0..n - 1).all(|k| match (bars.back(k), bars.back(k + 1)) {
            (Some(a), Some(b)) => match side {
                Side::Buy => a.high < b.high && a.low < b.low,
                Side::Sell => a.high > b.high && a.low > b.low,
            },
            _ => false,
        });
        fired += u32::from(breakdown);
    }
    if let Some(i) = i1 {
        let flipped = match side {
            Side::Buy => i > 0.0 && i <= 1.0 / flip,
            Side::Sell => i >= flip,
        };
        fired += u32::from(flipped);
    }
    fired
}

/// Consecutive-loss circuit breaker with a cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    losses: u32,
    /// Trips so far.
    pub trips: u32,
}

impl Breaker {
    /// Record a closed trade; returns true when this loss trips the breaker (the count then
    /// restarts, so trading after the cool-down needs as many losses again to trip).
    pub fn on_trade(&mut self, net_pnl: i64, limit: u32) -> bool {
        if net_pnl < 0 {
            self.losses += 1;
            if limit > 0 && self.losses >= limit {
                self.losses = 0;
                self.trips += 1;
                return true;
            }
        } else {
            self.losses = 0;
        }
        false
    }
}
