//! Loom models of the SPSC ring: every interleaving (up to the preemption bound) of a producer
//! and a consumer thread over a capacity-2 ring, with more items than slots so the ring wraps.
//! Loom checks each slot access against the happens-before graph, so a missing Release/Acquire
//! edge shows up as a data race on the slot, and the assertions check order and content.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ringbuffers --test spsc_loom --release`
#![cfg(loom)]

use loom::thread;
use ringbuffers::spsc;
use ringbuffers::wait::WaitStrategy;

/// Runs `f` under loom with a preemption bound of 4 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise: every schedule with up to four forced context switches, a few seconds in all.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(f);
}

/// Single-item push and pop: four items through two slots (two full laps).
#[test]
fn push_pop_wraps() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<[u64; 2]>(2);
        let producer = thread::spawn(move || {
            for i in 0..4u64 {
                while tx.try_push([i, !i]).is_err() {
                    thread::yield_now();
                }
            }
        });
        for i in 0..4u64 {
            loop {
                if let Some(v) = rx.try_pop() {
                    assert_eq!(v, [i, !i]);
                    break;
                }
                thread::yield_now();
            }
        }
        assert_eq!(rx.try_pop(), None);
        producer.join().unwrap();
    });
}

/// Batch publish (`write_batch`, `push_slice`) against batch consume (`read_batch`,
/// `pop_slice`): each side publishes or releases several slots with one store.
#[test]
fn batch_publish_and_consume() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<u64>(2);
        let producer = thread::spawn(move || {
            let mut next = 0u64;
            while next < 2 {
                let base = next;
                next += tx.write_batch(2, |i, s| s.write(base + i as u64)) as u64;
                if next < 2 {
                    thread::yield_now();
                }
            }
            let items = [2u64, 3];
            let mut done = 0;
            while done < items.len() {
                done += tx.push_slice(&items[done..]);
                if done < items.len() {
                    thread::yield_now();
                }
            }
        });
        let mut expect = 0u64;
        let mut use_slice = false;
        while expect < 4 {
            let n = if use_slice {
                let mut out = [u64::MAX; 2];
                let n = rx.pop_slice(&mut out);
                for v in &out[..n] {
                    assert_eq!(*v, expect);
                    expect += 1;
                }
                n
            } else {
                rx.read_batch(2, |v| {
                    assert_eq!(*v, expect);
                    expect += 1;
                })
            };
            use_slice = !use_slice;
            if n == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(rx.try_pop(), None);
        producer.join().unwrap();
    });
}

/// The blocking helpers and shutdown: the consumer must see every item the producer pushed
/// before dropping its end, then `None`, whatever the interleaving.
#[test]
fn blocking_helpers_and_disconnect() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<u64>(2);
        let producer = thread::spawn(move || {
            let mut w = WaitStrategy::BusySpin.waiter();
            for i in 0..3u64 {
                tx.push_blocking(i, &mut w).expect("consumer alive");
            }
            // `tx` dropped here: the consumer must still get all three.
        });
        let mut w = WaitStrategy::BusySpin.waiter();
        let mut got = Vec::new();
        while let Some(v) = rx.pop_blocking(&mut w) {
            got.push(v);
        }
        assert_eq!(got, [0, 1, 2]);
        producer.join().unwrap();
    });
}

/// In-place writes and reads (`push_with` / `pop_with`).
#[test]
fn in_place_push_and_pop() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<(u32, u32)>(2);
        let producer = thread::spawn(move || {
            for i in 0..3u32 {
                while !tx.push_with(|s| s.write((i, i * 10))) {
                    thread::yield_now();
                }
            }
        });
        for i in 0..3u32 {
            while rx.pop_with(|v| assert_eq!(*v, (i, i * 10))).is_none() {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
    });
}
