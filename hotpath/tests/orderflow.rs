//! Order-flow analytics against straightforward batch recomputations on real captures, plus
//! synthetic edge cases.
//!
//! Real data: the hftbacktest Binance captures (`<recv ns> <json>` per gzip line) decoded by the
//! hot-path [`Scanner`]; the trades of BTCUSDT (spot and USD-M) are fed to the incremental
//! trackers, and at sampled trades every figure is recomputed from scratch over the same trades
//! (integers must agree exactly, ratios to 1e-12 relative).

use std::io::{BufRead, BufReader};

use hotpath::analytics::orderflow::{
    OrderFlow, OrderFlowConfig, PerInstrument, TradeOutcome, Window, SECOND_NS, WINDOWS,
};
use hotpath::datadir;
use hotpath::event::{Aggressor, MarketEvent, MarketKind};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::venue::binance::Scanner;

// ------------------------------------------------------------------------------------------
// Real captures
// ------------------------------------------------------------------------------------------

/// One decoded trade.
#[derive(Debug, Clone, Copy)]
struct T {
    t: u64,
    price: i64,
    qty: i64,
    buy: bool,
}

/// The trades of `rel`'s symbol decoded by the real scanner (spot at scale 8/8, USD-M 2/3 as
/// Binance formats them), or `None` if the capture is missing.
fn capture_trades(rel: &str, venue: Venue) -> Option<(Vec<MarketEvent>, u8)> {
    let path = datadir::capture(rel)?;
    let (kind, ps, qs) = match venue {
        Venue::BinanceSpot => (InstrumentKind::Spot, 8, 8),
        _ => (InstrumentKind::Perp, 2, 3),
    };
    let sym = rel.rsplit('/').next()?.split('_').next()?.to_uppercase();
    let mut table = InstrumentTable::with_capacity(8);
    table
        .intern(InstrumentSpec::new(
            venue,
            Symbol::new(sym.as_bytes()).unwrap(),
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
        if json.starts_with("{\"lastUpdateId\"") {
            continue;
        }
        scanner
            .decode(json.as_bytes(), 1, &mut |e: MarketEvent| {
                if matches!(e.kind, MarketKind::Trade | MarketKind::AggTrade) {
                    out.push(e);
                }
            })
            .unwrap();
    }
    assert!(!out.is_empty(), "{rel}: no trades decoded");
    Some((out, ps))
}

fn to_t(events: &[MarketEvent]) -> Vec<T> {
    // Monotone event time, exactly as the trackers clamp it.
    let mut now = 0u64;
    events
        .iter()
        .map(|e| {
            now = now.max(e.stamps.venue_ns);
            T {
                t: now,
                price: e.price.0,
                qty: e.qty.0,
                buy: e.aggressor == Aggressor::Buy,
            }
        })
        .collect()
}

/// Capture, venue, tick (price mantissa), ticks per dollar.
const CAPTURES: [(&str, Venue, i64, u32); 4] = [
    // Tick 0.01 at price scale 8.
    (
        "binance/spot/btcusdt_20240808.gz",
        Venue::BinanceSpot,
        1_000_000,
        100,
    ),
    // Tick 0.10 at price scale 2.
    (
        "binance/usdm/btcusdt_20240808.gz",
        Venue::BinanceUsdM,
        10,
        10,
    ),
    (
        "binance/spot/ethusdt_20240808.gz",
        Venue::BinanceSpot,
        1_000_000,
        100,
    ),
    // Tick 0.01 at price scale 2.
    (
        "binance/usdm/ethusdt_20240808.gz",
        Venue::BinanceUsdM,
        1,
        100,
    ),
];

// ------------------------------------------------------------------------------------------
// Batch order flow
// ------------------------------------------------------------------------------------------

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Sums {
    buy: i128,
    sell: i128,
    buy_n: u64,
    sell_n: u64,
    large: u64,
}

/// First index of the trades (sorted by time) inside a window of `n` buckets ending at the
/// bucket of trade `i`.
fn window_start(ts: &[T], i: usize, bucket: u64, n: u64) -> usize {
    let min_id = (ts[i].t / bucket + 1).saturating_sub(n);
    ts[..=i].partition_point(|x| x.t / bucket < min_id)
}

/// Large flags from prefix sums: trade j against the average window before it.
fn batch_large(ts: &[T], cfg: &OrderFlowConfig) -> Vec<bool> {
    let n_avg = cfg.windows_ns[Window::Average as usize] / cfg.bucket_ns;
    let mut pre_q = vec![0i128; ts.len() + 1];
    for (i, x) in ts.iter().enumerate() {
        pre_q[i + 1] = pre_q[i] + i128::from(x.qty);
    }
    (0..ts.len())
        .map(|j| {
            let k0 = window_start(ts, j, cfg.bucket_ns, n_avg);
            let n = (j - k0) as u64;
            let sum = pre_q[j] - pre_q[k0];
            n >= cfg.large_min_trades.max(1)
                && i128::from(ts[j].qty) * i128::from(n) > i128::from(cfg.large_multiple) * sum
        })
        .collect()
}

fn batch_sums(ts: &[T], large: &[bool], i: usize, bucket: u64, n: u64) -> Sums {
    let k0 = window_start(ts, i, bucket, n);
    let mut s = Sums::default();
    for (x, &l) in ts[k0..=i].iter().zip(&large[k0..=i]) {
        if x.buy {
            s.buy += i128::from(x.qty);
            s.buy_n += 1;
        } else {
            s.sell += i128::from(x.qty);
            s.sell_n += 1;
        }
        s.large += u64::from(l);
    }
    s
}

fn batch_ratio(s: &Sums, cfg: &OrderFlowConfig) -> Option<f64> {
    if s.buy_n + s.sell_n < cfg.min_trades || s.buy + s.sell <= 0 {
        return None;
    }
    if s.sell == 0 {
        return Some(cfg.ratio_cap);
    }
    Some((s.buy as f64 / s.sell as f64).min(cfg.ratio_cap))
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b || ((a - b).abs() / a.abs().max(b.abs())) <= 1e-12,
        _ => false,
    }
}

/// Short windows so that every window (including the "15 min" ones) evicts on a 6-minute
/// capture.
fn short_config() -> OrderFlowConfig {
    OrderFlowConfig {
        bucket_ns: SECOND_NS / 10,
        windows_ns: [
            3 * SECOND_NS,
            6 * SECOND_NS,
            30 * SECOND_NS,
            90 * SECOND_NS,
            60 * SECOND_NS,
            20 * SECOND_NS,
        ],
        ..OrderFlowConfig::default()
    }
}

fn check_orderflow_against_batch(events: &[MarketEvent], cfg: OrderFlowConfig, label: &str) {
    let ts = to_t(events);
    let large = batch_large(&ts, &cfg);
    let mut of = OrderFlow::new(cfg).unwrap();
    let heap = of.heap_bytes();
    let mut samples = 0;
    let mut exhausted = [0u32; 2];
    let mut cvd_total = 0i128;
    let mut late = 0u64;
    let mut prev_t = 0u64;
    for (i, e) in events.iter().enumerate() {
        let out = of.on_event(e).unwrap();
        let is_late = i > 0 && e.stamps.venue_ns < prev_t;
        prev_t = prev_t.max(e.stamps.venue_ns);
        late += u64::from(is_late);
        assert_eq!(
            out,
            TradeOutcome::Added {
                large: large[i],
                late: is_late
            },
            "{label}: trade {i}"
        );
        cvd_total += if ts[i].buy {
            i128::from(ts[i].qty)
        } else {
            -i128::from(ts[i].qty)
        };
        // Sample densely at the start and end, sparsely in between.
        if i % 53 != 0 && i + 1 != events.len() && i > 40 {
            continue;
        }
        samples += 1;
        for w in Window::ALL {
            let n = cfg.windows_ns[w as usize] / cfg.bucket_ns;
            let b = batch_sums(&ts, &large, i, cfg.bucket_ns, n);
            let s = of.window(w);
            assert_eq!(
                (
                    s.buy_qty,
                    s.sell_qty,
                    s.buy_trades,
                    s.sell_trades,
                    s.large_trades
                ),
                (b.buy, b.sell, b.buy_n, b.sell_n, b.large),
                "{label}: window {w:?} at trade {i}"
            );
            assert!(
                close(of.imbalance(w), batch_ratio(&b, &cfg)),
                "{label}: imbalance {w:?} at trade {i}: {:?} vs {:?}",
                of.imbalance(w),
                batch_ratio(&b, &cfg)
            );
            if w == Window::Cvd {
                assert_eq!(of.cvd(), b.buy - b.sell);
            }
        }
        // Exhaustion from the batch sums.
        let sig = batch_sums(
            &ts,
            &large,
            i,
            cfg.bucket_ns,
            cfg.buckets_of(Window::Signal),
        );
        let avg = batch_sums(
            &ts,
            &large,
            i,
            cfg.bucket_ns,
            cfg.buckets_of(Window::Average),
        );
        let ws = cfg.windows_ns[Window::Signal as usize];
        let wl = cfg.windows_ns[Window::Average as usize];
        let warm = ts[i].t - ts[0].t >= wl
            && avg.buy_n + avg.sell_n >= cfg.min_trades
            && avg.buy + avg.sell > 0;
        let expect = warm.then(|| {
            (sig.buy + sig.sell) * i128::from(wl) * i128::from(cfg.exhaustion_den)
                < i128::from(cfg.exhaustion_num) * (avg.buy + avg.sell) * i128::from(ws)
        });
        assert_eq!(of.exhausted(), expect, "{label}: exhaustion at trade {i}");
        match expect {
            Some(true) => exhausted[0] += 1,
            Some(false) => exhausted[1] += 1,
            None => {}
        }
        assert_eq!(of.cvd_total(), cvd_total);
    }
    assert_eq!(of.heap_bytes(), heap);
    let st = of.stats();
    assert_eq!(st.trades, events.len() as u64);
    assert_eq!(st.late, late);
    assert_eq!(st.large, large.iter().filter(|&&l| l).count() as u64);
    eprintln!(
        "{label}: {} trades, {samples} sampled points (exhausted at {}, not at {}), {} large, {} late, ring {} bytes, last imbalances {:?}, cvd {}",
        events.len(),
        exhausted[0],
        exhausted[1],
        st.large,
        st.late,
        heap,
        of.cascade(),
        of.cvd()
    );
}

trait Buckets {
    fn buckets_of(&self, w: Window) -> u64;
}

impl Buckets for OrderFlowConfig {
    fn buckets_of(&self, w: Window) -> u64 {
        self.windows_ns[w as usize] / self.bucket_ns
    }
}

#[test]
fn orderflow_matches_batch_on_real_captures() {
    for (rel, venue, _, _) in CAPTURES {
        let Some((events, _)) = capture_trades(rel, venue) else {
            continue;
        };
        check_orderflow_against_batch(&events, OrderFlowConfig::default(), rel);
        check_orderflow_against_batch(&events, short_config(), &format!("{rel} (short windows)"));
        let coarse = OrderFlowConfig {
            bucket_ns: SECOND_NS,
            min_trades: 1,
            ..short_config()
        };
        check_orderflow_against_batch(&events, coarse, &format!("{rel} (1 s buckets)"));
    }
}

// ------------------------------------------------------------------------------------------
// Synthetic order-flow edge cases
// ------------------------------------------------------------------------------------------

const S: u64 = SECOND_NS;
const T0: u64 = 1_723_161_255 * S;

fn buy(of: &mut OrderFlow, t: u64, q: i64) -> TradeOutcome {
    of.on_trade(t, Price(100), Qty(q), Aggressor::Buy)
}

fn sell(of: &mut OrderFlow, t: u64, q: i64) -> TradeOutcome {
    of.on_trade(t, Price(100), Qty(q), Aggressor::Sell)
}

fn added(large: bool, late: bool) -> TradeOutcome {
    TradeOutcome::Added { large, late }
}

#[test]
fn zero_volume_and_unknown_aggressor_are_rejected() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    assert_eq!(buy(&mut of, T0, 0), TradeOutcome::Rejected);
    assert_eq!(sell(&mut of, T0, -5), TradeOutcome::Rejected);
    assert_eq!(
        of.on_trade(T0, Price(1), Qty(1), Aggressor::Unknown),
        TradeOutcome::Rejected
    );
    assert_eq!(of.stats().rejected, 3);
    for w in Window::ALL {
        assert_eq!(of.window(w).trades(), 0);
        assert_eq!(of.imbalance(w), None);
    }
    assert_eq!((of.cvd(), of.cvd_total()), (0, 0));
    assert_eq!(of.exhausted(), None);
    assert_eq!(of.pace(), None);
}

#[test]
fn single_trade_is_not_enough_data() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    assert_eq!(buy(&mut of, T0, 7), added(false, false));
    assert_eq!(of.imbalance(Window::Signal), None);
    assert_eq!(of.cvd(), 7);
    // With min_trades = 1 a single trade has a defined ratio.
    let cfg = OrderFlowConfig {
        min_trades: 1,
        ..OrderFlowConfig::default()
    };
    let mut of = OrderFlow::new(cfg).unwrap();
    sell(&mut of, T0, 7);
    assert_eq!(of.imbalance(Window::Signal), Some(0.0));
    assert_eq!(of.cvd(), -7);
}

#[test]
fn only_buys_cap_the_ratio_without_nan_or_inf() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    for i in 0..10 {
        buy(&mut of, T0 + i * S, 3);
    }
    for w in Window::ALL {
        assert_eq!(of.imbalance(w), Some(100.0), "{w:?}");
    }
    // Exactly 4 trades in the 3 s window of a short config: not enough; 5: enough.
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    for i in 0..4 {
        buy(&mut of, T0 + i, 1);
    }
    assert_eq!(of.imbalance(Window::Signal), None);
    sell(&mut of, T0 + 5, 2);
    assert_eq!(of.imbalance(Window::Signal), Some(2.0));
    // A huge but finite ratio is capped.
    buy(&mut of, T0 + 6, 1_000_000);
    assert_eq!(of.imbalance(Window::Signal), Some(100.0));
    sell(&mut of, T0 + 7, 1_000_000_000);
    let r = of.imbalance(Window::Signal).unwrap();
    assert!(r.is_finite() && r > 0.0 && r < 0.01);
}

#[test]
fn identical_prices_and_window_edges_are_bucket_aligned() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    // Bucket k = T0 / 100ms; the 30 s window holds buckets k-299..=k.
    for i in 0..5 {
        buy(&mut of, T0 + i, 2);
    }
    // 29.9 s later (still the 300th bucket counting this one): all five still inside.
    of.advance_to(T0 + 29_900_000_000);
    assert_eq!(of.window(Window::Signal).trades(), 5);
    of.advance_to(T0 + 30 * S - 1);
    assert_eq!(of.window(Window::Signal).trades(), 5);
    // 30 s later: bucket k+300, the window starts at k+1.
    of.advance_to(T0 + 30 * S);
    assert_eq!(of.window(Window::Signal).trades(), 0);
    assert_eq!(of.window(Window::Tf1).trades(), 5);
}

#[test]
fn huge_time_gap_empties_every_window() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    for i in 0..50 {
        if i % 3 == 0 {
            sell(&mut of, T0 + i * S, 5);
        } else {
            buy(&mut of, T0 + i * S, 4);
        }
    }
    let total = of.cvd_total();
    assert_eq!(total, 33 * 4 - 17 * 5);
    // A day later, one trade: only it is in the windows.
    assert_eq!(buy(&mut of, T0 + 86_400 * S, 1), added(false, false));
    for w in Window::ALL {
        let s = of.window(w);
        assert_eq!((s.trades(), s.buy_qty, s.sell_qty), (1, 1, 0), "{w:?}");
        assert_eq!(of.imbalance(w), None);
    }
    assert_eq!(of.cvd(), 1);
    assert_eq!(of.cvd_total(), total + 1);
    // Advancing further without trades empties them completely.
    of.advance_to(T0 + 2 * 86_400 * S);
    for w in Window::ALL {
        assert_eq!(of.window(w), Default::default());
    }
}

#[test]
fn clock_going_backwards_is_clamped_to_the_current_bucket() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    for i in 0..5 {
        buy(&mut of, T0 + 40 * S + i, 1);
    }
    // 40 s in the past: would be outside the 30 s window, but is counted now.
    assert_eq!(sell(&mut of, T0, 3), added(false, true));
    assert_eq!(sell(&mut of, 0, 3), added(false, true));
    assert_eq!(of.now_ns(), T0 + 40 * S + 4);
    let s = of.window(Window::Signal);
    assert_eq!((s.buy_qty, s.sell_qty, s.trades()), (5, 6, 7));
    assert_eq!(of.stats().late, 2);
    // advance_to into the past is a no-op.
    of.advance_to(T0);
    assert_eq!(of.window(Window::Signal).trades(), 7);
    // They leave the window with the bucket they were clamped into.
    of.advance_to(T0 + 70 * S);
    assert_eq!(of.window(Window::Signal).trades(), 0);
}

#[test]
fn burst_beyond_ring_capacity_stays_exact_and_bounded() {
    let cfg = OrderFlowConfig::default();
    let mut of = OrderFlow::new(cfg).unwrap();
    let heap = of.heap_bytes();
    // 9 001 buckets of 40 bytes: the ring covers the 15 min window at 100 ms.
    assert_eq!(heap, 9_001 * 40);
    // One million trades inside one bucket.
    for i in 0..1_000_000u64 {
        if i % 2 == 0 {
            buy(&mut of, T0 + i % 50, 3);
        } else {
            sell(&mut of, T0 + i % 50, 1);
        }
    }
    let s = of.window(Window::Signal);
    assert_eq!(
        (s.buy_qty, s.sell_qty, s.trades()),
        (1_500_000, 500_000, 1_000_000)
    );
    assert_eq!(of.imbalance(Window::Tf1), Some(3.0));
    // A trade in every bucket for twice the longest window: more buckets than the ring holds.
    let mut t = T0 + S;
    for _ in 0..20_000 {
        buy(&mut of, t, 1);
        t += cfg.bucket_ns;
    }
    assert_eq!(of.heap_bytes(), heap);
    assert_eq!(of.window(Window::Tf3).trades(), 9_000);
    assert_eq!(of.window(Window::Signal).trades(), 300);
    assert_eq!(of.window(Window::Tf2).buy_qty, 3_000);
    // Bucket overflow is rejected, not wrapped.
    let mut of = OrderFlow::new(cfg).unwrap();
    buy(&mut of, T0, i64::MAX);
    assert_eq!(buy(&mut of, T0, 1), TradeOutcome::Rejected);
    assert_eq!(of.window(Window::Signal).buy_qty, i128::from(i64::MAX));
}

#[test]
fn large_trade_threshold_is_exact() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    for i in 0..4 {
        buy(&mut of, T0 + i * S, 10);
    }
    // Only 4 trades of history: not judged.
    assert_eq!(buy(&mut of, T0 + 5 * S, 1_000), added(false, false));
    // History now 5 trades, sum 1040, average 208: 2080 is not > 10x, 2081 is.
    assert_eq!(buy(&mut of, T0 + 6 * S, 2_080), added(false, false));
    // history 6 trades, sum 3120, average 520.
    assert_eq!(sell(&mut of, T0 + 7 * S, 5_201), added(true, false));
    let l = of.last_large().unwrap();
    assert_eq!((l.qty, l.buy, l.time_ns), (Qty(5_201), false, T0 + 7 * S));
    assert_eq!(of.window(Window::Average).large_trades, 1);
    // It leaves the 5 minute window with its bucket.
    of.advance_to(T0 + 7 * S + 300 * S);
    assert_eq!(of.window(Window::Average).large_trades, 0);
    assert_eq!(of.stats().large, 1);
}

#[test]
fn exhaustion_compares_signal_pace_with_the_five_minute_average() {
    let mut of = OrderFlow::new(OrderFlowConfig::default()).unwrap();
    // One trade of 10 every second for 5 minutes: average pace 300 per 30 s.
    for i in 0..300 {
        buy(&mut of, T0 + i * S, 10);
    }
    // Not a full 5 minutes of history yet (299 s).
    assert_eq!(of.exhausted(), None);
    buy(&mut of, T0 + 300 * S, 10);
    assert_eq!(of.exhausted(), Some(false));
    assert!((of.pace().unwrap() - 1.0).abs() < 0.02);
    // Silence: after 16 s the 30 s window holds 14 trades (140) vs average 143.3 / 2.
    of.advance_to(T0 + 316 * S);
    let s = of.window(Window::Signal).volume();
    let a = of.window(Window::Average).volume();
    assert_eq!(of.exhausted(), Some(s * 300 * 2 < a * 30));
    of.advance_to(T0 + 320 * S);
    assert_eq!(of.exhausted(), Some(true));
    assert!(of.pace().unwrap() < 0.5);
    // Nothing at all in the average window: no data.
    of.advance_to(T0 + 2_000 * S);
    assert_eq!(of.exhausted(), None);
}

#[test]
fn config_is_validated() {
    let bad = OrderFlowConfig {
        windows_ns: [3 * S / 2 + 1, 60 * S, 300 * S, 900 * S, 900 * S, 300 * S],
        ..OrderFlowConfig::default()
    };
    assert!(OrderFlow::new(bad).is_err());
    let bad = OrderFlowConfig {
        ratio_cap: f64::INFINITY,
        ..OrderFlowConfig::default()
    };
    assert!(OrderFlow::new(bad).is_err());
    let bad = OrderFlowConfig {
        bucket_ns: 0,
        ..OrderFlowConfig::default()
    };
    assert!(OrderFlow::new(bad).is_err());
    assert_eq!(WINDOWS, Window::ALL.len());
}

#[test]
fn per_instrument_routes_by_id() {
    let mut p = PerInstrument::new(3, |_| OrderFlow::new(OrderFlowConfig::default()).unwrap());
    let mut table = InstrumentTable::with_capacity(4);
    let id = table
        .intern(InstrumentSpec::new(
            Venue::BinanceSpot,
            Symbol::new(b"BTCUSDT").unwrap(),
            InstrumentKind::Spot,
            2,
            3,
        ))
        .unwrap();
    let inst = table.instrument_ref(id);
    let e = MarketEvent::trade(
        inst,
        hotpath::event::Stamps::new(T0, 1),
        Price(100),
        Qty(5),
        Aggressor::Buy,
        1,
    );
    assert!(p.on_event(&e).is_some());
    assert_eq!(p.get(id).unwrap().window(Window::Signal).buy_qty, 5);
    assert!(p.get(InstrumentId::NONE).is_none());
    assert_eq!(p.len(), 3);
}

// ------------------------------------------------------------------------------------------
// Market profile
// ------------------------------------------------------------------------------------------

use hotpath::analytics::profile::{MarketProfile, Profile, ProfileConfig};

/// POC / value area from scratch: `vol` holds the in-range volume by absolute level.
fn batch_profile(
    vol: &std::collections::BTreeMap<i64, i128>,
    width: i64,
    pct: u32,
) -> Option<Profile> {
    let total: i128 = vol.values().sum();
    if total <= 0 {
        return None;
    }
    let (&lo, _) = vol.iter().find(|(_, &v)| v != 0)?;
    let (&hi, _) = vol.iter().rev().find(|(_, &v)| v != 0)?;
    let at = |l: i64| vol.get(&l).copied().unwrap_or(0);
    // POC: most volume; ties closest to the middle of [lo, hi], then lowest.
    let poc = (lo..=hi)
        .max_by(|&x, &y| {
            at(x)
                .cmp(&at(y))
                .then((2 * y - lo - hi).abs().cmp(&(2 * x - lo - hi).abs()))
                .then(y.cmp(&x))
        })
        .unwrap();
    let (mut a, mut b, mut va) = (poc, poc, at(poc));
    while va * 100 < i128::from(pct) * total && (a > lo || b < hi) {
        let up: i128 = (b + 1..=hi.min(b + 2)).map(at).sum();
        let dn: i128 = (lo.max(a - 2)..a).map(at).sum();
        match (b < hi, a > lo) {
            (true, false) => {
                b = hi.min(b + 2);
                va += up;
            }
            (false, true) => {
                a = lo.max(a - 2);
                va += dn;
            }
            _ => {
                if up >= dn {
                    b = hi.min(b + 2);
                    va += up;
                }
                if dn >= up {
                    a = lo.max(a - 2);
                    va += dn;
                }
            }
        }
    }
    Some(Profile {
        poc: Price(poc * width),
        vah: Price(b * width),
        val: Price(a * width),
        level_width: width,
        poc_qty: at(poc),
        value_area_qty: va,
        total_qty: total,
    })
}

fn check_profile_against_batch(events: &[MarketEvent], cfg: ProfileConfig, label: &str) -> u64 {
    let ts = to_t(events);
    let mut mp = MarketProfile::new(cfg).unwrap();
    let heap = mp.heap_bytes();
    let width = cfg.tick * i64::from(cfg.ticks_per_level);
    let n = cfg.window_ns / cfg.time_bucket_ns;
    let mut samples = 0u64;
    let mut with_outside = 0u64;
    for (i, e) in events.iter().enumerate() {
        assert!(mp.on_event(e));
        if i % 97 != 0 && i + 1 != events.len() && i > 20 {
            continue;
        }
        samples += 1;
        let k0 = window_start(&ts, i, cfg.time_bucket_ns, n);
        let (rlo, rhi) = mp.range();
        let (llo, lhi) = (rlo.0 / width, rhi.0 / width);
        let mut vol = std::collections::BTreeMap::new();
        let mut outside = 0i128;
        for x in &ts[k0..=i] {
            let l = x.price / width;
            if l >= llo && l <= lhi {
                *vol.entry(l).or_insert(0i128) += i128::from(x.qty);
            } else {
                outside += i128::from(x.qty);
            }
        }
        with_outside += u64::from(outside != 0);
        assert_eq!(mp.outside_qty(), outside, "{label}: outside at {i}");
        assert_eq!(
            mp.profile(),
            batch_profile(&vol, width, cfg.value_area_pct),
            "{label}: profile at trade {i}"
        );
        let p = mp.profile().unwrap();
        assert!(p.val <= p.poc && p.poc <= p.vah);
        assert!(p.value_area_qty * 100 >= 70 * p.total_qty);
        assert_eq!(i128::from(mp.volume_at(p.poc)), p.poc_qty);
    }
    let st = mp.stats();
    assert_eq!(st.early_evicted, 0, "{label}: ring too small");
    assert_eq!(mp.heap_bytes(), heap);
    eprintln!(
        "{label}: {samples} samples ({with_outside} with volume outside the range), {} recentres, max live entries {}, heap {heap} bytes, last {:?}",
        st.recentres,
        st.max_live_entries,
        mp.profile()
    );
    st.recentres
}

#[test]
fn profile_matches_batch_on_real_captures() {
    for (rel, venue, tick, per_dollar) in CAPTURES {
        let Some((events, _)) = capture_trades(rel, venue) else {
            continue;
        };
        let wide = ProfileConfig {
            ticks_per_level: per_dollar,
            ..ProfileConfig::with_tick(tick)
        };
        check_profile_against_batch(&events, wide, &format!("{rel} ($1 levels)"));
        check_profile_against_batch(
            &events,
            ProfileConfig::with_tick(tick),
            &format!("{rel} (1-tick levels)"),
        );
        // A small histogram and short window: re-centring and out-of-range volume.
        let small = ProfileConfig {
            ticks_per_level: 10,
            levels: 64,
            window_ns: 60 * SECOND_NS,
            time_bucket_ns: SECOND_NS / 10,
            max_entries: 8_192,
            ..ProfileConfig::with_tick(tick)
        };
        let r = check_profile_against_batch(&events, small, &format!("{rel} (64 levels, 60 s)"));
        assert!(r > 0, "the small profile should have re-centred");
    }
}

fn pf(levels: usize) -> MarketProfile {
    MarketProfile::new(ProfileConfig {
        levels,
        ..ProfileConfig::with_tick(1)
    })
    .unwrap()
}

#[test]
fn profile_edge_cases() {
    // Empty and zero volume.
    let mut mp = pf(64);
    assert_eq!(mp.profile(), None);
    assert!(!mp.on_trade(T0, Price(100), Qty(0)));
    assert!(!mp.on_trade(T0, Price(-1), Qty(1)));
    assert_eq!(mp.profile(), None);
    // A single trade: POC = VAH = VAL.
    assert!(mp.on_trade(T0, Price(100), Qty(5)));
    let p = mp.profile().unwrap();
    assert_eq!(
        (p.poc, p.vah, p.val, p.total_qty),
        (Price(100), Price(100), Price(100), 5)
    );
    // Identical prices: still one level.
    for i in 0..1000 {
        mp.on_trade(T0 + i, Price(100), Qty(1));
    }
    let p = mp.profile().unwrap();
    assert_eq!(
        (p.poc, p.vah, p.val, p.total_qty),
        (Price(100), Price(100), Price(100), 1005)
    );
    // Huge gap: the window empties.
    mp.advance_to(T0 + 3_600 * S);
    assert_eq!(mp.profile(), None);
    assert_eq!(mp.total_qty(), 0);
}

#[test]
fn value_area_expansion_rule() {
    // Levels 10..=20 with POC at 15 (vol 30); above: 16:10, 17:10; below: 14:12, 13:9.
    // Total 100 -> 70 needed. Step 1: up 20 vs down 21 -> down (va 51, area 13..15).
    // Step 2: up 20 (16,17) vs down 12..11 (5+3=8) -> up (va 71). Done: VAL 13, VAH 17.
    let mut mp = pf(64);
    let vols = [
        (10, 2),
        (11, 3),
        (12, 5),
        (13, 9),
        (14, 12),
        (15, 30),
        (16, 10),
        (17, 10),
        (18, 9),
        (19, 5),
        (20, 5),
    ];
    for (p, q) in vols {
        mp.on_trade(T0, Price(p), Qty(q));
    }
    let p = mp.profile().unwrap();
    assert_eq!((p.val, p.poc, p.vah), (Price(13), Price(15), Price(17)));
    assert_eq!((p.value_area_qty, p.total_qty), (71, 100));
    // Tie: equal pairs are both added.
    let mut mp = pf(64);
    for (p, q) in [(8, 1), (9, 5), (10, 20), (11, 5), (12, 1)] {
        mp.on_trade(T0, Price(p), Qty(q));
    }
    let p = mp.profile().unwrap();
    assert_eq!(
        (p.val, p.poc, p.vah, p.value_area_qty),
        (Price(8), Price(10), Price(12), 32)
    );
    // POC tie: closest to the middle of the traded range, then the lower.
    let mut mp = pf(64);
    for (p, q) in [(1, 5), (4, 5), (6, 5), (9, 1)] {
        mp.on_trade(T0, Price(p), Qty(q));
    }
    assert_eq!(mp.profile().unwrap().poc, Price(4)); // middle 5: 4 and 6 tie -> lower
                                                     // Level width: prices 100..=109 are one level with 10 ticks per level.
    let mut mp = MarketProfile::new(ProfileConfig {
        ticks_per_level: 10,
        ..ProfileConfig::with_tick(1)
    })
    .unwrap();
    mp.on_trade(T0, Price(101), Qty(1));
    mp.on_trade(T0, Price(109), Qty(1));
    mp.on_trade(T0, Price(110), Qty(1));
    let p = mp.profile().unwrap();
    assert_eq!((p.poc, p.poc_qty, p.vah), (Price(100), 2, Price(110)));
}

#[test]
fn profile_recentres_and_reports_outside_volume() {
    let mut mp = pf(16);
    mp.on_trade(T0, Price(1_000), Qty(7));
    // 1 000 levels away: re-centred, the old volume is outside the range.
    mp.on_trade(T0 + 1, Price(2_000), Qty(3));
    assert_eq!(mp.outside_qty(), 7);
    assert_eq!(mp.total_qty(), 3);
    assert_eq!(mp.profile().unwrap().poc, Price(2_000));
    // Back again: re-centred on 1000, now 3 is outside.
    mp.on_trade(T0 + 2, Price(1_001), Qty(1));
    assert_eq!((mp.outside_qty(), mp.total_qty()), (3, 8));
    assert_eq!(mp.stats().recentres, 2);
    // Both age out.
    mp.advance_to(T0 + 901 * S);
    assert_eq!((mp.outside_qty(), mp.total_qty()), (0, 0));
}

#[test]
fn profile_clock_backwards_and_burst_beyond_capacity() {
    let cfg = ProfileConfig {
        max_entries: 8,
        ..ProfileConfig::with_tick(1)
    };
    let mut mp = MarketProfile::new(cfg).unwrap();
    let heap = mp.heap_bytes();
    // Many trades at the same (bucket, level) merge into one entry.
    for _ in 0..100_000 {
        mp.on_trade(T0, Price(50), Qty(2));
    }
    assert_eq!(mp.stats().max_live_entries, 1);
    assert_eq!(mp.total_qty(), 200_000);
    // 20 distinct levels in one bucket: the ring (8) overflows, oldest entries are dropped.
    for p in 0..20 {
        mp.on_trade(T0, Price(100 + p), Qty(1));
    }
    assert_eq!(mp.stats().early_evicted, 13);
    assert_eq!(mp.total_qty(), 8);
    assert_eq!(mp.volume_at(Price(50)), 0);
    assert_eq!(mp.heap_bytes(), heap);
    // Earlier time: clamped to the current bucket.
    assert!(mp.on_trade(T0 - 3_600 * S, Price(200), Qty(4)));
    assert_eq!(mp.stats().late, 1);
    assert_eq!(mp.volume_at(Price(200)), 4);
    assert!(MarketProfile::new(ProfileConfig {
        window_ns: 1_500_000_000,
        ..ProfileConfig::with_tick(1)
    })
    .is_err());
}

// ------------------------------------------------------------------------------------------
// Zones and fair value gaps
// ------------------------------------------------------------------------------------------

use hotpath::analytics::zones::{
    CandleInput, FillStatus, GapKind, ZoneConfig, ZoneKind, ZoneStatus, Zones,
};

/// Closed candles of `width_ns` from trades (test helper; the engine's candles come from
/// `analytics::candles`). Returns each candle with the index of the first trade after it.
fn candles_from(ts: &[T], width_ns: u64) -> Vec<(CandleInput, usize)> {
    let mut out: Vec<(CandleInput, usize)> = Vec::new();
    let mut cur: Option<CandleInput> = None;
    for (i, x) in ts.iter().enumerate() {
        let start = x.t / width_ns * width_ns;
        if let Some(c) = cur.as_mut() {
            if c.start_ns == start {
                c.high = c.high.max(Price(x.price));
                c.low = c.low.min(Price(x.price));
                c.close = Price(x.price);
                c.volume.0 += x.qty;
                if x.buy {
                    c.buy_volume.0 += x.qty;
                } else {
                    c.sell_volume.0 += x.qty;
                }
                continue;
            }
            out.push((*c, i));
        }
        cur = Some(CandleInput {
            open: Price(x.price),
            high: Price(x.price),
            low: Price(x.price),
            close: Price(x.price),
            volume: Qty(x.qty),
            buy_volume: Qty(if x.buy { x.qty } else { 0 }),
            sell_volume: Qty(if x.buy { 0 } else { x.qty }),
            start_ns: start,
            end_ns: start + width_ns,
        });
    }
    out
}

#[test]
fn zones_and_gaps_match_batch_on_real_candles() {
    for (rel, venue, _, _) in CAPTURES {
        let Some((events, _)) = capture_trades(rel, venue) else {
            continue;
        };
        let ts = to_t(&events);
        for (width, wick_pct, bps) in [(5 * S, 50, 1), (2 * S, 40, 2), (10 * S, 60, 1)] {
            let cfg = ZoneConfig {
                wick_pct,
                fvg_min_bps: bps,
                ..ZoneConfig::default()
            };
            let candles = candles_from(&ts, width);
            // Incremental: close each candle before the first trade after it.
            let mut z = Zones::new(cfg);
            let heap = z.heap_bytes();
            let mut next = candles.iter().peekable();
            for (i, x) in ts.iter().enumerate() {
                while let Some((c, _)) = next.next_if(|(_, first)| *first == i) {
                    assert!(z.on_candle(c));
                }
                z.on_price(x.t, Price(x.price));
            }
            assert_eq!(z.heap_bytes(), heap);
            // Batch zones: creation from the candle list, status by replaying later prices.
            let mut expect = Vec::new();
            for j in cfg.avg_candles..candles.len() {
                let (c, first) = candles[j];
                let sum: i128 = candles[j - 20..j]
                    .iter()
                    .map(|(c, _)| i128::from(c.volume.0))
                    .sum();
                if i128::from(c.volume.0) * 20 * 2 <= 3 * sum {
                    continue;
                }
                let range = i128::from(c.high.0 - c.low.0);
                let (blo, bhi) = (c.open.min(c.close), c.open.max(c.close));
                let lower = i128::from(blo.0 - c.low.0);
                let upper = i128::from(c.high.0 - bhi.0);
                let ok = |w: i128| w > 0 && w * 100 >= i128::from(wick_pct) * range;
                for (kind, lo, hi, w) in [
                    (ZoneKind::Demand, c.low, blo, lower),
                    (ZoneKind::Supply, bhi, c.high, upper),
                ] {
                    if !ok(w) {
                        continue;
                    }
                    let (mut touches, mut inside, mut broken) = (0u32, false, false);
                    for x in &ts[first..] {
                        let p = Price(x.price);
                        let (brk, ins) = match kind {
                            ZoneKind::Demand => (p < lo, p >= lo && p < hi),
                            ZoneKind::Supply => (p > hi, p > lo && p <= hi),
                        };
                        if brk {
                            broken = true;
                            break;
                        }
                        if ins && !inside {
                            touches += 1;
                        }
                        inside = ins;
                    }
                    let status = if broken {
                        ZoneStatus::Broken
                    } else if touches > 0 {
                        ZoneStatus::Tested
                    } else {
                        ZoneStatus::Fresh
                    };
                    expect.push((kind, lo, hi, c.end_ns, touches, status));
                }
            }
            let got: Vec<_> = z
                .zones()
                .iter()
                .map(|z| (z.kind, z.low, z.high, z.created_ns, z.touches, z.status))
                .collect();
            assert_eq!(got, expect, "{rel}: zones with {width} ns candles");
            for zz in z.zones() {
                let base = match (zz.status, zz.touches) {
                    (ZoneStatus::Fresh, _) => 100.0,
                    (ZoneStatus::Tested, 1..=2) => 70.0,
                    _ => 40.0,
                };
                assert!(zz.strength <= base && zz.strength >= 0.8 * base);
            }
            // Batch gaps.
            let mut gaps = Vec::new();
            for j in 2..candles.len() {
                let (c1, c3) = (candles[j - 2].0, candles[j].0);
                let g = if c1.high < c3.low {
                    (GapKind::Bullish, c1.high, c3.low)
                } else if c1.low > c3.high {
                    (GapKind::Bearish, c3.high, c1.low)
                } else {
                    continue;
                };
                if i128::from(g.2 .0 - g.1 .0) * 10_000 < i128::from(bps) * i128::from(c3.close.0) {
                    continue;
                }
                let first = candles[j].1;
                let mut deepest = match g.0 {
                    GapKind::Bullish => g.2,
                    GapKind::Bearish => g.1,
                };
                for x in &ts[first..] {
                    let p = Price(x.price);
                    deepest = match g.0 {
                        GapKind::Bullish => deepest.min(p).max(g.1),
                        GapKind::Bearish => deepest.max(p).min(g.2),
                    };
                }
                let status = if deepest == g.1 && g.0 == GapKind::Bullish
                    || deepest == g.2 && g.0 == GapKind::Bearish
                {
                    FillStatus::Filled
                } else if deepest != g.2 && g.0 == GapKind::Bullish
                    || deepest != g.1 && g.0 == GapKind::Bearish
                {
                    FillStatus::Partial
                } else {
                    FillStatus::Unfilled
                };
                gaps.push((g.0, g.1, g.2, deepest, status));
            }
            let got: Vec<_> = z
                .fvgs()
                .iter()
                .map(|g| (g.kind, g.low, g.high, g.filled_to, g.status))
                .collect();
            assert_eq!(got, gaps, "{rel}: gaps with {width} ns candles");
            eprintln!(
                "{rel}: {} candles of {} s: {} zones ({:?}), {} gaps",
                candles.len(),
                width / S,
                z.zones().len(),
                z.zones()
                    .iter()
                    .map(|z| (z.kind, z.status, z.touches))
                    .collect::<Vec<_>>(),
                z.fvgs().len()
            );
        }
    }
}

fn candle(i: u64, o: i64, h: i64, l: i64, c: i64, v: i64) -> CandleInput {
    CandleInput {
        open: Price(o),
        high: Price(h),
        low: Price(l),
        close: Price(c),
        volume: Qty(v),
        buy_volume: Qty(v / 2),
        sell_volume: Qty(v - v / 2),
        start_ns: T0 + i * 60 * S,
        end_ns: T0 + (i + 1) * 60 * S,
    }
}

/// Zones after 20 quiet candles (volume 10, no wicks), so the average is 10.
fn warmed(cfg: ZoneConfig) -> Zones {
    let mut z = Zones::new(cfg);
    for i in 0..20 {
        assert!(z.on_candle(&candle(i, 1_000, 1_001, 999, 1_000, 10)));
    }
    assert!(z.zones().is_empty());
    z
}

#[test]
fn zone_creation_thresholds_and_strength() {
    let mut z = warmed(ZoneConfig::default());
    // Volume exactly 1.5x: no zone, even with a long wick.
    z.on_candle(&candle(20, 1_000, 1_002, 990, 1_001, 15));
    assert!(z.zones().is_empty());
    // The average is now (19*10 + 15) / 20 = 10.25; 1.5x = 15.375. Lower wick 60% of range.
    let mut z = warmed(ZoneConfig::default());
    z.on_candle(&candle(20, 1_006, 1_010, 1_000, 1_009, 16));
    assert_eq!(z.zones().len(), 1);
    let d = z.zones()[0];
    assert_eq!(
        (d.kind, d.low, d.high, d.status),
        (
            ZoneKind::Demand,
            Price(1_000),
            Price(1_006),
            ZoneStatus::Fresh
        )
    );
    assert!((d.volume_ratio - 1.6).abs() < 1e-12);
    let f = 0.8 + 0.2 * (1.6 - 1.5) / 1.5;
    assert!((d.strength - 100.0 * f).abs() < 1e-9);
    // Wick of 49% does not qualify, 50% does (upper wick -> supply).
    let mut z = warmed(ZoneConfig::default());
    z.on_candle(&candle(20, 1_000, 1_100, 1_000, 1_051, 40));
    assert!(z.zones().is_empty());
    z.on_candle(&candle(21, 1_000, 1_100, 1_000, 1_050, 40));
    let s = z.zones()[0];
    assert_eq!(
        (s.kind, s.low, s.high),
        (ZoneKind::Supply, Price(1_050), Price(1_100))
    );
    // A huge volume caps the factor at 1 -> strength 100.
    assert!((s.strength - 100.0).abs() < 1e-12);
    // A doji with both wicks >= 40%: both zones.
    let mut z = warmed(ZoneConfig {
        wick_pct: 40,
        ..ZoneConfig::default()
    });
    z.on_candle(&candle(20, 1_050, 1_100, 1_000, 1_050, 100));
    let kinds: Vec<_> = z.zones().iter().map(|z| z.kind).collect();
    assert_eq!(kinds, [ZoneKind::Demand, ZoneKind::Supply]);
    // No history: nothing, however big the candle.
    let mut z = Zones::new(ZoneConfig::default());
    z.on_candle(&candle(0, 1_006, 1_010, 1_000, 1_009, 1_000));
    assert!(z.zones().is_empty());
}

#[test]
fn zone_touches_and_breaks() {
    let mut z = warmed(ZoneConfig::default());
    z.on_candle(&candle(20, 1_006, 1_010, 1_000, 1_009, 30)); // demand [1000, 1006], factor 1
    z.on_candle(&candle(21, 1_020, 1_030, 1_018, 1_019, 60)); // supply [1020, 1030]
    let t = T0 + 22 * 60 * S;
    let zs = |z: &Zones| {
        z.zones()
            .iter()
            .map(|z| (z.status, z.touches, z.strength))
            .collect::<Vec<_>>()
    };
    assert_eq!(zs(&z)[0], (ZoneStatus::Fresh, 0, 100.0));
    z.on_price(t, Price(1_006)); // the edge of a demand zone is not inside [low, high)
    z.on_price(t, Price(1_005)); // touch 1
    z.on_price(t + 1, Price(1_001)); // still inside: no new touch
    assert_eq!(zs(&z)[0], (ZoneStatus::Tested, 1, 70.0));
    z.on_price(t + 2, Price(1_010)); // leaves
    z.on_price(t + 3, Price(1_000)); // touch 2 (the low is inside)
    assert_eq!(zs(&z)[0], (ZoneStatus::Tested, 2, 70.0));
    z.on_price(t + 4, Price(1_007));
    z.on_price(t + 5, Price(1_003)); // touch 3 -> 40
    assert_eq!(zs(&z)[0], (ZoneStatus::Tested, 3, 40.0));
    z.on_price(t + 6, Price(999)); // broken
    assert_eq!(zs(&z)[0], (ZoneStatus::Broken, 3, 40.0));
    assert_eq!(z.zones()[0].broken_ns, t + 6);
    z.on_price(t + 7, Price(1_003)); // broken zones no longer change
    assert_eq!(zs(&z)[0], (ZoneStatus::Broken, 3, 40.0));
    assert!(z.zone_at(ZoneKind::Demand, Price(1_003)).is_none());
    // Supply: touched entering (1020, 1030] from below, broken above 1030.
    assert_eq!(zs(&z)[1].0, ZoneStatus::Fresh);
    z.on_price(t + 8, Price(1_020));
    assert_eq!(zs(&z)[1].1, 0);
    z.on_price(t + 9, Price(1_030));
    assert_eq!(zs(&z)[1].1, 1);
    assert!(z.zone_at(ZoneKind::Supply, Price(1_025)).is_some());
    z.on_price(t + 10, Price(1_031));
    assert_eq!(zs(&z)[1].0, ZoneStatus::Broken);
}

#[test]
fn zone_cap_evicts_broken_then_weakest_oldest() {
    let mut z = warmed(ZoneConfig::default());
    let heap = z.heap_bytes();
    // Zone i: a demand zone at [base_i, base_i + 6]; alternate volumes so strengths differ.
    let mut i = 20;
    let mut mk = |z: &mut Zones, base: i64, v: i64| {
        // 20 quiet candles after each zone candle bring the average back to 10, so every zone
        // is created at 10x the average (volume factor 1, strength 100).
        z.on_candle(&candle(i, base + 6, base + 10, base, base + 9, v));
        for k in 1..=20 {
            z.on_candle(&candle(i + k, 1_000, 1_001, 999, 1_000, 10));
        }
        i += 21;
    };
    for k in 0..50 {
        mk(&mut z, 10_000 + 100 * k, 100);
    }
    assert_eq!(z.zones().len(), 50);
    assert!(z.zones().iter().all(|z| z.strength == 100.0));
    // A price just below zone #3's low breaks every demand zone above it: #3..#49.
    z.on_price(T0 + 100_000 * S, Price(10_300 - 1));
    let broken = z
        .zones()
        .iter()
        .filter(|z| z.status == ZoneStatus::Broken)
        .count();
    assert_eq!(broken, 47);
    // New zones evict broken ones first, oldest first.
    mk(&mut z, 5_000, 100);
    assert_eq!(z.zones().len(), 50);
    assert_eq!(z.zones()[3].low, Price(10_400)); // 10_300 was evicted
    assert_eq!(z.stats().zones_evicted, 1);
    // Without broken zones: the weakest goes, ties to the oldest.
    let mut z = warmed(ZoneConfig {
        max_zones: 3,
        ..ZoneConfig::default()
    });
    let mut i = 20;
    let mut mk = |z: &mut Zones, base: i64| {
        z.on_candle(&candle(i, base + 6, base + 10, base, base + 9, 100));
        for k in 1..=20 {
            z.on_candle(&candle(i + k, 1_000, 1_001, 999, 1_000, 10));
        }
        i += 21;
    };
    mk(&mut z, 100);
    mk(&mut z, 200);
    mk(&mut z, 300);
    z.on_price(T0 + 10_000 * S, Price(305)); // zone 300 tested -> weakest (nothing broken)
    assert_eq!(z.zones()[2].status, ZoneStatus::Tested);
    mk(&mut z, 400);
    let lows: Vec<_> = z.zones().iter().map(|z| z.low.0).collect();
    assert_eq!(lows, [100, 200, 400]);
    mk(&mut z, 500); // all fresh: the oldest goes
    let lows: Vec<_> = z.zones().iter().map(|z| z.low.0).collect();
    assert_eq!(lows, [200, 400, 500]);
    assert!(heap > 0);
}

#[test]
fn fair_value_gaps_fill_and_expire() {
    let mut z = Zones::new(ZoneConfig::default());
    // Bullish: c1.high 10_000 < c3.low 10_030 (0.3% of 10_040).
    z.on_candle(&candle(0, 9_990, 10_000, 9_980, 9_995, 10));
    z.on_candle(&candle(1, 9_995, 10_040, 9_995, 10_035, 10));
    z.on_candle(&candle(2, 10_035, 10_050, 10_030, 10_040, 10));
    assert_eq!(z.fvgs().len(), 1);
    let g = z.fvgs()[0];
    assert_eq!(
        (g.kind, g.low, g.high, g.status),
        (
            GapKind::Bullish,
            Price(10_000),
            Price(10_030),
            FillStatus::Unfilled
        )
    );
    assert_eq!(g.expires_ns, T0 + 3 * 60 * S + 24 * 3_600 * S);
    assert!(z.fvg_at(GapKind::Bullish, Price(10_010)).is_some());
    // Partial fill from the top.
    let t = T0 + 4 * 60 * S;
    z.on_price(t, Price(10_030)); // the edge: not in
    assert_eq!(z.fvgs()[0].status, FillStatus::Unfilled);
    z.on_price(t, Price(10_020));
    assert_eq!(
        (z.fvgs()[0].status, z.fvgs()[0].filled_to),
        (FillStatus::Partial, Price(10_020))
    );
    assert!((z.fvgs()[0].fill_fraction() - 1.0 / 3.0).abs() < 1e-12);
    z.on_price(t, Price(10_025)); // going back up does not unfill
    assert_eq!(z.fvgs()[0].filled_to, Price(10_020));
    z.on_price(t, Price(10_000));
    assert_eq!(z.fvgs()[0].status, FillStatus::Filled);
    assert_eq!(z.fvgs()[0].fill_fraction(), 1.0);
    assert!(z.fvg_at(GapKind::Bullish, Price(10_010)).is_none());
    // Bearish, and one too small (0.19%).
    z.on_candle(&candle(5, 10_000, 10_010, 9_990, 10_000, 10));
    z.on_candle(&candle(6, 9_990, 9_990, 9_900, 9_910, 10));
    z.on_candle(&candle(7, 9_910, 9_960, 9_900, 9_950, 10));
    // Candle 6 against candle 2 is a bearish gap too: [9_990, 10_030].
    let g: Vec<_> = z
        .fvgs()
        .iter()
        .map(|g| (g.kind, g.low.0, g.high.0))
        .collect();
    assert_eq!(
        g,
        [
            (GapKind::Bullish, 10_000, 10_030),
            (GapKind::Bearish, 9_990, 10_030),
            (GapKind::Bearish, 9_960, 9_990)
        ]
    );
    z.on_price(T0 + 9 * 60 * S, Price(9_995));
    assert_eq!(z.fvgs()[2].status, FillStatus::Filled);
    assert_eq!(z.fvgs()[1].status, FillStatus::Partial);
    let mut small = Zones::new(ZoneConfig::default());
    small.on_candle(&candle(0, 10_000, 10_000, 10_000, 10_000, 1));
    small.on_candle(&candle(1, 10_000, 10_030, 10_000, 10_020, 1));
    small.on_candle(&candle(2, 10_020, 10_030, 10_019, 10_020, 1)); // 19 / 10020 < 0.2%
    assert!(small.fvgs().is_empty());
    small.on_candle(&candle(3, 10_020, 10_060, 10_051, 10_051, 1)); // 21 / 10051 >= 0.2%
    assert_eq!(small.fvgs().len(), 1);
    // Expiry by event time: 24 h after c3's end, removed at exactly that time.
    let exp = z.fvgs()[0].expires_ns;
    z.on_price(exp - 1, Price(10_500));
    assert_eq!(z.fvgs().len(), 3);
    z.on_price(exp, Price(10_500));
    assert_eq!(z.fvgs().len(), 2);
    // Clock going backwards does not resurrect or expire anything.
    z.on_price(T0, Price(10_500));
    assert_eq!(z.fvgs().len(), 2);
    // Expiry through a candle's end as well (a candle inside candle 6's range: no new gap).
    let exp = z.fvgs()[0].expires_ns;
    assert!(z.on_candle(&CandleInput {
        start_ns: exp - 60 * S,
        end_ns: exp,
        ..candle(0, 9_950, 9_950, 9_950, 9_950, 1)
    }));
    assert_eq!(z.fvgs().len(), 1);
    assert_eq!(z.stats().fvgs_expired, 2);
    // An out-of-order candle is ignored.
    assert!(!z.on_candle(&candle(1, 1, 1, 1, 1, 1)));
    assert_eq!(z.stats().rejected_candles, 1);
}

#[test]
fn fair_value_gap_cap() {
    let mut z = Zones::new(ZoneConfig {
        max_fvgs: 2,
        ..ZoneConfig::default()
    });
    // A staircase: every candle gaps up 1% over the one two before.
    for i in 0..6u64 {
        let p = 10_000 + 100 * i as i64;
        z.on_candle(&candle(i, p, p + 10, p, p + 10, 1));
    }
    assert_eq!(z.fvgs().len(), 2);
    assert_eq!(z.stats().fvgs_created, 4);
    assert_eq!(z.stats().fvgs_evicted, 2);
    let lows: Vec<_> = z.fvgs().iter().map(|g| g.low.0).collect();
    assert_eq!(lows, [10_210, 10_310]);
}

// ------------------------------------------------------------------------------------------
// Randomised: jittered clocks (many late trades), against the same batch implementations
// ------------------------------------------------------------------------------------------

#[test]
fn random_trades_with_a_jittery_clock_match_batch() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0f10);
    let inst = hotpath::instrument::InstrumentRef {
        id: InstrumentId(0),
        price_scale: 2,
        qty_scale: 3,
    };
    for round in 0..4 {
        let mut t = T0;
        let mut price = 50_000i64;
        let events: Vec<MarketEvent> = (0..20_000u64)
            .map(|i| {
                // Mostly forward in bursts, sometimes long gaps, sometimes up to 2 s back.
                match rng.gen_range(0..100) {
                    0..=59 => t += rng.gen_range(0..30_000_000),
                    60..=89 => {}
                    90..=97 => t = t.saturating_sub(rng.gen_range(0..2 * S)),
                    _ => t += rng.gen_range(0..120 * S),
                }
                price = (price + rng.gen_range(-3..=3)).max(1);
                let qty = if rng.gen_range(0..50) == 0 {
                    rng.gen_range(1..500_000)
                } else {
                    rng.gen_range(1..2_000)
                };
                let side = if rng.gen_bool(0.3 + 0.1 * f64::from(round)) {
                    Aggressor::Buy
                } else {
                    Aggressor::Sell
                };
                MarketEvent::trade(
                    inst,
                    hotpath::event::Stamps::new(t, 1),
                    Price(price),
                    Qty(qty),
                    side,
                    i,
                )
            })
            .collect();
        let label = format!("random round {round}");
        check_orderflow_against_batch(&events, OrderFlowConfig::default(), &label);
        check_orderflow_against_batch(&events, short_config(), &label);
        let pcfg = ProfileConfig {
            levels: 32,
            window_ns: 60 * SECOND_NS,
            max_entries: 16_384,
            ..ProfileConfig::with_tick(1)
        };
        check_profile_against_batch(&events, pcfg, &label);
        check_profile_against_batch(&events, ProfileConfig::with_tick(1), &label);
    }
}
