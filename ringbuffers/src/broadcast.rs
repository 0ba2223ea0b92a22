//! Single-producer, multi-consumer broadcast: every subscriber sees every event, in order.
//!
//! Used where one hot stage feeds several independent readers, e.g. the feed's decoded events
//! going to the strategy *and* to a metrics tap. Built on the [`disruptor`] crate (the LMAX
//! design): one pre-allocated ring of events, one producer cursor, one cursor per subscriber. The
//! producer may only reuse a slot once the *slowest* subscriber has moved past it, so no event is
//! copied per subscriber and no subscriber can miss one.
//!
//! This module is deliberately thin. It fixes the choices the engine makes and hides the
//! disruptor's type-state builder:
//!
//! - one producer ([`disruptor::build_single_producer`]): publishing is a plain `Release` store
//!   of the cursor, no CAS;
//! - subscribers are disruptor *event pollers*, not disruptor-managed threads: each subscriber is
//!   polled by a stage on a thread the engine pins and schedules itself (the [`crate::wait`]
//!   strategies decide what that thread does when idle), instead of the disruptor spawning and
//!   owning threads;
//! - events are `Copy` and pre-filled once at construction (`T::default()` or a given value), so
//!   nothing allocates after [`channel`] returns;
//! - every subscriber is independent (no dependency chains between them).
//!
//! # Liveness
//!
//! The producer waits for the slowest subscriber. A subscriber that stops polling, or is dropped
//! while the publisher is alive, therefore stalls the publisher once the ring is full:
//! [`Publisher::try_publish`] keeps failing, and [`Publisher::publish_blocking`] gives up and
//! returns the event once it sees that a subscriber has been dropped. Keep every subscriber
//! polled for as long as the publisher lives.
//!
//! Dropping the [`Publisher`] closes the channel: subscribers drain what was published and then
//! get [`Closed`].

use crate::wait::Waiter;
use disruptor::{
    BusySpin, EventPoller, MultiConsumerBarrier, Polling, Producer as _, SingleProducer,
    SingleProducerBarrier,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The channel was closed: the [`Publisher`] is gone and this subscriber has read every event
/// it published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("broadcast channel closed: publisher dropped and every event consumed")]
pub struct Closed;

/// Why [`Subscriber::try_recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing new has been published yet.
    #[error("no event available")]
    Empty,
    /// The publisher is gone and everything it published has been read.
    #[error("broadcast channel closed")]
    Closed,
}

/// Creates a broadcast ring of `capacity` events with `subscribers` independent readers; every
/// slot starts as `T::default()`.
///
/// # Panics
///
/// If `capacity` is not a power of two or `subscribers` is zero.
pub fn channel<T>(capacity: usize, subscribers: usize) -> (Publisher<T>, Vec<Subscriber<T>>)
where
    T: Copy + Default + Send + Sync + 'static,
{
    channel_with(capacity, subscribers, T::default())
}

/// Like [`channel`], with every slot pre-filled with `init` (for event types without a
/// `Default`).
///
/// # Panics
///
/// If `capacity` is not a power of two or `subscribers` is zero.
pub fn channel_with<T>(
    capacity: usize,
    subscribers: usize,
    init: T,
) -> (Publisher<T>, Vec<Subscriber<T>>)
where
    T: Copy + Send + Sync + 'static,
{
    assert!(
        subscribers > 0,
        "broadcast::channel: need at least one subscriber"
    );
    assert!(
        capacity.is_power_of_two(),
        "broadcast::channel: capacity must be a non-zero power of two, got {capacity}"
    );
    let alive = Arc::new(AtomicUsize::new(subscribers));
    // The wait strategy type parameter only matters for disruptor-managed threads; pollers are
    // driven by our own threads, so `BusySpin` is a placeholder here.
    let mut builder =
        disruptor::build_single_producer(capacity, move || init, BusySpin).with_multi_consumer();
    let mut subs = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (poller, next) = builder.new_event_poller();
        builder = next;
        subs.push(Subscriber {
            poller,
            alive: Arc::clone(&alive),
        });
    }
    let producer = builder.build();
    (
        Publisher {
            producer,
            alive,
            subscribers,
            capacity,
        },
        subs,
    )
}

/// The single writing end of a broadcast channel. `Send`, not `Clone`.
pub struct Publisher<T: Copy + Send + Sync + 'static> {
    producer: SingleProducer<T, MultiConsumerBarrier>,
    /// Subscribers not yet dropped.
    alive: Arc<AtomicUsize>,
    /// Subscribers created.
    subscribers: usize,
    capacity: usize,
}

impl<T: Copy + Send + Sync + 'static> Publisher<T> {
    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Subscribers created with the channel.
    pub fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// True once any subscriber has been dropped: the ring can then never drain past that
    /// subscriber's position, so publishing will stall once it is full.
    pub fn lost_subscriber(&self) -> bool {
        // Acquire: pairs with the Release decrement in `Subscriber::drop`; only a flag.
        self.alive.load(Ordering::Acquire) < self.subscribers
    }

    /// Publishes `value`, or gives it back if the slowest subscriber is a full ring behind.
    #[inline]
    pub fn try_publish(&mut self, value: T) -> Result<(), T> {
        self.producer
            .try_publish(|slot| *slot = value)
            .map(|_| ())
            .map_err(|_| value)
    }

    /// Overwrites the next slot in place with `write` and publishes it; returns false (without
    /// calling `write`) when the ring is full. The slot holds whatever event last used it.
    #[inline]
    pub fn publish_with(&mut self, write: impl FnOnce(&mut T)) -> bool {
        self.producer.try_publish(write).is_ok()
    }

    /// Fills exactly `n` slots in place (`fill(i, slot)` for `i = 0..n`) and publishes them
    /// with one store; returns false (without calling `fill`) when fewer than `n` are free.
    #[inline]
    pub fn try_publish_batch(&mut self, n: usize, mut fill: impl FnMut(usize, &mut T)) -> bool {
        if n == 0 {
            return true;
        }
        self.producer
            .try_batch_publish(n, |iter| {
                for (i, slot) in iter.enumerate() {
                    fill(i, slot);
                }
            })
            .is_ok()
    }

    /// Publishes `value`, idling on `waiter` while the ring is full. Gives the value back if a
    /// subscriber has been dropped while the ring is full (it would never drain). Resets
    /// `waiter` on success.
    pub fn publish_blocking(&mut self, value: T, waiter: &mut Waiter) -> Result<(), T> {
        loop {
            if self.try_publish(value).is_ok() {
                waiter.reset();
                return Ok(());
            }
            if self.lost_subscriber() {
                return Err(value);
            }
            waiter.idle();
        }
    }
}

/// One reading end of a broadcast channel: sees every event published, in order, independently
/// of the other subscribers. `Send`, not `Clone`.
pub struct Subscriber<T: Copy + Send + Sync + 'static> {
    poller: EventPoller<T, SingleProducerBarrier>,
    alive: Arc<AtomicUsize>,
}

impl<T: Copy + Send + Sync + 'static> Subscriber<T> {
    /// Calls `f` on up to `max` of the next events, in order and in place, then marks them read
    /// with one store. Returns how many were read (`Ok(0)` when nothing is new), or [`Closed`]
    /// once the publisher is gone and everything has been read.
    #[inline]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(&T)) -> Result<usize, Closed> {
        if max == 0 {
            return Ok(0);
        }
        match self.poller.take(max as u64) {
            Ok(mut guard) => {
                let mut n = 0;
                for ev in &mut guard {
                    f(ev);
                    n += 1;
                }
                // Dropping the guard publishes our cursor (a Release store in the disruptor).
                Ok(n)
            }
            Err(Polling::NoEvents) => Ok(0),
            Err(Polling::Shutdown) => Err(Closed),
        }
    }

    /// Returns the next event, if one has been published.
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut out = None;
        match self.poll(1, |ev| out = Some(*ev)) {
            Ok(_) => out.ok_or(TryRecvError::Empty),
            Err(Closed) => Err(TryRecvError::Closed),
        }
    }

    /// Returns the next event, idling on `waiter` while none is available; `None` once the
    /// channel is closed and drained. Resets `waiter` when it returns an event.
    pub fn recv_blocking(&mut self, waiter: &mut Waiter) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(v) => {
                    waiter.reset();
                    return Some(v);
                }
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => waiter.idle(),
            }
        }
    }

    /// True if at least one unread event is available (does not consume it).
    #[inline]
    pub fn has_available(&self) -> bool {
        self.poller.has_available()
    }
}

impl<T: Copy + Send + Sync + 'static> Drop for Subscriber<T> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `Publisher::lost_subscriber`; only a counter.
        self.alive.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_sees_everything_in_order() {
        let (mut tx, mut subs) = channel::<u64>(8, 3);
        for i in 0..5 {
            tx.try_publish(i).unwrap();
        }
        assert!(tx.try_publish_batch(3, |i, s| *s = 5 + i as u64));
        // Full: the subscribers have not read anything yet.
        assert_eq!(tx.try_publish(99), Err(99));
        assert!(!tx.publish_with(|s| *s = 99));
        for s in &mut subs {
            let mut seen = Vec::new();
            assert_eq!(s.poll(100, |v| seen.push(*v)), Ok(8));
            assert_eq!(seen, (0..8).collect::<Vec<_>>());
            assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
        }
        assert!(tx.publish_with(|s| *s = 8));
        drop(tx);
        for s in &mut subs {
            assert_eq!(s.try_recv(), Ok(8));
            assert_eq!(s.try_recv(), Err(TryRecvError::Closed));
            assert_eq!(s.poll(4, |_| {}), Err(Closed));
        }
    }

    #[test]
    fn slowest_subscriber_bounds_the_publisher() {
        let (mut tx, mut subs) = channel::<u32>(4, 2);
        for i in 0..4 {
            tx.try_publish(i).unwrap();
        }
        assert_eq!(subs[0].poll(4, |_| {}), Ok(4));
        // Subscriber 1 has read nothing, so the ring is still full.
        assert_eq!(tx.try_publish(4), Err(4));
        assert_eq!(subs[1].poll(2, |_| {}), Ok(2));
        assert_eq!(tx.try_publish(4), Ok(()));
        assert!(!tx.lost_subscriber());
        let gone = subs.pop().unwrap();
        drop(gone);
        assert!(tx.lost_subscriber());
        let mut w = crate::wait::WaitStrategy::BusySpin.waiter();
        assert_eq!(tx.publish_blocking(5, &mut w), Ok(()));
        assert_eq!(tx.publish_blocking(6, &mut w), Err(6));
    }

    #[test]
    fn handles_are_send() {
        fn is_send<X: Send>() {}
        is_send::<Publisher<u64>>();
        is_send::<Subscriber<u64>>();
    }
}
