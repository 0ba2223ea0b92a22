//! The venue simulator: a Binance-compatible venue on loopback.
//!
//! Why it exists: the engine needs a venue it can trade against without a network (the embedded
//! default venue, backtests, CI) and a far end for the wire-to-wire latency benchmark. It speaks
//! Binance's own wire protocol rather than a private one, so the engine's real gateway code runs
//! unchanged against it, and a third-party client (ccxt, see `tests/sim_rest.rs`) can check that
//! it really is Binance-shaped: a simulator that only our own client understands could share our
//! client's misreadings of Binance's documentation.
//!
//! Parts, as they exist today:
//!
//! * [`MarketType`]: spot (the default) or USD-M futures (`/fapi/...`, a margin wallet and
//!   one-way positions, `ORDER_TRADE_UPDATE`; see the `futures` module).
//! * [`rest`]: the REST side (HTTP/1.1 with keep-alive): server time, `exchangeInfo` for
//!   BTCUSDT and ETHUSDT with their real filters, a depth snapshot, klines, and signed order
//!   entry (new, cancel, query, open orders, account) with Binance's HMAC-SHA256 signature check
//!   (the gateway's own [`hotpath::venue::binance::sign::Signer`]), `recvWindow`/`timestamp`
//!   check, request weights, `X-MBX-USED-WEIGHT-1M`, 429 then 418 with `Retry-After`, and
//!   Binance's JSON error bodies.
//!
//! * [`venue`]: [`SimVenue`], the whole venue in-process: REST + WebSocket (`ws`: Binance
//!   combined/raw market streams, live SUBSCRIBE, the user data stream on `/ws/<listenKey>`,
//!   and the WebSocket API on `/ws-api/v3`, `ws_api`, answered by the REST side's own request
//!   handling) +
//!   the market driver playing a [`market`] tape (a recorded capture, byte-identical, or the
//!   [`synth`] generator) at 1x, a multiple or max speed.
//! * [`exchange`]: books, matching (taker sweeps, maker fills from trades after the queue),
//!   fees in the quote asset, balances, `executionReport`/`outboundAccountPosition` events,
//!   and the [`LatencyModel`] in market time.
//! * [`history`] and `klines`: the candles `GET /api/v3/klines` serves, so an engine warms its
//!   indicators up at start-up as it would against Binance: a history before the tape
//!   ([`HistorySource`]: by default 30 h generated continuously with a synthetic tape, a
//!   rescaled synthetic past for a capture, or Binance public-data CSV files) plus every tape
//!   trade as the driver applies it, kept as 1m aggregates and folded into coarser intervals.
//! * [`stamps`]: TSC wire stamps of frame writes and order reads for the wire-to-wire
//!   benchmark.
//!
//! * [`client`]: [`SimClient`], a signed blocking REST client for tests that ask the venue
//!   what it holds.
//!
//! A bare [`RestServer`] (no market) still works on its own: its books are a fixed synthetic
//! ladder, so limit orders away from it rest and marketable ones fill against it.

pub mod client;
pub mod exchange;
mod futures;
pub mod history;
mod klines;
pub mod market;
pub mod rest;
pub mod stamps;
pub mod synth;
pub mod venue;
mod ws;
mod ws_api;

pub use client::SimClient;
pub use exchange::{Fees, LatencyModel};
pub use history::{HistorySource, DEFAULT_HISTORY_HOURS};
pub use rest::{MarketType, RestConfig, RestServer};
pub use stamps::{FrameStamp, OrderStamp, WireStamps};
pub use synth::{Generator, Regime, SynthConfig, SynthTrade};
pub use venue::{
    MarketSource, Pace, SimConfig, SimVenue, StartMode, USDM_WS_API_PATH, WS_API_PATH,
};
