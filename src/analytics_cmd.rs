//! `algo-engine analytics <journal> --symbol S --timeframe 1m|5m|15m --csv`: the strategy's
//! per-symbol analytics recomputed from a journal's market records, one CSV row per closed
//! candle.
//!
//! Why: the analytics run inside the strategy stage and are only visible through the decisions;
//! this command shows every input of a decision (candles, indicators, statistics, profile,
//! order flow) on any journal written by `import`, `record` or `run`, in event time, with the
//! same code the stage runs (`hotpath::analytics`), so the numbers can be checked against
//! other tools. Also holds the journal-loading helpers `explain` shares.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use coldpath::inspect::format_unix_ns;
use hotpath::analytics::candles::{CandleSource, Timeframe};
use hotpath::analytics::orderflow::{OrderFlow, Window};
use hotpath::analytics::profile::MarketProfile;
use hotpath::analytics::timeframes::SymbolAnalytics;
use hotpath::codec::{decode, open_tailer, RecordKind};
use hotpath::event::{MarketEvent, MarketKind};
use hotpath::fixed::Price;
use hotpath::instrument::{InstrumentId, InstrumentKind, InstrumentSpec, Symbol, Venue};
use hotpath::signals::SymbolConfig;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Candle timeframes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeframeArg {
    /// One minute.
    #[value(name = "1m")]
    M1,
    /// Five minutes.
    #[value(name = "5m")]
    M5,
    /// Fifteen minutes.
    #[value(name = "15m")]
    M15,
}

impl From<TimeframeArg> for Timeframe {
    fn from(t: TimeframeArg) -> Self {
        match t {
            TimeframeArg::M1 => Timeframe::M1,
            TimeframeArg::M5 => Timeframe::M5,
            TimeframeArg::M15 => Timeframe::M15,
        }
    }
}

/// Which instrument of a journal: by symbol (from `instruments.json`) or by id.
#[derive(Args, Debug, Clone)]
pub struct InstrumentArgs {
    /// Symbol, as in the journal's `instruments.json` (written by `import`).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Instrument id, for journals without `instruments.json` (e.g. `run`); default 0.
    #[arg(long)]
    pub instrument: Option<u32>,
}

/// `algo-engine analytics ...`
#[derive(Args, Debug)]
pub struct AnalyticsArgs {
    /// Journal directory.
    pub journal: PathBuf,
    /// The instrument.
    #[command(flatten)]
    pub which: InstrumentArgs,
    /// Candle timeframe of the rows.
    #[arg(long, value_enum, default_value = "1m")]
    pub timeframe: TimeframeArg,
    /// Print CSV (the only format so far; accepted for clarity).
    #[arg(long)]
    pub csv: bool,
}

/// A journal's instrument, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Its id in the journal's events.
    pub id: InstrumentId,
    /// Display name.
    pub name: String,
    /// Spec (for the analytics configuration); scales are fixed up from the events.
    pub spec: InstrumentSpec,
}

/// Resolve `which` against the journal's `instruments.json` (or fall back to an id).
pub fn resolve(dir: &Path, which: &InstrumentArgs) -> Result<Resolved> {
    let infos = coldpath::import::read_instruments(dir)
        .with_context(|| format!("reading instruments of {}", dir.display()))?;
    let info = match (&which.symbol, which.instrument) {
        (Some(sym), _) => {
            let found = infos.iter().find(|i| i.symbol.eq_ignore_ascii_case(sym));
            match found {
                Some(i) => Some(i.clone()),
                None if infos.is_empty() && which.instrument.is_some() => None,
                None if infos.is_empty() => bail!(
                    "{} has no instruments.json to find {sym} in; pass --instrument <id>",
                    dir.display()
                ),
                None => bail!(
                    "symbol {sym} not in {} (known: {})",
                    dir.display(),
                    infos
                        .iter()
                        .map(|i| i.symbol.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        (None, Some(id)) => infos.iter().find(|i| i.id == id).cloned(),
        (None, None) => infos.iter().find(|i| i.id == 0).cloned(),
    };
    Ok(match info {
        Some(i) => {
            let venue = Venue::from_name(&i.venue).unwrap_or(Venue::BinanceSpot);
            let symbol = Symbol::new(i.symbol.as_bytes())
                .map_err(|e| anyhow::anyhow!("symbol {:?}: {e}", i.symbol))?;
            let mut spec = InstrumentSpec::new(
                venue,
                symbol,
                InstrumentKind::Spot,
                i.price_scale,
                i.qty_scale,
            );
            if let Ok(t) = Price::parse(i.tick.as_bytes(), i.price_scale) {
                if t.is_positive() {
                    spec.tick = t;
                }
            }
            Resolved {
                id: InstrumentId(i.id),
                name: i.symbol,
                spec,
            }
        }
        None => {
            let id = which.instrument.unwrap_or(0);
            let name = which.symbol.clone().unwrap_or_else(|| format!("#{id}"));
            let symbol = Symbol::new(b"UNKNOWN").map_err(|e| anyhow::anyhow!("{e}"))?;
            Resolved {
                id: InstrumentId(id),
                name,
                spec: InstrumentSpec::new(Venue::BinanceSpot, symbol, InstrumentKind::Spot, 0, 0),
            }
        }
    })
}

/// The trades (`Trade`/`AggTrade`) of instrument `id` in the journal at `dir`, in journal
/// order; fixes the spec's scales from the events when there was no `instruments.json`.
pub fn load_trades(dir: &Path, r: &mut Resolved) -> Result<Vec<MarketEvent>> {
    let mut t = open_tailer(dir).with_context(|| format!("opening journal {}", dir.display()))?;
    let mut out = Vec::new();
    while let Some(rec) = t
        .next()
        .with_context(|| format!("reading journal {}", dir.display()))?
    {
        if rec.kind != RecordKind::Market.as_u16() {
            continue;
        }
        let e: MarketEvent = decode(rec.payload)
            .with_context(|| format!("market record {} of {}", rec.seq, dir.display()))?;
        if e.instrument == r.id && matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
            out.push(e);
        }
    }
    if let Some(e) = out.first() {
        if r.spec.price_scale != e.price_scale || r.spec.qty_scale != e.qty_scale {
            r.spec.price_scale = e.price_scale;
            r.spec.qty_scale = e.qty_scale;
            r.spec.tick = Price(1);
        }
    }
    Ok(out)
}

/// A mantissa at `scale` as an exact decimal string.
pub fn fmt_mantissa(v: i128, scale: u8) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let neg = v < 0;
    let a = v.unsigned_abs();
    let p = 10u128.pow(u32::from(scale));
    let frac = format!("{:0width$}", a % p, width = usize::from(scale));
    let frac = frac.trim_end_matches('0');
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    let _ = write!(s, "{}", a / p);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(frac);
    }
    s
}

/// The CSV header.
pub const CSV_HEADER: &str = "time,open_time_ns,open,high,low,close,volume,buy_volume,sell_volume,\
rsi,adx,plus_di,minus_di,atr,zscore,autocorr,hurst,poc,vah,val,imbalance,cvd";

/// Runs `analytics`.
pub fn run(args: AnalyticsArgs) -> Result<ExitCode> {
    let _ = args.csv;
    let mut r = resolve(&args.journal, &args.which)?;
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
    let tf: Timeframe = args.timeframe.into();
    let mut analytics = SymbolAnalytics::new(CandleSource::Trades, &cfg.analytics);
    let mut flow = OrderFlow::new(cfg.orderflow)?;
    let mut profile = MarketProfile::new(cfg.profile)?;
    let window = match tf {
        Timeframe::M1 => Window::Tf1,
        Timeframe::M5 => Window::Tf2,
        Timeframe::M15 => Window::Tf3,
    };
    let (ps, qs) = (r.spec.price_scale, r.spec.qty_scale);
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "{CSV_HEADER}")?;
    for e in &trades {
        let z_before = analytics.zscore();
        let closes = analytics.on_event(e);
        if let Some(c) = closes.get(tf) {
            let end = c.candle.close_time_ns();
            flow.advance_to(end);
            profile.advance_to(end);
            let k = &c.candle;
            let s = &c.indicators;
            let va = profile.profile();
            let px = |p: Price| fmt_mantissa(i128::from(p.0), ps);
            let qty = |q: i64| fmt_mantissa(i128::from(q), qs);
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                format_unix_ns(k.open_time_ns),
                k.open_time_ns,
                px(k.open),
                px(k.high),
                px(k.low),
                px(k.close),
                qty(k.volume.0),
                qty(k.buy_volume.0),
                qty(k.sell_volume.0),
                opt(s.rsi),
                opt(s.adx),
                opt(s.plus_di),
                opt(s.minus_di),
                opt(s.atr),
                opt(z_before.filter(|z| z.ticks > 1).map(|z| z.z)),
                opt(s.autocorr),
                opt(s.hurst),
                va.map_or(String::new(), |v| px(v.poc)),
                va.map_or(String::new(), |v| px(v.vah)),
                va.map_or(String::new(), |v| px(v.val)),
                opt(flow.imbalance(window)),
                fmt_mantissa(flow.cvd(), qs),
            )?;
        }
        flow.on_event(e);
        profile.on_event(e);
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
