//! The live market-data source: Binance combined streams over the engine's own sockets.
//!
//! [`LiveSource`] is the [`FrameSource`] of live trading. The feed stage cannot tell it from a
//! replayed capture: each [`next_frame`](FrameSource::next_frame) copies one complete text
//! message of the venue's combined stream (`{"stream":"btcusdt@trade","data":{..}}`) into the
//! feed's buffer, or says [`SourcePoll::Idle`]. Around that it keeps the connection alive, and
//! that is what this module is about:
//!
//! * **Which streams.** The request target is built from configured symbols and stream kinds
//!   ([`stream_names`]): `/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms`
//!   on `wss://stream.binance.com:9443` (spot), `wss://fstream.binance.com` (USD-M) or
//!   `wss://dstream.binance.com` (COIN-M). The URL carries the subscription, so every
//!   (re)connect resubscribes by construction. The endpoint is configurable (tests point it at
//!   `ws://127.0.0.1:PORT`, without TLS).
//! * **Which sockets.** A [`net::socket`] driver chosen by configuration after
//!   [`net::onload::choose_driver`] (which logs what it found and forces mio/epoll when
//!   OpenOnload is present, because io_uring would bypass it), `rustls` for `wss://`, and
//!   [`net::ws::WsClient`], which decodes frames in place, reassembles fragments and answers
//!   pings. The blocking `std` driver is refused: it would block the hot thread.
//! * **Never blocking.** Connecting is a non-blocking `connect` whose TCP, TLS and WebSocket
//!   handshakes progress across polls; a handshake that takes longer than
//!   [`LiveConfig::connect_timeout`] counts as a failed attempt. Name resolution (blocking
//!   `getaddrinfo`) happens once, in [`LiveSource::new`], on the caller's thread; reconnects
//!   rotate through the resolved addresses.
//! * **Staying up.** [`net::reconnect::Reconnector`] decides: jittered exponential backoff after
//!   a failure (reset only after a connection stayed up for [`LiveConfig::stable_after`]); a
//!   connection that is up but has received nothing (data, ping or pong) for
//!   [`LiveConfig::silence`] is treated as down; one older than [`LiveConfig::max_age`] is
//!   recycled before Binance cuts it at 24 hours. When the stream has been quiet for
//!   [`LiveConfig::ping_after`] the source pings the venue, so a quiet market answers with a pong
//!   and only a dead path goes silent.
//! * **Telling the consumers.** Every session start and loss is reported through
//!   [`FrameSource::take_event`]: the feed journals `market_data_connected`,
//!   `market_data_connection_lost` and `market_data_connection_restored` records (with
//!   `resync=1` on each new session: sequence chains restart, books need a new snapshot) in
//!   stream order, before the first frame of the new session, and counts them.
//! * **Book snapshots.** With [`LiveSource::with_snapshots`] the source owns a
//!   [`SnapshotFetcher`] (a cold thread doing the REST depth requests) and a list of the
//!   instruments it may fetch. It asks for a snapshot of every one of them when a session opens
//!   (if a depth stream is subscribed) and whenever the feed's books ask
//!   ([`FrameSource::request_snapshot`]), at most one request per instrument in flight. Each
//!   request is tagged with the connection epoch (which moves on every loss); a body that comes
//!   back for an earlier epoch describes the previous session's book and is discarded (and
//!   requested again), the others are delivered as frames with
//!   [`SourcePoll::Frame::rest`] set, before the socket is read, so the feed journals and
//!   decodes them like any message. A request made while no session is open, or that the
//!   fetcher's ring cannot take, is kept in a per-instrument flag and sent on a later poll once
//!   a session is open (stream first, snapshot second, as Binance documents it).
//! * **Candle history.** [`LiveSource::warm_up`] fetches the recent klines of each timeframe
//!   through the same fetcher before the stream opens (blocking, on the set-up thread) and
//!   delivers them as the first frames, flagged [`RestBody::Klines`]: the strategy warms its
//!   15-minute regime up from a day of candles instead of waiting a day.
//! * **Time** comes from a caller-supplied [`LiveClock`]: [`SystemClock`] in production
//!   (calibrated TSC, re-anchored to the wall clock once a second), [`ManualClock`] in tests that
//!   need to cross a 24-hour boundary in a millisecond.
//!
//! # The one copy
//!
//! A message is copied once, from the WebSocket receive buffer (where it was unmasked and, if
//! fragmented, reassembled) into the feed's buffer. The copy is kept deliberately: the feed
//! journals the raw bytes and then lets the decoder modify them in place (simd-json does), so it
//! needs a buffer it owns for the whole poll, while the WebSocket buffer is recycled at the next
//! socket read. Lending the socket buffer instead would need a borrowing variant of
//! [`FrameSource`] and would tie the journal append and the decode to the socket's buffer
//! management; a `memcpy` of a typical 100-600-byte message into a buffer that stays in L1 is
//! small next to scanning and journaling the same bytes, and it is the copy
//! [`ReplaySource`](crate::feed::ReplaySource) makes too, so live and replay run identical feed
//! code.
//!
//! # Allocation
//!
//! Steady state over `ws://` (messages, pings, liveness checks, probes) allocates nothing:
//! `tests/live_feed.rs` counts the polling thread's allocations over a whole real session. Over
//! `wss://` the steady state is allocation-free too once the handshake is done (see
//! [`net::socket::TlsTransport`]; `hotpath/net/tests/tls.rs` counts it). A (re)connect
//! allocates: the `net` crate creates the socket driver's and the WebSocket client's buffers per
//! connection, and error texts are formatted for the log. Reconnects are rare and already mean
//! lost data; the journal records them.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use net::reconnect::{Action, Backoff, Health, Liveness, Reconnector};
use net::socket::{AnyTransport, NetError, SocketConfig, TlsTransport};
use net::ws::{CloseCode, Message, WsClient, WsConfig, WsError, WsState};

use crate::feed::{FrameSource, RestBody, SourceEvent, SourceEventKind, SourcePoll};
use crate::instrument::{InstrumentId, Symbol, Venue};
use crate::snapshot::{SnapshotFetcher, SnapshotOutcome};
use crate::transport::MaybeTls;

/// The socket driver choice, re-exported so configuring a live source needs no `net` import.
pub use net::socket::DriverKind;

/// Most streams one Binance connection may subscribe to.
pub const MAX_STREAMS: usize = 1024;

/// Kline intervals Binance streams (`<symbol>@kline_<interval>`).
pub const KLINE_INTERVALS: [&str; 16] = [
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
];

/// Connection events waiting for the feed; more than this means the feed is not draining them.
const MAX_PENDING_EVENTS: usize = 8;

/// WebSocket messages (data or control) handled in one `next_frame` call at most.
const MAX_MESSAGES_PER_POLL: usize = 16;

/// Longest interval between liveness/age checks while messages keep arriving.
const HOUSEKEEPING_NS: u64 = 1_000_000;

/// Payload of the liveness probe ping.
const PROBE_PAYLOAD: &[u8] = b"algo-engine liveness";

/// Why a live source could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Invalid configuration (symbols, streams, endpoint, driver).
    #[error("{0}")]
    Config(String),
    /// The endpoint's host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// `host:port`.
        host: String,
        /// Resolver error.
        source: io::Error,
    },
    /// Socket or TLS setup failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The WebSocket client could not be created.
    #[error(transparent)]
    Ws(#[from] WsError),
}

fn config_err(msg: impl Into<String>) -> LiveError {
    LiveError::Config(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Streams and endpoints
// ---------------------------------------------------------------------------------------------

/// A kind of Binance market stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `<symbol>@trade`.
    Trade,
    /// `<symbol>@aggTrade`.
    AggTrade,
    /// `<symbol>@bookTicker`.
    BookTicker,
    /// Diff depth, `<symbol>@depth@<ms>ms`, at the given update speed in milliseconds, or at
    /// this engine's default for the venue (`None`): 100 ms on spot and COIN-M, 0 ms (every
    /// update, with `pu`) on USD-M.
    Depth(Option<u16>),
    /// `<symbol>@kline_<interval>`, one of [`KLINE_INTERVALS`].
    Kline(&'static str),
}

impl StreamKind {
    /// Parses `trade`, `aggTrade`, `bookTicker`, `depth`, `depth@<ms>ms` or `kline_<interval>`
    /// (names case-insensitive; the kline interval is case-sensitive: `1m` is a minute, `1M` a
    /// month).
    pub fn parse(s: &str) -> Result<StreamKind, LiveError> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "trade" => return Ok(StreamKind::Trade),
            "aggtrade" => return Ok(StreamKind::AggTrade),
            "bookticker" => return Ok(StreamKind::BookTicker),
            "depth" => return Ok(StreamKind::Depth(None)),
            _ => {}
        }
        if let Some(speed) = lower.strip_prefix("depth@") {
            let ms = speed
                .strip_suffix("ms")
                .and_then(|n| n.parse::<u16>().ok())
                .ok_or_else(|| config_err(format!("stream '{s}': use depth or depth@<ms>ms")))?;
            return Ok(StreamKind::Depth(Some(ms)));
        }
        if lower.starts_with("kline_") {
            let interval = &s["kline_".len()..];
            return KLINE_INTERVALS
                .iter()
                .find(|i| **i == interval)
                .map(|i| StreamKind::Kline(i))
                .ok_or_else(|| {
                    config_err(format!(
                        "stream '{s}': kline interval must be one of {}",
                        KLINE_INTERVALS.join(", ")
                    ))
                });
        }
        Err(config_err(format!(
            "unknown stream '{s}' (use trade, aggTrade, bookTicker, depth, depth@<ms>ms, kline_<interval>)"
        )))
    }

    /// Parses a comma-separated list (`trade,bookTicker,depth`).
    pub fn parse_list(s: &str) -> Result<Vec<StreamKind>, LiveError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(StreamKind::parse)
            .collect()
    }

    /// The stream name suffix on `venue` (`trade`, `depth@100ms`, ...).
    pub fn suffix(self, venue: Venue) -> Result<String, LiveError> {
        Ok(match self {
            StreamKind::Trade => "trade".into(),
            StreamKind::AggTrade => "aggTrade".into(),
            StreamKind::BookTicker => "bookTicker".into(),
            StreamKind::Kline(i) => format!("kline_{i}"),
            StreamKind::Depth(speed) => {
                let (default, plain, allowed): (u16, u16, &[u16]) = match venue {
                    Venue::BinanceSpot => (100, 1000, &[100, 1000]),
                    Venue::BinanceUsdM => (0, 250, &[0, 100, 250, 500]),
                    Venue::BinanceCoinM => (100, 250, &[100, 250, 500]),
                    v => return Err(config_err(format!("{} has no Binance streams", v.name()))),
                };
                let ms = speed.unwrap_or(default);
                if !allowed.contains(&ms) {
                    return Err(config_err(format!(
                        "depth@{ms}ms is not offered on {} (use one of {allowed:?} ms)",
                        venue.name()
                    )));
                }
                // The venue's own default speed is the plain `@depth` stream.
                if ms == plain {
                    "depth".into()
                } else {
                    format!("depth@{ms}ms")
                }
            }
        })
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKind::Trade => f.write_str("trade"),
            StreamKind::AggTrade => f.write_str("aggTrade"),
            StreamKind::BookTicker => f.write_str("bookTicker"),
            StreamKind::Depth(None) => f.write_str("depth"),
            StreamKind::Depth(Some(ms)) => write!(f, "depth@{ms}ms"),
            StreamKind::Kline(i) => write!(f, "kline_{i}"),
        }
    }
}

/// Checks a venue symbol (`BTCUSDT`, `BTCUSD_PERP`): ASCII letters, digits and `_`, 1 to 32
/// characters.
fn check_symbol(sym: &str) -> Result<(), LiveError> {
    let ok = !sym.is_empty()
        && sym.len() <= 32
        && sym.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(config_err(format!(
            "symbol '{sym}' is not a Binance symbol (letters, digits, '_')"
        )))
    }
}

/// The combined-stream names for `symbols` × `kinds` on `venue`, symbol by symbol
/// (`btcusdt@trade`, `btcusdt@bookTicker`, `btcusdt@depth@100ms`, `ethusdt@trade`, ...).
/// Duplicates are dropped; more than [`MAX_STREAMS`] is an error.
pub fn stream_names(
    venue: Venue,
    symbols: &[String],
    kinds: &[StreamKind],
) -> Result<Vec<String>, LiveError> {
    if symbols.is_empty() {
        return Err(config_err("no symbols to subscribe to"));
    }
    if kinds.is_empty() {
        return Err(config_err("no streams to subscribe to"));
    }
    let mut names: Vec<String> = Vec::with_capacity(symbols.len() * kinds.len());
    for sym in symbols {
        check_symbol(sym)?;
        let lower = sym.to_ascii_lowercase();
        for k in kinds {
            let name = format!("{lower}@{}", k.suffix(venue)?);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if names.len() > MAX_STREAMS {
        return Err(config_err(format!(
            "{} streams requested; one connection carries at most {MAX_STREAMS}",
            names.len()
        )));
    }
    Ok(names)
}

/// Binance's combined-stream endpoint of `venue`.
pub fn default_endpoint(venue: Venue) -> Option<&'static str> {
    match venue {
        Venue::BinanceSpot => Some("wss://stream.binance.com:9443/stream"),
        Venue::BinanceUsdM => Some("wss://fstream.binance.com/stream"),
        Venue::BinanceCoinM => Some("wss://dstream.binance.com/stream"),
        _ => None,
    }
}

/// A parsed `ws://` or `wss://` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `wss://`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 for `ws://`, 443 for `wss://`).
    pub port: u16,
    /// Path of the combined-stream endpoint (default `/stream`).
    pub path: String,
}

impl Endpoint {
    /// Parses `ws[s]://host[:port][/path]`. The query must be empty: the streams come from the
    /// configuration.
    pub fn parse(url: &str) -> Result<Endpoint, LiveError> {
        let bad = |why: &str| config_err(format!("endpoint '{url}': {why}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(bad("must start with ws:// or wss://"));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(bad(
                "must not carry a query; the streams come from the symbols and stream kinds",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        let path = if path.is_empty() || path == "/" {
            "/stream".to_string()
        } else {
            path.to_string()
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The `Host` header: the host, with the port unless it is the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request target subscribing to `streams`: `<path>?streams=a/b/c`.
    pub fn request_target(&self, streams: &[String]) -> String {
        format!("{}?streams={}", self.path, streams.join("/"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "wss" } else { "ws" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Configuration of a [`LiveSource`].
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Binance venue (spot, USD-M or COIN-M).
    pub venue: Venue,
    /// Venue symbols (`BTCUSDT`); any case.
    pub symbols: Vec<String>,
    /// Stream kinds, subscribed for every symbol.
    pub streams: Vec<StreamKind>,
    /// Endpoint override (`ws://127.0.0.1:9000`); `None`: Binance's ([`default_endpoint`]).
    pub endpoint: Option<String>,
    /// Socket driver wanted; [`net::onload::choose_driver`] may override it (it forces mio
    /// under OpenOnload). `std` is refused.
    pub driver: DriverKind,
    /// Socket options (its `driver` field is replaced by the chosen driver).
    pub socket: SocketConfig,
    /// WebSocket buffer sizes and limits.
    pub ws: WsConfig,
    /// First backoff ceiling after a failure (full jitter: the delay is uniform below it).
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
    /// Backoff jitter seed; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// A connection that received nothing (data, ping, pong) for longer than this is down.
    pub silence: Duration,
    /// Ping the venue after this much quiet so that a quiet market answers (should be well
    /// below [`silence`](Self::silence)); `None` never probes.
    pub ping_after: Option<Duration>,
    /// Recycle a connection this old (Binance disconnects every connection at 24 hours).
    pub max_age: Duration,
    /// A connection up this long proves the path: the backoff starts again from its base.
    pub stable_after: Duration,
    /// TCP + TLS + WebSocket handshake deadline of one attempt.
    pub connect_timeout: Duration,
}

impl LiveConfig {
    /// Defaults for `venue`, `symbols` and `streams`: Binance's endpoint, mio driver, backoff
    /// 100 ms doubling to 30 s, silence 30 s with a probe ping after 10 s (spot pings every
    /// 20 s, futures every 3 minutes; a probe makes silence mean a dead path), recycle after
    /// 23 h 50 min, stable after 60 s, 10 s handshake deadline.
    pub fn new(venue: Venue, symbols: &[&str], streams: &[StreamKind]) -> LiveConfig {
        LiveConfig {
            venue,
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            streams: streams.to_vec(),
            endpoint: None,
            driver: DriverKind::Mio,
            socket: SocketConfig::default(),
            ws: WsConfig::default(),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
            seed: None,
            silence: Duration::from_secs(30),
            ping_after: Some(Duration::from_secs(10)),
            max_age: Duration::from_secs(23 * 3600 + 50 * 60),
            stable_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

/// A reading of a [`LiveClock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic nanoseconds (any origin): backoff, liveness and connection age run on it.
    pub mono_ns: u64,
    /// Nanoseconds since the Unix epoch: the receive time of frames and connection events.
    pub unix_ns: u64,
}

/// The time source of a [`LiveSource`], supplied by the caller so tests can drive it.
pub trait LiveClock: Send {
    /// The current time. `mono_ns` never decreases; `unix_ns` should not either.
    fn now(&mut self) -> Now;
}

/// Production clock: `quanta`'s calibrated TSC for monotonic time (no syscall), and wall time
/// derived from it, re-anchored to `SystemTime` once a second so it cannot drift from NTP time.
/// `unix_ns` never goes backwards (a wall-clock step back is absorbed by holding it).
pub struct SystemClock {
    clock: quanta::Clock,
    origin: u64,
    anchor_mono: u64,
    anchor_unix: u64,
    last_unix: u64,
}

impl SystemClock {
    const REANCHOR_NS: u64 = 1_000_000_000;

    /// A clock whose monotonic origin is now.
    pub fn new() -> SystemClock {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        let anchor_unix = unix_now();
        SystemClock {
            clock,
            origin,
            anchor_mono: 0,
            anchor_unix,
            last_unix: anchor_unix,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl LiveClock for SystemClock {
    #[inline]
    fn now(&mut self) -> Now {
        let mono = self.clock.delta_as_nanos(self.origin, self.clock.raw());
        if mono.saturating_sub(self.anchor_mono) >= Self::REANCHOR_NS || mono < self.anchor_mono {
            self.anchor_unix = unix_now();
            self.anchor_mono = mono;
        }
        let unix = (self.anchor_unix + (mono - self.anchor_mono)).max(self.last_unix);
        self.last_unix = unix;
        Now {
            mono_ns: mono,
            unix_ns: unix,
        }
    }
}

/// A clock that moves only when told (tests): clones share the same time. Wall time is
/// [`ManualClock::UNIX_BASE`] plus the monotonic time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    mono: Arc<AtomicU64>,
}

impl ManualClock {
    /// Wall time at monotonic zero: 2024-01-01T00:00:00Z.
    pub const UNIX_BASE: u64 = 1_704_067_200_000_000_000;

    /// A clock at monotonic `start_ns`.
    pub fn new(start_ns: u64) -> ManualClock {
        ManualClock {
            mono: Arc::new(AtomicU64::new(start_ns)),
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.mono.fetch_add(d.as_nanos() as u64, Ordering::AcqRel);
    }

    /// The current monotonic time.
    pub fn mono_ns(&self) -> u64 {
        self.mono.load(Ordering::Acquire)
    }
}

impl LiveClock for ManualClock {
    fn now(&mut self) -> Now {
        let m = self.mono_ns();
        Now {
            mono_ns: m,
            unix_ns: Self::UNIX_BASE + m,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

atomic_counters! {
    /// Counters of a [`LiveSource`], shared through [`LiveSource::stats`]. Written only by
    /// the thread polling the source, readable from any thread.
    LiveStats,
    /// A snapshot of [`LiveStats`].
    LiveCounters,
    /// Connection attempts started.
    connect_attempts,
    /// Attempts that failed before the WebSocket handshake completed (refused, timed out,
    /// rejected by the server).
    connect_failures,
    /// Sessions established (WebSocket open).
    sessions,
    /// Established sessions lost (any reason).
    disconnects,
    /// Of those, torn down because the connection was silent past the threshold.
    silent_disconnects,
    /// Of those, recycled because they reached the maximum age.
    age_recycles,
    /// Data messages delivered to the feed.
    messages,
    /// Bytes of those messages.
    bytes,
    /// Pings received from the venue (each answered by the WebSocket client).
    pings_received,
    /// Liveness probe pings sent.
    pings_sent,
    /// Pongs received.
    pongs_received,
    /// Connection events dropped because the feed did not take them.
    events_dropped,
    /// Depth snapshot requests sent to the fetcher.
    snapshot_requests,
    /// Depth snapshots delivered to the feed.
    snapshots_delivered,
    /// Snapshots discarded because they were requested in an earlier session.
    snapshots_stale,
    /// Snapshot requests the fetcher gave up (see the log).
    snapshots_failed,
    /// Candle-history (klines) bodies fetched at warm-up.
    history_fetched,
    /// Candle-history bodies delivered to the feed.
    history_delivered,
}

/// `a += n` for a counter with a single writer.
#[inline]
fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// Wraps a plain transport in TLS for the configured server name.
type TlsConnect = Box<dyn Fn(AnyTransport) -> Result<TlsTransport<AnyTransport>, NetError> + Send>;

/// A TLS wrapper for `host` trusting the Mozilla roots (`webpki-roots`).
fn tls_connector(host: &str) -> Result<TlsConnect, LiveError> {
    let config = net::socket::webpki_client_config()?;
    let name = host
        .to_string()
        .try_into()
        .map_err(|_| config_err(format!("'{host}' is not a valid TLS server name")))?;
    Ok(Box::new(move |t| {
        TlsTransport::new(t, Arc::clone(&config), Clone::clone(&name))
    }))
}

/// The close frame the venue sent, if any (kept to explain the loss).
#[derive(Clone, Copy)]
struct CloseInfo {
    code: u16,
    reason: [u8; 64],
    len: u8,
}

impl CloseInfo {
    fn reason(&self) -> &str {
        std::str::from_utf8(&self.reason[..self.len as usize]).unwrap_or("")
    }
}

/// One connection attempt or session.
struct Conn {
    ws: WsClient<MaybeTls>,
    /// Monotonic time the attempt started.
    started_ns: u64,
    /// Monotonic time the WebSocket opened, once it has.
    open_since: Option<u64>,
    addr: SocketAddr,
    close: Option<CloseInfo>,
}

// SAFETY: every part of a `Conn` is `Send` except the io_uring driver's provided-buffer ring
// (`net::socket::uring::BufRing`), which holds a raw pointer to a heap allocation it owns
// exclusively (allocated in its constructor, freed in its `Drop`, never aliased outside the
// transport and the kernel); a raw pointer only makes the type `!Send` by default, not by any
// thread affinity. The ring itself is set up without `IORING_SETUP_SINGLE_ISSUER`, so it may be
// used from any thread, one at a time, which `&mut` access guarantees. `LiveSource` creates its
// connections lazily inside `next_frame`, i.e. on the thread that keeps polling it, so in the
// intended use a live connection is never moved at all (moving one would still be sound; io_uring
// would only cancel the in-flight receive if the old thread exited, which the source would see as
// a failed connection and reconnect).
unsafe impl Send for Conn {}

/// What one `WsClient::poll` gave, with the borrow of the client ended.
enum Got {
    Data(usize),
    Ping,
    Pong,
    Close,
    Nothing,
    Failed(WsError),
}

// ---------------------------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------------------------

/// The live Binance combined-stream source (see the module documentation).
///
/// Construct it anywhere (that is where name resolution happens), then hand it to the feed
/// stage: connections are created lazily by [`next_frame`](FrameSource::next_frame), on the
/// thread that polls it from then on.
pub struct LiveSource<C: LiveClock = SystemClock> {
    venue: Venue,
    endpoint: Endpoint,
    target: String,
    host_header: String,
    streams: Vec<String>,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    socket: SocketConfig,
    ws_cfg: WsConfig,
    tls: Option<TlsConnect>,
    reconnector: Reconnector,
    clock: C,
    conn: Option<Conn>,
    connect_timeout_ns: u64,
    silence_ns: u64,
    ping_after_ns: Option<u64>,
    /// Sessions opened so far.
    session: u64,
    /// Attempts since the last session opened (including the current one).
    attempts: u32,
    /// Monotonic time the last session was lost.
    lost_at: Option<u64>,
    last_rx: u64,
    last_housekeeping: u64,
    probe_outstanding: bool,
    events: VecDeque<SourceEvent>,
    stats: Arc<LiveStats>,
    /// A depth stream is subscribed (snapshots are requested on every session start).
    has_depth: bool,
    /// Connection epoch: moves on every lost session; snapshot requests carry it.
    epoch: u64,
    snapshots: Option<Snapshots>,
    /// Candle history fetched by [`LiveSource::warm_up`], delivered before anything else.
    history: VecDeque<(InstrumentId, Vec<u8>, u64)>,
}

/// What [`LiveSource::warm_up`] fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarmUp {
    /// Bodies fetched (one per instrument and interval).
    pub bodies: usize,
    /// Bytes of those bodies.
    pub bytes: usize,
    /// Requests the venue refused (see the log); those timeframes start cold.
    pub failed: usize,
}

/// The source's side of the snapshot fetcher.
struct Snapshots {
    fetcher: SnapshotFetcher,
    /// Instruments that may be fetched, in the order given.
    instruments: Vec<(InstrumentId, Symbol)>,
    /// Per instrument index: the symbol (`None`: not fetchable).
    symbol: Vec<Option<Symbol>>,
    /// Per instrument index: the epoch of the request in flight.
    inflight: Vec<Option<u64>>,
    /// Per instrument index: a request the ring could not take yet.
    queued: Vec<bool>,
    /// Some `queued` flag is set.
    any_queued: bool,
}

impl Snapshots {
    /// Asks for `id`'s snapshot for `epoch` unless one is already on its way. While no
    /// session is open (`connected == false`) the request waits: Binance's documented order is
    /// stream first, snapshot second, so that the snapshot is never older than the first
    /// buffered diff. False if `id` is not fetchable.
    fn request(
        &mut self,
        id: InstrumentId,
        epoch: u64,
        connected: bool,
        stats: &LiveStats,
    ) -> bool {
        let i = id.0 as usize;
        let Some(Some(sym)) = self.symbol.get(i).copied() else {
            return false;
        };
        if self.inflight[i].is_some() || self.queued[i] {
            // Already coming (an answer for an earlier epoch is re-requested on arrival).
            return true;
        }
        if connected && self.fetcher.request(id, sym, epoch) {
            self.inflight[i] = Some(epoch);
            add(&stats.snapshot_requests, 1);
        } else {
            self.queued[i] = true;
            self.any_queued = true;
        }
        true
    }

    /// Pushes the requests that waited (for a session, or for room in the ring).
    fn retry_queued(&mut self, epoch: u64, connected: bool, stats: &LiveStats) {
        if !self.any_queued || !connected {
            return;
        }
        self.any_queued = false;
        for i in 0..self.queued.len() {
            if !self.queued[i] {
                continue;
            }
            let Some(sym) = self.symbol[i] else {
                self.queued[i] = false;
                continue;
            };
            if self.fetcher.request(InstrumentId(i as u32), sym, epoch) {
                self.queued[i] = false;
                self.inflight[i] = Some(epoch);
                add(&stats.snapshot_requests, 1);
            } else {
                self.any_queued = true;
            }
        }
    }
}

impl<C: LiveClock> LiveSource<C> {
    /// A source for `cfg` timed by `clock`. Cold path: validates the configuration, chooses the
    /// driver (logging the OpenOnload decision), resolves the endpoint's host and prepares TLS.
    /// Nothing is connected yet: the first [`next_frame`](FrameSource::next_frame) starts the
    /// connection, on the thread that polls the source.
    pub fn new(cfg: &LiveConfig, clock: C) -> Result<LiveSource<C>, LiveError> {
        let streams = stream_names(cfg.venue, &cfg.symbols, &cfg.streams)?;
        let url = match &cfg.endpoint {
            Some(u) => u.clone(),
            None => default_endpoint(cfg.venue)
                .ok_or_else(|| {
                    config_err(format!(
                        "{} has no Binance stream endpoint",
                        cfg.venue.name()
                    ))
                })?
                .to_string(),
        };
        let endpoint = Endpoint::parse(&url)?;
        let target = endpoint.request_target(&streams);
        if target.len() + 1024 > cfg.ws.send_buffer {
            return Err(config_err(format!(
                "request target of {} bytes does not fit the {}-byte WebSocket send buffer",
                target.len(),
                cfg.ws.send_buffer
            )));
        }
        let (driver, why) = net::onload::choose_driver(cfg.driver);
        if driver == DriverKind::Std {
            return Err(config_err(
                "the std driver blocks the polling thread; the live source needs mio or io_uring",
            ));
        }
        tracing::info!(
            venue = cfg.venue.name(),
            configured = %cfg.driver,
            driver = %driver,
            "live market data: {why}"
        );
        let hostport = format!("{}:{}", endpoint.host, endpoint.port);
        let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(|source| LiveError::Resolve {
                host: hostport.clone(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(LiveError::Resolve {
                host: hostport,
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        }
        let tls = if endpoint.tls {
            Some(tls_connector(&endpoint.host)?)
        } else {
            None
        };
        let backoff = match cfg.seed {
            Some(seed) => Backoff::new(cfg.backoff_base, cfg.backoff_cap, seed),
            None => Backoff::from_entropy(cfg.backoff_base, cfg.backoff_cap),
        };
        let liveness = Liveness::new(cfg.silence, Some(cfg.max_age));
        let mut socket = cfg.socket.clone();
        socket.driver = driver;
        Ok(LiveSource {
            venue: cfg.venue,
            host_header: endpoint.host_header(),
            endpoint,
            target,
            streams,
            addrs,
            next_addr: 0,
            socket,
            ws_cfg: cfg.ws.clone(),
            tls,
            reconnector: Reconnector::new(backoff, liveness, cfg.stable_after),
            clock,
            conn: None,
            connect_timeout_ns: duration_ns(cfg.connect_timeout),
            silence_ns: duration_ns(cfg.silence),
            ping_after_ns: cfg.ping_after.map(duration_ns),
            session: 0,
            attempts: 0,
            lost_at: None,
            last_rx: 0,
            last_housekeeping: 0,
            probe_outstanding: false,
            events: VecDeque::with_capacity(MAX_PENDING_EVENTS),
            stats: Arc::new(LiveStats::default()),
            has_depth: cfg
                .streams
                .iter()
                .any(|k| matches!(k, StreamKind::Depth(_))),
            epoch: 0,
            snapshots: None,
            history: VecDeque::new(),
        })
    }

    /// Fetches the most recent `limit` candles of each of `intervals` (Binance names: `15m`,
    /// `5m`, `1m`) for every instrument of [`with_snapshots`](Self::with_snapshots), through
    /// its fetcher, **blocking** until all are answered or `timeout` passes. Call it on the
    /// set-up thread before the hot loop, and before the first poll opens the stream: the bodies
    /// are delivered as the source's first frames ([`RestBody::Klines`]), so the feed journals
    /// them and the strategy warms up from them before the first live trade. A refused request
    /// (unknown symbol, a venue without klines) is counted and logged; that timeframe then
    /// warms up from live trades only.
    pub fn warm_up(
        &mut self,
        intervals: &[&'static str],
        limit: u32,
        timeout: Duration,
    ) -> Result<WarmUp, LiveError> {
        let Some(snaps) = self.snapshots.as_mut() else {
            return Err(config_err(
                "candle warm-up needs the REST fetcher (with_snapshots)",
            ));
        };
        // Tags far above any connection epoch, so nothing mistakes these answers for depth.
        const TAG: u64 = u64::MAX;
        let mut wanted = 0usize;
        for &(id, sym) in &snaps.instruments {
            for &iv in intervals {
                let deadline = std::time::Instant::now() + timeout;
                while !snaps.fetcher.request_klines(id, sym, iv, limit, TAG) {
                    if std::time::Instant::now() > deadline {
                        return Err(config_err("candle warm-up: the fetcher queue stays full"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                wanted += 1;
            }
        }
        let mut out = WarmUp::default();
        let mut buf = vec![0u8; crate::snapshot::DEFAULT_MAX_BODY];
        // Bodies in request order, whatever order the answers come in, so the journal (and a
        // replay) sees the same sequence on every run.
        let mut got: Vec<(InstrumentId, &'static str, Vec<u8>)> = Vec::with_capacity(wanted);
        let deadline = std::time::Instant::now() + timeout;
        while got.len() + out.failed < wanted {
            let Some(d) = snaps.fetcher.poll(&mut buf) else {
                if std::time::Instant::now() > deadline {
                    return Err(config_err(format!(
                        "candle warm-up: {} of {wanted} klines requests unanswered after {:?}",
                        wanted - got.len() - out.failed,
                        timeout
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let crate::snapshot::RestQuery::Klines { interval, .. } = d.query else {
                continue;
            };
            match d.outcome {
                SnapshotOutcome::Body { len } => {
                    let n = len.min(buf.len());
                    got.push((d.instrument, interval, buf[..n].to_vec()));
                }
                SnapshotOutcome::Failed(why) => {
                    out.failed += 1;
                    tracing::warn!(symbol = %d.symbol, interval, failure = ?why,
                        "candle history refused; this timeframe warms up from live trades");
                }
            }
        }
        let now = self.clock.now().unix_ns;
        for &(id, _) in &snaps.instruments {
            for &iv in intervals {
                if let Some(i) = got.iter().position(|(g, gi, _)| *g == id && *gi == iv) {
                    let (_, _, body) = got.swap_remove(i);
                    out.bodies += 1;
                    out.bytes += body.len();
                    self.history.push_back((id, body, now));
                }
            }
        }
        add(&self.stats.history_fetched, out.bodies as u64);
        tracing::info!(
            venue = self.venue.name(),
            bodies = out.bodies,
            bytes = out.bytes,
            failed = out.failed,
            "candle history fetched for the warm-up"
        );
        Ok(out)
    }

    /// Fetches REST depth snapshots through `fetcher` for `instruments` (cold path; see the
    /// module documentation). Snapshots are requested for all of them whenever a session opens
    /// (when a depth stream is subscribed) and for any of them the feed asks for.
    pub fn with_snapshots(
        mut self,
        fetcher: SnapshotFetcher,
        instruments: &[(InstrumentId, Symbol)],
    ) -> Self {
        let n = instruments
            .iter()
            .map(|(id, _)| id.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut symbol = vec![None; n];
        for (id, sym) in instruments {
            symbol[id.0 as usize] = Some(*sym);
        }
        self.snapshots = Some(Snapshots {
            fetcher,
            instruments: instruments.to_vec(),
            symbol,
            inflight: vec![None; n],
            queued: vec![false; n],
            any_queued: false,
        });
        self
    }

    /// Delivers a fetched snapshot into `buf`, if one is ready for the current epoch.
    fn poll_snapshot(&mut self, buf: &mut [u8], now: Now) -> Option<SourcePoll> {
        let epoch = self.epoch;
        let connected = self.conn.as_ref().is_some_and(|c| c.open_since.is_some());
        let snaps = self.snapshots.as_mut()?;
        snaps.retry_queued(epoch, connected, &self.stats);
        loop {
            let d = snaps.fetcher.poll(buf)?;
            let i = d.instrument.0 as usize;
            if let Some(f) = snaps.inflight.get_mut(i) {
                *f = None;
            }
            match d.outcome {
                SnapshotOutcome::Failed(why) => {
                    add(&self.stats.snapshots_failed, 1);
                    tracing::error!(venue = self.venue.name(), symbol = %d.symbol, failure = ?why,
                        "depth snapshot failed; the book stays unproven until its next resync");
                }
                SnapshotOutcome::Body { .. } if d.tag != epoch => {
                    // Fetched for a previous session: that book state is gone.
                    add(&self.stats.snapshots_stale, 1);
                    snaps.request(d.instrument, epoch, connected, &self.stats);
                }
                SnapshotOutcome::Body { len } => {
                    add(&self.stats.snapshots_delivered, 1);
                    return Some(SourcePoll::Frame {
                        len,
                        recv_ns: now.unix_ns,
                        rest: Some(RestBody::Depth(d.instrument)),
                    });
                }
            }
        }
    }

    /// The counters, shared (keep the handle to read them while the source runs elsewhere).
    pub fn stats(&self) -> Arc<LiveStats> {
        Arc::clone(&self.stats)
    }

    /// The subscribed stream names.
    pub fn streams(&self) -> &[String] {
        &self.streams
    }

    /// The request target sent on every (re)connect (`/stream?streams=...`).
    pub fn request_target(&self) -> &str {
        &self.target
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The socket driver in use (after the OpenOnload decision and any io_uring fallback).
    pub fn driver(&self) -> DriverKind {
        self.socket.driver
    }

    /// The venue.
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// Whether a session is open right now.
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.open_since.is_some())
    }

    fn push_event(&mut self, kind: SourceEventKind, at_ns: u64, detail: fmt::Arguments<'_>) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            add(&self.stats.events_dropped, 1);
        }
        self.events.push_back(SourceEvent::new(kind, at_ns, detail));
    }

    /// Creates the transport and WebSocket client for one attempt.
    fn open(&mut self, addr: SocketAddr) -> Result<WsClient<MaybeTls>, LiveError> {
        let t = match net::socket::connect(addr, &self.socket) {
            Ok(t) => t,
            Err(NetError::IoUringUnavailable { reason, source })
                if self.socket.driver == DriverKind::IoUring =>
            {
                tracing::warn!(
                    %reason, error = %source,
                    "io_uring unavailable on this machine; the live source falls back to mio"
                );
                self.socket.driver = DriverKind::Mio;
                net::socket::connect(addr, &self.socket)?
            }
            Err(e) => return Err(e.into()),
        };
        let t = match &self.tls {
            Some(wrap) => MaybeTls::Tls(wrap(t)?),
            None => MaybeTls::Plain(t),
        };
        Ok(WsClient::new(
            t,
            &self.host_header,
            &self.target,
            &self.ws_cfg,
        )?)
    }

    fn start_attempt(&mut self, now: Now) {
        add(&self.stats.connect_attempts, 1);
        self.attempts += 1;
        let addr = self.addrs[self.next_addr % self.addrs.len()];
        self.next_addr = self.next_addr.wrapping_add(1);
        match self.open(addr) {
            Ok(ws) => {
                self.conn = Some(Conn {
                    ws,
                    started_ns: now.mono_ns,
                    open_since: None,
                    addr,
                    close: None,
                })
            }
            Err(e) => self.attempt_failed(now, format_args!("{addr}: {e}")),
        }
    }

    fn attempt_failed(&mut self, now: Now, why: fmt::Arguments<'_>) {
        let addr = self.conn.take().map(|c| c.addr);
        add(&self.stats.connect_failures, 1);
        let retry_at = self.reconnector.on_failed(now.mono_ns);
        tracing::warn!(
            venue = self.venue.name(),
            endpoint = %self.endpoint,
            addr = ?addr,
            attempt = self.attempts,
            retry_in_ms = (retry_at - now.mono_ns) / 1_000_000,
            "market data connection attempt failed: {why}"
        );
    }

    fn on_open(&mut self, now: Now) {
        self.reconnector.on_connected(now.mono_ns);
        self.session += 1;
        self.last_rx = now.mono_ns;
        self.probe_outstanding = false;
        add(&self.stats.sessions, 1);
        let addr = self.conn.as_ref().map(|c| c.addr);
        let peer = DisplayOpt(addr);
        let driver = self.socket.driver;
        let (venue, session, attempts) = (self.venue.name(), self.session, self.attempts);
        self.attempts = 0;
        if self.has_depth {
            if let Some(snaps) = self.snapshots.as_mut() {
                for k in 0..snaps.instruments.len() {
                    let id = snaps.instruments[k].0;
                    snaps.request(id, self.epoch, true, &self.stats);
                }
            }
        }
        match self.lost_at.take() {
            None => {
                tracing::info!(venue, session, attempts, %driver, peer = %peer, streams = %self.target,
                    "market data connected");
                self.push_event(
                    SourceEventKind::Connected,
                    now.unix_ns,
                    format_args!(
                        "venue={venue} session={session} attempts={attempts} driver={driver} \
                         peer={peer} resync=1"
                    ),
                );
            }
            Some(lost) => {
                let down_ms = (now.mono_ns - lost) / 1_000_000;
                tracing::warn!(venue, session, attempts, down_ms, %driver, peer = %peer,
                    "market data connection restored; consumers resync");
                self.push_event(
                    SourceEventKind::ConnectionRestored,
                    now.unix_ns,
                    format_args!(
                        "venue={venue} session={session} attempts={attempts} down_ms={down_ms} \
                         driver={driver} peer={peer} resync=1"
                    ),
                );
            }
        }
    }

    /// Ends the current session for `reason` (a single word) and schedules the next attempt.
    fn lose(&mut self, now: Now, reason: &str, detail: fmt::Arguments<'_>) {
        let up_ms = self
            .conn
            .as_ref()
            .and_then(|c| c.open_since)
            .map_or(0, |t| (now.mono_ns - t) / 1_000_000);
        if let Some(mut c) = self.conn.take() {
            // Polite close where the connection may still carry it (health-driven teardown); a
            // failed connection is already closed. Non-blocking: queued and flushed if possible.
            let _ = c.ws.close(CloseCode::NORMAL, "");
        }
        add(&self.stats.disconnects, 1);
        self.epoch += 1;
        let retry_at = self.reconnector.on_disconnected(now.mono_ns);
        let retry_in_ms = (retry_at - now.mono_ns) / 1_000_000;
        self.lost_at = Some(now.mono_ns);
        let (venue, session) = (self.venue.name(), self.session);
        tracing::warn!(
            venue,
            session,
            reason,
            up_ms,
            retry_in_ms,
            "market data connection lost: {detail}"
        );
        self.push_event(
            SourceEventKind::ConnectionLost,
            now.unix_ns,
            format_args!(
                "venue={venue} session={session} reason={reason} up_ms={up_ms} \
                 retry_in_ms={retry_in_ms} detail={detail}"
            ),
        );
    }

    /// The connection failed with `e`: a lost session if it had opened, otherwise a failed
    /// attempt (including a connection that completed its handshake and failed within the same
    /// poll, before delivering anything).
    fn failed(&mut self, now: Now, e: WsError) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let (opened, close) = (conn.open_since.is_some(), conn.close);
        if !opened {
            self.attempt_failed(now, format_args!("{e}"));
            return;
        }
        match (close, e) {
            (Some(c), _) => self.lose(
                now,
                "closed_by_venue",
                format_args!("close code {} '{}'", c.code, c.reason()),
            ),
            (None, WsError::AbnormalClosure) => self.lose(
                now,
                "abnormal_closure",
                format_args!("the venue ended the TCP connection without a close frame"),
            ),
            (None, WsError::Io(io)) => self.lose(now, "io_error", format_args!("{io}")),
            (None, e) => self.lose(now, "protocol_error", format_args!("{e}")),
        }
    }

    /// Liveness, maximum age, handshake deadline and the probe ping.
    fn housekeeping(&mut self, now: Now) {
        self.last_housekeeping = now.mono_ns;
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.open_since.is_none() {
            if now.mono_ns.saturating_sub(conn.started_ns) >= self.connect_timeout_ns {
                let ms = self.connect_timeout_ns / 1_000_000;
                self.attempt_failed(now, format_args!("handshake not complete within {ms} ms"));
            }
            return;
        }
        match self.reconnector.poll(now.mono_ns) {
            Action::Disconnect(Health::Silent { silent_ns }) => {
                add(&self.stats.silent_disconnects, 1);
                let (ms, limit) = (silent_ns / 1_000_000, self.silence_ns / 1_000_000);
                self.lose(
                    now,
                    "silent",
                    format_args!("nothing received for {ms} ms (limit {limit} ms)"),
                );
            }
            Action::Disconnect(Health::TooOld { age_ns }) => {
                add(&self.stats.age_recycles, 1);
                let s = age_ns / 1_000_000_000;
                self.lose(
                    now,
                    "max_age",
                    format_args!("connection {s} s old, recycled before the venue's 24 h cut"),
                );
            }
            Action::Disconnect(h) => {
                self.lose(now, "unhealthy", format_args!("{h:?}"));
            }
            Action::Wait | Action::Connect => {
                if let Some(after) = self.ping_after_ns {
                    if !self.probe_outstanding && now.mono_ns.saturating_sub(self.last_rx) >= after
                    {
                        // A full send buffer just postpones the probe to the next poll.
                        if conn.ws.send_ping(PROBE_PAYLOAD).is_ok() {
                            self.probe_outstanding = true;
                            add(&self.stats.pings_sent, 1);
                        }
                    }
                }
            }
        }
    }

    #[inline]
    fn received(&mut self, now: Now) {
        self.reconnector.on_receive(now.mono_ns);
        self.last_rx = now.mono_ns;
        self.probe_outstanding = false;
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// `Option<SocketAddr>` printed as the address or `-`.
struct DisplayOpt(Option<SocketAddr>);

impl fmt::Display for DisplayOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

impl<C: LiveClock> FrameSource for LiveSource<C> {
    fn next_frame(&mut self, buf: &mut [u8]) -> SourcePoll {
        if let Some((id, body, recv_ns)) = self.history.pop_front() {
            add(&self.stats.history_delivered, 1);
            return SourcePoll::Frame {
                len: copy_frame(&body, buf),
                recv_ns,
                rest: Some(RestBody::Klines(id)),
            };
        }
        let now = self.clock.now();
        if let Some(p) = self.poll_snapshot(buf, now) {
            return p;
        }
        if self.conn.is_none() {
            if self.reconnector.poll(now.mono_ns) == Action::Connect {
                self.start_attempt(now);
            }
            if self.conn.is_none() {
                return SourcePoll::Idle;
            }
        } else if now.mono_ns.saturating_sub(self.last_housekeeping) >= HOUSEKEEPING_NS {
            // Normally housekeeping runs when the socket has nothing more; a stream that never
            // pauses must still be checked (maximum age), so it also runs here at least every
            // millisecond.
            self.housekeeping(now);
            if self.conn.is_none() {
                return SourcePoll::Idle;
            }
        }
        for _ in 0..MAX_MESSAGES_PER_POLL {
            let Some(conn) = self.conn.as_mut() else {
                return SourcePoll::Idle;
            };
            let got = match conn.ws.poll() {
                Ok(Some(Message::Text(s))) => Got::Data(copy_frame(s.as_bytes(), buf)),
                Ok(Some(Message::Binary(b))) => Got::Data(copy_frame(b, buf)),
                Ok(Some(Message::Ping(_))) => Got::Ping,
                Ok(Some(Message::Pong(_))) => Got::Pong,
                Ok(Some(Message::Close(frame))) => {
                    let mut info = CloseInfo {
                        code: CloseCode::NO_STATUS.0,
                        reason: [0; 64],
                        len: 0,
                    };
                    if let Some(f) = frame {
                        info.code = f.code.0;
                        let mut n = f.reason.len().min(info.reason.len());
                        while !f.reason.is_char_boundary(n) {
                            n -= 1;
                        }
                        info.reason[..n].copy_from_slice(&f.reason.as_bytes()[..n]);
                        info.len = n as u8;
                    }
                    conn.close = Some(info);
                    Got::Close
                }
                Ok(None) => Got::Nothing,
                Err(e) => Got::Failed(e),
            };
            // Any message, or a state past the handshake, means the session opened (a close
            // frame may arrive in the very read that completed the handshake).
            let past_handshake = !matches!(got, Got::Nothing | Got::Failed(_))
                || matches!(
                    conn.ws.state(),
                    WsState::Open | WsState::CloseSent | WsState::Closing
                );
            if conn.open_since.is_none() && past_handshake {
                conn.open_since = Some(now.mono_ns);
                self.on_open(now);
            }
            match got {
                Got::Data(len) => {
                    self.received(now);
                    add(&self.stats.messages, 1);
                    add(&self.stats.bytes, len as u64);
                    return SourcePoll::Frame {
                        len,
                        recv_ns: now.unix_ns,
                        rest: None,
                    };
                }
                Got::Ping => {
                    self.received(now);
                    add(&self.stats.pings_received, 1);
                }
                Got::Pong => {
                    self.received(now);
                    add(&self.stats.pongs_received, 1);
                }
                // The reply is queued; keep reading until the venue closes the TCP connection
                // (or the silence limit gives up on it).
                Got::Close => self.received(now),
                Got::Nothing => break,
                Got::Failed(e) => {
                    self.failed(now, e);
                    return SourcePoll::Idle;
                }
            }
        }
        self.housekeeping(now);
        SourcePoll::Idle
    }

    fn take_event(&mut self) -> Option<SourceEvent> {
        self.events.pop_front()
    }

    fn request_snapshot(&mut self, instrument: InstrumentId) -> bool {
        let (epoch, connected) = (self.epoch, self.is_connected());
        match self.snapshots.as_mut() {
            Some(s) => s.request(instrument, epoch, connected, &self.stats),
            None => false,
        }
    }
}

/// Copies a message into the feed's buffer; returns its full length (the feed counts a message
/// longer than its buffer as oversized and journals what fit).
#[inline]
fn copy_frame(msg: &[u8], buf: &mut [u8]) -> usize {
    let n = msg.len().min(buf.len());
    buf[..n].copy_from_slice(&msg[..n]);
    msg.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use net::ws::frame::{Decoded, FrameDecoder, OpCode, Role};
    use net::ws::{encode_frame, parse_client_request, write_server_response};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn stream_names_per_venue() {
        let syms = vec!["BTCUSDT".to_string(), "ethusdt".to_string()];
        let kinds = StreamKind::parse_list("trade,bookTicker,depth").unwrap();
        assert_eq!(
            stream_names(Venue::BinanceSpot, &syms, &kinds).unwrap(),
            [
                "btcusdt@trade",
                "btcusdt@bookTicker",
                "btcusdt@depth@100ms",
                "ethusdt@trade",
                "ethusdt@bookTicker",
                "ethusdt@depth@100ms"
            ]
        );
        let usdm = stream_names(Venue::BinanceUsdM, &syms[..1], &kinds).unwrap();
        assert_eq!(
            usdm,
            ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@depth@0ms"]
        );
        let coinm = stream_names(
            Venue::BinanceCoinM,
            &["BTCUSD_PERP".to_string()],
            &StreamKind::parse_list("aggTrade, depth@500ms, kline_1m, depth@250ms").unwrap(),
        )
        .unwrap();
        assert_eq!(
            coinm,
            [
                "btcusd_perp@aggTrade",
                "btcusd_perp@depth@500ms",
                "btcusd_perp@kline_1m",
                "btcusd_perp@depth"
            ]
        );
        let spot_slow = stream_names(
            Venue::BinanceSpot,
            &syms[..1],
            &[StreamKind::Depth(Some(1000))],
        )
        .unwrap();
        assert_eq!(spot_slow, ["btcusdt@depth"]);
        // Duplicates collapse.
        let dup = stream_names(
            Venue::BinanceSpot,
            &syms[..1],
            &[StreamKind::Trade, StreamKind::Trade],
        )
        .unwrap();
        assert_eq!(dup, ["btcusdt@trade"]);

        let err = |r: Result<Vec<String>, LiveError>| r.unwrap_err().to_string();
        assert!(err(stream_names(
            Venue::BinanceSpot,
            &syms,
            &[StreamKind::Depth(Some(0))]
        ))
        .contains("not offered"));
        assert!(err(stream_names(
            Venue::BinanceSpot,
            &["BTC-USDT".into()],
            &kinds
        ))
        .contains("not a Binance symbol"));
        assert!(err(stream_names(Venue::BinanceSpot, &[], &kinds)).contains("no symbols"));
        assert!(err(stream_names(Venue::Bybit, &syms, &kinds)).contains("no Binance streams"));
        let many: Vec<String> = (0..400).map(|i| format!("S{i}")).collect();
        assert!(err(stream_names(Venue::BinanceSpot, &many, &kinds)).contains("at most 1024"));
        for bad in ["tarde", "depth@fast", "kline_7m", "kline_1h "] {
            if let Ok(k) = StreamKind::parse(bad) {
                // "kline_1h " trims to a valid interval.
                assert_eq!((bad, k), ("kline_1h ", StreamKind::Kline("1h")));
                continue;
            }
        }
        assert_eq!(
            StreamKind::parse("kline_1M").unwrap(),
            StreamKind::Kline("1M")
        );
        assert_eq!(
            StreamKind::parse("KLINE_1m").unwrap(),
            StreamKind::Kline("1m")
        );
        assert_eq!(
            StreamKind::parse("BookTicker").unwrap(),
            StreamKind::BookTicker
        );
        for k in [
            StreamKind::Trade,
            StreamKind::AggTrade,
            StreamKind::BookTicker,
            StreamKind::Depth(None),
            StreamKind::Depth(Some(100)),
            StreamKind::Kline("15m"),
        ] {
            assert_eq!(StreamKind::parse(&k.to_string()).unwrap(), k);
        }
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("wss://stream.binance.com:9443/stream").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path.as_str()),
            (true, "stream.binance.com", 9443, "/stream")
        );
        assert_eq!(e.host_header(), "stream.binance.com:9443");
        let e = Endpoint::parse("wss://fstream.binance.com/stream").unwrap();
        assert_eq!(
            (e.port, e.host_header().as_str()),
            (443, "fstream.binance.com")
        );
        let e = Endpoint::parse("ws://127.0.0.1:9000").unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (false, 9000, "/stream"));
        assert_eq!(
            e.request_target(&["btcusdt@trade".into(), "btcusdt@depth@100ms".into()]),
            "/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
        );
        let e = Endpoint::parse("ws://[::1]:81/x").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 81, "/x")
        );
        assert_eq!(e.host_header(), "[::1]:81");
        assert_eq!(Endpoint::parse("ws://h/").unwrap().port, 80);
        for bad in [
            "http://x",
            "ws://:1",
            "ws://h:99999",
            "ws://h/stream?streams=a",
            "ws://[::1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        for v in [Venue::BinanceSpot, Venue::BinanceUsdM, Venue::BinanceCoinM] {
            assert!(Endpoint::parse(default_endpoint(v).unwrap()).unwrap().tls);
        }
    }

    #[test]
    fn source_event_payloads() {
        let ev = SourceEvent::new(
            SourceEventKind::ConnectionLost,
            7,
            format_args!("venue=binance_spot reason=silent"),
        );
        assert_eq!(
            ev.text(),
            "market_data_connection_lost venue=binance_spot reason=silent"
        );
        assert_eq!(
            SourceEventKind::from_payload(ev.payload()),
            Some(SourceEventKind::ConnectionLost)
        );
        assert_eq!(SourceEventKind::from_payload(b"book_gap inst=0"), None);
        // Cut at a character boundary.
        let long = "\u{20ac}".repeat(200);
        let ev = SourceEvent::new(SourceEventKind::Connected, 0, format_args!("{long}"));
        assert!(ev.payload().len() <= crate::feed::SOURCE_EVENT_MAX);
        assert!(ev.text().starts_with("market_data_connected \u{20ac}"));
        assert!(ev.text().len() > 200);
    }

    #[test]
    fn config_errors() {
        let mut cfg = LiveConfig::new(Venue::BinanceSpot, &["BTCUSDT"], &[StreamKind::Trade]);
        cfg.endpoint = Some("ws://127.0.0.1:1".into());
        cfg.driver = DriverKind::Std;
        let e = LiveSource::new(&cfg, ManualClock::new(0)).err().unwrap();
        assert!(e.to_string().contains("std driver"), "{e}");
        cfg.driver = DriverKind::Mio;
        cfg.endpoint = Some("ws://no-such-host.invalid:1".into());
        let e = LiveSource::new(&cfg, ManualClock::new(0)).err().unwrap();
        assert!(e.to_string().contains("cannot resolve"), "{e}");
    }

    // ---- an in-process server for the state machine, on a manual clock ----

    /// Blocking server side of one WebSocket connection.
    struct Peer {
        s: TcpStream,
        path: String,
        buf: Vec<u8>,
        len: usize,
    }

    impl Peer {
        fn accept(l: &TcpListener) -> Peer {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut len = 0;
            let (consumed, path, key) = loop {
                let n = s.read(&mut buf[len..]).unwrap();
                assert!(n > 0, "client closed during handshake");
                len += n;
                if let Some(r) = parse_client_request(&buf[..len]).unwrap() {
                    break (r.consumed, r.path.to_string(), r.key.to_string());
                }
            };
            let mut resp = [0u8; 256];
            let n = write_server_response(&key, &mut resp).unwrap();
            s.write_all(&resp[..n]).unwrap();
            buf.copy_within(consumed..len, 0);
            Peer {
                s,
                path,
                buf,
                len: len - consumed,
            }
        }

        fn send(&mut self, op: OpCode, payload: &[u8]) {
            self.try_send(op, payload).unwrap();
        }

        /// `send` for a peer the client may already have closed.
        fn try_send(&mut self, op: OpCode, payload: &[u8]) -> std::io::Result<()> {
            let mut out = vec![0u8; payload.len() + 14];
            let n = encode_frame(true, op, None, payload, &mut out).unwrap();
            self.s.write_all(&out[..n])
        }

        /// Next client frame: (opcode, payload).
        fn recv(&mut self) -> Option<(OpCode, Vec<u8>)> {
            let dec = FrameDecoder::new(Role::Server, 1 << 20);
            loop {
                match dec.decode(&mut self.buf[..self.len]).unwrap() {
                    Decoded::Frame(f) => {
                        let p = self.buf[f.payload.clone()].to_vec();
                        self.buf.copy_within(f.consumed..self.len, 0);
                        self.len -= f.consumed;
                        return Some((f.opcode, p));
                    }
                    Decoded::NeedMore { .. } => {
                        let n = self.s.read(&mut self.buf[self.len..]).ok()?;
                        if n == 0 {
                            return None;
                        }
                        self.len += n;
                    }
                }
            }
        }
    }

    fn config(port: u16) -> LiveConfig {
        let mut cfg = LiveConfig::new(
            Venue::BinanceSpot,
            &["BTCUSDT"],
            &[StreamKind::Trade, StreamKind::Depth(None)],
        );
        cfg.endpoint = Some(format!("ws://127.0.0.1:{port}"));
        cfg.socket.busy_poll_us = None;
        cfg.seed = Some(5);
        cfg.silence = Duration::from_secs(5);
        cfg.ping_after = Some(Duration::from_secs(2));
        cfg.ws.max_frame = 1 << 16;
        cfg.ws.max_message = 1 << 16;
        cfg
    }

    /// What the feed would see, in its order: the events of a call before that call's frame.
    #[derive(Debug, PartialEq)]
    enum Item {
        Event(SourceEventKind, String),
        Frame(Vec<u8>),
    }

    /// Polls `src` as the feed does (time frozen, real sleeps between polls).
    struct Driver {
        src: LiveSource<ManualClock>,
        buf: Vec<u8>,
        pending: VecDeque<Item>,
    }

    impl Driver {
        fn new(src: LiveSource<ManualClock>) -> Driver {
            Driver {
                src,
                buf: vec![0u8; 1 << 16],
                pending: VecDeque::new(),
            }
        }

        fn poll_once(&mut self) {
            let r = self.src.next_frame(&mut self.buf);
            while let Some(e) = self.src.take_event() {
                self.pending
                    .push_back(Item::Event(e.kind(), e.text().to_string()));
            }
            if let SourcePoll::Frame { len, .. } = r {
                self.pending
                    .push_back(Item::Frame(self.buf[..len].to_vec()));
            }
        }

        fn next(&mut self) -> Item {
            for _ in 0..20_000 {
                if let Some(i) = self.pending.pop_front() {
                    return i;
                }
                self.poll_once();
                if self.pending.is_empty() {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            panic!("nothing happened");
        }

        fn event(&mut self, kind: SourceEventKind) -> String {
            match self.next() {
                Item::Event(k, text) if k == kind => text,
                other => panic!("expected {kind:?}, got {other:?}"),
            }
        }

        fn frame(&mut self) -> Vec<u8> {
            match self.next() {
                Item::Frame(f) => f,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    #[test]
    fn lifecycle_on_a_manual_clock() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let clock = ManualClock::new(1_000_000_000);
        let src = LiveSource::new(&config(port), clock.clone()).unwrap();
        let stats = src.stats();
        let mut d = Driver::new(src);

        // Session 1: connect, data, a venue ping answered.
        let server = std::thread::spawn(move || {
            let mut p = Peer::accept(&l);
            p.send(OpCode::Text, b"{\"a\":1}");
            p.send(OpCode::Ping, b"venue-ping");
            let (op, payload) = p.recv().unwrap();
            assert_eq!((op, payload.as_slice()), (OpCode::Pong, &b"venue-ping"[..]));
            p.send(OpCode::Text, b"{\"a\":2}");
            (p, l)
        });
        let text = d.event(SourceEventKind::Connected);
        assert!(text.contains("session=1 attempts=1"), "{text}");
        assert!(text.contains("resync=1"), "{text}");
        assert_eq!(d.frame(), b"{\"a\":1}");
        assert_eq!(d.frame(), b"{\"a\":2}");
        let (mut p, l) = server.join().unwrap();
        assert_eq!(p.path, "/stream?streams=btcusdt@trade/btcusdt@depth@100ms");

        // Quiet for 2.5 s: the source probes with a ping; the pong keeps it alive past 5 s.
        clock.advance(Duration::from_millis(2500));
        d.poll_once();
        let (op, payload) = p.recv().unwrap();
        assert_eq!((op, payload.as_slice()), (OpCode::Ping, PROBE_PAYLOAD));
        p.send(OpCode::Pong, &payload);
        while stats.snapshot().pongs_received == 0 {
            d.poll_once();
            std::thread::sleep(Duration::from_micros(100));
        }
        clock.advance(Duration::from_millis(3000));
        d.poll_once();
        assert!(d.src.is_connected());
        assert!(d.pending.is_empty());

        // Silent past 5 s (the second probe goes unanswered): lost, then restored.
        clock.advance(Duration::from_millis(5001));
        let server = std::thread::spawn(move || {
            let mut p2 = Peer::accept(&l);
            p2.send(OpCode::Text, b"{\"b\":1}");
            p2
        });
        d.poll_once();
        let lost = d.event(SourceEventKind::ConnectionLost);
        assert!(lost.contains("session=1 reason=silent"), "{lost}");
        assert!(!d.src.is_connected());
        assert_eq!(stats.snapshot().silent_disconnects, 1);
        // The old connection got a close frame.
        while let Some((op, _)) = p.recv() {
            if op == OpCode::Close {
                break;
            }
        }
        // Backoff (first ceiling 100 ms): no attempt while the clock stands still.
        for _ in 0..20 {
            d.poll_once();
        }
        assert_eq!(stats.snapshot().connect_attempts, 1);
        clock.advance(Duration::from_millis(100));
        let restored = d.event(SourceEventKind::ConnectionRestored);
        assert!(restored.contains("session=2 attempts=1"), "{restored}");
        assert!(restored.contains("resync=1"), "{restored}");
        assert_eq!(d.frame(), b"{\"b\":1}");
        let _p2 = server.join().unwrap();

        let s = stats.snapshot();
        assert_eq!((s.sessions, s.disconnects, s.messages), (2, 1, 3));
        assert_eq!(
            (s.pings_received, s.pings_sent, s.pongs_received),
            (1, 2, 1)
        );
    }

    #[test]
    fn close_by_venue_and_abrupt_drop_are_reported() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let clock = ManualClock::new(0);
        let mut d = Driver::new(LiveSource::new(&config(port), clock.clone()).unwrap());
        let server = std::thread::spawn(move || {
            let mut p = Peer::accept(&l);
            let mut close = vec![0x03, 0xE9]; // 1001 going away
            close.extend_from_slice(b"restart");
            p.send(OpCode::Close, &close);
            // Wait for the client's echo, then end the TCP connection.
            while let Some((op, _)) = p.recv() {
                if op == OpCode::Close {
                    break;
                }
            }
            drop(p);
            let mut p = Peer::accept(&l);
            p.send(OpCode::Text, b"{}");
            drop(p); // abrupt: no close frame
            l
        });
        d.event(SourceEventKind::Connected);
        let lost = d.event(SourceEventKind::ConnectionLost);
        assert!(
            lost.contains("reason=closed_by_venue") && lost.contains("close code 1001 'restart'"),
            "{lost}"
        );
        clock.advance(Duration::from_secs(1));
        d.event(SourceEventKind::ConnectionRestored);
        assert_eq!(d.frame(), b"{}");
        let lost = d.event(SourceEventKind::ConnectionLost);
        assert!(
            lost.contains("reason=abnormal_closure") || lost.contains("reason=io_error"),
            "{lost}"
        );
        let _l = server.join().unwrap();
    }

    #[test]
    fn recycles_before_binance_24h_cut() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = config(port);
        // Default maximum age; no silence or probe in the way.
        cfg.max_age = LiveConfig::new(Venue::BinanceSpot, &[], &[]).max_age;
        assert!(cfg.max_age < Duration::from_secs(24 * 3600));
        cfg.silence = Duration::from_secs(48 * 3600);
        cfg.ping_after = None;
        let clock = ManualClock::new(0);
        let src = LiveSource::new(&cfg, clock.clone()).unwrap();
        let stats = src.stats();
        let mut d = Driver::new(src);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let mut p1 = Peer::accept(&l);
            go_rx.recv().unwrap();
            // A stream that never pauses: the age check must not wait for a quiet socket. The
            // client recycles the connection after the first message, so a later write may
            // find it closed: that ends the stream, it is not a failure.
            for i in 0..200 {
                if p1
                    .try_send(OpCode::Text, format!("{{\"n\":{i}}}").as_bytes())
                    .is_err()
                {
                    break;
                }
            }
            let p2 = Peer::accept(&l);
            (p1, p2)
        });
        d.event(SourceEventKind::Connected);
        clock.advance(cfg.max_age - Duration::from_secs(1));
        for _ in 0..10 {
            d.poll_once();
        }
        assert!(d.pending.is_empty() && d.src.is_connected());
        go_tx.send(()).unwrap();
        assert_eq!(d.frame(), b"{\"n\":0}");
        clock.advance(Duration::from_secs(1));
        let lost = d.event(SourceEventKind::ConnectionLost);
        assert!(lost.contains("reason=max_age"), "{lost}");
        assert!(lost.contains("85800 s old"), "{lost}");
        clock.advance(Duration::from_millis(100));
        d.event(SourceEventKind::ConnectionRestored);
        let (_p1, _p2) = server.join().unwrap();
        assert_eq!(stats.snapshot().age_recycles, 1);
    }

    #[test]
    fn refused_and_timed_out_attempts_back_off() {
        // A port with nobody listening: refused.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let clock = ManualClock::new(0);
        let mut src = LiveSource::new(&config(port), clock.clone()).unwrap();
        let stats = src.stats();
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            assert_eq!(src.next_frame(&mut buf), SourcePoll::Idle);
            if stats.snapshot().connect_failures > 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        assert_eq!(stats.snapshot().connect_failures, 1);
        assert!(
            src.take_event().is_none(),
            "failed attempts are not session events"
        );
        // The next attempt waits for the backoff; time stands still.
        for _ in 0..50 {
            let _ = src.next_frame(&mut buf);
        }
        assert_eq!(stats.snapshot().connect_attempts, 1);
        clock.advance(Duration::from_millis(100));
        let _ = src.next_frame(&mut buf);
        assert_eq!(stats.snapshot().connect_attempts, 2);

        // A server that accepts but never answers the handshake: the deadline fails it.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut src = LiveSource::new(&config(port), clock.clone()).unwrap();
        let stats = src.stats();
        let _ = src.next_frame(&mut buf);
        let (_conn, _) = l.accept().unwrap();
        clock.advance(Duration::from_secs(9));
        for _ in 0..10 {
            let _ = src.next_frame(&mut buf);
        }
        assert_eq!(stats.snapshot().connect_failures, 0);
        clock.advance(Duration::from_secs(1));
        let _ = src.next_frame(&mut buf);
        assert_eq!(stats.snapshot().connect_failures, 1);
        assert!(!src.is_connected());
    }
}
