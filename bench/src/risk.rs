//! `risk` suite: what the risk layer (execution chain, position monitor, portfolio risk
//! manager) adds to the strategy per market event.
//!
//! Two subjects on the same events, the USD-M and spot `btcusdt_20240808` captures (decoded
//! once with the feed's codec, as the `strategy` suite does):
//! - **without risk**: `Strategy::with_risk(.., RiskConfig::disabled(), ..)`, `on_event` only;
//! - **with risk**: the default `RiskConfig`, `on_event` plus, at every 1m decision, an entry
//!   forced through `Strategy::enter` (the decision's outcome set to a long or short,
//!   alternating) so positions are open and the monitor and portfolio checks run on most
//!   trades; every intent the outbox holds is filled at once at the event's price through
//!   `Strategy::on_exec`, outside the timed region (fills are the gateway's events).
//!
//! Per event one TSC read before and one after the timed call(s), samples stored in a
//! preallocated buffer, recorded into HDR after the pass; the ruler (two back-to-back reads)
//! p50 is subtracted. The delta row is the difference of the p50s (and p99s).

use crate::harness::{
    measurement_overhead, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};
use anyhow::{anyhow, Context};
use hotpath::event::{DecisionOutcome, ExecEvent, ExecKind, MarketEvent, Stamps};
use hotpath::feed::FrameDecoder;
use hotpath::fixed::{Decimal, Qty};
use hotpath::instrument::InstrumentTable;
use hotpath::risk::{RiskConfig, SymbolRisk};
use hotpath::signals::SymbolConfig;
use hotpath::strategy::Strategy;

const CAPTURES: [&str; 2] = [
    "binance/usdm/btcusdt_20240808.gz",
    "binance/spot/btcusdt_20240808.gz",
];
const QUICK_FRAMES: usize = 20_000;
const TARGET_DELTA_NS: i64 = 100;

fn load(
    rel: &str,
    limit: Option<usize>,
) -> anyhow::Result<Option<(String, InstrumentTable, Vec<MarketEvent>)>> {
    let Some(path) = hotpath::datadir::capture(rel) else {
        return Ok(None);
    };
    let input = coldpath::replay::load_hftbacktest(&path, limit)
        .with_context(|| format!("loading {}", path.display()))?;
    let mut decoder = input.decoder();
    let mut events = Vec::with_capacity(input.frames.len() * 6);
    let mut buf = Vec::new();
    for (ns, frame) in &input.frames {
        buf.clear();
        buf.extend_from_slice(frame);
        let _ = decoder.decode(&mut buf, None, *ns, &mut |e| events.push(e));
    }
    Ok(Some((rel.to_string(), input.table, events)))
}

/// One pass; returns the per-event samples (ns) in `samples`, and (entries, exits, closes).
fn pass(
    table: &InstrumentTable,
    events: &[MarketEvent],
    risk: bool,
    clock: &Clock,
    samples: &mut Vec<u32>,
) -> anyhow::Result<(u64, u64, u64)> {
    let cfg = if risk {
        RiskConfig::default()
    } else {
        RiskConfig::disabled()
    };
    let mut s = Strategy::with_risk(
        table,
        SymbolConfig::for_instrument,
        cfg,
        SymbolRisk::for_instrument,
    )
    .map_err(|e| anyhow!("strategy: {e}"))?;
    samples.clear();
    let mut flip = false;
    let mut entries = 0u64;
    for e in events {
        let t0 = clock.raw();
        let d = s.on_event(e, true);
        if risk {
            if let Some(mut d) = d {
                flip = !flip;
                d.outcome = if flip {
                    DecisionOutcome::EnterLong
                } else {
                    DecisionOutcome::EnterShort
                };
                entries += u64::from(s.enter(&d, 0));
            }
        } else {
            std::hint::black_box(&d);
        }
        let t1 = clock.raw();
        samples.push(clock.delta_ns(t0, t1).min(u64::from(u32::MAX)) as u32);
        if risk && !s.outbox().is_empty() {
            let n = s.outbox().n_intents;
            for j in 0..n {
                let i = s.outbox().intents[j];
                let inst = table.instrument_ref(i.instrument);
                let x = ExecEvent::new(
                    inst,
                    ExecKind::Fill,
                    i.side,
                    i.client_order_id,
                    1,
                    Stamps::new(e.stamps.venue_ns, 0),
                )
                .with_fill(e.price, i.qty, i.qty, Qty::ZERO, 1)
                .with_fee(Decimal::new(0, 0), false);
                s.on_exec(&x);
            }
            s.clear_outbox();
        }
    }
    let r = s.report();
    Ok((entries, r.exits, r.trade_closes))
}

/// Runs the suite; see the module docs.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let harness_overhead = measurement_overhead(&clock);
    let limit = opts.quick.then_some(QUICK_FRAMES);
    let mut caps = Vec::new();
    let mut rows = Vec::new();
    for rel in CAPTURES {
        match load(rel, limit)? {
            Some(c) => caps.push(c),
            None => rows.push(Row {
                case: "risk per event".into(),
                subject: rel.into(),
                latency: None,
                throughput: None,
                ratio: None,
                note: "skipped: capture not found (set ALGO_DATA_DIR)".into(),
            }),
        }
    }
    let reps = opts.reps.max(1);
    let core = opts.core_a;
    let (results, ruler, pinned) = std::thread::scope(|sc| {
        sc.spawn(|| -> anyhow::Result<_> {
            let pinned = pin_to(core);
            let mut ruler = LatencyHist::new();
            for _ in 0..200_000 {
                let a = clock.raw();
                let b = clock.raw();
                ruler.record(clock.delta_ns(a, b));
            }
            let ruler = ruler.percentiles(0);
            let mut samples = Vec::new();
            let mut out = Vec::new();
            for (label, table, events) in &caps {
                samples.reserve(events.len());
                let mut base = LatencyHist::new();
                let mut with = LatencyHist::new();
                let mut counts = (0, 0, 0);
                pass(table, events, false, &clock, &mut samples)?;
                pass(table, events, true, &clock, &mut samples)?;
                for _ in 0..reps {
                    pass(table, events, false, &clock, &mut samples)?;
                    samples.iter().for_each(|&ns| base.record(u64::from(ns)));
                    counts = pass(table, events, true, &clock, &mut samples)?;
                    samples.iter().for_each(|&ns| with.record(u64::from(ns)));
                }
                out.push((label.clone(), events.len(), base, with, counts));
            }
            Ok((out, ruler, pinned))
        })
        .join()
        .map_err(|_| anyhow!("risk bench thread panicked"))?
    })?;
    std::fs::create_dir_all(&opts.out_dir)?;
    let ov = ruler.p50;
    for (label, n, base, with, (entries, exits, closes)) in &results {
        let b = base.percentiles(ov);
        let w = with.percentiles(ov);
        let slug = label.replace(['/', '.'], "-");
        with.write_percentiles(&opts.out_dir.join(format!("risk-{slug}.hdr.txt")))?;
        rows.push(Row {
            case: "strategy per event, without risk".into(),
            subject: label.clone(),
            latency: Some(b),
            throughput: None,
            ratio: None,
            note: format!("{n} events"),
        });
        rows.push(Row {
            case: "strategy per event, with risk".into(),
            subject: label.clone(),
            latency: Some(w),
            throughput: None,
            ratio: None,
            note: format!(
                "{entries} forced entries, {exits} exits, {closes} closed trades per pass"
            ),
        });
        let d50 = w.p50 as i64 - b.p50 as i64;
        let d99 = w.p99 as i64 - b.p99 as i64;
        let d999 = w.p999 as i64 - b.p999 as i64;
        rows.push(Row {
            case: "risk delta per event".into(),
            subject: label.clone(),
            latency: None,
            throughput: None,
            ratio: None,
            note: format!(
                "p50 {d50:+} ns, p99 {d99:+} ns, p99.9 {d999:+} ns; target p50 <= {TARGET_DELTA_NS} ns {}",
                if d50 <= TARGET_DELTA_NS { "MET" } else { "MISSED" }
            ),
        });
    }
    let method = format!(
        "hotpath::strategy::Strategy with RiskConfig::disabled() vs RiskConfig::default() on \
         every MarketEvent of the captures (decoded beforehand); with risk, an entry is forced \
         at every 1m decision (alternating long/short) and filled at once outside the timed \
         region. Single thread {} core {core}; TSC before/after each event, ruler p50 {ov} ns \
         subtracted (harness read+record {} ns); {reps} repetitions merged{}.",
        if pinned {
            "pinned to"
        } else {
            "NOT pinned, meant for"
        },
        harness_overhead.p50,
        if opts.quick {
            "; QUICK run, not for quoting"
        } else {
            ""
        }
    );
    Ok(Report {
        suite: "risk".into(),
        machine: Machine::detect(),
        overhead: ruler,
        method,
        rows,
    })
}
