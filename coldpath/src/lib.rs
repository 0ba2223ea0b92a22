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
//! [`reconcile`] compares the venue's open orders and balances with the gateway journal before
//! trading starts. [`cursor`] persists where each cold consumer resumes after a restart. [`notify`] tails
//! journals and delivers alerts (webhook, Slack, Discord, Telegram, SendGrid, SMTP) by severity. [`metrics`] tails the
//! journals and serves `/metrics` for Prometheus (counters, book state, P&L, per-hop latency). [`admin`] serves the HTTP + JSON admin API (bearer token; watchlist,
//! status, positions, halt/resume, config reload), sending commands to the hot path through the
//! control ring and journaling them. [`export`] tails the journals and writes per-symbol Parquet
//! files (trades, 1m/5m/15m candles, decisions, executions) under
//! `data/{exchange}/{market_type}/{symbol}/`, applying the retention rules. [`backtest`] reads a
//! finished run's journals into a report (P&L, Sharpe/Sortino, drawdown, exits, slippage;
//! Markdown, CSV, JSON, SVG) and holds the parameter-sweep and A/B statistics of
//! `algo-engine backtest|sweep`. Storage export, notifications, reconciliation, metrics and the admin API join it as further
//! tailers.

pub mod admin;
pub mod backtest;
pub mod capture;
pub mod cursor;
pub mod export;
pub mod import;
pub mod inspect;
pub mod metrics;
pub mod notify;
pub mod reconcile;
pub mod replay;
pub mod stats;
