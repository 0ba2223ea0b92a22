//! Proves the hot-path queue operations never touch the heap after construction.
//!
//! [`testkit::CountingAllocator`] is the global allocator and [`testkit::count_allocations`]
//! counts per thread, so the test harness's own threads and output cannot disturb the count;
//! every queue operation below runs inside a counted region on its own thread, and the
//! assertions demand exactly zero allocations, reallocations and frees.

use ringbuffers::wait::WaitStrategy;
use ringbuffers::{broadcast, mpsc, spsc};
use testkit::count_allocations;

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

#[derive(Clone, Copy, Debug, Default)]
struct Event {
    seq: u64,
    px: i64,
    qty: i64,
    ts: [u64; 5],
}

fn ev(seq: u64) -> Event {
    Event {
        seq,
        px: seq as i64 * 3,
        qty: -(seq as i64),
        ts: [seq; 5],
    }
}

/// The allocator must actually see allocations on a counting thread, or a zero below is
/// meaningless.
#[test]
fn counter_sees_allocations() {
    let (v, n) = count_allocations(|| std::hint::black_box(vec![1u8; 64]));
    drop(v);
    assert_eq!((n.allocations, n.deallocations), (1, 0));
}

#[test]
fn spsc_single_thread_interleaved_and_batch() {
    let (mut tx, mut rx) = spsc::channel::<Event>(1024);
    let mut out = vec![Event::default(); 64];
    let items: Vec<Event> = (0..64).map(ev).collect();
    let mut waiter = WaitStrategy::SpinThenYield { spins: 10 }.waiter();
    // Warm-up: one pass of everything below.
    for i in 0..2048 {
        tx.try_push(ev(i)).unwrap();
        rx.try_pop().unwrap();
    }
    let (checksum, count) = count_allocations(|| {
        let mut sum = 0u64;
        // Interleaved single push / pop, wrapping the ring ~1000 times.
        for i in 0..1_000_000u64 {
            tx.try_push(ev(i)).unwrap();
            assert!(tx.push_with(|s| s.write(ev(i + 1))));
            sum = sum.wrapping_add(rx.try_pop().unwrap().seq);
            sum = sum.wrapping_add(rx.pop_with(|e| e.px as u64).unwrap());
        }
        // Batches of 1..=64 each way.
        for i in 0..200_000u64 {
            let n = 1 + (i % 64) as usize;
            assert_eq!(tx.write_batch(n, |k, s| s.write(ev(i + k as u64))), n);
            assert_eq!(
                rx.read_batch(n, |e| sum = sum.wrapping_add(e.qty as u64 ^ e.ts[4])),
                n
            );
            assert_eq!(tx.push_slice(&items[..n]), n);
            assert_eq!(rx.pop_slice(&mut out[..n]), n);
            sum = sum.wrapping_add(out[n - 1].seq);
        }
        // Blocking helpers on the fast path.
        for i in 0..100_000u64 {
            tx.push_blocking(ev(i), &mut waiter).unwrap();
            sum = sum.wrapping_add(rx.pop_blocking(&mut waiter).unwrap().seq);
        }
        sum
    });
    std::hint::black_box(checksum);
    let (allocs, frees) = (count.allocations, count.deallocations);
    assert_eq!(allocs, 0, "spsc operations allocated {allocs} times");
    assert_eq!(frees, 0, "spsc operations freed {frees} times");
}

#[test]
fn spsc_two_threads() {
    const N: u64 = 2_000_000;
    let (mut tx, mut rx) = spsc::channel::<Event>(256);
    // Threads are spawned (and their stacks allocated) before counting starts; each thread
    // switches its own counting flag on, then does only queue work.
    let producer = std::thread::spawn(move || {
        let ((), count) = count_allocations(|| {
            let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
            let mut i = 0u64;
            while i < N {
                let n = if i % 3 == 0 {
                    let base = i;
                    tx.write_batch(((N - i) as usize).min(17), |k, s| {
                        s.write(ev(base + k as u64))
                    })
                } else {
                    usize::from(tx.try_push(ev(i)).is_ok())
                };
                i += n as u64;
                if n == 0 {
                    w.idle();
                } else {
                    w.reset();
                }
            }
        });
        (count.allocations, count.deallocations, tx)
    });
    let (last, count) = count_allocations(|| {
        let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
        let mut expect = 0u64;
        while expect < N {
            let n = rx.read_batch(32, |e| {
                assert_eq!(e.seq, expect);
                expect += 1;
            });
            if n == 0 {
                w.idle();
            } else {
                w.reset();
            }
        }
        expect
    });
    let (allocs, frees) = (count.allocations, count.deallocations);
    let (pa, pf, tx) = producer.join().unwrap();
    drop(tx);
    assert_eq!(last, N);
    assert_eq!(
        (pa, pf),
        (0, 0),
        "producer thread allocated {pa} / freed {pf}"
    );
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "consumer thread allocated {allocs} / freed {frees}"
    );
}

#[test]
fn broadcast_and_mpsc_hot_side() {
    let (mut tx, mut subs) = broadcast::channel::<Event>(512, 2);
    let (mtx, mrx) = mpsc::channel::<Event>(64);
    // Warm-up.
    for i in 0..1024 {
        tx.try_publish(ev(i)).unwrap();
        for s in &mut subs {
            s.try_recv().unwrap();
        }
        assert!(mtx.try_send(ev(i)));
        mrx.try_recv().unwrap();
    }
    let (sum, count) = count_allocations(|| {
        let mut sum = 0u64;
        for i in 0..300_000u64 {
            tx.try_publish(ev(i)).unwrap();
            assert!(tx.publish_with(|e| e.seq = i + 1));
            assert!(tx.try_publish_batch(3, |k, e| *e = ev(i + k as u64)));
            for s in &mut subs {
                assert_eq!(s.poll(16, |e| sum = sum.wrapping_add(e.seq)), Ok(5));
            }
            // Hot-side fan-in: sends succeed until full, then count drops; never allocate.
            mtx.try_send(ev(i));
            if i % 128 == 0 {
                mrx.drain(usize::MAX, |e| sum = sum.wrapping_add(e.seq));
            }
        }
        sum
    });
    std::hint::black_box(sum);
    let (allocs, frees) = (count.allocations, count.deallocations);
    assert!(
        mtx.dropped() > 0,
        "the mpsc part should have exercised the drop path"
    );
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "broadcast/mpsc allocated {allocs} / freed {frees}"
    );
}
