//! Candles (1m / 5m / 15m) built from trades, or from forex quotes, in **event time**.
//!
//! Why here and not from the venue's kline stream: the strategy needs buy/sell aggressor volume
//! per candle (the seed's order-flow levels), the same candles on venues that publish no klines
//! (forex), and candle closes that a replay reproduces bit for bit. So candles are aggregated
//! from the ticks the strategy already receives, and every decision about time uses the
//! event's venue timestamp (`stamps.venue_ns`), never the wall clock.
//!
//! Rules, all deterministic:
//!
//! * **Buckets** are aligned to the Unix epoch: a candle of timeframe `T` covers
//!   `[k*T, (k+1)*T)`. A tick at exactly `hh:mm:00.000` opens the new candle.
//! * **Close**: a candle is closed, and reported, when the first tick of a *later* bucket
//!   arrives, or when the caller advances event time past its end with
//!   [`CandleBuilder::advance_to`] (optional, same clock as the ticks). No wall-clock timer
//!   closes it; until then a strategy can read the open candle with
//!   [`CandleBuilder::current`].
//! * **Gaps** produce no candles: a minute without ticks has no candle, and the next candle
//!   simply follows the previous one (indicators treat the series as consecutive). Inventing
//!   flat zero-volume candles would distort ATR, ADX and the volume averages.
//! * **Clock going backwards**: a tick whose time falls in a bucket *earlier* than the open
//!   candle, or in a bucket already closed (venue clock step, out-of-order delivery), is
//!   **applied to the earliest candle not yet closed and counted** in [`Candle::late_ticks`]
//!   and [`BuilderCounters::late`]: normally the open candle; if none is open (after
//!   [`CandleBuilder::advance_to`] closed it), a new candle opened at the end of the last closed
//!   bucket. Its price and volume are real market activity, so the order-flow totals stay
//!   complete, but a closed candle is never reopened or rewritten. A tick with no timestamp (`venue_ns == 0`) is dropped and counted
//!   in [`BuilderCounters::untimed`].
//! * **Trades** ([`MarketKind::Trade`] and [`MarketKind::AggTrade`]; a feed subscribes to one of
//!   the two) give price, volume, and buy/sell volume and counts from the venue's aggressor
//!   flag; trades with an unknown aggressor count in `volume`/`ticks` only.
//! * **Quotes** ([`MarketKind::Quote`], forex venues without trade prints) give the **mid
//!   price** and **tick volume** (one unit per quote, quantity scale 0). The mid
//!   `(bid + ask) / 2` is kept exact by using one more decimal than the instrument's price
//!   scale (mantissa `(bid + ask) * 5`), so a quote candle's [`Candle::price_scale`] is the
//!   instrument's plus one (at the maximum scale 18 the mid is rounded down instead). Each quote
//!   is classified by the **tick rule**: a higher mid than the previous quote is a buy, a lower
//!   one a sell, an unchanged mid repeats the previous classification; the very first quote is
//!   unclassified. This way the same order-flow analytics run on FX.
//!
//! Everything is fixed-size and `Copy`; no method allocates.

use crate::event::{Aggressor, MarketEvent, MarketKind};
use crate::fixed::{Price, Qty, MAX_SCALE};

/// Nanoseconds per second.
const NS_PER_SEC: u64 = 1_000_000_000;

/// A candle timeframe of the strategy (`"1m"`, `"5m"`, `"15m"` in configuration files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub enum Timeframe {
    /// One minute (level 3 cascade, level 4 trigger).
    #[serde(rename = "1m")]
    M1 = 0,
    /// Five minutes (level 3 cascade).
    #[serde(rename = "5m")]
    M5 = 1,
    /// Fifteen minutes (level 1 regime, level 2 zones, level 3 cascade).
    #[serde(rename = "15m")]
    M15 = 2,
}

impl Timeframe {
    /// All timeframes, shortest first; `ALL[tf.index()] == tf`.
    pub const ALL: [Timeframe; 3] = [Timeframe::M1, Timeframe::M5, Timeframe::M15];

    /// Length in seconds.
    #[inline]
    pub const fn secs(self) -> u32 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 300,
            Timeframe::M15 => 900,
        }
    }

    /// Length in nanoseconds.
    #[inline]
    pub const fn ns(self) -> u64 {
        self.secs() as u64 * NS_PER_SEC
    }

    /// The timeframe `secs` long, if it is one of [`Timeframe::ALL`].
    #[inline]
    pub const fn from_secs(secs: u32) -> Option<Timeframe> {
        match secs {
            60 => Some(Timeframe::M1),
            300 => Some(Timeframe::M5),
            900 => Some(Timeframe::M15),
            _ => None,
        }
    }

    /// Index into per-timeframe arrays (0, 1, 2).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// `"1m"`, `"5m"`, `"15m"`.
    pub const fn name(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
        }
    }
}

/// What a symbol's candles are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandleSource {
    /// Trade prints (`Trade` and `AggTrade` events); other kinds are ignored.
    Trades,
    /// Forex quotes (`Quote` events): mid price, tick volume, tick-rule sides; other kinds are
    /// ignored.
    QuoteMid,
}

/// One price observation after normalisation: a trade, or a quote's mid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Event time, ns since the epoch (the event's `stamps.venue_ns`).
    pub ns: u64,
    /// Price mantissa at `price_scale`.
    pub price: Price,
    /// Volume mantissa at `qty_scale` (1 at scale 0 for a quote).
    pub qty: Qty,
    /// Aggressor side (venue flag for trades, tick rule for quotes).
    pub side: Aggressor,
    /// Scale of `price`.
    pub price_scale: u8,
    /// Scale of `qty`.
    pub qty_scale: u8,
}

/// Turns market events into [`Tick`]s for one symbol (owns the tick-rule state for quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickClassifier {
    source: CandleSource,
    last_mid: Option<Price>,
    last_side: Aggressor,
    ignored: u64,
    invalid: u64,
}

impl TickClassifier {
    /// A classifier for `source`.
    pub const fn new(source: CandleSource) -> Self {
        TickClassifier {
            source,
            last_mid: None,
            last_side: Aggressor::Unknown,
            ignored: 0,
            invalid: 0,
        }
    }

    /// The source this classifier accepts.
    pub const fn source(&self) -> CandleSource {
        self.source
    }

    /// Events of a kind the source does not use (book tickers, depth, klines...).
    pub const fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Quotes without a usable mid (a side zero or negative, or the sum overflowing).
    pub const fn invalid(&self) -> u64 {
        self.invalid
    }

    /// The tick of `e`, or `None` if `e` does not feed candles.
    #[inline]
    pub fn classify(&mut self, e: &MarketEvent) -> Option<Tick> {
        match (self.source, e.kind) {
            (CandleSource::Trades, MarketKind::Trade | MarketKind::AggTrade) => Some(Tick {
                ns: e.stamps.venue_ns,
                price: e.price,
                qty: e.qty,
                side: e.aggressor,
                price_scale: e.price_scale,
                qty_scale: e.qty_scale,
            }),
            (CandleSource::QuoteMid, MarketKind::Quote) => {
                let (Some(mid), scale) = Self::mid(e) else {
                    self.invalid += 1;
                    return None;
                };
                let side = match self.last_mid {
                    Some(prev) if mid > prev => Aggressor::Buy,
                    Some(prev) if mid < prev => Aggressor::Sell,
                    Some(_) => self.last_side,
                    None => Aggressor::Unknown,
                };
                self.last_mid = Some(mid);
                self.last_side = side;
                Some(Tick {
                    ns: e.stamps.venue_ns,
                    price: mid,
                    qty: Qty(1),
                    side,
                    price_scale: scale,
                    qty_scale: 0,
                })
            }
            _ => {
                self.ignored += 1;
                None
            }
        }
    }

    /// The exact mid of a quote and its scale (see the module documentation).
    #[inline]
    fn mid(e: &MarketEvent) -> (Option<Price>, u8) {
        let (b, a) = (e.bid_px.0, e.ask_px.0);
        if b <= 0 || a <= 0 {
            return (None, e.price_scale);
        }
        let sum = b.checked_add(a);
        if e.price_scale < MAX_SCALE {
            (
                sum.and_then(|s| s.checked_mul(5)).map(Price),
                e.price_scale + 1,
            )
        } else {
            (sum.map(|s| Price(s / 2)), e.price_scale)
        }
    }
}

/// An OHLCV candle with order-flow volumes. `Copy`, fixed-size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Candle {
    /// Bucket start, ns since the epoch (a multiple of the interval).
    pub open_time_ns: u64,
    /// Time of the first tick applied, ns.
    pub first_tick_ns: u64,
    /// Latest tick time seen while the candle was open, ns.
    pub last_tick_ns: u64,
    /// Open (first tick's price), mantissa at `price_scale`.
    pub open: Price,
    /// Highest price.
    pub high: Price,
    /// Lowest price.
    pub low: Price,
    /// Close (last applied tick's price, in arrival order).
    pub close: Price,
    /// Total volume at `qty_scale` (quote candles: number of quotes). Saturating.
    pub volume: Qty,
    /// Buy-aggressor volume. Saturating.
    pub buy_volume: Qty,
    /// Sell-aggressor volume. Saturating.
    pub sell_volume: Qty,
    /// Number of ticks (trades or quotes).
    pub ticks: u32,
    /// Ticks with a buy aggressor.
    pub buy_ticks: u32,
    /// Ticks with a sell aggressor.
    pub sell_ticks: u32,
    /// Ticks whose time fell in an earlier bucket (clock backwards), applied here anyway.
    pub late_ticks: u32,
    /// Interval in seconds.
    pub interval_secs: u32,
    /// Scale of the prices.
    pub price_scale: u8,
    /// Scale of the volumes.
    pub qty_scale: u8,
}

impl Candle {
    /// The candle of a venue kline (REST history): taker-buy volume is the buy side, the rest
    /// the sell side; the kline's trade count is split between them in proportion to volume
    /// (the venue gives no split). `None` when the kline is not one of [`Timeframe::ALL`].
    pub fn from_kline(k: &crate::event::Kline, price_scale: u8, qty_scale: u8) -> Option<Candle> {
        let tf = Timeframe::from_secs(k.interval_secs)?;
        let buy = k.taker_buy_volume.0.clamp(0, k.volume.0.max(0));
        let sell = k.volume.0.max(0) - buy;
        let ticks = u32::try_from(k.trades).unwrap_or(u32::MAX);
        let buy_ticks = if k.volume.0 > 0 {
            (u128::from(ticks) * buy as u128 / k.volume.0 as u128) as u32
        } else {
            0
        };
        Some(Candle {
            open_time_ns: k.open_time_ns,
            first_tick_ns: k.open_time_ns,
            last_tick_ns: k.close_time_ns,
            open: k.open,
            high: k.high,
            low: k.low,
            close: k.close,
            volume: Qty(k.volume.0.max(0)),
            buy_volume: Qty(buy),
            sell_volume: Qty(sell),
            ticks,
            buy_ticks,
            sell_ticks: ticks - buy_ticks,
            late_ticks: 0,
            interval_secs: tf.secs(),
            price_scale,
            qty_scale,
        })
    }

    /// A candle opened by `t` in the bucket starting at `open_time_ns`.
    #[inline]
    fn open_with(t: &Tick, open_time_ns: u64, interval_secs: u32) -> Self {
        let mut c = Candle {
            open_time_ns,
            first_tick_ns: t.ns,
            last_tick_ns: t.ns,
            open: t.price,
            high: t.price,
            low: t.price,
            close: t.price,
            interval_secs,
            price_scale: t.price_scale,
            qty_scale: t.qty_scale,
            ..Candle::default()
        };
        c.add_volume(t);
        c
    }

    /// Apply a tick of this candle's bucket (or a late one).
    #[inline]
    fn apply(&mut self, t: &Tick) {
        if t.price > self.high {
            self.high = t.price;
        }
        if t.price < self.low {
            self.low = t.price;
        }
        self.close = t.price;
        if t.ns > self.last_tick_ns {
            self.last_tick_ns = t.ns;
        }
        self.add_volume(t);
    }

    #[inline]
    fn add_volume(&mut self, t: &Tick) {
        self.volume = Qty(self.volume.0.saturating_add(t.qty.0));
        self.ticks = self.ticks.saturating_add(1);
        match t.side {
            Aggressor::Buy => {
                self.buy_volume = Qty(self.buy_volume.0.saturating_add(t.qty.0));
                self.buy_ticks = self.buy_ticks.saturating_add(1);
            }
            Aggressor::Sell => {
                self.sell_volume = Qty(self.sell_volume.0.saturating_add(t.qty.0));
                self.sell_ticks = self.sell_ticks.saturating_add(1);
            }
            Aggressor::Unknown => {}
        }
    }

    /// End of the bucket (exclusive), ns.
    #[inline]
    pub const fn close_time_ns(&self) -> u64 {
        self.open_time_ns + self.interval_secs as u64 * NS_PER_SEC
    }

    /// Open as `f64` (statistics only).
    #[inline]
    pub fn open_f64(&self) -> f64 {
        self.open.to_f64(self.price_scale)
    }

    /// High as `f64`.
    #[inline]
    pub fn high_f64(&self) -> f64 {
        self.high.to_f64(self.price_scale)
    }

    /// Low as `f64`.
    #[inline]
    pub fn low_f64(&self) -> f64 {
        self.low.to_f64(self.price_scale)
    }

    /// Close as `f64`.
    #[inline]
    pub fn close_f64(&self) -> f64 {
        self.close.to_f64(self.price_scale)
    }
}

/// Counters of ticks a [`CandleBuilder`] treated specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuilderCounters {
    /// Ticks applied to the open candle although their time was in an earlier bucket.
    pub late: u64,
    /// Ticks dropped because they had no timestamp.
    pub untimed: u64,
    /// Candles closed.
    pub closed: u64,
}

/// Builds the candles of one timeframe from ticks (see the module documentation for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandleBuilder {
    tf: Timeframe,
    current: Option<Candle>,
    closed_until_ns: u64,
    counters: BuilderCounters,
}

impl CandleBuilder {
    /// An empty builder.
    pub const fn new(tf: Timeframe) -> Self {
        CandleBuilder {
            tf,
            current: None,
            closed_until_ns: 0,
            counters: BuilderCounters {
                late: 0,
                untimed: 0,
                closed: 0,
            },
        }
    }

    /// The timeframe.
    pub const fn timeframe(&self) -> Timeframe {
        self.tf
    }

    /// The open (not yet closed) candle, if any tick arrived.
    pub const fn current(&self) -> Option<&Candle> {
        self.current.as_ref()
    }

    /// Counters.
    pub const fn counters(&self) -> BuilderCounters {
        self.counters
    }

    /// Apply a tick; returns the candle it closed, if it opened a later bucket.
    #[inline]
    pub fn on_tick(&mut self, t: &Tick) -> Option<Candle> {
        if t.ns == 0 {
            self.counters.untimed += 1;
            return None;
        }
        let len = self.tf.ns();
        // Fast path without a division: the tick is in the open candle's bucket.
        if let Some(c) = &mut self.current {
            if t.ns >= c.open_time_ns && t.ns - c.open_time_ns < len {
                c.apply(t);
                return None;
            }
        }
        let bucket = t.ns - t.ns % len;
        match &mut self.current {
            None if bucket < self.closed_until_ns => {
                // Late, and its bucket is closed: the earliest bucket not yet closed takes it.
                let mut c = Candle::open_with(t, self.closed_until_ns, self.tf.secs());
                c.late_ticks = 1;
                self.counters.late += 1;
                self.current = Some(c);
                None
            }
            None => {
                self.current = Some(Candle::open_with(t, bucket, self.tf.secs()));
                None
            }
            Some(c) if bucket < c.open_time_ns => {
                c.apply(t);
                c.late_ticks = c.late_ticks.saturating_add(1);
                self.counters.late += 1;
                None
            }
            Some(c) => {
                // A later bucket (the same bucket took the fast path above).
                let closed = *c;
                *c = Candle::open_with(t, bucket, self.tf.secs());
                self.closed_until_ns = closed.close_time_ns();
                self.counters.closed += 1;
                Some(closed)
            }
        }
    }

    /// Close the open candle if event time `now_ns` has reached the end of its bucket, without
    /// waiting for the next tick. Optional: for a caller that sees other events of the symbol
    /// (a heartbeat, a book update) on **the same clock** as the ticks and wants prompt closes
    /// in quiet markets. A tick that arrives later for the closed bucket is late (see the
    /// module documentation) and goes to the next candle.
    #[inline]
    pub fn advance_to(&mut self, now_ns: u64) -> Option<Candle> {
        match self.current {
            Some(c) if now_ns >= c.close_time_ns() => {
                self.current = None;
                self.closed_until_ns = c.close_time_ns();
                self.counters.closed += 1;
                Some(c)
            }
            _ => None,
        }
    }

    /// End of the last closed candle's bucket, ns (0 before the first close): buckets before it
    /// are never reopened.
    pub const fn closed_until_ns(&self) -> u64 {
        self.closed_until_ns
    }
}
