//! Channels: rendering a [`Message`] in each service's format and delivering it.
//!
//! Each configured channel becomes a [`Channel`] holding its resolved endpoint and a transport
//! (an `ureq` agent for the HTTP services, a `lettre` SMTP transport), both blocking: the
//! notifier is one cold thread and a slow service only delays alerts, never the engine. The
//! payloads follow the services' documentation:
//!
//! * **Generic webhook**: `POST <url>` with `Content-Type: application/json`, an
//!   `Idempotency-Key: <message id>` header, an optional `Authorization: Bearer <token>`, and
//!   the body
//!   `{"id", "source": "algo-engine", "severity", "grouping": "single"|"batch"|"digest",
//!   "title", "text", "escalated_from": [..], "created_unix_ms",
//!   "alerts": [{"journal", "seq", "ts_ns", "severity", "kind", "key", "title", "count",
//!   "fields": {name: value}}]}`.
//!   `id` is stable across retries and restarts, so a receiver can drop repeats.
//! * **Slack** incoming webhook: `{"text": <notification fallback>, "blocks": [header
//!   (plain_text, at most 150 characters), one mrkdwn section per alert (at most 3000
//!   characters, at most 45 sections), context with the message id]}`; success is HTTP 200.
//! * **Discord** webhook: `{"content": <at most 2000 characters>, "embeds": [at most 10 embeds,
//!   {"title" (<= 256), "description" (<= 4096), "color", "timestamp" (ISO 8601), "fields":
//!   [{"name" (<= 256), "value" (<= 1024), "inline"}] (<= 25)}]}` within the 6000-character
//!   total across embeds; success is 200 or 204.
//! * **Telegram**: `POST <base>/bot<token>/sendMessage` with `{"chat_id", "text" (<= 4096,
//!   HTML-escaped), "parse_mode": "HTML"}`; success is a 200 whose body has `"ok": true`; a
//!   429 carries `parameters.retry_after`.
//! * **SendGrid** v3: `POST <base>/v3/mail/send` with `Authorization: Bearer <key>` and
//!   `{"personalizations": [{"to": [{"email"}..]}], "from": {"email"}, "subject",
//!   "content": [{"type": "text/plain", "value"}], "custom_args": {"alert_id": <id>}}`;
//!   success is 202.
//! * **SMTP**: a plain-text mail through `lettre` with `Message-ID: <id@algo-engine>` (the
//!   idempotency key of mail).
//!
//! Every failure is a [`DeliveryError`] that is retried (with the service's `Retry-After`,
//! header or Telegram's `retry_after`, as the lower bound of the next delay). Error texts never
//! contain URLs or tokens.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{SmtpTransport, Transport};
use serde_json::{json, Map, Value};

use super::alert::{Alert, Severity};
use super::config::{Endpoint, ResolvedChannel};
use super::outbox::{Grouping, Message};

/// A failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// What went wrong (no secrets).
    pub reason: String,
    /// The service asked to wait at least this long.
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    fn new(reason: impl Into<String>) -> DeliveryError {
        DeliveryError {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Something that can deliver messages (the real [`Channel`], or a test double).
pub trait Deliver: Send {
    /// Delivers `msg`; `Ok` only once the service accepted it.
    fn deliver(&mut self, msg: &Message) -> Result<(), DeliveryError>;
}

enum Transport_ {
    Http(ureq::Agent),
    Smtp(Box<SmtpTransport>),
}

/// A configured channel with its transport.
pub struct Channel {
    cfg: ResolvedChannel,
    transport: Transport_,
}

impl Channel {
    /// Builds the transport of `cfg`.
    pub fn new(cfg: ResolvedChannel) -> Channel {
        let transport = match &cfg.endpoint {
            Endpoint::Smtp {
                host,
                port,
                credentials,
                ..
            } => {
                // Plain SMTP (the workspace builds lettre without TLS); see the module docs of
                // `notify` for putting a local relay in front of a TLS-only provider.
                let mut b = SmtpTransport::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(cfg.timeout));
                if let Some((user, pass)) = credentials {
                    b = b.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
                }
                Transport_::Smtp(Box::new(b.build()))
            }
            _ => {
                let config = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(cfg.timeout))
                    .build();
                Transport_::Http(config.into())
            }
        };
        Channel { cfg, transport }
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ResolvedChannel {
        &self.cfg
    }
}

impl Deliver for Channel {
    fn deliver(&mut self, msg: &Message) -> Result<(), DeliveryError> {
        match (&self.cfg.endpoint, &self.transport) {
            (Endpoint::Smtp { from, to, .. }, Transport_::Smtp(t)) => send_smtp(t, from, to, msg),
            (ep, Transport_::Http(agent)) => {
                let req = http_request(ep, msg);
                post_json(agent, &req)
            }
            _ => Err(DeliveryError::new(
                "channel transport does not match endpoint",
            )),
        }
    }
}

/// One HTTP request of a channel, before sending (tests render payloads with it too).
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Full URL (may contain a secret: never print it).
    pub url: String,
    /// Extra headers (may contain a secret).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Value,
    /// The service answers with `{"ok": bool}` (Telegram).
    pub check_ok_field: bool,
}

/// Renders `msg` for an HTTP endpoint.
pub fn http_request(ep: &Endpoint, msg: &Message) -> HttpRequest {
    let mut headers = Vec::new();
    let (url, body, check_ok_field) = match ep {
        Endpoint::Webhook { url, token } => {
            headers.push(("Idempotency-Key".to_string(), msg.id.clone()));
            if let Some(t) = token {
                headers.push(("Authorization".into(), format!("Bearer {}", t.expose())));
            }
            (url.expose().to_string(), webhook_body(msg), false)
        }
        Endpoint::Slack { url } => (url.expose().to_string(), slack_body(msg), false),
        Endpoint::Discord { url } => (url.expose().to_string(), discord_body(msg), false),
        Endpoint::Telegram {
            base_url,
            token,
            chat_id,
        } => (
            format!("{base_url}/bot{}/sendMessage", token.expose()),
            telegram_body(chat_id, msg),
            true,
        ),
        Endpoint::Sendgrid {
            base_url,
            token,
            from,
            to,
        } => {
            headers.push(("Authorization".into(), format!("Bearer {}", token.expose())));
            (
                format!("{base_url}/v3/mail/send"),
                sendgrid_body(from, to, msg),
                false,
            )
        }
        Endpoint::Smtp { .. } => (String::new(), Value::Null, false),
    };
    HttpRequest {
        url,
        headers,
        body,
        check_ok_field,
    }
}

fn post_json(agent: &ureq::Agent, req: &HttpRequest) -> Result<(), DeliveryError> {
    let mut r = agent
        .post(&req.url)
        .header("Content-Type", "application/json");
    for (k, v) in &req.headers {
        r = r.header(k.as_str(), v.as_str());
    }
    let body = req.body.to_string();
    let mut resp = r.send(body.as_str()).map_err(transport_error)?;
    let status = resp.status().as_u16();
    let retry_header = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let json_body: Option<Value> = serde_json::from_str(&text).ok();
    let body_retry = json_body
        .as_ref()
        .and_then(|v| v.pointer("/parameters/retry_after"))
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    if (200..300).contains(&status) {
        if req.check_ok_field
            && json_body
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
                != Some(true)
        {
            return Err(DeliveryError::new(format!(
                "HTTP {status} without \"ok\": true"
            )));
        }
        return Ok(());
    }
    let description = json_body
        .as_ref()
        .and_then(|v| v.get("description").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .map(|d| format!(": {}", super::alert::preview(d.as_bytes(), 160)))
        .unwrap_or_default();
    Err(DeliveryError {
        reason: format!("HTTP {status}{description}"),
        retry_after: retry_header.or(body_retry),
    })
}

/// A transport error without the URL (which may hold a token).
fn transport_error(e: ureq::Error) -> DeliveryError {
    DeliveryError::new(match e {
        ureq::Error::Io(io) => format!("i/o error: {}", io.kind()),
        ureq::Error::Timeout(t) => format!("timeout ({t})"),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::StatusCode(s) => format!("HTTP {s}"),
        ureq::Error::BadUri(_) => "bad URL".to_string(),
        _ => "HTTP transport error".to_string(),
    })
}

fn send_smtp(
    t: &SmtpTransport,
    from: &str,
    to: &[String],
    msg: &Message,
) -> Result<(), DeliveryError> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| DeliveryError::new(format!("bad address {a:?}: {e}")))
    };
    let mut b = lettre::Message::builder()
        .from(mailbox(from)?)
        .subject(subject(msg))
        .message_id(Some(format!("<{}@algo-engine>", msg.id)))
        .header(ContentType::TEXT_PLAIN);
    for r in to {
        b = b.to(mailbox(r)?);
    }
    let email = b
        .body(plain_text(msg))
        .map_err(|e| DeliveryError::new(format!("cannot build mail: {e}")))?;
    t.send(&email)
        .map(|_| ())
        .map_err(|e| DeliveryError::new(format!("SMTP: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Cuts `s` to at most `max` characters (not bytes), marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The headline of a message.
pub fn subject(msg: &Message) -> String {
    let sev = msg.severity.name().to_ascii_uppercase();
    let head = match (msg.grouping, msg.alerts.as_slice()) {
        (Grouping::Single, [a]) => {
            if a.count > 1 {
                format!("[{sev}] {} (x{})", a.title, a.count)
            } else {
                format!("[{sev}] {}", a.title)
            }
        }
        (Grouping::Digest, alerts) => format!("[{sev}] Digest: {} events", total(alerts)),
        (_, alerts) => format!("[{sev}] {} {}s", total(alerts), msg.severity.name()),
    };
    match msg.escalated_from.last() {
        Some(c) => format!("{head} (escalated from {c})"),
        None => head,
    }
}

fn total(alerts: &[Alert]) -> u64 {
    alerts.iter().map(|a| u64::from(a.count)).sum()
}

/// One line per alert: title, count, fields, origin.
pub fn alert_line(a: &Alert) -> String {
    let mut s = a.title.clone();
    if a.count > 1 {
        s.push_str(&format!(" (x{})", a.count));
    }
    if !a.fields.is_empty() {
        s.push_str(" — ");
        let parts: Vec<String> = a.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&parts.join(", "));
    }
    s.push_str(&format!(" [{}#{}]", a.journal, a.seq));
    s
}

/// The plain-text body (mail, Telegram, Slack fallback).
pub fn plain_text(msg: &Message) -> String {
    let mut s = subject(msg);
    s.push_str("\n\n");
    for a in &msg.alerts {
        s.push_str("- ");
        s.push_str(&alert_line(a));
        s.push('\n');
    }
    s.push_str(&format!("\nalert id: {}\n", msg.id));
    s
}

fn webhook_body(msg: &Message) -> Value {
    let alerts: Vec<Value> = msg
        .alerts
        .iter()
        .map(|a| {
            let mut fields = Map::new();
            for (k, v) in &a.fields {
                fields.insert(k.clone(), Value::String(v.clone()));
            }
            json!({
                "journal": a.journal,
                "seq": a.seq,
                "ts_ns": a.ts_ns,
                "severity": a.severity,
                "kind": a.kind,
                "key": a.key,
                "title": a.title,
                "count": a.count,
                "fields": fields,
            })
        })
        .collect();
    json!({
        "id": msg.id,
        "source": "algo-engine",
        "severity": msg.severity,
        "grouping": msg.grouping,
        "title": subject(msg),
        "text": plain_text(msg),
        "escalated_from": msg.escalated_from,
        "created_unix_ms": msg.created_unix_ms,
        "alerts": alerts,
    })
}

/// Slack mrkdwn escaping (`&`, `<`, `>` are control characters).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_body(msg: &Message) -> Value {
    const MAX_SECTIONS: usize = 45;
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&subject(msg), 150)},
    })];
    for a in msg.alerts.iter().take(MAX_SECTIONS) {
        let mut text = format!("*{}*", slack_escape(&a.title));
        if a.count > 1 {
            text.push_str(&format!(" (x{})", a.count));
        }
        for (k, v) in &a.fields {
            text.push_str(&format!("\n• {}: `{}`", slack_escape(k), slack_escape(v)));
        }
        text.push_str(&format!("\n_{}#{}_", slack_escape(&a.journal), a.seq));
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(&text, 3000)},
        }));
    }
    let more = msg.alerts.len().saturating_sub(MAX_SECTIONS);
    let mut context = format!("alert id {}", msg.id);
    if more > 0 {
        context.push_str(&format!(" · {more} more alerts not shown"));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context}],
    }));
    json!({
        "text": clip(&slack_escape(&subject(msg)), 3000),
        "blocks": blocks,
    })
}

fn discord_color(s: Severity) -> u32 {
    match s {
        Severity::Critical => 0xE0_1E_5A,
        Severity::Warning => 0xEC_B2_2E,
        Severity::Info => 0x2E_B6_7D,
    }
}

/// RFC 3339 UTC time of a Unix-epoch nanosecond value.
pub fn iso8601(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let millis = (ns / 1_000_000 % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn discord_body(msg: &Message) -> Value {
    const MAX_EMBEDS: usize = 10;
    const TOTAL: usize = 6000;
    let per_embed = TOTAL / MAX_EMBEDS.min(msg.alerts.len().max(1)) - 10;
    let mut embeds = Vec::new();
    for a in msg.alerts.iter().take(MAX_EMBEDS) {
        let mut budget = per_embed;
        let mut title = a.title.clone();
        if a.count > 1 {
            title.push_str(&format!(" (x{})", a.count));
        }
        let title = clip(&title, 256.min(budget / 3));
        budget -= title.chars().count();
        let description = clip(&format!("{}#{} · {}", a.journal, a.seq, a.kind), 200);
        budget = budget.saturating_sub(description.chars().count());
        let mut fields = Vec::new();
        for (k, v) in a.fields.iter().take(25) {
            let name = clip(k, 64);
            let value = clip(if v.is_empty() { "-" } else { v }, 256);
            let cost = name.chars().count() + value.chars().count();
            if cost > budget {
                break;
            }
            budget -= cost;
            fields.push(json!({"name": name, "value": value, "inline": true}));
        }
        let mut e = json!({
            "title": title,
            "description": description,
            "color": discord_color(a.severity),
            "fields": fields,
        });
        if a.ts_ns > 0 {
            e["timestamp"] = Value::String(iso8601(a.ts_ns));
        }
        embeds.push(e);
    }
    let mut content = subject(msg);
    let more = msg.alerts.len().saturating_sub(MAX_EMBEDS);
    if more > 0 {
        content.push_str(&format!(" — {more} more not shown"));
    }
    json!({
        "content": clip(&content, 2000),
        "embeds": embeds,
    })
}

/// Telegram HTML escaping (`<`, `>`, `&`).
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn telegram_body(chat_id: &str, msg: &Message) -> Value {
    let mut text = format!("<b>{}</b>\n", html_escape(&subject(msg)));
    for a in &msg.alerts {
        text.push_str(&format!("\n• {}", html_escape(&alert_line(a))));
    }
    text.push_str(&format!("\n\n<i>id {}</i>", html_escape(&msg.id)));
    // Clip on the escaped text only at a line end, so no entity or tag is cut in half.
    let text = if text.chars().count() > 4096 {
        let mut cut = String::new();
        for line in text.lines() {
            if cut.chars().count() + line.chars().count() + 2 > 4090 {
                cut.push_str("\n…");
                break;
            }
            if !cut.is_empty() {
                cut.push('\n');
            }
            cut.push_str(line);
        }
        cut
    } else {
        text
    };
    // A numeric chat id is sent as a number, a `@channel` as a string: both are accepted.
    let chat: Value = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(chat_id.to_string()));
    json!({"chat_id": chat, "text": text, "parse_mode": "HTML"})
}

fn sendgrid_body(from: &str, to: &[String], msg: &Message) -> Value {
    let to: Vec<Value> = to.iter().map(|e| json!({"email": e})).collect();
    json!({
        "personalizations": [{"to": to}],
        "from": {"email": from},
        "subject": clip(&subject(msg), 900),
        "content": [{"type": "text/plain", "value": plain_text(msg)}],
        "custom_args": {"alert_id": msg.id},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_values() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(1_723_075_200_123_000_000),
            "2024-08-08T00:00:00.123Z"
        );
        assert_eq!(iso8601(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 5), "héllo");
        assert_eq!(clip("héllo", 3), "hé…");
    }
}
