//! [`Outlet`]: an SPSC [`Producer`] that never drops what it is given.
//!
//! Market data may be shed under overload (the next book update supersedes the last), but an
//! order intent or an execution report may not: a lost intent leaves the risk engine waiting
//! for an order the venue never saw, a lost fill leaves it blind to a position the account
//! holds. Blocking until the ring has room is no answer either, because in the fused layout the
//! producer and the consumer are polled by the same thread, and a producer spinning on a full
//! ring would wait forever for a consumer that cannot run.
//!
//! An outlet therefore pushes straight into the ring while it has room and otherwise holds the
//! item in a FIFO backlog, which every poll of the owning stage [`flush`](Outlet::flush)es into
//! the ring ahead of anything new. Order is preserved; the backlog is preallocated, so the
//! common case (ring never full) and the rare one (a short burst) both stay allocation-free,
//! and only a backlog outgrowing its preallocation allocates, which is counted.

use std::collections::VecDeque;

use crate::spsc::Producer;

/// A ring producer with an ordered overflow backlog; see the [module docs](self).
#[derive(Debug)]
pub struct Outlet<T: Copy> {
    ring: Producer<T>,
    backlog: VecDeque<T>,
    held: u64,
    peak: usize,
}

impl<T: Copy> Outlet<T> {
    /// An outlet over `ring` with room for `reserve` held items before its backlog allocates.
    pub fn new(ring: Producer<T>, reserve: usize) -> Self {
        Outlet {
            ring,
            backlog: VecDeque::with_capacity(reserve),
            held: 0,
            peak: 0,
        }
    }

    /// Sends `value`: into the ring if nothing is held before it and the ring has room, else
    /// into the backlog (behind whatever is already held).
    #[inline]
    pub fn send(&mut self, value: T) {
        if !self.backlog.is_empty() {
            self.hold(value);
        } else if let Err(v) = self.ring.try_push(value) {
            self.hold(v);
        }
    }

    #[cold]
    fn hold(&mut self, value: T) {
        self.backlog.push_back(value);
        self.held += 1;
        self.peak = self.peak.max(self.backlog.len());
    }

    /// Moves held items into the ring while it has room, oldest first; returns how many.
    #[inline]
    pub fn flush(&mut self) -> usize {
        let mut moved = 0;
        while let Some(&v) = self.backlog.front() {
            if self.ring.try_push(v).is_err() {
                break;
            }
            self.backlog.pop_front();
            moved += 1;
        }
        moved
    }

    /// Items held now, waiting for room in the ring.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Items that ever had to wait for room (each counted once).
    pub fn held(&self) -> u64 {
        self.held
    }

    /// The longest the backlog has been.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The ring underneath (depth probes, disconnection).
    pub fn ring(&self) -> &Producer<T> {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spsc::channel;

    #[test]
    fn a_full_ring_holds_items_in_order_and_loses_none() {
        let (tx, mut rx) = channel::<u64>(4);
        let mut out = Outlet::new(tx, 2);
        for v in 0..10 {
            out.send(v);
        }
        assert_eq!((out.backlog(), out.held(), out.peak()), (6, 6, 6));
        let mut got = Vec::new();
        while got.len() < 10 {
            while let Some(v) = rx.try_pop() {
                got.push(v);
            }
            out.flush();
            // New items queue behind the held ones, never ahead of them.
            if got.len() == 4 {
                out.send(10);
            }
        }
        while let Some(v) = rx.try_pop() {
            got.push(v);
        }
        out.flush();
        while let Some(v) = rx.try_pop() {
            got.push(v);
        }
        assert_eq!(got, (0..=10).collect::<Vec<_>>());
        assert_eq!(out.backlog(), 0);
    }

    #[test]
    fn an_outlet_across_threads_delivers_every_item_once_in_order() {
        let (tx, mut rx) = channel::<u64>(8);
        const N: u64 = 200_000;
        let producer = std::thread::spawn(move || {
            let mut out = Outlet::new(tx, 64);
            for v in 0..N {
                out.send(v);
                if v % 3 == 0 {
                    out.flush();
                }
            }
            while out.backlog() > 0 {
                out.flush();
                std::hint::spin_loop();
            }
            out.held()
        });
        let mut next = 0;
        while next < N {
            if let Some(v) = rx.try_pop() {
                assert_eq!(v, next);
                next += 1;
            }
        }
        let held = producer.join().unwrap();
        assert!(held <= N);
    }
}
