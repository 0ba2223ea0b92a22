//! The metrics exporter: `/metrics` in the Prometheus text format, derived from the journals.
//!
//! The design rule of the cold path holds here too: the exporter never touches a hot thread.
//! [`spawn`] starts one tailer thread per journal directory ([`JournalSource`]: the feed journal
//! `<journal>/`, the strategy journal `<journal>/strategy/`, the gateway journal
//! `<journal>/gateway/` once it exists) and one thread running a small tokio runtime with the
//! axum server. Each tailer folds the records it reads into the shared [`JournalMetrics`]
//! (counters by stage and kind, book state, reconnects, decisions, orders by state,
//! rejections, positions, P&L, drawdown, health, and per-hop latency histograms computed from
//! the `Stamps` every event carries; see [`derive`]). The hot stages already journal all of
//! that, so they pay nothing: no lock, no atomic, no extra store.
//!
//! What the journal cannot say (ring depths, appender positions, live connection counters)
//! comes from an optional [`LiveSource`]: a callback, run at each scrape on the server thread,
//! that reads the hot stages' existing relaxed atomic counters (`atomic_counters!` snapshots in
//! `hotpath`) and returns [`LiveSample`]s. Live families are written first and take precedence
//! over a derived family of the same name; an invalid live sample is dropped and counted in
//! `algo_metrics_rejected_samples_total`.
//!
//! A journal directory that does not exist yet (the strategy's before its first decision, the
//! gateway's before the gateway is built) is retried every poll interval; its tailer reports
//! `algo_tailer_up 0` meanwhile. No cursor is persisted: counters, positions and P&L are a
//! function of the whole journal, so after a restart each tailer re-reads its journal from the
//! oldest segment, which is what keeps the position and P&L gauges right (Prometheus treats the
//! counters' restart from zero as an ordinary counter reset).
//!
//! Instrument names for the `symbol` label come from [`MetricsConfig::symbols`] or, failing
//! that, from the `instruments.json` an import writes next to the segments; otherwise `#<id>`.

pub mod derive;
pub mod exposition;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbuffers::journal::JournalError;
use ringbuffers::spsc::DepthProbe;

pub use derive::JournalMetrics;
pub use exposition::{Exposition, LatencyHistogram, MetricType, BUCKETS_NS};

/// Records a tailer folds in per lock acquisition: bounds how long a scrape waits for a tailer
/// that is catching up.
const BATCH: usize = 4096;

/// How the exporter runs.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (`127.0.0.1:9464` by default; port 0 picks a free one, see
    /// [`MetricsHandle::addr`]).
    pub listen: SocketAddr,
    /// How long a tailer sleeps when it has reached the end of its journal.
    pub poll_interval: Duration,
    /// Instrument names by id for the `symbol` label.
    pub symbols: Vec<(u32, String)>,
    /// Capital in quote currency: exports `algo_drawdown_ratio` when set.
    pub capital: Option<f64>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            poll_interval: Duration::from_millis(100),
            symbols: Vec::new(),
            capital: None,
        }
    }
}

/// One journal directory to tail and the `stage` label its metrics carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSource {
    /// The `stage` label (`feed`, `strategy`, `gateway`).
    pub stage: String,
    /// The journal directory.
    pub dir: PathBuf,
}

impl JournalSource {
    /// A journal directory with its stage label.
    pub fn new(stage: &str, dir: impl Into<PathBuf>) -> Self {
        JournalSource {
            stage: stage.to_string(),
            dir: dir.into(),
        }
    }

    /// The journals of an engine run rooted at `journal` (as `algo-engine run --journal`
    /// lays them out): `feed` = `journal/`, `strategy` = `journal/strategy/`, `gateway` =
    /// `journal/gateway/`.
    pub fn engine_layout(journal: &Path) -> Vec<JournalSource> {
        vec![
            JournalSource::new("feed", journal),
            JournalSource::new("strategy", journal.join("strategy")),
            JournalSource::new("gateway", journal.join("gateway")),
        ]
    }
}

/// The type of a [`LiveSample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveKind {
    /// A monotonic counter (name ends in `_total`).
    Counter,
    /// A gauge.
    Gauge,
}

/// One value read from the running engine at scrape time.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSample {
    /// Metric name (`algo_ring_depth`, ...).
    pub name: &'static str,
    /// `# HELP` text (the first sample of a family supplies it).
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: LiveKind,
    /// Labels.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl LiveSample {
    /// A gauge sample.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        LiveSample {
            name,
            help,
            kind: LiveKind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    /// A counter sample.
    pub fn counter(name: &'static str, help: &'static str, value: f64) -> Self {
        LiveSample {
            kind: LiveKind::Counter,
            ..LiveSample::gauge(name, help, value)
        }
    }

    /// With a label added.
    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }
}

/// In-process values read at each scrape (ring depths, appender positions, connection
/// counters). Runs on the exporter's server thread; it must only read (relaxed atomic loads).
pub trait LiveSource: Send + Sync + 'static {
    /// Appends the current samples to `out`.
    fn collect(&self, out: &mut Vec<LiveSample>);
}

impl<F: Fn(&mut Vec<LiveSample>) + Send + Sync + 'static> LiveSource for F {
    fn collect(&self, out: &mut Vec<LiveSample>) {
        self(out)
    }
}

/// The hot path's SPSC rings as a [`LiveSource`]: `algo_ring_depth{ring}` (events waiting) and
/// `algo_ring_capacity{ring}` at each scrape, read through [`DepthProbe`]s (two relaxed loads
/// a ring; the hot side is not told). A depth that stays near the capacity means the consumer
/// stage cannot keep up and the producer is about to stall.
#[derive(Clone, Debug, Default)]
pub struct RingDepths {
    rings: Vec<(&'static str, DepthProbe)>,
}

impl RingDepths {
    /// Adds a ring under the `ring` label `name` (`feed_strategy`, `strategy_gateway`, ...).
    pub fn with(mut self, name: &'static str, probe: DepthProbe) -> Self {
        self.rings.push((name, probe));
        self
    }
}

impl LiveSource for RingDepths {
    fn collect(&self, out: &mut Vec<LiveSample>) {
        // One family after the other: the exposition wants a family's samples together.
        type Family = (&'static str, &'static str, fn(&DepthProbe) -> usize);
        let families: [Family; 2] = [
            (
                "algo_ring_depth",
                "Events published to a hot-path ring and not yet consumed.",
                DepthProbe::depth,
            ),
            (
                "algo_ring_capacity",
                "Slots of a hot-path ring.",
                DepthProbe::capacity,
            ),
        ];
        for (metric, help, read) in families {
            for (ring, p) in &self.rings {
                out.push(LiveSample::gauge(metric, help, read(p) as f64).label("ring", *ring));
            }
        }
    }
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A thread or the runtime could not be started.
    #[error("starting the exporter: {0}")]
    Start(std::io::Error),
}

/// State shared by the tailers and the server.
struct Shared {
    metrics: Mutex<JournalMetrics>,
    live: Option<Arc<dyn LiveSource>>,
    scrapes: AtomicU64,
    rejected: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, JournalMetrics> {
        // A panicking tailer must not take the exporter down: its partial update is still the
        // best data there is.
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn render(&self) -> String {
        let mut out = Exposition::new();
        // Live samples first: a family the engine supplies itself (the risk manager's
        // `algo_health_score`) replaces the exporter's derived one.
        if let Some(live) = &self.live {
            let mut samples = Vec::new();
            live.collect(&mut samples);
            // Families must be contiguous: group by name.
            samples.sort_by_key(|s| s.name);
            for group in samples.chunk_by(|a, b| a.name == b.name) {
                let first = &group[0];
                let ty = match first.kind {
                    LiveKind::Counter => MetricType::Counter,
                    LiveKind::Gauge => MetricType::Gauge,
                };
                if out.family(first.name, first.help, ty) {
                    for s in group {
                        let labels: Vec<(&str, &str)> =
                            s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        out.sample(first.name, &labels, s.value);
                    }
                }
            }
        }
        self.rejected.fetch_add(out.rejected(), Ordering::Relaxed);
        self.lock().render(&mut out, Instant::now());
        let rejected = self.rejected.load(Ordering::Relaxed);
        if out.family(
            "algo_metrics_rejected_samples_total",
            "Live families or samples refused by the exporter (invalid or duplicate names).",
            MetricType::Counter,
        ) {
            out.sample("algo_metrics_rejected_samples_total", &[], rejected as f64);
        }
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        if out.family(
            "algo_metrics_scrapes_total",
            "Pages rendered by the exporter.",
            MetricType::Counter,
        ) {
            out.sample("algo_metrics_scrapes_total", &[], scrapes as f64);
        }
        out.finish()
    }
}

/// A running exporter; dropping it stops the threads.
pub struct MetricsHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl MetricsHandle {
    /// The address `/metrics` is served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page `/metrics` would return now.
    pub fn render(&self) -> String {
        self.shared.render()
    }

    /// Stops the server and the tailers and waits for them.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Starts the exporter: binds `config.listen`, starts one tailer thread per journal and the
/// HTTP server thread, and returns once `/metrics` is being served.
pub fn spawn(
    config: MetricsConfig,
    journals: Vec<JournalSource>,
    live: Option<Arc<dyn LiveSource>>,
) -> Result<MetricsHandle, MetricsError> {
    let listener = TcpListener::bind(config.listen).map_err(|source| MetricsError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(MetricsError::Start)?;
    listener
        .set_nonblocking(true)
        .map_err(MetricsError::Start)?;

    let mut metrics = JournalMetrics::new(config.capital);
    for (id, name) in &config.symbols {
        metrics.set_symbol(*id, name);
    }
    for j in &journals {
        metrics.register(&j.stage);
    }
    let shared = Arc::new(Shared {
        metrics: Mutex::new(metrics),
        live,
        scrapes: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut handle = MetricsHandle {
        addr,
        shared: shared.clone(),
        stop: stop.clone(),
        shutdown: None,
        threads: Vec::new(),
    };
    let names_given = !config.symbols.is_empty();
    for j in journals {
        let (shared, stop) = (shared.clone(), stop.clone());
        let poll = config.poll_interval;
        let t = std::thread::Builder::new()
            .name(format!("metrics-{}", j.stage))
            .spawn(move || tail(&j, &shared, &stop, poll, names_given))
            .map_err(MetricsError::Start)?;
        handle.threads.push(t);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MetricsError::Start)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let server_shared = shared.clone();
    let t = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let app = router(server_shared);
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!("metrics server: {e}");
                }
            })
        })
        .map_err(MetricsError::Start)?;
    handle.threads.push(t);
    handle.shutdown = Some(tx);
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(MetricsError::Start(e)),
        Err(_) => Err(MetricsError::Start(std::io::Error::other(
            "metrics server thread ended before serving",
        ))),
    }
}

fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;

    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let shared = shared.clone();
                async move {
                    // Rendering takes the tailers' mutex for at most one batch: do it off the
                    // reactor.
                    let body = tokio::task::spawn_blocking(move || shared.render())
                        .await
                        .unwrap_or_else(|e| format!("# render failed: {e}\n"));
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        body,
                    )
                }
            }),
        )
        .route(
            "/",
            get(|| async { "algo-engine metrics exporter: see /metrics\n" }),
        )
}

/// A tailer thread: follows `j` until `stop`, folding records in batches.
fn tail(j: &JournalSource, shared: &Shared, stop: &AtomicBool, poll: Duration, names_given: bool) {
    let mut tailer = None;
    let mut last_names_try: Option<Instant> = None;
    let mut reported_open_error = false;
    while !stop.load(Ordering::Acquire) {
        let Some(t) = tailer.as_mut() else {
            match hotpath::codec::open_tailer(&j.dir) {
                Ok(t) => {
                    tailer = Some(t);
                    shared.lock().set_up(&j.stage, true);
                }
                Err(e) => {
                    // A journal that is not there yet is normal (it is created by its stage);
                    // anything else (schema mismatch, unreadable file) is an error, counted
                    // once per streak.
                    let missing = matches!(e, JournalError::NotAJournal { .. });
                    if !missing && !reported_open_error {
                        tracing::warn!("metrics: cannot open journal {}: {e}", j.dir.display());
                        shared.lock().error(&j.stage, "journal_open");
                        reported_open_error = true;
                    }
                    std::thread::sleep(poll);
                }
            }
            continue;
        };
        reported_open_error = false;
        let mut at_end = false;
        let mut corrupt = false;
        {
            let mut m = shared.lock();
            for _ in 0..BATCH {
                match t.next() {
                    Ok(Some(rec)) => m.observe(&j.stage, &rec),
                    Ok(None) => {
                        at_end = true;
                        break;
                    }
                    Err(e) => {
                        // The tailer stays on a corrupt record (it never skips data): report
                        // it once and wait; `algo_tailer_up` shows the stall.
                        corrupt = true;
                        if !m.is_corrupt(&j.stage) {
                            tracing::error!("metrics: journal {}: {e}", j.dir.display());
                            m.error(&j.stage, "journal_corrupt");
                        }
                        break;
                    }
                }
            }
            m.set_corrupt(&j.stage, corrupt);
            m.polled(&j.stage, at_end, Instant::now());
            if !names_given
                && m.missing_symbols()
                && last_names_try.is_none_or(|t| t.elapsed() > Duration::from_secs(5))
            {
                last_names_try = Some(Instant::now());
                if let Ok(infos) = crate::import::read_instruments(&j.dir) {
                    for i in infos {
                        m.set_symbol(i.id, &i.symbol);
                    }
                }
            }
        }
        if at_end || corrupt {
            std::thread::sleep(poll);
        }
    }
}
