//! Venue codecs (in progress).
pub mod binance;
