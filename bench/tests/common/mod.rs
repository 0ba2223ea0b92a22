//! Helpers shared by the bench crate's tests: the gateway checks run over REST
//! (`gateway_rest.rs`) and over the WebSocket API (`gateway_ws_api.rs`), whichever transport
//! carries the orders, and a plain WebSocket client for the simulator's tests ([`ws_client`]).

#![allow(dead_code)] // each test binary uses its own subset

pub mod ws_client;

use std::time::{Duration, Instant};

use hotpath::event::{ExecEvent, ExecKind, OrderIntent, OrderType, Side, TimeInForce};
use hotpath::fixed::{Price, Qty};
use hotpath::gateway::GatewayStage;
use hotpath::instrument::InstrumentRef;
use hotpath::runtime::Stage;
use ringbuffers::spsc::{Consumer, Producer};

/// Places 20 resting limit buys and cancels each (warm-up), then 200 more place/cancel
/// cycles under the counting allocator, and asserts the gateway allocated and freed nothing
/// in those. Each cycle waits for the order's Ack, sends the cancel, waits for Canceled.
pub fn assert_place_cancel_allocates_nothing(
    tx: &mut Producer<OrderIntent>,
    rx: &mut Consumer<ExecEvent>,
    gw: &mut GatewayStage,
    inst: InstrumentRef,
    timeout: Duration,
) {
    let mut cycle = |cid: u64| {
        let i = OrderIntent::new_order(
            inst,
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price(1_000_000),
            Qty(100),
            cid,
        );
        tx.try_push(i).unwrap();
        let mut want = ExecKind::Ack;
        let deadline = Instant::now() + timeout;
        loop {
            gw.poll();
            if let Some(e) = rx.try_pop() {
                assert_eq!(e.client_order_id, cid);
                assert_eq!(e.kind, want, "{e:?}");
                if want == ExecKind::Canceled {
                    return;
                }
                tx.try_push(OrderIntent::cancel(inst, Side::Buy, cid))
                    .unwrap();
                want = ExecKind::Canceled;
            }
            assert!(Instant::now() < deadline);
        }
    };
    for cid in 1..=20 {
        cycle(cid);
    }
    let ((), count) = testkit::count_allocations(|| {
        for cid in 1_000..1_200 {
            cycle(cid);
        }
    });
    assert_eq!(
        count.allocations, 0,
        "allocations in steady state: {count:?}"
    );
    assert_eq!(count.deallocations, 0, "{count:?}");
}
