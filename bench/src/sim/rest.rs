//! The simulator's REST side: a Binance-spot-compatible HTTP/1.1 server on loopback.
//!
//! # Endpoints
//!
//! | method | path | security | weight |
//! |---|---|---|---|
//! | GET | `/api/v3/ping` | none | 1 |
//! | GET | `/api/v3/time` | none | 1 |
//! | GET | `/api/v3/exchangeInfo` | none | 20 |
//! | GET | `/api/v3/depth` | none | 5 / 25 / 50 / 250 by `limit` (≤100 / ≤500 / ≤1000 / ≤5000) |
//! | GET | `/api/v3/klines` | none | 2 |
//! | POST | `/api/v3/order` | signed | 1 |
//! | DELETE | `/api/v3/order` | signed | 1 |
//! | GET | `/api/v3/order` | signed | 4 |
//! | GET | `/api/v3/openOrders` | signed | 6 with `symbol`, 80 without |
//! | GET | `/api/v3/allOrders` | signed | 20 |
//! | GET | `/api/v3/account` | signed | 20 |
//! | POST/PUT/DELETE | `/api/v3/userDataStream` | API key | 2 |
//!
//! With [`MarketType::UsdM`] the same endpoints are served on USD-M's paths instead
//! (`/fapi/v1/{ping,time,exchangeInfo,depth,klines,order,openOrders,allOrders,listenKey,
//! leverageBracket}`, `/fapi/v2|v3/{account,positionRisk}`), with USD-M's weights, filters
//! (tick 0.1 / step 0.001 for BTCUSDT, `MIN_NOTIONAL` 100), order parameters (`reduceOnly`,
//! `positionSide=BOTH`, `GTX`; `newOrderRespType` `ACK` by default or `RESULT`), response shapes
//! (`cumQuote`, `avgPrice`, `reduceOnly`, no `fills`) and error codes (`-4014` tick, `-1111`
//! step, `-4164` notional, `-5022` post-only would take, `-2022` reduce-only, `-2019` margin,
//! `-4061` position side); the account is the `futures` module's.
//!
//! # Behaviour copied from Binance
//!
//! * **Signatures**: `X-MBX-APIKEY` must name the configured key (`-2014` when absent or
//!   malformed, `-2015` when unknown, HTTP 401); `signature` is HMAC-SHA256 over the query
//!   string followed directly by the body, with the `signature` pair itself removed (`-1022`).
//!   Verification is the gateway's own [`Signer::verify_hex`] (constant-time).
//! * **Time**: a signed request is accepted when `timestamp < serverTime + 1000` and
//!   `serverTime - timestamp <= recvWindow` (default 5000, at most 60000: `-1131` above);
//!   otherwise `-1021`. The server clock can be offset ([`RestConfig::clock_offset_ms`]) to
//!   replay documented examples or test skew.
//! * **Weights**: every request to a known endpoint adds its weight to the caller's IP's
//!   counter for the current window ([`RestConfig::weight_window`], a minute on Binance); every
//!   response carries `X-MBX-USED-WEIGHT-1M`. A request that takes the counter past
//!   [`RestConfig::weight_limit`] gets HTTP 429 (`-1003`) with `Retry-After` (seconds to the
//!   end of the window). A client that keeps sending while told to back off gets 429 again, and
//!   after [`RestConfig::ignored_429_before_ban`] such requests HTTP 418 (an IP ban of
//!   [`RestConfig::ban_duration`]), with `Retry-After` until the ban ends; every request during
//!   the ban gets 418. One difference: a window starts at the IP's first request rather than
//!   on the clock minute, so tests of the limits are deterministic.
//! * **Orders**: `LIMIT` (with `timeInForce`) and `LIMIT_MAKER`, validated against
//!   `PRICE_FILTER`, `LOT_SIZE` and `NOTIONAL` (`-1013`) and the account's free balance
//!   (`-2010`), which they lock. `newClientOrderId` must be unique among open orders (`-2010`
//!   "Duplicate order sent."), as on Binance; it may be reused once the order is closed.
//!   Responses are `ACK`, `RESULT` or `FULL` (the default) shaped exactly like Binance's.
//! * **Klines**: `symbol` and `interval` (`1m` … `12h`, `1d`, `1w`; `-1120` "Invalid
//!   interval." otherwise), `limit` (default 500, at most 1000: larger values are served as
//!   1000, like `depth` above its maximum), `startTime`/`endTime` (bars whose open time lies
//!   between them; with `startTime` the first `limit` from it, otherwise the last `limit`;
//!   `-1023` when start is after end) and `timeZone`. Rows are Binance's 12-element arrays; the
//!   last row of an answer without `endTime` is the bar still open at the venue's market time.
//!   The candles are the venue's history plus the tape's trades so far (`klines`, `history`).
//! * **Errors**: Binance's JSON bodies (`{"code":-1121,"msg":"Invalid symbol."}`) and HTTP
//!   statuses (400 for request errors, 401 for key errors, 429/418 for rate limits).
//!
//! # Not here (yet)
//!
//! Matching lives in `exchange` (see there); stop orders
//! are refused (`-1116`); `quoteOrderQty` market orders too. Without a market attached
//! (a bare `RestServer`), `depth` serves a fixed synthetic ladder around a reference price
//! per symbol, not a replayed book, and `klines` is empty. `1s`, `3d` and `1M` klines are not
//! served (`-1120`). No order-count limits (`X-MBX-ORDER-COUNT-*` are reported
//! but not enforced).
//!
//! # Mechanics
//!
//! Blocking `std::net`, one thread per connection (keep-alive: HTTP/1.1 unless
//! `Connection: close`), one mutex around the venue state. This is the test venue, not the hot
//! path: correctness and simplicity over throughput.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotpath::fixed::{format_decimal, parse_mantissa, ParseError};
use hotpath::venue::binance::sign::{valid_client_order_id, Signer};
use serde_json::{json, Value};

use super::exchange::{Exchange, Fees, LatencyModel, NewOrder};
use super::futures::Futures;
use super::klines::{dec128, Interval, Query};
use super::stamps::WireLog;

/// All prices, quantities and balances are kept at Binance's wire scale of 8 decimals.
const SCALE: u8 = 8;
pub(crate) const ONE: i64 = 100_000_000;

/// Which of Binance's APIs the simulator serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MarketType {
    /// Spot: `/api/v3/...`, balances, `executionReport`.
    #[default]
    Spot,
    /// USD-M futures: `/fapi/...`, a USDT margin wallet and one-way positions,
    /// `ORDER_TRADE_UPDATE`/`ACCOUNT_UPDATE` (see the `futures` module).
    UsdM,
}

impl MarketType {
    /// Parse `spot` or `usdm` (also `usd-m`, `binance-usdm`).
    pub fn parse(s: &str) -> Option<MarketType> {
        match s.to_ascii_lowercase().as_str() {
            "spot" | "binance-spot" => Some(MarketType::Spot),
            "usdm" | "usd-m" | "binance-usdm" => Some(MarketType::UsdM),
            _ => None,
        }
    }
}

/// Configuration of a [`RestServer`].
#[derive(Clone, Debug)]
pub struct RestConfig {
    /// Spot (the default) or USD-M futures.
    pub market_type: MarketType,
    /// USD-M: the leverage of every symbol (initial margin = notional / leverage).
    pub leverage: u32,
    /// Address to bind; port 0 picks a free one. Loopback by default.
    pub bind: SocketAddr,
    /// The one API key accepted.
    pub api_key: String,
    /// Its secret.
    pub api_secret: String,
    /// Request weight allowed per IP per window (Binance: 6000 per minute).
    pub weight_limit: u32,
    /// Length of the weight window (Binance: one minute).
    pub weight_window: Duration,
    /// Requests sent during a back-off (after a 429, before its `Retry-After`) that are
    /// answered with 429 again before the IP is banned with 418.
    pub ignored_429_before_ban: u32,
    /// How long a 418 ban lasts (Binance: 2 minutes for a first offence, up to 3 days).
    pub ban_duration: Duration,
    /// Added to the wall clock to give the server's time, in milliseconds.
    pub clock_offset_ms: i64,
    /// Starting balances: asset and free amount as a decimal string. On USD-M the `USDT`
    /// amount is the margin wallet and the other assets are ignored.
    pub balances: Vec<(String, String)>,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            market_type: MarketType::Spot,
            leverage: 20,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "simkey".into(),
            api_secret: "simsecret".into(),
            weight_limit: 6000,
            weight_window: Duration::from_secs(60),
            ignored_429_before_ban: 2,
            ban_duration: Duration::from_secs(120),
            clock_offset_ms: 0,
            balances: vec![
                ("BTC".into(), "10".into()),
                ("ETH".into(), "100".into()),
                ("USDT".into(), "1000000".into()),
            ],
        }
    }
}

/// A symbol the simulator lists, with Binance's filters at scale 8.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Market {
    pub(crate) symbol: &'static str,
    pub(crate) base: &'static str,
    pub(crate) quote: &'static str,
    min_price: i64,
    max_price: i64,
    pub(crate) tick: i64,
    min_qty: i64,
    max_qty: i64,
    pub(crate) step: i64,
    min_notional: i64,
    max_notional: i64,
    /// Mid of the synthetic depth ladder.
    ref_price: i64,
}

/// BTCUSDT and ETHUSDT with the filters Binance spot publishes for them.
const MARKETS: [Market; 2] = [
    Market {
        symbol: "BTCUSDT",
        base: "BTC",
        quote: "USDT",
        min_price: ONE / 100,
        max_price: 1_000_000 * ONE,
        tick: ONE / 100,
        min_qty: 1_000,
        max_qty: 9_000 * ONE,
        step: 1_000,
        min_notional: 5 * ONE,
        max_notional: 9_000_000 * ONE,
        ref_price: 60_000 * ONE,
    },
    Market {
        symbol: "ETHUSDT",
        base: "ETH",
        quote: "USDT",
        min_price: ONE / 100,
        max_price: 1_000_000 * ONE,
        tick: ONE / 100,
        min_qty: 10_000,
        max_qty: 9_000 * ONE,
        step: 10_000,
        min_notional: 5 * ONE,
        max_notional: 9_000_000 * ONE,
        ref_price: 3_000 * ONE,
    },
];

/// BTCUSDT and ETHUSDT perpetuals with the filters Binance USD-M publishes for them (coarser
/// ticks and steps than spot, and a minimum notional of 100 / 20 USDT).
const USDM_MARKETS: [Market; 2] = [
    Market {
        symbol: "BTCUSDT",
        base: "BTC",
        quote: "USDT",
        min_price: ONE / 10,
        max_price: 4_529_764 * ONE,
        tick: ONE / 10,
        min_qty: ONE / 1000,
        max_qty: 1_000 * ONE,
        step: ONE / 1000,
        min_notional: 100 * ONE,
        max_notional: i64::MAX,
        ref_price: 60_000 * ONE,
    },
    Market {
        symbol: "ETHUSDT",
        base: "ETH",
        quote: "USDT",
        min_price: ONE / 100,
        max_price: 306_177 * ONE,
        tick: ONE / 100,
        min_qty: ONE / 1000,
        max_qty: 10_000 * ONE,
        step: ONE / 1000,
        min_notional: 20 * ONE,
        max_notional: i64::MAX,
        ref_price: 3_000 * ONE,
    },
];

/// The symbols listed on `kind`.
pub(crate) fn markets(kind: MarketType) -> &'static [Market] {
    match kind {
        MarketType::Spot => &MARKETS,
        MarketType::UsdM => &USDM_MARKETS,
    }
}

/// A spot symbol (the symbol names and assets are the same on both markets).
pub(crate) fn market(symbol: &str) -> Option<&'static Market> {
    market_in(MarketType::Spot, symbol)
}

/// `symbol` on `kind`, with that market's filters.
pub(crate) fn market_in(kind: MarketType, symbol: &str) -> Option<&'static Market> {
    markets(kind).iter().find(|m| m.symbol == symbol)
}

/// A value at scale 8 as Binance prints it (`"0.10000000"`).
pub(crate) fn dec(v: i64) -> String {
    let mut b = [0u8; 32];
    let n = format_decimal(v, SCALE, &mut b).unwrap_or(0);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// A Binance error: HTTP status, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: i32,
    pub(crate) msg: String,
}

pub(crate) fn err(status: u16, code: i32, msg: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        msg: msg.into(),
    }
}

pub(crate) fn mandatory(name: &str) -> ApiError {
    err(
        400,
        -1102,
        format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// `price * qty` at scale 8, rounded up (what a buy locks).
fn notional(price: i64, qty: i64) -> i64 {
    let p = i128::from(price) * i128::from(qty);
    let r = (p + i128::from(ONE) - 1) / i128::from(ONE);
    i64::try_from(r).unwrap_or(i64::MAX)
}

/// Per-IP request-weight accounting.
#[derive(Debug)]
struct Limiter {
    window_start: Instant,
    used: u32,
    backoff_until: Option<Instant>,
    ignored: u32,
    banned_until: Option<Instant>,
}

/// What the limiter decided for one request.
enum Admit {
    Ok,
    TooMany { retry: Duration },
    Banned { retry: Duration, until: Instant },
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// Venue state behind the server's mutex.
pub(crate) struct State {
    pub(crate) ex: Exchange,
    limiters: HashMap<IpAddr, Limiter>,
    order_count_10s: (Instant, u32),
    order_count_1d: u32,
    /// Orders waiting out their latency: (ticket, market time they take effect, request).
    pending: Vec<(u64, u64, NewOrder)>,
    /// Results of activated pending orders, by ticket.
    done: HashMap<u64, Result<Value, ApiError>>,
    next_ticket: u64,
    /// Whether a market driver applies frames (and so activates pending orders).
    pub(crate) driver_running: bool,
    latency_rng: u64,
    pub(crate) listen_keys: Vec<String>,
}

impl State {
    /// Activate every pending order due at market time `t_ns` (all of them with `None`); each
    /// is stamped with the market time it arrived at (`wall_ms` only without a market).
    pub(crate) fn activate_due(&mut self, t_ns: Option<u64>, wall_ms: u64) -> bool {
        let mut any = false;
        while let Some(pos) = self
            .pending
            .iter()
            .position(|p| t_ns.is_none_or(|t| p.1 <= t))
        {
            let (ticket, at_ns, req) = self.pending.remove(pos);
            let arrived_ms = self.ex.event_ms(at_ns);
            let r = self.ex.place_at(req, wall_ms, arrived_ms);
            self.done.insert(ticket, r);
            any = true;
        }
        any
    }
}

/// What a venue adds to a bare REST server.
pub(crate) struct VenueOpts {
    pub fees: Fees,
    pub latency: LatencyModel,
    /// Seed books with the fixed synthetic ladder (the bare REST server's market).
    pub ladder: bool,
    pub events: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    pub stamps: Option<Arc<WireLog>>,
}

pub(crate) struct Shared {
    pub(crate) cfg: RestConfig,
    signer: Signer,
    state: Mutex<State>,
    /// Signalled when pending orders are activated.
    pub(crate) activated: Condvar,
    stop: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    started: Instant,
    latency: LatencyModel,
    stamps: Option<Arc<WireLog>>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panicking handler thread must not take the venue down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (wall + self.cfg.clock_offset_ms).max(0) as u64
    }
}

/// A running REST venue. Stops (closing every connection) on [`RestServer::shutdown`] or drop.
pub struct RestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RestServer {
    /// Bind and start serving on a background thread. Without a market attached, the books
    /// are a fixed synthetic ladder around a reference price per symbol (60000 BTCUSDT, 3000
    /// ETHUSDT): limit orders away from it rest, marketable ones fill against it.
    pub fn start(cfg: RestConfig) -> io::Result<RestServer> {
        Self::start_with(
            cfg,
            VenueOpts {
                fees: Fees::default(),
                latency: LatencyModel::Zero,
                ladder: true,
                events: None,
                stamps: None,
            },
        )
    }

    pub(crate) fn start_with(cfg: RestConfig, opts: VenueOpts) -> io::Result<RestServer> {
        let mut balances = BTreeMap::new();
        let mut ex_futures = None;
        for (asset, amount) in &cfg.balances {
            let v = parse_mantissa(amount.as_bytes(), SCALE).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("balance of {asset}: {e}"),
                )
            })?;
            balances.insert(asset.clone(), (v, 0));
        }
        let kind = cfg.market_type;
        if kind == MarketType::UsdM {
            let wallet = balances.get("USDT").map_or(0, |b| b.0);
            balances.clear();
            ex_futures = Some(Futures::new(wallet, cfg.leverage));
        }
        let mut ex = Exchange::new(balances, opts.fees);
        ex.futures = ex_futures;
        ex.events = opts.events;
        if opts.ladder {
            for m in markets(kind) {
                let level = |i: i64, side: i64| {
                    let px = m.ref_price + side * (i + 1) * m.tick;
                    (px, m.min_qty * (1 + (i * 7919) % 97))
                };
                let bids: Vec<_> = (0..5000).map(|i| level(i, -1)).collect();
                let asks: Vec<_> = (0..5000).map(|i| level(i, 1)).collect();
                ex.books
                    .entry(m.symbol)
                    .or_default()
                    .reset(1_000_000, &bids, &asks);
            }
        }
        let listener = TcpListener::bind(cfg.bind)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            signer: Signer::from_secret_bytes(cfg.api_secret.as_bytes()),
            cfg,
            state: Mutex::new(State {
                ex,
                limiters: HashMap::new(),
                order_count_10s: (Instant::now(), 0),
                order_count_1d: 0,
                pending: Vec::new(),
                done: HashMap::new(),
                next_ticket: 1,
                driver_running: false,
                latency_rng: opts.latency.seed(),
                listen_keys: Vec::new(),
            }),
            activated: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            started: Instant::now(),
            latency: opts.latency,
            stamps: opts.stamps,
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("sim-rest-accept".into())
            .spawn(move || accept_loop(listener, sh))?;
        Ok(RestServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's clock, in milliseconds since the epoch (wall clock plus the offset).
    pub fn server_time_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// Number of orders still open (for tests).
    pub fn open_order_count(&self) -> usize {
        self.shared
            .state()
            .ex
            .orders
            .iter()
            .filter(|o| o.is_open())
            .count()
    }

    /// Stop accepting, close every connection and join the accept thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if self.shared.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for (_, c) in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(c) = stream.try_clone() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, c);
        }
        let sh = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("sim-rest-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &sh);
                sh.conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            });
        if spawned.is_err() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// A parsed HTTP request.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    query: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// Read one request; `Ok(None)` on a clean close before any byte.
fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    let mut head = 0usize;
    // Tolerate blank lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head += line.len();
        if !line.trim().is_empty() {
            break;
        }
        if head > MAX_HEAD {
            return Err(bad("request head too long"));
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    let (method, target, version) = (method.to_owned(), target.to_owned(), version.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("eof in headers"));
        }
        head += line.len();
        if head > MAX_HEAD {
            return Err(bad("request head too long"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let Some((n, v)) = l.split_once(':') else {
            return Err(bad("malformed header"));
        };
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.as_bytes().to_vec()),
        None => (target.clone(), Vec::new()),
    };
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
        keep_alive: false,
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return Err(bad("chunked request bodies are not supported"));
    }
    let len = match req.header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| bad("bad content-length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(bad("body too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    req.body = body;
    let conn = req.header("connection").map(|v| v.to_ascii_lowercase());
    req.keep_alive = match conn.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => version.eq_ignore_ascii_case("HTTP/1.1"),
    };
    Ok(Some(req))
}

/// A response about to be written.
struct Response {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        _ => "Error",
    }
}

fn write_response(w: &mut TcpStream, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    for (n, v) in &resp.headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.push_str(&resp.body);
    w.write_all(out.as_bytes())?;
    w.flush()
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let peer = stream.peer_addr()?.ip();
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let resp = Response {
                    status: 400,
                    body: json!({"code": -1000, "msg": format!("Malformed request: {e}")})
                        .to_string(),
                    headers: Vec::new(),
                };
                let _ = write_response(&mut writer, &resp, false);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let Some(log) = &shared.stamps {
            let order_path = match shared.cfg.market_type {
                MarketType::Spot => "/api/v3/order",
                MarketType::UsdM => "/fapi/v1/order",
            };
            if req.method == "POST" && req.path.trim_end_matches('/') == order_path {
                let tsc = log.now();
                let id = raw_param(&req.body, b"newClientOrderId=")
                    .or_else(|| raw_param(&req.query, b"newClientOrderId="))
                    .unwrap_or(b"");
                log.order(tsc, id);
            }
        }
        let resp = handle(shared, peer, &req);
        write_response(&mut writer, &resp, req.keep_alive)?;
        if !req.keep_alive {
            return Ok(());
        }
    }
}

/// The raw value of `name=` (given with its `=`) in a query string, without decoding.
fn raw_param<'a>(raw: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    raw.split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(name))
}

/// Which endpoint a request is for (a REST path or its WebSocket API method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Ping,
    Time,
    ExchangeInfo,
    Depth,
    Klines,
    NewOrder,
    CancelOrder,
    QueryOrder,
    OpenOrders,
    AllOrders,
    MyTrades,
    Account,
    /// USD-M `positionRisk`.
    PositionRisk,
    /// USD-M `leverageBracket` (ccxt reads it before positions).
    LeverageBracket,
    NewListenKey,
    KeepListenKey,
    CloseListenKey,
}

impl Endpoint {
    fn route(kind: MarketType, method: &str, path: &str) -> Option<Endpoint> {
        if kind == MarketType::UsdM {
            return Self::route_usdm(method, path);
        }
        Some(match (method, path.trim_end_matches('/')) {
            ("GET", "/api/v3/ping") => Endpoint::Ping,
            ("GET", "/api/v3/time") => Endpoint::Time,
            ("GET", "/api/v3/exchangeInfo") => Endpoint::ExchangeInfo,
            ("GET", "/api/v3/depth") => Endpoint::Depth,
            ("GET", "/api/v3/klines") => Endpoint::Klines,
            ("POST", "/api/v3/order") => Endpoint::NewOrder,
            ("DELETE", "/api/v3/order") => Endpoint::CancelOrder,
            ("GET", "/api/v3/order") => Endpoint::QueryOrder,
            ("GET", "/api/v3/openOrders") => Endpoint::OpenOrders,
            ("GET", "/api/v3/allOrders") => Endpoint::AllOrders,
            ("GET", "/api/v3/myTrades") => Endpoint::MyTrades,
            ("GET", "/api/v3/account") => Endpoint::Account,
            ("POST", "/api/v3/userDataStream") => Endpoint::NewListenKey,
            ("PUT", "/api/v3/userDataStream") => Endpoint::KeepListenKey,
            ("DELETE", "/api/v3/userDataStream") => Endpoint::CloseListenKey,
            _ => return None,
        })
    }

    /// USD-M's paths (`/fapi/v1/...`; the account and positions are `v2`, also served as `v3`).
    fn route_usdm(method: &str, path: &str) -> Option<Endpoint> {
        Some(match (method, path.trim_end_matches('/')) {
            ("GET", "/fapi/v1/ping") => Endpoint::Ping,
            ("GET", "/fapi/v1/time") => Endpoint::Time,
            ("GET", "/fapi/v1/exchangeInfo") => Endpoint::ExchangeInfo,
            ("GET", "/fapi/v1/depth") => Endpoint::Depth,
            ("GET", "/fapi/v1/klines") => Endpoint::Klines,
            ("POST", "/fapi/v1/order") => Endpoint::NewOrder,
            ("DELETE", "/fapi/v1/order") => Endpoint::CancelOrder,
            ("GET", "/fapi/v1/order") => Endpoint::QueryOrder,
            ("GET", "/fapi/v1/openOrders") => Endpoint::OpenOrders,
            ("GET", "/fapi/v1/allOrders") => Endpoint::AllOrders,
            ("GET", "/fapi/v1/userTrades") => Endpoint::MyTrades,
            ("GET", "/fapi/v2/account" | "/fapi/v3/account") => Endpoint::Account,
            ("GET", "/fapi/v2/positionRisk" | "/fapi/v3/positionRisk") => Endpoint::PositionRisk,
            ("GET", "/fapi/v1/leverageBracket") => Endpoint::LeverageBracket,
            ("POST", "/fapi/v1/listenKey") => Endpoint::NewListenKey,
            ("PUT", "/fapi/v1/listenKey") => Endpoint::KeepListenKey,
            ("DELETE", "/fapi/v1/listenKey") => Endpoint::CloseListenKey,
            _ => return None,
        })
    }

    /// The endpoint of a WebSocket API method (Binance's names; an explicit `v3/` prefix is
    /// accepted, as Binance does).
    pub(crate) fn ws_method(method: &str) -> Option<Endpoint> {
        let method = method.strip_prefix("v3/").unwrap_or(method);
        // USD-M's WebSocket API names its account methods `v2/...`.
        Some(match method.strip_prefix("v2/").unwrap_or(method) {
            "ping" => Endpoint::Ping,
            "time" => Endpoint::Time,
            "exchangeInfo" => Endpoint::ExchangeInfo,
            "depth" => Endpoint::Depth,
            "klines" => Endpoint::Klines,
            "order.place" => Endpoint::NewOrder,
            "order.cancel" => Endpoint::CancelOrder,
            "order.status" => Endpoint::QueryOrder,
            "openOrders.status" => Endpoint::OpenOrders,
            "allOrders" => Endpoint::AllOrders,
            "myTrades" => Endpoint::MyTrades,
            "account.status" => Endpoint::Account,
            "account.position" => Endpoint::PositionRisk,
            "userDataStream.start" => Endpoint::NewListenKey,
            "userDataStream.ping" => Endpoint::KeepListenKey,
            "userDataStream.stop" => Endpoint::CloseListenKey,
            _ => return None,
        })
    }

    pub(crate) fn signed(self) -> bool {
        matches!(
            self,
            Endpoint::NewOrder
                | Endpoint::CancelOrder
                | Endpoint::QueryOrder
                | Endpoint::OpenOrders
                | Endpoint::AllOrders
                | Endpoint::MyTrades
                | Endpoint::Account
                | Endpoint::PositionRisk
                | Endpoint::LeverageBracket
        )
    }

    /// `USER_STREAM` security: API key, no signature.
    pub(crate) fn key_only(self) -> bool {
        matches!(
            self,
            Endpoint::NewListenKey | Endpoint::KeepListenKey | Endpoint::CloseListenKey
        )
    }

    fn weight(self, kind: MarketType, params: &Params) -> u32 {
        if kind == MarketType::UsdM {
            return self.weight_usdm(params);
        }
        match self {
            Endpoint::NewListenKey
            | Endpoint::KeepListenKey
            | Endpoint::CloseListenKey
            | Endpoint::Klines => 2,
            Endpoint::Ping | Endpoint::Time | Endpoint::NewOrder | Endpoint::CancelOrder => 1,
            Endpoint::ExchangeInfo
            | Endpoint::Account
            | Endpoint::AllOrders
            | Endpoint::PositionRisk
            | Endpoint::LeverageBracket => 20,
            Endpoint::QueryOrder => 4,
            // Binance: 20, or 5 for one order's trades.
            Endpoint::MyTrades => {
                if params.get("orderId").is_some() {
                    5
                } else {
                    20
                }
            }
            Endpoint::OpenOrders => {
                if params.get("symbol").is_some() {
                    6
                } else {
                    80
                }
            }
            Endpoint::Depth => match params
                .get("limit")
                .and_then(|l| l.parse::<u32>().ok())
                .unwrap_or(100)
            {
                0..=100 => 5,
                101..=500 => 25,
                501..=1000 => 50,
                _ => 250,
            },
        }
    }

    /// USD-M's request weights (its own table: `depth` and `klines` by `limit`, the account
    /// and positions 5).
    fn weight_usdm(self, params: &Params) -> u32 {
        let limit = |default| {
            params
                .get("limit")
                .and_then(|l| l.parse::<u32>().ok())
                .unwrap_or(default)
        };
        match self {
            Endpoint::Depth => match limit(500) {
                0..=50 => 2,
                51..=100 => 5,
                101..=500 => 10,
                _ => 20,
            },
            Endpoint::Klines => match limit(500) {
                0..=99 => 1,
                100..=499 => 2,
                500..=1000 => 5,
                _ => 10,
            },
            Endpoint::Account
            | Endpoint::PositionRisk
            | Endpoint::AllOrders
            | Endpoint::MyTrades => 5,
            Endpoint::OpenOrders if params.get("symbol").is_none() => 40,
            _ => 1,
        }
    }
}

/// Decoded parameters from the query and the body (REST) or the `params` object (WebSocket
/// API).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters from name/value pairs (names unique).
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs)
    }

    /// Every (name, value) pair.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or Binance's "mandatory parameter" error.
    pub(crate) fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| mandatory(name))
    }
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (unhex(s[i + 1]), unhex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(parts: &[&[u8]]) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for part in parts {
        for pair in part.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
            let (n, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = percent_decode(n);
            if p.0.iter().any(|(x, _)| *x == name) {
                return Err(err(
                    400,
                    -1101,
                    format!("Duplicate values for parameter '{name}'."),
                ));
            }
            p.0.push((name, percent_decode(v)));
        }
    }
    Ok(p)
}

/// `raw` without its `signature=…` pair(s), and the (last) signature value. The separators
/// are kept exactly as the client wrote them around the remaining pairs, so the result is the
/// byte string the client signed.
fn strip_signature(raw: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut sig = None;
    for pair in raw.split(|&b| b == b'&') {
        if let Some(v) = pair.strip_prefix(b"signature=") {
            sig = Some(v.to_vec());
        } else {
            kept.push(pair);
        }
    }
    (kept.join(&b'&'), sig)
}

/// Run one request through rate limiting, authentication and the endpoint.
fn handle(shared: &Shared, peer: IpAddr, req: &Request) -> Response {
    let Some(ep) = Endpoint::route(shared.cfg.market_type, &req.method, &req.path) else {
        return Response {
            status: 404,
            body: json!({"code": -1000, "msg": format!("Unknown endpoint {} {}", req.method, req.path)})
                .to_string(),
            headers: Vec::new(),
        };
    };
    let params = match parse_params(&[&req.query, &req.body]) {
        Ok(p) => p,
        Err(e) => return error_response(&e, Vec::new()),
    };
    let (result, headers) = execute(shared, peer, ep, &params, || {
        if ep.key_only() {
            check_key(shared, req)
        } else if ep.signed() {
            authenticate(shared, req, &params)
        } else {
            Ok(())
        }
    });
    match result {
        Ok(v) => Response {
            status: 200,
            body: v.to_string(),
            headers,
        },
        Err(e) => error_response(&e, headers),
    }
}

/// Response header with the weight used in the current window.
pub(crate) const USED_WEIGHT_HEADER: &str = "X-MBX-USED-WEIGHT-1M";
/// Response header with the orders placed in the current 10-second window.
pub(crate) const ORDER_COUNT_10S_HEADER: &str = "X-MBX-ORDER-COUNT-10S";
/// Response header with the orders placed today.
pub(crate) const ORDER_COUNT_1D_HEADER: &str = "X-MBX-ORDER-COUNT-1D";
/// Orders per 10 seconds that `exchangeInfo` advertises (reported, not enforced).
pub(crate) const ORDER_LIMIT_10S: u32 = 100;
/// Orders per day that `exchangeInfo` advertises (reported, not enforced).
pub(crate) const ORDER_LIMIT_1D: u32 = 200_000;

/// Rate limiting, authentication and the endpoint for one request with decoded `params`:
/// the part the REST server and the WebSocket API (`ws_api`) share, so both front ends give
/// the same answers, errors and weights. `auth` is the front end's own key and signature check
/// (REST: header and query string; WebSocket API: `apiKey` and `signature` parameters); it
/// runs after the weight is accounted, as on Binance. Returns the result and the rate-limit
/// facts as REST headers (`X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-*`, `Retry-After`), which
/// the WebSocket API turns into its `rateLimits` array.
pub(crate) fn execute(
    shared: &Shared,
    peer: IpAddr,
    ep: Endpoint,
    params: &Params,
    auth: impl FnOnce() -> Result<(), ApiError>,
) -> (Result<Value, ApiError>, Vec<(&'static str, String)>) {
    let weight = ep.weight(shared.cfg.market_type, params);
    let now = Instant::now();
    let (admit, used) = {
        let mut st = shared.state();
        admit(&shared.cfg, &mut st, peer, weight, now)
    };
    let mut headers = vec![(USED_WEIGHT_HEADER, used.to_string())];
    match admit {
        Admit::Ok => {}
        Admit::TooMany { retry } => {
            headers.push(("Retry-After", ceil_secs(retry).to_string()));
            let e = err(
                429,
                -1003,
                format!(
                    "Too many requests; current limit of IP({peer}) request weight is {} request weight per 1 MINUTE. \
                     Please use WebSocket Streams for live updates to avoid polling the API.",
                    shared.cfg.weight_limit
                ),
            );
            return (Err(e), headers);
        }
        Admit::Banned { retry, until } => {
            headers.push(("Retry-After", ceil_secs(retry).to_string()));
            let until_ms =
                shared.now_ms() + until.saturating_duration_since(now).as_millis() as u64;
            let e = err(
                418,
                -1003,
                format!(
                    "Way too much request weight used; IP banned until {until_ms}. \
                     Please use WebSocket Streams for live updates to avoid bans."
                ),
            );
            return (Err(e), headers);
        }
    }
    let result = auth().and_then(|()| dispatch(shared, ep, params, &mut headers));
    (result, headers)
}

fn error_response(e: &ApiError, headers: Vec<(&'static str, String)>) -> Response {
    Response {
        status: e.status,
        body: json!({"code": e.code, "msg": e.msg}).to_string(),
        headers,
    }
}

/// Account `weight` against `peer`; returns the decision and the weight used in the window.
fn admit(
    cfg: &RestConfig,
    st: &mut State,
    peer: IpAddr,
    weight: u32,
    now: Instant,
) -> (Admit, u32) {
    let l = st.limiters.entry(peer).or_insert(Limiter {
        window_start: now,
        used: 0,
        backoff_until: None,
        ignored: 0,
        banned_until: None,
    });
    let window = cfg.weight_window.max(Duration::from_millis(1));
    while now >= l.window_start + window {
        l.window_start += window;
        l.used = 0;
    }
    if let Some(until) = l.banned_until {
        if now < until {
            return (
                Admit::Banned {
                    retry: until - now,
                    until,
                },
                l.used,
            );
        }
        l.banned_until = None;
    }
    if let Some(until) = l.backoff_until {
        if now < until {
            l.ignored += 1;
            if l.ignored > cfg.ignored_429_before_ban {
                let ban_end = now + cfg.ban_duration;
                l.banned_until = Some(ban_end);
                l.backoff_until = None;
                l.ignored = 0;
                return (
                    Admit::Banned {
                        retry: cfg.ban_duration,
                        until: ban_end,
                    },
                    l.used,
                );
            }
            return (Admit::TooMany { retry: until - now }, l.used);
        }
        l.backoff_until = None;
        l.ignored = 0;
    }
    l.used = l.used.saturating_add(weight);
    if l.used > cfg.weight_limit {
        let end = l.window_start + window;
        l.backoff_until = Some(end);
        return (Admit::TooMany { retry: end - now }, l.used);
    }
    (Admit::Ok, l.used)
}

/// The `X-MBX-APIKEY` check shared by `USER_STREAM` and `SIGNED` endpoints.
fn check_key(shared: &Shared, req: &Request) -> Result<(), ApiError> {
    check_api_key(shared, req.header("X-MBX-APIKEY").unwrap_or(""))
}

/// The API key check itself (REST's header, the WebSocket API's `apiKey` parameter).
pub(crate) fn check_api_key(shared: &Shared, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(401, -2014, "API-key format invalid."));
    }
    if key != shared.cfg.api_key {
        return Err(err(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ));
    }
    Ok(())
}

/// Key, signature and timestamp checks of a `SIGNED` endpoint.
fn authenticate(shared: &Shared, req: &Request, params: &Params) -> Result<(), ApiError> {
    check_key(shared, req)?;
    let ts = timestamp_param(params)?;
    let (query, qsig) = strip_signature(&req.query);
    let (body, bsig) = strip_signature(&req.body);
    let Some(sig) = bsig.or(qsig).filter(|s| !s.is_empty()) else {
        return Err(mandatory("signature"));
    };
    verify_signature(shared, &[&query, &body], &sig)?;
    check_recv_window(shared, params, ts)
}

/// The mandatory `timestamp` of a signed request.
pub(crate) fn timestamp_param(params: &Params) -> Result<u64, ApiError> {
    params
        .require("timestamp")?
        .parse()
        .map_err(|_| mandatory("timestamp"))
}

/// `-1022` unless `sig` is the HMAC-SHA256 of the concatenation of `signed` (constant-time).
pub(crate) fn verify_signature(
    shared: &Shared,
    signed: &[&[u8]],
    sig: &[u8],
) -> Result<(), ApiError> {
    if shared.signer.verify_hex(signed, sig) {
        Ok(())
    } else {
        Err(err(400, -1022, "Signature for this request is not valid."))
    }
}

/// Binance's timing security: `timestamp < serverTime + 1000` and
/// `serverTime - timestamp <= recvWindow` (default 5000, at most 60000), else `-1021`.
pub(crate) fn check_recv_window(shared: &Shared, params: &Params, ts: u64) -> Result<(), ApiError> {
    let recv_window: u64 = match params.get("recvWindow") {
        Some(w) => w.parse().map_err(|_| mandatory("recvWindow"))?,
        None => 5000,
    };
    if recv_window > 60_000 {
        return Err(err(400, -1131, "recvWindow must be less than 60000"));
    }
    let server = shared.now_ms();
    if !(ts < server + 1000 && server.saturating_sub(ts) <= recv_window) {
        return Err(err(
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    Ok(())
}

fn symbol_param(shared: &Shared, params: &Params) -> Result<&'static Market, ApiError> {
    let s = params.require("symbol")?;
    market_in(shared.cfg.market_type, s).ok_or_else(|| err(400, -1121, "Invalid symbol."))
}

fn decimal_param(params: &Params, name: &str) -> Result<i64, ApiError> {
    let v = params.require(name)?;
    match parse_mantissa(v.as_bytes(), SCALE) {
        Ok(m) if m > 0 => Ok(m),
        Ok(_) => Err(err(400, -1013, format!("Invalid {name}."))),
        Err(ParseError::TooPrecise { .. }) => {
            Err(err(400, -1111, format!("Parameter '{name}' has too much precision.")))
        }
        Err(_) => Err(err(
            400,
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."),
        )),
    }
}

fn dispatch(
    shared: &Shared,
    ep: Endpoint,
    params: &Params,
    headers: &mut Vec<(&'static str, String)>,
) -> Result<Value, ApiError> {
    match ep {
        Endpoint::Ping => Ok(json!({})),
        Endpoint::Time => Ok(json!({"serverTime": shared.now_ms()})),
        Endpoint::ExchangeInfo => exchange_info(shared, params),
        Endpoint::Depth => depth(shared, params),
        Endpoint::Klines => klines(shared, params),
        Endpoint::NewOrder => new_order(shared, params, headers),
        Endpoint::CancelOrder => cancel_order(shared, params),
        Endpoint::QueryOrder => {
            let m = symbol_param(shared, params)?;
            let st = shared.state();
            let i = find_index(&st, m, params)?;
            Ok(st.ex.order_view(&st.ex.orders[i]))
        }
        Endpoint::OpenOrders => {
            let filter = match params.get("symbol") {
                Some(_) => Some(symbol_param(shared, params)?.symbol),
                None => None,
            };
            let st = shared.state();
            Ok(Value::Array(
                st.ex
                    .orders
                    .iter()
                    .filter(|o| o.is_open() && filter.is_none_or(|s| s == o.symbol))
                    .map(|o| st.ex.order_view(o))
                    .collect(),
            ))
        }
        Endpoint::AllOrders => {
            let m = symbol_param(shared, params)?;
            let st = shared.state();
            Ok(Value::Array(
                st.ex
                    .orders
                    .iter()
                    .filter(|o| o.symbol == m.symbol)
                    .map(|o| st.ex.order_view(o))
                    .collect(),
            ))
        }
        Endpoint::MyTrades => my_trades(shared, params),
        Endpoint::NewListenKey => {
            let mut st = shared.state();
            // USD-M hands out the account's live key again rather than a second one.
            if shared.cfg.market_type == MarketType::UsdM {
                if let Some(key) = st.listen_keys.first() {
                    return Ok(json!({"listenKey": key}));
                }
            }
            let n = st.listen_keys.len() as u64;
            // 60 characters, like Binance's.
            let seed = shared.started.elapsed().as_nanos() as u64 ^ (n << 40);
            let key: String = (0..60)
                .map(|i| {
                    let h = seed
                        .wrapping_add(i)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .rotate_left(29);
                    let a = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    a[(h % a.len() as u64) as usize] as char
                })
                .collect();
            st.listen_keys.push(key.clone());
            Ok(json!({"listenKey": key}))
        }
        Endpoint::KeepListenKey | Endpoint::CloseListenKey => {
            let mut st = shared.state();
            // USD-M's key belongs to the API key: the parameter is optional there.
            let key = match (params.get("listenKey"), shared.cfg.market_type) {
                (Some(k), _) => k,
                (None, MarketType::UsdM) => st.listen_keys.first().map_or("", String::as_str),
                (None, MarketType::Spot) => return Err(mandatory("listenKey")),
            };
            let Some(i) = st.listen_keys.iter().position(|k| k == key) else {
                return Err(err(400, -1125, "This listenKey does not exist."));
            };
            if ep == Endpoint::CloseListenKey {
                st.listen_keys.remove(i);
            }
            Ok(match shared.cfg.market_type {
                MarketType::Spot => json!({}),
                // USD-M's keepalive answers with the key.
                MarketType::UsdM if ep == Endpoint::KeepListenKey => {
                    json!({"listenKey": st.listen_keys[i]})
                }
                MarketType::UsdM => json!({}),
            })
        }
        Endpoint::LeverageBracket => {
            let selected: Vec<&Market> = match params.get("symbol") {
                Some(_) => vec![symbol_param(shared, params)?],
                None => markets(shared.cfg.market_type).iter().collect(),
            };
            // One bracket: the simulator has no tiered margin.
            Ok(Value::Array(
                selected
                    .iter()
                    .map(|m| {
                        json!({"symbol": m.symbol, "notionalCoef": 1.0, "brackets": [{
                            "bracket": 1,
                            "initialLeverage": shared.cfg.leverage.max(1),
                            "notionalCap": 1_000_000_000u64,
                            "notionalFloor": 0,
                            "maintMarginRatio": 0.004,
                            "cum": 0.0,
                        }]})
                    })
                    .collect(),
            ))
        }
        Endpoint::PositionRisk => {
            let symbol = match params.get("symbol") {
                Some(_) => Some(symbol_param(shared, params)?.symbol),
                None => None,
            };
            let st = shared.state();
            let Some(fut) = &st.ex.futures else {
                return Err(err(404, -1000, "positionRisk is a USD-M endpoint"));
            };
            let marks = |s: &str| st.ex.mark(s);
            Ok(fut.position_risk_json(symbol, &marks, st.ex.stamp_ms(shared.now_ms())))
        }
        Endpoint::Account => {
            let st = shared.state();
            if let Some(fut) = &st.ex.futures {
                let marks = |s: &str| st.ex.mark(s);
                let now = st.ex.stamp_ms(shared.now_ms());
                return Ok(fut.account_json(&st.ex.orders, &marks, now));
            }
            let balances: Vec<Value> = st
                .ex
                .balances
                .iter()
                .map(|(a, (free, locked))| json!({"asset": a, "free": dec(*free), "locked": dec(*locked)}))
                .collect();
            let fees = st.ex.fees;
            Ok(json!({
                "makerCommission": fees.maker / 10_000,
                "takerCommission": fees.taker / 10_000,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": dec(fees.maker), "taker": dec(fees.taker), "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": true,
                "canWithdraw": false,
                "canDeposit": false,
                "brokered": false,
                "requireSelfTradePrevention": false,
                "preventSor": false,
                "updateTime": st.ex.stamp_ms(shared.now_ms()),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 1,
            }))
        }
    }
}

fn market_json(m: &Market) -> Value {
    json!({
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": false,
        "ocoAllowed": false,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": false,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": false,
        "amendAllowed": false,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": dec(m.min_price), "maxPrice": dec(m.max_price), "tickSize": dec(m.tick)},
            {"filterType": "LOT_SIZE", "minQty": dec(m.min_qty), "maxQty": dec(m.max_qty), "stepSize": dec(m.step)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": dec(m.min_notional), "applyMinToMarket": true, "maxNotional": dec(m.max_notional), "applyMaxToMarket": false, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    })
}

/// A perpetual as USD-M's `exchangeInfo` lists it.
fn usdm_market_json(m: &Market) -> Value {
    let decimals = |v: i64| {
        let mut d = 8;
        let mut v = v;
        while d > 0 && v % 10 == 0 {
            v /= 10;
            d -= 1;
        }
        d
    };
    // USD-M prints filters with the symbol's own decimals, not 8.
    let fmt = |v: i64, d: u32| {
        let s = dec(v);
        let cut = s.len() - (8 - d as usize) - usize::from(d == 0);
        s[..cut].to_owned()
    };
    let (pd, qd) = (decimals(m.tick), decimals(m.step));
    json!({
        "symbol": m.symbol,
        "pair": m.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4_133_404_800_000u64,
        "onboardDate": 1_569_398_400_000u64,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": m.base,
        "quoteAsset": m.quote,
        "marginAsset": "USDT",
        "pricePrecision": pd.max(2),
        "quantityPrecision": qd,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(m.min_price, pd), "maxPrice": fmt(m.max_price, pd), "tickSize": fmt(m.tick, pd)},
            {"filterType": "LOT_SIZE", "minQty": fmt(m.min_qty, qd), "maxQty": fmt(m.max_qty, qd), "stepSize": fmt(m.step, qd)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(m.min_qty, qd), "maxQty": fmt(m.max_qty, qd), "stepSize": fmt(m.step, qd)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(m.min_notional, 0)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    })
}

fn exchange_info(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let selected: Vec<&Market> = match (params.get("symbol"), params.get("symbols")) {
        (Some(_), _) => vec![symbol_param(shared, params)?],
        (None, Some(list)) => {
            let names: Vec<String> =
                serde_json::from_str(list).map_err(|_| mandatory("symbols"))?;
            names
                .iter()
                .map(|n| {
                    market_in(shared.cfg.market_type, n)
                        .ok_or_else(|| err(400, -1121, "Invalid symbol."))
                })
                .collect::<Result<_, _>>()?
        }
        (None, None) => markets(shared.cfg.market_type).iter().collect(),
    };
    if shared.cfg.market_type == MarketType::UsdM {
        return Ok(json!({
            "timezone": "UTC",
            "serverTime": shared.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": shared.cfg.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": ORDER_LIMIT_10S},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"}],
            "symbols": selected.into_iter().map(usdm_market_json).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({
        "timezone": "UTC",
        "serverTime": shared.now_ms(),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": shared.cfg.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": ORDER_LIMIT_10S},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": ORDER_LIMIT_1D},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": selected.into_iter().map(market_json).collect::<Vec<_>>(),
    }))
}

fn depth(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let m = symbol_param(shared, params)?;
    let limit = match params.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| mandatory("limit"))?
            .clamp(1, 5000),
        // Binance's defaults: spot 100 levels, USD-M 500.
        None if shared.cfg.market_type == MarketType::UsdM => 500,
        None => 100,
    };
    let st = shared.state();
    let stamp = st.ex.stamp_ms(shared.now_ms());
    let (bids, asks, id) = match st.ex.books.get(m.symbol) {
        Some(b) => (
            b.bids
                .iter()
                .rev()
                .take(limit)
                .map(|(p, q)| json!([dec(*p), dec(*q)]))
                .collect(),
            b.asks
                .iter()
                .take(limit)
                .map(|(p, q)| json!([dec(*p), dec(*q)]))
                .collect(),
            b.last_update_id,
        ),
        None => (Vec::new(), Vec::new(), 0),
    };
    if shared.cfg.market_type == MarketType::UsdM {
        // USD-M's snapshot carries the message and transaction times too.
        return Ok(json!({"lastUpdateId": id, "E": stamp, "T": stamp, "bids": bids, "asks": asks}));
    }
    Ok(json!({"lastUpdateId": id, "bids": bids, "asks": asks}))
}

/// An optional integer parameter; Binance's `-1100` when it is not digits.
fn int_param(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                err(
                    400,
                    -1100,
                    format!(
                        "Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
                    ),
                )
            })
        })
        .transpose()
}

/// `timeZone` as an offset in ms: `H`, `+H`, `-H`, `H:MM`, within [-12:00, +14:00].
fn time_zone_ms(params: &Params) -> Result<i64, ApiError> {
    let Some(tz) = params.get("timeZone") else {
        return Ok(0);
    };
    let bad = || {
        err(
            400,
            -1100,
            "Illegal characters found in parameter 'timeZone'; legal range is '[-12:00 to +14:00]'.",
        )
    };
    let (neg, body) = match tz.as_bytes().first() {
        Some(b'-') => (true, &tz[1..]),
        Some(b'+') => (false, &tz[1..]),
        _ => (false, tz),
    };
    let (h, m) = body.split_once(':').unwrap_or((body, "0"));
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..60).contains(&m) {
        return Err(bad());
    }
    let minutes = if neg { -(h * 60 + m) } else { h * 60 + m };
    if !(-12 * 60..=14 * 60).contains(&minutes) {
        return Err(bad());
    }
    Ok(minutes * 60_000)
}

fn klines(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let m = symbol_param(shared, params)?;
    let interval = Interval::parse(params.require("interval")?, time_zone_ms(params)?)
        .ok_or_else(|| err(400, -1120, "Invalid interval."))?;
    // Binance documents "Default 500; max 1000." and nothing for more; served as the maximum.
    let limit = int_param(params, "limit")?.map_or(500, |l| l.clamp(1, 1000) as usize);
    // Far-future times mean "no bound"; capping them keeps the bucket arithmetic in range.
    let time = |name| int_param(params, name).map(|t| t.map(|t| t.min(1 << 60)));
    let (start_ms, end_ms) = (time("startTime")?, time("endTime")?);
    if let (Some(s), Some(e)) = (start_ms, end_ms) {
        if s > e {
            return Err(err(400, -1023, "Start time is greater than end time."));
        }
    }
    let q = Query {
        interval,
        start_ms,
        end_ms,
        limit,
    };
    let rows = shared.state().ex.klines.query(m.symbol, &q);
    Ok(Value::Array(
        rows.into_iter()
            .map(|(open, b)| {
                json!([
                    open,
                    dec(b.open),
                    dec(b.high),
                    dec(b.low),
                    dec(b.close),
                    dec128(b.volume),
                    open + interval.ms - 1,
                    dec128(b.quote_volume),
                    b.trades,
                    dec128(b.taker_buy_base),
                    dec128(b.taker_buy_quote),
                    "0",
                ])
            })
            .collect(),
    ))
}

fn random_client_id(shared: &Shared, n: u64) -> String {
    // Binance generates a 22-character id; this one is unique per server and order.
    let t = shared.started.elapsed().as_nanos() as u64;
    format!("sim{:010x}{:09x}", n, t & 0xf_ffff_ffff)
}

fn new_order(
    shared: &Shared,
    params: &Params,
    headers: &mut Vec<(&'static str, String)>,
) -> Result<Value, ApiError> {
    let m = symbol_param(shared, params)?;
    let side = match params.require("side")? {
        "BUY" => "BUY",
        "SELL" => "SELL",
        _ => return Err(err(400, -1117, "Invalid side.")),
    };
    let usdm = shared.cfg.market_type == MarketType::UsdM;
    let order_type = match params.require("type")? {
        "LIMIT" => "LIMIT",
        // USD-M's post-only is `LIMIT` + `GTX`.
        "LIMIT_MAKER" if !usdm => "LIMIT_MAKER",
        "MARKET" => "MARKET",
        _ => return Err(err(400, -1116, "Invalid orderType.")),
    };
    let time_in_force = if order_type == "LIMIT" {
        match params.require("timeInForce")? {
            "GTC" => "GTC",
            "IOC" => "IOC",
            "FOK" => "FOK",
            "GTX" if usdm => "GTX",
            _ => return Err(err(400, -1115, "Invalid timeInForce.")),
        }
    } else {
        if params.get("timeInForce").is_some() {
            return Err(err(
                400,
                -1106,
                "Parameter 'timeInForce' sent when not required.",
            ));
        }
        "GTC"
    };
    if order_type == "MARKET" && params.get("quoteOrderQty").is_some() {
        // Spot `quoteOrderQty` market orders are not simulated; refuse rather than misfill.
        return Err(err(
            400,
            -1106,
            "Parameter 'quoteOrderQty' sent when not required.",
        ));
    }
    let qty = decimal_param(params, "quantity")?;
    let price = if order_type == "MARKET" {
        if params.get("price").is_some() {
            return Err(err(400, -1106, "Parameter 'price' sent when not required."));
        }
        0
    } else {
        let price = decimal_param(params, "price")?;
        if usdm && price % m.tick != 0 {
            return Err(err(400, -4014, "Price not increased by tick size."));
        }
        if price < m.min_price || price > m.max_price || (price - m.min_price) % m.tick != 0 {
            return Err(err(400, -1013, "Filter failure: PRICE_FILTER"));
        }
        price
    };
    if usdm && qty % m.step != 0 {
        return Err(err(
            400,
            -1111,
            "Precision is over the maximum defined for this asset.",
        ));
    }
    if qty < m.min_qty || qty > m.max_qty || (qty - m.min_qty) % m.step != 0 {
        return Err(err(400, -1013, "Filter failure: LOT_SIZE"));
    }
    let reduce_only = usdm_position_params(params, usdm)?;
    if usdm && !reduce_only {
        // USD-M checks the notional of market orders too, at the mark price.
        let px = match order_type {
            "MARKET" => shared.state().ex.mark(m.symbol).unwrap_or(m.ref_price),
            _ => price,
        };
        if notional(px, qty) < m.min_notional {
            return Err(err(
                400,
                -4164,
                format!(
                    "Order's notional must be no smaller than {} (unless you choose reduce only).",
                    m.min_notional / ONE
                ),
            ));
        }
    } else if !usdm && order_type != "MARKET" {
        let value = notional(price, qty);
        if value < m.min_notional || value > m.max_notional {
            return Err(err(400, -1013, "Filter failure: NOTIONAL"));
        }
    }
    let resp_type = match params.get("newOrderRespType") {
        // USD-M answers `ACK` unless asked otherwise, and has no `FULL`.
        None if usdm => "ACK",
        Some("FULL") if usdm => return Err(err(400, -1177, "Invalid newOrderRespType.")),
        None if order_type == "MARKET" || order_type == "LIMIT" => "FULL",
        None => "ACK",
        Some("ACK") => "ACK",
        Some("RESULT") => "RESULT",
        Some("FULL") => "FULL",
        Some(_) => return Err(err(400, -1177, "Invalid newOrderRespType.")),
    };
    let client_id = params.get("newClientOrderId").map(str::to_owned);
    if let Some(id) = &client_id {
        if !valid_client_order_id(id.as_bytes()) {
            return Err(err(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            ));
        }
    }
    let now = shared.now_ms();
    let mut st = shared.state();
    // Order counters (reported, not enforced).
    let since = st.order_count_10s.0.elapsed();
    if since >= Duration::from_secs(10) {
        st.order_count_10s = (Instant::now(), 0);
    }
    st.order_count_10s.1 += 1;
    st.order_count_1d += 1;
    headers.push((ORDER_COUNT_10S_HEADER, st.order_count_10s.1.to_string()));
    headers.push((ORDER_COUNT_1D_HEADER, st.order_count_1d.to_string()));
    if let Some(id) = &client_id {
        let dup = st
            .ex
            .orders
            .iter()
            .any(|o| o.is_open() && o.symbol == m.symbol && o.client_order_id == *id)
            || st
                .pending
                .iter()
                .any(|p| p.2.market.symbol == m.symbol && p.2.client_order_id == *id);
        if dup {
            return Err(err(400, -2010, "Duplicate order sent."));
        }
    }
    let n = st.ex.next_order_id + st.pending.len() as u64;
    let req = NewOrder {
        market: m,
        side,
        order_type,
        time_in_force,
        price,
        qty,
        client_order_id: client_id.unwrap_or_else(|| random_client_id(shared, n)),
        resp_type,
        reduce_only,
    };
    let delay = shared.latency.sample_ns(&mut st.latency_rng);
    if delay == 0 || !st.driver_running {
        return st.ex.place(req, now);
    }
    // The order reaches the matching engine `delay` of market time from now: the market
    // driver activates it before the first frame at or after that time.
    let ticket = st.next_ticket;
    st.next_ticket += 1;
    let at = st.ex.market_ns.saturating_add(delay);
    st.pending.push((ticket, at, req));
    loop {
        if let Some(r) = st.done.remove(&ticket) {
            return r;
        }
        if !st.driver_running || shared.stop.load(Ordering::SeqCst) {
            // The tape ended (or the venue stops): no market time will pass any more.
            let now = shared.now_ms();
            st.activate_due(None, now);
            continue;
        }
        st = shared
            .activated
            .wait_timeout(st, Duration::from_millis(100))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// `GET /api/v3/myTrades` (USD-M: `/fapi/v1/userTrades`, its own row shape): the account's
/// trades on `symbol`, oldest first; `orderId` selects
/// one order's (then `fromId` is not allowed, as at Binance), `fromId` starts at a trade id,
/// `limit` (default 500, at most 1000) caps the list.
fn my_trades(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let m = symbol_param(shared, params)?;
    let usdm = shared.cfg.market_type == MarketType::UsdM;
    let num = |name: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(name)
            .map(|v| v.parse::<u64>().map_err(|_| mandatory(name)))
            .transpose()
    };
    let (order_id, from_id) = (num("orderId")?, num("fromId")?);
    if order_id.is_some() && from_id.is_some() {
        return Err(err(
            400,
            -1106,
            "Parameter 'fromId' sent when not required.",
        ));
    }
    let limit = num("limit")?.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(err(
            400,
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '1..1000'.",
        ));
    }
    let st = shared.state();
    let mut trades: Vec<(u64, Value)> = st
        .ex
        .orders
        .iter()
        .filter(|o| o.symbol == m.symbol && order_id.is_none_or(|id| o.order_id == id))
        .flat_map(|o| o.fills.iter().map(|f| f.trade_id).zip(o.trades_json(usdm)))
        .filter(|(id, _)| from_id.is_none_or(|from| *id >= from))
        .collect();
    trades.sort_by_key(|(id, _)| *id);
    trades.truncate(limit as usize);
    Ok(Value::Array(trades.into_iter().map(|(_, v)| v).collect()))
}

/// USD-M's `reduceOnly` (returned) and `positionSide` (one-way mode: `BOTH` only); on spot
/// neither exists and they are ignored, as Binance ignores unknown parameters.
fn usdm_position_params(params: &Params, usdm: bool) -> Result<bool, ApiError> {
    if !usdm {
        return Ok(false);
    }
    if params.get("positionSide").is_some_and(|s| s != "BOTH") {
        return Err(err(
            400,
            -4061,
            "Order's position side does not match user's setting.",
        ));
    }
    match params.get("reduceOnly") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(err(
            400,
            -1130,
            "Data sent for parameter 'reduceOnly' is not valid.",
        )),
    }
}

fn find_index(st: &State, m: &Market, params: &Params) -> Result<usize, ApiError> {
    let by_id = match params.get("orderId") {
        Some(v) => Some(v.parse::<u64>().map_err(|_| mandatory("orderId"))?),
        None => None,
    };
    let by_client = params.get("origClientOrderId");
    if by_id.is_none() && by_client.is_none() {
        return Err(err(
            400,
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        ));
    }
    // A client id may have been reused after its first order closed: the newest one wins.
    st.ex
        .orders
        .iter()
        .rposition(|o| {
            o.symbol == m.symbol
                && by_id.is_none_or(|id| o.order_id == id)
                && by_client.is_none_or(|c| o.client_order_id == c)
        })
        .ok_or_else(|| err(400, -2013, "Order does not exist."))
}

fn cancel_order(shared: &Shared, params: &Params) -> Result<Value, ApiError> {
    let m = symbol_param(shared, params)?;
    let now = shared.now_ms();
    let mut st = shared.state();
    let idx = find_index(&st, m, params).map_err(|e| {
        if e.code == -2013 {
            err(400, -2011, "Unknown order sent.")
        } else {
            e
        }
    })?;
    if !st.ex.orders[idx].is_open() {
        return Err(err(400, -2011, "Unknown order sent."));
    }
    let cancel_id = params
        .get("newClientOrderId")
        .map(str::to_owned)
        .unwrap_or_else(|| random_client_id(shared, st.ex.orders[idx].order_id));
    Ok(st.ex.cancel(idx, &cancel_id, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_signature_keeps_the_signed_bytes() {
        let (q, s) = strip_signature(b"a=1&b=2&signature=abc");
        assert_eq!(
            (q.as_slice(), s.as_deref()),
            (&b"a=1&b=2"[..], Some(&b"abc"[..]))
        );
        let (q, s) = strip_signature(b"signature=abc&a=1");
        assert_eq!(
            (q.as_slice(), s.as_deref()),
            (&b"a=1"[..], Some(&b"abc"[..]))
        );
        let (q, s) = strip_signature(b"");
        assert_eq!((q.as_slice(), s), (&b""[..], None));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%2Fb+c%3a"), "a/b c:");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }

    #[test]
    fn notional_rounds_up() {
        assert_eq!(notional(60_000 * ONE, 1_000), 60 * ONE / 100);
        assert_eq!(notional(1, 1), 1);
    }
}
