//! The engine's candles and Wilder indicators against an independent reference.
//!
//! * `fx_candles_and_indicators_match_talib`: every FX day of `fx/fxcm/eurusd/*.zip` is fed
//!   quote by quote through [`SymbolAnalytics`]; `talib_reference.py` reads the same zips
//!   itself, builds the 1m / 5m / 15m mid-price candles independently, and runs TA-Lib (PyPI
//!   `ta-lib`, which bundles the C library) over them. Candles must agree **exactly** (every
//!   field), and RSI, ATR, +DI, -DI and ADX to 1e-9 relative wherever TA-Lib has a value;
//!   the engine must have a value exactly where TA-Lib does.
//! * `binance_1m_candles_match_independent_aggregation`: the 1m candles of the Binance spot
//!   captures (decoded by the engine's scanner) against candles aggregated straight from the
//!   raw JSON with `serde_json`.
//!
//! Python comes from the repository's `.venv` through [`testkit::python`] (which runs
//! `scripts/setup-python.sh` when `talib` is missing). If it cannot be set up the test skips
//! with a message, unless `CI` or `ALGO_REQUIRE_DATA` is set, in which case it fails.

#[path = "analytics_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use hotpath::analytics::candles::{Candle, CandleSource, Timeframe};
use hotpath::analytics::timeframes::{AnalyticsConfig, IndicatorSnapshot, SymbolAnalytics};
use hotpath::datadir;
use hotpath::event::{MarketEvent, MarketKind};

/// One row of the reference output.
struct RefRow {
    ints: [i64; 14],
    ind: [f64; 5],
}

fn read_reference(path: &Path) -> Vec<RefRow> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 19, "{l}");
            let mut ints = [0i64; 14];
            for (i, v) in ints.iter_mut().enumerate() {
                *v = f[i].parse().unwrap();
            }
            let mut ind = [0f64; 5];
            for (i, v) in ind.iter_mut().enumerate() {
                *v = f[14 + i].parse().unwrap();
            }
            RefRow { ints, ind }
        })
        .collect()
}

fn candle_ints(c: &Candle) -> [i64; 14] {
    [
        c.open_time_ns as i64,
        c.first_tick_ns as i64,
        c.last_tick_ns as i64,
        c.open.0,
        c.high.0,
        c.low.0,
        c.close.0,
        c.volume.0,
        c.buy_volume.0,
        c.sell_volume.0,
        i64::from(c.ticks),
        i64::from(c.buy_ticks),
        i64::from(c.sell_ticks),
        i64::from(c.late_ticks),
    ]
}

const NAMES: [&str; 5] = ["rsi", "atr", "plus_di", "minus_di", "adx"];

fn engine_values(s: &IndicatorSnapshot) -> [Option<f64>; 5] {
    [s.rsi, s.atr, s.plus_di, s.minus_di, s.adx]
}

#[derive(Default)]
struct Agreement {
    compared: [u64; 5],
    max_rel: [f64; 5],
    rsi_flat: u64,
}

#[test]
fn fx_candles_and_indicators_match_talib() {
    let days = common::fx_days();
    if days.is_empty() {
        return;
    }
    let Some(py) = testkit::python("talib, numpy") else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(&py)
        .arg(testkit::workspace_root().join("hotpath/tests/talib_reference.py"))
        .arg(out_dir.path())
        .args(&days)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "talib_reference.py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}reference in {:?}",
        String::from_utf8_lossy(&out.stdout),
        t0.elapsed()
    );

    let mut agree = Agreement::default();
    let mut candles_checked = 0u64;
    for day in &days {
        let events = common::fx_events(day);
        let mut sa = SymbolAnalytics::new(CandleSource::QuoteMid, &AnalyticsConfig::default());
        let mut closed: [Vec<(Candle, IndicatorSnapshot)>; 3] = Default::default();
        for e in &events {
            for c in sa.on_event(e).iter() {
                closed[c.timeframe.index()].push((c.candle, c.indicators));
            }
        }
        let stem = day.file_stem().unwrap().to_str().unwrap();
        for tf in Timeframe::ALL {
            let reference =
                read_reference(&out_dir.path().join(format!("{stem}_{}.csv", tf.name())));
            let got = &closed[tf.index()];
            // The reference includes the last, still open candle.
            assert_eq!(got.len() + 1, reference.len(), "{stem} {}", tf.name());
            let open = sa
                .current(tf)
                .expect("an open candle at the end of the day");
            for (i, r) in reference.iter().enumerate() {
                let c = got.get(i).map_or(open, |x| &x.0);
                assert_eq!(candle_ints(c), r.ints, "{stem} {} candle {i}", tf.name());
                assert_eq!(c.price_scale, common::FX_SCALE + 1);
                assert_eq!(c.interval_secs, tf.secs());
                candles_checked += 1;
                let Some((_, snap)) = got.get(i) else {
                    continue;
                };
                for (k, (mine, theirs)) in engine_values(snap).iter().zip(r.ind).enumerate() {
                    let what = format!("{stem} {} candle {i} {}", tf.name(), NAMES[k]);
                    if theirs.is_nan() {
                        assert!(mine.is_none(), "{what}: engine {mine:?}, TA-Lib warming up");
                        continue;
                    }
                    let mine =
                        mine.unwrap_or_else(|| panic!("{what}: engine None, TA-Lib {theirs}"));
                    assert!(mine.is_finite(), "{what}");
                    if k == 0 && theirs == 0.0 && mine == 50.0 {
                        // No movement over the smoothing: TA-Lib says 0, the engine 50.
                        agree.rsi_flat += 1;
                        continue;
                    }
                    let rel = (mine - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE);
                    let rel = if mine == theirs { 0.0 } else { rel };
                    assert!(
                        rel <= 1e-9,
                        "{what}: engine {mine}, TA-Lib {theirs}, rel {rel:e}"
                    );
                    agree.compared[k] += 1;
                    agree.max_rel[k] = agree.max_rel[k].max(rel);
                }
            }
        }
    }
    for (k, name) in NAMES.iter().enumerate() {
        eprintln!(
            "{name:>8}: {} values, max relative error {:e}",
            agree.compared[k], agree.max_rel[k]
        );
        assert!(agree.compared[k] > 1000, "too few {name} values compared");
    }
    eprintln!(
        "{} days, {candles_checked} candles identical, {} flat-RSI cases, total {:?}",
        days.len(),
        agree.rsi_flat,
        t0.elapsed()
    );
}

/// Independent 1m aggregation of `@trade` messages: (open, high, low, close, volume, buy
/// volume, sell volume, trades, buys, sells) per minute, from the raw JSON strings.
fn reference_minutes(lines: &[String], scale: u8) -> BTreeMap<u64, [i64; 10]> {
    let mut m: BTreeMap<u64, [i64; 10]> = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let Some(d) = v.get("data") else { continue };
        if d.get("e").and_then(|e| e.as_str()) != Some("trade") {
            continue;
        }
        let px = |k: &str| -> i64 {
            let s = d[k].as_str().unwrap();
            let (w, f) = s.split_once('.').unwrap_or((s, ""));
            let f = format!("{f:0<width$}", width = usize::from(scale));
            let f = &f[..usize::from(scale)];
            w.parse::<i64>().unwrap() * 10i64.pow(u32::from(scale)) + f.parse::<i64>().unwrap()
        };
        let (p, q) = (px("p"), px("q"));
        let t_ms = d["T"].as_u64().unwrap();
        let minute = t_ms / 60_000 * 60_000_000_000;
        let sell = d["m"].as_bool().unwrap();
        let e = m.entry(minute).or_insert([p, p, p, p, 0, 0, 0, 0, 0, 0]);
        e[1] = e[1].max(p);
        e[2] = e[2].min(p);
        e[3] = p;
        e[4] += q;
        e[7] += 1;
        if sell {
            e[6] += q;
            e[9] += 1;
        } else {
            e[5] += q;
            e[8] += 1;
        }
    }
    m
}

#[test]
fn binance_1m_candles_match_independent_aggregation() {
    let table = common::binance_spot_table();
    let mut checked = 0;
    for rel in [
        "binance/spot/btcusdt_20240808.gz",
        "binance/spot/ethusdt_20240808.gz",
    ] {
        let Some(path) = datadir::capture(rel) else {
            continue;
        };
        let lines = common::hft_lines(&path);
        let events: Vec<MarketEvent> = common::binance_events(&table, &lines);
        let mut sa = SymbolAnalytics::new(CandleSource::Trades, &AnalyticsConfig::default());
        let mut got: Vec<Candle> = Vec::new();
        for e in &events {
            if let Some(c) = sa.on_event(e).get(Timeframe::M1) {
                got.push(c.candle);
            }
        }
        got.extend(sa.current(Timeframe::M1).copied());
        let want = reference_minutes(&lines, 8);
        assert!(want.len() >= 5, "{rel}: {} minutes", want.len());
        assert_eq!(got.len(), want.len(), "{rel}");
        for (c, (minute, w)) in got.iter().zip(&want) {
            assert_eq!(c.open_time_ns, *minute, "{rel}");
            let g = [
                c.open.0,
                c.high.0,
                c.low.0,
                c.close.0,
                c.volume.0,
                c.buy_volume.0,
                c.sell_volume.0,
                i64::from(c.ticks),
                i64::from(c.buy_ticks),
                i64::from(c.sell_ticks),
            ];
            assert_eq!(&g, w, "{rel} minute {minute}");
            assert_eq!(c.late_ticks, 0);
            checked += 1;
        }
        // Book tickers and depth levels do not feed trade candles.
        let non_trades = events
            .iter()
            .filter(|e| !matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade))
            .count() as u64;
        assert_eq!(sa.classifier().ignored(), non_trades);
        eprintln!("{rel}: {} 1m candles identical", want.len());
    }
    if checked == 0 {
        eprintln!("skipping: no Binance capture");
    }
}
