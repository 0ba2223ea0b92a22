//! `algo-engine analytics` and `algo-engine explain` on a real capture imported with
//! `algo-engine import`: one CSV row per closed 1m candle with every column present and
//! parseable, the decision replay and the journaled-decision path of `explain`, and clean
//! one-line errors.

use hotpath::codec::{self, RecordKind};
use hotpath::event::{MarketEvent, MarketKind};
use std::path::{Path, PathBuf};

mod common;
use common::{engine, text};

/// Import the BTCUSDT spot capture into `<tmp>/j`; `None` when the capture is missing.
fn imported(tmp: &Path) -> Option<PathBuf> {
    let capture = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz")?;
    let out_dir = tmp.join("j");
    let out = engine(&[
        "import",
        capture.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some(out_dir)
}

fn trades(dir: &Path) -> Vec<MarketEvent> {
    let mut t = codec::open_tailer(dir).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::Market.as_u16() {
            let e: MarketEvent = codec::decode(r.payload).unwrap();
            if matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
                out.push(e);
            }
        }
    }
    out
}

/// Closed 1m candles: every minute bucket a trade opened, except the last (still open).
fn closed_minutes(trades: &[MarketEvent]) -> usize {
    let mut now = 0u64;
    let mut buckets = std::collections::BTreeSet::new();
    for e in trades {
        now = now.max(e.stamps.venue_ns);
        buckets.insert(now / 60_000_000_000);
    }
    buckets.len().saturating_sub(1)
}

#[test]
fn analytics_csv_has_one_row_per_closed_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(j) = imported(tmp.path()) else {
        return;
    };
    let j = j.to_str().unwrap();
    let out = engine(&[
        "analytics",
        j,
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "1m",
        "--csv",
    ]);
    let csv = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "buy_volume",
        "sell_volume",
        "rsi",
        "adx",
        "plus_di",
        "minus_di",
        "atr",
        "zscore",
        "autocorr",
        "hurst",
        "poc",
        "vah",
        "val",
        "imbalance",
        "cvd",
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let expected = closed_minutes(&trades(Path::new(j)));
    assert!(expected >= 5);
    assert_eq!(rows.len(), expected);
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let mut prev_time = 0u64;
    for r in &rows {
        assert_eq!(r.len(), header.len());
        assert!(r[col("time")].ends_with('Z'));
        let t: u64 = r[col("open_time_ns")].parse().unwrap();
        assert!(t > prev_time && t % 60_000_000_000 == 0);
        prev_time = t;
        // Every non-empty cell (except the time) is a number.
        for (i, cell) in r.iter().enumerate() {
            if i != col("time") && !cell.is_empty() {
                cell.parse::<f64>()
                    .unwrap_or_else(|_| panic!("{}: {cell:?}", header[i]));
            }
        }
        let (o, h, l, c): (f64, f64, f64, f64) = (
            r[col("open")].parse().unwrap(),
            r[col("high")].parse().unwrap(),
            r[col("low")].parse().unwrap(),
            r[col("close")].parse().unwrap(),
        );
        assert!(l <= o.min(c) && h >= o.max(c));
        let v: f64 = r[col("volume")].parse().unwrap();
        let b: f64 = r[col("buy_volume")].parse().unwrap();
        let s: f64 = r[col("sell_volume")].parse().unwrap();
        assert!((b + s - v).abs() < 1e-9 * v.max(1.0));
        // Six minutes of data: the 14-period indicators are not warm, the profile and the
        // order flow are.
        assert!(r[col("adx")].is_empty() && r[col("hurst")].is_empty());
        assert!(!r[col("poc")].is_empty() && !r[col("imbalance")].is_empty());
    }

    let out = engine(&[
        "analytics",
        j,
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "5m",
        "--csv",
    ]);
    assert!(out.status.success());
    assert!(text(&out.stdout).lines().count() >= 2);

    let out = engine(&["analytics", j, "--symbol", "DOGEUSDT", "--csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("symbol DOGEUSDT not in"));
}

#[test]
fn explain_prints_the_decision_and_its_level() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(j) = imported(tmp.path()) else {
        return;
    };
    let js = j.to_str().unwrap();
    let out = engine(&[
        "explain",
        js,
        "--symbol",
        "BTCUSDT",
        "--at",
        "2024-08-09T00:00:00Z",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.contains("outcome: reject"), "{s}");
    assert!(s.contains("rejected at: level 1"), "{s}");
    assert!(s.contains("reason: not_warm"), "{s}");
    assert!(s.contains("replay of"), "{s}");
    for needle in [
        "needs > 25",
        "needs > 0.55",
        "needs < 0.6",
        "i1 > 2",
        "needs > 0.7",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
    // Unix ns gives the same answer as RFC 3339 (with an offset).
    let ns = engine(&[
        "explain",
        js,
        "--symbol",
        "btcusdt",
        "--at",
        "1723161600000000000",
    ]);
    let off = engine(&[
        "explain",
        js,
        "--symbol",
        "BTCUSDT",
        "--at",
        "2024-08-09T02:00:00.000+02:00",
    ]);
    assert_eq!(text(&ns.stdout), s);
    assert_eq!(text(&off.stdout), s);

    // Before the first candle closed: a clean error.
    let out = engine(&[
        "explain",
        js,
        "--symbol",
        "BTCUSDT",
        "--at",
        "2024-08-08T23:50:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no decision in force"));
    let out = engine(&["explain", js, "--symbol", "BTCUSDT", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected RFC 3339"));

    // Journaled decisions are preferred: write one into <journal>/strategy/.
    let mut d = hotpath::signals::evaluate(
        &hotpath::signals::SignalConfig::default(),
        &hotpath::signals::SignalInputs::empty(
            hotpath::instrument::InstrumentId(0),
            1_723_161_540_000_000_000,
            8,
            hotpath::signals::Bar::default(),
        ),
    );
    d.flags = 0;
    let sdir = j.join("strategy");
    std::fs::create_dir_all(&sdir).unwrap();
    {
        let mut a = ringbuffers::journal::Appender::open(&sdir, codec::journal_config()).unwrap();
        codec::append(&mut a, &d, 0, d.time_ns).unwrap();
    }
    let out = engine(&[
        "explain",
        js,
        "--symbol",
        "BTCUSDT",
        "--at",
        "2024-08-09T00:00:00Z",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(s.contains("1 decision records"), "{s}");
    assert!(s.contains("evaluated at 2024-08-08T23:59:00"), "{s}");
    assert!(s.contains("book proven: no"), "{s}");
    let out = engine(&[
        "explain",
        js,
        "--symbol",
        "BTCUSDT",
        "--at",
        "2024-08-09T00:00:00Z",
        "--replay",
    ]);
    assert!(text(&out.stdout).contains("replay of"));
}
