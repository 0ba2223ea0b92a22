//! Backtest reports, parameter sweeps and A/B comparisons from a run's journals.
//!
//! Why from the journals: a backtest is an ordinary `algo-engine run` against the simulator,
//! and everything a report needs is already journaled by the stages that did the work (the
//! strategy's `TradeClose` per closed position with exact P&L after fees, its intents and
//! decisions, the gateway's fills, the feed's market trades). Reading them after the run keeps
//! the report honest (it sees what the engine did, not a second model of it) and lets any
//! recorded run, live or simulated, be reported the same way.
//!
//! The parts:
//!
//! * [`journal`]: reads a run's journals into a [`RunData`]: [`TradeRecord`]s, per-fill
//!   [`Slippage`] and each symbol's event-time span;
//! * [`metrics`]: the statistics as pure functions over slices (exact definitions there);
//! * [`Report::compute`]: the report of a [`RunData`]: P&L, Sharpe and Sortino (per trade and
//!   annualised from daily returns), drawdown and recovery, win rate, profit factor,
//!   expectancy, trades per hour per symbol, hold times, exits by reason, slippage;
//! * [`output`]: `report.md`, `trades.csv`, `summary.json`, `equity.svg`, `drawdown.svg`;
//! * [`sweep`]: parameter grids (`tuning/sweeps/*.toml`), their expansion into run
//!   configurations, journal-to-capture conversion, ranking and the sweep tables;
//! * [`abtest`]: Welch's t-test (with its own Student t distribution) and a seeded bootstrap
//!   for comparing two configurations' per-trade returns.

pub mod abtest;
pub mod journal;
pub mod metrics;
pub mod output;
pub mod sweep;

use std::collections::BTreeMap;

use hotpath::event::{ReasonCode, Side};
use hotpath::fixed::Decimal;
use hotpath::risk::TradeClose;
use serde::{Deserialize, Serialize};

pub use journal::{load_run, load_trades, LoadError, RunData, Span};
pub use output::write_report;

/// One closed trade, as the strategy journaled it (`TradeClose`), with its symbol's name.
///
/// Amounts keep their exact decimal form (mantissa and scale) so that sums of a run's P&L are
/// exact; the `f64` accessors are for statistics only.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeRecord {
    /// Venue symbol.
    pub symbol: String,
    /// Position side (buy = long).
    pub side: Side,
    /// Why it was closed (`EXIT_*` / `RISK_*`).
    pub reason: ReasonCode,
    /// Fills that made the position.
    pub fills: u16,
    /// Event time of the first entry fill, ns since the epoch.
    pub open_ns: u64,
    /// Event time of the last exit fill, ns since the epoch.
    pub close_ns: u64,
    /// Volume-weighted entry price.
    pub entry_px: Decimal,
    /// Volume-weighted exit price.
    pub exit_px: Decimal,
    /// Quantity closed.
    pub qty: Decimal,
    /// P&L before fees, quote currency.
    pub gross: Decimal,
    /// Fees of every fill, quote currency.
    pub fees: Decimal,
    /// P&L after fees, quote currency.
    pub net: Decimal,
    /// Client order id of the first entry order.
    pub entry_cid: u64,
    /// Client order id of the closing order.
    pub exit_cid: u64,
}

impl TradeRecord {
    /// The record of a journaled close of `symbol`.
    pub fn from_close(c: &TradeClose, symbol: &str) -> TradeRecord {
        TradeRecord {
            symbol: symbol.to_string(),
            side: c.side,
            reason: c.reason,
            fills: c.fills,
            open_ns: c.open_ns,
            close_ns: c.close_ns,
            entry_px: c.entry_px.to_decimal(c.price_scale),
            exit_px: c.exit_px.to_decimal(c.price_scale),
            qty: c.qty.to_decimal(c.qty_scale),
            gross: Decimal::new(c.gross_pnl, c.pnl_scale),
            fees: Decimal::new(c.fees, c.pnl_scale),
            net: Decimal::new(c.net_pnl, c.pnl_scale),
            entry_cid: c.entry_cid,
            exit_cid: c.exit_cid,
        }
    }

    /// Net P&L, quote currency.
    pub fn net_f64(&self) -> f64 {
        self.net.to_f64()
    }

    /// Entry notional: entry price times quantity, quote currency.
    pub fn notional(&self) -> f64 {
        self.entry_px.to_f64() * self.qty.to_f64()
    }

    /// Net return on the entry notional (`net / notional`); `None` for a zero notional.
    pub fn net_return(&self) -> Option<f64> {
        let n = self.notional();
        (n > 0.0).then(|| self.net_f64() / n)
    }

    /// Holding time in seconds (event time).
    pub fn hold_secs(&self) -> f64 {
        self.close_ns.saturating_sub(self.open_ns) as f64 / 1e9
    }

    /// Name of the exit reason (`exit_trailing_stop`, ...).
    pub fn reason_name(&self) -> String {
        self.reason.to_string()
    }
}

/// Whether a fill opened or closed a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An entry order (`ENTRY_LONG` / `ENTRY_SHORT` intent).
    Entry,
    /// Any other order: exits, reversals, risk closes.
    Exit,
}

/// The slippage of one fill against its order's reference price.
#[derive(Debug, Clone, PartialEq)]
pub struct Slippage {
    /// Venue symbol.
    pub symbol: String,
    /// Client order id.
    pub client_order_id: u64,
    /// Entry or exit.
    pub role: Role,
    /// Order side.
    pub side: Side,
    /// Where the reference came from: `limit` (the order's price), `decision` (the entry
    /// decision's price) or `arrival` (the last trade when the order was decided).
    pub reference_kind: &'static str,
    /// Reference price.
    pub reference: f64,
    /// Fill price.
    pub fill_px: f64,
    /// Fill quantity.
    pub qty: f64,
    /// Adverse move in basis points: positive when the fill was worse than the reference
    /// (bought higher or sold lower).
    pub bps: f64,
}

impl Slippage {
    /// An observation; `bps` is computed from the others.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        symbol: String,
        client_order_id: u64,
        role: Role,
        side: Side,
        reference_kind: &'static str,
        reference: f64,
        fill_px: f64,
        qty: f64,
    ) -> Slippage {
        let bps = side.sign() as f64 * (fill_px - reference) / reference * 10_000.0;
        Slippage {
            symbol,
            client_order_id,
            role,
            side,
            reference_kind,
            reference,
            fill_px,
            qty,
            bps,
        }
    }

    /// What the slippage cost in quote currency (negative: it paid).
    pub fn cost(&self) -> f64 {
        self.side.sign() as f64 * (self.fill_px - self.reference) * self.qty
    }
}

/// Statistics of a set of slippage observations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlippageStats {
    /// Fills.
    pub fills: usize,
    /// Mean, bps.
    pub mean_bps: Option<f64>,
    /// Mean weighted by fill notional, bps.
    pub weighted_mean_bps: Option<f64>,
    /// Median, bps.
    pub median_bps: Option<f64>,
    /// 95th percentile, bps.
    pub p95_bps: Option<f64>,
    /// Largest adverse slippage, bps.
    pub worst_bps: Option<f64>,
    /// Total cost of slippage, quote currency (positive: paid).
    pub cost: f64,
}

impl SlippageStats {
    /// Statistics of `obs`.
    pub fn of<'a>(obs: impl IntoIterator<Item = &'a Slippage>) -> SlippageStats {
        let obs: Vec<&Slippage> = obs.into_iter().collect();
        let bps: Vec<f64> = obs.iter().map(|o| o.bps).collect();
        let notional = metrics::sum(obs.iter().map(|o| o.fill_px * o.qty));
        SlippageStats {
            fills: obs.len(),
            mean_bps: metrics::mean(&bps),
            weighted_mean_bps: (notional > 0.0)
                .then(|| obs.iter().map(|o| o.bps * o.fill_px * o.qty).sum::<f64>() / notional),
            median_bps: metrics::median(&bps),
            p95_bps: metrics::percentile(&bps, 95.0),
            worst_bps: bps.iter().copied().reduce(f64::max),
            cost: metrics::sum(obs.iter().map(|o| o.cost())),
        }
    }
}

/// Slippage of all fills, and of entries and exits apart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlippageReport {
    /// Every fill with a reference.
    pub all: SlippageStats,
    /// Entry fills (reference: the decision's price).
    pub entries: SlippageStats,
    /// Exit fills (reference: the arrival price).
    pub exits: SlippageStats,
    /// Fills without a reference price.
    pub unreferenced_fills: usize,
}

/// One symbol's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolReport {
    /// Venue symbol.
    pub symbol: String,
    /// Closed trades.
    pub trades: usize,
    /// Net P&L, quote currency.
    pub net_pnl: f64,
    /// Event-time span the trade rate is measured over, hours (the symbol's market trades, or
    /// its own trades when the feed journal is absent).
    pub span_hours: f64,
    /// Closed trades per hour of that span.
    pub trades_per_hour: Option<f64>,
}

/// Trades and P&L of one exit reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonReport {
    /// Reason name (`exit_trailing_stop`, ...).
    pub reason: String,
    /// Trades closed for it.
    pub trades: usize,
    /// Their net P&L, quote currency.
    pub net_pnl: f64,
}

/// The report of a backtest (what `summary.json` holds).
///
/// Sharpe and Sortino are given two ways: **per trade** (the ratio of the per-trade net
/// returns on entry notional, not annualised) and **annualised** from the daily returns of the
/// equity in event time (UTC days of the trades' closes from the run's first to its last
/// market event, each day's P&L over the equity at that day's start, times `sqrt(365)`;
/// `None` below two days). Drawdowns are on the equity after each closed trade.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Closed trades.
    pub trades: usize,
    /// Trades with a positive net P&L.
    pub wins: usize,
    /// Trades with a negative net P&L.
    pub losses: usize,
    /// Net P&L after fees, quote currency.
    pub net_pnl: f64,
    /// The same, exact decimal (the sum of the journaled mantissas).
    pub net_pnl_exact: String,
    /// P&L before fees.
    pub gross_pnl: f64,
    /// Fees.
    pub fees: f64,
    /// Equity at the start (`[risk] starting_equity`).
    pub starting_equity: f64,
    /// Equity at the end (start plus net P&L).
    pub ending_equity: f64,
    /// Net P&L as a percentage of the starting equity.
    pub return_pct: f64,
    /// Share of winning trades, `0..=1`.
    pub win_rate: Option<f64>,
    /// Gross profit over gross loss (`None`: no losing trade).
    pub profit_factor: Option<f64>,
    /// Mean net P&L per trade.
    pub expectancy: Option<f64>,
    /// Mean net P&L of winners.
    pub avg_win: Option<f64>,
    /// Mean net P&L of losers.
    pub avg_loss: Option<f64>,
    /// Sharpe ratio of the per-trade net returns (not annualised).
    pub sharpe_per_trade: Option<f64>,
    /// Sortino ratio of the per-trade net returns (not annualised).
    pub sortino_per_trade: Option<f64>,
    /// Sharpe ratio of the daily returns, annualised.
    pub sharpe_annualised: Option<f64>,
    /// Sortino ratio of the daily returns, annualised.
    pub sortino_annualised: Option<f64>,
    /// UTC days the daily returns cover.
    pub days: usize,
    /// Largest fall of equity from a running peak, quote currency.
    pub max_drawdown: f64,
    /// Largest fall from a running peak, percent of that peak.
    pub max_drawdown_pct: f64,
    /// Event time of the peak before the largest fall.
    pub max_drawdown_peak_ns: Option<u64>,
    /// Event time of its trough.
    pub max_drawdown_trough_ns: Option<u64>,
    /// Event time equity was back at the peak (`None`: not recovered).
    pub max_drawdown_recovered_ns: Option<u64>,
    /// Seconds from the trough to the recovery.
    pub recovery_secs: Option<f64>,
    /// Mean holding time, seconds.
    pub avg_hold_secs: Option<f64>,
    /// Median holding time, seconds.
    pub median_hold_secs: Option<f64>,
    /// Event time of the first market trade (or trade open) of the run.
    pub start_ns: Option<u64>,
    /// Event time of the last market trade (or trade close) of the run.
    pub end_ns: Option<u64>,
    /// Per symbol.
    pub symbols: Vec<SymbolReport>,
    /// Per exit reason.
    pub exit_reasons: Vec<ReasonReport>,
    /// Fill slippage.
    pub slippage: SlippageReport,
    /// Whether the trades' times are on the market's event clock (they lie within the span
    /// of the market trades). When they are not, time-based figures use the trades' own
    /// clock and [`warnings`](Self::warnings) says so.
    pub market_clock: bool,
    /// What the reader must know to trust the numbers.
    pub warnings: Vec<String>,
}

/// How far a trade's open or close may lie outside the market's event-time span and still be
/// taken as on the market's clock (fills arrive a little after the trade that caused them).
pub const CLOCK_TOLERANCE_NS: u64 = 60_000_000_000;

/// The exact sum of decimals (rescaled to the largest scale) as `(mantissa, scale)`.
pub fn exact_sum<'a>(xs: impl IntoIterator<Item = &'a Decimal>) -> (i128, u8) {
    let xs: Vec<&Decimal> = xs.into_iter().collect();
    let scale = xs.iter().map(|d| d.scale).max().unwrap_or(0);
    let sum = xs
        .iter()
        .map(|d| i128::from(d.mantissa) * 10i128.pow(u32::from(scale - d.scale)))
        .sum();
    (sum, scale)
}

impl Report {
    /// The report of `run` (see the type's documentation for the definitions).
    pub fn compute(run: &RunData) -> Report {
        let mut trades: Vec<&TradeRecord> = run.trades.iter().collect();
        trades.sort_by_key(|t| t.close_ns);
        let pnl: Vec<f64> = trades.iter().map(|t| t.net_f64()).collect();
        let returns: Vec<f64> = trades.iter().filter_map(|t| t.net_return()).collect();
        let start = run.starting_equity;

        let (net_m, net_s) = exact_sum(trades.iter().map(|t| &t.net));
        let (gross_m, gross_s) = exact_sum(trades.iter().map(|t| &t.gross));
        let (fee_m, fee_s) = exact_sum(trades.iter().map(|t| &t.fees));
        let to_f64 = |m: i128, s: u8| m as f64 / 10f64.powi(i32::from(s));
        let net = to_f64(net_m, net_s);

        // A venue that stamps its executions with another clock than its market data (a
        // simulator replaying an old tape at full speed but answering on the wall clock)
        // puts the trades outside the market's span; mixing the two would make a span of
        // years. Then the trades' own clock is the only consistent one.
        let market_clock = trades.iter().all(|t| {
            run.spans.get(&t.symbol).is_none_or(|s| {
                t.open_ns.saturating_add(CLOCK_TOLERANCE_NS) >= s.first_ns
                    && t.close_ns <= s.last_ns.saturating_add(CLOCK_TOLERANCE_NS)
            })
        });
        let spans: BTreeMap<String, Span> = if market_clock {
            run.spans.clone()
        } else {
            BTreeMap::new()
        };
        let mut warnings = Vec::new();
        if !market_clock {
            warnings.push(
                "trade times (the venue's execution clock) lie outside the market data's event-time span: \
                 time-based figures (span, trades per hour, daily returns, recovery, holds) use the trades' own clock"
                    .to_string(),
            );
        }
        if run.slippage.is_empty() && run.unreferenced_fills > 0 {
            warnings.push(format!(
                "{} fills had no reference price: no slippage figures",
                run.unreferenced_fills
            ));
        }
        let start_ns = spans
            .values()
            .map(|s| s.first_ns)
            .chain(trades.iter().map(|t| t.open_ns))
            .min();
        let end_ns = spans
            .values()
            .map(|s| s.last_ns)
            .chain(trades.iter().map(|t| t.close_ns))
            .max();
        let closes: Vec<(u64, f64)> = trades.iter().map(|t| (t.close_ns, t.net_f64())).collect();
        let daily = match (start_ns, end_ns) {
            (Some(a), Some(b)) => {
                metrics::daily_returns(start, &closes, a / metrics::DAY_NS, b / metrics::DAY_NS)
            }
            _ => Vec::new(),
        };

        let dd = metrics::drawdown(start, &pnl);
        let time_of = |i: usize| {
            if i == 0 {
                start_ns
            } else {
                trades.get(i - 1).map(|t| t.close_ns)
            }
        };
        let has_dd = dd.max > 0.0;
        let recovered_ns = dd.recovery.and_then(time_of);
        let trough_ns = has_dd.then(|| time_of(dd.trough)).flatten();

        let holds: Vec<f64> = trades.iter().map(|t| t.hold_secs()).collect();
        let winners: Vec<f64> = pnl.iter().copied().filter(|p| *p > 0.0).collect();
        let losers: Vec<f64> = pnl.iter().copied().filter(|p| *p < 0.0).collect();

        let mut by_symbol: BTreeMap<&str, Vec<&TradeRecord>> = BTreeMap::new();
        for s in run.spans.keys() {
            by_symbol.entry(s).or_default();
        }
        for t in &trades {
            by_symbol.entry(&t.symbol).or_default().push(t);
        }
        let symbols = by_symbol
            .into_iter()
            .map(|(symbol, ts)| {
                let span_ns = match spans.get(symbol) {
                    Some(s) if s.last_ns > s.first_ns => s.last_ns - s.first_ns,
                    _ => {
                        let a = ts.iter().map(|t| t.open_ns).min().unwrap_or(0);
                        let b = ts.iter().map(|t| t.close_ns).max().unwrap_or(0);
                        b.saturating_sub(a)
                    }
                };
                let span_hours = span_ns as f64 / 3.6e12;
                SymbolReport {
                    symbol: symbol.to_string(),
                    trades: ts.len(),
                    net_pnl: metrics::sum(ts.iter().map(|t| t.net_f64())),
                    span_hours,
                    trades_per_hour: (span_hours > 0.0).then(|| ts.len() as f64 / span_hours),
                }
            })
            .collect();

        let mut by_reason: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for t in &trades {
            let e = by_reason.entry(t.reason_name()).or_default();
            e.0 += 1;
            e.1 += t.net_f64();
        }

        Report {
            trades: trades.len(),
            wins: winners.len(),
            losses: losers.len(),
            net_pnl: net,
            net_pnl_exact: crate::stats::format_i128(net_m, net_s),
            gross_pnl: to_f64(gross_m, gross_s),
            fees: to_f64(fee_m, fee_s),
            starting_equity: start,
            ending_equity: start + net,
            return_pct: if start > 0.0 {
                net / start * 100.0
            } else {
                0.0
            },
            win_rate: metrics::win_rate(&pnl),
            profit_factor: metrics::profit_factor(&pnl),
            expectancy: metrics::expectancy(&pnl),
            avg_win: metrics::mean(&winners),
            avg_loss: metrics::mean(&losers),
            sharpe_per_trade: metrics::sharpe(&returns),
            sortino_per_trade: metrics::sortino(&returns),
            sharpe_annualised: metrics::sharpe(&daily).map(metrics::annualise),
            sortino_annualised: if daily.len() >= 2 {
                metrics::sortino(&daily).map(metrics::annualise)
            } else {
                None
            },
            days: daily.len(),
            max_drawdown: dd.max,
            max_drawdown_pct: dd.max_pct,
            max_drawdown_peak_ns: has_dd.then(|| time_of(dd.peak)).flatten(),
            max_drawdown_trough_ns: trough_ns,
            max_drawdown_recovered_ns: recovered_ns,
            recovery_secs: match (trough_ns, recovered_ns) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
                _ => None,
            },
            avg_hold_secs: metrics::mean(&holds),
            median_hold_secs: metrics::median(&holds),
            start_ns,
            end_ns,
            symbols,
            exit_reasons: by_reason
                .into_iter()
                .map(|(reason, (trades, net_pnl))| ReasonReport {
                    reason,
                    trades,
                    net_pnl,
                })
                .collect(),
            slippage: SlippageReport {
                all: SlippageStats::of(&run.slippage),
                entries: SlippageStats::of(run.slippage.iter().filter(|s| s.role == Role::Entry)),
                exits: SlippageStats::of(run.slippage.iter().filter(|s| s.role == Role::Exit)),
                unreferenced_fills: run.unreferenced_fills,
            },
            market_clock,
            warnings,
        }
    }

    /// The headline numbers as a two-column markdown table (printed by `algo-engine backtest`
    /// and at the top of `report.md`).
    pub fn summary_table(&self) -> String {
        let rows = self.summary_rows();
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(6).max(6);
        let v = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(5).max(5);
        let mut out = format!("| {:<w$} | {:>v$} |\n", "metric", "value");
        out += &format!("|{}|{}:|\n", "-".repeat(w + 2), "-".repeat(v + 1));
        for (k, val) in rows {
            out += &format!("| {k:<w$} | {val:>v$} |\n");
        }
        out
    }

    fn summary_rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("trades", self.trades.to_string()),
            ("net P&L", fmt_money(self.net_pnl)),
            ("gross P&L", fmt_money(self.gross_pnl)),
            ("fees", fmt_money(self.fees)),
            ("return %", format!("{:.4}", self.return_pct)),
            ("win rate %", fmt_opt(self.win_rate.map(|w| w * 100.0), 2)),
            ("profit factor", fmt_opt(self.profit_factor, 3)),
            ("expectancy", fmt_opt(self.expectancy, 4)),
            ("Sharpe (per trade)", fmt_opt(self.sharpe_per_trade, 4)),
            ("Sortino (per trade)", fmt_opt(self.sortino_per_trade, 4)),
            (
                "Sharpe (annualised, daily)",
                fmt_opt(self.sharpe_annualised, 4),
            ),
            (
                "Sortino (annualised, daily)",
                fmt_opt(self.sortino_annualised, 4),
            ),
            ("max drawdown", fmt_money(self.max_drawdown)),
            ("max drawdown %", format!("{:.4}", self.max_drawdown_pct)),
            ("recovery (s)", fmt_opt(self.recovery_secs, 1)),
            ("avg hold (s)", fmt_opt(self.avg_hold_secs, 1)),
            ("median hold (s)", fmt_opt(self.median_hold_secs, 1)),
            (
                "slippage mean (bps)",
                fmt_opt(self.slippage.all.mean_bps, 3),
            ),
        ]
    }
}

/// A quote amount with 4 decimals.
pub fn fmt_money(x: f64) -> String {
    format!("{x:.4}")
}

/// An optional number with `decimals` decimals, `-` when undefined.
pub fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(v) => format!("{v:.decimals$}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotpath::fixed::{Price, Qty};
    use hotpath::instrument::InstrumentId;

    const H: u64 = 3_600_000_000_000;
    /// 2024-08-08 00:00 UTC.
    const T0: u64 = 1_723_075_200_000_000_000;

    /// A long BTCUSDT trade of 0.1 at 60,000 opened at `open_h` hours, closed `hold_s` seconds
    /// later with net P&L `net` (gross = net + 1, fees 1).
    fn trade(open_h: u64, hold_s: u64, net: f64, reason: ReasonCode) -> TradeRecord {
        let m = |x: f64| (x * 1e8).round() as i64;
        TradeRecord::from_close(
            &TradeClose {
                instrument: InstrumentId(0),
                side: Side::Buy,
                price_scale: 2,
                qty_scale: 5,
                pnl_scale: 8,
                reason,
                fills: 2,
                hold_secs: hold_s as u32,
                open_ns: T0 + open_h * H,
                close_ns: T0 + open_h * H + hold_s * 1_000_000_000,
                entry_px: Price(6_000_000),
                exit_px: Price(6_000_000 + (net * 100.0 / 0.1) as i64),
                qty: Qty(10_000),
                gross_pnl: m(net + 1.0),
                fees: m(1.0),
                net_pnl: m(net),
                entry_cid: open_h,
                exit_cid: open_h + 100,
            },
            "BTCUSDT",
        )
    }

    fn run(trades: Vec<TradeRecord>) -> RunData {
        let mut spans = BTreeMap::new();
        spans.insert(
            "BTCUSDT".to_string(),
            Span {
                first_ns: T0,
                last_ns: T0 + 8 * H,
            },
        );
        RunData {
            trades,
            slippage: Vec::new(),
            unreferenced_fills: 0,
            spans,
            starting_equity: 1000.0,
        }
    }

    #[test]
    fn four_trades_by_hand() {
        let r = Report::compute(&run(vec![
            trade(0, 60, 100.0, ReasonCode::EXIT_TRAILING_STOP),
            trade(1, 120, -50.0, ReasonCode::EXIT_TRAILING_STOP),
            trade(2, 180, 30.0, ReasonCode::EXIT_CASCADE_REVERSAL),
            trade(3, 240, -20.0, ReasonCode::EXIT_ADVERSE_MOVES),
        ]));
        assert_eq!((r.trades, r.wins, r.losses), (4, 2, 2));
        assert_eq!(r.net_pnl, 60.0);
        assert_eq!(r.net_pnl_exact, "60.00000000");
        assert_eq!(r.gross_pnl, 64.0);
        assert_eq!(r.fees, 4.0);
        assert_eq!(r.ending_equity, 1060.0);
        assert!((r.return_pct - 6.0).abs() < 1e-12);
        assert_eq!(r.win_rate, Some(0.5));
        assert!((r.profit_factor.unwrap() - 130.0 / 70.0).abs() < 1e-12);
        assert_eq!(r.expectancy, Some(15.0));
        assert_eq!(r.avg_win, Some(65.0));
        assert_eq!(r.avg_loss, Some(-35.0));
        // Notional 6,000 each: returns 1/60, -1/120, 1/200, -1/300. Mean 0.0025; deviations
        // (in 1/6000ths) 85, -65, 15, -35 -> squares 12,900/3 -> sd = sqrt(13300/3)/6000.
        let sd = (12_900.0f64 / 3.0).sqrt() / 6000.0;
        assert!((r.sharpe_per_trade.unwrap() - 0.0025 / sd).abs() < 1e-12);
        // Downside: sqrt(((1/120)^2 + (1/300)^2) / 4).
        let dd = ((1.0f64 / 120.0).powi(2) + (1.0f64 / 300.0).powi(2)) / 4.0;
        assert!((r.sortino_per_trade.unwrap() - 0.0025 / dd.sqrt()).abs() < 1e-12);
        // Equity 1000 -> 1100 -> 1050 -> 1080 -> 1060: worst fall 50 after the second trade,
        // never recovered.
        assert_eq!(r.max_drawdown, 50.0);
        assert!((r.max_drawdown_pct - 50.0 / 1100.0 * 100.0).abs() < 1e-12);
        assert_eq!(r.max_drawdown_peak_ns, Some(T0 + 60 * 1_000_000_000));
        assert_eq!(r.max_drawdown_trough_ns, Some(T0 + H + 120 * 1_000_000_000));
        assert_eq!((r.max_drawdown_recovered_ns, r.recovery_secs), (None, None));
        assert_eq!(r.avg_hold_secs, Some(150.0));
        assert_eq!(r.median_hold_secs, Some(150.0));
        // One UTC day: no annualised ratio.
        assert_eq!((r.days, r.sharpe_annualised), (1, None));
        // Four trades over the 8-hour market span.
        assert_eq!(r.symbols.len(), 1);
        assert_eq!(r.symbols[0].trades_per_hour, Some(0.5));
        assert_eq!(r.symbols[0].net_pnl, 60.0);
        let reasons: Vec<(&str, usize, f64)> = r
            .exit_reasons
            .iter()
            .map(|x| (x.reason.as_str(), x.trades, x.net_pnl))
            .collect();
        assert_eq!(
            reasons,
            [
                ("exit_adverse_moves", 1, -20.0),
                ("exit_cascade_reversal", 1, 30.0),
                ("exit_trailing_stop", 2, 50.0)
            ]
        );
        assert!(r.summary_table().contains("| net P&L"));
    }

    #[test]
    fn recovery_time_and_annualised_ratios_over_days() {
        let mut t = vec![
            trade(1, 10, 100.0, ReasonCode::EXIT_TRAILING_STOP),
            trade(2, 10, -100.0, ReasonCode::EXIT_TRAILING_STOP),
            trade(26, 10, 150.0, ReasonCode::EXIT_TRAILING_STOP),
        ];
        // Journal order need not be close order.
        t.swap(0, 2);
        let mut r = run(t);
        r.spans.get_mut("BTCUSDT").unwrap().last_ns = T0 + 48 * H;
        let rep = Report::compute(&r);
        // Fell 100 at 02:00:10, back above the 1100 peak at 26:00:10: 24 h later.
        assert_eq!(rep.recovery_secs, Some(86_400.0));
        // Days: 0 (P&L 0 of 1000), 1 (+150 of 1000), 2 (0): returns 0, 0.15, 0.
        assert_eq!(rep.days, 3);
        let d = [0.0, 0.15, 0.0];
        let want = metrics::sharpe(&d).unwrap() * 365f64.sqrt();
        assert!((rep.sharpe_annualised.unwrap() - want).abs() < 1e-12);
        // No losing day: Sortino undefined.
        assert_eq!(rep.sortino_annualised, None);
    }

    #[test]
    fn trades_off_the_market_clock_use_their_own_clock() {
        let mut r = run(vec![
            trade(0, 60, 10.0, ReasonCode::EXIT_TRAILING_STOP),
            trade(1, 60, -5.0, ReasonCode::EXIT_TRAILING_STOP),
        ]);
        // The market's event times are two years before the fills' (a wall-clock venue
        // replaying an old tape).
        *r.spans.get_mut("BTCUSDT").unwrap() = Span {
            first_ns: T0 - 800 * 24 * H,
            last_ns: T0 - 799 * 24 * H,
        };
        let rep = Report::compute(&r);
        assert!(!rep.market_clock);
        assert_eq!(rep.warnings.len(), 1, "{:?}", rep.warnings);
        assert_eq!(rep.start_ns, Some(T0));
        assert_eq!(rep.end_ns, Some(T0 + H + 60 * 1_000_000_000));
        assert_eq!(rep.days, 1);
        let hours = (H + 60 * 1_000_000_000) as f64 / 3.6e12;
        assert_eq!(rep.symbols[0].trades_per_hour, Some(2.0 / hours));
        // On the market's clock (within the tolerance) there is no warning.
        let ok = Report::compute(&run(vec![trade(
            0,
            60,
            10.0,
            ReasonCode::EXIT_TRAILING_STOP,
        )]));
        assert!(ok.market_clock && ok.warnings.is_empty());
    }

    #[test]
    fn zero_trades_is_a_consistent_empty_report() {
        let r = Report::compute(&run(Vec::new()));
        assert_eq!((r.trades, r.net_pnl, r.max_drawdown), (0, 0.0, 0.0));
        assert_eq!(r.net_pnl_exact, "0");
        assert_eq!(r.ending_equity, 1000.0);
        assert_eq!(r.win_rate, None);
        assert!(r.net_pnl.is_sign_positive() && r.fees.is_sign_positive());
        assert_eq!(r.symbols[0].trades, 0);
        assert_eq!(r.symbols[0].trades_per_hour, Some(0.0));
        assert!(serde_json::to_string(&r).is_ok());
    }

    #[test]
    fn slippage_sign_and_stats_by_hand() {
        // Bought at 100.5 against 100: 50 bps worse; sold at 99 against 100: 100 bps worse;
        // bought at 99.9 against 100: 10 bps better.
        let obs = [
            Slippage::new(
                "X".into(),
                1,
                Role::Entry,
                Side::Buy,
                "decision",
                100.0,
                100.5,
                1.0,
            ),
            Slippage::new(
                "X".into(),
                2,
                Role::Exit,
                Side::Sell,
                "arrival",
                100.0,
                99.0,
                2.0,
            ),
            Slippage::new(
                "X".into(),
                3,
                Role::Entry,
                Side::Buy,
                "decision",
                100.0,
                99.9,
                1.0,
            ),
        ];
        assert!((obs[0].bps - 50.0).abs() < 1e-9);
        assert!((obs[1].bps - 100.0).abs() < 1e-9);
        assert!((obs[2].bps + 10.0).abs() < 1e-9);
        let s = SlippageStats::of(&obs);
        assert_eq!(s.fills, 3);
        assert!((s.mean_bps.unwrap() - 140.0 / 3.0).abs() < 1e-9);
        assert!((s.median_bps.unwrap() - 50.0).abs() < 1e-9);
        assert!((s.worst_bps.unwrap() - 100.0).abs() < 1e-9);
        // Weighted by notional 100.5, 198, 99.9.
        let w = (50.0 * 100.5 + 100.0 * 198.0 - 10.0 * 99.9) / (100.5 + 198.0 + 99.9);
        assert!((s.weighted_mean_bps.unwrap() - w).abs() < 1e-9);
        // Cost: 0.5 + 2.0 - 0.1.
        assert!((s.cost - 2.4).abs() < 1e-9);
        assert_eq!(SlippageStats::of(&[]).mean_bps, None);
    }

    #[test]
    fn exact_sum_rescales() {
        let xs = [Decimal::new(15, 1), Decimal::new(-25, 2)];
        assert_eq!(exact_sum(&xs), (125, 2));
        assert_eq!(exact_sum(&[]), (0, 0));
    }
}
