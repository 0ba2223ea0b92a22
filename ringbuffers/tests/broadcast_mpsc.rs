//! Multi-threaded behaviour of the broadcast (disruptor) channel and the cold-path MPSC.

use ringbuffers::broadcast::{self, TryRecvError};
use ringbuffers::mpsc::{self, RecvTimeoutError};
use ringbuffers::wait::WaitStrategy;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tick {
    seq: u64,
    check: u64,
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        check: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5,
    }
}

/// Two subscribers on their own threads each receive all N events, in order, intact; one of them
/// is deliberately slow at times, which must throttle the publisher rather than lose events.
#[test]
fn broadcast_two_subscribers_see_every_event_in_order() {
    const N: u64 = 1_000_000;
    let (mut tx, subs) = broadcast::channel::<Tick>(256, 2);
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(idx, mut sub)| {
            thread::spawn(move || {
                let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
                let mut expect = 0u64;
                let mut rounds = 0u64;
                loop {
                    rounds += 1;
                    // Subscriber 1 uses single receives and stalls now and then.
                    let r = if idx == 1 {
                        if rounds % 4096 == 0 {
                            thread::sleep(Duration::from_micros(200));
                        }
                        match sub.try_recv() {
                            Ok(t) => {
                                assert_eq!(t, tick(expect), "subscriber {idx}");
                                expect += 1;
                                Ok(1)
                            }
                            Err(TryRecvError::Empty) => Ok(0),
                            Err(TryRecvError::Closed) => Err(()),
                        }
                    } else {
                        sub.poll(64, |t| {
                            assert_eq!(*t, tick(expect), "subscriber {idx}");
                            expect += 1;
                        })
                        .map_err(|_| ())
                    };
                    match r {
                        Ok(0) => w.idle(),
                        Ok(_) => w.reset(),
                        Err(()) => break,
                    }
                }
                expect
            })
        })
        .collect();
    let mut w = WaitStrategy::SpinThenYield { spins: 64 }.waiter();
    let mut next = 0u64;
    while next < N {
        if next % 7 == 0 && N - next >= 5 {
            let base = next;
            if tx.try_publish_batch(5, |i, t| *t = tick(base + i as u64)) {
                next += 5;
                w.reset();
            } else {
                w.idle();
            }
        } else {
            tx.publish_blocking(tick(next), &mut w)
                .expect("no subscriber dropped");
            next += 1;
        }
    }
    drop(tx); // closes the channel once the subscribers have drained it
    for r in readers {
        assert_eq!(r.join().expect("subscriber panicked"), N);
    }
}

/// Several producers, one consumer, a buffer far larger than the traffic: everything arrives,
/// per-producer order is preserved, nothing is dropped.
#[test]
fn mpsc_delivers_everything_from_several_producers() {
    const PRODUCERS: u64 = 4;
    const PER: u64 = 50_000;
    let (tx, rx) = mpsc::channel::<(u64, u64)>((PRODUCERS * PER) as usize);
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for s in 0..PER {
                    assert!(tx.try_send((p, s)), "unexpected drop");
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u64; PRODUCERS as usize];
    let mut total = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((p, s)) => {
                assert_eq!(s, next[p as usize], "producer {p} reordered");
                next[p as usize] += 1;
                total += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("stalled after {total} messages"),
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(total, PRODUCERS * PER);
    assert_eq!(rx.dropped(), 0);
}

/// A small buffer and a slow consumer: senders never block; every message is either received
/// (in per-producer order) or counted as dropped, and the two add up exactly.
#[test]
fn mpsc_counts_drops_exactly_under_contention() {
    const PRODUCERS: u64 = 3;
    const PER: u64 = 100_000;
    let (tx, rx) = mpsc::channel::<(u64, u64)>(16);
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                let t0 = Instant::now();
                let mut failed = 0u64;
                for s in 0..PER {
                    if !tx.try_send((p, s)) {
                        failed += 1;
                    }
                }
                (failed, t0.elapsed())
            })
        })
        .collect();
    drop(tx);
    let mut last = [None::<u64>; PRODUCERS as usize];
    let mut received = 0u64;
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        let n = rx.drain(8, |(p, s)| {
            if let Some(prev) = last[p as usize] {
                assert!(s > prev, "producer {p}: {s} after {prev}");
            }
            last[p as usize] = Some(s);
            received += 1;
        });
        if n == 0 {
            match rx.try_recv() {
                Err(mpsc::TryRecvError::Disconnected) => break,
                Ok((p, s)) => {
                    assert!(last[p as usize].is_none_or(|prev| s > prev));
                    last[p as usize] = Some(s);
                    received += 1;
                }
                Err(mpsc::TryRecvError::Empty) => thread::yield_now(),
            }
        } else if rounds % 64 == 0 {
            thread::sleep(Duration::from_micros(50)); // fall behind on purpose
        }
    }
    let mut failed = 0;
    for h in handles {
        let (f, took) = h.join().unwrap();
        failed += f;
        // "Never blocks": 100k non-blocking sends finish quickly even with a stalled consumer.
        assert!(took < Duration::from_secs(10), "sender took {took:?}");
    }
    assert!(
        failed > 0,
        "the consumer was slow on purpose; some sends must have been dropped"
    );
    assert_eq!(rx.dropped(), failed);
    assert_eq!(received + failed, PRODUCERS * PER);
}

/// Deterministic drop counting and the consumer's timeout on an idle channel.
#[test]
fn mpsc_full_channel_and_timeouts() {
    let (tx, rx) = mpsc::channel::<u32>(8);
    let mut sent = 0;
    for i in 0..20 {
        sent += u32::from(tx.try_send(i));
    }
    assert_eq!(sent, 8);
    assert_eq!(tx.dropped(), 12);
    assert_eq!(tx.len(), 8);
    let mut got = Vec::new();
    assert_eq!(rx.drain(usize::MAX, |m| got.push(m)), 8);
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert!(tx.try_send(100));
    assert_eq!(rx.try_recv(), Ok(100));
    let t0 = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t0.elapsed() >= Duration::from_millis(20));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(rx.dropped(), 12);
}
