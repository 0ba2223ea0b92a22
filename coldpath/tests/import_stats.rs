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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running python3 {} (python3 is required): {e}", script.display()));
    assert!(
        out.status.success(),
        "check_stats.py failed on {}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check_stats.py prints JSON")
}

/// Import into a fresh temp dir and compute the stats.
fn engine_stats(capture: &Path, opts: &ImportOptions) -> (tempfile::TempDir, ImportReport, JournalStats) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("journal");
    let report = import(capture, &out, opts).unwrap_or_else(|e| panic!("import {}: {e}", capture.display()));
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
    let m: i128 = digits.parse().unwrap_or_else(|_| panic!("bad decimal {s:?}"));
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
            for f in ["count", "first_venue_ns", "last_venue_ns", "depth_updates", "snapshot_levels"] {
                assert_eq!(pk.get(f), rk.get(f), "{c}: {f}");
            }
            for f in ["min_price", "max_price", "buy_qty", "sell_qty", "unknown_qty", "qty", "notional"] {
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
    assert!(errs[0].0.contains("line=2") && errs[0].1 == b"7826,1.38755", "{errs:?}");
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
