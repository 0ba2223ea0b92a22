//! One appender thread and several tailer threads on the same journal at once: millions of
//! records of random sizes through hundreds of small segments. Every tailer checks every record
//! (sequence, kind, flags, timestamp, length, payload bytes; the tailer itself verifies the
//! CRC), so loss, duplication, reordering or a torn read fail the test.

use ringbuffers::journal::{verify, Appender, JournalConfig, Tailer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCHEMA: u64 = 0x57_2e55;
const MAX_LEN: u64 = 256;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn len_for(seq: u64) -> usize {
    // Mostly small records, some large ones, and now and then an empty one.
    let h = splitmix(seq);
    match h % 16 {
        0 => 0,
        1 => (h >> 8) as usize % 2048,
        _ => (h >> 8) as usize % (MAX_LEN as usize + 1),
    }
}

fn word(seq: u64, i: usize) -> u64 {
    splitmix(seq.wrapping_mul(0x1000_0000_01b3) ^ i as u64)
}

fn fill_for(seq: u64, buf: &mut [u8]) {
    let mut chunks = buf.chunks_exact_mut(8);
    for (i, c) in (&mut chunks).enumerate() {
        c.copy_from_slice(&word(seq, i).to_le_bytes());
    }
    let i = buf.len() / 8;
    let rem = buf.len() % 8;
    let last = word(seq, i).to_le_bytes();
    buf[i * 8..].copy_from_slice(&last[..rem]);
}

fn payload_ok(seq: u64, p: &[u8]) -> bool {
    if p.len() != len_for(seq) {
        return false;
    }
    let mut chunks = p.chunks_exact(8);
    for (i, c) in (&mut chunks).enumerate() {
        if c != word(seq, i).to_le_bytes() {
            return false;
        }
    }
    let i = p.len() / 8;
    chunks.remainder() == &word(seq, i).to_le_bytes()[..p.len() % 8]
}

/// Follows the journal from `from` until `end`, checking every record; returns records seen.
fn tail(dir: &std::path::Path, from: u64, end: u64, open_at: bool) -> u64 {
    let mut t = if open_at {
        Tailer::open_at(dir, Some(SCHEMA), from).unwrap()
    } else {
        Tailer::open(dir, Some(SCHEMA)).unwrap()
    };
    let mut expect = from;
    let mut idle = 0u32;
    let deadline = Instant::now() + Duration::from_secs(120);
    while expect < end {
        match t.next() {
            Ok(Some(r)) => {
                idle = 0;
                assert_eq!(r.seq, expect, "lost, duplicated or reordered record");
                assert_eq!(r.kind, (expect % 7 + 1) as u16, "kind of seq {expect}");
                assert_eq!(r.flags, (expect >> 3) as u16, "flags of seq {expect}");
                assert_eq!(
                    r.timestamp,
                    expect.wrapping_mul(1_000_003),
                    "timestamp of seq {expect}"
                );
                assert_eq!(r.payload.as_ptr() as usize % 8, 0);
                assert!(
                    payload_ok(expect, r.payload),
                    "payload of seq {expect} (len {})",
                    r.payload.len()
                );
                expect += 1;
            }
            Ok(None) => {
                idle += 1;
                if idle < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                    assert!(Instant::now() < deadline, "tailer stuck at seq {expect}");
                }
            }
            Err(e) => panic!("tailer error at seq {expect}: {e}"),
        }
    }
    expect - from
}

#[test]
fn one_appender_many_tailers() {
    let n: u64 = 2_000_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 1 << 20,
        max_record: 4096,
        ..JournalConfig::new(SCHEMA)
    };
    let app = Appender::open(dir.path(), cfg).unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();

    let mut tailers = Vec::new();
    // Three tailers from the start, following the writer live.
    for _ in 0..3 {
        let d = dir.path().to_path_buf();
        tailers.push(std::thread::spawn(move || tail(&d, 0, n, false)));
    }
    // One that starts at a seq that does not exist yet and must wait for it.
    {
        let d = dir.path().to_path_buf();
        tailers.push(std::thread::spawn(move || tail(&d, n / 3, n, true)));
    }
    // One that joins late and has to catch up through many sealed segments.
    {
        let d = dir.path().to_path_buf();
        let p = Arc::clone(&progress);
        tailers.push(std::thread::spawn(move || {
            while p.load(Ordering::Relaxed) < n / 2 {
                std::thread::sleep(Duration::from_millis(5));
            }
            tail(&d, 0, n, false)
        }));
    }

    let writer = {
        let p = Arc::clone(&progress);
        std::thread::spawn(move || {
            let mut app = app;
            for seq in 0..n {
                let len = len_for(seq);
                let (kind, flags, ts) = (
                    (seq % 7 + 1) as u16,
                    (seq >> 3) as u16,
                    seq.wrapping_mul(1_000_003),
                );
                let got = if seq % 2 == 0 {
                    app.append_with(kind, flags, ts, len, |b| fill_for(seq, b))
                        .unwrap()
                } else {
                    let mut v = [0u8; 2048];
                    fill_for(seq, &mut v[..len]);
                    app.append(kind, flags, ts, &v[..len]).unwrap()
                };
                assert_eq!(got, seq);
                if seq % 4096 == 0 {
                    p.store(seq, Ordering::Relaxed);
                }
            }
            p.store(n, Ordering::Relaxed);
            let st = app.stats();
            app.close().unwrap();
            st
        })
    };

    let st = writer.join().unwrap();
    let write_s = t0.elapsed().as_secs_f64();
    let seen: Vec<u64> = tailers.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(seen, vec![n, n, n, n - n / 3, n]);
    assert_eq!(st.records, n);
    assert!(
        st.segments > 200,
        "expected many rollovers, got {} segments",
        st.segments
    );
    eprintln!(
        "stress: {n} records, {} segments ({} slow rollovers), {:.1} MB, writer {:.2}s, all tailers {:.2}s",
        st.segments,
        st.slow_rollovers,
        st.bytes as f64 / 1e6,
        write_s,
        t0.elapsed().as_secs_f64()
    );
    let v = verify(dir.path(), Some(SCHEMA)).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(v.records, n);
    assert_eq!(v.segments, st.segments);
    assert_eq!((v.first_seq, v.last_seq), (Some(0), Some(n - 1)));
}
