//! `algo-engine run`: wiring the hot path onto pinned threads as a profile says.
//!
//! Today's pipeline: a frame source (a recorded Binance capture replayed through the real feed
//! stage, until the venue simulator of the gateway work becomes the default venue) -> feed
//! stage (decode, L2 books, journal) -> SPSC ring -> strategy stage (analytics, the four-level
//! decision, its own journal under `<journal>/strategy`) -> SPSC ring of order intents, which
//! the main thread drains and counts until the gateway stage exists. The same stage objects run
//! fused on one core or split across cores; only the profile changes.

use anyhow::{bail, Context, Result};
use clap::Args;
use hotpath::book::{BookSet, SyncMode};
use hotpath::event::{MarketEvent, OrderIntent};
use hotpath::feed::{FeedCounters, FeedStage, ReplaySource};
use hotpath::instrument::InstrumentTable;
use hotpath::latency::LatencyReport;
use hotpath::risk::SymbolRisk;
use hotpath::runtime::{Profile, Runtime, Stage, ThreadReport};
use hotpath::signals::SymbolConfig;
use hotpath::strategy::{Strategy, StrategyIo, StrategyReport, StrategyStage};
use ringbuffers::spsc::Consumer;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `algo-engine run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file, merged over the embedded default (`src/config/default.toml`; print
    /// it with `algo-engine config`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Thread layout (default: `[engine] profile`).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Offline mode: replay this capture (hftbacktest `.gz`) straight into the feed stage, with
    /// no venue and no orders (the intents are counted). Without it the engine runs against
    /// the configured venue, by default the embedded simulator.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Journal directory (created; an existing journal is continued). Default: `[engine]
    /// journal`.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Market pace: `max`, or a multiple of recorded time such as `1x` or `10x` (default:
    /// `[sim] speed`; offline: max).
    #[arg(long)]
    pub speed: Option<String>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Capacity of the feed -> strategy ring (power of two; default `[engine] ring`).
    #[arg(long)]
    pub ring: Option<usize>,
}

/// `--speed`: `max` (None) or a positive multiple of recorded time (`1x`, `10x`).
pub fn parse_speed(s: &str) -> Result<Option<f64>> {
    if s == "max" {
        return Ok(None);
    }
    let x: f64 = s
        .trim_end_matches('x')
        .parse()
        .with_context(|| format!("--speed '{s}': use max, 1x, 10x, ..."))?;
    if !(x > 0.0 && x.is_finite()) {
        bail!("--speed '{s}' must be positive");
    }
    Ok(Some(x))
}

/// Runs the engine: against the configured venue, or offline over `--capture`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let cfg = crate::config::Config::load(args.config.as_deref())?;
    match args.capture.clone() {
        Some(capture) => run_offline(args, cfg, capture),
        None => crate::engine::run(&args, cfg),
    }
}

/// Offline mode: market time after which an intent (never answered) is forgotten.
const OFFLINE_UNANSWERED_NS: u64 = 10_000_000_000;

/// Offline mode: the capture replayed straight into the feed stage, no venue.
fn run_offline(
    args: RunArgs,
    mut cfg: crate::config::Config,
    capture: PathBuf,
) -> Result<ExitCode> {
    // No gateway will answer the intents (they are only counted): an entry nobody answers is
    // forgotten after this much market time, so a symbol can decide again. Written beside the
    // journal with the rest of the configuration, so a replay decides the same.
    if cfg.risk.pending_timeout_ns > OFFLINE_UNANSWERED_NS {
        cfg.risk.pending_timeout_ns = OFFLINE_UNANSWERED_NS;
        coldpath::backtest::sweep::set_dotted(
            &mut cfg.merged,
            "risk.pending_timeout_ns",
            toml::Value::Integer(OFFLINE_UNANSWERED_NS as i64),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let speed = parse_speed(args.speed.as_deref().unwrap_or("max"))?;
    let profile = Profile::load(args.profile.as_ref().unwrap_or(&cfg.engine.profile))?;
    let journal = args.journal.clone().unwrap_or(cfg.engine.journal.clone());
    let ring = args.ring.unwrap_or(cfg.engine.ring);
    if !capture.is_file() {
        bail!(
            "capture {} not found (set ALGO_DATA_DIR, pass --capture, or run scripts/fetch-data.sh)",
            capture.display()
        );
    }

    let load_start = Instant::now();
    let input = coldpath::replay::load_hftbacktest(&capture, None)
        .with_context(|| format!("loading {}", capture.display()))?;
    let source = ReplaySource::new(
        input.frames.iter().map(|(ns, f)| (*ns, f.as_slice())),
        speed,
    );
    let decoder = input.decoder();
    eprintln!(
        "loaded {} frames from {} in {:.2?}",
        source.len(),
        capture.display(),
        load_start.elapsed()
    );

    std::fs::create_dir_all(&journal).with_context(|| format!("creating {}", journal.display()))?;
    let appender = ringbuffers::journal::Appender::open(&journal, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", journal.display()))?;
    coldpath::import::write_instruments(&journal, &input.table, "builtin")?;
    cfg.write_beside(&journal)?;

    let (tx, rx) = ringbuffers::spsc::channel(ring.next_power_of_two());
    let (feed, feed_done, feed_report) = crate::pipeline::feed_stage(
        source,
        decoder,
        appender,
        tx,
        BookSet::for_table(&input.table, SyncMode::Snapshot),
    );
    let mut stages: Vec<Box<dyn Stage>> = vec![feed];
    let params = StrategyParams::from_config(&cfg);
    let mut seat = StrategySeat::new(&input.table, &params, &journal, rx, feed_done)?;
    stages.push(Box::new(seat.stage.take().expect("fresh seat")));

    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let started = Instant::now();
    let rt = crate::pipeline::start_hot_threads(&profile, stages, stop.clone())?;
    let mut stopped_early = false;
    while !rt.is_done() {
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            rt.request_stop();
            stopped_early = true;
            break;
        }
        seat.drain_intents();
        std::thread::sleep(Duration::from_millis(20));
    }
    let threads = rt.join();
    seat.drain_intents();
    let elapsed = started.elapsed();

    let feed = *feed_report.lock().expect("feed report");
    let strategy = *seat.report.lock().expect("strategy report");
    print_threads(&profile, &threads)?;
    println!(
        "feed: {} frames, {} events, {} decode errors, {} book gaps, {} oversized, {} backpressure polls, {} journal errors in {:.3?} ({:.0} frames/s)",
        feed.frames,
        feed.events,
        feed.decode_errors,
        feed.book_gaps,
        feed.oversized,
        feed.backpressure,
        feed.journal_errors,
        elapsed,
        feed.frames as f64 / elapsed.as_secs_f64()
    );
    print_strategy(&seat);
    println!(
        "journal: {} (inspect with `algo-engine journal inspect {}`)",
        journal.display(),
        journal.display()
    );
    stopped_early |= stop.load(std::sync::atomic::Ordering::Relaxed);
    if !stopped_early && strategy.events != feed.events {
        bail!(
            "{} events published but {} received: the ring lost events",
            feed.events,
            strategy.events
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The feed stage as every command wires it ([`FeedStage::engine`]), boxed for the runtime,
/// with the flag it sets when its source ends and its report.
pub fn feed_stage<S, D>(
    source: S,
    decoder: D,
    journal: ringbuffers::journal::Appender,
    output: ringbuffers::spsc::Producer<MarketEvent>,
    books: BookSet,
) -> (Box<dyn Stage>, Arc<AtomicBool>, Arc<Mutex<FeedCounters>>)
where
    S: hotpath::feed::FrameSource + Send + 'static,
    D: hotpath::feed::FrameDecoder + Send + 'static,
{
    let (stage, done, report) = FeedStage::engine(source, decoder, journal, output, books);
    (Box::new(stage), done, report)
}

/// The strategy's thresholds: `[strategy]` and `[risk]` of the configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct StrategyParams {
    /// Decision thresholds (every symbol).
    pub signal: hotpath::signals::SignalConfig,
    /// The risk layer.
    pub risk: hotpath::risk::RiskConfig,
}

impl StrategyParams {
    /// The thresholds of `cfg`.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        StrategyParams {
            signal: cfg.strategy,
            risk: cfg.risk,
        }
    }
}

/// The strategy stage as `run` and `record` wire it: its journal under `<journal>/strategy`
/// (one appender per journal directory), latency histograms, and the intent ring's far end.
pub struct StrategySeat {
    /// The stage, taken by the caller to place it on a thread.
    pub stage: Option<StrategyStage>,
    /// Counters, filled at shutdown.
    pub report: Arc<Mutex<StrategyReport>>,
    /// Feed -> strategy latency histograms, filled at shutdown.
    pub latency: Arc<Mutex<LatencyReport>>,
    /// Where the intents arrive until the gateway stage consumes them.
    pub intents: Consumer<OrderIntent>,
    /// Intents taken off the ring so far.
    pub intents_drained: u64,
}

impl StrategySeat {
    /// A strategy over every instrument of `table`, reading the feed's ring `input`.
    pub fn new(
        table: &InstrumentTable,
        params: &StrategyParams,
        journal: &std::path::Path,
        input: Consumer<MarketEvent>,
        upstream_done: Arc<AtomicBool>,
    ) -> Result<StrategySeat> {
        Self::with_rings(
            table,
            params,
            journal,
            input,
            upstream_done,
            None,
            None,
            None,
        )
    }

    /// As [`new`](Self::new), with the gateway's execution events coming back on `execs`
    /// (fills drive positions, exits and P&L) and operator commands (halt, resume, watchlist)
    /// arriving on `control`; or, in a replay, both applied from a recorded `schedule`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_rings(
        table: &InstrumentTable,
        params: &StrategyParams,
        journal: &std::path::Path,
        input: Consumer<MarketEvent>,
        upstream_done: Arc<AtomicBool>,
        execs: Option<Consumer<hotpath::event::ExecEvent>>,
        control: Option<Consumer<hotpath::event::Control>>,
        schedule: Option<hotpath::strategy::Schedule>,
    ) -> Result<StrategySeat> {
        let dir = journal.join("strategy");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let appender = ringbuffers::journal::Appender::open(&dir, hotpath::codec::journal_config())
            .with_context(|| format!("opening journal {}", dir.display()))?;
        let strategy = Strategy::with_risk(
            table,
            |spec| SymbolConfig {
                signal: params.signal,
                ..SymbolConfig::for_instrument(spec)
            },
            params.risk,
            SymbolRisk::for_instrument,
        )
        .context("configuring the strategy")?;
        let (output, intents) = ringbuffers::spsc::channel(1024);
        let report = Arc::new(Mutex::new(StrategyReport::default()));
        let latency = Arc::new(Mutex::new(LatencyReport::default()));
        let stage = StrategyStage::new(
            strategy,
            StrategyIo {
                input,
                output,
                assume_books_proven: false,
                journal: Some(appender),
                upstream_done,
                batch: 256,
                report: report.clone(),
            },
        )
        .with_latency(latency.clone());
        let stage = match execs {
            Some(e) => stage.with_exec(e),
            None => stage,
        };
        let stage = match control {
            Some(c) => stage.with_control(c),
            None => stage,
        };
        let stage = match schedule {
            Some(s) => stage.with_schedule(s),
            None => stage,
        };
        Ok(StrategySeat {
            stage: Some(stage),
            report,
            latency,
            intents,
            intents_drained: 0,
        })
    }

    /// Takes every intent off the ring (the gateway's seat, until it exists).
    pub fn drain_intents(&mut self) {
        while self.intents.try_pop().is_some() {
            self.intents_drained += 1;
        }
    }
}

/// One line per hot thread: where it ran and how busy it was. Fails if a thread panicked.
pub fn print_threads(profile: &Profile, threads: &[ThreadReport]) -> Result<()> {
    println!("profile {} ({})", profile.name, profile.description);
    for t in threads {
        if t.rounds == u64::MAX {
            bail!("thread {} panicked", t.name);
        }
        println!(
            "  thread {:<10} core {:<5} pinned {:<5} stages {:?}  rounds {}  idle {}  items {}",
            t.name,
            t.core.map_or("-".into(), |c| c.to_string()),
            t.pinned,
            t.stages,
            t.rounds,
            t.idle_rounds,
            t.items
        );
    }
    Ok(())
}

/// Starts the hot threads the way every command does: first every thread the process has by
/// now (all cold: tailers, HTTP servers, fetchers, this one) is confined to the profile's
/// housekeeping cores, so none of them can preempt a pinned stage, then the stages start on
/// their own cores (see `hotpath::affinity`). A machine without a free core runs unconfined,
/// with a warning.
pub fn start_hot_threads(
    profile: &Profile,
    stages: Vec<Box<dyn Stage>>,
    stop: Arc<AtomicBool>,
) -> Result<Runtime> {
    match profile.confine_cold_threads() {
        Ok(c) if c.skipped.is_some() => tracing::warn!("{c}"),
        Ok(c) => tracing::info!("{c}"),
        Err(e) => tracing::warn!(error = %e, "cold threads not confined"),
    }
    Ok(Runtime::spawn(profile, stages, stop)?)
}

/// The strategy's counters and the feed -> strategy latency percentiles.
pub fn print_strategy(seat: &StrategySeat) {
    let r = *seat.report.lock().expect("strategy report");
    let lat = seat.latency.lock().expect("latency report");
    println!(
        "strategy: {} events, {} decisions ({} long, {} short entries), {} intents, {} risk rejects, {} exits, {} closed trades, {} executions, {} journal errors",
        r.events,
        r.decisions,
        r.entries_long,
        r.entries_short,
        r.intents,
        r.risk_rejects,
        r.exits,
        r.trade_closes,
        r.exec_events,
        r.journal_errors
    );
    let pct = |h: &hdrhistogram::Histogram<u64>| {
        format!(
            "p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    };
    if lat.events > 0 {
        println!("latency receive->decoded:  {}", pct(&lat.decode_ns));
        println!("latency decoded->strategy: {}", pct(&lat.hop_ns));
    }
}
