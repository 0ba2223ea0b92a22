//! `decode` suite: Binance market-data decoding, nanoseconds per message, on every trade,
//! bookTicker and depth message of the real captures (`ALGO_DATA_DIR/binance`).
//!
//! Subjects, all in this binary and run, all producing the same `MarketEvent`s (fixed-point
//! prices and quantities at the instrument's scales, symbol looked up in the same
//! `InstrumentTable`), so the ratios measure JSON decoding and nothing else:
//!
//! * `hotpath Scanner`: the hot-path decoder (`hotpath::venue::binance::Scanner`).
//! * `serde_json typed`: serde-derived structs borrowing `&str` fields (`serde_json::from_slice`),
//!   then the same decimal parsing and event construction. This is the baseline of the ratios.
//! * `simd-json typed (serde)`: `simd_json::serde::from_slice` into the same structs.
//! * `hotpath SimdDecoder`: the reference decoder (serde_json validity check, then simd-json's
//!   tape, then the shared schema): two parsers by design, so expect it to be the slowest.
//!
//! The typed decoders are told each message's type (from the stream name) instead of
//! dispatching on `e`: a small head start the scanner does not get.
//!
//! Two measurements per (message type, subject), repetitions interleaved across subjects:
//! * **per-message latency**: one TSC read before and after decoding each message, recorded in
//!   an HDR histogram (percentiles with the measurement overhead subtracted); the message is
//!   copied into the work buffer first, outside the timed region, because simd-json mutates its
//!   input;
//! * **throughput**: the messages of the type, in windows of 128 KB: each window is copied into
//!   an arena (untimed; this also leaves it cache-hot, as a frame is when the feed decodes it
//!   right after receiving it) and decoded in place back to back between two TSC reads. A pass's
//!   `ns/msg` is its median window (as in the `rings` suite: it drops the windows a preemption
//!   hit); the reported `ns/msg` and messages/s are the median of the repetitions.

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};
use anyhow::{bail, Context};
use hotpath::event::{MarketEvent, Side, Stamps};
use hotpath::fixed::{parse_mantissa, Price, Qty};
use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue};
use hotpath::venue::binance::{Scanner, SimdDecoder};
use serde::Deserialize;
use std::hint::black_box;
use std::io::{BufRead, BufReader};

/// Message types measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Trade,
    BookTicker,
    Depth,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Trade, Kind::BookTicker, Kind::Depth];

    fn name(self) -> &'static str {
        match self {
            Kind::Trade => "trade",
            Kind::BookTicker => "bookTicker",
            Kind::Depth => "depthUpdate",
        }
    }
}

/// The decoders compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Subject {
    Scanner,
    SerdeJson,
    SimdSerde,
    Reference,
}

impl Subject {
    const ALL: [Subject; 4] = [
        Subject::Scanner,
        Subject::SerdeJson,
        Subject::SimdSerde,
        Subject::Reference,
    ];

    fn name(self) -> &'static str {
        match self {
            Subject::Scanner => "hotpath Scanner",
            Subject::SerdeJson => "serde_json typed",
            Subject::SimdSerde => "simd-json typed (serde)",
            Subject::Reference => "hotpath SimdDecoder (ref)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Subject::Scanner => "scanner",
            Subject::SerdeJson => "serde-json",
            Subject::SimdSerde => "simd-json-serde",
            Subject::Reference => "simd-reference",
        }
    }
}

/// Venues of the captures (index into the per-venue decoders).
const VENUES: [Venue; 3] = [Venue::BinanceSpot, Venue::BinanceUsdM, Venue::BinanceCoinM];

/// One message: type, venue index, and where its bytes are in the type's arena.
#[derive(Clone, Copy)]
struct Msg {
    venue: usize,
    start: usize,
    len: usize,
}

/// All messages of one type, back to back.
struct Corpus {
    kind: Kind,
    bytes: Vec<u8>,
    msgs: Vec<Msg>,
}

// ------------------------------------------------------------------------------------------
// Typed (serde) decoders: the structs a typical Rust client would write.
// ------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct TradeMsg<'a> {
    s: &'a str,
    t: u64,
    p: &'a str,
    q: &'a str,
    #[serde(rename = "T")]
    time: u64,
    m: bool,
}

#[derive(Deserialize)]
struct BookTickerMsg<'a> {
    s: &'a str,
    u: u64,
    b: &'a str,
    #[serde(rename = "B")]
    bid_qty: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    ask_qty: &'a str,
    #[serde(rename = "E", default)]
    time: Option<u64>,
}

#[derive(Deserialize)]
struct DepthMsg<'a> {
    s: &'a str,
    #[serde(rename = "E")]
    time: u64,
    #[serde(rename = "U")]
    first: u64,
    u: u64,
    #[serde(default)]
    pu: Option<u64>,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}

/// The events of a typed message, built exactly as the decoders build them.
trait Typed {
    fn emit(
        &self,
        table: &InstrumentTable,
        venue: Venue,
        sink: &mut impl FnMut(MarketEvent),
    ) -> bool;
}

fn lookup(
    table: &InstrumentTable,
    venue: Venue,
    s: &str,
) -> Option<hotpath::instrument::InstrumentRef> {
    table
        .lookup(venue, s.as_bytes())
        .map(|id| table.instrument_ref(id))
}

impl Typed for TradeMsg<'_> {
    fn emit(
        &self,
        table: &InstrumentTable,
        venue: Venue,
        sink: &mut impl FnMut(MarketEvent),
    ) -> bool {
        let Some(inst) = lookup(table, venue, self.s) else {
            return false;
        };
        let (Ok(p), Ok(q)) = (
            parse_mantissa(self.p.as_bytes(), inst.price_scale),
            parse_mantissa(self.q.as_bytes(), inst.qty_scale),
        ) else {
            return false;
        };
        let stamps = Stamps::new(self.time * 1_000_000, 0);
        let aggressor = hotpath::event::Aggressor::from_buyer_is_maker(self.m);
        sink(MarketEvent::trade(
            inst,
            stamps,
            Price(p),
            Qty(q),
            aggressor,
            self.t,
        ));
        true
    }
}

impl Typed for BookTickerMsg<'_> {
    fn emit(
        &self,
        table: &InstrumentTable,
        venue: Venue,
        sink: &mut impl FnMut(MarketEvent),
    ) -> bool {
        let Some(inst) = lookup(table, venue, self.s) else {
            return false;
        };
        let (ps, qs) = (inst.price_scale, inst.qty_scale);
        let (Ok(bp), Ok(bq), Ok(ap), Ok(aq)) = (
            parse_mantissa(self.b.as_bytes(), ps),
            parse_mantissa(self.bid_qty.as_bytes(), qs),
            parse_mantissa(self.a.as_bytes(), ps),
            parse_mantissa(self.ask_qty.as_bytes(), qs),
        ) else {
            return false;
        };
        let stamps = Stamps::new(self.time.unwrap_or(0) * 1_000_000, 0);
        sink(MarketEvent::book_ticker(
            inst,
            stamps,
            (Price(bp), Qty(bq)),
            (Price(ap), Qty(aq)),
            self.u,
        ));
        true
    }
}

impl Typed for DepthMsg<'_> {
    fn emit(
        &self,
        table: &InstrumentTable,
        venue: Venue,
        sink: &mut impl FnMut(MarketEvent),
    ) -> bool {
        let Some(inst) = lookup(table, venue, self.s) else {
            return false;
        };
        let ids = hotpath::event::DepthIds {
            first_update_id: self.first,
            final_update_id: self.u,
            prev_final_update_id: self.pu,
        };
        let stamps = Stamps::new(self.time * 1_000_000, 0);
        let n = self.b.len() + self.a.len();
        let levels = self
            .b
            .iter()
            .map(|l| (Side::Buy, l))
            .chain(self.a.iter().map(|l| (Side::Sell, l)));
        for (i, (side, [p, q])) in levels.enumerate() {
            let (Ok(p), Ok(q)) = (
                parse_mantissa(p.as_bytes(), inst.price_scale),
                parse_mantissa(q.as_bytes(), inst.qty_scale),
            ) else {
                return false;
            };
            sink(MarketEvent::depth_level(
                inst,
                stamps,
                side,
                Price(p),
                Qty(q),
                ids,
                i + 1 == n,
            ));
        }
        true
    }
}

/// Decode `buf` as a `T` envelope with serde_json or simd-json and emit its events.
fn typed<'a, T: Deserialize<'a> + Typed>(
    simd: bool,
    buf: &'a mut [u8],
    table: &InstrumentTable,
    venue: Venue,
    sink: &mut impl FnMut(MarketEvent),
) -> bool {
    let env: Option<Envelope<T>> = if simd {
        simd_json::serde::from_slice(buf).ok()
    } else {
        serde_json::from_slice(buf).ok()
    };
    env.is_some_and(|e| e.data.emit(table, venue, sink))
}

// ------------------------------------------------------------------------------------------
// The decoders under test, one per venue where they hold state.
// ------------------------------------------------------------------------------------------

struct Decoders<'t> {
    table: &'t InstrumentTable,
    scanners: Vec<Scanner<'t>>,
    references: Vec<SimdDecoder<'t>>,
}

impl<'t> Decoders<'t> {
    fn new(table: &'t InstrumentTable) -> Self {
        Decoders {
            table,
            scanners: VENUES.iter().map(|v| Scanner::new(table, *v)).collect(),
            references: VENUES.iter().map(|v| SimdDecoder::new(table, *v)).collect(),
        }
    }

    /// Decode one message in place; true on success.
    #[inline(always)]
    fn decode(
        &mut self,
        subject: Subject,
        kind: Kind,
        venue: usize,
        buf: &mut [u8],
        sink: &mut impl FnMut(MarketEvent),
    ) -> bool {
        let v = VENUES[venue];
        match subject {
            Subject::Scanner => self.scanners[venue].decode(buf, 0, sink).is_ok(),
            Subject::Reference => self.references[venue].decode(buf, 0, sink).is_ok(),
            Subject::SerdeJson | Subject::SimdSerde => {
                let simd = subject == Subject::SimdSerde;
                match kind {
                    Kind::Trade => typed::<TradeMsg<'_>>(simd, buf, self.table, v, sink),
                    Kind::BookTicker => typed::<BookTickerMsg<'_>>(simd, buf, self.table, v, sink),
                    Kind::Depth => typed::<DepthMsg<'_>>(simd, buf, self.table, v, sink),
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Data
// ------------------------------------------------------------------------------------------

fn spec(
    venue: Venue,
    sym: &str,
    kind: InstrumentKind,
    ps: u8,
    qs: u8,
) -> anyhow::Result<InstrumentSpec> {
    let symbol = Symbol::new(sym.as_bytes()).map_err(|e| anyhow::anyhow!("{sym}: {e}"))?;
    Ok(InstrumentSpec::new(venue, symbol, kind, ps, qs))
}

/// The captures' instruments at the scales Binance formats them with (what
/// `ExchangeInfo::parse` with `ScalePolicy::Venue` yields for them).
fn table() -> anyhow::Result<InstrumentTable> {
    use InstrumentKind::*;
    let mut t = InstrumentTable::with_capacity(64);
    for s in [
        "BTCUSDT", "ETHUSDT", "NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR",
    ] {
        t.intern(spec(Venue::BinanceSpot, s, Spot, 8, 8)?)?;
    }
    for s in ["BTCUSDT", "ETHUSDT"] {
        t.intern(spec(Venue::BinanceUsdM, s, Perp, 2, 3)?)?;
    }
    for (s, ps) in [
        ("BTCUSD_211231", 1),
        ("ETHUSD_210924", 2),
        ("BCHUSD_210924", 2),
        ("BCHUSD_PERP", 2),
        ("LINKUSD_211231", 3),
        ("LINKUSD_PERP", 3),
        ("EOSUSD_PERP", 3),
        ("ETCUSD_PERP", 3),
        ("XRPUSD_PERP", 4),
        ("TRXUSD_PERP", 5),
    ] {
        t.intern(spec(Venue::BinanceCoinM, s, InversePerp, ps, 0)?)?;
    }
    Ok(t)
}

fn need(rel: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = hotpath::datadir::data_dir().join(rel);
    if !path.is_file() {
        bail!(
            "decode suite: capture {} not found (set ALGO_DATA_DIR or run scripts/fetch-data.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// Every trade, bookTicker and depth message of the captures, grouped by type.
fn load(limit_per_kind: usize) -> anyhow::Result<Vec<Corpus>> {
    let mut corpora: Vec<Corpus> = Kind::ALL
        .iter()
        .map(|&kind| Corpus {
            kind,
            bytes: Vec::new(),
            msgs: Vec::new(),
        })
        .collect();
    let mut add = |venue: usize, json: &str| {
        let kind = if json.contains("@trade\"") {
            Kind::Trade
        } else if json.contains("@bookTicker\"") {
            Kind::BookTicker
        } else if json.contains("@depth") {
            Kind::Depth
        } else {
            return; // aggTrade, kline, REST snapshots: not in this suite
        };
        let c = &mut corpora[kind as usize];
        if c.msgs.len() < limit_per_kind {
            c.msgs.push(Msg {
                venue,
                start: c.bytes.len(),
                len: json.len(),
            });
            c.bytes.extend_from_slice(json.as_bytes());
        }
    };
    for (rel, venue) in [
        ("binance/spot/btcusdt_20240808.gz", 0),
        ("binance/spot/ethusdt_20240808.gz", 0),
        ("binance/usdm/btcusdt_20240808.gz", 1),
        ("binance/usdm/ethusdt_20240808.gz", 1),
    ] {
        let path = need(rel)?;
        let gz = flate2::read::GzDecoder::new(
            std::fs::File::open(&path).with_context(|| rel.to_string())?,
        );
        for line in BufReader::new(gz).lines() {
            let line = line.with_context(|| rel.to_string())?;
            if let Some((_, json)) = line.split_once(' ') {
                add(venue, json);
            }
        }
    }
    for (rel, venue) in [
        ("binance/cryptofeed/BINANCE.ws.1.0", 0),
        ("binance/cryptofeed/BINANCE_DELIVERY.ws.1.0", 2),
    ] {
        let text = std::fs::read_to_string(need(rel)?).with_context(|| rel.to_string())?;
        for line in text.lines().skip(1) {
            if let Some((_, json)) = line.split_once(": ") {
                add(venue, json);
            }
        }
    }
    Ok(corpora)
}

// ------------------------------------------------------------------------------------------
// Measurement
// ------------------------------------------------------------------------------------------

/// A sink the optimiser cannot remove.
#[inline(always)]
fn consume(acc: &mut u64) -> impl FnMut(MarketEvent) + '_ {
    move |e: MarketEvent| *acc = acc.wrapping_add(e.price.0 as u64 ^ e.qty.0 as u64)
}

/// Per-message latency of every message of `c`, recorded into `hist`; returns failures.
fn latency_pass(
    d: &mut Decoders<'_>,
    s: Subject,
    c: &Corpus,
    clock: &Clock,
    hist: &mut LatencyHist,
    work: &mut Vec<u8>,
) -> u64 {
    let mut acc = 0u64;
    let mut failed = 0u64;
    for m in &c.msgs {
        work.clear();
        work.extend_from_slice(&c.bytes[m.start..m.start + m.len]);
        let mut sink = consume(&mut acc);
        let t0 = clock.raw();
        let ok = d.decode(s, c.kind, m.venue, work, &mut sink);
        let t1 = clock.raw();
        hist.record(clock.delta_ns(t0, t1));
        failed += u64::from(!ok);
    }
    black_box(acc);
    failed
}

/// Bytes of messages per throughput window: well inside L2, like a receive buffer the feed
/// decodes right after the bytes arrived.
const WINDOW_BYTES: usize = 128 * 1024;

/// Decode all of `c` in windows of about [`WINDOW_BYTES`]: each window's messages are copied
/// into the arena (untimed, which also makes them cache-hot, as a just-received frame is), then
/// decoded in place back to back between two TSC reads. Returns (ns per message of the median
/// window, failures). The median window drops the windows a preemption hit: on a shared 2-core
/// VM, whole passes rarely escape one.
fn throughput_pass(
    d: &mut Decoders<'_>,
    s: Subject,
    c: &Corpus,
    clock: &Clock,
    arena: &mut Vec<u8>,
) -> (f64, u64) {
    let mut acc = 0u64;
    let mut failed = 0u64;
    let mut windows = Vec::new();
    let mut k = 0;
    while k < c.msgs.len() {
        let first = k;
        let mut bytes = 0;
        while k < c.msgs.len() && (k == first || bytes + c.msgs[k].len <= WINDOW_BYTES) {
            bytes += c.msgs[k].len;
            k += 1;
        }
        let window = &c.msgs[first..k];
        let base = window[0].start;
        let end = window[window.len() - 1].start + window[window.len() - 1].len;
        arena.clear();
        arena.extend_from_slice(&c.bytes[base..end]);
        let mut sink = consume(&mut acc);
        let t0 = clock.raw();
        for m in window {
            let buf = &mut arena[m.start - base..m.start - base + m.len];
            failed += u64::from(!d.decode(s, c.kind, m.venue, buf, &mut sink));
        }
        let t1 = clock.raw();
        windows.push(clock.delta_ns(t0, t1) as f64 / window.len() as f64);
    }
    black_box(acc);
    (median(windows), failed)
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let limit = if opts.quick { 5_000 } else { usize::MAX };
    let corpora = load(limit)?;
    let table = table()?;
    let pinned = pin_to(opts.core_a);
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    let reps = opts.reps.max(1);
    let mut d = Decoders::new(&table);
    let (mut work, mut arena) = (Vec::new(), Vec::new());

    // Warm-up: every subject decodes every message once; all must succeed.
    for c in &corpora {
        for s in Subject::ALL {
            let (_, failed) = throughput_pass(&mut d, s, c, &clock, &mut arena);
            if failed > 0 {
                bail!(
                    "{} failed to decode {failed} {} messages",
                    s.name(),
                    c.kind.name()
                );
            }
        }
    }

    // Interleaved repetitions: rep r of every (kind, subject), then rep r + 1.
    let n_cells = corpora.len() * Subject::ALL.len();
    let mut hists: Vec<LatencyHist> = (0..n_cells).map(|_| LatencyHist::new()).collect();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); n_cells];
    for _ in 0..reps {
        for (ci, c) in corpora.iter().enumerate() {
            for (si, &s) in Subject::ALL.iter().enumerate() {
                let cell = ci * Subject::ALL.len() + si;
                latency_pass(&mut d, s, c, &clock, &mut hists[cell], &mut work);
                let (per_msg, _) = throughput_pass(&mut d, s, c, &clock, &mut arena);
                ns[cell].push(per_msg);
            }
        }
    }

    std::fs::create_dir_all(&opts.out_dir)?;
    let mut rows = Vec::new();
    for (ci, c) in corpora.iter().enumerate() {
        let cell = |si: usize| ci * Subject::ALL.len() + si;
        let baseline = median(ns[cell(1)].clone());
        let bytes_per_msg = c.bytes.len() as f64 / c.msgs.len().max(1) as f64;
        for (si, &s) in Subject::ALL.iter().enumerate() {
            let hist = &hists[cell(si)];
            hist.write_percentiles(&opts.out_dir.join(format!(
                "decode-{}-{}.hdr.txt",
                c.kind.name(),
                s.slug()
            )))?;
            let per_msg = median(ns[cell(si)].clone());
            let speedup = baseline / per_msg.max(f64::MIN_POSITIVE);
            let note = match s {
                Subject::SerdeJson => format!("{per_msg:.0} ns/msg; baseline"),
                Subject::Scanner if c.kind != Kind::Depth => format!(
                    "{per_msg:.0} ns/msg; x serde_json, want >= 3.00: {}",
                    if speedup >= 3.0 {
                        "target met"
                    } else {
                        "target missed"
                    }
                ),
                _ => format!("{per_msg:.0} ns/msg; x serde_json"),
            };
            rows.push(Row {
                case: format!(
                    "{} ({} msgs, {:.0} B avg)",
                    c.kind.name(),
                    c.msgs.len(),
                    bytes_per_msg
                ),
                subject: s.name().into(),
                latency: Some(hist.percentiles(overhead.p50)),
                throughput: Some(1e9 / per_msg.max(f64::MIN_POSITIVE)),
                ratio: Some(speedup),
                note,
            });
        }
    }

    let method = format!(
        "every trade/bookTicker/depthUpdate message of the hftbacktest (spot, USD-M) and cryptofeed \
         (spot, COIN-M) captures{quick}; every subject builds the same MarketEvents (fixed-point at the \
         instrument's scales, symbol looked up); typed serde subjects are told the message type. \
         Thread pinned to core {core}{pin}; one warm-up pass per subject; {reps} interleaved \
         repetitions. Latency: TSC around each decode (message copied to the work buffer outside the \
         timed region), HDR, overhead p50 subtracted, files decode-<type>-<subject>.hdr.txt. \
         items/s and ns/msg: all messages of the type, in windows of {window} KB copied (untimed, \
         cache-hot like a just-received frame) into an arena and decoded in place back to back; a \
         pass's value is its median window (drops windows hit by preemption), reported value is \
         the median of the repetitions. ratio = serde_json ns/msg / subject ns/msg (higher is \
         faster). Machine: noisy 2-core VM, tails mostly measure the neighbours.",
        quick = if opts.quick { " (QUICK: first 5000 per type, not for quoting)" } else { "" },
        core = opts.core_a,
        pin = if pinned { "" } else { " (pinning refused: ran unpinned)" },
        window = WINDOW_BYTES / 1024,
    );
    Ok(Report {
        suite: "decode".into(),
        machine: Machine::detect(),
        overhead,
        method,
        rows,
    })
}
