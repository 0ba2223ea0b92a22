//! Order, position, P&L, drawdown, connection and unknown-kind metrics from a journal written
//! with the engine's own codec: intents, execution reports (acks, fills with fees, a venue
//! rejection), trades that move the mark, connection loss/restore records, a feed error, and a
//! record of a kind this build does not know (as journals written by newer stages will hold).

use std::collections::BTreeMap;
use std::time::Instant;

use coldpath::metrics::{Exposition, JournalMetrics};
use hotpath::codec::{self, RecordKind};
use hotpath::event::{
    Aggressor, ExecEvent, ExecKind, MarketEvent, OrderIntent, OrderType, Side, Stage, Stamps,
    TimeInForce,
};
use hotpath::fixed::{Decimal, Price, Qty};
use hotpath::instrument::{InstrumentId, InstrumentRef};
use ringbuffers::journal::Appender;

const INST: InstrumentRef = InstrumentRef {
    id: InstrumentId(3),
    price_scale: 2,
    qty_scale: 3,
};

fn fill(kind: ExecKind, side: Side, cid: u64, px: i64, qty: i64, fee_cents: i64) -> ExecEvent {
    ExecEvent::new(INST, kind, side, cid, cid + 1000, Stamps::new(0, 0))
        .with_fill(Price(px), Qty(qty), Qty(qty), Qty(0), cid)
        .with_fee(Decimal::new(fee_cents, 2), false)
}

fn trade(px: i64) -> MarketEvent {
    MarketEvent::trade(
        INST,
        Stamps::new(0, 0),
        Price(px),
        Qty(1),
        Aggressor::Buy,
        1,
    )
}

fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn orders_positions_pnl_and_drawdown_from_execution_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), codec::journal_config()).unwrap();

    // An intent stamped through the gateway: 2 us strategy-out -> send, 5 us receive -> send
    // (TSC ticks; the conversion factor is checked against quanta below).
    let mut stamps = Stamps::new(0, 1_000_000);
    stamps.stamp(Stage::Decoded, 1_001_000);
    stamps.stamp(Stage::StrategyOut, 1_003_000);
    stamps.stamp(Stage::GatewaySend, 1_005_000);
    let intent = OrderIntent::new_order(
        INST,
        Side::Buy,
        OrderType::Limit,
        TimeInForce::Gtc,
        Price(10_000),
        Qty(2_000),
        1,
    )
    .with_stamps(stamps);
    codec::append(&mut app, &intent, 0, 1).unwrap();
    codec::append(&mut app, &trade(10_000), 0, 1).unwrap();
    // Buy 2 @ 100.00 (fee 0.10), buy 1 @ 106.00 in a second order: long 3 @ 102.
    codec::append(
        &mut app,
        &ExecEvent::new(INST, ExecKind::Ack, Side::Buy, 1, 1001, Stamps::new(0, 0)),
        0,
        2,
    )
    .unwrap();
    codec::append(
        &mut app,
        &fill(ExecKind::Fill, Side::Buy, 1, 10_000, 2_000, 10),
        0,
        3,
    )
    .unwrap();
    codec::append(
        &mut app,
        &ExecEvent::new(INST, ExecKind::Ack, Side::Buy, 2, 1002, Stamps::new(0, 0)),
        0,
        4,
    )
    .unwrap();
    codec::append(
        &mut app,
        &fill(ExecKind::PartialFill, Side::Buy, 2, 10_600, 1_000, 0),
        0,
        5,
    )
    .unwrap();
    // The mark rises to 110 (peak P&L 3 * 8 - 0.10 = 23.90), then falls to 96: P&L -18.10.
    codec::append(&mut app, &trade(11_000), 0, 6).unwrap();
    codec::append(&mut app, &trade(9_600), 0, 7).unwrap();
    // Sell 1 @ 96.00 (order 3): realised (96 - 102) * 1 = -6.
    codec::append(
        &mut app,
        &fill(ExecKind::Fill, Side::Sell, 3, 9_600, 1_000, 0),
        0,
        8,
    )
    .unwrap();
    let rejected = ExecEvent::new(
        INST,
        ExecKind::Rejected,
        Side::Sell,
        4,
        0,
        Stamps::new(0, 0),
    )
    .with_venue_error(-2010);
    codec::append(&mut app, &rejected, 0, 9).unwrap();
    codec::append_bytes(
        &mut app,
        RecordKind::Gap,
        0,
        10,
        b"market_data_connection_lost venue=binance_spot reason=silent",
    )
    .unwrap();
    codec::append_bytes(
        &mut app,
        RecordKind::Gap,
        0,
        11,
        b"market_data_connection_restored venue=binance_spot",
    )
    .unwrap();
    codec::append_bytes(
        &mut app,
        RecordKind::Gap,
        0,
        12,
        b"market_data_connection_lost venue=binance_spot reason=eof",
    )
    .unwrap();
    codec::append_bytes(
        &mut app,
        RecordKind::FeedError,
        0,
        13,
        b"feed_error reason=json\n{",
    )
    .unwrap();
    app.append(4242, 0, 14, b"a record kind from a newer build")
        .unwrap();
    // A Market record whose payload is not a valid event.
    app.append(RecordKind::Market.as_u16(), 0, 15, &[0u8; 144])
        .unwrap();
    app.flush().unwrap();

    let mut m = JournalMetrics::new(Some(1_000.0));
    m.set_symbol(3, "ETHUSDT");
    let mut t = codec::open_tailer(dir.path()).unwrap();
    while let Some(rec) = t.next().unwrap() {
        m.observe("gateway", &rec);
    }
    let mut page = Exposition::new();
    m.render(&mut page, Instant::now());
    let page = page.finish();
    let s = samples(&page);
    let v = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in\n{page}"))
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;

    assert_eq!(v(r#"algo_position{symbol="ETHUSDT"}"#), 2.0);
    assert!(close(
        v(r#"algo_pnl_realized{symbol="ETHUSDT"}"#),
        -6.0 - 0.10
    ));
    // Long 2 @ 102 marked at 96.
    assert!(close(v(r#"algo_pnl_unrealized{symbol="ETHUSDT"}"#), -12.0));
    assert!(close(v("algo_equity_pnl"), -18.10));
    assert!(close(v("algo_drawdown"), 23.90 + 18.10));
    assert!(close(v("algo_drawdown_ratio"), 42.0 / 1_000.0));

    assert_eq!(
        v(r#"algo_orders{state="open"}"#),
        1.0,
        "order 2 is partly filled"
    );
    assert_eq!(v(r#"algo_orders{state="fill"}"#), 2.0);
    assert_eq!(v(r#"algo_orders{state="rejected"}"#), 1.0);
    assert_eq!(v(r#"algo_order_updates_total{state="ack"}"#), 2.0);
    assert_eq!(v(r#"algo_order_updates_total{state="partial_fill"}"#), 1.0);
    assert_eq!(v(r#"algo_order_rejects_total{reason="venue_-2010"}"#), 1.0);
    assert_eq!(
        v(r#"algo_intents_total{symbol="ETHUSDT",kind="new",reason="none"}"#),
        1.0
    );

    assert_eq!(v("algo_feed_disconnects_total"), 2.0);
    assert_eq!(v("algo_feed_reconnects_total"), 1.0);
    assert_eq!(v("algo_feed_connected"), 0.0);
    assert_eq!(
        v(r#"algo_events_total{stage="gateway",kind="kind#4242"}"#),
        1.0
    );
    assert_eq!(
        v(r#"algo_errors_total{stage="gateway",kind="feed_error"}"#),
        1.0
    );
    assert_eq!(
        v(r#"algo_errors_total{stage="gateway",kind="invalid_record"}"#),
        1.0
    );
    assert_eq!(
        v(r#"algo_events_total{stage="gateway",kind="market"}"#),
        4.0
    );
    // Health: no proven book (0), connection lost (0), journal intact (1).
    assert!(close(v("algo_health_score"), 100.0 / 3.0));

    let clock = quanta::Clock::new();
    let ns = |ticks| clock.delta_as_nanos(0, ticks) as f64 / 1e9;
    assert_eq!(
        v(r#"algo_stage_latency_seconds_count{stage="gateway"}"#),
        1.0
    );
    assert!(close(
        v(r#"algo_stage_latency_seconds_sum{stage="gateway"}"#),
        ns(2_000)
    ));
    assert!(close(
        v(r#"algo_stage_latency_seconds_sum{stage="tick_to_trade"}"#),
        ns(5_000)
    ));
    assert_eq!(
        v(r#"algo_stage_latency_seconds_count{stage="decode"}"#),
        0.0
    );
}
