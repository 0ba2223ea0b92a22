//! The append path allocates nothing and takes no page fault after warm-up.
//!
//! [`testkit::CountingAllocator`] counts allocations (and frees) made by the appending thread
//! only, inside [`testkit::count_allocations`]; the helper thread (which creates segment files
//! and does allocate) is deliberately not counted, because it is off the hot path. Page faults
//! are the calling thread's minor-fault count from `getrusage(RUSAGE_THREAD)`.
//!
//! What is measured, exactly:
//! - `within_one_segment`: 1M appends (64-byte payloads, `append` and `append_with`) inside one
//!   128 MiB segment: zero allocations, zero frees, zero page faults.
//! - `across_rollovers_when_prefaulted`: 1.2M appends through 1 MiB segments, i.e. more than
//!   100 rollovers. Before a rollover the test waits (with counting off) until the helper has the
//!   next segment ready; the appends and the rollovers themselves are counted: zero
//!   allocations, zero page faults, zero slow rollovers.
//! - `slow_rollovers_are_counted`: the same flat out with tiny segments, no waiting; the helper
//!   may fall behind, and then the appending thread creates the segment itself. That path may
//!   allocate (file names, the mapping's bookkeeping), so this test only reports the numbers and
//!   checks that allocations never happen without a slow rollover.

use ringbuffers::journal::{Appender, JournalConfig};
use std::time::Duration;

// Per-thread counters: tests of this file run in parallel, and one of them
// (slow_rollovers_are_counted) legitimately allocates; global counters would mix them up.
#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u.ru_minflt
    }
}

/// Counts allocations, frees and minor faults of the calling thread over `f`.
fn measured<R>(acc: &mut (u64, u64, i64), f: impl FnOnce() -> R) -> R {
    let p0 = minor_faults();
    let (r, n) = testkit::count_allocations(f);
    acc.0 += n.allocations;
    acc.1 += n.deallocations;
    acc.2 += minor_faults() - p0;
    r
}

const PAYLOAD: [u8; 64] = [0x42; 64];

#[test]
fn within_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 128 << 20,
        ..JournalConfig::new(7)
    };
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    // Warm-up: touches the code paths, not the pages (those are prefaulted at open).
    for i in 0..10_000u64 {
        app.append(1, 0, i, &PAYLOAD).unwrap();
    }
    let mut acc = (0, 0, 0);
    let before = app.stats();
    measured(&mut acc, || {
        for i in 0..500_000u64 {
            app.append(1, 0, i, &PAYLOAD).unwrap();
        }
        for i in 0..500_000u64 {
            app.append_with(2, 1, i, 64, |b| b.copy_from_slice(&PAYLOAD))
                .unwrap();
        }
    });
    let after = app.stats();
    assert_eq!(
        after.rollovers, before.rollovers,
        "stayed inside one segment"
    );
    assert_eq!(after.records - before.records, 1_000_000);
    assert_eq!(
        (acc.0, acc.1),
        (0, 0),
        "allocations/frees on the append path"
    );
    assert_eq!(
        acc.2, 0,
        "page faults on the append path (segment is prefaulted at open)"
    );
}

#[test]
fn across_rollovers_when_prefaulted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 1 << 20,
        ..JournalConfig::new(7)
    };
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    for i in 0..10_000u64 {
        app.append(1, 0, i, &PAYLOAD).unwrap();
    }
    let mut acc = (0, 0, 0);
    let before = app.stats();
    let rec = ringbuffers::journal::record_len(PAYLOAD.len());
    let mut done = 0u64;
    while done < 1_200_000 {
        // The appends that still fit in this segment...
        let n = (app.segment_remaining() / rec) as u64;
        measured(&mut acc, || {
            for i in 0..n {
                app.append(1, 0, i, &PAYLOAD).unwrap();
            }
        });
        // ...then give the helper time (not counted) and count the append that rolls over.
        assert!(
            app.wait_next_segment_ready(Duration::from_secs(10)),
            "helper never prepared"
        );
        let seg = app.segment();
        measured(&mut acc, || app.append(1, 0, 0, &PAYLOAD).unwrap());
        assert_eq!(app.segment(), seg + 1);
        done += n + 1;
    }
    let after = app.stats();
    let rollovers = after.rollovers - before.rollovers;
    assert!(rollovers >= 100, "only {rollovers} rollovers");
    assert_eq!(after.slow_rollovers, 0);
    assert_eq!(
        (acc.0, acc.1),
        (0, 0),
        "allocations/frees on the append path incl. {rollovers} rollovers"
    );
    assert_eq!(
        acc.2, 0,
        "page faults on the append path incl. {rollovers} rollovers"
    );
    eprintln!("across_rollovers_when_prefaulted: {done} appends, {rollovers} rollovers, 0 allocations, 0 faults");
}

#[test]
fn slow_rollovers_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 64 << 10,
        ..JournalConfig::new(7)
    };
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    let mut acc = (0, 0, 0);
    let before = app.stats();
    measured(&mut acc, || {
        for i in 0..300_000u64 {
            app.append(1, 0, i, &PAYLOAD).unwrap();
        }
    });
    let after = app.stats();
    let slow = after.slow_rollovers - before.slow_rollovers;
    let rollovers = after.rollovers - before.rollovers;
    eprintln!(
        "slow_rollovers_are_counted: {rollovers} rollovers, {slow} slow; {} allocations, {} frees, {} faults on the appending thread",
        acc.0, acc.1, acc.2
    );
    assert!(rollovers > 400);
    if slow == 0 {
        assert_eq!((acc.0, acc.1), (0, 0));
    }
}
