//! Per-symbol price analytics: candles on 1m / 5m / 15m, their indicators and statistics, and
//! the tick z-score, behind one `on_event` call for the strategy stage.
//!
//! Why one container: the strategy stage owns one state per symbol and feeds it every market
//! event of that symbol; it needs to know *when* a candle closed (the regime, zone and trigger
//! levels re-evaluate then) and *what* the indicators were at that close. [`SymbolAnalytics`]
//! returns exactly that from [`SymbolAnalytics::on_event`], and keeps the latest values for
//! reading between closes.
//!
//! Memory is fixed at construction: everything is inline except the z-score tick ring, which is
//! allocated once by [`SymbolAnalytics::new`]; [`SymbolAnalytics::memory_bytes`] reports the
//! total: 528,720 bytes per symbol on x86-64 with the default 32,768-tick ring (4,432 bytes
//! inline plus 512 KiB of ring; `hotpath/tests/analytics_alloc.rs` checks and prints it). After construction no
//! method allocates.
//!
//! Costs per event: O(1) amortised (classification, three candle updates, the z-score ring).
//! Per candle close: O(1) for RSI / ATR / DMI, and O(window) for the candle statistics (at
//! most 100 closes: autocorrelation over 10 returns, Hurst R/S over up to 99 returns,
//! mean-reversion strength over 100 closes with a 20-close lookback, about 3,000 floating-point
//! operations, once per candle).

use crate::event::MarketEvent;

use super::candles::{Candle, CandleBuilder, CandleSource, Tick, TickClassifier, Timeframe};
use super::indicators::{Atr, Dmi, Rsi};
use super::stats::{
    autocorrelation_lag1, hurst_rs, hurst_rs_corrected, log_returns, mean_reversion_strength,
    CloseHistory, MeanReversionConfig, TickZScore, ZScore, ZSCORE_CAPACITY, ZSCORE_WINDOW_NS,
};

/// Closes kept per timeframe for the candle statistics (the Hurst window).
pub const HISTORY: usize = 100;

/// Parameters of the price analytics (every threshold of the strategy stays configurable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyticsConfig {
    /// RSI period (14).
    pub rsi_period: u32,
    /// ATR period (14).
    pub atr_period: u32,
    /// +DI / -DI / ADX period (14).
    pub dmi_period: u32,
    /// Log returns in the autocorrelation (10: the last 11 closes).
    pub autocorr_returns: usize,
    /// Closes in the Hurst window (at most [`HISTORY`]; 100).
    pub hurst_closes: usize,
    /// Fewest closes for a Hurst value (50).
    pub hurst_min_closes: usize,
    /// Mean-reversion strength parameters (over the last `hurst_closes` closes).
    pub mean_reversion: MeanReversionConfig,
    /// z-score window of event time (15 minutes).
    pub zscore_window_ns: u64,
    /// z-score ring capacity in ticks (32,768).
    pub zscore_capacity: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            rsi_period: 14,
            atr_period: 14,
            dmi_period: 14,
            autocorr_returns: 10,
            hurst_closes: HISTORY,
            hurst_min_closes: 50,
            mean_reversion: MeanReversionConfig::default(),
            zscore_window_ns: ZSCORE_WINDOW_NS,
            zscore_capacity: ZSCORE_CAPACITY,
        }
    }
}

/// Indicator values after a candle close. `None`: not warm yet, or undefined (see each
/// indicator's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IndicatorSnapshot {
    /// Candles closed so far on this timeframe.
    pub candles: u64,
    /// RSI.
    pub rsi: Option<f64>,
    /// ATR (price units).
    pub atr: Option<f64>,
    /// +DI.
    pub plus_di: Option<f64>,
    /// -DI.
    pub minus_di: Option<f64>,
    /// ADX.
    pub adx: Option<f64>,
    /// Lag-1 autocorrelation of the last log returns.
    pub autocorr: Option<f64>,
    /// Hurst exponent, plain R/S, in `[0, 1]` (biased upwards on short windows).
    pub hurst: Option<f64>,
    /// Hurst exponent, R/S with the Anis-Lloyd / Peters correction, in `[0, 1]` (near 0.5 for
    /// an uncorrelated series).
    pub hurst_corrected: Option<f64>,
    /// Mean-reversion strength, in `[0, 1]`.
    pub mean_reversion: Option<f64>,
}

/// The indicators of one timeframe, updated on each candle close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeframeIndicators {
    tf: Timeframe,
    cfg: AnalyticsConfig,
    rsi: Rsi,
    atr: Atr,
    dmi: Dmi,
    closes: CloseHistory<HISTORY>,
    latest: IndicatorSnapshot,
}

impl TimeframeIndicators {
    /// Fresh indicators of `tf`.
    pub fn new(tf: Timeframe, cfg: &AnalyticsConfig) -> Self {
        TimeframeIndicators {
            tf,
            cfg: *cfg,
            rsi: Rsi::new(cfg.rsi_period),
            atr: Atr::new(cfg.atr_period),
            dmi: Dmi::new(cfg.dmi_period),
            closes: CloseHistory::new(),
            latest: IndicatorSnapshot::default(),
        }
    }

    /// The timeframe.
    pub const fn timeframe(&self) -> Timeframe {
        self.tf
    }

    /// Values after the latest close.
    pub const fn latest(&self) -> &IndicatorSnapshot {
        &self.latest
    }

    /// The closes held for the statistics (oldest first).
    pub const fn closes(&self) -> &CloseHistory<HISTORY> {
        &self.closes
    }

    /// Update with a closed candle.
    pub fn on_candle(&mut self, c: &Candle) -> IndicatorSnapshot {
        let (h, l, close) = (c.high_f64(), c.low_f64(), c.close_f64());
        let mut s = self.latest;
        s.candles += 1;
        s.rsi = self.rsi.update(close);
        s.atr = self.atr.update(h, l, close);
        let d = self.dmi.update(h, l, close);
        s.plus_di = d.plus_di;
        s.minus_di = d.minus_di;
        s.adx = d.adx;
        self.closes.push(close);

        let mut buf = [0.0f64; HISTORY];
        let mut rets = [0.0f64; HISTORY];
        // Autocorrelation of the last `autocorr_returns` log returns.
        let want = (self.cfg.autocorr_returns + 1).min(HISTORY);
        let k = self.closes.copy_last(&mut buf[..want]);
        s.autocorr = if k == want {
            log_returns(&buf[..k], &mut rets).and_then(|r| autocorrelation_lag1(&rets[..r]))
        } else {
            None
        };
        // Hurst and mean reversion over the last `hurst_closes` closes.
        let want = self.cfg.hurst_closes.clamp(2, HISTORY);
        let k = self.closes.copy_last(&mut buf[..want]);
        let r = if k >= self.cfg.hurst_min_closes.max(2) {
            log_returns(&buf[..k], &mut rets)
        } else {
            None
        };
        s.hurst = r.and_then(|r| hurst_rs(&rets[..r]));
        s.hurst_corrected = r.and_then(|r| hurst_rs_corrected(&rets[..r]));
        s.mean_reversion = mean_reversion_strength(&buf[..k], &self.cfg.mean_reversion);
        self.latest = s;
        s
    }
}

/// A candle that closed, with the indicators of its timeframe after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleClose {
    /// The timeframe.
    pub timeframe: Timeframe,
    /// The closed candle.
    pub candle: Candle,
    /// Indicators including this candle.
    pub indicators: IndicatorSnapshot,
}

/// The candles one event closed (none, or one per timeframe; a tick opening a new 15-minute
/// bucket closes all three).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CandleCloses {
    closed: [Option<CandleClose>; 3],
}

impl CandleCloses {
    /// True when nothing closed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.closed.iter().all(Option::is_none)
    }

    /// The close of `tf`, if its candle closed.
    #[inline]
    pub fn get(&self, tf: Timeframe) -> Option<&CandleClose> {
        self.closed[tf.index()].as_ref()
    }

    /// The closes, shortest timeframe first.
    pub fn iter(&self) -> impl Iterator<Item = &CandleClose> {
        self.closed.iter().flatten()
    }
}

/// All price analytics of one symbol.
#[derive(Debug, Clone)]
pub struct SymbolAnalytics {
    classifier: TickClassifier,
    builders: [CandleBuilder; 3],
    indicators: [TimeframeIndicators; 3],
    zscore: TickZScore,
    last_tick: Option<Tick>,
}

impl SymbolAnalytics {
    /// State for a symbol whose candles come from `source`. Allocates the z-score ring (the only
    /// allocation).
    pub fn new(source: CandleSource, cfg: &AnalyticsConfig) -> Self {
        SymbolAnalytics {
            classifier: TickClassifier::new(source),
            builders: Timeframe::ALL.map(CandleBuilder::new),
            indicators: Timeframe::ALL.map(|tf| TimeframeIndicators::new(tf, cfg)),
            zscore: TickZScore::new(cfg.zscore_window_ns, cfg.zscore_capacity),
            last_tick: None,
        }
    }

    /// Total bytes of this symbol's state: the inline struct plus the z-score ring.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>() + self.zscore.heap_bytes()
    }

    /// Feed one market event of this symbol; returns the candles it closed (with their
    /// indicators). Events that do not carry a price for the configured source are ignored.
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent) -> CandleCloses {
        let mut out = CandleCloses::default();
        let Some(t) = self.classifier.classify(e) else {
            return out;
        };
        if t.ns == 0 {
            // Untimed: counted by the builders, no statistics.
            for b in &mut self.builders {
                b.on_tick(&t);
            }
            return out;
        }
        for (i, b) in self.builders.iter_mut().enumerate() {
            if let Some(c) = b.on_tick(&t) {
                let snap = self.indicators[i].on_candle(&c);
                out.closed[i] = Some(CandleClose {
                    timeframe: b.timeframe(),
                    candle: c,
                    indicators: snap,
                });
            }
        }
        self.zscore.update(t.ns, t.price, t.price_scale);
        self.last_tick = Some(t);
        out
    }

    /// Take a closed candle of history (a venue kline fetched at start) as if it had closed
    /// here: the indicators of its timeframe update; the candle builders and the tick z-score
    /// do not (live ticks build the next candles). Returns the indicators after it.
    pub fn on_history(&mut self, c: &Candle) -> Option<IndicatorSnapshot> {
        let tf = Timeframe::from_secs(c.interval_secs)?;
        Some(self.indicators[tf.index()].on_candle(c))
    }

    /// Close every open candle whose bucket ended at or before event time `now_ns` (see
    /// [`CandleBuilder::advance_to`]); returns the closes with their indicators. Optional: for
    /// prompt closes in quiet markets, with a time on the same clock as the ticks. Does not
    /// touch the z-score window.
    pub fn advance_to(&mut self, now_ns: u64) -> CandleCloses {
        let mut out = CandleCloses::default();
        for (i, b) in self.builders.iter_mut().enumerate() {
            if let Some(c) = b.advance_to(now_ns) {
                let snap = self.indicators[i].on_candle(&c);
                out.closed[i] = Some(CandleClose {
                    timeframe: b.timeframe(),
                    candle: c,
                    indicators: snap,
                });
            }
        }
        out
    }

    /// The open candle of `tf`.
    pub fn current(&self, tf: Timeframe) -> Option<&Candle> {
        self.builders[tf.index()].current()
    }

    /// The candle builder of `tf` (counters).
    pub fn builder(&self, tf: Timeframe) -> &CandleBuilder {
        &self.builders[tf.index()]
    }

    /// The indicators of `tf`.
    pub fn indicators(&self, tf: Timeframe) -> &TimeframeIndicators {
        &self.indicators[tf.index()]
    }

    /// The z-score of the latest tick against the tick window.
    pub fn zscore(&self) -> Option<ZScore> {
        self.zscore.last()
    }

    /// The z-score state (window length, early evictions).
    pub fn zscore_window(&self) -> &TickZScore {
        &self.zscore
    }

    /// The latest tick.
    pub fn last_tick(&self) -> Option<&Tick> {
        self.last_tick.as_ref()
    }

    /// The tick classifier (ignored and invalid event counters).
    pub fn classifier(&self) -> &TickClassifier {
        &self.classifier
    }
}
