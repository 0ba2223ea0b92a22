//! Property tests of the risk layer: a stop never loosens; exposure (open positions, those
//! being closed included, plus entries in flight) never exceeds its limit whatever the sequence
//! of signals, trades, fills, partial fills and rejections; HALTED never opens a position.

use hotpath::event::{
    Aggressor, Control, ControlKind, ExecEvent, ExecKind, MarketEvent, OrderIntent, Side, Stamps,
};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::risk::{MonitorConfig, PositionMonitor, RiskConfig, RiskEngine, SymbolRisk};
use proptest::prelude::*;

const T0: u64 = 1_723_161_600_000_000_000;

fn table(n: usize) -> InstrumentTable {
    let mut t = InstrumentTable::with_capacity(n);
    for i in 0..n {
        let name = format!("S{i:02}USDT");
        let mut s = InstrumentSpec::new(
            Venue::BinanceUsdM,
            Symbol::new(name.as_bytes()).unwrap(),
            InstrumentKind::Perp,
            2,
            5,
        );
        s.step = Qty(1);
        s.min_qty = Qty(1);
        t.intern(s).unwrap();
    }
    t
}

fn engine(t: &InstrumentTable, cfg: RiskConfig) -> RiskEngine {
    RiskEngine::new(
        cfg,
        t.iter().map(|(id, s)| (id, s, t.instrument_ref(id))),
        SymbolRisk::for_instrument,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn a_stop_never_loosens(
        long in any::<bool>(),
        moves in prop::collection::vec((-300i64..300, 0u64..3_000_000_000, any::<bool>()), 1..200),
    ) {
        let cfg = MonitorConfig::default();
        let side = if long { Side::Buy } else { Side::Sell };
        let mut m = PositionMonitor::activate(&cfg, side, Price(5_000_000), T0);
        let mut p = 5_000_000i64;
        let mut ts = T0;
        let mut prev = m.stop();
        for (dp, dt, tighten) in moves {
            p = (p + dp).max(1);
            ts += dt;
            let _ = m.on_trade(&cfg, Price(p), ts, || [Some(1.0), Some(1.0), Some(1.0)]);
            if tighten {
                m.tighten(cfg.tight_trail_ppm);
            }
            if long {
                prop_assert!(m.stop() >= prev);
            } else {
                prop_assert!(m.stop() <= prev);
            }
            prev = m.stop();
        }
    }

    #[test]
    fn exposure_never_exceeds_its_limit(
        ops in prop::collection::vec(
            (0u8..10, 0usize..3, any::<bool>(), 1_000i64..9_000_000, any::<u16>(), 1u8..=4),
            1..400,
        ),
        max_exposure in 1_000.0f64..40_000.0,
    ) {
        // The venue answers the orders the engine sends in any order and at any price: fills,
        // partial fills (a quarter to all of what is left), rejections, expiries; nothing times
        // out (an order's answer always comes). Signals, trades (which trigger exits) and
        // answers interleave arbitrarily.
        let t = table(3);
        let mut cfg = RiskConfig::default();
        cfg.chain.max_exposure = max_exposure;
        cfg.chain.price_band_frac = 10.0;
        cfg.chain.max_entries_per_window = 1_000;
        cfg.pending_timeout_ns = u64::MAX;
        let mut r = engine(&t, cfg);
        let mut ts = T0;
        // (intent, quantity filled so far)
        let mut open: Vec<(OrderIntent, i64)> = Vec::new();
        let limit = max_exposure * (1.0 + 1e-12);
        for (op, sym, long, price, pick, quarters) in ops {
            ts += 250_000_000;
            let inst = t.instrument_ref(InstrumentId(sym as u32));
            let p = Price(price);
            match op {
                0 | 1 => {
                    let e = MarketEvent::trade(inst, Stamps::new(ts, 0), p, Qty(1), Aggressor::Buy, 1);
                    r.on_market(&e, |_| [None; 3]);
                }
                2..=4 => {
                    let side = if long { Side::Buy } else { Side::Sell };
                    r.on_entry(inst.id, side, p, ts, 0, Stamps::default());
                }
                _ if open.is_empty() => {}
                _ => {
                    let k = usize::from(pick) % open.len();
                    let (i, filled) = open[k];
                    let oinst = t.instrument_ref(i.instrument);
                    let left = i.qty.0 - filled;
                    let x = if op == 9 {
                        let kind = if long { ExecKind::Rejected } else { ExecKind::Expired };
                        open.swap_remove(k);
                        ExecEvent::new(oinst, kind, i.side, i.client_order_id, 1, Stamps::new(ts, 0))
                    } else {
                        let q = (left * i64::from(quarters) / 4).max(1);
                        let kind = if q == left { ExecKind::Fill } else { ExecKind::PartialFill };
                        if q == left {
                            open.swap_remove(k);
                        } else {
                            open[k].1 += q;
                        }
                        ExecEvent::new(oinst, kind, i.side, i.client_order_id, 1, Stamps::new(ts, 0))
                            .with_fill(p, Qty(q), Qty(filled + q), Qty(left - q), 1)
                    };
                    r.on_exec(&x);
                }
            }
            prop_assert!(r.exposure() <= limit, "{} > {}", r.exposure(), max_exposure);
            prop_assert!(r.exposure() >= -1e-6, "{}", r.exposure());
            open.extend(r.outbox().intents().iter().map(|i| (*i, 0)));
            r.outbox_mut().clear();
        }
    }

    #[test]
    fn halted_never_opens_a_position(
        ops in prop::collection::vec((0usize..4, any::<bool>(), 0u8..3, 100_000i64..200_000), 1..200),
        account_wide in any::<bool>(),
    ) {
        let t = table(4);
        let mut r = engine(&t, RiskConfig::default());
        let target = if account_wide { InstrumentId::NONE } else { InstrumentId(0) };
        r.on_control(&Control::new(ControlKind::Halt, target, 0, 0, Stamps::default()));
        let mut ts = T0;
        for (sym, long, op, price) in ops {
            ts += 1_000_000_000;
            let inst = t.instrument_ref(InstrumentId(sym as u32));
            if op == 0 {
                let e = MarketEvent::trade(inst, Stamps::new(ts, 0), Price(price), Qty(1), Aggressor::Buy, 1);
                r.on_market(&e, |_| [None; 3]);
            } else {
                let side = if long { Side::Buy } else { Side::Sell };
                let sent = r.on_entry(inst.id, side, Price(price), ts, 0, Stamps::default());
                if account_wide || sym == 0 {
                    prop_assert!(!sent);
                    prop_assert_eq!(r.outbox().n_intents, 0);
                }
            }
            r.outbox_mut().clear();
            if account_wide {
                prop_assert_eq!(r.open_positions(), 0);
            } else {
                prop_assert_eq!(r.position_qty(InstrumentId(0)), 0);
            }
        }
    }
}
