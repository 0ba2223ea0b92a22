//! `algo-engine explain <journal> --symbol S --at <time>`: the strategy decision in force at a
//! moment, with every value it used and every threshold it was held to.
//!
//! Why: each decision (entry or not) must be explainable after the fact. Decisions are
//! deterministic functions of the market records in event time, so a journal without decision
//! records (an `import` or a feed-only `run`) is replayed through the same per-symbol strategy
//! code (`hotpath::signals`); when the journal has `Decision` records (in the directory itself
//! or in its `strategy/` subdirectory, where the strategy stage journals), those are preferred:
//! they are what the engine actually decided. A replay takes the book's state from the feed's
//! `FLAG_BOOK_PROVEN` on the market events; a journal whose events carry no such flag at all
//! (older imports, trade-only captures) is replayed with the book assumed proven, and the
//! output says which.

use anyhow::{bail, Context, Result};
use clap::Args;
use coldpath::inspect::format_unix_ns;
use hotpath::codec::{decode, open_tailer, RecordKind};
use hotpath::event::{Decision, DecisionReason, MarketEvent, Trend};
use hotpath::signals::{SignalConfig, SymbolConfig, SymbolSignals, FILTER_NAMES};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::analytics_cmd::{fmt_mantissa, load_trades, resolve, InstrumentArgs};

/// `algo-engine explain ...`
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Journal directory.
    pub journal: PathBuf,
    /// The instrument.
    #[command(flatten)]
    pub which: InstrumentArgs,
    /// The moment: RFC 3339 (`2024-08-09T00:03:00Z`, offsets and fractions allowed) or Unix
    /// nanoseconds.
    #[arg(long)]
    pub at: String,
    /// Replay the market records even if the journal has decision records.
    #[arg(long)]
    pub replay: bool,
    /// In a replay, treat the book as proven whatever the events' flags say.
    #[arg(long)]
    pub assume_book_proven: bool,
}

/// Parse `--at`: Unix ns, or RFC 3339.
pub fn parse_time(s: &str) -> Result<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().with_context(|| format!("--at {s:?}"));
    }
    let bad = || anyhow::anyhow!("--at {s:?}: expected RFC 3339 (2024-08-09T00:03:00Z) or Unix ns");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        s.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return Err(bad());
        }
        for (k, c) in digits.bytes().enumerate().take(9) {
            nanos += i64::from(c - b'0') * 10i64.pow(8 - k as u32);
        }
    }
    let offset_s: i64 = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    let days = coldpath::capture::days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    u64::try_from(ns).map_err(|_| bad())
}

/// Decision records of instrument `id` in `dir` (none if it is not a journal).
fn journaled_decisions(dir: &Path, id: hotpath::instrument::InstrumentId) -> Result<Vec<Decision>> {
    let Ok(mut t) = open_tailer(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    while let Some(rec) = t.next()? {
        if rec.kind == RecordKind::Decision.as_u16() {
            let d: Decision = decode(rec.payload)
                .with_context(|| format!("decision record {} of {}", rec.seq, dir.display()))?;
            if d.instrument == id {
                out.push(d);
            }
        }
    }
    Ok(out)
}

fn level_name(level: u8) -> &'static str {
    match level {
        1 => "level 1 (regime, 15m)",
        2 => "level 2 (zones, 15m)",
        3 => "level 3 (order-flow cascade)",
        4 => "level 4 (trigger, 1m)",
        _ => "level 0 (entry checks: confluence, book)",
    }
}

fn why(reason: DecisionReason) -> &'static str {
    match reason {
        DecisionReason::Entry => "every level passed and the confluence reached the threshold",
        DecisionReason::NotWarm => {
            "not enough 15m history yet (3 closed candles for the structure, ADX, 50 closes for Hurst, mean reversion, ATR)"
        }
        DecisionReason::NoStructure => "no higher highs/lows nor lower highs/lows: ranging",
        DecisionReason::AdxLow => "ADX not above its minimum: no trend strength",
        DecisionReason::HurstLow => "Hurst not above its minimum: no directional persistence",
        DecisionReason::MeanReversionHigh => "mean-reversion strength too high: price snaps back",
        DecisionReason::AtrLow => "ATR below the floor: too little volatility",
        DecisionReason::NotAtZone => "price is not at a zone of the allowed direction: waiting",
        DecisionReason::CascadeNotWarm => "an imbalance window has too few trades",
        DecisionReason::CascadeUnordered => "imbalances do not accelerate across timeframes",
        DecisionReason::ImbalanceWeak => "1m imbalance not beyond its threshold",
        DecisionReason::BounceWeak => "bounce strength not above its minimum",
        DecisionReason::VolumeLow => "no volume spike over the 20-candle average",
        DecisionReason::NotMovingAway => "the candle does not move away from the zone",
        DecisionReason::ConfluenceLow => "confluence score below the entry threshold",
        DecisionReason::BookNotProven => "the order book is not proven",
    }
}

fn f(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.6}")
    }
}

/// Render `d` (with the thresholds of `cfg`).
pub fn render(d: &Decision, name: &str, cfg: &SignalConfig, at: u64, source: &str) -> String {
    let px = |p: hotpath::fixed::Price| fmt_mantissa(i128::from(p.0), d.price_scale);
    let price_units = d.price.to_f64(d.price_scale);
    let short = d.flags & Decision::FLAG_SHORT_SIDE != 0;
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!(
        "decision in force at {} for {name} ({})",
        format_unix_ns(at),
        d.instrument
    ));
    line(format!(
        "  evaluated at {} (close of a 1m candle), source: {source}",
        format_unix_ns(d.time_ns)
    ));
    line(format!("outcome: {}", d.outcome));
    if d.is_entry() {
        line(format!("level: {} - {}", d.level, level_name(d.level)));
    } else {
        line(format!("rejected at: {}", level_name(d.level)));
    }
    line(format!("reason: {} - {}", d.reason, why(d.reason)));
    line(format!("price: {}", px(d.price)));
    line(format!("level 1 regime (15m): trend {}", d.trend));
    line(format!(
        "  structure: last {} 15m candles {}",
        cfg.structure_candles,
        match d.trend {
            Trend::Up => "higher highs and higher lows",
            Trend::Down => "lower highs and lower lows",
            Trend::None => "no trend structure (or too few candles)",
        }
    ));
    line(format!(
        "  adx             {:>14}   needs > {}",
        f(d.adx),
        cfg.adx_min
    ));
    line(format!(
        "  hurst (R/S)     {:>14}   needs > {} (corrected R/S {}, not tested)",
        f(d.hurst),
        cfg.hurst_min,
        f(d.hurst_corrected)
    ));
    line(format!(
        "  mean reversion  {:>14}   needs < {}",
        f(d.mean_reversion),
        cfg.mean_reversion_max
    ));
    line(format!(
        "  atr             {:>14}   needs >= {} x price = {}",
        f(d.atr),
        cfg.atr_floor_frac,
        f(cfg.atr_floor_frac * price_units)
    ));
    line(format!(
        "level 2 zones: {} [{} .. {}] id {} strength {}   ({} needs a {} zone, the {} within {} or a {} gap)",
        d.zone_kind,
        px(d.zone_low),
        px(d.zone_high),
        d.zone_id,
        d.zone_strength,
        if short { "short" } else { "long" },
        if short { "supply" } else { "demand" },
        if short { "VAH" } else { "VAL" },
        cfg.value_area_tolerance,
        if short { "bearish" } else { "bullish" },
    ));
    line(format!(
        "level 3 cascade: i1 {} i5 {} i15 {}   long needs i1 > i5 > i15 and i1 > {}; short i1 < i5 < i15 and i1 < {}",
        f(d.imbalance_1m),
        f(d.imbalance_5m),
        f(d.imbalance_15m),
        cfg.cascade_long_min,
        cfg.cascade_short_max
    ));
    line(format!(
        "level 4 trigger (1m): bounce {} (needs > {}), volume ratio {} (needs > {} x the {}-candle average), moving away from the zone",
        f(d.bounce),
        cfg.bounce_min,
        f(d.volume_ratio),
        cfg.volume_spike_min,
        cfg.volume_avg_candles
    ));
    line(format!(
        "confluence ({}): {} (entry needs >= {}), filters {:#08b}",
        if short { "short" } else { "long" },
        f(d.confluence),
        cfg.min_confluence,
        d.filter_mask
    ));
    for (i, n) in FILTER_NAMES.iter().enumerate() {
        line(format!(
            "  {n:<16} {:>5} of {}",
            d.contributions[i], cfg.weights[i]
        ));
    }
    line(format!(
        "  inputs: zscore {} autocorr {}",
        f(d.zscore),
        f(d.autocorr)
    ));
    line(format!(
        "book proven: {}",
        if d.flags & Decision::FLAG_BOOK_PROVEN != 0 {
            "yes"
        } else {
            "no"
        }
    ));
    s
}

/// Runs `explain`.
pub fn run(args: ExplainArgs) -> Result<ExitCode> {
    let at = parse_time(&args.at)?;
    let mut r = resolve(&args.journal, &args.which)?;
    let cfg = SymbolConfig::for_instrument(&r.spec);
    let mut decisions = Vec::new();
    let mut source = String::new();
    if !args.replay {
        for dir in [args.journal.clone(), args.journal.join("strategy")] {
            let ds = journaled_decisions(&dir, r.id)?;
            if !ds.is_empty() {
                source = format!("{} decision records of {}", ds.len(), dir.display());
                decisions = ds;
                break;
            }
        }
    }
    if decisions.is_empty() {
        let trades = load_trades(&args.journal, &mut r)?;
        if trades.is_empty() {
            bail!(
                "no trades of {} (instrument {}) in {}",
                r.name,
                r.id,
                args.journal.display()
            );
        }
        let cfg = SymbolConfig::for_instrument(&r.spec);
        let mut s = SymbolSignals::new(r.id, &cfg)?;
        let flagged = trades.iter().any(|e| e.has(MarketEvent::FLAG_BOOK_PROVEN));
        let assume = args.assume_book_proven || !flagged;
        for e in &trades {
            let proven = assume || e.has(MarketEvent::FLAG_BOOK_PROVEN);
            if let Some(d) = s.on_event(e, proven) {
                decisions.push(d);
            }
        }
        source = format!(
            "replay of {} trades, {}",
            trades.len(),
            if args.assume_book_proven {
                "book assumed proven (--assume-book-proven)"
            } else if flagged {
                "book state from the feed's flags"
            } else {
                "book assumed proven (the journal carries no book flags)"
            }
        );
    }
    let Some(d) = decisions.iter().rev().find(|d| d.time_ns <= at) else {
        match decisions.first() {
            Some(first) => bail!(
                "no decision in force at {}: the first was made at {} ({} decisions, {source})",
                format_unix_ns(at),
                format_unix_ns(first.time_ns),
                decisions.len()
            ),
            None => bail!(
                "no 1m candle of {} closed in the journal ({source})",
                r.name
            ),
        }
    };
    print!("{}", render(d, &r.name, &cfg.signal, at, &source));
    Ok(ExitCode::SUCCESS)
}
