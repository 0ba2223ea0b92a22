//! `layout` suite: the same capture through the same feed + strategy stages under the fused
//! 2-core profile and the split profile, reported side by side.
//!
//! Which stages share a thread is configuration (DESIGN.md, "Hot path"): `tuning/profiles/
//! fused-2core.toml` runs feed and strategy in one pinned run-to-completion thread,
//! `split-4core.toml` gives each its own (isolated) core with an SPSC ring between them. This
//! suite wires the pipeline exactly as `algo-engine run` does (`src/pipeline.rs`: a
//! [`ReplaySource`] over the capture, the capture's Binance decoder, the L2 books, a journal
//! [`Appender`], a 4096-event ring, a [`StrategyStage`] with its own journal and a
//! [`LatencyReport`]) and hands the stages to [`hotpath::runtime::Runtime`] with each profile in
//! turn; nothing is re-implemented here, only the choice of profile changes between runs.
//!
//! What is measured comes from the engine's own stamps, recorded by the strategy stage into its
//! `LatencyReport` (so the numbers are the ones production reports):
//! - **recv → decoded**: the feed's work on a frame (copy, decode, books, journal) up to the
//!   event's `Decoded` stamp;
//! - **decoded → strategy**: the hop to the strategy's seat (`StrategyIn` stamp): in the fused
//!   layout the rest of the frame's work plus the next poll of the strategy on the same core, in
//!   the split layout the cross-core ring hop;
//! - **throughput**: events/s and frames/s from wall time around spawn..join.
//!
//! Two paces are run: **max** (replay as fast as the feed can read, which saturates the ring when
//! the strategy is the slower stage, so the hop includes queueing) and **paced** (the capture's
//! recorded timeline compressed to about [`PACED_SECONDS`], so the hop is measured on an idle
//! ring, as on a live feed). Every run uses fresh stages and fresh journals in the system temp
//! dir; the runs alternate between profiles so drift hits both alike. Per-run histograms are
//! merged over repetitions; throughput is the median.

use crate::harness::{median, Clock, LatencyHist, Machine, Percentiles, Report, Row, SuiteOpts};
use anyhow::{bail, Context};
use hotpath::book::{BookSet, SyncMode};
use hotpath::feed::{FeedCounters, FeedStage, ReplaySource};
use hotpath::latency::LatencyReport;
use hotpath::runtime::{Profile, Runtime, Stage, ThreadReport};
use hotpath::signals::SymbolConfig;
use hotpath::strategy::{Strategy, StrategyIo, StrategyReport, StrategyStage};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// The profiles compared, file names under `tuning/profiles/`; the first is the baseline.
pub const PROFILES: [&str; 2] = ["fused-2core.toml", "split-4core.toml"];
/// The capture replayed, relative to `ALGO_DATA_DIR` (the one `algo-engine run` defaults to).
pub const CAPTURE: &str = "binance/spot/btcusdt_20240808.gz";
/// Wall-clock length a paced run aims at.
pub const PACED_SECONDS: f64 = 2.0;
/// Frames replayed in a `--quick` run.
const QUICK_FRAMES: usize = 10_000;
/// Feed -> strategy ring capacity, `algo-engine run`'s default.
const RING: usize = 4096;
/// Paced length of a `--quick` run.
const QUICK_PACED_SECONDS: f64 = 0.5;

/// The directory holding the thread profiles: `tuning/profiles` under the working directory
/// (scripts/bench.sh runs from the workspace root), else the one next to this crate's sources
/// (tests run from `bench/`).
pub fn profile_dir() -> PathBuf {
    let cwd = PathBuf::from("tuning/profiles");
    if cwd.is_dir() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/profiles")
}

/// What one pipeline run produced.
pub(crate) struct RunResult {
    pub(crate) latency: LatencyReport,
    pub(crate) threads: Vec<ThreadReport>,
    pub(crate) feed: FeedCounters,
    pub(crate) strategy: StrategyReport,
    pub(crate) elapsed_ns: u64,
}

/// Runs the feed + strategy pipeline over `input` once under `profile`, as `algo-engine run`
/// wires it, with journals under `dir`.
fn run_once(
    profile: &Profile,
    input: &coldpath::replay::ReplayInput,
    speed: Option<f64>,
    dir: &Path,
    clock: &Clock,
) -> anyhow::Result<RunResult> {
    run_with(profile, input, speed, dir, clock, |_| Ok(()))
}

/// As [`run_once`], calling `before_start(dir)` once the journals exist and before the hot
/// threads start (the cold-path interference suite starts its tailers there).
pub(crate) fn run_with(
    profile: &Profile,
    input: &coldpath::replay::ReplayInput,
    speed: Option<f64>,
    dir: &Path,
    clock: &Clock,
    before_start: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<RunResult> {
    let source = ReplaySource::new(
        input.frames.iter().map(|(ns, f)| (*ns, f.as_slice())),
        speed,
    );
    let appender = ringbuffers::journal::Appender::open(dir, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", dir.display()))?;
    let (tx, rx) = ringbuffers::spsc::channel(RING);
    let (feed, feed_done, feed_report) = FeedStage::engine(
        source,
        input.decoder(),
        appender,
        tx,
        BookSet::for_table(&input.table, SyncMode::Snapshot),
    );

    let sdir = dir.join("strategy");
    std::fs::create_dir_all(&sdir).with_context(|| format!("creating {}", sdir.display()))?;
    let sjournal = ringbuffers::journal::Appender::open(&sdir, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", sdir.display()))?;
    let strategy = Strategy::new(&input.table, SymbolConfig::for_instrument)
        .context("configuring the strategy")?;
    let (output, mut intents) = ringbuffers::spsc::channel(1024);
    let report = Arc::new(Mutex::new(StrategyReport::default()));
    let latency = Arc::new(Mutex::new(LatencyReport::default()));
    let stage = StrategyStage::new(
        strategy,
        StrategyIo {
            input: rx,
            output,
            assume_books_proven: false,
            journal: Some(sjournal),
            upstream_done: feed_done,
            batch: 256,
            report: report.clone(),
        },
    )
    .with_latency(latency.clone());
    let stages: Vec<Box<dyn Stage>> = vec![Box::new(feed), Box::new(stage)];
    before_start(dir)?;

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = clock.raw();
    let rt = Runtime::spawn(profile, stages, stop)?;
    // The gateway's seat, as in `algo-engine run`: drain the intents so the strategy never
    // blocks on a full intent ring.
    while !rt.is_done() {
        while intents.try_pop().is_some() {}
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let threads = rt.join();
    let t1 = clock.raw();
    if let Some(t) = threads.iter().find(|t| t.rounds == u64::MAX) {
        bail!("profile {}: thread {} panicked", profile.name, t.name);
    }
    let feed = *feed_report
        .lock()
        .map_err(|_| anyhow::anyhow!("feed report lock poisoned"))?;
    let strategy = *report
        .lock()
        .map_err(|_| anyhow::anyhow!("strategy report lock poisoned"))?;
    let latency = latency
        .lock()
        .map_err(|_| anyhow::anyhow!("latency report lock poisoned"))?
        .clone();
    if strategy.events != feed.events {
        bail!(
            "profile {}: {} events published, {} reached the strategy",
            profile.name,
            feed.events,
            strategy.events
        );
    }
    Ok(RunResult {
        latency,
        threads,
        feed,
        strategy,
        elapsed_ns: clock.delta_ns(t0, t1),
    })
}

/// Merged results of one (profile, pace).
#[derive(Default)]
struct Acc {
    decode: LatencyHist,
    hop: LatencyHist,
    events_per_s: Vec<f64>,
    frames_per_s: Vec<f64>,
    last: Option<(Vec<ThreadReport>, FeedCounters, StrategyReport)>,
}

/// The ruler of stamp-based latencies: two back-to-back TSC reads (each stamp is one read).
pub(crate) fn ruler(clock: &Clock) -> Percentiles {
    let mut h = LatencyHist::new();
    for _ in 0..100_000 {
        let a = clock.raw();
        let b = clock.raw();
        h.record(clock.delta_ns(a, b));
    }
    h.percentiles(0)
}

/// `a / b` when both are positive.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (a > 0.0 && b > 0.0).then_some(a / b)
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let ov = ruler(&clock);
    let dir = profile_dir();
    let profiles: Vec<Profile> = PROFILES
        .iter()
        .map(|f| Profile::load(&dir.join(f)))
        .collect::<Result<_, _>>()?;
    let machine = Machine::detect();
    let mut rows = Vec::new();
    let Some(path) = hotpath::datadir::capture(CAPTURE) else {
        if hotpath::datadir::data_required() {
            bail!("capture {CAPTURE} not found under ALGO_DATA_DIR (ALGO_REQUIRE_DATA is set)");
        }
        rows.push(Row {
            case: "layout comparison".into(),
            subject: CAPTURE.into(),
            latency: None,
            throughput: None,
            ratio: None,
            note: "skipped: capture not found (set ALGO_DATA_DIR)".into(),
        });
        return Ok(Report {
            suite: "layout".into(),
            machine,
            overhead: ov,
            method: "not run".into(),
            rows,
        });
    };
    let limit = opts.quick.then_some(QUICK_FRAMES);
    let input = coldpath::replay::load_hftbacktest(&path, limit)
        .with_context(|| format!("loading {}", path.display()))?;
    let span_ns = match (input.frames.first(), input.frames.last()) {
        (Some(a), Some(b)) => b.0.saturating_sub(a.0),
        _ => 0,
    };
    let target = if opts.quick {
        QUICK_PACED_SECONDS
    } else {
        PACED_SECONDS
    };
    let paced = (span_ns as f64 / 1e9 / target).max(1.0);
    let paces: [(&str, Option<f64>); 2] = [("max", None), ("paced", Some(paced))];

    // accs[pace][profile]
    let mut accs: Vec<Vec<Acc>> = paces
        .iter()
        .map(|_| profiles.iter().map(|_| Acc::default()).collect())
        .collect();
    // One untimed run per profile first: page cache, code, allocator.
    for p in &profiles {
        let tmp = tempfile::tempdir()?;
        run_once(p, &input, None, tmp.path(), &clock)?;
    }
    for _ in 0..opts.reps.max(1) {
        for (ai, (_, speed)) in paces.iter().enumerate() {
            for (pi, p) in profiles.iter().enumerate() {
                let tmp = tempfile::tempdir()?;
                let r = run_once(p, &input, *speed, tmp.path(), &clock)?;
                let acc = &mut accs[ai][pi];
                acc.decode.add_histogram(&r.latency.decode_ns);
                acc.hop.add_histogram(&r.latency.hop_ns);
                let secs = r.elapsed_ns.max(1) as f64 / 1e9;
                acc.events_per_s.push(r.feed.events as f64 / secs);
                acc.frames_per_s.push(r.feed.frames as f64 / secs);
                acc.last = Some((r.threads, r.feed, r.strategy));
            }
        }
    }

    std::fs::create_dir_all(&opts.out_dir)?;
    let capture = format!(
        "{} {}",
        input.venue.name().trim_start_matches("binance_"),
        input.symbol.to_ascii_lowercase()
    );
    for (ai, (pace, _)) in paces.iter().enumerate() {
        let base = &accs[ai][0];
        let base_decode = base.decode.percentiles(ov.p50);
        let base_hop = base.hop.percentiles(ov.p50);
        let base_eps = median(base.events_per_s.clone());
        for (pi, p) in profiles.iter().enumerate() {
            let acc = &accs[ai][pi];
            let subject = format!("{} / {pace}", p.name);
            let slug = format!("layout-{}-{pace}", p.name);
            acc.decode
                .write_percentiles(&opts.out_dir.join(format!("{slug}-decode.hdr.txt")))?;
            acc.hop
                .write_percentiles(&opts.out_dir.join(format!("{slug}-hop.hdr.txt")))?;
            let decode = acc.decode.percentiles(ov.p50);
            let hop = acc.hop.percentiles(ov.p50);
            let eps = median(acc.events_per_s.clone());
            let fps = median(acc.frames_per_s.clone());
            let vs = if pi == 0 {
                "baseline".to_string()
            } else {
                format!("{} / {} (< 1 is better)", p.name, profiles[0].name)
            };
            rows.push(Row {
                case: "recv -> decoded (feed)".into(),
                subject: subject.clone(),
                latency: Some(decode),
                throughput: None,
                ratio: if pi == 0 {
                    None
                } else {
                    ratio(decode.p50 as f64, base_decode.p50 as f64)
                },
                note: format!("p50 ratio: {vs}"),
            });
            rows.push(Row {
                case: "decoded -> strategy (hop)".into(),
                subject: subject.clone(),
                latency: Some(hop),
                throughput: None,
                ratio: if pi == 0 {
                    None
                } else {
                    ratio(hop.p50 as f64, base_hop.p50 as f64)
                },
                note: format!("p50 ratio: {vs}"),
            });
            let threads = acc.last.as_ref().map_or(String::new(), |(t, f, s)| {
                let th: Vec<String> = t
                    .iter()
                    .map(|t| {
                        format!(
                            "{}@{}{}",
                            t.name,
                            t.core.map_or("-".into(), |c| c.to_string()),
                            if t.pinned { "" } else { " unpinned" }
                        )
                    })
                    .collect();
                format!(
                    "; threads [{}]; {} frames, {} events, {} decisions, {} backpressure polls",
                    th.join(", "),
                    f.frames,
                    f.events,
                    s.decisions,
                    f.backpressure
                )
            });
            rows.push(Row {
                case: "pipeline throughput (events/s)".into(),
                subject,
                latency: None,
                throughput: Some(eps),
                ratio: if pi == 0 { None } else { ratio(eps, base_eps) },
                note: format!(
                    "{:.0} frames/s; ratio {}{threads}",
                    fps,
                    if pi == 0 {
                        "baseline".to_string()
                    } else {
                        format!("{} / {} (> 1 is better)", p.name, profiles[0].name)
                    }
                ),
            });
        }
    }
    let method = format!(
        "{capture} capture ({frames} frames{quick}) through the pipeline of `algo-engine run` \
         (feed with books and journal -> {RING}-event SPSC ring -> strategy with journal), \
         placed on threads by hotpath::runtime::Runtime with tuning/profiles/{p0} and \
         tuning/profiles/{p1}; {cores} cores here (a profile thread whose core does not exist \
         runs unpinned, see the throughput notes). Latencies are the engine's own stamps \
         recorded by the strategy stage's LatencyReport, merged over {reps} repetitions per \
         profile and pace, HDR files layout-<profile>-<pace>-{{decode,hop}}.hdr.txt; the \
         overhead above is two back-to-back TSC reads (one per stamp), p50 subtracted. Pace \
         `max` replays as fast as the feed reads (the hop then includes queueing whenever the \
         strategy is slower); `paced` replays the recorded timeline {paced:.0}x faster than \
         recorded (about {target} s per run). Throughput: events/s over wall time from spawn \
         to join, median of the repetitions. Runs alternate between profiles; journals in \
         fresh temp dirs; one untimed warm-up run per profile.",
        frames = input.frames.len(),
        quick = if opts.quick {
            ", QUICK run: not for quoting"
        } else {
            ""
        },
        p0 = PROFILES[0],
        p1 = PROFILES[1],
        cores = machine.cores,
        reps = opts.reps.max(1),
    );
    Ok(Report {
        suite: "layout".into(),
        machine,
        overhead: ov,
        method,
        rows,
    })
}
