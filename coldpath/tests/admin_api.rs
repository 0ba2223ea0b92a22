//! The admin API over real HTTP on loopback (ureq as the client): authentication, the
//! watchlist round trip and expiry (injected clock), top-liquid ranking from a stub Binance
//! 24hr ticker, halt/resume reaching the control ring and the journal, JSON errors for bad
//! requests, and token-file permissions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coldpath::admin::{
    spawn, AdminConfig, AdminError, AdminHandle, AdminState, AdminToken, GenerationCounter,
    PositionSnapshot, RingControlSink, SharedStatus, StatusSnapshot, TokenError, ADMIN_JOURNAL_DIR,
};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{Control, ControlKind};
use hotpath::instrument::InstrumentId;
use ringbuffers::spsc::{self, Consumer};
use serde_json::Value;

const TOKEN: &str = "test-token-7f3a9c";
const HOUR_NS: u64 = 3_600 * 1_000_000_000;
/// 2024-08-08T23:54:00Z, the start of the recorded captures.
const T0: u64 = 1_723_161_240_000_000_000;

struct Fixture {
    handle: AdminHandle,
    ring: Consumer<Control>,
    clock: Arc<AtomicU64>,
    journal: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.addr())
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        read(req.call().unwrap())
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let req = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .content_type("application/json");
        read(req.send(body).unwrap())
    }

    /// Every Control record journaled so far.
    fn journaled(&self) -> Vec<Control> {
        let dir = self.journal.path().join(ADMIN_JOURNAL_DIR);
        let mut t = codec::open_tailer(&dir).unwrap();
        let mut out = Vec::new();
        while let Some(r) = t.next().unwrap() {
            assert_eq!(r.kind, RecordKind::Control.as_u16());
            out.push(codec::decode::<Control>(r.payload).unwrap());
        }
        out
    }

    fn drain_ring(&mut self) -> Vec<Control> {
        std::iter::from_fn(|| self.ring.try_pop()).collect()
    }
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, v)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn start(venue_url: &str) -> Fixture {
    let journal = tempfile::tempdir().unwrap();
    let (prod, ring) = spsc::channel::<Control>(64);
    let sink = RingControlSink::open(prod, &journal.path().join(ADMIN_JOURNAL_DIR)).unwrap();
    let status = Arc::new(SharedStatus::default());
    status.set_status(StatusSnapshot {
        trading_state: "active".into(),
        started_unix_ns: T0,
        instruments: 2,
        ..StatusSnapshot::default()
    });
    status.set_positions(vec![PositionSnapshot {
        symbol: "BTCUSDT".into(),
        side: "long".into(),
        qty: "0.01000".into(),
        entry_price: "61201.01".into(),
        unrealized_pnl: "1.25".into(),
    }]);
    let clock = Arc::new(AtomicU64::new(T0));
    let c = clock.clone();
    let state = AdminState::new(
        [
            ("BTCUSDT".to_string(), InstrumentId(0)),
            ("ethusdt".to_string(), InstrumentId(1)),
        ],
        Arc::new(sink),
        status,
    )
    .with_clock(Arc::new(move || c.load(Ordering::SeqCst)))
    .with_reloader(Arc::new(GenerationCounter::default()));
    let mut cfg = AdminConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Some(AdminToken::new(TOKEN).unwrap()),
    );
    cfg.max_body = 1024;
    cfg.venue_rest_url = venue_url.to_string();
    let handle = spawn(cfg, state).unwrap();
    Fixture {
        handle,
        ring,
        clock,
        journal,
        agent: agent(),
    }
}

#[test]
fn no_token_refuses_to_start() {
    let (prod, _c) = spsc::channel::<Control>(4);
    let dir = tempfile::tempdir().unwrap();
    let sink = RingControlSink::open(prod, dir.path()).unwrap();
    let state = AdminState::new([], Arc::new(sink), Arc::new(SharedStatus::default()));
    let cfg = AdminConfig::new("127.0.0.1:0".parse().unwrap(), None);
    assert!(matches!(spawn(cfg, state), Err(AdminError::NoToken)));
}

#[test]
fn unauthorized_without_or_with_wrong_token() {
    let f = start("http://127.0.0.1:9");
    let (s, v) = f.get("/api/v1/status", None);
    assert_eq!(s, 401);
    assert_eq!(v["error"], "unauthorized");
    let (s, _) = f.get("/api/v1/status", Some("test-token-7f3a9d"));
    assert_eq!(s, 401);
    let (s, _) = f.get("/api/v1/status", Some(&TOKEN[..TOKEN.len() - 1]));
    assert_eq!(s, 401);
    // Unknown paths need the token too (no endpoint discovery without it).
    let (s, _) = f.get("/api/v1/nope", None);
    assert_eq!(s, 401);
    let (s, v) = f.get("/api/v1/nope", Some(TOKEN));
    assert_eq!(s, 404);
    assert_eq!(v["error"], "not_found");

    let (s, v) = f.get("/api/v1/status", Some(TOKEN));
    assert_eq!(s, 200);
    assert_eq!(v["engine"]["trading_state"], "active");
    assert_eq!(v["admin"]["counters"]["unauthorized"], 4);
    let (s, v) = f.get("/api/v1/positions", Some(TOKEN));
    assert_eq!(s, 200);
    assert_eq!(v["positions"][0]["symbol"], "BTCUSDT");
    assert_eq!(v["positions"][0]["qty"], "0.01000");
}

#[test]
fn watchlist_round_trip_and_expiry() {
    let mut f = start("http://127.0.0.1:9");
    let (s, v) = f.post(
        "/api/v1/watchlist/add",
        r#"{"exchange":"binance","market_type":"spot","symbol":"btcusdt","duration_hours":24,"priority":2}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["added"]["symbol"], "BTCUSDT");
    assert_eq!(v["added"]["expires_unix_ns"], T0 + 24 * HOUR_NS);
    let (s, _) = f.post(
        "/api/v1/watchlist/add",
        r#"{"symbol":"ETHUSDT","duration_hours":2}"#,
    );
    assert_eq!(s, 200);

    let (s, v) = f.get("/api/v1/watchlist", Some(TOKEN));
    assert_eq!(s, 200);
    let syms: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(syms, ["BTCUSDT", "ETHUSDT"]);
    assert_eq!(v["entries"][0]["priority"], 2);

    // Three hours later ETHUSDT (2 h) has expired; renewing it is a 404, BTCUSDT renews to
    // now + 24 h.
    f.clock.fetch_add(3 * HOUR_NS, Ordering::SeqCst);
    let (s, v) = f.get("/api/v1/watchlist", Some(TOKEN));
    assert_eq!(s, 200);
    assert_eq!(v["count"], 1);
    assert_eq!(v["entries"][0]["symbol"], "BTCUSDT");
    let (s, v) = f.post("/api/v1/watchlist/renew", r#"{"symbol":"ETHUSDT"}"#);
    assert_eq!(s, 404);
    assert_eq!(v["error"], "not_on_watchlist");
    let (s, v) = f.post("/api/v1/watchlist/renew", r#"{"symbol":"BTCUSDT"}"#);
    assert_eq!(s, 200, "{v}");
    let renewed_to = T0 + 3 * HOUR_NS + 24 * HOUR_NS;
    assert_eq!(v["renewed"]["expires_unix_ns"], renewed_to);

    // Just before the renewed expiry it is listed, at the expiry it is gone.
    f.clock.store(renewed_to - 1, Ordering::SeqCst);
    assert_eq!(f.get("/api/v1/watchlist", Some(TOKEN)).1["count"], 1);
    f.clock.store(renewed_to, Ordering::SeqCst);
    assert_eq!(f.get("/api/v1/watchlist", Some(TOKEN)).1["count"], 0);

    // Add again and remove.
    let (s, _) = f.post("/api/v1/watchlist/add", r#"{"symbol":"BTCUSDT"}"#);
    assert_eq!(s, 200);
    let (s, v) = f.post("/api/v1/watchlist/remove", r#"{"symbol":"BTCUSDT"}"#);
    assert_eq!(s, 200, "{v}");
    assert_eq!(f.get("/api/v1/watchlist", Some(TOKEN)).1["count"], 0);
    let (s, _) = f.post("/api/v1/watchlist/remove", r#"{"symbol":"BTCUSDT"}"#);
    assert_eq!(s, 404);

    // Every accepted command reached the ring and the journal, in the same order.
    let ring = f.drain_ring();
    let kinds: Vec<ControlKind> = ring.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ControlKind::WatchlistAdd,
            ControlKind::WatchlistAdd,
            ControlKind::WatchlistRenew,
            ControlKind::WatchlistAdd,
            ControlKind::WatchlistRemove
        ]
    );
    assert_eq!(ring[0].instrument, InstrumentId(0));
    assert_eq!(ring[1].instrument, InstrumentId(1));
    assert_eq!(ring[0].arg, T0 + 24 * HOUR_NS);
    assert_eq!(ring[2].arg, renewed_to);
    assert_eq!(f.journaled(), ring);
}

#[test]
fn halt_and_resume_reach_ring_and_journal() {
    let mut f = start("http://127.0.0.1:9");
    let (s, v) = f.post("/api/v1/halt", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["journal_seq"], 0);
    f.clock.fetch_add(1_000, Ordering::SeqCst);
    let (s, v) = f.post("/api/v1/resume", "");
    assert_eq!(s, 200);
    assert_eq!(v["journal_seq"], 1);
    let (s, v) = f.post("/api/v1/config/reload", "");
    assert_eq!(s, 200);
    assert_eq!(v["generation"], 1);

    let ring = f.drain_ring();
    assert_eq!(ring.len(), 3);
    assert_eq!(ring[0].kind, ControlKind::Halt);
    assert_eq!(ring[0].instrument, InstrumentId::NONE);
    assert_eq!(ring[0].issued_unix_ns, T0);
    assert_eq!(ring[1].kind, ControlKind::Resume);
    assert_eq!(ring[1].issued_unix_ns, T0 + 1_000);
    assert_eq!(ring[2].kind, ControlKind::ConfigReload);
    assert_eq!(ring[2].arg, 1);
    assert_eq!(f.journaled(), ring);
}

#[test]
fn bad_requests_get_json_errors() {
    let mut f = start("http://127.0.0.1:9");
    let (s, v) = f.post("/api/v1/watchlist/add", r#"{"symbol": "BTCUSDT""#);
    assert_eq!(s, 400);
    assert_eq!(v["error"], "malformed_json");
    assert!(!v["message"].as_str().unwrap().is_empty());
    let (s, v) = f.post("/api/v1/watchlist/add", r#"{"symbol": 42}"#);
    assert_eq!(s, 422);
    assert_eq!(v["error"], "invalid_request");
    let (s, v) = f.post("/api/v1/watchlist/add", r#"{"symbol": "DOGEUSDT"}"#);
    assert_eq!(s, 422);
    assert_eq!(v["error"], "unknown_symbol");
    let (s, v) = f.post(
        "/api/v1/watchlist/add",
        r#"{"symbol": "BTCUSDT", "duration_hours": 0}"#,
    );
    assert_eq!(s, 422);
    assert_eq!(v["error"], "invalid_request");
    let big = format!(r#"{{"symbol": "BTCUSDT", "pad": "{}"}}"#, "x".repeat(4096));
    let (s, v) = f.post("/api/v1/watchlist/add", &big);
    assert_eq!(s, 413);
    assert_eq!(v["error"], "payload_too_large");
    // Nothing was accepted.
    assert!(f.drain_ring().is_empty());
    assert!(f.journaled().is_empty());
}

/// Binance `GET /api/v3/ticker/24hr` elements, in the venue's field order and formatting.
fn ticker(symbol: &str, last: &str, volume: &str, quote_volume: &str, count: u64) -> String {
    format!(
        r#"{{"symbol":"{symbol}","priceChange":"-94.99000000","priceChangePercent":"-0.155","weightedAvgPrice":"{last}","prevClosePrice":"{last}","lastPrice":"{last}","lastQty":"0.00100000","bidPrice":"{last}","bidQty":"3.62145000","askPrice":"{last}","askQty":"2.11637000","openPrice":"{last}","highPrice":"{last}","lowPrice":"{last}","volume":"{volume}","quoteVolume":"{quote_volume}","openTime":1723075200000,"closeTime":1723161599999,"firstId":3722456437,"lastId":3724065447,"count":{count}}}"#
    )
}

/// Serve `body` as a JSON 200 to every connection; returns the base URL.
fn stub_venue(body: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let path_ok = req.starts_with(b"GET /api/v3/ticker/24hr ");
            let (status, b) = if path_ok {
                ("200 OK", body.as_str())
            } else {
                ("404 Not Found", r#"{"code":-1,"msg":"not found"}"#)
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn top_liquid_ranks_by_quote_volume() {
    // 18 symbols; quote volumes chosen so the order differs from volume, price and count order.
    let rows = [
        (
            "BTCUSDT",
            "61201.01000000",
            "27851.52418000",
            "1704028349.46498930",
            1_609_011,
        ),
        (
            "ETHUSDT",
            "2690.56000000",
            "402154.87650000",
            "1075226771.81213400",
            1_105_431,
        ),
        (
            "SOLUSDT",
            "153.21000000",
            "5023345.12300000",
            "768520301.05300000",
            1_203_881,
        ),
        (
            "BNBUSDT",
            "521.80000000",
            "301245.50400000",
            "156512049.99410000",
            301_228,
        ),
        (
            "XRPUSDT",
            "0.56010000",
            "301234567.00000000",
            "168701445.11230000",
            250_127,
        ),
        (
            "DOGEUSDT",
            "0.09985000",
            "2101934567.00000000",
            "209821134.81340000",
            310_552,
        ),
        (
            "PEPEUSDT",
            "0.00000780",
            "26113443455671.00",
            "203681845.07500000",
            402_881,
        ),
        (
            "FDUSDUSDT",
            "0.99980000",
            "1204955412.00000000",
            "1204713421.57000000",
            88_441,
        ),
        (
            "ADAUSDT",
            "0.33400000",
            "150223433.10000000",
            "50174630.65340000",
            98_110,
        ),
        (
            "AVAXUSDT",
            "21.05000000",
            "2455120.22000000",
            "51680280.63100000",
            120_334,
        ),
        (
            "LINKUSDT",
            "10.12000000",
            "3511422.10000000",
            "35535591.65200000",
            71_555,
        ),
        (
            "WIFUSDT",
            "1.58400000",
            "41223110.20000000",
            "65297406.55680000",
            191_221,
        ),
        (
            "SHIBUSDT",
            "0.00001372",
            "3902112345678.00",
            "53536981.38216000",
            80_123,
        ),
        (
            "NEARUSDT",
            "4.12300000",
            "9123441.20000000",
            "37615948.06760000",
            90_111,
        ),
        (
            "TRXUSDT",
            "0.12730000",
            "210455123.40000000",
            "26790933.20820000",
            40_011,
        ),
        (
            "LTCUSDT",
            "60.12000000",
            "501233.45600000",
            "30134155.37072000",
            61_009,
        ),
        (
            "DOTUSDT",
            "4.51200000",
            "5123441.40000000",
            "23116967.69680000",
            52_441,
        ),
        (
            "USDCUSDT",
            "1.00000000",
            "250112345.00000000",
            "250137357.30000000",
            70_221,
        ),
    ];
    let body = format!(
        "[{}]",
        rows.iter()
            .map(|r| ticker(r.0, r.1, r.2, r.3, r.4))
            .collect::<Vec<_>>()
            .join(",")
    );
    let f = start(&stub_venue(body));
    let (s, v) = f.get("/api/v1/watchlist/top-liquid", Some(TOKEN));
    assert_eq!(s, 200, "{v}");
    let mut expected: Vec<(f64, &str)> = rows.iter().map(|r| (r.3.parse().unwrap(), r.0)).collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0));
    let expected: Vec<&str> = expected.iter().take(15).map(|e| e.1).collect();
    let got: Vec<&str> = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(got[..4], ["BTCUSDT", "FDUSDUSDT", "ETHUSDT", "SOLUSDT"]);
    assert_eq!(v["tickers"], 18);
    assert_eq!(v["symbols"][0]["quote_volume"], "1704028349.46498930");
    assert_eq!(v["symbols"][0]["instrument"], 0);
    assert_eq!(v["symbols"][1]["instrument"], Value::Null);

    // A venue that is down is a 502 with a JSON body.
    let f = start("http://127.0.0.1:9");
    let (s, v) = f.get("/api/v1/watchlist/top-liquid", Some(TOKEN));
    assert_eq!(s, 502);
    assert_eq!(v["error"], "venue_error");
}

#[cfg(unix)]
#[test]
fn token_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("admin.token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let t = AdminToken::from_file(&p).unwrap();
    assert!(t.matches(TOKEN.as_bytes()));
    assert!(!format!("{t:?}").contains(TOKEN));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = AdminToken::from_file(&p).unwrap_err();
    assert!(
        matches!(e, TokenError::Permissions { mode: 0o644, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains(TOKEN));
    // A variable that is not set falls back to the file; the refused file stays refused.
    assert!(AdminToken::load("ALGO_ADMIN_TOKEN_TEST_UNSET_7F3A", Some(&p)).is_err());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(AdminToken::load("ALGO_ADMIN_TOKEN_TEST_UNSET_7F3A", Some(&p)).is_ok());
    assert!(matches!(
        AdminToken::load("ALGO_ADMIN_TOKEN_TEST_UNSET_7F3A", None),
        Err(TokenError::Missing(_))
    ));
}
