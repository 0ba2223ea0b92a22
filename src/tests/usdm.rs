//! USD-M futures end to end: `algo-engine run` with `[venue] kind = "binance-usdm"` pointed at
//! the simulator in USD-M mode (`bench::sim::MarketType::UsdM`), exactly as a user points it at
//! `fapi.binance.com`: the engine warms up from `/fapi/v1/klines`, syncs its book from
//! `/fapi/v1/depth` and the `@depth@0ms` stream, reconciles against `/fapi/v1/openOrders` and
//! `/fapi/v2/account`, sends its orders to `/fapi/v1/order` and learns of their fills from
//! `ORDER_TRADE_UPDATE`. The venue runs inside this test process (synthetic BTCUSDT perpetual at
//! 300x, as in `crash.rs`), so the test can ask it afterwards what it holds.

mod common;
use common::count_before;

use bench::sim::{
    Fees, HistorySource, MarketSource, MarketType, Pace, RestConfig, SimClient, SimConfig,
    SimVenue, StartMode, SynthConfig,
};
use hotpath::fixed::parse_mantissa;
use serde_json::Value;

/// The simulator as a live USD-M venue, and a strategy loosened (as in `crash.rs`) so that it
/// enters every few seconds of wall time at 300x; risk (sizing, exits) as configured by default.
fn engine_config(rest: &str, ws: &str) -> String {
    format!(
        "{}{}",
        common::venue_config("binance-usdm", rest, ws, 110),
        common::LOOSE_STRATEGY
    )
}

/// A signed `GET` to the venue.
fn signed_get(v: &SimVenue, path: &str, query: &str) -> Value {
    signed(v, "GET", path, query)
}

/// A signed request to the venue (parameters in the query string); the JSON answer.
fn signed(v: &SimVenue, method: &str, path: &str, query: &str) -> Value {
    let (status, body) = SimClient::for_venue(v)
        .call(method, path, query, true)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

/// The simulator as a USD-M venue: synthetic BTCUSDT perpetual at 300x, USD-M fees.
fn start_venue() -> SimVenue {
    SimVenue::start(SimConfig {
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
    .expect("start the simulator")
}

/// `algo-engine run` on `journal` against `venue` for `secs` seconds; its stdout (the run must
/// end cleanly).
fn run_engine(
    venue: &SimVenue,
    cfg: &std::path::Path,
    journal: &std::path::Path,
    secs: u32,
) -> String {
    let run = common::engine_command(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--duration",
        &secs.to_string(),
    ])
    .env("BINANCE_API_KEY", venue.api_key())
    .env("BINANCE_API_SECRET", venue.api_secret())
    .output()
    .expect("run algo-engine");
    let (out, err) = (common::text(&run.stdout), common::text(&run.stderr));
    let tail: Vec<&str> = err.lines().rev().take(40).collect();
    assert!(
        run.status.success(),
        "{}\n--- stdout\n{out}\n--- stderr (last lines, newest first)\n{}",
        run.status,
        tail.join("\n")
    );
    out
}

/// The tests of this file run one at a time: each drives a 300x market and an engine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn run_trades_usdm_futures_against_the_simulator_end_to_end() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let venue = start_venue();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(venue.market_type(), MarketType::UsdM);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, engine_config(&venue.rest_url(), &venue.ws_url())).unwrap();
    let journal = dir.join("j");
    let out = run_engine(&venue, &cfg, &journal, 25);
    let context = format!("--- stdout\n{out}");

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

/// Every fill the gateway journaled (`<journal>/gateway`): (client order id, signed quantity
/// mantissa).
fn journal_fills(journal: &std::path::Path) -> Vec<(u64, i64)> {
    use hotpath::codec::{self, RecordKind};
    use hotpath::event::{ExecEvent, ExecKind};
    let mut t = codec::open_tailer(&journal.join("gateway")).expect("gateway journal");
    let mut out = Vec::new();
    while let Some(r) = t.next().expect("gateway journal readable") {
        if r.kind == RecordKind::Exec.as_u16() {
            let x: ExecEvent = codec::decode(r.payload).expect("execution");
            if matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) {
                out.push((x.client_order_id, x.last_qty.0 * x.side.sign()));
            }
        }
    }
    out
}

/// The `position` findings of every start's reconciliation (`<journal>/reconcile`).
fn position_findings(journal: &std::path::Path) -> Vec<Value> {
    use hotpath::codec::{self, RecordKind};
    let mut t = codec::open_tailer(&journal.join("reconcile")).expect("reconcile journal");
    let mut out = Vec::new();
    while let Some(r) = t.next().expect("reconcile journal readable") {
        if r.kind == RecordKind::Reconcile.as_u16() {
            let v: Value = serde_json::from_slice(r.payload).expect("finding JSON");
            if v["finding"] == "position" {
                out.push(v);
            }
        }
    }
    out
}

/// On USD-M the venue states positions, and they win: a trade made at the venue while no
/// engine ran (by hand, or by another client) leaves the venue holding more than the journal's
/// fills say. The next start journals a `position` finding, the gateway journals correcting
/// fills of no order so that the journal's fills add up to the venue's position again, and the
/// strategy holds (and manages) the venue's position; the start after that finds nothing.
#[test]
fn the_venues_position_wins_over_the_journals_at_start() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let venue = start_venue();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, engine_config(&venue.rest_url(), &venue.ws_url())).unwrap();
    let journal = dir.join("j");
    // The venue prints positions at 8 decimals, the journal holds BTCUSDT at its step (0.001).
    let venue_qty = || venue.position("BTCUSDT").0 / 100_000;

    // (A run's journal may lack the fills of orders in flight when it stopped: the next start
    // recovers them from the venue before comparing positions, so only the trade by hand is
    // a difference.)
    run_engine(&venue, &cfg, &journal, 6);
    let before_manual = venue_qty();
    // A trade the journal never sees.
    let manual = signed(
        &venue,
        "POST",
        "/fapi/v1/order",
        "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.005&newClientOrderId=by-hand-1&newOrderRespType=RESULT",
    );
    assert_eq!(manual["status"], "FILLED", "{manual}");
    let at_venue = venue_qty();
    assert_eq!(at_venue - before_manual, 5, "the venue holds 0.005 more");

    let out = run_engine(&venue, &cfg, &journal, 6);
    let findings = position_findings(&journal);
    assert_eq!(findings.len(), 1, "{findings:?}\n{out}");
    let d = |q: i64| hotpath::fixed::Decimal::new(q, 3).to_string();
    assert_eq!(findings[0]["journal"], d(before_manual), "{findings:?}");
    assert_eq!(findings[0]["venue"], d(at_venue), "{findings:?}");
    // The correcting fills (no order: client id 0) make up the difference.
    let corrections: Vec<i64> = journal_fills(&journal)
        .iter()
        .filter(|f| f.0 == 0)
        .map(|f| f.1)
        .collect();
    assert_eq!(corrections.iter().sum::<i64>(), 5, "{corrections:?}");

    // The next start finds the journal's fills (with whatever run 2 traded) adding up to the
    // venue's position again.
    run_engine(&venue, &cfg, &journal, 3);
    assert_eq!(
        position_findings(&journal).len(),
        1,
        "a clean start after the correction"
    );
    venue.shutdown();
}

/// The same engine with `[gateway] transport = "ws"`: its orders go over the venue's USD-M
/// WebSocket API (`/ws-fapi/v1` on the configured `ws_endpoint`'s server), and they fill.
#[test]
fn run_trades_usdm_over_the_websocket_api() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let venue = start_venue();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[gateway]\ntransport = \"ws\"\n",
            engine_config(&venue.rest_url(), &venue.ws_url())
        ),
    )
    .unwrap();
    let journal = tmp.path().join("j");
    let out = run_engine(&venue, &cfg, &journal, 15);
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} line\n{out}"))
    };
    let (gateway, strategy) = (line("gateway:"), line("strategy:"));
    let sent = count_before(gateway, "orders sent");
    assert!(sent > 0, "{out}");
    assert_eq!(count_before(gateway, "venue rejects"), 0, "{out}");
    assert!(count_before(strategy, "executions") > 0, "{out}");
    // Every order the gateway sent reached the venue: over the WebSocket API, since with it
    // the gateway opens no REST order connections (and would not start without it).
    let all = signed_get(&venue, "/fapi/v1/allOrders", "symbol=BTCUSDT");
    assert_eq!(all.as_array().unwrap().len() as u64, sent, "{all}");
    venue.shutdown();
}
