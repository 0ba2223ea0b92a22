//! Binance's REST klines body (`GET /api/v3/klines`, `/fapi/v1/klines`, `/dapi/v1/klines`) as
//! history candles for the strategy's warm-up.
//!
//! Why it exists: the strategy's 15-minute regime needs about 25 hours of candles (Hurst over
//! 100 closes, ADX(14)) and its order-flow cascade 15 minutes of aggressor volume before it can
//! decide anything. A live engine does not wait a day: at start it fetches the recent candles of
//! each timeframe from the venue, and so does this one. The body is a frame like any other: the
//! feed journals its raw bytes (flagged with the instrument, see
//! [`RAW_FLAG_KLINES`](crate::feed::RAW_FLAG_KLINES)) before decoding it here, so a replay of the
//! journal warms up from the same bytes and makes the same decisions.
//!
//! Shape (Binance's documentation): an array of arrays
//! `[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume", trades,
//! "takerBuyBaseVolume", "takerBuyQuoteVolume", "ignore"]`, times in ms, oldest first. Without
//! `endTime` the last row is the candle still open, so the last row is never marked closed; the
//! others are, and every event carries [`MarketEvent::FLAG_KLINE_HISTORY`] so a consumer can tell
//! history from a live `@kline` stream.
//!
//! Runs once per timeframe and symbol at start, before the hot loop's steady state: it parses
//! with `serde_json` into a vector of borrowed rows (one allocation per body), which the
//! zero-allocation rule (after warm-up) allows.

use crate::event::{Kline, MarketEvent, Stamps};
use crate::fixed::{parse_mantissa, Price, Qty};
use crate::instrument::InstrumentRef;

/// One row as Binance sends it.
type Row<'a> = (
    u64,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    u64,
    &'a str,
    u64,
    &'a str,
    &'a str,
    serde::de::IgnoredAny,
);

/// Why a klines body was rejected (nothing is emitted then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KlinesError {
    /// Not an array of Binance kline rows.
    #[error("klines body is not an array of kline rows")]
    Malformed,
    /// A price or volume has more decimals than the instrument's scale, or does not parse.
    #[error("kline price or volume does not fit the instrument's scale")]
    Value,
    /// A row's times are inconsistent (close before open, interval not whole seconds, rows not
    /// in time order) or out of the nanosecond range.
    #[error("kline times are inconsistent")]
    Times,
}

impl KlinesError {
    /// A one-line reason (for the feed's error record).
    pub const fn reason(self) -> &'static str {
        match self {
            KlinesError::Malformed => "klines body is not an array of kline rows",
            KlinesError::Value => "kline price or volume does not fit the instrument's scale",
            KlinesError::Times => "kline times are inconsistent",
        }
    }
}

fn price(s: &str, scale: u8) -> Result<Price, KlinesError> {
    parse_mantissa(s.as_bytes(), scale)
        .map(Price)
        .map_err(|_| KlinesError::Value)
}

fn qty(s: &str, scale: u8) -> Result<Qty, KlinesError> {
    parse_mantissa(s.as_bytes(), scale)
        .map(Qty)
        .map_err(|_| KlinesError::Value)
}

fn ms_to_ns(ms: u64) -> Result<u64, KlinesError> {
    ms.checked_mul(1_000_000).ok_or(KlinesError::Times)
}

/// Decodes a klines `body` fetched for `inst` into one `Kline` event per row (all but the last
/// flagged closed, all flagged [`MarketEvent::FLAG_KLINE_HISTORY`]), in the body's order, each
/// stamped with its close time as venue time and `recv_tsc`. Validates every row before the
/// first event reaches `sink`, so a rejected body emits nothing. Returns the number of events.
pub fn decode_rest_klines(
    body: &[u8],
    inst: InstrumentRef,
    recv_tsc: u64,
    sink: &mut dyn FnMut(MarketEvent),
) -> Result<usize, KlinesError> {
    let rows: Vec<Row<'_>> = serde_json::from_slice(body).map_err(|_| KlinesError::Malformed)?;
    let (ps, qs) = (inst.price_scale, inst.qty_scale);
    let mut out = Vec::with_capacity(rows.len());
    let mut last_open = 0u64;
    for (i, r) in rows.iter().enumerate() {
        let (open_ms, close_ms) = (r.0, r.6);
        if close_ms < open_ms || (close_ms + 1 - open_ms) % 1000 != 0 || open_ms < last_open {
            return Err(KlinesError::Times);
        }
        last_open = open_ms;
        let interval_secs =
            u32::try_from((close_ms + 1 - open_ms) / 1000).map_err(|_| KlinesError::Times)?;
        let volume = qty(r.5, qs)?;
        let taker_buy_volume = qty(r.9, qs)?;
        if taker_buy_volume.0 > volume.0 || volume.0 < 0 || taker_buy_volume.0 < 0 {
            return Err(KlinesError::Value);
        }
        let k = Kline {
            open: price(r.1, ps)?,
            high: price(r.2, ps)?,
            low: price(r.3, ps)?,
            close: price(r.4, ps)?,
            volume,
            taker_buy_volume,
            trades: r.8,
            open_time_ns: ms_to_ns(open_ms)?,
            close_time_ns: ms_to_ns(close_ms)?,
            interval_secs,
            closed: i + 1 < rows.len(),
        };
        let mut e = MarketEvent::kline(inst, Stamps::new(k.close_time_ns, recv_tsc), k);
        e.flags |= MarketEvent::FLAG_KLINE_HISTORY;
        out.push(e);
    }
    let n = out.len();
    for e in out {
        sink(e);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::InstrumentId;

    const INST: InstrumentRef = InstrumentRef {
        id: InstrumentId(3),
        price_scale: 2,
        qty_scale: 5,
    };

    fn decode(body: &str) -> Result<Vec<MarketEvent>, KlinesError> {
        let mut v = Vec::new();
        decode_rest_klines(body.as_bytes(), INST, 7, &mut |e| v.push(e))?;
        Ok(v)
    }

    /// Two rows of Binance's documented example shape: the first closed, the last open.
    #[test]
    fn rows_become_history_candles_and_the_last_stays_open() {
        let body = r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","17928899.62484339"],
            [1499644800000,"0.01577100","0.01600000","0.01500000","0.01590000","10.00000000",1500249599999,"1.0",3,"4.00000000","0.1","0"]]"#;
        // Scales of 8 so the documented values fit.
        let inst = InstrumentRef {
            id: InstrumentId(1),
            price_scale: 8,
            qty_scale: 8,
        };
        let mut v = Vec::new();
        let n = decode_rest_klines(body.as_bytes(), inst, 9, &mut |e| v.push(e)).unwrap();
        assert_eq!(n, 2);
        let k = v[0].as_kline().unwrap();
        assert!(k.closed);
        assert_eq!(k.open, Price(1_634_790));
        assert_eq!(k.high, Price(80_000_000));
        assert_eq!(k.volume, Qty(14_897_611_427_815));
        assert_eq!(k.taker_buy_volume, Qty(175_687_402_397));
        assert_eq!(k.trades, 308);
        assert_eq!(k.interval_secs, 604_800);
        assert_eq!(v[0].stamps.venue_ns, 1_499_644_799_999_000_000);
        assert!(v[0].has(MarketEvent::FLAG_KLINE_HISTORY));
        assert!(!v[1].as_kline().unwrap().closed);
        assert_eq!(v[1].stamps.recv_tsc, 9);
    }

    #[test]
    fn bad_bodies_emit_nothing() {
        assert_eq!(decode("{}").unwrap_err(), KlinesError::Malformed);
        assert_eq!(decode("[[1]]").unwrap_err(), KlinesError::Malformed);
        // Too many decimals for a 2-decimal price scale.
        let body = r#"[[60000,"1.001","1","1","1","1",119999,"0",1,"0","0","0"]]"#;
        assert_eq!(decode(body).unwrap_err(), KlinesError::Value);
        // Taker-buy volume above the volume.
        let body = r#"[[60000,"1","1","1","1","1",119999,"0",1,"2","0","0"]]"#;
        assert_eq!(decode(body).unwrap_err(), KlinesError::Value);
        // Close before open.
        let body = r#"[[60000,"1","1","1","1","1",59999,"0",1,"0","0","0"]]"#;
        assert_eq!(decode(body).unwrap_err(), KlinesError::Times);
        // Rows out of order.
        let body = r#"[[120000,"1","1","1","1","1",179999,"0",1,"0","0","0"],
                       [60000,"1","1","1","1","1",119999,"0",1,"0","0","0"]]"#;
        assert_eq!(decode(body).unwrap_err(), KlinesError::Times);
        assert!(decode("[]").unwrap().is_empty());
    }
}
