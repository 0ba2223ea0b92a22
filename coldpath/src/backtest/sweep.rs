//! Parameter sweeps and A/B runs: grid files, run configurations, markets, ranking, tables.
//!
//! Why here and not in the CLI: everything except starting processes is a pure function of
//! files and numbers (expanding a grid, writing a run's configuration, turning a recorded
//! journal into a capture the simulator can play, scoring and ranking the runs, the A/B
//! statistics), and belongs where it can be unit-tested without running an engine.
//! `algo-engine sweep` only adds the process pool.
//!
//! # Grid files (`tuning/sweeps/*.toml`)
//!
//! ```toml
//! base = "../profiles/backtest.toml"   # optional, relative to the grid file
//! metric = "net_pnl"                   # ranking metric (see `Metric`)
//!
//! [set]                                # applied to every run (dotted keys)
//! "engine.warmup_candles" = 110
//!
//! [axes]                               # the cartesian product of these is swept
//! "strategy.min_confluence" = [2.5, 3.0, 3.5]
//! "risk.monitor.trailing_stop_pct" = [0.004, 0.005]
//!
//! [[markets]]                          # every combination runs on every market
//! name = "btc-0808"
//! capture = "binance/spot/btcusdt_20240808.gz"
//! [[markets]]
//! synthetic_seed = 7
//! ```
//!
//! Keys are the configuration's own (`algo-engine config` prints them); a misspelt key fails
//! when the run configurations are checked, before anything runs. Without markets (in the
//! file or on the command line) each run uses the `[sim]` section of its configuration.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hotpath::feed::RestBody;
use hotpath::instrument::InstrumentId;
use serde::{Deserialize, Serialize};

use super::abtest::{bootstrap_mean_diff, welch, Bootstrap, Welch};
use super::{fmt_money, fmt_opt, metrics, Report};

/// Why a sweep could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A file could not be read or parsed.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// The grid or a setting is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// One market of a grid file (`[[markets]]`): exactly one of `capture`, `synthetic_seed`,
/// `journal`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSpec {
    /// Name in the tables (default: derived from the source).
    #[serde(default)]
    pub name: Option<String>,
    /// A capture the simulator replays (relative to `ALGO_DATA_DIR` unless absolute).
    #[serde(default)]
    pub capture: Option<PathBuf>,
    /// A seed of the simulator's synthetic market.
    #[serde(default)]
    pub synthetic_seed: Option<u64>,
    /// A recorded journal, converted to a capture (relative to the grid file).
    #[serde(default)]
    pub journal: Option<PathBuf>,
    /// Symbols to trade on it (`[venue] symbols`; default: the configuration's, or for a
    /// journal the journal's).
    #[serde(default)]
    pub symbols: Option<Vec<String>>,
}

/// A grid file (see the module documentation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Base configuration, relative to the grid file.
    #[serde(default)]
    pub base: Option<PathBuf>,
    /// Ranking metric name (default `net_pnl`).
    #[serde(default)]
    pub metric: Option<String>,
    /// Settings of every run, by dotted key.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Swept settings, by dotted key.
    #[serde(default)]
    pub axes: BTreeMap<String, Vec<toml::Value>>,
    /// Markets every combination runs on.
    #[serde(default)]
    pub markets: Vec<MarketSpec>,
}

/// A market a run plays.
#[derive(Debug, Clone, PartialEq)]
pub enum Market {
    /// The `[sim]` section of the run's configuration, unchanged.
    Config,
    /// A capture file.
    Capture {
        /// Table name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Symbols to trade, if set.
        symbols: Option<Vec<String>>,
    },
    /// The synthetic generator with a seed.
    Synthetic {
        /// Table name.
        name: String,
        /// Generator seed.
        seed: u64,
        /// Symbols to trade, if set.
        symbols: Option<Vec<String>>,
    },
    /// A recorded journal (to be converted with [`journal_to_capture`] before it runs).
    Journal {
        /// Table name.
        name: String,
        /// The journal directory.
        dir: PathBuf,
    },
}

fn stem(p: &Path) -> String {
    p.file_name()
        .and_then(|f| f.to_str())
        .map(|f| f.split('.').next().unwrap_or(f).to_string())
        .unwrap_or_else(|| "market".into())
}

impl Market {
    /// A market named on the command line: `synthetic:SEED`, an existing directory (a
    /// journal), or otherwise a capture file.
    pub fn parse_arg(s: &str) -> Result<Market, SweepError> {
        if let Some(seed) = s.strip_prefix("synthetic:") {
            let seed = seed
                .parse()
                .map_err(|_| SweepError::Invalid(format!("market {s:?}: synthetic:<seed>")))?;
            return Ok(Market::Synthetic {
                name: format!("synthetic-{seed}"),
                seed,
                symbols: None,
            });
        }
        let p = PathBuf::from(s);
        Ok(if p.is_dir() {
            Market::Journal {
                name: stem(&p),
                dir: p,
            }
        } else {
            Market::Capture {
                name: stem(&p),
                path: p,
                symbols: None,
            }
        })
    }

    /// The market of a grid file's `[[markets]]` entry; `dir` is the grid file's directory.
    pub fn from_spec(spec: &MarketSpec, dir: &Path) -> Result<Market, SweepError> {
        let symbols = spec.symbols.clone();
        let m =
            match (&spec.capture, spec.synthetic_seed, &spec.journal) {
                (Some(path), None, None) => Market::Capture {
                    name: spec.name.clone().unwrap_or_else(|| stem(path)),
                    path: path.clone(),
                    symbols,
                },
                (None, Some(seed), None) => Market::Synthetic {
                    name: spec
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("synthetic-{seed}")),
                    seed,
                    symbols,
                },
                (None, None, Some(j)) => {
                    let dir = if j.is_absolute() {
                        j.clone()
                    } else {
                        dir.join(j)
                    };
                    Market::Journal {
                        name: spec.name.clone().unwrap_or_else(|| stem(&dir)),
                        dir,
                    }
                }
                _ => return Err(SweepError::Invalid(
                    "each [[markets]] entry needs exactly one of capture, synthetic_seed, journal"
                        .into(),
                )),
            };
        Ok(m)
    }

    /// Its name in the tables.
    pub fn name(&self) -> &str {
        match self {
            Market::Config => "config",
            Market::Capture { name, .. }
            | Market::Synthetic { name, .. }
            | Market::Journal { name, .. } => name,
        }
    }

    /// The configuration settings that select it (`[sim]`, `[venue] symbols`). A journal has
    /// none until converted: that is an error.
    pub fn settings(&self) -> Result<Vec<(String, toml::Value)>, SweepError> {
        let s = |v: &str| toml::Value::String(v.to_string());
        let symbols = |syms: &Option<Vec<String>>, out: &mut Vec<(String, toml::Value)>| {
            if let Some(list) = syms {
                out.push((
                    "venue.symbols".into(),
                    toml::Value::Array(list.iter().map(|x| s(x)).collect()),
                ));
            }
        };
        let mut out = Vec::new();
        match self {
            Market::Config => {}
            Market::Capture {
                path, symbols: sy, ..
            } => {
                out.push(("sim.market".into(), s("capture")));
                out.push(("sim.capture".into(), s(&path.to_string_lossy())));
                symbols(sy, &mut out);
            }
            Market::Synthetic {
                seed, symbols: sy, ..
            } => {
                out.push(("sim.market".into(), s("synthetic")));
                let seed = i64::try_from(*seed)
                    .map_err(|_| SweepError::Invalid(format!("seed {seed} is too large")))?;
                out.push(("sim.seed".into(), toml::Value::Integer(seed)));
                symbols(sy, &mut out);
            }
            Market::Journal { name, dir } => {
                return Err(SweepError::Invalid(format!(
                    "market {name} ({}) must be converted to a capture first",
                    dir.display()
                )))
            }
        }
        Ok(out)
    }
}

/// Parses a TOML file into a table.
pub fn read_table(path: &Path) -> Result<toml::Table, SweepError> {
    let err = |msg: String| SweepError::File {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string()))
}

impl Grid {
    /// Reads a grid file.
    pub fn load(path: &Path) -> Result<Grid, SweepError> {
        let t = read_table(path)?;
        let g: Grid = toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| SweepError::File {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })?;
        if let Some((k, _)) = g.axes.iter().find(|(_, v)| v.is_empty()) {
            return Err(SweepError::Invalid(format!("axis {k:?} has no values")));
        }
        Ok(g)
    }

    /// The base configuration table (empty without `base`); `dir` is the grid file's directory.
    pub fn base_table(&self, dir: &Path) -> Result<toml::Table, SweepError> {
        match &self.base {
            Some(b) => read_table(&if b.is_absolute() {
                b.clone()
            } else {
                dir.join(b)
            }),
            None => Ok(toml::Table::new()),
        }
    }

    /// Every combination of the axes (the cartesian product, axes in key order, the last
    /// axis varying fastest); one empty combination without axes.
    pub fn combinations(&self) -> Vec<Variant> {
        let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
        for (k, values) in &self.axes {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((k.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        combos
            .into_iter()
            .enumerate()
            .map(|(i, params)| Variant {
                id: format!("c{:03}", i + 1),
                label: label(&params),
                params,
            })
            .collect()
    }
}

/// `key=value, ...` of a combination (`base` when empty).
pub fn label(params: &[(String, toml::Value)]) -> String {
    if params.is_empty() {
        return "base".into();
    }
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One configuration of a sweep: a grid combination, or one side of an A/B run.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Short id (`c001`, `A`, `B`): run directories are named after it.
    pub id: String,
    /// Human-readable description.
    pub label: String,
    /// Its settings, by dotted key.
    pub params: Vec<(String, toml::Value)>,
}

/// Sets `key` (dotted: `risk.monitor.trailing_stop_pct`) in `t`, creating tables on the way.
pub fn set_dotted(t: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), SweepError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| SweepError::Invalid(format!("setting {key:?}: empty key")))?;
    let mut cur = t;
    for p in parts {
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next
            .as_table_mut()
            .ok_or_else(|| SweepError::Invalid(format!("setting {key:?}: {p:?} is not a table")))?;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Merges `over` into `base`: tables key by key, any other value replaced (the rule by which
/// the engine layers a configuration file over its embedded default), so several files can
/// be layered into one.
pub fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Settings of every run of a sweep, whatever its grid says: no metrics exporter and no admin
/// API (runs in parallel would fight over their ports, and nobody reads them), no live status.
pub fn fixed_settings() -> Vec<(String, toml::Value)> {
    vec![
        ("metrics.enabled".into(), toml::Value::Boolean(false)),
        ("admin.enabled".into(), toml::Value::Boolean(false)),
        (
            "engine.status_interval_secs".into(),
            toml::Value::Float(0.0),
        ),
    ]
}

/// The configuration of one run: `base` with each layer of settings applied in order.
pub fn run_table(
    base: &toml::Table,
    layers: &[&[(String, toml::Value)]],
) -> Result<toml::Table, SweepError> {
    let mut t = base.clone();
    for layer in layers {
        for (k, v) in *layer {
            set_dotted(&mut t, k, v.clone())?;
        }
    }
    Ok(t)
}

/// How many runs a machine with `cores` cores runs at once by default: one core is left for
/// the parent and the system, at least one run.
pub fn default_jobs(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// What a journal conversion kept and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CaptureStats {
    /// Stream frames written.
    pub frames: u64,
    /// REST depth snapshots written (those of the capture's instrument).
    pub snapshots: u64,
    /// Frames dropped: candle history, snapshots of other instruments, and frames that are
    /// not combined-stream messages (subscription answers, errors).
    pub dropped: u64,
}

/// Writes a journal's raw frames `(receive ns, bytes, REST body)` as an hftbacktest capture
/// (`<recv_ns> <JSON>` lines) the simulator can replay.
///
/// Kept: combined-stream WebSocket messages, and the REST depth snapshots of `instrument`
/// (a capture's inline snapshots belong to its one file-name symbol). Dropped: candle
/// history (the simulator serves its own before the tape) and everything else. Line breaks
/// inside a JSON body are whitespace and become spaces, so each frame stays one line.
pub fn journal_to_capture<'a>(
    frames: impl IntoIterator<Item = (u64, &'a [u8], Option<RestBody>)>,
    instrument: InstrumentId,
    out: &mut impl Write,
) -> io::Result<CaptureStats> {
    let mut st = CaptureStats::default();
    for (ns, bytes, rest) in frames {
        let keep = match rest {
            Some(RestBody::Depth(id)) => id == instrument,
            Some(RestBody::Klines(_)) => false,
            None => {
                let b = bytes.trim_ascii_start();
                b.starts_with(b"{\"stream\":")
            }
        };
        if !keep {
            st.dropped += 1;
            continue;
        }
        match rest {
            Some(_) => st.snapshots += 1,
            None => st.frames += 1,
        }
        write!(out, "{ns} ")?;
        let line: Vec<u8> = bytes
            .trim_ascii()
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        out.write_all(&line)?;
        out.write_all(b"\n")?;
    }
    Ok(st)
}

/// The outcome of one run of a sweep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunResult {
    /// Index of its variant.
    pub variant: usize,
    /// Market name.
    pub market: String,
    /// The run's directory (configuration, journal, report, logs).
    pub dir: PathBuf,
    /// Its report (`None` if the run failed).
    pub report: Option<Report>,
    /// Net P&L of each closed trade, in close order.
    pub pnl: Vec<f64>,
    /// Net return on entry notional of each closed trade.
    pub returns: Vec<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A ranking metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Net P&L summed over the markets (default).
    NetPnl,
    /// Sharpe ratio of the per-trade returns of every market pooled.
    Sharpe,
    /// Sortino ratio of the pooled per-trade returns.
    Sortino,
    /// Profit factor of the pooled trades.
    ProfitFactor,
    /// Win rate of the pooled trades.
    WinRate,
    /// Mean net P&L per pooled trade.
    Expectancy,
    /// The worst market's maximum drawdown (smaller ranks higher).
    MaxDrawdown,
    /// Closed trades.
    Trades,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 8] = [
        Metric::NetPnl,
        Metric::Sharpe,
        Metric::Sortino,
        Metric::ProfitFactor,
        Metric::WinRate,
        Metric::Expectancy,
        Metric::MaxDrawdown,
        Metric::Trades,
    ];

    /// Its name (`net_pnl`, `sharpe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::NetPnl => "net_pnl",
            Metric::Sharpe => "sharpe",
            Metric::Sortino => "sortino",
            Metric::ProfitFactor => "profit_factor",
            Metric::WinRate => "win_rate",
            Metric::Expectancy => "expectancy",
            Metric::MaxDrawdown => "max_drawdown",
            Metric::Trades => "trades",
        }
    }

    /// The metric named `s`.
    pub fn parse(s: &str) -> Result<Metric, SweepError> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                SweepError::Invalid(format!("metric {s:?}: expected one of {names:?}"))
            })
    }

    fn higher_is_better(self) -> bool {
        self != Metric::MaxDrawdown
    }
}

/// A variant's results over every market.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Rank by the chosen metric (1 = best).
    pub rank: usize,
    /// Variant id.
    pub id: String,
    /// Variant description.
    pub label: String,
    /// Runs that finished.
    pub runs: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Closed trades over every market.
    pub trades: usize,
    /// Net P&L summed over the markets.
    pub net_pnl: f64,
    /// Sharpe of the pooled per-trade returns.
    pub sharpe: Option<f64>,
    /// Sortino of the pooled per-trade returns.
    pub sortino: Option<f64>,
    /// Profit factor of the pooled trades.
    pub profit_factor: Option<f64>,
    /// Win rate of the pooled trades.
    pub win_rate: Option<f64>,
    /// Mean net P&L per pooled trade.
    pub expectancy: Option<f64>,
    /// The worst market's maximum drawdown.
    pub max_drawdown: Option<f64>,
    /// Net P&L per market (`None`: the run failed).
    pub per_market: Vec<(String, Option<f64>)>,
}

impl Score {
    /// The value of `m`.
    pub fn value(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::NetPnl => (self.runs > 0).then_some(self.net_pnl),
            Metric::Sharpe => self.sharpe,
            Metric::Sortino => self.sortino,
            Metric::ProfitFactor => self.profit_factor,
            Metric::WinRate => self.win_rate,
            Metric::Expectancy => self.expectancy,
            Metric::MaxDrawdown => self.max_drawdown,
            Metric::Trades => (self.runs > 0).then_some(self.trades as f64),
        }
    }
}

/// Scores every variant over its runs and ranks them by `metric` (undefined values last,
/// ties in variant order).
pub fn score(
    variants: &[Variant],
    markets: &[String],
    results: &[RunResult],
    metric: Metric,
) -> Vec<Score> {
    let mut scores: Vec<Score> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.variant == i).collect();
            let ok: Vec<&Report> = runs.iter().filter_map(|r| r.report.as_ref()).collect();
            let pnl: Vec<f64> = runs
                .iter()
                .filter(|r| r.report.is_some())
                .flat_map(|r| r.pnl.iter().copied())
                .collect();
            let ret: Vec<f64> = runs
                .iter()
                .filter(|r| r.report.is_some())
                .flat_map(|r| r.returns.iter().copied())
                .collect();
            Score {
                rank: 0,
                id: v.id.clone(),
                label: v.label.clone(),
                runs: ok.len(),
                failed: runs.len() - ok.len(),
                trades: ok.iter().map(|r| r.trades).sum(),
                net_pnl: ok.iter().map(|r| r.net_pnl).sum(),
                sharpe: metrics::sharpe(&ret),
                sortino: metrics::sortino(&ret),
                profit_factor: metrics::profit_factor(&pnl),
                win_rate: metrics::win_rate(&pnl),
                expectancy: metrics::expectancy(&pnl),
                max_drawdown: ok.iter().map(|r| r.max_drawdown).reduce(f64::max),
                per_market: markets
                    .iter()
                    .map(|m| {
                        let net = runs
                            .iter()
                            .find(|r| &r.market == m)
                            .and_then(|r| r.report.as_ref())
                            .map(|r| r.net_pnl);
                        (m.clone(), net)
                    })
                    .collect(),
            }
        })
        .collect();
    let key = |s: &Score| {
        s.value(metric)
            .map(|v| if metric.higher_is_better() { -v } else { v })
    };
    scores.sort_by(|a, b| match (key(a), key(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    for (i, s) in scores.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    scores
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `sweep.csv`: one row per variant in rank order, with each axis as a column.
pub fn sweep_csv(scores: &[Score], variants: &[Variant], axes: &[String]) -> String {
    let num = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let mut out = String::from("rank,id");
    for a in axes {
        out.push(',');
        out += &csv_cell(a);
    }
    out +=
        ",runs,failed,trades,net_pnl,sharpe,sortino,profit_factor,win_rate,expectancy,max_drawdown";
    if let Some(s) = scores.first() {
        for (m, _) in &s.per_market {
            out += &format!(",{}", csv_cell(&format!("net_pnl[{m}]")));
        }
    }
    out.push('\n');
    for s in scores {
        out += &format!("{},{}", s.rank, s.id);
        let params = variants
            .iter()
            .find(|v| v.id == s.id)
            .map(|v| v.params.as_slice())
            .unwrap_or_default();
        for a in axes {
            let v = params
                .iter()
                .find(|(k, _)| k == a)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            out.push(',');
            out += &csv_cell(&v);
        }
        out += &format!(
            ",{},{},{},{},{},{},{},{},{},{}",
            s.runs,
            s.failed,
            s.trades,
            s.net_pnl,
            num(s.sharpe),
            num(s.sortino),
            num(s.profit_factor),
            num(s.win_rate),
            num(s.expectancy),
            num(s.max_drawdown)
        );
        for (_, v) in &s.per_market {
            out.push(',');
            out += &num(*v);
        }
        out.push('\n');
    }
    out
}

/// `sweep.md`: the ranking table and one line per run.
pub fn sweep_md(
    title: &str,
    metric: Metric,
    scores: &[Score],
    results: &[RunResult],
    variants: &[Variant],
) -> String {
    let mut md = format!(
        "# Sweep: {title}\n\nRanked by `{}`{}. Sharpe and Sortino are of the per-trade net returns of every market pooled (not annualised); max drawdown is the worst market's.\n\n",
        metric.name(),
        if metric.higher_is_better() { " (highest first)" } else { " (lowest first)" }
    );
    md += "| rank | id | settings | runs | trades | net P&L | Sharpe | Sortino | profit factor | win rate % | max drawdown |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for s in scores {
        md += &format!(
            "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.rank,
            s.id,
            s.label.replace('|', "\\|"),
            s.runs,
            if s.failed > 0 {
                format!(" ({} failed)", s.failed)
            } else {
                String::new()
            },
            s.trades,
            fmt_money(s.net_pnl),
            fmt_opt(s.sharpe, 4),
            fmt_opt(s.sortino, 4),
            fmt_opt(s.profit_factor, 3),
            fmt_opt(s.win_rate.map(|w| w * 100.0), 2),
            fmt_opt(s.max_drawdown, 4)
        );
    }
    md += "\n## Runs\n\n| id | market | trades | net P&L | report |\n|---|---|---:|---:|---|\n";
    for r in results {
        let id = variants.get(r.variant).map_or("?", |v| v.id.as_str());
        match (&r.report, &r.error) {
            (Some(rep), _) => {
                md += &format!(
                    "| {id} | {} | {} | {} | {}/report/report.md |\n",
                    r.market,
                    rep.trades,
                    fmt_money(rep.net_pnl),
                    r.dir.display()
                )
            }
            (None, e) => {
                md += &format!(
                    "| {id} | {} | - | - | failed: {} |\n",
                    r.market,
                    e.as_deref()
                        .unwrap_or("unknown")
                        .replace('|', "\\|")
                        .replace('\n', " ")
                )
            }
        }
    }
    md
}

/// The A/B comparison of two variants' per-trade net returns over the same markets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbReport {
    /// Variant A's description.
    pub a: String,
    /// Variant B's description.
    pub b: String,
    /// Markets both ran on.
    pub markets: Vec<String>,
    /// Trades of A.
    pub a_trades: usize,
    /// Trades of B.
    pub b_trades: usize,
    /// Net P&L of A.
    pub a_net_pnl: f64,
    /// Net P&L of B.
    pub b_net_pnl: f64,
    /// Mean per-trade return of A.
    pub a_mean_return: Option<f64>,
    /// Mean per-trade return of B.
    pub b_mean_return: Option<f64>,
    /// Welch's t-test of B against A (`t` and the interval are of `mean(B) - mean(A)`).
    pub welch: Option<Welch>,
    /// Bootstrap of `mean(B) - mean(A)`.
    pub bootstrap: Option<Bootstrap>,
}

/// Compares variant 0 (A) and variant 1 (B) of `results`.
pub fn ab_compare(
    a: &Variant,
    b: &Variant,
    results: &[RunResult],
    resamples: usize,
    seed: u64,
) -> AbReport {
    let pick = |i: usize| -> (Vec<f64>, f64, usize) {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.variant == i && r.report.is_some())
            .collect();
        (
            runs.iter()
                .flat_map(|r| r.returns.iter().copied())
                .collect(),
            runs.iter()
                .filter_map(|r| r.report.as_ref())
                .map(|r| r.net_pnl)
                .sum(),
            runs.iter()
                .filter_map(|r| r.report.as_ref())
                .map(|r| r.trades)
                .sum(),
        )
    };
    let (ra, na, ta) = pick(0);
    let (rb, nb, tb) = pick(1);
    let mut markets: Vec<String> = results.iter().map(|r| r.market.clone()).collect();
    markets.dedup();
    AbReport {
        a: format!("{} ({})", a.id, a.label),
        b: format!("{} ({})", b.id, b.label),
        markets,
        a_trades: ta,
        b_trades: tb,
        a_net_pnl: na,
        b_net_pnl: nb,
        a_mean_return: metrics::mean(&ra),
        b_mean_return: metrics::mean(&rb),
        // Welch of B against A, so both statistics read "B minus A".
        welch: welch(&rb, &ra),
        bootstrap: bootstrap_mean_diff(&ra, &rb, resamples, seed),
    }
}

/// `ab.md`: the comparison in words and numbers.
pub fn ab_md(r: &AbReport) -> String {
    let bp = |x: Option<f64>| fmt_opt(x.map(|v| v * 10_000.0), 3);
    let mut md = format!(
        "# A/B: per-trade net returns\n\n* A: {}\n* B: {}\n* markets: {}\n\n\
         | | A | B |\n|---|---:|---:|\n| trades | {} | {} |\n| net P&L | {} | {} |\n| mean return (bps of notional) | {} | {} |\n\n",
        r.a,
        r.b,
        r.markets.join(", "),
        r.a_trades,
        r.b_trades,
        fmt_money(r.a_net_pnl),
        fmt_money(r.b_net_pnl),
        bp(r.a_mean_return),
        bp(r.b_mean_return)
    );
    md += "Differences are mean(B) - mean(A), in basis points of entry notional.\n\n";
    match &r.welch {
        Some(w) => {
            md += &format!(
                "* Welch's t-test: t = {:.4}, df = {:.2}, two-sided p = {:.4}, 95% CI [{:.3}, {:.3}] bps\n",
                w.t,
                w.df,
                w.p,
                w.ci95.0 * 10_000.0,
                w.ci95.1 * 10_000.0
            )
        }
        None => md += "* Welch's t-test: undefined (each side needs two trades and some variance)\n",
    }
    match &r.bootstrap {
        Some(b) => {
            md += &format!(
                "* bootstrap ({} resamples, seed {}): difference {:.3} bps, 95% CI [{:.3}, {:.3}] bps, two-sided p = {:.4}\n",
                b.resamples,
                b.seed,
                b.diff * 10_000.0,
                b.ci95.0 * 10_000.0,
                b.ci95.1 * 10_000.0,
                b.p
            )
        }
        None => md += "* bootstrap: undefined (a side has no trades)\n",
    }
    let significant =
        r.welch.is_some_and(|w| w.p < 0.05) && r.bootstrap.is_some_and(|b| b.p < 0.05);
    md += if significant {
        "\nBoth tests find a difference at the 5% level.\n"
    } else {
        "\nNo difference at the 5% level by both tests: keep testing or keep A.\n"
    };
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(text: &str) -> Grid {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_grid_expands_to_the_cartesian_product_in_key_order() {
        let g = grid(
            "[axes]\n\"strategy.min_confluence\" = [2.5, 3.0, 3.5]\n\"risk.monitor.trailing_stop_pct\" = [0.004, 0.005]\n",
        );
        let c = g.combinations();
        assert_eq!(c.len(), 6);
        assert_eq!(c[0].id, "c001");
        // Keys sort: risk... before strategy...; the last axis varies fastest.
        assert_eq!(
            c[0].label,
            "risk.monitor.trailing_stop_pct=0.004, strategy.min_confluence=2.5"
        );
        assert_eq!(
            c[1].label,
            "risk.monitor.trailing_stop_pct=0.004, strategy.min_confluence=3.0"
        );
        assert_eq!(
            c[5].label,
            "risk.monitor.trailing_stop_pct=0.005, strategy.min_confluence=3.5"
        );
        assert_eq!(grid("").combinations().len(), 1);
        assert_eq!(grid("").combinations()[0].label, "base");
        assert!(
            toml::from_str::<Grid>("[axis]\n").is_err(),
            "unknown keys are errors"
        );
    }

    #[test]
    fn run_configurations_layer_dotted_settings() {
        let base: toml::Table =
            toml::from_str("[sim]\nspeed = \"max\"\n[strategy]\nadx_min = 20.0\n").unwrap();
        let combo = vec![(
            "strategy.min_confluence".to_string(),
            toml::Value::Float(2.5),
        )];
        let market = Market::Synthetic {
            name: "s".into(),
            seed: 9,
            symbols: Some(vec!["ETHUSDT".into()]),
        }
        .settings()
        .unwrap();
        let t = run_table(&base, &[&combo, &market, &fixed_settings()]).unwrap();
        let s = toml::to_string(&t).unwrap();
        let back: toml::Table = toml::from_str(&s).unwrap();
        assert_eq!(back["strategy"]["adx_min"].as_float(), Some(20.0));
        assert_eq!(back["strategy"]["min_confluence"].as_float(), Some(2.5));
        assert_eq!(back["sim"]["speed"].as_str(), Some("max"));
        assert_eq!(back["sim"]["market"].as_str(), Some("synthetic"));
        assert_eq!(back["sim"]["seed"].as_integer(), Some(9));
        assert_eq!(back["venue"]["symbols"][0].as_str(), Some("ETHUSDT"));
        assert_eq!(back["metrics"]["enabled"].as_bool(), Some(false));
        assert_eq!(back["admin"]["enabled"].as_bool(), Some(false));
        let mut layered = base.clone();
        merge_tables(
            &mut layered,
            toml::from_str("[sim]\nseed = 3\n[risk.monitor]\ntrailing_stop_pct = 0.01\n").unwrap(),
        );
        assert_eq!(layered["sim"]["speed"].as_str(), Some("max"));
        assert_eq!(layered["sim"]["seed"].as_integer(), Some(3));
        assert_eq!(
            layered["risk"]["monitor"]["trailing_stop_pct"].as_float(),
            Some(0.01)
        );
        let mut bad = base.clone();
        assert!(set_dotted(&mut bad, "sim.speed.x", toml::Value::Integer(1)).is_err());
        assert!(set_dotted(&mut bad, "sim.", toml::Value::Integer(1)).is_err());
    }

    #[test]
    fn markets_from_arguments_and_specs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Market::parse_arg("synthetic:7").unwrap(),
            Market::Synthetic {
                name: "synthetic-7".into(),
                seed: 7,
                symbols: None
            }
        );
        assert!(Market::parse_arg("synthetic:x").is_err());
        let j = Market::parse_arg(dir.path().to_str().unwrap()).unwrap();
        assert!(matches!(j, Market::Journal { .. }));
        assert!(j.settings().is_err());
        let c = Market::parse_arg("binance/spot/btcusdt_20240808.gz").unwrap();
        assert_eq!(c.name(), "btcusdt_20240808");
        assert_eq!(
            c.settings().unwrap(),
            vec![
                (
                    "sim.market".to_string(),
                    toml::Value::String("capture".into())
                ),
                (
                    "sim.capture".to_string(),
                    toml::Value::String("binance/spot/btcusdt_20240808.gz".into())
                )
            ]
        );
        let spec = MarketSpec {
            name: None,
            capture: None,
            synthetic_seed: None,
            journal: Some("j/run1".into()),
            symbols: None,
        };
        assert_eq!(
            Market::from_spec(&spec, Path::new("/g")).unwrap(),
            Market::Journal {
                name: "run1".into(),
                dir: "/g/j/run1".into()
            }
        );
        let both = MarketSpec {
            synthetic_seed: Some(1),
            ..spec
        };
        assert!(Market::from_spec(&both, Path::new("/g")).is_err());
        assert_eq!(Market::Config.settings().unwrap(), vec![]);
    }

    #[test]
    fn journal_frames_become_capture_lines() {
        let frames: Vec<(u64, &[u8], Option<RestBody>)> = vec![
            (1, b"{\"result\":null,\"id\":1}", None),
            (2, b"[[1,2]]", Some(RestBody::Klines(InstrumentId(0)))),
            (
                3,
                b"{\"lastUpdateId\":5,\n\"bids\":[],\"asks\":[]}",
                Some(RestBody::Depth(InstrumentId(0))),
            ),
            (
                4,
                b"{\"lastUpdateId\":6,\"bids\":[],\"asks\":[]}",
                Some(RestBody::Depth(InstrumentId(1))),
            ),
            (5, b"{\"stream\":\"btcusdt@trade\",\"data\":{}}", None),
        ];
        let mut out = Vec::new();
        let st = journal_to_capture(frames, InstrumentId(0), &mut out).unwrap();
        assert_eq!(
            st,
            CaptureStats {
                frames: 1,
                snapshots: 1,
                dropped: 3
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3 {\"lastUpdateId\":5, \"bids\":[],\"asks\":[]}\n5 {\"stream\":\"btcusdt@trade\",\"data\":{}}\n"
        );
    }

    fn result(variant: usize, market: &str, pnl: &[f64], ok: bool) -> RunResult {
        let report = ok.then(|| Report {
            trades: pnl.len(),
            net_pnl: pnl.iter().sum(),
            max_drawdown: pnl.iter().map(|p| -p).fold(0.0, f64::max),
            ..Report::default()
        });
        RunResult {
            variant,
            market: market.into(),
            dir: PathBuf::from(format!("runs/{variant}-{market}")),
            report,
            pnl: pnl.to_vec(),
            returns: pnl.iter().map(|p| p / 1000.0).collect(),
            error: (!ok).then(|| "exit status 2".into()),
        }
    }

    #[test]
    fn scores_pool_markets_and_rank_by_the_metric() {
        let g = grid("[axes]\n\"strategy.min_confluence\" = [2.5, 3.0, 3.5]\n");
        let v = g.combinations();
        let markets = vec!["m1".to_string(), "m2".to_string()];
        let results = vec![
            result(0, "m1", &[10.0, -5.0], true),
            result(0, "m2", &[1.0], true),
            result(1, "m1", &[20.0, 30.0, -10.0], true),
            result(1, "m2", &[], false),
            result(2, "m1", &[], true),
            result(2, "m2", &[], true),
        ];
        let s = score(&v, &markets, &results, Metric::NetPnl);
        let order: Vec<&str> = s.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(order, ["c002", "c001", "c003"]);
        assert_eq!(
            (s[0].net_pnl, s[0].runs, s[0].failed, s[0].trades),
            (40.0, 1, 1, 3)
        );
        assert_eq!(
            s[0].per_market,
            vec![("m1".into(), Some(40.0)), ("m2".into(), None)]
        );
        assert_eq!(s[1].net_pnl, 6.0);
        assert!((s[1].profit_factor.unwrap() - 11.0 / 5.0).abs() < 1e-12);
        assert_eq!(s[1].max_drawdown, Some(5.0));
        // Pooled per-trade Sharpe of c001: returns .01, -.005, .001.
        let want = metrics::sharpe(&[0.01, -0.005, 0.001]).unwrap();
        assert!((s[1].sharpe.unwrap() - want).abs() < 1e-12);
        // By max drawdown, smaller first; c003 (no trades) has 0.
        let d = score(&v, &markets, &results, Metric::MaxDrawdown);
        assert_eq!(d[0].id, "c003");
        // Sharpe undefined for c003: last.
        let sh = score(&v, &markets, &results, Metric::Sharpe);
        assert_eq!(sh.last().unwrap().id, "c003");
        assert_eq!(Metric::parse("sharpe").unwrap(), Metric::Sharpe);
        assert!(Metric::parse("pnl").is_err());

        let axes = vec!["strategy.min_confluence".to_string()];
        let csv = sweep_csv(&s, &v, &axes);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "rank,id,strategy.min_confluence,runs,failed,trades,net_pnl,sharpe,sortino,profit_factor,win_rate,expectancy,max_drawdown,net_pnl[m1],net_pnl[m2]"
        );
        assert!(lines[1].starts_with("1,c002,3.0,1,1,3,40,"), "{}", lines[1]);
        assert!(lines[1].ends_with(",40,"), "{}", lines[1]);
        let md = sweep_md("t", Metric::NetPnl, &s, &results, &v);
        assert!(
            md.contains("| 1 | c002 | strategy.min_confluence=3.0 | 1 (1 failed) | 3 |"),
            "{md}"
        );
        assert!(md.contains("failed: exit status 2"));
    }

    #[test]
    fn ab_compares_b_minus_a() {
        let a = Variant {
            id: "A".into(),
            label: "a.toml".into(),
            params: vec![],
        };
        let b = Variant {
            id: "B".into(),
            label: "b.toml".into(),
            params: vec![],
        };
        let results = vec![
            result(0, "m", &[1.0, 2.0, 3.0, 2.0], true),
            result(1, "m", &[4.0, 5.0, 6.0, 5.5], true),
        ];
        let r = ab_compare(&a, &b, &results, 1000, 42);
        assert_eq!((r.a_trades, r.b_trades), (4, 4));
        assert_eq!(r.markets, vec!["m".to_string()]);
        let w = r.welch.unwrap();
        assert!(w.t > 0.0 && w.diff > 0.0, "{w:?}");
        let want = welch(
            &[0.004, 0.005, 0.006, 0.0055],
            &[0.001, 0.002, 0.003, 0.002],
        )
        .unwrap();
        assert_eq!(w, want);
        let bs = r.bootstrap.unwrap();
        assert!((bs.diff - 0.003125).abs() < 1e-12);
        let md = ab_md(&r);
        assert!(md.contains("Welch's t-test: t = "), "{md}");
        assert!(md.contains("seed 42"));
    }

    #[test]
    fn default_jobs_leave_a_core() {
        assert_eq!(default_jobs(1), 1);
        assert_eq!(default_jobs(2), 1);
        assert_eq!(default_jobs(8), 7);
    }
}
