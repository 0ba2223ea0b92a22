//! End-to-end tests of the notifier against real local peers.
//!
//! Journals are written with the engine's own appender and codec (Exec rejections and fills,
//! Gap and FeedError records), the notifier reads them through its cursor, and delivers to
//! real servers on loopback: a small HTTP/1.1 sink (std::net) that records every request and
//! can fail on purpose, and `aiosmtpd` (Python, the `.venv` of the repo) as the SMTP server.
//! Every payload is checked field by field; retries, escalation, de-duplication, rate limiting
//! and restarts are checked by what the peers received. Nothing asserts on elapsed time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coldpath::cursor::Cursor;
use coldpath::notify::{Notifier, NotifyConfig};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{ExecEvent, ExecKind, Side, Stamps};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{InstrumentId, InstrumentRef};
use ringbuffers::journal::{Appender, JournalConfig};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// HTTP sink
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
    status: u16,
}

impl Req {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    fn header(&self, k: &str) -> &str {
        self.headers.get(k).map(String::as_str).unwrap_or("")
    }
}

/// A loopback HTTP server recording every request. It answers 500 to the first `fail_first`
/// requests and while `down` is set; otherwise 202 on `/sg/...`, a Telegram-style
/// `{"ok":true}` on `/tg/...`, 204 on `/discord`, and 200 elsewhere.
struct Sink {
    port: u16,
    reqs: Arc<Mutex<Vec<Req>>>,
    down: Arc<AtomicBool>,
}

impl Sink {
    fn start(fail_first: usize) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (r2, d2) = (reqs.clone(), down.clone());
        let served = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r3, d3, s3) = (r2.clone(), d2.clone(), served.clone());
                std::thread::spawn(move || serve(conn, r3, d3, s3, fail_first));
            }
        });
        Sink { port, reqs, down }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn all(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    fn ok_on(&self, path: &str) -> Vec<Req> {
        self.all()
            .into_iter()
            .filter(|r| r.ok() && r.path.starts_with(path))
            .collect()
    }
}

fn serve(
    conn: TcpStream,
    reqs: Arc<Mutex<Vec<Req>>>,
    down: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    fail_first: usize,
) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let body = if let Some(n) = headers.get("content-length") {
        let mut b = vec![0; n.parse().unwrap()];
        r.read_exact(&mut b).unwrap();
        b
    } else {
        // Chunked.
        let mut b = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            b.extend_from_slice(&chunk[..n]);
        }
        b
    };
    let nth = served.fetch_add(1, Ordering::SeqCst);
    let failing = nth < fail_first || down.load(Ordering::SeqCst);
    let (status, text) = if failing {
        (500, r#"{"message":"sink is down"}"#.to_string())
    } else if path.starts_with("/sg/") {
        (202, String::new())
    } else if path.starts_with("/tg/") {
        (200, r#"{"ok":true,"result":{"message_id":1}}"#.to_string())
    } else if path.starts_with("/discord") {
        (204, String::new())
    } else {
        (200, "ok".to_string())
    };
    reqs.lock().unwrap().push(Req {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status,
    });
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        _ => "Internal Server Error",
    };
    let _ = write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = w.flush();
}

// ---------------------------------------------------------------------------------------------
// Journals
// ---------------------------------------------------------------------------------------------

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn appender(dir: &Path) -> Appender {
    let mut cfg = JournalConfig::new(codec::SCHEMA_HASH);
    cfg.segment_size = 1 << 20;
    cfg.prefault = false;
    Appender::open(dir, cfg).unwrap()
}

fn inst(id: u32) -> InstrumentRef {
    InstrumentRef {
        id: InstrumentId(id),
        price_scale: 2,
        qty_scale: 3,
    }
}

/// An order rejection (critical `order_failed`); distinct instruments give distinct keys.
fn reject(app: &mut Appender, instrument: u32, cid: u64) -> u64 {
    let ts = now_ns();
    let ev = ExecEvent::new(
        inst(instrument),
        ExecKind::Rejected,
        Side::Buy,
        cid,
        0,
        Stamps::new(ts, 0),
    )
    .with_venue_error(-2010);
    codec::append(app, &ev, 0, ts).unwrap()
}

fn fill(app: &mut Appender, cid: u64) -> u64 {
    let ts = now_ns();
    let ev = ExecEvent::new(
        inst(1),
        ExecKind::Fill,
        Side::Sell,
        cid,
        77,
        Stamps::new(ts, 0),
    )
    .with_fill(Price(6_123_450), Qty(1_500), Qty(1_500), Qty(0), 9001);
    codec::append(app, &ev, 0, ts).unwrap()
}

fn text(app: &mut Appender, kind: RecordKind, payload: &str) -> u64 {
    text_at(app, kind, now_ns(), payload)
}

fn text_at(app: &mut Appender, kind: RecordKind, ts: u64, payload: &str) -> u64 {
    codec::append_bytes(app, kind, 0, ts, payload.as_bytes()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

fn env() -> impl Fn(&str) -> Option<String> {
    |k: &str| {
        let v = match k {
            "HOOK_TOKEN" => "hook-secret",
            "TG_TOKEN" => "123:ABC",
            "SG_KEY" => "SG.test-key",
            _ => return None,
        };
        Some(v.to_string())
    }
}

fn config(text: &str) -> NotifyConfig {
    NotifyConfig::from_toml(text).unwrap()
}

fn seqs(reqs: &[Req]) -> Vec<u64> {
    reqs.iter()
        .flat_map(|r| r.body["alerts"].as_array().unwrap().clone())
        .map(|a| a["seq"].as_u64().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_http_format_field_by_field() {
    let sink = Sink::start(0);
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("engine");
    let mut app = appender(&jdir);
    let s_reject = reject(&mut app, 7, 4242);
    let s_gap = text(&mut app, RecordKind::Gap, "book_gap inst=7 kind=diff_gap rule=spot action=resync state=live expected=10 got_U=12 got_u=15");
    let s_fill = fill(&mut app, 31);
    let cfg = config(&format!(
        r#"
[other_section]
ignored = true

[notify]
warning_batch_secs = 3600
info_digest_secs = 3600

[notify.routing]
critical = ["hook", "slack", "discord", "telegram", "sendgrid"]
warning = ["hook"]
info = ["hook"]

[[notify.channel]]
name = "hook"
kind = "webhook"
url = "{hook}"
token_env = "HOOK_TOKEN"

[[notify.channel]]
name = "slack"
kind = "slack"
url = "{slack}"

[[notify.channel]]
name = "discord"
kind = "discord"
url = "{discord}"

[[notify.channel]]
name = "telegram"
kind = "telegram"
base_url = "{tg}"
token_env = "TG_TOKEN"
chat_id = "-100123"

[[notify.channel]]
name = "sendgrid"
kind = "sendgrid"
base_url = "{sg}"
token_env = "SG_KEY"
from = "alerts@example.com"
to = ["ops@example.com", "oncall@example.com"]
"#,
        hook = sink.url("/hook"),
        slack = sink.url("/slack"),
        discord = sink.url("/discord"),
        tg = sink.url("/tg"),
        sg = sink.url("/sg"),
    ));
    let mut n = Notifier::open(
        &cfg,
        std::slice::from_ref(&jdir),
        &dir.path().join("state"),
        &env(),
    )
    .unwrap();
    assert!(n.run_until_idle(Duration::from_secs(30), true));

    // Generic webhook: the critical alert alone, then the warning batch and the info digest.
    let hook = sink.ok_on("/hook");
    assert_eq!(hook.len(), 3, "{hook:#?}");
    let crit = hook
        .iter()
        .find(|r| r.body["severity"] == "critical")
        .unwrap();
    assert_eq!(crit.header("authorization"), "Bearer hook-secret");
    assert_eq!(crit.header("content-type"), "application/json");
    assert_eq!(
        crit.header("idempotency-key"),
        crit.body["id"].as_str().unwrap()
    );
    let b = &crit.body;
    assert_eq!(b["source"], "algo-engine");
    assert_eq!(b["grouping"], "single");
    assert_eq!(b["escalated_from"], serde_json::json!([]));
    assert!(b["title"]
        .as_str()
        .unwrap()
        .starts_with("[CRITICAL] Order failed: rejected buy #7"));
    assert!(b["created_unix_ms"].as_u64().unwrap() > 0);
    let a = &b["alerts"][0];
    assert_eq!(a["journal"], "engine");
    assert_eq!(a["seq"], s_reject);
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["kind"], "order_failed");
    assert_eq!(a["key"], "order_failed:7:-2010");
    assert_eq!(a["count"], 1);
    assert!(a["ts_ns"].as_u64().unwrap() > 0);
    assert_eq!(a["fields"]["venue_error"], "-2010");
    assert_eq!(a["fields"]["client_order_id"], "4242");
    assert_eq!(a["fields"]["side"], "buy");
    assert_eq!(a["fields"]["instrument"], "#7");
    let warn = hook
        .iter()
        .find(|r| r.body["severity"] == "warning")
        .unwrap();
    assert_eq!(warn.body["alerts"][0]["seq"], s_gap);
    assert_eq!(warn.body["alerts"][0]["kind"], "book_gap");
    assert_eq!(warn.body["alerts"][0]["fields"]["got_u"], "15");
    let info = hook.iter().find(|r| r.body["severity"] == "info").unwrap();
    assert_eq!(info.body["alerts"][0]["seq"], s_fill);
    assert_eq!(info.body["alerts"][0]["kind"], "order_filled");
    assert_eq!(info.body["alerts"][0]["fields"]["price"], "61234.50");
    assert_eq!(info.body["alerts"][0]["fields"]["qty"], "1.500");

    // Slack incoming webhook.
    let slack = sink.ok_on("/slack");
    assert_eq!(slack.len(), 1);
    let s = &slack[0].body;
    assert!(s["text"]
        .as_str()
        .unwrap()
        .starts_with("[CRITICAL] Order failed"));
    let blocks = s["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let sec = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(sec.contains("venue_error: `-2010`"), "{sec}");
    assert!(sec.contains(&format!("engine#{s_reject}")));
    assert_eq!(blocks.last().unwrap()["type"], "context");

    // Discord webhook.
    let discord = sink.ok_on("/discord");
    assert_eq!(discord.len(), 1);
    let d = &discord[0].body;
    assert!(d["content"].as_str().unwrap().starts_with("[CRITICAL]"));
    let e = &d["embeds"][0];
    assert!(e["title"].as_str().unwrap().starts_with("Order failed"));
    assert_eq!(e["color"], 0xE01E5A);
    assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
    let f = e["fields"].as_array().unwrap();
    assert!(f
        .iter()
        .any(|x| x["name"] == "venue_error" && x["value"] == "-2010" && x["inline"] == true));

    // Telegram sendMessage.
    let tg = sink.ok_on("/tg/");
    assert_eq!(tg.len(), 1);
    assert_eq!(tg[0].path, "/tg/bot123:ABC/sendMessage");
    let t = &tg[0].body;
    assert_eq!(t["chat_id"], -100123);
    assert_eq!(t["parse_mode"], "HTML");
    let tt = t["text"].as_str().unwrap();
    assert!(tt.starts_with("<b>[CRITICAL] Order failed"), "{tt}");
    assert!(tt.contains("venue_error=-2010"));

    // SendGrid v3 mail/send.
    let sg = sink.ok_on("/sg/");
    assert_eq!(sg.len(), 1);
    assert_eq!(sg[0].path, "/sg/v3/mail/send");
    assert_eq!(sg[0].header("authorization"), "Bearer SG.test-key");
    let g = &sg[0].body;
    assert_eq!(
        g["personalizations"][0]["to"][0]["email"],
        "ops@example.com"
    );
    assert_eq!(
        g["personalizations"][0]["to"][1]["email"],
        "oncall@example.com"
    );
    assert_eq!(g["from"]["email"], "alerts@example.com");
    assert!(g["subject"]
        .as_str()
        .unwrap()
        .starts_with("[CRITICAL] Order failed"));
    assert_eq!(g["content"][0]["type"], "text/plain");
    assert!(g["content"][0]["value"]
        .as_str()
        .unwrap()
        .contains("venue_error=-2010"));
    assert_eq!(g["custom_args"]["alert_id"], crit.body["id"]);

    // Everything delivered: the cursor is at the end of the journal.
    let cur = Cursor::load(dir.path().join("state/engine.cursor")).unwrap();
    assert_eq!(cur.next_seq(), app.next_seq());
    assert_eq!(n.stats().delivered, 7);
}

#[test]
fn secrets_come_from_env_and_are_never_printed() {
    let cfg = config(
        r#"
[notify.routing]
critical = ["tg"]
[[notify.channel]]
name = "tg"
kind = "telegram"
token_env = "TG_TOKEN"
chat_id = "1"
"#,
    );
    let resolved = cfg.resolve(&env()).unwrap();
    let shown = format!("{resolved:?}");
    assert!(!shown.contains("123:ABC"), "{shown}");
    let missing = cfg.resolve(&|_: &str| None).unwrap_err().to_string();
    assert!(missing.contains("TG_TOKEN"), "{missing}");
    let bad = NotifyConfig::from_toml("[notify.routing]\ncritical = [\"nope\"]\n").unwrap();
    assert!(bad.resolve(&env()).is_err());
}

#[test]
fn retries_with_backoff_keep_order_and_lose_nothing() {
    // The first 5 requests fail with 500.
    let sink = Sink::start(5);
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    let mut app = appender(&jdir);
    let mut expected = Vec::new();
    for i in 0..10 {
        text(&mut app, RecordKind::Market, "not an alert");
        expected.push(reject(&mut app, 100 + i, i as u64));
    }
    let cfg = config(&format!(
        r#"
[notify.routing]
critical = ["hook"]
[[notify.channel]]
name = "hook"
kind = "webhook"
url = "{}"
retry_base_ms = 5
retry_max_ms = 40
rate_per_minute = 0
"#,
        sink.url("/hook")
    ));
    let mut n = Notifier::open(&cfg, &[jdir], &dir.path().join("state"), &env()).unwrap();
    assert!(n.run_until_idle(Duration::from_secs(60), false));
    let all = sink.all();
    // The head was retried until it went through: the first six requests are the same message.
    assert!(all[..5].iter().all(|r| r.status == 500));
    let first_id = all[0].header("idempotency-key").to_string();
    assert!(all[..6]
        .iter()
        .all(|r| r.header("idempotency-key") == first_id));
    let ok = sink.ok_on("/hook");
    assert_eq!(seqs(&ok), expected, "every alert once, in journal order");
    assert_eq!(n.stats().failed_attempts, 5);
    assert_eq!(n.stats().delivered, 10);
}

#[test]
fn a_channel_that_stays_down_escalates_to_its_fallback() {
    let primary = Sink::start(0);
    primary.down.store(true, Ordering::SeqCst);
    let fallback = Sink::start(0);
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    let mut app = appender(&jdir);
    let expected: Vec<u64> = (0..3).map(|i| reject(&mut app, 200 + i, 0)).collect();
    let cfg = config(&format!(
        r#"
[notify.routing]
critical = ["primary"]
[[notify.channel]]
name = "primary"
kind = "webhook"
url = "{}"
fallback = "backup"
escalate_after_secs = 1
retry_base_ms = 10
retry_max_ms = 100
rate_per_minute = 0
[[notify.channel]]
name = "backup"
kind = "webhook"
url = "{}"
"#,
        primary.url("/p"),
        fallback.url("/f")
    ));
    let mut n = Notifier::open(&cfg, &[jdir], &dir.path().join("state"), &env()).unwrap();
    assert!(n.run_until_idle(Duration::from_secs(60), false));
    let got = fallback.ok_on("/f");
    assert_eq!(seqs(&got), expected);
    for r in &got {
        assert_eq!(r.body["escalated_from"], serde_json::json!(["primary"]));
        assert!(r.body["title"]
            .as_str()
            .unwrap()
            .ends_with("(escalated from primary)"));
    }
    assert!(primary.ok_on("/p").is_empty());
    assert!(n.stats().failed_attempts >= 1);
    assert_eq!(n.stats().escalated, 3);

    // The primary comes back: the next alert goes to it again, not to the fallback.
    primary.down.store(false, Ordering::SeqCst);
    let s = reject(&mut app, 300, 0);
    assert!(n.run_until_idle(Duration::from_secs(60), false));
    let back = primary.ok_on("/p");
    assert_eq!(seqs(&back), vec![s]);
    assert_eq!(back[0].body["escalated_from"], serde_json::json!([]));
    assert_eq!(fallback.ok_on("/f").len(), 3);
}

#[test]
fn repeats_are_deduplicated_with_a_count() {
    let sink = Sink::start(0);
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    let mut app = appender(&jdir);
    let cfg = config(&format!(
        r#"
[notify]
warning_batch_secs = 3600
dedup_window_secs = 60
[notify.routing]
critical = ["hook"]
warning = ["hook"]
[[notify.channel]]
name = "hook"
kind = "webhook"
url = "{}"
rate_per_minute = 0
"#,
        sink.url("/hook")
    ));
    // Record times an hour ahead: the wall clock never ends a window in this test, the
    // record times do (the window is measured in journal time).
    let t0 = now_ns() + 3_600_000_000_000;
    let sec = 1_000_000_000;
    // Five identical feed errors (a warning): one batched alert with count 5.
    let first_fe = text_at(
        &mut app,
        RecordKind::FeedError,
        t0,
        "feed_error line=1 source=ws reason=bad json\n{",
    );
    for i in 2..=5u64 {
        text_at(
            &mut app,
            RecordKind::FeedError,
            t0 + i * sec,
            &format!("feed_error line={i} source=ws reason=bad json\n{{"),
        );
    }
    // Three connection losses read in one go: one critical alert with count 3.
    let lost = "market_data_connection_lost venue=binance";
    let first_cl = text_at(&mut app, RecordKind::Gap, t0 + 10 * sec, lost);
    text_at(&mut app, RecordKind::Gap, t0 + 11 * sec, lost);
    text_at(&mut app, RecordKind::Gap, t0 + 12 * sec, lost);
    let mut n = Notifier::open(&cfg, &[jdir], &dir.path().join("state"), &env()).unwrap();
    assert!(n.run_until_idle(Duration::from_secs(30), true));
    let ok = sink.ok_on("/hook");
    assert_eq!(ok.len(), 2, "{ok:#?}");
    let crit = ok
        .iter()
        .find(|r| r.body["severity"] == "critical")
        .unwrap();
    assert_eq!(crit.body["alerts"][0]["seq"], first_cl);
    assert_eq!(crit.body["alerts"][0]["count"], 3);
    assert!(crit.body["title"].as_str().unwrap().contains("(x3)"));
    let warn = ok.iter().find(|r| r.body["severity"] == "warning").unwrap();
    assert_eq!(warn.body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(warn.body["alerts"][0]["seq"], first_fe);
    assert_eq!(warn.body["alerts"][0]["count"], 5);
    assert_eq!(n.stats().merged, 6);

    // A repeat after the first one was sent is not sent again but counted...
    let late = text_at(&mut app, RecordKind::Gap, t0 + 30 * sec, lost);
    assert!(n.run_until_idle(Duration::from_secs(30), true));
    assert_eq!(sink.ok_on("/hook").len(), 2);
    assert_eq!(n.stats().suppressed, 1);
    // ...and reported once the journal's time passes the end of the window.
    text_at(&mut app, RecordKind::Market, t0 + 75 * sec, "not an alert");
    assert!(n.run_until_idle(Duration::from_secs(30), true));
    let ok = sink.ok_on("/hook");
    assert_eq!(ok.len(), 3, "{ok:#?}");
    let a = &ok[2].body["alerts"][0];
    assert_eq!(ok[2].body["severity"], "warning");
    assert_eq!(a["kind"], "repeated");
    assert_eq!(a["seq"], late);
    assert_eq!(a["count"], 1);
    assert_eq!(a["fields"]["first_seq"], first_cl.to_string());
    // After the window the same event alerts again, as a critical.
    let again = text_at(&mut app, RecordKind::Gap, t0 + 80 * sec, lost);
    assert!(n.run_until_idle(Duration::from_secs(30), true));
    let ok = sink.ok_on("/hook");
    assert_eq!(ok.len(), 4);
    assert_eq!(ok[3].body["severity"], "critical");
    assert_eq!(ok[3].body["alerts"][0]["seq"], again);
}

#[test]
fn restart_neither_loses_nor_repeats() {
    let sink = Sink::start(0);
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    let state = dir.path().join("state");
    let mut app = appender(&jdir);
    let mut expected: Vec<u64> = (0..10).map(|i| reject(&mut app, 400 + i, 0)).collect();
    let cfg_text = |rate: u32| {
        format!(
            r#"
[notify.routing]
critical = ["hook"]
[[notify.channel]]
name = "hook"
kind = "webhook"
url = "{}"
rate_per_minute = {rate}
burst = 3
"#,
            sink.url("/hook")
        )
    };

    // 1. A rate-limited run (1 per minute after a burst of 3) stops mid-stream and is dropped
    //    as a kill would: 3 sent, 7 durably queued.
    {
        let mut n = Notifier::open(
            &config(&cfg_text(1)),
            std::slice::from_ref(&jdir),
            &state,
            &env(),
        )
        .unwrap();
        assert!(!n.run_until_idle(Duration::from_millis(500), false));
        assert_eq!(n.stats().delivered, 3);
        assert_eq!(n.state().pending_alerts(), 7);
    }
    assert_eq!(sink.ok_on("/hook").len(), 3);

    // 2. A run that crashes right after its third delivery, before saving it.
    {
        let mut n = Notifier::open(
            &config(&cfg_text(0)),
            std::slice::from_ref(&jdir),
            &state,
            &env(),
        )
        .unwrap();
        n.crash_after_deliveries(3);
        assert!(!n.run_until_idle(Duration::from_secs(30), false));
    }
    assert_eq!(sink.ok_on("/hook").len(), 6);

    // 3. More records arrive; a clean run finishes everything.
    expected.extend((0..5).map(|i| reject(&mut app, 500 + i, 0)));
    let mut n = Notifier::open(
        &config(&cfg_text(0)),
        std::slice::from_ref(&jdir),
        &state,
        &env(),
    )
    .unwrap();
    assert!(n.run_until_idle(Duration::from_secs(30), false));

    let ok = sink.ok_on("/hook");
    // Exactly one message was sent twice: the one delivered just before the crash, with the
    // same idempotency key both times.
    assert_eq!(ok.len(), expected.len() + 1);
    let ids: Vec<&str> = ok.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(ids[5], ids[6], "the redelivered message keeps its id");
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<Req> = ok
        .iter()
        .filter(|r| seen.insert(r.header("idempotency-key").to_string()))
        .cloned()
        .collect();
    assert_eq!(
        seqs(&unique),
        expected,
        "no alert lost, none repeated, order kept"
    );
    assert_eq!(
        Cursor::load(state.join("j.cursor")).unwrap().next_seq(),
        app.next_seq()
    );
    assert_eq!(n.state().pending_alerts(), 0);
}

#[test]
fn smtp_mail_reaches_aiosmtpd() {
    let py = match testkit::python_with("aiosmtpd") {
        Ok(p) => p,
        Err(e) if !testkit::peers_required() => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("aiosmtpd required: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new(py)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        if let Ok(Some(st)) = server.try_wait() {
            panic!("aiosmtpd exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _server = Kill(server);

    let jdir = dir.path().join("j");
    let mut app = appender(&jdir);
    let s = reject(&mut app, 9, 777);
    let cfg = config(&format!(
        r#"
[notify.routing]
critical = ["mail"]
[[notify.channel]]
name = "mail"
kind = "smtp"
host = "127.0.0.1"
port = {port}
from = "engine@example.com"
to = ["ops@example.com"]
"#
    ));
    let mut n = Notifier::open(&cfg, &[jdir], &dir.path().join("state"), &env()).unwrap();
    assert!(n.run_until_idle(Duration::from_secs(30), false));
    let files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let mail = std::fs::read_to_string(&files[0]).unwrap();
    let (head, body) = mail.split_once("\n\n").unwrap();
    let header = |name: &str| {
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("From"), "engine@example.com");
    assert_eq!(header("To"), "ops@example.com");
    assert!(
        header("Subject").starts_with("[CRITICAL] Order failed: rejected buy #9"),
        "{head}"
    );
    let mid = header("Message-ID");
    assert!(
        mid.starts_with("<ae-") && mid.ends_with("@algo-engine>"),
        "{mid}"
    );
    assert!(header("Content-Type").starts_with("text/plain"));
    // lettre picks quoted-printable for the non-ASCII body; decode it as a mail reader would.
    let body = if header("Content-Transfer-Encoding") == "quoted-printable" {
        let joined = body.replace("=\r\n", "").replace("=\n", "");
        let b = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' && i + 2 < b.len() {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_string()
    };
    assert!(body.contains("— instrument=#9"), "{body}");
    assert!(body.contains("venue_error=-2010"), "{body}");
    assert!(body.contains("client_order_id=777"));
    assert!(body.contains(&format!("[j#{s}]")));
    assert_eq!(n.stats().delivered, 1);
}
