//! `order-transport` suite: the order round trip through the gateway over each of its two
//! transports, REST and the Binance WebSocket API, against the same simulated venue in the same
//! run.
//!
//! What one sample is: an [`OrderIntent`] (a limit buy far below the market, so it rests) is
//! pushed into the gateway's input ring; the measuring thread polls the gateway
//! ([`GatewayStage`], the stage the engine runs) until the `Ack` execution event comes out of
//! its output ring. That covers encoding and signing the request, the socket write, the
//! simulator reading, authenticating and matching it and writing its answer, and the gateway
//! reading the answer and running it through the order state machine. The cancel that follows
//! is measured the same way (`Cancel` intent in, `Canceled` event out), so the venue's book
//! stays empty of our orders and every place finds the same state. A third case is the
//! engine-side part of a place without any socket: the gateway's encoder building and signing
//! the same new order as a REST request ([`OrderEncoder::encode`]) and as a WebSocket API frame
//! ([`OrderEncoder::encode_ws`], parameters sorted, `apiKey` added), interleaved per sample.
//!
//! Subjects: `rest` (signed HTTP/1.1 requests over the default keep-alive pool of two
//! connections) and `ws-api` (`order.place` / `order.cancel` frames over one WebSocket
//! connection to `/ws-api/v3`). Both talk to one [`SimVenue`] without a market (its REST
//! server and its WebSocket server share the order handling, so the venue does the same work
//! for both) with rate limits lifted, and neither journals (the journal append is the same for
//! both and small against a socket round trip).
//!
//! Method: the venue and both gateways are started first (the venue's threads keep the whole
//! machine), then the measuring thread pins itself to `core_a` and busy-polls. Each repetition
//! alternates blocks of cycles between the two subjects so that machine noise hits both alike;
//! one sample per cycle and case into an HDR histogram, TSC reads before the push and after
//! the pop, measurement overhead subtracted. On loopback this measures the two transports'
//! framing and the two server paths (a blocking thread per HTTP connection, a reader thread
//! per WebSocket), not network latency; the ratio column is `ws-api / rest`. The round trips
//! include the simulator's handling, which is not the same work for both: its WebSocket API
//! front end parses each request into a `serde_json::Value`, rebuilds the signature payload
//! and writes a larger envelope (with `rateLimits`), where its REST front end splits a query
//! string. What Binance's edge does per request is not modelled by either.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hotpath::event::{ExecEvent, ExecKind, OrderIntent, OrderType, Side, TimeInForce};
use hotpath::fixed::{Price, Qty};
use hotpath::gateway::limits::VenueClock;
use hotpath::gateway::{GatewayConfig, GatewayIo, GatewayStage, Market, OrderEncoder, WsApiConfig};
use hotpath::instrument::{
    InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::runtime::Stage;
use hotpath::venue::binance::sign::Credentials;
use ringbuffers::spsc::{self, Consumer, Producer};

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};
use crate::sim::{MarketSource, RestConfig, SimConfig, SimVenue};

/// Longest one round trip may take before the suite gives up.
const STUCK: Duration = Duration::from_secs(10);
/// Cycles per subject before the other subject's turn.
const BLOCK: usize = 50;

/// One gateway and its rings.
struct Subject {
    name: &'static str,
    label: &'static str,
    gw: GatewayStage,
    tx: Producer<OrderIntent>,
    rx: Consumer<ExecEvent>,
    inst: InstrumentRef,
    next_cid: u64,
    place: LatencyHist,
    cancel: LatencyHist,
    /// Encoding and signing a new order in memory.
    encode: LatencyHist,
}

impl Subject {
    fn connect(
        name: &'static str,
        label: &'static str,
        cfg: GatewayConfig,
        creds: &Credentials,
        table: &InstrumentTable,
        inst: InstrumentRef,
        first_cid: u64,
    ) -> anyhow::Result<Subject> {
        let (tx, input) = spsc::channel::<OrderIntent>(64);
        let (output, rx) = spsc::channel::<ExecEvent>(64);
        let gw = GatewayStage::connect(
            cfg,
            creds,
            table,
            GatewayIo {
                input,
                output,
                journal: None,
                upstream_done: Arc::new(AtomicBool::new(false)),
                report: Arc::new(Mutex::new(Default::default())),
            },
        )
        .with_context(|| format!("order-transport: connecting the {name} gateway"))?;
        Ok(Subject {
            name,
            label,
            gw,
            tx,
            rx,
            inst,
            next_cid: first_cid,
            place: LatencyHist::new(),
            cancel: LatencyHist::new(),
            encode: LatencyHist::new(),
        })
    }

    /// Pushes `intent`, polls until `want` arrives for it; returns the round trip, ns.
    fn round_trip(
        &mut self,
        clock: &Clock,
        intent: OrderIntent,
        want: ExecKind,
    ) -> anyhow::Result<u64> {
        let cid = intent.client_order_id;
        let t0 = clock.raw();
        if self.tx.try_push(intent).is_err() {
            bail!("order-transport: {} input ring full", self.name);
        }
        let deadline = Instant::now() + STUCK;
        loop {
            self.gw.poll();
            if let Some(e) = self.rx.try_pop() {
                let t1 = clock.raw();
                if e.client_order_id != cid || e.kind != want {
                    bail!(
                        "order-transport: {} expected {want} for {cid}, got {e:?}",
                        self.name
                    );
                }
                return Ok(clock.delta_ns(t0, t1));
            }
            if Instant::now() > deadline {
                bail!(
                    "order-transport: {} no {want} for {cid} within {STUCK:?}; {:?}",
                    self.name,
                    self.gw.report()
                );
            }
        }
    }

    /// The place (0), cancel (1) or encode (2) histogram.
    fn hist(&self, pick: usize) -> &LatencyHist {
        match pick {
            0 => &self.place,
            1 => &self.cancel,
            _ => &self.encode,
        }
    }

    /// One place + cancel cycle: the two round trips, ns.
    fn cycle(&mut self, clock: &Clock) -> anyhow::Result<(u64, u64)> {
        self.next_cid += 1;
        let cid = self.next_cid;
        let place = OrderIntent::new_order(
            self.inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price(1_000_000), // 10 000.00: the venue has no market, the order rests
            Qty(100),
            cid,
        );
        let p = self.round_trip(clock, place, ExecKind::Ack)?;
        let c = self.round_trip(
            clock,
            OrderIntent::cancel(self.inst, Side::Buy, cid),
            ExecKind::Canceled,
        )?;
        Ok((p, c))
    }
}

/// Runs the suite.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    // Binance's documented example credentials: the venue checks every signature.
    let (key, secret) = (
        "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    );
    let venue = SimVenue::start(SimConfig {
        rest: RestConfig {
            api_key: key.into(),
            api_secret: secret.into(),
            weight_limit: u32::MAX,
            ..RestConfig::default()
        },
        market: MarketSource::None,
        ..SimConfig::default()
    })
    .context("order-transport: starting the simulator")?;
    let creds = Credentials::new(key, secret)?;
    let mut table = InstrumentTable::with_capacity(4);
    let id = table.intern(InstrumentSpec::new(
        Venue::BinanceSpot,
        Symbol::new(b"BTCUSDT").map_err(|e| anyhow::anyhow!("{e}"))?,
        InstrumentKind::Spot,
        2,
        5,
    ))?;
    let inst = table.instrument_ref(id);
    let config = |ws: bool| {
        let mut c = GatewayConfig::plain(Market::Spot, venue.rest_addr());
        c.weight_limit = u32::MAX;
        c.cancel_reserve = 0;
        if ws {
            c.ws_api = Some(WsApiConfig::plain(venue.ws_addr()));
        }
        c
    };
    let mut subjects = [
        Subject::connect(
            "rest",
            "REST (HTTP/1.1 keep-alive pool of 2)",
            config(false),
            &creds,
            &table,
            inst,
            0,
        )?,
        Subject::connect(
            "ws-api",
            "WebSocket API (one connection)",
            config(true),
            &creds,
            &table,
            inst,
            1 << 40,
        )?,
    ];
    // Read before pinning: afterwards this thread sees one core.
    let machine = Machine::detect();
    let pinned = pin_to(opts.core_a);
    let (samples, warmup) = if opts.quick { (500, 100) } else { (5_000, 500) };
    let reps = if opts.quick { 1 } else { opts.reps.max(1) };
    for s in subjects.iter_mut() {
        for _ in 0..warmup {
            s.cycle(&clock)?;
        }
    }
    let mut p50s: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..reps {
        let mut rep = [LatencyHist::new(), LatencyHist::new()];
        let mut done = 0;
        while done < samples {
            let n = BLOCK.min(samples - done);
            for (s, rep) in subjects.iter_mut().zip(rep.iter_mut()) {
                for _ in 0..n {
                    let (p, c) = s.cycle(&clock)?;
                    s.place.record(p);
                    s.cancel.record(c);
                    rep.record(p);
                }
            }
            done += n;
        }
        for (p50s, rep) in p50s.iter_mut().zip(&rep) {
            p50s.push(rep.percentiles(overhead.p50).p50 as f64);
        }
    }
    // The engine-side part of a place, without sockets: the request bytes each transport
    // sends, built and signed by the gateway's encoders (interleaved per sample).
    let mut encoder = OrderEncoder::new(Market::Spot, &creds, "BTCUSDT", "127.0.0.1", "ae-");
    let venue_clock = VenueClock::default();
    let mut out = vec![0u8; 2048];
    let encode_samples = samples * 20;
    for k in 0..encode_samples + warmup * 20 {
        let intent = OrderIntent::new_order(
            inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price(1_000_000 + (k % 1000) as i64),
            Qty(100),
            k as u64,
        );
        let t0 = clock.raw();
        let a = encoder.encode(&intent, venue_clock.now_ms(), &mut out);
        let t1 = clock.raw();
        let b = encoder.encode_ws(&intent, venue_clock.now_ms(), k as u64, &mut out);
        let t2 = clock.raw();
        if a.is_none() || b.is_none() {
            bail!("order-transport: the encoders refused {intent:?}");
        }
        black_box(&out);
        if k >= warmup * 20 {
            subjects[0].encode.record(clock.delta_ns(t0, t1));
            subjects[1].encode.record(clock.delta_ns(t1, t2));
        }
    }
    let mut rows = Vec::new();
    for (case, pick, slug) in [
        ("place -> ack round trip", 0usize, "place"),
        ("cancel -> canceled round trip", 1, "cancel"),
        ("new order: encode + sign in memory", 2, "encode"),
    ] {
        let rest = subjects[0].hist(pick).percentiles(overhead.p50);
        for s in &subjects {
            let h = s.hist(pick);
            h.write_percentiles(
                &opts
                    .out_dir
                    .join(format!("order-transport-{}-{slug}.hdr.txt", s.name)),
            )?;
            let p = h.percentiles(overhead.p50);
            let is_ws = s.name == "ws-api";
            rows.push(Row {
                case: case.into(),
                subject: s.label.into(),
                latency: Some(p),
                throughput: None,
                ratio: is_ws.then(|| p.p50 as f64 / rest.p50.max(1) as f64),
                note: if is_ws {
                    "ratio = ws-api p50 / rest p50 (lower is better)".into()
                } else {
                    String::new()
                },
            });
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let r = s.gw.report();
        if r.timeouts + r.malformed + r.venue_rejects + r.local_rejects > 0 {
            bail!("order-transport: {} had failures: {r:?}", s.name);
        }
        if let Some(row) = rows.iter_mut().find(|row| row.subject == s.label) {
            row.note = format!(
                "{}{}median rep p50 {:.0} ns",
                row.note,
                if row.note.is_empty() { "" } else { "; " },
                median(p50s[i].clone())
            );
        }
    }
    Ok(Report {
        suite: "order-transport".into(),
        machine,
        overhead,
        method: format!(
            "gateway polled on one thread {} core {}; simulator (no market, limits lifted) on \
             loopback, its threads unpinned; per subject {warmup} warm-up cycles, then {samples} \
             place+cancel cycles x {reps} reps in alternating blocks of {BLOCK}; TSC from the \
             intent push to the execution event pop; then {encode_samples} in-memory encodes \
             per transport, interleaved; HDR, overhead p50 subtracted; files \
             order-transport-<subject>-<case>.hdr.txt",
            if pinned { "pinned to" } else { "NOT pinned to" },
            opts.core_a
        ),
        rows,
    })
}
