//! `strategy` suite: the cost of the whole strategy per market event (every per-symbol
//! analytic plus the four-level decision), on the real captures, and how it scales with the
//! number of active symbols.
//!
//! The subject is [`hotpath::strategy::Strategy`] exactly as the strategy stage drives it:
//! built with [`SymbolConfig::for_instrument`], fed one [`MarketEvent`] at a time through
//! [`Strategy::on_event`] with the book marked proven. The rings and the stage's journal are
//! left out on purpose: the feed suite measures the ring side, and the stage journals only the
//! decisions (one per closed 1-minute candle per symbol).
//!
//! The events are every `MarketEvent` of `binance/spot/btcusdt_20240808.gz` and
//! `binance/usdm/btcusdt_20240808.gz` (under `ALGO_DATA_DIR`), loaded with
//! `coldpath::replay::load_hftbacktest` and decoded once, before any timing, with the feed's
//! own codec ([`coldpath::replay::ReplayInput::decoder`], a `BinanceFeedDecoder`) into a `Vec`.
//!
//! Measurements, all in one thread pinned to `core_a`:
//! - **per event**: one TSC read before and one after each `on_event` call, recorded into HDR
//!   histograms (all events; trades only; the other kinds; and the trades that closed a 1m
//!   candle and so evaluated a decision). The subtracted overhead is this loop's own ruler:
//!   two back-to-back TSC reads with the sample store, p50 (the harness's read + record figure
//!   would over-subtract, since nothing is recorded inside the timed region).
//! - **throughput**: a separate pass over the whole vector without per-event clock reads, two
//!   TSC reads around the pass; events/s, median of the repetitions. Because the strategy drops
//!   every non-trade event at its first check (95% of these captures are depth levels and
//!   book tickers), a second pass feeds the trades alone (same state, same decisions): trades/s
//!   is the rate of the part that does the work.
//! - **1m close breakdown** (diagnostic): the steps a candle-closing trade takes, timed one by
//!   one through the components' public API, cold and warm (see `close_breakdown`).
//!
//! Every pass (timed or not) uses a fresh `Strategy` built outside the timed region; one
//! untimed warm-up pass per capture comes first.
//!
//! **Scaling.** An instrument table with N copies of the capture's instrument (the built-in
//! spec from `coldpath::import::builtin_spec`, renamed `BTCUSDT`, `BTC001USDT`, ...), and the
//! USD-M capture's events re-tagged round-robin: event `i` goes to instrument `i mod N`, so
//! every symbol is active and the total number of events stays the same. Each symbol sees a
//! thinned but time-ordered stream and still closes a 1m candle every minute, so with N
//! symbols there are about N times as many decision evaluations per event: that is part of
//! what an N-symbol strategy costs. Memory per symbol is computed from the components'
//! documented sizes (`size_of` of the symbol's slot plus the heap reported by
//! `SymbolAnalytics::memory_bytes`, `OrderFlow::heap_bytes`, `MarketProfile::heap_bytes` and
//! `Zones::heap_bytes`), and cross-checked by the resident-set delta (`/proc/self/statm`) around
//! `Strategy::new` for the largest N, which counts only pages the constructor touched.

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Percentiles, Report, Row,
    SuiteOpts,
};
use anyhow::{anyhow, Context};
use hotpath::analytics::timeframes::SymbolAnalytics;
use hotpath::event::{MarketEvent, MarketKind};
use hotpath::feed::FrameDecoder;
use hotpath::fixed::Qty;
use hotpath::instrument::{InstrumentId, InstrumentRef, InstrumentTable, Symbol, Venue};
use hotpath::signals::{SymbolConfig, SymbolSignals};
use hotpath::strategy::Strategy;
use std::path::Path;

/// Captures replayed, relative to `ALGO_DATA_DIR`.
const CAPTURES: [&str; 2] = [
    "binance/spot/btcusdt_20240808.gz",
    "binance/usdm/btcusdt_20240808.gz",
];
/// Frames per capture in a `--quick` run.
const QUICK_FRAMES: usize = 20_000;
/// Active-symbol counts of the scaling rows.
const SCALING: [usize; 3] = [1, 10, 100];
/// Target p50 per event (ns), from the issue.
const TARGET_P50_NS: u64 = 300;
/// Target single-threaded rate (events/s): NautilusTrader's published backtest rate.
const TARGET_EVENTS_PER_S: f64 = 3.0e6;
/// Samples of the empty-ruler measurement.
const RULER_SAMPLES: usize = 200_000;

/// A capture decoded into market events, with what is needed to build strategies for it.
struct Events {
    /// Short label, e.g. `spot btcusdt`.
    label: String,
    venue: Venue,
    /// Upper-case symbol from the file name.
    symbol: String,
    table: InstrumentTable,
    events: Vec<MarketEvent>,
    /// Frames the codec rejected (counted, not fatal: the feed journals them too).
    decode_errors: u64,
}

impl Events {
    /// Loads `path` as `algo-engine run` does and decodes every frame with the feed's codec.
    fn load(path: &Path, limit: Option<usize>) -> anyhow::Result<Events> {
        let input = coldpath::replay::load_hftbacktest(path, limit)
            .with_context(|| format!("loading {}", path.display()))?;
        let mut decoder = input.decoder();
        let mut events = Vec::with_capacity(input.frames.len() * 6);
        let mut buf = Vec::new();
        let mut decode_errors = 0u64;
        for (ns, frame) in &input.frames {
            buf.clear();
            buf.extend_from_slice(frame);
            let r = decoder.decode(&mut buf, None, *ns, &mut |e| events.push(e));
            decode_errors += u64::from(r.is_err());
        }
        Ok(Events {
            label: format!(
                "{} {}",
                input.venue.name().trim_start_matches("binance_"),
                input.symbol.to_ascii_lowercase()
            ),
            venue: input.venue,
            symbol: input.symbol,
            table: input.table,
            events,
            decode_errors,
        })
    }

    /// Market time covered by the events (venue timestamps), in minutes.
    fn minutes(&self) -> f64 {
        let ts = || {
            self.events
                .iter()
                .map(|e| e.stamps.venue_ns)
                .filter(|&t| t != 0)
        };
        let first = ts().min().unwrap_or(0);
        let last = ts().max().unwrap_or(0);
        last.saturating_sub(first) as f64 / 60e9
    }

    fn trades(&self) -> usize {
        self.events.iter().filter(|e| is_trade(e)).count()
    }
}

#[inline(always)]
fn is_trade(e: &MarketEvent) -> bool {
    matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade)
}

/// A strategy for every instrument of `table` with the engine's per-instrument defaults.
fn strategy(table: &InstrumentTable) -> anyhow::Result<Strategy> {
    Strategy::new(table, SymbolConfig::for_instrument).map_err(|e| anyhow!("strategy: {e}"))
}

/// Histograms of one subject, merged over repetitions.
struct Hists {
    all: LatencyHist,
    trades: LatencyHist,
    other: LatencyHist,
    decisions: LatencyHist,
    events_per_s: Vec<f64>,
    /// Trades/s of the trade-only passes.
    trades_per_s: Vec<f64>,
    /// Decisions evaluated in the last pass.
    decisions_per_pass: u64,
}

impl Hists {
    fn new() -> Self {
        Hists {
            all: LatencyHist::new(),
            trades: LatencyHist::new(),
            other: LatencyHist::new(),
            decisions: LatencyHist::new(),
            events_per_s: Vec::new(),
            trades_per_s: Vec::new(),
            decisions_per_pass: 0,
        }
    }
}

/// The latency pass: every `on_event` between two TSC reads. Samples go to a preallocated
/// buffer and into the histograms after the pass, so histogram work does not pollute the
/// caches between calls more than one store does.
fn latency_pass(
    table: &InstrumentTable,
    events: &[MarketEvent],
    clock: &Clock,
    samples: &mut Vec<(u32, u8)>,
    h: &mut Hists,
) -> anyhow::Result<()> {
    let mut s = strategy(table)?;
    samples.clear();
    for e in events {
        let t0 = clock.raw();
        let d = s.on_event(e, true);
        let t1 = clock.raw();
        let class = if d.is_some() {
            std::hint::black_box(&d);
            2
        } else {
            u8::from(is_trade(e))
        };
        samples.push((
            clock.delta_ns(t0, t1).min(u64::from(u32::MAX)) as u32,
            class,
        ));
    }
    for &(ns, class) in samples.iter() {
        let ns = u64::from(ns);
        h.all.record(ns);
        match class {
            0 => h.other.record(ns),
            1 => h.trades.record(ns),
            _ => {
                h.trades.record(ns);
                h.decisions.record(ns);
            }
        }
    }
    h.decisions_per_pass = s.report().decisions;
    Ok(())
}

/// The throughput pass: every event through a fresh strategy, no per-event clock reads;
/// returns events/s.
fn throughput_pass(
    table: &InstrumentTable,
    events: &[MarketEvent],
    clock: &Clock,
) -> anyhow::Result<f64> {
    let mut s = strategy(table)?;
    let t0 = clock.raw();
    for e in events {
        if let Some(d) = s.on_event(e, true) {
            std::hint::black_box(&d);
        }
    }
    let t1 = clock.raw();
    std::hint::black_box(s.report());
    Ok(events.len() as f64 / (clock.delta_ns(t0, t1).max(1) as f64 / 1e9))
}

/// An instrument table with `n` copies of `symbol`'s built-in spec on `venue`: the original
/// name first, then `BTC001USDT`, `BTC002USDT`, ... (the base asset with a number appended).
fn scaled_table(venue: Venue, symbol: &str, n: usize) -> anyhow::Result<InstrumentTable> {
    let spec = coldpath::import::builtin_spec(venue, symbol)
        .ok_or_else(|| anyhow!("no built-in spec for {symbol} on {}", venue.name()))?;
    let (base, quote) = symbol
        .strip_suffix("USDT")
        .map_or((symbol, ""), |b| (b, "USDT"));
    let mut table = InstrumentTable::with_capacity(n);
    for i in 0..n {
        let mut s = spec;
        if i > 0 {
            let name = format!("{base}{i:03}{quote}");
            s.symbol = Symbol::new(name.as_bytes()).map_err(|e| anyhow!("{name}: {e:?}"))?;
        }
        let id = table
            .intern(s)
            .map_err(|e| anyhow!("interning copy {i}: {e}"))?;
        if id.0 as usize != i {
            return Err(anyhow!("copy {i} got id {}", id.0));
        }
    }
    Ok(table)
}

/// Bytes of one symbol's state from the components' documented sizes: the strategy's slot
/// (instrument reference, quantity, the inline [`SymbolSignals`], as an `Option`) plus every
/// heap buffer the analytics report.
fn symbol_bytes(sig: &SymbolSignals) -> usize {
    let slot = std::mem::size_of::<Option<(InstrumentRef, Qty, SymbolSignals)>>();
    let analytics_heap = sig.analytics().memory_bytes() - std::mem::size_of::<SymbolAnalytics>();
    slot + analytics_heap
        + sig.order_flow().heap_bytes()
        + sig.profile().heap_bytes()
        + sig.zones().heap_bytes()
}

/// The heap part of [`symbol_bytes`], per component, for the note.
fn symbol_breakdown(sig: &SymbolSignals) -> String {
    format!(
        "inline slot {} B, z-score ring {} B, order-flow ring {} B, profile {} B, zones {} B",
        std::mem::size_of::<Option<(InstrumentRef, Qty, SymbolSignals)>>(),
        sig.analytics().memory_bytes() - std::mem::size_of::<SymbolAnalytics>(),
        sig.order_flow().heap_bytes(),
        sig.profile().heap_bytes(),
        sig.zones().heap_bytes()
    )
}

/// Resident set size in bytes (`/proc/self/statm`, second field, in pages).
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The latency row of `hist` (skipped when empty).
fn lat_row(
    rows: &mut Vec<Row>,
    case: &str,
    subject: &str,
    hist: &LatencyHist,
    overhead: u64,
    eps: Option<f64>,
    note: String,
) -> Option<Percentiles> {
    if hist.is_empty() {
        return None;
    }
    let p = hist.percentiles(overhead);
    rows.push(Row {
        case: case.into(),
        subject: subject.into(),
        latency: Some(p),
        throughput: eps,
        ratio: None,
        note,
    });
    Some(p)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISSED"
    }
}

/// Repetitions of each step of the close breakdown.
const BREAKDOWN_REPS: usize = 80;

/// Where the time of a 1m candle close goes: each step `SymbolSignals::on_event` takes when a
/// trade closes a minute, called through the components' public API on a copy of a symbol's
/// state as the capture left it, with every cache flushed first (a symbol closes a candle once
/// a minute, so its state is cold then). Returns `(step, p50 ns cold, p50 ns warm)`.
///
/// "Cold" is after a write sweep over a 64 MiB buffer (16 times this machine's 4 MiB L2; the
/// VM reports a shared 260 MiB L3, which the sweep only partly evicts); the mutable steps
/// work on a copy of the component made before the sweep, so their state is cold too.
///
/// Steps: the three indicator updates (`TimeframeIndicators::on_candle` for 1m, 5m, 15m on the
/// current candles; 5m and 15m run only on their own closes), the zone detector's candle update,
/// the order-flow and profile windows advanced to the current 1m candle's end, the market
/// profile's value area (`MarketProfile::profile`), the evaluation inputs
/// (`SymbolSignals::inputs`, which includes the value area and the zone and gap look-ups) and
/// `signals::evaluate`.
fn close_breakdown(
    sig: &SymbolSignals,
    clock: &Clock,
    ruler: u64,
) -> Vec<(&'static str, u64, u64)> {
    use hotpath::analytics::candles::Timeframe;
    let Some(c1) = sig.analytics().current(Timeframe::M1).copied() else {
        return Vec::new();
    };
    let end = c1.close_time_ns();
    let mut flush = vec![0u8; 64 << 20];
    let mut step = |name: &'static str, f: &mut dyn FnMut(&mut dyn FnMut()) -> u64| {
        let mut cold = Vec::with_capacity(BREAKDOWN_REPS);
        let mut warm = Vec::with_capacity(BREAKDOWN_REPS);
        for r in 0..BREAKDOWN_REPS {
            let is_cold = r % 4 == 0;
            let mut evict = || {
                if is_cold {
                    for b in flush.iter_mut().step_by(64) {
                        *b = b.wrapping_add(1);
                    }
                    std::hint::black_box(&flush);
                }
            };
            let ns = f(&mut evict).saturating_sub(ruler) as f64;
            if is_cold {
                cold.push(ns);
            } else {
                warm.push(ns);
            }
        }
        (name, median(cold) as u64, median(warm) as u64)
    };
    let time = |t0: u64| clock.delta_ns(t0, clock.raw());
    let mut out = Vec::new();
    for tf in Timeframe::ALL {
        let name = match tf {
            Timeframe::M1 => "indicators 1m",
            Timeframe::M5 => "indicators 5m",
            _ => "indicators 15m",
        };
        let Some(c) = sig.analytics().current(tf).copied() else {
            continue;
        };
        out.push(step(name, &mut |evict| {
            let mut ind = *sig.analytics().indicators(tf);
            evict();
            let t0 = clock.raw();
            std::hint::black_box(ind.on_candle(&c));
            time(t0)
        }));
    }
    out.push(step("zones on_candle", &mut |evict| {
        let mut z = sig.zones().clone();
        let input = hotpath::signals::candle_input(&c1);
        evict();
        let t0 = clock.raw();
        std::hint::black_box(z.on_candle(&input));
        time(t0)
    }));
    out.push(step("order flow advance_to", &mut |evict| {
        let mut f = sig.order_flow().clone();
        evict();
        let t0 = clock.raw();
        f.advance_to(end);
        let ns = time(t0);
        std::hint::black_box(&f);
        ns
    }));
    out.push(step("profile advance_to", &mut |evict| {
        let mut p = sig.profile().clone();
        evict();
        let t0 = clock.raw();
        p.advance_to(end);
        let ns = time(t0);
        std::hint::black_box(&p);
        ns
    }));
    out.push(step("profile value area", &mut |evict| {
        evict();
        let t0 = clock.raw();
        std::hint::black_box(sig.profile().profile());
        time(t0)
    }));
    out.push(step("SymbolSignals::inputs", &mut |evict| {
        evict();
        let t0 = clock.raw();
        std::hint::black_box(sig.inputs(&c1, true, Default::default(), None));
        time(t0)
    }));
    let x = sig.inputs(&c1, true, Default::default(), None);
    let cfg = hotpath::signals::SignalConfig::default();
    out.push(step("signals::evaluate", &mut |evict| {
        evict();
        let t0 = clock.raw();
        std::hint::black_box(hotpath::signals::evaluate(&cfg, &x));
        time(t0)
    }));
    out
}

/// `; N of L levels between the lowest and highest level with volume, value area V levels`:
/// the value-area computation scans the levels between the first and last non-empty one.
fn profile_span_note(sig: &SymbolSignals) -> String {
    let p = sig.profile();
    let levels = p.config().levels;
    let (lo_px, _) = p.range();
    let width = p.profile().map_or(0, |v| v.level_width);
    if width <= 0 {
        return String::new();
    }
    let filled: Vec<usize> = (0..levels)
        .filter(|&i| p.volume_at(hotpath::fixed::Price(lo_px.0 + i as i64 * width)) != 0)
        .collect();
    let (Some(first), Some(last)) = (filled.first(), filled.last()) else {
        return String::new();
    };
    let va = p.profile().map_or(0, |v| (v.vah.0 - v.val.0) / width + 1);
    format!(
        "; {} of {levels} levels between the lowest and highest with volume ({} non-empty), \
         value area {va} levels",
        last - first + 1,
        filled.len()
    )
}

/// Everything measured, before it becomes rows.
struct Measured {
    caps: Vec<Events>,
    /// Per capture.
    hists: Vec<Hists>,
    /// The empty ruler: two TSC reads with only the sample store between them.
    ruler: Percentiles,
    /// (N, histograms, bytes per symbol computed) per scaling point.
    scaling: Vec<(usize, Hists, usize, String)>,
    /// How much of the profile histogram holds volume, for the value-area row's note.
    profile_span: String,
    /// Close breakdown on the largest capture's symbol: (step, p50 cold, p50 warm).
    breakdown: Vec<(&'static str, u64, u64)>,
    /// RSS delta (bytes) around `Strategy::new` for the largest N.
    rss_delta: Option<u64>,
    scaling_label: String,
    pinned: bool,
}

/// The whole measurement, on the calling (pinned) thread.
fn measure(
    opts: &SuiteOpts,
    clock: &Clock,
    caps: Vec<Events>,
    pinned: bool,
) -> anyhow::Result<Measured> {
    let reps = opts.reps.max(1);
    let max_events = caps.iter().map(|c| c.events.len()).max().unwrap_or(0);
    let mut samples: Vec<(u32, u8)> = Vec::with_capacity(max_events.max(RULER_SAMPLES));

    // The ruler of this loop: the same two reads and sample store with nothing between.
    for _ in 0..RULER_SAMPLES {
        let t0 = clock.raw();
        std::hint::black_box(());
        let t1 = clock.raw();
        samples.push((clock.delta_ns(t0, t1).min(u64::from(u32::MAX)) as u32, 0));
    }
    let mut ruler_hist = LatencyHist::new();
    for &(ns, _) in samples.iter() {
        ruler_hist.record(u64::from(ns));
    }
    let ruler = ruler_hist.percentiles(0);
    samples.clear();

    // Warm-up: one untimed pass per capture.
    for cap in &caps {
        std::hint::black_box(throughput_pass(&cap.table, &cap.events, clock)?);
    }
    // The strategy ignores every non-trade event before touching any state, so feeding it
    // the trades alone gives the same decisions: the rate of the part that does the work.
    let trades: Vec<Vec<MarketEvent>> = caps
        .iter()
        .map(|c| c.events.iter().filter(|e| is_trade(e)).copied().collect())
        .collect();
    let mut hists: Vec<Hists> = caps.iter().map(|_| Hists::new()).collect();
    for _ in 0..reps {
        for ((cap, h), tr) in caps.iter().zip(hists.iter_mut()).zip(&trades) {
            latency_pass(&cap.table, &cap.events, clock, &mut samples, h)?;
            h.events_per_s
                .push(throughput_pass(&cap.table, &cap.events, clock)?);
            h.trades_per_s.push(throughput_pass(&cap.table, tr, clock)?);
        }
    }

    // Where a 1m close spends its time, on the largest capture's final state.
    let mut breakdown = Vec::new();
    let mut profile_span = String::new();
    if let Some(big) = caps.iter().max_by_key(|c| c.events.len()) {
        let mut s = strategy(&big.table)?;
        for e in &big.events {
            std::hint::black_box(s.on_event(e, true));
        }
        if let Some(sig) = big.table.iter().next().and_then(|(id, _)| s.symbol(id)) {
            breakdown = close_breakdown(sig, clock, ruler.p50);
            profile_span = profile_span_note(sig);
        }
    }

    // Scaling on the largest capture.
    let mut scaling = Vec::new();
    let mut rss_delta = None;
    let mut scaling_label = String::new();
    if let Some(big) = caps.iter().max_by_key(|c| c.events.len()) {
        scaling_label = big.label.clone();
        let max_n = SCALING.iter().copied().max().unwrap_or(1);
        // RSS delta first, while the allocator has the fewest freed blocks to reuse.
        let table = scaled_table(big.venue, &big.symbol, max_n)?;
        let before = rss_bytes();
        let s = strategy(&table)?;
        let after = rss_bytes();
        if let (Some(b), Some(a)) = (before, after) {
            rss_delta = Some(a.saturating_sub(b));
        }
        drop(s);
        let mut events = big.events.clone();
        for n in SCALING {
            let table = scaled_table(big.venue, &big.symbol, n)?;
            for (i, e) in events.iter_mut().enumerate() {
                e.instrument = InstrumentId((i % n) as u32);
            }
            let s = strategy(&table)?;
            let sig = s
                .symbol(InstrumentId(0))
                .ok_or_else(|| anyhow!("symbol 0 missing"))?;
            let bytes = symbol_bytes(sig);
            let breakdown = symbol_breakdown(sig);
            drop(s);
            let trades: Vec<MarketEvent> = events.iter().filter(|e| is_trade(e)).copied().collect();
            let mut h = Hists::new();
            std::hint::black_box(throughput_pass(&table, &events, clock)?);
            for _ in 0..reps {
                latency_pass(&table, &events, clock, &mut samples, &mut h)?;
                h.events_per_s
                    .push(throughput_pass(&table, &events, clock)?);
                h.trades_per_s
                    .push(throughput_pass(&table, &trades, clock)?);
            }
            scaling.push((n, h, bytes, breakdown));
        }
    }
    Ok(Measured {
        caps,
        hists,
        ruler,
        breakdown,
        profile_span,
        scaling,
        rss_delta,
        scaling_label,
        pinned,
    })
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let harness_overhead = measurement_overhead(&clock);
    let limit = opts.quick.then_some(QUICK_FRAMES);

    let mut caps = Vec::new();
    let mut missing = Vec::new();
    for rel in CAPTURES {
        match hotpath::datadir::capture(rel) {
            Some(p) => caps.push(Events::load(&p, limit)?),
            None => missing.push(rel),
        }
    }

    let core = opts.core_a;
    let m = std::thread::scope(|sc| {
        sc.spawn(|| {
            let pinned = pin_to(core);
            measure(opts, &clock, caps, pinned)
        })
        .join()
        .map_err(|_| anyhow!("strategy bench thread panicked"))
    })??;

    std::fs::create_dir_all(&opts.out_dir)?;
    // Subtract the ruler of the timed loop itself (two reads, nothing recorded in between),
    // not the harness's read + record figure, which would over-subtract here.
    let ov = m.ruler.p50;
    let mut rows = Vec::new();
    for rel in &missing {
        rows.push(Row {
            case: "strategy per event".into(),
            subject: (*rel).into(),
            latency: None,
            throughput: None,
            ratio: None,
            note: "skipped: capture not found (set ALGO_DATA_DIR)".into(),
        });
    }
    for (cap, h) in m.caps.iter().zip(&m.hists) {
        let slug = format!("strategy-{}", cap.label.replace(' ', "-"));
        h.all
            .write_percentiles(&opts.out_dir.join(format!("{slug}-event.hdr.txt")))?;
        h.trades
            .write_percentiles(&opts.out_dir.join(format!("{slug}-trade.hdr.txt")))?;
        let eps = median(h.events_per_s.clone());
        let tps = median(h.trades_per_s.clone());
        let subject = format!("{} (1 symbol)", cap.label);
        let trades = cap.trades();
        let p = lat_row(
            &mut rows,
            "per event, all kinds",
            &subject,
            &h.all,
            ov,
            Some(eps),
            String::new(),
        );
        if let (Some(p), Some(r)) = (p, rows.last_mut()) {
            r.note = format!(
                "p50 target <= {TARGET_P50_NS} ns {}; >= 3M ev/s {} (NautilusTrader ~3M/s); \
                 {} events ({} trades, {:.1}%), {} decisions/pass{}",
                met(p.p50 <= TARGET_P50_NS),
                met(eps >= TARGET_EVENTS_PER_S),
                cap.events.len(),
                trades,
                100.0 * trades as f64 / cap.events.len().max(1) as f64,
                h.decisions_per_pass,
                if cap.decode_errors > 0 {
                    format!(", {} frames rejected by the codec", cap.decode_errors)
                } else {
                    String::new()
                }
            );
        }
        let p = lat_row(
            &mut rows,
            "per event, trades",
            &subject,
            &h.trades,
            ov,
            Some(tps),
            String::new(),
        );
        if let (Some(p), Some(r)) = (p, rows.last_mut()) {
            r.note = format!(
                "all analytics run on trades; p50 {} the {TARGET_P50_NS} ns target; \
                 items/s = trades/s of a trades-only pass (same decisions), >= 3M/s {}",
                if p.p50 <= TARGET_P50_NS {
                    "within"
                } else {
                    "over"
                },
                met(tps >= TARGET_EVENTS_PER_S)
            );
        }
        lat_row(
            &mut rows,
            "per event, book/depth (non-trade)",
            &subject,
            &h.other,
            ov,
            None,
            "returns at the kind check (depth levels, bookTicker)".into(),
        );
        lat_row(
            &mut rows,
            "per event, trade closing a 1m bar",
            &subject,
            &h.decisions,
            ov,
            None,
            format!(
                "candle close + indicators + zones + decision evaluation; {} samples over all \
                 repetitions ({:.0} minutes of market time per pass)",
                h.decisions.len(),
                cap.minutes()
            ),
        );
    }
    for (name, cold, warm) in &m.breakdown {
        let extra = if name.starts_with("profile value area") {
            m.profile_span.as_str()
        } else {
            ""
        };
        rows.push(Row {
            case: format!("1m close: {name}"),
            subject: format!("{} (diagnostic)", m.scaling_label),
            latency: None,
            throughput: None,
            ratio: None,
            note: format!(
                "median {cold} ns cold (64 MiB sweep first), {warm} ns warm; {BREAKDOWN_REPS} \
                 calls (1 in 4 cold) on the end-of-capture state{extra}"
            ),
        });
    }
    for (n, h, bytes, breakdown) in &m.scaling {
        let eps = median(h.events_per_s.clone());
        let subject = format!("{} x{n} symbols", m.scaling_label);
        lat_row(
            &mut rows,
            &format!("scaling: {n} active symbol(s)"),
            &subject,
            &h.all,
            ov,
            Some(eps),
            format!(
                "trades p50/p99/p99.9 {}/{}/{} ns, {:.2}M trades/s (trades-only pass); {} \
                 decisions/pass; {bytes} B/symbol computed ({breakdown})",
                h.trades.percentiles(ov).p50,
                h.trades.percentiles(ov).p99,
                h.trades.percentiles(ov).p999,
                median(h.trades_per_s.clone()) / 1e6,
                h.decisions_per_pass
            ),
        );
    }
    if let (Some(d), Some(n)) = (m.rss_delta, SCALING.iter().max()) {
        let computed = m.scaling.last().map_or(0, |s| s.2);
        rows.push(Row {
            case: "memory per symbol (RSS delta)".into(),
            subject: format!("Strategy::new, {n} symbols"),
            latency: None,
            throughput: None,
            ratio: None,
            note: format!(
                "{} B/symbol resident after construction (/proc/self/statm delta / {n}; only \
                 pages the constructor touched) vs {computed} B/symbol computed from sizes",
                d / *n as u64
            ),
        });
    }

    let method = format!(
        "hotpath::strategy::Strategy (SymbolConfig::for_instrument, book proven) fed every \
         MarketEvent of the capture, decoded once beforehand with the feed's BinanceFeedDecoder \
         (coldpath::replay); single thread {pin} core {core}. Per event: TSC read before and \
         after each Strategy::on_event, samples kept in a preallocated buffer and recorded \
         into HDR after the pass, overhead p50 subtracted, histograms merged over {reps} \
         repetitions (HDR files strategy-<capture>-{{event,trade}}.hdr.txt). Throughput: \
         separate pass without per-event clock reads, events/s median of {reps}. Every pass \
         uses a fresh Strategy built outside the timed region; one untimed warm-up pass \
         first. Scaling: {label} events re-tagged round-robin over N copies of the instrument \
         (event i -> instrument i mod N; same total events, every symbol active, ~N x the \
         1m-candle decisions); memory per symbol computed from size_of + the components' \
         heap_bytes/memory_bytes, RSS delta reported alongside. The overhead line above is \
         this loop's own ruler (two back-to-back TSC reads plus the sample store, p50 {r} ns, \
         subtracted); the harness's read + histogram-record overhead is {h} ns p50, and \
         results within a few ns of 0 are at the ruler's resolution{quick}.",
        r = m.ruler.p50,
        h = harness_overhead.p50,
        pin = if m.pinned {
            "pinned to"
        } else {
            "NOT pinned (refused), meant for"
        },
        reps = opts.reps.max(1),
        label = m.scaling_label,
        quick = if opts.quick {
            format!(
                "; QUICK run: first {QUICK_FRAMES} frames of each capture only, not for quoting"
            )
        } else {
            String::new()
        },
    );
    Ok(Report {
        suite: "strategy".into(),
        machine: Machine::detect(),
        overhead: m.ruler,
        method,
        rows,
    })
}
