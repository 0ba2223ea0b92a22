//! The hot path of algo-engine: the event model and, stage by stage, the code that runs on the
//! pinned threads.
//!
//! Everything here obeys the hot-path rules of the design: after warm-up no heap allocation, no
//! locks, no syscalls other than socket I/O; prices and quantities are fixed-point integers parsed
//! straight from the venue's decimal strings; events are fixed-size `Copy` values stamped at every
//! stage; and time inside the strategy is event time, so a replay of a journal is deterministic.
//!
//! How the pieces fit:
//!
//! * The **event model** is the vocabulary every stage speaks. [`fixed`] provides exact
//!   [`Price`](fixed::Price)/[`Qty`](fixed::Qty) mantissas and the allocation-free decimal parser
//!   and formatter; [`instrument`] interns venue symbols into dense
//!   [`InstrumentId`](instrument::InstrumentId)s and holds each instrument's scales; [`event`]
//!   defines the fixed-size events ([`MarketEvent`](event::MarketEvent),
//!   [`OrderIntent`](event::OrderIntent), [`ExecEvent`](event::ExecEvent),
//!   [`Control`](event::Control)) with their latency [`Stamps`](event::Stamps); [`codec`] journals
//!   them through the memory-mapped journal of `ringbuffers` with rkyv, zero-copy on read, under a
//!   compile-time [`SCHEMA_HASH`](codec::SCHEMA_HASH).
//! * The [`runtime`] runs **stages** (units of work with a bounded `poll()`) on pinned threads
//!   connected by `ringbuffers` SPSC rings, with the thread layout chosen by configuration.
//! * Stages still to come, in data-flow order: `net` (mio / io_uring sockets, TLS, in-place
//!   WebSocket frames, Onload detection), the venue codecs (Binance spot/USD-M/COIN-M JSON into
//!   `MarketEvent`s, order encoding and signing, execution reports into `ExecEvent`s), the L2
//!   `book` with sequence checks, order-flow `analytics` and `signals` (the four-level
//!   decision), the `risk` gate and position monitor, and the `gateway` that sends orders and
//!   keeps the order state machine.

pub mod analytics;
pub mod book;
pub mod codec;
pub mod datadir;
pub mod event;
pub mod feed;
pub mod fixed;
pub mod instrument;
pub mod latency;
pub mod live;
pub mod runtime;
pub mod signals;
pub mod snapshot;
pub mod strategy;
pub mod venue;
