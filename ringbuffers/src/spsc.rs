//! Bounded single-producer single-consumer ring for `Copy` events: the hot path's stage-to-stage
//! link.
//!
//! # Design
//!
//! The ring is an array of `capacity` slots (a power of two, so an index maps to a slot with a
//! mask instead of a division) and two free-running counters:
//!
//! - `tail`: the next index the producer will write. Only the producer stores it.
//! - `head`: the next index the consumer will read. Only the consumer stores it.
//!
//! `tail - head` (wrapping) is the number of published, unread events, always in
//! `0..=capacity`. The counters never wrap in practice (2^64 events), and wrapping arithmetic
//! keeps the logic correct even if they did.
//!
//! What makes it fast is what it avoids:
//!
//! - **No shared read-modify-write.** Each counter has exactly one writer, so publishing is a
//!   plain `Release` store, never a `lock`-prefixed instruction or a CAS loop.
//! - **No false sharing.** `head` and `tail` each sit on their own cache line
//!   ([`CachePadded`]): the consumer's stores to `head` do not invalidate the line the consumer
//!   polls for `tail`, and vice versa.
//! - **Few cross-core reads.** Each side keeps a private copy of its own counter (authoritative;
//!   it never reloads it) and a *cached* copy of the other side's counter. The producer only
//!   reloads `head` when the cache says the ring is full; the consumer only reloads `tail` when
//!   its cache says the ring is empty. While the ring is neither, a push or a pop touches no cache
//!   line the other core is writing except the slot itself. Batch calls reload when the cache
//!   cannot satisfy the whole request, so a batch is as large as it can be.
//! - **Batching.** [`Producer::write_batch`] and [`Producer::push_slice`] write many slots and
//!   publish them with a single `Release` store; [`Consumer::read_batch`] and
//!   [`Consumer::pop_slice`] release many slots with a single store. One cache-line transfer of
//!   the counter then covers the whole batch.
//! - **In-place writes.** Slots are `UnsafeCell<MaybeUninit<T>>`: nothing is constructed when the
//!   ring is created, and [`Producer::push_with`] hands the caller the slot itself to write into.
//!   The caller proves the slot is initialised by returning the `&mut T` that
//!   [`MaybeUninit::write`] gives back, so the API is safe without requiring `T: Default`.
//!
//! Two details found by measuring (the `rings` bench suite, a ping-pong over two rings):
//!
//! - The cached counters are written only when the reloaded value *changed*. A consumer polling
//!   an empty ring thus spins on loads alone; storing the unchanged value on every empty poll
//!   cost about 100 ns of one-way latency (~250 ns instead of ~140 ns on the 2-core test VM).
//! - Each handle is `#[repr(align(128))]`, because it holds the counters its side writes on
//!   every operation. Wherever handles end up (two fields of one struct, two locals of one stack
//!   frame), the producer's and the consumer's never share a cache line.
//!
//! # Memory ordering
//!
//! Two happens-before edges make the ring correct; every atomic access below names the one it is
//! part of:
//!
//! 1. *Publish*: the producer writes a slot, then stores `tail` with `Release`. The consumer loads
//!    `tail` with `Acquire`; seeing the new value makes the slot write visible before it reads.
//! 2. *Release*: the consumer reads a slot, then stores `head` with `Release`. The producer loads
//!    `head` with `Acquire`; seeing the new value guarantees the read finished before the
//!    producer overwrites the slot on the next lap.
//!
//! Nothing needs `SeqCst`: there is no decision that depends on the order of two *different*
//! variables as observed by two threads.
//!
//! # Shutdown
//!
//! Each handle clears an "alive" flag when dropped. The non-blocking calls never look at it (it
//! costs nothing on the hot path); the blocking helpers check it while idle, so
//! [`Consumer::pop_blocking`] returns `None` once the producer is gone *and* the ring is drained,
//! and [`Producer::push_blocking`] gives the value back once the consumer is gone.
//!
//! Events are `Copy`, so they have no destructor: dropping the ring with unread events just frees
//! the buffer.
//!
//! # Handles
//!
//! [`Producer`] and [`Consumer`] are `Send` but neither `Sync` nor `Clone`: a second producer or
//! consumer would break the single-writer rule each counter relies on.
//!
//! ```compile_fail
//! fn is_sync<X: Sync>() {}
//! is_sync::<ringbuffers::spsc::Producer<u64>>();
//! ```
//! ```compile_fail
//! fn is_sync<X: Sync>() {}
//! is_sync::<ringbuffers::spsc::Consumer<u64>>();
//! ```
//! ```compile_fail
//! let (tx, _rx) = ringbuffers::spsc::channel::<u64>(8);
//! let _second = tx.clone();
//! ```
//!
//! ```
//! use ringbuffers::spsc;
//! let (mut tx, mut rx) = spsc::channel::<u64>(8);
//! tx.try_push(1).unwrap();
//! assert!(tx.push_with(|slot| slot.write(2)));
//! assert_eq!(tx.write_batch(2, |i, slot| slot.write(3 + i as u64)), 2);
//! let mut seen = Vec::new();
//! assert_eq!(rx.try_pop(), Some(1));
//! assert_eq!(rx.read_batch(usize::MAX, |v| seen.push(*v)), 3);
//! assert_eq!(seen, [2, 3, 4]);
//! ```
//!
//! # Observing depth from a third thread
//!
//! [`Producer::probe`] and [`Consumer::probe`] hand out a [`DepthProbe`]: a cloneable,
//! read-only view a cold thread (the metrics exporter) uses to sample how many events wait in
//! the ring. It only loads the two counters, so it cannot break the single-writer rule; the
//! cost it puts on the hot side is that each sample pulls the counters' cache lines into the
//! sampling core in the shared state, and the next store by the owning side pays one
//! invalidation. At a scrape every few seconds that is noise.
//!
//! # Loom
//!
//! Under `--cfg loom` the atomics, `Arc` and the slot cells come from `loom`, which then checks
//! every interleaving of the model in `tests/spsc_loom.rs` for data races on the slots (a slot
//! read not ordered after its write, or a write not ordered after the previous lap's read).

use crate::wait::Waiter;
use crossbeam_utils::CachePadded;
use std::fmt;
use std::mem::MaybeUninit;

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

/// One slot of the ring. A thin wrapper so the rest of the file reads the same with `std` and
/// `loom` cells: both expose the contents only as a raw pointer inside a closure.
///
/// `repr(transparent)` (without loom) makes `[Slot<T>]` layout-identical to `[T]`, which the
/// slice copies rely on.
#[cfg_attr(not(loom), repr(transparent))]
struct Slot<T> {
    #[cfg(not(loom))]
    cell: std::cell::UnsafeCell<MaybeUninit<T>>,
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            #[cfg(not(loom))]
            cell: std::cell::UnsafeCell::new(MaybeUninit::uninit()),
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Runs `f` with a shared pointer to the slot (loom records a read access).
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(*const MaybeUninit<T>) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.cell.get())
        }
        #[cfg(loom)]
        {
            self.cell.with(f)
        }
    }

    /// Runs `f` with a mutable pointer to the slot (loom records a write access).
    #[inline(always)]
    fn with_mut<R>(&self, f: impl FnOnce(*mut MaybeUninit<T>) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.cell.get())
        }
        #[cfg(loom)]
        {
            self.cell.with_mut(f)
        }
    }
}

/// State shared by the two handles.
struct Shared<T> {
    /// Next index the consumer reads. Stored only by the consumer; its own line so the
    /// consumer's stores do not invalidate `tail` in the consumer's cache.
    head: CachePadded<AtomicUsize>,
    /// Next index the producer writes. Stored only by the producer; its own line.
    tail: CachePadded<AtomicUsize>,
    /// Cleared when the [`Producer`] is dropped. Written once, read only by idle blocking calls.
    producer_alive: AtomicBool,
    /// Cleared when the [`Consumer`] is dropped. Written once, read only by idle blocking calls.
    consumer_alive: AtomicBool,
    /// The slots; `slots.len()` is the capacity, a power of two.
    slots: Box<[Slot<T>]>,
}

// SAFETY: the handles only ever access a slot from one thread at a time, and hand-over between
// the two threads is ordered by the Release/Acquire pairs on `head` and `tail` (see the module
// docs). Values of `T` move between threads, hence `T: Send`; no `&T` is ever shared by both
// threads at once, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Shared<T> {}

/// What a [`DepthProbe`] needs of a ring, without its element type. (Not under loom: loom's
/// `Arc` cannot be coerced to a trait object, and the models do not use probes.)
#[cfg(not(loom))]
trait Occupancy: Send + Sync {
    fn depth(&self) -> usize;
    fn capacity(&self) -> usize;
}

#[cfg(not(loom))]
impl<T: Send> Occupancy for Shared<T> {
    fn depth(&self) -> usize {
        // Relaxed on both: the probe reads no slot, so it needs no happens-before edge with
        // either side; the two loads are a snapshot that may be skewed by in-flight pushes or
        // pops. Reading `head` first keeps the skew on the safe side of zero (`tail` can only
        // have advanced since), and the clamp covers a `head` that moved past the `tail` we
        // saw on a weakly ordered machine.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(self.slots.len())
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// A read-only view of a ring's occupancy for a thread that is neither its producer nor its
/// consumer (see the module docs). Cloneable and `Sync`; keeps the ring's buffer alive while it
/// exists, and never reads a slot.
#[cfg(not(loom))]
#[derive(Clone)]
pub struct DepthProbe {
    ring: Arc<dyn Occupancy>,
}

#[cfg(not(loom))]
impl DepthProbe {
    fn of<T: Send + 'static>(shared: &Arc<Shared<T>>) -> Self {
        DepthProbe {
            ring: shared.clone(),
        }
    }

    /// Events published and not yet consumed, as of some instant during the call.
    pub fn depth(&self) -> usize {
        self.ring.depth()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(not(loom))]
impl fmt::Debug for DepthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DepthProbe")
            .field("depth", &self.depth())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Creates a ring of `capacity` slots and returns its two ends.
///
/// The buffer is allocated here, once; no call on either handle allocates afterwards.
///
/// # Panics
///
/// If `capacity` is zero or not a power of two (`1` is allowed). Rounding up silently would
/// hide a sizing mistake in a latency-critical configuration, so the caller must choose.
pub fn channel<T: Copy>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity.is_power_of_two(),
        "spsc::channel: capacity must be a non-zero power of two, got {capacity}"
    );
    let slots: Box<[Slot<T>]> = (0..capacity).map(|_| Slot::new()).collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        producer_alive: AtomicBool::new(true),
        consumer_alive: AtomicBool::new(true),
        slots,
    });
    let base = shared.slots.as_ptr();
    let mask = capacity - 1;
    (
        Producer {
            base,
            mask,
            tail: 0,
            cached_head: 0,
            shared: Arc::clone(&shared),
        },
        Consumer {
            base,
            mask,
            head: 0,
            cached_tail: 0,
            shared,
        },
    )
}

/// The writing end of an SPSC ring. `Send`, not `Sync`, not `Clone`: exactly one thread
/// produces.
///
/// Aligned to 128 bytes (two cache lines, the unit the adjacent-line prefetcher moves) because
/// the handle holds state the producer writes on every push (`tail`, `cached_head`): wherever the
/// handle ends up, it never shares a line with the consumer's handle or other hot data.
#[repr(align(128))]
pub struct Producer<T> {
    /// `shared.slots.as_ptr()`, kept here so a push does not chase `Arc -> Box -> slots`.
    /// The raw pointer also makes the handle `!Sync` (and `!Send`, restored below).
    base: *const Slot<T>,
    /// `capacity - 1`.
    mask: usize,
    /// Next index to write; the authoritative value of `shared.tail` (we are its only writer).
    tail: usize,
    /// Last `head` we loaded. The real `head` is never behind it, so free space computed from
    /// it is a safe under-estimate.
    cached_head: usize,
    shared: Arc<Shared<T>>,
}

// SAFETY: the producer may move to another thread as a whole; `base` points into the buffer
// owned by `shared` (kept alive by the `Arc`), and only this handle writes through it.
unsafe impl<T: Send> Send for Producer<T> {}

impl<T: Copy> Producer<T> {
    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Events published and not yet consumed (a snapshot; the consumer may be draining).
    #[inline]
    pub fn len(&self) -> usize {
        // Acquire: same edge as `refresh_head`; the value is a snapshot either way.
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    /// True when every published event has been consumed (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when no slot is free (a snapshot; the consumer may free one at any moment).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// A read-only occupancy view for a cold thread (metrics); see [`DepthProbe`].
    #[cfg(not(loom))]
    pub fn probe(&self) -> DepthProbe
    where
        T: Send + 'static,
    {
        DepthProbe::of(&self.shared)
    }

    /// True once the [`Consumer`] has been dropped: nothing pushed from now on will be read.
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        // Acquire: pairs with the Release store in `Consumer::drop`.
        !self.shared.consumer_alive.load(Ordering::Acquire)
    }

    /// Free slots as seen through the cached `head`, reloading it only when fewer than `want`
    /// appear free. Returns the (possibly refreshed) number of free slots.
    #[inline(always)]
    fn free(&mut self, want: usize) -> usize {
        let free = self.capacity() - self.tail.wrapping_sub(self.cached_head);
        if free >= want {
            free
        } else {
            self.refresh_head()
        }
    }

    /// Reloads the consumer's `head` and returns the free slot count.
    #[inline]
    fn refresh_head(&mut self) -> usize {
        // Acquire: pairs with the consumer's Release store of `head` (edge 2, "release"). Every
        // read the consumer made of slots below the loaded `head` happens-before this load, hence
        // before we overwrite those slots on the next lap.
        let head = self.shared.head.load(Ordering::Acquire);
        // Write the cache only when it changed, so a producer spinning on a full ring runs a
        // loop of loads only (see `Consumer::refresh_tail` for why that matters).
        if head != self.cached_head {
            self.cached_head = head;
        }
        self.capacity() - self.tail.wrapping_sub(head)
    }

    /// The slot for index `idx` (any index; it is masked).
    #[inline(always)]
    fn slot(&self, idx: usize) -> &Slot<T> {
        // SAFETY: `idx & mask < capacity`, the length of the buffer `base` points into, and the
        // buffer lives as long as `self.shared`.
        unsafe { &*self.base.add(idx & self.mask) }
    }

    /// Makes every slot below `new_tail` visible to the consumer.
    #[inline(always)]
    fn publish(&mut self, new_tail: usize) {
        self.tail = new_tail;
        // Release: edge 1, "publish". The slot writes before this store become visible to a
        // consumer that loads this `tail` (or a later one) with Acquire.
        self.shared.tail.store(new_tail, Ordering::Release);
    }

    /// Pushes `value`, or gives it back if the ring is full. Never blocks, never allocates.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), T> {
        if self.free(1) == 0 {
            return Err(value);
        }
        let tail = self.tail;
        self.slot(tail).with_mut(|p| {
            // SAFETY: slot `tail` is free (`free(1) > 0`): the consumer finished reading it on the
            // previous lap (ordered by the Acquire in `refresh_head`) and will not read it before
            // we publish. Only this handle writes slots.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        self.publish(tail.wrapping_add(1));
        Ok(())
    }

    /// Writes one event in place and publishes it; returns false (without calling `write`) when
    /// the ring is full.
    ///
    /// `write` receives the uninitialised slot and must return the reference that
    /// [`MaybeUninit::write`] returns for it, which proves the slot was initialised:
    /// `tx.push_with(|slot| slot.write(Event { .. }))`.
    ///
    /// # Panics
    ///
    /// If `write` returns a reference to anything but the slot it was given (the event is then
    /// not published). If `write` panics, nothing is published.
    #[inline]
    pub fn push_with<F>(&mut self, write: F) -> bool
    where
        F: for<'a> FnOnce(&'a mut MaybeUninit<T>) -> &'a mut T,
    {
        if self.free(1) == 0 {
            return false;
        }
        let tail = self.tail;
        self.slot(tail).with_mut(|p| {
            // SAFETY: slot `tail` is free and exclusively ours until published (as in
            // `try_push`); `p` is valid and aligned for `MaybeUninit<T>`.
            let uninit = unsafe { &mut *p };
            let written: *const T = write(uninit);
            assert!(
                std::ptr::eq(written, p.cast::<T>()),
                "spsc::push_with: the closure must return the reference MaybeUninit::write gave it"
            );
        });
        self.publish(tail.wrapping_add(1));
        true
    }

    /// Writes up to `max` events in place and publishes them all with one `Release` store.
    /// Returns how many were written (0 when the ring is full or `max` is 0).
    ///
    /// `fill(i, slot)` is called for `i = 0..n` in order and must return the reference that
    /// [`MaybeUninit::write`] returns for `slot`, as in [`push_with`](Self::push_with).
    ///
    /// # Panics
    ///
    /// If `fill` returns a reference to anything but its slot. If `fill` panics, nothing of
    /// this batch is published (the written slots are simply reused later).
    #[inline]
    pub fn write_batch<F>(&mut self, max: usize, mut fill: F) -> usize
    where
        F: for<'a> FnMut(usize, &'a mut MaybeUninit<T>) -> &'a mut T,
    {
        let n = max.min(self.free(max));
        let tail = self.tail;
        for i in 0..n {
            self.slot(tail.wrapping_add(i)).with_mut(|p| {
                // SAFETY: slots `tail .. tail + n` are free (`n <= free`) and exclusively ours
                // until published; `p` is valid and aligned for `MaybeUninit<T>`.
                let uninit = unsafe { &mut *p };
                let written: *const T = fill(i, uninit);
                assert!(
                    std::ptr::eq(written, p.cast::<T>()),
                    "spsc::write_batch: fill must return the reference MaybeUninit::write gave it"
                );
            });
        }
        if n > 0 {
            self.publish(tail.wrapping_add(n));
        }
        n
    }

    /// Copies as many of `items` as fit (a prefix) and publishes them with one `Release` store.
    /// Returns how many were pushed.
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> usize {
        let n = items.len().min(self.free(items.len()));
        if n == 0 {
            return 0;
        }
        let tail = self.tail;
        #[cfg(not(loom))]
        {
            let start = tail & self.mask;
            let first = n.min(self.capacity() - start);
            // SAFETY: slots `tail .. tail + n` are free and exclusively ours until published.
            // `Slot<T>` is `UnsafeCell<MaybeUninit<T>>`, both `repr(transparent)`, so the
            // slots form a contiguous `[T]`-layout array: the first chunk runs from `start` to at
            // most the end of the buffer, the second (if the batch wraps) from index 0. Source
            // and destination cannot overlap: `items` is borrowed shared, the slots are ours.
            unsafe {
                let dst = self.base.cast_mut().cast::<T>();
                std::ptr::copy_nonoverlapping(items.as_ptr(), dst.add(start), first);
                std::ptr::copy_nonoverlapping(items.as_ptr().add(first), dst, n - first);
            }
        }
        #[cfg(loom)]
        for (i, item) in items[..n].iter().enumerate() {
            self.slot(tail.wrapping_add(i)).with_mut(|p| {
                // SAFETY: as above, slot by slot so loom can track each access.
                unsafe { p.write(MaybeUninit::new(*item)) }
            });
        }
        self.publish(tail.wrapping_add(n));
        n
    }

    /// Pushes `value`, idling on `waiter` while the ring is full. Returns the value back if the
    /// consumer has been dropped (it would never be read). Resets `waiter` on success, so a
    /// thread can share one waiter between its loop and this call.
    pub fn push_blocking(&mut self, value: T, waiter: &mut Waiter) -> Result<(), T> {
        loop {
            if self.try_push(value).is_ok() {
                waiter.reset();
                return Ok(());
            }
            if self.is_disconnected() {
                return Err(value);
            }
            waiter.idle();
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `Consumer::is_disconnected`. Our last `tail` store
        // happens-before this one, so a consumer that sees `false` and then loads `tail` sees
        // every event we published.
        self.shared.producer_alive.store(false, Ordering::Release);
    }
}

impl<T: Copy> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Producer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

/// The reading end of an SPSC ring. `Send`, not `Sync`, not `Clone`: exactly one thread
/// consumes.
///
/// Aligned to 128 bytes for the same reason as [`Producer`]: `head` and `cached_tail` are written
/// on every pop.
#[repr(align(128))]
pub struct Consumer<T> {
    /// `shared.slots.as_ptr()`; see [`Producer`].
    base: *const Slot<T>,
    /// `capacity - 1`.
    mask: usize,
    /// Next index to read; the authoritative value of `shared.head` (we are its only writer).
    head: usize,
    /// Last `tail` we loaded. The real `tail` is never behind it, so the event count computed
    /// from it is a safe under-estimate.
    cached_tail: usize,
    shared: Arc<Shared<T>>,
}

// SAFETY: as for `Producer`: the buffer is owned by `shared`, and this handle only reads slots
// that the producer has published and not yet been given back.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T: Copy> Consumer<T> {
    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Events ready to be read (a snapshot; the producer may be publishing more).
    #[inline]
    pub fn len(&self) -> usize {
        // Acquire: same edge as `refresh_tail`; the value is a snapshot either way.
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// True when nothing is ready to be read (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only occupancy view for a cold thread (metrics); see [`DepthProbe`].
    #[cfg(not(loom))]
    pub fn probe(&self) -> DepthProbe
    where
        T: Send + 'static,
    {
        DepthProbe::of(&self.shared)
    }

    /// True once the [`Producer`] has been dropped. Events it published before that may still
    /// be in the ring; check [`is_empty`](Self::is_empty) or keep popping.
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`.
        !self.shared.producer_alive.load(Ordering::Acquire)
    }

    /// Ready events as seen through the cached `tail`, reloading it only when fewer than `want`
    /// appear ready.
    #[inline(always)]
    fn available(&mut self, want: usize) -> usize {
        let ready = self.cached_tail.wrapping_sub(self.head);
        if ready >= want {
            ready
        } else {
            self.refresh_tail()
        }
    }

    /// Reloads the producer's `tail` and returns the ready event count.
    #[inline]
    fn refresh_tail(&mut self) -> usize {
        // Acquire: pairs with the producer's Release store of `tail` (edge 1, "publish"): the
        // writes of every slot below the loaded `tail` are visible to the reads that follow.
        let tail = self.shared.tail.load(Ordering::Acquire);
        // Write the cache only when it changed. A consumer polling an empty ring then runs a
        // loop of loads only; storing the (unchanged) value on every empty poll measurably slowed
        // the wake-up in the ping-pong benchmark (~250 ns instead of ~150 ns one-way on the
        // 2-core test VM), presumably because the spin loop's stores queue up in the store buffer
        // ahead of the stores that publish the reply.
        if tail != self.cached_tail {
            self.cached_tail = tail;
        }
        tail.wrapping_sub(self.head)
    }

    /// The slot for index `idx` (any index; it is masked).
    #[inline(always)]
    fn slot(&self, idx: usize) -> &Slot<T> {
        // SAFETY: `idx & mask < capacity`, the length of the buffer `base` points into, and the
        // buffer lives as long as `self.shared`.
        unsafe { &*self.base.add(idx & self.mask) }
    }

    /// Gives every slot below `new_head` back to the producer.
    #[inline(always)]
    fn release(&mut self, new_head: usize) {
        self.head = new_head;
        // Release: edge 2, "release". Our reads of the slots below `new_head` happen-before a
        // producer that loads this value with Acquire starts overwriting them.
        self.shared.head.store(new_head, Ordering::Release);
    }

    /// Pops the oldest event, or `None` if the ring is empty. Never blocks, never allocates.
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        if self.available(1) == 0 {
            return None;
        }
        let head = self.head;
        let value = self.slot(head).with(|p| {
            // SAFETY: slot `head` is published (`head < tail` as loaded with Acquire in
            // `refresh_tail`), so its write is visible and it is initialised; the producer will
            // not overwrite it before we release it below. `T: Copy`, so reading it out leaves a
            // valid bit-copy behind that needs no drop.
            unsafe { (*p).assume_init() }
        });
        self.release(head.wrapping_add(1));
        Some(value)
    }

    /// Calls `f` on the oldest event in place (no copy out), then releases its slot. Returns
    /// `None` without calling `f` if the ring is empty.
    ///
    /// If `f` panics, the event is not released and will be delivered again.
    #[inline]
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R> {
        if self.available(1) == 0 {
            return None;
        }
        let head = self.head;
        let r = self.slot(head).with(|p| {
            // SAFETY: as in `try_pop`; the reference does not outlive this closure, which ends
            // before the slot is released.
            f(unsafe { (*p).assume_init_ref() })
        });
        self.release(head.wrapping_add(1));
        Some(r)
    }

    /// Calls `f` on up to `max` of the oldest events in order, in place, then releases all of
    /// their slots with one `Release` store. Returns how many were read (0 when empty).
    ///
    /// If `f` panics, none of this batch is released: the events are delivered again.
    #[inline]
    pub fn read_batch<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(&T),
    {
        let n = max.min(self.available(max));
        let head = self.head;
        for i in 0..n {
            self.slot(head.wrapping_add(i)).with(|p| {
                // SAFETY: slots `head .. head + n` are published (`n <= ready`, Acquire in
                // `refresh_tail`) and stay ours until the `release` below; the reference does not
                // outlive this closure.
                f(unsafe { (*p).assume_init_ref() })
            });
        }
        if n > 0 {
            self.release(head.wrapping_add(n));
        }
        n
    }

    /// Copies up to `out.len()` of the oldest events into `out` and releases their slots with
    /// one `Release` store. Returns how many were copied.
    #[inline]
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize {
        let n = out.len().min(self.available(out.len()));
        if n == 0 {
            return 0;
        }
        let head = self.head;
        #[cfg(not(loom))]
        {
            let start = head & self.mask;
            let first = n.min(self.capacity() - start);
            // SAFETY: slots `head .. head + n` are published and ours until released; the slot
            // array has `[T]` layout (see `push_slice`); the first chunk ends at or before the end
            // of the buffer and the second starts at index 0. `out` is exclusively borrowed, so
            // it cannot overlap the ring.
            unsafe {
                let src = self.base.cast::<T>();
                std::ptr::copy_nonoverlapping(src.add(start), out.as_mut_ptr(), first);
                std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().add(first), n - first);
            }
        }
        #[cfg(loom)]
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: as above, slot by slot so loom can track each access.
            *o = self
                .slot(head.wrapping_add(i))
                .with(|p| unsafe { (*p).assume_init() });
        }
        self.release(head.wrapping_add(n));
        n
    }

    /// Pops the oldest event, idling on `waiter` while the ring is empty. Returns `None` once the
    /// producer has been dropped and every event it published has been read. Resets `waiter`
    /// when it returns an event.
    pub fn pop_blocking(&mut self, waiter: &mut Waiter) -> Option<T> {
        loop {
            if let Some(v) = self.try_pop() {
                waiter.reset();
                return Some(v);
            }
            if self.is_disconnected() {
                // The producer's last `tail` store happens-before its `alive` store, which we
                // just observed (Acquire), so one more attempt sees everything it published.
                return self.try_pop();
            }
            waiter.idle();
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `Producer::is_disconnected`; only a flag, nothing
        // else needs to be visible with it.
        self.shared.consumer_alive.store(false, Ordering::Release);
    }
}

impl<T: Copy> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::wait::WaitStrategy;

    #[test]
    fn probe_sees_depth_from_another_thread_and_outlives_the_handles() {
        let (mut tx, mut rx) = channel::<u64>(8);
        let probe = tx.probe();
        let from_consumer = rx.probe();
        assert_eq!((probe.depth(), probe.capacity()), (0, 8));
        for i in 0..5 {
            tx.try_push(i).unwrap();
        }
        let seen = std::thread::spawn({
            let p = probe.clone();
            move || p.depth()
        })
        .join()
        .unwrap();
        assert_eq!((seen, from_consumer.depth()), (5, 5));
        rx.try_pop().unwrap();
        assert_eq!(probe.depth(), 4);
        // A full ring reads as exactly its capacity, never more.
        while tx.try_push(7).is_ok() {}
        assert_eq!(probe.depth(), 8);
        drop((tx, rx));
        assert_eq!(probe.depth(), 8);
    }

    #[test]
    fn fills_to_capacity_then_refuses() {
        let (mut tx, mut rx) = channel::<u32>(4);
        assert_eq!((tx.capacity(), rx.capacity()), (4, 4));
        assert!(rx.is_empty() && tx.is_empty());
        for i in 0..4 {
            assert_eq!(tx.try_push(i), Ok(()));
        }
        assert!(tx.is_full());
        assert_eq!(tx.try_push(9), Err(9));
        assert!(!tx.push_with(|s| s.write(9)));
        assert_eq!(tx.write_batch(3, |_, s| s.write(9)), 0);
        assert_eq!(tx.push_slice(&[9, 9]), 0);
        assert_eq!((tx.len(), rx.len()), (4, 4));
        assert_eq!(rx.try_pop(), Some(0));
        assert_eq!(tx.try_push(4), Ok(()));
        let mut got = Vec::new();
        assert_eq!(rx.read_batch(usize::MAX, |v| got.push(*v)), 4);
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(rx.try_pop(), None);
        assert_eq!(rx.read_batch(8, |_| panic!("empty")), 0);
    }

    #[test]
    fn slices_wrap_around() {
        let (mut tx, mut rx) = channel::<u64>(8);
        let mut next = 0u64;
        let mut expect = 0u64;
        for round in 0..100 {
            let len = 1 + round % 7;
            let items: Vec<u64> = (next..next + len as u64).collect();
            assert_eq!(tx.push_slice(&items), len);
            next += len as u64;
            let mut out = [0u64; 8];
            let n = rx.pop_slice(&mut out[..len]);
            assert_eq!(n, len);
            for v in &out[..n] {
                assert_eq!(*v, expect);
                expect += 1;
            }
        }
        // A slice larger than the free space is cut to a prefix.
        assert_eq!(tx.push_slice(&[1; 20]), 8);
    }

    #[test]
    fn capacity_one_works() {
        let (mut tx, mut rx) = channel::<u8>(1);
        for i in 0..10 {
            assert!(tx.push_with(|s| s.write(i)));
            assert_eq!(tx.try_push(99), Err(99));
            assert_eq!(rx.pop_with(|v| *v), Some(i));
        }
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn rejects_non_power_of_two() {
        let _ = channel::<u8>(6);
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn rejects_zero() {
        let _ = channel::<u8>(0);
    }

    #[test]
    #[should_panic(expected = "must return the reference")]
    fn push_with_rejects_foreign_reference() {
        let (mut tx, _rx) = channel::<u8>(2);
        tx.push_with(|_slot| Box::leak(Box::new(1u8)));
    }

    #[test]
    fn panicking_fill_publishes_nothing() {
        let (mut tx, mut rx) = channel::<u8>(4);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tx.write_batch(3, |i, s| {
                if i == 2 {
                    panic!("boom")
                } else {
                    s.write(i as u8)
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(rx.try_pop(), None);
        assert_eq!(tx.write_batch(3, |i, s| s.write(10 + i as u8)), 3);
        assert_eq!(rx.try_pop(), Some(10));
    }

    #[test]
    fn blocking_helpers_see_disconnect() {
        let mut w = WaitStrategy::SpinThenYield { spins: 10 }.waiter();
        let (mut tx, mut rx) = channel::<u32>(2);
        tx.push_blocking(1, &mut w).unwrap();
        tx.push_blocking(2, &mut w).unwrap();
        assert!(!rx.is_disconnected());
        drop(tx);
        assert!(rx.is_disconnected());
        assert_eq!(rx.pop_blocking(&mut w), Some(1));
        assert_eq!(rx.pop_blocking(&mut w), Some(2));
        assert_eq!(rx.pop_blocking(&mut w), None);

        let (mut tx, rx) = channel::<u32>(1);
        tx.push_blocking(1, &mut w).unwrap();
        drop(rx);
        assert!(tx.is_disconnected());
        assert_eq!(tx.push_blocking(2, &mut w), Err(2));
    }

    #[test]
    fn handles_are_send_not_sync() {
        fn is_send<X: Send>() {}
        is_send::<Producer<u64>>();
        is_send::<Consumer<u64>>();
        // `!Sync` and `!Clone` are checked by the compile-fail doc tests in the module docs.
    }
}
