//! The files of a backtest report: `report.md`, `trades.csv`, `summary.json`, `equity.svg`,
//! `drawdown.svg`.
//!
//! Why these: `summary.json` is what tools (the sweep, CI checks) read back; `trades.csv` is
//! the per-trade log a spreadsheet or pandas opens, with exact decimals straight from the
//! journal so its net column sums to the summary's net P&L; `report.md` is for people, with
//! the two plots linked. The plots are drawn by `plotters`' SVG backend, which writes `<text>`
//! elements without needing a system font.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::metrics::{drawdown_series, equity_curve};
use super::{fmt_money, fmt_opt, Report, RunData, TradeRecord};
use crate::inspect::format_unix_ns;

/// File names of a report.
pub const REPORT_MD: &str = "report.md";
/// Per-trade CSV.
pub const TRADES_CSV: &str = "trades.csv";
/// Machine-readable metrics.
pub const SUMMARY_JSON: &str = "summary.json";
/// Equity curve plot.
pub const EQUITY_SVG: &str = "equity.svg";
/// Drawdown plot.
pub const DRAWDOWN_SVG: &str = "drawdown.svg";

/// Header of [`TRADES_CSV`].
pub const TRADES_CSV_HEADER: &str =
    "symbol,side,open_utc,close_utc,entry,exit,qty,gross,fees,net,reason,hold_secs";

/// The trades as CSV (header and one row per trade, in the order given).
pub fn trades_csv(trades: &[TradeRecord]) -> String {
    let mut out = String::from(TRADES_CSV_HEADER);
    out.push('\n');
    for t in trades {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{:.3}",
            t.symbol,
            if t.side.sign() > 0 { "long" } else { "short" },
            format_unix_ns(t.open_ns),
            format_unix_ns(t.close_ns),
            t.entry_px,
            t.exit_px,
            t.qty,
            t.gross,
            t.fees,
            t.net,
            t.reason_name(),
            t.hold_secs()
        );
    }
    out
}

/// The markdown report.
pub fn report_markdown(title: &str, report: &Report) -> String {
    let mut md = format!("# Backtest: {title}\n\n");
    if let (Some(a), Some(b)) = (report.start_ns, report.end_ns) {
        let _ = writeln!(
            md,
            "Event time {} to {} ({:.2} h).\n",
            format_unix_ns(a),
            format_unix_ns(b),
            b.saturating_sub(a) as f64 / 3.6e12
        );
    }
    for w in &report.warnings {
        let _ = writeln!(md, "**Warning:** {w}.\n");
    }
    md += "## Summary\n\n";
    md += &report.summary_table();
    md += "\nSharpe and Sortino *per trade* are ratios of the per-trade net returns on entry \
           notional (not annualised); *annualised* ones come from daily returns of the equity \
           in event time (UTC days, zero-trade days included) times sqrt(365), and need two \
           days. Drawdown is measured on the equity after each closed trade. \
           Positions still open when the run ended are not counted.\n\n";
    md += "![equity](equity.svg)\n\n![drawdown](drawdown.svg)\n\n";

    md += "## Per symbol\n\n| symbol | trades | net P&L | span (h) | trades/hour |\n|---|---:|---:|---:|---:|\n";
    for s in &report.symbols {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} | {} |",
            s.symbol,
            s.trades,
            fmt_money(s.net_pnl),
            s.span_hours,
            fmt_opt(s.trades_per_hour, 3)
        );
    }
    md += "\n## Exits by reason\n\n| reason | trades | net P&L |\n|---|---:|---:|\n";
    for r in &report.exit_reasons {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            r.reason,
            r.trades,
            fmt_money(r.net_pnl)
        );
    }
    md += "\n## Slippage\n\nAdverse move of each fill from its reference, in basis points \
           (positive: worse). Entries against the entry decision's price, exits against the \
           arrival price (the symbol's last trade when the exit was decided).\n\n\
           | fills | count | mean | weighted mean | median | p95 | worst | cost |\n\
           |---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (name, s) in [
        ("all", &report.slippage.all),
        ("entries", &report.slippage.entries),
        ("exits", &report.slippage.exits),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            s.fills,
            fmt_opt(s.mean_bps, 3),
            fmt_opt(s.weighted_mean_bps, 3),
            fmt_opt(s.median_bps, 3),
            fmt_opt(s.p95_bps, 3),
            fmt_opt(s.worst_bps, 3),
            fmt_money(s.cost)
        );
    }
    if report.slippage.unreferenced_fills > 0 {
        let _ = writeln!(
            md,
            "\n{} fills had no reference price.",
            report.slippage.unreferenced_fills
        );
    }
    md += "\nPer-trade detail: [trades.csv](trades.csv); every metric: [summary.json](summary.json).\n";
    md
}

/// A plotted point: hours of event time since the start, value.
type Point = (f64, f64);

/// Equity curve points `(hours since start, equity)`, and the same with drawdown in percent
/// (negative, for plotting below zero).
fn curves(report: &Report, run: &RunData) -> (Vec<Point>, Vec<Point>) {
    let mut trades: Vec<&TradeRecord> = run.trades.iter().collect();
    trades.sort_by_key(|t| t.close_ns);
    let t0 = report.start_ns.unwrap_or(0);
    let hours = |ns: u64| ns.saturating_sub(t0) as f64 / 3.6e12;
    let pnl: Vec<f64> = trades.iter().map(|t| t.net_f64()).collect();
    let curve = equity_curve(run.starting_equity, &pnl);
    let dd = drawdown_series(&curve);
    let mut xs = vec![0.0];
    xs.extend(trades.iter().map(|t| hours(t.close_ns)));
    // The curve is flat from the last close to the end of the market.
    let end = report.end_ns.map(hours).unwrap_or(0.0);
    let mut eq: Vec<Point> = xs.iter().copied().zip(curve.iter().copied()).collect();
    let mut ddp: Vec<Point> = xs.iter().copied().zip(dd.iter().map(|d| -d.1)).collect();
    if end > *xs.last().unwrap_or(&0.0) {
        eq.push((end, *curve.last().unwrap_or(&run.starting_equity)));
        ddp.push((end, -dd.last().map_or(0.0, |d| d.1)));
    }
    (eq, ddp)
}

/// A value range with room around it (never empty, so a flat line still plots).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        lo.abs().max(1.0) * 0.001
    };
    (lo - pad, hi + pad)
}

/// One line plot into `path`.
fn plot(
    path: &Path,
    caption: &str,
    y_desc: &str,
    points: &[Point],
    color: RGBColor,
) -> Result<(), Box<dyn std::error::Error>> {
    let xmax = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-3);
    let (ylo, yhi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (ylo, yhi) = padded(ylo, yhi);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..xmax, ylo..yhi)?;
    chart
        .configure_mesh()
        .x_desc("hours of event time since the start")
        .y_desc(y_desc)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        color.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

/// Writes the five report files into `dir` (created) and returns their paths.
pub fn write_report(
    dir: &Path,
    title: &str,
    report: &Report,
    run: &RunData,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> std::io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        written.push(p);
        Ok(())
    };
    put(REPORT_MD, &report_markdown(title, report))?;
    put(TRADES_CSV, &trades_csv(&run.trades))?;
    put(
        SUMMARY_JSON,
        &serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )?;
    let (eq, dd) = curves(report, run);
    let start = report
        .start_ns
        .map(|n| format!(" (from {})", &format_unix_ns(n)[..19]))
        .unwrap_or_default();
    for (name, caption, y, pts, color) in [
        (
            EQUITY_SVG,
            format!("Equity{start}"),
            "equity (quote)",
            &eq,
            BLUE,
        ),
        (
            DRAWDOWN_SVG,
            format!("Drawdown{start}"),
            "drawdown (% of peak)",
            &dd,
            RED,
        ),
    ] {
        let p = dir.join(name);
        plot(&p, &caption, y, pts, color)
            .map_err(|e| std::io::Error::other(format!("plotting {}: {e}", p.display())))?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::super::{Report, RunData, Span, TradeRecord};
    use super::*;
    use hotpath::event::{ReasonCode, Side};
    use hotpath::fixed::{Price, Qty};
    use hotpath::instrument::InstrumentId;
    use hotpath::risk::TradeClose;

    fn close(net: i64, open_s: u64, close_s: u64) -> TradeClose {
        TradeClose {
            instrument: InstrumentId(0),
            side: Side::Sell,
            price_scale: 2,
            qty_scale: 5,
            pnl_scale: 8,
            reason: ReasonCode::EXIT_TRAILING_STOP,
            fills: 2,
            hold_secs: (close_s - open_s) as u32,
            open_ns: 1_723_075_200_000_000_000 + open_s * 1_000_000_000,
            close_ns: 1_723_075_200_000_000_000 + close_s * 1_000_000_000,
            entry_px: Price(6_000_012),
            exit_px: Price(5_999_000),
            qty: Qty(1_234),
            gross_pnl: net + 7,
            fees: 7,
            net_pnl: net,
            entry_cid: 1,
            exit_cid: 2,
        }
    }

    #[test]
    fn writes_every_file_and_the_csv_sums_to_the_summary() {
        let trades = vec![
            TradeRecord::from_close(&close(123_456_789, 0, 90), "BTCUSDT"),
            TradeRecord::from_close(&close(-23_456_780, 100, 130), "BTCUSDT"),
        ];
        let mut spans = std::collections::BTreeMap::new();
        spans.insert(
            "BTCUSDT".into(),
            Span {
                first_ns: 1_723_075_200_000_000_000,
                last_ns: 1_723_075_200_000_000_000 + 3_600_000_000_000,
            },
        );
        let run = RunData {
            trades,
            spans,
            starting_equity: 10_000.0,
            ..RunData::default()
        };
        let report = Report::compute(&run);
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(dir.path(), "unit", &report, &run).unwrap();
        assert_eq!(files.len(), 5);
        let csv = std::fs::read_to_string(dir.path().join(TRADES_CSV)).unwrap();
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            "BTCUSDT,short,2024-08-08T00:00:00.000000000Z,2024-08-08T00:01:30.000000000Z,60000.12,59990.00,0.01234,1.23456796,0.00000007,1.23456789,exit_trailing_stop,90.000"
        );
        let net: i64 = rows
            .iter()
            .map(|r| {
                let v = r.split(',').nth(9).unwrap().replace('.', "");
                v.parse::<i64>().unwrap()
            })
            .sum();
        assert_eq!(net, 100_000_009);
        assert_eq!(report.net_pnl_exact, "1.00000009");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(SUMMARY_JSON)).unwrap())
                .unwrap();
        assert_eq!(json["trades"], 2);
        assert_eq!(json["net_pnl_exact"], "1.00000009");
        assert_eq!(
            json["profit_factor"].as_f64().unwrap(),
            123_456_789.0 / 23_456_780.0
        );
        for svg in [EQUITY_SVG, DRAWDOWN_SVG] {
            let s = std::fs::read_to_string(dir.path().join(svg)).unwrap();
            assert!(s.starts_with("<svg"), "{svg}: {}", &s[..40.min(s.len())]);
            assert!(s.trim_end().ends_with("</svg>"));
            assert!(s.contains("<polyline") || s.contains("<path"));
        }
        let md = std::fs::read_to_string(dir.path().join(REPORT_MD)).unwrap();
        assert!(md.contains("| exit_trailing_stop | 2 |"), "{md}");
        assert!(md.contains("![equity](equity.svg)"));
    }

    #[test]
    fn a_run_without_trades_still_plots() {
        let run = RunData {
            starting_equity: 500.0,
            ..RunData::default()
        };
        let report = Report::compute(&run);
        let dir = tempfile::tempdir().unwrap();
        write_report(dir.path(), "empty", &report, &run).unwrap();
        let csv = std::fs::read_to_string(dir.path().join(TRADES_CSV)).unwrap();
        assert_eq!(csv, format!("{TRADES_CSV_HEADER}\n"));
        let s = std::fs::read_to_string(dir.path().join(EQUITY_SVG)).unwrap();
        assert!(s.starts_with("<svg"));
    }
}
