//! Venue codecs: the bytes of each venue's market-data and order-entry protocols, turned into
//! the engine's events and back.
//!
//! Codecs are kept apart from engine logic, as hftbacktest and NautilusTrader do with their
//! per-exchange connectors: a codec knows a venue's wire format (JSON shapes, field names,
//! timestamps in milliseconds, decimal strings) and nothing about books, signals or risk, while
//! every stage after the feed sees only venue-neutral [`MarketEvent`](crate::event::MarketEvent)s
//! keyed by [`InstrumentId`](crate::instrument::InstrumentId). A new venue is a new module here
//! plus its instruments in the table; the strategy, the book and the journal do not change, and
//! a codec can be tested, fuzzed and benchmarked on recorded captures alone.

pub mod binance;
