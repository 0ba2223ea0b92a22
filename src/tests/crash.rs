//! Crash safety (issue 5): the engine is killed with SIGKILL mid-run, many times, while orders
//! are in flight; after each restart, reconciliation and the journal must give exactly the
//! venue's positions and open orders, no order may be sent twice, and nothing the venue
//! acknowledged may be lost.
//!
//! How: the Binance-compatible simulator (`bench::sim::SimVenue`, the venue `algo-sim` serves)
//! runs inside this test process, so it is a process of its own from the engine's point of
//! view and outlives every engine: a synthetic BTCUSDT market at 300x with an order latency of
//! 20 s of market time (about 67 ms of wall time: orders really are in flight for a moment).
//! The engine runs as `algo-engine run` with `[venue] kind = "binance-spot"` pointed at the
//! simulator's REST and WebSocket endpoints (exactly as at Binance, keys from
//! `BINANCE_API_KEY` / `BINANCE_API_SECRET`), on one journal directory for every run, with
//! thresholds loosened so the strategy enters every few seconds of wall time. Each run is
//! killed with SIGKILL, half of them the moment the gateway journals a new order (so the order
//! is in flight at the venue when the engine dies), the other half after a random 2-6 s; the
//! last run is stopped with SIGINT. Between runs, with no engine alive, the test asks the
//! venue itself (signed REST: `allOrders`, `openOrders`, `account`) what it holds and checks the
//! next start's reconciliation and the journals against that. Every check is evaluated and the
//! test fails with the full list of violations and a table of the runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::sim::{
    HistorySource, LatencyModel, MarketSource, Pace, RestConfig, SimClient, SimConfig, SimVenue,
    StartMode, SynthConfig,
};
use hotpath::codec::{self, RecordKind};
use hotpath::gateway::{parse_client_id, OrderState, OrderUpdate};
use serde_json::Value;

/// Runs killed with SIGKILL before the final, clean one.
const KILLED_RUNS: usize = 9;
/// Seed of the kill schedule (and of the synthetic market).
const SEED: u64 = 0x5eed_c4a5;
/// Client order id prefix of the gateway (`GatewayConfig::client_id_prefix`).
const PREFIX: &str = "ae-";
/// The simulator's starting balances, scale 8 (`RestConfig::default`: BTC 10, USDT 1,000,000).
const START_BTC: i128 = 10 * 100_000_000;

/// The engine's configuration: the simulator as a live Binance spot venue, a strategy that
/// enters every few seconds of wall time, nothing else running.
fn engine_config(rest: &str, ws: &str) -> String {
    format!("{}{TRADING}{NO_RISK}", venue_config(rest, ws, 110))
}

/// The simulator as a live Binance spot venue (see `common::venue_config`).
fn venue_config(rest: &str, ws: &str, warmup_candles: u32) -> String {
    common::venue_config("binance-spot", rest, ws, warmup_candles)
}

/// A strategy that enters every few seconds of wall time.
use common::LOOSE_STRATEGY as TRADING;

/// Entries straight to the gateway (no chain, no exit monitor): every entry is an order.
const NO_RISK: &str = r#"
[risk]
enabled = false
"#;

/// The venue: synthetic BTCUSDT for 48 hours of market time at 300x (longer than the test),
/// after the default 30 hours of candle history; an order latency of 20 s of market time
/// (~67 ms of wall time).
fn start_venue() -> SimVenue {
    start_venue_with(
        LatencyModel::Fixed(Duration::from_secs(20)),
        StartMode::OnFirstSubscriber,
    )
}

/// [`start_venue`] with another order latency and start.
fn start_venue_with(latency: LatencyModel, start: StartMode) -> SimVenue {
    let mut rest = RestConfig {
        // The test's own queries and the engines' share 127.0.0.1's weight counter: keep the
        // venue's limit out of the way (the gateway budgets itself anyway).
        weight_limit: 1_000_000,
        ..RestConfig::default()
    };
    rest.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let cfg = SimConfig {
        rest,
        market: MarketSource::Synthetic {
            config: SynthConfig {
                seed: SEED,
                symbols: vec!["BTCUSDT".into()],
                duration_ms: 48 * 3_600_000,
                ..SynthConfig::default()
            },
            pace: Pace::parse("300x").expect("pace"),
        },
        history: HistorySource::default(),
        latency,
        start,
        close_at_end: false,
        ..SimConfig::default()
    };
    SimVenue::start(cfg).expect("start the simulator")
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// SplitMix64: the kill schedule, reproducible from [`SEED`].
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A decimal string as printed by the venue (`"0.00150000"`) at scale 8.
fn dec8(s: &str) -> i128 {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches('-');
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_string();
    assert!(frac.len() <= 8, "more than 8 decimals: {s}");
    while frac.len() < 8 {
        frac.push('0');
    }
    let v = int.parse::<i128>().expect(s) * 100_000_000 + frac.parse::<i128>().expect(s);
    if neg {
        -v
    } else {
        v
    }
}

/// A quantity mantissa at `scale` re-expressed at scale 8.
fn to_scale8(mantissa: i64, scale: u8) -> i128 {
    let m = i128::from(mantissa);
    if scale <= 8 {
        m * 10i128.pow(u32::from(8 - scale))
    } else {
        m / 10i128.pow(u32::from(scale - 8))
    }
}

fn cid_text(cid: u64) -> String {
    format!("{PREFIX}{cid:016x}")
}

// ---------------------------------------------------------------------------------------------
// The venue, asked directly

/// Signed `GET`s against the simulator's REST API (`SimClient`), with the checks below.
struct VenueClient(SimClient);

impl VenueClient {
    fn new(venue: &SimVenue) -> Self {
        VenueClient(SimClient::for_venue(venue))
    }

    fn get(&self, path: &str, params: &str) -> Value {
        let mut last = String::new();
        // A loaded machine may be slow to answer: a few attempts, then fail with the last error.
        for _ in 0..5 {
            let target = format!("{path}?{}", self.0.sign(params));
            match self.0.request("GET", &target) {
                Ok((200, body)) => return serde_json::from_str(&body).expect("venue JSON"),
                Ok((status, body)) => last = format!("HTTP {status}: {body}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("GET {path} at the venue failed: {last}");
    }

    /// One signed `POST`/`DELETE` (not repeated: it is not idempotent); the venue's answer.
    fn send(&self, method: &str, path: &str, params: &str) -> Value {
        match self.0.call(method, path, params, true) {
            Ok((200, body)) => body,
            other => panic!("{method} {path}?{params}: {other:?}"),
        }
    }

    /// Every order of BTCUSDT the venue ever accepted.
    fn all_orders(&self) -> Vec<Value> {
        let v = self.get("/api/v3/allOrders", "symbol=BTCUSDT&limit=1000");
        v.as_array().expect("allOrders is a list").clone()
    }

    /// What the venue holds now.
    fn snapshot(&self) -> VenueSnapshot {
        let open = self.get("/api/v3/openOrders", "");
        let open_orders = open
            .as_array()
            .expect("openOrders is a list")
            .iter()
            .map(|o| o["clientOrderId"].as_str().unwrap_or_default().to_string())
            .collect();
        let account = self.get("/api/v3/account", "");
        let nonzero = |s: &str| s.bytes().any(|b| (b'1'..=b'9').contains(&b));
        let balances: Vec<(String, String, String)> = account["balances"]
            .as_array()
            .expect("balances")
            .iter()
            .map(|b| {
                let t = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                (t("asset"), t("free"), t("locked"))
            })
            .filter(|(_, f, l)| nonzero(f) || nonzero(l))
            .collect();
        VenueSnapshot {
            open_orders,
            balances,
            all_orders: self.all_orders(),
        }
    }
}

/// The venue's state while no engine runs.
#[derive(Debug, Clone)]
struct VenueSnapshot {
    /// `clientOrderId`s of the open orders.
    open_orders: BTreeSet<String>,
    /// Balances with anything free or locked: (asset, free, locked) as printed.
    balances: Vec<(String, String, String)>,
    /// `allOrders`.
    all_orders: Vec<Value>,
}

impl VenueSnapshot {
    fn balance(&self, asset: &str) -> i128 {
        self.balances
            .iter()
            .filter(|(a, _, _)| a == asset)
            .map(|(_, f, l)| dec8(f) + dec8(l))
            .sum()
    }
}

/// Polls the venue until no order arrives any more (orders in flight when an engine died reach
/// the matching engine after their latency), then takes a snapshot.
fn settled_snapshot(client: &VenueClient) -> VenueSnapshot {
    std::thread::sleep(Duration::from_millis(800));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = client.all_orders().len();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let n = client.all_orders().len();
        if n == last || Instant::now() > deadline {
            break;
        }
        last = n;
    }
    client.snapshot()
}

// ---------------------------------------------------------------------------------------------
// The journals, read directly

/// The gateway journal's `OrderUpdate` records, in order.
fn order_updates(gw: &Path) -> Vec<OrderUpdate> {
    let Ok(mut t) = codec::open_tailer(gw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(r) = t.next().expect("gateway journal readable") {
        if r.kind == RecordKind::OrderUpdate.as_u16() {
            out.push(codec::decode::<OrderUpdate>(r.payload).expect("order update"));
        }
    }
    out
}

/// The reconcile journal's records: (timestamp ns, JSON).
fn reconcile_records(dir: &Path) -> Vec<(u64, Value)> {
    let Ok(mut t) = codec::open_tailer(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(r) = t.next().expect("reconcile journal readable") {
        if r.kind == RecordKind::Reconcile.as_u16() {
            let v: Value = serde_json::from_slice(r.payload).unwrap_or_else(|e| {
                panic!(
                    "reconcile record is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(r.payload)
                )
            });
            out.push((r.timestamp, v));
        }
    }
    out
}

/// One order as the gateway journal last saw it.
#[derive(Debug, Clone, Copy)]
struct JournalOrder {
    state: OrderState,
    /// Highest cumulative fill journaled, scale 8.
    cum: i128,
}

/// Every order's last journaled state (the fold reconciliation does, done independently).
fn journal_orders(updates: &[OrderUpdate]) -> BTreeMap<u64, JournalOrder> {
    let mut m: BTreeMap<u64, JournalOrder> = BTreeMap::new();
    for u in updates {
        // An alert about a report for an id the gateway did not know carries no order state.
        if u.client_order_id == 0 || u.to == OrderState::Unknown {
            continue;
        }
        let cum = to_scale8(u.cum_qty.0, u.qty_scale);
        let e = m.entry(u.client_order_id).or_insert(JournalOrder {
            state: u.to,
            cum: 0,
        });
        e.state = u.to;
        e.cum = e.cum.max(cum);
    }
    m
}

fn journal_open(orders: &BTreeMap<u64, JournalOrder>) -> BTreeSet<u64> {
    orders
        .iter()
        .filter(|(_, o)| !o.state.is_terminal())
        .map(|(c, _)| *c)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The engine as a child process

/// A running `algo-engine run`; killed (SIGKILL) on drop if still alive, so a failing test
/// leaves no engine behind.
struct Engine {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: PathBuf,
}

impl Engine {
    fn start(cfg: &Path, journal: &Path, stderr: PathBuf, venue: &SimVenue) -> Engine {
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
            .arg("run")
            .arg("--config")
            .arg(cfg)
            .arg("--journal")
            .arg(journal)
            .env("BINANCE_API_KEY", venue.api_key())
            .env("BINANCE_API_SECRET", venue.api_secret())
            .env("RUST_LOG", "info")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn algo-engine");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(s) => l.lock().unwrap().push(s),
                    Err(_) => break,
                }
            }
        });
        Engine {
            child,
            lines,
            reader: Some(reader),
            stderr,
        }
    }

    fn line_starting(&self, prefix: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
    }

    fn stdout(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits for the start-up reconciliation's summary line; panics (with the engine's output)
    /// if the engine exits first or takes longer than `timeout`.
    fn wait_reconciled(&mut self, run: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.line_starting("reconciliation:") {
                return l;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "run {run}: the engine exited ({status}) before its start-up reconciliation\n\
                     --- stdout\n{}\n--- stderr (last lines)\n{}",
                    self.stdout(),
                    self.stderr_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "run {run}: no reconciliation line after {timeout:?}\n--- stdout\n{}\n--- stderr (last lines)\n{}",
                    self.stdout(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits for the child to exit (at most `timeout`, then SIGKILL) and for its stdout to end.
    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test

/// How a run ended and what it left behind.
#[derive(Debug, Default, Clone)]
struct RunRecord {
    /// `in-flight`, `random` or `clean`.
    mode: &'static str,
    /// Seconds from the reconciliation line to the kill (or SIGINT).
    ran_secs: f64,
    /// The run's `reconciliation:` line.
    reconciliation: String,
    /// `OrderUpdate` records before the run, and after it.
    updates_before: usize,
    updates_after: usize,
    /// Orders first journaled by this run.
    new_orders: usize,
    /// Of those, left in `new`/`submitted` by the kill (in flight).
    in_flight: usize,
    /// How the process ended.
    exit: String,
}

/// Checks one start-up reconciliation against the venue's state and the journal as they were
/// just before the engine started (no engine alive in between): the journaled findings and
/// summary of this run must be exactly what the venue and the journal imply, and the journal's
/// orders and positions corrected by those findings must be the venue's.
fn check_reconciliation(
    run: usize,
    line: &str,
    records: &[(u64, Value)],
    before: &BTreeMap<u64, JournalOrder>,
    venue: &VenueSnapshot,
    failures: &mut Vec<String>,
) {
    let mut fail = |m: String| failures.push(format!("run {run}: {m}"));
    let Some(((_, summary), findings)) = records.split_last() else {
        fail("no reconciliation record journaled".into());
        return;
    };
    if summary["finding"] != "summary" {
        fail(format!(
            "the last reconcile record is not a summary: {summary}"
        ));
        return;
    }
    if findings.iter().any(|(_, f)| f["finding"] == "summary") {
        fail(format!(
            "more than one reconciliation journaled by one start: {records:?}"
        ));
    }
    // The venue's open orders, ours by client id.
    let venue_ours: BTreeMap<u64, &String> = venue
        .open_orders
        .iter()
        .filter_map(|c| parse_client_id(PREFIX.as_bytes(), c.as_bytes()).map(|id| (id, c)))
        .collect();
    let foreign: BTreeSet<&String> = venue
        .open_orders
        .iter()
        .filter(|c| parse_client_id(PREFIX.as_bytes(), c.as_bytes()).is_none())
        .collect();
    let jopen = journal_open(before);
    let matched: BTreeSet<u64> = venue_ours
        .keys()
        .filter(|c| jopen.contains(c))
        .copied()
        .collect();
    let expect_journal_only: BTreeSet<u64> = jopen
        .iter()
        .filter(|c| !venue_ours.contains_key(c))
        .copied()
        .collect();
    let expect_venue_only: BTreeSet<String> = venue_ours
        .iter()
        .filter(|(c, _)| !jopen.contains(c))
        .map(|(_, t)| (*t).clone())
        .collect();
    let mut got_journal_only = BTreeSet::new();
    let mut got_venue_only = BTreeSet::new();
    let mut got_foreign = BTreeSet::new();
    for (_, f) in findings {
        match f["finding"].as_str() {
            Some("journal_only") => {
                got_journal_only.insert(f["client_order_id"].as_u64().unwrap_or(0));
            }
            Some("venue_only") => {
                got_venue_only.insert(
                    f["order"]["client_order_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            Some("foreign") => {
                got_foreign.insert(
                    f["order"]["client_order_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            _ => fail(format!("unknown reconcile finding {f}")),
        }
    }
    if summary["matched"].as_u64() != Some(matched.len() as u64) {
        fail(format!(
            "reconciliation matched {} open orders, the venue and the journal share {} ({:?})",
            summary["matched"],
            matched.len(),
            matched.iter().map(|c| cid_text(*c)).collect::<Vec<_>>()
        ));
    }
    if got_journal_only != expect_journal_only {
        fail(format!(
            "journal-only findings {:?}, expected {:?}",
            got_journal_only
                .iter()
                .map(|c| cid_text(*c))
                .collect::<Vec<_>>(),
            expect_journal_only
                .iter()
                .map(|c| cid_text(*c))
                .collect::<Vec<_>>()
        ));
    }
    if got_venue_only != expect_venue_only {
        fail(format!(
            "venue-only findings {got_venue_only:?}, expected {expect_venue_only:?}"
        ));
    }
    let expect_foreign: BTreeSet<String> = foreign.into_iter().cloned().collect();
    if got_foreign != expect_foreign {
        fail(format!(
            "foreign findings {got_foreign:?}, expected {expect_foreign:?}"
        ));
    }
    // The engine's view after reconciliation (journal open orders, closed where journal-only,
    // adopted where venue-only) is the venue's.
    let mut view: BTreeSet<String> = jopen
        .iter()
        .filter(|c| !got_journal_only.contains(c))
        .map(|c| cid_text(*c))
        .collect();
    view.extend(got_venue_only.iter().cloned());
    view.extend(got_foreign.iter().cloned());
    if view != venue.open_orders {
        fail(format!(
            "after reconciliation the engine's open orders are {view:?}, the venue's {:?}",
            venue.open_orders
        ));
    }
    // Balances: what reconciliation journaled is what the venue holds.
    let balances: Vec<(String, String, String)> = summary["balances"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    let t = |i: usize| b[i].as_str().unwrap_or_default().to_string();
                    (t(0), t(1), t(2))
                })
                .collect()
        })
        .unwrap_or_default();
    let sorted = |mut v: Vec<(String, String, String)>| {
        v.sort();
        v
    };
    if sorted(balances.clone()) != sorted(venue.balances.clone()) {
        fail(format!(
            "reconciliation journaled balances {balances:?}, the venue holds {:?}",
            venue.balances
        ));
    }
    // The summary line says the same as the journal.
    let expect_line = format!(
        "reconciliation: {} open orders at the venue, {} open in the journal, {} matched, {} discrepancies",
        venue.open_orders.len(),
        jopen.len(),
        matched.len(),
        expect_journal_only.len() + expect_venue_only.len() + expect_foreign.len()
    );
    if !line.starts_with(&expect_line) {
        fail(format!(
            "summary line {line:?}, expected {expect_line:?}..."
        ));
    }
}

/// Orders the reconciliations closed locally (journal-only findings) and adopted (venue-only).
fn reconciled(reconcile: &[(u64, Value)]) -> (BTreeSet<u64>, BTreeSet<String>) {
    let closed = reconcile
        .iter()
        .filter(|(_, f)| f["finding"] == "journal_only")
        .filter_map(|(_, f)| f["client_order_id"].as_u64())
        .collect();
    let adopted = reconcile
        .iter()
        .filter(|(_, f)| f["finding"] == "venue_only")
        .filter_map(|(_, f)| f["order"]["client_order_id"].as_str().map(str::to_string))
        .collect();
    (closed, adopted)
}

/// The base-asset position the journals imply (the start plus every journaled fill, on the side
/// the venue has for the order), and the venue's own account of it.
fn positions(venue: &VenueSnapshot, updates: &[OrderUpdate]) -> (i128, i128) {
    let journal = journal_orders(updates);
    let mut journal_position = START_BTC;
    let mut venue_position = START_BTC;
    for o in &venue.all_orders {
        let sign = if o["side"] == "BUY" { 1 } else { -1 };
        venue_position += sign * dec8(o["executedQty"].as_str().unwrap_or("0"));
        let text = o["clientOrderId"].as_str().unwrap_or_default();
        if let Some(j) =
            parse_client_id(PREFIX.as_bytes(), text.as_bytes()).and_then(|cid| journal.get(&cid))
        {
            journal_position += sign * j.cum;
        }
    }
    (journal_position, venue_position)
}

/// After a restart's reconciliation: the position the journal gives is the venue's (`None`), or
/// what differs.
fn position_mismatch(venue: &VenueSnapshot, updates: &[OrderUpdate]) -> Option<String> {
    let (journal_position, _) = positions(venue, updates);
    (journal_position != venue.balance("BTC")).then(|| {
        format!(
            "journal {journal_position}e-8 BTC, venue {}e-8",
            venue.balance("BTC")
        )
    })
}

/// The venue's orders against the journals: nothing acknowledged lost (every venue order known
/// to the journals, with the quantity the venue executed and closed if the venue closed it),
/// nothing sent twice, nothing journaled as acknowledged that the venue never had.
fn check_orders(
    venue: &VenueSnapshot,
    updates: &[OrderUpdate],
    reconcile: &[(u64, Value)],
    run_of: &BTreeMap<u64, usize>,
    failures: &mut Vec<String>,
) {
    let journal = journal_orders(updates);
    let mut fail = |m: String| failures.push(format!("at the end: {m}"));
    // No order sent twice: one venue order per client order id, and no "Duplicate order sent."
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &venue.all_orders {
        *seen
            .entry(o["clientOrderId"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        fail(format!(
            "client order ids at the venue more than once (sent twice): {twice:?}"
        ));
    }
    let dup_rejects: Vec<String> = updates
        .iter()
        .filter(|u| u.venue_error == -2010)
        .map(|u| cid_text(u.client_order_id))
        .collect();
    if !dup_rejects.is_empty() {
        fail(format!(
            "the venue refused orders as sent twice (-2010): {dup_rejects:?}"
        ));
    }
    let (closed, adopted) = reconciled(reconcile);
    let mut unknown = Vec::new();
    let mut lost = Vec::new();
    for o in &venue.all_orders {
        let text = o["clientOrderId"].as_str().unwrap_or_default();
        let status = o["status"].as_str().unwrap_or_default();
        let executed = dec8(o["executedQty"].as_str().unwrap_or("0"));
        let Some(cid) = parse_client_id(PREFIX.as_bytes(), text.as_bytes()) else {
            fail(format!(
                "an order at the venue the engine did not name: {o}"
            ));
            continue;
        };
        // Known at all: an OrderUpdate for it, or a reconcile finding about it.
        let Some(j) = journal.get(&cid) else {
            if !adopted.contains(text) {
                unknown.push(format!("{text} ({status}, executed {executed}e-8)"));
            }
            continue;
        };
        // Known as the venue knows it: its executed quantity, and closed if the venue closed
        // it (by its own journal or by a reconciliation's journal-only finding).
        let venue_open = matches!(status, "NEW" | "PARTIALLY_FILLED");
        let engine_closed = j.state.is_terminal() || closed.contains(&cid);
        if j.cum != executed || engine_closed == venue_open {
            lost.push(format!(
                "{text} (run {}): venue {status} executed {executed}e-8; journal {} cum {}e-8{}",
                run_of.get(&cid).map_or("?".into(), |r| r.to_string()),
                j.state.name(),
                j.cum,
                if closed.contains(&cid) {
                    ", closed by reconciliation as journal-only"
                } else {
                    ""
                }
            ));
        }
    }
    if !unknown.is_empty() {
        fail(format!(
            "{} orders at the venue are in no journal: {}",
            unknown.len(),
            unknown.join("; ")
        ));
    }
    if !lost.is_empty() {
        fail(format!(
            "{} of {} venue orders have an outcome the journals do not know (acknowledged by the venue, lost to the engine): {}",
            lost.len(),
            venue.all_orders.len(),
            lost.join("; ")
        ));
    }
    // Orders the journal says the venue acknowledged must exist there.
    let at_venue: BTreeSet<u64> = venue
        .all_orders
        .iter()
        .filter_map(|o| {
            parse_client_id(
                PREFIX.as_bytes(),
                o["clientOrderId"].as_str().unwrap_or("").as_bytes(),
            )
        })
        .collect();
    let phantom: Vec<String> = journal
        .iter()
        .filter(|(c, j)| {
            matches!(
                j.state,
                OrderState::Acked | OrderState::PartiallyFilled | OrderState::Filled
            ) && !at_venue.contains(c)
        })
        .map(|(c, j)| format!("{} ({})", cid_text(*c), j.state.name()))
        .collect();
    if !phantom.is_empty() {
        fail(format!(
            "orders the journal has acknowledged that the venue never had: {phantom:?}"
        ));
    }
    // Positions: the venue's balance is its start plus its fills (the simulator is sane), and
    // the journal's fills give the same.
    let (journal_position, venue_position) = positions(venue, updates);
    if venue_position != venue.balance("BTC") {
        fail(format!(
            "the venue's BTC balance {}e-8 is not its start plus its orders' fills {venue_position}e-8",
            venue.balance("BTC")
        ));
    }
    if journal_position != venue.balance("BTC") {
        fail(format!(
            "position: the journal's fills give {journal_position}e-8 BTC, the venue holds {}e-8",
            venue.balance("BTC")
        ));
    }
}

/// The tests of this file run one at a time: each drives a 300x market and engines that need
/// the machine's two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn sigkill_mid_run_with_orders_in_flight_loses_nothing_and_sends_nothing_twice() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let venue = start_venue();
    let client = VenueClient::new(&venue);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let gw = journal.join("gateway");
    let rc_dir = journal.join("reconcile");
    let cfg = dir.path().join("crash.toml");
    std::fs::write(&cfg, engine_config(&venue.rest_url(), &venue.ws_url())).unwrap();

    let mut rng = Rng(SEED);
    let mut failures: Vec<String> = Vec::new();
    let mut runs: Vec<RunRecord> = Vec::new();
    // Which run first journaled each order.
    let mut run_of: BTreeMap<u64, usize> = BTreeMap::new();
    // Starts at which the journal's position was not the venue's.
    let mut position_mismatches: Vec<String> = Vec::new();
    // Orders closed by a reconciliation as journal-only so far, and starts that found them
    // open in the journal again.
    let mut closed_before: BTreeSet<u64> = BTreeSet::new();
    let mut reopened: Vec<String> = Vec::new();

    for run in 0..=KILLED_RUNS {
        let last = run == KILLED_RUNS;
        // No engine is alive: the venue and the journals hold still (once in-flight orders
        // have reached the venue).
        let venue_before = settled_snapshot(&client);
        let updates_before = order_updates(&gw);
        let journal_before = journal_orders(&updates_before);
        let rc_before = reconcile_records(&rc_dir).len();

        let mut engine = Engine::start(
            &cfg,
            &journal,
            dir.path().join(format!("run{run}.stderr")),
            &venue,
        );
        let line = engine.wait_reconciled(run, Duration::from_secs(120));
        let reconciled_at = Instant::now();
        let rc_after = reconcile_records(&rc_dir);
        let reconcile_ts = rc_after.last().map_or(0, |(ts, _)| *ts);
        check_reconciliation(
            run,
            &line,
            rc_after.get(rc_before..).unwrap_or(&[]),
            &journal_before,
            &venue_before,
            &mut failures,
        );
        // An order a reconciliation closed locally (journal-only) stays closed: a later start
        // must not find it open in the journal again.
        let (closed_now, _) = reconciled(rc_after.get(rc_before..).unwrap_or(&[]));
        let again: Vec<String> = closed_now
            .intersection(&closed_before)
            .map(|c| cid_text(*c))
            .collect();
        if !again.is_empty() {
            reopened.push(format!("start {run}: {}", again.join(", ")));
        }
        closed_before.extend(closed_now);
        // The journal as reconciliation left it: the gateway journals what it resolved before
        // the summary line is printed.
        if let Some(m) = position_mismatch(&venue_before, &order_updates(&gw)) {
            position_mismatches.push(format!("start {run}: {m}"));
        }

        let mode;
        if last {
            mode = "clean";
            std::thread::sleep(Duration::from_secs(8));
            engine.signal(libc::SIGINT);
        } else if run % 2 == 0 {
            // Kill the moment the gateway journals a new order: it is in flight at the venue
            // (20 s of market time, ~67 ms of wall time) when the engine dies.
            mode = "in-flight";
            let armed = reconciled_at + rng.millis(1000, 3000);
            let deadline = reconciled_at + Duration::from_secs(30);
            let mut tail = codec::open_tailer(&gw).expect("gateway journal");
            let mut seen = 0usize;
            'watch: loop {
                while let Some(r) = tail.next().expect("gateway journal readable") {
                    if r.kind != RecordKind::OrderUpdate.as_u16() {
                        continue;
                    }
                    seen += 1;
                    if seen <= updates_before.len() || Instant::now() < armed {
                        continue;
                    }
                    let u: OrderUpdate = codec::decode(r.payload).expect("order update");
                    if matches!(u.to, OrderState::New | OrderState::Submitted) {
                        break 'watch;
                    }
                }
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            engine.signal(libc::SIGKILL);
        } else {
            mode = "random";
            std::thread::sleep(rng.millis(2000, 6000));
            engine.signal(libc::SIGKILL);
        }
        let ran_secs = reconciled_at.elapsed().as_secs_f64();
        let status = engine.wait(Duration::from_secs(60));
        let exit = match status.signal() {
            Some(s) => format!("signal {s}"),
            None => format!("exit {}", status.code().unwrap_or(-1)),
        };
        if last {
            if !status.success() {
                failures.push(format!(
                    "final run: SIGINT did not stop it cleanly ({exit})\n{}\n{}",
                    engine.stdout(),
                    engine.stderr_tail()
                ));
            }
            for label in ["run ended: signal", "gateway:"] {
                if !engine.stdout().lines().any(|l| l.starts_with(label)) {
                    failures.push(format!(
                        "final run: no {label:?} line in its summary:\n{}",
                        engine.stdout()
                    ));
                }
            }
        } else if status.signal() != Some(libc::SIGKILL) {
            failures.push(format!(
                "run {run}: ended with {exit} instead of being killed mid-run\n{}\n{}",
                engine.stdout(),
                engine.stderr_tail()
            ));
        }

        // What the run journaled.
        let updates_after = order_updates(&gw);
        let mine = &updates_after[updates_before.len().min(updates_after.len())..];
        let early: Vec<_> = mine.iter().filter(|u| u.time_ns < reconcile_ts).collect();
        if !early.is_empty() {
            failures.push(format!(
                "run {run}: {} order updates journaled before its reconciliation ({} ns): {early:?}",
                early.len(),
                reconcile_ts
            ));
        }
        let after = journal_orders(&updates_after);
        let mut new_orders = 0;
        let mut in_flight = 0;
        let firsts: BTreeSet<u64> = mine
            .iter()
            .map(|u| u.client_order_id)
            .filter(|c| *c != 0 && !journal_before.contains_key(c))
            .collect();
        for c in firsts {
            run_of.insert(c, run);
            new_orders += 1;
            if matches!(after[&c].state, OrderState::New | OrderState::Submitted) {
                in_flight += 1;
            }
        }
        runs.push(RunRecord {
            mode,
            ran_secs,
            reconciliation: line,
            updates_before: updates_before.len(),
            updates_after: updates_after.len(),
            new_orders,
            in_flight,
            exit,
        });
        drop(engine);
    }

    // After the final, clean run: the venue against everything the engine journaled.
    let venue_end = settled_snapshot(&client);
    let updates_end = order_updates(&gw);
    let rc_end = reconcile_records(&rc_dir);
    check_orders(&venue_end, &updates_end, &rc_end, &run_of, &mut failures);

    if !position_mismatches.is_empty() {
        failures.push(format!(
            "at {} of {} starts the position the journal gives is not the venue's: {}",
            position_mismatches.len(),
            KILLED_RUNS + 1,
            position_mismatches.join("; ")
        ));
    }
    if !reopened.is_empty() {
        failures.push(format!(
            "orders a reconciliation closed as journal-only were open in the journal again at a later start (the journal never records the correction): {}",
            reopened.join("; ")
        ));
    }
    // Every start reconciled: one summary record per run.
    let summaries = rc_end
        .iter()
        .filter(|(_, f)| f["finding"] == "summary")
        .count();
    if summaries != KILLED_RUNS + 1 {
        failures.push(format!(
            "{summaries} reconciliation summaries journaled for {} starts",
            KILLED_RUNS + 1
        ));
    }
    // The journals survived the kills whole.
    for sub in ["", "strategy", "gateway", "reconcile"] {
        let d = journal.join(sub);
        let out = Command::new(env!("CARGO_BIN_EXE_algo-engine"))
            .args(["journal", "inspect"])
            .arg(&d)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("journal inspect");
        let s = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !s.contains("crc: ok") {
            failures.push(format!(
                "journal {}: inspect says\n{s}{}",
                d.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    // The kills really landed mid-run with orders going out.
    let killed = &runs[..KILLED_RUNS];
    let with_orders = killed.iter().filter(|r| r.new_orders > 0).count();
    let in_flight = killed.iter().filter(|r| r.in_flight > 0).count();
    if with_orders < 3 || in_flight < 2 {
        failures.push(format!(
            "the kills did not hit a trading engine often enough: {with_orders} killed runs had sent orders (want >= 3), {in_flight} were killed with an order in flight (want >= 2)"
        ));
    }

    let mut table = String::new();
    for (i, r) in runs.iter().enumerate() {
        table.push_str(&format!(
            "run {i:2} {:9} ran {:5.1}s  updates {:4} -> {:4}  new orders {:2}  in flight {}  {}  | {}\n",
            r.mode,
            r.ran_secs,
            r.updates_before,
            r.updates_after,
            r.new_orders,
            r.in_flight,
            r.exit,
            r.reconciliation
        ));
    }
    table.push_str(&format!(
        "venue: {} orders, open {:?}, balances {:?}; test took {:.1?}\n",
        venue_end.all_orders.len(),
        venue_end.open_orders,
        venue_end.balances,
        started.elapsed()
    ));
    eprintln!("{table}");
    venue.shutdown();
    assert!(
        failures.is_empty(),
        "{} crash-safety violations:\n- {}\n\n{table}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// A gateway journal record: order `cid` (BTCUSDT, instrument 0, 0.001 BTC) moving from
/// `from` to `to` at `time_ns`, as the gateway writes it.
fn journaled(
    cid: u64,
    from: OrderState,
    to: OrderState,
    qty_scale: u8,
    time_ns: u64,
) -> OrderUpdate {
    OrderUpdate {
        client_order_id: cid,
        venue_order_id: 0,
        cum_qty: hotpath::fixed::Qty(0),
        orig_qty: hotpath::fixed::Qty(10i64.pow(u32::from(qty_scale)) / 1000),
        time_ns,
        venue_error: 0,
        instrument: hotpath::instrument::InstrumentId(0),
        from,
        to,
        cause: hotpath::gateway::UpdateCause::Intent,
        alert: hotpath::gateway::OrderAlert::None,
        qty_scale,
        reserved: [0; 3],
    }
}

/// Runs the engine on `journal` until its start-up reconciliation, stops it with SIGINT and
/// returns its `reconciliation:` line.
fn start_and_stop(
    cfg: &Path,
    journal: &Path,
    stderr: PathBuf,
    venue: &SimVenue,
    run: usize,
) -> String {
    let mut engine = Engine::start(cfg, journal, stderr, venue);
    let line = engine.wait_reconciled(run, Duration::from_secs(60));
    engine.signal(libc::SIGINT);
    let status = engine.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "run {run}: {status}\n{}\n{}",
        engine.stdout(),
        engine.stderr_tail()
    );
    line
}

#[test]
fn a_restart_takes_what_became_of_orders_a_crash_left_open_from_the_venue_and_reports_it_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use hotpath::event::{ExecEvent, ExecKind};
    use OrderState::*;
    let venue = start_venue_with(LatencyModel::Zero, StartMode::Immediately);
    let client = VenueClient::new(&venue);
    // A book to trade against.
    let deadline = Instant::now() + Duration::from_secs(30);
    let best_bid = loop {
        let (_, v) = client
            .0
            .call("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=5", false)
            .expect("depth");
        let bid = v["bids"][0][0].as_str().map(dec8);
        if let (Some(bid), false) = (bid, v["asks"].as_array().is_none_or(|a| a.is_empty())) {
            break bid;
        }
        assert!(Instant::now() < deadline, "the simulator has no book: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Far below the market: it rests. Whole dollars are on the tick.
    let low = format!("{}", best_bid * 8 / 10 / 100_000_000);
    let qs = coldpath::import::builtin_spec(hotpath::instrument::Venue::BinanceSpot, "BTCUSDT")
        .expect("BTCUSDT")
        .qty_scale;
    let (a, b, c, d) = (0xa1u64, 0xb2u64, 0xc3u64, 0xd4u64);
    let order = |cid: u64, rest: &str| {
        client.send(
            "POST",
            "/api/v3/order",
            &format!(
                "symbol=BTCUSDT&side=BUY&quantity=0.001&newClientOrderId={}&{rest}",
                cid_text(cid)
            ),
        )
    };
    // a: in flight when the engine died; the venue filled it.
    let filled = order(a, "type=MARKET");
    assert_eq!(filled["status"], "FILLED", "{filled}");
    // b: acknowledged and resting at the venue.
    order(b, &format!("type=LIMIT&timeInForce=GTC&price={low}"));
    // d: acknowledged, then canceled at the venue while no engine listened.
    order(d, &format!("type=LIMIT&timeInForce=GTC&price={low}"));
    let canceled = client.send(
        "DELETE",
        "/api/v3/order",
        &format!("symbol=BTCUSDT&origClientOrderId={}", cid_text(d)),
    );
    assert_eq!(canceled["status"], "CANCELED", "{canceled}");
    // c: journaled as sent long ago, never reached the venue.
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let gw = journal.join("gateway");
    std::fs::create_dir_all(&gw).unwrap();
    {
        let mut app =
            ringbuffers::journal::Appender::open(&gw, codec::journal_config()).expect("journal");
        let now = now_ms() * 1_000_000;
        for (cid, states, t) in [
            (a, &[New, Submitted][..], now),
            (b, &[New, Submitted, Acked][..], now),
            (c, &[New, Submitted][..], 1_000_000),
            (d, &[New, Submitted, Acked][..], now),
        ] {
            let mut from = OrderState::Unknown;
            for &to in states {
                codec::append(&mut app, &journaled(cid, from, to, qs, t), 0, t).unwrap();
                from = to;
            }
        }
        app.flush().unwrap();
    }
    let cfg = dir.path().join("venue.toml");
    std::fs::write(&cfg, venue_config(&venue.rest_url(), &venue.ws_url(), 0)).unwrap();

    let line = start_and_stop(&cfg, &journal, dir.path().join("run0.stderr"), &venue, 0);
    assert!(
        line.starts_with(
            "reconciliation: 1 open orders at the venue, 4 open in the journal, 1 matched, 3 discrepancies"
        ),
        "{line}"
    );
    // Each journal-only order with what the venue said about it.
    let findings: BTreeMap<u64, (String, String)> = reconcile_records(&journal.join("reconcile"))
        .into_iter()
        .filter(|(_, f)| f["finding"] == "journal_only")
        .map(|(_, f)| {
            let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
            (
                f["client_order_id"].as_u64().unwrap(),
                (text(&f["resolution"]), text(&f["venue"]["status"])),
            )
        })
        .collect();
    let expect = |r: &str, s: &str| (r.to_string(), s.to_string());
    assert_eq!(
        findings,
        BTreeMap::from([
            (a, expect("closed_at_venue", "FILLED")),
            (c, expect("never_acknowledged", "-")),
            (d, expect("closed_at_venue", "CANCELED")),
        ])
    );
    // The gateway journal now has the venue's final states and a's fill.
    let updates = order_updates(&gw);
    let orders = journal_orders(&updates);
    let state = |cid: u64| orders[&cid].state;
    assert_eq!(
        [state(a), state(b), state(c), state(d)],
        [Filled, Acked, Rejected, Canceled]
    );
    let snapshot = client.snapshot();
    let executed = dec8(filled["executedQty"].as_str().unwrap());
    assert_eq!(orders[&a].cum, executed);
    assert!(
        updates
            .iter()
            .any(|u| u.client_order_id == c && u.to == Rejected && u.venue_error == -2013),
        "c closed as unknown to the venue"
    );
    assert_eq!(position_mismatch(&snapshot, &updates), None);
    // a's fills as the venue's trades: each with its trade id, quantity and fee (from
    // `myTrades`), the last one completing it.
    let mut fills = Vec::new();
    let mut complete = Vec::new();
    let mut t = codec::open_tailer(&gw).unwrap();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::Exec.as_u16() {
            let x: ExecEvent = codec::decode(r.payload).unwrap();
            if x.client_order_id == a && matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) {
                fills.push((
                    x.trade_id,
                    to_scale8(x.last_qty.0, x.qty_scale),
                    to_scale8(x.fee, x.fee_scale),
                ));
            }
            if x.client_order_id == a && x.kind == ExecKind::Fill {
                complete.push(to_scale8(x.cum_qty.0, x.qty_scale));
            }
        }
    }
    let trades: Vec<(u64, i128, i128)> = filled["fills"]
        .as_array()
        .expect("a FULL response")
        .iter()
        .map(|f| {
            (
                f["tradeId"].as_u64().unwrap(),
                dec8(f["qty"].as_str().unwrap()),
                dec8(f["commission"].as_str().unwrap()),
            )
        })
        .collect();
    assert!(
        trades.iter().all(|t| t.2 > 0),
        "the venue charged fees: {trades:?}"
    );
    assert_eq!(fills, trades, "a's trades, each once, with their fees");
    assert_eq!(complete, vec![executed], "a completed once");

    // The next start finds them closed: only b, still open at the venue and in the journal.
    let line = start_and_stop(&cfg, &journal, dir.path().join("run1.stderr"), &venue, 1);
    assert!(
        line.starts_with(
            "reconciliation: 1 open orders at the venue, 1 open in the journal, 1 matched, 0 discrepancies"
        ),
        "{line}"
    );
    venue.shutdown();
}

/// A position open when the engine is killed is the next run's to manage: the restart rebuilds
/// it from the gateway journal's fills (`RiskEngine::inherit`), prints it, and its risk engine
/// closes it (stop, dynamic exit or hold limit) with the trade journaled under the entry order
/// of the killed run. A restart that started flat would never close it: the account would keep
/// a position no stop watches.
#[test]
fn a_position_open_at_a_kill_is_managed_and_closed_by_the_next_run() {
    use hotpath::event::Side;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let venue = start_venue();
    let client = VenueClient::new(&venue);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let gw = journal.join("gateway");
    let cfg = dir.path().join("restart.toml");
    // The loose strategy with the risk layer on (sizing, exit monitor): the defaults.
    std::fs::write(
        &cfg,
        format!(
            "{}{TRADING}",
            venue_config(&venue.rest_url(), &venue.ws_url(), 110)
        ),
    )
    .unwrap();

    // Run 1: killed the moment its journal shows a position (an entry filled, its exit not yet).
    let mut first = Engine::start(&cfg, &journal, dir.path().join("run0.stderr"), &venue);
    first.wait_reconciled(0, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tail = codec::open_tailer(&gw).expect("gateway journal");
    let mut book = FillBook::default();
    loop {
        book.read(&mut tail);
        if book.net != 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run 0 never held a position\n{}\n{}",
            first.stdout(),
            first.stderr_tail()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    first.signal(libc::SIGKILL);
    first.wait(Duration::from_secs(30));
    // Whatever else the killed run journaled in its last instant counts too.
    book.read(&mut tail);
    let FillBook {
        net,
        opened_by,
        qty_scale,
    } = book;
    assert_ne!(net, 0, "the kill came after the position closed");

    // Run 2: inherits it and closes it.
    let mut second = Engine::start(&cfg, &journal, dir.path().join("run1.stderr"), &venue);
    second.wait_reconciled(1, Duration::from_secs(120));
    let inherited = second
        .line_starting("inherited position:")
        .unwrap_or_else(|| panic!("run 1 inherited nothing:\n{}", second.stdout()));
    let side = if net > 0 { "long" } else { "short" };
    let qty = hotpath::fixed::Decimal::new(net.abs(), qty_scale).to_string();
    assert!(
        inherited.starts_with(&format!("inherited position: BTCUSDT {side} {qty} at "))
            && inherited.contains(&format!("(opened by {}", cid_text(opened_by))),
        "journal: {side} {qty} opened by {}; run 1 says {inherited:?}",
        cid_text(opened_by)
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let close = loop {
        let closes = common::journal_closes(&journal);
        if let Some(c) = closes.into_iter().find(|c| c.entry_cid == opened_by) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "run 1 never closed the inherited position ({inherited})\n{}\n{}",
            second.stdout(),
            second.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let entry_side = if net > 0 { Side::Buy } else { Side::Sell };
    assert_eq!(close.side, entry_side, "{close:?}");
    assert!(close.close_ns >= close.open_ns, "{close:?}");
    second.signal(libc::SIGINT);
    let status = second.wait(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", second.stderr_tail());
    // The venue holds what the journal's fills say: nothing was closed twice.
    let venue_end = settled_snapshot(&client);
    if let Some(m) = position_mismatch(&venue_end, &order_updates(&gw)) {
        panic!("after the restart: {m}");
    }
    venue.shutdown();
}

/// The net position the gateway journal's fills give, and the order that opened it.
#[derive(Default)]
struct FillBook {
    /// Signed quantity mantissa.
    net: i64,
    /// Client order id of the fill that last took it off flat.
    opened_by: u64,
    qty_scale: u8,
}

impl FillBook {
    /// Folds in every fill the tailer has not read yet.
    fn read(&mut self, tail: &mut ringbuffers::journal::Tailer) {
        use hotpath::event::{ExecEvent, ExecKind};
        while let Some(r) = tail.next().expect("gateway journal readable") {
            if r.kind != RecordKind::Exec.as_u16() {
                continue;
            }
            let x: ExecEvent = codec::decode(r.payload).expect("execution");
            if !matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) {
                continue;
            }
            if self.net == 0 {
                self.opened_by = x.client_order_id;
            }
            self.net += x.last_qty.0 * x.side.sign();
            self.qty_scale = x.qty_scale;
        }
    }
}
