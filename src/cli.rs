//! Command-line grammar (clap) and dispatch to the subcommands.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Co-located low-latency order-flow trading engine.
#[derive(Parser, Debug)]
#[command(name = "algo-engine", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read, verify and follow journals.
    Journal {
        /// Journal subcommand.
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Run the hot path on pinned threads as a profile lays it out.
    Run(crate::pipeline::RunArgs),
    /// Import a recorded capture into a new journal: raw frames, decoded market events, feed
    /// errors and book gaps, exactly as the live feed would journal them.
    Import(crate::import_cmd::ImportArgs),
    /// Record a live Binance market-data session (combined-stream WebSocket) into a journal
    /// through the same feed stage as `run`: raw frames, decoded events, connection losses and
    /// restorations. Stops after --duration or on SIGINT/SIGTERM and prints a summary.
    Record(crate::record_cmd::RecordArgs),
    /// Recompute a symbol's analytics from a journal's market records: one CSV row per closed
    /// candle (OHLCV, order-flow volumes, RSI, ADX, DI, ATR, z-score, autocorrelation, Hurst,
    /// POC/VAH/VAL, imbalance, CVD; empty cells for values not warm yet).
    Analytics(crate::analytics_cmd::AnalyticsArgs),
    /// The strategy decision in force at a moment (journaled decisions, or a replay of the
    /// journal's market records): outcome, the level that rejected it and why, every value and
    /// threshold.
    Explain(crate::explain_cmd::ExplainArgs),
    /// Feed a recorded journal's raw frames through the same stages again and check that every
    /// decision and order intent is byte-identical to the recorded ones (exit 1 at the first
    /// difference, which is printed).
    Replay(crate::replay_cmd::ReplayArgs),
    /// Run the engine against the simulator like `run` (live status off), then report the
    /// run from its journals: report.md, trades.csv, summary.json, equity.svg, drawdown.svg.
    Backtest(crate::backtest_cmd::BacktestArgs),
    /// Run backtests over a parameter grid (`--grid tuning/sweeps/<name>.toml`) or an A/B pair
    /// (`--ab A.toml B.toml`) on the same markets, in parallel child processes; rank them
    /// (sweep.md, sweep.csv) and, for A/B, compare per-trade returns (Welch, bootstrap).
    Sweep(crate::backtest_cmd::SweepArgs),
    /// Print the embedded default configuration (the base every --config file is merged over).
    Config,
}

/// `algo-engine journal ...`
#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Header, segments, record counts by type, first/last timestamps and a full CRC check.
    /// Exits 1 when a corruption is found.
    Inspect {
        /// Journal directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print records as they are appended (like `tail -f`).
    Tail {
        /// Journal directory.
        dir: PathBuf,
        /// Start at this sequence number (default: the beginning).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after printing this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Keep following after reaching the end (stop with Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Exact per-symbol statistics: counts, venue time range, traded quantity by aggressor
    /// side, VWAP, min/max price, book gaps and resyncs.
    Stats {
        /// Journal directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Journal { command } => match command {
            JournalCommand::Inspect { dir, json } => crate::journal_cmd::inspect(&dir, json),
            JournalCommand::Tail {
                dir,
                from,
                limit,
                follow,
            } => crate::journal_cmd::tail(&dir, from, limit, follow),
            JournalCommand::Stats { dir, json } => crate::import_cmd::run_stats(&dir, json),
        },
        Command::Import(args) => crate::import_cmd::run_import(args),
        Command::Run(args) => crate::pipeline::run(args),
        Command::Record(args) => crate::record_cmd::run(args),
        Command::Analytics(args) => crate::analytics_cmd::run(args),
        Command::Explain(args) => crate::explain_cmd::run(args),
        Command::Replay(args) => crate::replay_cmd::run(args),
        Command::Backtest(args) => crate::backtest_cmd::run_backtest(args),
        Command::Sweep(args) => crate::backtest_cmd::run_sweep(args),
        Command::Config => {
            print!("{}", crate::config::DEFAULT_TOML);
            Ok(ExitCode::SUCCESS)
        }
    }
}
