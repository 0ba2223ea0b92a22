//! Proves the order-flow analytics allocate nothing per event: every trade of the real Binance
//! captures goes through [`OrderFlow`], [`MarketProfile`] and [`Zones`] (with 5-second candles
//! closed by a tiny allocation-free builder in this file), and every query the strategy makes
//! (imbalances, CVD, exhaustion, POC/value area, zone and gap lookups) runs after each trade,
//! with zero heap allocations counted from the first event on (all storage is allocated by the
//! constructors, which are the warm-up).
//!
//! [`testkit::CountingAllocator`] is the global allocator; [`count_allocations`] counts the
//! allocations made by the *current thread* only, so the test harness's own threads cannot
//! disturb the result.

use std::hint::black_box;
use std::io::{BufRead, BufReader};

use hotpath::analytics::orderflow::{OrderFlow, OrderFlowConfig, PerInstrument, Window};
use hotpath::analytics::profile::{MarketProfile, ProfileConfig};
use hotpath::analytics::zones::{CandleInput, GapKind, ZoneConfig, ZoneKind, Zones};
use hotpath::datadir;
use hotpath::event::{Aggressor, MarketEvent, MarketKind};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue};
use hotpath::venue::binance::Scanner;
use testkit::count_allocations;

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

/// All market events of a capture (decoded by the real scanner), or `None` if missing.
fn capture_events(rel: &str, venue: Venue) -> Option<Vec<MarketEvent>> {
    let path = datadir::capture(rel)?;
    let (kind, ps, qs) = match venue {
        Venue::BinanceSpot => (InstrumentKind::Spot, 8, 8),
        _ => (InstrumentKind::Perp, 2, 3),
    };
    let mut table = InstrumentTable::with_capacity(8);
    table
        .intern(InstrumentSpec::new(
            venue,
            Symbol::new(b"BTCUSDT").unwrap(),
            kind,
            ps,
            qs,
        ))
        .unwrap();
    let mut scanner = Scanner::new(&table, venue);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for line in BufReader::new(gz).lines() {
        let line = line.unwrap();
        let (_, json) = line.split_once(' ').unwrap();
        if !json.starts_with("{\"lastUpdateId\"") {
            scanner
                .decode(json.as_bytes(), 1, &mut |e| out.push(e))
                .unwrap();
        }
    }
    Some(out)
}

/// A fixed-width candle builder without allocation (test helper only).
struct Candler {
    width: u64,
    cur: Option<CandleInput>,
}

impl Candler {
    /// Add a trade; returns the candle it closed, if any.
    fn on_trade(&mut self, t: u64, p: Price, q: Qty, a: Aggressor) -> Option<CandleInput> {
        let start = t / self.width * self.width;
        let (b, s) = if a == Aggressor::Buy {
            (q.0, 0)
        } else {
            (0, q.0)
        };
        if let Some(c) = self.cur.as_mut() {
            if c.start_ns == start || t < c.start_ns {
                c.high = c.high.max(p);
                c.low = c.low.min(p);
                c.close = p;
                c.volume.0 += q.0;
                c.buy_volume.0 += b;
                c.sell_volume.0 += s;
                return None;
            }
        }
        let closed = self.cur.take();
        self.cur = Some(CandleInput {
            open: p,
            high: p,
            low: p,
            close: p,
            volume: q,
            buy_volume: Qty(b),
            sell_volume: Qty(s),
            start_ns: start,
            end_ns: start + self.width,
        });
        closed
    }
}

struct State {
    flow: PerInstrument<OrderFlow>,
    profile: MarketProfile,
    zones: Zones,
    candler: Candler,
}

fn run(st: &mut State, events: &[MarketEvent]) -> (u64, u64, i128) {
    let (mut trades, mut candles, mut acc) = (0u64, 0u64, 0i128);
    for e in events {
        black_box(st.flow.on_event(e));
        if !matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
            continue;
        }
        trades += 1;
        let t = e.stamps.venue_ns;
        st.profile.on_event(e);
        if let Some(c) = st.candler.on_trade(t, e.price, e.qty, e.aggressor) {
            st.zones.on_candle(&c);
            candles += 1;
        }
        st.zones.on_price(t, e.price);
        // The queries of the strategy, every trade.
        let of = st.flow.get(e.instrument).unwrap();
        black_box((
            of.imbalance(Window::Signal),
            of.cascade(),
            of.exhausted(),
            of.pace(),
        ));
        black_box(of.last_large());
        acc += of.cvd();
        black_box(st.profile.profile());
        black_box(st.zones.zone_at(ZoneKind::Demand, e.price));
        black_box(st.zones.fvg_at(GapKind::Bullish, e.price));
    }
    (trades, candles, acc)
}

#[test]
fn analytics_allocate_nothing_per_event_on_real_captures() {
    let mut any = false;
    for (rel, venue, tick) in [
        (
            "binance/spot/btcusdt_20240808.gz",
            Venue::BinanceSpot,
            1_000_000,
        ),
        ("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM, 10),
    ] {
        let Some(events) = capture_events(rel, venue) else {
            continue;
        };
        any = true;
        let mut st = State {
            flow: PerInstrument::new(1, |_| OrderFlow::new(OrderFlowConfig::default()).unwrap()),
            profile: MarketProfile::new(ProfileConfig {
                ticks_per_level: 10,
                ..ProfileConfig::with_tick(tick)
            })
            .unwrap(),
            zones: Zones::new(ZoneConfig {
                fvg_min_bps: 1,
                ..ZoneConfig::default()
            }),
            candler: Candler {
                width: 5_000_000_000,
                cur: None,
            },
        };
        let of = st.flow.get(hotpath::instrument::InstrumentId(0)).unwrap();
        eprintln!(
            "per symbol: OrderFlow {} + {} heap, MarketProfile {} + {} heap, Zones {} + {} heap (bytes)",
            std::mem::size_of::<OrderFlow>(),
            of.heap_bytes(),
            std::mem::size_of::<MarketProfile>(),
            st.profile.heap_bytes(),
            std::mem::size_of::<Zones>(),
            st.zones.heap_bytes()
        );
        let heap = of.heap_bytes() + st.profile.heap_bytes() + st.zones.heap_bytes();
        let ((trades, candles, acc), count) = count_allocations(|| run(&mut st, &events));
        let allocations = count.allocations;
        eprintln!(
            "{rel}: {} events, {trades} trades, {candles} candles, {} zones, {} gaps, {} profile recentres, {allocations} allocations, {heap} heap bytes per symbol (cvd acc {acc})",
            events.len(),
            st.zones.stats().zones_created,
            st.zones.stats().fvgs_created,
            st.profile.stats().recentres,
        );
        assert!(trades > 1_000 && candles > 10);
        assert!(st.zones.stats().fvgs_created > 0);
        assert_eq!(
            allocations, 0,
            "{rel}: the analytics allocated on the hot path"
        );
    }
    if !any {
        eprintln!("skipping: no Binance capture found");
    }
}
