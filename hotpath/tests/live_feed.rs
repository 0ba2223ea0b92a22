//! The live source end to end, against a WebSocket server nobody here wrote.
//!
//! `tests/ws_capture_server.py` (the Python `websockets` package, from the repository's `.venv`,
//! set up by `scripts/setup-python.sh` when missing) serves the real Binance spot capture
//! `binance/spot/btcusdt_20240808.gz` on a loopback port: every line's JSON as one text message,
//! every 97th fragmented into three frames, a ping every 500 messages whose pong it awaits. It
//! accepts only the path `/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms`,
//! which the source must build from its configured symbol and stream kinds.
//!
//! The engine side is the production code: [`LiveSource`] in [`FeedStage`] on the stage
//! [`Runtime`], journaling to a real journal, publishing to an SPSC ring drained by a collecting
//! stage. The reference is the same capture through [`ReplaySource`] in the same feed stage.
//! Checked, per scenario:
//!
//! * every message of the capture arrived, once, in order (the live journal's raw frames are
//!   the capture's lines byte for byte), and decoded into exactly the events the replay produces
//!   (journal and ring, compared with the TSC stamps cleared);
//! * `full` (mio driver, and io_uring when the kernel offers it): one session, one
//!   `market_data_connected` record before the first frame, every server ping answered, and no
//!   heap allocation on the hot thread once the connection exists (a counting global allocator,
//!   armed by the collecting stage on that thread, over the whole session);
//! * `drop`: the server aborts the TCP connection mid-stream and answers the next attempt with
//!   HTTP 503: the source backs off, retries, and the journal holds `market_data_connection_lost`
//!   and `market_data_connection_restored` (with `resync=1`) exactly between the last frame of
//!   the first session and the first of the second; the feed counters and the source's counters
//!   agree; the resubscribed stream continues to the end;
//! * `silent`: the server stops sending and reading mid-stream: the unanswered probe ping and
//!   the silence threshold tear the connection down (`reason=silent`), and the same recovery
//!   follows.
//!
//! Skips with a message when the capture or Python is missing, unless `ALGO_REQUIRE_DATA` or
//! `CI` is set, in which case it fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hotpath::codec::{self, RecordKind};
use hotpath::datadir;
use hotpath::event::{MarketEvent, Stamps};
use hotpath::feed::{
    BinanceFeedDecoder, FeedCounters, FeedStage, FrameSource, ReplaySource, SourceEventKind,
};
use hotpath::instrument::{InstrumentTable, Venue};
use hotpath::live::{LiveConfig, LiveCounters, LiveSource, StreamKind, SystemClock};
use hotpath::runtime::{Profile, Runtime, Stage};
use hotpath::venue::binance::{ExchangeInfo, ScalePolicy, Scanner};
use net::socket::DriverKind;
use ringbuffers::spsc::Consumer;

const CAPTURE: &str = "binance/spot/btcusdt_20240808.gz";
const STREAMS: &str = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms";
/// BTCUSDT as Binance's spot `exchangeInfo` describes it (the fields the parser reads).
const EXCHANGE_INFO: &str = r#"{"symbols":[
    {"symbol":"BTCUSDT","status":"TRADING","baseAssetPrecision":8,"quoteAssetPrecision":8,
     "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.01000000"},
                {"filterType":"LOT_SIZE","minQty":"0.00001000","stepSize":"0.00001000"},
                {"filterType":"NOTIONAL","minNotional":"5.00000000"}]}]}"#;
const RING: usize = 1 << 16;
const MAX_FRAME: usize = 1 << 20;
const MAX_EVENTS: usize = 16_384;

/// The scenarios share two cores with whatever else runs; one at a time keeps timing honest.
static SERIAL: Mutex<()> = Mutex::new(());

// ------------------------------------------------------------------------------------------
// Allocation counting (threads opt in)
// ------------------------------------------------------------------------------------------

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

// ------------------------------------------------------------------------------------------
// Python
// ------------------------------------------------------------------------------------------

fn must_run() -> bool {
    datadir::data_required() || testkit::peers_required()
}

/// Python modules the peer scripts import.
const PEER_MODULE: &str = "websockets.asyncio.server";

/// The venv's python with the peer's modules, set up by `scripts/setup-python.sh` if needed.
fn python() -> Result<PathBuf, String> {
    testkit::python_with(PEER_MODULE)
}

/// The capture path and python, or `None` (after saying why) when the test must skip.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let capture = datadir::capture(CAPTURE)?;
    match python() {
        Ok(py) => Some((capture, py)),
        Err(why) if must_run() => panic!("ALGO_REQUIRE_DATA/CI set but Python unavailable: {why}"),
        Err(why) => {
            eprintln!("SKIP live_feed: {why}");
            None
        }
    }
}

/// The server process; killed if the test fails midway.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    log: Vec<String>,
}

impl Server {
    fn start(py: &Path, capture: &Path, scenario: &str) -> Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws_capture_server.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(["--capture"])
            .arg(capture)
            .args(["--streams", STREAMS, "--scenario", scenario])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ws_capture_server.py");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            lines: rx,
            port: 0,
            log: Vec::new(),
        };
        let first = s.expect_line("PORT ", Duration::from_secs(60));
        s.port = first
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("port");
        s
    }

    /// Waits for a line starting with `prefix`, failing on `ERROR` lines.
    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "server said no '{prefix}' within {timeout:?}; log: {:?}",
                    self.log
                )
            });
            assert!(
                !line.starts_with("ERROR"),
                "server: {line}; log: {:?}",
                self.log
            );
            self.log.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// `key=value` from a server line.
    fn field(line: &str, key: &str) -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in '{line}'"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// Capture, instruments, reference
// ------------------------------------------------------------------------------------------

/// `(recv ns, JSON)` per capture line.
fn load_capture(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open capture"))
        .read_to_string(&mut text)
        .expect("read capture");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (ns, json) = l.split_once(' ').expect("`<ns> <json>`");
            (ns.parse().expect("recv ns"), json.as_bytes().to_vec())
        })
        .collect()
}

fn decoder() -> BinanceFeedDecoder {
    let mut body = EXCHANGE_INFO.as_bytes().to_vec();
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceSpot, ScalePolicy::Venue).unwrap();
    let mut table = InstrumentTable::with_capacity(4);
    let ids = info.intern_into(&mut table, |_| true).unwrap();
    let table: &'static InstrumentTable = Box::leak(Box::new(table));
    // The capture interleaves the REST snapshots its recorder fetched; they are BTCUSDT's.
    BinanceFeedDecoder::new(Scanner::new(table, Venue::BinanceSpot), Some(ids[0]))
}

fn cleared(mut e: MarketEvent) -> MarketEvent {
    e.stamps = Stamps::new(e.stamps.venue_ns, 0);
    e
}

/// A journal, read back.
#[derive(Default)]
struct Journal {
    raw: Vec<Vec<u8>>,
    market: Vec<MarketEvent>,
    feed_errors: usize,
    /// Connection records: (kind, text, raw frames journaled before it).
    conn: Vec<(SourceEventKind, String, usize)>,
}

fn read_journal(dir: &Path) -> Journal {
    let mut t = codec::open_tailer(dir).expect("open journal");
    let mut j = Journal::default();
    while let Some(r) = t.next().expect("read journal") {
        match RecordKind::from_u16(r.kind) {
            Some(RecordKind::RawFrame) => j.raw.push(r.payload.to_vec()),
            Some(RecordKind::Market) => j
                .market
                .push(cleared(codec::decode::<MarketEvent>(r.payload).unwrap())),
            Some(RecordKind::FeedError) => j.feed_errors += 1,
            Some(RecordKind::Gap) => {
                let kind = SourceEventKind::from_payload(r.payload).expect("a connection record");
                let text = String::from_utf8(r.payload.to_vec()).unwrap();
                j.conn.push((kind, text, j.raw.len()));
            }
            k => panic!("unexpected record {k:?}"),
        }
    }
    j
}

/// The capture and what the replay journals and publishes for it (computed once).
struct Reference {
    frames: Vec<(u64, Vec<u8>)>,
    journal: Journal,
    published: Vec<MarketEvent>,
}

fn reference(capture: &Path) -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let t0 = Instant::now();
        let frames = load_capture(capture);
        let dir = tempfile::tempdir().unwrap();
        let source = ReplaySource::new(frames.iter().map(|(ns, f)| (*ns, f.as_slice())), None);
        let (counters, published) = run_manually(source, dir.path());
        let journal = read_journal(dir.path());
        assert_eq!(counters.frames as usize, frames.len());
        assert_eq!(journal.raw.len(), frames.len());
        assert!(journal.conn.is_empty());
        eprintln!(
            "reference: {} frames -> {} events, {} feed errors (replay, {:.2?})",
            frames.len(),
            journal.market.len(),
            journal.feed_errors,
            t0.elapsed()
        );
        Reference {
            frames,
            journal,
            published,
        }
    })
}

/// Runs a feed over `source` to its end on this thread, draining the ring.
fn run_manually<S: FrameSource>(source: S, dir: &Path) -> (FeedCounters, Vec<MarketEvent>) {
    let app = ringbuffers::journal::Appender::open(dir, codec::journal_config()).unwrap();
    let (tx, mut rx) = ringbuffers::spsc::channel(RING);
    let report = Arc::new(Mutex::new(FeedCounters::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut feed = FeedStage::new(
        source,
        decoder(),
        app,
        tx,
        MAX_FRAME,
        MAX_EVENTS,
        done,
        report.clone(),
    );
    let mut out = Vec::new();
    while !feed.finished() {
        feed.poll();
        while let Some(e) = rx.try_pop() {
            out.push(cleared(e));
        }
    }
    feed.shutdown();
    let c = *report.lock().unwrap();
    (c, out)
}

// ------------------------------------------------------------------------------------------
// The live run
// ------------------------------------------------------------------------------------------

/// Drains the feed's ring into a vector (the strategy's seat). Once the first event arrives
/// (the connection exists), it arms allocation counting for its thread, which it shares with
/// the feed; the vector is reserved up front so it does not allocate itself.
struct Collect {
    rx: Consumer<MarketEvent>,
    events: Vec<MarketEvent>,
    count: Arc<AtomicU64>,
    out: Arc<Mutex<Vec<MarketEvent>>>,
    allocs_at_arm: Arc<AtomicU64>,
    armed: bool,
}

impl Stage for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn poll(&mut self) -> usize {
        let events = &mut self.events;
        let n = self.rx.read_batch(1024, |e| events.push(cleared(*e)));
        if n > 0 {
            if !self.armed {
                self.armed = true;
                self.allocs_at_arm
                    .store(testkit::tracked_allocations(), Ordering::Relaxed);
                testkit::track_thread(true);
            }
            self.count
                .store(self.events.len() as u64, Ordering::Release);
        }
        n
    }
    fn shutdown(&mut self) {
        testkit::track_thread(false);
        *self.out.lock().unwrap() = std::mem::take(&mut self.events);
    }
}

const PROFILE: &str = r#"
    name = "live-test"
    description = "feed and collector on one unpinned thread that parks when idle"
    [[threads]]
    name = "hot"
    wait = "park:2000:50"
    stages = ["feed", "collect"]
"#;

struct Outcome {
    journal: Journal,
    published: Vec<MarketEvent>,
    feed: FeedCounters,
    live: LiveCounters,
    server_done: String,
    server_log: Vec<String>,
    driver: DriverKind,
    elapsed: Duration,
    /// Allocations on the hot thread from the first event to shutdown.
    hot_allocs: u64,
}

fn run_live(
    py: &Path,
    capture: &Path,
    scenario: &str,
    driver: DriverKind,
    tune: impl FnOnce(&mut LiveConfig),
) -> Outcome {
    let expected_events = reference(capture).published.len() as u64;
    let t0 = Instant::now();
    let mut server = Server::start(py, capture, scenario);
    let mut cfg = LiveConfig::new(
        Venue::BinanceSpot,
        &["BTCUSDT"],
        &[
            StreamKind::Trade,
            StreamKind::BookTicker,
            StreamKind::Depth(None),
        ],
    );
    cfg.endpoint = Some(format!("ws://127.0.0.1:{}", server.port));
    cfg.driver = driver;
    cfg.socket.busy_poll_us = None;
    cfg.backoff_base = Duration::from_millis(50);
    cfg.backoff_cap = Duration::from_millis(400);
    cfg.seed = Some(11);
    cfg.silence = Duration::from_secs(10);
    cfg.ping_after = Some(Duration::from_secs(5));
    cfg.connect_timeout = Duration::from_secs(5);
    tune(&mut cfg);
    let source = LiveSource::new(&cfg, SystemClock::new()).expect("live source");
    assert_eq!(
        source.request_target(),
        format!("/stream?streams={STREAMS}")
    );
    let driver = source.driver();
    let live_stats = source.stats();

    let dir = tempfile::tempdir().unwrap();
    let app = ringbuffers::journal::Appender::open(dir.path(), codec::journal_config()).unwrap();
    let (tx, rx) = ringbuffers::spsc::channel(RING);
    let feed_report = Arc::new(Mutex::new(FeedCounters::default()));
    let collected = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicU64::new(0));
    let allocs_at_arm = Arc::new(AtomicU64::new(0));
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(FeedStage::new(
            source,
            decoder(),
            app,
            tx,
            MAX_FRAME,
            MAX_EVENTS,
            Arc::new(AtomicBool::new(false)),
            feed_report.clone(),
        )),
        Box::new(Collect {
            rx,
            events: Vec::with_capacity(expected_events as usize + 1024),
            count: count.clone(),
            out: collected.clone(),
            allocs_at_arm: allocs_at_arm.clone(),
            armed: false,
        }),
    ];
    let profile = Profile::from_toml(PROFILE, "inline").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rt = Runtime::spawn(&profile, stages, stop).unwrap();

    let done = server.expect_line("DONE ", Duration::from_secs(240));
    // The server's last pong proves the client read every message; wait for the ring to drain.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::Acquire) < expected_events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    rt.request_stop();
    let threads = rt.join();
    assert!(
        threads.iter().all(|t| t.rounds != u64::MAX),
        "a stage panicked"
    );
    // Only this test's hot thread counts (SERIAL keeps the scenarios apart).
    let hot_allocs = testkit::tracked_allocations() - allocs_at_arm.load(Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let feed = *feed_report.lock().unwrap();
    let published = std::mem::take(&mut *collected.lock().unwrap());
    let live = live_stats.snapshot();
    let server_log = server.log.clone();
    drop(server);
    Outcome {
        journal: read_journal(dir.path()),
        published,
        feed,
        live,
        server_done: done,
        server_log,
        driver,
        elapsed,
        hot_allocs,
    }
}

/// Everything the capture holds arrived once, in order, and decoded exactly as in replay.
fn assert_matches_reference(o: &Outcome, r: &Reference) {
    assert_eq!(o.journal.raw.len(), r.frames.len(), "frames journaled");
    for (i, (got, (_, want))) in o.journal.raw.iter().zip(&r.frames).enumerate() {
        assert!(got == want, "frame {i} differs from capture line {}", i + 1);
    }
    assert_eq!(o.journal.feed_errors, r.journal.feed_errors, "feed errors");
    assert_eq!(
        o.journal.market.len(),
        r.journal.market.len(),
        "events journaled"
    );
    assert!(
        o.journal.market == r.journal.market,
        "journaled events differ from replay"
    );
    assert_eq!(o.published.len(), r.published.len(), "events published");
    assert!(
        o.published == r.published,
        "published events differ from replay"
    );
    assert_eq!(o.feed.frames as usize, r.frames.len());
    assert_eq!(o.feed.events as usize, r.published.len());
    assert_eq!(o.feed.decode_errors as usize, r.journal.feed_errors);
    assert_eq!((o.feed.oversized, o.feed.journal_errors), (0, 0));
    assert_eq!(o.live.messages as usize, r.frames.len());
    // Every server ping was seen (and answered: the server awaited each pong).
    let pings = Server::field(&o.server_done, "pings");
    assert_eq!(Server::field(&o.server_done, "pongs"), pings);
    assert_eq!(o.live.pings_received, pings);
    assert!(
        Server::field(&o.server_done, "frags") > 400,
        "{}",
        o.server_done
    );
    assert_eq!(
        Server::field(&o.server_done, "sent") as usize,
        r.frames.len()
    );
}

fn report(name: &str, o: &Outcome) {
    eprintln!(
        "{name}: driver {} | {} frames, {} events, {} disconnects, {} reconnects | live {:?} | \
         server {} | {} allocations on the hot thread | {:.2?}",
        o.driver,
        o.feed.frames,
        o.feed.events,
        o.feed.disconnects,
        o.feed.reconnects,
        o.live,
        o.server_done,
        o.hot_allocs,
        o.elapsed
    );
}

fn full_run(driver: DriverKind) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((capture, py)) = prerequisites() else {
        return;
    };
    let r = reference(&capture);
    let o = run_live(&py, &capture, "full", driver, |_| {});
    report(&format!("full/{driver}"), &o);
    assert_eq!(o.driver, driver);
    assert_matches_reference(&o, r);
    assert_eq!(o.journal.conn.len(), 1, "{:?}", o.journal.conn);
    let (kind, text, at) = &o.journal.conn[0];
    assert_eq!((*kind, *at), (SourceEventKind::Connected, 0));
    assert!(
        text.contains("session=1") && text.contains("resync=1"),
        "{text}"
    );
    assert_eq!((o.feed.disconnects, o.feed.reconnects), (0, 0));
    assert_eq!((o.live.sessions, o.live.connect_attempts), (1, 1));
    assert_eq!(Server::field(&o.server_done, "conns"), 1);
    assert_eq!(
        o.hot_allocs, 0,
        "the hot thread allocated while streaming {} messages",
        o.feed.frames
    );
}

#[test]
fn live_feed_matches_replay_mio() {
    full_run(DriverKind::Mio);
}

#[test]
fn live_feed_matches_replay_io_uring() {
    let probe = net::socket::probe_io_uring();
    if !probe.available {
        eprintln!(
            "SKIP live_feed io_uring: {}",
            probe.unavailable_reason.unwrap_or_default()
        );
        return;
    }
    full_run(DriverKind::IoUring);
}

/// Checks the connection records of a run with one loss at the server's cut.
fn assert_one_loss(o: &Outcome, reason_any: &[&str]) -> usize {
    let cut_line = o
        .server_log
        .iter()
        .find(|l| l.starts_with("CUT "))
        .expect("server cut the stream");
    let cut: usize = cut_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let kinds: Vec<_> = o.journal.conn.iter().map(|(k, _, at)| (*k, *at)).collect();
    assert_eq!(
        kinds,
        [
            (SourceEventKind::Connected, 0),
            (SourceEventKind::ConnectionLost, cut),
            (SourceEventKind::ConnectionRestored, cut),
        ],
        "{:?}",
        o.journal.conn
    );
    let lost = &o.journal.conn[1].1;
    assert!(
        reason_any
            .iter()
            .any(|r| lost.contains(&format!("reason={r}"))),
        "{lost}"
    );
    assert!(lost.contains("session=1"), "{lost}");
    let restored = &o.journal.conn[2].1;
    assert!(
        restored.contains("session=2") && restored.contains("resync=1"),
        "{restored}"
    );
    assert_eq!((o.feed.disconnects, o.feed.reconnects), (1, 1));
    assert_eq!((o.live.sessions, o.live.disconnects), (2, 1));
    cut
}

#[test]
fn reconnects_with_backoff_after_the_venue_drops_the_connection() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((capture, py)) = prerequisites() else {
        return;
    };
    let r = reference(&capture);
    let o = run_live(&py, &capture, "drop", DriverKind::Mio, |_| {});
    report("drop", &o);
    assert_matches_reference(&o, r);
    assert_one_loss(&o, &["abnormal_closure", "io_error"]);
    // The first retry was refused with 503: one failed attempt, backed off, then success.
    assert!(
        o.server_log
            .iter()
            .any(|l| l.starts_with("CONN 2 rejected")),
        "{:?}",
        o.server_log
    );
    assert_eq!((o.live.connect_attempts, o.live.connect_failures), (3, 1));
    let restored = &o.journal.conn[2].1;
    assert!(restored.contains("attempts=2"), "{restored}");
    assert_eq!(Server::field(&o.server_done, "conns"), 3);
    assert_eq!(o.live.silent_disconnects, 0);
}

#[test]
fn reconnects_when_the_venue_goes_silent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((capture, py)) = prerequisites() else {
        return;
    };
    let r = reference(&capture);
    let o = run_live(&py, &capture, "silent", DriverKind::Mio, |cfg| {
        cfg.silence = Duration::from_millis(1500);
        cfg.ping_after = Some(Duration::from_millis(500));
    });
    report("silent", &o);
    assert_matches_reference(&o, r);
    assert_one_loss(&o, &["silent"]);
    assert_eq!(o.live.silent_disconnects, 1);
    assert!(o.live.pings_sent >= 1, "the source probed before giving up");
    assert_eq!((o.live.connect_attempts, o.live.connect_failures), (2, 0));
    assert_eq!(Server::field(&o.server_done, "conns"), 2);
}
