//! The gateway stage: order intents in, signed Binance REST requests out, execution events
//! back to the strategy, and the per-order state machine, all journaled.
//!
//! # How the pieces fit
//!
//! * [`GatewayStage`] implements [`Stage`]. Each `poll` drives the connection pool
//!   ([`conn`]): keep-alive HTTP/1.1 connections over the `net` crate's non-blocking drivers
//!   (plain TCP for the simulator, TLS for the venue), each with preallocated request and
//!   response buffers and at most one request in flight, so a slow response holds one
//!   connection and the next order leaves on another. It then polls the user-data stream (if
//!   configured) and finally sends queued retries and new intents on idle connections.
//! * Requests are encoded in place: parameters with [`QueryBuf`] (spot `/api/v3/order`, USD-M
//!   `/fapi/v1/order`), signed with the keyed [`Signer`], and framed into the connection's
//!   buffer. The API key travels only in the `X-MBX-APIKEY` header, which is cut out of the
//!   journaled copy of the request ([`RecordKind::OutboundBytes`]); the secret never leaves
//!   the `Signer`.
//! * Responses are framed by `httparse` and decoded by
//!   [`venue::binance::orders`](crate::venue::binance::orders); user-stream frames by
//!   [`venue::binance::user_stream`](crate::venue::binance::user_stream). Both feed the state
//!   machine of [`state`], which turns facts into forward-only transitions, deduplicates fills
//!   by cumulative quantity, publishes [`ExecEvent`]s and journals every transition as an
//!   [`OrderUpdate`]. Raw responses and stream frames are journaled as
//!   [`RecordKind::RawFrame`].
//! * With [`GatewayConfig::ws_api`] set, the pool is replaced by one persistent connection to
//!   the Binance WebSocket API ([`ws_api`]): the same parameters and signature inputs, sent as
//!   `order.place` / `order.cancel` / `order.status` JSON frames with many requests in flight,
//!   and each response turned into the same [`Head`](conn::Head) and body the REST handling
//!   below takes, so both transports share every rule that follows.
//! * [`limits`] keeps the request-weight budget (with a reserve only cancels may use, the
//!   venue's `X-MBX-USED-WEIGHT-1M` as the truth, a full stop on 429/418 until `Retry-After`)
//!   and the venue clock offset (`GET /api/v3/time`, refined by `transactTime`).
//!
//! # Idempotence and unknown outcomes
//!
//! The venue's `newClientOrderId` is derived from the intent's `u64` id ([`client_id_text`]),
//! so sending an order twice can never open two orders: the venue answers `-2010 "Duplicate
//! order sent."` to the second while the first is open. When a request times out or its
//! connection breaks, the gateway does not guess: it asks `GET order?origClientOrderId=..`;
//! "does not exist" (`-2013`) means the order never arrived and it is sent again with the same
//! id (at most [`GatewayConfig::max_resends`] times); anything else is applied as the venue's
//! answer. A `-1021` (timestamp outside `recvWindow`) re-synchronises the clock and sends the
//! order once more; a second one rejects it.
//!
//! # Restarts
//!
//! [`GatewayConfig::endpoints`] builds the configuration from the venue's REST and WebSocket
//! base URLs (the simulator's or Binance's, plain or TLS). Before the stage runs, start-up
//! reconciliation hands it the venue's word on every order an earlier run left open and every
//! order of ours open at the venue ([`GatewayStage::recover`]): the venue's
//! final states and fills are journaled and published, open orders are tracked again.
//!
//! # Local rejections
//!
//! An intent the gateway refuses itself becomes an [`ExecEvent`] of kind `Rejected` whose
//! `venue_error` is one of the `LOCAL_REJECT_*` codes below (Binance's own codes are in
//! `-1000..=-2999`, so the `-9xxx` range cannot collide).
//!
//! # Allocation
//!
//! Everything is allocated in [`GatewayStage::connect`]; steady-state order entry does not
//! allocate (`bench/tests/gateway_rest.rs` counts it). Reopening a broken connection does
//! (the driver's poller, TLS state): that is the recovery path, not the steady state.

pub mod conn;
pub mod limits;
mod recover;
pub mod state;
pub mod ws_api;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringbuffers::journal::Appender;
use ringbuffers::outlet::Outlet;
use ringbuffers::spsc::{Consumer, Producer};

use crate::codec::{append, append_bytes, RecordKind};
use crate::event::{
    ExecEvent, ExecKind, IntentAction, OrderIntent, OrderType, Stage as StampStage, Stamps,
    TimeInForce,
};
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentRef, InstrumentTable};
use crate::runtime::Stage;
use crate::venue::binance::orders::{
    decode_error, decode_order_response, decode_server_time, for_each_fill, OrderResponse,
    OrderStatus, FEE_SCALE,
};
use crate::venue::binance::sign::{
    valid_client_order_id, valid_symbol, Credentials, Fixed, NewOrder, QueryBuf, QueryError, Signer,
};
use crate::venue::binance::user_stream::{decode_user_event, ExecType, UserEvent};

pub use conn::{tls_connector, Target};
pub use recover::{JournaledOrder, RecoverError, VenueAnswer};
pub use state::{OrderAlert, OrderState, OrderTable, OrderUpdate, UpdateCause};
pub use ws_api::WsApiConfig;

use conn::{Conn, Head};
use limits::{wall_ms, Refusal, VenueClock, WeightBudget};

/// Local rejection: the request-weight budget for new orders is used up in this window.
pub const LOCAL_REJECT_RATE_LIMIT: i32 = -9001;
/// Local rejection: the venue said to back off (429/418) and `Retry-After` has not passed.
pub const LOCAL_REJECT_BACKOFF: i32 = -9002;
/// Local rejection: every slot of the order table holds an open order.
pub const LOCAL_REJECT_TABLE_FULL: i32 = -9003;
/// Local rejection: the intent's instrument is not in the gateway's table.
pub const LOCAL_REJECT_UNKNOWN_INSTRUMENT: i32 = -9004;
/// Local rejection: the order cannot be encoded (bad value, unsupported type on this market).
pub const LOCAL_REJECT_ENCODE: i32 = -9005;
/// Local rejection: the order never reached the venue after every allowed resend.
pub const LOCAL_REJECT_UNRESOLVED: i32 = -9006;

/// Binance's "Duplicate order sent." and timestamp error codes, and friends.
const ERR_TIMESTAMP: i32 = -1021;
/// Execution reports the outlet holds before its backlog allocates: a burst of fills larger
/// than the ring while the strategy is busy.
const EXEC_BACKLOG: usize = 256;
const ERR_NEW_ORDER_REJECTED: i32 = -2010;
const ERR_NO_SUCH_ORDER: i32 = -2013;
const ERR_UNKNOWN_STATUS: i32 = -1007;
const ERR_TOO_MANY: i32 = -1003;

/// Which Binance API the gateway trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    /// Spot: `/api/v3/...`.
    Spot,
    /// USD-M futures: `/fapi/v1/...`.
    UsdM,
}

impl Market {
    fn order_path(self) -> &'static [u8] {
        match self {
            Market::Spot => b"/api/v3/order",
            Market::UsdM => b"/fapi/v1/order",
        }
    }
    fn time_path(self) -> &'static [u8] {
        match self {
            Market::Spot => b"/api/v3/time",
            Market::UsdM => b"/fapi/v1/time",
        }
    }
    /// Path of the listen-key endpoint.
    pub fn listen_key_path(self) -> &'static str {
        match self {
            Market::Spot => "/api/v3/userDataStream",
            Market::UsdM => "/fapi/v1/listenKey",
        }
    }
}

/// Request weights (Binance spot's current values by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// `POST order`.
    pub new_order: u32,
    /// `DELETE order`.
    pub cancel: u32,
    /// `GET order`.
    pub query: u32,
    /// `GET time`.
    pub time: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            new_order: 1,
            cancel: 1,
            query: 4,
            time: 1,
        }
    }
}

/// Configuration of a [`GatewayStage`].
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Spot or USD-M.
    pub market: Market,
    /// The REST endpoint.
    pub rest: Target,
    /// Keep-alive connections in the pool (at least 1).
    pub pool: usize,
    /// Orders tracked at once, open plus recently closed.
    pub max_orders: usize,
    /// `recvWindow` sent with every signed request, ms.
    pub recv_window_ms: u32,
    /// A request without a complete response after this long is treated as lost.
    pub request_timeout: Duration,
    /// Request weight per window the gateway allows itself (Binance spot: 6000 per minute).
    pub weight_limit: u32,
    /// Part of `weight_limit` only cancels may use.
    pub cancel_reserve: u32,
    /// The weight window, ms (Binance: 60 000).
    pub weight_window_ms: u64,
    /// Request weights.
    pub weights: Weights,
    /// Prefix of the venue client order id; with 16 hex digits it must fit Binance's
    /// `^[\.A-Z\:/a-z0-9_-]{1,36}$`.
    pub client_id_prefix: String,
    /// Measure the clock offset before the first order (turn off only to test `-1021`).
    pub sync_clock_on_start: bool,
    /// Resends of an order the venue never received.
    pub max_resends: u8,
    /// Queries in a row to resolve one unknown outcome before giving up.
    pub max_queries: u8,
    /// Intents taken per poll at most.
    pub batch: usize,
    /// Capacity of the retry queue (cancels waiting out a back-off, queries, resends).
    pub retry_queue: usize,
    /// Size of each connection's request and response buffers.
    pub tx_buffer: usize,
    /// Size of each connection's response buffer.
    pub rx_buffer: usize,
    /// The user-data stream, if wanted.
    pub user_stream: Option<UserStreamConfig>,
    /// How long [`GatewayStage::connect`] waits for connections and the first clock sync.
    pub connect_timeout: Duration,
    /// Order entry over the Binance WebSocket API at this endpoint instead of the REST pool
    /// ([`ws_api`]); `None` (the default) is REST.
    pub ws_api: Option<WsApiConfig>,
}

/// Where the user-data stream is.
#[derive(Debug, Clone)]
pub struct UserStreamConfig {
    /// The WebSocket endpoint (`stream.binance.com:9443` for spot).
    pub ws: Target,
    /// Listen-key keep-alive period (Binance: 30 minutes; the key expires after 60).
    pub keepalive: Duration,
}

impl GatewayConfig {
    /// Defaults for a plain-TCP venue at `addr` (the simulator).
    pub fn plain(market: Market, addr: SocketAddr) -> Self {
        GatewayConfig {
            market,
            rest: Target {
                addr,
                host: addr.to_string(),
                tls: None,
                socket: net::SocketConfig::default(),
            },
            pool: 2,
            max_orders: 4096,
            recv_window_ms: 5000,
            request_timeout: Duration::from_secs(3),
            weight_limit: 6000,
            cancel_reserve: 600,
            weight_window_ms: 60_000,
            weights: Weights::default(),
            client_id_prefix: "ae-".into(),
            sync_clock_on_start: true,
            max_resends: 3,
            max_queries: 10,
            batch: 16,
            retry_queue: 1024,
            tx_buffer: 2048,
            rx_buffer: 64 << 10,
            user_stream: None,
            connect_timeout: Duration::from_secs(5),
            ws_api: None,
        }
    }

    /// Defaults for the live venue over TLS: `host:443` resolved now.
    pub fn tls(market: Market, host: &str) -> Result<Self, GatewayError> {
        Self::endpoints(market, &format!("https://{host}"), None)
    }

    /// Defaults for the venue whose REST API is at `rest_url` (`http://host[:port]`: plain
    /// TCP, `https://host[:port]`: TLS to that host), with the user-data stream on the
    /// WebSocket server at `ws_url` (`ws[s]://host[:port]`; a path in it, such as the market
    /// data's `/stream`, is ignored: the user stream is `/ws/<listenKey>` on that server).
    /// Host names are resolved now. The gateway's request paths are fixed, so `rest_url` may
    /// not carry a path.
    pub fn endpoints(
        market: Market,
        rest_url: &str,
        ws_url: Option<&str>,
    ) -> Result<Self, GatewayError> {
        let config = |e: &dyn std::fmt::Display| GatewayError::Config(e.to_string());
        let rest = crate::snapshot::RestEndpoint::parse(rest_url).map_err(|e| config(&e))?;
        if !rest.prefix.is_empty() {
            return Err(GatewayError::Config(format!(
                "REST endpoint '{rest_url}': the order gateway's paths are fixed; give the base URL without a path"
            )));
        }
        let rest = Target::resolve(&rest.host, rest.port, rest.tls, rest.host_header())
            .map_err(|e| config(&e))?;
        let mut c = GatewayConfig::plain(market, rest.addr);
        c.rest = rest;
        if let Some(url) = ws_url {
            let ws = crate::live::Endpoint::parse(url).map_err(|e| config(&e))?;
            c.user_stream = Some(UserStreamConfig {
                ws: Target::resolve(&ws.host, ws.port, ws.tls, ws.host_header())
                    .map_err(|e| config(&e))?,
                keepalive: Duration::from_secs(30 * 60),
            });
        }
        Ok(c)
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Invalid configuration.
    #[error("gateway configuration: {0}")]
    Config(String),
    /// Could not connect or the venue did not answer in time.
    #[error("gateway start-up: {0}")]
    Startup(String),
}

/// Counters of the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayReport {
    /// Intents taken off the ring.
    pub intents: u64,
    /// New-order requests sent (resends included).
    pub orders_sent: u64,
    /// Cancel requests sent.
    pub cancels_sent: u64,
    /// Query requests sent.
    pub queries_sent: u64,
    /// Orders sent again after the venue said it never saw them.
    pub resends: u64,
    /// Time requests sent.
    pub time_syncs: u64,
    /// Exec events published.
    pub exec_events: u64,
    /// Exec events that found the output ring full and waited in the stage's backlog (none is
    /// ever dropped: see [`ringbuffers::outlet`]).
    pub exec_held: u64,
    /// Intents rejected locally.
    pub local_rejects: u64,
    /// Orders rejected by the venue.
    pub venue_rejects: u64,
    /// 429/418 responses.
    pub rate_limited: u64,
    /// `-1021` answers.
    pub clock_resyncs: u64,
    /// Requests timed out or lost with their connection.
    pub timeouts: u64,
    /// Overfills detected.
    pub overfills: u64,
    /// Reports for unknown orders.
    pub unknown_orders: u64,
    /// Undecodable responses or frames.
    pub malformed: u64,
    /// Cancels the venue refused.
    pub cancel_rejects: u64,
    /// Intents repeating the id of a known order.
    pub duplicate_intents: u64,
    /// Connections (re)opened after the start.
    pub reconnects: u64,
    /// Journal append failures.
    pub journal_errors: u64,
    /// User-stream frames received.
    pub stream_frames: u64,
}

/// Where the stage reads, writes and reports.
pub struct GatewayIo {
    /// Intents from the strategy (or risk) stage.
    pub input: Consumer<OrderIntent>,
    /// Execution events back to the strategy.
    pub output: Producer<ExecEvent>,
    /// The stage's own journal (`<journal>/gateway/`), or `None`.
    pub journal: Option<Appender>,
    /// Set by the upstream stage when it has published its last intent.
    pub upstream_done: Arc<AtomicBool>,
    /// Receives the report at shutdown.
    pub report: Arc<Mutex<GatewayReport>>,
}

/// The venue's `newClientOrderId` for intent id `cid`: `prefix` + 16 lowercase hex digits.
pub fn client_id_text(prefix: &[u8], cid: u64, out: &mut [u8; 36]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let p = prefix.len().min(20);
    out[..p].copy_from_slice(&prefix[..p]);
    for i in 0..16 {
        out[p + i] = HEX[((cid >> (60 - 4 * i)) & 0xf) as usize];
    }
    p + 16
}

/// The intent id back from a venue client order id made by [`client_id_text`].
pub fn parse_client_id(prefix: &[u8], text: &[u8]) -> Option<u64> {
    let hex = text.strip_prefix(prefix)?;
    if hex.len() != 16 {
        return None;
    }
    let mut v = 0u64;
    for &b in hex {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = v << 4 | u64::from(d);
    }
    Some(v)
}

/// A request kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    New,
    Cancel,
    Query,
    Time,
}

/// A queued request.
#[derive(Debug, Clone, Copy)]
struct Work {
    req: Req,
    slot: u32,
}

/// The request a connection is waiting on.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    req: Req,
    slot: u32,
    sent_wall: u64,
}

/// Symbol text and scales of an instrument.
#[derive(Debug, Clone, Copy)]
struct Sym {
    text: [u8; 20],
    len: u8,
    inst: InstrumentRef,
}

impl Sym {
    fn bytes(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }
}

/// Bounded writer into a request buffer.
struct W<'a> {
    buf: &'a mut [u8],
    n: usize,
    ok: bool,
}

impl W<'_> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        if self.n + b.len() > self.buf.len() {
            self.ok = false;
            return;
        }
        self.buf[self.n..self.n + b.len()].copy_from_slice(b);
        self.n += b.len();
    }
}

/// Everything but the connections (so a response in a connection's buffer can be handled
/// while the state is mutated).
struct Core {
    market: Market,
    host: Box<[u8]>,
    api_key: Box<[u8]>,
    signer: Signer,
    prefix: Box<[u8]>,
    recv_window: u32,
    weights: Weights,
    symbols: Box<[Option<Sym>]>,
    table: OrderTable,
    budget: WeightBudget,
    clock: VenueClock,
    sync_pending: bool,
    queue: VecDeque<Work>,
    queue_cap: usize,
    query: QueryBuf<768>,
    max_resends: u8,
    max_queries: u8,
    journal: Option<Appender>,
    output: Outlet<ExecEvent>,
    tsc: quanta::Clock,
    r: GatewayReport,
}

/// The gateway stage (see the module docs).
pub struct GatewayStage {
    core: Core,
    conns: Vec<Conn>,
    inflight: Vec<Option<InFlight>>,
    reopen_at: Vec<Option<Instant>>,
    /// Stopping: no new intent is taken; requests already sent are seen through.
    draining: bool,
    target: Target,
    timeout: Duration,
    batch: usize,
    input: Consumer<OrderIntent>,
    upstream_done: Arc<AtomicBool>,
    report_out: Arc<Mutex<GatewayReport>>,
    stream: Option<stream::UserStream>,
    /// The WebSocket API transport, when configured (then the REST pool is empty).
    ws_api: Option<ws_api::WsApi>,
}

mod stream;

impl GatewayStage {
    /// Builds the stage, opens the pool and (unless configured off) measures the clock offset;
    /// with a user stream configured, obtains a listen key, starts its keep-alive thread and
    /// opens the WebSocket. Blocks up to [`GatewayConfig::connect_timeout`]; cold path.
    pub fn connect(
        cfg: GatewayConfig,
        credentials: &Credentials,
        instruments: &InstrumentTable,
        io: GatewayIo,
    ) -> Result<GatewayStage, GatewayError> {
        let prefix = cfg.client_id_prefix.as_bytes();
        let mut probe = [0u8; 36];
        if prefix.len() > 20 {
            return Err(GatewayError::Config(
                "client_id_prefix is longer than 20 characters".into(),
            ));
        }
        let n = client_id_text(prefix, u64::MAX, &mut probe);
        if !valid_client_order_id(&probe[..n]) {
            return Err(GatewayError::Config(format!(
                "client_id_prefix '{}' makes client order ids outside ^[.A-Z:/a-z0-9_-]{{1,36}}$",
                cfg.client_id_prefix
            )));
        }
        let len = instruments
            .iter()
            .map(|(id, _)| id.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut symbols = vec![None; len].into_boxed_slice();
        for (id, spec) in instruments.iter() {
            let mut text = [0u8; 20];
            let s = spec.symbol.as_bytes();
            if s.len() > 20 {
                continue;
            }
            for (d, c) in text.iter_mut().zip(s) {
                *d = c.to_ascii_uppercase();
            }
            if !valid_symbol(&text[..s.len()]) {
                continue;
            }
            symbols[id.0 as usize] = Some(Sym {
                text,
                len: s.len() as u8,
                inst: instruments.instrument_ref(id),
            });
        }
        let pool = if cfg.ws_api.is_some() {
            0
        } else {
            cfg.pool.max(1)
        };
        let ws = match &cfg.ws_api {
            Some(c) => Some(ws_api::WsApi::connect(c, credentials)?),
            None => None,
        };
        let core = Core {
            market: cfg.market,
            host: cfg.rest.host.as_bytes().into(),
            api_key: credentials.key.expose().as_bytes().into(),
            signer: Signer::new(&credentials.secret),
            prefix: prefix.into(),
            recv_window: cfg.recv_window_ms,
            weights: cfg.weights,
            symbols,
            table: OrderTable::new(cfg.max_orders),
            budget: WeightBudget::new(cfg.weight_limit, cfg.cancel_reserve, cfg.weight_window_ms),
            clock: VenueClock::default(),
            sync_pending: false,
            queue: VecDeque::with_capacity(cfg.retry_queue.max(8)),
            queue_cap: cfg.retry_queue.max(8),
            query: QueryBuf::new(),
            max_resends: cfg.max_resends,
            max_queries: cfg.max_queries.max(1),
            journal: io.journal,
            output: Outlet::new(io.output, EXEC_BACKLOG),
            tsc: quanta::Clock::new(),
            r: GatewayReport::default(),
        };
        let mut conns = Vec::with_capacity(pool);
        for _ in 0..pool {
            let mut c = Conn::new(cfg.tx_buffer, cfg.rx_buffer);
            c.open(&cfg.rest)
                .map_err(|e| GatewayError::Startup(format!("connect {}: {e}", cfg.rest.addr)))?;
            conns.push(c);
        }
        let mut g = GatewayStage {
            core,
            conns,
            inflight: vec![None; pool],
            reopen_at: vec![None; pool],
            draining: false,
            target: cfg.rest.clone(),
            timeout: cfg.request_timeout,
            batch: cfg.batch.max(1),
            input: io.input,
            upstream_done: io.upstream_done,
            report_out: io.report,
            stream: None,
            ws_api: ws,
        };
        let deadline = Instant::now() + cfg.connect_timeout;
        while !g.conns.iter().all(|c| c.connected) || !g.ws_api.as_ref().is_none_or(|w| w.is_open())
        {
            g.drive_conns(Instant::now());
            if Instant::now() > deadline {
                let addr = cfg.ws_api.as_ref().map_or(cfg.rest.addr, |w| w.target.addr);
                return Err(GatewayError::Startup(format!(
                    "no connection to {addr} within {:?}",
                    cfg.connect_timeout
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if cfg.sync_clock_on_start {
            g.core.request_sync();
            while !g.core.clock.synced() {
                g.poll();
                if Instant::now() > deadline {
                    return Err(GatewayError::Startup(
                        "the venue did not answer the time request".into(),
                    ));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if let Some(us) = &cfg.user_stream {
            g.stream = Some(
                stream::UserStream::start(us, &cfg, credentials)
                    .map_err(|e| GatewayError::Startup(format!("user data stream: {e}")))?,
            );
        }
        Ok(g)
    }

    /// Counters so far.
    pub fn report(&self) -> GatewayReport {
        self.core.r
    }

    /// The state of order `client_order_id`, if tracked.
    pub fn order_state(&self, client_order_id: u64) -> Option<OrderState> {
        let s = self.core.table.find(client_order_id)?;
        self.core.table.get(s).map(|o| o.state)
    }

    /// The venue clock offset in use (venue minus local wall clock), ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.core.clock.offset_ms()
    }

    /// Request weight used in the current window, as far as the gateway knows.
    pub fn used_weight(&self) -> u32 {
        self.core.budget.used()
    }

    /// Requests in flight plus queued retries (0 when the gateway is quiet).
    pub fn pending(&self) -> usize {
        self.inflight.iter().filter(|f| f.is_some()).count()
            + self.ws_api.as_ref().map_or(0, |w| w.in_flight())
            + self.core.queue.len()
    }

    /// Whether the user-data stream is open.
    pub fn user_stream_open(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(stream::UserStream::is_open)
    }

    fn drive_conns(&mut self, now: Instant) -> usize {
        let mut work = match self.ws_api.as_mut() {
            Some(ws) => ws.drive(&mut self.core, now, self.timeout),
            None => 0,
        };
        for ci in 0..self.conns.len() {
            if self.conns[ci].t.is_none() {
                if self.reopen_at[ci].is_none_or(|t| now >= t) {
                    self.core.r.reconnects += 1;
                    if self.conns[ci].open(&self.target).is_err() {
                        self.reopen_at[ci] = Some(now + Duration::from_millis(100));
                    } else {
                        self.reopen_at[ci] = None;
                    }
                }
                continue;
            }
            match self.conns[ci].drive() {
                Ok(Some(head)) => {
                    work += 1;
                    let f = self.inflight[ci].take();
                    let conn = &mut self.conns[ci];
                    let raw = &conn.rx[..head.total];
                    if let Some(f) = f {
                        self.core.on_response(f, &head, raw);
                    }
                    conn.finish();
                    if head.close {
                        conn.close();
                    }
                }
                Ok(None) => {
                    let late = self.conns[ci]
                        .since
                        .is_some_and(|s| now.duration_since(s) > self.timeout);
                    if late {
                        self.lose(ci);
                    }
                }
                Err(_) => self.lose(ci),
            }
        }
        work
    }

    /// A connection broke or timed out: its request's outcome is unknown.
    fn lose(&mut self, ci: usize) {
        self.conns[ci].close();
        if let Some(f) = self.inflight[ci].take() {
            self.core.r.timeouts += 1;
            self.core.on_lost(f);
        }
    }

    fn idle_conn(&self) -> Option<usize> {
        if let Some(ws) = &self.ws_api {
            // One connection, many requests in flight: "idle" means it can take another.
            return ws.can_send().then_some(0);
        }
        (0..self.conns.len()).find(|&i| self.conns[i].idle() && self.inflight[i].is_none())
    }

    fn send(&mut self, ci: usize, w: Work, now: Instant) -> Result<(), i32> {
        if let Some(ws) = self.ws_api.as_mut() {
            return ws.send(&mut self.core, w, now);
        }
        let wall = wall_ms();
        let len = self.core.encode(w, &mut self.conns[ci].tx, wall)?;
        self.conns[ci].start(len, now);
        self.inflight[ci] = Some(InFlight {
            req: w.req,
            slot: w.slot,
            sent_wall: wall,
        });
        Ok(())
    }

    /// Queued retries first, then new intents.
    fn dispatch(&mut self, now: Instant) -> usize {
        let mut done = 0;
        while let Some(&w) = self.core.queue.front() {
            if self.core.sync_pending && w.req != Req::Time {
                break;
            }
            let Some(ci) = self.idle_conn() else {
                break;
            };
            let weight = self.core.weight(w.req);
            let venue_ms = self.core.clock.now_ms();
            match self
                .core
                .budget
                .take(weight, w.req != Req::New, now, venue_ms)
            {
                Ok(()) => {}
                Err(Refusal::Budget) if w.req == Req::New => {
                    self.core.queue.pop_front();
                    self.core
                        .reject_slot(w.slot, LOCAL_REJECT_RATE_LIMIT, UpdateCause::Local);
                    continue;
                }
                Err(_) => break,
            }
            self.core.queue.pop_front();
            if w.req == Req::Time {
                // The sync is in flight; keep holding signed requests until it answers.
                self.core.r.time_syncs += 1;
            }
            match self.send(ci, w, now) {
                Ok(()) => {
                    self.core.count_sent(w);
                    done += 1;
                }
                Err(code) => self.core.reject_slot(w.slot, code, UpdateCause::Local),
            }
        }
        while done < self.batch {
            if self.draining || self.input.is_empty() || self.core.sync_pending {
                break;
            }
            let idle = self.idle_conn();
            if idle.is_none() && !self.core.budget.in_backoff(now) {
                break;
            }
            let Some(intent) = self.input.try_pop() else {
                break;
            };
            self.core.r.intents += 1;
            done += 1;
            match intent.action {
                IntentAction::New => self.on_new(intent, idle, now),
                IntentAction::Cancel => self.on_cancel(intent, idle, now),
            }
        }
        done
    }

    fn on_new(&mut self, intent: OrderIntent, idle: Option<usize>, now: Instant) {
        let core = &mut self.core;
        if core.sym(intent.instrument.0).is_none() {
            core.reject_intent(&intent, LOCAL_REJECT_UNKNOWN_INSTRUMENT);
            return;
        }
        if let Some(s) = core.table.find(intent.client_order_id) {
            core.r.duplicate_intents += 1;
            core.alert(s, OrderAlert::DuplicateIntent, UpdateCause::Intent, 0);
            return;
        }
        let Some(slot) = core.table.insert(intent) else {
            core.reject_intent(&intent, LOCAL_REJECT_TABLE_FULL);
            return;
        };
        core.journal_update(
            slot,
            OrderState::Unknown,
            OrderState::New,
            UpdateCause::Intent,
            OrderAlert::None,
            0,
        );
        let venue_ms = core.clock.now_ms();
        match core
            .budget
            .take(core.weights.new_order, false, now, venue_ms)
        {
            Ok(()) => {}
            Err(Refusal::Budget) => {
                core.reject_slot(slot, LOCAL_REJECT_RATE_LIMIT, UpdateCause::Local);
                return;
            }
            Err(Refusal::Backoff) => {
                core.reject_slot(slot, LOCAL_REJECT_BACKOFF, UpdateCause::Local);
                return;
            }
        }
        let Some(ci) = idle else {
            // Only reached in back-off, handled above.
            core.reject_slot(slot, LOCAL_REJECT_BACKOFF, UpdateCause::Local);
            return;
        };
        let w = Work {
            req: Req::New,
            slot,
        };
        match self.send(ci, w, now) {
            Ok(()) => {
                self.core.count_sent(w);
                self.core
                    .transition(slot, OrderState::Submitted, UpdateCause::Intent, 0);
            }
            Err(code) => self.core.reject_slot(slot, code, UpdateCause::Local),
        }
    }

    fn on_cancel(&mut self, intent: OrderIntent, idle: Option<usize>, now: Instant) {
        let core = &mut self.core;
        let Some(slot) = core.table.find(intent.client_order_id) else {
            core.r.unknown_orders += 1;
            core.journal_raw_update(&intent, OrderAlert::UnknownOrder, UpdateCause::Intent, 0);
            return;
        };
        if core.table.get(slot).is_some_and(|o| o.state.is_terminal()) {
            core.r.cancel_rejects += 1;
            core.alert(slot, OrderAlert::CancelRejected, UpdateCause::Intent, 0);
            return;
        }
        let w = Work {
            req: Req::Cancel,
            slot,
        };
        let venue_ms = core.clock.now_ms();
        let ci = match (
            core.budget.take(core.weights.cancel, true, now, venue_ms),
            idle,
        ) {
            (Ok(()), Some(ci)) => ci,
            _ => {
                // Cancels are never dropped: they wait for the budget, back-off or a connection.
                core.enqueue(w);
                return;
            }
        };
        match self.send(ci, w, now) {
            Ok(()) => self.core.count_sent(w),
            Err(_) => {
                self.core.r.cancel_rejects += 1;
                self.core.alert(
                    slot,
                    OrderAlert::CancelRejected,
                    UpdateCause::Local,
                    LOCAL_REJECT_ENCODE,
                );
            }
        }
    }
}

impl Core {
    #[inline]
    fn sym(&self, id: u32) -> Option<&Sym> {
        self.symbols.get(id as usize).and_then(Option::as_ref)
    }

    fn weight(&self, req: Req) -> u32 {
        match req {
            Req::New => self.weights.new_order,
            Req::Cancel => self.weights.cancel,
            Req::Query => self.weights.query,
            Req::Time => self.weights.time,
        }
    }

    fn count_sent(&mut self, w: Work) {
        match w.req {
            Req::New => self.r.orders_sent += 1,
            Req::Cancel => self.r.cancels_sent += 1,
            Req::Query => self.r.queries_sent += 1,
            Req::Time => {}
        }
    }

    fn enqueue(&mut self, w: Work) {
        if self.queue.len() < self.queue_cap {
            self.queue.push_back(w);
        } else if w.req == Req::New {
            self.reject_slot(w.slot, LOCAL_REJECT_RATE_LIMIT, UpdateCause::Local);
        } else {
            // Only possible with a retry queue smaller than the burst: counted, journaled.
            self.r.cancel_rejects += u64::from(w.req == Req::Cancel);
            self.alert(w.slot, OrderAlert::Timeout, UpdateCause::Local, 0);
        }
    }

    fn request_sync(&mut self) {
        if !self.sync_pending {
            self.sync_pending = true;
            if self.queue.len() >= self.queue_cap {
                self.queue.pop_back();
            }
            self.queue.push_front(Work {
                req: Req::Time,
                slot: u32::MAX,
            });
        }
    }

    /// Encodes request `w` into `tx`; returns its length or a local reject code.
    fn encode(&mut self, w: Work, tx: &mut [u8], wall: u64) -> Result<usize, i32> {
        let mut out = W {
            buf: tx,
            n: 0,
            ok: true,
        };
        if w.req == Req::Time {
            out.put(b"GET ");
            out.put(self.market.time_path());
            out.put(b" HTTP/1.1\r\nHost: ");
            out.put(&self.host);
            out.put(b"\r\n\r\n");
            let n = out.n;
            if !out.ok {
                return Err(LOCAL_REJECT_ENCODE);
            }
            self.journal_out(&tx[..n], 0..0);
            return Ok(n);
        }
        self.unsigned_params(w, wall)?;
        if self.query.sign(&self.signer, b"").is_err() {
            return Err(LOCAL_REJECT_ENCODE);
        }
        let method: &[u8] = match w.req {
            Req::New => b"POST",
            Req::Cancel => b"DELETE",
            _ => b"GET",
        };
        let (n, key) = frame_request(
            tx,
            method,
            self.market.order_path(),
            self.query.as_bytes(),
            &self.host,
            &self.api_key,
        )
        .ok_or(LOCAL_REJECT_ENCODE)?;
        self.journal_out(&tx[..n], key);
        Ok(n)
    }

    /// Writes the parameters of order request `w` (new, cancel or query; not `Time`) into
    /// `self.query`, unsigned, with the venue timestamp for local wall time `wall`: what both
    /// transports sign (REST as the query string, the WebSocket API sorted, with `apiKey`).
    fn unsigned_params(&mut self, w: Work, wall: u64) -> Result<(), i32> {
        let o = *self.table.get(w.slot).ok_or(LOCAL_REJECT_ENCODE)?;
        let sym = *self
            .sym(o.intent.instrument.0)
            .ok_or(LOCAL_REJECT_UNKNOWN_INSTRUMENT)?;
        let mut cid = [0u8; 36];
        let cid_len = client_id_text(&self.prefix, o.intent.client_order_id, &mut cid);
        let ts = self.clock.at(wall);
        match w.req {
            Req::New => order_params(
                &mut self.query,
                self.market,
                sym.bytes(),
                &o.intent,
                &cid[..cid_len],
                self.recv_window,
                ts,
            ),
            _ => (|| {
                let q = &mut self.query;
                q.clear();
                q.push("symbol", sym.bytes())?;
                q.push("origClientOrderId", &cid[..cid_len])?;
                q.push_u64("recvWindow", u64::from(self.recv_window))?;
                q.push_u64("timestamp", ts)
            })(),
        }
        .map_err(|_| LOCAL_REJECT_ENCODE)
    }

    /// Journals a request without the bytes in `cut` (the API-key header).
    fn journal_out(&mut self, req: &[u8], cut: std::ops::Range<usize>) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let (a, b) = (&req[..cut.start], &req[cut.end..]);
        let r = j.append_with(
            RecordKind::OutboundBytes.as_u16(),
            0,
            wall_ms() * 1_000_000,
            a.len() + b.len(),
            |buf| {
                buf[..a.len()].copy_from_slice(a);
                buf[a.len()..].copy_from_slice(b);
            },
        );
        if r.is_err() {
            self.r.journal_errors += 1;
        }
    }

    fn journal_in(&mut self, raw: &[u8]) {
        if let Some(j) = self.journal.as_mut() {
            if append_bytes(j, RecordKind::RawFrame, 0, wall_ms() * 1_000_000, raw).is_err() {
                self.r.journal_errors += 1;
            }
        }
    }

    fn journal_update(
        &mut self,
        slot: u32,
        from: OrderState,
        to: OrderState,
        cause: UpdateCause,
        alert: OrderAlert,
        err: i32,
    ) {
        let Some(o) = self.table.get(slot) else {
            return;
        };
        let u = OrderUpdate {
            client_order_id: o.intent.client_order_id,
            venue_order_id: o.venue_order_id,
            cum_qty: o.cum_qty,
            orig_qty: o.intent.qty,
            time_ns: wall_ms() * 1_000_000,
            venue_error: err,
            instrument: o.intent.instrument,
            from,
            to,
            cause,
            alert,
            qty_scale: o.intent.qty_scale,
            reserved: [0; 3],
        };
        self.write_update(&u);
    }

    fn write_update(&mut self, u: &OrderUpdate) {
        if let Some(j) = self.journal.as_mut() {
            if append(j, u, 0, u.time_ns).is_err() {
                self.r.journal_errors += 1;
            }
        }
    }

    /// An alert about an intent that has no order (unknown id).
    fn journal_raw_update(
        &mut self,
        i: &OrderIntent,
        alert: OrderAlert,
        cause: UpdateCause,
        err: i32,
    ) {
        let u = OrderUpdate {
            client_order_id: i.client_order_id,
            venue_order_id: 0,
            cum_qty: Qty(0),
            orig_qty: i.qty,
            time_ns: wall_ms() * 1_000_000,
            venue_error: err,
            instrument: i.instrument,
            from: OrderState::Unknown,
            to: OrderState::Unknown,
            cause,
            alert,
            qty_scale: i.qty_scale,
            reserved: [0; 3],
        };
        self.write_update(&u);
    }

    fn alert(&mut self, slot: u32, alert: OrderAlert, cause: UpdateCause, err: i32) {
        let s = self
            .table
            .get(slot)
            .map_or(OrderState::Unknown, |o| o.state);
        self.journal_update(slot, s, s, cause, alert, err);
    }

    fn emit(&mut self, mut ev: ExecEvent) {
        ev.stamps.stamp(StampStage::Decoded, self.tsc.raw());
        if let Some(j) = self.journal.as_mut() {
            if append(j, &ev, 0, wall_ms() * 1_000_000).is_err() {
                self.r.journal_errors += 1;
            }
        }
        self.output.send(ev);
        self.r.exec_events += 1;
        self.r.exec_held = self.output.held();
    }

    fn exec(&self, slot: u32, kind: ExecKind, time_ms: u64) -> Option<ExecEvent> {
        let o = self.table.get(slot)?;
        let i = &o.intent;
        let inst = InstrumentRef {
            id: i.instrument,
            price_scale: i.price_scale,
            qty_scale: i.qty_scale,
        };
        let stamps = Stamps::new(time_ms.saturating_mul(1_000_000), self.tsc.raw());
        let mut ev = ExecEvent::new(
            inst,
            kind,
            i.side,
            i.client_order_id,
            o.venue_order_id,
            stamps,
        );
        ev.cum_qty = o.cum_qty;
        ev.leaves_qty = Qty((i.qty.0 - o.cum_qty.0).max(0));
        Some(ev)
    }

    /// Moves the order forward to `to` (ignored if that is not forward), journals it, and
    /// publishes the matching exec event for acks and terminal states other than fills.
    fn transition(&mut self, slot: u32, to: OrderState, cause: UpdateCause, err: i32) -> bool {
        let Some(o) = self.table.get_mut(slot) else {
            return false;
        };
        let from = o.state;
        if !OrderTable::advances(from, to) {
            return false;
        }
        o.state = to;
        self.journal_update(slot, from, to, cause, OrderAlert::None, err);
        if to.is_terminal() {
            self.table.closed(slot);
        }
        true
    }

    fn terminal(&mut self, slot: u32, kind: ExecKind, cause: UpdateCause, err: i32, time_ms: u64) {
        let to = match kind {
            ExecKind::Canceled => OrderState::Canceled,
            ExecKind::Expired => OrderState::Expired,
            _ => OrderState::Rejected,
        };
        if self.transition(slot, to, cause, err) {
            if kind == ExecKind::Rejected {
                self.r.venue_rejects += u64::from(err > -9000);
            }
            if let Some(ev) = self.exec(slot, kind, time_ms) {
                self.emit(ev.with_venue_error(err));
            }
        }
    }

    fn ack(&mut self, slot: u32, venue_id: u64, cause: UpdateCause, time_ms: u64) {
        if let Some(o) = self.table.get_mut(slot) {
            if venue_id != 0 {
                o.venue_order_id = venue_id;
            }
            o.queries = 0;
        }
        if self.transition(slot, OrderState::Acked, cause, 0) {
            if let Some(ev) = self.exec(slot, ExecKind::Ack, time_ms) {
                self.emit(ev);
            }
        }
    }

    /// A fill bringing the cumulative quantity to `cum`; ignored unless it raises it.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        slot: u32,
        px: Price,
        cum: Qty,
        fee: i64,
        trade_id: u64,
        maker: bool,
        cause: UpdateCause,
        time_ms: u64,
    ) {
        let Some(o) = self.table.get(slot) else {
            return;
        };
        if cum.0 <= o.cum_qty.0 || o.state.is_terminal() && o.state != OrderState::Filled {
            return;
        }
        if o.state == OrderState::Filled {
            // More fills after the order was complete.
            self.r.overfills += 1;
            self.alert(slot, OrderAlert::Overfill, cause, 0);
            return;
        }
        self.ack(slot, 0, cause, time_ms);
        let Some(o) = self.table.get_mut(slot) else {
            return;
        };
        let last = Qty(cum.0 - o.cum_qty.0);
        let orig = o.intent.qty;
        o.cum_qty = cum;
        let from = o.state;
        let to = if cum.0 >= orig.0 {
            OrderState::Filled
        } else {
            OrderState::PartiallyFilled
        };
        o.state = to;
        if cum.0 > orig.0 {
            self.r.overfills += 1;
            self.journal_update(slot, from, to, cause, OrderAlert::Overfill, 0);
        } else {
            self.journal_update(slot, from, to, cause, OrderAlert::None, 0);
        }
        if to.is_terminal() {
            self.table.closed(slot);
        }
        let kind = if to == OrderState::Filled {
            ExecKind::Fill
        } else {
            ExecKind::PartialFill
        };
        if let Some(ev) = self.exec(slot, kind, time_ms) {
            let leaves = ev.leaves_qty;
            self.emit(
                ev.with_fill(px, last, cum, leaves, trade_id)
                    .with_fee(crate::fixed::Decimal::new(fee, FEE_SCALE), maker),
            );
        }
    }

    fn reject_slot(&mut self, slot: u32, code: i32, cause: UpdateCause) {
        if code <= -9000 {
            self.r.local_rejects += 1;
        }
        self.terminal(slot, ExecKind::Rejected, cause, code, wall_ms());
    }

    /// A local rejection of an intent that has no slot.
    fn reject_intent(&mut self, i: &OrderIntent, code: i32) {
        self.r.local_rejects += 1;
        self.journal_raw_update(i, OrderAlert::None, UpdateCause::Local, code);
        let inst = InstrumentRef {
            id: i.instrument,
            price_scale: i.price_scale,
            qty_scale: i.qty_scale,
        };
        let ev = ExecEvent::new(
            inst,
            ExecKind::Rejected,
            i.side,
            i.client_order_id,
            0,
            Stamps::new(wall_ms() * 1_000_000, self.tsc.raw()),
        );
        self.emit(ev.with_venue_error(code));
    }

    /// Applies an order as the venue reports it (new-order, cancel or query response).
    fn apply_response(&mut self, slot: u32, r: &OrderResponse<'_>, cause: UpdateCause) {
        let Some(o) = self.table.get(slot) else {
            return;
        };
        let (ps, qs) = (o.intent.price_scale, o.intent.qty_scale);
        if r.status != Some(OrderStatus::Rejected) {
            self.ack(slot, r.order_id, cause, r.time_ms);
        }
        // Fills: from the `fills` array (or, at recovery, the order's trade list) when there is
        // one, else one fill at the average price.
        let mut running = 0i64;
        let mut fills = 0;
        let mut parsed: [crate::venue::binance::orders::Fill; 16] = Default::default();
        let res = for_each_fill(r.fills, ps, qs, |f| {
            if fills < parsed.len() {
                parsed[fills] = f;
            }
            fills += 1;
        });
        if res.is_err() {
            self.r.malformed += 1;
            self.alert(slot, OrderAlert::Malformed, cause, 0);
        } else if fills > 0 && fills <= parsed.len() {
            for f in parsed.iter().take(fills) {
                running += f.qty.0;
                // A trade list's trades carry their own time; `fills` share the response's.
                let time_ms = if f.time_ms != 0 { f.time_ms } else { r.time_ms };
                self.fill(
                    slot,
                    f.price,
                    Qty(running),
                    f.commission,
                    f.trade_id,
                    f.maker,
                    cause,
                    time_ms,
                );
            }
        }
        if r.executed_qty.0 > running {
            let px = avg_price(r.cum_quote, r.executed_qty.0, ps, qs);
            self.fill(slot, px, r.executed_qty, 0, 0, false, cause, r.time_ms);
        }
        match r.status {
            Some(OrderStatus::Canceled) | Some(OrderStatus::PendingCancel) => {
                self.terminal(slot, ExecKind::Canceled, cause, 0, r.time_ms)
            }
            Some(OrderStatus::Expired) => {
                self.terminal(slot, ExecKind::Expired, cause, 0, r.time_ms)
            }
            Some(OrderStatus::Rejected) => {
                self.terminal(slot, ExecKind::Rejected, cause, 0, r.time_ms)
            }
            _ => {}
        }
    }

    fn on_response(&mut self, f: InFlight, head: &Head, raw: &[u8]) {
        let recv_wall = wall_ms();
        self.journal_in(raw);
        let body = &raw[head.body_start..head.body_start + head.body_len];
        if let Some(u) = head.used_weight {
            self.budget.observe_used(u, self.clock.at(recv_wall));
        }
        if matches!(head.status, 429 | 418) {
            self.r.rate_limited += 1;
            self.budget.back_off(
                head.retry_after_s
                    .map(|s| Duration::from_secs(u64::from(s))),
                Instant::now(),
            );
            match f.req {
                Req::New => {
                    self.alert(
                        f.slot,
                        OrderAlert::RateLimited,
                        UpdateCause::RestResponse,
                        ERR_TOO_MANY,
                    );
                    self.terminal(
                        f.slot,
                        ExecKind::Rejected,
                        UpdateCause::RestResponse,
                        ERR_TOO_MANY,
                        recv_wall,
                    );
                }
                Req::Time => {
                    self.sync_pending = false;
                    self.request_sync();
                }
                _ => {
                    self.alert(
                        f.slot,
                        OrderAlert::RateLimited,
                        UpdateCause::RestResponse,
                        ERR_TOO_MANY,
                    );
                    self.enqueue(Work {
                        req: f.req,
                        slot: f.slot,
                    });
                }
            }
            return;
        }
        if f.req == Req::Time {
            match decode_server_time(body) {
                Some(t) if head.status == 200 => {
                    self.clock.on_server_time(f.sent_wall, recv_wall, t);
                    self.sync_pending = false;
                }
                _ => {
                    self.r.malformed += 1;
                    self.sync_pending = false;
                    self.request_sync();
                }
            }
            return;
        }
        let (ps, qs) = match self.table.get(f.slot) {
            Some(o) => (o.intent.price_scale, o.intent.qty_scale),
            None => return,
        };
        if head.status == 200 {
            match decode_order_response(body, ps, qs) {
                Ok(r) => {
                    self.clock.refine(f.sent_wall, recv_wall, r.time_ms);
                    let cause = if f.req == Req::Query {
                        UpdateCause::Query
                    } else {
                        UpdateCause::RestResponse
                    };
                    self.apply_response(f.slot, &r, cause);
                }
                Err(_) => {
                    self.r.malformed += 1;
                    self.alert(f.slot, OrderAlert::Malformed, UpdateCause::RestResponse, 0);
                    if f.req != Req::Cancel {
                        self.enqueue(Work {
                            req: Req::Query,
                            slot: f.slot,
                        });
                    }
                }
            }
            return;
        }
        let (code, dup) = match decode_error(body) {
            Some(e) => (e.code, e.msg == b"Duplicate order sent."),
            None => (0, false),
        };
        let unknown_outcome = head.status >= 500 || code == ERR_UNKNOWN_STATUS || code == 0;
        match f.req {
            Req::New if code == ERR_TIMESTAMP => {
                self.r.clock_resyncs += 1;
                let first = self.table.get_mut(f.slot).is_some_and(|o| {
                    let first = !o.resynced;
                    o.resynced = true;
                    first
                });
                self.alert(
                    f.slot,
                    OrderAlert::ClockResync,
                    UpdateCause::RestResponse,
                    code,
                );
                if first {
                    self.request_sync();
                    self.enqueue(Work {
                        req: Req::New,
                        slot: f.slot,
                    });
                } else {
                    self.terminal(
                        f.slot,
                        ExecKind::Rejected,
                        UpdateCause::RestResponse,
                        code,
                        recv_wall,
                    );
                }
            }
            Req::New if (code == ERR_NEW_ORDER_REJECTED && dup) || unknown_outcome => {
                // The first copy got through (or the venue does not know yet): ask.
                self.enqueue(Work {
                    req: Req::Query,
                    slot: f.slot,
                });
            }
            Req::New => self.terminal(
                f.slot,
                ExecKind::Rejected,
                UpdateCause::RestResponse,
                code,
                recv_wall,
            ),
            Req::Cancel if code == ERR_TIMESTAMP => {
                self.r.clock_resyncs += 1;
                self.request_sync();
                self.enqueue(Work {
                    req: Req::Cancel,
                    slot: f.slot,
                });
            }
            Req::Cancel => {
                self.r.cancel_rejects += 1;
                self.alert(
                    f.slot,
                    OrderAlert::CancelRejected,
                    UpdateCause::RestResponse,
                    code,
                );
            }
            Req::Query if code == ERR_NO_SUCH_ORDER => self.never_arrived(f.slot),
            Req::Query => self.requery(f.slot),
            Req::Time => {}
        }
    }

    /// The venue does not know an order we sent: send it again with the same id.
    fn never_arrived(&mut self, slot: u32) {
        let Some(o) = self.table.get_mut(slot) else {
            return;
        };
        if o.state != OrderState::Submitted {
            return;
        }
        if o.resends >= self.max_resends {
            self.reject_slot(slot, LOCAL_REJECT_UNRESOLVED, UpdateCause::Query);
            return;
        }
        o.resends += 1;
        o.queries = 0;
        self.r.resends += 1;
        self.alert(
            slot,
            OrderAlert::None,
            UpdateCause::Resend,
            ERR_NO_SUCH_ORDER,
        );
        self.enqueue(Work {
            req: Req::New,
            slot,
        });
    }

    fn requery(&mut self, slot: u32) {
        let Some(o) = self.table.get_mut(slot) else {
            return;
        };
        if o.state.is_terminal() {
            return;
        }
        o.queries += 1;
        if o.queries > self.max_queries {
            // Still unknown: keep the order as it is (never assume) and say so.
            self.alert(
                slot,
                OrderAlert::Timeout,
                UpdateCause::Query,
                LOCAL_REJECT_UNRESOLVED,
            );
            return;
        }
        self.enqueue(Work {
            req: Req::Query,
            slot,
        });
    }

    /// A request whose answer never came.
    fn on_lost(&mut self, f: InFlight) {
        if f.req == Req::Time {
            self.sync_pending = false;
            self.request_sync();
            return;
        }
        self.alert(f.slot, OrderAlert::Timeout, UpdateCause::Timeout, 0);
        self.requery(f.slot);
    }

    /// A user-stream frame.
    fn on_stream_frame(&mut self, frame: &[u8]) {
        self.r.stream_frames += 1;
        self.journal_in(frame);
        let symbols = &self.symbols;
        let ev = decode_user_event(frame, |s| {
            symbols
                .iter()
                .flatten()
                .find(|x| x.bytes() == s)
                .map(|x| (x.inst.price_scale, x.inst.qty_scale))
        });
        let r = match ev {
            Ok(UserEvent::Execution(r)) => r,
            Ok(_) => return,
            Err(_) => {
                self.r.malformed += 1;
                return;
            }
        };
        let text = if r.orig_client_order_id.is_empty() {
            r.client_order_id
        } else {
            r.orig_client_order_id
        };
        let slot = parse_client_id(&self.prefix, text).and_then(|cid| self.table.find(cid));
        let Some(slot) = slot else {
            self.r.unknown_orders += 1;
            let u = OrderUpdate {
                client_order_id: parse_client_id(&self.prefix, text).unwrap_or(0),
                venue_order_id: r.order_id,
                cum_qty: r.cum_qty,
                orig_qty: r.orig_qty,
                time_ns: r.time_ms.saturating_mul(1_000_000),
                venue_error: 0,
                instrument: crate::instrument::InstrumentId(u32::MAX),
                from: OrderState::Unknown,
                to: OrderState::Unknown,
                cause: UpdateCause::UserStream,
                alert: OrderAlert::UnknownOrder,
                qty_scale: 0,
                reserved: [0; 3],
            };
            self.write_update(&u);
            return;
        };
        let c = UpdateCause::UserStream;
        match r.exec_type {
            ExecType::New => self.ack(slot, r.order_id, c, r.time_ms),
            ExecType::Trade => {
                if let Some(o) = self.table.get_mut(slot) {
                    o.venue_order_id = r.order_id;
                }
                self.fill(
                    slot,
                    r.last_px,
                    r.cum_qty,
                    r.commission,
                    r.trade_id,
                    r.is_maker,
                    c,
                    r.time_ms,
                )
            }
            ExecType::Canceled => self.terminal(slot, ExecKind::Canceled, c, 0, r.time_ms),
            ExecType::Expired => self.terminal(slot, ExecKind::Expired, c, 0, r.time_ms),
            ExecType::Rejected => self.terminal(slot, ExecKind::Rejected, c, 0, r.time_ms),
            ExecType::Other => {}
        }
    }
}

/// Average price from a quote amount at [`FEE_SCALE`] and a quantity at `qs`, at `ps`.
fn avg_price(quote: i64, qty: i64, ps: u8, qs: u8) -> Price {
    if qty <= 0 {
        return Price(0);
    }
    // price = quote / 10^8 / (qty / 10^qs) * 10^ps
    let num = i128::from(quote) * 10i128.pow(u32::from(qs)) * 10i128.pow(u32::from(ps));
    let den = i128::from(qty) * 10i128.pow(u32::from(FEE_SCALE));
    Price(i64::try_from(num / den).unwrap_or(0))
}

/// Writes the parameters of a new order for `intent` into `q` (Binance spot or USD-M
/// spelling), unsigned. USD-M has no `LIMIT_MAKER` (it is `LIMIT` + `GTX`) and its stop orders
/// are not supported yet.
#[allow(clippy::too_many_arguments)]
fn order_params<const N: usize>(
    q: &mut QueryBuf<N>,
    market: Market,
    symbol: &[u8],
    i: &OrderIntent,
    cid: &[u8],
    recv_window: u32,
    timestamp_ms: u64,
) -> Result<(), QueryError> {
    let (mut ty, mut tif) = (i.order_type, Some(i.time_in_force));
    match (market, ty) {
        (_, OrderType::Market) | (Market::Spot, OrderType::LimitMaker) => tif = None,
        (Market::UsdM, OrderType::LimitMaker) => {
            ty = OrderType::Limit;
            tif = Some(TimeInForce::Gtx);
        }
        (Market::UsdM, OrderType::StopMarket) => return Err(QueryError::BadValue("type")),
        (Market::Spot, OrderType::StopMarket) => tif = None,
        _ => {}
    }
    q.new_order(&NewOrder {
        symbol,
        side: i.side,
        order_type: ty,
        time_in_force: tif,
        quantity: Fixed {
            mantissa: i.qty.0,
            scale: i.qty_scale,
        },
        price: (ty != OrderType::Market).then_some(Fixed {
            mantissa: i.price.0,
            scale: i.price_scale,
        }),
        client_order_id: cid,
        recv_window_ms: Some(recv_window),
        timestamp_ms,
    })?;
    if market == Market::UsdM && i.reduce_only {
        q.push("reduceOnly", b"true")?;
    }
    Ok(())
}

/// Frames a signed request (all parameters in the query string, empty body) into `out`;
/// returns its length and the byte range of the `X-MBX-APIKEY` header line (cut from the
/// journaled copy). `None` if `out` is too small.
fn frame_request(
    out: &mut [u8],
    method: &[u8],
    path: &[u8],
    query: &[u8],
    host: &[u8],
    api_key: &[u8],
) -> Option<(usize, std::ops::Range<usize>)> {
    let mut w = W {
        buf: out,
        n: 0,
        ok: true,
    };
    w.put(method);
    w.put(b" ");
    w.put(path);
    w.put(b"?");
    w.put(query);
    w.put(b" HTTP/1.1\r\nHost: ");
    w.put(host);
    w.put(b"\r\n");
    let key_start = w.n;
    w.put(b"X-MBX-APIKEY: ");
    w.put(api_key);
    w.put(b"\r\n");
    let key_end = w.n;
    if method != b"GET" {
        w.put(b"Content-Length: 0\r\n");
    }
    w.put(b"\r\n");
    w.ok.then_some((w.n, key_start..key_end))
}

impl Stage for GatewayStage {
    fn name(&self) -> &str {
        "gateway"
    }

    fn poll(&mut self) -> usize {
        let now = Instant::now();
        // Reports held back by a full ring go first, ahead of anything this poll receives.
        let mut work = self.core.output.flush();
        work += self.drive_conns(now);
        if let Some(s) = self.stream.as_mut() {
            work += s.poll(&mut self.core);
        }
        work += self.dispatch(now);
        work
    }

    fn finished(&self) -> bool {
        // Acquire pairs with the upstream stage's Release store of `done`.
        self.upstream_done.load(Ordering::Acquire) && self.input.is_empty() && self.pending() == 0
    }

    fn shutdown(&mut self) {
        // A clean stop sees the requests already sent through (their answers, and the queries
        // that resolve a lost one) before it closes, so the journal knows what became of every
        // order that may have reached the venue; it sends no new order. Bounded by two request
        // timeouts: what is still unknown then is left to the next start's reconciliation.
        self.draining = true;
        let deadline = Instant::now() + self.timeout * 2;
        while self.pending() > 0 && Instant::now() < deadline {
            if self.poll() == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if let Some(j) = self.core.journal.as_mut() {
            if j.flush().is_err() {
                self.core.r.journal_errors += 1;
            }
        }
        if let Some(s) = self.stream.as_mut() {
            s.stop();
        }
        if let Ok(mut out) = self.report_out.lock() {
            *out = self.core.r;
        }
    }
}

/// Encodes and signs new orders for one symbol exactly as the gateway sends them (for
/// benchmarks of the tick-to-order path: "signed order bytes ready").
pub struct OrderEncoder {
    query: QueryBuf<768>,
    signer: Signer,
    prefix: Box<[u8]>,
    symbol: Box<[u8]>,
    host: Box<[u8]>,
    api_key: Box<[u8]>,
    recv_window: u32,
    market: Market,
}

impl OrderEncoder {
    /// An encoder for one symbol.
    pub fn new(
        market: Market,
        credentials: &Credentials,
        symbol: &str,
        host: &str,
        prefix: &str,
    ) -> Self {
        OrderEncoder {
            query: QueryBuf::new(),
            signer: Signer::new(&credentials.secret),
            prefix: prefix.as_bytes().into(),
            symbol: symbol.as_bytes().into(),
            host: host.as_bytes().into(),
            api_key: credentials.key.expose().as_bytes().into(),
            recv_window: 5000,
            market,
        }
    }

    /// The unsigned parameters of the new order `intent` into `self.query` (both transports).
    fn unsigned_params(&mut self, intent: &OrderIntent, timestamp_ms: u64) -> Option<()> {
        let mut cid = [0u8; 36];
        let n = client_id_text(&self.prefix, intent.client_order_id, &mut cid);
        order_params(
            &mut self.query,
            self.market,
            &self.symbol,
            intent,
            &cid[..n],
            self.recv_window,
            timestamp_ms,
        )
        .ok()
    }

    /// Writes the signed `POST order` request for `intent` at venue time `timestamp_ms`.
    pub fn encode(
        &mut self,
        intent: &OrderIntent,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        self.unsigned_params(intent, timestamp_ms)?;
        self.query.sign(&self.signer, b"").ok()?;
        frame_request(
            out,
            b"POST",
            self.market.order_path(),
            self.query.as_bytes(),
            &self.host,
            &self.api_key,
        )
        .map(|(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip_and_are_valid() {
        let mut out = [0u8; 36];
        for cid in [0u64, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let n = client_id_text(b"ae-", cid, &mut out);
            assert_eq!(n, 19);
            assert!(valid_client_order_id(&out[..n]));
            assert_eq!(parse_client_id(b"ae-", &out[..n]), Some(cid));
        }
        assert_eq!(parse_client_id(b"ae-", b"ae-0123"), None);
        assert_eq!(parse_client_id(b"ae-", b"xx-0123456789abcdef"), None);
        assert_eq!(parse_client_id(b"ae-", b"ae-0123456789abcdeZ"), None);
    }

    #[test]
    fn endpoints_give_plain_or_tls_targets_and_the_user_stream_server() {
        let c = GatewayConfig::endpoints(
            Market::Spot,
            "http://127.0.0.1:9000",
            Some("ws://127.0.0.1:9001/stream"),
        )
        .unwrap();
        assert_eq!(c.rest.addr, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(c.rest.host, "127.0.0.1:9000");
        assert!(c.rest.tls.is_none());
        let us = c.user_stream.expect("user stream");
        assert_eq!(us.ws.addr, "127.0.0.1:9001".parse::<SocketAddr>().unwrap());
        assert!(us.ws.tls.is_none());

        let c = GatewayConfig::endpoints(
            Market::UsdM,
            "https://localhost:8443/",
            Some("wss://localhost"),
        )
        .unwrap();
        assert_eq!(c.rest.addr.port(), 8443);
        assert_eq!(
            c.rest.host, "localhost:8443",
            "the Host header carries the port"
        );
        assert!(c.rest.tls.is_some());
        let us = c.user_stream.expect("user stream");
        assert_eq!((us.ws.addr.port(), us.ws.host.as_str()), (443, "localhost"));
        assert!(us.ws.tls.is_some());
        assert!(
            GatewayConfig::endpoints(Market::Spot, "http://127.0.0.1:1", None)
                .unwrap()
                .user_stream
                .is_none()
        );

        for (rest, ws) in [
            ("http://127.0.0.1:9000/api", None),
            ("ftp://127.0.0.1", None),
            ("http://127.0.0.1:9000", Some("http://127.0.0.1:9001")),
        ] {
            let e = GatewayConfig::endpoints(Market::Spot, rest, ws).unwrap_err();
            assert!(matches!(e, GatewayError::Config(_)), "{rest} {ws:?}: {e}");
        }
    }

    #[test]
    fn the_journal_fold_keeps_the_last_state_and_skips_stateless_alerts() {
        let u = |to, cum, venue_id, alert| OrderUpdate {
            client_order_id: 9,
            venue_order_id: venue_id,
            cum_qty: Qty(cum),
            orig_qty: Qty(100),
            time_ns: 5,
            venue_error: 0,
            instrument: crate::instrument::InstrumentId(2),
            from: OrderState::Unknown,
            to,
            cause: UpdateCause::Intent,
            alert,
            qty_scale: 5,
            reserved: [0; 3],
        };
        assert_eq!(
            JournaledOrder::from_update(&u(OrderState::Unknown, 0, 0, OrderAlert::UnknownOrder)),
            None
        );
        let mut o =
            JournaledOrder::from_update(&u(OrderState::New, 0, 0, OrderAlert::None)).unwrap();
        for x in [
            u(OrderState::Submitted, 0, 0, OrderAlert::None),
            u(OrderState::Acked, 0, 77, OrderAlert::None),
            u(OrderState::PartiallyFilled, 40, 0, OrderAlert::None),
            // A report the gateway could not place: no order state.
            u(OrderState::Unknown, 0, 0, OrderAlert::UnknownOrder),
            u(OrderState::PartiallyFilled, 40, 0, OrderAlert::Timeout),
        ] {
            o.apply(&x);
        }
        assert_eq!(
            (o.state, o.cum_qty, o.venue_order_id, o.instrument.0),
            (OrderState::PartiallyFilled, Qty(40), 77, 2)
        );
    }

    #[test]
    fn average_price() {
        // 10 units for 39_990 quote: 3_999.00.
        assert_eq!(
            avg_price(3_999_000_000_000, 1_000_000, 2, 5),
            Price(399_900)
        );
        assert_eq!(avg_price(1, 0, 2, 5), Price(0));
    }
}
