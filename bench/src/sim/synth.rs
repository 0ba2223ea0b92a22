//! The synthetic market: a deterministic generator of Binance spot market data.
//!
//! Why: backtests, CI and the embedded default venue need a market without a capture, and the
//! engine's 4-level strategy must meet every branch of its decision tree there: a 15m regime
//! that trends up, trends down or ranges (ADX/Hurst), pullbacks into zones, one-sided bursts of
//! aggressive flow that tilt the 1m/5m/15m aggressor imbalance cascade, and volume spikes for
//! the 1m trigger. Everything derives from one seed (same seed, same bytes), and events carry
//! simulated time, so hours of market are generated in seconds.
//!
//! How: time advances in 100 ms steps. Each symbol has a regime (up, down, range; 40-120
//! minutes each, never the same twice in a row) that sets the drift of its mid price (trends
//! about ±2.5 %/hour with periodic counter-trend pullbacks; ranges mean-revert to an anchor),
//! plus noise. Trades arrive at a Poisson rate and hit the best bid or lift the best ask with a
//! buy probability tilted by the regime; a burst (every ~15 minutes on average, 20-90 s) raises
//! the rate 4x, the size 3x and makes ~88 % of the aggressors one-sided. At the end of each step
//! the book (the best level plus 19 levels on a grid per side, sizes from a hash of price and a
//! 5-second epoch so unchanged levels keep their size) is diffed against the last one sent:
//! a `depthUpdate` carries the changes and a `bookTicker` the new top when it moved. The frames
//! are exactly Binance's JSON shapes, wrapped as combined-stream messages.
//!
//! History: [`Generator::with_history`] starts the same market earlier and runs the part before
//! the tape through a trades-only path ([`Generator::play_history`]: the same RNG draws, no book
//! and no JSON; 30 h of two symbols take a quarter of a second instead of 14 s at `opt-level`
//! 2), which the venue turns into REST klines. The tape then continues that market: same price
//! path, same regime.

use std::fmt::Write as _;

use super::market::{Event, TapeFrame};
use super::rest::{market_in, MarketType};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// RNG seed: the same seed gives byte-identical output.
    pub seed: u64,
    /// Symbols (of the simulator's markets: `BTCUSDT`, `ETHUSDT`).
    pub symbols: Vec<String>,
    /// Simulated duration, in milliseconds of market time.
    pub duration_ms: u64,
    /// Stop after this many frames, if given.
    pub max_events: Option<usize>,
    /// Market time of the first step, ms since the epoch (default 2024-08-08 00:00 UTC).
    pub start_ms: u64,
    /// Spot (the default) or USD-M: the market's ticks and steps, and USD-M's stream shapes
    /// (`@depth@0ms` with `T` and `pu`, `bookTicker` with `e`/`E`/`T`, trades with `X`).
    pub market_type: MarketType,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            duration_ms: 24 * 3600 * 1000,
            max_events: None,
            start_ms: 1_723_075_200_000,
            market_type: MarketType::Spot,
        }
    }
}

/// SplitMix64: tiny, fast, and fully determined by its seed.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }

    fn poisson(&mut self, lambda: f64) -> u32 {
        let l = (-lambda).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.f64();
            if p <= l || k > 64 {
                return k;
            }
            k += 1;
        }
    }
}

/// A market regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// Trending up.
    Up,
    /// Trending down.
    Down,
    /// Ranging around an anchor.
    Range,
}

/// Per-symbol generator state.
#[derive(Debug)]
struct Sym {
    symbol: &'static str,
    lower: String,
    rng: Rng,
    tick: i64,
    step: i64,
    grid: i64,
    base_qty: f64,
    mid: f64,
    anchor: f64,
    regime: Regime,
    regime_end: u64,
    pullback_until: u64,
    next_pullback: u64,
    burst_until: u64,
    burst_buy: bool,
    trade_id: u64,
    update_id: u64,
    /// The book last sent: (bids, asks), best first.
    sent_bids: Vec<(i64, i64)>,
    sent_asks: Vec<(i64, i64)>,
    sent_top: Option<(i64, i64, i64, i64)>,
    /// USD-M stream shapes.
    usdm: bool,
}

/// One trade of the generator's history (see [`Generator::with_history`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthTrade {
    /// Symbol (`BTCUSDT`).
    pub symbol: &'static str,
    /// Trade time, ms since the epoch.
    pub time_ms: u64,
    /// Price, scale 8.
    pub price: i64,
    /// Quantity, scale 8.
    pub qty: i64,
    /// The buyer was the maker (the aggressor sold), Binance's `m`.
    pub buyer_maker: bool,
}

/// The generator: an iterator of tape frames in market-time order.
#[derive(Debug)]
pub struct Generator {
    syms: Vec<Sym>,
    now_ms: u64,
    /// Where the tape (the frames) starts; before it, history (trades only).
    tape_start_ms: u64,
    end_ms: u64,
    max_events: Option<usize>,
    emitted: usize,
    pending: std::collections::VecDeque<TapeFrame>,
}

const STEP_MS: u64 = 100;
const LEVELS: usize = 20;

fn fmt8(out: &mut String, v: i64) {
    let _ = write!(out, "{}.{:08}", v / 100_000_000, v % 100_000_000);
}

impl Generator {
    /// A generator for `cfg`. Unknown symbols are skipped.
    pub fn new(cfg: &SynthConfig) -> Generator {
        let mut syms = Vec::new();
        for (i, s) in cfg.symbols.iter().enumerate() {
            let Some(m) = market_in(cfg.market_type, &s.to_ascii_uppercase()) else {
                continue;
            };
            let btc = m.base == "BTC";
            let mut rng = Rng(cfg.seed ^ (0xA076_1D64_78BD_642F_u64.wrapping_mul(i as u64 + 1)));
            let mid = if btc { 60_000.0 } else { 3_000.0 };
            let first = rng.range(40, 120) * 60_000;
            syms.push(Sym {
                symbol: m.symbol,
                lower: m.symbol.to_ascii_lowercase(),
                tick: m.tick,
                step: m.step,
                grid: if btc { 50 * m.tick } else { 5 * m.tick },
                base_qty: if btc { 0.02 } else { 0.3 },
                mid,
                anchor: mid,
                regime: [Regime::Up, Regime::Range, Regime::Down][(rng.next_u64() % 3) as usize],
                regime_end: cfg.start_ms + first,
                pullback_until: 0,
                next_pullback: cfg.start_ms + rng.range(15, 30) * 60_000,
                burst_until: 0,
                burst_buy: true,
                trade_id: 1_000_000,
                update_id: 5_000_000,
                sent_bids: Vec::new(),
                sent_asks: Vec::new(),
                sent_top: None,
                usdm: cfg.market_type == MarketType::UsdM,
                rng,
            });
        }
        Generator {
            syms,
            now_ms: cfg.start_ms,
            tape_start_ms: cfg.start_ms,
            end_ms: cfg.start_ms.saturating_add(cfg.duration_ms),
            max_events: cfg.max_events,
            emitted: 0,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// A generator whose market starts `history_ms` before `cfg.start_ms` while its tape still
    /// starts at `cfg.start_ms` and lasts `cfg.duration_ms`.
    ///
    /// Why: a live engine warms its 15m indicators up from a day of REST klines, so the venue
    /// needs a past that leads into the tape. Generating it with the same generator, as one
    /// continuous market, means the tape's first trade continues the history's last price and
    /// regime. The history is not frames: [`Generator::play_history`] runs it through the cheap
    /// trades-only path (no book, no JSON). Iterating without playing it first skips it.
    pub fn with_history(cfg: &SynthConfig, history_ms: u64) -> Generator {
        let early = SynthConfig {
            start_ms: cfg.start_ms.saturating_sub(history_ms),
            duration_ms: cfg.duration_ms.saturating_add(history_ms),
            ..cfg.clone()
        };
        let mut g = Generator::new(&early);
        g.tape_start_ms = cfg.start_ms;
        g
    }

    /// Run the history (everything before the tape's start) and hand its trades, in time order
    /// per symbol, to `sink`. Only trades before the tape's start are handed over; the book is
    /// not built (it costs more than everything else, and the first tape step publishes a whole
    /// book anyway, as the generator's first step always does). Does nothing once the tape has
    /// started.
    pub fn play_history(&mut self, mut sink: impl FnMut(SynthTrade)) {
        let until = self.tape_start_ms;
        while self.now_ms < until {
            let t0 = self.now_ms;
            for s in &mut self.syms {
                s.advance(t0);
                let symbol = s.symbol;
                s.draw_trades(t0, |time_ms, _, price, qty, buyer_maker| {
                    if time_ms < until {
                        sink(SynthTrade {
                            symbol,
                            time_ms,
                            price,
                            qty,
                            buyer_maker,
                        });
                    }
                });
            }
            self.now_ms = t0 + STEP_MS;
        }
    }

    /// The regime of each symbol now (for tests and the binary's banner).
    pub fn regimes(&self) -> Vec<(&'static str, Regime)> {
        self.syms.iter().map(|s| (s.symbol, s.regime)).collect()
    }

    fn step(&mut self) {
        let t0 = self.now_ms;
        let t1 = t0 + STEP_MS;
        let mut frames: Vec<(u64, usize, TapeFrame)> = Vec::new();
        for (k, s) in self.syms.iter_mut().enumerate() {
            s.advance(t0);
            for f in s.trades(t0) {
                frames.push((f.time_ns, k, f));
            }
            for f in s.book_frames(t1) {
                frames.push((f.time_ns, k, f));
            }
        }
        // Stable: per symbol the generation order is kept; symbols interleave by time.
        frames.sort_by_key(|(t, k, _)| (*t, *k));
        self.pending.extend(frames.into_iter().map(|(_, _, f)| f));
        self.now_ms = t1;
    }
}

impl Iterator for Generator {
    type Item = TapeFrame;

    fn next(&mut self) -> Option<TapeFrame> {
        if self.max_events.is_some_and(|m| self.emitted >= m) || self.syms.is_empty() {
            return None;
        }
        if self.now_ms < self.tape_start_ms {
            self.play_history(|_| {});
        }
        while self.pending.is_empty() {
            if self.now_ms >= self.end_ms {
                return None;
            }
            self.step();
        }
        self.emitted += 1;
        self.pending.pop_front()
    }
}

fn hash(a: u64, b: u64) -> u64 {
    Rng(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b).next_u64()
}

impl Sym {
    /// Regime, pullback and burst bookkeeping plus one step of the mid price.
    fn advance(&mut self, now: u64) {
        if now >= self.regime_end {
            let others: [Regime; 2] = match self.regime {
                Regime::Up => [Regime::Range, Regime::Down],
                Regime::Down => [Regime::Range, Regime::Up],
                Regime::Range => [Regime::Up, Regime::Down],
            };
            self.regime = others[(self.rng.next_u64() % 2) as usize];
            self.regime_end = now + self.rng.range(40, 120) * 60_000;
            self.anchor = self.mid;
        }
        if now >= self.next_pullback {
            self.pullback_until = now + self.rng.range(3, 9) * 60_000;
            self.next_pullback = self.pullback_until + self.rng.range(15, 35) * 60_000;
        }
        if now >= self.burst_until && self.rng.f64() < 1.0 / (15.0 * 600.0) {
            self.burst_until = now + self.rng.range(20, 90) * 1000;
            self.burst_buy = match self.regime {
                Regime::Up => self.rng.f64() < 0.8,
                Regime::Down => self.rng.f64() < 0.2,
                Regime::Range => self.rng.f64() < 0.5,
            };
        }
        // Per-step drift: 2.5 %/hour in a trend, against it at 60 % strength in a pullback.
        let per_step = 0.025 / 36_000.0;
        let pull = now < self.pullback_until;
        let drift = match self.regime {
            Regime::Up if pull => -0.6 * per_step,
            Regime::Up => per_step,
            Regime::Down if pull => 0.6 * per_step,
            Regime::Down => -per_step,
            Regime::Range => -0.002 * (self.mid - self.anchor) / self.anchor,
        };
        let vol = if matches!(self.regime, Regime::Range) {
            0.003
        } else {
            0.004
        } / (36_000f64).sqrt();
        self.mid *= 1.0 + drift + vol * self.rng.normal();
    }

    fn bursting(&self, now: u64) -> bool {
        now < self.burst_until
    }

    fn best(&self) -> (i64, i64) {
        let px = (self.mid * 1e8) as i64;
        let bid = px / self.tick * self.tick;
        (bid, bid + self.tick)
    }

    /// Draw the trades of one step at the current best prices, moving the mid by their impact,
    /// and hand each to `sink` as (time ms, trade id, price, qty, buyer is maker). Both the tape
    /// and the history go through here, so they consume the RNG identically and the history's
    /// prices run straight into the tape's.
    fn draw_trades(&mut self, t0: u64, mut sink: impl FnMut(u64, u64, i64, i64, bool)) {
        let burst = self.bursting(t0);
        let lambda = if burst { 1.6 } else { 0.4 };
        let n = self.rng.poisson(lambda) as usize;
        // `poisson` stops at 65: a fixed buffer keeps the history path free of allocation.
        let mut offsets = [0u64; 66];
        for o in offsets.iter_mut().take(n) {
            *o = self.rng.range(0, STEP_MS);
        }
        offsets[..n].sort_unstable();
        let p_buy = if burst {
            if self.burst_buy {
                0.88
            } else {
                0.12
            }
        } else {
            match self.regime {
                Regime::Up => 0.56,
                Regime::Down => 0.44,
                Regime::Range => 0.5,
            }
        };
        for &off in &offsets[..n] {
            let buy = self.rng.f64() < p_buy;
            let size =
                self.base_qty * (0.7 * self.rng.normal()).exp() * if burst { 3.0 } else { 1.0 };
            let qty = (((size * 1e8) as i64) / self.step).max(1) * self.step;
            let (bid, ask) = self.best();
            let price = if buy { ask } else { bid };
            // Aggressive flow leaves a small footprint on the price.
            let impact = 0.000_002 * size / self.base_qty;
            self.mid *= if buy { 1.0 + impact } else { 1.0 - impact };
            self.trade_id += 1;
            sink(t0 + off, self.trade_id, price, qty, !buy);
        }
    }

    /// Trades of one step, as tape frames.
    fn trades(&mut self, t0: u64) -> Vec<TapeFrame> {
        let mut drawn = Vec::new();
        self.draw_trades(t0, |t, id, price, qty, buyer_maker| {
            drawn.push((t, id, price, qty, buyer_maker));
        });
        let mut out = Vec::with_capacity(drawn.len());
        for (t, id, price, qty, buyer_maker) in drawn {
            let mut data = String::with_capacity(160);
            let _ = write!(
                data,
                "{{\"e\":\"trade\",\"E\":{t},\"s\":\"{}\",\"t\":{id},\"p\":\"",
                self.symbol
            );
            fmt8(&mut data, price);
            data.push_str("\",\"q\":\"");
            fmt8(&mut data, qty);
            if self.usdm {
                let _ = write!(data, "\",\"X\":\"MARKET\",\"T\":{t},\"m\":{buyer_maker}}}");
            } else {
                let _ = write!(data, "\",\"T\":{t},\"m\":{buyer_maker},\"M\":true}}");
            }
            out.push(self.frame(
                t,
                "trade",
                &data,
                Event::Trade {
                    symbol: self.symbol,
                    id,
                    price,
                    qty,
                    buyer_maker,
                    time_ms: t,
                },
            ));
        }
        out
    }

    fn frame(&self, t_ms: u64, kind: &str, data: &str, event: Event) -> TapeFrame {
        let mut combined = String::with_capacity(data.len() + 48);
        combined.push_str("{\"stream\":\"");
        let s0 = combined.len();
        combined.push_str(&self.lower);
        combined.push('@');
        combined.push_str(kind);
        let s1 = combined.len();
        combined.push_str("\",\"data\":");
        let d0 = combined.len();
        combined.push_str(data);
        let d1 = combined.len();
        combined.push('}');
        TapeFrame {
            time_ns: t_ms * 1_000_000,
            combined: combined.into_bytes(),
            stream: s0..s1,
            data: d0..d1,
            event,
        }
    }

    fn size(&self, price: i64, epoch: u64, level: usize) -> i64 {
        let h = hash(price as u64, epoch);
        let scale = 1.0 + level as f64 * 0.15;
        let q = self.base_qty * scale * (0.5 + (h % 1000) as f64 / 250.0);
        (((q * 1e8) as i64) / self.step).max(1) * self.step
    }

    /// The book at the end of a step, and the depth/bookTicker frames that publish it.
    fn book_frames(&mut self, t1: u64) -> Vec<TapeFrame> {
        let (bid, ask) = self.best();
        let epoch = t1 / 5_000;
        let mut bids = Vec::with_capacity(LEVELS);
        let mut asks = Vec::with_capacity(LEVELS);
        bids.push((bid, self.size(bid, epoch, 0)));
        asks.push((ask, self.size(ask, epoch, 0)));
        let mut pb = (bid - 1) / self.grid * self.grid;
        let mut pa = (ask + self.grid) / self.grid * self.grid;
        for i in 1..LEVELS {
            bids.push((pb, self.size(pb, epoch / 6, i)));
            asks.push((pa, self.size(pa, epoch / 6, i)));
            pb -= self.grid;
            pa += self.grid;
        }
        let diff = |old: &[(i64, i64)], new: &[(i64, i64)]| -> Vec<(i64, i64)> {
            let mut d: Vec<(i64, i64)> = old
                .iter()
                .filter(|(p, _)| !new.iter().any(|(q, _)| q == p))
                .map(|(p, _)| (*p, 0))
                .collect();
            d.extend(new.iter().filter(|l| !old.contains(l)).copied());
            d
        };
        let mut db = diff(&self.sent_bids, &bids);
        let mut da = diff(&self.sent_asks, &asks);
        db.sort_by_key(|l| std::cmp::Reverse(l.0));
        da.sort_by_key(|l| l.0);
        let mut out = Vec::new();
        if !db.is_empty() || !da.is_empty() {
            let (prev, first) = (self.update_id, self.update_id + 1);
            self.update_id += (db.len() + da.len()) as u64;
            let mut data = String::with_capacity(64 + 40 * (db.len() + da.len()));
            let _ = write!(
                data,
                "{{\"e\":\"depthUpdate\",\"E\":{t1},\"s\":\"{}\",\"U\":{first},\"u\":{},",
                self.symbol, self.update_id
            );
            if self.usdm {
                // USD-M chains its diffs by `pu`, the previous diff's `u`.
                let _ = write!(data, "\"T\":{t1},\"pu\":{prev},");
            }
            data.push_str("\"b\":[");
            let levels = |data: &mut String, l: &[(i64, i64)]| {
                for (i, (p, q)) in l.iter().enumerate() {
                    if i > 0 {
                        data.push(',');
                    }
                    data.push_str("[\"");
                    fmt8(data, *p);
                    data.push_str("\",\"");
                    fmt8(data, *q);
                    data.push_str("\"]");
                }
            };
            levels(&mut data, &db);
            data.push_str("],\"a\":[");
            levels(&mut data, &da);
            data.push_str("]}");
            out.push(self.frame(
                t1,
                if self.usdm {
                    "depth@0ms"
                } else {
                    "depth@100ms"
                },
                &data,
                Event::Depth {
                    symbol: self.symbol,
                    first,
                    last: self.update_id,
                    bids: db,
                    asks: da,
                },
            ));
        }
        let top = (bids[0].0, bids[0].1, asks[0].0, asks[0].1);
        if self.sent_top != Some(top) {
            let mut data = String::with_capacity(128);
            if self.usdm {
                data.push_str("{\"e\":\"bookTicker\",");
            } else {
                data.push('{');
            }
            let _ = write!(
                data,
                "\"u\":{},\"s\":\"{}\",\"b\":\"",
                self.update_id, self.symbol
            );
            fmt8(&mut data, top.0);
            data.push_str("\",\"B\":\"");
            fmt8(&mut data, top.1);
            data.push_str("\",\"a\":\"");
            fmt8(&mut data, top.2);
            data.push_str("\",\"A\":\"");
            fmt8(&mut data, top.3);
            if self.usdm {
                let _ = write!(data, "\",\"T\":{t1},\"E\":{t1}}}");
            } else {
                data.push_str("\"}");
            }
            out.push(self.frame(
                t1,
                "bookTicker",
                &data,
                Event::BookTicker {
                    symbol: self.symbol,
                },
            ));
            self.sent_top = Some(top);
        }
        self.sent_bids = bids;
        self.sent_asks = asks;
        out
    }
}
