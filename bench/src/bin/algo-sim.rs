//! `algo-sim`: the Binance-compatible venue simulator as a standalone process.
//!
//! Starts a [`bench::sim::SimVenue`] (REST + market-data/user-stream WebSocket + matching)
//! replaying a capture or the synthetic market, prints its URLs and credentials, and runs
//! until interrupted (Ctrl-C). Usage:
//!
//! ```text
//! algo-sim [--capture PATH --speed 1x|10x|max | --synthetic --seed N]
//!          [--history none|synthetic[:HOURS]|DIR]
//!          [--rest-port P --ws-port Q] [--immediate] [--market spot|usdm]
//! ```
//!
//! `--market usdm` serves Binance USD-M futures instead of spot (`/fapi/...`, a USDT margin
//! wallet and positions, `ORDER_TRADE_UPDATE`, `@depth@0ms` streams, `/ws-fapi/v1`).
//!
//! `--history` is the candle history `GET /api/v3/klines` serves before the tape (an engine
//! warms up from it): `synthetic` (the default, 30 hours; continuous with a synthetic tape,
//! a rescaled synthetic past for a capture), `synthetic:HOURS`, `none`, or a directory of
//! data.binance.vision 1m kline CSV files (`BTCUSDT-1m-2024-08-07.csv`, unzipped).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bench::sim::{
    HistorySource, MarketSource, MarketType, Pace, SimConfig, SimVenue, StartMode, SynthConfig,
};

fn usage() -> ! {
    eprintln!(
        "usage: algo-sim [--capture PATH --speed 1x|10x|max | --synthetic --seed N] \
         [--history none|synthetic[:HOURS]|DIR] [--rest-port P --ws-port Q] [--immediate] \
         [--market spot|usdm]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut capture: Option<PathBuf> = None;
    let mut pace = Pace::Recorded;
    let mut seed = 1u64;
    let mut rest_port = 0u16;
    let mut ws_port = 0u16;
    let mut start = StartMode::OnFirstSubscriber;
    let mut history = HistorySource::default();
    let mut market_type = MarketType::Spot;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--capture" => capture = Some(PathBuf::from(val())),
            "--speed" => pace = Pace::parse(&val()).unwrap_or_else(|| usage()),
            "--synthetic" => capture = None,
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            "--rest-port" => rest_port = val().parse().unwrap_or_else(|_| usage()),
            "--ws-port" => ws_port = val().parse().unwrap_or_else(|_| usage()),
            "--history" => history = HistorySource::parse(&val()).unwrap_or_else(|| usage()),
            "--immediate" => start = StartMode::Immediately,
            "--market" => market_type = MarketType::parse(&val()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let mut cfg = SimConfig {
        start,
        history,
        close_at_end: false,
        ..SimConfig::default()
    };
    cfg.rest.bind = SocketAddr::from(([127, 0, 0, 1], rest_port));
    cfg.rest.market_type = market_type;
    cfg.ws_bind = SocketAddr::from(([127, 0, 0, 1], ws_port));
    cfg.market = match capture {
        Some(path) => MarketSource::Capture {
            path,
            pace,
            limit: None,
        },
        None => MarketSource::Synthetic {
            config: SynthConfig {
                seed,
                ..SynthConfig::default()
            },
            pace,
        },
    };
    let venue = match SimVenue::start(cfg) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("algo-sim: {e}");
            std::process::exit(1);
        }
    };
    println!("REST        {}", venue.rest_url());
    let (api, depth) = match market_type {
        MarketType::Spot => ("/api/v3", "depth@100ms"),
        MarketType::UsdM => ("/fapi/v1", "depth@0ms"),
    };
    println!(
        "  klines    {}{api}/klines?symbol=BTCUSDT&interval=15m (history built in {} ms)",
        venue.rest_url(),
        venue.history_build_time().as_millis()
    );
    println!("WebSocket   {}", venue.ws_url());
    println!(
        "  streams   {}/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@{depth}",
        venue.ws_url()
    );
    println!("API key     {}", venue.api_key());
    println!("API secret  {}", venue.api_secret());
    println!("running until Ctrl-C");
    loop {
        std::thread::sleep(Duration::from_secs(60));
        println!(
            "frames applied {} sent {}{}",
            venue.frames_applied(),
            venue.frames_sent(),
            if venue.is_finished() {
                " (tape ended)"
            } else {
                ""
            }
        );
    }
}
