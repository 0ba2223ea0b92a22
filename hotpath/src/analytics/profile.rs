//! Market profile (volume at price) over a rolling window of trades: point of control and the
//! 70% value area, with fixed memory and incremental add/evict.
//!
//! Why this shape: Level 2 asks whether price sits at the value-area extremes (VAL/VAH) or the
//! POC of the last 15 minutes. Keeping a sorted map of prices would allocate; recomputing from
//! the trades would need an unbounded trade buffer. Instead:
//!
//! * **Price levels.** A level is `ticks_per_level` ticks wide; a price belongs to level
//!   `floor(price / width)` and a level is reported by its lowest price (`level * width`). The
//!   histogram is a fixed array of [`ProfileConfig::levels`] counters covering a contiguous
//!   range of levels. When a trade falls outside the range, the range is re-centred on that
//!   trade's level and the histogram is rebuilt from the live entries (O(entries + levels),
//!   rare: it needs a move of half the range). Live volume whose level is outside the range is
//!   excluded from POC/VA and reported by [`MarketProfile::outside_qty`].
//! * **Time.** Event time (`stamps.venue_ns`), bucketed (default 1 s); the window holds the
//!   buckets `k - N + 1 ..= k` of the current bucket `k` (the same bucket-aligned semantics as
//!   [`orderflow`](super::orderflow)); earlier timestamps are clamped to the current bucket.
//! * **Eviction.** A FIFO ring of `(time bucket, level, qty)` entries; a trade merges into a
//!   recent entry of the same bucket and level (looking back up to 4 entries), so memory grows
//!   with distinct (bucket, level) pairs, not trades. When the ring is full the oldest entry is
//!   evicted early (counted in [`ProfileStats::early_evicted`]); size the ring so this does not
//!   happen (the real-capture test asserts it does not at the defaults).
//!
//! **Value area rule (CBOT).** Start from the POC; while the value area holds less than
//! `value_area_pct` of the in-range volume, compare the sum of the next two levels above the
//! current area with the sum of the next two below, and add the pair with the larger sum (both
//! levels at once, so the area can overshoot 70%); at an edge of the traded range a "pair" is
//! whatever levels remain (possibly one), and a side with none left is not chosen. On a tie
//! both pairs are added. Empty levels inside the traded range count as levels with zero volume.
//! **POC ties** go to the level closest to the middle of the traded range, then the lower one.

use crate::event::{MarketEvent, MarketKind};
use crate::fixed::{Price, Qty};

/// Parameters of [`MarketProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileConfig {
    /// One tick as a price mantissa at the instrument's scale (e.g. `1_000_000` for 0.01 at
    /// scale 8).
    pub tick: i64,
    /// Ticks per price level (default 1).
    pub ticks_per_level: u32,
    /// Levels in the histogram (default 4096).
    pub levels: usize,
    /// Window length in ns (default 15 min); a multiple of `time_bucket_ns`.
    pub window_ns: u64,
    /// Time-bucket width in ns (default 1 s).
    pub time_bucket_ns: u64,
    /// Capacity of the entry ring (default 32 768 entries of 16 bytes).
    pub max_entries: usize,
    /// Value-area share in percent (default 70).
    pub value_area_pct: u32,
}

impl ProfileConfig {
    /// Defaults for an instrument whose tick is `tick` (a price mantissa): 1-tick levels, 4 096
    /// levels, 15 min window in 1 s buckets, 32 768 entries, 70% value area. That is 557 056
    /// heap bytes per symbol; choose `ticks_per_level` so that `levels` levels span the price
    /// range of a window (e.g. $0.10 levels for BTCUSDT), or volume falls outside the range.
    pub const fn with_tick(tick: i64) -> Self {
        ProfileConfig {
            tick,
            ticks_per_level: 1,
            levels: 4096,
            window_ns: 900_000_000_000,
            time_bucket_ns: 1_000_000_000,
            max_entries: 32_768,
            value_area_pct: 70,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProfileConfigError {
    /// Tick, ticks per level, levels, bucket or capacity is zero (or the width overflows).
    #[error("tick, level width, levels, time bucket and capacity must be positive")]
    Zero,
    /// The window is not a positive multiple of the time bucket.
    #[error("window must be a positive multiple of the time bucket")]
    BadWindow,
    /// The value-area share is not within 1..=100.
    #[error("value area percent must be 1..=100")]
    BadPercent,
}

/// One ring entry: a quantity at a level within a time bucket (both relative to the first
/// trade, so the entry is 16 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    qty: i64,
    tb: u32,
    level: i32,
}

/// Counters of [`MarketProfile`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Trades added.
    pub trades: u64,
    /// Trades rejected (quantity <= 0, price < 0, more than 2^31 levels or 2^32 time buckets
    /// away from the first trade, or a merge that would overflow `i64`).
    pub rejected: u64,
    /// Trades whose time was behind the latest seen (clamped).
    pub late: u64,
    /// Entries evicted before leaving the window because the ring was full.
    pub early_evicted: u64,
    /// Times the level range was re-centred.
    pub recentres: u64,
    /// Highest number of live entries seen.
    pub max_live_entries: u64,
}

/// POC and value area of the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Point of control: the lowest price of the level with the most volume.
    pub poc: Price,
    /// Value area high: the lowest price of the highest level in the value area.
    pub vah: Price,
    /// Value area low: the lowest price of the lowest level in the value area.
    pub val: Price,
    /// Level width (price mantissa).
    pub level_width: i64,
    /// Volume at the POC level.
    pub poc_qty: i128,
    /// Volume inside the value area.
    pub value_area_qty: i128,
    /// Volume of the in-range histogram.
    pub total_qty: i128,
}

/// Rolling volume-at-price of one symbol. Allocates in [`MarketProfile::new`] only.
#[derive(Debug, Clone)]
pub struct MarketProfile {
    cfg: ProfileConfig,
    width: i64,
    hist: Box<[i64]>,
    /// Absolute level of `hist[0]`.
    base: i64,
    ring: Box<[Entry]>,
    head: u64,
    tail: u64,
    /// Absolute level and time bucket of the first trade (entries are relative to them).
    origin_level: i64,
    origin_tb: u64,
    started: bool,
    now_ns: u64,
    now_tb: u32,
    in_range_qty: i128,
    outside_qty: i128,
    stats: ProfileStats,
}

impl MarketProfile {
    /// A profile with its histogram and ring preallocated.
    pub fn new(cfg: ProfileConfig) -> Result<Self, ProfileConfigError> {
        let width = cfg
            .tick
            .checked_mul(i64::from(cfg.ticks_per_level))
            .filter(|w| *w > 0)
            .ok_or(ProfileConfigError::Zero)?;
        if cfg.levels == 0
            || cfg.levels > 1 << 24
            || cfg.time_bucket_ns == 0
            || cfg.max_entries == 0
        {
            return Err(ProfileConfigError::Zero);
        }
        if cfg.window_ns == 0 || cfg.window_ns % cfg.time_bucket_ns != 0 {
            return Err(ProfileConfigError::BadWindow);
        }
        if cfg.value_area_pct == 0 || cfg.value_area_pct > 100 {
            return Err(ProfileConfigError::BadPercent);
        }
        Ok(MarketProfile {
            cfg,
            width,
            hist: vec![0; cfg.levels].into_boxed_slice(),
            base: 0,
            ring: vec![Entry::default(); cfg.max_entries].into_boxed_slice(),
            head: 0,
            tail: 0,
            origin_level: 0,
            origin_tb: 0,
            started: false,
            now_ns: 0,
            now_tb: 0,
            in_range_qty: 0,
            outside_qty: 0,
            stats: ProfileStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProfileConfig {
        &self.cfg
    }

    /// Heap bytes held (histogram and ring).
    pub fn heap_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.hist) + core::mem::size_of_val(&*self.ring)
    }

    /// Feed a market event: `Trade`/`AggTrade` are added, the rest ignored. Returns whether
    /// the trade was added.
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent) -> bool {
        match e.kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                self.on_trade(e.stamps.venue_ns, e.price, e.qty)
            }
            _ => false,
        }
    }

    /// Add a trade at event time `t_ns`; returns whether it was added.
    pub fn on_trade(&mut self, t_ns: u64, price: Price, qty: Qty) -> bool {
        if qty.0 <= 0 || price.0 < 0 {
            self.stats.rejected += 1;
            return false;
        }
        let level = price.0 / self.width;
        if !self.started {
            self.started = true;
            self.origin_level = level;
            self.origin_tb = t_ns / self.cfg.time_bucket_ns;
            self.now_ns = t_ns;
            self.base = level - (self.cfg.levels / 2) as i64;
        }
        let late = t_ns < self.now_ns;
        let t = t_ns.max(self.now_ns);
        let Some(rel_tb) = (t / self.cfg.time_bucket_ns)
            .checked_sub(self.origin_tb)
            .and_then(|d| u32::try_from(d).ok())
        else {
            self.stats.rejected += 1;
            return false;
        };
        let Ok(rel_level) = i32::try_from(level - self.origin_level) else {
            self.stats.rejected += 1;
            return false;
        };
        self.now_ns = t;
        self.now_tb = rel_tb;
        self.evict();
        if level < self.base || level >= self.base + self.cfg.levels as i64 {
            self.recentre(level);
        }
        // Merge into a recent entry of the same bucket and level, or push a new one.
        let cap = self.ring.len() as u64;
        let mut merged = false;
        let mut s = self.head;
        while s > self.tail && self.head - s < 4 {
            s -= 1;
            let e = &mut self.ring[(s % cap) as usize];
            if e.tb != rel_tb {
                break;
            }
            if e.level == rel_level {
                let Some(q) = e.qty.checked_add(qty.0) else {
                    self.stats.rejected += 1;
                    return false;
                };
                e.qty = q;
                merged = true;
                break;
            }
        }
        if !merged {
            if self.head - self.tail == cap {
                self.pop_oldest();
                self.stats.early_evicted += 1;
            }
            self.ring[(self.head % cap) as usize] = Entry {
                qty: qty.0,
                tb: rel_tb,
                level: rel_level,
            };
            self.head += 1;
            self.stats.max_live_entries = self.stats.max_live_entries.max(self.head - self.tail);
        }
        let slot = (level - self.base) as usize;
        self.hist[slot] += qty.0;
        self.in_range_qty += i128::from(qty.0);
        self.stats.trades += 1;
        self.stats.late += u64::from(late);
        true
    }

    /// Move event time forward without a trade (evicting what left the window).
    pub fn advance_to(&mut self, t_ns: u64) {
        if !self.started || t_ns <= self.now_ns {
            return;
        }
        if let Some(rel) = (t_ns / self.cfg.time_bucket_ns)
            .checked_sub(self.origin_tb)
            .and_then(|d| u32::try_from(d).ok())
        {
            self.now_ns = t_ns;
            self.now_tb = rel;
            self.evict();
        }
    }

    /// Evict entries older than the window.
    #[inline]
    fn evict(&mut self) {
        let n = self.cfg.window_ns / self.cfg.time_bucket_ns;
        let min_tb = (u64::from(self.now_tb) + 1).saturating_sub(n);
        let cap = self.ring.len() as u64;
        while self.tail < self.head && u64::from(self.ring[(self.tail % cap) as usize].tb) < min_tb
        {
            self.pop_oldest();
        }
    }

    /// Remove the oldest entry and its volume.
    #[inline]
    fn pop_oldest(&mut self) {
        let cap = self.ring.len() as u64;
        let e = self.ring[(self.tail % cap) as usize];
        self.tail += 1;
        let level = self.origin_level + i64::from(e.level);
        if level >= self.base && level < self.base + self.cfg.levels as i64 {
            self.hist[(level - self.base) as usize] -= e.qty;
            self.in_range_qty -= i128::from(e.qty);
        } else {
            self.outside_qty -= i128::from(e.qty);
        }
    }

    /// Centre the range on `level` and rebuild the histogram from the live entries.
    #[cold]
    fn recentre(&mut self, level: i64) {
        self.stats.recentres += 1;
        self.base = level - (self.cfg.levels / 2) as i64;
        self.hist.fill(0);
        self.in_range_qty = 0;
        self.outside_qty = 0;
        let cap = self.ring.len() as u64;
        for s in self.tail..self.head {
            let e = self.ring[(s % cap) as usize];
            let l = self.origin_level + i64::from(e.level);
            if l >= self.base && l < self.base + self.cfg.levels as i64 {
                self.hist[(l - self.base) as usize] += e.qty;
                self.in_range_qty += i128::from(e.qty);
            } else {
                self.outside_qty += i128::from(e.qty);
            }
        }
    }

    /// Latest event time seen.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The price range the histogram covers: `[lowest level price, highest level price]`.
    pub fn range(&self) -> (Price, Price) {
        (
            Price(self.base * self.width),
            Price((self.base + self.cfg.levels as i64 - 1) * self.width),
        )
    }

    /// Live volume in the window whose level is outside the histogram's range.
    pub fn outside_qty(&self) -> i128 {
        self.outside_qty
    }

    /// Live volume inside the histogram's range.
    pub fn total_qty(&self) -> i128 {
        self.in_range_qty
    }

    /// Volume at the level containing `price` (0 outside the range).
    pub fn volume_at(&self, price: Price) -> i64 {
        let l = price.0.div_euclid(self.width) - self.base;
        if l < 0 || l >= self.cfg.levels as i64 {
            0
        } else {
            self.hist[l as usize]
        }
    }

    /// Counters.
    pub fn stats(&self) -> ProfileStats {
        self.stats
    }

    /// POC and value area (O(levels) scan; `None` with no volume in range).
    pub fn profile(&self) -> Option<Profile> {
        if self.in_range_qty <= 0 {
            return None;
        }
        let h = &self.hist;
        let lo = h.iter().position(|&v| v != 0)?;
        let hi = h.iter().rposition(|&v| v != 0)?;
        let mid2 = lo + hi; // twice the middle
        let mut poc = lo;
        for i in lo..=hi {
            let (v, best) = (h[i], h[poc]);
            if v > best || (v == best && (2 * i).abs_diff(mid2) < (2 * poc).abs_diff(mid2)) {
                poc = i;
            }
        }
        let total = self.in_range_qty;
        let pct = i128::from(self.cfg.value_area_pct);
        let (mut a, mut b) = (poc, poc);
        let mut va = i128::from(h[poc]);
        while va * 100 < pct * total && (a > lo || b < hi) {
            let up: i128 = (b + 1..=(b + 2).min(hi)).map(|i| i128::from(h[i])).sum();
            let dn: i128 = (a.saturating_sub(2).max(lo)..a)
                .map(|i| i128::from(h[i]))
                .sum();
            let (can_up, can_dn) = (b < hi, a > lo);
            let go_up = can_up && (!can_dn || up >= dn);
            let go_dn = can_dn && (!can_up || dn >= up);
            if go_up {
                b = (b + 2).min(hi);
                va += up;
            }
            if go_dn {
                a = a.saturating_sub(2).max(lo);
                va += dn;
            }
        }
        let px = |i: usize| Price((self.base + i as i64) * self.width);
        Some(Profile {
            poc: px(poc),
            vah: px(b),
            val: px(a),
            level_width: self.width,
            poc_qty: i128::from(h[poc]),
            value_area_qty: va,
            total_qty: total,
        })
    }
}

impl super::orderflow::PerInstrument<MarketProfile> {
    /// Route a market event to its instrument's profile; `false` if not added.
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent) -> bool {
        self.get_mut(e.instrument).is_some_and(|p| p.on_event(e))
    }
}
