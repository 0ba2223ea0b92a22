//! Randomised two-thread stress of the SPSC ring: every API on both sides, random batch sizes,
//! random pauses (so the ring is alternately full and empty), tiny capacities to maximise
//! wrap-arounds. Every item carries its sequence number and two check fields derived from it;
//! the consumer asserts exact order (no loss, no duplication, no reordering) and that no item was
//! torn (the fields are wider than a machine word, so a read racing a write shows up as a
//! mismatch).
//!
//! Seeds are fixed so a failure reproduces; set `SPSC_STRESS_SEED` to explore other schedules.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringbuffers::spsc::{self, Consumer, Producer};
use ringbuffers::wait::WaitStrategy;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// 32 bytes: sequence, two check words and the producer's batch id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    seq: u64,
    check: u64,
    neg: u64,
    batch: u64,
}

fn mix(seq: u64) -> u64 {
    // splitmix64 finaliser: every bit of `seq` affects every bit of the check.
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn item(seq: u64, batch: u64) -> Item {
    Item {
        seq,
        check: mix(seq),
        neg: !seq,
        batch,
    }
}

fn seed(base: u64) -> u64 {
    std::env::var("SPSC_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(base, |s| s ^ base)
}

/// Occasionally burns a random number of spin iterations so one side runs ahead of the other.
fn jitter(rng: &mut StdRng) {
    if rng.gen_ratio(1, 64) {
        for _ in 0..rng.gen_range(0..400) {
            std::hint::spin_loop();
        }
    }
}

fn produce(mut tx: Producer<Item>, total: u64, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    // Yield quickly: the test machine has 2 cores shared with other builds, and a spinning
    // producer whose consumer is descheduled would otherwise burn its whole time slice.
    let mut waiter = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
    let cap = tx.capacity();
    let mut next = 0u64;
    let mut batch = 0u64;
    let mut scratch: Vec<Item> = Vec::with_capacity(2 * cap + 1);
    while next < total {
        batch += 1;
        let left = (total - next) as usize;
        let want = rng.gen_range(1..=2 * cap + 1).min(left);
        let pushed = match rng.gen_range(0..4) {
            0 => usize::from(tx.try_push(item(next, batch)).is_ok()),
            1 => usize::from(tx.push_with(|slot| slot.write(item(next, batch)))),
            2 => {
                let base = next;
                tx.write_batch(want, |i, slot| {
                    let it = item(base + i as u64, batch);
                    slot.write(it)
                })
            }
            _ => {
                scratch.clear();
                scratch.extend((0..want as u64).map(|i| item(next + i, batch)));
                tx.push_slice(&scratch)
            }
        };
        assert!(pushed <= want.max(1), "pushed {pushed} > asked {want}");
        assert!(pushed <= cap);
        next += pushed as u64;
        if pushed == 0 {
            if tx.is_disconnected() {
                break; // the consumer failed an assertion; let the test report it
            }
            waiter.idle();
        } else {
            waiter.reset();
        }
        jitter(&mut rng);
    }
    next
}

fn consume(mut rx: Consumer<Item>, total: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut waiter = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
    let cap = rx.capacity();
    let mut expect = 0u64;
    let mut last_batch = 0u64;
    let mut out: Vec<Item> = vec![item(0, 0); 2 * cap + 1];
    let mut check = |it: &Item, expect: &mut u64| {
        assert_eq!(
            it.seq, *expect,
            "seed {seed}: out of order / lost / duplicated item"
        );
        assert_eq!(
            it.check,
            mix(it.seq),
            "seed {seed}: torn or corrupt item {it:?}"
        );
        assert_eq!(it.neg, !it.seq, "seed {seed}: torn or corrupt item {it:?}");
        assert!(
            it.batch >= last_batch,
            "seed {seed}: batch id went backwards {it:?}"
        );
        last_batch = it.batch;
        *expect += 1;
    };
    while expect < total {
        let want = rng.gen_range(1..=2 * cap + 1);
        let got = match rng.gen_range(0..4) {
            0 => rx
                .try_pop()
                .map(|it| check(&it, &mut expect))
                .map_or(0, |_| 1),
            1 => rx.pop_with(|it| check(it, &mut expect)).map_or(0, |_| 1),
            2 => rx.read_batch(want, |it| check(it, &mut expect)),
            _ => {
                let n = rx.pop_slice(&mut out[..want]);
                for it in &out[..n] {
                    check(it, &mut expect);
                }
                n
            }
        };
        assert!(got <= cap);
        if got == 0 {
            waiter.idle();
        } else {
            waiter.reset();
        }
        jitter(&mut rng);
    }
    // The producer stops after `total` and drops its end: nothing more may ever arrive.
    assert_eq!(
        rx.pop_blocking(&mut waiter),
        None,
        "seed {seed}: item beyond the last one"
    );
    assert!(rx.is_empty());
}

/// The tests take turns: each already runs two busy threads, and the test machine has two cores.
/// Running them concurrently only makes every hand-off wait for the scheduler.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn stress(capacity: usize, total: u64, base_seed: u64) {
    let _turn = serial();
    let seed = seed(base_seed);
    let t0 = Instant::now();
    let (tx, rx) = spsc::channel::<Item>(capacity);
    let producer = std::thread::spawn(move || produce(tx, total, seed));
    consume(rx, total, seed.rotate_left(17));
    let produced = producer.join().expect("producer thread panicked");
    assert_eq!(produced, total);
    eprintln!(
        "capacity {capacity}: {total} items in {:.2?} (seed {seed})",
        t0.elapsed()
    );
}

#[test]
fn stress_capacity_2() {
    stress(2, 1_000_000, 0x00C0_FFEE_0002);
}

#[test]
fn stress_capacity_4() {
    stress(4, 1_000_000, 0x00C0_FFEE_0004);
}

#[test]
fn stress_capacity_64() {
    stress(64, 4_000_000, 0x00C0_FFEE_0040);
}

#[test]
fn stress_capacity_1024() {
    stress(1024, 16_000_000, 0x00C0_FFEE_0400);
}

/// A one-byte payload: sequence numbers wrap every 256 items, so this checks that the ring's own
/// index wrap-around (capacity 8 divides 256) never skips or repeats a lap.
#[test]
fn stress_small_items_wrap() {
    let _turn = serial();
    let total: u64 = 1_000_000;
    let (mut tx, mut rx) = spsc::channel::<u8>(8);
    let producer = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed(7));
        let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
        let mut next = 0u64;
        while next < total {
            let want = rng.gen_range(1..=9).min((total - next) as usize);
            let base = next;
            let n = tx.write_batch(want, |i, s| s.write((base + i as u64) as u8));
            next += n as u64;
            if n == 0 {
                if tx.is_disconnected() {
                    break;
                }
                w.idle();
            } else {
                w.reset();
            }
        }
    });
    let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
    let mut expect = 0u64;
    while let Some(b) = rx.pop_blocking(&mut w) {
        assert_eq!(b, expect as u8, "at item {expect}");
        expect += 1;
    }
    producer.join().unwrap();
    assert_eq!(expect, total);
}
