//! Crash safety.
//!
//! `kill_dash_nine_many_times`: a child process (this test binary re-executed, running only
//! `crash_child_writer`) appends records of random sizes to a journal with small segments and
//! reports progress to the parent over a pipe, only after `append` returned. The parent SIGKILLs
//! it at a random point, then checks that a tailer that has been following the journal live (from
//! the parent process, across every crash) and a fresh tailer both see every reported record
//! intact and never anything torn, reopens the journal (recovery), appends one record itself, and
//! starts the next child on the same directory. Repeated many times.
//!
//! The other tests damage journals by hand: garbage in the middle of a segment (reported with its
//! exact offset, never returned as data), torn tails with and without a commit word (truncated
//! by recovery), and an interrupted rollover (sealed or abandoned by recovery).

use rand::{Rng, SeedableRng};
use ringbuffers::journal::{
    record_len, segment_path, verify, Appender, JournalConfig, JournalError, Tailer,
    SEGMENT_HEADER_LEN,
};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCHEMA: u64 = 0xc4a5_4000;
const CHILD_ENV: &str = "JOURNAL_CRASH_CHILD_DIR";

fn cfg() -> JournalConfig {
    JournalConfig {
        segment_size: 64 << 10,
        max_record: 2048,
        ..JournalConfig::new(SCHEMA)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn len_for(seq: u64) -> usize {
    let h = splitmix(seq ^ 0x77);
    if h % 10 == 0 {
        (h >> 16) as usize % 2049
    } else {
        (h >> 16) as usize % 200
    }
}

fn fill_for(seq: u64, buf: &mut [u8]) {
    for (i, c) in buf.chunks_mut(8).enumerate() {
        let w = splitmix(seq << 20 | i as u64).to_le_bytes();
        c.copy_from_slice(&w[..c.len()]);
    }
}

/// Kind of the empty record the parent appends after each recovery. It is shorter than almost
/// any record the child was writing when killed, so torn bytes recovery failed to zero would
/// show up after it.
const PARENT_KIND: u16 = 9;

fn check_record(r: &ringbuffers::journal::RecordRef<'_>, expect: u64) {
    assert_eq!(r.seq, expect, "sequence gap, duplicate or reorder");
    if r.kind == PARENT_KIND {
        assert!(r.payload.is_empty());
        return;
    }
    assert_eq!(r.kind, (expect % 3 + 1) as u16);
    assert_eq!(r.timestamp, expect ^ 0xfeed);
    let mut want = vec![0u8; len_for(expect)];
    fill_for(expect, &mut want);
    assert!(r.payload == &want[..], "payload of seq {expect} differs");
}

fn append_expected(app: &mut Appender) -> u64 {
    let seq = app.next_seq();
    let got = app
        .append_with((seq % 3 + 1) as u16, 0, seq ^ 0xfeed, len_for(seq), |b| {
            fill_for(seq, b)
        })
        .unwrap();
    assert_eq!(got, seq);
    seq
}

fn raw_write(line: &str) {
    // One write(2) per line: a pipe write below PIPE_BUF is atomic, so the parent sees either the
    // whole line or nothing of it.
    // SAFETY: writing a valid buffer to fd 1.
    let n = unsafe { libc::write(1, line.as_ptr() as *const libc::c_void, line.len()) };
    assert_eq!(n, line.len() as isize);
}

/// The child side. Does nothing unless started by `kill_dash_nine_many_times`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var("JOURNAL_CRASH_CHILD_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut app = Appender::open(Path::new(&dir), cfg()).unwrap();
    // Leading newline: with --nocapture libtest has just printed "test crash_child_writer ... "
    // without one.
    raw_write(&format!("\nSTART {}\n", app.next_seq()));
    loop {
        // Report in small random batches, so most of the child's time is spent inside append
        // and the SIGKILL lands there (or in a rollover) rather than in write(2).
        let batch = rng.gen_range(1..=48);
        let mut last = 0;
        for _ in 0..batch {
            last = append_expected(&mut app);
        }
        raw_write(&format!("A {last}\n"));
    }
}

/// Reads the whole journal with a fresh tailer; returns the number of records.
fn read_all(dir: &Path) -> u64 {
    let mut t = Tailer::open(dir, Some(SCHEMA)).unwrap();
    let mut n = 0;
    loop {
        match t.next() {
            Ok(Some(r)) => {
                check_record(&r, n);
                n += 1;
            }
            Ok(None) => return n,
            Err(e) => panic!("fresh tailer returned an error at seq {n}: {e}"),
        }
    }
}

#[test]
fn kill_dash_nine_many_times() {
    let iterations: u64 = std::env::var("JOURNAL_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(80);
    let seed: u64 = std::env::var("JOURNAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 ^ 0x5eed);
    eprintln!("journal_crash seed {seed} (set JOURNAL_CRASH_SEED to reproduce)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let exe = std::env::current_exe().unwrap();

    // Create the journal so the live tailer can open it before the first child runs.
    let mut app = Appender::open(&dir, cfg()).unwrap();
    append_expected(&mut app);
    drop(app);
    let mut live = Tailer::open(&dir, Some(SCHEMA)).unwrap();
    let mut next_expected = 1u64;
    let mut live_next = 0u64;
    let mut torn_seen = 0;
    let mut interrupted_rollovers = 0;
    let mut in_rollover_segments = 0;
    let t0 = Instant::now();

    for iter in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .env("JOURNAL_CRASH_CHILD_SEED", (seed ^ iter).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(bool, u64)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("START ") {
                    let _ = tx.send((true, v.parse().unwrap()));
                } else if let Some(v) = line.strip_prefix("A ") {
                    let _ = tx.send((false, v.parse().unwrap()));
                }
            }
        });
        let (is_start, start) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child started");
        assert!(is_start);
        assert_eq!(
            start, next_expected,
            "iteration {iter}: the child continues at the next seq"
        );
        let target = start + rng.gen_range(0..4000u64);
        let mut acked: Option<u64> = None;
        // Follow the live journal from this process while the child appends.
        while acked.is_none_or(|a| a < target) {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok((_, v)) => acked = Some(v),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("child died on its own: {e}"),
            }
            // Bounded, so a child that appends faster than we check cannot keep us here.
            for _ in 0..256 {
                let Some(r) = live.next().unwrap() else { break };
                check_record(&r, live_next);
                live_next += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..800)));
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        child.wait().unwrap();
        reader.join().unwrap();
        for (_, v) in rx.try_iter() {
            acked = Some(v);
        }
        let acked = acked.unwrap();

        // 1. The live tailer, which has been following across crashes, sees every acked record
        //    and never anything torn.
        while let Some(r) = live.next().unwrap() {
            check_record(&r, live_next);
            live_next += 1;
        }
        assert!(
            live_next > acked,
            "iteration {iter}: live tailer at {live_next}, acked {acked}"
        );

        // 2. So does a fresh tailer, before recovery has touched anything.
        let present = read_all(&dir);
        assert!(
            present > acked,
            "iteration {iter}: {present} records present, {acked} acked"
        );
        assert_eq!(present, live_next);
        // Before recovery, the only things verify may complain about are the torn tail, or a
        // rollover cut short between the new segment's header and the old one's marker.
        let v = verify(&dir, Some(SCHEMA)).unwrap();
        assert_eq!(v.records, present);
        assert!(v.corruptions.len() <= 1, "{:?}", v.corruptions);
        let mut unsealed = None;
        if let Some(c) = v.corruptions.first() {
            if c.reason.contains("without an end-of-segment marker") {
                unsealed = Some(c.segment);
                interrupted_rollovers += 1;
            } else {
                assert!(
                    c.reason.contains("after the last committed record"),
                    "{c:?}"
                );
                torn_seen += 1;
            }
        }

        // 3. Recovery keeps every record, truncates the rest, and appending continues.
        let mut app = Appender::open(&dir, cfg()).unwrap();
        let rep = app.recovery().clone();
        assert_eq!(rep.next_seq, present, "iteration {iter}: {rep:?}");
        assert_eq!(rep.sealed_segment, unsealed, "iteration {iter}: {rep:?}");
        assert_eq!(app.next_seq(), present);
        if rep.records == 0 {
            in_rollover_segments += 1;
        }
        assert_eq!(app.append(PARENT_KIND, 0, 0, &[]).unwrap(), present);
        next_expected = present + 1;
        app.close().unwrap();
        let v = verify(&dir, Some(SCHEMA)).unwrap();
        assert!(
            v.is_clean(),
            "iteration {iter} after recovery: {:?}",
            v.corruptions
        );
        assert_eq!(v.records, present + 1);
        assert_eq!(v.last_seq, Some(present));
    }
    while let Some(r) = live.next().unwrap() {
        check_record(&r, live_next);
        live_next += 1;
    }
    assert_eq!(live_next, read_all(&dir));
    eprintln!(
        "journal_crash: {iterations} kills, {live_next} records, {torn_seen} kills left a torn tail, \
         {interrupted_rollovers} interrupted a rollover, {in_rollover_segments} reopened in a \
         fresh segment, {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

/// Builds a closed journal of `n` records; returns (segment, offset, payload length) of each.
fn build(dir: &Path, n: u64) -> Vec<(u64, u64, usize)> {
    let mut app = Appender::open(dir, cfg()).unwrap();
    for _ in 0..n {
        append_expected(&mut app);
    }
    app.close().unwrap();
    let mut t = Tailer::open(dir, Some(SCHEMA)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = t.next().unwrap() {
        out.push((r.segment, r.offset, r.payload.len()));
    }
    assert_eq!(out.len() as u64, n);
    out
}

fn write_at(dir: &Path, segment: u64, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir, segment))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(dir: &Path, segment: u64, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(segment_path(dir, segment)).unwrap();
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, offset).unwrap();
    v
}

/// Reads with a fresh tailer until it errors; returns (records read, the error).
fn read_until_error(dir: &Path) -> (u64, Option<JournalError>) {
    let mut t = Tailer::open(dir, Some(SCHEMA)).unwrap();
    let mut n = 0;
    loop {
        match t.next() {
            Ok(Some(r)) => {
                check_record(&r, n);
                n += 1;
            }
            Ok(None) => return (n, None),
            Err(e) => {
                // The tailer stays on the bad record: the same error again, no data.
                let again = t.next().unwrap_err();
                assert_eq!(again.to_string(), e.to_string());
                return (n, Some(e));
            }
        }
    }
}

#[test]
fn garbage_in_payload_is_reported_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = build(dir, 3000);
    // A record in the middle of segment 2 with a non-empty payload.
    let k = recs.iter().position(|r| r.0 == 2 && r.2 > 16).unwrap() + 3;
    let (seg, off, plen) = recs[k];
    assert!(plen > 0);
    write_at(dir, seg, off + 32 + (plen as u64 / 2), &[0xde, 0xad]);

    let (n, err) = read_until_error(dir);
    assert_eq!(
        n, k as u64,
        "every record before the damaged one is returned"
    );
    match err {
        Some(JournalError::Corrupt {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!((segment, offset), (seg, off));
            assert!(reason.contains("checksum mismatch"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // verify pinpoints it, resyncs on the next record (its header still gives the length), and
    // checks everything else.
    let v = verify(dir, Some(SCHEMA)).unwrap();
    assert_eq!(v.corruptions.len(), 1, "{:?}", v.corruptions);
    let c = &v.corruptions[0];
    assert_eq!((c.segment, c.offset), (seg, off));
    assert_eq!(c.resumed_at, Some((seg, recs[k + 1].1)));
    assert_eq!(v.records, 3000 - 1);
    assert!(!v.counts.is_empty());
}

#[test]
fn garbage_over_a_record_header_is_reported_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = build(dir, 3000);
    let k = recs.iter().position(|r| r.0 == 3).unwrap() + 5;
    let (seg, off, _) = recs[k];
    write_at(dir, seg, off, &[0xab; 24]);

    let (n, err) = read_until_error(dir);
    assert_eq!(n, k as u64);
    match err {
        Some(JournalError::Corrupt {
            segment, offset, ..
        }) => assert_eq!((segment, offset), (seg, off)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The length itself is garbage: no safe resync inside the segment; verify continues at the
    // next segment, whose header is independently checksummed.
    let v = verify(dir, Some(SCHEMA)).unwrap();
    assert_eq!(v.corruptions.len(), 1, "{:?}", v.corruptions);
    let c = &v.corruptions[0];
    assert_eq!((c.segment, c.offset, c.resumed_at), (seg, off, None));
    let lost = recs.iter().filter(|r| r.0 == seg && r.1 >= off).count() as u64;
    assert_eq!(v.records, 3000 - lost);
    assert_eq!(v.last_seq, Some(2999));

    // A damaged segment header is reported too.
    write_at(dir, 1, 40, &[0xff]);
    let v = verify(dir, Some(SCHEMA)).unwrap();
    assert!(v
        .corruptions
        .iter()
        .any(|c| c.segment == 1 && c.offset == 0 && c.reason.contains("header checksum")));
    let (n, err) = read_until_error(dir);
    assert_eq!(n, recs.iter().filter(|r| r.0 == 0).count() as u64);
    assert!(
        matches!(
            err,
            Some(JournalError::Corrupt {
                segment: 1,
                offset: 0,
                ..
            })
        ),
        "{err:?}"
    );
}

/// End offset (where the next record goes) of a closed journal's last segment.
fn end_of(recs: &[(u64, u64, usize)]) -> (u64, u64) {
    let &(seg, off, plen) = recs.last().unwrap();
    (seg, off + record_len(plen) as u64)
}

#[test]
fn torn_tail_with_commit_word_and_bad_crc_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = build(dir, 500);
    let (seg, end) = end_of(&recs);
    // A "record" whose commit word is set but whose bytes do not match its CRC: what power loss
    // can leave when the page holding the commit word reached the disk but not the payload.
    let mut fake = vec![0u8; 64];
    fake[0..4].copy_from_slice(&64u32.to_le_bytes());
    fake[4..6].copy_from_slice(&1u16.to_le_bytes());
    fake[8..16].copy_from_slice(&500u64.to_le_bytes());
    fake[24..28].copy_from_slice(&32u32.to_le_bytes());
    fake[28..32].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    fake[32..].fill(0x99);
    write_at(dir, seg, end, &fake);

    // Never returned as data.
    let (n, err) = read_until_error(dir);
    assert_eq!(n, 500);
    assert!(
        matches!(err, Some(JournalError::Corrupt { offset, .. }) if offset == end),
        "{err:?}"
    );

    let mut app = Appender::open(dir, cfg()).unwrap();
    let rep = app.recovery().clone();
    assert_eq!(rep.next_seq, 500);
    assert_eq!((rep.segment, rep.offset), (seg, end));
    assert_eq!(rep.torn_offset, Some(end));
    assert!(
        rep.torn_reason
            .as_deref()
            .unwrap()
            .contains("checksum mismatch"),
        "{rep:?}"
    );
    assert_eq!(rep.truncated_bytes, 64);
    assert_eq!(
        read_at(dir, seg, end, 64),
        vec![0u8; 64],
        "torn bytes zeroed"
    );
    assert_eq!(append_expected(&mut app), 500);
    drop(app);
    assert_eq!(read_all(dir), 501);
    assert!(verify(dir, Some(SCHEMA)).unwrap().is_clean());
}

#[test]
fn torn_tail_without_commit_word_is_zeroed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = build(dir, 500);
    let (seg, end) = end_of(&recs);
    // A record the writer was killed in the middle of: commit word still 0, but header fields and
    // part of a long payload written. If recovery left these bytes, a later short record would end
    // where this garbage is, and the next commit word read would be garbage.
    write_at(dir, seg, end + 4, &[0x5a; 600]);

    // Before recovery a tailer sees a clean end; verify (no appender live) flags the dirty tail.
    let (n, err) = read_until_error(dir);
    assert_eq!(n, 500);
    assert!(err.is_none(), "{err:?}");
    let v = verify(dir, Some(SCHEMA)).unwrap();
    assert_eq!(v.records, 500);
    assert_eq!(v.corruptions.len(), 1);
    assert_eq!(
        (v.corruptions[0].segment, v.corruptions[0].offset),
        (seg, end)
    );

    let mut app = Appender::open(dir, cfg()).unwrap();
    let rep = app.recovery().clone();
    assert_eq!(rep.next_seq, 500);
    assert_eq!(rep.torn_offset, Some(end));
    assert_eq!(rep.truncated_bytes, 604);
    assert_eq!(read_at(dir, seg, end, 604), vec![0u8; 604]);
    // A short record right where the garbage was.
    app.append(1, 0, 0, b"short").unwrap();
    let mut t = Tailer::open_at(dir, Some(SCHEMA), 500).unwrap();
    assert_eq!(t.next().unwrap().unwrap().payload, b"short");
    assert!(
        t.next().unwrap().is_none(),
        "nothing (and no garbage) after the new record"
    );
    drop(app);
    assert!(verify(dir, Some(SCHEMA)).unwrap().is_clean());
}

#[test]
fn interrupted_rollover_is_sealed_on_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Fill segment 0, roll into segment 1 with exactly one record.
    let mut app = Appender::open(dir, cfg()).unwrap();
    while app.segment() == 0 {
        append_expected(&mut app);
    }
    let total = app.next_seq();
    app.close().unwrap();
    let recs = {
        let mut t = Tailer::open(dir, Some(SCHEMA)).unwrap();
        let mut v = Vec::new();
        while let Some(r) = t.next().unwrap() {
            v.push((r.segment, r.offset, r.payload.len()));
        }
        v
    };
    let last0 = recs.iter().rfind(|r| r.0 == 0).copied().unwrap();
    let marker_at = last0.1 + record_len(last0.2) as u64;
    assert_eq!(read_at(dir, 0, marker_at, 4), u32::MAX.to_le_bytes());

    // Case 1: the appender died after writing segment 1's header (and here even a record) but
    // before the end-of-segment marker of segment 0 was stored.
    write_at(dir, 0, marker_at, &[0; 4]);
    let (n, _) = read_until_error(dir);
    assert!(
        n < total,
        "without the marker a tailer cannot leave segment 0"
    );
    let app = Appender::open(dir, cfg()).unwrap();
    assert_eq!(app.recovery().sealed_segment, Some(0));
    assert_eq!(app.next_seq(), total);
    drop(app);
    assert_eq!(read_all(dir), total);
    assert!(verify(dir, Some(SCHEMA)).unwrap().is_clean());

    // Case 2 (power loss): segment 1 was started but holds no record, and segment 0 lost its
    // last record and its marker. Recovery abandons segment 1 and continues in segment 0.
    let seg1_len = 64 << 10;
    write_at(
        dir,
        1,
        SEGMENT_HEADER_LEN as u64,
        &vec![0u8; seg1_len - SEGMENT_HEADER_LEN],
    );
    write_at(
        dir,
        0,
        last0.1,
        &vec![0u8; (marker_at - last0.1) as usize + 4],
    );
    let mut app = Appender::open(dir, cfg()).unwrap();
    let rep = app.recovery().clone();
    assert_eq!(rep.removed_segments, vec![1]);
    assert_eq!((rep.segment, rep.offset), (0, last0.1));
    let seq_last0 = recs.iter().filter(|r| r.0 == 0).count() as u64 - 1;
    assert_eq!(rep.next_seq, seq_last0);
    assert!(!segment_path(dir, 1).exists() || app.segment() == 1);
    assert_eq!(append_expected(&mut app), seq_last0);
    drop(app);
    assert_eq!(read_all(dir), seq_last0 + 1);
    assert!(verify(dir, Some(SCHEMA)).unwrap().is_clean());
}
