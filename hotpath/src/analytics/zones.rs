//! Supply/demand zones from rejection wicks with volume spikes, and fair value gaps, per symbol,
//! with fixed memory.
//!
//! Why: Level 2 of the strategy only looks for order-flow confirmation where day traders expect
//! a reaction ("surveillance areas"): demand zones for longs, supply zones for shorts, and
//! unfilled fair value gaps. Both are derived from **closed candles** ([`CandleInput`], fed by the
//! candle builder of `analytics::candles`; this module builds no candles) and then watched
//! against trade prices ([`Zones::on_price`]), all in event time.
//!
//! **Zones.** A closed candle with range `high - low > 0` whose lower wick
//! (`min(open, close) - low`) is at least [`ZoneConfig::wick_pct`] % of the range, and whose
//! volume exceeds `volume_num / volume_den` (1.5) times the average of the previous
//! [`ZoneConfig::avg_candles`] (20) candles, creates a **demand** zone spanning the wick
//! `[low, min(open, close)]`; the same with the upper wick creates a **supply** zone
//! `[max(open, close), high]` (both when both wicks qualify). No zone is created until 20
//! candles of history exist. All tests are exact integer comparisons.
//!
//! Status by price: a demand zone is *touched* when a price enters `[low, high)` from above
//! (one touch per entry: the price must leave above `high` before the next touch counts) and
//! *broken* when a price trades below `low`; a supply zone is touched entering `(low, high]`
//! from below and broken above `high`. Broken zones stay listed (for reporting) but no longer
//! change. Strength: base 100 fresh, 70 tested 1-2 times, 40 tested 3+ times or broken, times a
//! creation-volume factor `min(1, 0.8 + 0.2 * (ratio - m) / m)` with `ratio` = volume / average
//! and `m` = 1.5; so any fresh zone (80..100) outranks any tested one (56..70).
//!
//! At most [`ZoneConfig::max_zones`] (50) zones are kept: a new zone evicts the oldest broken
//! zone, or if none is broken the weakest (ties: the oldest).
//!
//! **Fair value gaps.** Over three consecutive closed candles c1, c2, c3: `c1.high < c3.low` is
//! a bullish gap `[c1.high, c3.low]`, `c1.low > c3.high` a bearish gap `[c3.high, c1.low]`, kept
//! when the gap is at least [`ZoneConfig::fvg_min_bps`] (20 = 0.2%) of c3's close. Prices then
//! fill it: a bullish gap fills from the top as price trades down into it (partial) and is
//! filled when price reaches its low; a bearish gap fills from the bottom. A gap expires
//! [`ZoneConfig::fvg_expiry_ns`] (24 h) after c3's end, by event time, and is removed. At most
//! [`ZoneConfig::max_fvgs`] are kept: a new gap evicts the oldest filled gap, else the oldest.
//!
//! Time only moves forward: an earlier price timestamp is treated as the latest time seen, and
//! a candle that does not end after the previous one is ignored (counted).

use crate::fixed::{Price, Qty};

/// A closed candle, as the candle builder (`analytics::candles`) produces it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CandleInput {
    /// Open price.
    pub open: Price,
    /// High price.
    pub high: Price,
    /// Low price.
    pub low: Price,
    /// Close price.
    pub close: Price,
    /// Total traded volume.
    pub volume: Qty,
    /// Buy-aggressor volume.
    pub buy_volume: Qty,
    /// Sell-aggressor volume.
    pub sell_volume: Qty,
    /// Candle start, ns since the epoch (event time).
    pub start_ns: u64,
    /// Candle end (exclusive), ns since the epoch (event time).
    pub end_ns: u64,
}

/// Parameters of [`Zones`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneConfig {
    /// Minimum wick as a percentage of the candle's range (default 50).
    pub wick_pct: u32,
    /// Volume spike: volume > `volume_num / volume_den` x average (default 3/2).
    pub volume_num: u32,
    /// See [`volume_num`](Self::volume_num).
    pub volume_den: u32,
    /// Candles in the volume average (default 20).
    pub avg_candles: usize,
    /// Maximum zones kept (default 50).
    pub max_zones: usize,
    /// Minimum fair-value-gap size in basis points of c3's close (default 20 = 0.2%).
    pub fvg_min_bps: u32,
    /// Fair-value-gap lifetime after c3's end, ns (default 24 h).
    pub fvg_expiry_ns: u64,
    /// Maximum fair value gaps kept (default 50).
    pub max_fvgs: usize,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            wick_pct: 50,
            volume_num: 3,
            volume_den: 2,
            avg_candles: 20,
            max_zones: 50,
            fvg_min_bps: 20,
            fvg_expiry_ns: 24 * 3_600 * 1_000_000_000,
            max_fvgs: 50,
        }
    }
}

/// Demand (support) or supply (resistance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneKind {
    /// From a lower rejection wick: buyers stepped in.
    Demand,
    /// From an upper rejection wick: sellers stepped in.
    Supply,
}

/// Lifecycle of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneStatus {
    /// Not touched since creation.
    Fresh,
    /// Touched at least once, not broken.
    Tested,
    /// Price traded through it.
    Broken,
}

/// A supply or demand zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zone {
    /// Demand or supply.
    pub kind: ZoneKind,
    /// Lower edge.
    pub low: Price,
    /// Upper edge.
    pub high: Price,
    /// End time of the creating candle.
    pub created_ns: u64,
    /// Volume of the creating candle.
    pub volume: Qty,
    /// Creating volume / average volume.
    pub volume_ratio: f64,
    /// Touches so far.
    pub touches: u32,
    /// Status.
    pub status: ZoneStatus,
    /// When it broke (0 if not broken).
    pub broken_ns: u64,
    /// Strength (see the module docs).
    pub strength: f64,
    inside: bool,
    volume_factor: f64,
}

impl Zone {
    /// Base strength of the status: 100 fresh, 70 tested 1-2 times, 40 tested 3+ or broken.
    pub const fn base_strength(&self) -> u32 {
        match self.status {
            ZoneStatus::Fresh => 100,
            ZoneStatus::Tested if self.touches <= 2 => 70,
            _ => 40,
        }
    }

    fn update_strength(&mut self) {
        self.strength = f64::from(self.base_strength()) * self.volume_factor;
    }

    /// True when `price` is within `[low, high]`.
    pub fn contains(&self, price: Price) -> bool {
        self.low <= price && price <= self.high
    }
}

/// Bullish or bearish gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapKind {
    /// c1.high < c3.low: price skipped upwards.
    Bullish,
    /// c1.low > c3.high: price skipped downwards.
    Bearish,
}

/// How much of a gap has been traded back into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FillStatus {
    /// Not entered yet.
    Unfilled,
    /// Entered, not crossed.
    Partial,
    /// Traded through to the far edge.
    Filled,
}

/// A fair value gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairValueGap {
    /// Bullish or bearish.
    pub kind: GapKind,
    /// Lower edge.
    pub low: Price,
    /// Upper edge.
    pub high: Price,
    /// End of c3.
    pub created_ns: u64,
    /// Removed at or after this event time.
    pub expires_ns: u64,
    /// Deepest price traded into the gap (the far edge reached so far): starts at the near
    /// edge (`high` for bullish, `low` for bearish).
    pub filled_to: Price,
    /// Fill status.
    pub status: FillStatus,
}

impl FairValueGap {
    /// Filled fraction, 0.0 ..= 1.0.
    pub fn fill_fraction(&self) -> f64 {
        let size = (self.high.0 - self.low.0) as f64;
        let done = match self.kind {
            GapKind::Bullish => self.high.0 - self.filled_to.0,
            GapKind::Bearish => self.filled_to.0 - self.low.0,
        };
        done as f64 / size
    }

    /// True when `price` is within `[low, high]`.
    pub fn contains(&self, price: Price) -> bool {
        self.low <= price && price <= self.high
    }
}

/// Counters of [`Zones`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneStats {
    /// Candles accepted.
    pub candles: u64,
    /// Candles ignored (out of order, or high < low).
    pub rejected_candles: u64,
    /// Zones created.
    pub zones_created: u64,
    /// Zones evicted by the cap.
    pub zones_evicted: u64,
    /// Gaps created.
    pub fvgs_created: u64,
    /// Gaps evicted by the cap.
    pub fvgs_evicted: u64,
    /// Gaps expired.
    pub fvgs_expired: u64,
}

/// Zones and fair value gaps of one symbol. Allocates in [`Zones::new`] only.
#[derive(Debug, Clone)]
pub struct Zones {
    cfg: ZoneConfig,
    zones: Vec<Zone>,
    fvgs: Vec<FairValueGap>,
    vols: Box<[i64]>,
    vol_next: usize,
    vol_n: usize,
    vol_sum: i128,
    prev: [Option<CandleInput>; 2],
    now_ns: u64,
    last_end_ns: u64,
    stats: ZoneStats,
}

impl Zones {
    /// Zones with their storage preallocated (`avg_candles`, `max_zones`, `max_fvgs` are
    /// raised to at least 1).
    pub fn new(cfg: ZoneConfig) -> Self {
        let cfg = ZoneConfig {
            avg_candles: cfg.avg_candles.max(1),
            max_zones: cfg.max_zones.max(1),
            max_fvgs: cfg.max_fvgs.max(1),
            volume_den: cfg.volume_den.max(1),
            volume_num: cfg.volume_num.max(1),
            ..cfg
        };
        Zones {
            cfg,
            zones: Vec::with_capacity(cfg.max_zones),
            fvgs: Vec::with_capacity(cfg.max_fvgs),
            vols: vec![0; cfg.avg_candles].into_boxed_slice(),
            vol_next: 0,
            vol_n: 0,
            vol_sum: 0,
            prev: [None; 2],
            now_ns: 0,
            last_end_ns: 0,
            stats: ZoneStats::default(),
        }
    }

    /// The configuration (after clamping).
    pub fn config(&self) -> &ZoneConfig {
        &self.cfg
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.zones.capacity() * core::mem::size_of::<Zone>()
            + self.fvgs.capacity() * core::mem::size_of::<FairValueGap>()
            + core::mem::size_of_val(&*self.vols)
    }

    /// The zones, oldest first.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The live fair value gaps, oldest first.
    pub fn fvgs(&self) -> &[FairValueGap] {
        &self.fvgs
    }

    /// Counters.
    pub fn stats(&self) -> ZoneStats {
        self.stats
    }

    /// The strongest unbroken zone of `kind` containing `price`.
    pub fn zone_at(&self, kind: ZoneKind, price: Price) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.kind == kind && z.status != ZoneStatus::Broken && z.contains(price))
            .fold(None, |best: Option<&Zone>, z| match best {
                Some(b) if b.strength >= z.strength => Some(b),
                _ => Some(z),
            })
    }

    /// The newest not-yet-filled gap of `kind` containing `price`.
    pub fn fvg_at(&self, kind: GapKind, price: Price) -> Option<&FairValueGap> {
        self.fvgs
            .iter()
            .rev()
            .find(|g| g.kind == kind && g.status != FillStatus::Filled && g.contains(price))
    }

    /// A closed candle: updates the volume average, creates zones and gaps, expires gaps.
    /// Returns `false` if the candle was ignored.
    pub fn on_candle(&mut self, c: &CandleInput) -> bool {
        if (self.stats.candles > 0 && c.end_ns <= self.last_end_ns) || c.high < c.low {
            self.stats.rejected_candles += 1;
            return false;
        }
        self.stats.candles += 1;
        self.last_end_ns = c.end_ns;
        self.now_ns = self.now_ns.max(c.end_ns);
        self.expire();
        self.detect_zones(c);
        self.detect_fvg(c);
        // The candle joins the average after being judged against the previous ones.
        let v = c.volume.0.max(0);
        if self.vol_n == self.vols.len() {
            self.vol_sum -= i128::from(self.vols[self.vol_next]);
        } else {
            self.vol_n += 1;
        }
        self.vols[self.vol_next] = v;
        self.vol_sum += i128::from(v);
        self.vol_next = (self.vol_next + 1) % self.vols.len();
        self.prev = [self.prev[1], Some(*c)];
        true
    }

    fn detect_zones(&mut self, c: &CandleInput) {
        if self.vol_n < self.vols.len() || self.vol_sum <= 0 {
            return;
        }
        let n = self.vol_n as i128;
        let (num, den) = (
            i128::from(self.cfg.volume_num),
            i128::from(self.cfg.volume_den),
        );
        let v = i128::from(c.volume.0);
        // v > num/den * sum/n
        if v * n * den <= num * self.vol_sum {
            return;
        }
        let range = i128::from(c.high.0) - i128::from(c.low.0);
        if range <= 0 {
            return;
        }
        let ratio = v as f64 * n as f64 / self.vol_sum as f64;
        let m = f64::from(self.cfg.volume_num) / f64::from(self.cfg.volume_den);
        let factor = (0.8 + 0.2 * (ratio - m) / m).min(1.0);
        let body_lo = c.open.min(c.close);
        let body_hi = c.open.max(c.close);
        let pct = i128::from(self.cfg.wick_pct);
        let lower = i128::from(body_lo.0) - i128::from(c.low.0);
        let upper = i128::from(c.high.0) - i128::from(body_hi.0);
        if lower > 0 && lower * 100 >= pct * range {
            self.add_zone(ZoneKind::Demand, c.low, body_lo, c, ratio, factor);
        }
        if upper > 0 && upper * 100 >= pct * range {
            self.add_zone(ZoneKind::Supply, body_hi, c.high, c, ratio, factor);
        }
    }

    fn add_zone(
        &mut self,
        kind: ZoneKind,
        low: Price,
        high: Price,
        c: &CandleInput,
        ratio: f64,
        factor: f64,
    ) {
        if self.zones.len() == self.cfg.max_zones {
            let victim = self
                .zones
                .iter()
                .position(|z| z.status == ZoneStatus::Broken)
                .unwrap_or_else(|| {
                    let mut w = 0;
                    for (i, z) in self.zones.iter().enumerate() {
                        if z.strength < self.zones[w].strength {
                            w = i;
                        }
                    }
                    w
                });
            self.zones.remove(victim);
            self.stats.zones_evicted += 1;
        }
        let mut z = Zone {
            kind,
            low,
            high,
            created_ns: c.end_ns,
            volume: c.volume,
            volume_ratio: ratio,
            touches: 0,
            status: ZoneStatus::Fresh,
            broken_ns: 0,
            strength: 0.0,
            inside: false,
            volume_factor: factor,
        };
        z.update_strength();
        self.zones.push(z);
        self.stats.zones_created += 1;
    }

    fn detect_fvg(&mut self, c3: &CandleInput) {
        let Some(c1) = self.prev[0] else {
            return;
        };
        let (kind, low, high) = if c1.high < c3.low {
            (GapKind::Bullish, c1.high, c3.low)
        } else if c1.low > c3.high {
            (GapKind::Bearish, c3.high, c1.low)
        } else {
            return;
        };
        // (high - low) / close >= bps / 10_000
        let gap = i128::from(high.0) - i128::from(low.0);
        if gap * 10_000 < i128::from(self.cfg.fvg_min_bps) * i128::from(c3.close.0) {
            return;
        }
        if self.fvgs.len() == self.cfg.max_fvgs {
            let victim = self
                .fvgs
                .iter()
                .position(|g| g.status == FillStatus::Filled)
                .unwrap_or(0);
            self.fvgs.remove(victim);
            self.stats.fvgs_evicted += 1;
        }
        self.fvgs.push(FairValueGap {
            kind,
            low,
            high,
            created_ns: c3.end_ns,
            expires_ns: c3.end_ns.saturating_add(self.cfg.fvg_expiry_ns),
            filled_to: match kind {
                GapKind::Bullish => high,
                GapKind::Bearish => low,
            },
            status: FillStatus::Unfilled,
        });
        self.stats.fvgs_created += 1;
    }

    fn expire(&mut self) {
        let now = self.now_ns;
        let before = self.fvgs.len();
        self.fvgs.retain(|g| g.expires_ns > now);
        self.stats.fvgs_expired += (before - self.fvgs.len()) as u64;
    }

    /// A trade price at event time `t_ns`: touches and breaks zones, fills and expires gaps.
    pub fn on_price(&mut self, t_ns: u64, price: Price) {
        if t_ns > self.now_ns {
            self.now_ns = t_ns;
            self.expire();
        }
        let now = self.now_ns;
        for z in &mut self.zones {
            if z.status == ZoneStatus::Broken {
                continue;
            }
            let (broken, inside) = match z.kind {
                ZoneKind::Demand => (price < z.low, price < z.high),
                ZoneKind::Supply => (price > z.high, price > z.low),
            };
            if broken {
                z.status = ZoneStatus::Broken;
                z.broken_ns = now;
                z.inside = false;
                z.update_strength();
            } else if inside {
                if !z.inside {
                    z.inside = true;
                    z.touches += 1;
                    z.status = ZoneStatus::Tested;
                    z.update_strength();
                }
            } else {
                z.inside = false;
            }
        }
        for g in &mut self.fvgs {
            if g.status == FillStatus::Filled {
                continue;
            }
            match g.kind {
                GapKind::Bullish if price < g.high => {
                    g.filled_to = g.filled_to.min(price).max(g.low);
                    g.status = if price <= g.low {
                        FillStatus::Filled
                    } else {
                        FillStatus::Partial
                    };
                }
                GapKind::Bearish if price > g.low => {
                    g.filled_to = g.filled_to.max(price).min(g.high);
                    g.status = if price >= g.high {
                        FillStatus::Filled
                    } else {
                        FillStatus::Partial
                    };
                }
                _ => {}
            }
        }
    }
}
