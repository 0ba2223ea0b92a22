//! `replay` suite: how fast a recorded journal replays through the hot-path stages, against
//! how fast the same journal can merely be read.
//!
//! Recording: the capture (`ALGO_DATA_DIR/binance/spot/btcusdt_20240808.gz`) runs once through
//! the pipeline of `algo-engine run` (feed with books and journal -> ring -> strategy with its
//! journal; [`crate::layout`] wires it, fused-2core profile, max pace) into a fresh journal,
//! with `instruments.json` beside it, as `algo-engine record` leaves one.
//!
//! Replay, as `algo-engine replay` does it: the journal's instrument table and raw frames (with
//! their receive times and REST attribution) are read back with a tailer, loaded into memory,
//! and played as fast as the feed takes them through a fresh feed stage and strategy stage into
//! a new journal. What is timed is the pipeline from thread spawn to join; loading is reported
//! in the method. Each replay must make exactly as many decisions as the recording did (the
//! determinism `algo-engine replay` checks record by record), else the suite fails.
//!
//! Rows:
//! - replay throughput in frames/s and events/s (median over repetitions) and the mean ns per
//!   frame and per event that follows;
//! - the per-event latencies from the engine's own stamps, as the strategy stage's
//!   `LatencyReport` records them: receive -> decoded (the feed's work on the event's frame) and
//!   decoded -> strategy (the ring hop; at max pace it includes queueing behind earlier events);
//! - the peer: a read-only scan of the same feed journal with the journal's [`Tailer`] (every
//!   record, CRC-checked, payload touched), in frames/s; the replay row's ratio is replay /
//!   scan, so `1 - ratio` is the share of the replay's time the stages cost beyond reading.
//!
//! [`Tailer`]: ringbuffers::journal::Tailer

use std::path::Path;

use anyhow::{bail, Context};
use hotpath::codec::{open_tailer, RecordKind};
use hotpath::feed::raw_frame_rest;
use hotpath::runtime::Profile;

use crate::harness::{load_average, median, Clock, LatencyHist, Machine, Report, Row, SuiteOpts};
use crate::layout::{profile_dir, ruler, run_with, CAPTURE};

/// Frames of the capture recorded in a `--quick` run.
const QUICK_FRAMES: usize = 20_000;

/// What a read-only scan of a journal saw.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    records: u64,
    frames: u64,
    bytes: u64,
    elapsed_ns: u64,
}

/// Reads every record of the journal in `dir` once, touching each payload (the tailer checks
/// length, sequence and CRC32C of each).
fn scan(dir: &Path, clock: &Clock) -> anyhow::Result<Scan> {
    let mut t = open_tailer(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut s = Scan::default();
    let mut sum = 0u64;
    let t0 = clock.raw();
    while let Some(r) = t
        .next()
        .with_context(|| format!("reading {}", dir.display()))?
    {
        s.records += 1;
        s.frames += u64::from(r.kind == RecordKind::RawFrame.as_u16());
        s.bytes += r.payload.len() as u64;
        sum = sum.wrapping_add(u64::from(r.payload.last().copied().unwrap_or(0)));
    }
    s.elapsed_ns = clock.delta_ns(t0, clock.raw());
    std::hint::black_box(sum);
    Ok(s)
}

/// The journal in `dir` as replay input: its instrument table (`instruments.json`) and raw
/// frames in journal order.
fn load_journal(dir: &Path) -> anyhow::Result<coldpath::replay::ReplayInput> {
    let infos = coldpath::import::read_instruments(dir)
        .with_context(|| format!("reading {}/instruments.json", dir.display()))?;
    let table = coldpath::import::table_from_infos(&infos)?;
    let (instrument, spec) = table
        .iter()
        .next()
        .context("the recorded journal has no instrument")?;
    let (venue, symbol) = (spec.venue, spec.symbol.as_str().to_string());
    let mut t = open_tailer(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut frames = Vec::new();
    while let Some(r) = t
        .next()
        .with_context(|| format!("reading {}", dir.display()))?
    {
        if r.kind == RecordKind::RawFrame.as_u16() {
            // A capture's inline snapshot is attributed by the decoder's single instrument,
            // as when it was recorded; a REST body fetched live would carry its own.
            if raw_frame_rest(r.flags).is_some() {
                bail!(
                    "replay suite: journal holds live REST bodies; it was recorded from a capture"
                );
            }
            frames.push((r.timestamp, r.payload.to_vec()));
        }
    }
    Ok(coldpath::replay::ReplayInput {
        venue,
        symbol,
        instrument,
        table,
        frames,
    })
}

/// Runs the suite; see the module docs.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let ov = ruler(&clock);
    let machine = Machine::detect();
    let Some(path) = hotpath::datadir::capture(CAPTURE) else {
        if hotpath::datadir::data_required() {
            bail!("capture {CAPTURE} not found under ALGO_DATA_DIR (ALGO_REQUIRE_DATA is set)");
        }
        return Ok(Report {
            suite: "replay".into(),
            machine,
            overhead: ov,
            method: "not run: capture not found (set ALGO_DATA_DIR)".into(),
            rows: Vec::new(),
        });
    };
    let load_start = load_average();
    let profile = Profile::load(&profile_dir().join("fused-2core.toml"))?;
    let capture = coldpath::replay::load_hftbacktest(&path, opts.quick.then_some(QUICK_FRAMES))
        .with_context(|| format!("loading {}", path.display()))?;

    // Record.
    let recorded = tempfile::tempdir()?;
    let rec = run_with(
        &profile,
        &capture,
        None,
        recorded.path(),
        &clock,
        |_| Ok(()),
    )?;
    coldpath::import::write_instruments(recorded.path(), &capture.table, "builtin")?;
    drop(capture);

    // Load it back as `algo-engine replay` does.
    let t0 = clock.raw();
    let input = load_journal(recorded.path())?;
    let load_ns = clock.delta_ns(t0, clock.raw());
    if input.frames.len() as u64 != rec.feed.frames {
        bail!(
            "replay suite: {} frames recorded, {} read back",
            rec.feed.frames,
            input.frames.len()
        );
    }

    // One untimed replay and scan first: code, page cache, allocator.
    {
        let tmp = tempfile::tempdir()?;
        run_with(&profile, &input, None, tmp.path(), &clock, |_| Ok(()))?;
        scan(recorded.path(), &clock)?;
    }
    let reps = opts.reps.max(1);
    let (mut decode, mut hop) = (LatencyHist::new(), LatencyHist::new());
    let (mut fps, mut eps, mut scan_fps, mut scan_rps, mut scan_mbps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut events = 0;
    let mut last_scan = Scan::default();
    for _ in 0..reps {
        // Alternating, so drift hits the replay and its peer alike.
        let s = scan(recorded.path(), &clock)?;
        let secs = s.elapsed_ns.max(1) as f64 / 1e9;
        scan_fps.push(s.frames as f64 / secs);
        scan_rps.push(s.records as f64 / secs);
        scan_mbps.push(s.bytes as f64 / secs / 1e6);
        last_scan = s;

        let tmp = tempfile::tempdir()?;
        let r = run_with(&profile, &input, None, tmp.path(), &clock, |_| Ok(()))?;
        if r.strategy.decisions != rec.strategy.decisions || r.feed.events != rec.feed.events {
            bail!(
                "replay suite: the replay made {} decisions from {} events, the recording {} from {}",
                r.strategy.decisions,
                r.feed.events,
                rec.strategy.decisions,
                rec.feed.events
            );
        }
        let secs = r.elapsed_ns.max(1) as f64 / 1e9;
        fps.push(r.feed.frames as f64 / secs);
        eps.push(r.feed.events as f64 / secs);
        events = r.feed.events;
        decode.add_histogram(&r.latency.decode_ns);
        hop.add_histogram(&r.latency.hop_ns);
    }
    std::fs::create_dir_all(&opts.out_dir)?;
    decode.write_percentiles(&opts.out_dir.join("replay-recv-decoded.hdr.txt"))?;
    hop.write_percentiles(&opts.out_dir.join("replay-decoded-strategy.hdr.txt"))?;
    let (fps, eps) = (median(fps), median(eps));
    let (sfps, srps, smbps) = (median(scan_fps), median(scan_rps), median(scan_mbps));
    let frames = input.frames.len();
    let ratio = (fps > 0.0 && sfps > 0.0).then(|| fps / sfps);
    let rows = vec![
        Row {
            case: "journal replay (frames/s)".into(),
            subject: "feed + strategy stages, fused-2core, max pace".into(),
            latency: None,
            throughput: Some(fps),
            ratio,
            note: format!(
                "{:.0} ns/frame mean; ratio: replay / read-only scan of the same journal (1 - ratio = stages' share)",
                1e9 / fps.max(1e-9)
            ),
        },
        Row {
            case: "journal replay (events/s)".into(),
            subject: "feed + strategy stages, fused-2core, max pace".into(),
            latency: None,
            throughput: Some(eps),
            ratio: None,
            note: format!(
                "{:.0} ns/event mean; {events} events from {frames} frames; {} decisions, as recorded",
                1e9 / eps.max(1e-9),
                rec.strategy.decisions
            ),
        },
        Row {
            case: "per event: receive -> decoded".into(),
            subject: "engine stamps (LatencyReport)".into(),
            latency: Some(decode.percentiles(ov.p50)),
            throughput: None,
            ratio: None,
            note: "the feed's work on the event's frame (copy, journal, decode)".into(),
        },
        Row {
            case: "per event: decoded -> strategy".into(),
            subject: "engine stamps (LatencyReport)".into(),
            latency: Some(hop.percentiles(ov.p50)),
            throughput: None,
            ratio: None,
            note: "ring hop; at max pace includes queueing behind the frame's other events".into(),
        },
        Row {
            case: "journal scan, read-only (frames/s)".into(),
            subject: "ringbuffers::journal::Tailer (peer)".into(),
            latency: None,
            throughput: Some(sfps),
            ratio: None,
            note: format!(
                "{srps:.0} records/s, {smbps:.0} MB/s: {} records ({} raw frames, {} payload bytes) CRC-checked",
                last_scan.records, last_scan.frames, last_scan.bytes
            ),
        },
    ];
    let method = format!(
        "{CAPTURE}{quick} recorded once through the pipeline of `algo-engine run` (feed with books \
         and journal -> 4096-event ring -> strategy with journal, tuning/profiles/fused-2core.toml, \
         max pace) with instruments.json beside it; then read back like `algo-engine replay` \
         (instrument table and {frames} raw frames through a tailer, {load:.1} ms, untimed) and \
         replayed through fresh stages into a new journal at max pace, timed from thread spawn \
         to join. Peer: a read-only Tailer scan of the recorded feed journal. {reps} repetitions \
         after one untimed replay and scan, scan and replay alternating; throughputs are medians, \
         per-event latencies merged HDR (replay-*.hdr.txt), overhead = two back-to-back TSC reads, \
         p50 subtracted. Each replay must repeat the recording's decision count. Load average \
         {load_start} at the start, {load_end} at the end.",
        quick = if opts.quick {
            format!(" (first {QUICK_FRAMES} frames; QUICK run: not for quoting)")
        } else {
            String::new()
        },
        load = load_ns as f64 / 1e6,
        load_end = load_average(),
    );
    Ok(Report {
        suite: "replay".into(),
        machine,
        overhead: ov,
        method,
        rows,
    })
}
