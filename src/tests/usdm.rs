//! USD-M futures end to end: `algo-engine run` with `[venue] kind = "binance-usdm"` pointed at
//! the simulator in USD-M mode (`bench::sim::MarketType::UsdM`), exactly as a user points it at
//! `fapi.binance.com`: the engine warms up from `/fapi/v1/klines`, syncs its book from
//! `/fapi/v1/depth` and the `@depth@0ms` stream, reconciles against `/fapi/v1/openOrders` and
//! `/fapi/v2/account`, sends its orders to `/fapi/v1/order` and learns of their fills from
//! `ORDER_TRADE_UPDATE`. The venue runs inside this test process (synthetic BTCUSDT perpetual at
//! 300x, as in `crash.rs`), so the test can ask it afterwards what it holds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

mod common;

use bench::sim::{
    Fees, HistorySource, MarketSource, MarketType, Pace, RestConfig, SimConfig, SimVenue,
    StartMode, SynthConfig,
};
use hotpath::fixed::parse_mantissa;
use hotpath::venue::binance::sign::Signer;
use serde_json::Value;

/// The simulator as a live USD-M venue, and a strategy loosened (as in `crash.rs`) so that it
/// enters every few seconds of wall time at 300x; risk (sizing, exits) as configured by default.
fn engine_config(rest: &str, ws: &str) -> String {
    format!(
        r#"[engine]
status_interval_secs = 0
warmup_candles = 110

[venue]
kind = "binance-usdm"
symbols = ["BTCUSDT"]
rest_endpoint = "{rest}"
ws_endpoint = "{ws}"

[metrics]
enabled = false

[admin]
enabled = false

[export]
enabled = false

[strategy]
structure_candles = 2
adx_min = 0.0
hurst_min = 0.0
mean_reversion_max = 1000.0
atr_floor_frac = 0.0
value_area_tolerance = 1.0
cascade_long_min = -1000.0
cascade_short_max = 1000.0
bounce_min = -1.0
volume_spike_min = 0.0
min_confluence = 0.0
"#
    )
}

/// The number just before `label` in a summary line (`"... 12 orders sent, ..."`).
fn count_before(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {line}"));
    line[..at]
        .trim_end()
        .rsplit([' ', '('])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{label:?} in {line}"))
}

/// A signed `GET` to the venue.
fn signed_get(v: &SimVenue, path: &str, query: &str) -> Value {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let sep = if query.is_empty() { "" } else { "&" };
    let q = format!("{query}{sep}timestamp={ts}");
    let mut sig = [0u8; 64];
    Signer::from_secret_bytes(v.api_secret().as_bytes()).sign_into(&[q.as_bytes()], &mut sig);
    let mut s = TcpStream::connect(v.rest_addr()).unwrap();
    write!(
        s,
        "GET {path}?{q}&signature={} HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {}\r\nConnection: close\r\n\r\n",
        std::str::from_utf8(&sig).unwrap(),
        v.api_key()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "GET {path}: {resp}");
    serde_json::from_str(&resp[resp.find("\r\n\r\n").unwrap() + 4..]).unwrap()
}

#[test]
fn run_trades_usdm_futures_against_the_simulator_end_to_end() {
    let venue = SimVenue::start(SimConfig {
        rest: RestConfig {
            market_type: MarketType::UsdM,
            // The test's own queries share 127.0.0.1's weight counter with the engine.
            weight_limit: 1_000_000,
            ..RestConfig::default()
        },
        market: MarketSource::Synthetic {
            config: SynthConfig {
                seed: 0x5eed_c4a5,
                symbols: vec!["BTCUSDT".into()],
                duration_ms: 48 * 3_600_000,
                ..SynthConfig::default()
            },
            pace: Pace::parse("300x").unwrap(),
        },
        history: HistorySource::default(),
        fees: Fees::USDM,
        start: StartMode::OnFirstSubscriber,
        close_at_end: false,
        ..SimConfig::default()
    })
    .expect("start the simulator");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(venue.market_type(), MarketType::UsdM);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, engine_config(&venue.rest_url(), &venue.ws_url())).unwrap();
    let journal = dir.join("j");
    let run = common::engine_command(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--duration",
        "25",
    ])
    .env("BINANCE_API_KEY", venue.api_key())
    .env("BINANCE_API_SECRET", venue.api_secret())
    .output()
    .expect("run algo-engine");
    let (out, err) = (common::text(&run.stdout), common::text(&run.stderr));
    let tail: Vec<&str> = err.lines().rev().take(40).collect();
    let context = format!(
        "--- stdout\n{out}\n--- stderr (last lines, newest first)\n{}",
        tail.join("\n")
    );
    let status = run.status;
    assert!(status.success(), "{status}\n{context}");

    // Reconciliation ran at start against the USD-M account (nothing open yet).
    let recon = out
        .lines()
        .find(|l| l.starts_with("reconciliation:"))
        .unwrap_or_else(|| panic!("no reconciliation line\n{context}"));
    assert!(
        recon.starts_with("reconciliation: 0 open orders at the venue"),
        "{recon}"
    );
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} line\n{context}"))
    };
    let (gateway, strategy) = (line("gateway:"), line("strategy:"));
    let sent = count_before(gateway, "orders sent");
    assert!(sent > 0, "{gateway}\n{context}");
    assert_eq!(
        count_before(gateway, "venue rejects"),
        0,
        "{gateway}\n{context}"
    );
    assert_eq!(count_before(gateway, "unknown orders"), 0, "{gateway}");
    // Fills came back to the strategy (from the ORDER_TRADE_UPDATE stream).
    assert!(
        count_before(strategy, "executions") > 0,
        "{strategy}\n{context}"
    );

    // The venue's side: orders of the engine, filled, on the USD-M account.
    let all = signed_get(&venue, "/fapi/v1/allOrders", "symbol=BTCUSDT");
    let all = all.as_array().unwrap();
    assert_eq!(all.len() as u64, sent, "{all:?}");
    let filled: Vec<&Value> = all
        .iter()
        .filter(|o| o["executedQty"].as_str().is_some_and(|q| q != "0.00000000"))
        .collect();
    assert!(!filled.is_empty(), "{all:?}");
    for o in &filled {
        assert!(
            o["clientOrderId"].as_str().unwrap().starts_with("ae-"),
            "{o}"
        );
        assert!(o["cumQuote"].as_str().is_some() && o.get("cummulativeQuoteQty").is_none());
    }
    // The position the venue holds is what the filled orders add up to.
    let signed_qty: f64 = filled
        .iter()
        .map(|o| {
            let q: f64 = o["executedQty"].as_str().unwrap().parse().unwrap();
            if o["side"] == "BUY" {
                q
            } else {
                -q
            }
        })
        .sum();
    let (amt, _) = venue.position("BTCUSDT");
    assert!(
        (amt as f64 / 1e8 - signed_qty).abs() < 1e-9,
        "{amt} vs {signed_qty}"
    );
    // The engine's books and the venue's agree: with the position flat again (every trade of
    // the run closed), the wallet moved by exactly the net P&L the engine journaled for its
    // closed trades (realized profit less fees). A cent of tolerance for rounding: the venue
    // truncates average entry prices to 8 decimals, the engine rounds its to the price scale;
    // one fee or fill missing on either side would be worth dollars.
    let acct = signed_get(&venue, "/fapi/v2/account", "");
    let wallet = acct["totalWalletBalance"].as_str().unwrap();
    let change = parse_mantissa(wallet.as_bytes(), 8).unwrap() - 1_000_000 * 100_000_000;
    let closes = common::journal_closes(&journal);
    let closed = count_before(strategy, "closed trades");
    assert_eq!(closes.len() as u64, closed, "{strategy}");
    if amt == 0 {
        assert!(closed > 0, "{strategy}");
        let net: i64 = closes.iter().map(|c| c.net_pnl).sum();
        assert!(
            (change - net).abs() <= 1_000_000,
            "venue {change} vs engine {net}: {acct}"
        );
    } else {
        // A position still open holds the fees of its entries, not yet in a closed trade.
        assert_ne!(change, 0, "{acct}");
    }
}
