//! Alerts and the table that turns journal records into them.
//!
//! An [`Alert`] is what a person should be told about one journal record: a [`Severity`]
//! (which decides routing: critical now, warnings batched, info in a digest), a stable `kind`
//! name (`order_failed`, `connection_lost`, ...), a de-duplication `key` (alerts with the same
//! key inside the de-duplication window become one alert with a count), a title, `key=value`
//! fields, and the record's journal name, sequence number and timestamp, which identify it
//! across restarts.
//!
//! [`RULES`] is the mapping, one row per journal record kind: adding a kind is one line naming
//! its number and the function that reads its payload. Kinds without a row (market data,
//! intents, raw frames, decisions) never alert. The mapping follows the seed's alert types:
//! critical for order failures (an `Exec` rejection or any venue error), market-data connection
//! loss, failed reconciliation, the kill switch / circuit breaker (`Control` halt) and gateway
//! alerts such as an overfill or an unknown order; warnings for data-quality problems (feed
//! decode errors, book gaps), risk rejections and operational state changes; info for fills,
//! closed trades, reconnections that succeeded and configuration/watchlist changes.

use serde::{Deserialize, Serialize};

use hotpath::codec::{self, RecordKind};
use hotpath::event::{Control, ControlKind, ExecEvent, ExecKind};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Periodic digest.
    Info,
    /// Batched.
    Warning,
    /// Sent immediately.
    Critical,
}

impl Severity {
    /// Every severity, most urgent first.
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// One alert, derived from one journal record (or a summary of suppressed duplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Name of the journal the record is in (see [`super::spawn`]).
    pub journal: String,
    /// The record's sequence number.
    pub seq: u64,
    /// The record's timestamp (ns since the Unix epoch; 0 if the writer gave none).
    pub ts_ns: u64,
    /// Urgency.
    pub severity: Severity,
    /// Stable event name (`order_failed`, `connection_lost`, ...).
    pub kind: String,
    /// De-duplication key.
    pub key: String,
    /// One-line summary.
    pub title: String,
    /// Details, in display order.
    pub fields: Vec<(String, String)>,
    /// How many occurrences this alert stands for (de-duplication folds repeats into it).
    pub count: u32,
}

/// What a rule extracts from a record (the journal identity is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Urgency.
    pub severity: Severity,
    /// Event name.
    pub kind: &'static str,
    /// De-duplication key.
    pub key: String,
    /// Title.
    pub title: String,
    /// Fields.
    pub fields: Vec<(String, String)>,
}

/// Why a record that has a rule could not be turned into an alert (counted; the record is
/// still alerted on generically, see [`to_alert`]).
pub type RuleError = String;

/// A row of the mapping: journal record kind number, a name for logs, and the reader.
pub struct Rule {
    /// Journal record kind (`RecordKind as u16`, or a number a newer writer uses).
    pub record_kind: u16,
    /// Name of the record kind.
    pub name: &'static str,
    /// Reads a payload; `Ok(None)` means "nothing to tell".
    pub map: fn(&[u8]) -> Result<Option<Draft>, RuleError>,
}

/// Journal kind of gateway order-state transitions and alerts (overfill, unknown order).
pub const KIND_ORDER_UPDATE: u16 = 11;
/// Journal kind of risk-manager rejections.
pub const KIND_RISK_REJECT: u16 = 12;
/// Journal kind of closed trades.
pub const KIND_TRADE_CLOSE: u16 = 13;

/// The record-kind to alert mapping (one line per kind).
pub const RULES: &[Rule] = &[
    Rule {
        record_kind: RecordKind::Exec as u16,
        name: "exec",
        map: exec,
    },
    Rule {
        record_kind: RecordKind::Control as u16,
        name: "control",
        map: control,
    },
    Rule {
        record_kind: RecordKind::FeedError as u16,
        name: "feed_error",
        map: feed_error,
    },
    Rule {
        record_kind: RecordKind::Gap as u16,
        name: "gap",
        map: gap,
    },
    Rule {
        record_kind: RecordKind::Reconcile as u16,
        name: "reconcile",
        map: reconcile,
    },
    Rule {
        record_kind: KIND_ORDER_UPDATE,
        name: "order_update",
        map: order_update,
    },
    Rule {
        record_kind: KIND_RISK_REJECT,
        name: "risk_reject",
        map: risk_reject,
    },
    Rule {
        record_kind: KIND_TRADE_CLOSE,
        name: "trade_close",
        map: trade_close,
    },
];

/// The rule for a record kind.
pub fn rule_for(kind: u16) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.record_kind == kind)
}

/// Turns one journal record into an alert, if its kind alerts. A record whose rule cannot read
/// it (corrupt, or a newer format) still produces a warning that says so, so a malformed
/// alert-worthy record is never silently dropped; the error is returned alongside for counting.
pub fn to_alert(
    journal: &str,
    seq: u64,
    ts_ns: u64,
    kind: u16,
    payload: &[u8],
) -> (Option<Alert>, Option<RuleError>) {
    let Some(rule) = rule_for(kind) else {
        return (None, None);
    };
    let (draft, err) = match (rule.map)(payload) {
        Ok(d) => (d, None),
        Err(e) => (
            Some(Draft {
                severity: Severity::Warning,
                kind: "unreadable_record",
                key: format!("unreadable:{}", rule.name),
                title: format!("Unreadable {} record", rule.name),
                fields: vec![
                    ("error".into(), e.clone()),
                    ("bytes".into(), payload.len().to_string()),
                    ("preview".into(), preview(payload, 120)),
                ],
            }),
            Some(e),
        ),
    };
    let alert = draft.map(|d| Alert {
        journal: journal.to_string(),
        seq,
        ts_ns,
        severity: d.severity,
        kind: d.kind.to_string(),
        key: d.key,
        title: d.title,
        fields: d.fields,
        count: 1,
    });
    (alert, err)
}

fn f(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Printable preview of a payload: lossy UTF-8, control characters escaped, at most `max`
/// characters.
pub fn preview(payload: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut out = String::new();
    for (n, ch) in text.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `key=value` pairs of a one-line text record after its first word (the tag), at most 16.
fn kv_fields(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|w| w.split_once('='))
        .take(16)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn first_line(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).trim().to_string()
}

fn field<'a>(fields: &'a [(String, String)], k: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn exec(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let x = codec::decode::<ExecEvent>(payload).map_err(|e| e.to_string())?;
    let base = |x: &ExecEvent| {
        vec![
            f("instrument", x.instrument),
            f("side", x.side),
            f("client_order_id", x.client_order_id),
            f("venue_order_id", x.venue_order_id),
        ]
    };
    if x.kind == ExecKind::Rejected || x.venue_error != 0 {
        let mut fields = base(&x);
        fields.push(f("report", x.kind));
        fields.push(f("venue_error", x.venue_error));
        return Ok(Some(Draft {
            severity: Severity::Critical,
            kind: "order_failed",
            key: format!("order_failed:{}:{}", x.instrument.0, x.venue_error),
            title: format!(
                "Order failed: {} {} {} (venue error {})",
                x.kind, x.side, x.instrument, x.venue_error
            ),
            fields,
        }));
    }
    match x.kind {
        ExecKind::Fill | ExecKind::PartialFill => {
            let mut fields = base(&x);
            fields.push(f("price", x.last_px.to_decimal(x.price_scale)));
            fields.push(f("qty", x.last_qty.to_decimal(x.qty_scale)));
            fields.push(f("cum_qty", x.cum_qty.to_decimal(x.qty_scale)));
            fields.push(f("leaves_qty", x.leaves_qty.to_decimal(x.qty_scale)));
            fields.push(f("fee", x.fee_decimal()));
            fields.push(f("trade_id", x.trade_id));
            Ok(Some(Draft {
                severity: Severity::Info,
                kind: "order_filled",
                key: format!("fill:{}:{}", x.client_order_id, x.trade_id),
                title: format!(
                    "{} {} {} {} @ {}",
                    x.kind,
                    x.side,
                    x.instrument,
                    x.last_qty.to_decimal(x.qty_scale),
                    x.last_px.to_decimal(x.price_scale)
                ),
                fields,
            }))
        }
        _ => Ok(None),
    }
}

fn control(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let c = codec::decode::<Control>(payload).map_err(|e| e.to_string())?;
    let (severity, kind, title) = match c.kind {
        ControlKind::Halt => (
            Severity::Critical,
            "circuit_breaker",
            "Trading halted (kill switch / circuit breaker)",
        ),
        ControlKind::Resume => (Severity::Warning, "trading_resumed", "Trading resumed"),
        ControlKind::Shutdown => (Severity::Warning, "shutdown", "Engine shutdown requested"),
        ControlKind::ConfigReload => (Severity::Info, "config_reload", "Configuration reloaded"),
        ControlKind::WatchlistAdd => (Severity::Info, "watchlist_add", "Watchlist: added"),
        ControlKind::WatchlistRemove => (Severity::Info, "watchlist_remove", "Watchlist: removed"),
        ControlKind::WatchlistRenew => (Severity::Info, "watchlist_renew", "Watchlist: renewed"),
    };
    Ok(Some(Draft {
        severity,
        kind,
        key: format!("control:{}:{}", c.kind, c.instrument.0),
        title: format!("{title} ({})", c.instrument),
        fields: vec![
            f("command", c.kind),
            f("instrument", c.instrument),
            f("arg", c.arg),
            f("issued_unix_ns", c.issued_unix_ns),
        ],
    }))
}

fn feed_error(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let line = first_line(payload);
    let fields_kv = if line.starts_with("feed_error ") {
        kv_fields(&line)
    } else {
        Vec::new()
    };
    let source = field(&fields_kv, "source").unwrap_or("feed").to_string();
    let mut fields = vec![f("source", &source), f("bytes", payload.len())];
    if let Some(r) = line.split_once(" reason=").map(|(_, r)| r) {
        fields.push(f("reason", preview(r.as_bytes(), 200)));
    }
    if let Some(l) = field(&fields_kv, "line") {
        fields.push(f("line", l));
    }
    fields.push(f("preview", preview(payload, 160)));
    Ok(Some(Draft {
        severity: Severity::Warning,
        kind: "feed_error",
        key: format!("feed_error:{source}"),
        title: format!("Feed decode error ({source})"),
        fields,
    }))
}

fn gap(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let line = first_line(payload);
    let tag = line.split_whitespace().next().unwrap_or("");
    let fields = kv_fields(&line);
    let (severity, kind, title) = match tag {
        "market_data_connection_lost" => (
            Severity::Critical,
            "connection_lost",
            "Market data connection lost",
        ),
        "market_data_connection_restored" => (
            Severity::Warning,
            "connection_restored",
            "Market data connection restored",
        ),
        "market_data_connected" => (Severity::Info, "connected", "Market data connected"),
        "book_gap" => (Severity::Warning, "book_gap", "Order book sequence gap"),
        _ => (Severity::Warning, "gap", "Sequence gap"),
    };
    let key = match field(&fields, "inst") {
        Some(i) if kind == "book_gap" => format!("{kind}:{i}"),
        _ => kind.to_string(),
    };
    let mut fields = fields;
    if fields.is_empty() {
        fields.push(f("detail", preview(line.as_bytes(), 200)));
    }
    Ok(Some(Draft {
        severity,
        kind,
        key,
        title: title.to_string(),
        fields,
    }))
}

/// Reconciliation records are one text line `<tag> key=value ...`. A record whose tag or
/// `status`/`result` field says it passed is info; anything else (a discrepancy, a failure,
/// an unknown status) is critical: when in doubt about the venue's state a human must look.
fn reconcile(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let line = first_line(payload);
    let tag = line.split_whitespace().next().unwrap_or("").to_string();
    let fields = kv_fields(&line);
    let status = field(&fields, "status")
        .or_else(|| field(&fields, "result"))
        .unwrap_or(&tag)
        .to_ascii_lowercase();
    let ok = [
        "ok",
        "pass",
        "passed",
        "match",
        "matched",
        "reconcile_ok",
        "reconciled",
    ]
    .iter()
    .any(|s| status == *s);
    let mut fields = fields;
    if fields.is_empty() {
        fields.push(f("detail", preview(line.as_bytes(), 200)));
    }
    Ok(Some(if ok {
        Draft {
            severity: Severity::Info,
            kind: "reconcile_ok",
            key: "reconcile_ok".into(),
            title: "Reconciliation passed".into(),
            fields,
        }
    } else {
        Draft {
            severity: Severity::Critical,
            kind: "reconciliation_failed",
            key: format!("reconciliation_failed:{tag}"),
            title: format!("Reconciliation failed ({tag})"),
            fields,
        }
    }))
}

/// Gateway order updates: the record's text (or a preview of its bytes). Overfills and unknown
/// orders are critical; other transitions are not alerted on (fills arrive as `Exec`).
fn order_update(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let text = preview(payload, 400);
    let lower = text.to_ascii_lowercase();
    let alarm = [
        "overfill",
        "unknown_order",
        "unknown order",
        "error",
        "stuck",
    ]
    .iter()
    .find(|w| lower.contains(*w));
    Ok(alarm.map(|w| Draft {
        severity: Severity::Critical,
        kind: "order_alert",
        key: format!("order_alert:{w}"),
        title: format!("Gateway order alert: {w}"),
        fields: vec![f("detail", text.clone())],
    }))
}

fn risk_reject(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    let line = first_line(payload);
    let word = line
        .split_whitespace()
        .next()
        .unwrap_or("risk_reject")
        .to_string();
    Ok(Some(Draft {
        severity: Severity::Warning,
        kind: "risk_reject",
        key: format!("risk_reject:{word}"),
        title: "Order rejected by risk checks".into(),
        fields: vec![f("detail", preview(payload, 300))],
    }))
}

fn trade_close(payload: &[u8]) -> Result<Option<Draft>, RuleError> {
    Ok(Some(Draft {
        severity: Severity::Info,
        kind: "trade_closed",
        key: format!("trade_closed:{}", codec::fnv1a64(payload)),
        title: "Position closed".into(),
        fields: vec![f("detail", preview(payload, 300))],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_lines_map_by_tag() {
        let (a, e) = to_alert(
            "j",
            7,
            1,
            RecordKind::Gap as u16,
            b"market_data_connection_lost venue=binance reason=eof",
        );
        let a = a.unwrap();
        assert!(e.is_none());
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.kind, "connection_lost");
        assert_eq!(a.fields[0], ("venue".into(), "binance".into()));
        let (b, _) = to_alert("j", 8, 1, RecordKind::Gap as u16, b"book_gap inst=3 kind=x");
        let b = b.unwrap();
        assert_eq!(
            (b.severity, b.key.as_str()),
            (Severity::Warning, "book_gap:3")
        );
    }

    #[test]
    fn unreadable_exec_is_a_warning_not_a_panic() {
        let (a, e) = to_alert("j", 1, 0, RecordKind::Exec as u16, b"short");
        assert!(e.is_some());
        assert_eq!(a.unwrap().kind, "unreadable_record");
        let (none, _) = to_alert("j", 1, 0, RecordKind::Market as u16, b"x");
        assert!(none.is_none());
    }

    #[test]
    fn reconcile_status() {
        let ok = to_alert("j", 1, 0, 10, b"reconcile status=ok orders=3")
            .0
            .unwrap();
        assert_eq!(ok.severity, Severity::Info);
        let bad = to_alert("j", 2, 0, 10, b"reconcile_discrepancy orders=3")
            .0
            .unwrap();
        assert_eq!(bad.severity, Severity::Critical);
    }
}
