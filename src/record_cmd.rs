//! `algo-engine record`: a live Binance market-data session into a journal.
//!
//! The same stages as `algo-engine run` (feed -> SPSC ring -> latency tap, placed on threads by
//! the same profile) with one difference: the feed's frame source is
//! [`hotpath::live::LiveSource`] on a combined-stream WebSocket instead of a replayed capture. So
//! a recording holds exactly what live trading would journal: raw frames with receive times,
//! decoded market events, feed errors, and the `market_data_connection_lost` /
//! `market_data_connection_restored` records of every reconnect. It runs until `--duration`
//! passes or SIGINT/SIGTERM (the first signal stops cleanly; a second kills), then prints a
//! summary.
//!
//! Books are kept in [`SyncMode::Snapshot`]: a [`SnapshotFetcher`] thread fetches the REST
//! depth snapshot of every symbol (from Binance's REST endpoint of the venue, or
//! `--rest-endpoint`) at start and after every gap or reconnect, the feed journals it as a raw
//! frame and joins it to the diff stream, so the recorded events carry
//! `FLAG_BOOK_PROVEN` exactly while the live book was proven, and a replay of the recording
//! resyncs from the same snapshots. With a non-Binance `--endpoint` (a local simulator) the
//! REST endpoint must be given too, so a test setup never reaches the real exchange;
//! `--rest-endpoint none` records without snapshots, with books kept from the stream
//! ([`SyncMode::FromStream`]: exact within what the stream has shown, never proven).
//!
//! Instruments come from the built-in specs of the captured symbols (BTCUSDT, ETHUSDT on spot
//! and USD-M) or, with `--exchange-info`, from a saved `exchangeInfo` response; a symbol found in
//! neither is a one-line error before anything connects.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hotpath::book::{BookSet, SyncMode};
use hotpath::feed::BinanceFeedDecoder;
use hotpath::instrument::{InstrumentSpec, InstrumentTable, Venue};
use hotpath::live::{DriverKind, LiveConfig, LiveSource, StreamKind, SystemClock};
use hotpath::runtime::{Profile, Stage};
use hotpath::snapshot::{SnapshotConfig, SnapshotFetcher};
use hotpath::venue::binance::{ExchangeInfo, ScalePolicy, Scanner};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Binance markets on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VenueArg {
    /// Spot (`wss://stream.binance.com:9443`).
    #[value(name = "binance-spot", alias = "binance_spot")]
    Spot,
    /// USD-M futures (`wss://fstream.binance.com`).
    #[value(name = "binance-usdm", alias = "binance_usdm")]
    Usdm,
    /// COIN-M futures (`wss://dstream.binance.com`).
    #[value(name = "binance-coinm", alias = "binance_coinm")]
    Coinm,
}

impl From<VenueArg> for Venue {
    fn from(v: VenueArg) -> Venue {
        match v {
            VenueArg::Spot => Venue::BinanceSpot,
            VenueArg::Usdm => Venue::BinanceUsdM,
            VenueArg::Coinm => Venue::BinanceCoinM,
        }
    }
}

/// `algo-engine record --venue <v> --symbols A,B --out <dir> [...]`
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Binance market.
    #[arg(long, value_enum)]
    pub venue: VenueArg,
    /// Symbols, comma-separated (`BTCUSDT,ETHUSDT`; COIN-M: `BTCUSD_PERP`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Journal directory (created; an existing journal is continued).
    #[arg(long)]
    pub out: PathBuf,
    /// Stream kinds for every symbol: trade, aggTrade, bookTicker, depth, depth@<ms>ms,
    /// kline_<interval>.
    #[arg(long, default_value = "trade,bookTicker,depth")]
    pub streams: String,
    /// WebSocket endpoint (`ws://127.0.0.1:9000` for a local simulator); default: Binance's.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// REST base URL for depth snapshots (`http://127.0.0.1:9001` for a local simulator), or
    /// `none` to record without snapshots (books never proven); default: Binance's for the
    /// venue (`https://api.binance.com`, `https://fapi.binance.com`, `https://dapi.binance.com`),
    /// and required when `--endpoint` is given.
    #[arg(long)]
    pub rest_endpoint: Option<String>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// A saved `exchangeInfo` response to take the instruments from (needed for symbols
    /// without a built-in spec, and for every COIN-M symbol).
    #[arg(long)]
    pub exchange_info: Option<PathBuf>,
    /// Socket driver: mio or io_uring (mio is forced when OpenOnload is present).
    #[arg(long, default_value = "mio")]
    pub driver: String,
    /// Thread layout.
    #[arg(long, default_value = "tuning/profiles/fused-2core.toml")]
    pub profile: PathBuf,
    /// Capacity of the feed -> strategy ring (power of two).
    #[arg(long, default_value_t = 4096)]
    pub ring: usize,
    /// Reconnect when nothing (data, ping, pong) arrived for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub silence_secs: f64,
}

/// The instrument of every symbol, from `exchange_info` when given, else the built-in specs.
pub fn instruments(
    venue: Venue,
    symbols: &[String],
    exchange_info: Option<&Path>,
) -> Result<InstrumentTable> {
    let info = match exchange_info {
        Some(path) => {
            let mut body =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let info = ExchangeInfo::parse(&mut body, venue, ScalePolicy::Venue)
                .with_context(|| format!("parsing {}", path.display()))?;
            Some((path, info))
        }
        None => None,
    };
    let mut table = InstrumentTable::with_capacity(symbols.len().max(1));
    for sym in symbols {
        let spec: InstrumentSpec = match &info {
            Some((path, info)) => match info.get(sym) {
                Some(s) => s.spec.clone().with_context(|| {
                    format!("symbol {sym} in {} cannot be used", path.display())
                })?,
                None => bail!(
                    "unknown symbol {sym}: not in {} ({} symbols of {})",
                    path.display(),
                    info.symbols.len(),
                    venue.name()
                ),
            },
            None => match coldpath::import::builtin_spec(venue, sym) {
                Some(s) => s,
                None => bail!(
                    "unknown symbol {sym} on {}: no built-in instrument; pass --exchange-info <file> (a saved exchangeInfo response)",
                    venue.name()
                ),
            },
        };
        table
            .intern(spec)
            .with_context(|| format!("interning {sym}"))?;
    }
    Ok(table)
}

/// Upper-cased, de-duplicated symbols in the order given.
fn normalize_symbols(symbols: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in symbols {
        let s = s.trim().to_ascii_uppercase();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Runs `record` and prints the summary. Exit status 1 when no session was ever established.
pub fn run(args: RecordArgs) -> Result<ExitCode> {
    let venue: Venue = args.venue.into();
    let symbols = normalize_symbols(&args.symbols);
    if symbols.is_empty() {
        bail!("--symbols is empty");
    }
    let streams = StreamKind::parse_list(&args.streams)?;
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds");
        }
    }
    if !(args.silence_secs > 0.0 && args.silence_secs.is_finite()) {
        bail!("--silence-secs must be positive");
    }
    let driver: DriverKind = args
        .driver
        .parse()
        .map_err(|e| anyhow::anyhow!("--driver '{}': {e}", args.driver))?;
    let table = instruments(venue, &symbols, args.exchange_info.as_deref())?;
    let profile = Profile::load(&args.profile)?;

    let sym_refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let mut cfg = LiveConfig::new(venue, &sym_refs, &streams);
    cfg.endpoint = args.endpoint.clone();
    cfg.driver = driver;
    cfg.silence = Duration::from_secs_f64(args.silence_secs);
    cfg.ping_after = Some(cfg.silence / 3);
    let rest_endpoint = match (args.rest_endpoint.as_deref(), &args.endpoint) {
        (Some("none"), _) => None,
        (Some(url), _) => Some(Some(url.to_string())),
        (None, Some(_)) => bail!(
            "--endpoint is not Binance's: pass --rest-endpoint <url> for its depth snapshots (or --rest-endpoint none)"
        ),
        (None, None) => Some(None),
    };
    let mut source = LiveSource::new(&cfg, SystemClock::new())?;
    let mut snapshot_stats = None;
    if let Some(endpoint) = rest_endpoint {
        let mut snap_cfg = SnapshotConfig::new(venue);
        snap_cfg.endpoint = endpoint;
        let fetcher = SnapshotFetcher::spawn(&snap_cfg)?;
        snapshot_stats = Some(fetcher.stats());
        let fetchable: Vec<_> = table.iter().map(|(id, spec)| (id, spec.symbol)).collect();
        source = source.with_snapshots(fetcher, &fetchable);
    }
    let sync_mode = if snapshot_stats.is_some() {
        SyncMode::Snapshot
    } else {
        SyncMode::FromStream
    };
    let live_stats = source.stats();
    eprintln!(
        "recording {} {} from {}{} ({} driver) into {}",
        venue.name(),
        symbols.join(","),
        source.endpoint(),
        source
            .request_target()
            .trim_start_matches(&source.endpoint().path),
        source.driver(),
        args.out.display()
    );

    let table: &'static InstrumentTable = Box::leak(Box::new(table));
    let decoder = BinanceFeedDecoder::new(Scanner::new(table, venue), None);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let appender =
        ringbuffers::journal::Appender::open(&args.out, hotpath::codec::journal_config())
            .with_context(|| format!("opening journal {}", args.out.display()))?;
    let source_name = if args.exchange_info.is_some() {
        "exchange_info"
    } else {
        "builtin"
    };
    coldpath::import::write_instruments(&args.out, table, source_name)?;

    let (tx, rx) = ringbuffers::spsc::channel(args.ring.max(2).next_power_of_two());
    // A live source never ends, so `done` stays false; the stop flag ends the run.
    // With snapshots the source fetches each book's REST snapshot (at start, after every
    // gap and reconnect), so the books are proven once joined; every sequence gap is
    // journaled either way.
    let (feed, feed_done, feed_report) = crate::pipeline::feed_stage(
        source,
        decoder,
        appender,
        tx,
        BookSet::for_table(table, sync_mode),
    );
    let mut stages: Vec<Box<dyn Stage>> = vec![feed];
    // Recording decides with the default thresholds (it has no configuration file).
    let params = crate::pipeline::StrategyParams::default();
    let mut seat = crate::pipeline::StrategySeat::new(table, &params, &args.out, rx, feed_done)?;
    stages.push(Box::new(seat.stage.take().expect("fresh seat")));

    let stop = Arc::new(AtomicBool::new(false));
    crate::signals::install(&stop)?;
    let started = Instant::now();
    let rt = crate::pipeline::start_hot_threads(&profile, stages, stop.clone())?;
    let mut next_status = Duration::from_secs(10);
    let mut timed_out = false;
    while !rt.is_done() {
        let elapsed = started.elapsed();
        if args.duration.is_some_and(|d| elapsed.as_secs_f64() >= d) {
            rt.request_stop();
            timed_out = true;
            break;
        }
        if elapsed >= next_status {
            let s = live_stats.snapshot();
            eprintln!(
                "  {:>6.0} s: {} messages, {} sessions, {} disconnects",
                elapsed.as_secs_f64(),
                s.messages,
                s.sessions,
                s.disconnects
            );
            next_status += Duration::from_secs(10);
        }
        seat.drain_intents();
        std::thread::sleep(Duration::from_millis(20));
    }
    let threads = rt.join();
    seat.drain_intents();
    let elapsed = started.elapsed();
    // The runtime's stop flag is also the signal handlers' flag.
    let interrupted = !timed_out && stop.load(Ordering::Relaxed);

    let feed = *feed_report.lock().expect("feed report");
    let live = live_stats.snapshot();
    println!(
        "recorded {:.1} s{} of {} {} into {}",
        elapsed.as_secs_f64(),
        if interrupted { " (interrupted)" } else { "" },
        venue.name(),
        symbols.join(","),
        args.out.display()
    );
    crate::pipeline::print_threads(&profile, &threads)?;
    println!(
        "feed: {} frames, {} events, {} decode errors, {} oversized, {} backpressure polls, {} journal errors",
        feed.frames, feed.events, feed.decode_errors, feed.oversized, feed.backpressure, feed.journal_errors
    );
    println!(
        "connection: {} attempts ({} failed), {} sessions, {} disconnects ({} silent, {} recycled at max age), {} reconnects; {} pings answered, {} probes sent",
        live.connect_attempts,
        live.connect_failures,
        live.sessions,
        feed.disconnects,
        live.silent_disconnects,
        live.age_recycles,
        feed.reconnects,
        live.pings_received,
        live.pings_sent
    );
    crate::pipeline::print_strategy(&seat);
    let snaps = snapshot_stats.map(|s| s.snapshot()).unwrap_or_default();
    println!(
        "snapshots: {} requested, {} delivered ({} stale), {} failed; {} HTTP attempts, {} rate limited (429), {} banned (418), last X-MBX-USED-WEIGHT-1M {}",
        live.snapshot_requests,
        live.snapshots_delivered,
        live.snapshots_stale,
        live.snapshots_failed,
        snaps.attempts,
        snaps.rate_limited,
        snaps.banned,
        snaps.used_weight_1m
    );
    println!(
        "journal: {} (inspect with `algo-engine journal inspect {}`)",
        args.out.display(),
        args.out.display()
    );
    if live.sessions == 0 {
        eprintln!("error: no market-data session was established (see the log above)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_resolve_or_fail_in_one_line() {
        let syms = normalize_symbols(&["btcusdt".into(), " ETHUSDT".into(), "BTCUSDT".into()]);
        assert_eq!(syms, ["BTCUSDT", "ETHUSDT"]);
        let t = instruments(Venue::BinanceSpot, &syms, None).unwrap();
        assert_eq!(t.len(), 2);
        let e = instruments(Venue::BinanceSpot, &["DOGEUSDT".into()], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unknown symbol DOGEUSDT on binance_spot"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = instruments(Venue::BinanceCoinM, &["BTCUSD_PERP".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--exchange-info"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exchangeInfo.json");
        std::fs::write(
            &path,
            r#"{"symbols":[{"symbol":"DOGEUSDT","status":"TRADING","baseAssetPrecision":8,
            "quoteAssetPrecision":8,"filters":[{"filterType":"PRICE_FILTER","tickSize":"0.00001"},
            {"filterType":"LOT_SIZE","minQty":"1","stepSize":"1"}]}]}"#,
        )
        .unwrap();
        let t = instruments(Venue::BinanceSpot, &["DOGEUSDT".into()], Some(&path)).unwrap();
        assert_eq!(t.len(), 1);
        let e = format!(
            "{:#}",
            instruments(Venue::BinanceSpot, &["BTCUSDT".into()], Some(&path)).unwrap_err()
        );
        assert!(e.starts_with("unknown symbol BTCUSDT: not in"), "{e}");
    }
}
