//! The seed's worked examples for the risk layer, with exactly its numbers, plus the engine's
//! chain, fills, trade log, kill switch and allocation behaviour.

use hotpath::event::{
    Aggressor, Control, ControlKind, ExecEvent, ExecKind, MarketEvent, ReasonCode, Side, Stamps,
};
use hotpath::fixed::{Decimal, Price, Qty};
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::risk::portfolio::{drawdown_level, health_score, HealthConfig};
use hotpath::risk::{
    DrawdownLevel, HealthAction, HealthInputs, MonitorConfig, PositionMonitor, RiskConfig,
    RiskEngine, SizingConfig, SymbolRisk, TradingState,
};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_723_161_600_000_000_000;

/// Dollars at price scale 2.
fn px(d: f64) -> Price {
    Price((d * 100.0).round() as i64)
}

#[test]
fn trailing_stop_walk_of_the_seed() {
    let cfg = MonitorConfig::default();
    let mut m = PositionMonitor::activate(&cfg, Side::Buy, px(50_000.0), T0);
    assert_eq!(m.stop(), px(49_750.0), "0.5% below entry, active at once");
    let none = || [None; 3];
    assert_eq!(m.on_trade(&cfg, px(50_500.0), T0 + 100, none), None);
    assert_eq!(m.stop(), px(50_247.5));
    assert_eq!(m.on_trade(&cfg, px(51_000.0), T0 + 200, none), None);
    assert_eq!(m.stop(), px(50_745.0));
    assert_eq!(m.on_trade(&cfg, px(50_800.0), T0 + 300, none), None);
    assert_eq!(m.stop(), px(50_745.0), "a pull-back does not move the stop");
    let exit = m.on_trade(&cfg, px(50_745.0), T0 + 400, none).unwrap();
    assert_eq!(exit.reason, ReasonCode::EXIT_TRAILING_STOP);
    assert_eq!(exit.price, px(50_745.0));
    assert_eq!(m.profit_bps(exit.price), 149, "+1.49%");

    // Reversal before profit: the initial stop.
    let mut m = PositionMonitor::activate(&cfg, Side::Buy, px(50_000.0), T0);
    let exit = m.on_trade(&cfg, px(49_750.0), T0 + 1, none).unwrap();
    assert_eq!(exit.reason, ReasonCode::EXIT_TRAILING_STOP);
    assert_eq!(m.profit_bps(exit.price), -50);

    // A short mirrors it.
    let mut m = PositionMonitor::activate(&cfg, Side::Sell, px(50_000.0), T0);
    assert_eq!(m.stop(), px(50_250.0));
    assert_eq!(m.on_trade(&cfg, px(49_000.0), T0 + 1, none), None);
    assert_eq!(m.stop(), px(49_245.0));
}

#[test]
fn consecutive_drops_table_of_the_seed() {
    let cfg = MonitorConfig::default();
    let mut m = PositionMonitor::activate(&cfg, Side::Buy, px(50_000.0), T0);
    // (seconds, price, profit bps, threshold, exit?)
    let table = [
        (2, 50_020.0, 4, 5),
        (4, 50_080.0, 16, 5),
        (6, 50_150.0, 30, 3),
        (8, 50_180.0, 36, 3),
        (10, 50_200.0, 40, 3),
        (12, 50_195.0, 39, 3),
        (14, 50_190.0, 38, 3),
    ];
    for (secs, p, bps, thr) in table {
        let r = m.on_trade(&cfg, px(p), T0 + secs * S, || [None; 3]);
        assert_eq!(r, None, "+{secs}s holds");
        assert_eq!(m.profit_bps(px(p)), bps);
        assert_eq!(cfg.threshold(bps), thr);
    }
    assert_eq!(m.adverse_moves(), 2);
    let exit = m
        .on_trade(&cfg, px(50_185.0), T0 + 16 * S, || [None; 3])
        .unwrap();
    assert_eq!(exit.reason, ReasonCode::EXIT_ADVERSE_MOVES);
    assert_eq!((exit.count, exit.threshold), (3, 3));
    assert_eq!(exit.price, px(50_185.0));
    assert_eq!(m.profit_bps(exit.price), 37, "+0.37%");
}

#[test]
fn cascade_reversal_has_priority() {
    let cfg = MonitorConfig::default();
    let mut m = PositionMonitor::activate(&cfg, Side::Buy, px(50_000.0), T0);
    // Still bullish: hold.
    let bull = || [Some(3.2), Some(2.7), Some(1.9)];
    assert_eq!(m.on_trade(&cfg, px(50_100.0), T0 + 2 * S, bull), None);
    // Between checks a reversed cascade is not looked at.
    let bear = || [Some(0.4), Some(0.6), Some(0.9)];
    assert_eq!(m.on_trade(&cfg, px(51_000.0), T0 + 3 * S, bear), None);
    let exit = m.on_trade(&cfg, px(51_800.0), T0 + 4 * S, bear).unwrap();
    assert_eq!(exit.reason, ReasonCode::EXIT_CASCADE_REVERSAL);
    assert_eq!(exit.price, px(51_800.0));
}

#[test]
fn position_sizing_example_of_the_seed() {
    let cfg = SizingConfig {
        risk_per_trade: 0.02,
        stop_frac: 0.005,
        leverage: 5.0,
        ..SizingConfig::default()
    };
    assert_eq!(cfg.risk_notional(10_000.0), 8_000.0);
    // If the stop is hit: 8,000 * 0.005 * 5 = 200 = 2% of the account.
    assert_eq!(8_000.0 * 0.005 * 5.0, 200.0);
    assert_eq!(cfg.capped_notional(10_000.0, f64::INFINITY, false), 8_000.0);
    // 8,000 at 50,000 is 0.16 BTC at qty scale 5, step 0.00001.
    let q = cfg
        .qty_for(8_000.0, px(50_000.0), 2, 5, Qty(1), Qty(1))
        .unwrap();
    assert_eq!(q, Qty(16_000));
    // Leverage is capped at the hard limit.
    let wild = SizingConfig {
        leverage: 50.0,
        ..cfg
    };
    assert_eq!(wild.effective_leverage(), 10.0);
    // Per-market and meme caps.
    assert_eq!(cfg.capped_notional(10_000.0, 3_000.0, false), 3_000.0);
    let meme = SizingConfig {
        meme_cap_frac: 0.1,
        ..cfg
    };
    assert_eq!(meme.capped_notional(10_000.0, f64::INFINITY, true), 5_000.0);
    assert!(cfg
        .qty_for(0.5, px(50_000.0), 2, 5, Qty(1), Qty(100))
        .is_err());
}

#[test]
fn drawdown_levels_of_the_seed() {
    let l = RiskConfig::default().portfolio.drawdown_levels;
    assert_eq!(drawdown_level(&l, 0.019), DrawdownLevel::Normal);
    assert_eq!(drawdown_level(&l, 0.02), DrawdownLevel::Alert);
    assert_eq!(drawdown_level(&l, 0.031), DrawdownLevel::CloseWorstHalf);
    // The seed's example: -4,200 on 100,000 is -4.2%: close everything.
    assert_eq!(
        drawdown_level(&l, 4_200.0 / 100_000.0),
        DrawdownLevel::CloseAll
    );
    assert_eq!(drawdown_level(&l, 0.05), DrawdownLevel::Halt);
    assert_eq!(drawdown_level(&l, -0.03), DrawdownLevel::Normal, "a gain");
}

#[test]
fn health_score_example_of_the_seed() {
    let cfg = HealthConfig::default();
    let x = HealthInputs {
        unrealized_pct: -2.5,
        quality: 0.4,
        correlated: 4,
        avg_hold_min: 18.0,
        meme_over_day: 0,
        volatility_ratio: 2.0,
    };
    let h = health_score(&cfg, &x);
    assert_eq!(h.parts, [15.0, 10.0, 5.0, 12.0, 5.0]);
    assert_eq!(h.total, 47.0);
    assert_eq!(cfg.action(h.total), HealthAction::TightenStops);
    assert_eq!(cfg.action(69.0), HealthAction::StopEntries);
    assert_eq!(cfg.action(29.0), HealthAction::CloseWorstTwo);
    assert_eq!(cfg.action(70.0), HealthAction::None);

    // The action on a monitor: 0.5% -> 0.3%, only ever tighter.
    let mcfg = MonitorConfig::default();
    let mut m = PositionMonitor::activate(&mcfg, Side::Buy, px(50_000.0), T0);
    m.on_trade(&mcfg, px(51_000.0), T0 + 1, || [None; 3]);
    m.tighten(mcfg.tight_trail_ppm);
    assert_eq!(m.stop(), px(50_847.0));
    m.tighten(mcfg.trail_ppm);
    assert_eq!(m.stop(), px(50_847.0), "never loosens");
}

fn spec(name: &[u8]) -> InstrumentSpec {
    let mut s = InstrumentSpec::new(
        Venue::BinanceUsdM,
        Symbol::new(name).unwrap(),
        InstrumentKind::Perp,
        2,
        5,
    );
    s.tick = Price(1);
    s.step = Qty(1);
    s.min_qty = Qty(1);
    s
}

fn table() -> InstrumentTable {
    let mut t = InstrumentTable::with_capacity(4);
    t.intern(spec(b"BTCUSDT")).unwrap();
    t.intern(spec(b"ETHUSDT")).unwrap();
    t
}

fn engine(t: &InstrumentTable, cfg: RiskConfig) -> RiskEngine {
    RiskEngine::new(
        cfg,
        t.iter().map(|(id, s)| (id, s, t.instrument_ref(id))),
        SymbolRisk::for_instrument,
    )
}

fn trade(inst: InstrumentRef, ts: u64, p: Price) -> MarketEvent {
    MarketEvent::trade(inst, Stamps::new(ts, 0), p, Qty(100), Aggressor::Buy, ts)
}

fn fill(inst: InstrumentRef, side: Side, cid: u64, p: Price, q: Qty, ts: u64) -> ExecEvent {
    ExecEvent::new(inst, ExecKind::Fill, side, cid, 1, Stamps::new(ts, 0))
        .with_fill(p, q, q, Qty::ZERO, ts)
        .with_fee(Decimal::new(4, 0), false)
}

/// Opens a long at `price` (time `T0`) and fills it in full at `T0 + 1`.
fn open_long(r: &mut RiskEngine, inst: InstrumentRef, price: f64) {
    r.on_market(&trade(inst, T0, px(price)), |_| [None; 3]);
    assert!(r.on_entry(inst.id, Side::Buy, px(price), T0, 1, Stamps::default()));
    let e = r.outbox().intents()[0];
    r.outbox_mut().clear();
    r.on_exec(&fill(
        inst,
        Side::Buy,
        e.client_order_id,
        px(price),
        e.qty,
        T0 + 1,
    ));
}

#[test]
fn engine_entry_fill_stop_and_trade_log() {
    let t = table();
    let btc = t.instrument_ref(InstrumentId(0));
    let mut r = engine(&t, RiskConfig::default());
    let none = |_| [None; 3];
    r.on_market(&trade(btc, T0, px(50_000.0)), none);
    assert!(r.on_entry(btc.id, Side::Buy, px(50_000.0), T0, 7, Stamps::new(T0, 0)));
    let entry = r.outbox().intents()[0];
    assert_eq!(entry.reason, ReasonCode::ENTRY_LONG);
    assert_eq!(entry.decision_seq, 7);
    assert_eq!(entry.qty, Qty(16_000), "8,000 notional at 50,000");
    r.outbox_mut().clear();
    // A second long while the first is in flight is refused and recorded.
    assert!(!r.on_entry(
        btc.id,
        Side::Buy,
        px(50_000.0),
        T0 + 1,
        8,
        Stamps::new(T0, 0)
    ));
    let rej = r.outbox().rejects()[0];
    assert_eq!(rej.reason, ReasonCode::RISK_REJECT_EXISTING);
    assert_eq!(rej.decision_seq, 8);
    r.outbox_mut().clear();

    r.on_exec(&fill(
        btc,
        Side::Buy,
        entry.client_order_id,
        px(50_000.0),
        entry.qty,
        T0 + S,
    ));
    assert_eq!(r.position_qty(btc.id), 16_000);
    assert_eq!(r.monitor(btc.id).unwrap().stop(), px(49_750.0));
    for (i, p) in [50_500.0, 51_000.0, 50_745.0].into_iter().enumerate() {
        r.on_market(&trade(btc, T0 + S + 100 + i as u64, px(p)), none);
    }
    let exit = r.outbox().intents()[0];
    assert_eq!(exit.reason, ReasonCode::EXIT_TRAILING_STOP);
    assert_eq!(
        (exit.side, exit.qty, exit.reduce_only),
        (Side::Sell, Qty(16_000), true)
    );
    r.outbox_mut().clear();
    r.on_exec(&fill(
        btc,
        Side::Sell,
        exit.client_order_id,
        px(50_745.0),
        exit.qty,
        T0 + 2 * S,
    ));
    let c = r.outbox().closes()[0];
    assert_eq!(c.reason, ReasonCode::EXIT_TRAILING_STOP);
    assert_eq!(
        (c.entry_px, c.exit_px, c.qty, c.side),
        (px(50_000.0), px(50_745.0), Qty(16_000), Side::Buy)
    );
    // 0.16 * 745 = 119.20 gross, fees 4 + 4 = 8, net 111.20 (scale 8).
    assert_eq!(c.gross_pnl, 11_920_000_000);
    assert_eq!(c.fees, 800_000_000);
    assert_eq!(c.net_pnl, 11_120_000_000);
    assert_eq!(r.position_qty(btc.id), 0);
    assert!((r.equity() - 10_111.2).abs() < 1e-9);
}

#[test]
fn halted_lets_exits_through_and_resume_reopens() {
    let t = table();
    let eth = t.instrument_ref(InstrumentId(1));
    let mut r = engine(&t, RiskConfig::default());
    let none = |_| [None; 3];
    open_long(&mut r, eth, 3_000.0);
    let halt = Control::new(
        ControlKind::Halt,
        InstrumentId::NONE,
        0,
        0,
        Stamps::default(),
    );
    r.on_control(&halt);
    assert_eq!(r.state_of(eth.id), TradingState::Halted);
    // Entries refused with the state reason...
    assert!(!r.on_entry(
        eth.id,
        Side::Sell,
        px(3_000.0),
        T0 + 2,
        2,
        Stamps::default()
    ));
    assert_eq!(
        r.outbox().rejects()[0].reason,
        ReasonCode::RISK_REJECT_STATE
    );
    r.outbox_mut().clear();
    // ...exits still go out.
    r.on_market(&trade(eth, T0 + 3, px(2_900.0)), none);
    assert_eq!(
        r.outbox().intents()[0].reason,
        ReasonCode::EXIT_TRAILING_STOP
    );
    r.outbox_mut().clear();
    r.on_control(&Control::new(
        ControlKind::Resume,
        InstrumentId::NONE,
        0,
        0,
        Stamps::default(),
    ));
    assert_eq!(r.state_of(eth.id), TradingState::Active);
}

#[test]
fn the_watchlist_gates_entries_not_exits() {
    let t = table();
    let eth = t.instrument_ref(InstrumentId(1));
    let btc = t.instrument_ref(InstrumentId(0));
    let mut r = engine(&t, RiskConfig::default());
    let none = |_| [None; 3];
    let watch = |kind, id, arg| Control::new(kind, id, arg, 0, Stamps::default());
    open_long(&mut r, eth, 3_000.0);
    // A configured symbol is watched until removed.
    assert_eq!(r.state_of(eth.id), TradingState::Active);

    // Removed: no new entry (REDUCING, journaled with the state reason), the open position
    // still exits on its stop; BTC is not affected.
    r.on_control(&watch(ControlKind::WatchlistRemove, eth.id, 0));
    assert_eq!(r.state_of(eth.id), TradingState::Reducing);
    assert_eq!(r.state_of(btc.id), TradingState::Active);
    assert!(!r.on_entry(
        eth.id,
        Side::Sell,
        px(3_000.0),
        T0 + 2,
        2,
        Stamps::default()
    ));
    let rej = r.outbox().rejects()[0];
    assert_eq!(rej.reason, ReasonCode::RISK_REJECT_STATE);
    assert_eq!(rej.state, TradingState::Reducing.as_u8());
    r.outbox_mut().clear();
    r.on_market(&trade(eth, T0 + 3, px(2_900.0)), none);
    assert_eq!(
        r.outbox().intents()[0].reason,
        ReasonCode::EXIT_TRAILING_STOP
    );
    r.outbox_mut().clear();

    // Added back with an expiry: watched until then, REDUCING from that instant on; a renew
    // moves the expiry.
    let expiry = T0 + 10_000_000_000;
    r.on_control(&watch(ControlKind::WatchlistAdd, eth.id, expiry));
    r.on_market(&trade(eth, expiry - 1, px(2_900.0)), none);
    assert_eq!(r.state_of(eth.id), TradingState::Active);
    r.on_market(&trade(eth, expiry, px(2_900.0)), none);
    assert_eq!(r.state_of(eth.id), TradingState::Reducing);
    r.on_control(&watch(ControlKind::WatchlistRenew, eth.id, expiry * 2));
    assert_eq!(r.state_of(eth.id), TradingState::Active);
}

#[test]
fn drawdown_halt_closes_all_until_midnight() {
    let t = table();
    let btc = t.instrument_ref(InstrumentId(0));
    let mut cfg = RiskConfig::default();
    cfg.monitor.trail_ppm = 200_000; // keep the stop out of the way
    let mut r = engine(&t, cfg);
    let none = |_| [None; 3];
    open_long(&mut r, btc, 50_000.0);
    // 8,000 notional; a 6.5% drop loses 520 = 5.2% of 10,000.
    r.on_market(&trade(btc, T0 + 2, px(46_750.0)), none);
    assert_eq!(r.drawdown_level(), DrawdownLevel::Halt);
    assert_eq!(r.outbox().intents()[0].reason, ReasonCode::RISK_DRAWDOWN);
    assert_eq!(r.state_of(btc.id), TradingState::Halted);
    // The close fills; next UTC day: trading again.
    let x = r.outbox().intents()[0];
    r.outbox_mut().clear();
    r.on_exec(&fill(
        btc,
        Side::Sell,
        x.client_order_id,
        px(46_750.0),
        x.qty,
        T0 + 3,
    ));
    assert_eq!(r.outbox().closes()[0].reason, ReasonCode::RISK_DRAWDOWN);
    let next_day = (T0 / (86_400 * S) + 1) * 86_400 * S;
    r.outbox_mut().clear();
    r.on_market(&trade(btc, next_day + 1, px(46_750.0)), none);
    assert_ne!(r.state_of(btc.id), TradingState::Halted);
}

#[test]
fn engine_allocates_nothing_per_event() {
    let t = table();
    let btc = t.instrument_ref(InstrumentId(0));
    let mut r = engine(&t, RiskConfig::default());
    let none = |_| [None; 3];
    let ((), count) = testkit::count_allocations(|| {
        let mut price = 50_000.0;
        for k in 0..20_000u64 {
            let ts = T0 + k * 200_000_000;
            price += if (k / 50) % 2 == 0 { 3.0 } else { -2.5 };
            r.on_market(&trade(btc, ts, px(price)), none);
            if k % 500 == 0 {
                r.on_entry(btc.id, Side::Buy, px(price), ts, k, Stamps::default());
            }
            let n = r.outbox().n_intents;
            for j in 0..n {
                let i = r.outbox().intents[j];
                let f = fill(btc, i.side, i.client_order_id, px(price), i.qty, ts + 1);
                r.on_exec(&f);
            }
            r.outbox_mut().clear();
        }
    });
    assert!(r.counters().closes > 0, "{:?}", r.counters());
    assert_eq!(count.allocations, 0);
}
