//! The `algo-engine` binary as a user runs it: real captures, real journals, real signals.

use hotpath::codec::{self, RecordKind};
use hotpath::event::MarketEvent;
use ringbuffers::journal::{Appender, JournalConfig, Tailer};
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::count_before;
use common::{engine, text};

/// Errors are one line on stderr starting with `error:`, exit status 2, and never a panic.
fn assert_clean_error(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
}

/// Market events of a journal with their receive/stage stamps cleared (those are wall-clock
/// measurements; everything else must be identical run to run).
fn market_events(dir: &Path) -> Vec<MarketEvent> {
    let mut t = Tailer::open(dir, Some(codec::SCHEMA_HASH)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::Market.as_u16() {
            let mut e: MarketEvent = codec::decode(r.payload).unwrap();
            e.stamps.recv_tsc = 0;
            e.stamps.stage_tsc = [0; 4];
            out.push(e);
        }
    }
    out
}

/// The rkyv encoding of `d`, for byte-for-byte comparison.
fn codec_bytes(d: &hotpath::event::Decision) -> Vec<u8> {
    let mut buf = vec![0u8; codec::encoded_len::<hotpath::event::Decision>()];
    codec::encode_into(d, &mut buf).unwrap();
    buf
}

#[test]
fn inspect_and_tail_a_written_journal_and_report_corruption_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut a = Appender::open(dir.path(), codec::journal_config()).unwrap();
        for i in 0..10u64 {
            codec::append_bytes(
                &mut a,
                RecordKind::RawFrame,
                0,
                1_723_161_240_000_000_000 + i,
                b"{\"frame\":1}",
            )
            .unwrap();
        }
    }
    let d = dir.path().to_str().unwrap();
    let out = engine(&["journal", "inspect", d]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("records: 10"), "{s}");
    assert!(s.contains("raw_frame        10"), "{s}");
    assert!(
        s.contains("time: 2024-08-08T23:54:00.000000000Z .. 2024-08-08T23:54:00.000000009Z"),
        "{s}"
    );
    assert!(s.contains("crc: ok"), "{s}");

    let out = engine(&["journal", "tail", d, "--from", "7"]);
    let s = text(&out.stdout);
    let seqs: Vec<&str> = s
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(seqs, ["7", "8", "9"], "{s}");

    // Flip one payload byte of the fourth record: inspect must name its segment and offset.
    let seg = dir.path().join("0000000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec_len = 32 + 16; // header + 11-byte payload padded to 16
    let offset = 64 + 3 * rec_len;
    bytes[offset + 32 + 2] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let out = engine(&["journal", "inspect", d]);
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains(&format!("CORRUPT segment 0 offset {offset}")),
        "{s}"
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_2() {
    let out = engine(&["journal", "inspect", "/nonexistent/journal"]);
    assert_clean_error(&out, "is not a directory");

    // A journal written by a build with other event types.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut a = Appender::open(dir.path(), JournalConfig::new(0x1234)).unwrap();
        a.append(1, 0, 0, b"x").unwrap();
    }
    let out = engine(&[
        "run",
        "--journal",
        dir.path().to_str().unwrap(),
        "--capture",
        "/nonexistent.gz",
    ]);
    assert_clean_error(&out, "not found");
    let out = engine(&[
        "run",
        "--journal",
        dir.path().to_str().unwrap(),
        "--profile",
        "/nonexistent.toml",
    ]);
    assert_clean_error(&out, "cannot read profile");

    // A segment file cut inside its header.
    let seg = dir.path().join("0000000000.seg");
    std::fs::write(&seg, b"ALGOJRN").unwrap();
    let out = engine(&["journal", "tail", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, "0000000000.seg");
}

#[test]
fn run_appends_to_a_journal_of_another_schema_is_refused() {
    let Some(capture) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let mut a = Appender::open(dir.path(), JournalConfig::new(0x1234)).unwrap();
        a.append(1, 0, 0, b"x").unwrap();
    }
    let out = engine(&[
        "run",
        "--journal",
        dir.path().to_str().unwrap(),
        "--capture",
        capture.to_str().unwrap(),
    ]);
    assert_clean_error(&out, "schema");
}

#[test]
fn fused_and_split_layouts_journal_identical_events_from_a_real_capture() {
    let Some(capture) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let mut journals = Vec::new();
    for profile in [
        "tuning/profiles/fused-2core.toml",
        "tuning/profiles/split-4core.toml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = engine(&[
            "run",
            "--profile",
            profile,
            "--capture",
            capture.to_str().unwrap(),
            "--journal",
            dir.path().to_str().unwrap(),
        ]);
        let s = text(&out.stdout);
        assert!(out.status.success(), "{profile}: {s}{}", text(&out.stderr));
        assert!(s.contains("0 decode errors, 0 book gaps"), "{s}");
        assert!(s.contains("latency decoded->strategy"), "{s}");
        let inspect = engine(&["journal", "inspect", dir.path().to_str().unwrap()]);
        assert!(text(&inspect.stdout).contains("crc: ok"));
        journals.push((dir, s));
    }
    let a = market_events(journals[0].0.path());
    let b = market_events(journals[1].0.path());
    // 41,249 frames of the 2024-08-08 BTCUSDT spot session decode into this many events.
    assert!(a.len() > 100_000, "{}", a.len());
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the two layouts decoded different events");
    // The book is unproven until the capture's REST snapshot (frame 45), proven from then on.
    let proven = |e: &MarketEvent| e.flags & MarketEvent::FLAG_BOOK_PROVEN != 0;
    assert!(!proven(&a[0]));
    let first = a.iter().position(proven).expect("the book becomes proven");
    assert!(
        a[first..].iter().all(proven),
        "the book lost its proof without a gap"
    );
    assert!(first < 5_000, "{first}"); // 43 diffs buffered, then the 2,000-level snapshot
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("strategy:"))
            .map(str::to_owned)
    };
    for (_, out) in &journals {
        let l = line(out).expect("strategy line");
        assert!(
            l.starts_with(&format!("strategy: {} events, ", a.len())),
            "{l}"
        );
    }
    // The strategy journals its decisions next to the feed's journal; both layouts decide alike.
    let decisions = |d: &Path| {
        let mut t = Tailer::open(&d.join("strategy"), Some(codec::SCHEMA_HASH)).unwrap();
        let mut v = Vec::new();
        while let Some(r) = t.next().unwrap() {
            if r.kind == RecordKind::Decision.as_u16() {
                let mut dec: hotpath::event::Decision = codec::decode(r.payload).unwrap();
                dec.stamps = Default::default();
                v.push(codec_bytes(&dec));
            }
        }
        v
    };
    let (da, db) = (
        decisions(journals[0].0.path()),
        decisions(journals[1].0.path()),
    );
    assert!(!da.is_empty(), "no decision journaled");
    assert_eq!(da, db, "the two layouts decided differently");
}

#[test]
fn sigint_stops_a_paced_run_cleanly_with_a_whole_journal() {
    let Some(capture) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Recorded pace: the capture lasts six minutes, so only a signal ends this run early.
    let child = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
        .args([
            "run",
            "--speed",
            "1x",
            "--capture",
            capture.to_str().unwrap(),
            "--journal",
        ])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    // Generous: a loaded 2-core CI box can take a while to schedule the stop; the point is
    // that the run ends on the signal instead of replaying six minutes of capture.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("feed:"), "{s}");
    let report = ringbuffers::journal::verify(dir.path(), Some(codec::SCHEMA_HASH)).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.records > 0);
}

/// Runs the engine over `capture` into a fresh journal directory.
fn run_capture(capture: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = engine(&[
        "run",
        "--capture",
        capture.to_str().unwrap(),
        "--journal",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn replay_of_a_run_reproduces_every_decision_and_reports_the_first_difference() {
    let (Some(btc), Some(eth)) = (
        hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz"),
        hotpath::datadir::capture("binance/spot/ethusdt_20240808.gz"),
    ) else {
        return;
    };
    let recorded = run_capture(&btc);
    assert!(recorded.path().join("instruments.json").is_file());
    let out_dir = tempfile::tempdir().unwrap();
    let replay_out = out_dir.path().join("replay");
    let out = engine(&[
        "replay",
        recorded.path().to_str().unwrap(),
        "--out",
        replay_out.to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}{}", text(&out.stderr));
    let line = s
        .lines()
        .find(|l| l.starts_with("identical:"))
        .unwrap_or_else(|| panic!("no verdict in {s}"));
    let n: usize = line
        .trim_start_matches("identical: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "{line}");
    // The replay journal is a journal like any other.
    let inspect = engine(&["journal", "inspect", replay_out.to_str().unwrap()]);
    assert!(text(&inspect.stdout).contains("crc: ok"));

    // A journal whose raw frames are ETHUSDT's but whose decisions were BTCUSDT's: the replay
    // decides differently from the first decision on, and says so.
    let eth_run = run_capture(&eth);
    let mixed = out_dir.path().join("mixed");
    copy_dir(eth_run.path(), &mixed);
    std::fs::remove_dir_all(mixed.join("strategy")).unwrap();
    copy_dir(&recorded.path().join("strategy"), &mixed.join("strategy"));
    let out = engine(&[
        "replay",
        mixed.to_str().unwrap(),
        "--out",
        out_dir.path().join("replay2").to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}{}", text(&out.stderr));
    assert!(s.contains("DIFFERENT at strategy record #0"), "{s}");
    assert!(
        s.contains("recorded: seq") && s.contains("replayed: seq"),
        "{s}"
    );
}

#[test]
fn replay_refuses_a_journal_without_its_instrument_table() {
    let dir = tempfile::tempdir().unwrap();
    {
        let _app = Appender::open(dir.path(), codec::journal_config()).unwrap();
    }
    let out = engine(&["replay", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, "no instruments.json");
}

/// A configuration whose simulator replays the recorded BTCUSDT capture (the default market is
/// synthetic), written into `dir`.
fn capture_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("capture.toml");
    std::fs::write(&cfg, "[sim]\nmarket = \"capture\"\n").unwrap();
    cfg
}

/// The embedded default trades: the strategy warms up from the simulator's klines, enters on
/// the synthetic market's trends, the gateway's orders fill at the venue through real sockets,
/// positions close with their P&L journaled, and a replay of the journal reproduces every
/// decision, intent and closed trade byte for byte, fills applied where they landed.
#[test]
fn default_run_trades_and_its_replay_reproduces_every_fill_driven_decision() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[metrics]\nenabled = false\n").unwrap();
    let out = engine(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--duration",
        "600",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("run ended: the simulator's market ended"), "{s}");
    let strategy = s.lines().find(|l| l.starts_with("strategy:")).unwrap();
    let gateway = s.lines().find(|l| l.starts_with("gateway:")).unwrap();
    let sent = count_before(gateway, "orders sent");
    let closed = count_before(strategy, "closed trades");
    assert!(sent > 0 && closed > 0, "{s}");
    assert!(
        count_before(strategy, "executions") >= 2 * closed,
        "{strategy}"
    );
    assert_eq!(count_before(gateway, "venue rejects"), 0, "{gateway}");
    // The journal holds exactly the closed trades the summary counts.
    let closes = common::journal_closes(&journal);
    for c in &closes {
        assert!(c.fills >= 2 && c.close_ns >= c.open_ns, "{c:?}");
        assert_eq!(c.net_pnl, c.gross_pnl - c.fees, "{c:?}");
    }
    assert_eq!(closes.len() as u64, closed);
    let replay = engine(&[
        "replay",
        journal.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    let r = text(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "{r}{}", text(&replay.stderr));
    assert!(r.contains("identical:"), "{r}");
}

#[test]
fn run_trades_against_the_embedded_simulator_through_real_sockets() {
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    // The simulator replays the BTCUSDT capture at max pace over its WebSocket; the engine
    // connects as to Binance (klines warm-up + stream + REST snapshot + order gateway).
    let cfg = capture_config(dir.path());
    let out = engine(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--duration",
        "120",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("run ended: the simulator's market ended"), "{s}");
    let feed = s
        .lines()
        .find(|l| l.starts_with("feed:"))
        .expect("feed line");
    // Every stream frame of the capture arrived (41,248) plus the REST snapshots and the
    // three klines bodies of the warm-up.
    let frames: u64 = feed["feed: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 41_249, "{feed}");
    assert!(feed.contains(" 0 decode errors, 0 book gaps"), "{feed}");
    assert!(s.contains("venue: simulator sent 41248 frames"), "{s}");
    assert!(s.lines().any(|l| l.starts_with("gateway: ")), "{s}");
    for sub in ["", "strategy", "gateway"] {
        let d = journal.join(sub);
        let inspect = engine(&["journal", "inspect", d.to_str().unwrap()]);
        assert!(
            text(&inspect.stdout).contains("crc: ok"),
            "{sub}: {}",
            text(&inspect.stdout)
        );
    }
    // What the engine saw through the sockets is replayable like any journal.
    let replay = engine(&[
        "replay",
        journal.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{}{}",
        text(&replay.stdout),
        text(&replay.stderr)
    );
}

#[test]
fn run_refuses_a_misspelt_configuration_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[sim]\nsped = \"10x\"\n").unwrap();
    let out = engine(&["run", "--config", cfg.to_str().unwrap()]);
    assert_clean_error(&out, "sped");
}

#[test]
fn run_serves_prometheus_metrics_derived_from_its_journals() {
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[sim]\nmarket = \"capture\"\nspeed = \"1x\"\n[metrics]\nlisten = \"{addr}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--duration", "20"])
        .arg("--journal")
        .arg(dir.path().join("j"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        if let Some(page) = http(&addr, "GET", "/metrics", None, "") {
            if page.contains("symbol=\"BTCUSDT\"") && page.contains("algo_") {
                seen = Some(page);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // While it runs: the hot thread alone on its core, every other thread (exporter, admin,
    // simulator, fetcher, main) confined to the rest (hotpath::affinity).
    let masks = thread_masks(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let page = seen.expect("no /metrics page with BTCUSDT series while the engine ran");
    assert!(page.starts_with("HTTP/1."), "{page}");
    assert!(page.contains("# TYPE "), "{page}");
    for ring in [
        "feed_strategy",
        "strategy_gateway_intents",
        "gateway_strategy_execs",
        "admin_strategy_control",
    ] {
        let depth = format!("algo_ring_depth{{ring=\"{ring}\"}} ");
        let cap = format!("algo_ring_capacity{{ring=\"{ring}\"}} ");
        assert!(
            page.contains(&depth) && page.contains(&cap),
            "{ring}: {page}"
        );
    }
    assert!(
        page.contains("algo_ring_capacity{ring=\"feed_strategy\"} 4096"),
        "{page}"
    );

    let cores = hotpath::affinity::current_thread_cpus().unwrap();
    if cores.len() >= 2 {
        let hot: Vec<_> = masks.iter().filter(|(n, _)| n == "hot").collect();
        assert_eq!(hot.len(), 1, "{masks:?}");
        assert_eq!(hot[0].1, vec![cores[1]], "{masks:?}");
        let housekeeping: Vec<usize> = cores.iter().copied().filter(|&c| c != cores[1]).collect();
        let cold: Vec<_> = masks.iter().filter(|(n, _)| n != "hot").collect();
        assert!(cold.len() >= 4, "{masks:?}");
        for (name, mask) in cold {
            assert_eq!(
                mask, &housekeeping,
                "thread {name} may run on the hot core: {masks:?}"
            );
        }
    }
}

/// Name and allowed CPUs of every thread of process `pid` (from /proc).
fn thread_masks(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread exited meanwhile
        };
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        let mut cpus = Vec::new();
        for part in list.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
        }
        out.push((comm.trim().to_string(), cpus));
    }
    out
}

/// An HTTP/1.0 request on loopback with an optional bearer token and body; returns the whole
/// response (the tests must not depend on an HTTP client crate).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn admin_halt_reaches_the_strategy_through_the_control_ring_and_is_journaled() {
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (admin, metrics) = (
        format!("127.0.0.1:{}", free()),
        format!("127.0.0.1:{}", free()),
    );
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sim]\nmarket = \"capture\"\nspeed = \"1x\"\n[metrics]\nlisten = \"{metrics}\"\n[admin]\nenabled = true\nlisten = \"{admin}\"\n"
        ),
    )
    .unwrap();
    let token = "test-admin-token-0123456789";
    let mut child = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--duration", "30"])
        .arg("--journal")
        .arg(&journal)
        .env("ALGO_ADMIN_TOKEN", token)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut halted = None;
    while std::time::Instant::now() < deadline {
        if let Some(r) = http(&admin, "POST", "/api/v1/halt", Some(token), "{}") {
            halted = Some(r);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let halted = halted.expect("admin API never answered");
    assert!(
        halted.starts_with("HTTP/1.1 200") || halted.starts_with("HTTP/1.0 200"),
        "{halted}"
    );
    let denied = http(&admin, "POST", "/api/v1/resume", None, "{}").unwrap();
    assert!(denied.contains(" 401 "), "{denied}");
    let unknown = http(
        &admin,
        "POST",
        "/api/v1/watchlist/add",
        Some(token),
        r#"{"symbol":"NOPEUSDT"}"#,
    )
    .unwrap();
    assert!(
        unknown.contains(" 422 ") || unknown.contains(" 404 "),
        "{unknown}"
    );
    // The status the API serves is refreshed from the journals once a second: it turns to
    // halted once the command is journaled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut status = String::new();
    while std::time::Instant::now() < deadline {
        status = http(&admin, "GET", "/api/v1/status", Some(token), "").unwrap_or_default();
        if status.contains("\"halted\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.contains("\"trading_state\":\"halted\""), "{status}");
    // The command is journaled by the admin API and, once taken off the ring, by the strategy.
    let controls = |d: &Path| {
        let Ok(mut t) = Tailer::open(d, Some(codec::SCHEMA_HASH)) else {
            return 0;
        };
        let mut n = 0;
        while let Ok(Some(r)) = t.next() {
            if r.kind == RecordKind::Control.as_u16() {
                let c: hotpath::event::Control = codec::decode(r.payload).unwrap();
                if c.kind == hotpath::event::ControlKind::Halt {
                    n += 1;
                }
            }
        }
        n
    };
    assert_eq!(controls(&journal.join("admin")), 1);
    assert_eq!(controls(&journal.join("strategy")), 1);
}

#[test]
fn startup_reconciliation_lets_the_venue_win_and_journals_each_discrepancy() {
    use hotpath::fixed::Qty;
    use hotpath::gateway::{OrderAlert, OrderState, OrderUpdate, UpdateCause};
    use hotpath::instrument::InstrumentId;
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    // A previous session's gateway journal: order 5 was acknowledged and never closed, order 6
    // filled. The fresh simulator has no open orders, so order 5 must be found journal-only.
    {
        let gw = journal.join("gateway");
        std::fs::create_dir_all(&gw).unwrap();
        let mut app = Appender::open(&gw, codec::journal_config()).unwrap();
        let upd = |cid, from, to| OrderUpdate {
            client_order_id: cid,
            venue_order_id: 100 + cid,
            cum_qty: Qty(0),
            orig_qty: Qty(1_000),
            time_ns: 1,
            venue_error: 0,
            instrument: InstrumentId(0),
            from,
            to,
            cause: UpdateCause::RestResponse,
            alert: OrderAlert::None,
            qty_scale: 5,
            reserved: [0; 3],
        };
        for u in [
            upd(5, OrderState::New, OrderState::Submitted),
            upd(5, OrderState::Submitted, OrderState::Acked),
            upd(6, OrderState::New, OrderState::Submitted),
            upd(6, OrderState::Submitted, OrderState::Filled),
        ] {
            codec::append(&mut app, &u, 0, 1).unwrap();
        }
        // Order 6's fill: a long position at that session's venue (BTCUSDT at the capture's
        // scales, 8 and 8).
        let inst = hotpath::instrument::InstrumentRef {
            id: InstrumentId(0),
            price_scale: 8,
            qty_scale: 8,
        };
        let fill = hotpath::event::ExecEvent::new(
            inst,
            hotpath::event::ExecKind::Fill,
            hotpath::event::Side::Buy,
            6,
            106,
            hotpath::event::Stamps::new(1, 0),
        )
        .with_fill(
            hotpath::fixed::Price(6_000_000_000_000),
            Qty(1_000_000),
            Qty(1_000_000),
            Qty(0),
            1,
        );
        codec::append(&mut app, &fill, 0, 1).unwrap();
        app.flush().unwrap();
    }
    let cfg = capture_config(dir.path());
    let out = engine(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--duration",
        "120",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    let line = s
        .lines()
        .find(|l| l.starts_with("reconciliation:"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        line.contains(
            "0 open orders at the venue, 1 open in the journal, 0 matched, 1 discrepancies"
        ),
        "{line}"
    );
    // The embedded simulator is a fresh venue: the earlier session's position was held at
    // another one, and is not taken over.
    assert!(s.lines().any(|l| l == "inherited positions: none"), "{s}");
    let mut t = Tailer::open(&journal.join("reconcile"), Some(codec::SCHEMA_HASH)).unwrap();
    let mut bodies = Vec::new();
    while let Some(r) = t.next().unwrap() {
        assert_eq!(r.kind, RecordKind::Reconcile.as_u16());
        bodies.push(String::from_utf8(r.payload.to_vec()).unwrap());
    }
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies[0].contains("\"finding\":\"journal_only\"")
            && bodies[0].contains("\"client_order_id\":5")
            && bodies[0].contains("\"resolution\":\"never_acknowledged\""),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[1].contains("\"finding\":\"summary\""),
        "{}",
        bodies[1]
    );
    // The resolution is in the gateway journal: order 5 is closed (the venue never had it),
    // so the next start does not report it again.
    let st = coldpath::reconcile::journal_state(&journal.join("gateway")).unwrap();
    assert_eq!(st.open().count(), 0, "{:?}", st.orders);
    assert_eq!(st.orders[&5].state, OrderState::Rejected);
    assert_eq!(st.orders[&6].state, OrderState::Filled);
}

#[test]
fn run_delivers_a_critical_alert_to_a_webhook_when_market_data_is_lost() {
    use std::io::{BufRead, BufReader, Read, Write};
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    // A webhook sink on loopback: answers 200 and keeps every request body.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", sink.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let got = bodies.clone();
    std::thread::spawn(move || {
        for conn in sink.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            got.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[sim]\nmarket = \"capture\"\n[metrics]\nenabled = false\n[notify]\nwarning_batch_secs = 0\ninfo_digest_secs = 0\n\
         [notify.routing]\ncritical = [\"hook\"]\nwarning = [\"hook\"]\ninfo = []\n\
         [[notify.channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"ALGO_TEST_HOOK_URL\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "120",
        ])
        .arg("--journal")
        .arg(dir.path().join("j"))
        .env("ALGO_TEST_HOOK_URL", &url)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    // The simulator closes the stream at the end of its tape: the feed journals the loss, the
    // notifier routes it as critical to the webhook before the run's summary is printed.
    let bodies = bodies.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"critical\"") && b.contains("connection")),
        "{bodies:#?}\n{s}"
    );
    assert!(
        !s.contains("ALGO_TEST_HOOK_URL") && !s.contains(&url),
        "{s}"
    );
}

#[test]
fn run_exports_parquet_per_symbol_when_configured() {
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_root = dir.path().join("data");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sim]\nmarket = \"capture\"\n[metrics]\nenabled = false\n[export]\nenabled = true\nout = \"{}\"\n",
            out_root.display()
        ),
    )
    .unwrap();
    let out = engine(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        dir.path().join("j").to_str().unwrap(),
        "--duration",
        "120",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    // Every trade of the capture (9,757) reached the trades table of BTCUSDT.
    let line = s
        .lines()
        .find(|l| l.starts_with("export:"))
        .expect("export line");
    assert!(line.contains("\"trades\": 9757"), "{line}");
    let trades = out_root.join("binance/spot/BTCUSDT/trades");
    let files: Vec<_> = std::fs::read_dir(&trades)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!files.is_empty(), "no Parquet under {}", trades.display());
    for f in files {
        let b = std::fs::read(&f).unwrap();
        assert!(
            b.starts_with(b"PAR1") && b.ends_with(b"PAR1"),
            "{}",
            f.display()
        );
    }
}
