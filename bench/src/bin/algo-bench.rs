//! `algo-bench`: runs the latency and throughput suites and writes
//! `bench-results/<date>/<suite>.json` plus HDR percentile files next to them, then
//! `report.md` with the machine, every suite's table and an SVG percentile plot per suite
//! (`bench::report`). `--report-only <dir>` rebuilds `report.md` from a run's saved files.

use anyhow::{bail, Result};
use bench::harness::{core_count, restore_affinity, save_affinity, Report, SuiteOpts};
use bench::report::{unix_now, utc_date, write_report, RunMeta};
use clap::Parser;
use std::path::PathBuf;

/// Every suite, in run (and report) order. A new suite adds its name here and an arm to the
/// `match` in `main`.
const SUITES: &[&str] = &[
    "rings",
    "journal",
    "decode",
    "sockets",
    "feed",
    "strategy",
    "risk",
    "layout",
    "tick",
    "cold",
    "replay",
    "wire",
    "order-transport",
];

#[derive(Parser, Debug)]
#[command(name = "algo-bench", about = "algo-engine latency harness")]
struct Args {
    /// Suites to run, comma separated (see --list), or `all`.
    #[arg(long, default_value = "all")]
    suite: String,
    /// Short runs for smoke tests; numbers from a quick run are not meant to be quoted.
    #[arg(long)]
    quick: bool,
    /// Repetitions per measurement (median reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Output directory; default bench-results/<UTC date>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run nothing: rebuild <dir>/report.md (and its plots) from the JSON and HDR files a
    /// previous run saved there.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["suite", "quick", "out"])]
    report_only: Option<PathBuf>,
    /// Print the suite names, one per line, and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.list {
        for s in SUITES {
            println!("{s}");
        }
        return Ok(());
    }
    if let Some(dir) = &args.report_only {
        let cmd = std::env::args().collect::<Vec<_>>().join(" ");
        let path = write_report(dir, SUITES, Some(&cmd))?;
        println!("report {}", path.display());
        return Ok(());
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("bench-results").join(utc_date(unix_now())));
    std::fs::create_dir_all(&out)?;
    let cores = core_count();
    let opts = SuiteOpts {
        quick: args.quick,
        reps: if args.quick { 1 } else { args.reps.max(1) },
        core_a: 0,
        core_b: if cores > 1 { 1 } else { 0 },
        out_dir: out.clone(),
    };
    let wanted: Vec<&str> = args.suite.split(',').map(str::trim).collect();
    let all = wanted.contains(&"all");
    if let Some(unknown) = wanted.iter().find(|w| **w != "all" && !SUITES.contains(*w)) {
        bail!(
            "unknown suite '{unknown}'; known: {}, all",
            SUITES.join(", ")
        );
    }
    // Machine facts are read before the suites run, as the numbers will be judged against them.
    RunMeta::now(args.quick).save(&out)?;
    let mut reports: Vec<Report> = Vec::new();
    // Suites that measure on the main thread pin it; every later suite must start from the
    // whole machine again (see `harness::save_affinity`).
    let affinity = save_affinity();
    for &name in SUITES {
        if !(all || wanted.contains(&name)) {
            continue;
        }
        let report = match name {
            "rings" => bench::rings::run(&opts)?,
            "journal" => bench::journal::run(&opts)?,
            "decode" => bench::decode::run(&opts)?,
            "sockets" => bench::sockets::run(&opts)?,
            "feed" => bench::feed::run(&opts)?,
            "strategy" => bench::strategy::run(&opts)?,
            "risk" => bench::risk::run(&opts)?,
            "layout" => bench::layout::run(&opts)?,
            "cold" => bench::cold::run(&opts)?,
            "tick" => bench::tick_to_order::run(&opts)?,
            "replay" => bench::replay_throughput::run(&opts)?,
            "wire" => bench::wire::run(&opts)?,
            "order-transport" => bench::order_transport::run(&opts)?,
            other => bail!("suite '{other}' is listed in SUITES but not wired in main"),
        };
        restore_affinity(&affinity);
        println!("{}", report.table());
        let path = report.save(&out)?;
        println!("saved {}\n", path.display());
        reports.push(report);
    }
    if reports.is_empty() {
        bail!(
            "no suite matched '{}'; known: {}, all",
            args.suite,
            SUITES.join(", ")
        );
    }
    let path = write_report(&out, SUITES, None)?;
    println!("report {}", path.display());
    Ok(())
}
