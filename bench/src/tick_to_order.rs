//! `tick` suite: in-process tick-to-order latency on the fused layout.
//!
//! What one sample is: a real captured Binance spot `@trade` frame (BTCUSDT, 2024-08-08,
//! `ALGO_DATA_DIR/binance/spot/btcusdt_20240808.gz`) sitting in a receive buffer is decoded by
//! the hot-path feed decoder ([`Scanner`]); a benchmark-only strategy step fires an
//! [`OrderIntent`] on every trade (a limit order one tick inside the trade price, with a fresh
//! deterministic client id, stamped like the real strategy stamps it); and the gateway's
//! encoder builds and signs the `POST /api/v3/order` request into the request buffer with the
//! venue timestamp from the wall clock ([`OrderEncoder`], the code the gateway stage runs).
//! The sample ends at "signed order bytes ready": the socket write is not included (that is
//! the wire-to-wire suite's business).
//!
//! Method: the measuring thread is pinned to `core_a`; each frame is copied into the receive
//! buffer outside the timed region (as the socket read would leave it); a warm-up pass runs
//! untimed; each repetition times every trade frame of the capture (cycled to a fixed sample
//! count) with one TSC read before and after, into an HDR histogram, measurement overhead
//! subtracted. Rows: the whole path, and the encode + sign part alone. The target from the
//! issue is p50 <= 2 us and p99.9 <= 20 us on the 2-core VM.

use std::hint::black_box;
use std::io::{BufRead, BufReader};

use anyhow::{bail, Context};
use hotpath::event::{
    MarketEvent, MarketKind, OrderIntent, OrderType, Side, Stage as StampStage, TimeInForce,
};
use hotpath::fixed::{Price, Qty};
use hotpath::gateway::limits::VenueClock;
use hotpath::gateway::{Market, OrderEncoder};
use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue};
use hotpath::venue::binance::sign::Credentials;
use hotpath::venue::binance::Scanner;

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};

const CAPTURE: &str = "binance/spot/btcusdt_20240808.gz";

/// Trade frames packed in one buffer, with each frame's (offset, length).
type PackedFrames = (Vec<u8>, Vec<(usize, usize)>);

/// The trade frames of the capture, concatenated, with their spans.
fn trades() -> anyhow::Result<PackedFrames> {
    let path = hotpath::datadir::data_dir().join(CAPTURE);
    if !path.is_file() {
        bail!(
            "tick suite: capture {} not found (set ALGO_DATA_DIR or run scripts/fetch-data.sh)",
            path.display()
        );
    }
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&path).context(CAPTURE)?);
    let (mut bytes, mut spans) = (Vec::new(), Vec::new());
    for line in BufReader::new(gz).lines() {
        let line = line.context(CAPTURE)?;
        if let Some((_, json)) = line.split_once(' ') {
            if json.contains("@trade\"") {
                spans.push((bytes.len(), json.len()));
                bytes.extend_from_slice(json.as_bytes());
            }
        }
    }
    if spans.is_empty() {
        bail!("tick suite: no trade frames in {CAPTURE}");
    }
    Ok((bytes, spans))
}

/// The benchmark-only strategy: an intent on every trade, one tick inside its price.
#[inline]
fn strategy_step(e: &MarketEvent, cid: u64, clock: &Clock) -> Option<OrderIntent> {
    if e.kind != MarketKind::Trade {
        return None;
    }
    let mut stamps = e.stamps;
    stamps.stamp(StampStage::StrategyIn, clock.raw());
    let inst = hotpath::instrument::InstrumentRef {
        id: e.instrument,
        price_scale: e.price_scale,
        qty_scale: e.qty_scale,
    };
    let i = OrderIntent::new_order(
        inst,
        Side::Buy,
        OrderType::Limit,
        TimeInForce::Gtc,
        Price(e.price.0 - 1),
        Qty(100),
        cid,
    );
    stamps.stamp(StampStage::StrategyOut, clock.raw());
    Some(i.with_stamps(stamps))
}

/// Runs the suite.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let (bytes, spans) = trades()?;
    let pinned = pin_to(opts.core_a);
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    let mut table = InstrumentTable::with_capacity(4);
    let symbol = Symbol::new(b"BTCUSDT").map_err(|e| anyhow::anyhow!("{e}"))?;
    table.intern(InstrumentSpec::new(
        Venue::BinanceSpot,
        symbol,
        InstrumentKind::Spot,
        2,
        5,
    ))?;
    let mut scanner = Scanner::new(&table, Venue::BinanceSpot);
    // Binance's documented example credentials: the cost of HMAC does not depend on the key.
    let creds = Credentials::new(
        "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    )?;
    let mut encoder = OrderEncoder::new(Market::Spot, &creds, "BTCUSDT", "api.binance.com", "ae-");
    let venue_clock = VenueClock::default();
    let mut rx = vec![0u8; 64 << 10];
    let mut tx = vec![0u8; 2048];
    let samples = if opts.quick { 20_000 } else { 200_000 };
    let reps = if opts.quick { 1 } else { opts.reps.max(1) };

    let mut cid = 0u64;
    let mut failures = 0u64;
    // One sample: returns (whole path ns, encode+sign ns).
    let mut sample = |k: usize, rx: &mut [u8], tx: &mut [u8]| -> Option<(u64, u64)> {
        let (start, len) = spans[k % spans.len()];
        rx[..len].copy_from_slice(&bytes[start..start + len]);
        cid += 1;
        let t0 = clock.raw();
        let mut intent = None;
        let r = scanner.decode(&rx[..len], t0, &mut |mut e: MarketEvent| {
            e.stamps.stamp(StampStage::Decoded, clock.raw());
            if intent.is_none() {
                intent = strategy_step(&e, cid, &clock);
            }
        });
        let t1 = clock.raw();
        let n = match (r, intent) {
            (Ok(_), Some(i)) => encoder.encode(&i, venue_clock.now_ms(), tx),
            _ => None,
        };
        let t2 = clock.raw();
        black_box(&tx[..n.unwrap_or(0)]);
        n.map(|_| (clock.delta_ns(t0, t2), clock.delta_ns(t1, t2)))
    };
    for k in 0..samples.min(20_000) {
        if sample(k, &mut rx, &mut tx).is_none() {
            failures += 1;
        }
    }
    if failures > 0 {
        bail!("tick suite: {failures} warm-up samples produced no order");
    }
    let (mut whole, mut encode) = (LatencyHist::new(), LatencyHist::new());
    let mut p50s = Vec::new();
    for _ in 0..reps {
        let mut rep = LatencyHist::new();
        for k in 0..samples {
            match sample(k, &mut rx, &mut tx) {
                Some((a, b)) => {
                    rep.record(a);
                    encode.record(b);
                }
                None => failures += 1,
            }
        }
        p50s.push(rep.percentiles(overhead.p50).p50 as f64);
        whole.merge(&rep);
    }
    let _ = whole.write_percentiles(&opts.out_dir.join("tick-to-order.hdr.txt"));
    let w = whole.percentiles(overhead.p50);
    let verdict = if w.p50 <= 2_000 && w.p999 <= 20_000 {
        "meets"
    } else {
        "misses"
    };
    let rows = vec![
        Row {
            case: "tick-to-order (trade frame -> signed order bytes)".into(),
            subject: "Scanner + strategy step + OrderEncoder".into(),
            latency: Some(w),
            throughput: None,
            ratio: None,
            note: format!(
                "{verdict} target p50<=2us p99.9<=20us; median rep p50 {:.0} ns; {} trade frames; {failures} failed",
                median(p50s),
                spans.len()
            ),
        },
        Row {
            case: "of which: encode + HMAC-SHA256 sign".into(),
            subject: "OrderEncoder".into(),
            latency: Some(encode.percentiles(overhead.p50)),
            throughput: None,
            ratio: None,
            note: String::new(),
        },
    ];
    Ok(Report {
        suite: "tick".into(),
        machine: Machine::detect(),
        overhead,
        method: format!(
            "fused layout on one thread {} core {}; {samples} samples x {reps} reps after a 20k warm-up; \
             frame copied into the receive buffer untimed; TSC before decode and after the signed \
             request is in the request buffer (no socket write); HDR, overhead p50 subtracted",
            if pinned { "pinned to" } else { "NOT pinned to" },
            opts.core_a
        ),
        rows,
    })
}
