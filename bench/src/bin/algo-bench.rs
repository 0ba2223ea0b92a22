//! `algo-bench`: runs the latency and throughput suites and writes
//! `bench-results/<date>/<suite>.json` plus HDR percentile files next to them.

use anyhow::{bail, Result};
use bench::harness::{core_count, restore_affinity, save_affinity, Report, SuiteOpts};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "algo-bench", about = "algo-engine latency harness")]
struct Args {
    /// Suites to run, comma separated: rings, journal, decode, sockets, feed, strategy, all.
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
}

fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil-from-days (Howard Hinnant), to avoid a date crate for one string.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("bench-results").join(utc_date()));
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
    let mut reports: Vec<Report> = Vec::new();
    // Suites that measure on the main thread pin it; every later suite must start from the
    // whole machine again (see `harness::save_affinity`).
    let affinity = save_affinity();
    for name in ["rings", "journal", "decode", "sockets", "feed", "strategy"] {
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
            _ => unreachable!("suite list is fixed above"),
        };
        restore_affinity(&affinity);
        println!("{}", report.table());
        let path = report.save(&out)?;
        println!("saved {}\n", path.display());
        reports.push(report);
    }
    if reports.is_empty() {
        bail!(
            "no suite matched '{}'; known: rings, journal, decode, sockets, feed, strategy, all",
            args.suite
        );
    }
    Ok(())
}
