//! The admin API: HTTP + JSON with bearer-token auth, on a cold thread of its own.
//!
//! Why it exists: an operator (or a script) must be able to see what the engine is doing and
//! steer it without touching the hot path's memory: list and edit the watchlist, ask the venue
//! which symbols are most liquid, read status and positions, pull the kill switch
//! (halt/resume) and request a configuration reload. Every command that changes the engine's
//! behaviour becomes a fixed-size [`Control`](hotpath::event::Control) event that reaches the
//! hot path through its SPSC control ring and is journaled, so what an operator did is part of
//! the record a replay reads.
//!
//! How the pieces fit:
//!
//! * [`AdminConfig`] says where to listen, which [`AdminToken`] to require (from an environment
//!   variable or a `0600` file; without one the service refuses to start), the body limit, the
//!   watchlist TTL and the venue REST base URL used by `top-liquid`.
//! * [`AdminState`] is what handlers share: the instrument table (symbol -> `InstrumentId`),
//!   the [`Watchlist`] with wall-clock expiries (this is the cold path; the hot path gets the
//!   expiry in the command and applies it in event time), a [`ControlSink`] through which
//!   commands go to the hot path ([`RingControlSink`]: an SPSC producer plus a journal of its
//!   own), a [`StatusSource`] for status/positions ([`SharedStatus`] is a simple one) and an
//!   optional [`ConfigReloader`].
//! * [`spawn`] binds the socket (errors surface to the caller), then serves the axum router of
//!   the private `http` module on a current-thread tokio runtime on a thread named `admin-api`;
//!   the [`AdminHandle`] stops it and joins the thread when dropped.
//!
//! Errors are JSON bodies `{"error": "<code>", "message": "<text>"}` with a 4xx/5xx status:
//! 401 without or with a wrong token (checked before routing, so unknown paths do not leak), 400
//! malformed JSON, 415 wrong content type, 413 body over the limit, 422 unknown symbol or
//! invalid field, 404 unknown path or a symbol not on the watchlist, 502 venue failure, 503
//! control ring full. The token is never logged; its `Debug` is redacted.

mod control;
mod http;
mod status;
mod token;
mod watchlist;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hotpath::instrument::{InstrumentId, InstrumentTable};

pub use control::{ControlError, ControlSink, RingControlSink, ADMIN_JOURNAL_DIR};
pub use status::{
    ConfigReloader, GenerationCounter, PositionSnapshot, SharedStatus, StatusSnapshot, StatusSource,
};
pub use token::{AdminToken, TokenError, DEFAULT_TOKEN_ENV};
pub use watchlist::{WatchEntry, Watchlist};

/// Nanoseconds per hour.
const NS_PER_HOUR: u64 = 3_600 * 1_000_000_000;

/// A wall clock in ns since the Unix epoch; injectable so tests can move time.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    })
}

/// Where and how the admin API serves.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Listen address (`127.0.0.1:8081`; port 0 picks a free port, see [`AdminHandle::addr`]).
    pub bind: SocketAddr,
    /// The bearer token; `None` (or empty) refuses to start.
    pub token: Option<AdminToken>,
    /// Largest request body in bytes; larger bodies get 413.
    pub max_body: usize,
    /// Default lifetime of a watchlist entry (24 h).
    pub watchlist_ttl: Duration,
    /// Longest lifetime a request may ask for with `duration_hours` (7 days).
    pub max_watchlist_ttl: Duration,
    /// Venue REST base URL for `top-liquid` (`https://api.binance.com`; tests point it at a
    /// loopback stub or the simulator). `GET {base}/api/v3/ticker/24hr` is called.
    pub venue_rest_url: String,
    /// How many symbols `top-liquid` returns (15).
    pub top_liquid_count: usize,
    /// Timeout of the venue call.
    pub venue_timeout: Duration,
}

impl AdminConfig {
    /// Defaults: 16 KiB bodies, 24 h TTL (at most 7 days), Binance spot REST, top 15, 10 s.
    pub fn new(bind: SocketAddr, token: Option<AdminToken>) -> Self {
        AdminConfig {
            bind,
            token,
            max_body: 16 * 1024,
            watchlist_ttl: Duration::from_secs(24 * 3_600),
            max_watchlist_ttl: Duration::from_secs(7 * 24 * 3_600),
            venue_rest_url: "https://api.binance.com".to_string(),
            top_liquid_count: 15,
            venue_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token configured: an unauthenticated kill switch is not an option.
    #[error("admin API: no bearer token configured (set {DEFAULT_TOKEN_ENV} or a 0600 token file); refusing to start")]
    NoToken,
    /// The listen socket could not be bound.
    #[error("admin API: binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The runtime or thread could not be created.
    #[error("admin API: starting the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Request counters of the admin API (reported under `admin` by `GET /api/v1/status`).
#[derive(Debug, Default)]
pub struct AdminCounters {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests refused with 401.
    pub unauthorized: AtomicU64,
    /// Requests answered with another 4xx/5xx.
    pub rejected: AtomicU64,
    /// Commands accepted by the control sink.
    pub commands: AtomicU64,
}

impl AdminCounters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "unauthorized": self.unauthorized.load(Ordering::Relaxed),
            "rejected": self.rejected.load(Ordering::Relaxed),
            "commands": self.commands.load(Ordering::Relaxed),
        })
    }
}

/// Everything the handlers share.
pub struct AdminState {
    instruments: BTreeMap<String, InstrumentId>,
    watchlist: Mutex<Watchlist>,
    control: Arc<dyn ControlSink>,
    status: Arc<dyn StatusSource>,
    reloader: Option<Arc<dyn ConfigReloader>>,
    clock: WallClock,
    counters: AdminCounters,
}

impl AdminState {
    /// State over an instrument table given as `(symbol, id)` pairs (symbols are matched
    /// case-insensitively), a control sink and a status source; system clock, no reloader.
    pub fn new(
        instruments: impl IntoIterator<Item = (String, InstrumentId)>,
        control: Arc<dyn ControlSink>,
        status: Arc<dyn StatusSource>,
    ) -> Self {
        AdminState {
            instruments: instruments
                .into_iter()
                .map(|(s, id)| (s.to_ascii_uppercase(), id))
                .collect(),
            watchlist: Mutex::new(Watchlist::default()),
            control,
            status,
            reloader: None,
            clock: system_clock(),
            counters: AdminCounters::default(),
        }
    }

    /// The `(symbol, id)` pairs of an engine instrument table (every venue; a symbol listed on
    /// two venues keeps the first id, so pass a per-venue table when that matters).
    pub fn instruments_from_table(table: &InstrumentTable) -> Vec<(String, InstrumentId)> {
        table
            .iter()
            .map(|(id, spec)| (spec.symbol.as_str().to_string(), id))
            .collect()
    }

    /// Replace the wall clock (tests).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Set the configuration reloader behind `POST /api/v1/config/reload`.
    pub fn with_reloader(mut self, reloader: Arc<dyn ConfigReloader>) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// The instrument id of `symbol` (case-insensitive).
    pub fn instrument(&self, symbol: &str) -> Option<InstrumentId> {
        self.instruments
            .get(&symbol.trim().to_ascii_uppercase())
            .copied()
    }

    /// The live (unexpired) watchlist entries now.
    pub fn watchlist(&self) -> Vec<WatchEntry> {
        let now = (self.clock)();
        self.lock_watchlist().active(now)
    }

    /// The request counters.
    pub fn counters(&self) -> &AdminCounters {
        &self.counters
    }

    fn lock_watchlist(&self) -> std::sync::MutexGuard<'_, Watchlist> {
        // A handler that panicked mid-update leaves a map that is still a valid map.
        self.watchlist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running admin API; dropping it shuts the server down and joins its thread.
pub struct AdminHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<AdminState>,
}

impl AdminHandle {
    /// The bound address (the real port when `bind` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (watchlist, counters).
    pub fn state(&self) -> &Arc<AdminState> {
        &self.state
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the admin API on its own cold thread. Fails without a token, or if the address
/// cannot be bound.
pub fn spawn(config: AdminConfig, state: AdminState) -> Result<AdminHandle, AdminError> {
    let token = match &config.token {
        Some(t) if !t.is_empty() => t.clone(),
        _ => return Err(AdminError::NoToken),
    };
    let listener = std::net::TcpListener::bind(config.bind).map_err(|source| AdminError::Bind {
        addr: config.bind,
        source,
    })?;
    let addr = listener.local_addr().map_err(AdminError::Runtime)?;
    listener
        .set_nonblocking(true)
        .map_err(AdminError::Runtime)?;
    let state = Arc::new(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminError::Runtime)?;
    let shared = http::Shared {
        state: state.clone(),
        config: config.clone(),
        token,
    };
    let thread = std::thread::Builder::new()
        .name("admin-api".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin API: listener");
                        return;
                    }
                };
                let app = http::router(Arc::new(shared));
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
        })
        .map_err(AdminError::Runtime)?;
    tracing::info!(%addr, "admin API listening");
    Ok(AdminHandle {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
        state,
    })
}
