//! `algo-engine run` against a venue: the embedded simulator (default) or Binance.
//!
//! The same code path as live trading: the venue is reached only through sockets. With
//! `[venue] kind = "sim"` the Binance-compatible simulator of `bench::sim` is started in-process
//! on loopback (market data replayed from a capture or generated, REST order entry, user data
//! stream, matching), and the engine connects to it exactly as it would to Binance: the feed's
//! [`LiveSource`] on the combined-stream WebSocket with REST depth snapshots from the cold
//! [`SnapshotFetcher`], then the strategy, then the order intents. While it runs, a cold
//! tailer over the run's journals ([`crate::status`]) refreshes a one-screen status; at the end
//! (the simulator's tape is over and the feed has gone quiet, `--duration`, or SIGINT/SIGTERM)
//! it prints a summary.

use anyhow::{bail, Context, Result};
use bench::sim::{
    Fees, HistorySource, LatencyModel, MarketSource, Pace, SimConfig, SimVenue, SynthConfig,
};
use hotpath::book::{BookSet, SyncMode};
use hotpath::event::ExecEvent;
use hotpath::feed::BinanceFeedDecoder;
use hotpath::gateway::{
    GatewayConfig, GatewayIo, GatewayReport, GatewayStage, Market, RecoverError, VenueAnswer,
    WsApiConfig,
};
use hotpath::instrument::{InstrumentId, InstrumentTable, Venue};
use hotpath::live::{LiveConfig, LiveSource, StreamKind, SystemClock};
use hotpath::runtime::{Profile, Stage};
use hotpath::snapshot::{SnapshotConfig, SnapshotFetcher};
use hotpath::venue::binance::sign::Credentials;
use hotpath::venue::binance::Scanner;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Timeframes of the warm-up history, longest first: the strategy's 15m regime, 5m and 1m
/// indicators, and the 1m order-flow windows (Binance interval names).
const WARMUP_INTERVALS: [&str; 3] = ["15m", "5m", "1m"];
use crate::pipeline::{print_strategy, print_threads, RunArgs, StrategySeat};
use crate::status::{run_journals, StatusTail};
use coldpath::admin::{
    AdminConfig, AdminState, AdminToken, RingControlSink, SharedStatus, ADMIN_JOURNAL_DIR,
    DEFAULT_TOKEN_ENV,
};

/// The simulator as the configuration describes it.
fn sim_config(cfg: &Config, args: &RunArgs) -> Result<SimConfig> {
    let speed = args.speed.clone().unwrap_or_else(|| cfg.sim.speed.clone());
    let pace =
        Pace::parse(&speed).with_context(|| format!("speed {speed:?}: use max, 1x, 10x, ..."))?;
    let market = match cfg.sim.market.as_str() {
        "capture" => {
            let path = cfg.sim_capture();
            if !path.is_file() {
                bail!(
                    "[sim] capture {} not found (set ALGO_DATA_DIR, run scripts/fetch-data.sh, or use [sim] market = \"synthetic\")",
                    path.display()
                );
            }
            MarketSource::Capture {
                path,
                pace,
                limit: None,
            }
        }
        _ => MarketSource::Synthetic {
            config: SynthConfig {
                seed: cfg.sim.seed,
                symbols: cfg.venue.symbols.clone(),
                duration_ms: (cfg.sim.hours * 3_600_000.0) as u64,
                ..SynthConfig::default()
            },
            pace,
        },
    };
    let history = HistorySource::parse(&cfg.sim.history).with_context(|| {
        format!(
            "[sim] history = {:?}: use none, synthetic[:HOURS] or a directory",
            cfg.sim.history
        )
    })?;
    // Fee rates are at scale 8: 1 bp = 0.0001 = 10_000e-8.
    let bps = |b: f64| (b * 10_000.0).round() as i64;
    Ok(SimConfig {
        market,
        latency: if cfg.sim.latency_us == 0 {
            LatencyModel::Zero
        } else {
            LatencyModel::Fixed(Duration::from_micros(cfg.sim.latency_us))
        },
        fees: Fees {
            maker: bps(cfg.sim.maker_fee_bps),
            taker: bps(cfg.sim.taker_fee_bps),
        },
        history,
        ..SimConfig::default()
    })
}

/// Runs the engine against the configured venue.
pub fn run(args: &RunArgs, cfg: Config) -> Result<ExitCode> {
    let journal = args
        .journal
        .clone()
        .unwrap_or_else(|| cfg.engine.journal.clone());
    let profile_path = args
        .profile
        .clone()
        .unwrap_or_else(|| cfg.engine.profile.clone());
    let profile = Profile::load(&profile_path)?;
    let venue = match cfg.venue.kind.as_str() {
        "binance-usdm" => Venue::BinanceUsdM,
        _ => Venue::BinanceSpot,
    };
    let symbols: Vec<String> = cfg
        .venue
        .symbols
        .iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    let table = crate::record_cmd::instruments(venue, &symbols, None)?;
    for section in cfg.other.keys().filter(|k| k.as_str() != "notify") {
        tracing::warn!(section = %section, "configuration section not used by this run");
    }

    let mut live_credentials = None;
    let sim = if cfg.venue.kind == "sim" {
        let sim = SimVenue::start(sim_config(&cfg, args)?).context("starting the simulator")?;
        eprintln!(
            "venue: simulator on {} (REST) and {} (WebSocket)",
            sim.rest_url(),
            sim.ws_url()
        );
        Some(sim)
    } else {
        // Live: credentials must exist before anything connects; they are never printed.
        let creds = match &cfg.venue.credentials_file {
            Some(p) => Credentials::from_file(p),
            None => Credentials::from_env(),
        };
        live_credentials = Some(creds.map_err(|e| anyhow::anyhow!("credentials: {e}"))?);
        eprintln!("venue: {} (live)", venue.name());
        None
    };
    // One pair of endpoints for everything that talks to the venue: market data, depth
    // snapshots and candles, the order gateway with its user-data stream, reconciliation.
    let (ws_endpoint, rest_endpoint) = match &sim {
        Some(s) => (s.ws_url(), s.rest_url()),
        None => (
            cfg.venue
                .ws_endpoint
                .clone()
                .or_else(|| hotpath::live::default_endpoint(venue).map(String::from))
                .context("no WebSocket endpoint for this venue")?,
            cfg.venue
                .rest_endpoint
                .clone()
                .or_else(|| hotpath::snapshot::default_rest_endpoint(venue).map(String::from))
                .context("no REST endpoint for this venue")?,
        ),
    };

    let sym_refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let streams = [
        StreamKind::Trade,
        StreamKind::BookTicker,
        StreamKind::Depth(None),
    ];
    let mut live = LiveConfig::new(venue, &sym_refs, &streams);
    live.endpoint = Some(ws_endpoint.clone());
    let mut source = LiveSource::new(&live, SystemClock::new())?;
    let mut snap = SnapshotConfig::new(venue);
    snap.endpoint = Some(rest_endpoint.clone());
    let fetcher = SnapshotFetcher::spawn(&snap)?;
    let fetchable: Vec<_> = table.iter().map(|(id, spec)| (id, spec.symbol)).collect();
    source = source.with_snapshots(fetcher, &fetchable);
    if cfg.engine.warmup_candles > 0 {
        // Before the stream opens, so the history ends where the live trades begin.
        let w = source
            .warm_up(
                &WARMUP_INTERVALS,
                cfg.engine.warmup_candles.min(1000),
                Duration::from_secs(30),
            )
            .context("fetching the candle history for the warm-up")?;
        tracing::info!(
            bodies = w.bodies,
            bytes = w.bytes,
            failed = w.failed,
            "warm-up history"
        );
    }
    let live_stats = source.stats();

    std::fs::create_dir_all(&journal).with_context(|| format!("creating {}", journal.display()))?;
    let appender = ringbuffers::journal::Appender::open(&journal, hotpath::codec::journal_config())
        .with_context(|| format!("opening journal {}", journal.display()))?;
    // The instrument ids in the journal are those of the run that wrote it: reconciliation
    // names the symbols of earlier runs' orders by that run's table.
    let journaled_symbols: std::collections::BTreeMap<u32, String> =
        coldpath::import::read_instruments(&journal)
            .with_context(|| format!("reading the instruments of {}", journal.display()))?
            .into_iter()
            .map(|i| (i.id, i.symbol))
            .collect();
    coldpath::import::write_instruments(&journal, &table, "builtin")?;
    cfg.write_beside(&journal)?;
    let table: &'static InstrumentTable = Box::leak(Box::new(table));
    let decoder = BinanceFeedDecoder::new(Scanner::new(table, venue), None);
    let ring = cfg.engine.ring.max(2).next_power_of_two();
    let (tx, rx) = ringbuffers::spsc::channel(ring);
    // Read-only views of every hot ring for the metrics exporter's `algo_ring_depth`.
    let mut rings = coldpath::metrics::RingDepths::default().with("feed_strategy", tx.probe());
    let (feed, feed_done, feed_report) = crate::pipeline::feed_stage(
        source,
        decoder,
        appender,
        tx,
        BookSet::for_table(table, SyncMode::Snapshot),
    );
    let mut stages: Vec<Box<dyn Stage>> = vec![feed];
    // The gateway takes the strategy's intents; its executions go back to the strategy
    // (positions, exits, P&L), which journals them.
    let (exec_tx, exec_rx) = ringbuffers::spsc::channel::<ExecEvent>(ring);
    // Operator commands (admin API) reach the strategy through an SPSC control ring.
    let (control_tx, control_rx) = ringbuffers::spsc::channel::<hotpath::event::Control>(256);
    rings = rings
        .with("gateway_strategy_execs", exec_tx.probe())
        .with("admin_strategy_control", control_tx.probe());
    let mut seat = StrategySeat::with_rings(
        table,
        &crate::pipeline::StrategyParams::from_config(&cfg),
        &journal,
        rx,
        feed_done,
        Some(exec_rx),
        Some(control_rx),
        None,
    )?;

    let gateway_report = Arc::new(Mutex::new(GatewayReport::default()));
    let intents = std::mem::replace(&mut seat.intents, ringbuffers::spsc::channel(2).1);
    rings = rings.with("strategy_gateway_intents", intents.probe());
    let gw_dir = journal.join("gateway");
    std::fs::create_dir_all(&gw_dir).with_context(|| format!("creating {}", gw_dir.display()))?;
    let gw_journal =
        ringbuffers::journal::Appender::open(&gw_dir, hotpath::codec::journal_config())
            .with_context(|| format!("opening journal {}", gw_dir.display()))?;
    let market = if venue == Venue::BinanceUsdM {
        Market::UsdM
    } else {
        Market::Spot
    };
    let mut gw_cfg = GatewayConfig::endpoints(market, &rest_endpoint, Some(&ws_endpoint))
        .context("the order gateway's endpoints")?;
    let prefix = gw_cfg.client_id_prefix.clone();
    // Past this long after it was sent an order can no longer reach the venue (its
    // `recvWindow` has passed), with a margin for the venue's own queues.
    let settle = Duration::from_millis(u64::from(gw_cfg.recv_window_ms)) + Duration::from_secs(2);
    let credentials = match &sim {
        Some(s) => Credentials::new(s.api_key(), s.api_secret())
            .map_err(|e| anyhow::anyhow!("simulator credentials: {e}"))?,
        None => live_credentials.take().context("live credentials")?,
    };
    if cfg.gateway.transport == crate::config::OrderTransport::Ws {
        let path = WsApiConfig::path_of(market);
        gw_cfg.ws_api = Some(match (&sim, &cfg.venue.ws_api_endpoint) {
            (Some(s), _) => {
                let mut c = WsApiConfig::plain(s.ws_addr());
                c.path = path.into();
                c
            }
            (None, Some(url)) => WsApiConfig::endpoint(url)?,
            // A configured market-data server (a testnet, a simulator) serves the WebSocket API
            // too, at the market's path.
            (None, None) if cfg.venue.ws_endpoint.is_some() => {
                let stream = hotpath::live::Endpoint::parse(&ws_endpoint)
                    .map_err(|e| anyhow::anyhow!("[venue] ws_endpoint: {e}"))?;
                let scheme = if stream.tls { "wss" } else { "ws" };
                let host = if stream.host.contains(':') {
                    format!("[{}]", stream.host)
                } else {
                    stream.host.clone()
                };
                WsApiConfig::endpoint(&format!("{scheme}://{host}:{}{path}", stream.port))?
            }
            (None, None) => WsApiConfig::tls(market)?,
        });
    }
    let mut gateway = GatewayStage::connect(
        gw_cfg,
        &credentials,
        table,
        GatewayIo {
            input: intents,
            output: exec_tx,
            journal: Some(gw_journal),
            upstream_done: Arc::new(AtomicBool::new(false)),
            report: gateway_report.clone(),
        },
    )
    .context("connecting the order gateway")?;

    // Start-up reconciliation, before any hot thread runs: the venue's open orders and balances
    // against the gateway journal's last order states, and the venue's word on every order the
    // journal holds open that the venue does not list. The venue wins; every discrepancy is
    // journaled under <journal>/reconcile, then the gateway journals the venue's final state of
    // each resolved order and tracks the ones still open.
    let client = coldpath::reconcile::VenueClient::connect(&rest_endpoint, market, &credentials)
        .context("start-up reconciliation: asking the venue")?;
    let journal_orders = coldpath::reconcile::journal_state(&gw_dir)?;
    let venue_state = client
        .state()
        .context("start-up reconciliation: asking the venue")?;
    // An instrument id of an earlier run's journal, as this run's symbol and id; `None` for a
    // symbol this run does not trade (the gateway tracks orders of its own instruments only).
    let this_run = |id: InstrumentId| -> Option<(String, InstrumentId)> {
        let symbol = match journaled_symbols.get(&id.0) {
            Some(s) => s.clone(),
            None if journaled_symbols.is_empty() => table.try_get(id)?.symbol.as_str().to_string(),
            None => return None,
        };
        let now = table.lookup(venue, symbol.as_bytes())?;
        Some((symbol, now))
    };
    let answers = coldpath::reconcile::query_journal_only(
        &client,
        &journal_orders,
        &venue_state,
        &prefix,
        |id| this_run(id).map(|(symbol, _)| symbol),
        settle,
    )
    .context("start-up reconciliation: asking the venue about the journal's open orders")?;
    let recon = coldpath::reconcile::reconcile(&journal_orders, &venue_state, &answers, &prefix);
    coldpath::reconcile::journal_report(&journal.join("reconcile"), &recon)?;
    for r in &recon.recover {
        // The order's trades, so each fill the journal lacks is journaled with its own price
        // and fee; without them (the venue would not say) one fill at the average price.
        let trades =
            match &r.venue {
                Some(o) if o.has_fills() => client
                    .order_trades(&o.symbol, o.order_id)
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "recovering at the average price, without fees");
                        String::new()
                    }),
                _ => String::new(),
            };
        let answer = match &r.venue {
            Some(o) => VenueAnswer::Known {
                order: o.raw.as_bytes(),
                trades: trades.as_bytes(),
            },
            None => VenueAnswer::Unknown,
        };
        match gateway.recover(r.client_order_id, r.journaled.as_ref(), answer) {
            Ok(_) => {}
            // Open at the venue on a symbol this run does not trade: journaled as a finding,
            // left to the venue (and to a run that trades it).
            Err(e @ RecoverError::UnknownSymbol { .. }) => {
                tracing::warn!(error = %e, "order not tracked by this run");
            }
            Err(e) => return Err(e).context("start-up reconciliation: applying the venue's state"),
        }
    }
    println!(
        "reconciliation: {} open orders at the venue, {} open in the journal, {} matched, {} discrepancies (venue wins; journaled), venue clock offset {} ms",
        venue_state.open_orders.len(),
        journal_orders.open().count(),
        recon.matched,
        recon.findings.len(),
        venue_state.clock_offset_ms
    );
    for f in &recon.findings {
        tracing::warn!(finding = %serde_json::to_string(f).unwrap_or_default(), "reconciliation discrepancy");
    }
    for p in &recon.positions {
        tracing::info!(symbol = %p.symbol, side = %p.side, amount = %p.amount, entry_price = %p.entry_price, "position at the venue");
    }
    drop(credentials);

    // Positions the earlier runs left open: their fills as the gateway journaled them (before
    // the recovery above added the fills it learnt of, which reach the strategy through the
    // execution ring like any fill), rebuilt by the risk engine, so the strategy manages them
    // (trailing stop, exits, P&L) as its own instead of starting flat beside them.
    let mut strategy = seat.stage.take().expect("fresh seat");
    let this_run_fills = |fills: &[ExecEvent]| -> Vec<ExecEvent> {
        fills
            .iter()
            .filter_map(|x| {
                let (_, id) = this_run(x.instrument)?;
                let r = table.instrument_ref(id);
                // A symbol re-listed with other scales since: its old mantissas mean nothing.
                (r.price_scale == x.price_scale && r.qty_scale == x.qty_scale).then_some(
                    ExecEvent {
                        instrument: id,
                        ..*x
                    },
                )
            })
            .collect()
    };
    if market == Market::UsdM {
        // USD-M states positions, and the venue wins: where the journal's fills (the
        // recovered ones included) leave another position than the venue holds, the gateway
        // journals and publishes correcting fills of no order, which reach the strategy after
        // the recovered ones, and the next start's journal agrees with the venue.
        let after = this_run_fills(&coldpath::reconcile::journal_state(&gw_dir)?.fills);
        let mut probe = strategy.strategy().risk().clone();
        probe.inherit(&after);
        let findings = venue_position_steps(table, &recon.positions, &probe, &mut gateway);
        for f in &findings {
            tracing::warn!(finding = %serde_json::to_string(f).unwrap_or_default(), "reconciliation discrepancy");
        }
        coldpath::reconcile::journal_findings(&journal.join("reconcile"), &findings)?;
    }
    // The embedded simulator is a new venue on every run, its account fresh: what an earlier
    // run held was held at another venue, so nothing is inherited from the journal.
    let held = if sim.is_some() {
        Vec::new()
    } else {
        strategy
            .strategy_mut()
            .inherit(&this_run_fills(&journal_orders.fills))
    };
    if held.is_empty() {
        println!("inherited positions: none");
    }
    for id in held {
        if let Some(p) = strategy.strategy().risk().open_position(id) {
            let r = table.instrument_ref(id);
            let mut cid = [0u8; 36];
            let n = hotpath::gateway::client_id_text(prefix.as_bytes(), p.entry_cid, &mut cid);
            println!(
                "inherited position: {} {} {} at {} (opened by {}, {} fills)",
                table.get(id).symbol.as_str(),
                if p.side == hotpath::event::Side::Buy {
                    "long"
                } else {
                    "short"
                },
                hotpath::fixed::Decimal::new(p.qty.0, r.qty_scale),
                hotpath::fixed::Decimal::new(p.entry_px.0, r.price_scale),
                String::from_utf8_lossy(&cid[..n]),
                p.fills
            );
        }
    }
    stages.push(Box::new(strategy));
    stages.push(Box::new(gateway));

    // The exporter tails the journals; it is started after the appenders exist.
    let metrics = if cfg.metrics.enabled {
        let mcfg = coldpath::metrics::MetricsConfig {
            listen: cfg.metrics.listen,
            symbols: table
                .iter()
                .map(|(id, s)| (id.0, s.symbol.as_str().to_string()))
                .collect(),
            ..Default::default()
        };
        match coldpath::metrics::spawn(
            mcfg,
            coldpath::metrics::JournalSource::engine_layout(&journal),
            Some(Arc::new(rings)),
        ) {
            Ok(h) => {
                eprintln!("metrics: http://{}/metrics", h.addr());
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics exporter not started");
                None
            }
        }
    } else {
        None
    };

    let admin_status = Arc::new(SharedStatus::default());
    let admin = if cfg.admin.enabled {
        let token = AdminToken::load(DEFAULT_TOKEN_ENV, cfg.admin.token_file.as_deref())
            .map_err(|e| anyhow::anyhow!("admin API token: {e}"))?;
        let sink = RingControlSink::open(control_tx, &journal.join(ADMIN_JOURNAL_DIR))
            .context("opening the admin journal")?;
        let state = AdminState::new(
            AdminState::instruments_from_table(table),
            Arc::new(sink),
            admin_status.clone(),
        );
        let mut acfg = AdminConfig::new(cfg.admin.listen, Some(token));
        // The admin API asks spot's `/api/v3/ticker/24hr`: the configured venue's own REST
        // endpoint on spot, Binance spot's default otherwise.
        if market == Market::Spot {
            acfg.venue_rest_url = rest_endpoint.clone();
        }
        let h = coldpath::admin::spawn(acfg, state).context("starting the admin API")?;
        eprintln!("admin API: http://{}/api/v1/status", h.addr());
        Some(h)
    } else {
        drop(control_tx);
        None
    };

    // Notifications: only when the configuration has a [notify] section (tuning/notify.example.toml);
    // channels' secrets come from the environment and a missing one fails here, before trading.
    let notifier = match cfg.other.get("notify") {
        Some(section) => {
            let mut t = toml::Table::new();
            t.insert("notify".into(), section.clone());
            let ncfg = coldpath::notify::NotifyConfig::from_toml(&t.to_string())
                .map_err(|e| anyhow::anyhow!("[notify]: {e}"))?;
            let h = coldpath::notify::spawn(
                ncfg,
                crate::status::run_journals(&journal),
                journal.join("state").join("notify"),
            )
            .map_err(|e| anyhow::anyhow!("starting notifications: {e}"))?;
            Some(h)
        }
        None => None,
    };

    let exporter = if cfg.export.enabled {
        let h = coldpath::export::spawn(
            coldpath::export::engine_sources(&journal),
            cfg.export.out.clone(),
            coldpath::export::ExportConfig::default(),
        )
        .map_err(|e| anyhow::anyhow!("starting the Parquet export: {e}"))?;
        Some(h)
    } else {
        None
    };

    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let started = Instant::now();
    let started_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let rt = crate::pipeline::start_hot_threads(&profile, stages, stop.clone())?;
    let mut status = StatusTail::new(&run_journals(&journal));
    let interval = Duration::from_secs_f64(cfg.engine.status_interval_secs);
    let tty = std::io::stdout().is_terminal();
    let mut next_status = started + interval;
    let mut last_messages = 0u64;
    let mut quiet_since = Instant::now();
    let mut ended = "the feed stopped";
    while !rt.is_done() {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let live_now = live_stats.snapshot();
        if live_now.messages != last_messages {
            last_messages = live_now.messages;
            quiet_since = now;
        }
        if let Some(d) = args.duration {
            if started.elapsed().as_secs_f64() >= d {
                ended = "--duration elapsed";
                break;
            }
        }
        if stop.load(Ordering::Relaxed) {
            ended = "signal";
            break;
        }
        // The simulator's tape is over and everything it sent has been taken.
        if sim.as_ref().is_some_and(|s| s.is_finished())
            && now.duration_since(quiet_since) > Duration::from_millis(500)
        {
            ended = "the simulator's market ended";
            break;
        }
        if !interval.is_zero() && now >= next_status {
            next_status = now + interval;
            status.poll();
            admin_status.set_status(status.snapshot(table.len(), started_unix_ns));
            let extra = status_extra(&live_now, sim.as_ref(), &gateway_report, started);
            let screen = status.render(table, &extra);
            if tty {
                // Clear and home: one screen, refreshed in place.
                print!("\x1b[2J\x1b[H{screen}");
            } else {
                println!("status:\n{screen}");
            }
        }
    }
    rt.request_stop();
    let threads = rt.join();
    let gw = *gateway_report.lock().expect("gateway report");
    let elapsed = started.elapsed();
    status.poll();

    let feed = *feed_report.lock().expect("feed report");
    let live_end = live_stats.snapshot();
    print_threads(&profile, &threads)?;
    println!("run ended: {ended} after {elapsed:.3?}");
    println!(
        "feed: {} frames ({} snapshots), {} events, {} decode errors, {} book gaps, {} sessions, {} disconnects, {} journal errors",
        feed.frames,
        live_end.snapshots_delivered,
        feed.events,
        feed.decode_errors,
        feed.book_gaps,
        live_end.sessions,
        live_end.disconnects,
        feed.journal_errors
    );
    if let Some(s) = &sim {
        println!(
            "venue: simulator sent {} frames, {} open orders",
            s.frames_sent(),
            s.rest().open_order_count()
        );
    }
    print_strategy(&seat);
    println!(
        "gateway: {} intents, {} orders sent, {} cancels, {} local rejects, {} venue rejects, {} rate-limited, {} timeouts, {} overfills, {} unknown orders, {} journal errors",
        gw.intents,
        gw.orders_sent,
        gw.cancels_sent,
        gw.local_rejects,
        gw.venue_rejects,
        gw.rate_limited,
        gw.timeouts,
        gw.overfills,
        gw.unknown_orders,
        gw.journal_errors
    );
    let intents_held = seat.report.lock().map_or(0, |r| r.intents_held);
    if intents_held + gw.exec_held > 0 {
        // A ring was full for a moment: nothing was lost, but a stage fell behind.
        println!(
            "rings: {intents_held} intents and {} execution reports waited for ring space (none lost)",
            gw.exec_held
        );
    }
    print!("{}", status.render(table, &[]));
    println!(
        "journal: {} (inspect with `algo-engine journal inspect {}`)",
        journal.display(),
        journal.display()
    );
    drop(admin);
    if let Some(x) = exporter {
        match x.stop() {
            Ok(sum) => println!("export: {sum:?} under {}", cfg.export.out.display()),
            Err(e) => tracing::error!(error = %e, "Parquet export failed"),
        }
    }
    if let Some(n) = notifier {
        let st = n.stop();
        println!("notifications: {st:?}");
    }
    if let Some(m) = metrics {
        m.shutdown();
    }
    if let Some(s) = sim {
        s.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}

fn status_extra(
    live: &hotpath::live::LiveCounters,
    sim: Option<&SimVenue>,
    _gateway: &Arc<Mutex<GatewayReport>>,
    started: Instant,
) -> Vec<String> {
    let mut v = vec![format!(
        "elapsed {:.1}s  market-data messages {}  sessions {}  snapshots {}",
        started.elapsed().as_secs_f64(),
        live.messages,
        live.sessions,
        live.snapshots_delivered,
    )];
    if let Some(s) = sim {
        v.push(format!(
            "simulator: frames sent {}  open orders {}  finished {}",
            s.frames_sent(),
            s.rest().open_order_count(),
            s.is_finished()
        ));
    }
    v
}

/// For every instrument of `table`: the fills that take the position `held` rebuilt from the
/// journal to the venue's (`positions`, USD-M; none listed is flat), handed to the gateway to
/// journal and publish ([`GatewayStage::adjust_position`]), and a finding for each instrument
/// corrected.
fn venue_position_steps(
    table: &InstrumentTable,
    positions: &[coldpath::reconcile::VenuePosition],
    held: &hotpath::risk::RiskEngine,
    gateway: &mut GatewayStage,
) -> Vec<coldpath::reconcile::Finding> {
    use hotpath::fixed::{parse_mantissa, rescale, Decimal, Price, Rounding};
    let mut findings = Vec::new();
    for (id, spec) in table.iter() {
        let r = table.instrument_ref(id);
        let symbol = spec.symbol.as_str();
        // One-way mode lists one `BOTH` row; hedge mode a `LONG` and a `SHORT` one, whose
        // signed amounts net. The entry price is the larger leg's.
        let mut target = 0i64;
        let mut entry = (0i64, Price::ZERO);
        let mut shown = Vec::new();
        for p in positions.iter().filter(|p| p.symbol == symbol) {
            let Ok(q) = parse_mantissa(p.amount.as_bytes(), r.qty_scale) else {
                tracing::warn!(symbol, amount = %p.amount, "position amount at another scale; left alone");
                continue;
            };
            let px = parse_mantissa(p.entry_price.as_bytes(), 8)
                .ok()
                .and_then(|m| rescale(m, 8, r.price_scale, Rounding::HalfEven).ok())
                .unwrap_or(0);
            target += q;
            if q.abs() > entry.0 {
                entry = (q.abs(), Price(px));
            }
            shown.push(p);
        }
        let now = held.open_position(id);
        let steps = hotpath::risk::OpenPosition::steps_to(now.as_ref(), target, entry.1);
        if steps.is_empty() {
            continue;
        }
        let journal_qty = now.map_or(0, |p| p.signed_qty());
        findings.push(coldpath::reconcile::Finding::Position {
            symbol: symbol.to_string(),
            journal: Decimal::new(journal_qty, r.qty_scale).to_string(),
            venue: Decimal::new(target, r.qty_scale).to_string(),
            venue_entry_price: Decimal::new(entry.1 .0, r.price_scale).to_string(),
        });
        for (side, qty, px) in steps {
            gateway.adjust_position(r, side, qty, px);
        }
    }
    findings
}
