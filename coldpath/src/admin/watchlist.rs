//! The manual watchlist: symbols an operator added, each with a wall-clock expiry.

use std::collections::BTreeMap;

use hotpath::instrument::InstrumentId;
use serde::Serialize;

use crate::inspect::format_unix_ns;

/// One watchlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchEntry {
    /// Venue symbol (upper case).
    pub symbol: String,
    /// Its instrument id.
    pub instrument: u32,
    /// Priority given when added (seed: 1..=5, default 3).
    pub priority: u8,
    /// When it was added, ns since the epoch.
    pub added_unix_ns: u64,
    /// When it expires, ns since the epoch.
    pub expires_unix_ns: u64,
    /// `expires_unix_ns` as an ISO 8601 UTC string.
    pub expires_at: String,
}

/// Entries by symbol. Expired entries are dropped whenever the list is read or changed.
#[derive(Debug, Default)]
pub struct Watchlist {
    entries: BTreeMap<String, WatchEntry>,
}

impl Watchlist {
    /// Drop entries whose expiry is at or before `now`.
    pub fn purge(&mut self, now: u64) {
        self.entries.retain(|_, e| e.expires_unix_ns > now);
    }

    /// The live entries at `now`, by symbol.
    pub fn active(&mut self, now: u64) -> Vec<WatchEntry> {
        self.purge(now);
        self.entries.values().cloned().collect()
    }

    /// Add (or replace) an entry.
    pub fn add(
        &mut self,
        symbol: &str,
        id: InstrumentId,
        priority: u8,
        now: u64,
        expires: u64,
    ) -> WatchEntry {
        self.purge(now);
        let e = WatchEntry {
            symbol: symbol.to_string(),
            instrument: id.0,
            priority,
            added_unix_ns: now,
            expires_unix_ns: expires,
            expires_at: format_unix_ns(expires),
        };
        self.entries.insert(symbol.to_string(), e.clone());
        e
    }

    /// True if `symbol` has a live entry at `now`.
    pub fn contains(&mut self, symbol: &str, now: u64) -> bool {
        self.purge(now);
        self.entries.contains_key(symbol)
    }

    /// Set a live entry's expiry; `None` if there is none.
    pub fn renew(&mut self, symbol: &str, now: u64, expires: u64) -> Option<WatchEntry> {
        self.purge(now);
        let e = self.entries.get_mut(symbol)?;
        e.expires_unix_ns = expires;
        e.expires_at = format_unix_ns(expires);
        Some(e.clone())
    }

    /// Remove a live entry; `None` if there is none.
    pub fn remove(&mut self, symbol: &str, now: u64) -> Option<WatchEntry> {
        self.purge(now);
        self.entries.remove(symbol)
    }
}
