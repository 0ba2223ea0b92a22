//! Per-symbol order-flow analytics for the strategy stage, every one updated incrementally per
//! event in event time (never the wall clock), with fixed memory allocated by its constructor
//! and no allocation per event.
//!
//! How the pieces fit: [`candles`] turns trades (or forex quote mids, by the tick rule) into
//! 1m/5m/15m candles; [`indicators`] (RSI, ATR, +DI/-DI/ADX, Wilder-smoothed exactly as TA-Lib)
//! and [`stats`] (tick z-score, return autocorrelation, Hurst, mean-reversion strength) update on
//! candle closes; [`timeframes`] bundles them per symbol. [`orderflow`] keeps aggressor volume in
//! rolling windows (imbalance per timeframe for the Level 3 cascade, CVD, large trades,
//! exhaustion), [`profile`] the 15-minute volume-at-price (POC, value area), and [`zones`] the
//! supply/demand zones and fair value gaps built from closed candles.

pub mod candles;
pub mod indicators;
pub mod orderflow;
pub mod profile;
pub mod stats;
pub mod timeframes;
pub mod zones;
