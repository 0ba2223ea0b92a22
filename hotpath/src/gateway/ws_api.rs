//! The Binance WebSocket API as the gateway's second order-entry transport: `order.place`,
//! `order.cancel`, `order.status` and `time` over one persistent connection
//! (`wss://ws-api.binance.com:443/ws-api/v3` for spot), chosen by
//! [`GatewayConfig::ws_api`](super::GatewayConfig::ws_api).
//!
//! # Why a second transport
//!
//! REST costs an HTTP request and response head per order and, with one request in flight per
//! keep-alive connection, a pool to overlap orders. The WebSocket API carries the same signed
//! requests as JSON text frames on one connection with any number in flight, matched to their
//! responses by the request `id`. Only the framing changes: the parameters, the
//! deterministic `newClientOrderId`, the weights, the error codes and the order state machine
//! are the REST gateway's own (`Core`), so the two transports cannot drift apart.
//!
//! # Wire format (Binance's documentation)
//!
//! * Request: `{"id":7,"method":"order.place","params":{"apiKey":"…","newClientOrderId":"…",
//!   …,"recvWindow":5000,"timestamp":…,"signature":"…"}}`. `signature` is HMAC-SHA256 over
//!   every other parameter, `apiKey` included, sorted by name and joined as `name=value&…`
//!   ([`frame_request`] does the sorting on the stack). `recvWindow` and `timestamp` are JSON
//!   numbers, every other value a string, as in Binance's examples.
//! * Response: `{"id":7,"status":200,"result":{…},"rateLimits":[…]}` or
//!   `{"id":7,"status":400,"error":{"code":-2010,"msg":"…"},"rateLimits":[…]}`. `status` has
//!   HTTP's meaning and `result`/`error` are the REST bodies, so a response becomes a
//!   [`Head`] (status, body span, `REQUEST_WEIGHT` count as the used weight, `error.data`'s
//!   `retryAfter` as `Retry-After`) and goes through the REST response handling unchanged:
//!   `-1021` resyncs the clock (with the `time` method) and resends once, `-1022` and other
//!   rejections reject, 429/418 back off, 5xx and lost requests are resolved by
//!   `order.status` with the same client order id.
//!
//! # Timeouts and reconnection
//!
//! A request without a response after [`GatewayConfig::request_timeout`] is lost: its slot is
//! freed and the gateway asks `order.status` (a late response to it is journaled and
//! ignored, the query's answer is the truth). A broken connection loses every request in
//! flight the same way and is reopened on the next poll, then after 100 ms, 200 ms, ... up
//! to 5 s while attempts keep failing; requests wait until a handshake completes.
//!
//! # Allocation and the journal
//!
//! The connection's buffers, the request buffer and the in-flight table are allocated when it
//! is opened; encoding, signing (the sorted payload is built in a stack buffer) and the
//! response scan ([`for_each_field`] over the frame in the client's receive buffer) do not
//! allocate (`bench/tests/gateway_ws_api.rs` counts it). Requests are journaled as
//! [`RecordKind::OutboundBytes`](crate::codec::RecordKind) without the `"apiKey":"…",` member,
//! responses as `RawFrame`s.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use net::ws::{Message, OpCode, WsClient, WsConfig};

use super::conn::{Head, MaybeTls, Target};
use super::limits::wall_ms;
use super::{Core, GatewayError, InFlight, Market, Req, Work, LOCAL_REJECT_ENCODE, W};
use crate::event::OrderIntent;
use crate::venue::binance::orders::{for_each_element, for_each_field, JsonValue};
use crate::venue::binance::sign::{Credentials, Signer, SIGNATURE_HEX_LEN};

/// Parameters of one request at most (a new order has at most 10, plus `apiKey`).
const MAX_PARAMS: usize = 16;
/// Frames handled per poll at most.
const FRAMES_PER_POLL: usize = 32;
/// First wait before reopening after a second failure in a row (the first reopen is
/// immediate); doubled per failure up to [`MAX_REOPEN_BACKOFF`], so a venue that keeps
/// refusing is not hammered (Binance allows 300 connection attempts per 5 minutes per IP).
const REOPEN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reopen attempts.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(5);
/// Longest API key accepted (Binance's are 64 characters); the signature payload is built in
/// a fixed stack buffer.
const MAX_API_KEY: usize = 128;

/// Where the WebSocket API is and how much may be in flight on it.
#[derive(Debug, Clone)]
pub struct WsApiConfig {
    /// The endpoint (`ws-api.binance.com:443` over TLS for spot; the simulator's WebSocket
    /// address).
    pub target: Target,
    /// Request path of the upgrade (`/ws-api/v3`; USD-M futures: `/ws-fapi/v1`).
    pub path: String,
    /// Requests in flight at once (at least 1); more wait in the gateway like REST requests
    /// wait for a free connection.
    pub max_in_flight: usize,
    /// Size of the request buffer (one encoded request).
    pub request_buffer: usize,
    /// Largest response frame accepted.
    pub max_frame: usize,
}

impl WsApiConfig {
    /// Defaults for a plain-TCP WebSocket API at `addr` (the simulator: `/ws-api/v3` on its
    /// WebSocket server).
    pub fn plain(addr: SocketAddr) -> Self {
        WsApiConfig {
            target: Target {
                addr,
                host: addr.to_string(),
                tls: None,
                socket: net::SocketConfig::default(),
            },
            path: Self::path_of(Market::Spot).into(),
            max_in_flight: 64,
            request_buffer: 2048,
            max_frame: 64 << 10,
        }
    }

    /// Binance's WebSocket API over TLS for `market`, its host resolved now.
    pub fn tls(market: Market) -> Result<Self, GatewayError> {
        use std::net::ToSocketAddrs;
        let host = match market {
            Market::Spot => "ws-api.binance.com",
            Market::UsdM => "ws-fapi.binance.com",
        };
        let path = Self::path_of(market);
        let addr = (host, 443)
            .to_socket_addrs()
            .map_err(|e| GatewayError::Config(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| GatewayError::Config(format!("{host} has no address")))?;
        let mut c = WsApiConfig::plain(addr);
        c.target.host = host.to_string();
        c.target.tls =
            Some(super::tls_connector(host).map_err(|e| GatewayError::Config(e.to_string()))?);
        c.path = path.into();
        Ok(c)
    }

    /// The WebSocket API's request path on `market`'s venue (Binance's and the simulator's).
    pub fn path_of(market: Market) -> &'static str {
        match market {
            Market::Spot => "/ws-api/v3",
            Market::UsdM => "/ws-fapi/v1",
        }
    }

    /// The WebSocket API at `url`, path included (`wss://ws-api.testnet.binance.vision/ws-api/v3`,
    /// a simulator's `ws://127.0.0.1:9001/ws-fapi/v1`): host, port, TLS and path from the URL,
    /// the other settings at their defaults.
    pub fn endpoint(url: &str) -> Result<Self, GatewayError> {
        let config = |e: &dyn std::fmt::Display| GatewayError::Config(e.to_string());
        let e = crate::live::Endpoint::parse(url).map_err(|e| config(&e))?;
        let target =
            Target::resolve(&e.host, e.port, e.tls, e.host_header()).map_err(|e| config(&e))?;
        let mut c = WsApiConfig::plain(target.addr);
        c.target = target;
        c.path = e.path;
        Ok(c)
    }
}

/// A request waiting for its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    f: InFlight,
    since: Instant,
}

/// The transport: one connection, its in-flight table and its request buffer.
pub(super) struct WsApi {
    cfg: WsApiConfig,
    ws_cfg: WsConfig,
    ws: Option<WsClient<MaybeTls>>,
    reopen_at: Option<Instant>,
    /// Wait after the next failure (zero until one failure since the last open connection).
    backoff: Duration,
    pending: Box<[Option<Pending>]>,
    in_flight: usize,
    next_id: u64,
    tx: Box<[u8]>,
}

fn open(cfg: &WsApiConfig, ws_cfg: &WsConfig) -> Result<WsClient<MaybeTls>, String> {
    let t = cfg.target.open().map_err(|e| e.to_string())?;
    WsClient::new(t, &cfg.target.host, &cfg.path, ws_cfg).map_err(|e| e.to_string())
}

/// A byte that can go into a JSON string unescaped (the API key is copied verbatim).
fn json_safe(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'"' && b != b'\\'
}

impl WsApi {
    /// Starts connecting (the handshake completes while the gateway polls). Cold path.
    pub(super) fn connect(
        cfg: &WsApiConfig,
        credentials: &Credentials,
    ) -> Result<WsApi, GatewayError> {
        let key = credentials.key.expose();
        if key.len() > MAX_API_KEY || !key.bytes().all(json_safe) {
            return Err(GatewayError::Config(format!(
                "the API key must be at most {MAX_API_KEY} characters that need no escaping in JSON"
            )));
        }
        let slots = cfg.max_in_flight.max(1);
        let ws_cfg = WsConfig {
            max_frame: cfg.max_frame,
            max_message: cfg.max_frame,
            read_chunk: cfg.max_frame,
            // Room for every request in flight even if none has left the socket yet, so a send
            // never fails for want of buffer space.
            send_buffer: (slots + 2) * (cfg.request_buffer + 16),
            auto_pong: true,
        };
        let ws = open(cfg, &ws_cfg).map_err(|e| {
            GatewayError::Startup(format!("WebSocket API {}: {e}", cfg.target.addr))
        })?;
        Ok(WsApi {
            cfg: cfg.clone(),
            ws_cfg,
            ws: Some(ws),
            reopen_at: None,
            backoff: Duration::ZERO,
            pending: vec![None; slots].into_boxed_slice(),
            in_flight: 0,
            next_id: 1,
            tx: vec![0; cfg.request_buffer].into_boxed_slice(),
        })
    }

    /// The connection is open (handshake done).
    pub(super) fn is_open(&self) -> bool {
        self.ws.as_ref().is_some_and(WsClient::is_open)
    }

    /// Open, with a free in-flight slot.
    pub(super) fn can_send(&self) -> bool {
        self.is_open() && self.in_flight < self.pending.len()
    }

    /// Requests waiting for their response.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Encodes, journals and sends request `w`. Call only when [`WsApi::can_send`].
    pub(super) fn send(&mut self, core: &mut Core, w: Work, now: Instant) -> Result<(), i32> {
        let (Some(i), Some(ws)) = (
            self.pending.iter().position(Option::is_none),
            self.ws.as_mut(),
        ) else {
            return Err(LOCAL_REJECT_ENCODE);
        };
        let id = self.next_id;
        let wall = wall_ms();
        let n = encode(core, w, id, &mut self.tx, wall)?;
        self.next_id += 1;
        // A failed send leaves the outcome unknown (part of the frame may have left): the
        // request is tracked all the same, and the broken connection or the timeout resolves
        // it by query.
        let _ = ws.send(OpCode::Text, &self.tx[..n]);
        self.pending[i] = Some(Pending {
            id,
            f: InFlight {
                req: w.req,
                slot: w.slot,
                sent_wall: wall,
            },
            since: now,
        });
        self.in_flight += 1;
        Ok(())
    }

    /// Reopens a broken connection, reads responses into the state machine and expires
    /// requests older than `timeout`. Returns the frames handled.
    pub(super) fn drive(&mut self, core: &mut Core, now: Instant, timeout: Duration) -> usize {
        let Some(ws) = self.ws.as_mut() else {
            if self.reopen_at.is_none_or(|t| now >= t) {
                core.r.reconnects += 1;
                match open(&self.cfg, &self.ws_cfg) {
                    Ok(ws) => self.ws = Some(ws),
                    Err(_) => self.failed(now),
                }
            }
            return 0;
        };
        if ws.is_open() {
            self.backoff = Duration::ZERO;
        }
        let mut work = 0;
        let mut broken = false;
        while work < FRAMES_PER_POLL {
            match ws.poll() {
                Ok(Some(Message::Text(t))) => {
                    work += 1;
                    let done = on_frame(&mut self.pending, core, t.as_bytes());
                    self.in_flight -= usize::from(done);
                }
                Ok(Some(Message::Binary(b))) => {
                    // JSON responses only (no SBE session was asked for).
                    work += 1;
                    core.r.malformed += 1;
                    core.journal_in(b);
                }
                // Pings are answered by the client; a close frame's reply is queued and the
                // next poll reports the connection closed.
                Ok(Some(_)) => work += 1,
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        for p in self.pending.iter_mut() {
            let lost = p.is_some_and(|x| broken || now.duration_since(x.since) > timeout);
            if let Some(x) = p.take_if(|_| lost) {
                self.in_flight -= 1;
                core.r.timeouts += 1;
                core.on_lost(x.f);
            }
        }
        if broken {
            self.ws = None;
            self.failed(now);
        }
        work
    }

    /// The connection failed (or could not be opened): when to try again.
    fn failed(&mut self, now: Instant) {
        self.reopen_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).clamp(REOPEN_BACKOFF, MAX_REOPEN_BACKOFF);
    }
}

impl super::OrderEncoder {
    /// Writes the signed `order.place` frame for `intent` at venue time `timestamp_ms` with
    /// request id `id`: the WebSocket API counterpart of
    /// [`OrderEncoder::encode`](super::OrderEncoder::encode), built by the code the gateway's
    /// WebSocket API transport runs.
    pub fn encode_ws(
        &mut self,
        intent: &OrderIntent,
        timestamp_ms: u64,
        id: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        self.unsigned_params(intent, timestamp_ms)?;
        frame_request(
            out,
            id,
            method(Req::New),
            self.query.as_bytes(),
            Some((&self.api_key, &self.signer)),
        )
        .map(|(n, _)| n)
    }
}

/// Binance's method name for a request kind.
fn method(req: Req) -> &'static [u8] {
    match req {
        Req::New => b"order.place",
        Req::Cancel => b"order.cancel",
        Req::Query => b"order.status",
        Req::Time => b"time",
    }
}

/// Encodes request `w` with id `id` into `out` and journals it (without the API key).
fn encode(core: &mut Core, w: Work, id: u64, out: &mut [u8], wall: u64) -> Result<usize, i32> {
    let (n, cut) = if w.req == Req::Time {
        frame_request(out, id, method(w.req), b"", None).ok_or(LOCAL_REJECT_ENCODE)?
    } else {
        core.unsigned_params(w, wall)?;
        frame_request(
            out,
            id,
            method(w.req),
            core.query.as_bytes(),
            Some((&core.api_key, &core.signer)),
        )
        .ok_or(LOCAL_REJECT_ENCODE)?
    };
    core.journal_out(&out[..n], cut);
    Ok(n)
}

/// Writes the decimal digits of `v` into `w`.
fn put_u64(w: &mut W<'_>, v: u64) {
    let mut digits = [0u8; 20];
    w.put(crate::venue::binance::sign::u64_digits(v, &mut digits));
}

/// Writes the request frame `{"id":id,"method":method,"params":{…}}` into `out`. `query` is
/// the unsigned query string the REST encoder builds (`name=value&…`, values already
/// restricted to characters that need no escaping); with `signed = Some((api_key, signer))`
/// `apiKey` is added and `signature` computed over all parameters sorted by name. Returns the
/// frame's length and the byte range of the `"apiKey":"…",` member (cut from the journaled
/// copy); `None` if `out` is too small or `query` has more than [`MAX_PARAMS`] parameters.
pub(super) fn frame_request(
    out: &mut [u8],
    id: u64,
    method: &[u8],
    query: &[u8],
    signed: Option<(&[u8], &Signer)>,
) -> Option<(usize, Range<usize>)> {
    let mut pairs: [(&[u8], &[u8]); MAX_PARAMS + 1] = [(b"", b""); MAX_PARAMS + 1];
    let mut n = 0;
    if let Some((key, _)) = signed {
        pairs[0] = (b"apiKey", key);
        n = 1;
    }
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let eq = pair.iter().position(|&b| b == b'=')?;
        *pairs.get_mut(n)? = (&pair[..eq], &pair[eq + 1..]);
        n += 1;
    }
    let pairs = &mut pairs[..n];
    // Insertion sort: a dozen entries, no allocation, stable.
    for i in 1..pairs.len() {
        let mut j = i;
        while j > 0 && pairs[j - 1].0 > pairs[j].0 {
            pairs.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut sig = [0u8; SIGNATURE_HEX_LEN];
    if let Some((_, signer)) = signed {
        let mut payload = [0u8; 1024];
        let mut p = W {
            buf: &mut payload,
            n: 0,
            ok: true,
        };
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                p.put(b"&");
            }
            p.put(k);
            p.put(b"=");
            p.put(v);
        }
        if !p.ok {
            return None;
        }
        let len = p.n;
        signer.sign_into(&[&payload[..len]], &mut sig);
    }
    let mut w = W {
        buf: out,
        n: 0,
        ok: true,
    };
    w.put(b"{\"id\":");
    put_u64(&mut w, id);
    w.put(b",\"method\":\"");
    w.put(method);
    w.put(b"\"");
    let mut cut = 0..0;
    if signed.is_some() {
        w.put(b",\"params\":{");
        for (k, v) in pairs.iter() {
            let start = w.n;
            w.put(b"\"");
            w.put(k);
            w.put(b"\":");
            // Binance's examples send these two as numbers and everything else as strings.
            if *k == b"recvWindow" || *k == b"timestamp" {
                w.put(v);
            } else {
                w.put(b"\"");
                w.put(v);
                w.put(b"\"");
            }
            w.put(b",");
            if *k == b"apiKey" {
                cut = start..w.n;
            }
        }
        w.put(b"\"signature\":\"");
        w.put(&sig);
        w.put(b"\"}");
    } else if !query.is_empty() {
        return None;
    }
    w.put(b"}");
    w.ok.then_some((w.n, cut))
}

/// The parts of a response frame the gateway uses.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Envelope<'a> {
    id: Option<u64>,
    status: Option<u16>,
    /// `result` (object or array) or `error` (object).
    body: Option<&'a [u8]>,
    /// `count` of the 1-minute `REQUEST_WEIGHT` limit.
    used_weight: Option<u32>,
    /// `error.data.retryAfter` and `error.data.serverTime`, epoch ms.
    retry_after_ms: Option<u64>,
    server_time_ms: Option<u64>,
}

/// Scans a response frame; `None` if it is not a JSON object.
fn envelope(frame: &[u8]) -> Option<Envelope<'_>> {
    let mut e = Envelope::default();
    let mut limits: &[u8] = b"";
    for_each_field(frame, |k, v| match (k, v) {
        (b"id", v) => e.id = v.as_u64(),
        (b"status", v) => e.status = v.as_u64().and_then(|s| u16::try_from(s).ok()),
        (b"result", JsonValue::Object(b) | JsonValue::Array(b)) => e.body = Some(b),
        (b"error", JsonValue::Object(b)) => {
            e.body = Some(b);
            let _ = for_each_field(b, |k, v| {
                if let (b"data", JsonValue::Object(d)) = (k, v) {
                    let _ = for_each_field(d, |k, v| match k {
                        b"retryAfter" => e.retry_after_ms = v.as_u64(),
                        b"serverTime" => e.server_time_ms = v.as_u64(),
                        _ => {}
                    });
                }
            });
        }
        (b"rateLimits", JsonValue::Array(a)) => limits = a,
        _ => {}
    })
    .ok()?;
    let _ = for_each_element(limits, |el| {
        let JsonValue::Object(o) = el else { return };
        let (mut weight, mut minute, mut one, mut count) = (false, false, false, None);
        let _ = for_each_field(o, |k, v| match k {
            b"rateLimitType" => weight = v.text() == Some(b"REQUEST_WEIGHT"),
            b"interval" => minute = v.text() == Some(b"MINUTE"),
            b"intervalNum" => one = v.as_u64() == Some(1),
            b"count" => count = v.as_u64().and_then(|c| u32::try_from(c).ok()),
            _ => {}
        });
        if weight && minute && one {
            e.used_weight = count;
        }
    });
    Some(e)
}

impl Envelope<'_> {
    /// The REST-shaped head of this response within `frame`; `None` without a status or body.
    fn head(&self, frame: &[u8]) -> Option<Head> {
        let (status, body) = (self.status?, self.body?);
        // `body` borrows `frame`: its offset is the difference of the two addresses.
        let start = (body.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
        let retry_after_s = self.retry_after_ms.map(|at| {
            let now = self.server_time_ms.unwrap_or_else(wall_ms);
            u32::try_from(at.saturating_sub(now).div_ceil(1000).max(1)).unwrap_or(u32::MAX)
        });
        Some(Head {
            status,
            body_start: start,
            body_len: body.len(),
            total: frame.len(),
            used_weight: self.used_weight,
            retry_after_s,
            close: false,
        })
    }
}

/// Hands a response frame to the state machine; true if it answered a pending request (whose
/// slot is then free). Frames that answer nothing pending (late answers to expired requests)
/// and undecodable ones are journaled; the latter are counted as malformed and their request,
/// if any could be told, is left to its timeout and query.
fn on_frame(pending: &mut [Option<Pending>], core: &mut Core, frame: &[u8]) -> bool {
    let Some(env) = envelope(frame) else {
        core.r.malformed += 1;
        core.journal_in(frame);
        return false;
    };
    let slot = env
        .id
        .and_then(|id| pending.iter().position(|p| p.is_some_and(|p| p.id == id)));
    let (Some(i), Some(head)) = (slot, env.head(frame)) else {
        core.r.malformed += u64::from(slot.is_some());
        core.journal_in(frame);
        return false;
    };
    let Some(p) = pending[i].take() else {
        return false;
    };
    core.on_response(p.f, &head, frame);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &[u8] = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    /// Binance's documented HMAC example for the WebSocket API: the same parameters in REST
    /// order, sorted and signed to the documented signature.
    #[test]
    fn signs_binances_documented_example() {
        let signer = Signer::from_secret_bytes(SECRET);
        let query = b"symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=52000.00&newOrderRespType=ACK&recvWindow=100&timestamp=1645423376532";
        let mut out = [0u8; 1024];
        let (n, cut) = frame_request(
            &mut out,
            42,
            b"order.place",
            query,
            Some((KEY.as_bytes(), &signer)),
        )
        .unwrap();
        let text = std::str::from_utf8(&out[..n]).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"id\":42,\"method\":\"order.place\",\"params\":{{\"apiKey\":\"{KEY}\",\
                 \"newOrderRespType\":\"ACK\",\"price\":\"52000.00\",\"quantity\":\"0.01000000\",\
                 \"recvWindow\":100,\"side\":\"SELL\",\"symbol\":\"BTCUSDT\",\"timeInForce\":\"GTC\",\
                 \"timestamp\":1645423376532,\"type\":\"LIMIT\",\
                 \"signature\":\"cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a\"}}}}"
            )
        );
        assert_eq!(&text[cut], format!("\"apiKey\":\"{KEY}\","));
    }

    /// The WebSocket API frame carries exactly the REST request's parameters, plus `apiKey`.
    #[test]
    fn order_encoder_sends_the_rest_parameters_over_both_transports() {
        use crate::event::{OrderType, Side, TimeInForce};
        use crate::fixed::{Price, Qty};
        use crate::instrument::{InstrumentId, InstrumentRef};
        let creds = Credentials::new(KEY, std::str::from_utf8(SECRET).unwrap()).unwrap();
        let mut enc = super::super::OrderEncoder::new(Market::Spot, &creds, "BTCUSDT", "h", "ae-");
        let inst = InstrumentRef {
            id: InstrumentId(0),
            price_scale: 2,
            qty_scale: 5,
        };
        let i = OrderIntent::new_order(
            inst,
            Side::Sell,
            OrderType::Limit,
            TimeInForce::Ioc,
            Price(6_543_210),
            Qty(250),
            0xabc,
        );
        let mut out = [0u8; 2048];
        let n = enc.encode(&i, 1_700_000_000_123, &mut out).unwrap();
        let rest = std::str::from_utf8(&out[..n]).unwrap();
        let query = rest["POST /api/v3/order?".len()..]
            .split(' ')
            .next()
            .unwrap();
        let mut rest_params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("signature="))
            .collect();
        rest_params.push("apiKey");
        rest_params.sort_unstable();
        let mut out_ws = [0u8; 2048];
        let n = enc
            .encode_ws(&i, 1_700_000_000_123, 5, &mut out_ws)
            .unwrap();
        let ws = std::str::from_utf8(&out_ws[..n]).unwrap();
        let params = ws.split("\"params\":{").nth(1).unwrap();
        let mut ws_params: Vec<String> = params
            .trim_end_matches('}')
            .split(',')
            .filter(|m| !m.starts_with("\"signature\""))
            .map(|m| {
                let (k, v) = m.split_once(':').unwrap();
                let (k, v) = (k.trim_matches('"'), v.trim_matches('"'));
                if k == "apiKey" {
                    k.to_string()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        ws_params.sort_unstable();
        assert_eq!(ws_params, rest_params);
        assert!(ws.starts_with("{\"id\":5,\"method\":\"order.place\",\"params\":{"));
        assert!(rest_params.contains(&"newClientOrderId=ae-0000000000000abc"));
        assert!(rest_params.contains(&"price=65432.10"));
    }

    #[test]
    fn unsigned_requests_and_refusals() {
        let mut out = [0u8; 64];
        let (n, cut) = frame_request(&mut out, 7, b"time", b"", None).unwrap();
        assert_eq!(&out[..n], b"{\"id\":7,\"method\":\"time\"}");
        assert_eq!(cut, 0..0);
        // Too small a buffer, a parameter without '=', too many parameters: refused.
        let signer = Signer::from_secret_bytes(SECRET);
        let s = Some((KEY.as_bytes(), &signer));
        assert!(frame_request(&mut out, 1, b"order.status", b"symbol=BTCUSDT", s).is_none());
        let mut big = [0u8; 4096];
        assert!(frame_request(&mut big, 1, b"order.status", b"symbol", s).is_none());
        let many = "a=1&".repeat(MAX_PARAMS + 1);
        assert!(frame_request(&mut big, 1, b"order.status", many.as_bytes(), s).is_none());
    }

    #[test]
    fn response_envelopes() {
        let ok = br#"{"id":12,"status":200,"result":{"orderId":5,"status":"NEW"},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50,"count":3},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":321}]}"#;
        let e = envelope(ok).unwrap();
        assert_eq!(
            (e.id, e.status, e.used_weight),
            (Some(12), Some(200), Some(321))
        );
        let h = e.head(ok).unwrap();
        assert_eq!(
            &ok[h.body_start..h.body_start + h.body_len],
            br#"{"orderId":5,"status":"NEW"}"#
        );
        assert_eq!((h.status, h.retry_after_s, h.total), (200, None, ok.len()));

        let banned = br#"{"id":"x","status":418,"error":{"code":-1003,"msg":"banned","data":{"serverTime":1659142907531,"retryAfter":1659146400000}}}"#;
        let e = envelope(banned).unwrap();
        assert_eq!(e.id, None, "a string id is not one of ours");
        let h = e.head(banned).unwrap();
        assert_eq!(h.status, 418);
        assert_eq!(h.retry_after_s, Some(3493));
        assert_eq!(
            &banned[h.body_start..h.body_start + h.body_len],
            br#"{"code":-1003,"msg":"banned","data":{"serverTime":1659142907531,"retryAfter":1659146400000}}"#
        );

        assert!(envelope(b"not json").is_none());
        let no_body = br#"{"id":3,"status":200}"#;
        assert!(envelope(no_body).unwrap().head(no_body).is_none());
    }
}
