//! `algo-engine`: the command line of the trading engine.
//!
//! Each subcommand is a thin layer over the crates: `journal` over `coldpath::inspect`,
//! `run` over the stage runtime in `hotpath::runtime` with the wiring in [`pipeline`], `record`
//! over the same stages with the live source of `hotpath::live` ([`record_cmd`]), `replay` over
//! the same stages fed from a journal, checked for identical decisions ([`replay_cmd`]);
//! `backtest` and `sweep` over `run` and `coldpath::backtest` ([`backtest_cmd`]).
//! Errors surface as one line on stderr and a non-zero exit status, never as a panic.

mod analytics_cmd;
mod backtest_cmd;
mod cli;
mod config;
mod engine;
mod explain_cmd;
mod import_cmd;
mod journal_cmd;
mod pipeline;
mod record_cmd;
mod replay_cmd;
mod signals;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALGO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` joins the anyhow context chain on one line: "what we did: why it failed".
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
