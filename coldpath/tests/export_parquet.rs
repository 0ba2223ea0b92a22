//! Storage export, read back by DuckDB: the recorded Binance spot BTCUSDT capture is imported
//! into a journal through the real importer, exported to Parquet, and DuckDB's counts and exact
//! sums over the files must equal `coldpath::stats` (what `algo-engine journal stats` prints)
//! on the same journal. Also: an export split in two runs around open candles gives the same
//! files' content as one run (cursor + candle state), and retention deletes exactly the days
//! past their rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use coldpath::capture::CaptureFormat;
use coldpath::export::{run_once, ExportConfig, JournalSource, Retention, DAY_NS};
use coldpath::import::{import, ImportOptions, INSTRUMENTS_FILE};
use coldpath::stats::{format_i128, journal_stats, vwap_mantissa, VWAP_EXTRA_DECIMALS};
use hotpath::codec;
use hotpath::event::{
    Aggressor, Decision, DecisionOutcome, DecisionReason, ExecEvent, ExecKind, MarketEvent, Side,
    Stamps, Trend, ZoneSource,
};
use hotpath::fixed::{Decimal, Price, Qty};
use hotpath::instrument::{InstrumentId, InstrumentRef};
use ringbuffers::journal::Appender;
use serde_json::Value;

const SEGMENT: u64 = 8 << 20;

fn capture() -> Option<PathBuf> {
    let c = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz");
    if c.is_none() {
        assert!(
            !hotpath::datadir::data_required(),
            "binance/spot/btcusdt_20240808.gz is missing and ALGO_REQUIRE_DATA is set"
        );
    }
    c
}

fn python() -> Option<PathBuf> {
    match testkit::python_with("duckdb") {
        Ok(p) => Some(p),
        Err(e) if !testkit::peers_required() => {
            eprintln!("skipping: {e}");
            None
        }
        Err(e) => panic!("duckdb is required: {e}"),
    }
}

/// Run DuckDB queries; each result row comes back as a list of strings (or null).
fn duckdb(py: &Path, queries: &[String]) -> Vec<Vec<Vec<Value>>> {
    let script = r#"
import duckdb, json, sys
qs = json.loads(sys.stdin.read())
con = duckdb.connect()
out = []
for q in qs:
    rows = con.execute(q).fetchall()
    out.append([[None if v is None else str(v) for v in r] for r in rows])
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(queries).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A decimal string as an exact mantissa at `scale`.
fn mantissa(v: &str, scale: u32) -> i128 {
    let (i, f) = v.split_once('.').unwrap_or((v, ""));
    assert!(
        f.len() as u32 <= scale,
        "{v} has more than {scale} decimals"
    );
    let digits = format!("{i}{f}{}", "0".repeat(scale as usize - f.len()));
    digits.parse().unwrap()
}

fn import_journal(dir: &Path) -> PathBuf {
    let cap = capture().unwrap();
    let journal = dir.join("journal");
    let mut opts = ImportOptions::new(CaptureFormat::Hftbacktest);
    opts.segment_size = SEGMENT;
    import(&cap, &journal, &opts).unwrap();
    journal
}

#[test]
fn duckdb_reads_what_journal_stats_computes() {
    let (Some(_), Some(py)) = (capture(), python()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let journal = import_journal(tmp.path());
    let stats = journal_stats(&journal).unwrap();
    let sym = &stats.symbols["binance_spot:BTCUSDT"];
    let t = &sym.events["trade"];
    assert!(t.count > 1_000, "the capture has trades: {}", t.count);
    let (ps, qs) = (u32::from(sym.price_scale), u32::from(sym.qty_scale));

    let out = tmp.path().join("data");
    let cfg = ExportConfig {
        finalize: true,
        ..ExportConfig::default()
    };
    let summary = run_once(&[JournalSource::new("market", &journal)], &out, &cfg).unwrap();
    assert_eq!(summary.rows["trades"], t.count);
    assert!(
        summary.files_deleted.is_empty(),
        "{:?}",
        summary.files_deleted
    );
    let root = out.join("binance/spot/BTCUSDT");
    assert!(root.join("trades").is_dir());
    let trades = format!("read_parquet('{}/trades/*.parquet')", root.display());
    let candles = |tf: &str| format!("read_parquet('{}/candles_{tf}/*.parquet')", root.display());

    let mut q = vec![
        format!(
            "SELECT count(*), sum(qty), sum(qty) FILTER (WHERE side = 'buy'), \
             sum(qty) FILTER (WHERE side = 'sell'), sum(price * qty), min(price), max(price), \
             epoch_ns(min(time)), epoch_ns(max(time)), count(DISTINCT kind) FROM {trades}"
        ),
        format!("SELECT count(DISTINCT epoch_ns(time) // 60000000000) FROM {trades}"),
    ];
    for tf in ["1m", "5m", "15m"] {
        q.push(format!(
            "SELECT count(*), sum(volume), sum(buy_volume), sum(sell_volume), sum(num_trades), \
             min(low), max(high), sum(num_buy_trades) FROM {}",
            candles(tf)
        ));
    }
    let r = duckdb(&py, &q);
    let row = &r[0][0];
    assert_eq!(s(&row[0]).parse::<u64>().unwrap(), t.count, "trade count");
    let qty = mantissa(s(&row[1]), qs);
    let buy = mantissa(s(&row[2]), qs);
    let sell = mantissa(s(&row[3]), qs);
    let notional = mantissa(s(&row[4]), ps + qs);
    assert_eq!(format_i128(qty, qs as u8), *t.qty.as_ref().unwrap(), "qty");
    assert_eq!(
        format_i128(buy, qs as u8),
        *t.buy_qty.as_ref().unwrap(),
        "buy qty"
    );
    assert_eq!(
        format_i128(sell, qs as u8),
        *t.sell_qty.as_ref().unwrap(),
        "sell qty"
    );
    assert_eq!(
        format_i128(notional, (ps + qs) as u8),
        *t.notional.as_ref().unwrap(),
        "notional"
    );
    let vwap = vwap_mantissa(notional, qty, VWAP_EXTRA_DECIMALS).unwrap();
    assert_eq!(
        format_i128(vwap, ps as u8 + VWAP_EXTRA_DECIMALS),
        *t.vwap.as_ref().unwrap(),
        "vwap"
    );
    assert_eq!(
        format_i128(mantissa(s(&row[5]), ps), ps as u8),
        *t.min_price.as_ref().unwrap()
    );
    assert_eq!(
        format_i128(mantissa(s(&row[6]), ps), ps as u8),
        *t.max_price.as_ref().unwrap()
    );
    assert_eq!(s(&row[7]).parse::<u64>().ok(), t.first_venue_ns);
    assert_eq!(s(&row[8]).parse::<u64>().ok(), t.last_venue_ns);
    assert_eq!(s(&row[9]), "1", "spot capture has @trade only");

    // Candles: every trade is in exactly one candle of each timeframe, with its side.
    let minutes: u64 = s(&r[1][0][0]).parse().unwrap();
    for (i, tf) in ["1m", "5m", "15m"].iter().enumerate() {
        let c = &r[2 + i][0];
        let n: u64 = s(&c[0]).parse().unwrap();
        assert!(n > 0, "{tf} candles");
        if *tf == "1m" {
            assert_eq!(n, minutes, "one 1m candle per minute with trades");
        }
        assert_eq!(mantissa(s(&c[1]), qs), qty, "{tf} volume");
        assert_eq!(mantissa(s(&c[2]), qs), buy, "{tf} buy volume");
        assert_eq!(mantissa(s(&c[3]), qs), sell, "{tf} sell volume");
        assert_eq!(s(&c[4]).parse::<u64>().unwrap(), t.count, "{tf} trades");
        assert_eq!(
            format_i128(mantissa(s(&c[5]), ps), ps as u8),
            *t.min_price.as_ref().unwrap()
        );
        assert_eq!(
            format_i128(mantissa(s(&c[6]), ps), ps as u8),
            *t.max_price.as_ref().unwrap()
        );
    }

    // A second run has nothing new to export.
    let again = run_once(&[JournalSource::new("market", &journal)], &out, &cfg).unwrap();
    assert!(again.files_written.is_empty(), "{:?}", again.files_written);
    assert_eq!(again.records["market"], 0);
}

/// Copy the records `[from, to)` of `src` into the journal at `dst` (appending).
fn copy_records(src: &Path, dst: &Path, from: u64, to: u64) {
    let mut app = Appender::open(dst, codec::journal_config()).unwrap();
    let mut t = ringbuffers::journal::Tailer::open_at(src, Some(codec::SCHEMA_HASH), from).unwrap();
    while let Some(r) = t.next().unwrap() {
        if r.seq >= to {
            break;
        }
        app.append(r.kind, r.flags, r.timestamp, r.payload).unwrap();
    }
    app.close().unwrap();
}

#[test]
fn split_export_equals_one_shot() {
    let (Some(_), Some(py)) = (capture(), python()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let journal = import_journal(tmp.path());
    let total = journal_stats(&journal).unwrap().records;
    let cfg_final = ExportConfig {
        finalize: true,
        ..ExportConfig::default()
    };
    let one = tmp.path().join("one");
    run_once(&[JournalSource::new("market", &journal)], &one, &cfg_final).unwrap();

    // The same journal growing: a first export sees 40% (candles open at its end are not
    // written), a second the rest after a restart (new process state, same state dir).
    let growing = tmp.path().join("growing");
    std::fs::create_dir_all(&growing).unwrap();
    std::fs::copy(
        journal.join(INSTRUMENTS_FILE),
        growing.join(INSTRUMENTS_FILE),
    )
    .unwrap();
    let cut = total * 2 / 5;
    copy_records(&journal, &growing, 0, cut);
    let two = tmp.path().join("two");
    let first = run_once(
        &[JournalSource::new("market", &growing)],
        &two,
        &ExportConfig::default(),
    )
    .unwrap();
    assert_eq!(first.cursors["market"], cut);
    copy_records(&journal, &growing, cut, u64::MAX);
    let second = run_once(&[JournalSource::new("market", &growing)], &two, &cfg_final).unwrap();
    assert!(
        second.candle_ticks_replayed > 0,
        "open candles were rebuilt"
    );
    assert_eq!(second.cursors["market"], total);

    let q = |root: &Path, table: &str, cols: &str| {
        format!(
            "SELECT {cols} FROM read_parquet('{}/binance/spot/BTCUSDT/{table}/*.parquet') ORDER BY ALL",
            root.display()
        )
    };
    let candle_cols =
        "epoch_ns(timestamp), open, high, low, close, volume, buy_volume, sell_volume, \
                       num_trades, num_buy_trades, num_sell_trades";
    let mut queries = Vec::new();
    for root in [&one, &two] {
        queries.push(q(
            root,
            "trades",
            "epoch_ns(time), seq, trade_id, side, price, qty",
        ));
        for tf in ["1m", "5m", "15m"] {
            queries.push(q(root, &format!("candles_{tf}"), candle_cols));
        }
    }
    let r = duckdb(&py, &queries);
    for i in 0..4 {
        assert!(!r[i].is_empty());
        assert_eq!(
            r[i],
            r[i + 4],
            "table {i} differs between one-shot and split export"
        );
    }
}

fn inst() -> InstrumentRef {
    InstrumentRef {
        id: InstrumentId(0),
        price_scale: 2,
        qty_scale: 3,
    }
}

#[test]
fn decisions_executions_and_retention() {
    let Some(py) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    // Three UTC days (2024-08-06 .. 08) of synthetic trades, decisions and fills.
    let d0 = 1_722_902_400_000_000_000u64; // 2024-08-06T00:00:00Z
    assert_eq!(d0 % DAY_NS, 0);
    let mut app = Appender::open(&journal, codec::journal_config()).unwrap();
    for day in 0..3u64 {
        for k in 0..10u64 {
            let t = d0 + day * DAY_NS + 12 * 3_600_000_000_000 + k * 1_000_000_000;
            let e = MarketEvent::trade(
                inst(),
                Stamps::new(t, 0),
                Price(6_120_101 + k as i64),
                Qty(1_500),
                if k % 2 == 0 {
                    Aggressor::Buy
                } else {
                    Aggressor::Sell
                },
                day * 100 + k,
            );
            codec::append(&mut app, &e, 0, t).unwrap();
        }
        let t = d0 + day * DAY_NS + 13 * 3_600_000_000_000;
        let dec = Decision {
            instrument: InstrumentId(0),
            outcome: DecisionOutcome::Reject,
            level: 3,
            reason: DecisionReason::CascadeUnordered,
            trend: Trend::Up,
            time_ns: t,
            price: Price(6_120_150),
            zone_low: Price(6_110_000),
            zone_high: Price(6_115_000),
            zone_id: 7,
            zone_strength: 70,
            price_scale: 2,
            zone_kind: ZoneSource::Demand,
            filter_mask: 0b101,
            flags: Decision::FLAG_BOOK_PROVEN,
            adx: 31.5,
            hurst: 0.61,
            hurst_corrected: 0.58,
            mean_reversion: 0.4,
            atr: 55.0,
            imbalance_1m: 1.7,
            imbalance_5m: 1.9,
            imbalance_15m: 1.2,
            bounce: f64::NAN,
            volume_ratio: 1.1,
            zscore: -0.3,
            autocorr: 0.1,
            confluence: 2.5,
            contributions: [1.5, 0.0, 1.0, 0.0, 0.0, 0.0],
            stamps: Stamps::new(t, 0),
        };
        codec::append(&mut app, &dec, 0, t).unwrap();
        let fill = ExecEvent::new(
            inst(),
            ExecKind::Fill,
            Side::Buy,
            42 + day,
            9_000 + day,
            Stamps::new(t + 1, 0),
        )
        .with_fill(Price(6_120_150), Qty(2_000), Qty(2_000), Qty(0), 77 + day)
        .with_fee(Decimal::new(1_224, 4), false);
        codec::append(&mut app, &fill, 0, t + 1).unwrap();
    }
    app.close().unwrap();
    let instruments = r#"[{"id":0,"venue":"binance_usdm","symbol":"BTCUSDT","kind":"perp","price_scale":2,"qty_scale":3,"tick":"0.10","step":"0.001","source":"builtin"}]"#;
    std::fs::write(journal.join(INSTRUMENTS_FILE), instruments).unwrap();

    let out = tmp.path().join("data");
    let cfg = ExportConfig {
        finalize: true,
        retention: Retention::SEED,
        ..ExportConfig::default()
    };
    let sum = run_once(&[JournalSource::new("market", &journal)], &out, &cfg).unwrap();
    let root = out.join("binance/futures/BTCUSDT");
    let days = |table: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(table))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy()[..10].to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Reference = newest event (2024-08-08 13:00): the 06th and 07th are past every 15 min /
    // 1 h rule; the 08th is kept; decisions and executions are kept for ever.
    assert_eq!(days("trades"), ["2024-08-08"]);
    assert_eq!(days("candles_1m"), ["2024-08-08"]);
    assert_eq!(days("candles_15m"), ["2024-08-08"]);
    assert_eq!(
        days("decisions"),
        ["2024-08-06", "2024-08-07", "2024-08-08"]
    );
    assert_eq!(
        days("executions"),
        ["2024-08-06", "2024-08-07", "2024-08-08"]
    );
    assert_eq!(sum.files_deleted.len(), 2 * 4, "{:?}", sum.files_deleted);

    let r = duckdb(
        &py,
        &[
            format!(
                "SELECT count(*), sum(qty), min(price) FROM read_parquet('{}/trades/*.parquet')",
                root.display()
            ),
            format!(
                "SELECT count(*), sum(last_qty), round(sum(fee), 6), sum(fee_mantissa), min(fee_scale), \
                 min(kind), min(side) FROM read_parquet('{}/executions/*.parquet')",
                root.display()
            ),
            format!(
                "SELECT count(*), min(reason), min(outcome), min(zone_kind), sum(confluence), \
                 bool_and(book_proven), min(price), count(*) FILTER (WHERE isnan(bounce)) \
                 FROM read_parquet('{}/decisions/*.parquet')",
                root.display()
            ),
        ],
    );
    assert_eq!(
        r[0][0],
        ["10", "15.000", "61201.01"].map(|x| Value::String(x.into()))
    );
    assert_eq!(
        r[1][0],
        ["3", "6.000", "0.3672", "3672", "4", "fill", "buy"].map(|x| Value::String(x.into()))
    );
    assert_eq!(
        r[2][0],
        [
            "3",
            "cascade_unordered",
            "reject",
            "demand",
            "7.5",
            "True",
            "61201.50",
            "3"
        ]
        .map(|x| Value::String(x.into()))
    );

    // Keeping everything deletes nothing.
    let out2 = tmp.path().join("keep");
    let cfg2 = ExportConfig {
        finalize: true,
        retention: Retention::KEEP_ALL,
        ..ExportConfig::default()
    };
    let sum2 = run_once(&[JournalSource::new("market", &journal)], &out2, &cfg2).unwrap();
    assert!(sum2.files_deleted.is_empty());
    assert_eq!(sum2.rows["trades"], 30);
    assert_eq!(sum2.rows["decisions"], 3);
    assert_eq!(sum2.rows["executions"], 3);
}
