//! Order entry over the Binance WebSocket API against the venue simulator on loopback: the
//! simulator's `/ws-api/v3` (envelopes, rate limits, errors), the gateway's `ws_api`
//! transport (place, ack, fill and cancel through the same state machine and journal as REST;
//! `-1022` and `-1021` handled as REST handles them; lost requests and lost responses resolved
//! by `order.status`; zero allocations per order in steady state), and ccxt's WebSocket API
//! client placing, querying and canceling an order on the simulator.
//!
//! The gateway is polled on the test thread, so allocation counting sees exactly its work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::sim::{MarketSource, Pace, RestConfig, SimConfig, SimVenue, WS_API_PATH};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{ExecEvent, ExecKind, OrderIntent, OrderType, Side, TimeInForce};
use hotpath::fixed::{parse_mantissa, Price, Qty};
use hotpath::gateway::{
    GatewayConfig, GatewayIo, GatewayStage, Market, OrderAlert, OrderState, OrderUpdate,
    UpdateCause, WsApiConfig,
};
use hotpath::instrument::{
    InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::runtime::Stage;
use hotpath::venue::binance::sign::{Credentials, Signer};
use net::ws::{Message, WsClient, WsConfig};
use ringbuffers::journal::Appender;
use ringbuffers::spsc::{self, Consumer, Producer};
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

mod common;

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const T: Duration = Duration::from_secs(5);

fn rest_config() -> RestConfig {
    RestConfig {
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        ..RestConfig::default()
    }
}

/// A venue without a market: empty books, so limit orders rest.
fn quiet_venue(rest: RestConfig) -> SimVenue {
    SimVenue::start(SimConfig {
        rest,
        market: MarketSource::None,
        ..SimConfig::default()
    })
    .unwrap()
}

/// A venue whose books are the recorded capture's opening snapshot (the tape does not start:
/// nothing subscribes to market data), so a marketable order fills against real levels.
fn capture_venue() -> Option<SimVenue> {
    let path = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz")?;
    Some(
        SimVenue::start(SimConfig {
            rest: rest_config(),
            market: MarketSource::Capture {
                path,
                pace: Pace::Max,
                limit: Some(2_000),
            },
            ..SimConfig::default()
        })
        .unwrap(),
    )
}

fn instruments() -> (InstrumentTable, InstrumentRef) {
    let mut t = InstrumentTable::with_capacity(4);
    let id = t
        .intern(InstrumentSpec::new(
            Venue::BinanceSpot,
            Symbol::new(b"BTCUSDT").unwrap(),
            InstrumentKind::Spot,
            2,
            5,
        ))
        .unwrap();
    let r = t.instrument_ref(id);
    (t, r)
}

struct Rig {
    gw: GatewayStage,
    tx: Producer<OrderIntent>,
    rx: Consumer<ExecEvent>,
    events: Vec<ExecEvent>,
    inst: InstrumentRef,
    dir: tempfile::TempDir,
}

/// A gateway on the WebSocket API at `ws` (REST at `rest` is configured but unused).
fn rig(
    rest: SocketAddr,
    ws: SocketAddr,
    secret: &str,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> Rig {
    let (table, inst) = instruments();
    let dir = tempfile::tempdir().unwrap();
    let journal = Appender::open(&dir.path().join("gateway"), codec::journal_config()).unwrap();
    let (tx, input) = spsc::channel::<OrderIntent>(1024);
    let (output, rx) = spsc::channel::<ExecEvent>(1024);
    let mut cfg = GatewayConfig::plain(Market::Spot, rest);
    cfg.ws_api = Some(WsApiConfig::plain(ws));
    tweak(&mut cfg);
    let creds = Credentials::new(KEY, secret).unwrap();
    let gw = GatewayStage::connect(
        cfg,
        &creds,
        &table,
        GatewayIo {
            input,
            output,
            journal: Some(journal),
            upstream_done: Arc::new(AtomicBool::new(false)),
            report: Arc::new(Mutex::new(Default::default())),
        },
    )
    .unwrap();
    Rig {
        gw,
        tx,
        rx,
        events: Vec::new(),
        inst,
        dir,
    }
}

impl Rig {
    fn limit_buy(&self, cid: u64, price: Price, qty: i64) -> OrderIntent {
        OrderIntent::new_order(
            self.inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            price,
            Qty(qty),
            cid,
        )
    }

    fn send(&mut self, i: OrderIntent) {
        self.tx.try_push(i).unwrap();
    }

    fn cancel(&mut self, cid: u64) {
        let i = OrderIntent::cancel(self.inst, Side::Buy, cid);
        self.tx.try_push(i).unwrap();
    }

    /// Polls until an event of `kind` for `cid` arrives; returns it.
    fn wait_for(&mut self, cid: u64, kind: ExecKind) -> ExecEvent {
        let deadline = Instant::now() + T;
        loop {
            if let Some(e) = self
                .events
                .iter()
                .find(|e| e.client_order_id == cid && e.kind == kind)
            {
                return *e;
            }
            self.gw.poll();
            while let Some(e) = self.rx.try_pop() {
                self.events.push(e);
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} for {cid} within {T:?}; events {:?}; report {:?}",
                self.events,
                self.gw.report()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Flushes the journal and returns (order updates, outbound requests, inbound frames,
    /// every byte of every segment).
    fn journal(&mut self) -> (Vec<OrderUpdate>, Vec<String>, Vec<String>, Vec<u8>) {
        self.gw.shutdown();
        let dir = self.dir.path().join("gateway");
        let mut t = codec::open_tailer(&dir).unwrap();
        let (mut ups, mut outs, mut ins) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(r) = t.next().unwrap() {
            match RecordKind::from_u16(r.kind) {
                Some(RecordKind::OrderUpdate) => {
                    ups.push(codec::decode::<OrderUpdate>(r.payload).unwrap())
                }
                Some(RecordKind::OutboundBytes) => {
                    outs.push(String::from_utf8_lossy(r.payload).into_owned())
                }
                Some(RecordKind::RawFrame) => {
                    ins.push(String::from_utf8_lossy(r.payload).into_owned())
                }
                _ => {}
            }
        }
        let mut all = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                all.extend(std::fs::read(p).unwrap());
            }
        }
        (ups, outs, ins, all)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The path of order `cid` through the state machine (transitions only, no alerts).
fn path(ups: &[OrderUpdate], cid: u64) -> Vec<(OrderState, OrderState, UpdateCause)> {
    ups.iter()
        .filter(|u| u.client_order_id == cid && u.alert == OrderAlert::None && u.from != u.to)
        .map(|u| (u.from, u.to, u.cause))
        .collect()
}

/// Best ask (price, qty) at scale 8 from the simulator's REST depth.
fn best_ask(rest: SocketAddr) -> (i64, i64) {
    let mut s = TcpStream::connect(rest).unwrap();
    write!(
        s,
        "GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    let d8 = |x: &Value| parse_mantissa(x.as_str().unwrap().as_bytes(), 8).unwrap();
    (d8(&v["asks"][0][0]), d8(&v["asks"][0][1]))
}

#[test]
fn place_ack_fill_cancel_over_the_ws_api_with_the_state_machine_and_journal() {
    let Some(v) = capture_venue() else { return };
    let (ask_px, ask_qty) = best_ask(v.rest_addr());
    let mut r = rig(v.rest_addr(), v.ws_addr(), SECRET, |_| {});
    assert!(r.gw.clock_offset_ms().abs() < 1_000);

    // Resting: 10 000.00 is far below the market.
    r.send(r.limit_buy(11, Price(1_000_000), 100));
    r.gw.poll();
    assert_eq!(r.gw.order_state(11), Some(OrderState::Submitted));
    let ack = r.wait_for(11, ExecKind::Ack);
    assert!(ack.venue_order_id > 0);
    assert_eq!(ack.leaves_qty, Qty(100));
    assert_eq!(v.rest().open_order_count(), 1);

    // Marketable: at the best ask for at most its quantity, filled at once (FULL response).
    let qty = (ask_qty / 1_000).min(100); // scale 8 -> 5, at most 0.001 BTC
    assert!(qty > 0, "best ask quantity {ask_qty}");
    r.send(r.limit_buy(12, Price(ask_px / 1_000_000), qty));
    let fill = r.wait_for(12, ExecKind::Fill);
    assert_eq!(fill.last_px, Price(ask_px / 1_000_000));
    assert_eq!(
        (fill.last_qty, fill.cum_qty, fill.leaves_qty),
        (Qty(qty), Qty(qty), Qty(0))
    );
    assert!(fill.fee > 0, "taker fee charged: {fill:?}");
    assert_eq!(r.gw.order_state(12), Some(OrderState::Filled));

    r.cancel(11);
    let c = r.wait_for(11, ExecKind::Canceled);
    assert_eq!(c.venue_order_id, ack.venue_order_id);
    assert_eq!(r.gw.order_state(11), Some(OrderState::Canceled));
    assert_eq!(v.rest().open_order_count(), 0);
    let rep = r.gw.report();
    assert_eq!(
        (
            rep.orders_sent,
            rep.cancels_sent,
            rep.timeouts,
            rep.malformed
        ),
        (2, 1, 0, 0),
        "{rep:?}"
    );
    assert_eq!(r.gw.pending(), 0);

    let (ups, outs, ins, bytes) = r.journal();
    use OrderState::*;
    use UpdateCause::*;
    assert_eq!(
        path(&ups, 11),
        vec![
            (Unknown, New, Intent),
            (New, Submitted, Intent),
            (Submitted, Acked, RestResponse),
            (Acked, Canceled, RestResponse),
        ]
    );
    assert_eq!(
        path(&ups, 12),
        vec![
            (Unknown, New, Intent),
            (New, Submitted, Intent),
            (Submitted, Acked, RestResponse),
            (Acked, Filled, RestResponse),
        ]
    );
    // Requests: the clock sync, then signed JSON frames with the deterministic client ids.
    assert_eq!(outs[0], r#"{"id":1,"method":"time"}"#);
    let place: Value = serde_json::from_str(&outs[1]).unwrap();
    assert_eq!(place["method"], "order.place");
    assert_eq!(place["id"], 2);
    let p = &place["params"];
    assert_eq!(
        (
            &p["symbol"],
            &p["side"],
            &p["type"],
            &p["timeInForce"],
            &p["quantity"],
            &p["price"],
            &p["newClientOrderId"],
            &p["recvWindow"]
        ),
        (
            &json!("BTCUSDT"),
            &json!("BUY"),
            &json!("LIMIT"),
            &json!("GTC"),
            &json!("0.00100"),
            &json!("10000.00"),
            &json!("ae-000000000000000b"),
            &json!(5000)
        )
    );
    assert!(p["timestamp"].is_u64() && p["signature"].as_str().unwrap().len() == 64);
    assert!(
        p.get("apiKey").is_none(),
        "the journaled request keeps no API key"
    );
    let cancel: Value = serde_json::from_str(&outs[3]).unwrap();
    assert_eq!(cancel["method"], "order.cancel");
    assert_eq!(cancel["params"]["origClientOrderId"], "ae-000000000000000b");
    // Responses are journaled whole, with their rate limits.
    assert!(ins.iter().any(|f| f.contains("\"status\":\"CANCELED\"")));
    assert!(ins
        .iter()
        .any(|f| f.contains("\"rateLimitType\":\"ORDERS\"")));
    assert!(!contains(&bytes, KEY.as_bytes()), "API key in the journal");
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "API secret in the journal"
    );
}

#[test]
fn bad_signature_is_a_venue_rejection_with_minus_1022() {
    let v = quiet_venue(rest_config());
    let mut r = rig(v.rest_addr(), v.ws_addr(), "not-the-secret", |_| {});
    r.send(r.limit_buy(21, Price(1_000_000), 100));
    let rej = r.wait_for(21, ExecKind::Rejected);
    assert_eq!(rej.venue_error, -1022);
    assert_eq!(r.gw.order_state(21), Some(OrderState::Rejected));
    let rep = r.gw.report();
    assert_eq!((rep.venue_rejects, rep.orders_sent), (1, 1), "{rep:?}");
    assert_eq!(v.rest().open_order_count(), 0);
    let (ups, _, ins, _) = r.journal();
    assert!(ups.iter().any(|u| u.client_order_id == 21
        && u.to == OrderState::Rejected
        && u.venue_error == -1022));
    assert!(ins
        .iter()
        .any(|f| f.contains("\"status\":400") && f.contains("-1022")));
}

#[test]
fn stale_timestamp_gets_minus_1021_then_a_resync_with_time_and_one_resend() {
    // The venue's clock is 30 s behind ours: an unsynchronised timestamp is "in the future".
    let v = quiet_venue(RestConfig {
        clock_offset_ms: -30_000,
        ..rest_config()
    });
    let mut r = rig(v.rest_addr(), v.ws_addr(), SECRET, |c| {
        c.sync_clock_on_start = false
    });
    assert_eq!(r.gw.clock_offset_ms(), 0);
    r.send(r.limit_buy(31, Price(1_000_000), 100));
    let ack = r.wait_for(31, ExecKind::Ack);
    assert!(ack.venue_order_id > 0);
    let rep = r.gw.report();
    assert_eq!(
        (rep.clock_resyncs, rep.orders_sent, rep.time_syncs),
        (1, 2, 1),
        "{rep:?}"
    );
    let off = r.gw.clock_offset_ms();
    assert!((-31_000..=-29_000).contains(&off), "offset {off}");
    assert_eq!(v.rest().open_order_count(), 1);
    let (ups, outs, _, _) = r.journal();
    assert!(ups.iter().any(|u| u.client_order_id == 31
        && u.alert == OrderAlert::ClockResync
        && u.venue_error == -1021));
    let methods: Vec<String> = outs
        .iter()
        .map(|o| {
            serde_json::from_str::<Value>(o).unwrap()["method"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(methods, ["order.place", "time", "order.place"]);
}

/// One RFC 6455 frame as it travels: its bytes, and its payload (unmasked).
fn next_frame(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(at..at + 4)?.try_into().unwrap();
        at += 4;
        Some(m)
    } else {
        None
    };
    let payload = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ m[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((at + len, payload))
}

/// What the proxy does to the first `order.place`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// The request frame is never forwarded.
    Request,
    /// The request is forwarded, the response frame to it dropped.
    Response,
    /// The request is never forwarded and the connection is closed under it.
    Connection,
}

/// What [`pump`] does with one frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Drop,
    /// Drop it and close both sides.
    Cut,
}

/// A TCP proxy in front of the WebSocket server that loses the first `order.place` as `loss`
/// says. Everything else, the upgrade included, passes through.
struct Proxy {
    addr: SocketAddr,
    lost: Arc<AtomicUsize>,
}

fn proxy(upstream: SocketAddr, loss: Loss) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lost = Arc::new(AtomicUsize::new(0));
    let lost2 = Arc::clone(&lost);
    std::thread::spawn(move || {
        let armed = Arc::new(AtomicBool::new(true));
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(up) = TcpStream::connect(upstream) else {
                return;
            };
            let (c_in, c_out) = (client.try_clone().unwrap(), client);
            let (u_in, u_out) = (up.try_clone().unwrap(), up);
            let (a1, a2, l1, l2) = (
                Arc::clone(&armed),
                Arc::clone(&armed),
                Arc::clone(&lost2),
                Arc::clone(&lost2),
            );
            // Client to venue: the request frames.
            std::thread::spawn(move || {
                pump(c_in, u_out, move |p| {
                    if loss == Loss::Response
                        || !contains(p, b"\"order.place\"")
                        || !a1.swap(false, Ordering::SeqCst)
                    {
                        return Verdict::Pass;
                    }
                    l1.fetch_add(1, Ordering::SeqCst);
                    if loss == Loss::Connection {
                        Verdict::Cut
                    } else {
                        Verdict::Drop
                    }
                })
            });
            // Venue to client: the response frames.
            std::thread::spawn(move || {
                pump(u_in, c_out, move |p| {
                    if loss == Loss::Response
                        && contains(p, b"\"orderId\"")
                        && a2.swap(false, Ordering::SeqCst)
                    {
                        l2.fetch_add(1, Ordering::SeqCst);
                        return Verdict::Drop;
                    }
                    Verdict::Pass
                })
            });
        }
    });
    Proxy { addr, lost }
}

/// Copies `from` to `to`: the HTTP upgrade head as it is, then frame by frame as `decide`
/// says.
fn pump(mut from: TcpStream, mut to: TcpStream, mut decide: impl FnMut(&[u8]) -> Verdict) {
    let mut buf = Vec::new();
    let mut head_done = false;
    let mut chunk = [0u8; 8192];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if !head_done {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if to.write_all(&buf[..end + 4]).is_err() {
                return;
            }
            buf.drain(..end + 4);
            head_done = true;
        }
        while let Some((len, payload)) = next_frame(&buf) {
            match decide(&payload) {
                Verdict::Pass => {
                    if to.write_all(&buf[..len]).is_err() {
                        return;
                    }
                }
                Verdict::Drop => {}
                Verdict::Cut => {
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
            buf.drain(..len);
        }
    }
}

/// The first order is lost as `loss` says; it ends acknowledged, exactly once at the venue,
/// after one timeout (or broken connection) and one `order.status`.
fn lossy_case(loss: Loss) -> (Rig, SimVenue) {
    let v = quiet_venue(rest_config());
    let p = proxy(v.ws_addr(), loss);
    let mut r = rig(v.rest_addr(), p.addr, SECRET, |c| {
        // A broken connection must be noticed without waiting for the timeout.
        c.request_timeout = if loss == Loss::Connection {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(300)
        }
    });
    r.send(r.limit_buy(41, Price(1_000_000), 100));
    let ack = r.wait_for(41, ExecKind::Ack);
    assert!(ack.venue_order_id > 0);
    assert_eq!(p.lost.load(Ordering::SeqCst), 1);
    assert_eq!(
        v.rest().open_order_count(),
        1,
        "exactly one order at the venue"
    );
    let rep = r.gw.report();
    assert_eq!((rep.timeouts, rep.queries_sent), (1, 1), "{rep:?}");
    (r, v)
}

/// The journaled requests, parsed.
fn requests(outs: &[String]) -> Vec<Value> {
    outs.iter()
        .map(|o| serde_json::from_str(o).unwrap())
        .collect()
}

#[test]
fn lost_request_is_resolved_by_order_status_and_resent_with_the_same_client_id() {
    let (mut r, _v) = lossy_case(Loss::Request);
    let rep = r.gw.report();
    assert_eq!(
        (rep.resends, rep.orders_sent, rep.reconnects),
        (1, 2, 0),
        "{rep:?}"
    );
    let (ups, outs, ins, _) = r.journal();
    let sent = requests(&outs);
    let places: Vec<&Value> = sent
        .iter()
        .filter(|o| o["method"] == "order.place")
        .collect();
    assert_eq!(places.len(), 2);
    for p in &places {
        assert_eq!(p["params"]["newClientOrderId"], "ae-0000000000000029");
    }
    assert!(sent.iter().any(|o| o["method"] == "order.status"
        && o["params"]["origClientOrderId"] == "ae-0000000000000029"));
    assert!(ins.iter().any(|f| f.contains("-2013")));
    assert!(ups
        .iter()
        .any(|u| u.alert == OrderAlert::Timeout && u.cause == UpdateCause::Timeout));
    assert!(ups.iter().any(|u| u.cause == UpdateCause::Resend));
}

#[test]
fn lost_response_is_resolved_by_order_status_without_a_resend() {
    let (mut r, _v) = lossy_case(Loss::Response);
    let rep = r.gw.report();
    assert_eq!((rep.resends, rep.orders_sent), (0, 1), "{rep:?}");
    let (ups, _, _, _) = r.journal();
    assert!(ups.iter().any(|u| u.client_order_id == 41
        && u.to == OrderState::Acked
        && u.cause == UpdateCause::Query));
}

#[test]
fn a_broken_connection_loses_its_requests_and_is_reopened() {
    let (mut r, _v) = lossy_case(Loss::Connection);
    let rep = r.gw.report();
    assert_eq!(
        (rep.reconnects, rep.resends, rep.orders_sent),
        (1, 1, 2),
        "{rep:?}"
    );
    let (_, outs, _, _) = r.journal();
    let methods: Vec<Value> = requests(&outs)
        .iter()
        .map(|o| o["method"].clone())
        .collect();
    assert_eq!(
        methods,
        [
            json!("time"),
            json!("order.place"),
            json!("order.status"),
            json!("order.place")
        ]
    );
}

#[test]
fn steady_state_ws_order_entry_does_not_allocate() {
    let v = quiet_venue(rest_config());
    let mut r = rig(v.rest_addr(), v.ws_addr(), SECRET, |_| {});
    common::assert_place_cancel_allocates_nothing(&mut r.tx, &mut r.rx, &mut r.gw, r.inst, T);
    let rep = r.gw.report();
    assert_eq!((rep.orders_sent, rep.cancels_sent), (220, 220), "{rep:?}");
    assert_eq!(v.rest().open_order_count(), 0);
}

/// A blocking WebSocket API client for the protocol checks (the engine's own RFC 6455 client).
struct ApiClient {
    ws: WsClient<net::AnyTransport>,
}

impl ApiClient {
    fn connect(addr: SocketAddr) -> ApiClient {
        let t = net::connect(addr, &net::SocketConfig::default()).unwrap();
        let mut ws =
            WsClient::new(t, &addr.to_string(), WS_API_PATH, &WsConfig::default()).unwrap();
        let deadline = Instant::now() + T;
        while !ws.is_open() {
            ws.poll().unwrap();
            assert!(Instant::now() < deadline, "no WebSocket API handshake");
        }
        ApiClient { ws }
    }

    /// Sends `req` and returns the next text frame as JSON.
    fn call(&mut self, req: &Value) -> Value {
        self.ws.send_text(&req.to_string()).unwrap();
        let deadline = Instant::now() + T;
        loop {
            if let Some(Message::Text(t)) = self.ws.poll().unwrap() {
                return serde_json::from_str(t).unwrap();
            }
            assert!(Instant::now() < deadline, "no answer to {req}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// `params` plus `apiKey`, `timestamp` and the signature over them sorted by name.
fn signed(mut params: Value, server_ms: u64) -> Value {
    params["apiKey"] = json!(KEY);
    params["timestamp"] = json!(server_ms);
    let obj = params.as_object().unwrap();
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort();
    let payload: Vec<String> = keys
        .iter()
        .map(|k| match &obj[*k] {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect();
    let mut sig = [0u8; 64];
    Signer::from_secret_bytes(SECRET.as_bytes())
        .sign_into(&[payload.join("&").as_bytes()], &mut sig);
    params["signature"] = json!(std::str::from_utf8(&sig).unwrap());
    params
}

#[test]
fn simulator_answers_the_ws_api_like_binance() {
    let v = quiet_venue(RestConfig {
        weight_limit: 30,
        weight_window: Duration::from_secs(60),
        ..rest_config()
    });
    let mut c = ApiClient::connect(v.ws_addr());
    let now = v.rest().server_time_ms();

    let t = c.call(&json!({"id": "t1", "method": "time"}));
    assert_eq!((&t["id"], &t["status"]), (&json!("t1"), &json!(200)));
    assert!(t["result"]["serverTime"].as_u64().unwrap() >= now);
    assert_eq!(
        t["rateLimits"],
        json!([{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 30, "count": 1}])
    );

    let quiet = c.call(&json!({"id": 2, "method": "ping", "params": {"returnRateLimits": false}}));
    assert_eq!(quiet, json!({"id": 2, "status": 200, "result": {}}));

    let order = json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                       "quantity": "0.001", "price": "10000", "newClientOrderId": "peer-1", "recvWindow": 5000});
    let placed =
        c.call(&json!({"id": 7, "method": "v3/order.place", "params": signed(order.clone(), now)}));
    assert_eq!(placed["status"], 200, "{placed}");
    assert_eq!(placed["id"], 7);
    assert_eq!(placed["result"]["status"], "NEW");
    assert_eq!(placed["result"]["clientOrderId"], "peer-1");
    let kinds: Vec<&Value> = placed["rateLimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["rateLimitType"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("ORDERS"), &json!("ORDERS"), &json!("REQUEST_WEIGHT")]
    );

    // The same parameters again: Binance's duplicate-order error.
    let dup =
        c.call(&json!({"id": 8, "method": "order.place", "params": signed(order.clone(), now)}));
    assert_eq!(
        (&dup["status"], &dup["error"]["code"]),
        (&json!(400), &json!(-2010))
    );
    // A wrong signature, a stale timestamp, a wrong key, no key.
    let mut bad = signed(order.clone(), now);
    bad["quantity"] = json!("0.002");
    let r = c.call(&json!({"id": 9, "method": "order.place", "params": bad}));
    assert_eq!(
        (&r["status"], &r["error"]["code"]),
        (&json!(400), &json!(-1022)),
        "{r}"
    );
    let r = c.call(
        &json!({"id": 10, "method": "order.place", "params": signed(order.clone(), now - 60_000)}),
    );
    assert_eq!(r["error"]["code"], -1021, "{r}");
    let mut wrong_key = signed(order.clone(), now);
    wrong_key["apiKey"] = json!("someone-else");
    let r = c.call(&json!({"id": 11, "method": "order.place", "params": wrong_key}));
    assert_eq!(
        (&r["status"], &r["error"]["code"]),
        (&json!(401), &json!(-2015)),
        "{r}"
    );
    let r = c.call(&json!({"id": 12, "method": "order.place", "params": order}));
    assert_eq!(r["error"]["code"], -1102, "{r}");

    // Query, then cancel, by client order id.
    let q = json!({"symbol": "BTCUSDT", "origClientOrderId": "peer-1"});
    let st = c.call(&json!({"id": 13, "method": "order.status", "params": signed(q.clone(), now)}));
    assert_eq!(
        (&st["status"], &st["result"]["status"]),
        (&json!(200), &json!("NEW")),
        "{st}"
    );
    let cx = c.call(&json!({"id": 14, "method": "order.cancel", "params": signed(q.clone(), now)}));
    assert_eq!(cx["result"]["status"], "CANCELED", "{cx}");
    let gone = json!({"symbol": "BTCUSDT", "origClientOrderId": "nobody"});
    let r = c.call(&json!({"id": 15, "method": "order.status", "params": signed(gone, now)}));
    assert_eq!(r["error"]["code"], -2013, "{r}");

    // Malformed requests answer and keep the connection.
    let r = c.call(&json!({"id": 16, "method": "order.teleport"}));
    assert_eq!((&r["id"], &r["error"]["code"]), (&json!(16), &json!(-1020)));
    let r = c.call(&json!({"id": 17, "method": "time", "params": [1]}));
    assert_eq!(r["error"]["code"], -1135);
    c.ws.send_text("{not json").unwrap();
    let deadline = Instant::now() + T;
    let r: Value = loop {
        if let Some(Message::Text(t)) = c.ws.poll().unwrap() {
            break serde_json::from_str(t).unwrap();
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(
        (&r["id"], &r["error"]["code"]),
        (&Value::Null, &json!(-1135))
    );

    // Past the weight limit: 429 with data.retryAfter, as REST's Retry-After.
    let r = loop {
        let r = c.call(&json!({"id": 99, "method": "exchangeInfo"}));
        if r["status"] != 200 {
            break r;
        }
    };
    assert_eq!(
        (&r["status"], &r["error"]["code"]),
        (&json!(429), &json!(-1003)),
        "{r}"
    );
    let data = &r["error"]["data"];
    let wait = data["retryAfter"].as_u64().unwrap() - data["serverTime"].as_u64().unwrap();
    assert!((1_000..=60_000).contains(&wait), "{r}");
    assert_eq!(v.rest().open_order_count(), 0);
}

const CCXT_WS_SCRIPT: &str = r#"
import asyncio, json, sys
import ccxt.pro as ccxtpro

rest_port, ws_port, key, secret = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

async def main():
    ex = ccxtpro.binance({
        'apiKey': key, 'secret': secret, 'enableRateLimit': False,
        'options': {'adjustForTimeDifference': False, 'fetchMarkets': {'types': ['spot']},
                    'fetchMargins': False, 'fetchCurrencies': False, 'defaultType': 'spot'},
    })
    base = 'http://127.0.0.1:%s/api/v3' % rest_port
    ex.urls['api']['public'] = base
    ex.urls['api']['private'] = base
    ex.urls['api']['ws']['ws-api']['spot'] = 'ws://127.0.0.1:%s/ws-api/v3' % ws_port
    out = {}
    try:
        await ex.load_markets()
        o = await ex.create_order_ws('BTC/USDT', 'limit', 'buy', 0.001, 10000.0, {'clientOrderId': 'ccxt-ws-1'})
        out['placed'] = {k: o[k] for k in ('id', 'clientOrderId', 'status', 'price', 'amount')}
        f = await ex.fetch_order_ws(o['id'], 'BTC/USDT')
        out['fetched'] = f['status']
        c = await ex.cancel_order_ws(o['id'], 'BTC/USDT')
        out['canceled'] = c['status']
    finally:
        await ex.close()
    print(json.dumps(out), flush=True)

asyncio.run(main())
"#;

#[test]
fn ccxt_places_queries_and_cancels_over_the_simulators_ws_api() {
    let Some(py) = testkit::python("ccxt.pro") else {
        return;
    };
    let v = quiet_venue(rest_config());
    let out = testkit::run_script(
        &py,
        CCXT_WS_SCRIPT,
        &[
            &v.rest_addr().port().to_string(),
            &v.ws_addr().port().to_string(),
            KEY,
            SECRET,
        ],
    );
    let r: Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(r["placed"]["status"], "open", "{r}");
    assert_eq!(r["placed"]["clientOrderId"], "ccxt-ws-1", "{r}");
    assert_eq!(r["placed"]["price"].as_f64(), Some(10000.0), "{r}");
    assert_eq!(r["placed"]["amount"].as_f64(), Some(0.001), "{r}");
    assert_eq!(r["fetched"], "open", "{r}");
    assert_eq!(r["canceled"], "canceled", "{r}");
    assert_eq!(v.rest().open_order_count(), 0);
}
