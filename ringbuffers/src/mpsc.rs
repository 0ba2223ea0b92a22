//! Bounded many-producer, single-consumer channel for cold-path fan-in: hot threads reporting
//! fills, metrics or log records to one cold thread.
//!
//! A thin wrapper over a bounded [`crossbeam_channel`] (its array flavour: the buffer is
//! allocated once, sends and receives never allocate) with the one policy the hot side needs:
//! **a send never blocks.** If the cold consumer falls behind and the buffer is full, the message
//! is dropped and counted instead of stalling a trading thread; the count is visible to both
//! sides ([`Sender::dropped`], [`Receiver::dropped`]) so the loss is reported, not silent.
//!
//! The consumer side can block ([`Receiver::recv_timeout`]) or drain without blocking
//! ([`Receiver::drain`]). Note that a consumer *blocked* in `recv_timeout` makes the next send
//! wake it, which is a futex syscall on the sending thread; if the senders are hot threads, have
//! the consumer poll with [`Receiver::drain`] on a timer instead.

use crossbeam_channel::TrySendError;
pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Creates a bounded channel holding up to `capacity` messages.
///
/// # Panics
///
/// If `capacity` is zero (a zero-capacity crossbeam channel is a rendezvous channel, in which
/// every non-blocking send without a waiting receiver would be a drop).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpsc::channel: capacity must be non-zero");
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    // Own cache line: senders on different cores only touch it when dropping, which is exactly
    // when the consumer is slow, and it should not then also slow the channel's own indices.
    let dropped = Arc::new(CachePadded::new(AtomicU64::new(0)));
    (
        Sender {
            tx,
            dropped: Arc::clone(&dropped),
        },
        Receiver { rx, dropped },
    )
}

/// A sending end; clone it for each producing thread. `Send + Sync + Clone`.
pub struct Sender<T> {
    tx: crossbeam_channel::Sender<T>,
    dropped: Arc<CachePadded<AtomicU64>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

impl<T> Sender<T> {
    /// Enqueues `msg` without blocking. Returns false, and counts a drop, if the channel is full
    /// or the receiver is gone; the message is then discarded.
    #[inline]
    pub fn try_send(&self, msg: T) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                // Relaxed: a statistic; nothing is published through it.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Messages dropped so far by all senders of this channel.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// Capacity given at creation.
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(0)
    }
}

/// The single receiving end. `Send`, not `Clone`.
pub struct Receiver<T> {
    rx: crossbeam_channel::Receiver<T>,
    dropped: Arc<CachePadded<AtomicU64>>,
}

impl<T> Receiver<T> {
    /// Takes one message if any is queued. `Err(Empty)` if none is, `Err(Disconnected)` once
    /// every sender is gone and the queue is empty.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// Waits up to `timeout` for a message. `Err(Timeout)` if none arrived, `Err(Disconnected)`
    /// once every sender is gone and the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// Hands up to `max` queued messages to `f` without blocking; returns how many.
    pub fn drain(&self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut n = 0;
        while n < max {
            match self.rx.try_recv() {
                Ok(m) => {
                    f(m);
                    n += 1;
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        n
    }

    /// Messages dropped so far because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts() {
        let (tx, rx) = channel::<u32>(2);
        assert!(tx.try_send(1));
        assert!(tx.try_send(2));
        assert!(!tx.try_send(3));
        assert_eq!((tx.dropped(), rx.dropped()), (1, 1));
        let mut got = Vec::new();
        assert_eq!(rx.drain(10, |m| got.push(m)), 2);
        assert_eq!(got, [1, 2]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
