//! The per-order state machine of the gateway and its journal record.
//!
//! Every order the gateway handles lives in a slot of a preallocated [`OrderTable`], keyed by
//! the intent's `u64` client order id (open addressing, linear probing, backward-shift
//! deletion: no tombstones, no allocation after construction). Its state moves
//! `New -> Submitted -> Acked -> PartiallyFilled -> Filled | Canceled | Rejected | Expired`;
//! a transition that would move backwards (a late `NEW` after a fill, a REST response after the
//! user stream already said more) is ignored, so the REST and user-stream paths can report the
//! same facts in any order. Fills are deduplicated by cumulative quantity: a fill is applied
//! only if it raises the order's cumulative quantity.
//!
//! Each transition, and each alert (overfill, unknown order, timeout, rate limit, clock
//! re-sync), is journaled as an [`OrderUpdate`] record ([`RecordKind::OrderUpdate`]).
//!
//! Closed orders are kept for late reports (a stream fill after the REST response) in a FIFO
//! of bounded length; when the table needs room the oldest closed order is forgotten.

use rkyv::{Archive, Deserialize, Serialize};

use crate::codec::{Journaled, RecordKind};
use crate::event::{OrderIntent, Reserved3};
use crate::fixed::Qty;
use crate::instrument::InstrumentId;

macro_rules! gw_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $v:ident = $d:literal => $t:literal ),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize)]
        #[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash), compare(PartialEq))]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vm])* $v = $d, )+
        }
        impl $name {
            /// Stable lowercase name.
            pub const fn name(self) -> &'static str {
                match self { $( $name::$v => $t, )+ }
            }
        }
    };
}

gw_enum! {
    /// Where an order is in its life.
    OrderState {
        /// Not an order of ours (alerts about unknown ids).
        Unknown = 0 => "unknown",
        /// Intent received, not yet sent.
        New = 1 => "new",
        /// Request written to the venue, no answer yet.
        Submitted = 2 => "submitted",
        /// The venue accepted it.
        Acked = 3 => "acked",
        /// Partly filled.
        PartiallyFilled = 4 => "partially_filled",
        /// Completely filled (terminal).
        Filled = 5 => "filled",
        /// Canceled (terminal).
        Canceled = 6 => "canceled",
        /// Rejected by the venue or locally (terminal).
        Rejected = 7 => "rejected",
        /// Expired (terminal).
        Expired = 8 => "expired",
    }
}

impl OrderState {
    /// True for the states an order never leaves.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired
        )
    }

    /// Position in the life cycle; transitions only go up.
    const fn rank(self) -> u8 {
        match self {
            OrderState::Unknown => 0,
            OrderState::New => 1,
            OrderState::Submitted => 2,
            OrderState::Acked => 3,
            OrderState::PartiallyFilled => 4,
            _ => 5,
        }
    }
}

gw_enum! {
    /// What caused an [`OrderUpdate`].
    UpdateCause {
        /// The strategy's intent.
        Intent = 1 => "intent",
        /// A REST order response (new or cancel).
        RestResponse = 2 => "rest_response",
        /// A user-data-stream execution report.
        UserStream = 3 => "user_stream",
        /// A `GET order` response resolving an unknown outcome.
        Query = 4 => "query",
        /// A request timed out or its connection broke.
        Timeout = 5 => "timeout",
        /// The gateway refused the intent itself.
        Local = 6 => "local",
        /// The order was sent again (same client order id).
        Resend = 7 => "resend",
    }
}

gw_enum! {
    /// Anomalies, counted and journaled.
    OrderAlert {
        /// Nothing unusual.
        None = 0 => "none",
        /// Cumulative fill above the order quantity.
        Overfill = 1 => "overfill",
        /// A report for a client order id the gateway does not know.
        UnknownOrder = 2 => "unknown_order",
        /// HTTP 429/418: the gateway stops sending until `Retry-After`.
        RateLimited = 3 => "rate_limited",
        /// `-1021`: the clock is re-synchronised and the order sent once more.
        ClockResync = 4 => "clock_resync",
        /// No answer in time: the state is resolved by a query.
        Timeout = 5 => "timeout",
        /// A response or report that could not be decoded.
        Malformed = 6 => "malformed",
        /// A cancel the venue refused (order unknown or already closed).
        CancelRejected = 7 => "cancel_rejected",
        /// A second intent with the client order id of an order still open.
        DuplicateIntent = 8 => "duplicate_intent",
    }
}

/// One order-state transition or alert, as journaled (56 bytes, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct OrderUpdate {
    /// The intent's client order id (0, 8).
    pub client_order_id: u64,
    /// The venue's order id, 0 until known (8, 8).
    pub venue_order_id: u64,
    /// Cumulative filled quantity after the update (16, 8).
    pub cum_qty: Qty,
    /// The order's quantity (24, 8).
    pub orig_qty: Qty,
    /// Wall-clock time of the update, ns since the epoch (32, 8).
    pub time_ns: u64,
    /// Venue (or local) error code, 0 if none (40, 4).
    pub venue_error: i32,
    /// Instrument (44, 4).
    pub instrument: InstrumentId,
    /// State before (48, 1).
    pub from: OrderState,
    /// State after; equal to `from` for alerts and fills within a state (49, 1).
    pub to: OrderState,
    /// Cause (50, 1).
    pub cause: UpdateCause,
    /// Alert, if any (51, 1).
    pub alert: OrderAlert,
    /// Scale of the quantities (52, 1).
    pub qty_scale: u8,
    /// Zero (53, 3).
    pub reserved: Reserved3,
}

impl Journaled for OrderUpdate {
    const KIND: RecordKind = RecordKind::OrderUpdate;
}

/// The gateway's view of one order.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    /// The intent that created it (kept for resends).
    pub intent: OrderIntent,
    /// Current state.
    pub state: OrderState,
    /// Venue order id, 0 until known.
    pub venue_order_id: u64,
    /// Cumulative filled quantity.
    pub cum_qty: Qty,
    /// Resends so far (timeouts resolved as "never arrived").
    pub resends: u8,
    /// Whether the one resend allowed after `-1021` was used.
    pub resynced: bool,
    /// Queries sent to resolve an unknown outcome, in a row.
    pub queries: u8,
}

const EMPTY: u32 = u32::MAX;

/// Preallocated orders keyed by client order id (see the module docs).
#[derive(Debug)]
pub struct OrderTable {
    orders: Box<[Option<Order>]>,
    /// Slot indices of free order slots.
    free: Vec<u32>,
    /// Hash index: order slot per bucket, `EMPTY` if none.
    index: Box<[u32]>,
    mask: usize,
    /// Closed orders, oldest first (a ring over `closed_buf`).
    closed_buf: Box<[u32]>,
    closed_head: usize,
    closed_len: usize,
}

#[inline]
fn bucket_of(cid: u64, mask: usize) -> usize {
    // Client ids are hashes already, but a test may use 1, 2, 3: mix anyway.
    let h = cid.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 32) as usize & mask
}

impl OrderTable {
    /// A table for `capacity` orders (open plus recently closed).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        let buckets = (capacity * 2).next_power_of_two();
        OrderTable {
            orders: vec![None; capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            index: vec![EMPTY; buckets].into_boxed_slice(),
            mask: buckets - 1,
            closed_buf: vec![0; capacity].into_boxed_slice(),
            closed_head: 0,
            closed_len: 0,
        }
    }

    /// Slot of order `cid`.
    #[inline]
    pub fn find(&self, cid: u64) -> Option<u32> {
        let mut b = bucket_of(cid, self.mask);
        loop {
            let s = self.index[b];
            if s == EMPTY {
                return None;
            }
            if self.orders[s as usize].is_some_and(|o| o.intent.client_order_id == cid) {
                return Some(s);
            }
            b = (b + 1) & self.mask;
        }
    }

    /// The order in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> Option<&Order> {
        self.orders.get(slot as usize).and_then(Option::as_ref)
    }

    /// The order in `slot`, mutably.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Order> {
        self.orders.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Inserts a new order for `intent` in state `New`; `None` if every slot holds an open
    /// order. Forgets the oldest closed order when needed.
    pub fn insert(&mut self, intent: OrderIntent) -> Option<u32> {
        if self.free.is_empty() && self.closed_len > 0 {
            let old = self.closed_buf[self.closed_head];
            self.closed_head = (self.closed_head + 1) % self.closed_buf.len();
            self.closed_len -= 1;
            self.remove(old);
        }
        let slot = self.free.pop()?;
        self.orders[slot as usize] = Some(Order {
            intent,
            state: OrderState::New,
            venue_order_id: 0,
            cum_qty: Qty(0),
            resends: 0,
            resynced: false,
            queries: 0,
        });
        let mut b = bucket_of(intent.client_order_id, self.mask);
        while self.index[b] != EMPTY {
            b = (b + 1) & self.mask;
        }
        self.index[b] = slot;
        Some(slot)
    }

    /// Records that the order in `slot` reached a terminal state (it stays findable until the
    /// table needs its slot).
    pub fn closed(&mut self, slot: u32) {
        let n = self.closed_buf.len();
        if self.closed_len == n {
            return;
        }
        self.closed_buf[(self.closed_head + self.closed_len) % n] = slot;
        self.closed_len += 1;
    }

    fn remove(&mut self, slot: u32) {
        let Some(o) = self.orders[slot as usize].take() else {
            return;
        };
        let mut b = bucket_of(o.intent.client_order_id, self.mask);
        while self.index[b] != slot {
            if self.index[b] == EMPTY {
                return;
            }
            b = (b + 1) & self.mask;
        }
        // Backward-shift deletion keeps every probe chain unbroken without tombstones.
        let mut hole = b;
        let mut j = (b + 1) & self.mask;
        loop {
            let s = self.index[j];
            if s == EMPTY {
                break;
            }
            let Some(other) = self.orders[s as usize] else {
                break;
            };
            let home = bucket_of(other.intent.client_order_id, self.mask);
            // Move `s` into the hole if its home is not in (hole, j] (cyclically).
            let in_between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_between {
                self.index[hole] = s;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
        self.free.push(slot);
    }

    /// Whether moving from `from` to `to` is a forward transition.
    #[inline]
    pub fn advances(from: OrderState, to: OrderState) -> bool {
        !from.is_terminal() && to.rank() > from.rank()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{OrderType, Side, TimeInForce};
    use crate::fixed::Price;
    use crate::instrument::InstrumentRef;

    fn intent(cid: u64) -> OrderIntent {
        OrderIntent::new_order(
            InstrumentRef {
                id: InstrumentId(0),
                price_scale: 2,
                qty_scale: 5,
            },
            Side::Buy,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price(1),
            Qty(1),
            cid,
        )
    }

    #[test]
    fn table_inserts_finds_and_recycles_closed_orders() {
        let mut t = OrderTable::new(8);
        for cid in 1..=8u64 {
            let s = t.insert(intent(cid)).unwrap();
            assert_eq!(t.find(cid), Some(s));
        }
        // Full of open orders: refused.
        assert!(t.insert(intent(100)).is_none());
        // Close two: the oldest closed is forgotten when room is needed.
        let s3 = t.find(3).unwrap();
        let s5 = t.find(5).unwrap();
        t.closed(s3);
        t.closed(s5);
        assert!(t.insert(intent(100)).is_some());
        assert_eq!(t.find(3), None);
        assert!(t.find(5).is_some());
        for cid in [1, 2, 4, 6, 7, 8, 100] {
            assert!(t.find(cid).is_some(), "{cid}");
        }
        // Many close/insert cycles through a small table keep every live key findable.
        let mut live: Vec<u64> = vec![1, 2, 4, 6, 7, 8, 100];
        for round in 0..5000u64 {
            let victim = live.remove((round as usize * 7) % live.len());
            let s = t.find(victim).unwrap();
            t.closed(s);
            let cid = 1_000 + round * 0x1_0000_0001;
            t.insert(intent(cid)).unwrap();
            live.push(cid);
            for &c in &live {
                assert!(t.find(c).is_some(), "round {round}: {c}");
            }
        }
        assert!(OrderTable::advances(
            OrderState::Submitted,
            OrderState::Acked
        ));
        assert!(!OrderTable::advances(
            OrderState::PartiallyFilled,
            OrderState::Acked
        ));
        assert!(!OrderTable::advances(
            OrderState::Filled,
            OrderState::Canceled
        ));
    }
}
