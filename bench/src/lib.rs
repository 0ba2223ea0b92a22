//! The measuring side of algo-engine.
//!
//! `harness` holds what every suite shares (pinning, the TSC clock, HDR histograms, the cost of
//! the measurement itself, and the report that is printed as a table and saved as JSON). Each
//! suite module measures one component against its peers in the same process and run, so the
//! ratios it prints are not skewed by a different machine state: `rings` (the SPSC ring against
//! disruptor, crossbeam and std), `journal` (the memory-mapped journal against a naive mmap
//! append), `decode` (the Binance scanner against serde_json and simd-json on the real captures),
//! `sockets` (loopback round trip through the mio, io_uring and blocking socket drivers),
//! `feed` (the feed stage end to end on the real captures, frame bytes to events in the ring),
//! `strategy` (the whole strategy per market event, and its scaling with active symbols), `risk`
//! (the strategy with and without the risk chain and position monitor), `layout` (the fused and
//! split thread profiles side by side), `tick` (in-process tick-to-order: frame in the receive
//! buffer to signed order bytes), `cold` (the hot path's latency alone and with every
//! cold-path consumer tailing its journals), `replay` (`replay_throughput`: a recorded journal
//! replayed through the stages at max pace against a read-only scan of it), `wire`
//! (wire-to-wire through the venue simulator, the engine's hot path between its sockets, against
//! the kernel's loopback round trip) and `order_transport` (the gateway's place->ack round trip
//! over REST and over the WebSocket API against the simulator). `report` turns a run into
//! `report.md` with SVG plots.
//! The `algo-bench` binary runs the suites; `scripts/bench.sh` is the documented entry.
//!
//! `sim` is the venue simulator (a Binance-compatible venue on loopback; see its module docs).

pub mod cold;
pub mod decode;
pub mod feed;
pub mod harness;
pub mod journal;
pub mod layout;
pub mod order_transport;
pub mod replay_throughput;
pub mod report;
pub mod rings;
pub mod risk;
pub mod sim;
pub mod sockets;
pub mod strategy;
pub mod tick_to_order;
pub mod wire;
