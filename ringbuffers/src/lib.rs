//! Lock-free queues and the memory-mapped journal that connect algo-engine's stages.
//!
//! Hot-path stages talk through [`spsc`] rings: one producer, one consumer, fixed-size `Copy`
//! slots written in place, with the [`wait`] strategies a pinned thread uses when a ring is empty.
//! When one producer must feed several independent consumers (the feed to the strategy and to a
//! metrics tap), [`broadcast`] wraps the `disruptor` crate. Cold-path fan-in, where latency does
//! not matter but many threads report to one, uses the crossbeam-based [`mpsc`]. Everything that
//! crosses the process boundary, or must survive it, goes through the [`journal`]: a segmented,
//! append-only, memory-mapped log with one wait-free appender and any number of tailers.
//! Where a hot-path item may not be lost (order intents, execution reports), the ring's producer
//! is wrapped in an [`outlet`], which holds what a full ring cannot take and flushes it, in
//! order, on the stage's next poll.

pub mod broadcast;
pub mod journal;
pub mod mpsc;
pub mod outlet;
pub mod spsc;
pub mod wait;
