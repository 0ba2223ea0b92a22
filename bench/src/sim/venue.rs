//! [`SimVenue`]: the whole simulated venue (REST, market-data and user-stream WebSocket,
//! matching) started in-process with one call.
//!
//! Why: the engine's `run` (embedded default venue), backtests and the wire-to-wire benchmark
//! all need the same thing: a Binance-shaped venue on loopback playing a market. `SimVenue`
//! owns a [`RestServer`] (order entry, whose state is the shared exchange: books, orders,
//! balances), a WebSocket server (market streams and the user data stream) and the market
//! driver thread. The driver plays the tape in order: for each frame it activates the orders
//! whose latency has elapsed in market time, applies the frame to the exchange (book diffs,
//! fills of resting orders by trades), then writes it to the subscribed clients, pacing by the
//! frames' timestamps (recorded speed, a multiple, or as fast as the sockets take). Before any of
//! that, `start` builds the candle history ([`HistorySource`]) the REST `klines` endpoint
//! serves, and applying a trade frame also adds it to its 1m kline.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::exchange::{Fees, LatencyModel};
use super::history::{load_csv, synthetic_for_capture, HistorySource};
use super::klines::Klines;
use super::market::{load_capture, Event, TapeFrame};
use super::rest::{market_in, MarketType, RestConfig, RestServer, VenueOpts};
use super::stamps::{WireLog, WireStamps};
use super::synth::{Generator, SynthConfig};
use super::ws::{Hub, WsServer};

/// Path of the WebSocket API on the WebSocket server (Binance's `/ws-api/v3`).
pub const WS_API_PATH: &str = "/ws-api/v3";
/// Path of the WebSocket API in USD-M mode (Binance's `/ws-fapi/v1`).
pub const USDM_WS_API_PATH: &str = "/ws-fapi/v1";

/// The WebSocket API's path on `market_type`.
pub(crate) fn ws_api_path(market_type: MarketType) -> &'static str {
    match market_type {
        MarketType::Spot => WS_API_PATH,
        MarketType::UsdM => USDM_WS_API_PATH,
    }
}

/// How fast the tape plays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// At the recorded speed (1x).
    Recorded,
    /// This many times the recorded speed (`Multiple(10.0)` = 10x).
    Multiple(f64),
    /// As fast as the sockets take the frames.
    Max,
}

impl Pace {
    /// Parse `1x`, `10x`, `0.5x` or `max`.
    pub fn parse(s: &str) -> Option<Pace> {
        if s.eq_ignore_ascii_case("max") {
            return Some(Pace::Max);
        }
        let k: f64 = s.strip_suffix(['x', 'X']).unwrap_or(s).parse().ok()?;
        if !(k.is_finite() && k > 0.0) {
            return None;
        }
        Some(if k == 1.0 {
            Pace::Recorded
        } else {
            Pace::Multiple(k)
        })
    }
}

/// Where the market comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum MarketSource {
    /// Replay a recorded hftbacktest capture (`<recv_ns> <combined JSON>` lines).
    Capture {
        /// The capture file (gzip or plain).
        path: PathBuf,
        /// Replay speed.
        pace: Pace,
        /// Play at most this many frames of it.
        limit: Option<usize>,
    },
    /// The deterministic synthetic generator.
    Synthetic {
        /// What to generate.
        config: SynthConfig,
        /// Replay speed (against the generated event times).
        pace: Pace,
    },
    /// No market: empty books, no stream frames.
    None,
}

/// When the tape starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartMode {
    /// When the first market-data client subscribes to a stream.
    #[default]
    OnFirstSubscriber,
    /// As soon as the venue starts.
    Immediately,
}

/// Configuration of a [`SimVenue`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// REST side: bind address, API key/secret, limits, starting balances, and the market
    /// type (`rest.market_type`: spot or USD-M), which the whole venue follows: its REST paths,
    /// the account, the user stream's events, the WebSocket API's path and the synthetic tape's
    /// ticks, steps and stream shapes. Use [`Fees::USDM`] for USD-M's fee rates.
    pub rest: RestConfig,
    /// WebSocket bind address (port 0 picks one).
    pub ws_bind: SocketAddr,
    /// The market.
    pub market: MarketSource,
    /// The candle history before the tape, served by REST `klines` (default: 30 h synthetic;
    /// see [`HistorySource`]). Ignored with [`MarketSource::None`].
    pub history: HistorySource,
    /// Order latency, in market time.
    pub latency: LatencyModel,
    /// Maker/taker fees.
    pub fees: Fees,
    /// When the tape starts.
    pub start: StartMode,
    /// At the end of the tape, send market-data clients a close frame (1000).
    pub close_at_end: bool,
    /// Capacity of each wire-stamp log (frames and orders).
    pub stamp_capacity: usize,
}

impl Default for SimConfig {
    /// Synthetic BTCUSDT + ETHUSDT (seed 1, 24 h) at recorded speed after 30 h of synthetic
    /// history, Binance's default fees, no latency, starting when a client subscribes.
    fn default() -> Self {
        SimConfig {
            rest: RestConfig::default(),
            ws_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            market: MarketSource::Synthetic {
                config: SynthConfig::default(),
                pace: Pace::Recorded,
            },
            history: HistorySource::default(),
            latency: LatencyModel::Zero,
            fees: Fees::default(),
            start: StartMode::OnFirstSubscriber,
            close_at_end: true,
            stamp_capacity: 1 << 20,
        }
    }
}

/// Progress of the market driver.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    applied: AtomicU64,
    finished: AtomicBool,
    stop: AtomicBool,
}

/// A running simulated venue. Stops on [`SimVenue::shutdown`] or drop.
pub struct SimVenue {
    rest: RestServer,
    ws: WsServer,
    driver: Option<JoinHandle<()>>,
    progress: Arc<Progress>,
    stamps: Arc<WireLog>,
    history_time: Duration,
}

impl std::fmt::Debug for SimVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimVenue")
            .field("rest", &self.rest.addr())
            .field("ws", &self.ws.addr)
            .finish()
    }
}

impl SimVenue {
    /// Load the market and its history, bind both servers and start the driver.
    pub fn start(cfg: SimConfig) -> io::Result<SimVenue> {
        let mut klines = Klines::default();
        let mut history_time = Duration::ZERO;
        type Tape = Box<dyn Iterator<Item = TapeFrame> + Send>;
        let (tape, pace, seeds): (Tape, Pace, Vec<TapeFrame>) = match &cfg.market {
            MarketSource::Capture { path, pace, limit } => {
                let all = load_capture(path, *limit)?;
                let t0 = Instant::now();
                capture_history(cfg.rest.market_type, &all, &cfg.history, &mut klines)?;
                history_time = t0.elapsed();
                // The inline snapshot seeds the book before anything is sent, so REST `depth`
                // answers (with the snapshot's `lastUpdateId`) even before the stream starts.
                let seeds = all.iter().filter(|f| !f.is_sent()).cloned().collect();
                (Box::new(all.into_iter()), *pace, seeds)
            }
            MarketSource::Synthetic { config, pace } => {
                // The tape is of the venue's market: its ticks, steps and stream shapes.
                let config = &SynthConfig {
                    market_type: cfg.rest.market_type,
                    ..config.clone()
                };
                let t0 = Instant::now();
                let mut gen = match cfg.history.synthetic_ms() {
                    Some(ms) => Generator::with_history(config, ms),
                    None => Generator::new(config),
                };
                gen.play_history(|t| {
                    klines.record(t.symbol, t.time_ms, t.price, t.qty, t.buyer_maker);
                });
                if let HistorySource::Klines { dir } = &cfg.history {
                    let symbols: Vec<&'static str> = config
                        .symbols
                        .iter()
                        .filter_map(|s| {
                            market_in(cfg.rest.market_type, &s.to_ascii_uppercase())
                                .map(|m| m.symbol)
                        })
                        .collect();
                    load_csv(&mut klines, dir, &symbols, config.start_ms)?;
                }
                klines.advance_clock(config.start_ms);
                history_time = t0.elapsed();
                (Box::new(gen), *pace, Vec::new())
            }
            MarketSource::None => (Box::new(std::iter::empty()), Pace::Max, Vec::new()),
        };
        let stamps = Arc::new(WireLog::new(cfg.stamp_capacity, cfg.stamp_capacity));
        let (tx, rx) = std::sync::mpsc::channel();
        let rest = RestServer::start_with(
            cfg.rest.clone(),
            VenueOpts {
                fees: cfg.fees,
                latency: cfg.latency.clone(),
                ladder: false,
                events: Some(tx),
                stamps: Some(Arc::clone(&stamps)),
            },
        )?;
        {
            let sh = rest.shared();
            let mut st = sh.state();
            let now = sh.now_ms();
            st.ex.klines = klines;
            for f in &seeds {
                st.ex.apply(f, now);
            }
        }
        let ws = WsServer::start(
            cfg.ws_bind,
            Arc::clone(rest.shared()),
            rx,
            Some(Arc::clone(&stamps)),
        )?;
        let progress = Arc::new(Progress::default());
        let driver = {
            let hub = Arc::clone(&ws.hub);
            let rest_shared = Arc::clone(rest.shared());
            let progress = Arc::clone(&progress);
            let (start, close_at_end) = (cfg.start, cfg.close_at_end);
            std::thread::Builder::new()
                .name("sim-market".into())
                .spawn(move || {
                    drive(
                        tape,
                        pace,
                        start,
                        close_at_end,
                        &hub,
                        &rest_shared,
                        &progress,
                    )
                })?
        };
        Ok(SimVenue {
            rest,
            ws,
            driver: Some(driver),
            progress,
            stamps,
            history_time,
        })
    }

    /// How long loading or generating the candle history took at start.
    pub fn history_build_time(&self) -> Duration {
        self.history_time
    }

    /// `http://127.0.0.1:PORT` of the REST API.
    pub fn rest_url(&self) -> String {
        self.rest.base_url()
    }

    /// `ws://127.0.0.1:PORT` of the WebSocket server (append `/stream?streams=...`,
    /// `/ws/<stream>` or `/ws/<listenKey>`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws.addr)
    }

    /// `ws://127.0.0.1:PORT/ws-api/v3` (USD-M: `/ws-fapi/v1`): the WebSocket API (order
    /// entry over one connection).
    pub fn ws_api_url(&self) -> String {
        let path = ws_api_path(self.rest.shared().cfg.market_type);
        format!("ws://{}{path}", self.ws.addr)
    }

    /// Spot or USD-M.
    pub fn market_type(&self) -> MarketType {
        self.rest.shared().cfg.market_type
    }

    /// USD-M: `(positionAmt, entryPrice)` of `symbol`, scale 8 (flat: `(0, 0)`).
    pub fn position(&self, symbol: &str) -> (i64, i64) {
        let st = self.rest.shared().state();
        st.ex.futures.as_ref().map_or((0, 0), |f| {
            let p = f.position(symbol);
            (p.amt, p.entry)
        })
    }

    /// USD-M: the USDT `walletBalance`, scale 8.
    pub fn wallet_balance(&self) -> i64 {
        let st = self.rest.shared().state();
        st.ex.futures.as_ref().map_or(0, |f| f.wallet)
    }

    /// The REST address.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest.addr()
    }

    /// The WebSocket address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws.addr
    }

    /// The API key the venue accepts.
    pub fn api_key(&self) -> &str {
        &self.rest.shared().cfg.api_key
    }

    /// Its secret.
    pub fn api_secret(&self) -> &str {
        &self.rest.shared().cfg.api_secret
    }

    /// The REST server (order counts, server time).
    pub fn rest(&self) -> &RestServer {
        &self.rest
    }

    /// Market-data frames applied so far (sent or not).
    pub fn frames_applied(&self) -> u64 {
        self.progress.applied.load(Ordering::SeqCst)
    }

    /// Frames written to at least one client so far.
    pub fn frames_sent(&self) -> u64 {
        self.progress.sent.load(Ordering::SeqCst)
    }

    /// Market time of the last frame applied, ns since the epoch (0 before the first).
    pub fn market_time_ns(&self) -> u64 {
        self.rest.shared().state().ex.market_ns
    }

    /// Whether the tape has ended.
    pub fn is_finished(&self) -> bool {
        self.progress.finished.load(Ordering::SeqCst)
    }

    /// Wait up to `timeout` for the tape to end; true if it did.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.is_finished() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// A copy of the wire-stamp logs (frame writes and order reads, TSC).
    pub fn wire_stamps(&self) -> WireStamps {
        self.stamps.snapshot()
    }

    /// (free, locked) of `asset`, scale 8 (for tests and reports).
    pub fn balance(&self, asset: &str) -> (i64, i64) {
        let st = self.rest.shared().state();
        st.ex.balances.get(asset).copied().unwrap_or((0, 0))
    }

    /// Stop the driver and both servers.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.progress.stop.store(true, Ordering::SeqCst);
        self.ws.stop();
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
        // Dropping the event sender ends the user-stream forwarder.
        self.rest.shared().state().ex.events = None;
    }
}

impl Drop for SimVenue {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Anchor a capture's klines: the event clock (the capture's receive times are the recorder's
/// clock, the venue's candles are on its event times), and the history before its first event.
fn capture_history(
    market_type: MarketType,
    frames: &[TapeFrame],
    history: &HistorySource,
    klines: &mut Klines,
) -> io::Result<()> {
    let first_event = frames.iter().filter(|f| f.is_sent()).find_map(|f| {
        let v: Value = serde_json::from_slice(f.data_bytes()).ok()?;
        let ms = v.get("E").or_else(|| v.get("T"))?.as_u64()?;
        Some((ms, f.time_ns))
    });
    let Some((first_ms, recv_ns)) = first_event else {
        return Ok(());
    };
    klines.set_skew(first_ms as i64 - (recv_ns / 1_000_000) as i64);
    klines.advance_clock(first_ms);
    let symbol = frames.iter().find_map(|f| match f.event {
        Event::Trade { symbol, .. }
        | Event::Depth { symbol, .. }
        | Event::Snapshot { symbol, .. }
        | Event::BookTicker { symbol } => Some(symbol),
        Event::Other => None,
    });
    let first_trade = frames.iter().find_map(|f| match f.event {
        Event::Trade { price, .. } => Some(price),
        _ => None,
    });
    match (history, symbol) {
        (HistorySource::Synthetic { .. }, Some(symbol)) => {
            // Rescaled to the first trade's price; without a trade there is nothing to meet.
            if let (Some(ms), Some(price)) = (history.synthetic_ms(), first_trade) {
                let series = synthetic_for_capture(market_type, symbol, first_ms, ms, price);
                klines.insert(symbol, series);
            }
        }
        (HistorySource::Klines { dir }, Some(symbol)) => {
            load_csv(klines, dir, &[symbol], first_ms)?;
        }
        _ => {}
    }
    Ok(())
}

fn drive(
    tape: Box<dyn Iterator<Item = TapeFrame> + Send>,
    pace: Pace,
    start: StartMode,
    close_at_end: bool,
    hub: &Hub,
    rest: &super::rest::Shared,
    progress: &Progress,
) {
    if start == StartMode::OnFirstSubscriber {
        hub.wait_subscriber();
    }
    rest.state().driver_running = true;
    let t0 = Instant::now();
    let mut first_ns = None;
    for (i, frame) in tape.enumerate() {
        if progress.stop.load(Ordering::SeqCst) {
            break;
        }
        let speed = match pace {
            Pace::Max => None,
            Pace::Recorded => Some(1.0),
            Pace::Multiple(k) => Some(k),
        };
        if let Some(k) = speed {
            let f0 = *first_ns.get_or_insert(frame.time_ns);
            let due =
                t0 + Duration::from_secs_f64(frame.time_ns.saturating_sub(f0) as f64 / 1e9 / k);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let activated = {
            let now = rest.now_ms();
            let mut st = rest.state();
            let any = st.activate_due(Some(frame.time_ns), now);
            st.ex.apply(&frame, now);
            any
        };
        if activated {
            rest.activated.notify_all();
        }
        progress.applied.fetch_add(1, Ordering::SeqCst);
        if frame.is_sent() && hub.broadcast(i, &frame) > 0 {
            progress.sent.fetch_add(1, Ordering::SeqCst);
        }
    }
    rest.state().driver_running = false;
    rest.activated.notify_all();
    if close_at_end && !progress.stop.load(Ordering::SeqCst) {
        hub.close_market();
    }
    progress.finished.store(true, Ordering::SeqCst);
}
