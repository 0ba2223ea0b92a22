//! REST depth snapshots for the live books (and the candle history the strategy warms up
//! from), fetched on a cold thread.
//!
//! Binance's depth sync ("How to manage a local order book correctly") needs a REST snapshot
//! (`GET /api/v3/depth` on spot, `/fapi/v1/depth` on USD-M, `/dapi/v1/depth` on COIN-M) per
//! instrument at start and after every gap or reconnect: without it a live book is never
//! [proven](crate::book::BookSync::proven) and nothing may trade on it. An HTTPS round trip
//! takes milliseconds to seconds, may be rate limited (`429`, `418` with `Retry-After`) and
//! allocates (TLS records, response parsing), so it must not run on the feed's pinned thread.
//!
//! [`SnapshotFetcher`] is the hot side's handle to a plain `std` thread that does it:
//!
//! * **Requests** `(InstrumentId, Symbol, tag, query)` go to the thread through a `ringbuffers::spsc`
//!   ring ([`SnapshotFetcher::request`]: one copy of a small `Copy` value, no allocation, no
//!   syscall). The thread sleeps-polls that ring (2 ms) so the hot side never wakes it with a
//!   syscall.
//! * **Fetching** uses the blocking [`net`] `std` driver (blocking is what a cold thread is
//!   for) with connect/read/write timeouts, `rustls` with the `webpki-roots` trust store for
//!   `https://` endpoints ([`TlsTransport`], [`net::socket::webpki_client_config`]) and plain TCP
//!   for `http://` ones (loopback tests). One HTTP/1.1 keep-alive connection is reused across
//!   requests; the response head is parsed by `httparse`, the body framed by `Content-Length`,
//!   `Transfer-Encoding: chunked` or the end of the connection, and bounded by
//!   [`SnapshotConfig::max_body`].
//! * **Rate limits**: `429` and `418` are answered by waiting the server's `Retry-After` (at
//!   least; [`SnapshotConfig::default_retry_after`] when absent) before the same request is sent
//!   again: Binance bans IPs that keep sending after a 429. `X-MBX-USED-WEIGHT-1M` of every
//!   response is recorded ([`SnapshotCounters::used_weight_1m`]) and logged at debug level.
//!   Connection failures and `5xx` answers are retried with full-jitter exponential backoff
//!   ([`net::reconnect::Backoff`]), reset after a success. Other `4xx` answers (an unknown symbol)
//!   and oversized bodies are not retried: the request is answered with
//!   [`SnapshotOutcome::Failed`].
//! * **Bodies** come back in a pool of preallocated fixed-size buffers: the thread takes a free
//!   buffer index from one SPSC ring, fills the buffer, and sends `(index, length)` on a second
//!   ring; [`SnapshotFetcher::poll`] copies the body into the caller's buffer (the feed's frame
//!   buffer, where it is journaled and decoded like any frame) and returns the index through the
//!   first ring. Nothing on the hot side allocates.
//!
//! # Why the buffers are atomic words
//!
//! A buffer is written by the fetcher thread and read by the hot thread, one after the other,
//! with ownership handed over through the SPSC rings (a Release push and an Acquire pop, so
//! every write of the filler happens-before every read of the reader). Plain bytes shared that
//! way need an `UnsafeCell` and an `unsafe` block whose soundness rests on that protocol; a
//! slice of `AtomicU64` words with `Relaxed` accesses gives the same code generation on x86-64
//! and aarch64 (plain 8-byte loads and stores) with no `unsafe` at all, at the cost of copying
//! word by word. A 1000-level snapshot is about 40 KiB, some 5000 word copies, once per resync.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use net::reconnect::Backoff;
use net::socket::{DriverKind, NetError, SocketConfig, StdTransport, TlsTransport, Transport};
use ringbuffers::spsc::{self, Consumer, Producer};

use crate::instrument::{InstrumentId, Symbol, Venue};

/// Levels asked for by default (`limit=1000`: weight 20 on spot, 20 on futures).
pub const DEFAULT_LIMIT: u32 = 1000;
/// Default largest body accepted (a 5000-level spot snapshot is about 200 KiB).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How often the idle fetcher looks at its request ring (and at the stop flag while waiting).
const IDLE_POLL: Duration = Duration::from_millis(2);
/// Socket read/write timeout slice: the worker re-checks its deadline and stop flag this often.
const IO_SLICE: Duration = Duration::from_millis(250);
/// Marks a [`Ready`] message without a buffer (a failure).
const NO_SLOT: u16 = u16::MAX;

/// Binance's REST base URL of `venue`.
pub fn default_rest_endpoint(venue: Venue) -> Option<&'static str> {
    match venue {
        Venue::BinanceSpot => Some("https://api.binance.com"),
        Venue::BinanceUsdM => Some("https://fapi.binance.com"),
        Venue::BinanceCoinM => Some("https://dapi.binance.com"),
        _ => None,
    }
}

/// The depth snapshot path of `venue`.
pub fn depth_path(venue: Venue) -> Option<&'static str> {
    match venue {
        Venue::BinanceSpot => Some("/api/v3/depth"),
        Venue::BinanceUsdM => Some("/fapi/v1/depth"),
        Venue::BinanceCoinM => Some("/dapi/v1/depth"),
        _ => None,
    }
}

/// The candles (klines) path of `venue`.
pub fn klines_path(venue: Venue) -> Option<&'static str> {
    match venue {
        Venue::BinanceSpot => Some("/api/v3/klines"),
        Venue::BinanceUsdM => Some("/fapi/v1/klines"),
        Venue::BinanceCoinM => Some("/dapi/v1/klines"),
        _ => None,
    }
}

/// Why a fetcher could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Invalid configuration (venue, endpoint, sizes).
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
    /// TLS setup failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The thread could not be spawned.
    #[error("cannot spawn the snapshot thread: {0}")]
    Spawn(io::Error),
}

fn config_err(msg: impl Into<String>) -> SnapshotError {
    SnapshotError::Config(msg.into())
}

/// Configuration of a [`SnapshotFetcher`].
#[derive(Clone, Debug)]
pub struct SnapshotConfig {
    /// Binance venue: chooses the path ([`depth_path`]) and the default endpoint.
    pub venue: Venue,
    /// Base URL override (`http://127.0.0.1:8080` in tests); `None`:
    /// [`default_rest_endpoint`]. A path in it is prepended to the venue's depth path.
    pub endpoint: Option<String>,
    /// `limit` query parameter (levels per side).
    pub limit: u32,
    /// Largest body accepted; also the size of each pool buffer.
    pub max_body: usize,
    /// Pool buffers (power of two): bodies fetched but not yet taken by the hot side.
    pub buffers: usize,
    /// Capacity of the request ring (power of two).
    pub queue: usize,
    /// Connect timeout, and the deadline of one request/response exchange.
    pub timeout: Duration,
    /// First backoff ceiling after a failure.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
    /// Backoff jitter seed; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Wait after a `429`/`418` that carries no usable `Retry-After`.
    pub default_retry_after: Duration,
}

impl SnapshotConfig {
    /// Defaults for `venue`: Binance's endpoint, `limit=1000`, 1 MiB bodies, 4 buffers, 64
    /// queued requests, 10 s timeout, backoff 200 ms doubling to 30 s, 60 s default
    /// `Retry-After`.
    pub fn new(venue: Venue) -> SnapshotConfig {
        SnapshotConfig {
            venue,
            endpoint: None,
            limit: DEFAULT_LIMIT,
            max_body: DEFAULT_MAX_BODY,
            buffers: 4,
            queue: 64,
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(30),
            seed: None,
            default_retry_after: Duration::from_secs(60),
        }
    }
}

/// A parsed `http://` or `https://` base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestEndpoint {
    /// `https://`.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path prefix (usually empty), without a trailing `/`.
    pub prefix: String,
}

impl RestEndpoint {
    /// Parses `http[s]://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<RestEndpoint, SnapshotError> {
        let bad = |why: &str| config_err(format!("REST endpoint '{url}': {why}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("must not carry a query"));
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
        Ok(RestEndpoint {
            tls,
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `Host` header.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for RestEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.prefix)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.prefix)
        }
    }
}

/// What a request asks the venue for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestQuery {
    /// The depth snapshot ([`depth_path`], `limit` = [`SnapshotConfig::limit`]).
    Depth,
    /// The most recent candles of `interval` (Binance's name: `1m`, `15m`...), at most
    /// `limit` of them, the last one still open ([`klines_path`]). The engine's strategy warms
    /// its candle indicators up from these at start.
    Klines {
        /// Binance interval name.
        interval: &'static str,
        /// Candles asked for (Binance caps it at 1000 on spot, 1500 on futures).
        limit: u32,
    },
}

/// One request: fetch `symbol`'s `query` for `instrument`; `tag` is the requester's and comes
/// back with the answer (the live source uses its connection epoch to recognise answers to
/// requests of an earlier session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Instrument the body will be attributed to.
    pub instrument: InstrumentId,
    /// Venue symbol (`BTCUSDT`).
    pub symbol: Symbol,
    /// Opaque to the fetcher; echoed in the [`SnapshotDelivery`].
    pub tag: u64,
    /// What is fetched.
    pub query: RestQuery,
}

/// Why a request was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFailure {
    /// The venue answered with this status (a `4xx` other than `429`/`418`): retrying the same
    /// request would get the same answer.
    Status(u16),
    /// The body is larger than [`SnapshotConfig::max_body`] (its announced size, or the limit
    /// when it was not announced).
    TooLarge(usize),
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// The body (`len` bytes, all of which were copied if the caller's buffer was large enough).
    Body {
        /// Body length in bytes.
        len: usize,
    },
    /// Given up (see [`SnapshotFailure`]).
    Failed(SnapshotFailure),
}

/// An answered request, from [`SnapshotFetcher::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotDelivery {
    /// The request's instrument.
    pub instrument: InstrumentId,
    /// The request's symbol.
    pub symbol: Symbol,
    /// The request's tag.
    pub tag: u64,
    /// What was asked for.
    pub query: RestQuery,
    /// The answer.
    pub outcome: SnapshotOutcome,
}

/// Fetcher -> hot side: an answered request.
#[derive(Clone, Copy, Debug)]
struct Ready {
    req: SnapshotRequest,
    /// Pool buffer holding the body, or [`NO_SLOT`].
    slot: u16,
    len: u32,
    failure: Option<SnapshotFailure>,
}

atomic_counters! {
    /// Counters of a [`SnapshotFetcher`], written by its thread, readable from any thread.
    SnapshotStats,
    /// A snapshot of [`SnapshotStats`].
    SnapshotCounters,
    /// Requests taken from the ring.
    requests,
    /// HTTP requests sent (attempts, including retries).
    attempts,
    /// Snapshots delivered.
    fetched,
    /// Bytes of delivered bodies.
    bytes,
    /// Requests given up ([`SnapshotOutcome::Failed`]).
    failed,
    /// Retries after a connection failure, timeout or `5xx` (with backoff).
    retries,
    /// `429 Too Many Requests` answers (each waited out).
    rate_limited,
    /// `418` (IP banned) answers (each waited out).
    banned,
    /// Total milliseconds spent waiting for `Retry-After`.
    retry_after_ms,
    /// Connections opened.
    connections,
    /// Responses that carried `X-MBX-USED-WEIGHT-1M`.
    weight_reports,
    /// The last `X-MBX-USED-WEIGHT-1M` seen.
    used_weight_1m,
    /// Bodies rejected for exceeding the size limit.
    too_large,
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// The preallocated body buffers, as atomic words (see the module documentation).
struct Pool {
    words: Box<[AtomicU64]>,
    slot_words: usize,
}

impl Pool {
    fn new(slots: usize, slot_bytes: usize) -> Pool {
        let slot_words = slot_bytes.div_ceil(8);
        Pool {
            words: (0..slots * slot_words).map(|_| AtomicU64::new(0)).collect(),
            slot_words,
        }
    }

    fn slot(&self, i: u16) -> &[AtomicU64] {
        let start = usize::from(i) * self.slot_words;
        &self.words[start..start + self.slot_words]
    }

    /// Fills buffer `i` with `bytes` (at most the buffer size). Only the owner of `i` calls it.
    fn write(&self, i: u16, bytes: &[u8]) {
        for (w, chunk) in self.slot(i).iter().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }

    /// Copies the first `len` bytes of buffer `i` into `out` (as many as fit).
    fn read(&self, i: u16, len: usize, out: &mut [u8]) {
        let n = len.min(out.len());
        for (chunk, w) in out[..n].chunks_mut(8).zip(self.slot(i)) {
            let b = w.load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// The hot side's handle to the snapshot thread (see the module documentation).
///
/// Dropping it stops the thread (it notices within one I/O slice or idle poll; it is not
/// joined, so a drop never blocks the hot thread).
pub struct SnapshotFetcher {
    requests: Producer<SnapshotRequest>,
    ready: Consumer<Ready>,
    free: Producer<u16>,
    pool: Arc<Pool>,
    stop: Arc<AtomicBool>,
    stats: Arc<SnapshotStats>,
    endpoint: RestEndpoint,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for SnapshotFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotFetcher")
            .field("endpoint", &self.endpoint)
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}

type TlsWrap = Box<dyn Fn(StdTransport) -> Result<TlsTransport<StdTransport>, NetError> + Send>;

impl SnapshotFetcher {
    /// Validates `cfg`, resolves the endpoint, prepares TLS, allocates the rings and the buffer
    /// pool, and starts the thread (cold path).
    pub fn spawn(cfg: &SnapshotConfig) -> Result<SnapshotFetcher, SnapshotError> {
        let path = depth_path(cfg.venue)
            .ok_or_else(|| config_err(format!("{} has no depth snapshot", cfg.venue.name())))?;
        let klines = klines_path(cfg.venue)
            .ok_or_else(|| config_err(format!("{} has no klines", cfg.venue.name())))?;
        let url = match &cfg.endpoint {
            Some(u) => u.clone(),
            None => default_rest_endpoint(cfg.venue)
                .ok_or_else(|| config_err(format!("{} has no REST endpoint", cfg.venue.name())))?
                .to_string(),
        };
        let endpoint = RestEndpoint::parse(&url)?;
        if !cfg.buffers.is_power_of_two() || cfg.buffers >= usize::from(NO_SLOT) {
            return Err(config_err(
                "snapshot buffers must be a power of two below 65535",
            ));
        }
        if !cfg.queue.is_power_of_two() {
            return Err(config_err("snapshot queue must be a power of two"));
        }
        if cfg.max_body == 0 || cfg.max_body > u32::MAX as usize {
            return Err(config_err("snapshot max_body must be between 1 and 4 GiB"));
        }
        let hostport = format!("{}:{}", endpoint.host, endpoint.port);
        let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(|source| SnapshotError::Resolve {
                host: hostport.clone(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(SnapshotError::Resolve {
                host: hostport,
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        }
        let tls: Option<TlsWrap> = if endpoint.tls {
            let config = net::socket::webpki_client_config()?;
            let name = endpoint.host.clone().try_into().map_err(|_| {
                config_err(format!(
                    "'{}' is not a valid TLS server name",
                    endpoint.host
                ))
            })?;
            Some(Box::new(move |t| {
                TlsTransport::new(t, Arc::clone(&config), Clone::clone(&name))
            }))
        } else {
            None
        };
        let backoff = match cfg.seed {
            Some(seed) => Backoff::new(cfg.backoff_base, cfg.backoff_cap, seed),
            None => Backoff::from_entropy(cfg.backoff_base, cfg.backoff_cap),
        };

        let (requests, req_rx) = spsc::channel::<SnapshotRequest>(cfg.queue);
        let (ready_tx, ready) = spsc::channel::<Ready>(cfg.buffers);
        let (mut free, free_rx) = spsc::channel::<u16>(cfg.buffers);
        for i in 0..cfg.buffers {
            let _ = free.try_push(i as u16);
        }
        let pool = Arc::new(Pool::new(cfg.buffers, cfg.max_body));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SnapshotStats::default());
        let worker = Worker {
            target_path: format!("{}{path}", endpoint.prefix),
            klines_path: format!("{}{klines}", endpoint.prefix),
            host_header: endpoint.host_header(),
            endpoint: endpoint.clone(),
            addrs,
            next_addr: 0,
            tls,
            limit: cfg.limit,
            max_body: cfg.max_body,
            timeout: cfg.timeout,
            default_retry_after: cfg.default_retry_after,
            backoff,
            conn: None,
            raw: Vec::with_capacity(READ_CHUNK * 2),
            body: Vec::with_capacity(cfg.max_body.min(1 << 20)),
            requests: req_rx,
            ready: ready_tx,
            free: free_rx,
            pool: Arc::clone(&pool),
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name("snapshots".into())
            .spawn(move || worker.run())
            .map_err(SnapshotError::Spawn)?;
        tracing::info!(venue = cfg.venue.name(), endpoint = %endpoint, limit = cfg.limit,
            "depth snapshot fetcher started");
        Ok(SnapshotFetcher {
            requests,
            ready,
            free,
            pool,
            stop,
            stats,
            endpoint,
            thread: Some(thread),
        })
    }

    /// Asks for `symbol`'s snapshot, attributed to `instrument`, echoing `tag`. Returns false
    /// when the request ring is full (try again later). Hot path: no allocation, no syscall.
    #[inline]
    pub fn request(&mut self, instrument: InstrumentId, symbol: Symbol, tag: u64) -> bool {
        self.requests
            .try_push(SnapshotRequest {
                instrument,
                symbol,
                tag,
                query: RestQuery::Depth,
            })
            .is_ok()
    }

    /// Asks for `symbol`'s most recent `limit` candles of `interval` (see
    /// [`RestQuery::Klines`]), attributed to `instrument`, echoing `tag`. Returns false when the
    /// request ring is full. No allocation, no syscall.
    pub fn request_klines(
        &mut self,
        instrument: InstrumentId,
        symbol: Symbol,
        interval: &'static str,
        limit: u32,
        tag: u64,
    ) -> bool {
        self.requests
            .try_push(SnapshotRequest {
                instrument,
                symbol,
                tag,
                query: RestQuery::Klines { interval, limit },
            })
            .is_ok()
    }

    /// The oldest answered request, if any. A body is copied into `out` (as much as fits; the
    /// outcome carries its full length, so a caller can detect truncation) and its buffer goes
    /// back to the pool before this returns. Hot path: no allocation, no syscall.
    pub fn poll(&mut self, out: &mut [u8]) -> Option<SnapshotDelivery> {
        let r = self.ready.try_pop()?;
        let outcome = match r.failure {
            Some(f) => SnapshotOutcome::Failed(f),
            None => {
                let len = r.len as usize;
                self.pool.read(r.slot, len, out);
                // The free ring holds every buffer index at most once, so it has room.
                let _ = self.free.try_push(r.slot);
                SnapshotOutcome::Body { len }
            }
        };
        Some(SnapshotDelivery {
            instrument: r.req.instrument,
            symbol: r.req.symbol,
            tag: r.req.tag,
            query: r.req.query,
            outcome,
        })
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<SnapshotStats> {
        Arc::clone(&self.stats)
    }

    /// The REST endpoint.
    pub fn endpoint(&self) -> &RestEndpoint {
        &self.endpoint
    }

    /// Stops the thread and waits for it (cold path; may take up to one I/O slice, 250 ms).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SnapshotFetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The thread
// ---------------------------------------------------------------------------------------------

/// How one exchange ended.
enum Exchange {
    /// `200` with the body in `Worker::body`.
    Body,
    /// `429`/`418`: wait this long, then send the same request again.
    RateLimited { status: u16, wait: Duration },
    /// Give the request up.
    Fatal(SnapshotFailure),
    /// Retry after a backoff delay (`5xx`).
    Retry(u16),
}

/// The parts of a response head the worker uses.
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    retry_after: Option<u64>,
    weight: Option<u64>,
    close: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

struct Worker {
    endpoint: RestEndpoint,
    target_path: String,
    /// The klines path (with the endpoint's prefix).
    klines_path: String,
    host_header: String,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    tls: Option<TlsWrap>,
    limit: u32,
    max_body: usize,
    timeout: Duration,
    default_retry_after: Duration,
    backoff: Backoff,
    conn: Option<Box<dyn Transport + Send>>,
    /// Received bytes not yet consumed.
    raw: Vec<u8>,
    /// The decoded body of the current response.
    body: Vec<u8>,
    requests: Consumer<SnapshotRequest>,
    ready: Producer<Ready>,
    free: Consumer<u16>,
    pool: Arc<Pool>,
    stop: Arc<AtomicBool>,
    stats: Arc<SnapshotStats>,
}

fn io_err(kind: io::ErrorKind, msg: &str) -> io::Error {
    io::Error::new(kind, msg.to_string())
}

impl Worker {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.requests.is_disconnected()
    }

    fn run(mut self) {
        while !self.stopping() {
            let Some(req) = self.requests.try_pop() else {
                std::thread::sleep(IDLE_POLL);
                continue;
            };
            add(&self.stats.requests, 1);
            let Some(failure) = self.fetch(&req) else {
                return;
            };
            let msg = match failure {
                Err(f) => {
                    add(&self.stats.failed, 1);
                    Ready {
                        req,
                        slot: NO_SLOT,
                        len: 0,
                        failure: Some(f),
                    }
                }
                Ok(()) => {
                    let Some(slot) = self.free_slot() else {
                        return;
                    };
                    self.pool.write(slot, &self.body);
                    add(&self.stats.fetched, 1);
                    add(&self.stats.bytes, self.body.len() as u64);
                    Ready {
                        req,
                        slot,
                        len: self.body.len() as u32,
                        failure: None,
                    }
                }
            };
            // The ready ring has a slot per buffer, and failures are rare; wait if it is full.
            while self.ready.try_push(msg).is_err() {
                if self.stopping() {
                    return;
                }
                std::thread::sleep(IDLE_POLL);
            }
        }
    }

    /// A free pool buffer, waiting for the hot side to return one; `None` when stopping.
    fn free_slot(&mut self) -> Option<u16> {
        loop {
            if let Some(i) = self.free.try_pop() {
                return Some(i);
            }
            if self.stopping() {
                return None;
            }
            std::thread::sleep(IDLE_POLL);
        }
    }

    /// Sleeps `d` in slices, returning false if asked to stop meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopping() {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Fetches until success or a non-retryable answer; `None` when stopping.
    fn fetch(&mut self, req: &SnapshotRequest) -> Option<Result<(), SnapshotFailure>> {
        loop {
            if self.stopping() {
                return None;
            }
            add(&self.stats.attempts, 1);
            let r = self.exchange(req);
            match r {
                Ok(Exchange::Body) => {
                    self.backoff.reset();
                    tracing::debug!(symbol = %req.symbol, query = ?req.query,
                        bytes = self.body.len(), "REST body fetched");
                    return Some(Ok(()));
                }
                Ok(Exchange::RateLimited { status, wait }) => {
                    let counter = if status == 418 {
                        &self.stats.banned
                    } else {
                        &self.stats.rate_limited
                    };
                    add(counter, 1);
                    add(&self.stats.retry_after_ms, wait.as_millis() as u64);
                    tracing::warn!(symbol = %req.symbol, status, wait_ms = wait.as_millis() as u64,
                        "depth snapshot rate limited; waiting Retry-After before retrying");
                    if !self.sleep(wait) {
                        return None;
                    }
                }
                Ok(Exchange::Fatal(f)) => {
                    tracing::error!(symbol = %req.symbol, failure = ?f, endpoint = %self.endpoint,
                        "depth snapshot request given up");
                    return Some(Err(f));
                }
                Ok(Exchange::Retry(status)) => {
                    if !self.back_off(req, format_args!("HTTP {status}")) {
                        return None;
                    }
                }
                Err(e) => {
                    self.conn = None;
                    if !self.back_off(req, format_args!("{e}")) {
                        return None;
                    }
                }
            }
        }
    }

    fn back_off(&mut self, req: &SnapshotRequest, why: fmt::Arguments<'_>) -> bool {
        add(&self.stats.retries, 1);
        let d = self.backoff.next_delay();
        tracing::warn!(symbol = %req.symbol, endpoint = %self.endpoint,
            retry_in_ms = d.as_millis() as u64, "depth snapshot attempt failed: {why}");
        self.sleep(d)
    }

    fn connect(&mut self) -> io::Result<Box<dyn Transport + Send>> {
        let addr = self.addrs[self.next_addr % self.addrs.len()];
        self.next_addr = self.next_addr.wrapping_add(1);
        let stream = TcpStream::connect_timeout(&addr, self.timeout)?;
        stream.set_read_timeout(Some(IO_SLICE))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let cfg = SocketConfig {
            busy_poll_us: None,
            ..SocketConfig::with_driver(DriverKind::Std)
        };
        let t = StdTransport::from_std(stream, &cfg)?;
        add(&self.stats.connections, 1);
        Ok(match &self.tls {
            Some(wrap) => {
                let mut t = wrap(t).map_err(|e| io::Error::other(e.to_string()))?;
                net::socket::wait_connected(&mut t, self.timeout)?;
                Box::new(t)
            }
            None => Box::new(t),
        })
    }

    /// One request and its response on the kept-alive connection (opened if needed). A kept
    /// connection the server has closed meanwhile (idle keep-alive timeout) is replaced at
    /// once, without a backoff delay.
    fn exchange(&mut self, req: &SnapshotRequest) -> io::Result<Exchange> {
        let reused = self.conn.is_some();
        match self.exchange_once(req) {
            Err(e)
                if reused
                    && matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                    ) =>
            {
                tracing::debug!(error = %e, "kept-alive REST connection was closed; reconnecting");
                self.exchange_once(req)
            }
            r => r,
        }
    }

    fn exchange_once(&mut self, req: &SnapshotRequest) -> io::Result<Exchange> {
        let deadline = Instant::now() + self.timeout;
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect()?,
        };
        let target = match req.query {
            RestQuery::Depth => format!(
                "{}?symbol={}&limit={}",
                self.target_path, req.symbol, self.limit
            ),
            RestQuery::Klines { interval, limit } => format!(
                "{}?symbol={}&interval={interval}&limit={limit}",
                self.klines_path, req.symbol
            ),
        };
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: algo-engine\r\n\
             Accept: application/json\r\nConnection: keep-alive\r\n\r\n",
            self.host_header
        );
        net::socket::write_all(&mut *conn, head.as_bytes(), self.timeout)?;
        self.raw.clear();
        let head = loop {
            if let Some(h) = parse_head(&self.raw)? {
                break h;
            }
            if self.raw.len() >= MAX_HEAD {
                return Err(io_err(io::ErrorKind::InvalidData, "response head too long"));
            }
            if self.read_more(&mut *conn, deadline)? == 0 {
                return Err(io_err(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response",
                ));
            }
        };
        self.raw.drain(..head.len);
        if let Some(w) = head.weight {
            add(&self.stats.weight_reports, 1);
            self.stats.used_weight_1m.store(w, Ordering::Relaxed);
            tracing::debug!(used_weight_1m = w, status = head.status, "REST weight");
        }
        // Every answer's body is read (bounded), so the connection stays usable.
        let limit = if head.status == 200 {
            self.max_body
        } else {
            MAX_HEAD
        };
        match self.read_body(&mut *conn, &head, limit, deadline)? {
            Ok(()) => {}
            Err(size) => {
                add(&self.stats.too_large, 1);
                // The rest of the body is not read: the connection cannot be reused.
                return Ok(Exchange::Fatal(SnapshotFailure::TooLarge(size)));
            }
        }
        if !head.close && head.framing != Framing::UntilClose {
            self.conn = Some(conn);
        }
        Ok(match head.status {
            200 => Exchange::Body,
            429 | 418 => Exchange::RateLimited {
                status: head.status,
                wait: head
                    .retry_after
                    .map_or(self.default_retry_after, Duration::from_secs),
            },
            s if (400..500).contains(&s) => {
                tracing::error!(status = s, body = %String::from_utf8_lossy(&self.body),
                    "depth snapshot refused");
                Exchange::Fatal(SnapshotFailure::Status(s))
            }
            s => Exchange::Retry(s),
        })
    }

    /// Reads whatever the connection has into `raw` (waiting up to `deadline`).
    fn read_more(&mut self, conn: &mut dyn Transport, deadline: Instant) -> io::Result<usize> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(io_err(io::ErrorKind::Interrupted, "stopping"));
            }
            let start = self.raw.len();
            self.raw.resize(start + READ_CHUNK, 0);
            let r = conn.read_into(&mut self.raw[start..]);
            self.raw.truncate(start + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(io_err(io::ErrorKind::TimedOut, "response timed out"));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the body into `body` per the head's framing. `Ok(Err(size))` when it exceeds
    /// `limit`.
    fn read_body(
        &mut self,
        conn: &mut dyn Transport,
        head: &Head,
        limit: usize,
        deadline: Instant,
    ) -> io::Result<Result<(), usize>> {
        self.body.clear();
        match head.framing {
            Framing::Length(n) => {
                if n > limit as u64 {
                    return Ok(Err(n as usize));
                }
                let n = n as usize;
                while self.raw.len() < n {
                    if self.read_more(conn, deadline)? == 0 {
                        return Err(io_err(io::ErrorKind::UnexpectedEof, "body cut short"));
                    }
                }
                self.body.extend_from_slice(&self.raw[..n]);
                self.raw.drain(..n);
            }
            Framing::UntilClose => loop {
                if self.raw.len() > limit {
                    return Ok(Err(limit));
                }
                if self.read_more(conn, deadline)? == 0 {
                    self.body.extend_from_slice(&self.raw);
                    self.raw.clear();
                    break;
                }
            },
            Framing::Chunked => loop {
                match httparse::parse_chunk_size(&self.raw) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        if size == 0 {
                            // Trailer section: header lines until an empty line.
                            self.raw.drain(..used);
                            loop {
                                if let Some(i) = find_crlf(&self.raw) {
                                    self.raw.drain(..i + 2);
                                    if i == 0 {
                                        return Ok(Ok(()));
                                    }
                                    continue;
                                }
                                if self.read_more(conn, deadline)? == 0 {
                                    return Err(io_err(
                                        io::ErrorKind::UnexpectedEof,
                                        "chunked trailer cut short",
                                    ));
                                }
                            }
                        }
                        if self.body.len() as u64 + size > limit as u64 {
                            return Ok(Err(limit));
                        }
                        let size = size as usize;
                        while self.raw.len() < used + size + 2 {
                            if self.read_more(conn, deadline)? == 0 {
                                return Err(io_err(
                                    io::ErrorKind::UnexpectedEof,
                                    "chunk cut short",
                                ));
                            }
                        }
                        if &self.raw[used + size..used + size + 2] != b"\r\n" {
                            return Err(io_err(io::ErrorKind::InvalidData, "chunk without CRLF"));
                        }
                        self.body.extend_from_slice(&self.raw[used..used + size]);
                        self.raw.drain(..used + size + 2);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.raw.len() > 1024 {
                            return Err(io_err(io::ErrorKind::InvalidData, "chunk size line"));
                        }
                        if self.read_more(conn, deadline)? == 0 {
                            return Err(io_err(io::ErrorKind::UnexpectedEof, "chunked body cut"));
                        }
                    }
                    Err(_) => {
                        return Err(io_err(io::ErrorKind::InvalidData, "invalid chunk size"));
                    }
                }
            },
        }
        Ok(Ok(()))
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn header_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// The response head at the start of `raw`, once complete.
fn parse_head(raw: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response head: {e}"),
            ))
        }
    };
    let status = resp.code.unwrap_or(0);
    let mut head = Head {
        status,
        len,
        framing: Framing::UntilClose,
        retry_after: None,
        weight: None,
        close: resp.version == Some(0),
    };
    let mut chunked = false;
    let mut length = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                header_u64(h.value)
                    .ok_or_else(|| io_err(io::ErrorKind::InvalidData, "invalid Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("retry-after") {
            head.retry_after = header_u64(h.value);
        } else if name.eq_ignore_ascii_case("x-mbx-used-weight-1m") {
            head.weight = header_u64(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.trim_ascii().eq_ignore_ascii_case(b"close") {
                head.close = true;
            } else if v.trim_ascii().eq_ignore_ascii_case(b"keep-alive") {
                head.close = false;
            }
        }
    }
    head.framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = RestEndpoint::parse("https://fapi.binance.com").unwrap();
        assert_eq!((e.tls, e.port, e.prefix.as_str()), (true, 443, ""));
        assert_eq!(e.host_header(), "fapi.binance.com");
        let e = RestEndpoint::parse("http://127.0.0.1:8081/x/").unwrap();
        assert_eq!((e.tls, e.port, e.prefix.as_str()), (false, 8081, "/x"));
        assert_eq!(e.host_header(), "127.0.0.1:8081");
        assert!(RestEndpoint::parse("ftp://x").is_err());
        assert!(RestEndpoint::parse("http://x/?a=1").is_err());
        assert_eq!(depth_path(Venue::BinanceCoinM), Some("/dapi/v1/depth"));
    }

    #[test]
    fn heads_parse() {
        let h = parse_head(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-MBX-USED-WEIGHT-1M: 1210\r\n\
              Content-Length: 5\r\n\r\nabcde",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 429);
        assert_eq!(h.retry_after, Some(7));
        assert_eq!(h.weight, Some(1210));
        assert!(h.framing == Framing::Length(5));
        assert!(!h.close);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.framing == Framing::Chunked);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(h.close && h.framing == Framing::UntilClose);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    /// A scripted HTTP/1.1 server on loopback: each entry answers one request; `true` closes
    /// the connection after it (without saying so, like an idle keep-alive timeout).
    fn scripted_server(script: Vec<(&'static [u8], bool)>) -> (u16, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let mut script = script.into_iter();
            'accept: while let Ok((mut s, _)) = listener.accept() {
                let mut buf = Vec::new();
                loop {
                    let mut b = [0u8; 4096];
                    while find_crlf_crlf(&buf).is_none() {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => continue 'accept,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                    let end = find_crlf_crlf(&buf).unwrap() + 4;
                    assert!(buf.starts_with(b"GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000 "));
                    buf.drain(..end);
                    let Some((resp, close)) = script.next() else {
                        return;
                    };
                    s.write_all(resp).unwrap();
                    if close {
                        continue 'accept;
                    }
                }
            }
        });
        (port, t)
    }

    fn find_crlf_crlf(b: &[u8]) -> Option<usize> {
        b.windows(4).position(|w| w == b"\r\n\r\n")
    }

    #[test]
    fn framing_keep_alive_retries_and_limits() {
        let (port, server) =
            scripted_server(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true),
            (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n\
                  0\r\nX-Trailer: 1\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false),
        ]);
        let mut cfg = SnapshotConfig::new(Venue::BinanceUsdM);
        cfg.endpoint = Some(format!("http://127.0.0.1:{port}"));
        cfg.max_body = 64;
        cfg.seed = Some(1);
        cfg.backoff_base = Duration::from_millis(1);
        cfg.backoff_cap = Duration::from_millis(5);
        let mut f = SnapshotFetcher::spawn(&cfg).unwrap();
        let sym = Symbol::new(b"BTCUSDT").unwrap();
        let mut out = [0u8; 64];
        let next = |f: &mut SnapshotFetcher, out: &mut [u8]| {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(d) = f.poll(out) {
                    return d;
                }
                assert!(Instant::now() < end, "no answer");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        for (tag, want) in [(1u64, &b"hello"[..]), (2, &b"abcde"[..])] {
            assert!(f.request(InstrumentId(3), sym, tag));
            let d = next(&mut f, &mut out);
            assert_eq!((d.instrument, d.tag), (InstrumentId(3), tag));
            assert_eq!(d.outcome, SnapshotOutcome::Body { len: want.len() });
            assert_eq!(&out[..want.len()], want);
        }
        assert!(f.request(InstrumentId(3), sym, 3));
        let d = next(&mut f, &mut out);
        assert_eq!(
            d.outcome,
            SnapshotOutcome::Failed(SnapshotFailure::TooLarge(100))
        );
        let s = f.stats().snapshot();
        assert_eq!((s.fetched, s.failed, s.too_large), (2, 1, 1), "{s:?}");
        // The closed keep-alive connection was replaced without a backoff; the 503 backed off.
        assert_eq!((s.connections, s.retries, s.attempts), (2, 1, 4), "{s:?}");
        f.shutdown();
        drop(server);
    }

    #[test]
    fn pool_round_trips_bytes() {
        let pool = Pool::new(2, 21);
        let data: Vec<u8> = (0u8..21).collect();
        pool.write(1, &data);
        let mut out = [0u8; 32];
        pool.read(1, 21, &mut out);
        assert_eq!(&out[..21], &data[..]);
        let mut short = [0u8; 10];
        pool.read(1, 21, &mut short);
        assert_eq!(&short[..], &data[..10]);
    }
}
