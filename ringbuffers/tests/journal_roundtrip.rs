//! Functional tests of the journal: write, read back, rollover, cursors, reopen, limits, and the
//! errors a user sees for journals this build must refuse.

use ringbuffers::journal::{
    list_segments, segment_path, verify, Appender, JournalConfig, JournalError, Tailer,
    FORMAT_VERSION, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, TAIL_RESERVE,
};
use std::path::Path;

const SCHEMA: u64 = 0x5eed_1234_abcd_0001;

fn small_cfg() -> JournalConfig {
    JournalConfig {
        segment_size: 64 << 10,
        max_record: 4096,
        ..JournalConfig::new(SCHEMA)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn len_for(seq: u64, max: usize) -> usize {
    (splitmix(seq ^ 0xa5a5) % (max as u64 + 1)) as usize
}

fn fill_for(seq: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (splitmix(seq.wrapping_mul(31).wrapping_add((i / 8) as u64)) >> ((i % 8) * 8)) as u8;
    }
}

fn expected_payload(seq: u64, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; len_for(seq, max)];
    fill_for(seq, &mut v);
    v
}

fn kind_for(seq: u64) -> u16 {
    (seq % 5 + 1) as u16
}

/// Appends `n` records derived from their sequence number; returns the last seq.
fn append_n(app: &mut Appender, n: u64, max: usize) -> u64 {
    let mut last = 0;
    for _ in 0..n {
        let seq = app.next_seq();
        let p = expected_payload(seq, max);
        last = app.append(kind_for(seq), seq as u16, seq * 10, &p).unwrap();
        assert_eq!(last, seq);
    }
    last
}

/// Reads everything currently in the journal and checks it against the generator.
fn read_all_check(dir: &Path, from: u64, max: usize) -> u64 {
    let mut t = Tailer::open_at(dir, Some(SCHEMA), from).unwrap();
    let mut expect = from;
    while let Some(r) = t.next().unwrap() {
        assert_eq!(r.seq, expect);
        assert_eq!(r.kind, kind_for(expect));
        assert_eq!(r.flags, expect as u16);
        assert_eq!(r.timestamp, expect * 10);
        assert_eq!(
            r.payload,
            &expected_payload(expect, max)[..],
            "payload of seq {expect}"
        );
        assert_eq!(
            r.payload.as_ptr() as usize % 8,
            0,
            "payload of seq {expect} not 8-aligned"
        );
        expect += 1;
    }
    expect
}

#[test]
fn append_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), JournalConfig::new(SCHEMA)).unwrap();
    assert!(app.recovery().created);
    assert_eq!(app.next_seq(), 0);
    append_n(&mut app, 2000, 300);
    // Zero-length payloads are legal.
    assert_eq!(app.append(9, 0, 7, &[]).unwrap(), 2000);
    let mut t = Tailer::open(dir.path(), Some(SCHEMA)).unwrap();
    let mut prev_off = 0;
    for seq in 0..2000u64 {
        let r = t.next().unwrap().expect("record present");
        assert_eq!(
            (r.seq, r.kind, r.flags, r.timestamp),
            (seq, kind_for(seq), seq as u16, seq * 10)
        );
        assert_eq!(r.payload, &expected_payload(seq, 300)[..]);
        assert_eq!(r.segment, 0);
        assert!(r.offset >= SEGMENT_HEADER_LEN as u64 && r.offset > prev_off || seq == 0);
        assert_eq!(r.offset % 8, 0);
        prev_off = r.offset;
    }
    let r = t.next().unwrap().unwrap();
    assert_eq!((r.seq, r.kind, r.payload.len()), (2000, 9, 0));
    assert!(
        t.next().unwrap().is_none(),
        "nothing beyond the last record"
    );
    // A live tailer sees records appended after it caught up.
    app.append(3, 0, 1, b"late").unwrap();
    assert_eq!(t.next().unwrap().unwrap().payload, b"late");
    assert_eq!(t.next_seq(), 2002);
    assert_eq!(t.header().schema_hash, SCHEMA);
    assert_eq!(t.header().version, FORMAT_VERSION);

    let st = app.stats();
    assert_eq!(st.records, 2002);
    assert_eq!(st.segments, 1);
    app.flush().unwrap();
    let v = verify(dir.path(), Some(SCHEMA)).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert!(v.live);
    assert_eq!(v.records, 2002);
    assert_eq!((v.first_seq, v.last_seq), (Some(0), Some(2001)));
    assert_eq!((v.first_timestamp, v.last_timestamp), (Some(0), Some(1)));
    assert_eq!(v.bytes, st.bytes);
    assert_eq!(v.counts.values().sum::<u64>(), 2002);
    assert_eq!(v.counts[&9], 1);
    assert_eq!(v.counts[&1], 400);
    app.close().unwrap();
    assert!(!verify(dir.path(), Some(SCHEMA)).unwrap().live);
}

#[test]
fn in_place_append_is_aligned_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 1000] {
        let seq = app
            .append_with(2, 0, 0, len, |buf| {
                assert_eq!(buf.len(), len);
                assert_eq!(buf.as_ptr() as usize % 8, 0, "payload slice is 8-aligned");
                assert!(buf.iter().all(|&b| b == 0), "payload area starts zeroed");
                buf.iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b = i as u8 ^ 0x5a);
            })
            .unwrap();
        assert_eq!(seq as usize + 1, app.stats().records as usize);
    }
    let mut t = Tailer::open(dir.path(), None).unwrap();
    for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 1000] {
        let r = t.next().unwrap().unwrap();
        assert_eq!(r.payload.len(), len);
        assert!(r
            .payload
            .iter()
            .enumerate()
            .all(|(i, &b)| b == i as u8 ^ 0x5a));
        assert_eq!(r.payload.as_ptr() as usize % 8, 0);
    }
}

#[test]
fn panicking_fill_appends_nothing_and_leaves_no_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    app.append(1, 0, 0, b"first").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.append_with(1, 0, 0, 500, |buf| {
            buf.fill(0xff);
            panic!("fill failed");
        })
    }));
    assert!(r.is_err());
    // The next (short) record lands where the garbage was; the slot after it must still be 0.
    assert_eq!(app.append(1, 0, 0, b"x").unwrap(), 1);
    let mut t = Tailer::open(dir.path(), None).unwrap();
    assert_eq!(t.next().unwrap().unwrap().payload, b"first");
    assert_eq!(t.next().unwrap().unwrap().payload, b"x");
    assert!(t.next().unwrap().is_none());
    drop(app);
    assert!(verify(dir.path(), None).unwrap().is_clean());
}

#[test]
fn rollover_across_many_small_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    let n = 60_000u64;
    append_n(&mut app, n, 300);
    let st = app.stats();
    assert!(
        st.segments > 100,
        "expected many segments, got {}",
        st.segments
    );
    assert_eq!(st.rollovers, st.segments - 1);
    assert_eq!(read_all_check(dir.path(), 0, 300), n);
    app.close().unwrap();

    let segs = list_segments(dir.path()).unwrap();
    assert_eq!(
        segs.len() as u64,
        st.segments,
        "no unused pre-allocated segment left after close"
    );
    let mut next_first = 0;
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.header.index, i as u64);
        assert_eq!(s.header.segment_size, 64 << 10);
        assert_eq!(s.len, 64 << 10);
        assert_eq!(s.header.schema_hash, SCHEMA);
        assert_eq!(s.path, segment_path(dir.path(), i as u64));
        assert!(s.header.first_seq >= next_first);
        next_first = s.header.first_seq;
        assert!(s.header.created_unix_ns > 1_600_000_000_000_000_000);
    }
    let v = verify(dir.path(), Some(SCHEMA)).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(v.segments, st.segments);
    assert_eq!(v.records, n);
}

#[test]
fn open_at_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    append_n(&mut app, 20_000, 300);
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() > 10);
    // First record of a later segment, the one before it, the middle of a segment, the start.
    let boundary = segs[7].header.first_seq;
    for from in [0, 1, boundary - 1, boundary, boundary + 1, 12_345, 19_999] {
        let mut t = Tailer::open_at(dir.path(), Some(SCHEMA), from).unwrap();
        let r = t.next().unwrap().unwrap();
        assert_eq!(r.seq, from);
        assert_eq!(r.payload, &expected_payload(from, 300)[..]);
        if from == boundary {
            assert_eq!(r.segment, 7);
            assert_eq!(r.offset, SEGMENT_HEADER_LEN as u64);
        }
        assert_eq!(read_all_check(dir.path(), from, 300), 20_000);
    }
    // Beyond the end: waits for the record to be appended.
    let mut t = Tailer::open_at(dir.path(), Some(SCHEMA), 20_005).unwrap();
    assert!(t.next().unwrap().is_none());
    append_n(&mut app, 4, 300);
    assert!(t.next().unwrap().is_none(), "20_004 is not there yet");
    append_n(&mut app, 2, 300);
    assert_eq!(t.next().unwrap().unwrap().seq, 20_005);
}

#[test]
fn reopen_continues_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_cfg();
    let mut total = 0;
    for round in 0..5u64 {
        let mut app = Appender::open(dir.path(), cfg).unwrap();
        let rec = app.recovery().clone();
        assert_eq!(rec.created, round == 0);
        assert_eq!(rec.next_seq, total);
        assert_eq!(app.next_seq(), total);
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(rec.torn_offset, None);
        append_n(&mut app, 3_000 + round * 100, 300);
        total = app.next_seq();
        if round % 2 == 0 {
            app.close().unwrap();
        } else {
            drop(app);
        }
    }
    assert_eq!(read_all_check(dir.path(), 0, 300), total);
    assert!(verify(dir.path(), Some(SCHEMA)).unwrap().is_clean());
}

#[test]
fn reopen_after_a_full_sealed_segment() {
    // Records that fill a segment to the last usable byte: reopening continues in a completely
    // full (unsealed) segment, and the next append must roll over with the right first_seq.
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 8192,
        max_record: 8192,
        ..JournalConfig::new(SCHEMA)
    };
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    let max = app.max_payload();
    assert_eq!(
        max,
        8192 - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN - TAIL_RESERVE
    );
    app.append(1, 0, 0, &vec![1u8; max]).unwrap();
    app.append(1, 0, 0, &vec![2u8; max]).unwrap();
    assert_eq!(app.segment(), 1);
    assert_eq!(app.segment_remaining(), 0);
    drop(app);
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    assert_eq!(app.next_seq(), 2);
    app.append(1, 0, 0, b"third").unwrap();
    assert_eq!(app.segment(), 2);
    let mut t = Tailer::open(dir.path(), Some(SCHEMA)).unwrap();
    assert_eq!(t.next().unwrap().unwrap().payload, &vec![1u8; max][..]);
    assert_eq!(t.next().unwrap().unwrap().payload, &vec![2u8; max][..]);
    let r = t.next().unwrap().unwrap();
    assert_eq!((r.seq, r.segment, r.payload), (2, 2, &b"third"[..]));
}

#[test]
fn record_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    assert_eq!(app.max_payload(), 4096);
    app.append(1, 0, 0, &[7u8; 4096]).unwrap();
    match app.append(1, 0, 0, &[7u8; 4097]) {
        Err(JournalError::RecordTooLarge {
            len: 4097,
            max: 4096,
        }) => {}
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let e = app
        .append_with(1, 0, 0, 1 << 20, |_| panic!("must not be called"))
        .unwrap_err();
    assert!(matches!(e, JournalError::RecordTooLarge { .. }));
    assert!(
        e.to_string()
            .contains("exceeds the journal's maximum of 4096 bytes"),
        "{e}"
    );
    assert!(matches!(
        app.append(0, 0, 0, b"x"),
        Err(JournalError::InvalidKind)
    ));
    // A failed append changes nothing.
    assert_eq!(app.next_seq(), 1);
    assert_eq!(app.append(1, 0, 0, b"ok").unwrap(), 1);

    // max_record larger than a segment is clamped to what fits.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_size: 64 << 10,
        ..JournalConfig::new(SCHEMA)
    };
    let mut app2 = Appender::open(dir2.path(), cfg).unwrap();
    let max = app2.max_payload();
    assert_eq!(
        max,
        (64 << 10) - SEGMENT_HEADER_LEN - RECORD_HEADER_LEN - TAIL_RESERVE
    );
    for _ in 0..3 {
        app2.append(1, 0, 0, &vec![3u8; max]).unwrap();
    }
    assert!(matches!(
        app2.append(1, 0, 0, &vec![3u8; max + 1]),
        Err(JournalError::RecordTooLarge { .. })
    ));
    let mut t = Tailer::open(dir2.path(), None).unwrap();
    for _ in 0..3 {
        assert_eq!(t.next().unwrap().unwrap().payload.len(), max);
    }

    // Bad segment sizes are refused with a clear message.
    for size in [4096u64, 10_000, 0] {
        let cfg = JournalConfig {
            segment_size: size,
            ..JournalConfig::new(SCHEMA)
        };
        let e = Appender::open(tempfile::tempdir().unwrap().path(), cfg)
            .err()
            .unwrap();
        assert!(matches!(e, JournalError::InvalidConfig { .. }), "{e}");
    }
}

fn one_line(e: &JournalError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error message spans lines: {s}");
    s
}

#[test]
fn schema_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    append_n(&mut app, 10, 100);
    drop(app);
    let other = JournalConfig {
        schema_hash: 0xabcd,
        ..small_cfg()
    };
    let e = Appender::open(dir.path(), other).err().unwrap();
    match &e {
        JournalError::SchemaMismatch {
            found,
            expected,
            path,
        } => {
            assert_eq!((*found, *expected), (SCHEMA, 0xabcd));
            assert!(path.ends_with("0000000000.seg"));
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    let msg = one_line(&e);
    assert!(
        msg.contains("was written with schema 0x5eed1234abcd0001 but this build expects 0xabcd"),
        "{msg}"
    );
    assert!(matches!(
        Tailer::open(dir.path(), Some(0xabcd)),
        Err(JournalError::SchemaMismatch { .. })
    ));
    assert!(matches!(
        Tailer::open_at(dir.path(), Some(0xabcd), 3),
        Err(JournalError::SchemaMismatch { .. })
    ));
    assert!(matches!(
        verify(dir.path(), Some(0xabcd)),
        Err(JournalError::SchemaMismatch { .. })
    ));
    // None = inspection: any schema is accepted.
    let mut t = Tailer::open(dir.path(), None).unwrap();
    assert_eq!(t.header().schema_hash, SCHEMA);
    assert_eq!(t.next().unwrap().unwrap().seq, 0);
    assert!(verify(dir.path(), None).unwrap().is_clean());
}

#[test]
fn truncated_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(segment_path(dir.path(), 0), [0x41u8; 10]).unwrap();
    for e in [
        Appender::open(dir.path(), small_cfg()).err().unwrap(),
        Tailer::open(dir.path(), Some(SCHEMA)).err().unwrap(),
        list_segments(dir.path()).err().unwrap(),
    ] {
        match &e {
            JournalError::TruncatedHeader { len: 10, .. } => {}
            other => panic!("expected TruncatedHeader, got {other:?}"),
        }
        assert!(one_line(&e).contains("is only 10 bytes, shorter than its 64-byte header"));
    }
    // An existing journal whose segment got cut short (but kept a header) is refused as corrupt
    // instead of being mapped and faulting.
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    append_n(&mut app, 10, 100);
    drop(app);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 0))
        .unwrap();
    f.set_len(8192).unwrap();
    let e = Tailer::open(dir.path(), None).err().unwrap();
    assert!(
        matches!(
            e,
            JournalError::Corrupt {
                segment: 0,
                offset: 8192,
                ..
            }
        ),
        "{e}"
    );
    assert!(Appender::open(dir.path(), small_cfg()).is_err());
}

#[test]
fn bad_magic_and_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(segment_path(dir.path(), 0), vec![b'X'; 65536]).unwrap();
    for e in [
        Appender::open(dir.path(), small_cfg()).err().unwrap(),
        Tailer::open(dir.path(), None).err().unwrap(),
    ] {
        assert!(matches!(e, JournalError::BadMagic { .. }), "{e}");
        assert!(one_line(&e).contains("not a journal segment"));
    }

    // A header from a future format version (with a valid checksum for its bytes).
    let dir = tempfile::tempdir().unwrap();
    drop(Appender::open(dir.path(), small_cfg()).unwrap());
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..56]);
    bytes[56..60].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = Tailer::open(dir.path(), None).err().unwrap();
    match &e {
        JournalError::IncompatibleVersion {
            found, expected, ..
        } => {
            assert_eq!((*found, *expected), (FORMAT_VERSION + 1, FORMAT_VERSION))
        }
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
    assert!(matches!(
        Appender::open(dir.path(), small_cfg()),
        Err(JournalError::IncompatibleVersion { .. })
    ));

    // A header whose checksum does not match.
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[40] ^= 1; // first_seq
    std::fs::write(&path, &bytes).unwrap();
    let e = Tailer::open(dir.path(), None).err().unwrap();
    assert!(
        matches!(
            e,
            JournalError::Corrupt {
                segment: 0,
                offset: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(one_line(&e).contains("header checksum mismatch"));

    // Not a journal at all.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Tailer::open(empty.path(), None),
        Err(JournalError::NotAJournal { .. })
    ));
    assert!(matches!(
        verify(&empty.path().join("nope"), None),
        Err(JournalError::NotAJournal { .. })
    ));
}

#[test]
fn second_appender_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    app.append(1, 0, 0, b"a").unwrap();
    let e = Appender::open(dir.path(), small_cfg()).err().unwrap();
    assert!(matches!(e, JournalError::Locked { .. }), "{e}");
    assert!(one_line(&e).contains("already open for appending"));
    // The failed attempt must not have disturbed the live journal.
    app.append(1, 0, 0, b"b").unwrap();
    drop(app);
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    assert_eq!(app.next_seq(), 2);
    app.append(1, 0, 0, b"c").unwrap();
    let mut t = Tailer::open(dir.path(), None).unwrap();
    for want in [b"a", b"b", b"c"] {
        assert_eq!(t.next().unwrap().unwrap().payload, want);
    }
}

#[test]
fn appender_is_send() {
    fn is_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let app = Appender::open(dir.path(), small_cfg()).unwrap();
    is_send(&app);
    let h = std::thread::spawn(move || {
        let mut app = app;
        app.append(1, 0, 0, b"moved").unwrap()
    });
    assert_eq!(h.join().unwrap(), 0);
}

#[test]
fn config_defaults_and_prefault_off() {
    let c = JournalConfig::new(42);
    assert_eq!(
        (c.segment_size, c.schema_hash, c.max_record, c.prefault),
        (64 << 20, 42, 1 << 20, true)
    );
    assert_eq!(c.max_payload(), 1 << 20);

    // Without prefault the helper still prepares segments (they just fault in on first write).
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        prefault: false,
        ..small_cfg()
    };
    let mut app = Appender::open(dir.path(), cfg).unwrap();
    append_n(&mut app, 5_000, 300);
    assert!(app.stats().segments > 5);
    app.flush().unwrap();
    assert_eq!(read_all_check(dir.path(), 0, 300), 5_000);
    drop(app);
    assert!(verify(dir.path(), Some(SCHEMA)).unwrap().is_clean());
}

#[test]
fn unused_preallocated_segments_are_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Appender::open(dir.path(), small_cfg()).unwrap();
    append_n(&mut app, 100, 100);
    // The helper prepares the next segments ahead of time; readers must not see them.
    assert!(app.wait_next_segment_ready(std::time::Duration::from_secs(10)));
    assert!(segment_path(dir.path(), 1).exists());
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    let v = verify(dir.path(), Some(SCHEMA)).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(v.segments, 1);
    assert_eq!(read_all_check(dir.path(), 0, 100), 100);
    drop(app);
    assert!(
        !segment_path(dir.path(), 1).exists(),
        "unused prepared segments are removed on close"
    );
}

/// A writer lock that looks held only for a moment (a child forked by another thread holds a
/// copy of the descriptor until it execs) is not a live writer: `verify` checks the tail and a
/// new appender opens; a lock held throughout is one, and the appender is refused.
#[test]
fn a_lock_held_for_a_moment_is_not_a_live_writer() {
    use std::os::unix::io::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut app = Appender::open(dir.path(), JournalConfig::new(SCHEMA)).unwrap();
        app.append(1, 0, 1, b"x").unwrap();
    }
    let hold = || {
        let f = std::fs::File::open(dir.path().join(ringbuffers::journal::LOCK_FILE)).unwrap();
        // SAFETY: flock on the fd `f` owns; released when `f` is closed.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        f
    };
    // Held for 30 ms, as across a fork and exec.
    let f = hold();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        drop(f);
    });
    assert!(!verify(dir.path(), Some(SCHEMA)).unwrap().live);
    release.join().unwrap();
    let f = hold();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        drop(f);
    });
    Appender::open(dir.path(), JournalConfig::new(SCHEMA)).expect("opens once released");
    release.join().unwrap();
    // Held throughout: a live writer.
    let f = hold();
    assert!(verify(dir.path(), Some(SCHEMA)).unwrap().live);
    assert!(matches!(
        Appender::open(dir.path(), JournalConfig::new(SCHEMA)),
        Err(JournalError::Locked { .. })
    ));
    drop(f);
}
