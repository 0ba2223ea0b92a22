//! `algo-engine replay <journal>`: a recorded journal through the same stages again, and the
//! check that they decide the same.
//!
//! The feed journal holds every inbound byte with its receive time (raw frames, REST depth
//! snapshots tagged with the instrument they were fetched for) and `instruments.json` holds
//! the instrument table the engine ran with. Replay reads both, feeds the raw frames through a
//! fresh feed stage (decode, books) and strategy stage (analytics, the four-level decision)
//! placed on threads by a profile, exactly as `run` does, into a new journal, and then
//! compares the new strategy journal with the recorded one record by record: every `Decision`,
//! `OrderIntent`, `RiskReject` and `TradeClose` must be byte-identical once the stamps' local
//! clock readings
//! (`recv_tsc` and the per-stage TSCs, which measure this run's latency and cannot repeat) are
//! cleared. The first difference is printed with both records and their positions, and the
//! command exits 1; identical runs exit 0.
//!
//! A trading run's fills and operator commands reached its strategy asynchronously; the
//! strategy journaled where each landed among the market events
//! ([`Applied`](hotpath::codec::Applied) records), and replay applies the recorded executions
//! (the gateway journal's `Exec` records) and commands at exactly those places
//! ([`recorded_schedule`]), so positions, exits and P&L replay too. The thresholds come from the
//! `config.toml` the run wrote beside its journal unless `--config` names another.
//!
//! With the same configuration a difference is a determinism bug (wall-clock time or thread
//! timing leaking into a decision). After a strategy change, it is the first decision the
//! change affects.

use anyhow::{bail, Context, Result};
use clap::Args;
use hotpath::book::{BookSet, SyncMode};
use hotpath::codec::{decode, open_tailer, summarize, RecordKind};
use hotpath::event::{Decision, OrderIntent, Stamps};
use hotpath::feed::{raw_frame_rest, BinanceFeedDecoder, ReplaySource, RestBody};
use hotpath::instrument::{InstrumentId, InstrumentTable, Venue};
use hotpath::runtime::{Profile, Stage};
use hotpath::strategy::{Schedule, Scheduled};
use hotpath::venue::binance::Scanner;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipeline::{parse_speed, print_strategy, print_threads, StrategySeat};

/// Arguments of `algo-engine replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The recorded journal (the feed journal directory written by `run`, `record` or
    /// `import`; its decisions are in `<journal>/strategy`).
    pub journal: PathBuf,
    /// Replay pace: `max`, or a multiple of recorded time such as `1x` or `10x`.
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Thread layout.
    #[arg(long, default_value = "tuning/profiles/fused-2core.toml")]
    pub profile: PathBuf,
    /// Where the replay journals (default: a new directory next to the recorded journal,
    /// `<journal>.replay-<unix seconds>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Capacity of the feed -> strategy ring (power of two).
    #[arg(long, default_value_t = 4096)]
    pub ring: usize,
    /// Configuration whose `[strategy]` and `[risk]` thresholds decide (merged over the
    /// embedded default). Default: the `config.toml` the run wrote beside the journal, so an
    /// unchanged configuration reproduces the recorded decisions; another file shows where
    /// they first differ.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// A recorded journal's raw frames, in journal order, with their REST attribution.
pub struct RecordedFrames {
    /// `(receive ns, bytes, REST body it is)`.
    pub frames: Vec<(u64, Vec<u8>, Option<RestBody>)>,
}

/// Reads every raw frame of the journal in `dir`.
pub fn read_raw_frames(dir: &Path) -> Result<RecordedFrames> {
    let mut tailer = open_tailer(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut frames = Vec::new();
    while let Some(r) = tailer
        .next()
        .with_context(|| format!("reading {}", dir.display()))?
    {
        if RecordKind::from_u16(r.kind) == Some(RecordKind::RawFrame) {
            frames.push((r.timestamp, r.payload.to_vec(), raw_frame_rest(r.flags)));
        }
    }
    Ok(RecordedFrames { frames })
}

/// The instrument table the journal in `dir` was written with (`instruments.json`).
pub fn journal_table(dir: &Path) -> Result<InstrumentTable> {
    let infos = coldpath::import::read_instruments(dir)
        .with_context(|| format!("reading {}/instruments.json", dir.display()))?;
    if infos.is_empty() {
        bail!(
            "{} has no instruments.json: it is written by `run`, `record` and `import`; a journal without it cannot be decoded again",
            dir.display()
        );
    }
    Ok(coldpath::import::table_from_infos(&infos)?)
}

/// One record of a strategy journal in comparable form.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparable {
    /// Journal sequence number.
    pub seq: u64,
    /// Record kind.
    pub kind: RecordKind,
    /// The payload re-encoded with the local clock readings of its stamps cleared.
    pub bytes: Vec<u8>,
    /// Human-readable form.
    pub summary: String,
}

fn clear_clocks(s: &mut Stamps) {
    s.recv_tsc = 0;
    s.stage_tsc = Default::default();
}

/// What the recorded run applied among the market events: every execution (from the gateway
/// journal beside the strategy journal, in order) and control command, at the place the
/// strategy's [`Applied`](hotpath::codec::Applied) records say.
pub fn recorded_schedule(journal: &Path) -> Result<Schedule> {
    use hotpath::codec::{Applied, AppliedKind};
    use hotpath::event::{Control, ExecEvent};
    let gateway = journal.join("gateway");
    let mut execs = std::collections::VecDeque::new();
    if gateway.is_dir() {
        let mut t =
            open_tailer(&gateway).with_context(|| format!("opening {}", gateway.display()))?;
        while let Some(r) = t
            .next()
            .with_context(|| format!("reading {}", gateway.display()))?
        {
            if RecordKind::from_u16(r.kind) == Some(RecordKind::Exec) {
                execs.push_back(decode::<ExecEvent>(r.payload)?);
            }
        }
    }
    let dir = journal.join("strategy");
    let mut items = Vec::new();
    if dir.is_dir() {
        let mut t = open_tailer(&dir).with_context(|| format!("opening {}", dir.display()))?;
        let mut control_at = None;
        while let Some(r) = t
            .next()
            .with_context(|| format!("reading {}", dir.display()))?
        {
            match RecordKind::from_u16(r.kind) {
                Some(RecordKind::Applied) => {
                    let a = Applied::from_bytes(r.payload).with_context(|| {
                        format!("bad applied record #{} in {}", r.seq, dir.display())
                    })?;
                    match a.what {
                        AppliedKind::Exec => {
                            let x = execs.pop_front().with_context(|| {
                                format!(
                                    "{} applied more executions than {} holds",
                                    dir.display(),
                                    gateway.display()
                                )
                            })?;
                            items.push((a.after_events, Scheduled::Exec(x)));
                        }
                        AppliedKind::Control => control_at = Some(a.after_events),
                    }
                }
                Some(RecordKind::Control) => {
                    if let Some(at) = control_at.take() {
                        items.push((at, Scheduled::Control(decode::<Control>(r.payload)?)));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Schedule::new(items))
}

/// The decisions, intents, risk rejections and closed trades of the strategy journal in `dir`,
/// stamps' clocks cleared.
pub fn strategy_records(dir: &Path) -> Result<Vec<Comparable>> {
    let mut tailer = open_tailer(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1024];
    while let Some(r) = tailer
        .next()
        .with_context(|| format!("reading {}", dir.display()))?
    {
        let kind = RecordKind::from_u16(r.kind);
        let len = match kind {
            Some(RecordKind::Decision) => {
                let mut d: Decision = decode(r.payload)?;
                clear_clocks(&mut d.stamps);
                hotpath::codec::encode_into(&d, &mut buf)?
            }
            Some(RecordKind::Intent) => {
                let mut i: OrderIntent = decode(r.payload)?;
                clear_clocks(&mut i.stamps);
                hotpath::codec::encode_into(&i, &mut buf)?
            }
            Some(RecordKind::RiskReject | RecordKind::TradeClose) => {
                buf[..r.payload.len()].copy_from_slice(r.payload);
                r.payload.len()
            }
            _ => continue,
        };
        let bytes = buf[..len].to_vec();
        out.push(Comparable {
            seq: r.seq,
            kind: kind.expect("matched above"),
            summary: summarize(r.kind, &bytes),
            bytes,
        });
    }
    Ok(out)
}

/// Where two record lists first differ: `None` when identical.
pub fn first_difference(a: &[Comparable], b: &[Comparable]) -> Option<usize> {
    let n = a.len().min(b.len());
    (0..n)
        .find(|&i| a[i].kind != b[i].kind || a[i].bytes != b[i].bytes)
        .or((a.len() != b.len()).then_some(n))
}

fn default_out(journal: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = journal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    journal.with_file_name(format!("{name}.replay-{secs}"))
}

/// Runs the replay and the comparison.
pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let speed = parse_speed(&args.speed)?;
    let profile = Profile::load(&args.profile)?;
    let table = journal_table(&args.journal)?;
    let venue = table
        .iter()
        .next()
        .map(|(_, s)| s.venue)
        .context("empty instrument table")?;
    if !matches!(
        venue,
        Venue::BinanceSpot | Venue::BinanceUsdM | Venue::BinanceCoinM
    ) {
        bail!(
            "replay decodes Binance journals; {} has {} instruments",
            args.journal.display(),
            venue.name()
        );
    }
    let beside = args.journal.join(crate::config::JOURNAL_CONFIG);
    let config_path = match &args.config {
        Some(p) => Some(p.clone()),
        None => beside.is_file().then_some(beside),
    };
    let cfg = crate::config::Config::load(config_path.as_deref())?;
    let params = crate::pipeline::StrategyParams::from_config(&cfg);
    let recorded_dir = args.journal.join("strategy");
    let recorded = if recorded_dir.is_dir() {
        Some(strategy_records(&recorded_dir)?)
    } else {
        None
    };
    let input = read_raw_frames(&args.journal)?;
    let has_snapshots = input.frames.iter().any(|f| {
        matches!(f.2, Some(RestBody::Depth(_)))
            || f.1.trim_ascii_start().starts_with(b"{\"lastUpdateId\"")
    });
    let single = (table.len() == 1).then_some(InstrumentId(0));
    let total = input.frames.len() as u64;
    let source = ReplaySource::with_rest_bodies(
        input
            .frames
            .iter()
            .map(|(ns, f, snap)| (*ns, f.as_slice(), *snap)),
        speed,
    );
    drop(input);

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&args.journal));
    if out.exists() && std::fs::read_dir(&out)?.next().is_some() {
        bail!(
            "{} is not empty; replay writes a new journal",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    coldpath::import::write_instruments(&out, &table, "replay")?;
    let table: &'static InstrumentTable = Box::leak(Box::new(table));
    let decoder = BinanceFeedDecoder::new(Scanner::new(table, venue), single);
    let appender = ringbuffers::journal::Appender::open(&out, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", out.display()))?;
    let (tx, rx) = ringbuffers::spsc::channel(args.ring.max(2).next_power_of_two());
    let sync = if has_snapshots {
        SyncMode::Snapshot
    } else {
        SyncMode::FromStream
    };
    let (feed, feed_done, feed_report) = crate::pipeline::feed_stage(
        source,
        decoder,
        appender,
        tx,
        BookSet::for_table(table, sync),
    );
    let mut stages: Vec<Box<dyn Stage>> = vec![feed];
    cfg.write_beside(&out)?;
    // The executions and commands of the recorded run, applied where it applied them.
    let schedule = recorded_schedule(&args.journal)?;
    let scheduled = schedule.pending();
    let mut seat = StrategySeat::with_rings(
        table,
        &params,
        &out,
        rx,
        feed_done,
        None,
        None,
        Some(schedule),
    )?;
    stages.push(Box::new(seat.stage.take().expect("fresh seat")));

    eprintln!(
        "replaying {} frames of {} into {} ({} pace)",
        total,
        args.journal.display(),
        out.display(),
        args.speed
    );
    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let started = Instant::now();
    let rt = crate::pipeline::start_hot_threads(&profile, stages, stop.clone())?;
    // Progress comes from the replay's own journal (a cold tailer), not from the hot threads.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} frames ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut progress = open_tailer(&out).ok();
    let mut seen = 0u64;
    while !rt.is_done() {
        seat.drain_intents();
        if let Some(t) = progress.as_mut() {
            while let Ok(Some(r)) = t.next() {
                if r.kind == RecordKind::RawFrame.as_u16() {
                    seen += 1;
                }
            }
            bar.set_position(seen);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let threads = rt.join();
    seat.drain_intents();
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let feed = *feed_report.lock().expect("feed report");
    print_threads(&profile, &threads)?;
    println!(
        "replay: {} frames, {} events, {} decode errors, {} book gaps in {:.3?} ({:.0} frames/s)",
        feed.frames,
        feed.events,
        feed.decode_errors,
        feed.book_gaps,
        elapsed,
        feed.frames as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    print_strategy(&seat);

    let Some(recorded) = recorded else {
        println!(
            "the recorded journal has no strategy journal ({}); nothing to compare, replay decisions are in {}",
            recorded_dir.display(),
            out.join("strategy").display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let replayed = strategy_records(&out.join("strategy"))?;
    let decisions = recorded
        .iter()
        .filter(|c| c.kind == RecordKind::Decision)
        .count();
    match first_difference(&recorded, &replayed) {
        None => {
            println!(
                "identical: {} decisions and {} intents, risk rejections and closed trades match the recorded journal byte for byte (stamps' local clocks excluded; {} executions and commands applied at their recorded places)",
                decisions,
                recorded.len() - decisions,
                scheduled
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(i) => {
            println!(
                "DIFFERENT at strategy record #{i} (of {} recorded, {} replayed):",
                recorded.len(),
                replayed.len()
            );
            let show = |label: &str, c: Option<&Comparable>| match c {
                Some(c) => println!("  {label}: seq {} {}: {}", c.seq, c.kind.name(), c.summary),
                None => println!("  {label}: (none)"),
            };
            show("recorded", recorded.get(i));
            show("replayed", replayed.get(i));
            Ok(ExitCode::from(1))
        }
    }
}
