//! The four-level entry decision of the seed (section 2.3) and its confluence score, per symbol,
//! in event time.
//!
//! Why it is split in two: [`evaluate`] is a pure function from a plain [`SignalInputs`] value
//! to a [`Decision`] record, so every level and the confluence arithmetic can be tested with
//! hand-made numbers and the seed's exact thresholds; [`SymbolSignals`] owns the per-symbol
//! analytics (candles and indicators, order flow, market profile, zones), feeds them every
//! market event and builds the inputs when a 1-minute candle closes.
//!
//! # When a decision is made
//!
//! Once per closed **1-minute candle** (the seed's Level 4 is a 1m trigger; the regime and zone
//! levels only change on candle closes): the trade that opens a new minute closes the previous
//! candle; the order-flow windows and the profile are advanced to the candle's end and the
//! decision is evaluated *before* that trade is added, so the windows cover exactly the time up
//! to the close. The decision's time is the candle's end. Nothing reads the wall clock, so the
//! same market events always give the same decisions (byte for byte, except the TSC stamps).
//!
//! # The levels (first failing level rejects; every value is recorded anyway)
//!
//! 1. **Regime (15m)**: the last [`SignalConfig::structure_candles`] (3) closed 15m candles make
//!    higher highs and higher lows (uptrend: longs only) or lower highs and lower lows
//!    (downtrend: shorts only), else ranging; ADX(14) > 25; Hurst (plain R/S; the corrected
//!    value is recorded too) > 0.55; mean-reversion strength < 0.6; ATR at least
//!    [`SignalConfig::atr_floor_frac`] of the price (the seed names no number: default 0.05%).
//! 2. **Zones (15m)**: the latest 1m candle's *touch price* (its low for a long, its high for a
//!    short) is inside an unbroken demand zone (long) / supply zone (short), or within
//!    [`SignalConfig::value_area_tolerance`] (0.1%, the seed's `MarketProfileFilter`) of the
//!    value area low (long) / high (short), or inside a not-filled bullish (long) / bearish
//!    (short) fair value gap. Checked in that order; the first hit is recorded.
//! 3. **Cascade**: the 1m/5m/15m aggressor imbalances of [`OrderFlow`] must all be warm; long
//!    needs `i1 > i5 > i15` and `i1 > 2.0`, short `i1 < i5 < i15` and `i1 < 0.5` (the 2.3.3
//!    reading, see DESIGN.md).
//! 4. **Trigger (1m)**: bounce strength (the close's position in the candle's range, from the
//!    low for a long, from the high for a short) > 0.7; volume > 1.5x the average of the
//!    previous 20 1m candles; and the candle moves away from the zone (close above open for a
//!    long, below for a short).
//!
//! Then the **confluence** (six weighted filters of the seed's `SignalPipeline`, weights
//! 1.5/1.5/1.0/2.0/0.5/1.5) must reach 3.0 (level 0 rejection otherwise), and the symbol's book
//! must be proven (the feed owns the book and says so; level 0 rejection otherwise). The
//! confluence is computed for every decision: in the trend's direction, or when ranging in the
//! direction of the 1m imbalance (long when it is at least 1 or unknown).
//!
//! The filters, with `full` = weight, `half` = weight / 2:
//! 0. market profile (1.5): touch price at VAL or VAH (within the tolerance) full; inside the
//!    value area half;
//! 1. mean reversion (1.5): |z| of the price over the 15-minute tick window >= 2 full, >= 1 half;
//! 2. autocorrelation (1.0): |r| of the 15m returns > 0.6 or < 0.3 full, otherwise half;
//! 3. demand zone (2.0; supply zone for a short): the Level 2 zone with at most one touch (the
//!    touch of the current candle itself counts as one) full, at most three half;
//! 4. supply zone as target (0.5; demand zone below for a short): any unbroken one beyond the
//!    close, full;
//! 5. fair value gap (1.5): a not-filled gap in the trade direction at the touch price, full.
//!
//! Memory: everything is allocated by [`SymbolSignals::new`]; nothing per event.

use crate::analytics::candles::{Candle, CandleSource, Timeframe};
use crate::analytics::orderflow::{OrderFlow, OrderFlowConfig};
use crate::analytics::profile::{MarketProfile, ProfileConfig};
use crate::analytics::timeframes::{AnalyticsConfig, SymbolAnalytics};
use crate::analytics::zones::{CandleInput, GapKind, ZoneConfig, ZoneKind, ZoneStatus, Zones};
use crate::event::{
    Decision, DecisionOutcome, DecisionReason, FilterScores, MarketEvent, MarketKind, Stamps,
    Trend, ZoneSource,
};
use crate::fixed::Price;
use crate::instrument::{InstrumentId, InstrumentSpec};

/// Number of confluence filters.
pub const FILTERS: usize = 6;

/// Names of the confluence filters, in [`FilterScores`] order.
pub const FILTER_NAMES: [&str; FILTERS] = [
    "market_profile",
    "mean_reversion",
    "autocorrelation",
    "demand_zone",
    "supply_target",
    "fair_value_gap",
];

/// Every threshold of the decision (defaults: the seed's values; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// 15m candles in the HH/HL (LH/LL) structure (3).
    pub structure_candles: usize,
    /// ADX must exceed this (25).
    pub adx_min: f64,
    /// Hurst (plain R/S) must exceed this (0.55).
    pub hurst_min: f64,
    /// Mean-reversion strength must stay below this (0.6).
    pub mean_reversion_max: f64,
    /// ATR must be at least this fraction of the price (0.0005; not in the seed).
    pub atr_floor_frac: f64,
    /// "At VAL/VAH": relative distance at most this (0.001).
    pub value_area_tolerance: f64,
    /// Long cascade: `i1` must exceed this (2.0).
    pub cascade_long_min: f64,
    /// Short cascade: `i1` must be below this (0.5).
    pub cascade_short_max: f64,
    /// Bounce strength must exceed this (0.7).
    pub bounce_min: f64,
    /// Volume must exceed this multiple of its average (1.5).
    pub volume_spike_min: f64,
    /// 1m candles in the volume average (20; at most [`MAX_VOLUME_AVG`]).
    pub volume_avg_candles: usize,
    /// Confluence weights in [`FILTER_NAMES`] order (1.5, 1.5, 1.0, 2.0, 0.5, 1.5).
    pub weights: FilterScores,
    /// Entry needs a confluence score of at least this (3.0).
    pub min_confluence: f64,
    /// Mean-reversion filter: |z| for full points (2.0).
    pub zscore_full: f64,
    /// Mean-reversion filter: |z| for half points (1.0).
    pub zscore_half: f64,
    /// Autocorrelation filter: |r| above this is "high" (0.6).
    pub autocorr_high: f64,
    /// Autocorrelation filter: |r| below this is "low" (0.3).
    pub autocorr_low: f64,
    /// Timeframe of the candles that build zones and fair value gaps (15m).
    pub zone_timeframe: Timeframe,
}

/// Most 1m candles the volume average can hold.
pub const MAX_VOLUME_AVG: usize = 64;

/// Most 15m candles the structure check can hold.
pub const MAX_STRUCTURE: usize = 8;

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            structure_candles: 3,
            adx_min: 25.0,
            hurst_min: 0.55,
            mean_reversion_max: 0.6,
            atr_floor_frac: 0.0005,
            value_area_tolerance: 0.001,
            cascade_long_min: 2.0,
            cascade_short_max: 0.5,
            bounce_min: 0.7,
            volume_spike_min: 1.5,
            volume_avg_candles: 20,
            weights: [1.5, 1.5, 1.0, 2.0, 0.5, 1.5],
            min_confluence: 3.0,
            zscore_full: 2.0,
            zscore_half: 1.0,
            autocorr_high: 0.6,
            autocorr_low: 0.3,
            zone_timeframe: Timeframe::M15,
        }
    }
}

/// High and low of a 15m candle (price units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HighLow {
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
}

/// The 1m candle a decision is evaluated on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bar {
    /// Open.
    pub open: Price,
    /// High.
    pub high: Price,
    /// Low.
    pub low: Price,
    /// Close.
    pub close: Price,
    /// Volume (any unit; only its ratio to the average matters).
    pub volume: f64,
}

/// A surveillance area found at a price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneHit {
    /// What it is.
    pub source: ZoneSource,
    /// Creation time (ns) of a zone or gap; 0 for a profile level.
    pub id: u64,
    /// Lower edge.
    pub low: Price,
    /// Upper edge.
    pub high: Price,
    /// Strength (zones: 0..100; profile levels and gaps: 100).
    pub strength: f64,
    /// Touches so far (zones; 0 otherwise).
    pub touches: u32,
}

/// What one direction sees at the latest 1m candle (filled by [`SymbolSignals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SideContext {
    /// The strongest unbroken demand zone (long) / supply zone (short) at the touch price.
    pub zone: Option<ZoneHit>,
    /// The newest not-filled bullish (long) / bearish (short) gap at the touch price.
    pub fvg: Option<ZoneHit>,
    /// An unbroken supply zone above the close (long) / demand zone below it (short).
    pub target: bool,
}

/// POC and value area of the 15-minute profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueArea {
    /// Point of control.
    pub poc: Price,
    /// Value area low.
    pub val: Price,
    /// Value area high.
    pub vah: Price,
}

/// Everything one evaluation reads. `None` / NaN: not available yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalInputs {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time of the evaluation (end of the 1m candle), ns.
    pub time_ns: u64,
    /// Scale of every [`Price`] here.
    pub price_scale: u8,
    /// Whether the feed has proven the symbol's book.
    pub book_proven: bool,
    /// The last closed 15m candles, oldest first (`structure_len` of them are valid).
    pub structure: [HighLow; MAX_STRUCTURE],
    /// Valid entries of `structure`.
    pub structure_len: usize,
    /// ADX of the 15m candles.
    pub adx: Option<f64>,
    /// Hurst, plain R/S, 15m closes.
    pub hurst: Option<f64>,
    /// Hurst, corrected R/S (recorded only).
    pub hurst_corrected: Option<f64>,
    /// Mean-reversion strength, 15m closes.
    pub mean_reversion: Option<f64>,
    /// ATR of the 15m candles, price units.
    pub atr: Option<f64>,
    /// Lag-1 autocorrelation of the 15m returns.
    pub autocorr: Option<f64>,
    /// z-score of the latest price over the 15-minute tick window.
    pub zscore: Option<f64>,
    /// Imbalances 1m, 5m, 15m.
    pub imbalance: [Option<f64>; 3],
    /// The 1m candle that closed.
    pub bar: Bar,
    /// Average volume of the previous 1m candles (`None` until there are enough).
    pub volume_avg: Option<f64>,
    /// The 15-minute value area.
    pub value_area: Option<ValueArea>,
    /// Long-side zones.
    pub long: SideContext,
    /// Short-side zones.
    pub short: SideContext,
    /// Stamps of the triggering market event.
    pub stamps: Stamps,
}

impl SignalInputs {
    /// Inputs with nothing warm: a ranging, unknown market at `time_ns`.
    pub fn empty(instrument: InstrumentId, time_ns: u64, price_scale: u8, bar: Bar) -> Self {
        SignalInputs {
            instrument,
            time_ns,
            price_scale,
            book_proven: false,
            structure: [HighLow::default(); MAX_STRUCTURE],
            structure_len: 0,
            adx: None,
            hurst: None,
            hurst_corrected: None,
            mean_reversion: None,
            atr: None,
            autocorr: None,
            zscore: None,
            imbalance: [None; 3],
            bar,
            volume_avg: None,
            value_area: None,
            long: SideContext::default(),
            short: SideContext::default(),
            stamps: Stamps::new(time_ns, 0),
        }
    }
}

#[inline]
fn nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// Relative distance `|a - b| / |b|` of two mantissas (same scale).
#[inline]
fn rel_dist(a: Price, b: Price) -> f64 {
    if b.0 == 0 {
        return f64::INFINITY;
    }
    ((a.0 - b.0) as f64 / b.0 as f64).abs()
}

/// The Level 1 regime from the structure candles (`None` when there are too few).
pub fn structure_trend(cfg: &SignalConfig, x: &SignalInputs) -> Option<Trend> {
    let n = cfg.structure_candles.clamp(2, MAX_STRUCTURE);
    if x.structure_len < n {
        return None;
    }
    let s = &x.structure[x.structure_len - n..x.structure_len];
    let up = s
        .windows(2)
        .all(|w| w[1].high > w[0].high && w[1].low > w[0].low);
    let down = s
        .windows(2)
        .all(|w| w[1].high < w[0].high && w[1].low < w[0].low);
    Some(if up {
        Trend::Up
    } else if down {
        Trend::Down
    } else {
        Trend::None
    })
}

/// The six filter contributions for a long (`long = true`) or short.
pub fn confluence(cfg: &SignalConfig, x: &SignalInputs, long: bool) -> FilterScores {
    let w = cfg.weights;
    let mut c = [0.0; FILTERS];
    let side = if long { &x.long } else { &x.short };
    let touch = if long { x.bar.low } else { x.bar.high };
    if let Some(va) = x.value_area {
        let tol = cfg.value_area_tolerance;
        if rel_dist(touch, va.val) <= tol || rel_dist(touch, va.vah) <= tol {
            c[0] = w[0];
        } else if va.val < touch && touch < va.vah {
            c[0] = w[0] * 0.5;
        }
    }
    if let Some(z) = x.zscore {
        let z = z.abs();
        if z >= cfg.zscore_full {
            c[1] = w[1];
        } else if z >= cfg.zscore_half {
            c[1] = w[1] * 0.5;
        }
    }
    if let Some(r) = x.autocorr {
        let r = r.abs();
        c[2] = if r > cfg.autocorr_high || r < cfg.autocorr_low {
            w[2]
        } else {
            w[2] * 0.5
        };
    }
    if let Some(z) = side.zone {
        if z.touches <= 1 {
            c[3] = w[3];
        } else if z.touches <= 3 {
            c[3] = w[3] * 0.5;
        }
    }
    if side.target {
        c[4] = w[4];
    }
    if side.fvg.is_some() {
        c[5] = w[5];
    }
    c
}

/// Evaluate the four levels and the confluence on `x`.
pub fn evaluate(cfg: &SignalConfig, x: &SignalInputs) -> Decision {
    let bar = x.bar;
    let price_f = bar.close.0 as f64;
    let scale_pow = 10f64.powi(i32::from(x.price_scale));
    let range = (bar.high.0 - bar.low.0) as f64;
    let structure = structure_trend(cfg, x);
    let trend = structure.unwrap_or(Trend::None);
    let long = match trend {
        Trend::Up => true,
        Trend::Down => false,
        Trend::None => x.imbalance[0].is_none_or(|i| i >= 1.0),
    };
    let side = if long { &x.long } else { &x.short };
    let bounce = if range > 0.0 {
        if long {
            (bar.close.0 - bar.low.0) as f64 / range
        } else {
            (bar.high.0 - bar.close.0) as f64 / range
        }
    } else {
        0.0
    };
    let volume_ratio = match x.volume_avg {
        Some(a) if a > 0.0 => bar.volume / a,
        _ => f64::NAN,
    };
    let contributions = confluence(cfg, x, long);
    let score: f64 = contributions.iter().sum();
    let mut filter_mask = 0u8;
    for (i, v) in contributions.iter().enumerate() {
        if *v > 0.0 {
            filter_mask |= 1 << i;
        }
    }
    // Level 2 area for the chosen direction.
    let touch = if long { bar.low } else { bar.high };
    let profile_hit = x.value_area.and_then(|va| {
        let (lvl, src) = if long {
            (va.val, ZoneSource::Val)
        } else {
            (va.vah, ZoneSource::Vah)
        };
        (rel_dist(touch, lvl) <= cfg.value_area_tolerance).then_some(ZoneHit {
            source: src,
            id: 0,
            low: lvl,
            high: lvl,
            strength: 100.0,
            touches: 0,
        })
    });
    let area = side.zone.or(profile_hit).or(side.fvg);

    let mut d = Decision {
        instrument: x.instrument,
        outcome: DecisionOutcome::Reject,
        level: 1,
        reason: DecisionReason::NotWarm,
        trend,
        time_ns: x.time_ns,
        price: bar.close,
        zone_low: area.map_or(Price::ZERO, |a| a.low),
        zone_high: area.map_or(Price::ZERO, |a| a.high),
        zone_id: area.map_or(0, |a| a.id),
        zone_strength: area.map_or(0, |a| a.strength.round().clamp(0.0, 100.0) as u32),
        price_scale: x.price_scale,
        zone_kind: area.map_or(ZoneSource::None, |a| a.source),
        filter_mask,
        flags: if x.book_proven {
            Decision::FLAG_BOOK_PROVEN
        } else {
            0
        } | if long { 0 } else { Decision::FLAG_SHORT_SIDE },
        adx: nan(x.adx),
        hurst: nan(x.hurst),
        hurst_corrected: nan(x.hurst_corrected),
        mean_reversion: nan(x.mean_reversion),
        atr: nan(x.atr),
        imbalance_1m: nan(x.imbalance[0]),
        imbalance_5m: nan(x.imbalance[1]),
        imbalance_15m: nan(x.imbalance[2]),
        bounce,
        volume_ratio,
        zscore: nan(x.zscore),
        autocorr: nan(x.autocorr),
        confluence: score,
        contributions,
        stamps: x.stamps,
    };
    let reject = |mut d: Decision, level: u8, reason: DecisionReason| {
        d.level = level;
        d.reason = reason;
        d
    };

    // Level 1: regime.
    let (Some(adx), Some(hurst), Some(mr), Some(atr), Some(_)) =
        (x.adx, x.hurst, x.mean_reversion, x.atr, structure)
    else {
        return reject(d, 1, DecisionReason::NotWarm);
    };
    if trend == Trend::None {
        return reject(d, 1, DecisionReason::NoStructure);
    }
    if adx.is_nan() || adx <= cfg.adx_min {
        return reject(d, 1, DecisionReason::AdxLow);
    }
    if hurst.is_nan() || hurst <= cfg.hurst_min {
        return reject(d, 1, DecisionReason::HurstLow);
    }
    if mr.is_nan() || mr >= cfg.mean_reversion_max {
        return reject(d, 1, DecisionReason::MeanReversionHigh);
    }
    let price_units = price_f / scale_pow;
    if atr.is_nan() || atr < cfg.atr_floor_frac * price_units {
        return reject(d, 1, DecisionReason::AtrLow);
    }
    // Level 2: zones.
    if area.is_none() {
        return reject(d, 2, DecisionReason::NotAtZone);
    }
    // Level 3: cascade.
    let [Some(i1), Some(i5), Some(i15)] = x.imbalance else {
        return reject(d, 3, DecisionReason::CascadeNotWarm);
    };
    let ordered = if long {
        i1 > i5 && i5 > i15
    } else {
        i1 < i5 && i5 < i15
    };
    if !ordered {
        return reject(d, 3, DecisionReason::CascadeUnordered);
    }
    let strong = if long {
        i1 > cfg.cascade_long_min
    } else {
        i1 < cfg.cascade_short_max
    };
    if !strong {
        return reject(d, 3, DecisionReason::ImbalanceWeak);
    }
    // Level 4: trigger.
    if bounce.is_nan() || bounce <= cfg.bounce_min {
        return reject(d, 4, DecisionReason::BounceWeak);
    }
    if volume_ratio.is_nan() || volume_ratio <= cfg.volume_spike_min {
        return reject(d, 4, DecisionReason::VolumeLow);
    }
    let away = if long {
        bar.close > bar.open
    } else {
        bar.close < bar.open
    };
    if !away {
        return reject(d, 4, DecisionReason::NotMovingAway);
    }
    // Confluence and the book.
    if score < cfg.min_confluence {
        return reject(d, 0, DecisionReason::ConfluenceLow);
    }
    if !x.book_proven {
        return reject(d, 0, DecisionReason::BookNotProven);
    }
    d.level = 0;
    d.reason = DecisionReason::Entry;
    d.outcome = if long {
        DecisionOutcome::EnterLong
    } else {
        DecisionOutcome::EnterShort
    };
    d
}

/// Configuration of one symbol's analytics and decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolConfig {
    /// Decision thresholds.
    pub signal: SignalConfig,
    /// Candles and indicators.
    pub analytics: AnalyticsConfig,
    /// Order-flow windows.
    pub orderflow: OrderFlowConfig,
    /// Market profile.
    pub profile: ProfileConfig,
    /// Zones and gaps.
    pub zones: ZoneConfig,
}

impl SymbolConfig {
    /// Defaults for `spec`: the profile's level width is 0.1 price unit (e.g. $0.10 for
    /// BTCUSDT), at least one tick.
    pub fn for_instrument(spec: &InstrumentSpec) -> Self {
        let tenth = 10i64.pow(u32::from(spec.price_scale)) / 10;
        let tick = spec.tick.0.max(1);
        let per_level = (tenth / tick).clamp(1, i64::from(u32::MAX)) as u32;
        let mut profile = ProfileConfig::with_tick(tick);
        profile.ticks_per_level = per_level;
        SymbolConfig {
            signal: SignalConfig::default(),
            analytics: AnalyticsConfig::default(),
            orderflow: OrderFlowConfig::default(),
            profile,
            zones: ZoneConfig::default(),
        }
    }
}

/// Why a [`SymbolSignals`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SymbolConfigError {
    /// The order-flow configuration is invalid.
    #[error("order flow: {0}")]
    OrderFlow(#[from] crate::analytics::orderflow::ConfigError),
    /// The profile configuration is invalid.
    #[error("market profile: {0}")]
    Profile(#[from] crate::analytics::profile::ProfileConfigError),
}

/// One symbol's analytics and decision state. Allocates in [`SymbolSignals::new`] only.
#[derive(Debug, Clone)]
pub struct SymbolSignals {
    instrument: InstrumentId,
    cfg: SignalConfig,
    analytics: SymbolAnalytics,
    flow: OrderFlow,
    profile: MarketProfile,
    zones: Zones,
    structure: [HighLow; MAX_STRUCTURE],
    structure_len: usize,
    volumes: [f64; MAX_VOLUME_AVG],
    volumes_len: usize,
    volumes_head: usize,
    decisions: u64,
}

impl SymbolSignals {
    /// State for `instrument` (trades build the candles).
    pub fn new(instrument: InstrumentId, cfg: &SymbolConfig) -> Result<Self, SymbolConfigError> {
        Ok(SymbolSignals {
            instrument,
            cfg: cfg.signal,
            analytics: SymbolAnalytics::new(CandleSource::Trades, &cfg.analytics),
            flow: OrderFlow::new(cfg.orderflow)?,
            profile: MarketProfile::new(cfg.profile)?,
            zones: Zones::new(cfg.zones),
            structure: [HighLow::default(); MAX_STRUCTURE],
            structure_len: 0,
            volumes: [0.0; MAX_VOLUME_AVG],
            volumes_len: 0,
            volumes_head: 0,
            decisions: 0,
        })
    }

    /// The instrument.
    pub fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// The price analytics (candles, indicators, z-score).
    pub fn analytics(&self) -> &SymbolAnalytics {
        &self.analytics
    }

    /// The order flow.
    pub fn order_flow(&self) -> &OrderFlow {
        &self.flow
    }

    /// The market profile.
    pub fn profile(&self) -> &MarketProfile {
        &self.profile
    }

    /// The zones and gaps.
    pub fn zones(&self) -> &Zones {
        &self.zones
    }

    /// Decisions evaluated so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Feed one market event of this symbol. Returns the decision when the event closed a 1m
    /// candle (see the module docs). `book_proven` is the feed's word on this symbol's book.
    pub fn on_event(&mut self, e: &MarketEvent, book_proven: bool) -> Option<Decision> {
        if !matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
            if e.kind == MarketKind::Kline && e.has(MarketEvent::FLAG_KLINE_HISTORY) {
                self.on_history(e);
            }
            return None;
        }
        // The z-score as of the candle's last tick (before this event's tick joins the window).
        let zscore = self.analytics.zscore().filter(|z| z.ticks > 1).map(|z| z.z);
        let closes = self.analytics.on_event(e);
        if let Some(c) = closes.get(self.cfg.zone_timeframe) {
            self.zones.on_candle(&candle_input(&c.candle));
        }
        if let Some(c) = closes.get(Timeframe::M15) {
            self.push_structure(&c.candle);
        }
        let mut decision = None;
        if let Some(c) = closes.get(Timeframe::M1) {
            let end = c.candle.close_time_ns();
            self.flow.advance_to(end);
            self.profile.advance_to(end);
            let x = self.inputs(&c.candle, book_proven, e.stamps, zscore);
            decision = Some(evaluate(&self.cfg, &x));
            self.decisions += 1;
            self.push_volume(c.candle.volume.0 as f64);
        }
        self.flow.on_event(e);
        self.profile.on_event(e);
        if e.stamps.venue_ns != 0 {
            self.zones.on_price(e.stamps.venue_ns, e.price);
        }
        decision
    }

    /// Warm up from a closed candle of REST history (see
    /// [`klines`](crate::venue::binance::klines)): the indicators of its timeframe, and what the
    /// live candle closes feed: zones and the regime structure (15m), the volume average and
    /// the order-flow windows (1m, from the taker-buy split, at the candle's last millisecond).
    /// No decision: decisions come from live 1m closes only. Open candles are ignored. Not warmed
    /// from history (they need ticks): the tick z-score and the market profile; both fill from
    /// live trades within their 15-minute windows.
    fn on_history(&mut self, e: &MarketEvent) {
        let Some(k) = e.as_kline().filter(|k| k.closed) else {
            return;
        };
        let Some(c) = Candle::from_kline(&k, e.price_scale, e.qty_scale) else {
            return;
        };
        self.analytics.on_history(&c);
        let tf = Timeframe::from_secs(c.interval_secs);
        if tf == Some(self.cfg.zone_timeframe) {
            // Live, the prices inside a candle touch and break the zones of earlier candles
            // before the candle's own close creates new ones; history keeps that order with
            // the candle's likely path (open, the nearer extreme, the farther one, close).
            let path = if c.close >= c.open {
                [c.open, c.low, c.high, c.close]
            } else {
                [c.open, c.high, c.low, c.close]
            };
            let t = c.close_time_ns().saturating_sub(1);
            for p in path {
                self.zones.on_price(t, p);
            }
            self.zones.on_candle(&candle_input(&c));
        }
        match tf {
            Some(Timeframe::M15) => self.push_structure(&c),
            Some(Timeframe::M1) => {
                self.push_volume(c.volume.0 as f64);
                self.flow.on_aggregate(
                    k.close_time_ns,
                    c.buy_volume,
                    c.sell_volume,
                    c.buy_ticks,
                    c.sell_ticks,
                );
            }
            _ => {}
        }
    }

    fn push_structure(&mut self, c: &Candle) {
        let hl = HighLow {
            high: c.high_f64(),
            low: c.low_f64(),
        };
        if self.structure_len == MAX_STRUCTURE {
            self.structure.copy_within(1.., 0);
            self.structure[MAX_STRUCTURE - 1] = hl;
        } else {
            self.structure[self.structure_len] = hl;
            self.structure_len += 1;
        }
    }

    fn push_volume(&mut self, v: f64) {
        let n = self.cfg.volume_avg_candles.clamp(1, MAX_VOLUME_AVG);
        self.volumes[self.volumes_head] = v;
        self.volumes_head = (self.volumes_head + 1) % n;
        self.volumes_len = (self.volumes_len + 1).min(n);
    }

    fn volume_avg(&self) -> Option<f64> {
        let n = self.cfg.volume_avg_candles.clamp(1, MAX_VOLUME_AVG);
        (self.volumes_len == n).then(|| self.volumes[..n].iter().sum::<f64>() / n as f64)
    }

    /// The inputs of an evaluation on the closed 1m candle `c`, with the tick z-score as of
    /// its last tick.
    pub fn inputs(
        &self,
        c: &Candle,
        book_proven: bool,
        stamps: Stamps,
        zscore: Option<f64>,
    ) -> SignalInputs {
        let bar = Bar {
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume.0 as f64,
        };
        let mut x = SignalInputs::empty(self.instrument, c.close_time_ns(), c.price_scale, bar);
        x.book_proven = book_proven;
        x.stamps = stamps;
        x.structure = self.structure;
        x.structure_len = self.structure_len;
        let s15 = self.analytics.indicators(Timeframe::M15).latest();
        x.adx = s15.adx;
        x.hurst = s15.hurst;
        x.hurst_corrected = s15.hurst_corrected;
        x.mean_reversion = s15.mean_reversion;
        x.atr = s15.atr;
        x.autocorr = s15.autocorr;
        x.zscore = zscore;
        x.imbalance = self.flow.cascade();
        x.volume_avg = self.volume_avg();
        x.value_area = self.profile.profile().map(|p| ValueArea {
            poc: p.poc,
            val: p.val,
            vah: p.vah,
        });
        let zone_hit = |kind: ZoneKind, price: Price| {
            self.zones.zone_at(kind, price).map(|z| ZoneHit {
                source: match kind {
                    ZoneKind::Demand => ZoneSource::Demand,
                    ZoneKind::Supply => ZoneSource::Supply,
                },
                id: z.created_ns,
                low: z.low,
                high: z.high,
                strength: z.strength,
                touches: z.touches,
            })
        };
        let gap_hit = |kind: GapKind, price: Price| {
            self.zones.fvg_at(kind, price).map(|g| ZoneHit {
                source: match kind {
                    GapKind::Bullish => ZoneSource::BullishFvg,
                    GapKind::Bearish => ZoneSource::BearishFvg,
                },
                id: g.created_ns,
                low: g.low,
                high: g.high,
                strength: 100.0,
                touches: 0,
            })
        };
        let live = |kind: ZoneKind| {
            self.zones
                .zones()
                .iter()
                .filter(move |z| z.kind == kind && z.status != ZoneStatus::Broken)
        };
        x.long = SideContext {
            zone: zone_hit(ZoneKind::Demand, c.low),
            fvg: gap_hit(GapKind::Bullish, c.low),
            target: live(ZoneKind::Supply).any(|z| z.low > c.close),
        };
        x.short = SideContext {
            zone: zone_hit(ZoneKind::Supply, c.high),
            fvg: gap_hit(GapKind::Bearish, c.high),
            target: live(ZoneKind::Demand).any(|z| z.high < c.close),
        };
        x
    }
}

/// The zone detector's view of a closed candle.
pub fn candle_input(c: &Candle) -> CandleInput {
    CandleInput {
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        buy_volume: c.buy_volume,
        sell_volume: c.sell_volume,
        start_ns: c.open_time_ns,
        end_ns: c.close_time_ns(),
    }
}
