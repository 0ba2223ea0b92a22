//! The metrics exporter against the real engine: the feed and strategy stages replay the
//! recorded Binance BTCUSDT capture into real journals (in-process, the way `algo-engine run`
//! wires them), the exporter tails them, and
//!
//! * its numbers are checked against an independent read of the same journals, and its page
//!   passes `promtool check metrics`;
//! * a real Prometheus (Debian's `prometheus`) scrapes it every second while the engine writes,
//!   and its HTTP query API must show the series and a counter that increased between scrapes.
//!
//! Without `prometheus`/`promtool` installed the tests skip, unless peers are required (CI,
//! `ALGO_REQUIRE_DATA`), where they fail: `scripts/setup.sh` installs them.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coldpath::metrics::{self, JournalMetrics, JournalSource, MetricsConfig};
use hotpath::book::{BookSet, SyncMode};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{Decision, MarketEvent, OrderIntent, Stage as StampStage};
use hotpath::feed::{FeedCounters, FeedStage, ReplaySource};
use hotpath::runtime::Stage;
use hotpath::signals::SymbolConfig;
use hotpath::strategy::{Strategy, StrategyIo, StrategyReport, StrategyStage};
use ringbuffers::journal::Appender;
use ringbuffers::spsc::Consumer;

/// The capture, or `None` to skip (a missing capture fails when data is required).
fn capture() -> Option<PathBuf> {
    let c = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz");
    if c.is_none() {
        assert!(
            !hotpath::datadir::data_required(),
            "capture binance/spot/btcusdt_20240808.gz missing and ALGO_REQUIRE_DATA is set"
        );
        eprintln!("skipping: capture not found (set ALGO_DATA_DIR)");
    }
    c
}

/// True if `tool` runs; false (skip) if not installed, panics when peers are required.
fn tool_available(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !testkit::peers_required(),
            "`{tool}` is not installed (run scripts/setup.sh) and peers are required"
        );
        eprintln!("skipping: `{tool}` not installed (scripts/setup.sh installs it)");
    }
    ok
}

/// The feed and strategy stages over a capture, polled by the caller (one thread, fused).
struct Engine {
    feed: Box<dyn Stage>,
    strategy: Box<dyn Stage>,
    intents: Consumer<OrderIntent>,
}

impl Engine {
    fn new(capture: &Path, journal: &Path, limit: Option<usize>) -> Engine {
        let input = coldpath::replay::load_hftbacktest(capture, limit).unwrap();
        let source =
            ReplaySource::new(input.frames.iter().map(|(ns, f)| (*ns, f.as_slice())), None);
        std::fs::create_dir_all(journal).unwrap();
        let feed_journal = Appender::open(journal, codec::journal_config()).unwrap();
        let (tx, rx) = ringbuffers::spsc::channel(4096);
        let done = Arc::new(AtomicBool::new(false));
        let feed = FeedStage::new(
            source,
            input.decoder(),
            feed_journal,
            tx,
            1 << 20,
            16_384,
            done.clone(),
            Arc::new(Mutex::new(FeedCounters::default())),
        )
        .with_books(BookSet::for_table(&input.table, SyncMode::Snapshot));
        let dir = journal.join("strategy");
        std::fs::create_dir_all(&dir).unwrap();
        let strategy_journal = Appender::open(&dir, codec::journal_config()).unwrap();
        let (output, intents) = ringbuffers::spsc::channel(1024);
        let strategy = StrategyStage::new(
            Strategy::new(&input.table, SymbolConfig::for_instrument).unwrap(),
            StrategyIo {
                input: rx,
                output,
                assume_books_proven: false,
                journal: Some(strategy_journal),
                upstream_done: done,
                batch: 256,
                report: Arc::new(Mutex::new(StrategyReport::default())),
            },
        );
        Engine {
            feed: Box::new(feed),
            strategy: Box::new(strategy),
            intents,
        }
    }

    /// Feeds up to `frames` frames through both stages; true once everything is processed
    /// (the stages are then shut down, which flushes their journals).
    fn step(&mut self, frames: usize) -> bool {
        for _ in 0..frames {
            self.feed.poll();
            self.strategy.poll();
        }
        while self.strategy.poll() > 0 {}
        while self.intents.try_pop().is_some() {}
        let done = self.feed.finished() && self.strategy.finished();
        if done {
            self.feed.shutdown();
            self.strategy.shutdown();
        }
        done
    }
}

/// `name{labels} value` lines of an exposition page, keyed by everything before the value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

#[test]
fn derived_metrics_match_an_independent_read_and_pass_promtool() {
    let Some(capture) = capture() else { return };
    let have_promtool = tool_available("promtool");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run");
    let mut engine = Engine::new(&capture, &journal, None);
    while !engine.step(4096) {}

    // The expected numbers, read directly from the journals with the codec.
    let mut metrics = JournalMetrics::new(Some(10_000.0));
    let (mut records, mut market, mut stamped, mut raw) = (0u64, 0u64, 0u64, 0u64);
    let mut last_proven = None;
    let mut t = codec::open_tailer(&journal).unwrap();
    while let Some(rec) = t.next().unwrap() {
        metrics.observe("feed", &rec);
        records += 1;
        match RecordKind::from_u16(rec.kind) {
            Some(RecordKind::Market) => {
                let e = codec::decode::<MarketEvent>(rec.payload).unwrap();
                market += 1;
                stamped += u64::from(e.stamps.since_recv(StampStage::Decoded).is_some());
                last_proven = Some(e.has(MarketEvent::FLAG_BOOK_PROVEN));
            }
            Some(RecordKind::RawFrame) => raw += 1,
            _ => {}
        }
    }
    let (mut decisions, mut hops) = (0u64, 0u64);
    let mut t = codec::open_tailer(&journal.join("strategy")).unwrap();
    while let Some(rec) = t.next().unwrap() {
        metrics.observe("strategy", &rec);
        if rec.kind == RecordKind::Decision.as_u16() {
            let d = codec::decode::<Decision>(rec.payload).unwrap();
            decisions += 1;
            hops += u64::from(
                d.stamps
                    .between(StampStage::Decoded, StampStage::StrategyIn)
                    .is_some(),
            );
        }
    }
    assert!(
        market > 100_000 && raw == 41_249,
        "market {market}, raw {raw}"
    );
    assert!(decisions > 0, "the 6-minute capture closes 1m candles");

    let mut page = coldpath::metrics::Exposition::new();
    metrics.render(&mut page, Instant::now());
    let page = page.finish();
    let s = samples(&page);
    let v = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no sample {k}\n{page}"));
    assert_eq!(
        v(r#"algo_events_total{stage="feed",kind="market"}"#),
        market as f64
    );
    assert_eq!(
        v(r#"algo_events_total{stage="feed",kind="raw_frame"}"#),
        raw as f64
    );
    assert_eq!(v(r#"algo_tailer_next_seq{stage="feed"}"#), records as f64);
    assert_eq!(
        v(r#"algo_stage_latency_seconds_count{stage="decode"}"#),
        stamped as f64
    );
    assert!(stamped == market, "the feed stamps every event it decodes");
    assert_eq!(
        v(r#"algo_stage_latency_seconds_count{stage="ring_hop"}"#),
        hops as f64
    );
    let decided: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("algo_decisions_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(decided, decisions as f64);
    assert_eq!(
        v(r##"algo_book_proven{symbol="#0"}"##),
        f64::from(u8::from(last_proven.unwrap()))
    );
    assert_eq!(v("algo_drawdown_ratio"), 0.0, "no fills, no drawdown");
    assert!(v("algo_clock_offset_seconds").abs() < 5.0);
    let bytes = v(r#"algo_journal_bytes_total{stage="feed"}"#);
    assert!(bytes > (market * 144) as f64);

    // The exporter serves the same numbers over HTTP once its tailers caught up, with the
    // names given in the configuration and the live source's samples.
    // The engine's live source: a real ring with 7 events waiting, seen through its probe.
    let (mut ring_tx, _ring_rx) = ringbuffers::spsc::channel::<u64>(64);
    for i in 0..7 {
        ring_tx.try_push(i).unwrap();
    }
    let live = metrics::RingDepths::default().with("feed_strategy", ring_tx.probe());
    let handle = metrics::spawn(
        MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            poll_interval: Duration::from_millis(20),
            symbols: vec![(0, "BTCUSDT".into())],
            capital: Some(10_000.0),
        },
        JournalSource::engine_layout(&journal),
        Some(Arc::new(live)),
    )
    .unwrap();
    let url = format!("http://{}/metrics", handle.addr());
    let deadline = Instant::now() + Duration::from_secs(60);
    let served = loop {
        let p = get(&url);
        if samples(&p).get(r#"algo_tailer_next_seq{stage="feed"}"#) == Some(&(records as f64)) {
            break p;
        }
        assert!(Instant::now() < deadline, "exporter did not catch up:\n{p}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let s2 = samples(&served);
    assert_eq!(
        s2[r#"algo_market_events_total{symbol="BTCUSDT",kind="depth_level"}"#],
        s[r##"algo_market_events_total{symbol="#0",kind="depth_level"}"##]
    );
    assert_eq!(s2[r#"algo_ring_depth{ring="feed_strategy"}"#], 7.0);
    assert_eq!(s2[r#"algo_ring_capacity{ring="feed_strategy"}"#], 64.0);
    assert_eq!(
        s2[r#"algo_tailer_up{stage="gateway"}"#], 0.0,
        "no gateway journal yet"
    );
    assert_eq!(s2[r#"algo_tailer_up{stage="strategy"}"#], 1.0);
    handle.shutdown();
    monitoring_names_exist(&served);

    if have_promtool {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(served.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `algo_*` metric the dashboard and the alerting rules query is a family of the
/// exporter's real page (histogram series by their family), so a renamed metric cannot leave a
/// silent panel or an alert that never fires.
fn monitoring_names_exist(page: &str) {
    let families: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/monitoring");
    let mut checked = 0;
    for file in ["grafana-dashboard.json", "alerts.yml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("algo_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
                end += 1;
            }
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| families.contains(b))
                .unwrap_or(name);
            assert!(
                families.contains(&base),
                "{file} queries {name}, which the exporter does not export"
            );
            checked += 1;
            i = end;
        }
    }
    assert!(checked > 40, "only {checked} metric references found");
}

/// Kills the Prometheus child when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `result` array of a Prometheus query answer.
fn query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let body = ureq::get(&format!("{prom}/api/v1/query"))
        .query("query", q)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    let Ok(body) = body else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{q}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn prometheus_scrapes_series_that_move_while_the_engine_runs() {
    let Some(capture) = capture() else { return };
    if !tool_available("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run");
    // The exporter starts before the journals exist, as it would beside a starting engine.
    let handle = metrics::spawn(
        MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            poll_interval: Duration::from_millis(50),
            symbols: vec![(0, "BTCUSDT".into())],
            capital: Some(10_000.0),
        },
        JournalSource::engine_layout(&journal),
        None,
    )
    .unwrap();

    // The engine writes the capture at a bounded pace (about 2,000 frames a second) on its
    // own thread until the test has seen what it needs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, journal) = (stop.clone(), journal.clone());
        std::thread::spawn(move || {
            let mut engine = Engine::new(&capture, &journal, None);
            while !stop.load(Ordering::Relaxed) && !engine.step(100) {
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: algo-engine\n    static_configs:\n      - targets: ['{}']\n",
            handle.addr()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{port}");

    // A counter must have at least two scraped samples with the later one larger.
    let deadline = Instant::now() + Duration::from_secs(90);
    let moved = loop {
        let r = query(
            &prom,
            r#"algo_events_total{job="algo-engine",stage="feed",kind="raw_frame"}[30s]"#,
        );
        let values: Vec<f64> = r
            .first()
            .and_then(|s| s["values"].as_array())
            .map(|vs| {
                vs.iter()
                    .filter_map(|p| p[1].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if values.len() >= 2 && values.last() > values.first() {
            break values;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
            panic!("no moving counter in Prometheus: {values:?}\nprometheus log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        moved.windows(2).all(|w| w[0] <= w[1]),
        "counter went down: {moved:?}"
    );

    for q in [
        r#"algo_stage_latency_seconds_bucket{stage="decode",le="+Inf"} > 0"#,
        r#"algo_book_proven{symbol="BTCUSDT"}"#,
        r#"algo_journal_bytes_total{stage="feed"} > 0"#,
        r#"algo_tailer_lag_seconds{stage="feed"}"#,
        r#"algo_tailer_up{stage="strategy"}"#,
        r#"algo_market_events_total{symbol="BTCUSDT",kind="trade"} > 0"#,
        "algo_health_score",
        "algo_drawdown_ratio",
        r#"up{job="algo-engine"} == 1"#,
    ] {
        let r = query(&prom, q);
        assert!(!r.is_empty(), "Prometheus has no series for {q}");
    }
    // Rate over the scraped samples: Prometheus itself computes a positive frame rate.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(
        &prom,
        r#"rate(algo_events_total{stage="feed",kind="market"}[10s]) > 0"#,
    )
    .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus computes no positive event rate"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    handle.shutdown();
}
