//! The latency tap: a stage that drains a `MarketEvent` ring and records how long each event
//! took to get there.
//!
//! It stands where the strategy stage attaches (same ring, same stamps), so the feed-to-strategy
//! hop can be measured in any thread layout without the strategy's own work in the numbers. Per
//! event it stamps `StrategyIn` and records two latencies into preallocated HDR histograms:
//! receive -> decoded (the feed's own work on the frame) and decoded -> here (the ring hop,
//! including any wait for the consumer's thread). Recording is a few adds into a fixed array: no
//! allocation, no lock; the histograms are handed over once, at shutdown.

use crate::event::{MarketEvent, Stage as StampStage};
use crate::runtime::Stage;
use hdrhistogram::Histogram;
use ringbuffers::spsc::Consumer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Histograms (nanoseconds) and counts the tap collected.
#[derive(Clone, Debug)]
pub struct TapReport {
    /// Events drained.
    pub events: u64,
    /// Receive stamp -> decoded stamp.
    pub decode_ns: Histogram<u64>,
    /// Decoded stamp -> taken off the ring by the tap.
    pub hop_ns: Histogram<u64>,
}

impl Default for TapReport {
    fn default() -> Self {
        let h =
            || Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("static bounds are valid");
        TapReport {
            events: 0,
            decode_ns: h(),
            hop_ns: h(),
        }
    }
}

/// The tap stage.
pub struct LatencyTap {
    input: Consumer<MarketEvent>,
    clock: quanta::Clock,
    upstream_done: Arc<AtomicBool>,
    report: TapReport,
    out: Arc<Mutex<TapReport>>,
    batch: usize,
}

impl LatencyTap {
    /// Drains `input` up to `batch` events per poll; finishes once `upstream_done` is set and
    /// the ring is empty; writes its report to `out` at shutdown.
    pub fn new(
        input: Consumer<MarketEvent>,
        upstream_done: Arc<AtomicBool>,
        batch: usize,
        out: Arc<Mutex<TapReport>>,
    ) -> Self {
        LatencyTap {
            input,
            clock: quanta::Clock::new(),
            upstream_done,
            report: TapReport::default(),
            out,
            batch: batch.max(1),
        }
    }
}

impl Stage for LatencyTap {
    fn name(&self) -> &str {
        "tap"
    }

    fn poll(&mut self) -> usize {
        let now = self.clock.raw();
        let clock = &self.clock;
        let report = &mut self.report;
        self.input.read_batch(self.batch, |ev| {
            let mut stamps = ev.stamps;
            stamps.stamp(StampStage::StrategyIn, now);
            if let Some(d) = stamps.since_recv(StampStage::Decoded) {
                let _ = report.decode_ns.record(clock.delta_as_nanos(0, d).max(1));
            }
            if let Some(h) = stamps.between(StampStage::Decoded, StampStage::StrategyIn) {
                let _ = report.hop_ns.record(clock.delta_as_nanos(0, h).max(1));
            }
            report.events += 1;
        })
    }

    fn finished(&self) -> bool {
        // Acquire pairs with the feed's Release store of `done`.
        self.upstream_done.load(Ordering::Acquire) && self.input.is_empty()
    }

    fn shutdown(&mut self) {
        if let Ok(mut out) = self.out.lock() {
            *out = self.report.clone();
        }
    }
}
