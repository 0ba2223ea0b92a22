//! The engine's TOML configuration: the embedded default (`src/config/default.toml`) with a
//! user's file merged over it.
//!
//! Why merged rather than replaced: a user file that sets one key (say `[sim] speed = "10x"`)
//! must not silently drop every other default, and the defaults must live in one place that a
//! user can read (the embedded file, printed by `algo-engine config`). Tables merge key by key;
//! any other value replaces the default. Unknown keys in the sections this binary interprets
//! are errors (a misspelt threshold must not be ignored); sections for components that parse
//! their own configuration are kept as raw TOML and handed to them.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("config/default.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Threads, journal, rings, status.
    pub engine: EngineSection,
    /// Which venue to trade on.
    pub venue: VenueSection,
    /// The embedded simulator (when `venue.kind = "sim"`).
    pub sim: SimSection,
    /// The order gateway.
    pub gateway: GatewaySection,
    /// The Prometheus exporter.
    pub metrics: MetricsSection,
    /// The admin API.
    pub admin: AdminSection,
    /// The Parquet exporter.
    pub export: ExportSection,
    /// `[strategy]`: every threshold of the 4-level decision (field names of
    /// `hotpath::signals::SignalConfig`; absent keys keep the design document's values).
    #[serde(default)]
    pub strategy: hotpath::signals::SignalConfig,
    /// `[risk]`: sizing, the execution chain, the exit monitor and the portfolio manager
    /// (`hotpath::risk::RiskConfig`, with `[risk.sizing]`, `[risk.chain]`, `[risk.monitor]`,
    /// `[risk.portfolio]`, `[risk.portfolio.health]` tables).
    #[serde(default)]
    pub risk: hotpath::risk::RiskConfig,
    /// The merged configuration as read: `run` writes it next to its journal
    /// (`config.toml`), and `replay` reads it back so the strategy decides with the same
    /// thresholds.
    #[serde(skip)]
    pub merged: toml::Table,
    /// Sections interpreted by the components themselves (notify), kept raw.
    #[serde(flatten)]
    pub other: toml::Table,
}

/// File name of the configuration written beside a run's journal.
pub const JOURNAL_CONFIG: &str = "config.toml";

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Thread layout profile.
    pub profile: PathBuf,
    /// Journal directory.
    pub journal: PathBuf,
    /// Capacity of each SPSC ring.
    pub ring: usize,
    /// Seconds between status refreshes (0: summary only).
    pub status_interval_secs: f64,
    /// Candles of history fetched per timeframe (15m, 5m, 1m) at start for the strategy's
    /// warm-up (`GET /api/v3/klines`); 0 starts cold.
    pub warmup_candles: u32,
}

/// `[venue]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueSection {
    /// `sim`, `binance-spot` or `binance-usdm`.
    pub kind: String,
    /// Symbols to trade.
    pub symbols: Vec<String>,
    /// Live credentials file (0600), instead of the environment.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Live REST base URL (`https://host[:port]`, or `http://` for a venue without TLS): depth
    /// snapshots and candles, the order gateway, its listen key and start-up reconciliation.
    /// Default: Binance's production host of `kind`.
    #[serde(default)]
    pub rest_endpoint: Option<String>,
    /// Live WebSocket base URL (`wss://host[:port][/stream]`, or `ws://`): the market-data
    /// streams (at its path, `/stream` by default) and the user-data stream (`/ws/<listenKey>`
    /// on the same server). Default: Binance's production host of `kind`.
    #[serde(default)]
    pub ws_endpoint: Option<String>,
    /// Live WebSocket API URL, path included (`wss://ws-api.binance.com/ws-api/v3`), used with
    /// `[gateway] transport = "ws"`. Default: with `ws_endpoint` set, the same server at the
    /// market's WebSocket API path (`/ws-api/v3`, USD-M `/ws-fapi/v1`), as the simulator
    /// serves it; otherwise Binance's production host of `kind`.
    #[serde(default)]
    pub ws_api_endpoint: Option<String>,
}

/// `[sim]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// `capture` or `synthetic`.
    pub market: String,
    /// Capture path, relative to `ALGO_DATA_DIR` unless absolute.
    pub capture: PathBuf,
    /// Pace: `max`, `1x`, `10x`, ...
    pub speed: String,
    /// Seed of the synthetic generator and the latency model.
    pub seed: u64,
    /// Order latency at the venue, µs of market time.
    pub latency_us: u64,
    /// Maker fee, basis points.
    pub maker_fee_bps: f64,
    /// Taker fee, basis points.
    pub taker_fee_bps: f64,
    /// Synthetic market: hours of market time generated (played at `speed`).
    pub hours: f64,
    /// Candle history the simulator serves from before its tape (`GET /api/v3/klines`, the
    /// strategy's warm-up): `none`, `synthetic[:HOURS]`, or a directory of Binance public-data
    /// 1m kline CSVs.
    pub history: String,
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// How orders reach the venue.
    pub transport: OrderTransport,
}

/// The gateway's order-entry transport (`[gateway] transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderTransport {
    /// Signed REST requests over a keep-alive HTTP/1.1 pool.
    Rest,
    /// The Binance WebSocket API (`order.place` / `order.cancel` / `order.status`) over one
    /// persistent connection.
    Ws,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` during `run`.
    pub enabled: bool,
    /// Address to serve it on.
    pub listen: std::net::SocketAddr,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Serve the admin API during `run`.
    pub enabled: bool,
    /// Address to serve it on.
    pub listen: std::net::SocketAddr,
    /// Token file (0600) instead of `ALGO_ADMIN_TOKEN`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[export]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// Export during `run`.
    pub enabled: bool,
    /// Root of the `{exchange}/{market_type}/{symbol}/` tree.
    pub out: PathBuf,
}

impl Config {
    /// The default configuration with the file at `path` (if any) merged over it.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        Self::load_layers(path.as_slice())
    }

    /// The default configuration with `paths` merged over it in order (later files override
    /// earlier ones, table by table, by the same rule `sweep` layers its grids with).
    pub fn load_layers<P: AsRef<Path>>(paths: &[P]) -> Result<Config> {
        Self::load_layers_with(paths, &[])
    }

    /// [`load_layers`](Self::load_layers), then `settings` (dotted keys, e.g. `sim.capture`)
    /// set over the result: what a command-line argument selects wins over every file, and is
    /// in the merged configuration a replay reads back.
    pub fn load_layers_with<P: AsRef<Path>>(
        paths: &[P],
        settings: &[(String, toml::Value)],
    ) -> Result<Config> {
        let mut table: toml::Table =
            toml::from_str(DEFAULT_TOML).context("the embedded default configuration")?;
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let user: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            coldpath::backtest::sweep::merge_tables(&mut table, user);
        }
        for (key, value) in settings {
            coldpath::backtest::sweep::set_dotted(&mut table, key, value.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let mut cfg: Config = toml::Value::Table(table.clone())
            .try_into()
            .with_context(|| match paths {
                [] => "the embedded default configuration".into(),
                ps => format!(
                    "configuration {}",
                    ps.iter()
                        .map(|p| p.as_ref().display().to_string())
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            })?;
        cfg.validate()?;
        cfg.merged = table;
        Ok(cfg)
    }

    /// Writes the merged configuration to `dir/config.toml` (next to a journal).
    pub fn write_beside(&self, dir: &Path) -> Result<()> {
        let path = dir.join(JOURNAL_CONFIG);
        let text = toml::to_string(&self.merged).context("serialising the configuration")?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    fn validate(&self) -> Result<()> {
        let sc = &self.strategy;
        if sc.structure_candles < 2 || sc.structure_candles > hotpath::signals::MAX_STRUCTURE {
            bail!(
                "[strategy] structure_candles must be 2..={}",
                hotpath::signals::MAX_STRUCTURE
            );
        }
        if sc.volume_avg_candles == 0 || sc.volume_avg_candles > hotpath::signals::MAX_VOLUME_AVG {
            bail!(
                "[strategy] volume_avg_candles must be 1..={}",
                hotpath::signals::MAX_VOLUME_AVG
            );
        }
        let r = &self.risk;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(r.starting_equity) || !positive(r.sizing.leverage) {
            bail!("[risk] starting_equity and sizing.leverage must be > 0");
        }
        if !matches!(
            self.venue.kind.as_str(),
            "sim" | "binance-spot" | "binance-usdm"
        ) {
            bail!(
                "[venue] kind = {:?}: expected \"sim\", \"binance-spot\" or \"binance-usdm\"",
                self.venue.kind
            );
        }
        if self.venue.symbols.is_empty() {
            bail!("[venue] symbols is empty");
        }
        if !matches!(self.sim.market.as_str(), "capture" | "synthetic") {
            bail!(
                "[sim] market = {:?}: expected \"capture\" or \"synthetic\"",
                self.sim.market
            );
        }
        if [self.sim.maker_fee_bps, self.sim.taker_fee_bps]
            .iter()
            .any(|f| f.is_nan() || *f < 0.0)
        {
            bail!("[sim] fees must be >= 0");
        }
        if !self.sim.hours.is_finite() || self.sim.hours <= 0.0 || self.sim.hours > 24.0 * 365.0 {
            bail!("[sim] hours must be > 0 (and at most a year)");
        }
        if self.engine.status_interval_secs.is_nan() || self.engine.status_interval_secs < 0.0 {
            bail!("[engine] status_interval_secs must be >= 0");
        }
        Ok(())
    }

    /// The capture the simulator replays (resolved against `ALGO_DATA_DIR`).
    pub fn sim_capture(&self) -> PathBuf {
        if self.sim.capture.is_absolute() {
            self.sim.capture.clone()
        } else {
            hotpath::datadir::data_dir().join(&self.sim.capture)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parses_and_a_user_file_overrides_only_its_keys() {
        let d = Config::load(None).unwrap();
        assert_eq!(d.venue.kind, "sim");
        assert_eq!(d.sim.speed, "max");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[sim]\nspeed = \"10x\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n[notify]\nchannels = []\n",
        )
        .unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.sim.speed, "10x");
        assert_eq!(c.sim.market, d.sim.market);
        assert_eq!(c.engine.ring, d.engine.ring);
        assert!(c.other.contains_key("notify"));
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.listen.port(), 9000);
    }

    #[test]
    fn misspelt_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[sim]\nsped = \"10x\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("sped"), "{e}");
        std::fs::write(&p, "[venue]\nkind = \"ftx\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(e.contains("ftx"), "{e}");
        std::fs::write(&p, "[gateway]\ntransport = \"fix\"\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p)).unwrap_err());
        assert!(
            e.contains("fix") && e.contains("rest") && e.contains("ws"),
            "{e}"
        );
    }

    #[test]
    fn gateway_transport_defaults_to_rest_and_selects_the_ws_api() {
        assert_eq!(
            Config::load(None).unwrap().gateway.transport,
            OrderTransport::Rest
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[gateway]\ntransport = \"ws\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&p)).unwrap().gateway.transport,
            OrderTransport::Ws
        );
    }
}
