//! The cold path of algo-engine: threads and tools that read the journal after the fact.
//!
//! Nothing here runs on a hot thread or can slow one down: every component is a journal tailer
//! with its own cursor, and one that falls behind only lags. [`inspect`] summarises and verifies a
//! journal directory (segments, record counts by kind, time range, CRC check) and renders records
//! for `algo-engine journal inspect|tail`. [`capture`] reads the recorded capture formats
//! (hftbacktest, cryptofeed, Lean FX), [`import`] turns a capture into a journal through the
//! real venue decoders and book synchronisation (`algo-engine import`), and [`stats`] computes
//! exact per-symbol statistics from a journal (`algo-engine journal stats`); [`replay`] loads
//! a capture into memory for the feed stage to replay (`algo-engine run`, the feed benchmark).
//! [`cursor`] persists where each cold consumer resumes after a restart. Storage export, notifications, reconciliation, metrics and the admin API join it as further
//! tailers.

pub mod capture;
pub mod cursor;
pub mod import;
pub mod inspect;
pub mod replay;
pub mod stats;
