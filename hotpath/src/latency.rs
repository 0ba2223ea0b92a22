//! Per-hop latency histograms recorded on the hot path from the events' own stamps.
//!
//! The strategy stage records, for every event it takes off the feed ring, two latencies into
//! preallocated HDR histograms: receive -> decoded (the feed's work on the frame) and decoded ->
//! strategy (the ring hop, including any wait for the strategy's thread). Recording is a few
//! adds into fixed arrays: no allocation, no lock; the histograms are handed to the cold side
//! once, at shutdown, so the same numbers come out of any thread layout.

use crate::event::{Stage as StampStage, Stamps};
use hdrhistogram::Histogram;

/// Histograms (nanoseconds) of the feed -> strategy path, and how many events they cover.
#[derive(Clone, Debug)]
pub struct LatencyReport {
    /// Events recorded.
    pub events: u64,
    /// Receive stamp -> decoded stamp.
    pub decode_ns: Histogram<u64>,
    /// Decoded stamp -> taken off the ring by the strategy.
    pub hop_ns: Histogram<u64>,
}

impl LatencyReport {
    /// Records one event that reached the strategy's seat: receive -> decoded and decoded ->
    /// `StrategyIn` (stamps that are missing are skipped). No allocation.
    #[inline]
    pub fn record(&mut self, clock: &quanta::Clock, stamps: &Stamps) {
        if let Some(d) = stamps.since_recv(StampStage::Decoded) {
            let _ = self.decode_ns.record(clock.delta_as_nanos(0, d).max(1));
        }
        if let Some(h) = stamps.between(StampStage::Decoded, StampStage::StrategyIn) {
            let _ = self.hop_ns.record(clock.delta_as_nanos(0, h).max(1));
        }
        self.events += 1;
    }
}

impl Default for LatencyReport {
    fn default() -> Self {
        let h =
            || Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("static bounds are valid");
        LatencyReport {
            events: 0,
            decode_ns: h(),
            hop_ns: h(),
        }
    }
}
