//! Import every recorded capture through the same library code the `algo-engine import` and
//! `algo-engine journal stats` commands call, and check the statistics against an independent
//! reading of the capture files by `scripts/check_stats.py` (Python standard library only,
//! `decimal.Decimal` arithmetic).
//!
//! What must agree, per `venue:SYMBOL` and per event type: counts, smallest/largest venue time
//! (exactly), min/max price, traded quantity by aggressor side, total quantity and notional
//! (exactly, by value), and the VWAP to the last unit of the engine's VWAP scale (the script
//! prints 36 significant digits; the test rounds them half-to-even to the engine's scale). Also
//! the number of raw frames, feed errors and depth-chain gaps. Any difference is a bug in a
//! decoder, the importer or the journal.
//!
//! A second group feeds deliberately corrupted captures (written to a temp dir) and checks that
//! each bad line is counted and journaled as a `FeedError` while the import goes on.

use std::path::{Path, PathBuf};
use std::process::Command;

use coldpath::capture::CaptureFormat;
use coldpath::import::{import, ImportOptions, ImportReport};
use coldpath::stats::{journal_stats, JournalStats};
use hotpath::codec::{self, RecordKind};
use serde_json::Value;

/// Small segments keep the temp journals small.
const SEGMENT: u64 = 8 << 20;

fn workspace_root() -> PathBuf {
    hotpath::datadir::workspace_root()
}

/// Run the Python reader on `capture`.
fn python_stats(capture: &Path, format: CaptureFormat, venue: Option<&str>) -> Value {
    let script = workspace_root().join("scripts/check_stats.py");
    let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(&script)
        .arg(capture)
        .arg("--format")
        .arg(format.name());
    if let Some(v) = venue {
        cmd.arg("--venue").arg(v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "running python3 {} (python3 is required): {e}",
            script.display()
        )
    });
    assert!(
        out.status.success(),
        "check_stats.py failed on {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check_stats.py prints JSON")
}

/// Import into a fresh temp dir and compute the stats.
fn engine_stats(
    capture: &Path,
    opts: &ImportOptions,
) -> (tempfile::TempDir, ImportReport, JournalStats) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("journal");
    let report =
        import(capture, &out, opts).unwrap_or_else(|e| panic!("import {}: {e}", capture.display()));
    let stats = journal_stats(&out).unwrap();
    (tmp, report, stats)
}

/// A decimal string as (mantissa, scale), exact; panics on junk.
fn parse_dec(s: &str) -> (i128, u32) {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{i}{f}");
    let m: i128 = digits
        .parse()
        .unwrap_or_else(|_| panic!("bad decimal {s:?}"));
    (if neg { -m } else { m }, f.len() as u32)
}

/// Compare two decimal strings by value.
fn same_value(a: &str, b: &str) -> bool {
    let (ma, sa) = parse_dec(a);
    let (mb, sb) = parse_dec(b);
    let s = sa.max(sb);
    ma * 10i128.pow(s - sa) == mb * 10i128.pow(s - sb)
}

/// Round a decimal string half-to-even to `scale` decimals, as a mantissa.
fn round_half_even(s: &str, scale: u32) -> i128 {
    let (m, sc) = parse_dec(s);
    if sc <= scale {
        return m * 10i128.pow(scale - sc);
    }
    let d = 10i128.pow(sc - scale);
    let (q, r) = (m / d, m % d);
    let twice = 2 * r.abs();
    if twice > d || (twice == d && q % 2 != 0) {
        q + m.signum()
    } else {
        q
    }
}

/// Every number the Python reader prints must match the engine's.
fn compare(capture: &Path, py: &Value, rs: &JournalStats, report: &ImportReport) {
    let ctx = capture.display().to_string();
    let rs_json = serde_json::to_value(rs).unwrap();
    assert_eq!(
        py["feed_errors"].as_u64().unwrap(),
        rs.feed_errors,
        "{ctx}: feed errors"
    );
    assert_eq!(
        py["raw_frames"].as_u64().unwrap(),
        rs.record_kinds.get("raw_frame").copied().unwrap_or(0),
        "{ctx}: raw frames"
    );
    assert_eq!(rs.invalid_events, 0, "{ctx}: invalid market records");
    assert_eq!(rs.feed_errors, report.feed_errors);
    let py_syms = py["symbols"].as_object().unwrap();
    let rs_syms = rs_json["symbols"].as_object().unwrap();
    // Instruments without any event (a symbol only defined) are not in the Python output.
    let rs_keys: Vec<&String> = rs_syms
        .iter()
        .filter(|(_, v)| !v["events"].as_object().unwrap().is_empty())
        .map(|(k, _)| k)
        .collect();
    let py_keys: Vec<&String> = py_syms.keys().collect();
    assert_eq!(py_keys, rs_keys, "{ctx}: symbols");
    for (key, p) in py_syms {
        let r = &rs_syms[key];
        let c = format!("{ctx} {key}");
        assert_eq!(p["book_gaps"], r["book_gaps"], "{c}: book gaps");
        let pe = p["events"].as_object().unwrap();
        let re = r["events"].as_object().unwrap();
        assert_eq!(
            pe.keys().collect::<Vec<_>>(),
            re.keys().collect::<Vec<_>>(),
            "{c}: event types"
        );
        for (kind, pk) in pe {
            let rk = &re[kind];
            let c = format!("{c} {kind}");
            for f in [
                "count",
                "first_venue_ns",
                "last_venue_ns",
                "depth_updates",
                "snapshot_levels",
            ] {
                assert_eq!(pk.get(f), rk.get(f), "{c}: {f}");
            }
            for f in [
                "min_price",
                "max_price",
                "buy_qty",
                "sell_qty",
                "unknown_qty",
                "qty",
                "notional",
            ] {
                match (pk.get(f), rk.get(f)) {
                    (Some(Value::String(a)), Some(Value::String(b))) => {
                        assert!(same_value(a, b), "{c}: {f} python {a} engine {b}")
                    }
                    (a, b) => assert_eq!(a, b, "{c}: {f}"),
                }
            }
            match (pk.get("vwap"), rk.get("vwap")) {
                (Some(Value::String(p)), Some(Value::String(r))) => {
                    let scale = rk["vwap_scale"].as_u64().unwrap() as u32;
                    let (rm, rsc) = parse_dec(r);
                    assert_eq!(rsc, scale, "{c}: vwap printed at its scale");
                    assert_eq!(
                        round_half_even(p, scale),
                        rm,
                        "{c}: vwap python {p} engine {r} (scale {scale})"
                    );
                }
                (a, b) => assert_eq!(a, b, "{c}: vwap"),
            }
        }
    }
}

fn check_capture(rel: &str, format: CaptureFormat) -> Option<(ImportReport, JournalStats)> {
    let path = hotpath::datadir::capture(rel)?;
    let started = std::time::Instant::now();
    let mut opts = ImportOptions::new(format);
    opts.segment_size = SEGMENT;
    let (_tmp, report, stats) = engine_stats(&path, &opts);
    let py = python_stats(&path, format, None);
    compare(&path, &py, &stats, &report);
    eprintln!(
        "{rel}: {} raw frames, {} market events, {} feed errors, {} gap records; agrees with check_stats.py ({:.1} s)",
        report.raw_frames,
        report.market_events,
        report.feed_errors,
        report.gap_records,
        started.elapsed().as_secs_f64()
    );
    Some((report, stats))
}

/// Every book of a real capture must have joined its snapshot and stayed proven (these
/// captures have no chain breaks; `book_gaps` is also compared with the Python count).
fn assert_books_proven(report: &ImportReport) {
    assert!(!report.books.is_empty(), "{}: no books", report.capture);
    for b in &report.books {
        assert_eq!(b.state, "proven", "{}: {b:?}", report.capture);
        assert_eq!(
            (b.gaps, b.resyncs, b.crossed),
            (0, 0, 0),
            "{}: {b:?}",
            report.capture
        );
        assert_eq!(b.syncs, 1, "{}: {b:?}", report.capture);
    }
}

/// The captures the tests below import, one test each (so they run in parallel and fail by
/// name).
const BINANCE_CAPTURES: [&str; 6] = [
    "binance/spot/btcusdt_20240808.gz",
    "binance/spot/ethusdt_20240808.gz",
    "binance/usdm/btcusdt_20240808.gz",
    "binance/usdm/ethusdt_20240808.gz",
    "binance/cryptofeed/BINANCE.ws.1.0",
    "binance/cryptofeed/BINANCE_DELIVERY.ws.1.0",
];

/// Every capture in `$ALGO_DATA_DIR/binance` is one of [`BINANCE_CAPTURES`]: a capture added
/// to the data set cannot go untested.
#[test]
fn every_binance_capture_is_covered() {
    let root = hotpath::datadir::data_dir().join("binance");
    if !root.is_dir() {
        assert!(
            !hotpath::datadir::data_required(),
            "{} is missing",
            root.display()
        );
        eprintln!("skipping: {} not found", root.display());
        return;
    }
    let mut found = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".gz") || name.contains(".ws.") {
                found.push(format!(
                    "binance/{}/{name}",
                    dir.file_name().to_string_lossy()
                ));
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = BINANCE_CAPTURES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[test]
fn spot_btcusdt_matches_python() {
    if let Some((report, stats)) = check_capture(BINANCE_CAPTURES[0], CaptureFormat::Hftbacktest) {
        assert_eq!(report.feed_errors, 0);
        assert_books_proven(&report);
        let s = &stats.symbols["binance_spot:BTCUSDT"];
        assert_eq!((s.price_scale, s.qty_scale), (8, 8));
    }
}

#[test]
fn spot_ethusdt_matches_python() {
    if let Some((report, _)) = check_capture(BINANCE_CAPTURES[1], CaptureFormat::Hftbacktest) {
        assert_eq!(report.feed_errors, 0);
        assert_books_proven(&report);
    }
}

#[test]
fn usdm_btcusdt_matches_python() {
    if let Some((report, stats)) = check_capture(BINANCE_CAPTURES[2], CaptureFormat::Hftbacktest) {
        assert_eq!(report.feed_errors, 0);
        assert_books_proven(&report);
        let s = &stats.symbols["binance_usdm:BTCUSDT"];
        assert_eq!((s.price_scale, s.qty_scale), (2, 3));
        assert_eq!(report.instruments[0].source, "builtin");
    }
}

#[test]
fn usdm_ethusdt_matches_python() {
    if let Some((report, _)) = check_capture(BINANCE_CAPTURES[3], CaptureFormat::Hftbacktest) {
        assert_eq!(report.feed_errors, 0);
        assert_books_proven(&report);
    }
}

#[test]
fn cryptofeed_spot_session_matches_python() {
    if let Some((report, stats)) = check_capture(BINANCE_CAPTURES[4], CaptureFormat::Cryptofeed) {
        assert_eq!(report.feed_errors, 0);
        assert_eq!(report.sessions, 1);
        assert_books_proven(&report);
        assert_eq!(stats.symbols.len(), 4);
        for i in &report.instruments {
            assert_eq!(i.source, "derived", "{i:?}");
        }
    }
}

#[test]
fn cryptofeed_coinm_session_matches_python() {
    if let Some((report, _)) = check_capture(BINANCE_CAPTURES[5], CaptureFormat::Cryptofeed) {
        assert_eq!(report.feed_errors, 0);
        assert_books_proven(&report);
        assert_eq!(report.books.len(), 10);
    }
}

#[test]
fn fx_day_matches_python() {
    let Some((report, stats)) =
        check_capture("fx/fxcm/eurusd/20140505_quote.zip", CaptureFormat::LeanFx)
    else {
        return;
    };
    assert_eq!(report.feed_errors, 0);
    let eur = &stats.symbols["fxcm:EURUSD"];
    assert_eq!((eur.price_scale, eur.qty_scale), (5, 0));
    assert_eq!(eur.events["quote"].count, report.raw_frames);
    assert_eq!(report.instruments[0].kind, "forex");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// The `FeedError` records of a journal: (header line, raw bytes).
fn feed_errors(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut t = codec::open_tailer(dir).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::FeedError.as_u16() {
            let nl = r.payload.iter().position(|&b| b == b'\n').unwrap();
            out.push((
                String::from_utf8_lossy(&r.payload[..nl]).into_owned(),
                r.payload[nl + 1..].to_vec(),
            ));
        }
    }
    out
}

#[test]
fn corrupted_fx_lines_are_journaled_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = b"3074,1.38756,1.38758\n7826,1.38755\nabc,1.1,1.2\n9000,1.38755,1.387555\n\n19317,1.38755,1.38759\n";
    let zip_path = tmp.path().join("20140505_quote.zip");
    write_stored_zip(&zip_path, "20140505_eurusd_tick_quote.csv", csv);
    let (_t, report, stats) = engine_stats(&zip_path, &ImportOptions::new(CaptureFormat::LeanFx));
    // Two framing errors (missing field, bad time) and one value error (6 decimals > scale 5).
    assert_eq!(report.feed_errors, 3, "{report:?}");
    assert_eq!(report.malformed_lines, 2);
    assert_eq!(report.blank_lines, 1);
    assert_eq!(stats.symbols["fxcm:EURUSD"].events["quote"].count, 2);
    let errs = feed_errors(Path::new(&report.out));
    assert_eq!(errs.len(), 3);
    assert!(
        errs[0].0.contains("line=2") && errs[0].1 == b"7826,1.38755",
        "{errs:?}"
    );
    assert!(errs[2].0.contains("beyond scale 5"), "{errs:?}");
    let py = python_stats(&zip_path, CaptureFormat::LeanFx, None);
    compare(&zip_path, &py, &stats, &report);
}

/// Write a zip archive with one stored (uncompressed) entry.
fn write_stored_zip(path: &Path, name: &str, data: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let crc = crc.sum();
    let n = name.len() as u16;
    let len = data.len() as u32;
    let mut z = Vec::new();
    z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(data);
    let cd = z.len() as u32;
    z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, method, time, date
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&[0; 12]); // extra, comment, disk, internal attrs, external attrs (4)
    z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    z.extend_from_slice(name.as_bytes());
    let cd_len = z.len() as u32 - cd;
    z.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&cd_len.to_le_bytes());
    z.extend_from_slice(&cd.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    std::fs::write(path, z).unwrap();
}

/// Lines 1..=n of a real hftbacktest capture, decompressed.
fn capture_lines(rel: &str, n: usize) -> Option<Vec<Vec<u8>>> {
    use std::io::BufRead;
    let path = hotpath::datadir::capture(rel)?;
    let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap());
    Some(
        std::io::BufReader::new(gz)
            .split(b'\n')
            .take(n)
            .map(Result::unwrap)
            .collect(),
    )
}

fn write_gz(path: &Path, lines: &[Vec<u8>]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in lines {
        enc.write_all(l).unwrap();
        enc.write_all(b"\n").unwrap();
    }
    let bytes = enc.finish().unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// A real spot capture with corrupted lines spliced in and one depth message removed: every
/// bad line is a `FeedError` with its bytes, the import goes on, the lost diff is a journaled
/// gap that un-proves the book, and the Python reader agrees on everything. Then the same file
/// with its gzip stream cut short: the import keeps what it read and reports the truncation.
#[test]
fn corrupted_hftbacktest_capture_is_journaled_and_import_continues() {
    let Some(mut lines) = capture_lines("binance/spot/ethusdt_20240808.gz", 400) else {
        return;
    };
    // Remove the 10th depth update after the inline snapshot (line 6): a chain break.
    let is_depth = |l: &Vec<u8>| l.windows(11).any(|w| w == b"depthUpdate");
    let depth_after: Vec<usize> = (6..lines.len()).filter(|&i| is_depth(&lines[i])).collect();
    let removed = lines.remove(depth_after[10]);
    let bad: [(usize, &[u8]); 5] = [
        (20, b"1723161254036052868 {\"stream\":\"ethusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":17231"),
        (40, b"this line has no receive timestamp"),
        (60, b"1723161254036052868 "),
        (80, b"1723161254036052868 {\"stream\":\"ethusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161255343,\"s\":\"ETHUSDT\",\"t\":1,\"p\":\"12.3.4\",\"q\":\"1.0\",\"T\":1723161255342,\"m\":true,\"M\":true}}"),
        (100, b"1723161254036052868 {\"stream\":\"ethusdt@weird\",\"data\":{\"e\":\"weird\",\"E\":1}}"),
    ];
    for (at, l) in bad.iter().rev() {
        lines.insert(*at, l.to_vec());
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("spot/ethusdt_corrupt.gz");
    let gz = write_gz(&path, &lines);

    let (_t, report, stats) = engine_stats(&path, &ImportOptions::new(CaptureFormat::Hftbacktest));
    assert_eq!(report.feed_errors, 5, "{report:#?}");
    assert_eq!(report.malformed_lines, 2);
    assert_eq!(
        report.raw_frames as usize,
        lines.len() - 2,
        "every framed line is a raw frame"
    );
    assert!(report.truncated.is_none());
    let errs = feed_errors(Path::new(&report.out));
    for ((_, raw), (hdr, got)) in bad.iter().zip(&errs) {
        assert_eq!(
            got.as_slice(),
            if hdr.contains("source=capture") {
                *raw
            } else {
                &raw[20..]
            },
            "{hdr}"
        );
    }
    assert!(errs[0].0.contains("truncated JSON"), "{:?}", errs[0].0);
    assert!(errs[1].0.contains("source=capture") && errs[1].0.contains("bad receive timestamp"));
    assert!(errs[3].0.contains("not a valid decimal"), "{:?}", errs[3].0);
    assert!(errs[4].0.contains("unknown event type"), "{:?}", errs[4].0);
    // The lost diff: one gap, the proven book un-proven and a resync requested (the capture has
    // no second snapshot, so it stays unsynced).
    let book = &report.books[0];
    assert_eq!((book.gaps, book.resyncs, book.syncs), (1, 1, 1), "{book:?}");
    assert_eq!(book.state, "awaiting_snapshot");
    let eth = &stats.symbols["binance_spot:ETHUSDT"];
    assert_eq!((eth.book_gaps, eth.book_resyncs), (1, Some(1)));
    let py = python_stats(&path, CaptureFormat::Hftbacktest, None);
    compare(&path, &py, &stats, &report);
    assert!(String::from_utf8_lossy(&removed).contains("depthUpdate"));

    // Cut the gzip stream short: everything before the cut is imported, the truncation is one
    // more FeedError, and the import itself succeeds.
    let cut = tmp.path().join("spot/ethusdt_cut.gz");
    std::fs::write(&cut, &gz[..gz.len() * 2 / 3]).unwrap();
    let (_t2, report2, _) = engine_stats(&cut, &ImportOptions::new(CaptureFormat::Hftbacktest));
    assert!(report2.truncated.is_some(), "{report2:#?}");
    assert!(report2.raw_frames > 100 && report2.raw_frames < report.raw_frames);
    let errs2 = feed_errors(Path::new(&report2.out));
    assert!(
        errs2.last().unwrap().0.contains("capture ends early"),
        "{errs2:?}"
    );
}
