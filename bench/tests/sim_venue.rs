//! The whole simulated venue over real loopback sockets: market-data WebSocket replaying the
//! recorded capture byte for byte, depth sync against REST by Binance's rules, matching with
//! fees and balances, the latency model, the user data stream, the synthetic generator, and
//! ccxt trading on it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

use bench::sim::exchange::commission;
use bench::sim::{
    Generator, LatencyModel, MarketSource, Pace, SimClient, SimConfig, SimVenue, StartMode,
    SynthConfig,
};
use common::ws_client::{Msg, Ws};
use hotpath::fixed::parse_mantissa;
use serde_json::Value;

const LIMIT: usize = 20_000;

fn capture() -> Option<PathBuf> {
    let p = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz");
    if p.is_none() {
        assert!(!hotpath::datadir::data_required(), "capture missing");
    }
    p
}

fn venue(path: PathBuf, limit: usize, pace: Pace) -> SimVenue {
    SimVenue::start(SimConfig {
        market: MarketSource::Capture {
            path,
            pace,
            limit: Some(limit),
        },
        ..SimConfig::default()
    })
    .unwrap()
}

fn d8(s: &str) -> i64 {
    parse_mantissa(s.as_bytes(), 8).unwrap()
}

/// The simulator's signed REST client, answers unwrapped (a test fails on a broken socket).
struct Rest(SimClient);

impl Rest {
    fn new(v: &SimVenue) -> Rest {
        Rest(SimClient::for_venue(v))
    }

    fn call(&self, method: &str, path: &str, query: &str, signed: bool) -> (u16, Value) {
        self.0.call(method, path, query, signed).unwrap()
    }

    fn order(&self, q: &str) -> (u16, Value) {
        self.call("POST", "/api/v3/order", q, true)
    }
}

#[test]
fn combined_and_raw_streams_are_the_capture_byte_for_byte() {
    let Some(path) = capture() else { return };
    let recorded = coldpath::replay::load_hftbacktest(&path, Some(LIMIT)).unwrap();
    let expected: Vec<&[u8]> = recorded
        .frames
        .iter()
        .map(|(_, f)| f.as_slice())
        .filter(|f| !f.starts_with(b"{\"lastUpdateId\""))
        .collect();
    assert_eq!(expected.len(), LIMIT - 1, "one inline snapshot");
    let v = venue(path, LIMIT, Pace::Max);
    let mut ws = Ws::connect(
        v.ws_addr(),
        "/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    let mut got = Vec::new();
    let code = loop {
        match ws.recv() {
            Msg::Text(t) => got.push(t),
            Msg::Close(c) => break c,
        }
    };
    assert_eq!(code, 1000);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g.as_slice(), *e, "frame {i}");
    }
    let stamps = v.wire_stamps();
    assert_eq!(stamps.frames.len(), expected.len());
    assert!(stamps.frames.windows(2).all(|w| w[0].tsc <= w[1].tsc));
    assert!(stamps.frames.iter().any(|s| s.trade_id == 3_735_683_259));

    // A raw `/ws/<stream>` client gets only its stream, as the bare `data` objects.
    let v = SimVenue::start(SimConfig {
        market: MarketSource::Capture {
            path: capture().unwrap(),
            pace: Pace::Max,
            limit: Some(LIMIT),
        },
        ..SimConfig::default()
    })
    .unwrap();
    let mut ws = Ws::connect(v.ws_addr(), "/ws/btcusdt@trade");
    let trades: Vec<Vec<u8>> = expected
        .iter()
        .filter(|f| f.starts_with(b"{\"stream\":\"btcusdt@trade\""))
        .map(|f| f[f.iter().position(|&b| b == b':').unwrap()..].to_vec())
        .collect();
    let mut n = 0;
    while let Msg::Text(t) = ws.recv() {
        let want = &trades[n];
        let data =
            &want[want.windows(7).position(|w| w == b"\"data\":").unwrap() + 7..want.len() - 1];
        assert_eq!(t.as_slice(), data);
        n += 1;
    }
    assert_eq!(n, trades.len());
}

#[test]
fn ws_server_answers_pings_and_rejects_unmasked_frames() {
    let v = SimVenue::start(SimConfig {
        market: MarketSource::None,
        close_at_end: false,
        ..SimConfig::default()
    })
    .unwrap();
    let mut ws = Ws::connect(v.ws_addr(), "/ws");
    ws.send(9, b"hi", true);
    let mut h = [0u8; 4];
    ws.read_raw(&mut h);
    assert_eq!(h, [0x8a, 2, b'h', b'i'], "pong echoes the ping");
    ws.send(
        1,
        br#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}"#,
        true,
    );
    assert_eq!(ws.text(), serde_json::json!({"result": null, "id": 7}));
    ws.send(1, b"{}", false);
    // Anything already queued may come first; then the close with 1002.
    let code = loop {
        if let Msg::Close(c) = ws.recv() {
            break c;
        }
    };
    assert_eq!(code, 1002);
}

#[test]
fn depth_sync_against_rest_mid_stream_follows_binance_rules() {
    let Some(path) = capture() else { return };
    let v = venue(path, LIMIT, Pace::Multiple(50.0));
    let rest = Rest::new(&v);
    let mut ws = Ws::connect(v.ws_addr(), "/stream?streams=btcusdt@depth@100ms");
    // Buffer some events, then fetch the snapshot mid-stream.
    let mut buffered = Vec::new();
    for _ in 0..200 {
        buffered.push(ws.text());
    }
    let (st, snap) = rest.call("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=5000", false);
    assert_eq!(st, 200);
    let last_id = snap["lastUpdateId"].as_u64().unwrap();
    let mut book: std::collections::BTreeMap<(bool, i64), i64> = Default::default();
    for (side, key) in [(true, "bids"), (false, "asks")] {
        for l in snap[key].as_array().unwrap() {
            book.insert(
                (side, d8(l[0].as_str().unwrap())),
                d8(l[1].as_str().unwrap()),
            );
        }
    }
    let mut prev_u: Option<u64> = None;
    let mut applied = 0;
    let mut apply = |ev: &Value| {
        let d = &ev["data"];
        let (first, last) = (d["U"].as_u64().unwrap(), d["u"].as_u64().unwrap());
        if last <= last_id {
            return;
        }
        match prev_u {
            None => assert!(
                first <= last_id + 1 && last_id < last,
                "first event straddles"
            ),
            Some(p) => assert_eq!(first, p + 1, "no gap"),
        }
        prev_u = Some(last);
        for (side, key) in [(true, "b"), (false, "a")] {
            for l in d[key].as_array().unwrap() {
                let (p, q) = (d8(l[0].as_str().unwrap()), d8(l[1].as_str().unwrap()));
                if q == 0 {
                    book.remove(&(side, p));
                } else {
                    book.insert((side, p), q);
                }
            }
        }
        applied += 1;
    };
    for ev in &buffered {
        apply(ev);
    }
    while let Msg::Text(t) = ws.recv() {
        apply(&serde_json::from_slice(&t).unwrap());
    }
    assert!(applied > 100, "{applied}");
    // After the tape, the local book is exactly the venue's.
    let (_, end) = rest.call("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=5000", false);
    assert_eq!(end["lastUpdateId"].as_u64(), prev_u);
    let mut venue_book = std::collections::BTreeMap::new();
    for (side, key) in [(true, "bids"), (false, "asks")] {
        for l in end[key].as_array().unwrap() {
            venue_book.insert(
                (side, d8(l[0].as_str().unwrap())),
                d8(l[1].as_str().unwrap()),
            );
        }
    }
    assert_eq!(book, venue_book);
}

#[test]
fn synthetic_market_is_deterministic_and_has_every_regime() {
    let cfg = |seed| SynthConfig {
        seed,
        duration_ms: 10 * 3600 * 1000,
        ..SynthConfig::default()
    };
    let a: Vec<Vec<u8>> = Generator::new(&SynthConfig {
        max_events: Some(20_000),
        ..cfg(7)
    })
    .map(|f| f.combined)
    .collect();
    let b: Vec<Vec<u8>> = Generator::new(&SynthConfig {
        max_events: Some(20_000),
        ..cfg(7)
    })
    .map(|f| f.combined)
    .collect();
    let c: Vec<Vec<u8>> = Generator::new(&SynthConfig {
        max_events: Some(20_000),
        ..cfg(8)
    })
    .map(|f| f.combined)
    .collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let kinds = ["@trade\"", "@bookTicker\"", "@depth@100ms\""];
    for k in kinds {
        assert!(
            a.iter()
                .any(|f| f.windows(k.len()).any(|w| w == k.as_bytes())),
            "{k}"
        );
    }
    // Ten hours of BTCUSDT trades: 15m returns and 1m aggressor imbalance.
    let mut px = Vec::new(); // (minute, price)
    let mut minutes: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for f in Generator::new(&SynthConfig {
        symbols: vec!["BTCUSDT".into()],
        ..cfg(7)
    }) {
        let v: Value = serde_json::from_slice(&f.combined).unwrap();
        let d = &v["data"];
        if d["e"] == "trade" {
            let m = d["T"].as_u64().unwrap() / 60_000;
            let p: f64 = d["p"].as_str().unwrap().parse().unwrap();
            let q: f64 = d["q"].as_str().unwrap().parse().unwrap();
            let e = minutes.entry(m).or_default();
            if d["m"] == false {
                e.0 += q
            } else {
                e.1 += q
            }
            px.push((m, p));
        }
    }
    let mut close = std::collections::BTreeMap::new();
    for (m, p) in &px {
        close.insert(m / 15, *p);
    }
    let closes: Vec<f64> = close.values().copied().collect();
    let rets: Vec<f64> = closes.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    assert!(rets.len() >= 38);
    let up = rets.iter().filter(|r| **r > 0.004).count();
    let down = rets.iter().filter(|r| **r < -0.004).count();
    let flat = rets.iter().filter(|r| r.abs() < 0.001).count();
    assert!(
        up >= 2 && down >= 2 && flat >= 2,
        "up {up} down {down} flat {flat}"
    );
    let vols: Vec<f64> = minutes.values().map(|(b, s)| b + s).collect();
    let mut sorted = vols.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let buy_bursts = minutes
        .values()
        .filter(|(b, s)| b + s > 2.0 * median && *b > 4.0 * s)
        .count();
    let sell_bursts = minutes
        .values()
        .filter(|(b, s)| b + s > 2.0 * median && *s > 4.0 * b)
        .count();
    assert!(
        buy_bursts >= 2 && sell_bursts >= 2,
        "{buy_bursts} {sell_bursts}"
    );
}

/// The snapshot of the capture: (best bid, best ask, ask levels).
fn snapshot(path: &std::path::Path) -> (i64, Vec<(i64, i64)>, i64) {
    let r = coldpath::replay::load_hftbacktest(path, Some(LIMIT)).unwrap();
    let (_, line) = r
        .frames
        .iter()
        .find(|(_, f)| f.starts_with(b"{\"lastUpdateId\""))
        .unwrap();
    let v: Value = serde_json::from_slice(line).unwrap();
    let lv = |l: &Value| (d8(l[0].as_str().unwrap()), d8(l[1].as_str().unwrap()));
    let asks = v["asks"].as_array().unwrap().iter().map(lv).collect();
    let min_trade = r
        .frames
        .iter()
        .filter_map(|(_, f)| serde_json::from_slice::<Value>(f).ok())
        .filter(|v| v["data"]["e"] == "trade")
        .map(|v| d8(v["data"]["p"].as_str().unwrap()))
        .min()
        .unwrap();
    (lv(&v["bids"][0]).0, asks, min_trade)
}

#[test]
fn matching_fees_balances_and_user_stream() {
    let Some(path) = capture() else { return };
    let (best_bid, asks, min_trade) = snapshot(&path);
    let v = venue(path, LIMIT, Pace::Max);
    let rest = Rest::new(&v);
    let (st, lk) = rest.call("POST", "/api/v3/userDataStream", "", false);
    assert_eq!(st, 200);
    let key = lk["listenKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 60);
    let mut user = Ws::connect(v.ws_addr(), &format!("/ws/{key}"));
    let (usdt0, btc0) = (v.balance("USDT").0, v.balance("BTC").0);

    // MARKET buy walks the snapshot's asks (the tape has not started: no subscriber yet).
    let qty = asks[0].1 + 100_000; // the first level and 0.001 of the second
    let (st, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=MARKET&quantity={}",
        hotpath_dec(qty)
    ));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["status"], "FILLED");
    let fills = r["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 2);
    assert_eq!(d8(fills[0]["price"].as_str().unwrap()), asks[0].0);
    assert_eq!(d8(fills[1]["price"].as_str().unwrap()), asks[1].0);
    let quote: Vec<i64> = [(asks[0].0, asks[0].1), (asks[1].0, 100_000)]
        .iter()
        .map(|(p, q)| (i128::from(*p) * i128::from(*q) / 100_000_000) as i64)
        .collect();
    let fees: Vec<i64> = quote.iter().map(|q| commission(*q, 100_000)).collect();
    for (f, fee) in fills.iter().zip(&fees) {
        assert_eq!(d8(f["commission"].as_str().unwrap()), *fee);
        assert_eq!(f["commissionAsset"], "USDT");
    }
    assert_eq!(
        d8(r["cummulativeQuoteQty"].as_str().unwrap()),
        quote.iter().sum::<i64>()
    );
    assert_eq!(
        v.balance("USDT"),
        (
            usdt0 - quote.iter().sum::<i64>() - fees.iter().sum::<i64>(),
            0
        )
    );
    assert_eq!(v.balance("BTC"), (btc0 + qty, 0));
    let ev = user.text();
    assert_eq!(
        (ev["e"].as_str(), ev["x"].as_str()),
        (Some("executionReport"), Some("NEW"))
    );
    for (i, f) in fills.iter().enumerate() {
        let ev = user.text();
        assert_eq!(
            (ev["x"].as_str(), ev["l"].as_str()),
            (Some("TRADE"), f["qty"].as_str())
        );
        assert_eq!(ev["t"], f["tradeId"]);
        assert_eq!(ev["X"], if i == 0 { "PARTIALLY_FILLED" } else { "FILLED" });
    }
    assert_eq!(user.text()["e"], "outboundAccountPosition");

    // IOC for more than the best level: partial fill, remainder EXPIRED.
    let (_, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC&quantity={}&price={}",
        hotpath_dec(asks[0].1 + 1_000),
        hotpath_dec(asks[0].0)
    ));
    assert_eq!(r["status"], "EXPIRED", "{r}");
    assert_eq!(d8(r["executedQty"].as_str().unwrap()), asks[0].1);
    // FOK for more than is there at the price: nothing.
    let (_, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=FOK&quantity={}&price={}",
        hotpath_dec(asks[0].1 + 1_000),
        hotpath_dec(asks[0].0)
    ));
    assert_eq!(
        (r["status"].as_str(), r["executedQty"].as_str()),
        (Some("EXPIRED"), Some("0.00000000"))
    );
    // LIMIT_MAKER that would cross.
    let (st, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=0.001&price={}",
        hotpath_dec(asks[0].0)
    ));
    assert_eq!((st, r["code"].as_i64()), (400, Some(-2010)));
    assert_eq!(r["msg"], "Order would immediately match and take.");

    // A resting buy that the replay trades through, partly (trades are small).
    assert!(min_trade < best_bid);
    let price = min_trade + 1_000_000; // 0.01 above the lowest print
    let (_, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=5&price={}&newClientOrderId=rest-1",
        hotpath_dec(price)
    ));
    assert_eq!(r["status"], "NEW", "{r}");
    let id = r["orderId"].as_u64().unwrap();
    let usdt_before = v.balance("USDT");
    let lock = price * 5;
    assert_eq!(usdt_before.1, lock);
    // Drain the user stream up to here, then start the tape.
    let mut cum = 0;
    let mut trades = 0;
    let _start = Ws::connect(v.ws_addr(), "/ws/btcusdt@trade");
    assert!(v.wait_finished(Duration::from_secs(20)));
    let (_, q) = rest.call(
        "GET",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    assert_eq!(q["status"], "PARTIALLY_FILLED", "{q}");
    let executed = d8(q["executedQty"].as_str().unwrap());
    assert!(executed > 0);
    let (_, c) = rest.call(
        "DELETE",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    assert_eq!(c["status"], "CANCELED");
    loop {
        let ev = user.text();
        if ev["e"] != "executionReport" || ev["i"].as_u64() != Some(id) {
            continue;
        }
        match ev["x"].as_str().unwrap() {
            "NEW" => assert_eq!(ev["c"], "rest-1"),
            "TRADE" => {
                cum += d8(ev["l"].as_str().unwrap());
                assert_eq!(d8(ev["z"].as_str().unwrap()), cum);
                assert_eq!(d8(ev["L"].as_str().unwrap()), price);
                assert_eq!(ev["m"], true);
                trades += 1;
            }
            "CANCELED" => {
                assert_eq!(ev["C"], "rest-1");
                assert_eq!(d8(ev["z"].as_str().unwrap()), executed);
                break;
            }
            x => panic!("{x}"),
        }
    }
    assert_eq!(cum, executed);
    assert!(trades >= 1);
    // All locks released; maker fees charged on every fill at the limit price.
    let cum_quote = d8(q["cummulativeQuoteQty"].as_str().unwrap());
    let (free, locked) = v.balance("USDT");
    assert_eq!(locked, 0);
    assert!(free <= usdt_before.0 + lock - cum_quote);
    assert!(free >= usdt_before.0 + lock - cum_quote - commission(cum_quote, 100_000) - trades);
}

fn hotpath_dec(v: i64) -> String {
    format!("{}.{:08}", v / 100_000_000, v % 100_000_000)
}

/// Event times (`E`, else `T`) of the capture's stream frames, ms, in tape order.
fn event_times(path: &std::path::Path) -> Vec<u64> {
    let r = coldpath::replay::load_hftbacktest(path, Some(LIMIT)).unwrap();
    r.frames
        .iter()
        .filter_map(|(_, f)| serde_json::from_slice::<Value>(f).ok())
        .filter_map(|v| {
            let d = &v["data"];
            d["E"].as_u64().or(d["T"].as_u64())
        })
        .collect()
}

#[test]
fn executions_are_stamped_with_the_markets_clock() {
    let Some(path) = capture() else { return };
    let (best_bid, _, min_trade) = snapshot(&path);
    let times = event_times(&path);
    let (first_ms, last_ms) = (times[0], *times.iter().max().unwrap());
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        wall > last_ms + 365 * 86_400_000,
        "the capture is from 2024"
    );
    let v = venue(path, LIMIT, Pace::Max);
    let rest = Rest::new(&v);
    let (_, lk) = rest.call("POST", "/api/v3/userDataStream", "", false);
    let mut user = Ws::connect(
        v.ws_addr(),
        &format!("/ws/{}", lk["listenKey"].as_str().unwrap()),
    );
    // Before the tape plays, the market's clock is where the capture starts (its first event,
    // or its inline depth snapshot, recorded a little later, which seeds the book): a taker
    // fill then is stamped with it everywhere.
    let (_, r) = rest.order("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001");
    assert_eq!(r["status"], "FILLED", "{r}");
    let t0 = r["transactTime"].as_u64().unwrap();
    assert!(
        (first_ms..first_ms + 1_000).contains(&t0),
        "{t0} {first_ms}"
    );
    assert_eq!(r["workingTime"].as_u64(), Some(t0), "{r}");
    for x in ["NEW", "TRADE"] {
        let ev = user.text();
        assert_eq!(ev["x"], x);
        for k in ["E", "T", "O", "W"] {
            assert_eq!(ev[k].as_u64(), Some(t0), "{k}: {ev}");
        }
    }
    let pos = user.text();
    assert_eq!(pos["e"], "outboundAccountPosition");
    assert_eq!(pos["E"].as_u64(), Some(t0));

    // A resting buy the replay trades through: each maker fill at the time of its trade.
    assert!(min_trade < best_bid);
    let price = min_trade + 1_000_000;
    let (_, r) = rest.order(&format!(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=5&price={}",
        hotpath_dec(price)
    ));
    let id = r["orderId"].as_u64().unwrap();
    assert_eq!(r["transactTime"].as_u64(), Some(t0));
    let _start = Ws::connect(v.ws_addr(), "/ws/btcusdt@trade");
    assert!(v.wait_finished(Duration::from_secs(20)));
    let (_, q) = rest.call(
        "GET",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    assert_eq!(q["time"].as_u64(), Some(t0), "{q}");
    let (_, c) = rest.call(
        "DELETE",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    let cancel_ms = c["transactTime"].as_u64().unwrap();
    assert!(
        cancel_ms.abs_diff(last_ms) < 1_000,
        "after the tape: its last event time, {cancel_ms} vs {last_ms}"
    );
    let mut fills = Vec::new();
    loop {
        let ev = user.text();
        if ev["e"] != "executionReport" || ev["i"].as_u64() != Some(id) {
            continue;
        }
        assert_eq!(ev["E"], ev["T"], "{ev}");
        match ev["x"].as_str().unwrap() {
            "TRADE" => fills.push(ev["T"].as_u64().unwrap()),
            "CANCELED" => break,
            _ => {}
        }
    }
    assert!(!fills.is_empty());
    assert!(fills.windows(2).all(|w| w[0] <= w[1]), "{fills:?}");
    assert!(
        fills.iter().all(|t| (t0..=last_ms + 1_000).contains(t)),
        "{fills:?} outside {t0}..{last_ms}"
    );
    assert_eq!(q["updateTime"].as_u64(), fills.last().copied(), "{q}");
}

#[test]
fn latency_model_delays_activation_in_market_time() {
    let Some(path) = capture() else { return };
    let v = SimVenue::start(SimConfig {
        market: MarketSource::Capture {
            path,
            pace: Pace::Multiple(20.0),
            limit: Some(LIMIT),
        },
        latency: LatencyModel::Fixed(Duration::from_secs(5)),
        ..SimConfig::default()
    })
    .unwrap();
    let rest = Rest::new(&v);
    let mut ws = Ws::connect(v.ws_addr(), "/ws/btcusdt@trade");
    let first = ws.text();
    let t_first = first["T"].as_u64().unwrap();
    let before = v.market_time_ns();
    assert!(before > 0);
    let (_, r) = rest.order("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001");
    assert_eq!(r["status"], "FILLED", "{r}");
    // Stamped when it reached the matching engine: 5 s of market time after it was sent
    // (the recorder's receive clock and the venue's event clock differ by its latency).
    let arrived = r["transactTime"].as_u64().unwrap();
    assert!(arrived >= t_first + 4_900, "{arrived} {t_first}");
    let after = v.market_time_ns();
    assert!(
        after >= before + 5_000_000_000,
        "{before} {after} {t_first}"
    );
    let stamps = v.wire_stamps();
    assert_eq!(stamps.orders.len(), 1);
}

#[test]
fn start_immediately_mode_plays_without_clients() {
    let Some(path) = capture() else { return };
    let v = SimVenue::start(SimConfig {
        market: MarketSource::Capture {
            path,
            pace: Pace::Max,
            limit: Some(2_000),
        },
        start: StartMode::Immediately,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(v.wait_finished(Duration::from_secs(20)));
    assert_eq!(v.frames_applied(), 2_000);
    assert_eq!(v.frames_sent(), 0);
}

const CCXT_SCRIPT: &str = r#"
import json, sys
import ccxt

port, key, secret, price = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ex = ccxt.binance({
    'apiKey': key, 'secret': secret, 'enableRateLimit': False,
    'options': {'adjustForTimeDifference': False, 'fetchMarkets': {'types': ['spot']},
                'fetchMargins': False, 'fetchCurrencies': False, 'defaultType': 'spot'},
})
base = 'http://127.0.0.1:%s/api/v3' % port
ex.urls['api']['public'] = base
ex.urls['api']['private'] = base
ex.load_markets()
out = {}
m = ex.create_order('BTC/USDT', 'market', 'buy', 0.001)
out['market'] = {k: m[k] for k in ('status', 'filled', 'average', 'cost')}
out['market_fee'] = m['fee']
l = ex.create_order('BTC/USDT', 'limit', 'buy', 0.0001, float(price), {'clientOrderId': 'ccxt-limit'})
out['limit_placed'] = l['status']
print('placed', flush=True)
sys.stdin.readline()
f = ex.fetch_order(l['id'], 'BTC/USDT')
out['limit_later'] = {k: f[k] for k in ('status', 'filled', 'remaining')}
out['orders'] = [o['status'] for o in ex.fetch_orders('BTC/USDT')] if ex.has.get('fetchOrders') else []
o = ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, 50000)
out['open'] = [x['id'] for x in ex.fetch_open_orders('BTC/USDT')] == [o['id']]
out['canceled'] = ex.cancel_order(o['id'], 'BTC/USDT')['status']
bal = ex.fetch_balance()
out['btc'] = bal['BTC']['free']
out['usdt_used'] = bal['USDT']['used']
print(json.dumps(out), flush=True)
"#;

#[test]
fn ccxt_trades_against_the_replay() {
    let Some(py) = testkit::python("ccxt") else {
        return;
    };
    let Some(path) = capture() else { return };
    let (_, _, min_trade) = snapshot(&path);
    let v = venue(path, LIMIT, Pace::Max);
    let mut child = std::process::Command::new(py)
        .args([
            "-c",
            CCXT_SCRIPT,
            &v.rest_addr().port().to_string(),
            v.api_key(),
            v.api_secret(),
            &hotpath_dec(min_trade + 1_000_000),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "placed");
    // Start the tape and let it play out.
    let _md = Ws::connect(v.ws_addr(), "/ws/btcusdt@trade");
    assert!(v.wait_finished(Duration::from_secs(20)));
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success(), "ccxt failed: {line}");
    let r: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(r["market"]["status"], "closed", "{r}");
    assert_eq!(r["market"]["filled"].as_f64(), Some(0.001));
    assert_eq!(r["market_fee"]["currency"], "USDT");
    assert_eq!(r["limit_placed"], "open");
    assert_eq!(r["limit_later"]["status"], "closed", "{r}");
    assert_eq!(r["limit_later"]["remaining"].as_f64(), Some(0.0));
    assert_eq!(r["open"], true);
    assert_eq!(r["canceled"], "canceled");
    assert!((r["btc"].as_f64().unwrap() - 10.0011).abs() < 1e-9, "{r}");
    assert_eq!(r["usdt_used"].as_f64(), Some(0.0));
}
