//! Where export files live and when they expire: the per-symbol directory layout, the file
//! names, UTC day arithmetic and the retention rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::import::InstrumentInfo;
use crate::inspect::civil_from_days;

/// Nanoseconds per UTC day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The tables the exporter writes, one directory each under a symbol's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Every trade (and aggregated trade).
    Trades,
    /// 1-minute candles.
    Candles1m,
    /// 5-minute candles.
    Candles5m,
    /// 15-minute candles.
    Candles15m,
    /// Strategy decisions.
    Decisions,
    /// Execution reports.
    Executions,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 6] = [
        Table::Trades,
        Table::Candles1m,
        Table::Candles5m,
        Table::Candles15m,
        Table::Decisions,
        Table::Executions,
    ];

    /// Directory name (`trades`, `candles_1m`, ...).
    pub const fn dir(self) -> &'static str {
        match self {
            Table::Trades => "trades",
            Table::Candles1m => "candles_1m",
            Table::Candles5m => "candles_5m",
            Table::Candles15m => "candles_15m",
            Table::Decisions => "decisions",
            Table::Executions => "executions",
        }
    }

    /// The candle table of timeframe index `i` (0, 1, 2 = 1m, 5m, 15m).
    pub const fn candles(i: usize) -> Table {
        match i {
            0 => Table::Candles1m,
            1 => Table::Candles5m,
            _ => Table::Candles15m,
        }
    }
}

/// How long each table's files are kept; `None` keeps them for ever.
///
/// A file holds (part of) one UTC day, so it is deleted once the **whole day** is older than
/// the rule: when `day end + retention <= reference time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Trades (seed: ticks, 15 minutes).
    pub trades: Option<Duration>,
    /// 1m candles (seed: 15 minutes).
    pub candles_1m: Option<Duration>,
    /// 5m candles (seed: 1 hour).
    pub candles_5m: Option<Duration>,
    /// 15m candles (seed: 1 hour).
    pub candles_15m: Option<Duration>,
    /// Decisions (kept: the explanation of every trade).
    pub decisions: Option<Duration>,
    /// Executions (kept: the seed moves completed trades to permanent storage, which this
    /// export is).
    pub executions: Option<Duration>,
}

impl Retention {
    /// The seed's data retention table (section 2.2.7): ticks 15 min, 1m candles 15 min, 5m and
    /// 15m candles 1 h; trade history permanent.
    pub const SEED: Retention = Retention {
        trades: Some(Duration::from_secs(15 * 60)),
        candles_1m: Some(Duration::from_secs(15 * 60)),
        candles_5m: Some(Duration::from_secs(3_600)),
        candles_15m: Some(Duration::from_secs(3_600)),
        decisions: None,
        executions: None,
    };

    /// Keep everything.
    pub const KEEP_ALL: Retention = Retention {
        trades: None,
        candles_1m: None,
        candles_5m: None,
        candles_15m: None,
        decisions: None,
        executions: None,
    };

    /// The rule of `table`.
    pub const fn of(&self, table: Table) -> Option<Duration> {
        match table {
            Table::Trades => self.trades,
            Table::Candles1m => self.candles_1m,
            Table::Candles5m => self.candles_5m,
            Table::Candles15m => self.candles_15m,
            Table::Decisions => self.decisions,
            Table::Executions => self.executions,
        }
    }
}

/// `(exchange, market_type, symbol)` of an instrument: `binance_usdm` + `perp` ->
/// `binance/futures/BTCUSDT` (the seed's layout; inverse contracts are `coin_futures`).
pub fn symbol_path(info: &InstrumentInfo) -> (String, String, String) {
    let exchange = info
        .venue
        .split('_')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    let market = match info.kind.as_str() {
        "spot" => "spot",
        "perp" | "future" => "futures",
        "inverse_perp" | "inverse_future" => "coin_futures",
        "forex" => "forex",
        _ => "unknown",
    };
    (
        sanitize(exchange),
        market.to_string(),
        sanitize(&info.symbol),
    )
}

/// A path component from venue text: anything but `[A-Za-z0-9_-]` becomes `_`.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".to_string()
    } else {
        out
    }
}

/// `YYYY-MM-DD` of UTC day number `day` (days since 1970-01-01).
pub fn day_name(day: u64) -> String {
    let (y, m, d) = civil_from_days(i64::try_from(day).unwrap_or(i64::MAX));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), `None` before 1970.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<u64> {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The UTC day a file name starts with (`2024-08-08-...parquet`), if it does.
pub fn day_of_file(name: &str) -> Option<u64> {
    let date = name.get(..10)?;
    let mut it = date.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || name.get(10..11) != Some("-") {
        return None;
    }
    days_from_civil(y, m, d)
}

/// The file of one closed part: `<root>/<exchange>/<market>/<symbol>/<table>/<day>-<source>-<first seq>.parquet`.
/// Naming a part after the journal sequence number of its first row makes a re-export after a
/// crash (cursor not yet committed) overwrite the same file instead of duplicating rows.
pub fn part_path(
    root: &Path,
    sym: &(String, String, String),
    table: Table,
    day: u64,
    source: &str,
    first_seq: u64,
) -> PathBuf {
    root.join(&sym.0)
        .join(&sym.1)
        .join(&sym.2)
        .join(table.dir())
        .join(format!(
            "{}-{source}-{first_seq:012}.parquet",
            day_name(day)
        ))
}

/// Delete the export files under `root` whose day is past its table's retention at
/// `reference_ns`. Returns the deleted paths. Files that do not follow the naming are left
/// alone.
pub fn apply_retention(
    root: &Path,
    retention: &Retention,
    reference_ns: u64,
) -> std::io::Result<Vec<PathBuf>> {
    let mut deleted = Vec::new();
    // root/exchange/market/symbol/table/file
    for exchange in subdirs(root)? {
        for market in subdirs(&exchange)? {
            for symbol in subdirs(&market)? {
                for table in Table::ALL {
                    let Some(keep) = retention.of(table) else {
                        continue;
                    };
                    let keep_ns = u64::try_from(keep.as_nanos()).unwrap_or(u64::MAX);
                    let dir = symbol.join(table.dir());
                    let Ok(rd) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for f in rd.flatten() {
                        let name = f.file_name();
                        let Some(name) = name.to_str() else { continue };
                        if !name.ends_with(".parquet") {
                            continue;
                        }
                        let Some(day) = day_of_file(name) else {
                            continue;
                        };
                        let day_end = (day + 1).saturating_mul(DAY_NS);
                        if day_end.saturating_add(keep_ns) <= reference_ns {
                            std::fs::remove_file(f.path())?;
                            deleted.push(f.path());
                        }
                    }
                }
            }
        }
    }
    Ok(deleted)
}

/// Sub-directories of `dir` (none if it does not exist), skipping hidden ones (the exporter's
/// own state directory).
fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let hidden = e.file_name().to_str().is_some_and(|n| n.starts_with('.'));
        if !hidden && e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_round_trip() {
        let d = 1_723_161_240_000_000_000 / DAY_NS;
        assert_eq!(day_name(d), "2024-08-08");
        assert_eq!(days_from_civil(2024, 8, 8), Some(d));
        assert_eq!(
            day_of_file("2024-08-08-market-000000000012.parquet"),
            Some(d)
        );
        assert_eq!(
            days_from_civil(2024, 2, 29).map(day_name).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(day_of_file("notes.parquet"), None);
        assert_eq!(day_of_file("2024-13-08-x.parquet"), None);
    }
}
