//! The simulator's candles: 1m kline aggregates per symbol, and `GET /api/v3/klines` over them.
//!
//! Why: a live engine does not wait a day for its 15m indicators; it fetches recent candles of
//! every timeframe from the venue's REST klines endpoint at start-up and then follows the
//! stream. The simulator must answer that request with candles that lead into the tape it is
//! about to play and that stay consistent with the trades it streams, or a warm-up against it
//! would test something no live venue does.
//!
//! How: each symbol keeps a contiguous series of 1m bars from the first minute of its history
//! (see [`history`](super::history)) to the venue's current market time. History trades and
//! then every tape trade the market driver applies are added to the bar of their trade time
//! `T`, so the current 1m bar holds exactly the trades streamed in that minute. A minute without
//! trades is a flat bar at the previous close with zero volume, as on Binance. Coarser intervals
//! are folded from the 1m bars at query time (open of the first, close of the last, high/low
//! extremes, sums of the volumes and counts), aligned to UTC like Binance's (weeks start on
//! Monday), or to the request's `timeZone`. Quote volumes are summed per trade at scale 8
//! (`floor(price * qty)`), so every coarse bar is exactly the sum of its 1m bars.
//!
//! The clock: "now" is the latest of the history's end, the last trade time and the last tape
//! frame's time (a capture's receive clock is shifted onto the venue's event clock by the offset
//! measured at its first event). The last row of an answer without `endTime` is the bar holding
//! "now", still open, as on Binance.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::market::{Event, TapeFrame};

/// One minute, in milliseconds.
pub(crate) const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
const SCALE_ONE: i128 = 100_000_000;

/// Aggregates of one kline. Prices at scale 8; volumes at scale 8 in `i128` so a week of a busy
/// market's quote volume cannot overflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bar {
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: i128,
    pub quote_volume: i128,
    pub trades: u64,
    pub taker_buy_base: i128,
    pub taker_buy_quote: i128,
}

impl Bar {
    /// A minute without trades: flat at the previous close.
    fn flat(price: i64) -> Bar {
        Bar {
            open: price,
            high: price,
            low: price,
            close: price,
            ..Bar::default()
        }
    }

    fn add_trade(&mut self, price: i64, qty: i64, buyer_maker: bool) {
        if self.trades == 0 {
            // The first trade opens the bar (a flat bar only carried the previous close).
            *self = Bar::flat(price);
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        let quote = i128::from(price) * i128::from(qty) / SCALE_ONE;
        self.volume += i128::from(qty);
        self.quote_volume += quote;
        self.trades += 1;
        if !buyer_maker {
            self.taker_buy_base += i128::from(qty);
            self.taker_buy_quote += quote;
        }
    }

    /// Fold the next (later) bar into this one.
    fn fold(&mut self, next: &Bar) {
        self.high = self.high.max(next.high);
        self.low = self.low.min(next.low);
        self.close = next.close;
        self.volume += next.volume;
        self.quote_volume += next.quote_volume;
        self.trades += next.trades;
        self.taker_buy_base += next.taker_buy_base;
        self.taker_buy_quote += next.taker_buy_quote;
    }
}

/// Contiguous 1m bars of one symbol from `start_ms` (minute-aligned).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Series {
    start_ms: u64,
    bars: Vec<Bar>,
}

impl Series {
    /// Bars from `rows` of (open ms, bar), sorted and minute-aligned; gaps become flat bars.
    pub(crate) fn from_rows(mut rows: Vec<(u64, Bar)>) -> Series {
        rows.sort_by_key(|r| r.0);
        rows.dedup_by_key(|r| r.0);
        let mut s = Series::default();
        for (open, bar) in rows {
            if s.bars.is_empty() {
                s.start_ms = open;
            } else {
                s.extend_to(open - MINUTE_MS);
            }
            s.bars.push(bar);
        }
        s
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// Open time of the last bar.
    fn last_open(&self) -> u64 {
        self.start_ms + (self.bars.len().saturating_sub(1) as u64) * MINUTE_MS
    }

    /// Close price of the last bar (of the last trade).
    pub(crate) fn last_close(&self) -> Option<i64> {
        self.bars.last().map(|b| b.close)
    }

    /// Append flat bars until the bar opening at `minute_ms` exists.
    fn extend_to(&mut self, minute_ms: u64) {
        let Some(close) = self.last_close() else {
            return;
        };
        while self.last_open() < minute_ms {
            self.bars.push(Bar::flat(close));
        }
    }

    /// Add a trade at `time_ms` to its minute's bar.
    pub(crate) fn record(&mut self, time_ms: u64, price: i64, qty: i64, buyer_maker: bool) {
        let minute = time_ms - time_ms % MINUTE_MS;
        if self.bars.is_empty() {
            self.start_ms = minute;
            self.bars.push(Bar::default());
        }
        // A trade stamped before the series (clock skew in a capture) counts in its first bar.
        let minute = minute.max(self.start_ms);
        self.extend_to(minute);
        let idx = ((minute - self.start_ms) / MINUTE_MS) as usize;
        self.bars[idx].add_trade(price, qty, buyer_maker);
    }

    /// The bar opening at `minute_ms`; past the last one, flat at the last close.
    fn bar_at(&self, minute_ms: u64) -> Bar {
        let idx = ((minute_ms - self.start_ms) / MINUTE_MS) as usize;
        match self.bars.get(idx) {
            Some(b) => *b,
            None => Bar::flat(self.last_close().unwrap_or(0)),
        }
    }

    /// Scale every price and quote volume by `num / den`, prices rounded to `tick`: a
    /// multiplicative rescale keeps returns, so the candles keep their shape at another level.
    pub(crate) fn rescale(&mut self, num: i64, den: i64, tick: i64) {
        if den <= 0 || num <= 0 {
            return;
        }
        let (num, den, tick) = (i128::from(num), i128::from(den), i128::from(tick.max(1)));
        let scale = |v: i128| (v * num + den / 2) / den;
        let price = |p: i64| {
            let v = (scale(i128::from(p)) + tick / 2) / tick * tick;
            i64::try_from(v).unwrap_or(i64::MAX)
        };
        for b in &mut self.bars {
            b.open = price(b.open);
            b.high = price(b.high);
            b.low = price(b.low);
            b.close = price(b.close);
            b.quote_volume = scale(b.quote_volume);
            b.taker_buy_quote = scale(b.taker_buy_quote);
        }
    }
}

/// A kline interval: buckets of `ms` opening at `phase_ms` modulo `ms` (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    pub ms: u64,
    pub phase_ms: u64,
}

impl Interval {
    /// Binance's interval names that are whole minutes and fixed lengths: `1m` to `1d`, and
    /// `1w` (weeks open on Monday 00:00; 1970-01-01 was a Thursday). `tz_ms` is the request's
    /// `timeZone` offset: buckets are aligned in that zone, as Binance does.
    pub(crate) fn parse(s: &str, tz_ms: i64) -> Option<Interval> {
        let (ms, phase) = match s {
            "1m" => (MINUTE_MS, 0),
            "3m" => (3 * MINUTE_MS, 0),
            "5m" => (5 * MINUTE_MS, 0),
            "15m" => (15 * MINUTE_MS, 0),
            "30m" => (30 * MINUTE_MS, 0),
            "1h" => (60 * MINUTE_MS, 0),
            "2h" => (120 * MINUTE_MS, 0),
            "4h" => (240 * MINUTE_MS, 0),
            "6h" => (360 * MINUTE_MS, 0),
            "8h" => (480 * MINUTE_MS, 0),
            "12h" => (720 * MINUTE_MS, 0),
            "1d" => (DAY_MS, 0),
            "1w" => (7 * DAY_MS, 4 * DAY_MS),
            _ => return None,
        };
        // Local midnight is UTC midnight minus the offset.
        let phase_ms = (phase as i64 - tz_ms).rem_euclid(ms as i64) as u64;
        Some(Interval { ms, phase_ms })
    }

    /// Open time of the bucket holding `t`.
    fn floor(self, t: u64) -> u64 {
        let (t, ms, ph) = (t as i64, self.ms as i64, self.phase_ms as i64);
        ((t - ph).div_euclid(ms) * ms + ph).max(0) as u64
    }

    /// Open time of the first bucket opening at or after `t`.
    fn ceil(self, t: u64) -> u64 {
        let f = self.floor(t);
        if f >= t {
            f
        } else {
            f + self.ms
        }
    }
}

/// What a klines request asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    pub interval: Interval,
    /// Only bars opening at or after this (ms).
    pub start_ms: Option<u64>,
    /// Only bars opening at or before this (ms).
    pub end_ms: Option<u64>,
    pub limit: usize,
}

/// Every symbol's 1m series and the venue's kline clock.
#[derive(Debug, Default)]
pub(crate) struct Klines {
    series: HashMap<&'static str, Series>,
    /// "Now" on the venue's event clock, ms.
    clock_ms: u64,
    /// Added to a frame's time to put it on the event clock (a capture's receive clock lags or
    /// leads the venue's).
    skew_ms: i64,
}

impl Klines {
    /// Install `series` as the history of `symbol`.
    pub(crate) fn insert(&mut self, symbol: &'static str, series: Series) {
        self.series.insert(symbol, series);
    }

    /// Move the clock to at least `ms` (the history's end, before any frame).
    pub(crate) fn advance_clock(&mut self, ms: u64) {
        self.clock_ms = self.clock_ms.max(ms);
    }

    /// Set the offset from frame time to event time, ms.
    pub(crate) fn set_skew(&mut self, skew_ms: i64) {
        self.skew_ms = skew_ms;
    }

    /// "Now" on the venue's event clock, ms (0 before any history or frame: no market).
    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// A frame time (ns, the tape's clock) on the venue's event clock, ms.
    pub(crate) fn event_ms(&self, frame_ns: u64) -> u64 {
        ((frame_ns / 1_000_000) as i64 + self.skew_ms).max(0) as u64
    }

    /// Add one trade.
    pub(crate) fn record(
        &mut self,
        symbol: &'static str,
        time_ms: u64,
        price: i64,
        qty: i64,
        buyer_maker: bool,
    ) {
        self.series
            .entry(symbol)
            .or_default()
            .record(time_ms, price, qty, buyer_maker);
    }

    /// Account for one tape frame as the market driver applies it.
    pub(crate) fn on_frame(&mut self, frame: &TapeFrame) {
        let t = self.event_ms(frame.time_ns);
        self.advance_clock(t);
        if let Event::Trade {
            symbol,
            price,
            qty,
            buyer_maker,
            time_ms,
            ..
        } = frame.event
        {
            let at = if time_ms > 0 { time_ms } else { t };
            self.advance_clock(at);
            self.record(symbol, at, price, qty, buyer_maker);
        }
    }

    /// The bars `q` selects for `symbol`, oldest first, as (open ms, bar). Without `end_ms`
    /// the last is the bar holding "now", still open.
    pub(crate) fn query(&self, symbol: &str, q: &Query) -> Vec<(u64, Bar)> {
        let Some(s) = self.series.get(symbol).filter(|s| !s.is_empty()) else {
            return Vec::new();
        };
        let iv = q.interval;
        let now_minute = (self.clock_ms - self.clock_ms % MINUTE_MS).max(s.last_open());
        let first = iv.floor(s.start_ms);
        let last = iv.floor(now_minute);
        let lo = q.start_ms.map_or(first, |t| first.max(iv.ceil(t)));
        let hi = q.end_ms.map_or(last, |t| last.min(iv.floor(t)));
        if lo > hi || q.limit == 0 {
            return Vec::new();
        }
        let n = ((hi - lo) / iv.ms + 1).min(q.limit as u64);
        // With a start the first `limit` from it, otherwise the last `limit` up to the end.
        let from = if q.start_ms.is_some() {
            lo
        } else {
            hi - (n - 1) * iv.ms
        };
        let end_minute = now_minute + MINUTE_MS;
        (0..n)
            .map(|k| {
                let open = from + k * iv.ms;
                let mut m = open.max(s.start_ms);
                let mut bar = s.bar_at(m);
                m += MINUTE_MS;
                while m < (open + iv.ms).min(end_minute) {
                    bar.fold(&s.bar_at(m));
                    m += MINUTE_MS;
                }
                (open, bar)
            })
            .collect()
    }
}

/// A volume at scale 8 as Binance prints it.
pub(crate) fn dec128(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!(
        "{sign}{}.{:08}",
        a / SCALE_ONE as u128,
        a % SCALE_ONE as u128
    )
}

/// A decimal string at scale 8, extra decimals truncated (quote volumes in public data can
/// carry more than eight).
fn parse8(s: &str) -> Option<i128> {
    let s = s.trim().trim_matches('"');
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut f: i128 = 0;
    for k in 0..8 {
        f = f * 10 + frac.as_bytes().get(k).map_or(0, |b| i128::from(b - b'0'));
    }
    Some(i * SCALE_ONE + f)
}

/// A public-data timestamp in ms: data.binance.vision writes spot files from 2025 on in µs.
fn ts_ms(s: &str) -> Option<u64> {
    let v: u64 = s.trim().parse().ok()?;
    Some(if v >= 100_000_000_000_000 {
        v / 1000
    } else {
        v
    })
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One row of a data.binance.vision kline CSV (`open_time, open, high, low, close, volume,
/// close_time, quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore`):
/// (open ms, close ms, bar). `None` for a header line.
fn csv_row(line: &str) -> Option<Result<(u64, u64, Bar), String>> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.first()
        .is_none_or(|x| !x.bytes().all(|b| b.is_ascii_digit()) || x.is_empty())
    {
        return None;
    }
    let row = || -> Option<(u64, u64, Bar)> {
        let p = |i: usize| i64::try_from(parse8(f.get(i)?)?).ok();
        let v = |i: usize| parse8(f.get(i)?);
        Some((
            ts_ms(f[0])?,
            ts_ms(f.get(6)?)?,
            Bar {
                open: p(1)?,
                high: p(2)?,
                low: p(3)?,
                close: p(4)?,
                volume: v(5)?,
                quote_volume: v(7)?,
                trades: f.get(8)?.parse().ok()?,
                taker_buy_base: v(9)?,
                taker_buy_quote: v(10)?,
            },
        ))
    };
    Some(row().ok_or_else(|| format!("malformed kline row {line:?}")))
}

/// The 1m klines of `symbol` in `dir` (`SYMBOL-1m-*.csv`, data.binance.vision's daily or
/// monthly files, unzipped) that close before `before_ms`. `None` when there are none.
pub(crate) fn load_csv_dir(dir: &Path, symbol: &str, before_ms: u64) -> io::Result<Option<Series>> {
    let prefix = format!("{symbol}-1m-");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".csv"))
        })
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some(row) = csv_row(line) else { continue };
            let (open, close, bar) = row.map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if open % MINUTE_MS != 0 || close < open {
                return Err(bad(format!(
                    "{}: not a 1m kline (open {open}, close {close})",
                    path.display()
                )));
            }
            if close < before_ms {
                rows.push((open, bar));
            }
        }
    }
    Ok((!rows.is_empty()).then(|| Series::from_rows(rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_723_075_200_000;

    fn q(interval: &str, start: Option<u64>, end: Option<u64>, limit: usize) -> Query {
        Query {
            interval: Interval::parse(interval, 0).unwrap(),
            start_ms: start,
            end_ms: end,
            limit,
        }
    }

    #[test]
    fn bars_fold_and_fill_gaps() {
        let mut k = Klines::default();
        k.record("BTCUSDT", T0 + 5_000, 100, 10, false);
        k.record("BTCUSDT", T0 + 6_000, 120, 5, true);
        k.record("BTCUSDT", T0 + 3 * MINUTE_MS + 1, 90, 1, true);
        k.advance_clock(T0 + 4 * MINUTE_MS + 7);
        let rows = k.query("BTCUSDT", &q("1m", None, None, 500));
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1], (T0 + MINUTE_MS, Bar::flat(120)));
        assert_eq!(rows[4].1, Bar::flat(90));
        assert_eq!(rows[0].1.taker_buy_base, 10);
        let five = k.query("BTCUSDT", &q("5m", None, None, 500));
        assert_eq!(five.len(), 1);
        let b = five[0].1;
        assert_eq!((b.open, b.high, b.low, b.close), (100, 120, 90, 90));
        assert_eq!((b.volume, b.trades), (16, 3));
        // Start/end select by open time; limit counts from the start when there is one.
        let r = k.query("BTCUSDT", &q("1m", Some(T0 + 1), None, 2));
        assert_eq!(r[0].0, T0 + MINUTE_MS);
        assert_eq!(r.len(), 2);
        let r = k.query("BTCUSDT", &q("1m", None, Some(T0 + 2 * MINUTE_MS), 2));
        assert_eq!((r[0].0, r[1].0), (T0 + MINUTE_MS, T0 + 2 * MINUTE_MS));
        assert!(k.query("ETHUSDT", &q("1m", None, None, 5)).is_empty());
    }

    #[test]
    fn weeks_open_on_monday_and_time_zones_shift_days() {
        let w = Interval::parse("1w", 0).unwrap();
        // 2024-08-08 was a Thursday; that week opened on Monday 2024-08-05.
        assert_eq!(w.floor(T0), T0 - 3 * DAY_MS);
        let d = Interval::parse("1d", 8 * 3_600_000).unwrap();
        assert_eq!(d.floor(T0), T0 - 8 * 3_600_000);
        assert!(Interval::parse("1s", 0).is_none());
    }

    #[test]
    fn rescale_hits_the_target_exactly() {
        let mut s = Series::default();
        s.record(T0, 6_000_000_000_000, 100_000, false);
        s.record(T0 + 1, 6_000_123_000_000, 100_000, false);
        s.rescale(5_000_000_000_000, 6_000_123_000_000, 1_000_000);
        assert_eq!(s.last_close(), Some(5_000_000_000_000));
        assert_eq!(s.bars[0].open % 1_000_000, 0);
    }

    #[test]
    fn csv_rows_in_ms_and_us_with_or_without_header() {
        let h = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore";
        assert!(csv_row(h).is_none());
        let ms = "1723075200000,61000.01,61010.00,60990.50,61005.00,12.5,1723075259999,762562.123456789,100,6.25,381281.0,0";
        let us = "1723075200000000,61000.01,61010.00,60990.50,61005.00,12.5,1723075259999999,762562.123456789,100,6.25,381281.0,0";
        let (a, b) = (csv_row(ms).unwrap().unwrap(), csv_row(us).unwrap().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.0, T0);
        assert_eq!(a.2.quote_volume, 76_256_212_345_678);
        assert_eq!(dec128(a.2.quote_volume), "762562.12345678");
        assert!(csv_row("1723075200000,x").unwrap().is_err());
    }
}
