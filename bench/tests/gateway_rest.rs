//! The gateway stage against the venue simulator's REST side on loopback: order entry, cancel,
//! venue rejects, clock skew, the weight budget and 429 back-off, timeouts resolved by query
//! with idempotent resends, the journal (every transition, never a secret), and zero
//! allocations per order in steady state.
//!
//! The gateway is polled on the test thread (the runtime would poll it on its pinned thread
//! the same way), so allocation counting sees exactly the gateway's work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::sim::{RestConfig, RestServer};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{ExecEvent, ExecKind, OrderIntent, OrderType, Side, TimeInForce};
use hotpath::fixed::{Price, Qty};
use hotpath::gateway::{
    GatewayConfig, GatewayIo, GatewayStage, Market, OrderAlert, OrderState, OrderUpdate,
    UpdateCause, LOCAL_REJECT_BACKOFF, LOCAL_REJECT_RATE_LIMIT,
};
use hotpath::instrument::{
    InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::runtime::Stage;
use hotpath::venue::binance::sign::Credentials;
use ringbuffers::journal::Appender;
use ringbuffers::spsc::{self, Consumer, Producer};

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

mod common;

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn sim_config() -> RestConfig {
    RestConfig {
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        ..RestConfig::default()
    }
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

fn rig(addr: SocketAddr, tweak: impl FnOnce(&mut GatewayConfig)) -> Rig {
    let (table, inst) = instruments();
    let dir = tempfile::tempdir().unwrap();
    let journal = Appender::open(&dir.path().join("gateway"), codec::journal_config()).unwrap();
    let (tx, input) = spsc::channel::<OrderIntent>(1024);
    let (output, rx) = spsc::channel::<ExecEvent>(1024);
    let mut cfg = GatewayConfig::plain(Market::Spot, addr);
    tweak(&mut cfg);
    let creds = Credentials::new(KEY, SECRET).unwrap();
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
    fn limit_buy(&self, cid: u64, qty: i64) -> OrderIntent {
        OrderIntent::new_order(
            self.inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price(1_000_000), // 10 000.00: far below the market, never fills
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
    fn wait_for(&mut self, cid: u64, kind: ExecKind, timeout: Duration) -> ExecEvent {
        let deadline = Instant::now() + timeout;
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
                "no {kind} for {cid} within {timeout:?}; events {:?}; report {:?}",
                self.events,
                self.gw.report()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Polls for `d`.
    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.gw.poll();
            while let Some(e) = self.rx.try_pop() {
                self.events.push(e);
            }
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

const T: Duration = Duration::from_secs(5);

#[test]
fn place_ack_cancel_and_the_journal_holds_every_transition_and_no_secret() {
    let server = RestServer::start(sim_config()).unwrap();
    let mut r = rig(server.addr(), |_| {});
    r.send(r.limit_buy(11, 100));
    r.gw.poll();
    assert_eq!(r.gw.order_state(11), Some(OrderState::Submitted));
    let ack = r.wait_for(11, ExecKind::Ack, T);
    assert!(ack.venue_order_id > 0);
    assert_eq!(ack.leaves_qty, Qty(100));
    assert_eq!(r.gw.order_state(11), Some(OrderState::Acked));
    assert_eq!(server.open_order_count(), 1);

    r.cancel(11);
    let c = r.wait_for(11, ExecKind::Canceled, T);
    assert_eq!(c.venue_order_id, ack.venue_order_id);
    assert_eq!(r.gw.order_state(11), Some(OrderState::Canceled));
    assert_eq!(server.open_order_count(), 0);
    // A second cancel of a closed order is refused locally and journaled as an alert.
    r.cancel(11);
    r.run_for(Duration::from_millis(20));
    let rep = r.gw.report();
    assert_eq!(
        (rep.orders_sent, rep.cancels_sent, rep.cancel_rejects),
        (1, 1, 1)
    );

    let (ups, outs, ins, bytes) = r.journal();
    let path: Vec<(OrderState, OrderState, UpdateCause)> = ups
        .iter()
        .filter(|u| u.client_order_id == 11 && u.alert == OrderAlert::None)
        .map(|u| (u.from, u.to, u.cause))
        .collect();
    assert_eq!(
        path,
        vec![
            (OrderState::Unknown, OrderState::New, UpdateCause::Intent),
            (OrderState::New, OrderState::Submitted, UpdateCause::Intent),
            (
                OrderState::Submitted,
                OrderState::Acked,
                UpdateCause::RestResponse
            ),
            (
                OrderState::Acked,
                OrderState::Canceled,
                UpdateCause::RestResponse
            ),
        ]
    );
    assert!(ups
        .iter()
        .any(|u| u.client_order_id == 11 && u.alert == OrderAlert::CancelRejected));
    // Requests: time sync, new order, cancel; signed, with the deterministic client id.
    assert!(outs[0].starts_with("GET /api/v3/time "), "{outs:?}");
    assert!(outs[1].starts_with("POST /api/v3/order?symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.00100&price=10000.00&newClientOrderId=ae-000000000000000b&recvWindow=5000&timestamp="), "{}", outs[1]);
    assert!(outs[1].contains("&signature="));
    assert!(outs[2]
        .starts_with("DELETE /api/v3/order?symbol=BTCUSDT&origClientOrderId=ae-000000000000000b&"));
    assert!(ins.iter().any(|f| f.contains("\"status\":\"CANCELED\"")));
    // Never the key, never the secret, anywhere in the journal files.
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, KEY.as_bytes()), "API key in the journal");
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "API secret in the journal"
    );
    assert!(!contains(&bytes, b"X-MBX-APIKEY"));
}

#[test]
fn invalid_quantity_is_rejected_by_the_venue() {
    let server = RestServer::start(sim_config()).unwrap();
    let mut r = rig(server.addr(), |_| {});
    // 0.00001 BTC: below LOT_SIZE minQty 0.00001? The step is 0.00001, the minimum notional 5
    // USDT: 0.00001 * 10 000 = 0.1 USDT fails NOTIONAL (-1013).
    r.send(r.limit_buy(21, 1));
    let rej = r.wait_for(21, ExecKind::Rejected, T);
    assert_eq!(rej.venue_error, -1013);
    assert_eq!(r.gw.order_state(21), Some(OrderState::Rejected));
    assert_eq!(r.gw.report().venue_rejects, 1);
    assert_eq!(server.open_order_count(), 0);
}

#[test]
fn clock_skew_gets_minus_1021_then_resync_and_one_resend() {
    // The server's clock is 30 s behind ours: an unsynchronised timestamp is "in the future".
    let server = RestServer::start(RestConfig {
        clock_offset_ms: -30_000,
        ..sim_config()
    })
    .unwrap();
    let mut r = rig(server.addr(), |c| c.sync_clock_on_start = false);
    assert_eq!(r.gw.clock_offset_ms(), 0);
    r.send(r.limit_buy(31, 100));
    let ack = r.wait_for(31, ExecKind::Ack, T);
    assert!(ack.venue_order_id > 0);
    let rep = r.gw.report();
    assert_eq!(rep.clock_resyncs, 1);
    assert_eq!(rep.orders_sent, 2);
    let off = r.gw.clock_offset_ms();
    assert!((-31_000..=-29_000).contains(&off), "offset {off}");
    let (ups, _, _, _) = r.journal();
    assert!(ups.iter().any(|u| u.client_order_id == 31
        && u.alert == OrderAlert::ClockResync
        && u.venue_error == -1021));
}

#[test]
fn weight_budget_keeps_a_reserve_for_cancels() {
    let server = RestServer::start(sim_config()).unwrap();
    // 12 per window, 6 of it for cancels only; the start-up time request used 1.
    let mut r = rig(server.addr(), |c| {
        c.weight_limit = 12;
        c.cancel_reserve = 6;
        c.weight_window_ms = u64::MAX;
    });
    for cid in 1..=6u64 {
        r.send(r.limit_buy(100 + cid, 100));
        r.run_for(Duration::from_millis(1));
    }
    for cid in 1..=5u64 {
        r.wait_for(100 + cid, ExecKind::Ack, T);
    }
    let rej = r.wait_for(106, ExecKind::Rejected, T);
    assert_eq!(rej.venue_error, LOCAL_REJECT_RATE_LIMIT);
    assert_eq!(r.gw.report().orders_sent, 5);
    for cid in 1..=5u64 {
        r.cancel(100 + cid);
    }
    for cid in 1..=5u64 {
        r.wait_for(100 + cid, ExecKind::Canceled, T);
    }
    assert_eq!(server.open_order_count(), 0);
    assert_eq!(r.gw.used_weight(), 11);
}

#[test]
fn http_429_stops_sending_until_retry_after_and_cancels_wait() {
    // The venue allows 8 per 2-second window; the gateway thinks it may use far more.
    let server = RestServer::start(RestConfig {
        weight_limit: 8,
        weight_window: Duration::from_secs(2),
        ..sim_config()
    })
    .unwrap();
    let mut r = rig(server.addr(), |c| c.weight_window_ms = u64::MAX);
    for cid in 1..=7u64 {
        r.send(r.limit_buy(200 + cid, 100));
        r.wait_for(200 + cid, ExecKind::Ack, T);
    }
    // The 9th unit of weight: 429 with Retry-After.
    r.send(r.limit_buy(208, 100));
    let rej = r.wait_for(208, ExecKind::Rejected, T);
    assert_eq!(rej.venue_error, -1003);
    let sent = r.gw.report().orders_sent;
    // During the back-off: new orders are refused locally, nothing is sent, cancels wait.
    r.send(r.limit_buy(209, 100));
    let rej = r.wait_for(209, ExecKind::Rejected, T);
    assert_eq!(rej.venue_error, LOCAL_REJECT_BACKOFF);
    r.cancel(201);
    r.run_for(Duration::from_millis(50));
    let rep = r.gw.report();
    assert_eq!((rep.orders_sent, rep.cancels_sent), (sent, 0));
    assert_eq!(r.gw.pending(), 1);
    // After Retry-After the cancel goes out and succeeds: the venue never had to ban us.
    r.wait_for(201, ExecKind::Canceled, T);
    let rep = r.gw.report();
    assert_eq!(rep.rate_limited, 1, "{rep:?}");
    assert_eq!(rep.local_rejects, 1);
}

/// A TCP proxy in front of the simulator that loses the first `POST /api/v3/order`: either
/// the request (never forwarded, never answered) or its response (forwarded, answer dropped).
struct Proxy {
    addr: SocketAddr,
    lost: Arc<AtomicUsize>,
}

fn proxy(upstream: SocketAddr, lose_response: bool) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    let lost = Arc::new(AtomicUsize::new(0));
    let lost2 = Arc::clone(&lost);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(up) = TcpStream::connect(upstream) else {
                return;
            };
            let (armed, lost) = (Arc::clone(&armed), Arc::clone(&lost2));
            let swallow_next_response = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut c_out) = (client.try_clone().unwrap(), client);
            let (mut u_in, mut u_out) = (up.try_clone().unwrap(), up);
            let s2 = Arc::clone(&swallow_next_response);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match c_in.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let is_order = buf[..n].starts_with(b"POST /api/v3/order?");
                    if is_order && armed.swap(false, Ordering::SeqCst) {
                        lost.fetch_add(1, Ordering::SeqCst);
                        if !lose_response {
                            continue; // swallowed: the venue never sees it
                        }
                        s2.store(true, Ordering::SeqCst);
                    }
                    if u_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match u_in.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if swallow_next_response.swap(false, Ordering::SeqCst) {
                        continue;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Proxy { addr, lost }
}

fn silent_case(lose_response: bool) -> (Rig, RestServer) {
    let server = RestServer::start(sim_config()).unwrap();
    let p = proxy(server.addr(), lose_response);
    let mut r = rig(p.addr, |c| c.request_timeout = Duration::from_millis(300));
    r.send(r.limit_buy(41, 100));
    let ack = r.wait_for(41, ExecKind::Ack, T);
    assert!(ack.venue_order_id > 0);
    assert_eq!(p.lost.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.open_order_count(),
        1,
        "exactly one order at the venue"
    );
    let rep = r.gw.report();
    assert_eq!(rep.timeouts, 1, "{rep:?}");
    assert_eq!(rep.queries_sent, 1, "{rep:?}");
    (r, server)
}

#[test]
fn lost_request_is_resolved_by_query_and_resent_with_the_same_client_id() {
    let (mut r, _server) = silent_case(false);
    assert_eq!(r.gw.report().resends, 1);
    assert_eq!(r.gw.report().orders_sent, 2);
    let (ups, outs, _, _) = r.journal();
    let posts: Vec<&String> = outs.iter().filter(|o| o.starts_with("POST ")).collect();
    assert_eq!(posts.len(), 2);
    for p in &posts {
        assert!(p.contains("newClientOrderId=ae-0000000000000029&"), "{p}");
    }
    assert!(outs.iter().any(|o| o
        .starts_with("GET /api/v3/order?symbol=BTCUSDT&origClientOrderId=ae-0000000000000029&")));
    assert!(ups
        .iter()
        .any(|u| u.alert == OrderAlert::Timeout && u.cause == UpdateCause::Timeout));
    assert!(ups.iter().any(|u| u.cause == UpdateCause::Resend));
}

#[test]
fn lost_response_is_resolved_by_query_without_a_resend() {
    let (mut r, _server) = silent_case(true);
    let rep = r.gw.report();
    assert_eq!((rep.resends, rep.orders_sent), (0, 1), "{rep:?}");
    let (ups, _, _, _) = r.journal();
    assert!(ups.iter().any(|u| u.client_order_id == 41
        && u.to == OrderState::Acked
        && u.cause == UpdateCause::Query));
}

/// A stop while an order is in flight (its response lost) sees it through before closing: the
/// gateway times the request out, asks the venue, and journals the venue's answer; it takes no
/// new intent meanwhile.
#[test]
fn a_stop_sees_the_order_in_flight_through_and_sends_nothing_new() {
    let server = RestServer::start(sim_config()).unwrap();
    let p = proxy(server.addr(), true);
    let mut r = rig(p.addr, |c| c.request_timeout = Duration::from_millis(300));
    r.send(r.limit_buy(51, 100));
    let deadline = Instant::now() + T;
    while r.gw.report().orders_sent == 0 {
        r.gw.poll();
        assert!(Instant::now() < deadline, "the order was never sent");
    }
    // Another intent arrives as the engine is told to stop.
    r.send(r.limit_buy(52, 100));
    r.gw.shutdown();
    assert_eq!(r.gw.pending(), 0);
    let rep = r.gw.report();
    assert_eq!((rep.orders_sent, rep.queries_sent), (1, 1), "{rep:?}");
    assert_eq!(
        server.open_order_count(),
        1,
        "only the first reached the venue"
    );
    let (ups, _, _, _) = r.journal();
    assert!(
        ups.iter().any(|u| u.client_order_id == 51
            && u.to == OrderState::Acked
            && u.cause == UpdateCause::Query),
        "{ups:?}"
    );
    assert!(ups.iter().all(|u| u.client_order_id != 52), "{ups:?}");
}

#[test]
fn steady_state_order_entry_does_not_allocate() {
    let server = RestServer::start(sim_config()).unwrap();
    let mut r = rig(server.addr(), |_| {});
    common::assert_place_cancel_allocates_nothing(&mut r.tx, &mut r.rx, &mut r.gw, r.inst, T);
    assert_eq!(r.gw.report().orders_sent, 220);
    assert_eq!(server.open_order_count(), 0);
}
