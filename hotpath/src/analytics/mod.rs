//! Order-flow analytics, per symbol, updated in O(1) (amortised) per event and allocation-free
//! after warm-up (in progress).
pub mod orderflow;
pub mod candles;
pub mod indicators;
pub mod stats;
pub mod timeframes;
pub mod profile;
pub mod zones;
