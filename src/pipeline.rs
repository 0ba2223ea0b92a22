//! `algo-engine run`: wiring the hot path onto pinned threads as a profile says.
//!
//! Today's pipeline is the market-data half of the engine: a frame source (a recorded Binance
//! capture replayed through the real feed stage, until the venue simulator of the gateway work
//! becomes the default venue) -> feed stage (decode, journal) -> SPSC ring -> latency tap (the
//! strategy stage's seat). The same stage objects run fused on one core or split across cores;
//! only the profile changes.

use anyhow::{bail, Context, Result};
use clap::Args;
use hotpath::book::{BookSet, SyncMode};
use hotpath::feed::{FeedCounters, FeedStage, ReplaySource};
use hotpath::runtime::{Profile, Runtime, Stage};
use hotpath::tap::{LatencyTap, TapReport};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `algo-engine run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Thread layout.
    #[arg(long, default_value = "tuning/profiles/fused-2core.toml")]
    pub profile: PathBuf,
    /// Capture to replay as the venue's market data (hftbacktest `.gz` format). Default: the
    /// recorded Binance BTCUSDT spot session under ALGO_DATA_DIR.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Journal directory (created; an existing journal is continued).
    #[arg(long, default_value = "journal/run")]
    pub journal: PathBuf,
    /// Replay pace: `max`, or a multiple of recorded time such as `1x` or `10x`.
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Stop after this many seconds even if the capture is not finished.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Capacity of the feed -> strategy ring (power of two).
    #[arg(long, default_value_t = 4096)]
    pub ring: usize,
}

fn parse_speed(s: &str) -> Result<Option<f64>> {
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

/// Runs the pipeline and prints a summary.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let speed = parse_speed(&args.speed)?;
    let profile = Profile::load(&args.profile)?;
    let capture = match &args.capture {
        Some(p) => p.clone(),
        None => hotpath::datadir::data_dir().join("binance/spot/btcusdt_20240808.gz"),
    };
    if !capture.is_file() {
        bail!(
            "capture {} not found (set ALGO_DATA_DIR, pass --capture, or run scripts/fetch-data.sh)",
            capture.display()
        );
    }

    let load_start = Instant::now();
    let input = coldpath::replay::load_hftbacktest(&capture, None)
        .with_context(|| format!("loading {}", capture.display()))?;
    let source = ReplaySource::new(input.frames.iter().map(|(ns, f)| (*ns, f.as_slice())), speed);
    let decoder = input.decoder();
    eprintln!(
        "loaded {} frames from {} in {:.2?}",
        source.len(),
        capture.display(),
        load_start.elapsed()
    );

    std::fs::create_dir_all(&args.journal)
        .with_context(|| format!("creating {}", args.journal.display()))?;
    let appender = ringbuffers::journal::Appender::open(&args.journal, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", args.journal.display()))?;

    let (tx, rx) = ringbuffers::spsc::channel(args.ring.next_power_of_two());
    let feed_done = Arc::new(AtomicBool::new(false));
    let feed_report = Arc::new(Mutex::new(FeedCounters::default()));
    let tap_report = Arc::new(Mutex::new(TapReport::default()));
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(FeedStage::new(
            source,
            decoder,
            appender,
            tx,
            1 << 20,
            16_384,
            feed_done.clone(),
            feed_report.clone(),
        )
        .with_books(BookSet::for_table(&input.table, SyncMode::Snapshot))),
        Box::new(LatencyTap::new(rx, feed_done, 256, tap_report.clone())),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let started = Instant::now();
    let rt = Runtime::spawn(&profile, stages, stop.clone())?;
    let mut stopped_early = false;
    while !rt.is_done() {
        if args.duration.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
            rt.request_stop();
            stopped_early = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let threads = rt.join();
    let elapsed = started.elapsed();

    let feed = *feed_report.lock().expect("feed report");
    let tap = tap_report.lock().expect("tap report").clone();
    println!("profile {} ({})", profile.name, profile.description);
    for t in &threads {
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
    let pct = |h: &hdrhistogram::Histogram<u64>| {
        format!(
            "p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    };
    println!("latency receive->decoded:           {}", pct(&tap.decode_ns));
    println!("latency decoded->strategy seat:     {}", pct(&tap.hop_ns));
    println!("tap: {} events", tap.events);
    println!("journal: {} (inspect with `algo-engine journal inspect {}`)", args.journal.display(), args.journal.display());
    stopped_early |= stop.load(std::sync::atomic::Ordering::Relaxed);
    if !stopped_early && tap.events != feed.events {
        bail!("{} events published but {} received: the ring lost events", feed.events, tap.events);
    }
    Ok(ExitCode::SUCCESS)
}
