//! `algo-engine backtest` and `algo-engine sweep` as a user runs them: the real binary against
//! the embedded simulator, and the report checked against the journals it was computed from.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;

use hotpath::codec::{self, RecordKind};
use hotpath::event::{ExecEvent, ExecKind, OrderIntent, ReasonCode};
use ringbuffers::journal::Tailer;

mod common;
use common::{engine, engine_command, journal_closes, text};

/// Thresholds loose enough that the four-level decision enters often (the order-flow cascade
/// still has to be ordered), so a short synthetic market yields closed trades.
const LOOSE: &str = "[metrics]\nenabled = false\n\
    [strategy]\nadx_min = 0.0\nhurst_min = 0.0\nmean_reversion_max = 100.0\natr_floor_frac = 0.0\n\
    value_area_tolerance = 0.05\ncascade_long_min = 0.0\ncascade_short_max = 100.0\n\
    bounce_min = 0.0\nvolume_spike_min = 0.0\nmin_confluence = 0.0\n";

/// A decimal string as a mantissa at 8 decimals (the P&L scale of `TradeClose`).
fn mantissa8(s: &str) -> i128 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    assert!(f.len() <= 8, "{s}");
    let m: i128 = format!("{i}{f:0<8}").parse().unwrap();
    if neg {
        -m
    } else {
        m
    }
}

fn assert_svg(path: &Path) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.starts_with("<svg"),
        "{}: {}",
        path.display(),
        &s[..60.min(s.len())]
    );
    assert!(s.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(
        s.contains("<polyline") || s.contains("<path"),
        "{}",
        path.display()
    );
}

#[test]
fn backtest_report_matches_the_trades_the_strategy_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("{LOOSE}[sim]\nmarket = \"synthetic\"\nhours = 12.0\nseed = 7\n"),
    )
    .unwrap();
    let out_dir = dir.path().join("report");
    let journal = dir.path().join("j");
    let out = engine(&[
        "backtest",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("run ended: the simulator's market ended"), "{s}");
    assert!(s.contains("| net P&L"), "the summary table is printed: {s}");

    for f in [
        "report.md",
        "trades.csv",
        "summary.json",
        "equity.svg",
        "drawdown.svg",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    assert_svg(&out_dir.join("equity.svg"));
    assert_svg(&out_dir.join("drawdown.svg"));

    let closes = journal_closes(&journal);
    assert!(
        !closes.is_empty(),
        "the loose configuration closes trades on synthetic seed 7: {s}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    // The simulator stamps its executions with the market's clock, and the strategy keeps its
    // own on the market data: every trade lies on the tape's clock (a day in 2024), and the
    // report has nothing to warn about.
    assert_eq!(summary["market_clock"], true, "{summary}");
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary}");
    assert!(!s.contains("warning:"), "{s}");
    let (start, end) = (
        summary["start_ns"].as_u64().unwrap(),
        summary["end_ns"].as_u64().unwrap(),
    );
    assert!(
        end - start < 13 * 3_600_000_000_000,
        "12 h of market: {start}..{end}"
    );
    for c in &closes {
        assert!(start <= c.open_ns && c.close_ns <= end, "{c:?}");
    }
    let csv = std::fs::read_to_string(out_dir.join("trades.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "symbol",
            "side",
            "open_utc",
            "close_utc",
            "entry",
            "exit",
            "qty",
            "gross",
            "fees",
            "net",
            "reason",
            "hold_secs"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.len(),
        closes.len(),
        "one CSV row per TradeClose record"
    );
    assert_eq!(summary["trades"].as_u64(), Some(closes.len() as u64));

    // Row by row: the journal's exact amounts, and gross - fees = net.
    for (row, c) in rows.iter().zip(&closes) {
        assert_eq!(c.pnl_scale, 8);
        assert_eq!(row[0], "BTCUSDT");
        assert_eq!(
            row[1],
            if c.side == hotpath::event::Side::Buy {
                "long"
            } else {
                "short"
            }
        );
        assert_eq!(mantissa8(row[7]), i128::from(c.gross_pnl), "{row:?}");
        assert_eq!(mantissa8(row[8]), i128::from(c.fees), "{row:?}");
        assert_eq!(mantissa8(row[9]), i128::from(c.net_pnl), "{row:?}");
        assert_eq!(mantissa8(row[7]) - mantissa8(row[8]), mantissa8(row[9]));
        assert_eq!(row[10], c.reason.to_string());
        let hold: f64 = row[11].parse().unwrap();
        assert!(
            (hold - (c.close_ns - c.open_ns) as f64 / 1e9).abs() < 0.001,
            "{row:?}"
        );
    }

    // Net P&L three ways: the CSV column, the summary, the journal records.
    let from_journal: i128 = closes.iter().map(|c| i128::from(c.net_pnl)).sum();
    let from_csv: i128 = rows.iter().map(|r| mantissa8(r[9])).sum();
    assert_eq!(from_csv, from_journal);
    let exact = summary["net_pnl_exact"].as_str().unwrap();
    assert_eq!(mantissa8(exact), from_journal, "{exact}");
    let net = summary["net_pnl"].as_f64().unwrap();
    assert!((net - from_journal as f64 / 1e8).abs() < 1e-6, "{net}");
    let fees: i128 = closes.iter().map(|c| i128::from(c.fees)).sum();
    assert!((summary["fees"].as_f64().unwrap() - fees as f64 / 1e8).abs() < 1e-6);
    let wins = closes.iter().filter(|c| c.net_pnl > 0).count();
    assert_eq!(summary["wins"].as_u64(), Some(wins as u64));
    let by_reason: u64 = summary["exit_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trades"].as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, closes.len() as u64);
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("## Exits by reason") && md.contains("![equity](equity.svg)"));

    // The report of an existing journal is the same report.
    let again = dir.path().join("again");
    let out = engine(&[
        "backtest",
        "--report-only",
        "--journal",
        journal.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(again.join("summary.json")).unwrap(),
        std::fs::read_to_string(out_dir.join("summary.json")).unwrap()
    );
    // A journal that already holds a run is refused.
    let out = engine(&[
        "backtest",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already holds a run"),
        "{}",
        text(&out.stderr)
    );
    // A backtest never trades on a live venue.
    let live = dir.path().join("live.toml");
    std::fs::write(&live, "[venue]\nkind = \"binance-spot\"\n").unwrap();
    let out = engine(&[
        "backtest",
        "--config",
        live.to_str().unwrap(),
        "--out",
        dir.path().join("live").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("simulator"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sweep_ranks_a_grid_and_ab_replays_a_recorded_journal() {
    let Some(_) = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.toml");
    std::fs::write(
        &grid,
        "metric = \"trades\"\n[set]\n\"metrics.enabled\" = true\n\"strategy.adx_min\" = 0.0\n\
         [axes]\n\"strategy.min_confluence\" = [0.0, 100.0]\n\
         [[markets]]\nname = \"btc\"\ncapture = \"binance/spot/btcusdt_20240808.gz\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("sweep");
    let out = engine(&[
        "sweep",
        "--grid",
        grid.to_str().unwrap(),
        "--jobs",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("Ranked by `trades`"), "{s}");
    let csv = std::fs::read_to_string(out_dir.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("rank,id,strategy.min_confluence,runs,failed,trades,net_pnl"));
    assert!(
        lines[1..].iter().all(|l| l.contains(",1,0,")),
        "both ran: {csv}"
    );
    assert!(out_dir.join("sweep.md").is_file());
    for id in ["c001", "c002"] {
        let run = out_dir.join("runs").join(format!("{id}-btc"));
        let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let t: toml::Table = toml::from_str(&cfg).unwrap();
        // Whatever the grid says, parallel runs serve no ports and print no live status.
        assert_eq!(t["metrics"]["enabled"].as_bool(), Some(false), "{cfg}");
        assert_eq!(t["admin"]["enabled"].as_bool(), Some(false), "{cfg}");
        assert_eq!(t["sim"]["market"].as_str(), Some("capture"));
        assert!(run.join("report/summary.json").is_file());
        assert!(run.join("journal/strategy").is_dir());
    }

    // A/B on the journal the first run recorded: it is converted into a capture the
    // simulator replays frame for frame.
    let recorded = out_dir.join("runs/c001-btc/journal");
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&a, "[strategy]\nmin_confluence = 3.0\n").unwrap();
    std::fs::write(&b, "[strategy]\nmin_confluence = 2.5\n").unwrap();
    let ab_dir = dir.path().join("ab");
    let out = engine(&[
        "sweep",
        "--ab",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        recorded.to_str().unwrap(),
        "--jobs",
        "1",
        "--out",
        ab_dir.to_str().unwrap(),
        "--seed",
        "5",
    ]);
    let s = text(&out.stdout);
    assert!(out.status.success(), "{s}{}", text(&out.stderr));
    assert!(s.contains("# A/B: per-trade net returns"), "{s}");
    let ab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ab_dir.join("ab.json")).unwrap()).unwrap();
    assert_eq!(ab["markets"][0], "journal");
    let captures: Vec<_> = std::fs::read_dir(ab_dir.join("markets/journal/spot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(captures.len(), 1);
    let name = captures[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("btcusdt_"), "{name}");
    let sent = |log: &Path| -> String {
        let s = std::fs::read_to_string(log).unwrap();
        s.lines()
            .find(|l| l.starts_with("venue: simulator sent"))
            .unwrap_or_else(|| panic!("no venue line in {}", log.display()))
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    let original = sent(&out_dir.join("runs/c001-btc/stdout.log"));
    for side in ["A", "B"] {
        assert_eq!(
            sent(&ab_dir.join(format!("runs/{side}-journal/stdout.log"))),
            original,
            "the converted journal replays every stream frame"
        );
    }
}

#[test]
fn every_example_grid_expands_to_valid_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let grids: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/sweeps"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
    assert!(!grids.is_empty());
    for g in grids {
        let out_dir = dir.path().join(g.file_stem().unwrap());
        let out = engine(&[
            "sweep",
            "--grid",
            g.to_str().unwrap(),
            "--dry-run",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        let s = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {s}{}",
            g.display(),
            text(&out.stderr)
        );
        let grid: toml::Table = toml::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
        let combos: usize = grid.get("axes").and_then(|a| a.as_table()).map_or(1, |a| {
            a.values().map(|v| v.as_array().unwrap().len()).product()
        });
        let markets = grid
            .get("markets")
            .and_then(|m| m.as_array())
            .map_or(1, |m| m.len());
        assert!(
            s.contains(&format!("sweep: {} runs planned", combos * markets)),
            "{}: {s}",
            g.display()
        );
    }
    // A misspelt key fails before anything runs, naming the key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[axes]\n\"strategy.min_confluense\" = [1.0]\n").unwrap();
    let out = engine(&[
        "sweep",
        "--grid",
        bad.to_str().unwrap(),
        "--dry-run",
        "--out",
        dir.path().join("bad").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("min_confluense"),
        "{}",
        text(&out.stderr)
    );
}

/// A decimal string as a mantissa at `scale` decimals (exact; more decimals must be zeros).
fn mantissa(s: &str, scale: u8) -> i128 {
    let m = mantissa8(s);
    let d = 10i128.pow(u32::from(8u8.abs_diff(scale)));
    if scale >= 8 {
        m * d
    } else {
        assert_eq!(m % d, 0, "{s} has more than {scale} decimals");
        m / d
    }
}

/// `v / d` rounded half to even (d > 0), as the trade log rounds its prices and P&L.
fn div_half_even(v: i128, d: i128) -> i128 {
    let (q, r) = (v.div_euclid(d), v.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// A `mantissa` at `from` decimals re-expressed at `to` (half-even when it loses digits).
fn rescale(v: i128, from: u8, to: u8) -> i128 {
    if to >= from {
        v * 10i128.pow(u32::from(to - from))
    } else {
        div_half_even(v, 10i128.pow(u32::from(from - to)))
    }
}

/// Every record of kind `kind` in the journal at `dir`, decoded.
fn records<E: codec::Journaled>(dir: &Path, kind: RecordKind) -> Vec<E> {
    let mut t = Tailer::open(dir, Some(codec::SCHEMA_HASH)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == kind.as_u16() {
            out.push(codec::decode::<E>(r.payload).unwrap());
        }
    }
    out
}

/// A trade rebuilt from the venue's fills alone.
#[derive(Debug, Default)]
struct Rebuilt {
    /// +1 long, -1 short.
    sign: i64,
    entry_value: i128,
    entry_qty: i128,
    exit_value: i128,
    exit_qty: i128,
    /// Fees at 8 decimals, as the simulator charges them.
    fees: i128,
    entry_cid: u64,
    exit_cid: u64,
}

/// Rebuilds the trades of a backtest from the gateway journal's fills (each fill counted once:
/// the REST answer and the user stream report the same fill), checking each fill's fee against
/// the simulator's rule: `ceil(floor(price * qty) * rate)` in the quote asset at 8 decimals,
/// with the maker or taker rate of the run's `[sim]` configuration.
fn rebuild(journal: &Path, maker_bps: f64, taker_bps: f64) -> (Vec<Rebuilt>, u8, u8) {
    let rate = |bps: f64| (bps * 10_000.0).round() as i64;
    let (maker, taker) = (rate(maker_bps), rate(taker_bps));
    let mut seen = HashSet::new();
    let mut open: Option<(Rebuilt, i128)> = None;
    let mut done = Vec::new();
    let mut scales = (0, 0);
    for x in records::<ExecEvent>(&journal.join("gateway"), RecordKind::Exec) {
        if !matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill)
            || !seen.insert((x.client_order_id, x.trade_id, x.cum_qty.0))
        {
            continue;
        }
        let (ps, qs) = (x.price_scale, x.qty_scale);
        scales = (ps, qs);
        let (px, q) = (i128::from(x.last_px.0), i128::from(x.last_qty.0));
        let quote8 = rescale(px, ps, 8) * rescale(q, qs, 8) / 100_000_000;
        let fee8 = i128::from(bench::sim::exchange::commission(
            i64::try_from(quote8).unwrap(),
            if x.is_maker { maker } else { taker },
        ));
        assert_eq!(
            rescale(i128::from(x.fee), x.fee_scale, 8),
            fee8,
            "the fee of {x:?} is the simulator's rate"
        );
        let sign = x.side.sign();
        let (t, pos) = open.get_or_insert_with(|| {
            (
                Rebuilt {
                    sign,
                    entry_cid: x.client_order_id,
                    ..Rebuilt::default()
                },
                0,
            )
        });
        t.fees += fee8;
        if sign == t.sign {
            t.entry_value += px * q;
            t.entry_qty += q;
            *pos += q;
        } else {
            assert!(q <= *pos, "an exit never goes beyond flat: {x:?}");
            t.exit_value += px * q;
            t.exit_qty += q;
            t.exit_cid = x.client_order_id;
            *pos -= q;
        }
        if *pos == 0 {
            done.push(open.take().unwrap().0);
        }
    }
    (done, scales.0, scales.1)
}

#[test]
fn capture_scalp_trades_on_the_real_captures_and_every_trade_recomputes_from_the_fills() {
    let captures = [
        "binance/spot/btcusdt_20240808.gz",
        "binance/spot/ethusdt_20240808.gz",
    ];
    if captures
        .iter()
        .any(|c| hotpath::datadir::capture(c).is_none())
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, "[metrics]\nenabled = false\n").unwrap();
    // Both captures at once (each plays six minutes at 20x).
    let runs: Vec<_> = captures
        .iter()
        .map(|c| {
            let out = dir.path().join(c.replace('/', "-"));
            let child = engine_command(&[
                "backtest",
                "--config",
                base.to_str().unwrap(),
                "--config",
                "tuning/strategies/capture-scalp.toml",
                c,
                "--out",
                out.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            (c, out, child)
        })
        .collect();
    let mut trades = 0;
    for (capture, out, child) in runs {
        let o = child.wait_with_output().unwrap();
        let s = text(&o.stdout);
        assert!(o.status.success(), "{capture}: {s}{}", text(&o.stderr));
        assert!(s.contains("run ended: the simulator's market ended"), "{s}");
        let journal = out.join("journal");
        let cfg: toml::Table =
            toml::from_str(&std::fs::read_to_string(journal.join("config.toml")).unwrap()).unwrap();
        // The positional capture selected the market and its symbol.
        let symbol = capture
            .rsplit('/')
            .next()
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_ascii_uppercase();
        assert_eq!(cfg["sim"]["market"].as_str(), Some("capture"));
        assert!(cfg["sim"]["capture"].as_str().unwrap().ends_with(capture));
        assert_eq!(
            cfg["venue"]["symbols"].as_array().unwrap(),
            &vec![toml::Value::String(symbol.clone())]
        );
        let bps = |k: &str| cfg["sim"][k].as_float().unwrap();
        let (rebuilt, ps, qs) = rebuild(&journal, bps("maker_fee_bps"), bps("taker_fee_bps"));

        let closes = journal_closes(&journal);
        let intents: HashMap<u64, OrderIntent> =
            records::<OrderIntent>(&journal.join("strategy"), RecordKind::Intent)
                .into_iter()
                .map(|i| (i.client_order_id, i))
                .collect();
        let csv = std::fs::read_to_string(out.join("trades.csv")).unwrap();
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["market_clock"], true, "{capture}: {summary}");
        assert_eq!(
            rebuilt.len(),
            closes.len(),
            "{capture}: fills vs TradeClose"
        );
        assert_eq!(
            rows.len(),
            closes.len(),
            "{capture}: trades.csv vs TradeClose"
        );
        let (start, end) = (
            summary["start_ns"].as_u64().unwrap(),
            summary["end_ns"].as_u64().unwrap(),
        );
        for ((t, c), row) in rebuilt.iter().zip(&closes).zip(&rows) {
            let vs = ps + qs;
            let gross = rescale((t.exit_value - t.entry_value) * i128::from(t.sign), vs, 8);
            let net = gross - t.fees;
            let entry_px = div_half_even(t.entry_value, t.entry_qty);
            let exit_px = div_half_even(t.exit_value, t.exit_qty);
            let reason = intents[&t.exit_cid].reason;
            assert!(
                !matches!(reason, ReasonCode::ENTRY_LONG | ReasonCode::ENTRY_SHORT),
                "closed by an exit order: {reason}"
            );
            assert_eq!(t.entry_qty, t.exit_qty);
            // The strategy's trade log...
            assert_eq!(c.side.sign(), t.sign, "{c:?}");
            assert_eq!(
                (
                    i128::from(c.qty.0),
                    i128::from(c.entry_px.0),
                    i128::from(c.exit_px.0)
                ),
                (t.exit_qty, entry_px, exit_px),
                "{c:?}"
            );
            assert_eq!(
                (
                    i128::from(c.gross_pnl),
                    i128::from(c.fees),
                    i128::from(c.net_pnl)
                ),
                (gross, t.fees, net),
                "{c:?}"
            );
            assert_eq!(
                (c.entry_cid, c.exit_cid, c.reason),
                (t.entry_cid, t.exit_cid, reason)
            );
            assert!(
                start <= c.open_ns && c.close_ns <= end,
                "{c:?} on the tape's clock"
            );
            // ...and the report's.
            assert_eq!(row[0], symbol);
            assert_eq!(row[1], if t.sign > 0 { "long" } else { "short" });
            assert_eq!(mantissa(row[4], ps), entry_px, "{row:?}");
            assert_eq!(mantissa(row[5], ps), exit_px, "{row:?}");
            assert_eq!(mantissa(row[6], qs), t.exit_qty, "{row:?}");
            assert_eq!(
                (mantissa8(row[7]), mantissa8(row[8]), mantissa8(row[9])),
                (gross, t.fees, net),
                "{row:?}"
            );
            assert_eq!(row[10], reason.to_string());
            let hold: f64 = row[11].parse().unwrap();
            assert!((hold - (c.close_ns - c.open_ns) as f64 / 1e9).abs() < 0.001);
        }
        trades += rebuilt.len();
    }
    assert!(
        trades >= captures.len(),
        "capture-scalp closes a trade on each spot capture"
    );
}
