//! The venue simulator in USD-M futures mode (`MarketType::UsdM`), over real loopback sockets:
//! signed order entry on `/fapi/...` with USD-M's response shapes and error codes, one-way
//! positions (average entry, realized profit on a decrease and a flip, fees from the margin
//! wallet), `reduceOnly` and the margin check, the user stream's `ORDER_TRADE_UPDATE` decoded by
//! the engine's own decoder, and ccxt's `binanceusdm`, a client nobody here wrote.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

mod common;

use bench::sim::{
    Fees, HistorySource, MarketSource, MarketType, Pace, RestConfig, RestServer, SimClient,
    SimConfig, SimVenue, StartMode,
};
use common::ws_client::Ws;
use hotpath::fixed::{parse_mantissa, Price, Qty};
use hotpath::venue::binance::orders::OrderStatus;
use hotpath::venue::binance::sign::Signer;
use hotpath::venue::binance::user_stream::{decode_user_event, ExecType, UserEvent};
use serde_json::Value;

fn d8(s: &str) -> i64 {
    parse_mantissa(s.as_bytes(), 8).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn usdm_rest() -> RestConfig {
    RestConfig {
        market_type: MarketType::UsdM,
        ..RestConfig::default()
    }
}

/// The simulator's signed REST client, answers unwrapped (a test fails on a broken socket).
struct Rest(SimClient);

impl Rest {
    fn new(addr: SocketAddr, key: &str, secret: &str) -> Rest {
        Rest(SimClient::new(addr, key, secret))
    }

    /// `method path?query` (signed with a fresh `timestamp` when `signed`).
    fn call(&self, method: &str, path: &str, query: &str, signed: bool) -> (u16, Value) {
        self.0.call(method, path, query, signed).unwrap()
    }

    /// `method target` exactly as given.
    fn raw(&self, method: &str, target: &str) -> (u16, Value) {
        let (status, body) = self.0.request(method, target).unwrap();
        (status, serde_json::from_str(&body).unwrap())
    }

    fn order(&self, q: &str) -> (u16, Value) {
        self.call("POST", "/fapi/v1/order", q, true)
    }
}

#[test]
fn orders_over_fapi_have_usdm_shapes_and_errors() {
    let server = RestServer::start(usdm_rest()).unwrap();
    let cfg = usdm_rest();
    let c = Rest::new(server.addr(), &cfg.api_key, &cfg.api_secret);

    // The spot API is not there; USD-M's is, with its own filters.
    assert_eq!(c.call("GET", "/api/v3/time", "", false).0, 404);
    let (s, t) = c.call("GET", "/fapi/v1/time", "", false);
    assert_eq!(s, 200);
    assert!(t["serverTime"].as_u64().is_some());
    let (_, info) = c.call("GET", "/fapi/v1/exchangeInfo", "", false);
    let btc = &info["symbols"][0];
    assert_eq!(btc["contractType"], "PERPETUAL");
    assert_eq!(btc["marginAsset"], "USDT");
    let filter = |t: &str| {
        btc["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(filter("PRICE_FILTER")["tickSize"], "0.1");
    assert_eq!(filter("LOT_SIZE")["stepSize"], "0.001");
    assert_eq!(filter("MIN_NOTIONAL")["notional"], "100");
    // What the engine's instrument loader makes of it: Binance's USD-M scales.
    let mut raw = info.to_string().into_bytes();
    let parsed = hotpath::venue::binance::ExchangeInfo::parse(
        &mut raw,
        hotpath::instrument::Venue::BinanceUsdM,
        hotpath::venue::binance::ScalePolicy::default(),
    )
    .unwrap();
    let spec = parsed.get("BTCUSDT").unwrap().spec.clone().unwrap();
    assert_eq!((spec.price_scale, spec.qty_scale), (2, 3));
    let (_, depth) = c.call("GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=5", false);
    assert_eq!(depth["bids"][0][0], "59999.90000000");
    assert!(depth["T"].as_u64().is_some(), "{depth}");

    // A resting limit order: the `ACK` answer (USD-M's default) has no `fills`.
    let (s, o) = c.order(
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.010&price=59000.0&newClientOrderId=u-1",
    );
    assert_eq!(s, 200, "{o}");
    for k in [
        "orderId",
        "clientOrderId",
        "status",
        "executedQty",
        "cumQuote",
        "avgPrice",
        "origQty",
        "price",
        "side",
        "type",
        "timeInForce",
        "reduceOnly",
        "positionSide",
        "updateTime",
    ] {
        assert!(o.get(k).is_some(), "no {k} in {o}");
    }
    assert!(o.get("fills").is_none() && o.get("cummulativeQuoteQty").is_none());
    assert_eq!(
        (&o["status"], &o["reduceOnly"], &o["positionSide"]),
        (&"NEW".into(), &false.into(), &"BOTH".into())
    );
    let id = o["orderId"].as_u64().unwrap();
    let (_, q) = c.call(
        "GET",
        "/fapi/v1/order",
        "symbol=BTCUSDT&origClientOrderId=u-1",
        true,
    );
    assert_eq!(
        (q["orderId"].as_u64(), &q["status"]),
        (Some(id), &"NEW".into())
    );
    assert!(
        q["time"].as_u64().is_some() && q.get("cumQty").is_none(),
        "{q}"
    );
    let (_, open) = c.call("GET", "/fapi/v1/openOrders", "symbol=BTCUSDT", true);
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (s, x) = c.call(
        "DELETE",
        "/fapi/v1/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    assert_eq!((s, &x["status"]), (200, &"CANCELED".into()), "{x}");
    let (_, all) = c.call("GET", "/fapi/v1/allOrders", "symbol=BTCUSDT", true);
    assert_eq!(all[0]["status"], "CANCELED");

    // USD-M's own error codes.
    let err = |q: &str| {
        let (s, v) = c.order(q);
        (s, v["code"].as_i64().unwrap_or(0))
    };
    let limit = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC";
    assert_eq!(
        err(&format!("{limit}&quantity=0.010&price=59000.05")),
        (400, -4014)
    );
    assert_eq!(
        err(&format!("{limit}&quantity=0.0015&price=59000.0")),
        (400, -1111)
    );
    assert_eq!(
        err(&format!("{limit}&quantity=0.001&price=59000.0")),
        (400, -4164)
    );
    assert_eq!(
        err("symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=0.010&price=59000.0"),
        (400, -1116)
    );
    // GTX is USD-M's post-only: one that would take is refused.
    assert_eq!(
        err("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTX&quantity=0.010&price=60000.1"),
        (400, -5022)
    );
    assert_eq!(
        err(&format!(
            "{limit}&quantity=0.010&price=59000.0&positionSide=LONG"
        )),
        (400, -4061)
    );
    // Flat: a reduce-only order cannot reduce anything.
    assert_eq!(
        err("symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.010&reduceOnly=true"),
        (400, -2022)
    );
    // The signature and time checks are spot's.
    let (s, v) = c.raw(
        "POST",
        "/fapi/v1/order?symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&timestamp=1&signature=00",
    );
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1022)));
    let stale = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&recvWindow=5000&timestamp=1000";
    let mut sig = [0u8; 64];
    Signer::from_secret_bytes(cfg.api_secret.as_bytes()).sign_into(&[stale.as_bytes()], &mut sig);
    let (s, v) = c.raw(
        "POST",
        &format!(
            "/fapi/v1/order?{stale}&signature={}",
            std::str::from_utf8(&sig).unwrap()
        ),
    );
    assert_eq!((s, v["code"].as_i64()), (400, Some(-1021)));
}

#[test]
fn initial_margin_at_the_leverage_limits_what_may_be_opened() {
    // 1,000,000 USDT at 20x: 20,000,000 USDT of notional.
    let server = RestServer::start(usdm_rest()).unwrap();
    let cfg = usdm_rest();
    let c = Rest::new(server.addr(), &cfg.api_key, &cfg.api_secret);
    let buy = |qty: &str| {
        c.order(&format!(
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity={qty}&price=50000.0"
        ))
    };
    // 400 BTC at 50,000 = 20,000,000: exactly the wallet's worth.
    let (s, big) = buy("400");
    assert_eq!(s, 200, "{big}");
    let (_, acct) = c.call("GET", "/fapi/v2/account", "", true);
    assert_eq!(acct["availableBalance"], "0.00000000", "{acct}");
    assert_eq!(acct["totalOpenOrderInitialMargin"], "1000000.00000000");
    let (s, v) = buy("0.002");
    assert_eq!((s, v["code"].as_i64()), (400, Some(-2019)), "{v}");
    assert_eq!(v["msg"], "Margin is insufficient.");
    // Canceling frees the margin.
    let id = big["orderId"].as_u64().unwrap();
    c.call(
        "DELETE",
        "/fapi/v1/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
        true,
    );
    assert_eq!(buy("0.002").0, 200);
}

/// A hand-made capture of two book states: A (bid 59990, ask 60010) seeded before the tape
/// starts, B (bid 60050, ask 60060) after its one diff is played. No trades: every fill in the
/// test is a taker fill against these levels.
fn two_state_capture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("btcusdt_test.txt");
    let lines = [
        r#"1723161250000000000 {"lastUpdateId":100,"bids":[["59990.0","5"]],"asks":[["60010.0","5"]]}"#,
        r#"1723161251000000000 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161251000,"T":1723161251000,"s":"BTCUSDT","U":101,"u":104,"pu":100,"b":[["60050.0","5"],["59990.0","0"]],"a":[["60010.0","0"],["60060.0","5"]]}}"#,
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn fills_move_the_position_wallet_and_user_stream_as_on_usdm() {
    let dir = std::env::temp_dir().join(format!("sim_usdm_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let v = SimVenue::start(SimConfig {
        rest: usdm_rest(),
        market: MarketSource::Capture {
            path: two_state_capture(&dir),
            pace: Pace::Max,
            limit: None,
        },
        history: HistorySource::None,
        fees: Fees::USDM,
        start: StartMode::OnFirstSubscriber,
        close_at_end: false,
        ..SimConfig::default()
    })
    .unwrap();
    let c = Rest::new(v.rest_addr(), v.api_key(), v.api_secret());
    let (_, lk) = c.call("POST", "/fapi/v1/listenKey", "", false);
    let key = lk["listenKey"].as_str().unwrap().to_owned();
    // USD-M hands out the same key again, and its keepalive needs no parameter.
    assert_eq!(
        c.call("POST", "/fapi/v1/listenKey", "", false).1["listenKey"],
        key
    );
    assert_eq!(
        c.call("PUT", "/fapi/v1/listenKey", "", false).1["listenKey"],
        key
    );
    let mut user = Ws::connect(v.ws_addr(), &format!("/ws/{key}"));
    let market = |side: &str, qty: &str, extra: &str| {
        let (s, o) = c.order(&format!(
            "symbol=BTCUSDT&side={side}&type=MARKET&quantity={qty}&newOrderRespType=RESULT{extra}"
        ));
        assert_eq!(s, 200, "{o}");
        o
    };

    // Book A: buy 0.004 at the ask, 60010.
    let o1 = market("BUY", "0.004", "");
    assert_eq!(
        (o1["status"].as_str(), o1["avgPrice"].as_str()),
        (Some("FILLED"), Some("60010.00000000"))
    );
    assert_eq!(v.position("BTCUSDT"), (d8("0.004"), d8("60010")));
    // Book B: buy 0.002 at 60060: the entry is the quantity-weighted average.
    let _md = Ws::connect(v.ws_addr(), "/ws/btcusdt@depth@0ms");
    assert!(v.wait_finished(Duration::from_secs(10)));
    market("BUY", "0.002", "");
    // (0.004 * 60010 + 0.002 * 60060) / 0.006 = 60026.666..., truncated to 8 decimals.
    assert_eq!(v.position("BTCUSDT"), (d8("0.006"), d8("60026.66666666")));
    // Sell 0.010 at the bid, 60050: closes 0.006 (realizes (60050 - 60026.66666666) * 0.006,
    // 0.14 to 8 decimals) and opens a 0.004 short at 60050.
    let o3 = market("SELL", "0.010", "");
    assert_eq!(o3["cumQuote"], "600.50000000");
    assert_eq!(v.position("BTCUSDT"), (-d8("0.004"), d8("60050")));
    // A reduce-only sell would grow the short.
    let (s, r) = c.order("symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.001&reduceOnly=true");
    assert_eq!((s, r["code"].as_i64()), (400, Some(-2022)));
    assert_eq!(r["msg"], "ReduceOnly Order is rejected.");
    // A reduce-only buy of 0.010 takes only the 0.004 short (at the ask, 60060: -0.04) and the
    // rest expires with the position closed.
    let o4 = market("BUY", "0.010", "&reduceOnly=true");
    assert_eq!(
        (
            o4["status"].as_str(),
            o4["executedQty"].as_str(),
            o4["reduceOnly"].as_bool()
        ),
        (Some("EXPIRED"), Some("0.00400000"), Some(true))
    );
    assert_eq!(v.position("BTCUSDT"), (0, 0));
    // Realized 0.14 - 0.04; taker fees 0.05 % of 240.04, 120.12, 600.50 and 240.24 USDT.
    let fees = d8("0.12002") + d8("0.06006") + d8("0.30025") + d8("0.12012");
    assert_eq!(v.wallet_balance(), d8("1000000") + d8("0.10") - fees);
    let (_, acct) = c.call("GET", "/fapi/v2/account", "", true);
    assert_eq!(acct["assets"][0]["walletBalance"], "999999.49955000");
    assert_eq!(acct["positions"][0]["positionAmt"], "0.00000000");
    assert_eq!(acct["positions"][0]["positionSide"], "BOTH");

    // The user stream, decoded by the engine's own decoder at the instrument's USD-M scales.
    let last_id = o4["orderId"].as_u64().unwrap();
    let mut trades = Vec::new();
    let mut positions = Vec::new();
    loop {
        let frame = user.next_text();
        let v: Value = serde_json::from_slice(&frame).unwrap();
        if v["e"] == "ACCOUNT_UPDATE" {
            let p = &v["a"]["P"][0];
            assert_eq!((&v["a"]["m"], &p["ps"]), (&"ORDER".into(), &"BOTH".into()));
            positions.push((d8(p["pa"].as_str().unwrap()), d8(p["ep"].as_str().unwrap())));
            continue;
        }
        let UserEvent::Execution(r) =
            decode_user_event(&frame, |s| (s == b"BTCUSDT").then_some((2, 3))).unwrap()
        else {
            panic!("unexpected event {v}");
        };
        assert_eq!(v["e"], "ORDER_TRADE_UPDATE");
        if r.exec_type == ExecType::Trade {
            let rp = d8(v["o"]["rp"].as_str().unwrap());
            trades.push((
                r.order_id,
                r.last_px,
                r.last_qty,
                r.commission,
                rp,
                r.status,
            ));
        }
        if r.order_id == last_id && r.exec_type == ExecType::Expired {
            assert_eq!(r.status, OrderStatus::Expired);
            break;
        }
    }
    let id = |o: &Value| o["orderId"].as_u64().unwrap();
    assert_eq!(
        trades,
        [
            (
                id(&o1),
                Price(6_001_000),
                Qty(4),
                d8("0.12002"),
                0,
                OrderStatus::Filled
            ),
            (
                id(&o1) + 1,
                Price(6_006_000),
                Qty(2),
                d8("0.06006"),
                0,
                OrderStatus::Filled
            ),
            (
                id(&o3),
                Price(6_005_000),
                Qty(10),
                d8("0.30025"),
                d8("0.14"),
                OrderStatus::Filled
            ),
            (
                last_id,
                Price(6_006_000),
                Qty(4),
                d8("0.12012"),
                -d8("0.04"),
                OrderStatus::PartiallyFilled
            ),
        ]
    );
    assert_eq!(
        positions,
        [
            (d8("0.004"), d8("60010")),
            (d8("0.006"), d8("60026.66666666")),
            (-d8("0.004"), d8("60050")),
            (0, 0),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const CCXT_SCRIPT: &str = r#"
import json, sys
import ccxt

port, key, secret = sys.argv[1], sys.argv[2], sys.argv[3]
ex = ccxt.binanceusdm({
    'apiKey': key,
    'secret': secret,
    'enableRateLimit': False,
    'options': {'adjustForTimeDifference': False, 'fetchCurrencies': False},
})
for name in ('fapiPublic', 'fapiPrivate'):
    ex.urls['api'][name] = 'http://127.0.0.1:%s/fapi/v1' % port
for v in ('V2', 'V3'):
    for name in ('fapiPublic', 'fapiPrivate'):
        ex.urls['api'][name + v] = 'http://127.0.0.1:%s/fapi/%s' % (port, v.lower())
ex.load_markets()
out = {'markets': sorted(ex.markets.keys())}
m = ex.market('BTC/USDT:USDT')
out['precision'] = m['precision']
out['min_cost'] = m['limits']['cost']['min']
o = ex.create_order('BTC/USDT:USDT', 'limit', 'buy', 0.01, 59000, {'clientOrderId': 'ccxt-f1'})
out['placed'] = {k: o[k] for k in ('clientOrderId', 'status', 'price', 'amount')}
f = ex.fetch_order(o['id'], 'BTC/USDT:USDT')
out['fetched'] = {k: f[k] for k in ('status', 'price', 'amount', 'filled', 'remaining')}
out['open'] = len(ex.fetch_open_orders('BTC/USDT:USDT'))
out['canceled'] = ex.cancel_order(o['id'], 'BTC/USDT:USDT')['status']
t = ex.create_order('BTC/USDT:USDT', 'market', 'sell', 0.005)
out['taker_id'] = t['id']
p = [x for x in ex.fetch_positions(['BTC/USDT:USDT']) if x['contracts']]
out['position'] = {k: p[0][k] for k in ('side', 'contracts', 'entryPrice')}
bal = ex.fetch_balance()
out['usdt_total'] = bal['USDT']['total']
print(json.dumps(out))
"#;

#[test]
fn ccxt_binanceusdm_trades_and_reads_its_position() {
    let Some(py) = testkit::python("ccxt") else {
        return;
    };
    let cfg = usdm_rest();
    let server = RestServer::start(cfg.clone()).unwrap();
    let stdout = testkit::run_script(
        &py,
        CCXT_SCRIPT,
        &[
            &server.addr().port().to_string(),
            &cfg.api_key,
            &cfg.api_secret,
        ],
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v["markets"],
        serde_json::json!(["BTC/USDT:USDT", "ETH/USDT:USDT"])
    );
    assert_eq!(v["precision"]["price"].as_f64(), Some(0.1), "{v}");
    assert_eq!(v["precision"]["amount"].as_f64(), Some(0.001));
    assert_eq!(v["min_cost"].as_f64(), Some(100.0));
    assert_eq!(v["placed"]["clientOrderId"], "ccxt-f1");
    assert_eq!(v["placed"]["price"].as_f64(), Some(59000.0));
    assert_eq!(v["fetched"]["status"], "open");
    assert_eq!(v["fetched"]["remaining"].as_f64(), Some(0.01));
    assert_eq!(v["open"], 1);
    assert_eq!(v["canceled"], "canceled");
    // A 0.005 market sell against the ladder: 0.001 at 59999.9 and 0.004 at 59999.8.
    assert_eq!(v["position"]["side"], "short", "{v}");
    assert_eq!(v["position"]["contracts"].as_f64(), Some(0.005));
    let entry = (0.001 * 59999.9 + 0.004 * 59999.8) / 0.005;
    assert!(
        (v["position"]["entryPrice"].as_f64().unwrap() - entry).abs() < 1e-6,
        "{v}"
    );
    // ccxt's total is the margin balance: the wallet (less spot's default 0.1 % fee, which a
    // bare server charges, on 299.9991 USDT of fills) plus the short's unrealized profit at
    // the mark (the ladder's mid, 60000).
    let total = v["usdt_total"].as_f64().unwrap();
    let unrealized = (entry - 60_000.0) * 0.005;
    assert!(
        (total - (1_000_000.0 - 0.299_999_1 + unrealized)).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(server.open_order_count(), 0);
}
