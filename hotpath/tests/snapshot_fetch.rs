//! REST depth snapshots end to end, against servers nobody here wrote.
//!
//! `tests/rest_snapshot_server.py` is Python's `http.server` (HTTP/1.1 keep-alive, from the
//! repository's `.venv`, set up by `scripts/setup-python.sh` when missing) serving
//! `/fapi/v1/depth` from the real USD-M capture `binance/usdm/btcusdt_20240808.gz`: the first
//! request gets `429` with `Retry-After: 1`, the next the capture's own REST snapshot byte for
//! byte (Content-Length), later ones a snapshot moved forward through the capture's diffs
//! (chunked). Every answer carries `X-MBX-USED-WEIGHT-1M`.
//!
//! * `fetcher_waits_out_429_and_delivers_bodies_intact`: the [`SnapshotFetcher`] alone. The
//!   first answer's `Retry-After` is honoured (the retry comes at least a second later, on the
//!   same kept-alive connection), the body arrives byte for byte, the weight header is read, a
//!   chunked body arrives whole and an unknown symbol is given up with its `400`.
//! * `live_books_become_proven_and_reprove_after_reconnect`: `tests/ws_capture_server.py`
//!   serves the capture's stream lines *without* the inline snapshot (paced, so a snapshot that
//!   waited out a 429 can still be joined) and drops the connection mid-stream; [`LiveSource`]
//!   with the fetcher in [`FeedStage`] with [`BookSet`] in [`SyncMode::Snapshot`]: the book
//!   becomes proven from the fetched snapshot, stays proven, is reset by the reconnect, asks
//!   for a new snapshot and is proven again, without a single gap; the events carry
//!   [`MarketEvent::FLAG_BOOK_PROVEN`] accordingly; the snapshot frames are journaled as raw
//!   frames; and the polling thread allocates nothing while a book is proven and the session
//!   stands (a counting global allocator).
//!
//! Skips with a message when the capture or Python is missing, unless `ALGO_REQUIRE_DATA` or
//! `CI` is set, in which case it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hotpath::book::{BookSet, GapRecord, SyncMode};
use hotpath::codec::{self, RecordKind};
use hotpath::datadir;
use hotpath::event::MarketEvent;
use hotpath::feed::{BinanceFeedDecoder, FeedCounters, FeedStage, SourceEventKind};
use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue};
use hotpath::live::{LiveConfig, LiveSource, StreamKind, SystemClock};
use hotpath::runtime::Stage;
use hotpath::snapshot::{SnapshotConfig, SnapshotFailure, SnapshotFetcher, SnapshotOutcome};
use hotpath::venue::binance::Scanner;
use net::socket::DriverKind;

const CAPTURE: &str = "binance/usdm/btcusdt_20240808.gz";
const STREAMS: &str = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@0ms";
/// Stream lines served in the end-to-end test (the capture's first ones, snapshot removed).
const LINES: usize = 20_000;
/// Where the WebSocket server drops the connection.
const CUT: usize = 8_000;
/// The post-reconnect snapshot describes the book as of this stream line.
const RESNAPSHOT_AT: usize = CUT + 1_500;
/// Messages per second the WebSocket server sends.
const RATE: u32 = 4_000;

/// One scenario at a time: they share two cores and time matters.
static SERIAL: Mutex<()> = Mutex::new(());

// ------------------------------------------------------------------------------------------
// Allocation counting (threads opt in)
// ------------------------------------------------------------------------------------------

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

// ------------------------------------------------------------------------------------------
// Python peers
// ------------------------------------------------------------------------------------------

fn must_run() -> bool {
    datadir::data_required() || testkit::peers_required()
}

/// Python modules the peer scripts import.
const PEER_MODULE: &str = "websockets.asyncio.server, http.server";

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
            eprintln!("SKIP snapshot_fetch: {why}");
            None
        }
    }
}

/// A peer process speaking the line protocol of the test scripts; killed if the test fails.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    log: Vec<String>,
}

impl Peer {
    fn start(py: &Path, script: &str, args: &[&str]) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script);
        let mut child = Command::new(py)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python peer");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Peer {
            child,
            lines: rx,
            port: 0,
            log: Vec::new(),
        };
        let first = p.expect_line("PORT ", Duration::from_secs(120));
        p.port = first
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("port");
        p
    }

    /// Waits for a line starting with `prefix`, failing on `ERROR` lines.
    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "peer said no '{prefix}' within {timeout:?}; log: {:?}",
                    self.log
                )
            });
            self.take(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Collects the lines that arrived so far.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take(line);
        }
    }

    fn take(&mut self, line: String) {
        assert!(
            !line.starts_with("ERROR"),
            "peer: {line}; log: {:?}",
            self.log
        );
        self.log.push(line);
    }

    /// The logged lines starting with `prefix`.
    fn logged(&self, prefix: &str) -> Vec<&str> {
        self.log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }
}

/// `key=value` from a peer line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in '{line}'"))
}

impl Drop for Peer {
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

/// The REST peer for `capture`.
fn rest_peer(py: &Path, capture: &Path) -> Peer {
    let resnap = RESNAPSHOT_AT.to_string();
    Peer::start(
        py,
        "rest_snapshot_server.py",
        &[
            "--capture",
            capture.to_str().unwrap(),
            "--path",
            "/fapi/v1/depth",
            "--symbol",
            "BTCUSDT",
            "--rate-limited",
            "1",
            "--resnapshot-at",
            &resnap,
        ],
    )
}

// ------------------------------------------------------------------------------------------
// Capture and instrument
// ------------------------------------------------------------------------------------------

/// The capture's REST snapshot line and its stream lines (without it).
fn load_capture(path: &Path) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open capture"))
        .read_to_string(&mut text)
        .expect("read capture");
    let mut snapshot = None;
    let mut stream = Vec::new();
    for l in text.lines().filter(|l| !l.is_empty()) {
        let (ns, json) = l.split_once(' ').expect("`<ns> <json>`");
        if json.starts_with("{\"lastUpdateId\"") {
            snapshot.get_or_insert_with(|| json.as_bytes().to_vec());
        } else {
            stream.push((ns.parse().expect("recv ns"), json.as_bytes().to_vec()));
        }
    }
    (snapshot.expect("the capture holds a REST snapshot"), stream)
}

fn btcusdt() -> Symbol {
    Symbol::new(b"BTCUSDT").unwrap()
}

/// BTCUSDT perpetual with the import's USD-M scales (price 2, quantity 3).
fn table() -> &'static InstrumentTable {
    let mut t = InstrumentTable::with_capacity(2);
    t.intern(InstrumentSpec::new(
        Venue::BinanceUsdM,
        btcusdt(),
        InstrumentKind::Perp,
        2,
        3,
    ))
    .unwrap();
    Box::leak(Box::new(t))
}

fn fetcher_config(port: u16) -> SnapshotConfig {
    let mut cfg = SnapshotConfig::new(Venue::BinanceUsdM);
    cfg.endpoint = Some(format!("http://127.0.0.1:{port}"));
    cfg.seed = Some(11);
    cfg.backoff_base = Duration::from_millis(50);
    cfg.timeout = Duration::from_secs(20);
    cfg
}

// ------------------------------------------------------------------------------------------
// The fetcher alone
// ------------------------------------------------------------------------------------------

#[test]
fn fetcher_waits_out_429_and_delivers_bodies_intact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((capture, py)) = prerequisites() else {
        return;
    };
    let t_test = Instant::now();
    let (snapshot, _) = load_capture(&capture);
    let mut peer = rest_peer(&py, &capture);
    let mut fetcher = SnapshotFetcher::spawn(&fetcher_config(peer.port)).expect("spawn");
    let stats = fetcher.stats();
    let id = table().iter().next().unwrap().0;
    let mut buf = vec![0u8; 1 << 20];

    let wait = |fetcher: &mut SnapshotFetcher, buf: &mut [u8]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(d) = fetcher.poll(buf) {
                return d;
            }
            assert!(Instant::now() < deadline, "no snapshot within 30 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    // 1. 429 with Retry-After: 1, then the captured snapshot.
    let t0 = Instant::now();
    assert!(fetcher.request(id, btcusdt(), 7));
    let d = wait(&mut fetcher, &mut buf);
    let took = t0.elapsed();
    assert_eq!((d.instrument, d.symbol, d.tag), (id, btcusdt(), 7));
    let SnapshotOutcome::Body { len } = d.outcome else {
        panic!("{d:?}")
    };
    assert_eq!(len, snapshot.len());
    assert!(
        buf[..len] == snapshot[..],
        "the body differs from the capture's snapshot"
    );
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After not honoured: {took:?}"
    );
    let reqs = peer.expect_line("REQ 2 ", Duration::from_secs(5));
    let first = peer.logged("REQ 1 ")[0].to_string();
    assert_eq!(field(&first, "status"), "429");
    assert_eq!(field(&reqs, "status"), "200");
    let (a, b): (f64, f64) = (
        field(&first, "at").parse().unwrap(),
        field(&reqs, "at").parse().unwrap(),
    );
    assert!(b - a >= 0.99, "retried {:.3} s after the 429", b - a);
    assert_eq!(
        field(&first, "conn"),
        field(&reqs, "conn"),
        "keep-alive across the 429"
    );
    let s = stats.snapshot();
    assert_eq!((s.rate_limited, s.banned, s.retries), (1, 0, 0), "{s:?}");
    assert!(s.retry_after_ms >= 1000, "{s:?}");
    assert_eq!(
        (s.attempts, s.fetched, s.weight_reports),
        (2, 1, 2),
        "{s:?}"
    );
    assert_eq!(
        s.used_weight_1m,
        field(&reqs, "weight").parse::<u64>().unwrap()
    );

    // 2. A chunked body: the snapshot moved forward, whole and valid.
    assert!(fetcher.request(id, btcusdt(), 8));
    let d = wait(&mut fetcher, &mut buf);
    let SnapshotOutcome::Body { len } = d.outcome else {
        panic!("{d:?}")
    };
    assert_eq!(d.tag, 8);
    let v: serde_json::Value = serde_json::from_slice(&buf[..len]).expect("chunked body is JSON");
    let captured: serde_json::Value = serde_json::from_slice(&snapshot).unwrap();
    assert!(v["lastUpdateId"].as_u64().unwrap() > captured["lastUpdateId"].as_u64().unwrap());
    assert_eq!(v["bids"].as_array().unwrap().len(), 1000);
    let r3 = peer.expect_line("REQ 3 ", Duration::from_secs(5));
    assert_eq!(field(&r3, "conn"), field(&first, "conn"), "keep-alive");

    // 3. An unknown symbol is a 400: given up, not retried.
    assert!(fetcher.request(id, Symbol::new(b"NOPEUSDT").unwrap(), 9));
    let d = wait(&mut fetcher, &mut buf);
    assert_eq!(
        d.outcome,
        SnapshotOutcome::Failed(SnapshotFailure::Status(400))
    );
    let s = stats.snapshot();
    assert_eq!(
        (s.requests, s.fetched, s.failed, s.connections),
        (3, 2, 1, 1),
        "{s:?}"
    );
    fetcher.shutdown();
    eprintln!("fetcher test: {:.2?}", t_test.elapsed());
}

// ------------------------------------------------------------------------------------------
// Live end to end
// ------------------------------------------------------------------------------------------

#[test]
fn live_books_become_proven_and_reprove_after_reconnect() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((capture, py)) = prerequisites() else {
        return;
    };
    let t_test = Instant::now();
    let (snapshot, stream) = load_capture(&capture);
    let stream = &stream[..LINES];

    // The stream lines without the inline snapshot, as the WebSocket server's capture.
    let dir = tempfile::tempdir().unwrap();
    let lines_path = dir.path().join("stream.gz");
    {
        let f = std::fs::File::create(&lines_path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        for (ns, l) in stream {
            write!(gz, "{ns} ").unwrap();
            gz.write_all(l).unwrap();
            gz.write_all(b"\n").unwrap();
        }
        gz.finish().unwrap();
    }
    let mut rest = rest_peer(&py, &capture);
    let (cut, rate) = (CUT.to_string(), RATE.to_string());
    let mut ws = Peer::start(
        &py,
        "ws_capture_server.py",
        &[
            "--capture",
            lines_path.to_str().unwrap(),
            "--streams",
            STREAMS,
            "--scenario",
            "drop",
            "--cut",
            &cut,
            "--rate",
            &rate,
        ],
    );

    let table = table();
    let id = table.iter().next().unwrap().0;
    let mut cfg = LiveConfig::new(
        Venue::BinanceUsdM,
        &["BTCUSDT"],
        &[
            StreamKind::Trade,
            StreamKind::BookTicker,
            StreamKind::Depth(None),
        ],
    );
    cfg.endpoint = Some(format!("ws://127.0.0.1:{}/stream", ws.port));
    cfg.driver = DriverKind::Mio;
    cfg.seed = Some(3);
    cfg.backoff_base = Duration::from_millis(50);
    cfg.silence = Duration::from_secs(10);
    cfg.ping_after = Some(Duration::from_secs(3));
    let fetcher = SnapshotFetcher::spawn(&fetcher_config(rest.port)).expect("spawn fetcher");
    let fetch_stats = fetcher.stats();
    let source = LiveSource::new(&cfg, SystemClock::new())
        .expect("live source")
        .with_snapshots(fetcher, &[(id, btcusdt())]);
    assert_eq!(source.streams().join("/"), STREAMS);
    let live_stats = source.stats();
    // No fallback attribution: snapshots must arrive tagged by the source.
    let decoder = BinanceFeedDecoder::new(Scanner::new(table, Venue::BinanceUsdM), None);
    let jdir = tempfile::tempdir().unwrap();
    let app = ringbuffers::journal::Appender::open(jdir.path(), codec::journal_config()).unwrap();
    let (tx, mut rx) = ringbuffers::spsc::channel(1 << 16);
    let report = Arc::new(Mutex::new(FeedCounters::default()));
    let mut feed = FeedStage::new(
        source,
        decoder,
        app,
        tx,
        1 << 20,
        16_384,
        Arc::new(AtomicBool::new(false)),
        report.clone(),
    )
    .with_books(BookSet::for_table(table, SyncMode::Snapshot));

    // The polling loop is the hot thread: count its allocations per poll, and keep those of
    // the polls made while the book was proven and the session stood (steady state).
    let mut events: Vec<MarketEvent> = Vec::with_capacity(1 << 20);
    let mut steady_polls = 0u64;
    let mut steady_allocs = 0u64;
    // (reconnects, events before, events after) of the poll that proved the book.
    let mut proven_at: Vec<(u64, usize, usize)> = Vec::with_capacity(8);
    let mut lost_proof = 0u64;
    let mut was_proven = false;
    let mut restored_at_event = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    testkit::track_thread(true);
    loop {
        let c0 = feed.counters();
        let proven0 = feed.books().proven(id);
        let e0 = events.len();
        let a0 = testkit::tracked_allocations();
        feed.poll();
        while let Some(e) = rx.try_pop() {
            events.push(e);
        }
        let a1 = testkit::tracked_allocations();
        let c1 = feed.counters();
        let proven1 = feed.books().proven(id);
        let session_stood = c1.disconnects == c0.disconnects
            && c1.reconnects == c0.reconnects
            && c1.disconnects == c1.reconnects;
        if proven0 && proven1 && session_stood {
            steady_polls += 1;
            steady_allocs += a1 - a0;
        }
        if c1.reconnects > c0.reconnects {
            restored_at_event = Some(e0);
        }
        if proven1 && !was_proven {
            proven_at.push((c1.reconnects, e0, events.len()));
        }
        if was_proven && !proven1 && session_stood {
            lost_proof += 1;
        }
        was_proven = proven1;
        if live_stats.snapshot().messages as usize >= LINES && rx.is_empty() && proven1 {
            break;
        }
        if Instant::now() > deadline {
            testkit::track_thread(false);
            panic!(
                "not done within 90 s: live {:?} feed {:?} snapshots {:?} ws {:?} rest {:?}",
                live_stats.snapshot(),
                feed.counters(),
                fetch_stats.snapshot(),
                ws.log,
                rest.log
            );
        }
    }
    testkit::track_thread(false);
    // The server's last ping must be answered before it reports DONE: keep polling.
    let done_by = Instant::now() + Duration::from_secs(10);
    while ws.logged("DONE ").is_empty() {
        assert!(
            Instant::now() < done_by,
            "no DONE from the server: {:?}",
            ws.log
        );
        feed.poll();
        while let Some(e) = rx.try_pop() {
            events.push(e);
        }
        ws.drain();
    }
    let book = feed.books().get(id).unwrap();
    let (bid, ask) = (book.book().best_bid(), book.book().best_ask());
    let sync = book.stats();
    feed.shutdown();
    let counters = *report.lock().unwrap();
    rest.drain();
    let live = live_stats.snapshot();
    let fetched = fetch_stats.snapshot();
    eprintln!(
        "live snapshots: feed {counters:?}\n  live {live:?}\n  fetcher {fetched:?}\n  book {sync:?}\n  \
         proven at {proven_at:?} (restored at event {restored_at_event:?}), {} events, \
         {steady_polls} steady polls with {steady_allocs} allocations, {:.2?}",
        events.len(),
        t_test.elapsed()
    );

    // The connection: one drop, one restore, every stream line delivered once.
    assert_eq!((counters.disconnects, counters.reconnects), (1, 1));
    assert_eq!(live.messages as usize, LINES);
    // Snapshots: one per session (the first after a 429), both delivered and joined, no gap.
    let reqs = rest.logged("REQ ");
    let statuses: Vec<&str> = reqs.iter().map(|l| field(l, "status")).collect();
    assert_eq!(statuses, ["429", "200", "200"], "{reqs:?}");
    assert_eq!(
        (
            fetched.rate_limited,
            fetched.fetched,
            fetched.weight_reports
        ),
        (1, 2, 3)
    );
    assert_eq!(fetched.used_weight_1m, 60);
    assert_eq!(
        (
            live.snapshot_requests,
            live.snapshots_delivered,
            live.snapshots_stale
        ),
        (2, 2, 0)
    );
    assert_eq!(counters.snapshots, 2);
    assert!(counters.snapshot_requests >= 2, "{counters:?}");
    assert_eq!(
        counters.book_gaps, 0,
        "the snapshots must join the stream without a gap"
    );
    assert_eq!(counters.decode_errors, 0);
    assert_eq!(sync.syncs, 2, "{sync:?}");
    // Proven in both sessions, and never lost while a session stood.
    assert_eq!(lost_proof, 0);
    let restored = restored_at_event.expect("a restore");
    assert_eq!(proven_at.len(), 2, "{proven_at:?}");
    assert_eq!(proven_at[0].0, 0);
    assert!(proven_at[0].2 < restored, "proven before the drop");
    assert_eq!(proven_at[1].0, 1);
    // Events: flagged exactly while proven (the frame that proves the book is partly
    // flagged: its levels before the bridging update's last one are not yet proven).
    let flagged = |r: std::ops::Range<usize>| {
        events[r]
            .iter()
            .filter(|e| e.has(MarketEvent::FLAG_BOOK_PROVEN))
            .count()
    };
    let first_session_proven = proven_at[0].2..restored;
    let second_session_proven = proven_at[1].2..events.len();
    assert!(
        first_session_proven.len() > 1000,
        "{first_session_proven:?}"
    );
    assert!(
        second_session_proven.len() > 1000,
        "{second_session_proven:?}"
    );
    assert_eq!(
        flagged(first_session_proven.clone()),
        first_session_proven.len()
    );
    assert_eq!(
        flagged(second_session_proven.clone()),
        second_session_proven.len()
    );
    assert_eq!(
        flagged(0..proven_at[0].1),
        0,
        "flagged before the first proof"
    );
    assert_eq!(
        flagged(restored..proven_at[1].1),
        0,
        "flagged between reset and re-proof"
    );
    let (bid, ask) = (bid.unwrap(), ask.unwrap());
    assert!(bid.0 < ask.0, "book crossed: {bid:?} {ask:?}");

    // The journal: every stream line and both snapshots as raw frames, the first snapshot
    // byte for byte, the connection records, no book gap.
    let mut t = codec::open_tailer(jdir.path()).expect("open journal");
    let (mut raw, mut snaps, mut conn, mut gaps) = (0usize, Vec::new(), Vec::new(), 0usize);
    while let Some(r) = t.next().expect("read journal") {
        match RecordKind::from_u16(r.kind) {
            Some(RecordKind::RawFrame) => {
                raw += 1;
                if r.payload.starts_with(b"{\"lastUpdateId\"") {
                    snaps.push(r.payload.to_vec());
                }
            }
            Some(RecordKind::Gap) => match SourceEventKind::from_payload(r.payload) {
                Some(k) => conn.push(k),
                None => {
                    assert!(GapRecord::parse(r.payload).is_some());
                    gaps += 1;
                }
            },
            _ => {}
        }
    }
    assert_eq!(raw, LINES + 2);
    assert_eq!(snaps.len(), 2);
    assert!(
        snaps[0] == snapshot,
        "the journaled snapshot differs from the capture's"
    );
    assert_eq!(
        conn,
        [
            SourceEventKind::Connected,
            SourceEventKind::ConnectionLost,
            SourceEventKind::ConnectionRestored
        ]
    );
    assert_eq!(gaps, 0);

    // Steady state allocates nothing on the polling thread.
    assert!(steady_polls > 5_000, "only {steady_polls} steady polls");
    assert_eq!(
        steady_allocs, 0,
        "{steady_allocs} allocations in {steady_polls} steady-state polls"
    );
}
