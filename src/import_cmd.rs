//! `algo-engine import` (capture → journal) and `algo-engine journal stats`.
//!
//! Thin layers over `coldpath::import` and `coldpath::stats`: argument parsing, output
//! formatting, exit codes. The library functions are what the tests call, so the CLI and the
//! tests exercise the same code.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use coldpath::capture::CaptureFormat;
use coldpath::import::{import, ImportOptions};
use coldpath::inspect::format_unix_ns;
use coldpath::stats::{journal_stats, render_text};
use hotpath::book::SyncMode;
use hotpath::instrument::Venue;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Capture formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// hftbacktest gzip text: `<recv ns> <raw JSON>` per line.
    Hftbacktest,
    /// cryptofeed raw log `X.ws.N.M` (its `X.http.*` REST log is read too).
    Cryptofeed,
    /// QuantConnect Lean FX tick-quote zip.
    LeanFx,
}

impl From<FormatArg> for CaptureFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Hftbacktest => CaptureFormat::Hftbacktest,
            FormatArg::Cryptofeed => CaptureFormat::Cryptofeed,
            FormatArg::LeanFx => CaptureFormat::LeanFx,
        }
    }
}

/// `algo-engine import <capture> --format <fmt> --out <dir>`
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Capture file (`*.gz`, `X.ws.N.M`, `YYYYMMDD_quote.zip`).
    pub capture: PathBuf,
    /// Capture format (default: from the file name).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Journal directory to create (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Venue (`binance_spot`, `binance_usdm`, `binance_coinm`, `fxcm`); default: from the path
    /// or the capture's URLs.
    #[arg(long)]
    pub venue: Option<String>,
    /// Build books from the diff stream while no REST snapshot is available (replay of
    /// diff-only captures; such books are never marked proven).
    #[arg(long)]
    pub book_from_stream: bool,
    /// Journal segment size in MiB.
    #[arg(long, default_value_t = 64)]
    pub segment_mib: u64,
    /// Print the import report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `import`; exit 0 even with feed errors (they are journaled and reported).
pub fn run_import(args: ImportArgs) -> Result<ExitCode> {
    let format = match args.format {
        Some(f) => f.into(),
        None => CaptureFormat::detect(&args.capture).with_context(|| {
            format!(
                "cannot tell the format of {}; pass --format",
                args.capture.display()
            )
        })?,
    };
    let mut opts = ImportOptions::new(format);
    if let Some(v) = &args.venue {
        opts.venue = Some(Venue::from_name(v).with_context(|| format!("unknown venue {v:?}"))?);
    }
    if args.book_from_stream {
        opts.sync_mode = SyncMode::FromStream;
    }
    opts.segment_size = args
        .segment_mib
        .checked_mul(1 << 20)
        .context("segment size too large")?;
    let started = std::time::Instant::now();
    let report = import(&args.capture, &args.out, &opts).with_context(|| {
        format!(
            "importing {} into {}",
            args.capture.display(),
            args.out.display()
        )
    })?;
    let took = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "imported {} ({}) into {} in {:.2} s",
        report.capture,
        report.format,
        report.out,
        took.as_secs_f64()
    );
    if let (Some(a), Some(b)) = (report.first_recv_ns, report.last_recv_ns) {
        println!(
            "receive time: {} .. {}",
            format_unix_ns(a),
            format_unix_ns(b)
        );
    }
    println!(
        "records: {} raw frames, {} market events, {} feed errors ({} malformed lines), {} gap records",
        report.raw_frames,
        report.market_events,
        report.feed_errors,
        report.malformed_lines,
        report.gap_records
    );
    if let Some(t) = &report.truncated {
        println!("capture ended early: {t}");
    }
    for i in &report.instruments {
        println!(
            "instrument #{} {}:{} {} price scale {} qty scale {} tick {} step {} ({})",
            i.id, i.venue, i.symbol, i.kind, i.price_scale, i.qty_scale, i.tick, i.step, i.source
        );
    }
    for b in &report.books {
        println!(
            "book {}: {} after {} updates ({} snapshots, {} syncs, {} stale dropped, {} gaps, {} resyncs, {} crossed)",
            b.symbol,
            b.state,
            b.updates_applied,
            b.snapshots,
            b.syncs,
            b.stale_dropped,
            b.gaps,
            b.resyncs,
            b.crossed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `journal stats`.
pub fn run_stats(dir: &Path, json: bool) -> Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let stats = journal_stats(dir).with_context(|| format!("reading {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", render_text(&stats));
    }
    Ok(ExitCode::SUCCESS)
}
