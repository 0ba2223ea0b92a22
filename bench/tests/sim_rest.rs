//! The venue simulator's REST side, driven over real loopback sockets: by a small Rust client
//! that signs with the gateway's own signer, by raw hand-written HTTP requests (what `curl`
//! sends), and by ccxt, a Binance client nobody here wrote.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench::sim::{RestConfig, RestServer};
use hotpath::venue::binance::sign::Signer;
use serde_json::Value;

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn config() -> RestConfig {
    RestConfig {
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        ..RestConfig::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn weight(&self) -> u32 {
        self.header("X-MBX-USED-WEIGHT-1M")
            .unwrap()
            .parse()
            .unwrap()
    }

    fn code(&self) -> i64 {
        self.body["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code in {self:?}"))
    }
}

fn read_resp(r: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap(),
    }
}

/// A keep-alive client on one connection.
struct Client {
    conn: BufReader<TcpStream>,
    key: String,
    signer: Signer,
}

impl Client {
    fn new(server: &RestServer) -> Client {
        Client {
            conn: BufReader::new(TcpStream::connect(server.addr()).unwrap()),
            key: KEY.into(),
            signer: Signer::from_secret_bytes(SECRET.as_bytes()),
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: &str,
        key: Option<&str>,
    ) -> Resp {
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(k) = key {
            req.push_str(&format!("X-MBX-APIKEY: {k}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.conn.get_mut().write_all(req.as_bytes()).unwrap();
        read_resp(&mut self.conn)
    }

    fn public(&mut self, path: &str, query: &str) -> Resp {
        self.send("GET", path, query, "", None)
    }

    /// Sign `params` + `timestamp` and send them in the query string.
    fn signed(&mut self, method: &str, path: &str, params: &str) -> Resp {
        let sep = if params.is_empty() { "" } else { "&" };
        let q = format!("{params}{sep}timestamp={}", now_ms());
        let mut sig = [0u8; 64];
        self.signer.sign_into(&[q.as_bytes()], &mut sig);
        let q = format!("{q}&signature={}", std::str::from_utf8(&sig).unwrap());
        let key = self.key.clone();
        self.send(method, path, &q, "", Some(&key))
    }

    /// Sign `query` followed by `body` (+ timestamp), signature at the end of the body.
    fn signed_split(&mut self, method: &str, path: &str, query: &str, body: &str) -> Resp {
        let body = format!("{body}&timestamp={}", now_ms());
        let mut sig = [0u8; 64];
        self.signer
            .sign_into(&[query.as_bytes(), body.as_bytes()], &mut sig);
        let body = format!("{body}&signature={}", std::str::from_utf8(&sig).unwrap());
        let key = self.key.clone();
        self.send(method, path, query, &body, Some(&key))
    }
}

#[test]
fn public_endpoints_and_weights() {
    let server = RestServer::start(config()).unwrap();
    let mut c = Client::new(&server);

    let r = c.public("/api/v3/time", "");
    assert_eq!(r.status, 200);
    assert!(r.body["serverTime"].as_u64().unwrap().abs_diff(now_ms()) < 5_000);
    assert_eq!(r.weight(), 1);

    let r = c.public("/api/v3/exchangeInfo", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.weight(), 21);
    let symbols = r.body["symbols"].as_array().unwrap();
    let names: Vec<&str> = symbols
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["BTCUSDT", "ETHUSDT"]);
    let btc = &symbols[0];
    let filter = |t: &str| {
        btc["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == t)
            .unwrap()
    };
    assert_eq!(filter("PRICE_FILTER")["tickSize"], "0.01000000");
    assert_eq!(filter("LOT_SIZE")["stepSize"], "0.00001000");
    assert_eq!(filter("NOTIONAL")["minNotional"], "5.00000000");
    // exchangeInfo is what hotpath's own instrument loader reads.
    let mut raw = r.body.to_string().into_bytes();
    let info = hotpath::venue::binance::ExchangeInfo::parse(
        &mut raw,
        hotpath::instrument::Venue::BinanceSpot,
        hotpath::venue::binance::ScalePolicy::default(),
    )
    .unwrap();
    for s in &info.symbols {
        assert!(s.spec.is_ok(), "{}: {:?}", s.symbol, s.spec);
    }

    let r = c.public("/api/v3/exchangeInfo", "symbol=ETHUSDT");
    assert_eq!(r.body["symbols"].as_array().unwrap().len(), 1);
    let r = c.public("/api/v3/exchangeInfo", "symbol=LTCBTC");
    assert_eq!((r.status, r.code()), (400, -1121));

    let r = c.public("/api/v3/depth", "symbol=BTCUSDT&limit=5");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["bids"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["asks"][0][0], "60000.01000000");
    assert_eq!(r.body["bids"][0][0], "59999.99000000");
    let w = r.weight();
    let r = c.public("/api/v3/depth", "symbol=BTCUSDT&limit=1000");
    assert_eq!(r.weight() - w, 50);
    assert_eq!(r.body["asks"].as_array().unwrap().len(), 1000);
    let r = c.public("/api/v3/depth", "symbol=NOPE");
    assert_eq!((r.status, r.code()), (400, -1121));
    assert_eq!(r.body["msg"], "Invalid symbol.");

    let r = c.public("/api/v3/nope", "");
    assert_eq!(r.status, 404);
}

#[test]
fn signed_order_lifecycle() {
    let server = RestServer::start(config()).unwrap();
    let mut c = Client::new(&server);

    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000&price=50000.00&newClientOrderId=gw-1&recvWindow=5000",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "NEW");
    assert_eq!(r.body["clientOrderId"], "gw-1");
    assert_eq!(r.body["price"], "50000.00000000");
    assert_eq!(r.body["origQty"], "0.01000000");
    assert_eq!(r.body["fills"], Value::Array(vec![]));
    assert_eq!(r.header("X-MBX-ORDER-COUNT-10S"), Some("1"));
    let id = r.body["orderId"].as_u64().unwrap();

    // Body-signed: the mixed query + body form, signature at the end of the body.
    let r = c.signed_split(
        "POST",
        "/api/v3/order",
        "symbol=ETHUSDT&side=SELL&type=LIMIT_MAKER",
        "quantity=1.5&price=3500&newOrderRespType=ACK",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.get("status").is_none(), "ACK has no status: {r:?}");
    let eth_id = r.body["orderId"].as_u64().unwrap();

    let r = c.signed(
        "GET",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["status"].as_str(), r.body["side"].as_str()),
        (Some("NEW"), Some("BUY"))
    );
    let r = c.signed(
        "GET",
        "/api/v3/order",
        "symbol=BTCUSDT&origClientOrderId=gw-1",
    );
    assert_eq!(r.body["orderId"].as_u64(), Some(id));

    let r = c.signed("GET", "/api/v3/openOrders", "");
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = c.signed("GET", "/api/v3/openOrders", "symbol=ETHUSDT");
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["orderId"].as_u64(), Some(eth_id));

    let r = c.signed("GET", "/api/v3/account", "");
    assert_eq!(r.status, 200);
    let bal = |r: &Resp, a: &str| {
        let b = r.body["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset"] == a)
            .unwrap()
            .clone();
        (
            b["free"].as_str().unwrap().to_owned(),
            b["locked"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        bal(&r, "USDT"),
        ("999500.00000000".into(), "500.00000000".into())
    );
    assert_eq!(bal(&r, "ETH"), ("98.50000000".into(), "1.50000000".into()));

    let r = c.signed(
        "DELETE",
        "/api/v3/order",
        "symbol=BTCUSDT&origClientOrderId=gw-1",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "CANCELED");
    assert_eq!(r.body["origClientOrderId"], "gw-1");
    let r = c.signed(
        "DELETE",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
    );
    assert_eq!((r.status, r.code()), (400, -2011));
    assert_eq!(r.body["msg"], "Unknown order sent.");
    let r = c.signed(
        "GET",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&orderId={id}"),
    );
    assert_eq!(r.body["status"], "CANCELED");
    let r = c.signed("GET", "/api/v3/order", "symbol=BTCUSDT&orderId=999999");
    assert_eq!((r.status, r.code()), (400, -2013));
    let r = c.signed("GET", "/api/v3/account", "");
    assert_eq!(
        bal(&r, "USDT"),
        ("1000000.00000000".into(), "0.00000000".into())
    );
    assert_eq!(server.open_order_count(), 1);
}

#[test]
fn duplicate_client_order_id_is_rejected_while_open() {
    let server = RestServer::start(config()).unwrap();
    let mut c = Client::new(&server);
    let order = "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.001&price=70000&newClientOrderId=dup-1";
    let r = c.signed("POST", "/api/v3/order", order);
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.signed("POST", "/api/v3/order", order);
    assert_eq!((r.status, r.code()), (400, -2010));
    assert_eq!(r.body["msg"], "Duplicate order sent.");
    // The same id on another symbol is a different order.
    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=ETHUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.01&price=4000&newClientOrderId=dup-1",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Once closed, the id may be reused, as on Binance.
    let r = c.signed(
        "DELETE",
        "/api/v3/order",
        "symbol=BTCUSDT&origClientOrderId=dup-1",
    );
    assert_eq!(r.status, 200);
    let r = c.signed("POST", "/api/v3/order", order);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.open_order_count(), 2);
}

/// `myTrades`: one order's trades by `orderId`, from a trade id by `fromId`, capped by `limit`;
/// bad parameters get Binance's errors.
#[test]
fn my_trades_selects_by_order_and_refuses_bad_parameters() {
    let server = RestServer::start(config()).unwrap();
    let mut c = Client::new(&server);
    let buy = |c: &mut Client| {
        let r = c.signed(
            "POST",
            "/api/v3/order",
            "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.002",
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.body["orderId"].as_u64().unwrap()
    };
    let (first, second) = (buy(&mut c), buy(&mut c));
    let all = c.signed("GET", "/api/v3/myTrades", "symbol=BTCUSDT");
    assert_eq!(all.status, 200, "{all:?}");
    let all = all.body.as_array().unwrap().clone();
    let ids: Vec<u64> = all.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert!(
        ids.len() >= 2 && ids.windows(2).all(|w| w[0] < w[1]),
        "{ids:?}"
    );
    let r = c.signed(
        "GET",
        "/api/v3/myTrades",
        &format!("symbol=BTCUSDT&orderId={second}"),
    );
    let of_second = r.body.as_array().unwrap();
    assert!(!of_second.is_empty());
    assert!(of_second
        .iter()
        .all(|t| t["orderId"].as_u64() == Some(second)));
    assert!(all.iter().any(|t| t["orderId"].as_u64() == Some(first)));
    let from = ids[1];
    let r = c.signed(
        "GET",
        "/api/v3/myTrades",
        &format!("symbol=BTCUSDT&fromId={from}&limit=1"),
    );
    let one = r.body.as_array().unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["id"].as_u64(), Some(from));
    // Bad input: a clear Binance error, nothing else changes.
    let r = c.signed(
        "GET",
        "/api/v3/myTrades",
        &format!("symbol=BTCUSDT&orderId={first}&fromId=1"),
    );
    assert_eq!((r.status, r.code()), (400, -1106), "{r:?}");
    let r = c.signed("GET", "/api/v3/myTrades", "symbol=BTCUSDT&limit=1001");
    assert_eq!((r.status, r.code()), (400, -1100), "{r:?}");
    let r = c.signed("GET", "/api/v3/myTrades", "symbol=BTCUSDT&orderId=x");
    assert_eq!((r.status, r.code()), (400, -1102), "{r:?}");
    let r = c.signed("GET", "/api/v3/myTrades", "symbol=NOPEUSDT");
    assert_eq!((r.status, r.code()), (400, -1121), "{r:?}");
    let r = c.signed("GET", "/api/v3/myTrades", "symbol=BTCUSDT");
    assert_eq!(r.body.as_array().unwrap().len(), all.len());
}

#[test]
fn authentication_and_validation_errors() {
    let server = RestServer::start(config()).unwrap();
    let mut c = Client::new(&server);
    let ok = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000";

    // Bad signature: signed with another secret.
    c.signer = Signer::from_secret_bytes(b"not-the-secret");
    let r = c.signed("POST", "/api/v3/order", ok);
    assert_eq!((r.status, r.code()), (400, -1022));
    assert_eq!(r.body["msg"], "Signature for this request is not valid.");
    c.signer = Signer::from_secret_bytes(SECRET.as_bytes());

    // Tampered after signing.
    let q = format!("{ok}&timestamp={}", now_ms());
    let mut sig = [0u8; 64];
    c.signer.sign_into(&[q.as_bytes()], &mut sig);
    let tampered = q.replace("price=60000", "price=60001");
    let r = c.send(
        "POST",
        "/api/v3/order",
        &format!(
            "{tampered}&signature={}",
            std::str::from_utf8(&sig).unwrap()
        ),
        "",
        Some(KEY),
    );
    assert_eq!(r.code(), -1022);

    // Missing signature / timestamp.
    let r = c.send(
        "GET",
        "/api/v3/account",
        &format!("timestamp={}", now_ms()),
        "",
        Some(KEY),
    );
    assert_eq!((r.status, r.code()), (400, -1102));
    assert!(r.body["msg"].as_str().unwrap().contains("'signature'"));
    let r = c.send("GET", "/api/v3/account", "", "", Some(KEY));
    assert!(r.body["msg"].as_str().unwrap().contains("'timestamp'"));

    // Keys.
    let r = c.send("GET", "/api/v3/account", "", "", None);
    assert_eq!((r.status, r.code()), (401, -2014));
    c.key = "someone-else".into();
    let r = c.signed("GET", "/api/v3/account", "");
    assert_eq!((r.status, r.code()), (401, -2015));
    c.key = KEY.into();

    // recvWindow: stale, from the future, too large.
    let stale = |c: &mut Client, ts: u64, window: u64| {
        let q = format!("recvWindow={window}&timestamp={ts}");
        let mut sig = [0u8; 64];
        c.signer.sign_into(&[q.as_bytes()], &mut sig);
        c.send(
            "GET",
            "/api/v3/account",
            &format!("{q}&signature={}", std::str::from_utf8(&sig).unwrap()),
            "",
            Some(KEY),
        )
    };
    let r = stale(&mut c, now_ms() - 10_000, 5_000);
    assert_eq!((r.status, r.code()), (400, -1021));
    assert_eq!(
        r.body["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );
    assert_eq!(
        r.body.to_string(),
        r#"{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}"#
    );
    let r = stale(&mut c, now_ms() - 10_000, 20_000);
    assert_eq!(r.status, 200, "{r:?}");
    let r = stale(&mut c, now_ms() + 3_000, 5_000);
    assert_eq!(r.code(), -1021);
    let r = stale(&mut c, now_ms(), 60_001);
    assert_eq!(r.code(), -1131);

    // Symbols, sides, types, filters, balance.
    let cases = [
        ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1", -1121),
        ("symbol=BTCUSDT&side=UP&type=LIMIT&timeInForce=GTC&quantity=1&price=1", -1117),
        ("symbol=BTCUSDT&side=BUY&type=STOP_LOSS_LIMITX&quantity=0.001", -1116),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.001&price=60000", -1102),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000.001", -1013),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.000015&price=60000", -1013),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.00001&price=60000", -1013),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.000000001&price=60000", -1111),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=abc&price=60000", -1100),
        ("symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=11&price=60000", -2010),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000&newClientOrderId=a%20b", -1100),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&quantity=1&price=1", -1101),
    ];
    for (q, code) in cases {
        let r = c.signed("POST", "/api/v3/order", q);
        assert_eq!((r.status, r.code()), (400, code), "{q}: {r:?}");
    }
    let r = c.signed(
        "POST",
        "/api/v3/order",
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.00001&price=60000",
    );
    assert_eq!(r.body["msg"], "Filter failure: NOTIONAL");
    let r = c.signed("DELETE", "/api/v3/order", "symbol=BTCUSDT");
    assert_eq!(r.code(), -1102);
    assert_eq!(server.open_order_count(), 0);
}

#[test]
fn binance_documented_example_passes_signature_and_time_checks() {
    // Run the server's clock at the documented request's time: the request then passes the
    // key, signature and recvWindow checks and fails only because LTCBTC is not listed here.
    let offset = 1_499_827_319_559i64 + 1_000 - now_ms() as i64;
    let server = RestServer::start(RestConfig {
        clock_offset_ms: offset,
        ..config()
    })
    .unwrap();
    let q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    let sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
    let mut c = Client::new(&server);
    let r = c.send(
        "POST",
        "/api/v3/order",
        &format!("{q}&signature={sig}"),
        "",
        Some(KEY),
    );
    assert_eq!((r.status, r.code()), (400, -1121), "{r:?}");
    // The documented mixed form: part in the query, part (with the signature) in the body.
    let r = c.send(
        "POST",
        "/api/v3/order",
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77",
        Some(KEY),
    );
    assert_eq!(r.code(), -1121, "{r:?}");
    let mut bad = sig.to_owned();
    bad.replace_range(0..1, "d");
    let r = c.send(
        "POST",
        "/api/v3/order",
        &format!("{q}&signature={bad}"),
        "",
        Some(KEY),
    );
    assert_eq!(r.code(), -1022);
}

#[test]
fn raw_http_requests_like_curl() {
    let server = RestServer::start(config()).unwrap();
    // HTTP/1.0 without keep-alive: the server answers and closes.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /api/v3/time HTTP/1.0\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.contains("\r\nX-MBX-USED-WEIGHT-1M: 1\r\n"), "{all}");
    assert!(all.contains("\r\nConnection: close\r\n"), "{all}");
    assert!(all.contains(r#"{"serverTime":"#), "{all}");

    // Pipelined keep-alive requests on one connection, answered in order.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(
        b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v3/depth?symbol=ETHUSDT&limit=1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /api/v3/account HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let a = read_resp(&mut r);
    let b = read_resp(&mut r);
    let c = read_resp(&mut r);
    assert_eq!((a.status, a.body.to_string()), (200, "{}".to_owned()));
    assert_eq!(b.body["asks"][0][0], "3000.01000000");
    assert_eq!((c.status, c.code()), (401, -2014));
    assert_eq!((a.weight(), b.weight(), c.weight()), (2, 7, 27));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // Garbage gets a 400 and a close, not a hang.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 400"), "{all}");

    // The real curl, when installed.
    if let Ok(out) = Command::new("curl")
        .args(["-s", "-i", "-H", &format!("X-MBX-APIKEY: {KEY}")])
        .arg(format!(
            "{}/api/v3/openOrders?timestamp=1&signature=00",
            server.base_url()
        ))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains(r#""code":-1022"#), "{text}");
    }
}

#[test]
fn rate_limit_429_then_418_with_retry_after() {
    let server = RestServer::start(RestConfig {
        weight_limit: 50,
        weight_window: Duration::from_secs(60),
        ignored_429_before_ban: 2,
        ban_duration: Duration::from_secs(120),
        ..config()
    })
    .unwrap();
    let mut c = Client::new(&server);
    assert_eq!(c.public("/api/v3/exchangeInfo", "").status, 200);
    assert_eq!(c.public("/api/v3/exchangeInfo", "").status, 200);
    // 60 > 50: told to back off until the window ends.
    let r = c.public("/api/v3/exchangeInfo", "");
    assert_eq!((r.status, r.code()), (429, -1003));
    assert_eq!(r.weight(), 60);
    let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.body["msg"]
        .as_str()
        .unwrap()
        .starts_with("Too many requests"));
    // Keeps going: 429 twice more (even for a weight-1 request), then banned.
    for _ in 0..2 {
        let r = c.public("/api/v3/time", "");
        assert_eq!(r.status, 429);
        assert!(r.header("Retry-After").is_some());
    }
    let r = c.public("/api/v3/time", "");
    assert_eq!((r.status, r.code()), (418, -1003));
    assert_eq!(r.header("Retry-After"), Some("120"));
    assert!(r.body["msg"].as_str().unwrap().contains("IP banned until"));
    let r = c.public("/api/v3/time", "");
    assert_eq!(r.status, 418);
    let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((119..=120).contains(&retry));
}

#[test]
fn rate_limit_lifts_after_retry_after() {
    let server = RestServer::start(RestConfig {
        weight_limit: 2,
        weight_window: Duration::from_secs(1),
        ..config()
    })
    .unwrap();
    let mut c = Client::new(&server);
    let mut r = c.public("/api/v3/time", "");
    let mut n = 0;
    while r.status == 200 {
        n += 1;
        assert!(n < 10);
        r = c.public("/api/v3/time", "");
    }
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert_eq!(retry, 1);
    // A client that honours Retry-After is served again.
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(50));
    let r = c.public("/api/v3/time", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.weight(), 1);
}

const CCXT_SCRIPT: &str = r#"
import json, sys
import ccxt

port, key, secret = sys.argv[1], sys.argv[2], sys.argv[3]
ex = ccxt.binance({
    'apiKey': key,
    'secret': secret,
    'enableRateLimit': False,
    'options': {
        'adjustForTimeDifference': False,
        'fetchMarkets': {'types': ['spot']},
        'fetchMargins': False,
        'fetchCurrencies': False,
        'defaultType': 'spot',
    },
})
base = 'http://127.0.0.1:%s/api/v3' % port
ex.urls['api']['public'] = base
ex.urls['api']['private'] = base
ex.load_markets()
out = {'markets': sorted(ex.markets.keys())}
m = ex.market('BTC/USDT')
out['precision'] = m['precision']
out['limits'] = m['limits']
ob = ex.fetch_order_book('BTC/USDT', 5)
out['best_bid'] = ob['bids'][0][0]
o = ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, 50000, {'clientOrderId': 'ccxt-1'})
out['placed'] = {k: o[k] for k in ('id', 'clientOrderId', 'status', 'price', 'amount', 'side', 'type')}
f = ex.fetch_order(o['id'], 'BTC/USDT')
out['fetched'] = {k: f[k] for k in ('id', 'status', 'price', 'amount', 'filled', 'remaining')}
out['open'] = [x['id'] for x in ex.fetch_open_orders('BTC/USDT')]
try:
    ex.create_order('BTC/USDT', 'limit', 'buy', 0.001, 50000, {'clientOrderId': 'ccxt-1'})
    out['duplicate'] = 'accepted'
except ccxt.BaseError as e:
    out['duplicate'] = type(e).__name__
c = ex.cancel_order(o['id'], 'BTC/USDT')
out['canceled'] = c['status']
out['after'] = ex.fetch_order(o['id'], 'BTC/USDT')['status']
bal = ex.fetch_balance()
out['usdt'] = [bal['USDT']['free'], bal['USDT']['used']]
mkt = ex.create_order('BTC/USDT', 'market', 'buy', 0.001)
trades = ex.fetch_my_trades('BTC/USDT')
out['trades'] = [
    {'order': t['order'], 'amount': t['amount'], 'fee': t['fee']['cost'],
     'fee_currency': t['fee']['currency'], 'taker': t['takerOrMaker']}
    for t in trades
]
out['market_order'] = mkt['id']
out['market_fee'] = (mkt.get('fee') or {}).get('cost')
print(json.dumps(out))
"#;

#[test]
fn ccxt_places_fetches_and_cancels_a_limit_order() {
    let Some(py) = testkit::python("ccxt") else {
        return;
    };
    let server = RestServer::start(config()).unwrap();
    let stdout = testkit::run_script(
        &py,
        CCXT_SCRIPT,
        &[&server.addr().port().to_string(), KEY, SECRET],
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["markets"], serde_json::json!(["BTC/USDT", "ETH/USDT"]));
    assert_eq!(v["precision"]["price"].as_f64(), Some(0.01));
    assert_eq!(v["precision"]["amount"].as_f64(), Some(0.00001));
    assert_eq!(v["limits"]["cost"]["min"].as_f64(), Some(5.0));
    assert_eq!(v["best_bid"].as_f64(), Some(59999.99));
    assert_eq!(v["placed"]["status"], "open");
    assert_eq!(v["placed"]["clientOrderId"], "ccxt-1");
    assert_eq!(v["placed"]["price"].as_f64(), Some(50000.0));
    assert_eq!(v["placed"]["amount"].as_f64(), Some(0.001));
    assert_eq!(v["fetched"]["status"], "open");
    assert_eq!(v["fetched"]["remaining"].as_f64(), Some(0.001));
    assert_eq!(v["open"], serde_json::json!([v["placed"]["id"]]));
    assert_eq!(v["duplicate"], "InvalidOrder", "{v}");
    assert_eq!(v["canceled"], "canceled");
    assert_eq!(v["after"], "canceled");
    assert_eq!(v["usdt"], serde_json::json!([1_000_000.0, 0.0]));
    assert_eq!(server.open_order_count(), 0);
    // `myTrades` as ccxt reads it: the market order's trades, taker, fees in USDT.
    let trades = v["trades"].as_array().expect("trades");
    assert!(!trades.is_empty(), "{v}");
    let amount: f64 = trades.iter().map(|t| t["amount"].as_f64().unwrap()).sum();
    assert!((amount - 0.001).abs() < 1e-12, "{v}");
    for t in trades {
        assert_eq!(t["order"], v["market_order"], "{v}");
        assert_eq!(t["fee_currency"], "USDT", "{v}");
        assert_eq!(t["taker"], "taker", "{v}");
        assert!(t["fee"].as_f64().unwrap() > 0.0, "{v}");
    }
}
