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
//! * [`rest`]: the REST side (HTTP/1.1 with keep-alive): server time, `exchangeInfo` for
//!   BTCUSDT and ETHUSDT with their real filters, a synthetic depth snapshot, and signed order
//!   entry (new, cancel, query, open orders, account) with Binance's HMAC-SHA256 signature check
//!   (the gateway's own [`hotpath::venue::binance::sign::Signer`]), `recvWindow`/`timestamp`
//!   check, request weights, `X-MBX-USED-WEIGHT-1M`, 429 then 418 with `Retry-After`, and
//!   Binance's JSON error bodies.
//!
//! Still to come (DESIGN.md, "Venues"): the market-data WebSocket replaying a capture, the user
//! data stream, and matching of resting orders against the replayed trades/quotes with a latency
//! model and fees. Until matching exists, orders are accepted, validated against the filters,
//! lock their balance and rest as `NEW` until cancelled; nothing fills.

pub mod rest;

pub use rest::{RestConfig, RestServer};
