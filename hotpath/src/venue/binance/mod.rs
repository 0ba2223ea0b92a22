//! Binance market-data codecs: spot, USD-M and COIN-M WebSocket streams, REST depth snapshots
//! and `exchangeInfo`, decoded into fixed-size [`MarketEvent`]s.
//!
//! # What is decoded
//!
//! Combined-stream envelopes (`{"stream":"btcusdt@trade","data":{..}}`) and bare payloads of
//!
//! | `e` | stream | becomes | venue time |
//! |---|---|---|---|
//! | `trade` | `@trade` | one `Trade` (`m` → aggressor) | `T` |
//! | `aggTrade` | `@aggTrade` | one `AggTrade` (`a`, `f`, `l`) | `T` |
//! | `bookTicker` or none (spot) | `@bookTicker` | one `BookTicker` (`u`, `b`/`B`, `a`/`A`) | `E` (futures; 0 on spot) |
//! | `depthUpdate` | `@depth`, `@depth@100ms`, `@depth@0ms` | one `DepthLevel` per level, bids then asks, `FLAG_LAST` on the final one; `U`/`u`, and `pu` on futures | `E` |
//! | `kline` | `@kline_<i>` | one `Kline` from the `k` object | `E` |
//!
//! and REST depth snapshots (`{"lastUpdateId":..,"bids":..,"asks":..}`) into `DepthLevel`
//! events flagged [`FLAG_SNAPSHOT`](MarketEvent::FLAG_SNAPSHOT); REST klines bodies (the
//! strategy's warm-up history) go through [`klines`] instead. Milliseconds become
//! nanoseconds; the receive TSC is the caller's. Prices and quantities are parsed straight
//! from the decimal strings to mantissas at the instrument's scales ([`crate::fixed`]); a value
//! with more decimals than the scale is [`DecodeError::TooPrecise`], never rounded. Instruments
//! come from [`exchange_info`] (which explains how the scales are chosen).
//!
//! # Two decoders that must agree
//!
//! * [`Scanner`] is the hot-path decoder: a hand-written single-pass scanner for these message
//!   shapes, tolerant of key order and whitespace, strict about syntax, allocation-free.
//! * [`SimdDecoder`] is the reference: simd-json's tape over the mutable receive buffer, behind
//!   a serde_json validity check.
//!
//! Both give the fields meaning through one shared schema (`schema.rs`), so they can differ
//! only in parsing, and `tests/binance_decode.rs` and the `binance_scanner` fuzz target check
//! that on every input they produce the same events or both reject it.
//!
//! A rejected message emits nothing: levels are parsed into a preallocated buffer and emitted
//! only when all are valid. Rejections are counted by [`ErrorKind`] in [`DecodeStats`].

pub mod error;
pub mod exchange_info;
pub mod klines;
pub mod orders;
pub mod reference;
pub mod scanner;
mod schema;
pub mod sign;
pub mod user_stream;

pub use error::{DecodeError, DecodeStats, Decoded, ErrorKind, Text};
pub use exchange_info::{ExchangeInfo, ExchangeInfoError, ScalePolicy, SymbolInfo};
pub use reference::SimdDecoder;
pub use scanner::Scanner;
pub use schema::MAX_DEPTH;

use crate::event::MarketEvent;
use crate::instrument::InstrumentId;

/// Limits of a decoder; buffers are sized from them once, at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Longest message accepted, in bytes (default 1 MiB: a 5000-level-per-side REST snapshot
    /// is about 330 KB). At most `u32::MAX`.
    pub max_message_len: usize,
    /// Most depth levels (bids plus asks) in one message (default 10 000: the REST maximum of
    /// 5000 per side).
    pub max_levels: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_message_len: 1 << 20,
            max_levels: 10_000,
        }
    }
}

impl DecoderConfig {
    /// The same limits with `max_message_len` capped at `u32::MAX` (spans are 32-bit).
    fn clamped(self) -> Self {
        DecoderConfig {
            max_message_len: self.max_message_len.min(u32::MAX as usize),
            max_levels: self.max_levels,
        }
    }
}

/// What both decoders offer, for code (tests, benchmarks, the feed stage) that works with
/// either. `msg` is mutable because simd-json unescapes in place; the [`Scanner`] only reads it.
pub trait Decoder {
    /// Decode one WebSocket message into `sink`; on error nothing reaches the sink.
    fn decode<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError>;

    /// Decode a REST depth snapshot requested for `instrument` into `sink`.
    fn decode_depth_snapshot<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        instrument: InstrumentId,
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError>;

    /// Counters of everything decoded so far.
    fn stats(&self) -> &DecodeStats;
}
