//! Wire stamps: when the simulator wrote each market-data frame and read each order.
//!
//! Why: the wire-to-wire benchmark measures from "the venue put the trade on the socket" to
//! "the venue read the order it caused". Both ends are stamped here with
//! [`quanta::Clock::raw`], the same TSC the engine reads in the same process, so the two logs
//! join with the engine's own stamps without clock conversion. Frame stamps carry the tape
//! index and the trade id `t` (0 when the frame is not a trade); order stamps carry the
//! `newClientOrderId`, which the engine derives from the decision that caused the order.
//!
//! Recording is allocation-free: both logs are preallocated to a capacity and stamps beyond it
//! are counted as dropped rather than grown into.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One market-data frame written to one client's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameStamp {
    /// `Clock::raw()` right after the write returned.
    pub tsc: u64,
    /// Index of the frame in the tape.
    pub tape_index: u32,
    /// The trade id `t`, 0 if the frame is not a trade.
    pub trade_id: u64,
    /// Which market-data connection (in accept order).
    pub client: u32,
}

/// One order request read from a REST connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderStamp {
    /// `Clock::raw()` right after the whole request was read.
    pub tsc: u64,
    id: [u8; 36],
    len: u8,
}

impl OrderStamp {
    /// The request's `newClientOrderId` (empty when it had none).
    pub fn client_order_id(&self) -> &str {
        std::str::from_utf8(&self.id[..usize::from(self.len)]).unwrap_or("")
    }
}

/// A copy of both logs.
#[derive(Clone, Debug, Default)]
pub struct WireStamps {
    /// Frame writes, in write order.
    pub frames: Vec<FrameStamp>,
    /// Order reads, in read order.
    pub orders: Vec<OrderStamp>,
    /// Stamps lost because a log was full.
    pub dropped: u64,
}

/// The recorder shared by the WebSocket writer and the REST connections.
pub(crate) struct WireLog {
    clock: quanta::Clock,
    frames: Mutex<Vec<FrameStamp>>,
    orders: Mutex<Vec<OrderStamp>>,
    dropped: AtomicU64,
}

impl WireLog {
    /// Logs with room for `frames` and `orders` stamps.
    pub fn new(frames: usize, orders: usize) -> WireLog {
        WireLog {
            clock: quanta::Clock::new(),
            frames: Mutex::new(Vec::with_capacity(frames)),
            orders: Mutex::new(Vec::with_capacity(orders)),
            dropped: AtomicU64::new(0),
        }
    }

    /// The TSC now.
    pub fn now(&self) -> u64 {
        self.clock.raw()
    }

    fn push<T>(&self, log: &Mutex<Vec<T>>, v: T) {
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() < l.capacity() {
            l.push(v);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Record a frame write.
    pub fn frame(&self, tsc: u64, tape_index: usize, trade_id: u64, client: u32) {
        self.push(
            &self.frames,
            FrameStamp {
                tsc,
                tape_index: tape_index as u32,
                trade_id,
                client,
            },
        );
    }

    /// Record an order read.
    pub fn order(&self, tsc: u64, client_order_id: &[u8]) {
        let mut id = [0u8; 36];
        let len = client_order_id.len().min(36);
        id[..len].copy_from_slice(&client_order_id[..len]);
        self.push(
            &self.orders,
            OrderStamp {
                tsc,
                id,
                len: len as u8,
            },
        );
    }

    /// Copy both logs out.
    pub fn snapshot(&self) -> WireStamps {
        WireStamps {
            frames: self
                .frames
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            orders: self
                .orders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}
