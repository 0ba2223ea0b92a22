//! The simulator's WebSocket server: Binance market-data streams, the user data stream and the
//! WebSocket API (`/ws-api/v3`, answered by [`super::ws_api`]).
//!
//! Why: the engine's feed and gateway connect to Binance over RFC 6455; the simulator must be
//! the far end of exactly that. Server side of the protocol, reusing the `net` crate's codec
//! (`parse_client_request`/`write_server_response` for the handshake with
//! `Sec-WebSocket-Accept`, `FrameDecoder` in the server role, which refuses unmasked client
//! frames as RFC 6455 section 5.1 requires, and `encode_header` for unmasked server frames).
//!
//! Paths, as on Binance: `/stream?streams=a/b/c` (combined: `{"stream":..,"data":..}`),
//! `/ws/<stream>` (raw `data` only), `/ws/<listenKey>` (user data stream), and live
//! `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS` requests on any market connection. Only the
//! subscribed streams are sent to each client. Each connection has a reader thread (pings,
//! close, subscriptions); frames are written by the market driver (`venue`) or by the
//! user-stream forwarder, under the connection's write lock, from a buffer kept per
//! connection so that steady-state sending does not allocate.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use net::ws::{
    frame::encode_header, parse_client_request, write_server_response, Decoded, FrameDecoder,
    OpCode, Role,
};
use serde_json::{json, Value};

use super::market::{Event, TapeFrame};
use super::rest::Shared as RestShared;
use super::stamps::WireLog;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection receives.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// Market data; `combined` wraps frames as `{"stream":..,"data":..}`.
    Market { combined: bool },
    /// The user data stream.
    User,
    /// The WebSocket API: one request per text frame, answered on the reader thread.
    Api,
}

/// One accepted WebSocket connection.
struct Conn {
    id: u32,
    kind: Kind,
    subs: Mutex<Vec<String>>,
    /// The socket and a reusable output buffer.
    out: Mutex<(TcpStream, Vec<u8>)>,
    closed: AtomicBool,
}

impl Conn {
    /// Send one unmasked frame.
    fn send(&self, op: OpCode, payload: &[u8]) -> io::Result<()> {
        let mut g = lock(&self.out);
        let (sock, buf) = &mut *g;
        buf.clear();
        let mut hdr = [0u8; 14];
        let n = encode_header(true, op, None, payload.len(), &mut hdr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        buf.extend_from_slice(&hdr[..n]);
        buf.extend_from_slice(payload);
        let r = sock.write_all(buf);
        if r.is_err() {
            self.closed.store(true, Ordering::SeqCst);
        }
        r
    }

    fn close(&self, code: u16, reason: &str) {
        let mut p = Vec::with_capacity(2 + reason.len());
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(reason.as_bytes());
        let _ = self.send(OpCode::Close, &p);
        self.closed.store(true, Ordering::SeqCst);
    }

    fn wants(&self, stream: &[u8]) -> bool {
        lock(&self.subs).iter().any(|s| s.as_bytes() == stream)
    }
}

/// State shared by the accept loop, the connections and the venue.
pub(crate) struct Hub {
    conns: Mutex<Vec<Arc<Conn>>>,
    next_id: AtomicU32,
    stop: AtomicBool,
    /// Set (and signalled) when a market-data client first subscribes to something.
    subscribed: (Mutex<bool>, Condvar),
    rest: Arc<RestShared>,
    stamps: Option<Arc<WireLog>>,
}

impl Hub {
    /// Block until a market-data client has subscribed or the server stops.
    pub fn wait_subscriber(&self) {
        let mut g = lock(&self.subscribed.0);
        while !*g && !self.stop.load(Ordering::SeqCst) {
            g = self
                .subscribed
                .1
                .wait_timeout(g, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn mark_subscribed(&self) {
        *lock(&self.subscribed.0) = true;
        self.subscribed.1.notify_all();
    }

    fn snapshot(&self) -> Vec<Arc<Conn>> {
        let mut c = lock(&self.conns);
        c.retain(|c| !c.closed.load(Ordering::SeqCst));
        c.clone()
    }

    /// Send a tape frame to every market client subscribed to its stream; returns how many
    /// got it.
    pub fn broadcast(&self, index: usize, frame: &TapeFrame) -> usize {
        let stream = frame.stream_name();
        let trade_id = match frame.event {
            Event::Trade { id, .. } => id,
            _ => 0,
        };
        let mut n = 0;
        for c in lock(&self.conns).iter() {
            let Kind::Market { combined } = c.kind else {
                continue;
            };
            // Frames that are not combined-stream JSON have no stream: nobody subscribed them.
            if stream.is_empty() || c.closed.load(Ordering::SeqCst) || !c.wants(stream) {
                continue;
            }
            let bytes = if combined {
                &frame.combined[..]
            } else {
                frame.data_bytes()
            };
            if c.send(OpCode::Text, bytes).is_ok() {
                n += 1;
                if let Some(log) = &self.stamps {
                    log.frame(log.now(), index, trade_id, c.id);
                }
            }
        }
        n
    }

    /// Tell market clients the tape is over (close 1000).
    pub fn close_market(&self) {
        for c in self.snapshot() {
            if matches!(c.kind, Kind::Market { .. }) {
                c.close(1000, "end of tape");
            }
        }
    }

    fn send_user(&self, payload: &[u8]) {
        for c in self.snapshot() {
            if c.kind == Kind::User {
                let _ = c.send(OpCode::Text, payload);
            }
        }
    }
}

/// The running WebSocket server.
pub(crate) struct WsServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    threads: Vec<JoinHandle<()>>,
}

impl WsServer {
    /// Bind `bind` and serve; user events arrive on `events`.
    pub fn start(
        bind: SocketAddr,
        rest: Arc<RestShared>,
        events: Receiver<Vec<u8>>,
        stamps: Option<Arc<WireLog>>,
    ) -> io::Result<WsServer> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let hub = Arc::new(Hub {
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            subscribed: (Mutex::new(false), Condvar::new()),
            rest,
            stamps,
        });
        let h = Arc::clone(&hub);
        let accept = std::thread::Builder::new()
            .name("sim-ws-accept".into())
            .spawn(move || {
                for s in listener.incoming() {
                    if h.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let h2 = Arc::clone(&h);
                    let _ = std::thread::Builder::new()
                        .name("sim-ws-conn".into())
                        .spawn(move || {
                            let _ = serve(s, &h2);
                        });
                }
            })?;
        let h = Arc::clone(&hub);
        let user = std::thread::Builder::new()
            .name("sim-ws-user".into())
            .spawn(move || {
                while let Ok(ev) = events.recv() {
                    h.send_user(&ev);
                }
            })?;
        Ok(WsServer {
            addr,
            hub,
            threads: vec![accept, user],
        })
    }

    /// Stop accepting and close every connection. The user forwarder ends when the venue
    /// drops its event sender.
    pub fn stop(&mut self) {
        if self.hub.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        self.hub.subscribed.1.notify_all();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for c in lock(&self.hub.conns).drain(..) {
            c.closed.store(true, Ordering::SeqCst);
            let _ = lock(&c.out).0.shutdown(Shutdown::Both);
        }
        // Join the accept thread only: the forwarder may still wait for its sender to go.
        if !self.threads.is_empty() {
            let _ = self.threads.remove(0).join();
        }
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn http_error(s: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Streams named in a `/stream?streams=a/b` target.
fn combined_streams(target: &str) -> Vec<String> {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|p| p.strip_prefix("streams="))
        .flat_map(|v| v.split('/'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn serve(mut s: TcpStream, hub: &Arc<Hub>) -> io::Result<()> {
    s.set_nodelay(true)?;
    let peer = s.peer_addr()?.ip();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    let (target, resp) = loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        match parse_client_request(&buf[..have]) {
            Ok(Some(req)) => {
                let mut out = [0u8; 256];
                let len = write_server_response(req.key, &mut out)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let rest = req.consumed;
                let target = req.path.to_owned();
                buf.copy_within(rest..have, 0);
                have -= rest;
                break (target, out[..len].to_vec());
            }
            Ok(None) if have < buf.len() => continue,
            Ok(None) => {
                http_error(&mut s, "431 Request Header Fields Too Large", "{}");
                return Ok(());
            }
            Err(e) => {
                http_error(
                    &mut s,
                    "400 Bad Request",
                    &json!({"error": e.to_string()}).to_string(),
                );
                return Ok(());
            }
        }
    };
    let path = target.split('?').next().unwrap_or("");
    let (kind, subs) = if path == super::venue::ws_api_path(hub.rest.cfg.market_type) {
        (Kind::Api, Vec::new())
    } else if path == "/stream" {
        (Kind::Market { combined: true }, combined_streams(&target))
    } else if path == "/ws" {
        (Kind::Market { combined: false }, Vec::new())
    } else if let Some(name) = path.strip_prefix("/ws/") {
        let is_key = lock_rest(hub).iter().any(|k| k == name);
        if is_key {
            (Kind::User, Vec::new())
        } else if name.contains('@') {
            (Kind::Market { combined: false }, vec![name.to_owned()])
        } else {
            http_error(
                &mut s,
                "400 Bad Request",
                r#"{"code":-1125,"msg":"This listenKey does not exist."}"#,
            );
            return Ok(());
        }
    } else {
        http_error(&mut s, "404 Not Found", "{}");
        return Ok(());
    };
    s.set_read_timeout(None)?;
    let market = matches!(kind, Kind::Market { .. });
    let has_subs = !subs.is_empty();
    let conn = Arc::new(Conn {
        id: hub.next_id.fetch_add(1, Ordering::Relaxed),
        kind,
        subs: Mutex::new(subs),
        out: Mutex::new((s.try_clone()?, Vec::with_capacity(64 * 1024))),
        closed: AtomicBool::new(false),
    });
    {
        // Registered before the 101 goes out (so no event after the client sees it is
        // missed), and under the write lock (so no frame goes out before the 101).
        let mut out = lock(&conn.out);
        lock(&hub.conns).push(Arc::clone(&conn));
        out.0.write_all(&resp)?;
    }
    if market && has_subs {
        hub.mark_subscribed();
    }
    let r = read_loop(&mut s, &mut buf, have, &conn, hub, peer);
    conn.closed.store(true, Ordering::SeqCst);
    let _ = s.shutdown(Shutdown::Both);
    r
}

fn lock_rest(hub: &Hub) -> Vec<String> {
    hub.rest.state().listen_keys.clone()
}

fn read_loop(
    s: &mut TcpStream,
    buf: &mut [u8],
    mut have: usize,
    conn: &Conn,
    hub: &Hub,
    peer: IpAddr,
) -> io::Result<()> {
    let dec = FrameDecoder::new(Role::Server, buf.len() - 14);
    loop {
        loop {
            match dec.decode(&mut buf[..have]) {
                Ok(Decoded::NeedMore { .. }) => break,
                Ok(Decoded::Frame(f)) => {
                    let payload = buf[f.payload.clone()].to_vec();
                    match f.opcode {
                        OpCode::Ping => {
                            conn.send(OpCode::Pong, &payload)?;
                        }
                        OpCode::Close => {
                            let _ = conn.send(OpCode::Close, &payload[..payload.len().min(2)]);
                            conn.closed.store(true, Ordering::SeqCst);
                            return Ok(());
                        }
                        OpCode::Text if conn.kind == Kind::Api => {
                            let reply = super::ws_api::handle(
                                &hub.rest,
                                peer,
                                &payload,
                                hub.stamps.as_deref(),
                            );
                            conn.send(OpCode::Text, reply.as_bytes())?;
                        }
                        OpCode::Text => control(conn, hub, &payload)?,
                        _ => {}
                    }
                    buf.copy_within(f.consumed..have, 0);
                    have -= f.consumed;
                }
                Err(e) => {
                    let code = e.close_code().map(|c| c.0).unwrap_or(1002);
                    conn.close(code, "protocol error");
                    return Ok(());
                }
            }
        }
        if conn.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
    }
}

/// Binance's live subscription requests.
fn control(conn: &Conn, hub: &Hub, payload: &[u8]) -> io::Result<()> {
    if conn.kind == Kind::User {
        return Ok(());
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return conn.send(
            OpCode::Text,
            br#"{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}}"#,
        );
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<String> = v["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let reply = match v["method"].as_str() {
        Some("SUBSCRIBE") => {
            let mut subs = lock(&conn.subs);
            for p in params {
                if !subs.contains(&p) {
                    subs.push(p);
                }
            }
            drop(subs);
            hub.mark_subscribed();
            json!({"result": null, "id": id})
        }
        Some("UNSUBSCRIBE") => {
            lock(&conn.subs).retain(|s| !params.contains(s));
            json!({"result": null, "id": id})
        }
        Some("LIST_SUBSCRIPTIONS") => json!({"result": *lock(&conn.subs), "id": id}),
        _ => json!({"error": {"code": 2, "msg": "Invalid request: unknown variant"}, "id": id}),
    };
    conn.send(OpCode::Text, reply.to_string().as_bytes())
}
