//! Start-up reconciliation: the venue's orders and balances against the state rebuilt from the
//! journal, before any trading.
//!
//! Why: after a crash or a restart the journal says which orders the engine believes are open,
//! but only the venue knows which really are (an order may have filled, been cancelled by the
//! venue, or been accepted after the last journaled transition). DESIGN.md: the venue wins,
//! every discrepancy is journaled, and no trading starts until this passes.
//!
//! How the pieces fit: [`journal_state`] replays the gateway journal's `OrderUpdate` records to
//! the last state of every order ([`JournaledOrder`]); a [`VenueClient`] asks the venue over
//! signed REST (blocking, cold path; clock offset from `GET time`) for its open orders and
//! balances, and on USD-M its positions ([`VenueClient::state`]: spot `/api/v3/openOrders` and
//! `/api/v3/account`, USD-M `/fapi/v1/openOrders` and `/fapi/v2/account`), and [`query_journal_only`] asks `GET order` by client
//! order id about every order the journal holds open that the venue does not list as open
//! (filled, canceled or expired while no engine listened, or never arrived: `-2013`).
//! [`reconcile`] compares them by client order id (the gateway derives `newClientOrderId` from
//! the intent id, so the mapping is exact) into a [`Report`]: its findings, which
//! [`journal_report`] appends as one `Reconcile` record each (JSON text) to a journal of its
//! own that the notifier and metrics tail like any other, and its [`Recovery`] list, which the
//! engine hands to the gateway (`GatewayStage::recover`) before trading: the venue's final
//! state and fills of every resolved order are journaled in the gateway journal, so the next
//! start finds them closed, and orders open at the venue are tracked again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotpath::codec::{self, decode, open_tailer, RecordKind};
use hotpath::event::{ExecEvent, ExecKind};
use hotpath::gateway::{
    client_id_text, parse_client_id, JournaledOrder, Market, OrderState, OrderUpdate,
};
use hotpath::instrument::InstrumentId;
use hotpath::venue::binance::sign::{Credentials, Signer, SIGNATURE_HEX_LEN};
use ringbuffers::journal::Appender;
use serde::Serialize;
use serde_json::Value;

/// Binance's "Order does not exist.".
const ERR_NO_SUCH_ORDER: i64 = -2013;

/// Why reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The venue could not be asked.
    #[error("venue: {0}")]
    Venue(String),
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(String),
}

/// One order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueOrder {
    /// Symbol.
    pub symbol: String,
    /// `clientOrderId`.
    pub client_order_id: String,
    /// `orderId`.
    pub order_id: u64,
    /// `status` (`NEW`, `PARTIALLY_FILLED`, `FILLED`, `CANCELED`, `EXPIRED`, ...).
    pub status: String,
    /// `executedQty` as the venue prints it.
    pub executed_qty: String,
    /// The venue's JSON object as received (handed to the gateway's recovery; not journaled
    /// twice).
    #[serde(skip)]
    pub raw: String,
}

impl VenueOrder {
    fn from_json(o: &Value) -> VenueOrder {
        let text = |k: &str| o[k].as_str().unwrap_or_default().to_string();
        VenueOrder {
            symbol: text("symbol"),
            client_order_id: text("clientOrderId"),
            order_id: o["orderId"].as_u64().unwrap_or(0),
            status: text("status"),
            executed_qty: text("executedQty"),
            raw: o.to_string(),
        }
    }

    /// Whether the venue has filled any of it.
    pub fn has_fills(&self) -> bool {
        nonzero(&self.executed_qty)
    }

    /// Whether the venue still works the order.
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }
}

/// A decimal the venue printed (`"0.00100000"`, `"-0.010"`) is not zero.
fn nonzero(s: &str) -> bool {
    s.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// One open position of a derivatives account (USD-M), as the venue prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenuePosition {
    /// Symbol.
    pub symbol: String,
    /// `positionSide`: `BOTH` in one-way mode, `LONG`/`SHORT` in hedge mode.
    pub side: String,
    /// `positionAmt`: signed, negative for a short.
    pub amount: String,
    /// `entryPrice`.
    pub entry_price: String,
}

/// What the venue says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VenueState {
    /// Open orders.
    pub open_orders: Vec<VenueOrder>,
    /// Balances with anything in them, as printed: spot (asset, free, locked); USD-M (asset,
    /// wallet balance, available balance).
    pub balances: Vec<(String, String, String)>,
    /// Open positions (USD-M; spot positions are balances).
    pub positions: Vec<VenuePosition>,
    /// Venue time minus local time at the request, ms.
    pub clock_offset_ms: i64,
}

/// The last journaled state of one order (see [`JournaledOrder`]).
pub type JournalOrder = JournaledOrder;

/// What the journal says: orders by intent id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    /// Every order ever journaled, at its last state.
    pub orders: BTreeMap<u64, JournalOrder>,
    /// Every fill the gateway journaled, in journal order (instrument ids of the run that
    /// journaled each): what positions the earlier runs left are rebuilt from.
    pub fills: Vec<ExecEvent>,
}

impl JournalState {
    /// Orders the journal believes are open (not in a terminal state).
    pub fn open(&self) -> impl Iterator<Item = (&u64, &JournalOrder)> {
        self.orders.iter().filter(|(_, o)| !o.state.is_terminal())
    }

    /// Folds one `OrderUpdate` record in.
    pub fn apply(&mut self, u: &OrderUpdate) {
        match self.orders.get_mut(&u.client_order_id) {
            Some(o) => o.apply(u),
            None => {
                if let Some(o) = JournaledOrder::from_update(u) {
                    self.orders.insert(u.client_order_id, o);
                }
            }
        }
    }
}

/// A difference between the venue and the journal. The venue wins in every case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The journal has this order open; the venue does not (it filled, was cancelled or never
    /// arrived). The venue was asked about it (`GET order`): `resolution` says what the
    /// gateway journals for it ([`Resolution`]).
    JournalOnly {
        /// Intent id.
        client_order_id: u64,
        /// Last journaled state.
        journal_state: String,
        /// What became of it.
        resolution: Resolution,
        /// The venue's account of it, if the venue knows it.
        venue: Option<VenueOrder>,
    },
    /// One of our orders is open at the venue but unknown to (or closed in) the journal: it is
    /// adopted as open.
    VenueOnly {
        /// The venue's view.
        order: VenueOrder,
        /// Last journaled state, if the journal knew it at all.
        journal_state: Option<String>,
    },
    /// An open order at the venue that this engine did not place (another client id scheme).
    Foreign {
        /// The venue's view.
        order: VenueOrder,
    },
    /// The journal's fills leave another position than the venue holds (USD-M, where the
    /// venue states positions): the gateway journals correcting fills of no order and the
    /// strategy takes the venue's position.
    Position {
        /// Symbol.
        symbol: String,
        /// The position the journal's fills give (signed, venue decimals).
        journal: String,
        /// The venue's `positionAmt`.
        venue: String,
        /// The venue's `entryPrice`.
        venue_entry_price: String,
    },
}

/// How a journal-only order is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The venue closed it (filled, canceled, expired, rejected): its final state and fills
    /// are journaled.
    ClosedAtVenue,
    /// The venue does not know it (`-2013`): it never arrived and is closed locally.
    NeverAcknowledged,
    /// Not asked (its instrument is not traded by this run): left as the journal has it.
    NotQueried,
}

/// What the venue said about one journal-open order it does not list as open.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `GET order` found it.
    Known(VenueOrder),
    /// `-2013`: the venue does not know it.
    Unknown,
    /// Not asked, and why.
    NotAsked(String),
}

/// An order the gateway must put back or close before trading: the journal's last word on it
/// and the venue's (`None`: the venue does not know it). See
/// `hotpath::gateway::GatewayStage::recover`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Intent id.
    pub client_order_id: u64,
    /// The journal's last word, if it had the order.
    pub journaled: Option<JournalOrder>,
    /// The venue's, if it knows the order.
    pub venue: Option<VenueOrder>,
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Open orders that agree.
    pub matched: usize,
    /// Everything that differs.
    pub findings: Vec<Finding>,
    /// The venue's balances (journaled for the record; spot positions are balances).
    pub balances: Vec<(String, String, String)>,
    /// The venue's open positions (USD-M), journaled for the record.
    pub positions: Vec<VenuePosition>,
    /// What the gateway applies before trading: every order of ours the venue lists as open
    /// (to be tracked) and every journal-open order the venue answered for (to be closed).
    #[serde(skip)]
    pub recover: Vec<Recovery>,
}

impl Report {
    /// True when venue and journal agree on every open order.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Rebuilds every order's last state, and collects every fill, from the gateway journal in `dir`
/// (an absent journal is an empty state: a first start).
pub fn journal_state(dir: &Path) -> Result<JournalState, ReconcileError> {
    let mut st = JournalState::default();
    let mut t = match open_tailer(dir) {
        Ok(t) => t,
        Err(ringbuffers::journal::JournalError::NotAJournal { .. }) => return Ok(st),
        Err(_) if !dir.exists() => return Ok(st),
        Err(e) => return Err(ReconcileError::Journal(format!("{}: {e}", dir.display()))),
    };
    loop {
        match t.next() {
            Ok(Some(r)) if r.kind == RecordKind::OrderUpdate.as_u16() => {
                let u: OrderUpdate = decode(r.payload)
                    .map_err(|e| ReconcileError::Journal(format!("order update: {e:?}")))?;
                st.apply(&u);
            }
            Ok(Some(r)) if r.kind == RecordKind::Exec.as_u16() => {
                let x: ExecEvent = decode(r.payload)
                    .map_err(|e| ReconcileError::Journal(format!("execution: {e:?}")))?;
                if matches!(x.kind, ExecKind::Fill | ExecKind::PartialFill) {
                    st.fills.push(x);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(ReconcileError::Journal(format!("{}: {e}", dir.display()))),
        }
    }
    Ok(st)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The URL without its query (the query carries the signature).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Signed REST requests to the venue (blocking, cold path), with the venue's clock offset
/// measured once at [`connect`](Self::connect).
pub struct VenueClient {
    agent: ureq::Agent,
    base: String,
    market: Market,
    key: String,
    signer: Signer,
    offset_ms: i64,
}

impl VenueClient {
    /// A client of `market`'s API at `rest_url` (`https://api.binance.com`,
    /// `https://fapi.binance.com`, or the simulator), signing with `creds`; asks the venue's
    /// time for the clock offset.
    pub fn connect(
        rest_url: &str,
        market: Market,
        creds: &Credentials,
    ) -> Result<VenueClient, ReconcileError> {
        let mut c = VenueClient {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .into(),
            base: rest_url.trim_end_matches('/').to_string(),
            market,
            key: creds.key.expose().to_string(),
            signer: Signer::new(&creds.secret),
            offset_ms: 0,
        };
        let t0 = now_ms();
        let time = c.get(c.path("time"), "", false)?;
        let t1 = now_ms();
        let server = time["serverTime"]
            .as_i64()
            .ok_or_else(|| ReconcileError::Venue("time: no serverTime".into()))?;
        c.offset_ms = server - (t0 + t1) / 2;
        Ok(c)
    }

    /// The venue clock minus the local clock, ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// The path of endpoint `what` on this market.
    fn path(&self, what: &str) -> &'static str {
        match (self.market, what) {
            (Market::Spot, "time") => "/api/v3/time",
            (Market::Spot, "order") => "/api/v3/order",
            (Market::Spot, "openOrders") => "/api/v3/openOrders",
            (Market::Spot, "trades") => "/api/v3/myTrades",
            (Market::Spot, _) => "/api/v3/account",
            (Market::UsdM, "time") => "/fapi/v1/time",
            (Market::UsdM, "order") => "/fapi/v1/order",
            (Market::UsdM, "openOrders") => "/fapi/v1/openOrders",
            (Market::UsdM, "trades") => "/fapi/v1/userTrades",
            (Market::UsdM, _) => "/fapi/v2/account",
        }
    }

    /// `GET path?params` (signed when `signed`): the JSON answer, or the venue's error.
    fn get(&self, path: &str, params: &str, signed: bool) -> Result<Value, ReconcileError> {
        match self.try_get(path, params, signed)? {
            Ok(v) => Ok(v),
            Err((code, msg)) => Err(ReconcileError::Venue(format!(
                "GET {path}: error {code}: {msg}"
            ))),
        }
    }

    /// As [`get`](Self::get), with the venue's error code and message as a value.
    fn try_get(
        &self,
        path: &str,
        params: &str,
        signed: bool,
    ) -> Result<Result<Value, (i64, String)>, ReconcileError> {
        let url = if signed {
            let query = format!(
                "{params}{}recvWindow=5000&timestamp={}",
                if params.is_empty() { "" } else { "&" },
                now_ms() + self.offset_ms
            );
            let mut hex = [0u8; SIGNATURE_HEX_LEN];
            self.signer.sign_into(&[query.as_bytes()], &mut hex);
            format!(
                "{}{path}?{query}&signature={}",
                self.base,
                std::str::from_utf8(&hex).unwrap_or_default()
            )
        } else if params.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{params}", self.base)
        };
        let fail =
            |e: &dyn std::fmt::Display| ReconcileError::Venue(format!("GET {}: {e}", redact(&url)));
        let mut req = self.agent.get(&url);
        if signed {
            req = req.header("X-MBX-APIKEY", &self.key);
        }
        let mut resp = req.call().map_err(|e| fail(&e))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| fail(&e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| fail(&e))?;
        if status == 200 {
            return Ok(Ok(v));
        }
        match v["code"].as_i64() {
            Some(code) => Ok(Err((
                code,
                v["msg"].as_str().unwrap_or_default().to_string(),
            ))),
            None => Err(fail(&format!("HTTP {status}: {text}"))),
        }
    }

    /// The venue's open orders and balances.
    pub fn state(&self) -> Result<VenueState, ReconcileError> {
        let orders = self.get(self.path("openOrders"), "", true)?;
        let open_orders = orders
            .as_array()
            .ok_or_else(|| ReconcileError::Venue("openOrders: not a list".into()))?
            .iter()
            .map(VenueOrder::from_json)
            .collect();
        let account = self.get(self.path("account"), "", true)?;
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        let list = |k: &str| {
            account[k]
                .as_array()
                .ok_or_else(|| ReconcileError::Venue(format!("account: no {k} list")))
        };
        let (balances, positions) = match self.market {
            Market::Spot => (
                list("balances")?
                    .iter()
                    .map(|b| (text(b, "asset"), text(b, "free"), text(b, "locked")))
                    .filter(|(_, f, l)| nonzero(f) || nonzero(l))
                    .collect(),
                Vec::new(),
            ),
            Market::UsdM => (
                list("assets")?
                    .iter()
                    .map(|b| {
                        let t = |k| text(b, k);
                        (t("asset"), t("walletBalance"), t("availableBalance"))
                    })
                    .filter(|(_, w, a)| nonzero(w) || nonzero(a))
                    .collect(),
                list("positions")?
                    .iter()
                    .map(|p| VenuePosition {
                        symbol: text(p, "symbol"),
                        side: text(p, "positionSide"),
                        amount: text(p, "positionAmt"),
                        entry_price: text(p, "entryPrice"),
                    })
                    .filter(|p| nonzero(&p.amount))
                    .collect(),
            ),
        };
        Ok(VenueState {
            open_orders,
            balances,
            positions,
            clock_offset_ms: self.offset_ms,
        })
    }

    /// The trades of order `order_id` on `symbol`, oldest first: the venue's JSON array as
    /// received (spot `GET /api/v3/myTrades`, USD-M `GET /fapi/v1/userTrades`, by `orderId`),
    /// for the gateway's recovery to journal each fill with its own price and fee.
    pub fn order_trades(&self, symbol: &str, order_id: u64) -> Result<String, ReconcileError> {
        let params = format!("symbol={symbol}&orderId={order_id}");
        match self.try_get(self.path("trades"), &params, true)? {
            Ok(v @ Value::Array(_)) => Ok(v.to_string()),
            Ok(v) => Err(ReconcileError::Venue(format!(
                "trades of order {order_id}: not a list: {v}"
            ))),
            Err((code, msg)) => Err(ReconcileError::Venue(format!(
                "trades of order {order_id}: error {code}: {msg}"
            ))),
        }
    }

    /// `GET order` by `origClientOrderId`: the order, or `None` if the venue does not know it
    /// (`-2013`).
    pub fn query_order(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<Option<VenueOrder>, ReconcileError> {
        let params = format!("symbol={symbol}&origClientOrderId={client_order_id}");
        match self.try_get(self.path("order"), &params, true)? {
            Ok(v) => Ok(Some(VenueOrder::from_json(&v))),
            Err((ERR_NO_SUCH_ORDER, _)) => Ok(None),
            Err((code, msg)) => Err(ReconcileError::Venue(format!(
                "GET order {client_order_id}: error {code}: {msg}"
            ))),
        }
    }
}

/// Asks the venue about every order the journal holds open but `venue` does not list as open
/// (`GET order` by client order id; `prefix` is the gateway's client id prefix, `symbol_of`
/// names an instrument of this run).
///
/// An order journaled as `submitted` may still reach the venue until its `recvWindow` has
/// passed (the venue refuses it after that): a "does not exist" for such an order younger
/// than `settle` is asked again once `settle` after its last journaled update has passed, so
/// an order in flight at a crash is never closed locally while the venue may still take it.
pub fn query_journal_only(
    client: &VenueClient,
    journal: &JournalState,
    venue: &VenueState,
    prefix: &str,
    symbol_of: impl Fn(InstrumentId) -> Option<String>,
    settle: Duration,
) -> Result<BTreeMap<u64, Answer>, ReconcileError> {
    let open: BTreeSet<u64> = venue
        .open_orders
        .iter()
        .filter_map(|o| parse_client_id(prefix.as_bytes(), o.client_order_id.as_bytes()))
        .collect();
    let mut answers = BTreeMap::new();
    let mut again = Vec::new();
    let ask = |cid: u64, j: &JournalOrder| -> Result<Answer, ReconcileError> {
        let Some(symbol) = symbol_of(j.instrument) else {
            return Ok(Answer::NotAsked(format!(
                "instrument {} is not traded by this run",
                j.instrument.0
            )));
        };
        let mut text = [0u8; 36];
        let n = client_id_text(prefix.as_bytes(), cid, &mut text);
        let text = String::from_utf8_lossy(&text[..n]);
        Ok(match client.query_order(&symbol, &text)? {
            Some(o) => Answer::Known(o),
            None => Answer::Unknown,
        })
    };
    let settle_ms = settle.as_millis() as i64;
    let mut wait_until = 0i64;
    for (&cid, j) in journal.open().filter(|(c, _)| !open.contains(c)) {
        let a = ask(cid, j)?;
        let until = (j.last_ns / 1_000_000) as i64 + settle_ms;
        if a == Answer::Unknown && j.state == OrderState::Submitted && until > now_ms() {
            wait_until = wait_until.max(until);
            again.push((cid, j));
        }
        answers.insert(cid, a);
    }
    if !again.is_empty() {
        let wait = (wait_until - now_ms()).clamp(0, settle_ms) as u64;
        tracing::info!(
            orders = again.len(),
            wait_ms = wait,
            "orders in flight at the last stop are unknown to the venue: asking again once they can no longer arrive"
        );
        std::thread::sleep(Duration::from_millis(wait));
        for (cid, j) in again {
            answers.insert(cid, ask(cid, j)?);
        }
    }
    Ok(answers)
}

/// Compares the journal with the venue: `venue`'s open orders and, for the journal's other
/// open orders, the `answers` of [`query_journal_only`]; `prefix` is the gateway's client id
/// prefix.
pub fn reconcile(
    journal: &JournalState,
    venue: &VenueState,
    answers: &BTreeMap<u64, Answer>,
    prefix: &str,
) -> Report {
    let mut report = Report {
        balances: venue.balances.clone(),
        positions: venue.positions.clone(),
        ..Report::default()
    };
    let mut seen = BTreeSet::new();
    for o in &venue.open_orders {
        match parse_client_id(prefix.as_bytes(), o.client_order_id.as_bytes()) {
            None => report.findings.push(Finding::Foreign { order: o.clone() }),
            Some(cid) => {
                seen.insert(cid);
                let j = journal.orders.get(&cid);
                match j {
                    Some(j) if !j.state.is_terminal() => report.matched += 1,
                    other => report.findings.push(Finding::VenueOnly {
                        order: o.clone(),
                        journal_state: other.map(|j| j.state.name().to_string()),
                    }),
                }
                report.recover.push(Recovery {
                    client_order_id: cid,
                    journaled: j.copied(),
                    venue: Some(o.clone()),
                });
            }
        }
    }
    for (&cid, j) in journal.open().filter(|(c, _)| !seen.contains(c)) {
        let (resolution, venue) = match answers.get(&cid) {
            // Open after all (it reached the venue after `openOrders` was asked): tracked.
            Some(Answer::Known(o)) if o.is_open() => {
                report.matched += 1;
                report.recover.push(Recovery {
                    client_order_id: cid,
                    journaled: Some(*j),
                    venue: Some(o.clone()),
                });
                continue;
            }
            Some(Answer::Known(o)) => (Resolution::ClosedAtVenue, Some(o.clone())),
            Some(Answer::Unknown) => (Resolution::NeverAcknowledged, None),
            Some(Answer::NotAsked(_)) | None => (Resolution::NotQueried, None),
        };
        if resolution != Resolution::NotQueried {
            report.recover.push(Recovery {
                client_order_id: cid,
                journaled: Some(*j),
                venue: venue.clone(),
            });
        }
        report.findings.push(Finding::JournalOnly {
            client_order_id: cid,
            journal_state: j.state.name().to_string(),
            resolution,
            venue,
        });
    }
    report
}

/// Appends findings made after the report was journaled (positions, which are compared once
/// the gateway has applied the venue's answers) to the journal in `dir`.
pub fn journal_findings(dir: &Path, findings: &[Finding]) -> Result<(), ReconcileError> {
    if findings.is_empty() {
        return Ok(());
    }
    append_json(dir, findings.iter().map(serde_json::to_value))
}

/// Appends the report to the journal in `dir` (created): one `Reconcile` record per finding and
/// one summary record, JSON text.
pub fn journal_report(dir: &Path, report: &Report) -> Result<(), ReconcileError> {
    let summary = serde_json::json!({
        "finding": "summary",
        "matched": report.matched,
        "discrepancies": report.findings.len(),
        "balances": report.balances,
        "positions": report.positions,
    });
    append_json(
        dir,
        report
            .findings
            .iter()
            .map(serde_json::to_value)
            .chain([Ok(summary)]),
    )
}

/// One `Reconcile` record (JSON text) per value, all stamped now, in the journal in `dir`
/// (created).
fn append_json(
    dir: &Path,
    values: impl Iterator<Item = serde_json::Result<Value>>,
) -> Result<(), ReconcileError> {
    let jerr = |e: String| ReconcileError::Journal(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| jerr(e.to_string()))?;
    let mut app = Appender::open(dir, codec::journal_config()).map_err(|e| jerr(e.to_string()))?;
    let ts = now_ms().max(0) as u64 * 1_000_000;
    for v in values {
        let body = v
            .and_then(|v| serde_json::to_vec(&v))
            .map_err(|e| jerr(e.to_string()))?;
        codec::append_bytes(&mut app, RecordKind::Reconcile, 0, ts, &body)
            .map_err(|e| jerr(e.to_string()))?;
    }
    app.flush().map_err(|e| jerr(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotpath::fixed::Qty;
    use hotpath::gateway::{OrderAlert, UpdateCause};
    use std::io::{BufRead, BufReader, Write};
    use std::sync::{Arc, Mutex};

    fn vo(cid: &str, status: &str) -> VenueOrder {
        VenueOrder {
            symbol: "BTCUSDT".into(),
            client_order_id: cid.into(),
            order_id: 7,
            status: status.into(),
            executed_qty: "0".into(),
            raw: String::new(),
        }
    }

    fn jo(cid: u64, state: OrderState) -> JournalOrder {
        JournalOrder {
            client_order_id: cid,
            instrument: InstrumentId(0),
            state,
            venue_order_id: 0,
            orig_qty: Qty(1_000),
            cum_qty: Qty(0),
            qty_scale: 5,
            last_ns: 1,
        }
    }

    fn upd(cid: u64, from: OrderState, to: OrderState, cum: i64) -> OrderUpdate {
        OrderUpdate {
            client_order_id: cid,
            venue_order_id: 0,
            cum_qty: Qty(cum),
            orig_qty: Qty(1_000),
            time_ns: 1,
            venue_error: 0,
            instrument: InstrumentId(0),
            from,
            to,
            cause: UpdateCause::Intent,
            alert: OrderAlert::None,
            qty_scale: 5,
            reserved: [0; 3],
        }
    }

    #[test]
    fn the_venue_wins_and_every_difference_is_a_finding() {
        let mut j = JournalState::default();
        for (cid, state) in [
            (1, OrderState::Acked),     // open in both
            (2, OrderState::Submitted), // the venue never had it
            (3, OrderState::Filled),    // closed in the journal, open at the venue
            (5, OrderState::Submitted), // in flight at the crash, filled since
            (6, OrderState::Acked),     // on an instrument this run does not trade
            (7, OrderState::Submitted), // reached the venue after `openOrders` was asked
        ] {
            j.orders.insert(cid, jo(cid, state));
        }
        let v = VenueState {
            open_orders: vec![
                vo("ae-0000000000000001", "NEW"),
                vo("ae-0000000000000003", "NEW"),
                vo("ae-0000000000000004", "PARTIALLY_FILLED"),
                vo("manual-1", "NEW"),
            ],
            ..VenueState::default()
        };
        let filled = vo("ae-0000000000000005", "FILLED");
        let late = vo("ae-0000000000000007", "NEW");
        let answers = BTreeMap::from([
            (2, Answer::Unknown),
            (5, Answer::Known(filled.clone())),
            (6, Answer::NotAsked("not traded".into())),
            (7, Answer::Known(late.clone())),
        ]);
        let r = reconcile(&j, &v, &answers, "ae-");
        assert_eq!(r.matched, 2, "1 and 7");
        assert!(!r.clean());
        let journal_only = |cid, journal_state: &str, resolution, venue| Finding::JournalOnly {
            client_order_id: cid,
            journal_state: journal_state.into(),
            resolution,
            venue,
        };
        assert_eq!(
            r.findings,
            vec![
                Finding::VenueOnly {
                    order: vo("ae-0000000000000003", "NEW"),
                    journal_state: Some("filled".into())
                },
                Finding::VenueOnly {
                    order: vo("ae-0000000000000004", "PARTIALLY_FILLED"),
                    journal_state: None
                },
                Finding::Foreign {
                    order: vo("manual-1", "NEW")
                },
                journal_only(2, "submitted", Resolution::NeverAcknowledged, None),
                journal_only(
                    5,
                    "submitted",
                    Resolution::ClosedAtVenue,
                    Some(filled.clone())
                ),
                journal_only(6, "acked", Resolution::NotQueried, None),
            ]
        );
        // The gateway gets every order of ours open at the venue and every answered one; the
        // unasked order stays as the journal has it.
        let recovered: Vec<(u64, Option<OrderState>, Option<&str>)> = r
            .recover
            .iter()
            .map(|x| {
                (
                    x.client_order_id,
                    x.journaled.map(|j| j.state),
                    x.venue.as_ref().map(|o| o.status.as_str()),
                )
            })
            .collect();
        assert_eq!(
            recovered,
            vec![
                (1, Some(OrderState::Acked), Some("NEW")),
                (3, Some(OrderState::Filled), Some("NEW")),
                (4, None, Some("PARTIALLY_FILLED")),
                (2, Some(OrderState::Submitted), None),
                (5, Some(OrderState::Submitted), Some("FILLED")),
                (7, Some(OrderState::Submitted), Some("NEW")),
            ]
        );
        // Journaled as JSON without the raw copy.
        let text = serde_json::to_string(&r.findings[4]).unwrap();
        assert!(
            text.contains(r#""finding":"journal_only""#)
                && text.contains(r#""resolution":"closed_at_venue""#)
                && text.contains(r#""status":"FILLED""#)
                && !text.contains("raw"),
            "{text}"
        );
    }

    #[test]
    fn a_resolution_journaled_by_the_gateway_closes_the_order_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let gw = dir.path().join("gateway");
        std::fs::create_dir_all(&gw).unwrap();
        let mut app = Appender::open(&gw, codec::journal_config()).unwrap();
        // Order 9 in flight at the crash; an alert about an id the gateway did not know (no
        // order state); a duplicate-intent alert repeating order 9's state.
        let mut unknown = upd(77, OrderState::Unknown, OrderState::Unknown, 0);
        unknown.alert = OrderAlert::UnknownOrder;
        let mut dup = upd(9, OrderState::Submitted, OrderState::Submitted, 0);
        dup.alert = OrderAlert::DuplicateIntent;
        for u in [
            upd(9, OrderState::Unknown, OrderState::New, 0),
            upd(9, OrderState::New, OrderState::Submitted, 0),
            unknown,
            dup,
        ] {
            codec::append(&mut app, &u, 0, 1).unwrap();
        }
        app.flush().unwrap();
        let st = journal_state(&gw).unwrap();
        assert_eq!(
            st.open().map(|(c, o)| (*c, o.state)).collect::<Vec<_>>(),
            vec![(9, OrderState::Submitted)],
            "an alert about an unknown id is no order"
        );
        let v = VenueState::default();
        let r = reconcile(
            &st,
            &v,
            &BTreeMap::from([(9, Answer::Known(vo("ae-0000000000000009", "FILLED")))]),
            "ae-",
        );
        assert_eq!(r.findings.len(), 1);
        // What the gateway journals for it (GatewayStage::recover): the fill and the state.
        let mut fill = upd(9, OrderState::Submitted, OrderState::Acked, 0);
        fill.cause = UpdateCause::Query;
        codec::append(&mut app, &fill, 0, 2).unwrap();
        let mut fill = upd(9, OrderState::Acked, OrderState::Filled, 1_000);
        fill.cause = UpdateCause::Query;
        codec::append(&mut app, &fill, 0, 2).unwrap();
        app.flush().unwrap();
        let st = journal_state(&gw).unwrap();
        assert_eq!(st.open().count(), 0);
        assert_eq!(st.orders[&9].cum_qty, Qty(1_000));
        let again = reconcile(&st, &v, &BTreeMap::new(), "ae-");
        assert!(again.clean(), "{:?}", again.findings);
        assert!(again.recover.is_empty());
    }

    /// A venue on loopback answering `GET .../time` and, per other request, the next of
    /// `orders` (status, body); records the request targets.
    fn fake_venue(orders: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut orders = orders.into_iter();
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(target.clone());
                let (status, body) = if target.ends_with("/time") {
                    (200, format!(r#"{{"serverTime":{}}}"#, now_ms()))
                } else {
                    let (st, b) = orders
                        .next()
                        .unwrap_or((500, r#"{"code":-1000,"msg":"x"}"#));
                    (st, b.to_string())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, seen)
    }

    const UNKNOWN: (u16, &str) = (400, r#"{"code":-2013,"msg":"Order does not exist."}"#);
    const FILLED: (u16, &str) = (
        200,
        r#"{"symbol":"BTCUSDT","orderId":41,"clientOrderId":"ae-000000000000000a","status":"FILLED","executedQty":"0.01000000","side":"BUY"}"#,
    );

    #[test]
    fn an_order_in_flight_at_the_crash_is_asked_again_until_it_can_no_longer_arrive() {
        let (url, seen) = fake_venue(vec![UNKNOWN, UNKNOWN, FILLED]);
        let creds = Credentials::new("key", "secret").unwrap();
        let client = VenueClient::connect(&url, Market::Spot, &creds).unwrap();
        let now_ns = now_ms() as u64 * 1_000_000;
        let mut j = JournalState::default();
        // 10 was sent just now: "does not exist" may only mean "not yet". 11 was acknowledged
        // long ago: "does not exist" is final.
        j.orders.insert(
            10,
            JournalOrder {
                last_ns: now_ns,
                ..jo(10, OrderState::Submitted)
            },
        );
        j.orders.insert(11, jo(11, OrderState::Acked));
        let answers = query_journal_only(
            &client,
            &j,
            &VenueState::default(),
            "ae-",
            |id| (id == InstrumentId(0)).then(|| "BTCUSDT".to_string()),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(answers[&11], Answer::Unknown);
        match &answers[&10] {
            Answer::Known(o) => {
                assert_eq!(
                    (o.status.as_str(), o.executed_qty.as_str()),
                    ("FILLED", "0.01000000")
                );
                assert!(o.raw.contains(r#""orderId":41"#), "{}", o.raw);
            }
            other => panic!("order 10: {other:?}"),
        }
        let seen = seen.lock().unwrap();
        let queries: Vec<&String> = seen
            .iter()
            .filter(|t| t.starts_with("/api/v3/order?"))
            .collect();
        assert_eq!(queries.len(), 3, "{seen:?}");
        assert!(
            queries[0].contains("origClientOrderId=ae-000000000000000a"),
            "{}",
            queries[0]
        );
        assert!(
            queries[1].contains("origClientOrderId=ae-000000000000000b"),
            "{}",
            queries[1]
        );
        assert!(
            queries[2].contains("origClientOrderId=ae-000000000000000a"),
            "{}",
            queries[2]
        );
        assert!(queries
            .iter()
            .all(|q| q.contains("symbol=BTCUSDT") && q.contains("&signature=")));
    }

    #[test]
    fn a_venue_error_other_than_unknown_order_fails_the_reconciliation() {
        let (url, _) = fake_venue(vec![(400, r#"{"code":-1021,"msg":"Timestamp outside."}"#)]);
        let creds = Credentials::new("key", "secret").unwrap();
        let client = VenueClient::connect(&url, Market::Spot, &creds).unwrap();
        let e = client
            .query_order("BTCUSDT", "ae-0000000000000001")
            .unwrap_err();
        assert!(e.to_string().contains("-1021"), "{e}");
    }

    #[test]
    fn usd_m_reconciliation_asks_the_futures_api_and_journals_assets_and_positions() {
        // Shapes of Binance's USD-M documentation.
        const OPEN: &str = r#"[{"avgPrice":"0.00000","clientOrderId":"ae-0000000000000001","cumQuote":"0","executedQty":"0","orderId":1917641,"origQty":"0.010","origType":"LIMIT","price":"50000","reduceOnly":false,"side":"BUY","positionSide":"BOTH","status":"NEW","stopPrice":"0","closePosition":false,"symbol":"BTCUSDT","time":1579276756075,"timeInForce":"GTC","type":"LIMIT","updateTime":1579276756075,"workingType":"CONTRACT_PRICE","priceProtect":false}]"#;
        const ACCOUNT: &str = r#"{"totalWalletBalance":"23.72469206","assets":[{"asset":"USDT","walletBalance":"23.72469206","unrealizedProfit":"0.00000000","marginBalance":"23.72469206","availableBalance":"23.72469206"},{"asset":"BNB","walletBalance":"0.00000000","availableBalance":"0.00000000"}],"positions":[{"symbol":"BTCUSDT","initialMargin":"0","positionAmt":"-0.010","entryPrice":"51000.0","positionSide":"BOTH"},{"symbol":"ETHUSDT","positionAmt":"0.000","entryPrice":"0.0","positionSide":"BOTH"}]}"#;
        const ORDER: &str = r#"{"avgPrice":"51000.00","clientOrderId":"ae-0000000000000002","cumQuote":"510.00000","executedQty":"0.010","orderId":1917642,"origQty":"0.010","side":"SELL","positionSide":"BOTH","status":"FILLED","symbol":"BTCUSDT","type":"MARKET","updateTime":1579276756080}"#;
        let (url, seen) = fake_venue(vec![(200, OPEN), (200, ACCOUNT), (200, ORDER)]);
        let creds = Credentials::new("key", "secret").unwrap();
        let client = VenueClient::connect(&url, Market::UsdM, &creds).unwrap();
        let st = client.state().unwrap();
        assert_eq!(
            st.open_orders
                .iter()
                .map(|o| (o.client_order_id.as_str(), o.status.as_str()))
                .collect::<Vec<_>>(),
            vec![("ae-0000000000000001", "NEW")]
        );
        assert_eq!(
            st.balances,
            vec![("USDT".into(), "23.72469206".into(), "23.72469206".into())]
        );
        assert_eq!(
            st.positions,
            vec![VenuePosition {
                symbol: "BTCUSDT".into(),
                side: "BOTH".into(),
                amount: "-0.010".into(),
                entry_price: "51000.0".into(),
            }]
        );
        let mut j = JournalState::default();
        j.orders.insert(1, jo(1, OrderState::Acked));
        j.orders.insert(2, jo(2, OrderState::Submitted));
        let answers = query_journal_only(
            &client,
            &j,
            &st,
            "ae-",
            |_| Some("BTCUSDT".to_string()),
            Duration::ZERO,
        )
        .unwrap();
        let Answer::Known(o) = &answers[&2] else {
            panic!("{answers:?}");
        };
        assert_eq!((o.status.as_str(), o.order_id), ("FILLED", 1917642));
        let paths: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.split('?').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/fapi/v1/time",
                "/fapi/v1/openOrders",
                "/fapi/v2/account",
                "/fapi/v1/order"
            ]
        );
        let r = reconcile(&j, &st, &answers, "ae-");
        assert_eq!((r.matched, r.findings.len(), r.recover.len()), (1, 1, 2));
        let dir = tempfile::tempdir().unwrap();
        journal_report(dir.path(), &r).unwrap();
        let mut t = open_tailer(dir.path()).unwrap();
        let mut last = Vec::new();
        while let Some(rec) = t.next().unwrap() {
            last = rec.payload.to_vec();
        }
        let summary: Value = serde_json::from_slice(&last).unwrap();
        assert_eq!(summary["finding"], "summary");
        assert_eq!(summary["positions"][0]["amount"], "-0.010", "{summary}");
    }
}
