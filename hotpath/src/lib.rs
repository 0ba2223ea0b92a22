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
//! * The stages, in data-flow order: the [`feed`] reads frames from a [`live`] Binance
//!   WebSocket (sockets, TLS and RFC 6455 come from the `net` crate, REST depth snapshots from the
//!   cold [`snapshot`] fetcher) or from a replayed capture, decodes them with the [`venue`]
//!   codecs, keeps the L2 [`book`]s with their sequence checks, journals everything and publishes
//!   `MarketEvent`s; the [`strategy`] stage runs the per-symbol [`analytics`] and the four-level
//!   decision of [`signals`], journals each `Decision` and emits `OrderIntent`s. [`latency`]
//!   holds the per-hop histograms recorded from the events' stamps.
//! * Still to come: the risk gate and position monitor, and the gateway that sends orders (the
//!   request signing in [`venue::binance::sign`] is in place) and keeps the order state machine.

/// Declares a set of `u64` counters written by one thread and read by others: `$stats` holds
/// them as `AtomicU64`s (written with plain relaxed stores by the owning thread, so no
/// read-modify-write on the hot path), `$counters` is a plain snapshot, `$stats::snapshot`
/// takes one.
macro_rules! atomic_counters {
    ($(#[$sm:meta])* $stats:ident, $(#[$cm:meta])* $counters:ident,
     $( $(#[$m:meta])* $f:ident ),+ $(,)?) => {
        $(#[$sm])*
        #[derive(Debug, Default)]
        pub struct $stats {
            $( $(#[$m])* $f: std::sync::atomic::AtomicU64, )+
        }

        $(#[$cm])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $counters {
            $( $(#[$m])* pub $f: u64, )+
        }

        impl $stats {
            /// The current values.
            pub fn snapshot(&self) -> $counters {
                $counters { $( $f: self.$f.load(std::sync::atomic::Ordering::Relaxed), )+ }
            }
        }
    };
}

pub mod affinity;
pub mod analytics;
pub mod book;
pub mod codec;
pub mod datadir;
pub mod event;
pub mod feed;
pub mod fixed;
pub mod gateway;
pub mod instrument;
pub mod latency;
pub mod live;
pub mod risk;
pub mod runtime;
pub mod signals;
pub mod snapshot;
pub mod strategy;
pub mod transport;
pub mod venue;
