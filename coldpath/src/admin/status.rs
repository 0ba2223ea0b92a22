//! What `status` and `positions` report, and how a configuration reload is requested: traits
//! the engine implements, plus simple implementations over shared snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// Provides the JSON of `GET /api/v1/status` (under `engine`) and `GET /api/v1/positions`.
pub trait StatusSource: Send + Sync {
    /// Engine status.
    fn status(&self) -> serde_json::Value;
    /// Open positions.
    fn positions(&self) -> serde_json::Value;
}

/// Validates and loads a new configuration; the returned generation is sent to the hot path
/// as `ControlKind::ConfigReload`'s argument. An error is returned to the caller as 422 and no
/// command is sent.
pub trait ConfigReloader: Send + Sync {
    /// Reload; the new configuration generation.
    fn reload(&self) -> Result<u64, String>;
}

/// A [`ConfigReloader`] that only counts generations (the hot path re-reads its configuration
/// file when it sees the command).
#[derive(Debug, Default)]
pub struct GenerationCounter(AtomicU64);

impl ConfigReloader for GenerationCounter {
    fn reload(&self) -> Result<u64, String> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Engine status as published by the engine for the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// Trading state (`active`, `reducing`, `halted`).
    pub trading_state: String,
    /// Start time, ns since the epoch.
    pub started_unix_ns: u64,
    /// Instruments traded.
    pub instruments: usize,
    /// Free-form counters (events, decisions, orders...).
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// One open position, decimals as exact strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionSnapshot {
    /// Venue symbol.
    pub symbol: String,
    /// `long` or `short`.
    pub side: String,
    /// Quantity.
    pub qty: String,
    /// Average entry price.
    pub entry_price: String,
    /// Unrealised profit and loss in the quote asset.
    pub unrealized_pnl: String,
}

/// A [`StatusSource`] over snapshots the engine replaces whenever it likes.
#[derive(Debug, Default)]
pub struct SharedStatus {
    status: RwLock<StatusSnapshot>,
    positions: RwLock<Vec<PositionSnapshot>>,
}

impl SharedStatus {
    /// Publish a new status.
    pub fn set_status(&self, s: StatusSnapshot) {
        *self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    /// Publish the open positions.
    pub fn set_positions(&self, p: Vec<PositionSnapshot>) {
        *self
            .positions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = p;
    }
}

impl StatusSource for SharedStatus {
    fn status(&self) -> serde_json::Value {
        let s = self
            .status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::to_value(&*s).unwrap_or(serde_json::Value::Null)
    }

    fn positions(&self) -> serde_json::Value {
        let p = self
            .positions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::json!({ "positions": &*p })
    }
}
