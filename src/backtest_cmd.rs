//! `algo-engine backtest` and `algo-engine sweep`: a run against the simulator with its report,
//! and many such runs over a parameter grid or an A/B pair.
//!
//! A backtest is exactly `algo-engine run` (same stages, same simulator, same journals), with
//! the live status off, followed by the report of `coldpath::backtest` computed from the
//! journals the run wrote. Nothing is modelled twice: the P&L in the report is the one the
//! strategy journaled.
//!
//! A sweep runs every configuration of a grid file (or the two files of `--ab`) on every
//! market as separate `backtest` child processes of this executable, a few at a time, each
//! with its own configuration file, journal and report directory, and with the metrics and
//! admin servers off so parallel runs never compete for a port. Child processes rather than
//! threads: the engine pins threads, installs signal handlers and leaks its instrument table
//! for the process's lifetime, and one run must not be able to disturb another. Recorded
//! journals given as markets are first turned into captures the simulator replays. The runs'
//! reports are then scored and ranked (`sweep.md`, `sweep.csv`), and in A/B mode the two
//! configurations' per-trade returns are compared (`ab.md`, `ab.json`).

use anyhow::{bail, Context, Result};
use clap::Args;
use coldpath::backtest::sweep::{
    self, ab_compare, ab_md, default_jobs, fixed_settings, journal_to_capture, read_table,
    run_table, score, sweep_csv, sweep_md, Grid, Market, Metric, RunResult, Variant,
};
use coldpath::backtest::{load_run, load_trades, write_report, Report};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::pipeline::RunArgs;

/// Arguments of `algo-engine backtest`.
#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// A recorded capture to replay (hftbacktest `<symbol>_*.gz`, relative to `ALGO_DATA_DIR`
    /// unless it exists as given): sets `[sim] market = "capture"`, its `capture` and
    /// `[venue] symbols` to the capture's symbol, over every `--config`.
    pub capture: Option<PathBuf>,
    /// Configuration file, merged over the embedded default; repeat to layer several (later
    /// files override earlier ones, table by table).
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Report directory (report.md, trades.csv, summary.json, equity.svg, drawdown.svg).
    /// Default: `backtest/<unix seconds>`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Journal directory; it must not hold a journal yet (a report covers one run). Default:
    /// `<out>/journal`.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Market pace: `max`, or a multiple of recorded time (default: `[sim] speed`).
    #[arg(long)]
    pub speed: Option<String>,
    /// Stop the run after this many seconds of wall-clock time (default: when the
    /// simulator's market ends).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Do not run: write the report of the existing journal at --journal.
    #[arg(long, requires = "journal")]
    pub report_only: bool,
}

/// Arguments of `algo-engine sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Grid file (`tuning/sweeps/*.toml`): base configuration, axes, markets, metric.
    #[arg(long, required_unless_present = "ab", conflicts_with = "ab")]
    pub grid: Option<PathBuf>,
    /// A/B mode: run configuration files A and B (each merged over the embedded default) on
    /// the same markets and compare their per-trade net returns.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub ab: Option<Vec<PathBuf>>,
    /// Markets, added to the grid's: capture files, `synthetic:SEED`, or recorded journal
    /// directories (converted to captures). Without any, runs use their configuration's
    /// `[sim]` (in A/B mode, A's for both).
    pub markets: Vec<String>,
    /// Runs at once (default: cores - 1, at least 1).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output directory (default: `sweeps/<grid or "ab">-<unix seconds>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Ranking metric: net_pnl, sharpe, sortino, profit_factor, win_rate, expectancy,
    /// max_drawdown, trades (default: the grid's `metric`, else net_pnl).
    #[arg(long)]
    pub metric: Option<String>,
    /// Per-run wall-clock limit in seconds (passed to each backtest as --duration).
    #[arg(long)]
    pub duration: Option<f64>,
    /// A/B: bootstrap resamples.
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    /// A/B: bootstrap seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write and check every run's configuration (and convert journal markets), list the
    /// runs, and stop without running them.
    #[arg(long)]
    pub dry_run: bool,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `algo-engine backtest`.
pub fn run_backtest(args: BacktestArgs) -> Result<ExitCode> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("backtest/{}", unix_secs())));
    let journal = args.journal.clone().unwrap_or_else(|| out.join("journal"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if !args.report_only {
        if ringbuffers::journal::list_segments(&journal).is_ok_and(|s| !s.is_empty()) {
            bail!(
                "journal {} already holds a run: a backtest report covers one run (pass another --journal, or --report-only to report it)",
                journal.display()
            );
        }
        let settings = match &args.capture {
            Some(c) => capture_settings(c)?,
            None => Vec::new(),
        };
        let mut cfg = Config::load_layers_with(&args.config, &settings)?;
        if cfg.venue.kind != "sim" {
            bail!(
                "a backtest trades against the simulator, but [venue] kind = {:?}: use `run` for a live venue",
                cfg.venue.kind
            );
        }
        // The one-screen live status is for people watching a run; a backtest prints its
        // report at the end instead.
        cfg.engine.status_interval_secs = 0.0;
        let run = RunArgs {
            config: None,
            profile: None,
            capture: None,
            journal: Some(journal.clone()),
            speed: args.speed.clone(),
            duration: args.duration,
            ring: None,
        };
        crate::engine::run(&run, cfg)?;
    }
    let data = load_run(&journal)
        .with_context(|| format!("reading the journals of {}", journal.display()))?;
    let report = Report::compute(&data);
    let title = journal.display().to_string();
    write_report(&out, &title, &report, &data)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    println!("backtest of {title}:");
    print!("{}", report.summary_table());
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "report: {}",
        out.join(coldpath::backtest::output::REPORT_MD).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The settings that make a run replay `capture`: the simulator's market and the capture's
/// symbol (the simulator, like the capture importer, takes it from the file name).
fn capture_settings(capture: &Path) -> Result<Vec<(String, toml::Value)>> {
    let path = if capture.exists() {
        capture.to_path_buf()
    } else {
        hotpath::datadir::data_dir().join(capture)
    };
    let symbol = coldpath::replay::load_hftbacktest(&path, Some(1))
        .with_context(|| format!("reading the capture {}", path.display()))?
        .symbol;
    let market = Market::Capture {
        name: symbol.clone(),
        path: std::path::absolute(&path)?,
        symbols: Some(vec![symbol]),
    };
    Ok(market.settings()?)
}

/// A run of the sweep waiting for, or holding, a process.
struct Job {
    variant: usize,
    market: String,
    dir: PathBuf,
    config: PathBuf,
}

/// Converts a recorded journal into a capture under `dir` and returns the market that plays
/// it (its symbols are the journal's).
fn journal_market(name: &str, journal: &Path, dir: &Path) -> Result<Market> {
    let infos = coldpath::import::read_instruments(journal)
        .with_context(|| format!("reading {}/instruments.json", journal.display()))?;
    let Some(first) = infos.first() else {
        bail!(
            "{} has no instruments.json: only journals written by run, record or import can be replayed",
            journal.display()
        );
    };
    let venue_dir = if first.venue.contains("usdm") {
        "usdm"
    } else {
        "spot"
    };
    let cap_dir = dir.join(venue_dir);
    std::fs::create_dir_all(&cap_dir).with_context(|| format!("creating {}", cap_dir.display()))?;
    // The simulator takes a capture's symbol from its file name (`btcusdt_<anything>`).
    let path = std::path::absolute(cap_dir.join(format!(
        "{}_{}.hftbt",
        first.symbol.to_ascii_lowercase(),
        name.replace('_', "-")
    )))?;
    let frames = crate::replay_cmd::read_raw_frames(journal)?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let st = journal_to_capture(
        frames
            .frames
            .iter()
            .map(|(ns, b, r)| (*ns, b.as_slice(), *r)),
        hotpath::instrument::InstrumentId(first.id),
        &mut w,
    )?;
    w.flush()?;
    eprintln!(
        "market {name}: {} -> {} ({} frames, {} snapshots, {} dropped)",
        journal.display(),
        path.display(),
        st.frames,
        st.snapshots,
        st.dropped
    );
    Ok(Market::Capture {
        name: name.to_string(),
        path,
        symbols: Some(infos.iter().map(|i| i.symbol.clone()).collect()),
    })
}

/// The market a configuration's own `[sim]` section describes, for running B on A's market.
fn config_market(cfg: &Config) -> Market {
    let symbols = Some(cfg.venue.symbols.clone());
    if cfg.sim.market == "synthetic" {
        Market::Synthetic {
            name: format!("synthetic-{}", cfg.sim.seed),
            seed: cfg.sim.seed,
            symbols,
        }
    } else {
        Market::Capture {
            name: cfg
                .sim
                .capture
                .file_name()
                .map(|f| {
                    f.to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap_or("capture")
                        .to_string()
                })
                .unwrap_or_else(|| "capture".into()),
            path: cfg.sim.capture.clone(),
            symbols,
        }
    }
}

/// Starts one backtest child process.
fn spawn(job: &Job, duration: Option<f64>) -> Result<Child> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let stdout = std::fs::File::create(job.dir.join("stdout.log"))?;
    let stderr = std::fs::File::create(job.dir.join("stderr.log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("backtest")
        .arg("--config")
        .arg(&job.config)
        .arg("--out")
        .arg(job.dir.join("report"))
        .arg("--journal")
        .arg(job.dir.join("journal"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some(d) = duration {
        cmd.arg("--duration").arg(d.to_string());
    }
    cmd.spawn().context("starting a backtest process")
}

/// What a finished child left behind.
fn collect(job: &Job, status: std::process::ExitStatus) -> RunResult {
    let mut r = RunResult {
        variant: job.variant,
        market: job.market.clone(),
        dir: job.dir.clone(),
        ..RunResult::default()
    };
    let fail = |why: String| {
        let err = std::fs::read_to_string(job.dir.join("stderr.log")).unwrap_or_default();
        let last = err
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .or_else(|| err.lines().last())
            .unwrap_or("");
        format!("{why}: {last}")
    };
    if !status.success() {
        r.error = Some(fail(format!("{status}")));
        return r;
    }
    let summary = job
        .dir
        .join("report")
        .join(coldpath::backtest::output::SUMMARY_JSON);
    let report: Result<Report> = std::fs::read_to_string(&summary)
        .map_err(anyhow::Error::from)
        .and_then(|s| serde_json::from_str(&s).map_err(anyhow::Error::from));
    let trades = load_trades(&job.dir.join("journal"));
    match (report, trades) {
        (Ok(rep), Ok(mut trades)) => {
            trades.sort_by_key(|t| t.close_ns);
            r.pnl = trades.iter().map(|t| t.net_f64()).collect();
            r.returns = trades.iter().filter_map(|t| t.net_return()).collect();
            r.report = Some(rep);
        }
        (Err(e), _) => r.error = Some(format!("{}: {e:#}", summary.display())),
        (_, Err(e)) => r.error = Some(format!("reading the trades: {e}")),
    }
    r
}

/// `algo-engine sweep`.
pub fn run_sweep(args: SweepArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // Variants with their base configuration tables, and the default markets.
    let (name, variants, bases, mut markets, grid_metric) = match (&args.grid, &args.ab) {
        (Some(grid_path), _) => {
            let grid = Grid::load(grid_path)?;
            let dir = grid_path.parent().unwrap_or(Path::new("."));
            let mut base = grid.base_table(dir)?;
            for (k, v) in &grid.set {
                sweep::set_dotted(&mut base, k, v.clone())?;
            }
            let variants = grid.combinations();
            let bases = vec![base; variants.len()];
            let markets = grid
                .markets
                .iter()
                .map(|m| Market::from_spec(m, dir))
                .collect::<Result<Vec<_>, _>>()?;
            let name = grid_path
                .file_stem()
                .map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
            (name, variants, bases, markets, grid.metric.clone())
        }
        (None, Some(ab)) => {
            let mut variants = Vec::new();
            let mut bases = Vec::new();
            for (id, f) in ["A", "B"].iter().zip(ab) {
                bases.push(read_table(f)?);
                variants.push(Variant {
                    id: id.to_string(),
                    label: f.display().to_string(),
                    params: Vec::new(),
                });
            }
            ("ab".to_string(), variants, bases, Vec::new(), None)
        }
        (None, None) => bail!("give --grid FILE or --ab A.toml B.toml"),
    };
    let metric = Metric::parse(
        args.metric
            .as_deref()
            .or(grid_metric.as_deref())
            .unwrap_or("net_pnl"),
    )?;
    for m in &args.markets {
        markets.push(Market::parse_arg(m)?);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("sweeps/{name}-{}", unix_secs())));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = std::path::absolute(&out)?;

    if markets.is_empty() {
        markets.push(match &args.ab {
            // Both sides of an A/B run play A's market.
            Some(ab) => config_market(&Config::load(Some(&ab[0]))?),
            None => Market::Config,
        });
    }
    for m in markets.iter_mut() {
        if let Market::Journal { name, dir } = m {
            *m = journal_market(name, dir, &out.join("markets").join(&*name))?;
        }
    }
    let mut names: Vec<String> = Vec::new();
    for m in &markets {
        if names.iter().any(|n| n == m.name()) {
            bail!(
                "two markets are named {:?}: name them apart in the grid",
                m.name()
            );
        }
        names.push(m.name().to_string());
    }

    // Every run's configuration, checked before anything starts.
    let mut pending = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        for m in &markets {
            let dir = out.join("runs").join(format!("{}-{}", v.id, m.name()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let table = run_table(&bases[vi], &[&v.params, &m.settings()?, &fixed_settings()])?;
            let config = dir.join("config.toml");
            std::fs::write(&config, toml::to_string(&table)?)
                .with_context(|| format!("writing {}", config.display()))?;
            Config::load(Some(&config))
                .with_context(|| format!("configuration of {} on {}", v.id, m.name()))?;
            pending.push(Job {
                variant: vi,
                market: m.name().to_string(),
                dir,
                config,
            });
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or_else(|| default_jobs(cores)).max(1);
    let total = pending.len();
    eprintln!(
        "sweep: {} configurations x {} markets = {total} runs, {jobs} at a time, into {}",
        variants.len(),
        markets.len(),
        out.display()
    );

    if args.dry_run {
        for j in &pending {
            println!(
                "{} on {}: {}",
                variants[j.variant].id,
                j.market,
                j.config.display()
            );
        }
        println!("sweep: {total} runs planned (dry run)");
        return Ok(ExitCode::SUCCESS);
    }

    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    pending.reverse();
    let mut running: Vec<(Job, Child)> = Vec::new();
    let mut results: Vec<RunResult> = Vec::new();
    while !pending.is_empty() || !running.is_empty() {
        if stop.load(Ordering::Relaxed) {
            for (_, c) in running.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            bail!(
                "stopped by a signal after {} of {total} runs",
                results.len()
            );
        }
        while running.len() < jobs {
            let Some(job) = pending.pop() else { break };
            let child = spawn(&job, args.duration)?;
            running.push((job, child));
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].1.try_wait()? {
                Some(status) => {
                    let (job, _) = running.swap_remove(i);
                    let r = collect(&job, status);
                    eprintln!(
                        "[{}/{total}] {} on {}: {}",
                        results.len() + 1,
                        variants[job.variant].id,
                        job.market,
                        match (&r.report, &r.error) {
                            (Some(rep), _) =>
                                format!("{} trades, net {:.4}", rep.trades, rep.net_pnl),
                            (None, e) => format!("failed ({})", e.as_deref().unwrap_or("?")),
                        }
                    );
                    results.push(r);
                }
                None => i += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Tables in a stable order whatever order the runs finished in.
    results.sort_by(|a, b| (a.variant, &a.market).cmp(&(b.variant, &b.market)));

    let scores = score(&variants, &names, &results, metric);
    let axes: Vec<String> = variants
        .first()
        .map(|v| v.params.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let title = args
        .grid
        .as_ref()
        .map(|g| g.display().to_string())
        .unwrap_or_else(|| "A/B".into());
    let md = sweep_md(&title, metric, &scores, &results, &variants);
    std::fs::write(out.join("sweep.md"), &md)?;
    std::fs::write(out.join("sweep.csv"), sweep_csv(&scores, &variants, &axes))?;
    if args.ab.is_some() {
        let ab = ab_compare(
            &variants[0],
            &variants[1],
            &results,
            args.resamples,
            args.seed,
        );
        let text = ab_md(&ab);
        std::fs::write(out.join("ab.md"), &text)?;
        std::fs::write(out.join("ab.json"), serde_json::to_string_pretty(&ab)?)?;
        print!("{text}");
    }
    // The ranking table, without the per-run section.
    print!("{}", md.split("\n## Runs").next().unwrap_or(&md));
    println!(
        "sweep: {total} runs in {:.1?}; tables in {}",
        started.elapsed(),
        out.display()
    );
    let failed = results.iter().filter(|r| r.report.is_none()).count();
    if failed == total && total > 0 {
        bail!(
            "every run failed; see runs/*/stderr.log under {}",
            out.display()
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
