//! The incremental statistics against straightforward batch implementations written here, on
//! real data (every FX day, the Binance spot captures), plus every edge case with its defined
//! result: zero volume, zero standard deviation, a single trade, identical prices, huge time
//! gaps, the clock going backwards, untimed events, bucket boundaries, one-sided quotes.

#[path = "analytics_common/mod.rs"]
mod common;

use hotpath::analytics::candles::{
    Candle, CandleBuilder, CandleSource, Tick, TickClassifier, Timeframe,
};
use hotpath::analytics::indicators::{Atr, Dmi, Rsi};
use hotpath::analytics::stats::{
    autocorrelation_lag1, expected_rs, hurst_rs, hurst_rs_corrected, mean_reversion_strength,
    MeanReversionConfig, TickZScore, ZSCORE_WINDOW_NS,
};
use hotpath::analytics::timeframes::{AnalyticsConfig, SymbolAnalytics};
use hotpath::datadir;
use hotpath::event::{Aggressor, MarketEvent, Stamps};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{InstrumentId, InstrumentRef};

// ---------------------------------------------------------------------------------------------
// Batch references (deliberately naive: recompute everything from a plain Vec).

/// Population mean and standard deviation, two-pass, shifted by the first value (so identical
/// values give exactly zero deviation, as the engine's exact integer sums do).
fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let x0 = x[0];
    let m = x.iter().map(|a| a - x0).sum::<f64>() / n;
    let v = x.iter().map(|a| (a - x0 - m).powi(2)).sum::<f64>() / n;
    (x0 + m, v.sqrt())
}

fn batch_autocorr(closes: &[f64], returns: usize) -> Option<f64> {
    if closes.len() < returns + 1 {
        return None;
    }
    let c = &closes[closes.len() - returns - 1..];
    let r: Vec<f64> = c.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    if r.len() < 3 {
        return None;
    }
    let m = r.iter().sum::<f64>() / r.len() as f64;
    let var: f64 = r.iter().map(|a| (a - m) * (a - m)).sum();
    if var == 0.0 {
        return Some(0.0);
    }
    let cov: f64 = (0..r.len() - 1).map(|i| (r[i] - m) * (r[i + 1] - m)).sum();
    Some(cov / var)
}

fn batch_hurst(closes: &[f64], window: usize, min: usize, corrected: bool) -> Option<f64> {
    let c = &closes[closes.len().saturating_sub(window)..];
    if c.len() < min {
        return None;
    }
    let r: Vec<f64> = c.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for n in [8usize, 16, 32, 64] {
        if n > r.len() {
            continue;
        }
        let k = r.len() / n;
        let tail = &r[r.len() - k * n..];
        let mut rs = Vec::new();
        for chunk in tail.chunks(n) {
            let (m, s) = mean_std(chunk);
            let cum: Vec<f64> = chunk
                .iter()
                .scan(0.0, |acc, v| {
                    *acc += v - m;
                    Some(*acc)
                })
                .collect();
            let range = cum.iter().cloned().fold(f64::MIN, f64::max)
                - cum.iter().cloned().fold(f64::MAX, f64::min);
            if s > 0.0 {
                rs.push(range / s);
            }
        }
        if !rs.is_empty() {
            let avg = rs.iter().sum::<f64>() / rs.len() as f64;
            if avg > 0.0 {
                xs.push((n as f64).ln());
                ys.push(if corrected {
                    avg.ln() - batch_expected_rs(n).ln()
                } else {
                    avg.ln()
                });
            }
        }
    }
    if xs.len() < 2 {
        return None;
    }
    let (mx, my) = (mean_std(&xs).0, mean_std(&ys).0);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let h = sxy / sxx;
    Some(if corrected { 0.5 + h } else { h }.clamp(0.0, 1.0))
}

/// Anis-Lloyd / Peters E[R/S](n), with the Gamma functions from factorials (even n only).
fn batch_expected_rs(n: usize) -> f64 {
    assert!(n % 2 == 0);
    let fact = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
    let m = n / 2;
    let sqrt_pi = std::f64::consts::PI.sqrt();
    // Gamma(m - 1/2) = (2m-2)! sqrt(pi) / (4^(m-1) (m-1)!), Gamma(m) = (m-1)!.
    let g_half = fact(2 * m - 2) * sqrt_pi / (4f64.powi(m as i32 - 1) * fact(m - 1));
    let g_int = fact(m - 1);
    let sum: f64 = (1..n).map(|i| ((n - i) as f64 / i as f64).sqrt()).sum();
    (n as f64 - 0.5) / n as f64 * (g_half / g_int) / sqrt_pi * sum
}

fn batch_mean_reversion(c: &[f64], cfg: &MeanReversionConfig) -> Option<f64> {
    let l = cfg.lookback;
    let displaced = |i: usize| -> Option<(f64, f64)> {
        if i < l {
            return None;
        }
        let (m, s) = mean_std(&c[i - l..i]);
        (s > 0.0 && (c[i] - m).abs() >= cfg.sigma * s).then_some((m, s))
    };
    let (mut scored, mut reverted) = (0, 0);
    for i in l..c.len() {
        let Some((m, s)) = displaced(i) else { continue };
        if displaced(i - 1).is_some() || i + cfg.horizon >= c.len() {
            continue;
        }
        scored += 1;
        if (1..=cfg.horizon).any(|j| (c[i + j] - m).abs() <= cfg.back_within * s) {
            reverted += 1;
        }
    }
    (scored > 0).then(|| reverted as f64 / scored as f64)
}

fn close_enough(a: Option<f64>, b: Option<f64>, tol: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.is_finite() && (a - b).abs() <= tol * b.abs().max(1.0),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Real data.

/// Runs a symbol over `events`; checks the z-score on every `stride`-th tick against the batch
/// window and the candle statistics at every 1m and 15m close against the batch functions.
fn check_against_batch(name: &str, events: &[MarketEvent], source: CandleSource, stride: usize) {
    let cfg = AnalyticsConfig::default();
    let mut sa = SymbolAnalytics::new(source, &cfg);
    let mut ticks: Vec<(u64, f64)> = Vec::new();
    let mut now = 0u64;
    let mut closes: [Vec<f64>; 3] = Default::default();
    let (mut z_checked, mut stat_checked, mut hurst_some, mut mr_some) = (0, 0, 0, 0);
    let mut max_z_err = 0f64;
    let (mut hurst_sum, mut hc_sum, mut mr_sum, mut ac_sum, mut n1) =
        (0.0, 0.0, 0.0, 0.0, [0usize; 3]);
    for e in events {
        let closed = sa.on_event(e);
        for c in closed.iter() {
            let tf = c.timeframe.index();
            closes[tf].push(c.candle.close_f64());
            let s = &c.indicators;
            let all = &closes[tf];
            assert_eq!(s.candles as usize, all.len());
            let want_ac = batch_autocorr(all, cfg.autocorr_returns);
            assert!(
                close_enough(s.autocorr, want_ac, 1e-9),
                "{name} autocorr {:?} vs {want_ac:?}",
                s.autocorr
            );
            let want_hc = batch_hurst(all, cfg.hurst_closes, cfg.hurst_min_closes, true);
            assert!(
                close_enough(s.hurst_corrected, want_hc, 1e-9),
                "{name} corrected hurst {:?} vs {want_hc:?}",
                s.hurst_corrected
            );
            let want_h = batch_hurst(all, cfg.hurst_closes, cfg.hurst_min_closes, false);
            assert!(
                close_enough(s.hurst, want_h, 1e-9),
                "{name} hurst {:?} vs {want_h:?}",
                s.hurst
            );
            let tail = &all[all.len().saturating_sub(cfg.hurst_closes)..];
            let want_mr = batch_mean_reversion(tail, &cfg.mean_reversion);
            assert_eq!(s.mean_reversion, want_mr, "{name} mean reversion");
            for v in [
                s.rsi,
                s.atr,
                s.plus_di,
                s.minus_di,
                s.adx,
                s.autocorr,
                s.hurst,
                s.mean_reversion,
            ]
            .into_iter()
            .flatten()
            {
                assert!(v.is_finite(), "{name}: non-finite indicator");
            }
            hurst_some += usize::from(s.hurst.is_some());
            if tf == 0 {
                hurst_sum += s.hurst.unwrap_or(0.0);
                hc_sum += s.hurst_corrected.unwrap_or(0.0);
                mr_sum += s.mean_reversion.unwrap_or(0.0);
                ac_sum += s.autocorr.unwrap_or(0.0);
                for (k, some) in [s.hurst, s.mean_reversion, s.autocorr].iter().enumerate() {
                    n1[k] += usize::from(some.is_some());
                }
            }
            mr_some += usize::from(s.mean_reversion.is_some());
            stat_checked += 1;
        }
        let Some(t) = sa.last_tick() else { continue };
        if t.ns == 0
            || !matches!(
                e.kind,
                hotpath::event::MarketKind::Trade | hotpath::event::MarketKind::Quote
            )
        {
            continue;
        }
        now = now.max(t.ns);
        ticks.push((now, t.price.to_f64(t.price_scale)));
        if ticks.len() % stride != 0 {
            continue;
        }
        let z = sa.zscore().unwrap();
        let window: Vec<f64> = ticks
            .iter()
            .rev()
            .take_while(|(ts, _)| now - ts < ZSCORE_WINDOW_NS)
            .take(cfg.zscore_capacity)
            .map(|x| x.1)
            .collect();
        let (m, s) = mean_std(&window);
        let price = ticks.last().unwrap().1;
        let want_z = if s > 0.0 { (price - m) / s } else { 0.0 };
        assert_eq!(z.ticks as usize, window.len(), "{name}");
        assert!(
            (z.mean - m).abs() <= 1e-12 * m.abs(),
            "{name} mean {} vs {m}",
            z.mean
        );
        assert!(
            (z.std - s).abs() <= 1e-7 * s.max(1e-300) + 1e-15 * m.abs(),
            "{name} std {} vs {s}",
            z.std
        );
        let err = (z.z - want_z).abs();
        assert!(
            err <= 1e-6 * want_z.abs().max(1.0),
            "{name} z {} vs {want_z}",
            z.z
        );
        max_z_err = max_z_err.max(err);
        z_checked += 1;
    }
    assert!(z_checked > 0 && stat_checked > 0);
    eprintln!(
        "{name}: {} ticks, {z_checked} z-scores (max abs err {max_z_err:e}), {stat_checked} candle closes ({hurst_some} Hurst, {mr_some} mean-reversion values)",
        ticks.len()
    );
    let avg = |sum: f64, n: usize| if n == 0 { f64::NAN } else { sum / n as f64 };
    eprintln!(
        "{name}: 1m means: Hurst {:.3} (corrected {:.3}), mean-reversion strength {:.3}, lag-1 autocorrelation {:.3}",
        avg(hurst_sum, n1[0]),
        avg(hc_sum, n1[0]),
        avg(mr_sum, n1[1]),
        avg(ac_sum, n1[2])
    );
}

#[test]
fn fx_statistics_match_batch() {
    let days = common::fx_days();
    for day in &days {
        let events = common::fx_events(day);
        check_against_batch(
            day.file_name().unwrap().to_str().unwrap(),
            &events,
            CandleSource::QuoteMid,
            7,
        );
    }
}

#[test]
fn binance_statistics_match_batch() {
    let table = common::binance_spot_table();
    for rel in [
        "binance/spot/btcusdt_20240808.gz",
        "binance/spot/ethusdt_20240808.gz",
    ] {
        let Some(path) = datadir::capture(rel) else {
            continue;
        };
        let events = common::binance_events(&table, &common::hft_lines(&path));
        check_against_batch(rel, &events, CandleSource::Trades, 1);
    }
}

#[test]
fn zscore_ring_bound_evicts_oldest() {
    let days = common::fx_days();
    let Some(day) = days.first() else { return };
    let events = common::fx_events(day);
    let cap = 64;
    let mut z = TickZScore::new(ZSCORE_WINDOW_NS, cap);
    let mut c = TickClassifier::new(CandleSource::QuoteMid);
    let mut prices = Vec::new();
    for e in &events {
        let t = c.classify(e).unwrap();
        let got = z.update(t.ns, t.price, t.price_scale);
        prices.push(t.price.to_f64(t.price_scale));
        // FX ticks are far denser than 64 per 15 minutes most of the day.
        let n = got.ticks as usize;
        assert!(n <= cap);
        let (m, s) = mean_std(&prices[prices.len() - n..]);
        assert!((got.mean - m).abs() <= 1e-12 * m);
        assert!((got.std - s).abs() <= 1e-7 * s + 1e-15);
    }
    assert!(z.evicted_early() > 0);
    assert_eq!(z.capacity(), cap);
    assert_eq!(z.heap_bytes(), cap * 16);
}

// ---------------------------------------------------------------------------------------------
// Edge cases.

const INST: InstrumentRef = InstrumentRef {
    id: InstrumentId(0),
    price_scale: 2,
    qty_scale: 3,
};
const MIN: u64 = 60_000_000_000;
/// 2024-01-01 00:00 UTC.
const T0: u64 = 1_704_067_200_000_000_000;

fn trade(ns: u64, price: i64, qty: i64, side: Aggressor) -> MarketEvent {
    MarketEvent::trade(INST, Stamps::new(ns, 0), Price(price), Qty(qty), side, 1)
}

fn quote(ns: u64, bid: i64, ask: i64) -> MarketEvent {
    MarketEvent::quote(
        INST,
        Stamps::new(ns, 0),
        (Price(bid), Qty(0)),
        (Price(ask), Qty(0)),
        0,
    )
}

fn run(events: &[MarketEvent], source: CandleSource) -> (SymbolAnalytics, Vec<Candle>) {
    let mut sa = SymbolAnalytics::new(source, &AnalyticsConfig::default());
    let mut m1 = Vec::new();
    for e in events {
        if let Some(c) = sa.on_event(e).get(Timeframe::M1) {
            m1.push(c.candle);
        }
    }
    (sa, m1)
}

#[test]
fn single_trade_opens_a_candle_and_nothing_is_warm() {
    let (sa, closed) = run(
        &[trade(T0 + 5, 10_000, 1_000, Aggressor::Buy)],
        CandleSource::Trades,
    );
    assert!(closed.is_empty());
    let c = sa.current(Timeframe::M1).unwrap();
    assert_eq!(
        (c.open, c.high, c.low, c.close),
        (Price(10_000), Price(10_000), Price(10_000), Price(10_000))
    );
    assert_eq!(
        (c.volume, c.buy_volume, c.sell_volume),
        (Qty(1_000), Qty(1_000), Qty(0))
    );
    assert_eq!((c.ticks, c.buy_ticks, c.sell_ticks), (1, 1, 0));
    let z = sa.zscore().unwrap();
    assert_eq!((z.z, z.std, z.mean, z.ticks), (0.0, 0.0, 100.0, 1));
    assert_eq!(*sa.indicators(Timeframe::M1).latest(), Default::default());
}

#[test]
fn boundary_tick_opens_the_new_candle_and_gaps_make_no_candles() {
    let ev = [
        trade(T0, 100, 1, Aggressor::Buy),
        trade(T0 + MIN - 1, 101, 1, Aggressor::Sell),
        trade(T0 + MIN, 102, 1, Aggressor::Buy), // exactly 00:01:00.000: new candle
        // Ten days without trades, then one more.
        trade(
            T0 + MIN + 10 * 86_400 * 1_000_000_000,
            103,
            1,
            Aggressor::Buy,
        ),
    ];
    let (sa, closed) = run(&ev, CandleSource::Trades);
    assert_eq!(closed.len(), 2, "no fake candles for the gap");
    assert_eq!(closed[0].open_time_ns, T0);
    assert_eq!(
        (closed[0].open, closed[0].close, closed[0].ticks),
        (Price(100), Price(101), 2)
    );
    assert_eq!(closed[1].open_time_ns, T0 + MIN);
    assert_eq!(closed[1].ticks, 1);
    assert_eq!(closed[1].close_time_ns(), T0 + 2 * MIN);
    // The z-score window forgot everything older than 15 minutes.
    let z = sa.zscore().unwrap();
    assert_eq!((z.ticks, z.z, z.std), (1, 0.0, 0.0));
    // Only 2 closes: candle statistics are not defined yet.
    let s = sa.indicators(Timeframe::M1).latest();
    assert_eq!(
        (s.candles, s.rsi, s.autocorr, s.hurst),
        (2, None, None, None)
    );
}

#[test]
fn clock_backwards_is_applied_to_the_open_candle_and_counted() {
    let ev = [
        trade(T0 + 90 * 1_000_000_000, 100, 1, Aggressor::Buy), // 00:01:30
        trade(T0 + 59 * 1_000_000_000, 90, 2, Aggressor::Sell), // 00:00:59: an earlier bucket
        trade(T0 + 80 * 1_000_000_000, 95, 1, Aggressor::Buy),  // same bucket, earlier: normal
        trade(T0 + 120 * 1_000_000_000, 97, 1, Aggressor::Buy), // 00:02:00: closes 00:01
    ];
    let (sa, closed) = run(&ev, CandleSource::Trades);
    assert_eq!(closed.len(), 1);
    let c = closed[0];
    assert_eq!(c.open_time_ns, T0 + MIN);
    assert_eq!(
        (c.open, c.high, c.low, c.close),
        (Price(100), Price(100), Price(90), Price(95))
    );
    assert_eq!(
        (c.volume, c.sell_volume, c.ticks, c.late_ticks),
        (Qty(4), Qty(2), 3, 1)
    );
    assert_eq!(
        c.last_tick_ns,
        T0 + 90 * 1_000_000_000,
        "time never moves backwards"
    );
    assert_eq!(sa.builder(Timeframe::M1).counters().late, 1);
    // 5m and 15m buckets both start at T0: the 00:00:59 trade is not late there.
    assert_eq!(sa.builder(Timeframe::M5).counters().late, 0);
    assert_eq!(sa.zscore().unwrap().ticks, 4);
}

#[test]
fn advance_to_closes_early_and_late_ticks_never_reopen_a_closed_bucket() {
    let mut sa = SymbolAnalytics::new(CandleSource::Trades, &AnalyticsConfig::default());
    assert!(sa
        .on_event(&trade(T0 + 10, 100, 1, Aggressor::Buy))
        .is_empty());
    assert!(
        sa.advance_to(T0 + MIN - 1).is_empty(),
        "bucket not over yet"
    );
    let closes = sa.advance_to(T0 + MIN);
    let c = closes.get(Timeframe::M1).unwrap();
    assert_eq!(
        (c.candle.open_time_ns, c.candle.ticks, c.indicators.candles),
        (T0, 1, 1)
    );
    assert!(closes.get(Timeframe::M5).is_none());
    assert!(sa.current(Timeframe::M1).is_none());
    assert!(sa.advance_to(T0 + MIN).is_empty(), "reported once");
    // A trade of the closed minute arrives late: it goes to the next minute, counted.
    assert!(sa
        .on_event(&trade(T0 + 30, 99, 2, Aggressor::Sell))
        .is_empty());
    let c = *sa.current(Timeframe::M1).unwrap();
    assert_eq!(
        (c.open_time_ns, c.late_ticks, c.close),
        (T0 + MIN, 1, Price(99))
    );
    assert_eq!(sa.builder(Timeframe::M1).counters().late, 1);
    assert_eq!(sa.builder(Timeframe::M1).closed_until_ns(), T0 + MIN);
    // The 5m candle was still open, so the same trade is on time there.
    assert_eq!(sa.current(Timeframe::M5).unwrap().ticks, 2);
    let closes = sa.on_event(&trade(T0 + 2 * MIN, 101, 1, Aggressor::Buy));
    let c = closes.get(Timeframe::M1).unwrap();
    assert_eq!(
        (c.candle.open_time_ns, c.candle.ticks, c.indicators.candles),
        (T0 + MIN, 1, 2)
    );
}

#[test]
fn untimed_and_foreign_events_are_dropped_and_counted() {
    let bt = MarketEvent::book_ticker(
        INST,
        Stamps::new(0, 0),
        (Price(1), Qty(1)),
        (Price(2), Qty(1)),
        1,
    );
    let ev = [
        trade(0, 100, 1, Aggressor::Buy),
        bt,
        trade(T0, 100, 1, Aggressor::Buy),
    ];
    let (sa, _) = run(&ev, CandleSource::Trades);
    assert_eq!(sa.builder(Timeframe::M1).counters().untimed, 1);
    assert_eq!(sa.classifier().ignored(), 1);
    assert_eq!(sa.current(Timeframe::M1).unwrap().ticks, 1);
    assert_eq!(sa.zscore().unwrap().ticks, 1);
}

#[test]
fn zero_volume_and_unknown_aggressor() {
    let ev: Vec<MarketEvent> = (0..40)
        .map(|i| trade(T0 + i * MIN, 100 + (i as i64 % 3), 0, Aggressor::Unknown))
        .collect();
    let (sa, closed) = run(&ev, CandleSource::Trades);
    assert_eq!(closed.len(), 39);
    for c in &closed {
        assert_eq!(
            (c.volume, c.buy_volume, c.sell_volume, c.ticks, c.buy_ticks),
            (Qty(0), Qty(0), Qty(0), 1, 0)
        );
    }
    let s = sa.indicators(Timeframe::M1).latest();
    for v in [s.rsi, s.atr, s.plus_di, s.minus_di, s.adx, s.autocorr] {
        assert!(v.is_some_and(f64::is_finite));
    }
}

#[test]
fn identical_prices_have_defined_results() {
    let ev: Vec<MarketEvent> = (0..120)
        .flat_map(|i| {
            [
                trade(T0 + i * MIN, 5_000, 10, Aggressor::Buy),
                trade(T0 + i * MIN + 1_000, 5_000, 10, Aggressor::Sell),
            ]
        })
        .collect();
    let (sa, closed) = run(&ev, CandleSource::Trades);
    assert_eq!(closed.len(), 119);
    let s = sa.indicators(Timeframe::M1).latest();
    assert_eq!(s.rsi, Some(50.0), "no movement: neutral RSI");
    assert_eq!(s.atr, Some(0.0));
    assert_eq!((s.plus_di, s.minus_di), (Some(0.0), Some(0.0)));
    assert_eq!(s.adx, Some(0.0), "no DX defined: ADX of zero");
    assert_eq!(s.autocorr, Some(0.0), "zero variance");
    assert_eq!(s.hurst, None, "flat: no R/S");
    assert_eq!(s.mean_reversion, None, "no excursion");
    let z = sa.zscore().unwrap();
    assert_eq!((z.z, z.std, z.mean), (0.0, 0.0, 50.0));
}

#[test]
fn warm_up_lengths_follow_talib() {
    let mut rsi = Rsi::new(14);
    let mut atr = Atr::new(14);
    let mut dmi = Dmi::new(14);
    for i in 0..40u32 {
        let c = 100.0 + f64::from(i % 7) - f64::from(i % 3);
        let r = rsi.update(c);
        let a = atr.update(c + 1.0, c - 1.0, c);
        let d = dmi.update(c + 1.0, c - 1.0, c);
        assert_eq!(r.is_some(), i >= 14, "RSI at candle {i}");
        assert_eq!(a.is_some(), i >= 14, "ATR at candle {i}");
        assert_eq!(d.plus_di.is_some(), i >= 14, "+DI at candle {i}");
        assert_eq!(
            d.adx.is_some(),
            i >= 27,
            "ADX at candle {i} (look-back 2n-1)"
        );
    }
    // A single candle: nothing.
    assert_eq!(Rsi::new(14).update(1.0), None);
    assert_eq!(Atr::new(14).update(1.0, 1.0, 1.0), None);
    assert_eq!(Dmi::new(14).update(1.0, 1.0, 1.0), Default::default());
}

#[test]
fn quote_mid_tick_rule_and_one_sided_quotes() {
    let ev = [
        quote(T0, 100, 101),     // mid 100.5: unclassified
        quote(T0 + 1, 100, 102), // 101: up -> buy
        quote(T0 + 2, 100, 102), // unchanged -> buy again
        quote(T0 + 3, 99, 101),  // 100: down -> sell
        quote(T0 + 4, 0, 101),   // one-sided: invalid, dropped
        quote(T0 + 5, 99, 101),  // unchanged -> sell
    ];
    let (sa, _) = run(&ev, CandleSource::QuoteMid);
    let c = sa.current(Timeframe::M1).unwrap();
    assert_eq!(c.price_scale, 3);
    assert_eq!(c.qty_scale, 0);
    assert_eq!(
        (c.open, c.high, c.low, c.close),
        (Price(1005), Price(1010), Price(1000), Price(1000))
    );
    assert_eq!(
        (c.volume, c.buy_volume, c.sell_volume),
        (Qty(5), Qty(2), Qty(2))
    );
    assert_eq!((c.ticks, c.buy_ticks, c.sell_ticks), (5, 2, 2));
    assert_eq!(sa.classifier().invalid(), 1);
}

#[test]
fn builder_reports_each_close_once() {
    let mut b = CandleBuilder::new(Timeframe::M5);
    let tick = |ns: u64, p: i64| Tick {
        ns,
        price: Price(p),
        qty: Qty(1),
        side: Aggressor::Buy,
        price_scale: 2,
        qty_scale: 0,
    };
    assert_eq!(b.on_tick(&tick(T0, 1)), None);
    assert_eq!(b.on_tick(&tick(T0 + 4 * MIN, 2)), None);
    let c = b.on_tick(&tick(T0 + 5 * MIN, 3)).unwrap();
    assert_eq!(
        (c.open_time_ns, c.interval_secs, c.ticks, c.close),
        (T0, 300, 2, Price(2))
    );
    assert_eq!(b.counters().closed, 1);
}

#[test]
fn statistics_functions_edge_cases() {
    assert_eq!(autocorrelation_lag1(&[1.0, 2.0]), None);
    assert_eq!(autocorrelation_lag1(&[3.0; 10]), Some(0.0));
    assert_eq!(hurst_rs(&[0.0; 100]), None);
    assert_eq!(hurst_rs(&[0.1, -0.1, 0.2]), None);
    let cfg = MeanReversionConfig::default();
    assert_eq!(mean_reversion_strength(&[1.0; 100], &cfg), None);
    assert_eq!(mean_reversion_strength(&[1.0; 3], &cfg), None);
    // A series that jumps and snaps straight back scores 1; one that jumps and stays scores 0.
    let mut snap: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 2)).collect();
    snap.push(110.0);
    snap.extend((0..6).map(|i| 100.0 + f64::from(i % 2)));
    assert_eq!(mean_reversion_strength(&snap, &cfg), Some(1.0));
    let mut stay: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 2)).collect();
    stay.extend([110.0; 7]);
    assert_eq!(mean_reversion_strength(&stay, &cfg), Some(0.0));
    // Trending random-ish returns: a defined exponent in [0, 1].
    let x: Vec<f64> = (0..99)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 1e-4)
        .collect();
    let h = hurst_rs(&x).unwrap();
    assert!((0.0..=1.0).contains(&h));
}

#[test]
fn corrected_hurst_is_about_half_for_uncorrelated_returns() {
    for n in [8usize, 16, 32, 64] {
        let (a, b) = (expected_rs(n), batch_expected_rs(n));
        assert!((a - b).abs() <= 1e-12 * b, "E[R/S]({n}) {a} vs {b}");
    }
    // Deterministic pseudo-random returns (xorshift, sum of 4 uniforms).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let (mut plain, mut corrected) = (0.0, 0.0);
    let samples = 400;
    for _ in 0..samples {
        let x: Vec<f64> = (0..99).map(|_| next() + next() + next() + next()).collect();
        plain += hurst_rs(&x).unwrap();
        corrected += hurst_rs_corrected(&x).unwrap();
    }
    let (plain, corrected) = (plain / samples as f64, corrected / samples as f64);
    eprintln!(
        "uncorrelated returns, 99 per window: plain R/S {plain:.3}, corrected {corrected:.3}"
    );
    assert!((corrected - 0.5).abs() < 0.05, "corrected {corrected}");
    assert!(
        plain > corrected + 0.03,
        "plain {plain} should carry the small-sample bias"
    );
}
