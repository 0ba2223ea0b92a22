//! Order flow per symbol: aggressor imbalance, per-timeframe imbalance, rolling CVD, large
//! trades and exhaustion, updated in O(1) amortised per trade with fixed memory.
//!
//! Why this shape: the strategy's Level 3 cascade (`i1 > i5 > i15`) and the order-flow analyzer
//! of the seed need several rolling windows over the same trades, evaluated on every trade, on a
//! pinned thread that must not allocate. All windows therefore share **one ring of time
//! buckets** (default 100 ms). A trade is added to the newest bucket and to every window's
//! running sums; when event time moves on, each window walks its own tail forward and subtracts
//! the buckets that left it. Every bucket is added once and evicted once per window, so the
//! work is O(1) amortised per trade, independent of how long the windows are.
//!
//! **Window semantics (exact, bucket-aligned).** Time is `stamps.venue_ns` (the trade time `T`),
//! never the wall clock. With bucket width `b` and a window of `W = N * b`, the window at the
//! current bucket `k = floor(t / b)` holds exactly the trades of buckets `k - N + 1 ..= k`, i.e.
//! event times in `[(k - N + 1) * b, (k + 1) * b)`: between `W - b` and `W` of history. This is
//! exact (integer sums equal a from-scratch recomputation over those trades) because every
//! window length must be a multiple of the bucket; the price of the fixed memory is only this
//! up-to-one-bucket blur of the window's far edge.
//!
//! **Bounded memory.** The ring holds `longest_window / bucket + 1` buckets of 40 bytes (9 001
//! for 15 min at 100 ms: 360 040 bytes per symbol, plus a 672-byte struct). A burst of any size inside one bucket aggregates into that bucket, so
//! no burst can exceed the capacity; the window sums are `i128` and per-bucket sums `i64`
//! mantissas (a trade that would overflow its bucket's `i64` is rejected and counted, which needs
//! more than 9.2e18 mantissa units in 100 ms).
//!
//! **Clock going backwards.** A trade whose time is earlier than the latest time seen (or 0) is
//! attributed to the current bucket (time is clamped to be monotone) and counted in
//! [`OrderFlowStats::late`]; windows never move backwards.
//!
//! **Imbalance ratio.** `buy_volume / sell_volume` of aggressor volume (Binance `m = true` is a
//! sell aggressor), as `f64` from the exact integer sums. Fewer than
//! [`OrderFlowConfig::min_trades`] trades in the window is "not enough data" (`None`). With no
//! sell volume the ratio is [`OrderFlowConfig::ratio_cap`] (default 100, i.e. "all buying"); the
//! ratio is capped there in general, so it is never NaN or infinite. No buy volume gives 0.

use crate::event::{Aggressor, MarketEvent, MarketKind};
use crate::fixed::{Price, Qty};
use crate::instrument::InstrumentId;

/// Nanoseconds per second.
pub const SECOND_NS: u64 = 1_000_000_000;

/// The rolling windows kept by [`OrderFlow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Window {
    /// The order-flow signal window (default 30 s).
    Signal = 0,
    /// The fastest cascade timeframe (default 1 min).
    Tf1 = 1,
    /// The middle cascade timeframe (default 5 min).
    Tf2 = 2,
    /// The longest cascade timeframe (default 15 min).
    Tf3 = 3,
    /// The CVD window (default 15 min).
    Cvd = 4,
    /// The window of the "average trade size / average volume" baselines (default 5 min).
    Average = 5,
}

/// Number of [`Window`]s.
pub const WINDOWS: usize = 6;

impl Window {
    /// Every window, in index order.
    pub const ALL: [Window; WINDOWS] = [
        Window::Signal,
        Window::Tf1,
        Window::Tf2,
        Window::Tf3,
        Window::Cvd,
        Window::Average,
    ];
}

/// Parameters of [`OrderFlow`] (every threshold of the seed is configurable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderFlowConfig {
    /// Time-bucket width in ns (default 100 ms). Every window must be a multiple of it.
    pub bucket_ns: u64,
    /// Window lengths in ns, indexed by [`Window`] (defaults 30 s, 1 m, 5 m, 15 m, 15 m, 5 m).
    pub windows_ns: [u64; WINDOWS],
    /// Minimum trades in a window for an imbalance (default 5); fewer is "not enough data".
    pub min_trades: u64,
    /// Upper cap of the buy/sell ratio, returned when sell volume is zero (default 100).
    pub ratio_cap: f64,
    /// A trade is large when its size exceeds this multiple of the average trade size in the
    /// [`Window::Average`] window before it (default 10).
    pub large_multiple: u32,
    /// Minimum trades in the average window before large-trade detection starts (default 5).
    pub large_min_trades: u64,
    /// Exhaustion when signal-window volume < `num / den` of the average window's volume
    /// scaled to the signal window's length (default 1/2).
    pub exhaustion_num: u32,
    /// See [`exhaustion_num`](Self::exhaustion_num).
    pub exhaustion_den: u32,
}

impl Default for OrderFlowConfig {
    fn default() -> Self {
        OrderFlowConfig {
            bucket_ns: SECOND_NS / 10,
            windows_ns: [
                30 * SECOND_NS,
                60 * SECOND_NS,
                300 * SECOND_NS,
                900 * SECOND_NS,
                900 * SECOND_NS,
                300 * SECOND_NS,
            ],
            min_trades: 5,
            ratio_cap: 100.0,
            large_multiple: 10,
            large_min_trades: 5,
            exhaustion_num: 1,
            exhaustion_den: 2,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The bucket width is zero.
    #[error("bucket width must be positive")]
    ZeroBucket,
    /// A window is zero or not a multiple of the bucket width.
    #[error("window {0} must be a positive multiple of the bucket width")]
    BadWindow(usize),
    /// The ratio cap is not a finite number >= 1.
    #[error("ratio cap must be finite and >= 1")]
    BadRatioCap,
    /// A fraction has a zero denominator.
    #[error("zero denominator")]
    ZeroDenominator,
    /// The ring would be unreasonably large (more than 2^24 buckets).
    #[error("window / bucket exceeds 2^24 buckets")]
    TooManyBuckets,
}

impl OrderFlowConfig {
    /// Check the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bucket_ns == 0 {
            return Err(ConfigError::ZeroBucket);
        }
        for (i, &w) in self.windows_ns.iter().enumerate() {
            if w == 0 || w % self.bucket_ns != 0 {
                return Err(ConfigError::BadWindow(i));
            }
            if w / self.bucket_ns > 1 << 24 {
                return Err(ConfigError::TooManyBuckets);
            }
        }
        if !(self.ratio_cap.is_finite() && self.ratio_cap >= 1.0) {
            return Err(ConfigError::BadRatioCap);
        }
        if self.exhaustion_den == 0 {
            return Err(ConfigError::ZeroDenominator);
        }
        Ok(())
    }

    /// Buckets in window `w`.
    #[inline]
    fn buckets(&self, w: usize) -> u64 {
        self.windows_ns[w] / self.bucket_ns
    }
}

/// One time bucket of aggressor volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    id: u64,
    buy: i64,
    sell: i64,
    buy_n: u32,
    sell_n: u32,
    large_n: u32,
}

/// Sums over one window: exact integers (quantity mantissas at the instrument's scale).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Buy-aggressor volume.
    pub buy_qty: i128,
    /// Sell-aggressor volume.
    pub sell_qty: i128,
    /// Buy-aggressor trades.
    pub buy_trades: u64,
    /// Sell-aggressor trades.
    pub sell_trades: u64,
    /// Large trades (see [`OrderFlowConfig::large_multiple`]).
    pub large_trades: u64,
}

impl WindowStats {
    /// Trades of both sides.
    #[inline]
    pub const fn trades(&self) -> u64 {
        self.buy_trades + self.sell_trades
    }

    /// Volume of both sides.
    #[inline]
    pub const fn volume(&self) -> i128 {
        self.buy_qty + self.sell_qty
    }

    /// Volume delta (buy minus sell).
    #[inline]
    pub const fn delta(&self) -> i128 {
        self.buy_qty - self.sell_qty
    }

    /// The buy/sell ratio with the documented conventions: `None` below `min_trades` trades or
    /// with no volume at all; `cap` when sell volume is zero; capped at `cap` otherwise.
    pub fn ratio(&self, min_trades: u64, cap: f64) -> Option<f64> {
        if self.trades() < min_trades || self.volume() <= 0 {
            return None;
        }
        if self.sell_qty == 0 {
            return Some(cap);
        }
        let r = self.buy_qty as f64 / self.sell_qty as f64;
        Some(if r > cap { cap } else { r })
    }

    #[inline]
    fn add(&mut self, b: &Bucket) {
        self.buy_qty += i128::from(b.buy);
        self.sell_qty += i128::from(b.sell);
        self.buy_trades += u64::from(b.buy_n);
        self.sell_trades += u64::from(b.sell_n);
        self.large_trades += u64::from(b.large_n);
    }

    #[inline]
    fn sub(&mut self, b: &Bucket) {
        self.buy_qty -= i128::from(b.buy);
        self.sell_qty -= i128::from(b.sell);
        self.buy_trades -= u64::from(b.buy_n);
        self.sell_trades -= u64::from(b.sell_n);
        self.large_trades -= u64::from(b.large_n);
    }
}

/// Counters of what [`OrderFlow`] did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderFlowStats {
    /// Trades added.
    pub trades: u64,
    /// Trades with a time earlier than the latest seen (or 0), clamped to the current bucket.
    pub late: u64,
    /// Trades ignored: quantity <= 0, unknown aggressor, or bucket overflow.
    pub rejected: u64,
    /// Large trades seen.
    pub large: u64,
}

/// What happened to one trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeOutcome {
    /// Added to the windows.
    Added {
        /// The trade exceeded `large_multiple` times the average trade size.
        large: bool,
        /// Its time was behind the latest time seen and it was clamped.
        late: bool,
    },
    /// Not added (see [`OrderFlowStats::rejected`]).
    Rejected,
}

/// The most recent large trade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LargeTrade {
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Event time (after clamping).
    pub time_ns: u64,
    /// `true` for a buy aggressor.
    pub buy: bool,
}

/// Rolling order flow of one symbol. Allocates its ring once in [`OrderFlow::new`]; never
/// afterwards.
#[derive(Debug, Clone)]
pub struct OrderFlow {
    cfg: OrderFlowConfig,
    /// Ring of non-empty buckets, oldest first; slot of sequence number `s` is `s % cap`.
    ring: Box<[Bucket]>,
    /// Sequence number of the next bucket to push.
    head: u64,
    /// Per window: sequence number of its oldest bucket, and its sums.
    tails: [u64; WINDOWS],
    sums: [WindowStats; WINDOWS],
    /// Latest event time seen (monotone), and its bucket.
    now_ns: u64,
    now_bucket: u64,
    first_ns: Option<u64>,
    cvd_total: i128,
    last_large: Option<LargeTrade>,
    stats: OrderFlowStats,
}

impl OrderFlow {
    /// A tracker with its ring preallocated for the longest window.
    pub fn new(cfg: OrderFlowConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let longest = (0..WINDOWS).map(|w| cfg.buckets(w)).max().unwrap_or(1);
        let cap = usize::try_from(longest + 1).map_err(|_| ConfigError::TooManyBuckets)?;
        Ok(OrderFlow {
            cfg,
            ring: vec![Bucket::default(); cap].into_boxed_slice(),
            head: 0,
            tails: [0; WINDOWS],
            sums: [WindowStats::default(); WINDOWS],
            now_ns: 0,
            now_bucket: 0,
            first_ns: None,
            cvd_total: 0,
            last_large: None,
            stats: OrderFlowStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OrderFlowConfig {
        &self.cfg
    }

    /// Heap bytes held (the bucket ring).
    pub fn heap_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.ring)
    }

    /// Feed a market event: trades (`Trade` or `AggTrade`; subscribe to one of the two, not
    /// both) are added, everything else is ignored (`None`).
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent) -> Option<TradeOutcome> {
        match e.kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                Some(self.on_trade(e.stamps.venue_ns, e.price, e.qty, e.aggressor))
            }
            _ => None,
        }
    }

    /// Add one trade at event time `t_ns`.
    pub fn on_trade(
        &mut self,
        t_ns: u64,
        price: Price,
        qty: Qty,
        aggressor: Aggressor,
    ) -> TradeOutcome {
        let buy = match aggressor {
            Aggressor::Buy => true,
            Aggressor::Sell => false,
            Aggressor::Unknown => {
                self.stats.rejected += 1;
                return TradeOutcome::Rejected;
            }
        };
        if qty.0 <= 0 {
            self.stats.rejected += 1;
            return TradeOutcome::Rejected;
        }
        let late = self.first_ns.is_some() && t_ns < self.now_ns;
        let t = if self.first_ns.is_none() || !late {
            t_ns
        } else {
            self.now_ns
        };
        self.advance(t);
        if self.first_ns.is_none() {
            self.first_ns = Some(t);
        }
        // Large-trade test against the average window *before* this trade:
        // qty > multiple * sum / n  <=>  qty * n > multiple * sum.
        let avg = &self.sums[Window::Average as usize];
        let n = avg.trades();
        let large = n >= self.cfg.large_min_trades.max(1)
            && i128::from(qty.0) * i128::from(n)
                > i128::from(self.cfg.large_multiple) * avg.volume();
        // Newest bucket (push one if needed).
        let slot = self.bucket_slot_for_current();
        let b = &mut self.ring[slot];
        let sum = if buy { b.buy } else { b.sell };
        let Some(new_sum) = sum.checked_add(qty.0) else {
            self.stats.rejected += 1;
            return TradeOutcome::Rejected;
        };
        let delta = Bucket {
            id: b.id,
            buy: if buy { qty.0 } else { 0 },
            sell: if buy { 0 } else { qty.0 },
            buy_n: u32::from(buy),
            sell_n: u32::from(!buy),
            large_n: u32::from(large),
        };
        if buy {
            b.buy = new_sum;
        } else {
            b.sell = new_sum;
        }
        b.buy_n += delta.buy_n;
        b.sell_n += delta.sell_n;
        b.large_n += delta.large_n;
        for s in &mut self.sums {
            s.add(&delta);
        }
        self.cvd_total += i128::from(if buy { qty.0 } else { -qty.0 });
        self.stats.trades += 1;
        self.stats.late += u64::from(late);
        if large {
            self.stats.large += 1;
            self.last_large = Some(LargeTrade {
                price,
                qty,
                time_ns: t,
                buy,
            });
        }
        TradeOutcome::Added { large, late }
    }

    /// Add an aggregate of many trades at event time `t_ns`: `buy`/`sell` aggressor volume and
    /// `buy_n`/`sell_n` trades, as a candle's taker-buy split gives them (the strategy's warm-up
    /// from REST klines). Lands in the bucket of `t_ns` like a trade would; no large-trade test
    /// (an aggregate is not one trade). An aggregate earlier than the latest time, or with a
    /// negative or overflowing volume, is rejected and counted.
    pub fn on_aggregate(
        &mut self,
        t_ns: u64,
        buy: Qty,
        sell: Qty,
        buy_n: u32,
        sell_n: u32,
    ) -> bool {
        if buy.0 < 0 || sell.0 < 0 || (self.first_ns.is_some() && t_ns < self.now_ns) {
            self.stats.rejected += 1;
            return false;
        }
        self.advance(t_ns);
        if self.first_ns.is_none() {
            self.first_ns = Some(t_ns);
        }
        let slot = self.bucket_slot_for_current();
        let b = &mut self.ring[slot];
        let (Some(nb), Some(ns)) = (b.buy.checked_add(buy.0), b.sell.checked_add(sell.0)) else {
            self.stats.rejected += 1;
            return false;
        };
        let delta = Bucket {
            id: b.id,
            buy: buy.0,
            sell: sell.0,
            buy_n,
            sell_n,
            large_n: 0,
        };
        b.buy = nb;
        b.sell = ns;
        b.buy_n = b.buy_n.saturating_add(buy_n);
        b.sell_n = b.sell_n.saturating_add(sell_n);
        for s in &mut self.sums {
            s.add(&delta);
        }
        self.cvd_total += i128::from(buy.0) - i128::from(sell.0);
        true
    }

    /// Move event time forward to `t_ns` (evicting what left the windows) without a trade,
    /// e.g. on another event of the symbol. Earlier times are ignored.
    pub fn advance_to(&mut self, t_ns: u64) {
        if self.first_ns.is_some() && t_ns > self.now_ns {
            self.advance(t_ns);
        }
    }

    /// Set the clock to `t` (>= now) and evict buckets that left each window.
    #[inline]
    fn advance(&mut self, t: u64) {
        self.now_ns = t;
        self.now_bucket = t / self.cfg.bucket_ns;
        let cap = self.ring.len() as u64;
        for w in 0..WINDOWS {
            let n = self.cfg.buckets(w);
            // Oldest bucket id still inside: now_bucket - n + 1.
            let min_id = (self.now_bucket + 1).saturating_sub(n);
            while self.tails[w] < self.head {
                let b = self.ring[(self.tails[w] % cap) as usize];
                if b.id >= min_id {
                    break;
                }
                self.sums[w].sub(&b);
                self.tails[w] += 1;
            }
        }
    }

    /// Ring slot of the bucket for `now_bucket`, pushing an empty one if the newest differs.
    #[inline]
    fn bucket_slot_for_current(&mut self) -> usize {
        let cap = self.ring.len() as u64;
        if self.head > 0 {
            let last = ((self.head - 1) % cap) as usize;
            // The newest bucket is inside every window (each holds at least one bucket).
            if self.ring[last].id == self.now_bucket {
                return last;
            }
        }
        // The longest window's tail bounds the live buckets to `cap - 1`, so this never
        // overwrites a live bucket.
        debug_assert!(self.tails.iter().all(|&t| self.head - t < cap));
        let slot = (self.head % cap) as usize;
        self.ring[slot] = Bucket {
            id: self.now_bucket,
            ..Bucket::default()
        };
        self.head += 1;
        slot
    }

    /// Latest event time seen (ns), 0 before the first trade.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Sums of window `w` at the current time.
    #[inline]
    pub fn window(&self, w: Window) -> WindowStats {
        self.sums[w as usize]
    }

    /// Buy/sell imbalance of window `w` (`None`: not enough data; see the module docs).
    #[inline]
    pub fn imbalance(&self, w: Window) -> Option<f64> {
        self.sums[w as usize].ratio(self.cfg.min_trades, self.cfg.ratio_cap)
    }

    /// The imbalances of the three cascade timeframes `[Tf1, Tf2, Tf3]` (1m, 5m, 15m); the
    /// Level 3 cascade compares `i1 > i5 > i15`.
    #[inline]
    pub fn cascade(&self) -> [Option<f64>; 3] {
        [
            self.imbalance(Window::Tf1),
            self.imbalance(Window::Tf2),
            self.imbalance(Window::Tf3),
        ]
    }

    /// Rolling cumulative volume delta over the [`Window::Cvd`] window (mantissa units).
    #[inline]
    pub fn cvd(&self) -> i128 {
        self.sums[Window::Cvd as usize].delta()
    }

    /// Volume delta since the first trade.
    #[inline]
    pub fn cvd_total(&self) -> i128 {
        self.cvd_total
    }

    /// The most recent large trade, if any.
    #[inline]
    pub fn last_large(&self) -> Option<LargeTrade> {
        self.last_large
    }

    /// Signal-window volume relative to the average window's volume scaled to the signal
    /// window's length (1.0 = average pace). `None` until the average window has a full length
    /// of history (first trade at least that long ago) and `min_trades` trades, or when it holds
    /// no volume.
    pub fn pace(&self) -> Option<f64> {
        let (short, long) = self.pace_parts()?;
        let s = &self.cfg;
        // (short / Ws) / (long / Wl)
        Some(
            (short as f64 * s.windows_ns[Window::Average as usize] as f64)
                / (long as f64 * s.windows_ns[Window::Signal as usize] as f64),
        )
    }

    fn pace_parts(&self) -> Option<(i128, i128)> {
        let first = self.first_ns?;
        let avg = &self.sums[Window::Average as usize];
        if self.now_ns - first < self.cfg.windows_ns[Window::Average as usize]
            || avg.trades() < self.cfg.min_trades
            || avg.volume() <= 0
        {
            return None;
        }
        Some((self.sums[Window::Signal as usize].volume(), avg.volume()))
    }

    /// Exhaustion: aggressive volume in the signal window below `exhaustion_num /
    /// exhaustion_den` of the average window's volume scaled to the signal window's length
    /// (exact integer comparison). `None` when [`pace`](Self::pace) is `None`.
    pub fn exhausted(&self) -> Option<bool> {
        let (short, long) = self.pace_parts()?;
        let s = &self.cfg;
        let ws = i128::from(s.windows_ns[Window::Signal as usize]);
        let wl = i128::from(s.windows_ns[Window::Average as usize]);
        // short / ws < num/den * long / wl  <=>  short * wl * den < num * long * ws
        Some(short * wl * i128::from(s.exhaustion_den) < i128::from(s.exhaustion_num) * long * ws)
    }

    /// Input counters.
    #[inline]
    pub fn stats(&self) -> OrderFlowStats {
        self.stats
    }
}

/// Per-instrument state, indexed by dense [`InstrumentId`]; every slot is built up front so the
/// hot path never allocates.
#[derive(Debug, Clone)]
pub struct PerInstrument<T> {
    slots: Box<[T]>,
}

impl<T> PerInstrument<T> {
    /// `n` slots built by `make`.
    pub fn new(n: usize, make: impl FnMut(usize) -> T) -> Self {
        PerInstrument {
            slots: (0..n).map(make).collect(),
        }
    }

    /// The state of `id` (`None` for an id beyond the table, or [`InstrumentId::NONE`]).
    #[inline]
    pub fn get(&self, id: InstrumentId) -> Option<&T> {
        self.slots.get(id.index())
    }

    /// Mutable state of `id`.
    #[inline]
    pub fn get_mut(&mut self, id: InstrumentId) -> Option<&mut T> {
        self.slots.get_mut(id.index())
    }

    /// Number of slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True with no slots.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl PerInstrument<OrderFlow> {
    /// Route a market event to its instrument's tracker.
    #[inline]
    pub fn on_event(&mut self, e: &MarketEvent) -> Option<TradeOutcome> {
        self.get_mut(e.instrument)?.on_event(e)
    }
}
