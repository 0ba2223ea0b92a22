//! The market's past: the candle history the venue holds before its tape starts.
//!
//! Why: the engine's strategy needs at least 100 closed 15m candles (about 25 hours), plus 5m
//! and 1m ones, before it can decide anything, and a live engine gets them from Binance's
//! `GET /api/v3/klines` at start-up instead of waiting a day. The simulator therefore needs a
//! history that ends where its tape begins, so the warm-up runs exactly as it would live.
//!
//! Where it comes from ([`HistorySource`]):
//!
//! * `Synthetic { hours }` (the default, 30 h) with the synthetic market: the generator starts
//!   `hours` before the tape's `start_ms` and runs the part before it through its cheap
//!   trades-only path; those trades become the 1m klines and are not streamed. The tape then
//!   starts at `start_ms` as the continuation of the same market (same seed, same price path,
//!   same regime), so the first streamed trade sits next to the last history close.
//! * `Synthetic { hours }` with a **recorded capture**: a capture has no past, so the history
//!   is **synthetic**: the generator (seed 1) runs for the capture's symbol for `hours`, ending
//!   at the capture's first event time, and its prices are rescaled multiplicatively so that its
//!   last close equals the capture's first trade price. It has the generator's regimes and
//!   volumes, not the real market's: it exists so the engine can warm up against a replay, and
//!   indicators computed over it say nothing about the recorded day.
//! * `Klines { dir }`: real history, from data.binance.vision's 1m kline CSV files
//!   (`SYMBOL-1m-YYYY-MM-DD.csv`, or monthly, unzipped; with or without a header line; times in
//!   ms or µs) in `dir`, keeping the klines that close before the tape's first event. A gap
//!   between the files and the tape is filled with flat, zero-volume minutes.
//! * `None`: klines only from the tape's own trades.
//!
//! The market driver then adds every tape trade to the same 1m series (see `klines`), so the
//! candles stay consistent with the stream as it plays.

use std::io;
use std::path::{Path, PathBuf};

use super::klines::{load_csv_dir, Klines, Series, MINUTE_MS};
use super::rest::{market_in, MarketType};
use super::synth::{Generator, SynthConfig};

/// Default length of the synthetic history: 100 closed 15m candles are 25 h; 30 h leaves room
/// for the strategy's longest look-back plus the candle still open.
pub const DEFAULT_HISTORY_HOURS: u32 = 30;

/// Where the venue's candle history (before the tape) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistorySource {
    /// No history: klines only from the tape.
    None,
    /// Generated: continuous with a synthetic tape, or a rescaled synthetic past for a capture.
    Synthetic {
        /// Hours of history before the tape.
        hours: u32,
    },
    /// data.binance.vision 1m kline CSV files in this directory.
    Klines {
        /// The directory holding `SYMBOL-1m-*.csv`.
        dir: PathBuf,
    },
}

impl Default for HistorySource {
    /// `Synthetic { hours: 30 }`.
    fn default() -> Self {
        HistorySource::Synthetic {
            hours: DEFAULT_HISTORY_HOURS,
        }
    }
}

impl HistorySource {
    /// Parse the `--history` flag: `none`, `synthetic`, `synthetic:HOURS`, or a directory.
    pub fn parse(s: &str) -> Option<HistorySource> {
        if s.eq_ignore_ascii_case("none") {
            return Some(HistorySource::None);
        }
        if s.eq_ignore_ascii_case("synthetic") {
            return Some(HistorySource::default());
        }
        if let Some(h) = s.strip_prefix("synthetic:") {
            return h
                .parse()
                .ok()
                .map(|hours| HistorySource::Synthetic { hours });
        }
        (!s.is_empty()).then(|| HistorySource::Klines { dir: s.into() })
    }

    /// The history length in ms (`Synthetic` only).
    pub(crate) fn synthetic_ms(&self) -> Option<u64> {
        match self {
            HistorySource::Synthetic { hours } => Some(u64::from(*hours) * 3_600_000),
            _ => None,
        }
    }
}

/// Load every `symbols`' CSV history closing before `before_ms` into `klines`. A symbol
/// without files is an error: the user asked for real history and would otherwise warm up on
/// nothing without noticing.
pub(crate) fn load_csv(
    klines: &mut Klines,
    dir: &Path,
    symbols: &[&'static str],
    before_ms: u64,
) -> io::Result<()> {
    for &symbol in symbols {
        match load_csv_dir(dir, symbol, before_ms)? {
            Some(series) => klines.insert(symbol, series),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no {symbol}-1m-*.csv klines closing before {before_ms} in {}",
                        dir.display()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// A synthetic history of `symbol` for a capture: `history_ms` of the generator (seed 1)
/// ending just before `end_ms`, rescaled so that its last close is `last_price`, on
/// `market_type`'s ticks and steps (the engine reads the candles at the instrument's scales).
pub(crate) fn synthetic_for_capture(
    market_type: MarketType,
    symbol: &'static str,
    end_ms: u64,
    history_ms: u64,
    last_price: i64,
) -> Series {
    // Start on a minute so the first 1m kline is whole.
    let start = end_ms.saturating_sub(history_ms);
    let start = start - start % MINUTE_MS;
    let mut gen = Generator::with_history(
        &SynthConfig {
            symbols: vec![symbol.to_owned()],
            start_ms: end_ms,
            duration_ms: 0,
            market_type,
            ..SynthConfig::default()
        },
        end_ms - start,
    );
    let mut series = Series::default();
    gen.play_history(|t| series.record(t.time_ms, t.price, t.qty, t.buyer_maker));
    if let (Some(close), Some(m)) = (series.last_close(), market_in(market_type, symbol)) {
        series.rescale(last_price, close, m.tick);
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag() {
        assert_eq!(HistorySource::parse("none"), Some(HistorySource::None));
        assert_eq!(
            HistorySource::parse("synthetic"),
            Some(HistorySource::Synthetic { hours: 30 })
        );
        assert_eq!(
            HistorySource::parse("synthetic:48"),
            Some(HistorySource::Synthetic { hours: 48 })
        );
        assert_eq!(HistorySource::parse("synthetic:x"), None);
        assert_eq!(
            HistorySource::parse("/data/klines"),
            Some(HistorySource::Klines {
                dir: "/data/klines".into()
            })
        );
    }
}
