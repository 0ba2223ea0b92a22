//! REST klines of the simulated venue: the history before the tape (synthetic and continuous
//! with a synthetic tape, rescaled for a capture, or read from Binance public-data CSV files),
//! Binance's row shape, the aggregation of coarse intervals, consistency with the trades the
//! stream carries, and Binance's errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use bench::sim::{HistorySource, MarketSource, Pace, SimConfig, SimVenue, SynthConfig};
use common::ws_client::{Msg, Ws};
use hotpath::fixed::parse_mantissa;
use serde_json::Value;

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn d8(s: &str) -> i64 {
    parse_mantissa(s.as_bytes(), 8).unwrap()
}

/// `GET path?query`: (status, used weight, body).
fn get(addr: SocketAddr, path: &str, query: &str) -> (u16, u32, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let weight = head
        .lines()
        .find_map(|l| l.strip_prefix("X-MBX-USED-WEIGHT-1M: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (status, weight, serde_json::from_str(body).unwrap())
}

fn klines(v: &SimVenue, query: &str) -> Vec<Value> {
    let (status, _, body) = get(v.rest_addr(), "/api/v3/klines", query);
    assert_eq!(status, 200, "{query}: {body}");
    body.as_array().unwrap().clone()
}

/// One row, checked for Binance's exact shape and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    open_time: u64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
    close_time: u64,
    quote: i64,
    trades: u64,
    taker_base: i64,
    taker_quote: i64,
}

fn row(v: &Value, interval_ms: u64) -> Row {
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 12, "{v}");
    for i in [1, 2, 3, 4, 5, 7, 9, 10] {
        let s = a[i].as_str().unwrap_or_else(|| panic!("field {i} of {v}"));
        let (_, frac) = s.split_once('.').unwrap();
        assert_eq!(frac.len(), 8, "{s}: the market's precision");
    }
    assert_eq!(a[11], "0");
    let r = Row {
        open_time: a[0].as_u64().unwrap(),
        open: d8(a[1].as_str().unwrap()),
        high: d8(a[2].as_str().unwrap()),
        low: d8(a[3].as_str().unwrap()),
        close: d8(a[4].as_str().unwrap()),
        volume: d8(a[5].as_str().unwrap()),
        close_time: a[6].as_u64().unwrap(),
        quote: d8(a[7].as_str().unwrap()),
        trades: a[8].as_u64().unwrap(),
        taker_base: d8(a[9].as_str().unwrap()),
        taker_quote: d8(a[10].as_str().unwrap()),
    };
    assert_eq!(r.close_time, r.open_time + interval_ms - 1, "{v}");
    assert_eq!(r.open_time % interval_ms, 0, "{v}");
    assert!(
        r.low <= r.open.min(r.close) && r.high >= r.open.max(r.close),
        "{v}"
    );
    assert!(r.taker_base <= r.volume && r.taker_quote <= r.quote, "{v}");
    r
}

fn rows(v: &[Value], interval_ms: u64) -> Vec<Row> {
    let r: Vec<Row> = v.iter().map(|x| row(x, interval_ms)).collect();
    for w in r.windows(2) {
        assert_eq!(w[1].open_time, w[0].open_time + interval_ms, "contiguous");
    }
    r
}

/// The coarse row the 1m rows `fine` fold into.
fn fold(fine: &[Row], open_time: u64, interval_ms: u64) -> Row {
    Row {
        open_time,
        open: fine[0].open,
        high: fine.iter().map(|r| r.high).max().unwrap(),
        low: fine.iter().map(|r| r.low).min().unwrap(),
        close: fine.last().unwrap().close,
        volume: fine.iter().map(|r| r.volume).sum(),
        close_time: open_time + interval_ms - 1,
        quote: fine.iter().map(|r| r.quote).sum(),
        trades: fine.iter().map(|r| r.trades).sum(),
        taker_base: fine.iter().map(|r| r.taker_base).sum(),
        taker_quote: fine.iter().map(|r| r.taker_quote).sum(),
    }
}

fn synthetic(seed: u64, max_events: Option<usize>, symbols: &[&str]) -> SimConfig {
    SimConfig {
        market: MarketSource::Synthetic {
            config: SynthConfig {
                seed,
                max_events,
                symbols: symbols.iter().map(|s| s.to_string()).collect(),
                ..SynthConfig::default()
            },
            pace: Pace::Max,
        },
        ..SimConfig::default()
    }
}

/// The text frames of `path` until the server closes it.
fn stream_trades(addr: SocketAddr, path: &str) -> Vec<Value> {
    let mut ws = Ws::connect(addr, path);
    let mut out = Vec::new();
    loop {
        match ws.recv() {
            Msg::Text(p) => out.push(serde_json::from_slice::<Value>(&p).unwrap()),
            Msg::Close(_) => return out,
        }
    }
}

#[test]
fn synthetic_history_has_binance_rows_and_folds_exactly() {
    let start = SynthConfig::default().start_ms;
    let t = Instant::now();
    let v = SimVenue::start(synthetic(3, None, &["BTCUSDT", "ETHUSDT"])).unwrap();
    eprintln!(
        "30 h of history for 2 symbols: {:?} (venue start {:?})",
        v.history_build_time(),
        t.elapsed()
    );
    // Default limit 500; the tape has not started, so the last row is the minute it starts
    // in, open and still empty.
    let one = rows(&klines(&v, "symbol=BTCUSDT&interval=1m"), MIN);
    assert_eq!(one.len(), 500);
    let last = one.last().unwrap();
    assert_eq!(last.open_time, start);
    assert_eq!((last.volume, last.trades), (0, 0));
    assert!(one[..499]
        .iter()
        .all(|r| r.trades > 0 && r.open_time < start));
    assert_eq!(
        klines(&v, "symbol=BTCUSDT&interval=1m&limit=100").len(),
        100
    );
    // The warm-up the strategy needs: >= 100 closed 15m candles, i.e. >= 25 h.
    let q = rows(
        &klines(&v, "symbol=BTCUSDT&interval=15m&limit=1000"),
        15 * MIN,
    );
    assert_eq!(q.len(), 30 * 4 + 1);
    assert_eq!(q[0].open_time, start - 30 * HOUR);
    assert!(start - q[0].open_time >= 25 * HOUR);
    assert_eq!(q.last().unwrap().open_time, start);
    // 5m, 15m and 1h rows are exactly the fold of their 1m rows.
    let from = start - 16 * HOUR;
    let fine = rows(
        &klines(
            &v,
            &format!("symbol=BTCUSDT&interval=1m&startTime={from}&limit=1000"),
        ),
        MIN,
    );
    assert_eq!(fine[0].open_time, from);
    for (name, ms) in [("5m", 5 * MIN), ("15m", 15 * MIN), ("1h", HOUR)] {
        let coarse = rows(
            &klines(
                &v,
                &format!(
                    "symbol=BTCUSDT&interval={name}&startTime={from}&endTime={}",
                    from + 16 * HOUR - 1
                ),
            ),
            ms,
        );
        assert_eq!(coarse.len() as u64, 16 * HOUR / ms, "{name}");
        for c in &coarse {
            let k = ((c.open_time - from) / MIN) as usize;
            assert_eq!(
                *c,
                fold(&fine[k..k + (ms / MIN) as usize], c.open_time, ms),
                "{name}"
            );
        }
    }
    // ETHUSDT has its own history at its own level.
    let eth = rows(&klines(&v, "symbol=ETHUSDT&interval=1h&limit=10"), HOUR);
    assert_eq!(eth.len(), 10);
    assert!(eth[0].close < one[0].close / 5);
    // Weight 2 per request, as Binance spot documents for klines.
    let (_, w0, _) = get(
        v.rest_addr(),
        "/api/v3/klines",
        "symbol=BTCUSDT&interval=1m&limit=1",
    );
    let (_, w1, _) = get(
        v.rest_addr(),
        "/api/v3/klines",
        "symbol=BTCUSDT&interval=1m&limit=1",
    );
    assert_eq!(w1, w0 + 2);
    // Same seed, same history bytes; another seed, another history.
    let body = |v: &SimVenue| {
        get(
            v.rest_addr(),
            "/api/v3/klines",
            "symbol=BTCUSDT&interval=1m&limit=1000",
        )
        .2
    };
    let again = SimVenue::start(synthetic(3, None, &["BTCUSDT", "ETHUSDT"])).unwrap();
    assert_eq!(body(&v).to_string(), body(&again).to_string());
    let other = SimVenue::start(synthetic(4, None, &["BTCUSDT", "ETHUSDT"])).unwrap();
    assert_ne!(body(&v).to_string(), body(&other).to_string());
}

#[test]
fn tape_continues_the_history_and_klines_follow_the_stream() {
    let start = SynthConfig::default().start_ms;
    let v = SimVenue::start(synthetic(5, Some(12_000), &["BTCUSDT"])).unwrap();
    let before = rows(&klines(&v, "symbol=BTCUSDT&interval=1m&limit=2"), MIN);
    let history_close = before[0].close;
    assert_eq!(
        before[1].close, history_close,
        "the open minute is flat so far"
    );
    let trades: Vec<Value> = stream_trades(v.ws_addr(), "/ws/btcusdt@trade");
    assert!(v.wait_finished(Duration::from_secs(30)));
    assert!(trades.len() > 1000, "{}", trades.len());
    // The tape starts where the history stopped: the first trade is at the touch of the same
    // price path, a tick or so from the last history close.
    let first = &trades[0];
    assert!(first["T"].as_u64().unwrap() >= start);
    let p0 = d8(first["p"].as_str().unwrap());
    assert!(
        (p0 - history_close).abs() * 10_000 <= history_close,
        "first tape trade {p0} vs last history close {history_close}"
    );
    // Every minute of the tape: the kline holds exactly the streamed trades.
    let tape = rows(
        &klines(
            &v,
            &format!("symbol=BTCUSDT&interval=1m&startTime={start}&limit=1000"),
        ),
        MIN,
    );
    // The last row is the minute of the market's clock: that of the last trade, or the next
    // one when the tape's last book frames (100 ms later) crossed into it.
    let last_t = trades.last().unwrap()["T"].as_u64().unwrap();
    let last_open = tape.last().unwrap().open_time;
    assert!(
        last_open == last_t - last_t % MIN || last_open == (last_t + 100) - (last_t + 100) % MIN,
        "{last_open} {last_t}"
    );
    assert!(tape.len() >= 3, "{}", tape.len());
    for r in &tape {
        let inside: Vec<&Value> = trades
            .iter()
            .filter(|t| (r.open_time..r.open_time + MIN).contains(&t["T"].as_u64().unwrap()))
            .collect();
        let q: i64 = inside.iter().map(|t| d8(t["q"].as_str().unwrap())).sum();
        let buy: i64 = inside
            .iter()
            .filter(|t| t["m"] == false)
            .map(|t| d8(t["q"].as_str().unwrap()))
            .sum();
        assert_eq!(r.volume, q, "minute {}", r.open_time);
        assert_eq!(r.taker_base, buy, "minute {}", r.open_time);
        assert_eq!(r.trades, inside.len() as u64);
        if let Some(t) = inside.last() {
            assert_eq!(r.close, d8(t["p"].as_str().unwrap()));
        }
    }
}

fn capture() -> Option<PathBuf> {
    let p = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz");
    if p.is_none() {
        assert!(!hotpath::datadir::data_required(), "capture missing");
    }
    p
}

#[test]
fn capture_history_is_synthetic_and_meets_the_first_trade() {
    let Some(path) = capture() else { return };
    const LIMIT: usize = 20_000;
    let recorded = coldpath::replay::load_hftbacktest(&path, Some(LIMIT)).unwrap();
    let data: Vec<Value> = recorded
        .frames
        .iter()
        .filter_map(|(_, f)| serde_json::from_slice::<Value>(f).ok())
        .filter_map(|v| v.get("data").cloned())
        .collect();
    let first_event = data.iter().find_map(|d| d["E"].as_u64()).unwrap();
    let trades: Vec<&Value> = data.iter().filter(|d| d["e"] == "trade").collect();
    let first_price = trades[0]["p"].as_str().unwrap();
    let t = Instant::now();
    let v = SimVenue::start(SimConfig {
        market: MarketSource::Capture {
            path,
            pace: Pace::Max,
            limit: Some(LIMIT),
        },
        ..SimConfig::default()
    })
    .unwrap();
    eprintln!(
        "30 h of history for a capture: {:?} (venue start {:?})",
        v.history_build_time(),
        t.elapsed()
    );
    // Before the tape: the history ends in the minute of the first event, at the first trade's
    // price exactly.
    let raw = klines(&v, "symbol=BTCUSDT&interval=1m&limit=3");
    let one = rows(&raw, MIN);
    let last = one.last().unwrap();
    assert_eq!(last.open_time, first_event - first_event % MIN);
    assert_eq!(
        raw[2][4], first_price,
        "last history close = first trade price"
    );
    assert!(one.iter().all(|r| r.open_time <= first_event));
    let q = rows(
        &klines(&v, "symbol=BTCUSDT&interval=15m&limit=1000"),
        15 * MIN,
    );
    assert!(first_event - q[0].open_time >= 25 * HOUR, "{:?}", q[0]);
    assert!(q.len() > 100);
    // Prices are rescaled onto the capture's level, not the generator's 60000.
    let p = d8(first_price);
    assert!(q.iter().all(|r| (r.close - p).abs() < p / 5), "{:?}", q[0]);
    assert!(klines(&v, "symbol=ETHUSDT&interval=1m").is_empty());
    // Played: the minutes after the first hold exactly the capture's trades, by trade time.
    let _sub = stream_trades_start(v.ws_addr());
    assert!(v.wait_finished(Duration::from_secs(30)));
    let from = first_event - first_event % MIN + MIN;
    let played = rows(
        &klines(
            &v,
            &format!("symbol=BTCUSDT&interval=1m&startTime={from}&limit=1000"),
        ),
        MIN,
    );
    assert!(!played.is_empty());
    for r in &played {
        let q: i64 = trades
            .iter()
            .filter(|t| (r.open_time..r.open_time + MIN).contains(&t["T"].as_u64().unwrap()))
            .map(|t| d8(t["q"].as_str().unwrap()))
            .sum();
        assert_eq!(r.volume, q, "minute {}", r.open_time);
    }
}

/// Subscribe (which starts the tape) and keep the connection open.
fn stream_trades_start(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /ws/btcusdt@trade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    // Drain in the background so the driver never blocks on a full socket.
    let mut r = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while matches!(r.read(&mut b), Ok(n) if n > 0) {}
    });
    s
}

#[test]
fn errors_and_limits_like_binance() {
    let v = SimVenue::start(synthetic(1, None, &["BTCUSDT"])).unwrap();
    let a = v.rest_addr();
    let call = |q: &str| {
        let (s, _, b) = get(a, "/api/v3/klines", q);
        (s, b["code"].as_i64().unwrap_or(0), b["msg"].clone())
    };
    assert_eq!(
        call("symbol=NOPE&interval=1m"),
        (400, -1121, "Invalid symbol.".into())
    );
    assert_eq!(
        call("symbol=BTCUSDT&interval=7m"),
        (400, -1120, "Invalid interval.".into())
    );
    assert_eq!(call("symbol=BTCUSDT").1, -1102);
    assert_eq!(call("interval=1m").1, -1102);
    assert_eq!(call("symbol=BTCUSDT&interval=1m&limit=ten").1, -1100);
    assert_eq!(
        call("symbol=BTCUSDT&interval=1m&startTime=2&endTime=1"),
        (400, -1023, "Start time is greater than end time.".into())
    );
    assert_eq!(call("symbol=BTCUSDT&interval=1m&timeZone=15").1, -1100);
    // Above the documented maximum: the maximum.
    assert_eq!(
        klines(&v, "symbol=BTCUSDT&interval=1m&limit=5000").len(),
        1000
    );
    assert_eq!(
        klines(
            &v,
            "symbol=BTCUSDT&interval=1m&endTime=18446744073709551615&limit=3"
        )
        .len(),
        3
    );
    // Time windows select by open time, oldest first.
    let start = SynthConfig::default().start_ms;
    let w = rows(
        &klines(
            &v,
            &format!(
                "symbol=BTCUSDT&interval=1h&startTime={}&endTime={}",
                start - 5 * HOUR + 1,
                start - 2 * HOUR
            ),
        ),
        HOUR,
    );
    let opens: Vec<u64> = w.iter().map(|r| r.open_time).collect();
    assert_eq!(
        opens,
        [start - 4 * HOUR, start - 3 * HOUR, start - 2 * HOUR]
    );
    let w = rows(
        &klines(
            &v,
            &format!(
                "symbol=BTCUSDT&interval=1h&endTime={}&limit=2",
                start - 2 * HOUR
            ),
        ),
        HOUR,
    );
    assert_eq!(w[1].open_time, start - 2 * HOUR);
    // A time zone moves day boundaries: +08:00 days open at 16:00 UTC.
    let d = klines(&v, "symbol=BTCUSDT&interval=1d&timeZone=8&limit=1");
    assert_eq!(d[0][0].as_u64().unwrap() % (24 * HOUR), 16 * HOUR);
}

#[test]
fn csv_directory_history_with_and_without_header() {
    let start = SynthConfig::default().start_ms;
    let dir = tempfile::tempdir().unwrap();
    let line = |open: u64, us: bool, k: u64| {
        let f = if us { 1000 } else { 1 };
        let p = 61_000 + k;
        format!(
            "{},{p}.10,{}.00,{}.50,{p}.20,1.5,{},{}.123456789,{},0.5,{}.0,0\n",
            open * f,
            p + 3,
            p - 2,
            (open + MIN - 1) * f + (f - 1),
            p * 15 / 10,
            10 + k,
            p / 2
        )
    };
    // Yesterday's file in ms with a header; the file before it in µs without one; a row after
    // the tape's start, which must not be history.
    let mut a = String::from("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n");
    for k in 0..60 {
        a.push_str(&line(start - 60 * MIN + k * MIN, false, k));
    }
    a.push_str(&line(start, false, 99));
    let mut b = String::new();
    for k in 0..60 {
        b.push_str(&line(start - 24 * HOUR + k * MIN, true, k));
    }
    std::fs::write(dir.path().join("BTCUSDT-1m-2024-08-07.csv"), a).unwrap();
    std::fs::write(dir.path().join("BTCUSDT-1m-2024-08-06.csv"), b).unwrap();
    std::fs::write(dir.path().join("ETHUSDT-1m-notes.txt"), "not klines").unwrap();
    let cfg = |symbols: &[&str]| SimConfig {
        history: HistorySource::Klines {
            dir: dir.path().to_path_buf(),
        },
        ..synthetic(1, None, symbols)
    };
    let v = SimVenue::start(cfg(&["BTCUSDT"])).unwrap();
    let raw = klines(&v, "symbol=BTCUSDT&interval=1m&limit=1000");
    let one = rows(&raw, MIN);
    // The hour before the tape, as written, then the open minute at the tape's start.
    let last_hour = &raw[raw.len() - 61..raw.len() - 1];
    for (k, r) in last_hour.iter().enumerate() {
        let p = 61_000 + k as u64;
        assert_eq!(r[0].as_u64().unwrap(), start - 60 * MIN + k as u64 * MIN);
        assert_eq!(r[1], format!("{p}.10000000"));
        assert_eq!(r[5], "1.50000000");
        assert_eq!(r[7], format!("{}.12345678", p * 15 / 10));
        assert_eq!(r[8].as_u64().unwrap(), 10 + k as u64);
    }
    let open = one.last().unwrap();
    assert_eq!(open.open_time, start);
    assert_eq!((open.volume, open.close), (0, one[one.len() - 2].close));
    // The µs file is there too (23 hours earlier), with a flat gap in between.
    let old = rows(
        &klines(
            &v,
            &format!(
                "symbol=BTCUSDT&interval=1h&startTime={}&limit=2",
                start - 24 * HOUR
            ),
        ),
        HOUR,
    );
    assert_eq!(old[0].open_time, start - 24 * HOUR);
    assert_eq!(old[0].trades, (10..70).sum::<u64>());
    assert_eq!((old[1].volume, old[1].trades), (0, 0));
    drop(v);
    // Asking for a symbol the directory does not have is an error, not a silent cold start.
    let e = SimVenue::start(cfg(&["BTCUSDT", "ETHUSDT"])).unwrap_err();
    assert!(e.to_string().contains("ETHUSDT"), "{e}");
}

const CCXT_SCRIPT: &str = r#"
import json, sys
import ccxt

ex = ccxt.binance({
    'enableRateLimit': False,
    'options': {'adjustForTimeDifference': False, 'fetchMarkets': {'types': ['spot']},
                'fetchMargins': False, 'fetchCurrencies': False, 'defaultType': 'spot'},
})
base = 'http://127.0.0.1:%s/api/v3' % sys.argv[1]
ex.urls['api']['public'] = base
ex.urls['api']['private'] = base
ex.load_markets()
c = ex.fetch_ohlcv('BTC/USDT', '15m', limit=100)
print(json.dumps({'n': len(c), 'step': c[-1][0] - c[-2][0], 'last': c[-1], 'first': c[0]}))
"#;

#[test]
fn ccxt_fetches_15m_candles() {
    let Some(py) = testkit::python("ccxt") else {
        return;
    };
    let v = SimVenue::start(synthetic(1, None, &["BTCUSDT"])).unwrap();
    let stdout = testkit::run_script(&py, CCXT_SCRIPT, &[&v.rest_addr().port().to_string()]);
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["n"], 100, "{r}");
    assert_eq!(r["step"].as_u64(), Some(15 * MIN));
    let start = SynthConfig::default().start_ms;
    assert_eq!(r["last"][0].as_u64(), Some(start), "{r}");
    assert!(r["first"][4].as_f64().unwrap() > 1000.0, "{r}");
}
