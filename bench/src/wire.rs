//! `wire` suite: wire-to-wire latency through the venue simulator, the engine's hot path in
//! between.
//!
//! One sample is one order: from "the simulator wrote the trade frame to the engine's
//! market-data socket" to "the simulator read the order that trade caused from the engine's
//! order-entry socket". Both ends are stamped by the simulator ([`crate::sim::stamps`]) with the
//! same TSC the engine stamps its events with, so the two logs join with the engine's own
//! stamps without clock conversion.
//!
//! What runs in between is the engine's hot path as `algo-engine run` wires it against the
//! embedded simulator (`src/engine.rs`), in this process, on the fused 2-core profile (one
//! pinned busy-spinning thread, `tuning/profiles/fused-2core.toml`): the feed stage over a
//! [`LiveSource`] on the simulator's combined-stream WebSocket (trade, bookTicker,
//! depth@100ms, REST depth snapshots from the cold [`SnapshotFetcher`]), decoding, the L2
//! books and the feed journal; an SPSC ring; a strategy stage; an SPSC ring of intents; the
//! [`GatewayStage`] signing `POST /api/v3/order` over its keep-alive REST pool. Not wired: the
//! user-data stream, the admin API and the cold consumers (they add threads on the two cores
//! and nothing to this path).
//!
//! **The strategy is a benchmark-only firing stage, not the engine's.** The real strategy
//! decides once per closed 1-minute candle, and the real capture (BTCUSDT spot, 2024-08-08
//! 23:54-00:00 UTC) is six minutes long: no threshold setting makes it fire more than about six
//! times. [`Firing`] instead answers every trade with a limit IOC buy 1% below the trade price
//! (it expires unfilled, so balances and open orders do not drift), as long as no earlier order
//! is still unanswered, so an order never queues behind another in the gateway. It stamps
//! `StrategyIn`/`StrategyOut` as the real stage does, and its client order id is the trade id
//! `t`: the simulator's order stamp names the trade, whose frame stamp is the start.
//!
//! Segments of each matched order (all TSC, one clock):
//! - **venue write -> engine receive**: simulator write returned -> the feed's receive stamp
//!   (kernel loopback, WebSocket client, [`LiveSource`]). The simulator stamps *after* its
//!   `write` returns, and on loopback the bytes are in the engine's socket before that, so this
//!   segment can be negative; such samples are counted and recorded as 0 here, and the
//!   wire-to-wire number misses the venue's own write call;
//! - **receive -> decoded**, **decoded -> strategy in**, **strategy in -> intent out**: the
//!   engine's per-stage stamps, carried by the intent;
//! - **intent out -> venue read**: the gateway picking the intent up, encoding and signing,
//!   journaling and writing it, the kernel, and the simulator's blocking reader waking and
//!   parsing the request. The gateway stamps no "order bytes ready" (the `GatewaySend` stage of
//!   the stamps is not set by it), so the suite measures [`OrderEncoder`] (the gateway's encode
//!   and sign) on the same core after the run and reports it as its own row.
//!
//! The peer is the kernel: a TCP ping-pong over loopback in the same run, the engine's end on
//! the hot thread's core with the engine's socket settings (`net::socket`, mio, busy-polled,
//! `TCP_NODELAY`), the far end a blocking thread with `TCP_NODELAY` (as the simulator's REST
//! connections are) on the other core (where the simulator's threads run while the hot thread
//! busy-spins on its own), a request-sized message out and a frame-sized one back. Wire-to-wire
//! crosses the kernel twice, as one such round trip does.
//!
//! Method: every repetition starts a fresh simulator and engine; the tape plays at [`PACE`]
//! times the recorded speed (fast enough for thousands of orders, slow enough that the engine
//! is idle between frames except in the capture's own bursts); the first [`WARMUP_ORDERS`]
//! orders of each repetition are not recorded; samples are merged over repetitions.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotpath::book::{BookSet, SyncMode};
use hotpath::event::{
    ExecEvent, ExecKind, MarketEvent, MarketKind, OrderIntent, OrderType, Side,
    Stage as StampStage, Stamps, TimeInForce,
};
use hotpath::feed::{BinanceFeedDecoder, FeedCounters, FeedStage};
use hotpath::fixed::{Price, Qty};
use hotpath::gateway::limits::VenueClock;
use hotpath::gateway::{
    parse_client_id, GatewayConfig, GatewayIo, GatewayReport, GatewayStage, Market, OrderEncoder,
};
use hotpath::instrument::{InstrumentId, InstrumentTable, Venue};
use hotpath::live::{LiveConfig, LiveSource, StreamKind, SystemClock};
use hotpath::runtime::{Profile, Runtime, Stage};
use hotpath::snapshot::{SnapshotConfig, SnapshotFetcher};
use hotpath::venue::binance::sign::Credentials;
use hotpath::venue::binance::Scanner;
use net::socket::{SocketConfig, Transport};
use ringbuffers::spsc::{Consumer, Producer};

use crate::harness::{
    load_average, median, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};
use crate::layout::{profile_dir, ruler, CAPTURE};
use crate::sim::{HistorySource, MarketSource, Pace, RestConfig, SimConfig, SimVenue};
use crate::sockets::{read_full, write_full};

/// Tape speed, in multiples of the recorded pace.
pub const PACE: f64 = 20.0;
/// Orders at the start of each repetition that are not recorded (connections, caches, page
/// faults of the fresh journals).
pub const WARMUP_ORDERS: usize = 200;
/// Frames of the capture played in a `--quick` run (about 100 s of market, 5 s at [`PACE`]).
const QUICK_FRAMES: usize = 12_000;
/// The gateway's client order id prefix (its default).
const PREFIX: &[u8] = b"ae-";
/// An order unanswered this long no longer holds the next one back (counted).
const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);
/// Loopback ping-pong: round trips per repetition (quick, full) and warm-up.
const PING_SAMPLES: (usize, usize) = (5_000, 20_000);
const PING_WARMUP: usize = 1_000;
/// Ping-pong message sizes: about a signed order request out, a trade frame back.
const PING_OUT: usize = 420;
const PING_BACK: usize = 180;

/// One order the firing stage sent: its client order id (the trade id) and the stamps it
/// inherited from the trade and added itself.
#[derive(Clone, Copy, Debug)]
pub struct Fired {
    /// Client order id = trade id `t` of the triggering trade.
    pub cid: u64,
    /// The trade's stamps plus `StrategyIn` and `StrategyOut`.
    pub stamps: Stamps,
}

/// What the firing stage hands back at shutdown.
#[derive(Debug, Default)]
pub struct FiringLog {
    /// Orders sent, in order.
    pub fired: Vec<Fired>,
    /// Market events taken off the ring.
    pub events: u64,
    /// Trades skipped because an order was still unanswered.
    pub skipped: u64,
    /// Orders the venue answered (expired, rejected or filled).
    pub answered: u64,
    /// Of those, rejections.
    pub rejected: u64,
    /// Orders that stayed unanswered past [`ANSWER_TIMEOUT`].
    pub timeouts: u64,
    /// Intents the gateway's ring could not take.
    pub ring_full: u64,
    /// Orders not logged because the preallocated log was full.
    pub log_full: u64,
}

/// The benchmark's strategy stage (named `strategy`, so the profiles place it): a limit IOC
/// buy 1% below every trade while no earlier order is unanswered. Allocation-free after
/// construction: the log is preallocated and full logs are counted, not grown.
pub struct Firing {
    input: Consumer<MarketEvent>,
    output: Producer<OrderIntent>,
    execs: Consumer<ExecEvent>,
    clock: quanta::Clock,
    /// Price tick and order quantity of the one instrument, at its scales.
    tick: i64,
    qty: Qty,
    instrument: InstrumentId,
    /// The unanswered order: (cid, TSC sent).
    pending: Option<(u64, u64)>,
    log: FiringLog,
    out: Arc<Mutex<FiringLog>>,
}

impl Firing {
    /// A stage trading `instrument` of `table`, logging up to `capacity` orders into `out` at
    /// shutdown.
    pub fn new(
        table: &InstrumentTable,
        instrument: InstrumentId,
        io: (
            Consumer<MarketEvent>,
            Producer<OrderIntent>,
            Consumer<ExecEvent>,
        ),
        capacity: usize,
        out: Arc<Mutex<FiringLog>>,
    ) -> Firing {
        let spec = table.get(instrument);
        // 0.001 BTC: above the venue's minimum quantity and notional at any 2024 price.
        let qty = Qty((10i64.pow(u32::from(spec.qty_scale)) / 1000).max(spec.step.0.max(1)));
        Firing {
            input: io.0,
            output: io.1,
            execs: io.2,
            clock: quanta::Clock::new(),
            tick: spec.tick.0.max(1),
            qty,
            instrument,
            pending: None,
            log: FiringLog {
                fired: Vec::with_capacity(capacity),
                ..FiringLog::default()
            },
            out,
        }
    }

    fn on_exec(&mut self, x: &ExecEvent) {
        let terminal = matches!(
            x.kind,
            ExecKind::Fill | ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired
        );
        if terminal
            && self
                .pending
                .is_some_and(|(cid, _)| cid == x.client_order_id)
        {
            self.pending = None;
            self.log.answered += 1;
            self.log.rejected += u64::from(x.kind == ExecKind::Rejected);
        }
    }

    fn on_event(&mut self, e: &MarketEvent) {
        let t_in = self.clock.raw();
        self.log.events += 1;
        if e.kind != MarketKind::Trade || e.instrument != self.instrument {
            return;
        }
        if let Some((_, sent)) = self.pending {
            if self.clock.delta_as_nanos(sent, t_in) < ANSWER_TIMEOUT.as_nanos() as u64 {
                self.log.skipped += 1;
                return;
            }
            self.pending = None;
            self.log.timeouts += 1;
        }
        let mut stamps = e.stamps;
        stamps.stamp(StampStage::StrategyIn, t_in);
        let px = e.price.0 - e.price.0 / 100;
        let inst = hotpath::instrument::InstrumentRef {
            id: e.instrument,
            price_scale: e.price_scale,
            qty_scale: e.qty_scale,
        };
        let intent = OrderIntent::new_order(
            inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Ioc,
            Price(px - px % self.tick),
            self.qty,
            e.id,
        );
        let t_out = self.clock.raw();
        stamps.stamp(StampStage::StrategyOut, t_out);
        match self.output.try_push(intent.with_stamps(stamps)) {
            Ok(()) => {
                self.pending = Some((e.id, t_out));
                if self.log.fired.len() < self.log.fired.capacity() {
                    self.log.fired.push(Fired { cid: e.id, stamps });
                } else {
                    self.log.log_full += 1;
                }
            }
            Err(_) => self.log.ring_full += 1,
        }
    }
}

impl Stage for Firing {
    fn name(&self) -> &str {
        "strategy"
    }

    fn poll(&mut self) -> usize {
        let mut n = 0;
        // Answers first: the trade this poll takes may be the first one free to fire.
        while let Some(x) = self.execs.try_pop() {
            self.on_exec(&x);
            n += 1;
        }
        for _ in 0..256 {
            let Some(e) = self.input.try_pop() else { break };
            self.on_event(&e);
            n += 1;
        }
        n
    }

    fn shutdown(&mut self) {
        if let Ok(mut out) = self.out.lock() {
            *out = std::mem::take(&mut self.log);
        }
    }
}

/// One matched order, nanoseconds per segment (see the module docs). `inbound` is signed.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wire: u64,
    inbound: i64,
    decode: u64,
    hop: u64,
    strategy: u64,
    outbound: u64,
}

impl Sample {
    /// receive -> intent out: what the engine's own stamps cover.
    fn internal(&self) -> u64 {
        self.decode + self.hop + self.strategy
    }
}

/// What one repetition produced.
struct RepResult {
    samples: Vec<Sample>,
    orders_read: usize,
    unmatched: usize,
    log: FiringLog,
    feed: FeedCounters,
    gateway: GatewayReport,
    dropped_stamps: u64,
    pinned: bool,
}

/// Signed nanoseconds from TSC `a` to TSC `b`.
fn signed_ns(clock: &Clock, a: u64, b: u64) -> i64 {
    if b >= a {
        clock.delta_ns(a, b) as i64
    } else {
        -(clock.delta_ns(b, a) as i64)
    }
}

/// Joins the simulator's logs with the firing stage's: order read -> client order id (trade
/// id) -> the trade frame's write stamp and the intent's stamps. Orders are skipped until
/// `warmup` have been seen.
fn join(
    clock: &Clock,
    stamps: &crate::sim::WireStamps,
    fired: &[Fired],
    warmup: usize,
) -> (Vec<Sample>, usize) {
    let frames: HashMap<u64, u64> = stamps
        .frames
        .iter()
        .filter(|f| f.trade_id != 0)
        .map(|f| (f.trade_id, f.tsc))
        .collect();
    let intents: HashMap<u64, &Stamps> = fired.iter().map(|f| (f.cid, &f.stamps)).collect();
    let mut samples = Vec::with_capacity(stamps.orders.len());
    let mut unmatched = 0;
    for (k, o) in stamps.orders.iter().enumerate() {
        let matched = parse_client_id(PREFIX, o.client_order_id().as_bytes()).and_then(|cid| {
            let s = intents.get(&cid)?;
            Some((frames.get(&cid)?, s))
        });
        let Some((&written, s)) = matched else {
            unmatched += 1;
            continue;
        };
        if k < warmup {
            continue;
        }
        let at = |st| s.at(st).unwrap_or(0);
        let (dec, sin, sout) = (
            at(StampStage::Decoded),
            at(StampStage::StrategyIn),
            at(StampStage::StrategyOut),
        );
        if s.recv_tsc == 0 || dec == 0 || sin == 0 || sout == 0 || o.tsc < written {
            unmatched += 1;
            continue;
        }
        samples.push(Sample {
            wire: clock.delta_ns(written, o.tsc),
            inbound: signed_ns(clock, written, s.recv_tsc),
            decode: clock.delta_ns(s.recv_tsc, dec),
            hop: clock.delta_ns(dec, sin),
            strategy: clock.delta_ns(sin, sout),
            outbound: clock.delta_ns(sout, o.tsc),
        });
    }
    (samples, unmatched)
}

/// The instrument table of the capture's one symbol, leaked like the engine's: the decoder
/// borrows it for the life of the process.
fn instruments() -> anyhow::Result<(&'static InstrumentTable, InstrumentId)> {
    let spec = coldpath::import::builtin_spec(Venue::BinanceSpot, "BTCUSDT")
        .context("no built-in BTCUSDT spot instrument")?;
    let mut table = InstrumentTable::with_capacity(4);
    let id = table.intern(spec)?;
    Ok((Box::leak(Box::new(table)), id))
}

/// One repetition: a fresh simulator playing `capture`, the engine connected to it, run until
/// the tape ends and the last order is answered.
fn run_rep(
    profile: &Profile,
    capture: &Path,
    limit: Option<usize>,
    (table, instrument): (&'static InstrumentTable, InstrumentId),
    clock: &Clock,
) -> anyhow::Result<RepResult> {
    let frames_cap = limit.unwrap_or(1 << 16) + 1024;
    let sim = SimVenue::start(SimConfig {
        rest: RestConfig {
            // Thousands of orders a minute: far above Binance's budget, which is not what is
            // measured here.
            weight_limit: 1 << 30,
            ..RestConfig::default()
        },
        market: MarketSource::Capture {
            path: capture.to_path_buf(),
            pace: Pace::Multiple(PACE),
            limit,
        },
        history: HistorySource::None,
        stamp_capacity: frames_cap,
        ..SimConfig::default()
    })
    .context("starting the simulator")?;

    let venue = Venue::BinanceSpot;
    let mut live = LiveConfig::new(
        venue,
        &["BTCUSDT"],
        &[
            StreamKind::Trade,
            StreamKind::BookTicker,
            StreamKind::Depth(None),
        ],
    );
    live.endpoint = Some(sim.ws_url());
    let mut snap = SnapshotConfig::new(venue);
    snap.endpoint = Some(sim.rest_url());
    let fetchable: Vec<_> = table.iter().map(|(id, s)| (id, s.symbol)).collect();
    let source = LiveSource::new(&live, SystemClock::new())?
        .with_snapshots(SnapshotFetcher::spawn(&snap)?, &fetchable);

    let dir = tempfile::tempdir()?;
    let journal = |sub: &str| {
        let d = dir.path().join(sub);
        ringbuffers::journal::Appender::open(&d, hotpath::codec::journal_config())
            .with_context(|| format!("opening journal {}", d.display()))
    };
    // The feed stage as `algo-engine run` builds it.
    let (tx, rx) = ringbuffers::spsc::channel(4096);
    let (feed, _, feed_report) = FeedStage::engine(
        source,
        BinanceFeedDecoder::new(Scanner::new(table, venue), None),
        journal("feed")?,
        tx,
        BookSet::for_table(table, SyncMode::Snapshot),
    );

    let (intent_tx, intent_rx) = ringbuffers::spsc::channel::<OrderIntent>(1024);
    let (exec_tx, exec_rx) = ringbuffers::spsc::channel::<ExecEvent>(4096);
    let log = Arc::new(Mutex::new(FiringLog::default()));
    let firing = Firing::new(
        table,
        instrument,
        (rx, intent_tx, exec_rx),
        frames_cap,
        log.clone(),
    );

    let mut gw_cfg = GatewayConfig::plain(Market::Spot, sim.rest_addr());
    gw_cfg.weight_limit = 1 << 30;
    let creds = Credentials::new(sim.api_key(), sim.api_secret())
        .map_err(|e| anyhow::anyhow!("simulator credentials: {e}"))?;
    let gw_report = Arc::new(Mutex::new(GatewayReport::default()));
    let gateway = GatewayStage::connect(
        gw_cfg,
        &creds,
        table,
        GatewayIo {
            input: intent_rx,
            output: exec_tx,
            journal: Some(journal("gateway")?),
            upstream_done: Arc::new(AtomicBool::new(false)),
            report: gw_report.clone(),
        },
    )
    .context("connecting the gateway to the simulator")?;

    let stages: Vec<Box<dyn Stage>> = vec![Box::new(feed), Box::new(firing), Box::new(gateway)];
    let rt = Runtime::spawn(profile, stages, Arc::new(AtomicBool::new(false)))?;
    // The tape starts when the feed subscribes; a feed that never connects leaves it waiting.
    let span = Duration::from_secs_f64(400.0 / PACE) + Duration::from_secs(30);
    let finished = sim.wait_finished(span);
    // The last trade's order: one round trip, with a wide margin.
    std::thread::sleep(Duration::from_millis(300));
    rt.request_stop();
    let threads = rt.join();
    if let Some(t) = threads.iter().find(|t| t.rounds == u64::MAX) {
        bail!("wire suite: hot thread {} panicked", t.name);
    }
    let stamps = sim.wire_stamps();
    sim.shutdown();
    if !finished {
        bail!(
            "wire suite: the simulator's tape did not finish within {span:?} ({} frames sent; did the feed connect?)",
            stamps.frames.len()
        );
    }
    let log = std::mem::take(
        &mut *log
            .lock()
            .map_err(|_| anyhow::anyhow!("firing log lock poisoned"))?,
    );
    let (samples, unmatched) = join(clock, &stamps, &log.fired, WARMUP_ORDERS);
    let feed = *feed_report
        .lock()
        .map_err(|_| anyhow::anyhow!("feed report lock poisoned"))?;
    let gateway = *gw_report
        .lock()
        .map_err(|_| anyhow::anyhow!("gateway report lock poisoned"))?;
    Ok(RepResult {
        samples,
        orders_read: stamps.orders.len(),
        unmatched,
        feed,
        gateway,
        dropped_stamps: stamps.dropped,
        pinned: threads.iter().all(|t| t.pinned),
        log,
    })
}

/// TCP round trips over loopback: a thread pinned to `core` (the hot thread's) writes
/// [`PING_OUT`] bytes with the engine's socket settings and busy-polls for [`PING_BACK`] bytes
/// from a blocking peer thread with `TCP_NODELAY` pinned to `peer_core` (where the simulator's
/// threads run while the hot thread owns its core). Records the whole round trip. Both are
/// threads of their own: pinning the harness's thread would narrow the affinity every later
/// thread (the next repetition's simulator and engine) inherits.
fn loopback_rtt(
    (core, peer_core): (usize, usize),
    clock: &Clock,
    samples: usize,
    hist: &mut LatencyHist,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    let stuck = Duration::from_secs(10);
    std::thread::scope(|sc| {
        let peer = sc.spawn(move || -> std::io::Result<()> {
            pin_to(peer_core);
            // Not blocking in accept, so a client that failed to connect cannot hang the suite.
            listener.set_nonblocking(true)?;
            let deadline = Instant::now() + stuck;
            let mut s = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(std::io::Error::other("no connection arrived"));
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => return Err(e),
                }
            };
            s.set_nonblocking(false)?;
            s.set_nodelay(true)?;
            let mut req = [0u8; PING_OUT];
            let back = [7u8; PING_BACK];
            loop {
                match s.read_exact(&mut req) {
                    Ok(()) => s.write_all(&back)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        });
        let client = sc.spawn(move || -> anyhow::Result<()> {
            pin_to(core);
            let mut t = net::socket::connect(addr, &SocketConfig::default())?;
            net::socket::wait_connected(&mut t, stuck)?;
            let out = [1u8; PING_OUT];
            let mut back = [0u8; PING_BACK];
            for i in 0..PING_WARMUP + samples {
                let deadline = Instant::now() + stuck;
                let t0 = clock.raw();
                write_full(&mut t, &out, deadline)?;
                read_full(&mut t, &mut back, deadline)?;
                let t1 = clock.raw();
                if i >= PING_WARMUP {
                    hist.record(clock.delta_ns(t0, t1));
                }
            }
            let _ = t.shutdown_write();
            Ok(())
        });
        let c = client
            .join()
            .map_err(|_| anyhow::anyhow!("loopback client panicked"))?;
        let p = peer
            .join()
            .map_err(|_| anyhow::anyhow!("loopback peer panicked"))?;
        c.context("loopback client")?;
        p.context("loopback peer")?;
        Ok(())
    })
}

/// The gateway's encode + HMAC-SHA256 sign of one order on the calling thread: what "order
/// bytes ready" costs after the intent is taken off the ring.
fn encode_cost(
    clock: &Clock,
    table: &InstrumentTable,
    instrument: InstrumentId,
    n: usize,
) -> anyhow::Result<LatencyHist> {
    let creds = Credentials::new(
        RestConfig::default().api_key,
        RestConfig::default().api_secret,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut enc = OrderEncoder::new(Market::Spot, &creds, "BTCUSDT", "127.0.0.1:1", "ae-");
    let venue_clock = VenueClock::default();
    let inst = table.instrument_ref(instrument);
    let mut tx = vec![0u8; 2048];
    let mut hist = LatencyHist::new();
    for k in 0..n as u64 {
        let i = OrderIntent::new_order(
            inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Ioc,
            Price(6_000_000 + (k % 1000) as i64),
            Qty(100),
            3_735_683_259 + k,
        );
        let t0 = clock.raw();
        let len = enc.encode(&i, venue_clock.now_ms(), &mut tx);
        let t1 = clock.raw();
        std::hint::black_box(&tx[..len.context("encode failed")?]);
        if k >= 1000 {
            hist.record(clock.delta_ns(t0, t1));
        }
    }
    Ok(hist)
}

/// Histograms of one segment, merged over repetitions, and the per-repetition p50s.
#[derive(Default)]
struct Seg {
    hist: LatencyHist,
    p50s: Vec<f64>,
}

impl Seg {
    fn add(&mut self, rep: &LatencyHist) {
        self.p50s.push(rep.quantile(0.5) as f64);
        self.hist.merge(rep);
    }
}

/// Runs the suite; see the module docs.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let ov = ruler(&clock);
    let machine = Machine::detect();
    let Some(capture) = hotpath::datadir::capture(CAPTURE) else {
        if hotpath::datadir::data_required() {
            bail!("capture {CAPTURE} not found under ALGO_DATA_DIR (ALGO_REQUIRE_DATA is set)");
        }
        return Ok(Report {
            suite: "wire".into(),
            machine,
            overhead: ov,
            method: "not run: capture not found (set ALGO_DATA_DIR)".into(),
            rows: Vec::new(),
        });
    };
    let profile = Profile::load(&profile_dir().join("fused-2core.toml"))?;
    let hot_core = profile
        .threads
        .first()
        .and_then(|t| t.core)
        .unwrap_or(opts.core_b);
    let peer_core = if hot_core == opts.core_a {
        opts.core_b
    } else {
        opts.core_a
    };
    let limit = opts.quick.then_some(QUICK_FRAMES);
    let reps = opts.reps.max(1);
    let inst = instruments()?;
    let load_start = load_average();

    // [wire, inbound, decode, hop, strategy, internal, outbound]
    let mut segs: Vec<Seg> = (0..7).map(|_| Seg::default()).collect();
    let mut rtt = Seg::default();
    let mut shares: Vec<f64> = Vec::new();
    let (mut negative, mut matched, mut unmatched, mut read) = (0usize, 0usize, 0usize, 0usize);
    let mut last = None;
    let mut all_pinned = true;
    for _ in 0..reps {
        let r = run_rep(&profile, &capture, limit, inst, &clock)?;
        if r.samples.is_empty() {
            bail!(
                "wire suite: no order matched its trade frame ({} orders read, {} fired, gateway {:?})",
                r.orders_read,
                r.log.fired.len(),
                r.gateway
            );
        }
        let mut hs: Vec<LatencyHist> = (0..7).map(|_| LatencyHist::new()).collect();
        for s in &r.samples {
            negative += usize::from(s.inbound < 0);
            let vals = [
                s.wire,
                s.inbound.max(0) as u64,
                s.decode,
                s.hop,
                s.strategy,
                s.internal(),
                s.outbound,
            ];
            for (h, v) in hs.iter_mut().zip(vals) {
                h.record(v);
            }
            shares.push(s.internal() as f64 / s.wire.max(1) as f64);
        }
        for (seg, h) in segs.iter_mut().zip(&hs) {
            seg.add(h);
        }
        matched += r.samples.len();
        unmatched += r.unmatched;
        read += r.orders_read;
        all_pinned &= r.pinned;
        // The kernel's share, measured between the engine runs of the same repetition.
        let mut h = LatencyHist::new();
        let n = if opts.quick {
            PING_SAMPLES.0
        } else {
            PING_SAMPLES.1
        };
        loopback_rtt((hot_core, peer_core), &clock, n, &mut h)?;
        rtt.add(&h);
        last = Some(r);
    }
    // On a thread of its own, pinned like the hot thread (see `loopback_rtt` for why not here).
    let encode = std::thread::scope(|sc| {
        sc.spawn(|| {
            pin_to(hot_core);
            encode_cost(
                &clock,
                inst.0,
                inst.1,
                if opts.quick { 20_000 } else { 100_000 },
            )
        })
        .join()
        .map_err(|_| anyhow::anyhow!("encode measurement panicked"))?
    })?;
    let last = last.context("no repetition ran")?;

    std::fs::create_dir_all(&opts.out_dir)?;
    let names = [
        (
            "wire-to-wire (venue frame write -> venue order read)",
            "w2w",
        ),
        ("venue write -> engine receive stamp", "inbound"),
        ("engine: receive -> decoded (feed)", "decode"),
        ("engine: decoded -> strategy in (ring hop)", "hop"),
        ("engine: strategy in -> intent out", "strategy"),
        ("engine internal: receive -> intent out", "internal"),
        ("intent out -> venue order read", "outbound"),
    ];
    for ((_, slug), seg) in names.iter().zip(&segs) {
        seg.hist
            .write_percentiles(&opts.out_dir.join(format!("wire-{slug}.hdr.txt")))?;
    }
    rtt.hist
        .write_percentiles(&opts.out_dir.join("wire-loopback-rtt.hdr.txt"))?;
    let w2w = segs[0].hist.percentiles(ov.p50);
    let rtt_p = rtt.hist.percentiles(ov.p50);
    let enc_p = encode.percentiles(ov.p50);
    let share = median(shares.clone());
    let mut rows = Vec::new();
    for (i, ((case, _), seg)) in names.iter().zip(&segs).enumerate() {
        let p = seg.hist.percentiles(ov.p50);
        let (ratio, note) = match i {
            0 => (
                None,
                format!(
                    "{matched} orders matched to their trade frames over {reps} reps ({unmatched} unmatched of {read} read, first {WARMUP_ORDERS} per rep not recorded); median rep p50 {:.0} ns",
                    median(seg.p50s.clone())
                ),
            ),
            1 => (
                None,
                format!(
                    "{negative} samples negative (engine read the frame before the venue's write call returned), recorded as 0"
                ),
            ),
            5 => (
                Some(share),
                "ratio: median per-order share of wire-to-wire (engine stamps only; add the encode+sign row for the gateway's CPU work)".into(),
            ),
            _ => (
                (w2w.p50 > 0).then(|| p.p50 as f64 / w2w.p50 as f64),
                "ratio: p50 / wire-to-wire p50".into(),
            ),
        };
        rows.push(Row {
            case: (*case).into(),
            subject: "algo-engine hot path (fused-2core) vs SimVenue".into(),
            latency: Some(p),
            throughput: None,
            ratio,
            note,
        });
    }
    rows.push(Row {
        case: "gateway encode + sign (order bytes ready)".into(),
        subject: "OrderEncoder, same core, after the runs".into(),
        latency: Some(enc_p),
        throughput: None,
        ratio: (w2w.p50 > 0).then(|| enc_p.p50 as f64 / w2w.p50 as f64),
        note: "ratio: p50 / wire-to-wire p50; the gateway stamps no send time, so this is measured apart".into(),
    });
    rows.push(Row {
        case: "kernel loopback TCP round trip (peer)".into(),
        subject: format!(
            "net mio busy-poll <-> blocking std, {PING_OUT} B out / {PING_BACK} B back"
        ),
        latency: Some(rtt_p),
        throughput: None,
        ratio: (rtt_p.p50 > 0).then(|| w2w.p50 as f64 / rtt_p.p50 as f64),
        note: format!(
            "ratio: wire-to-wire p50 / round trip p50; median rep p50 {:.0} ns",
            median(rtt.p50s.clone())
        ),
    });
    let l = &last.log;
    let method = format!(
        "{CAPTURE}{quick} played by SimVenue at {PACE}x over loopback to the engine's hot path in \
         this process (LiveSource WebSocket feed with REST snapshots -> feed stage with books and \
         journal -> ring -> benchmark firing strategy -> ring -> GatewayStage over REST, \
         keep-alive pool of 2), placed by tuning/profiles/fused-2core.toml ({pinned}). Strategy: \
         NOT the engine's (it decides once per 1m candle, about 6 times on this 6-minute \
         capture); a limit IOC buy 1% below every trade while no order is unanswered, client \
         order id = trade id. Wire-to-wire = simulator's order-read TSC - its trade-frame \
         write TSC (stamped after write returns); segments from the intent's stamps. {reps} reps, \
         fresh simulator and engine each, first {WARMUP_ORDERS} orders per rep dropped, merged \
         HDR (wire-*.hdr.txt), overhead = two back-to-back TSC reads, p50 subtracted. Peer: TCP \
         ping-pong on loopback from the hot core to a blocking peer on core {peer_core}, same \
         socket settings, run after each engine run. Last rep: {} frames, {} events, {} trades skipped while an order was out, {} \
         orders fired, {} answered ({} rejected), {} timeouts, gateway sent {} ({} local \
         rejects, {} venue rejects), {} stamps dropped. Load average {load_start} at the start, \
         {} at the end.",
        last.feed.frames,
        l.events,
        l.skipped,
        l.fired.len() + l.log_full as usize,
        l.answered,
        l.rejected,
        l.timeouts,
        last.gateway.orders_sent,
        last.gateway.local_rejects,
        last.gateway.venue_rejects,
        last.dropped_stamps,
        load_average(),
        quick = if opts.quick {
            " (first 12000 frames; QUICK run: not for quoting)"
        } else {
            ""
        },
        pinned = if all_pinned {
            format!("hot thread pinned to core {hot_core}")
        } else {
            "hot thread NOT pinned".into()
        },
    );
    Ok(Report {
        suite: "wire".into(),
        machine,
        overhead: ov,
        method,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::stamps::WireLog;

    /// Real frames of the capture (BTCUSDT spot, 2024-08-08): two trades and a bookTicker.
    const TRADE_1: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
    const TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239219,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.60520000"}}"#;
    const TRADE_2: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255410,"s":"BTCUSDT","t":3735683260,"p":"61837.64000000","q":"0.00100000","T":1723161255409,"m":false,"M":true}}"#;

    fn decode_into(
        scanner: &mut Scanner<'_>,
        frame: &str,
        tsc: u64,
        out: &mut Producer<MarketEvent>,
    ) {
        scanner
            .decode(frame.as_bytes(), tsc, &mut |mut e: MarketEvent| {
                e.stamps.stamp(StampStage::Decoded, tsc + 10);
                out.try_push(e).unwrap();
            })
            .unwrap();
    }

    #[test]
    fn firing_stage_answers_trades_one_order_at_a_time() {
        let (table, id) = instruments().unwrap();
        let mut scanner = Scanner::new(table, Venue::BinanceSpot);
        let (mut feed, events) = ringbuffers::spsc::channel::<MarketEvent>(64);
        let (intents_tx, mut intents) = ringbuffers::spsc::channel::<OrderIntent>(64);
        let (mut execs, execs_rx) = ringbuffers::spsc::channel::<ExecEvent>(64);
        let out = Arc::new(Mutex::new(FiringLog::default()));
        let mut stage = Firing::new(table, id, (events, intents_tx, execs_rx), 8, out.clone());

        decode_into(&mut scanner, TICKER, 100, &mut feed);
        decode_into(&mut scanner, TRADE_1, 200, &mut feed);
        stage.poll();
        let i = intents.try_pop().expect("the trade fires");
        assert!(intents.try_pop().is_none(), "the book ticker does not");
        assert_eq!(i.client_order_id, 3_735_683_259);
        assert_eq!((i.side, i.order_type), (Side::Buy, OrderType::Limit));
        assert_eq!(i.time_in_force, TimeInForce::Ioc);
        // 1% below 61837.63 (61219.2537), down to the 0.01 tick, for 0.001 BTC (scale 8).
        let spec = table.get(id);
        assert_eq!((spec.price_scale, i.price.0), (8, 6_121_925_000_000));
        assert_eq!((spec.qty_scale, i.qty.0), (8, 100_000));
        assert_eq!(i.stamps.recv_tsc, 200);
        let (sin, sout) = (
            i.stamps.at(StampStage::StrategyIn).unwrap(),
            i.stamps.at(StampStage::StrategyOut).unwrap(),
        );
        assert!(sin > 0 && sout >= sin);

        // Unanswered: the next trade is skipped.
        decode_into(&mut scanner, TRADE_2, 300, &mut feed);
        stage.poll();
        assert!(intents.try_pop().is_none());
        // An ack is not an answer; the expiry is.
        let inst = table.instrument_ref(id);
        for kind in [ExecKind::Ack, ExecKind::Expired] {
            let x = ExecEvent::new(
                inst,
                kind,
                Side::Buy,
                i.client_order_id,
                1,
                Stamps::default(),
            );
            execs.try_push(x).unwrap();
        }
        decode_into(&mut scanner, TRADE_2, 400, &mut feed);
        stage.poll();
        let j = intents.try_pop().expect("free to fire again");
        assert_eq!(j.client_order_id, 3_735_683_260);

        stage.shutdown();
        let log = out.lock().unwrap();
        assert_eq!(log.fired.len(), 2);
        assert_eq!(log.fired[0].cid, 3_735_683_259);
        assert_eq!(log.fired[0].stamps, i.stamps);
        assert_eq!((log.skipped, log.answered, log.rejected), (1, 1, 0));
        assert_eq!(log.events, 4);
    }

    #[test]
    fn join_matches_orders_to_their_trade_frames() {
        let clock = Clock::new();
        let log = WireLog::new(8, 8);
        log.frame(1_000, 0, 0, 0); // a depth frame: no trade id
        log.frame(2_000, 1, 42, 0);
        log.frame(3_000, 2, 43, 0);
        let mut cid = [0u8; 36];
        for (tsc, id) in [(6_000u64, 42u64), (7_000, 43), (8_000, 0xff)] {
            let n = hotpath::gateway::client_id_text(PREFIX, id, &mut cid);
            log.order(tsc, &cid[..n]);
        }
        log.order(9_000, b"");
        let fired = |cid, recv: u64| {
            let mut s = Stamps::new(0, recv);
            s.stamp(StampStage::Decoded, recv + 100);
            s.stamp(StampStage::StrategyIn, recv + 150);
            s.stamp(StampStage::StrategyOut, recv + 170);
            Fired { cid, stamps: s }
        };
        // 43 was read by the engine before the venue's write returned.
        let fired = [fired(42, 2_500), fired(43, 2_900)];
        let stamps = log.snapshot();

        let (samples, unmatched) = join(&clock, &stamps, &fired, 0);
        assert_eq!(unmatched, 2, "unknown id and no id");
        assert_eq!(samples.len(), 2);
        let a = samples[0];
        assert_eq!(a.wire, clock.delta_ns(2_000, 6_000));
        assert_eq!(a.inbound, clock.delta_ns(2_000, 2_500) as i64);
        assert_eq!(a.decode, clock.delta_ns(2_500, 2_600));
        assert_eq!(a.outbound, clock.delta_ns(2_670, 6_000));
        assert_eq!(a.internal(), a.decode + a.hop + a.strategy);
        assert!(samples[1].inbound < 0);
        assert_eq!(samples[1].wire, clock.delta_ns(3_000, 7_000));

        // Warm-up counts orders read, matched or not.
        let (samples, _) = join(&clock, &stamps, &fired, 1);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].wire, clock.delta_ns(3_000, 7_000));
    }
}
