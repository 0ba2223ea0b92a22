//! What the CLI test binaries share: running the real `algo-engine` binary and reading what it
//! journaled.

#![allow(dead_code)] // each test binary uses its own subset

use hotpath::codec::{self, RecordKind};
use hotpath::risk::TradeClose;
use ringbuffers::journal::Tailer;
use std::path::Path;
use std::process::{Command, Output};

/// `algo-engine args`, to be run from the crate root.
pub fn engine_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_algo-engine"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `algo-engine args` from the crate root and waits for it.
pub fn engine(args: &[&str]) -> Output {
    engine_command(args).output().expect("run algo-engine")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every `TradeClose` of the run's strategy journal (`<journal>/strategy`), decoded directly
/// from the records.
pub fn journal_closes(journal: &Path) -> Vec<TradeClose> {
    let mut t = Tailer::open(&journal.join("strategy"), Some(codec::SCHEMA_HASH)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        if r.kind == RecordKind::TradeClose.as_u16() {
            out.push(codec::decode::<TradeClose>(r.payload).unwrap());
        }
    }
    out
}

/// The number just before `label` in a summary line (`"..., 7 intents, 3 closed trades"`).
pub fn count_before(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {line}"));
    line[..at]
        .trim_end()
        .rsplit([' ', '('])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{label:?} in {line}"))
}

/// `[strategy]` thresholds that open every level a threshold can open: the regime needs only
/// two 15m candles of structure, any profile level is "at the zone", any ordered cascade and
/// any up/down candle triggers. What remains (structure, the cascade's order, the candle's
/// direction) lets about one closed 1m candle in ten enter: on a 300x synthetic market an
/// entry every few seconds of wall time.
pub const LOOSE_STRATEGY: &str = r#"
[strategy]
structure_candles = 2
adx_min = 0.0
hurst_min = 0.0
mean_reversion_max = 1000.0
atr_floor_frac = 0.0
value_area_tolerance = 1.0
cascade_long_min = -1000.0
cascade_short_max = 1000.0
bounce_min = -1.0
volume_spike_min = 0.0
min_confluence = 0.0
"#;

/// An engine configuration with the simulator as a live Binance venue of `kind`
/// (`binance-spot`, `binance-usdm`) at `rest` and `ws`, exactly as a user points the engine at
/// Binance: nothing but the feed, the strategy (default thresholds) and the gateway running,
/// `warmup_candles` of history, no status line.
pub fn venue_config(kind: &str, rest: &str, ws: &str, warmup_candles: u32) -> String {
    format!(
        r#"[engine]
status_interval_secs = 0
warmup_candles = {warmup_candles}

[venue]
kind = "{kind}"
symbols = ["BTCUSDT"]
rest_endpoint = "{rest}"
ws_endpoint = "{ws}"

[metrics]
enabled = false

[admin]
enabled = false

[export]
enabled = false
"#
    )
}
