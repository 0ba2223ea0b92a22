//! Proves the price analytics allocate nothing per event: after [`SymbolAnalytics::new`] (which
//! allocates the z-score ring, once), feeding every event of the real captures (every FX day's
//! quotes; the Binance spot trades, book tickers and depth levels) through `on_event`, with all
//! candle closes and indicator updates that causes, makes zero heap allocations. Also states
//! the memory per symbol.
//!
//! [`testkit::CountingAllocator`] is the global allocator; [`count_allocations`] counts the
//! allocations made by the *current thread* only, so the test harness's own threads cannot
//! disturb the result.

#[path = "analytics_common/mod.rs"]
mod common;

use std::hint::black_box;

use hotpath::analytics::candles::{Candle, CandleSource, Timeframe};
use hotpath::analytics::stats::TickZScore;
use hotpath::analytics::timeframes::{AnalyticsConfig, SymbolAnalytics, TimeframeIndicators};
use hotpath::datadir;
use hotpath::event::{MarketEvent, MarketKind};
use testkit::count_allocations;

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

/// The event kind that carries ticks for `source`.
fn source_kind(source: CandleSource) -> MarketKind {
    match source {
        CandleSource::Trades => MarketKind::Trade,
        CandleSource::QuoteMid => MarketKind::Quote,
    }
}

/// Feeds `events` to a fresh symbol; returns (candles closed, allocations while feeding) and
/// prints the mean time per event (informative only: a test build on a shared machine).
fn feed(events: &[MarketEvent], source: CandleSource) -> (u64, u64) {
    let mut sa = SymbolAnalytics::new(source, &AnalyticsConfig::default());
    let t0 = std::time::Instant::now();
    let (closes, count) = count_allocations(|| {
        let mut closes = 0u64;
        for e in events {
            // Event-time closes first (same clock as the ticks in these captures' trades
            // and quotes), then the event itself.
            if e.kind == source_kind(source) {
                for c in sa.advance_to(e.stamps.venue_ns).iter() {
                    closes += 1;
                    black_box(c.indicators);
                }
            }
            let out = sa.on_event(black_box(e));
            for c in out.iter() {
                closes += 1;
                black_box(c.indicators);
            }
            black_box(sa.zscore());
        }
        closes
    });
    eprintln!(
        "  {:.0} ns/event",
        t0.elapsed().as_nanos() as f64 / events.len().max(1) as f64
    );
    (closes, count.allocations)
}

#[test]
fn zero_allocations_per_event_over_real_captures() {
    let mut total_events = 0usize;
    for day in common::fx_days() {
        let events = common::fx_events(&day);
        let (closes, allocs) = feed(&events, CandleSource::QuoteMid);
        eprintln!(
            "{}: {} quotes, {closes} candle closes, {allocs} allocations",
            day.display(),
            events.len()
        );
        assert_eq!(allocs, 0, "{}", day.display());
        assert!(closes > 1000);
        total_events += events.len();
    }
    let table = common::binance_spot_table();
    for rel in [
        "binance/spot/btcusdt_20240808.gz",
        "binance/spot/ethusdt_20240808.gz",
    ] {
        let Some(path) = datadir::capture(rel) else {
            continue;
        };
        let events = common::binance_events(&table, &common::hft_lines(&path));
        let (closes, allocs) = feed(&events, CandleSource::Trades);
        eprintln!(
            "{rel}: {} events, {closes} candle closes, {allocs} allocations",
            events.len()
        );
        assert_eq!(allocs, 0, "{rel}");
        total_events += events.len();
    }
    if total_events == 0 {
        eprintln!("skipping: no capture");
    }
}

#[test]
fn memory_per_symbol_is_fixed() {
    let cfg = AnalyticsConfig::default();
    let sa = SymbolAnalytics::new(CandleSource::Trades, &cfg);
    let inline = core::mem::size_of::<SymbolAnalytics>();
    let total = sa.memory_bytes();
    eprintln!(
        "SymbolAnalytics: {inline} bytes inline + {} bytes z-score ring ({} ticks) = {total} bytes per symbol; \
         TimeframeIndicators {} bytes, Candle {} bytes, TickZScore {} bytes inline",
        sa.zscore_window().heap_bytes(),
        sa.zscore_window().capacity(),
        core::mem::size_of::<TimeframeIndicators>(),
        core::mem::size_of::<Candle>(),
        core::mem::size_of::<TickZScore>(),
    );
    assert_eq!(total, inline + cfg.zscore_capacity * 16);
    assert!(inline < 8 * 1024, "inline state grew to {inline} bytes");
    // The figure is the same after a whole capture: nothing grows.
    if let Some(day) = common::fx_days().first() {
        let mut sa = SymbolAnalytics::new(CandleSource::QuoteMid, &cfg);
        for e in &common::fx_events(day) {
            sa.on_event(e);
        }
        assert_eq!(sa.memory_bytes(), total);
        assert!(sa.indicators(Timeframe::M15).latest().adx.is_some());
    }
}
