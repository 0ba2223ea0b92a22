//! Start-up reconciliation: the venue's open orders and balances against the state rebuilt from
//! the journal, before any trading.
//!
//! Why: after a crash or a restart the journal says which orders the engine believes are open,
//! but only the venue knows which really are (an order may have filled, been cancelled by the
//! venue, or been accepted after the last journaled transition). DESIGN.md: the venue wins,
//! every discrepancy is journaled, and no trading starts until this passes.
//!
//! How the pieces fit: [`fetch_venue_state`] asks the venue over signed REST (`GET
//! /api/v3/openOrders`, `GET /api/v3/account`, with the clock offset measured from `GET
//! /api/v3/time`; blocking, cold path); [`journal_state`] replays the gateway journal's
//! `OrderUpdate` records to the last state of every order; [`reconcile`] compares them by client
//! order id (the gateway derives `newClientOrderId` from the intent id, so the mapping is
//! exact); [`journal_report`] appends one `Reconcile` record per finding (JSON text) to a
//! journal of its own, which the notifier and metrics tail like any other.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotpath::codec::{self, decode, open_tailer, RecordKind};
use hotpath::gateway::{parse_client_id, OrderState, OrderUpdate};
use hotpath::venue::binance::sign::{Credentials, Signer, SIGNATURE_HEX_LEN};
use ringbuffers::journal::Appender;
use serde::Serialize;
use serde_json::Value;

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

/// One open order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueOrder {
    /// Symbol.
    pub symbol: String,
    /// `clientOrderId`.
    pub client_order_id: String,
    /// `orderId`.
    pub order_id: u64,
    /// `status` (`NEW`, `PARTIALLY_FILLED`).
    pub status: String,
    /// `executedQty` as the venue prints it.
    pub executed_qty: String,
}

/// What the venue says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VenueState {
    /// Open orders.
    pub open_orders: Vec<VenueOrder>,
    /// Balances with anything free or locked: (asset, free, locked), as printed.
    pub balances: Vec<(String, String, String)>,
    /// Venue time minus local time at the request, ms.
    pub clock_offset_ms: i64,
}

/// The last journaled state of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOrder {
    /// State after the last transition.
    pub state: OrderState,
    /// Venue order id, 0 if never known.
    pub venue_order_id: u64,
}

/// What the journal says: orders by intent id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalState {
    /// Every order ever journaled, at its last state.
    pub orders: BTreeMap<u64, JournalOrder>,
}

impl JournalState {
    /// Orders the journal believes are open (not in a terminal state).
    pub fn open(&self) -> impl Iterator<Item = (&u64, &JournalOrder)> {
        self.orders.iter().filter(|(_, o)| !is_terminal(o.state))
    }
}

fn is_terminal(s: OrderState) -> bool {
    matches!(
        s,
        OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired
    )
}

/// A difference between the venue and the journal. The venue wins in every case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The journal has this order open; the venue does not (it filled, was cancelled or never
    /// arrived): it is closed locally.
    JournalOnly {
        /// Intent id.
        client_order_id: u64,
        /// Last journaled state.
        journal_state: String,
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
}

impl Report {
    /// True when venue and journal agree on every open order.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Rebuilds every order's last state from the gateway journal in `dir` (an absent journal is an
/// empty state: a first start).
pub fn journal_state(dir: &Path) -> Result<JournalState, ReconcileError> {
    let mut st = JournalState::default();
    let mut t = match open_tailer(dir) {
        Ok(t) => t,
        Err(ringbuffers::journal::JournalError::NotAJournal { .. }) => return Ok(st),
        Err(e) if !dir.exists() => {
            let _ = e;
            return Ok(st);
        }
        Err(e) => return Err(ReconcileError::Journal(format!("{}: {e}", dir.display()))),
    };
    loop {
        match t.next() {
            Ok(Some(r)) if r.kind == RecordKind::OrderUpdate.as_u16() => {
                let u: OrderUpdate = decode(r.payload)
                    .map_err(|e| ReconcileError::Journal(format!("order update: {e:?}")))?;
                let e = st.orders.entry(u.client_order_id).or_insert(JournalOrder {
                    state: u.to,
                    venue_order_id: u.venue_order_id,
                });
                e.state = u.to;
                if u.venue_order_id != 0 {
                    e.venue_order_id = u.venue_order_id;
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

fn get_json(agent: &ureq::Agent, url: &str, key: Option<&str>) -> Result<Value, ReconcileError> {
    let mut req = agent.get(url);
    if let Some(k) = key {
        req = req.header("X-MBX-APIKEY", k);
    }
    let mut resp = req
        .call()
        .map_err(|e| ReconcileError::Venue(format!("GET {}: {e}", redact(url))))?;
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| ReconcileError::Venue(format!("GET {}: {e}", redact(url))))?;
    serde_json::from_str(&text)
        .map_err(|e| ReconcileError::Venue(format!("GET {}: {e}", redact(url))))
}

/// The URL without its query (the query carries the signature).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Asks the venue at `rest_url` (`https://api.binance.com`, or the simulator) for its open
/// orders and balances, signing with `creds`.
pub fn fetch_venue_state(
    rest_url: &str,
    creds: &Credentials,
) -> Result<VenueState, ReconcileError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(true)
        .build()
        .into();
    let base = rest_url.trim_end_matches('/');
    let t0 = now_ms();
    let time = get_json(&agent, &format!("{base}/api/v3/time"), None)?;
    let t1 = now_ms();
    let server = time["serverTime"]
        .as_i64()
        .ok_or_else(|| ReconcileError::Venue("time: no serverTime".into()))?;
    let offset = server - (t0 + t1) / 2;
    let signer = Signer::new(&creds.secret);
    let key = creds.key.expose();
    let signed = |path: &str| {
        let query = format!("recvWindow=5000&timestamp={}", now_ms() + offset);
        let mut hex = [0u8; SIGNATURE_HEX_LEN];
        signer.sign_into(&[query.as_bytes()], &mut hex);
        format!(
            "{base}{path}?{query}&signature={}",
            std::str::from_utf8(&hex).unwrap_or_default()
        )
    };
    let orders = get_json(&agent, &signed("/api/v3/openOrders"), Some(key))?;
    let orders = orders
        .as_array()
        .ok_or_else(|| ReconcileError::Venue("openOrders: not a list".into()))?;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let open_orders = orders
        .iter()
        .map(|o| VenueOrder {
            symbol: text(o, "symbol"),
            client_order_id: text(o, "clientOrderId"),
            order_id: o["orderId"].as_u64().unwrap_or(0),
            status: text(o, "status"),
            executed_qty: text(o, "executedQty"),
        })
        .collect();
    let account = get_json(&agent, &signed("/api/v3/account"), Some(key))?;
    let nonzero = |s: &str| s.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let balances = account["balances"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| (text(b, "asset"), text(b, "free"), text(b, "locked")))
                .filter(|(_, f, l)| nonzero(f) || nonzero(l))
                .collect()
        })
        .unwrap_or_default();
    Ok(VenueState {
        open_orders,
        balances,
        clock_offset_ms: offset,
    })
}

/// Compares the journal with the venue; `prefix` is the gateway's client id prefix.
pub fn reconcile(journal: &JournalState, venue: &VenueState, prefix: &str) -> Report {
    let mut report = Report {
        balances: venue.balances.clone(),
        ..Report::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for o in &venue.open_orders {
        match parse_client_id(prefix.as_bytes(), o.client_order_id.as_bytes()) {
            None => report.findings.push(Finding::Foreign { order: o.clone() }),
            Some(cid) => {
                seen.insert(cid);
                match journal.orders.get(&cid) {
                    Some(j) if !is_terminal(j.state) => report.matched += 1,
                    other => report.findings.push(Finding::VenueOnly {
                        order: o.clone(),
                        journal_state: other.map(|j| j.state.name().to_string()),
                    }),
                }
            }
        }
    }
    for (cid, j) in journal.open() {
        if !seen.contains(cid) {
            report.findings.push(Finding::JournalOnly {
                client_order_id: *cid,
                journal_state: j.state.name().to_string(),
            });
        }
    }
    report
}

/// Appends the report to the journal in `dir` (created): one `Reconcile` record per finding and
/// one summary record, JSON text.
pub fn journal_report(dir: &Path, report: &Report) -> Result<(), ReconcileError> {
    let jerr = |e: String| ReconcileError::Journal(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| jerr(e.to_string()))?;
    let mut app = Appender::open(dir, codec::journal_config()).map_err(|e| jerr(e.to_string()))?;
    let ts = now_ms().max(0) as u64 * 1_000_000;
    for f in &report.findings {
        let body = serde_json::to_vec(f).map_err(|e| jerr(e.to_string()))?;
        codec::append_bytes(&mut app, RecordKind::Reconcile, 0, ts, &body)
            .map_err(|e| jerr(e.to_string()))?;
    }
    let summary = serde_json::json!({
        "finding": "summary",
        "matched": report.matched,
        "discrepancies": report.findings.len(),
        "balances": report.balances,
    });
    let body = serde_json::to_vec(&summary).map_err(|e| jerr(e.to_string()))?;
    codec::append_bytes(&mut app, RecordKind::Reconcile, 0, ts, &body)
        .map_err(|e| jerr(e.to_string()))?;
    app.flush().map_err(|e| jerr(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vo(cid: &str) -> VenueOrder {
        VenueOrder {
            symbol: "BTCUSDT".into(),
            client_order_id: cid.into(),
            order_id: 7,
            status: "NEW".into(),
            executed_qty: "0".into(),
        }
    }

    #[test]
    fn the_venue_wins_and_every_difference_is_a_finding() {
        let mut j = JournalState::default();
        let open = |state| JournalOrder {
            state,
            venue_order_id: 0,
        };
        j.orders.insert(1, open(OrderState::Acked)); // open in both
        j.orders.insert(2, open(OrderState::Submitted)); // journal only
        j.orders.insert(3, open(OrderState::Filled)); // closed in journal, open at venue
        let v = VenueState {
            open_orders: vec![
                vo("ae-0000000000000001"),
                vo("ae-0000000000000003"),
                vo("ae-0000000000000004"),
                vo("manual-1"),
            ],
            ..VenueState::default()
        };
        let r = reconcile(&j, &v, "ae-");
        assert_eq!(r.matched, 1);
        assert!(!r.clean());
        assert_eq!(r.findings.len(), 4, "{:?}", r.findings);
        assert!(r.findings.contains(&Finding::JournalOnly {
            client_order_id: 2,
            journal_state: "submitted".into()
        }));
        assert!(r.findings.contains(&Finding::VenueOnly {
            order: vo("ae-0000000000000003"),
            journal_state: Some("filled".into())
        }));
        assert!(r.findings.contains(&Finding::VenueOnly {
            order: vo("ae-0000000000000004"),
            journal_state: None
        }));
        assert!(r.findings.contains(&Finding::Foreign {
            order: vo("manual-1")
        }));
    }
}
