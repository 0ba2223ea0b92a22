//! `feed` suite: the feed stage end to end on the real captures, frame bytes in the receive
//! buffer to events in the strategy's ring.
//!
//! The subject is [`hotpath::feed::FeedStage`] exactly as `algo-engine run` builds it: a
//! [`ReplaySource`] holding the whole capture in memory (so the stage reads frames the way it
//! would read a socket's receive buffer, without file I/O), the Binance codec
//! ([`BinanceFeedDecoder`] over the hot-path `Scanner`), a journal [`Appender`] with the engine's
//! configuration, and an SPSC ring of 65536 events. Every message of
//! `binance/spot/btcusdt_20240808.gz` and `binance/usdm/btcusdt_20240808.gz` (under
//! `ALGO_DATA_DIR`) goes through it, loaded with `coldpath`'s hftbacktest reader the way
//! `algo-engine run` loads a capture.
//!
//! The journal cannot be switched off (the stage requires an `Appender` and journals every raw
//! frame and every event), so the suite runs two journal placements and says which:
//! - **disk**: a temporary directory under the system temp dir (its filesystem is named in the
//!   row), i.e. memory-mapped segments on a block device, with page-cache writeback behind them;
//! - **tmpfs**: a temporary directory in `/dev/shm`, which removes the disk (writeback, block
//!   allocation) but keeps the appends themselves: the closest to "journal off" the stage allows.
//!
//! Measurements, all inside one thread pinned to `core_a` (the journal's own pre-fault helper
//! thread is unpinned, as in the engine):
//! - **per frame**: a TSC read immediately before [`Stage::poll`], whose first action is copying
//!   the next frame from the source into the stage's receive buffer, and one right after it
//!   returns, when every event of the frame has been pushed to the ring (the stage publishes a
//!   frame's events with one `push_slice`, so they become visible together). Frames by message
//!   type are reported too (tmpfs journal only, to keep the table short).
//! - **per event, in ring**: the stage decodes and journals all of a frame's events before it
//!   publishes them with one `push_slice`, so every event of a frame becomes visible in the
//!   ring at the same instant, the end of the frame's `poll`: each event is recorded with its
//!   frame's latency. Every event of a depth update (or of the REST snapshot, thousands of
//!   levels) waits for its whole frame, so these percentiles are weighted towards the large
//!   frames; the row's note gives the share of events per frame type.
//! - **per event, popped**: the consumer pops the ring one event at a time right after `poll`
//!   returns and stamps each pop (stamps kept in a preallocated buffer and recorded after the
//!   drain); latency from the frame's pre-copy stamp to the pop, i.e. including the pops of the
//!   events ahead of it: what a strategy popping one by one sees.
//! - **recv → Decoded**: the event's own stamps, the stage's receive TSC (taken right after
//!   the copy) to the `Decoded` stamp the stage sets when the codec emits the event (so it
//!   includes decoding and journaling the frame's earlier events).
//! - **throughput**: a separate pass over the whole capture with a fresh stage and journal and
//!   no per-frame clock reads: `poll` then drain the ring, until the source ends; frames/s and
//!   events/s from two TSC reads around the pass, median of the repetitions.
//!
//! Every repetition builds a fresh stage and a fresh journal (first segment pre-faulted by
//! `Appender::open`, as in the engine); one untimed pass over each capture warms code and caches
//! first. Repetitions are interleaved over captures and journal placements.

use crate::harness::{
    measurement_overhead, median, pin_to, Clock, LatencyHist, Machine, Report, Row, SuiteOpts,
};
use anyhow::{bail, Context};
use hotpath::event::{MarketEvent, Stage as StampStage};
use hotpath::feed::{BinanceFeedDecoder, FeedCounters, FeedStage, ReplaySource};
use hotpath::instrument::{InstrumentId, InstrumentTable, Venue};
use hotpath::runtime::Stage;
use hotpath::venue::binance::Scanner;
use ringbuffers::journal::Appender;
use ringbuffers::spsc;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Captures replayed, relative to `ALGO_DATA_DIR`.
const CAPTURES: [&str; 2] = [
    "binance/spot/btcusdt_20240808.gz",
    "binance/usdm/btcusdt_20240808.gz",
];
/// Largest frame the stage accepts (as `algo-engine run`).
const MAX_FRAME: usize = 1 << 20;
/// Largest number of events forwarded per frame (as `algo-engine run`).
const MAX_EVENTS: usize = 16_384;
/// Ring capacity: more than any frame's events, so the drained ring never applies backpressure.
const RING: usize = 1 << 16;
/// Frames per capture in a `--quick` run.
const QUICK_FRAMES: usize = 10_000;

/// Message type of a frame, for the per-type rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FrameKind {
    BookTicker,
    Trade,
    Depth,
    Other,
}

impl FrameKind {
    const ALL: [FrameKind; 4] = [
        FrameKind::BookTicker,
        FrameKind::Trade,
        FrameKind::Depth,
        FrameKind::Other,
    ];

    fn of(frame: &[u8]) -> FrameKind {
        let has = |pat: &[u8]| frame.windows(pat.len()).any(|w| w == pat);
        if has(b"@bookTicker\"") {
            FrameKind::BookTicker
        } else if has(b"@trade\"") {
            FrameKind::Trade
        } else if has(b"@depth") {
            FrameKind::Depth
        } else {
            FrameKind::Other
        }
    }

    fn name(self) -> &'static str {
        match self {
            FrameKind::BookTicker => "bookTicker",
            FrameKind::Trade => "trade",
            FrameKind::Depth => "depthUpdate",
            FrameKind::Other => "snapshot/other",
        }
    }
}

/// A capture loaded in memory with everything a decoder needs.
struct Capture {
    /// Short label, e.g. `spot btcusdt`.
    label: String,
    venue: Venue,
    /// Interned once and leaked: decoders borrow it for the rest of the process, as in the
    /// engine.
    table: &'static InstrumentTable,
    /// The single instrument, for REST depth snapshots interleaved with the stream.
    snapshot_instrument: Option<InstrumentId>,
    /// `(receive ns, raw frame)` in capture order.
    frames: Vec<(u64, Vec<u8>)>,
    kinds: Vec<FrameKind>,
}

impl Capture {
    /// Loads `path` as `algo-engine run` does (`coldpath::replay`): venue from the directory,
    /// symbol from the file name, built-in instrument spec, every frame (malformed lines too,
    /// which the feed counts and journals).
    fn load(path: &Path, limit: Option<usize>) -> anyhow::Result<Capture> {
        let input = coldpath::replay::load_hftbacktest(path, limit)
            .with_context(|| format!("loading {}", path.display()))?;
        let (venue, symbol, id, frames) = (
            input.venue,
            input.symbol.clone(),
            input.instrument,
            input.frames,
        );
        let table: &'static InstrumentTable = Box::leak(Box::new(input.table));
        let kinds = frames.iter().map(|(_, f)| FrameKind::of(f)).collect();
        Ok(Capture {
            label: format!(
                "{} {}",
                venue.name().trim_start_matches("binance_"),
                symbol.to_ascii_lowercase()
            ),
            venue,
            table,
            snapshot_instrument: Some(id),
            frames,
            kinds,
        })
    }

    fn bytes(&self) -> usize {
        self.frames.iter().map(|(_, f)| f.len()).sum()
    }

    /// A fresh feed stage over the whole capture, journaling into `dir`, and the ring's
    /// consumer end.
    fn stage(
        &self,
        dir: &Path,
    ) -> anyhow::Result<(
        FeedStage<ReplaySource, BinanceFeedDecoder>,
        spsc::Consumer<MarketEvent>,
    )> {
        let source = ReplaySource::new(self.frames.iter().map(|(ns, f)| (*ns, f.as_slice())), None);
        let decoder = BinanceFeedDecoder::new(
            Scanner::new(self.table, self.venue),
            self.snapshot_instrument,
        );
        let journal = Appender::open(dir, hotpath::codec::journal_config())
            .with_context(|| format!("opening journal {}", dir.display()))?;
        let (tx, rx) = spsc::channel(RING);
        let stage = FeedStage::new(
            source,
            decoder,
            journal,
            tx,
            MAX_FRAME,
            MAX_EVENTS,
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(FeedCounters::default())),
        );
        Ok((stage, rx))
    }
}

/// Where the journal goes.
#[derive(Clone, Debug)]
struct Placement {
    /// `disk` or `tmpfs`.
    name: &'static str,
    /// Parent directory of the per-run temporary journals.
    parent: PathBuf,
    /// Filesystem of `parent`, as statfs names it.
    fs: String,
}

/// Filesystem type of `path` from `statfs`'s magic number.
fn fs_type(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live, writable `statfs`.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    match st.f_type as u64 {
        0x0102_1994 => "tmpfs".into(),
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x6969 => "nfs".into(),
        m => format!("fs magic {m:#x}"),
    }
}

/// The journal placements available here: the system temp dir (disk), and `/dev/shm` if it is
/// a tmpfs.
fn placements() -> Vec<Placement> {
    let tmp = std::env::temp_dir();
    let mut v = vec![Placement {
        name: "disk",
        fs: fs_type(&tmp),
        parent: tmp,
    }];
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() && fs_type(&shm) == "tmpfs" {
        v.push(Placement {
            name: "tmpfs",
            parent: shm,
            fs: "tmpfs".into(),
        });
    }
    v
}

/// Histograms of one (capture, placement), merged over repetitions.
struct Hists {
    frame: LatencyHist,
    visible: LatencyHist,
    popped: LatencyHist,
    decoded: LatencyHist,
    by_kind: Vec<LatencyHist>,
    /// Events per frame type in the last latency pass.
    events_by_kind: [u64; 4],
    frames_per_s: Vec<f64>,
    events_per_s: Vec<f64>,
    counters: FeedCounters,
}

impl Hists {
    fn new() -> Self {
        Hists {
            frame: LatencyHist::new(),
            visible: LatencyHist::new(),
            popped: LatencyHist::new(),
            decoded: LatencyHist::new(),
            by_kind: FrameKind::ALL.iter().map(|_| LatencyHist::new()).collect(),
            events_by_kind: [0; 4],
            frames_per_s: Vec::new(),
            events_per_s: Vec::new(),
            counters: FeedCounters::default(),
        }
    }
}

/// The latency pass: one `poll` per frame between two TSC reads, then the ring drained with a
/// stamp per event. Returns the stage's counters.
fn latency_pass(
    cap: &Capture,
    dir: &Path,
    clock: &Clock,
    h: &mut Hists,
) -> anyhow::Result<FeedCounters> {
    let (mut stage, mut rx) = cap.stage(dir)?;
    let mut i = 0usize;
    let mut events_by_kind = [0u64; 4];
    // Per popped event: (pop TSC, receive TSC, Decoded TSC), recorded after the drain so that
    // the histogram work does not delay the events behind it.
    let mut pops: Vec<(u64, u64, u64)> = Vec::with_capacity(RING);
    loop {
        let t0 = clock.raw();
        let n = stage.poll();
        let t1 = clock.raw();
        if n == 0 {
            if stage.finished() {
                break;
            }
            continue;
        }
        // The drain: what a consumer does, one pop and one stamp per event.
        pops.clear();
        while let Some(ev) = rx.try_pop() {
            let tp = clock.raw();
            let decoded = ev.stamps.at(StampStage::Decoded).unwrap_or(0);
            pops.push((tp, ev.stamps.recv_tsc, decoded));
        }
        let ns = clock.delta_ns(t0, t1);
        h.frame.record(ns);
        let kind = cap.kinds.get(i).copied().unwrap_or(FrameKind::Other) as usize;
        h.by_kind[kind].record(ns);
        i += 1;
        events_by_kind[kind] += pops.len() as u64;
        for &(tp, recv, decoded) in &pops {
            // Every event of the frame became visible at the same instant (one `push_slice`).
            h.visible.record(ns);
            h.popped.record(clock.delta_ns(t0, tp));
            if decoded != 0 {
                h.decoded.record(clock.delta_ns(recv, decoded));
            }
        }
    }
    h.events_by_kind = events_by_kind;
    let c = stage.counters();
    if c.frames as usize != cap.frames.len() {
        bail!(
            "{}: the stage read {} frames of {}",
            cap.label,
            c.frames,
            cap.frames.len()
        );
    }
    Ok(c)
}

/// The throughput pass: `poll` and drain until the source ends; returns (frames/s, events/s).
fn throughput_pass(cap: &Capture, dir: &Path, clock: &Clock) -> anyhow::Result<(f64, f64)> {
    let (mut stage, mut rx) = cap.stage(dir)?;
    let mut popped = 0u64;
    let t0 = clock.raw();
    loop {
        let n = stage.poll();
        popped += rx.read_batch(RING, |e| {
            std::hint::black_box(e);
        }) as u64;
        if n == 0 && stage.finished() {
            break;
        }
    }
    let t1 = clock.raw();
    let c = stage.counters();
    if popped != c.events {
        bail!(
            "{}: popped {popped} events, stage published {}",
            cap.label,
            c.events
        );
    }
    let secs = clock.delta_ns(t0, t1).max(1) as f64 / 1e9;
    Ok((c.frames as f64 / secs, c.events as f64 / secs))
}

/// Runs `f` on a thread pinned to `core` (so the suite's caller keeps its own affinity).
fn on_core<R: Send>(core: usize, f: impl FnOnce() -> R + Send) -> (R, bool) {
    std::thread::scope(|s| {
        s.spawn(move || {
            let pinned = pin_to(core);
            (f(), pinned)
        })
        .join()
        .expect("feed bench thread panicked")
    })
}

/// Runs the suite; see the module docs for what is measured and how.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let overhead = measurement_overhead(&clock);
    let reps = opts.reps.max(1);
    let limit = opts.quick.then_some(QUICK_FRAMES);
    let places = placements();

    let mut caps = Vec::new();
    let mut missing = Vec::new();
    for rel in CAPTURES {
        match hotpath::datadir::capture(rel) {
            Some(p) => caps.push(Capture::load(&p, limit)?),
            None => missing.push(rel),
        }
    }

    let mut pin_failures = 0u64;
    // Warm-up: one untimed pass per capture, journal in the last placement (tmpfs if present).
    if let Some(pl) = places.last() {
        for cap in &caps {
            let dir = tempfile::tempdir_in(&pl.parent)?;
            let (r, pinned) = on_core(opts.core_a, || throughput_pass(cap, dir.path(), &clock));
            r?;
            pin_failures += u64::from(!pinned);
        }
    }

    // hists[capture][placement]
    let mut hists: Vec<Vec<Hists>> = caps
        .iter()
        .map(|_| places.iter().map(|_| Hists::new()).collect())
        .collect();
    for _ in 0..reps {
        for (ci, cap) in caps.iter().enumerate() {
            for (pi, pl) in places.iter().enumerate() {
                let h = &mut hists[ci][pi];
                let dir = tempfile::tempdir_in(&pl.parent)?;
                let (r, pinned) = on_core(opts.core_a, || latency_pass(cap, dir.path(), &clock, h));
                h.counters = r?;
                pin_failures += u64::from(!pinned);
                drop(dir);
                let dir = tempfile::tempdir_in(&pl.parent)?;
                let (r, pinned) = on_core(opts.core_a, || throughput_pass(cap, dir.path(), &clock));
                let (fps, eps) = r?;
                h.frames_per_s.push(fps);
                h.events_per_s.push(eps);
                pin_failures += u64::from(!pinned);
            }
        }
    }

    std::fs::create_dir_all(&opts.out_dir)?;
    let mut rows = Vec::new();
    for rel in &missing {
        rows.push(Row {
            case: "feed stage".into(),
            subject: (*rel).into(),
            latency: None,
            throughput: None,
            ratio: None,
            note: "skipped: capture not found (set ALGO_DATA_DIR)".into(),
        });
    }
    for (ci, cap) in caps.iter().enumerate() {
        for (pi, pl) in places.iter().enumerate() {
            let h = &hists[ci][pi];
            let c = h.counters;
            let subject = if pl.name == pl.fs {
                format!("{} / {}", cap.label, pl.name)
            } else {
                format!("{} / {} {}", cap.label, pl.name, pl.fs)
            };
            let slug = format!(
                "feed-{}-{}",
                cap.label.replace(' ', "-").to_ascii_lowercase(),
                pl.name
            );
            h.frame
                .write_percentiles(&opts.out_dir.join(format!("{slug}-frame.hdr.txt")))?;
            h.visible
                .write_percentiles(&opts.out_dir.join(format!("{slug}-event.hdr.txt")))?;
            h.popped
                .write_percentiles(&opts.out_dir.join(format!("{slug}-popped.hdr.txt")))?;
            let fps = median(h.frames_per_s.clone());
            let eps = median(h.events_per_s.clone());
            let mut extra = String::new();
            if c.decode_errors + c.oversized + c.overflow_events + c.backpressure + c.journal_errors
                > 0
            {
                extra = format!(
                    "; decode errors {}, oversized {}, overflow events {}, backpressure {}, \
                     journal errors {}",
                    c.decode_errors,
                    c.oversized,
                    c.overflow_events,
                    c.backpressure,
                    c.journal_errors
                );
            }
            rows.push(Row {
                case: "per frame: copy -> events in ring".into(),
                subject: subject.clone(),
                latency: Some(h.frame.percentiles(overhead.p50)),
                throughput: Some(fps),
                ratio: None,
                note: format!(
                    "items/s = frames/s (separate pass); {} frames, {:.1} MB per pass{extra}",
                    c.frames,
                    cap.bytes() as f64 / 1e6
                ),
            });
            let total_ev = h.events_by_kind.iter().sum::<u64>().max(1) as f64;
            let share = FrameKind::ALL
                .iter()
                .zip(h.events_by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{} {:.0}%", k.name(), 100.0 * n as f64 / total_ev))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push(Row {
                case: "per event: copy -> in ring".into(),
                subject: subject.clone(),
                latency: Some(h.visible.percentiles(overhead.p50)),
                throughput: Some(eps),
                ratio: None,
                note: format!(
                    "items/s = events/s (separate pass); {} events per pass ({:.2} per frame); \
                     events by frame type: {}",
                    c.events,
                    c.events as f64 / c.frames.max(1) as f64,
                    share
                ),
            });
            rows.push(Row {
                case: "per event: copy -> popped".into(),
                subject: subject.clone(),
                latency: Some(h.popped.percentiles(overhead.p50)),
                throughput: None,
                ratio: None,
                note: "consumer pops one by one right after poll, stamping each pop".into(),
            });
            rows.push(Row {
                case: "per event: recv -> Decoded stamp".into(),
                subject: subject.clone(),
                latency: Some(h.decoded.percentiles(0)),
                throughput: None,
                ratio: None,
                note: "the event's own stamps (no overhead to subtract)".into(),
            });
            if pl.name == "tmpfs" || places.len() == 1 {
                for (k, kind) in FrameKind::ALL.iter().enumerate() {
                    let kh = &h.by_kind[k];
                    if kh.is_empty() {
                        continue;
                    }
                    rows.push(Row {
                        case: format!("per frame, {}", kind.name()),
                        subject: subject.clone(),
                        latency: Some(kh.percentiles(overhead.p50)),
                        throughput: None,
                        ratio: None,
                        note: format!("{} frames over all repetitions", kh.len()),
                    });
                }
            }
        }
    }

    let place_desc: Vec<String> = places
        .iter()
        .map(|p| format!("{} = {} ({})", p.name, p.parent.display(), p.fs))
        .collect();
    let method = format!(
        "FeedStage as `algo-engine run` builds it (ReplaySource from memory, BinanceFeedDecoder, \
         engine journal config, {RING}-slot ring, max frame {MAX_FRAME} B, max {MAX_EVENTS} \
         events/frame), every frame of the capture, single thread pinned to core {a}{pinned}. \
         Journal always on (FeedStage requires an Appender; there is no off switch), placed in \
         a fresh temp dir per pass: {places}. Per frame: TSC before FeedStage::poll (whose \
         first act is the source copy) to its return (all events pushed to the ring). Per event \
         in ring: a frame's events are published together by one push_slice after all of them \
         are decoded and journaled, so each event gets its frame's latency and big frames \
         (depth, the REST snapshot) dominate. Per event popped: same start to the consumer's \
         stamp as it pops the events one by one right after poll. recv -> Decoded: the event's \
         own stamps. Latency histograms merged over {reps} interleaved repetitions, overhead \
         p50 subtracted; HDR files feed-<capture>-<journal>-{{frame,event,popped}}.hdr.txt. \
         Throughput: separate pass per repetition without per-frame clock reads, poll + drain \
         ring until the source ends, median of {reps}. One untimed warm-up pass per capture \
         first. The journal's pre-fault helper thread is unpinned and shares the 2 cores{quick}.",
        a = opts.core_a,
        pinned = if pin_failures > 0 {
            format!(" ({pin_failures} pin attempts refused: ran unpinned)")
        } else {
            String::new()
        },
        places = place_desc.join(", "),
        quick = if opts.quick {
            format!(
                "; QUICK run: first {QUICK_FRAMES} frames of each capture only, not for quoting"
            )
        } else {
            String::new()
        },
    );
    Ok(Report {
        suite: "feed".into(),
        machine: Machine::detect(),
        overhead,
        method,
        rows,
    })
}
