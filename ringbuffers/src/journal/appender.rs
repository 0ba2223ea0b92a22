//! The single writer of a journal: open (create or recover), the wait-free append, rollover,
//! flush.

use super::format::{
    last_nonzero_end, read_slot, record_crc, record_len, HeaderState, SegmentHeader, Slot,
    END_OF_SEGMENT, FORMAT_VERSION, RECORD_HEADER_LEN, R_CRC, R_FLAGS, R_KIND, R_LEN, R_SEQ,
    R_TIMESTAMP, SEGMENT_HEADER_LEN, TAIL_RESERVE,
};
use super::prefault::{self, lock, Retired, Shared, NO_WANT};
use super::segment::{
    self, io_err, read_header, segment_files, segment_path, PrepareError, Prepared,
};
use super::{JournalConfig, JournalError};
use memmap2::MmapRaw;
use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What [`Appender::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The directory held no segment: a fresh journal was created.
    pub created: bool,
    /// Segment the appender continues in.
    pub segment: u64,
    /// Byte offset in that segment where the next record goes.
    pub offset: u64,
    /// Sequence number the next record gets.
    pub next_seq: u64,
    /// Whole, checksum-verified records found in that segment on open.
    pub records: u64,
    /// Offset of the torn tail (first bad or uncommitted-but-dirty slot), if there was one.
    pub torn_offset: Option<u64>,
    /// Why the tail at `torn_offset` was rejected.
    pub torn_reason: Option<String>,
    /// Bytes zeroed after the last good record (from `torn_offset` to the last non-zero byte).
    pub truncated_bytes: u64,
    /// A segment whose missing end-of-segment marker was written (the previous appender died
    /// between starting the next segment and sealing this one).
    pub sealed_segment: Option<u64>,
    /// Segment files deleted: pre-allocated but never started, or started but abandoned because
    /// the segment before them had lost records.
    pub removed_segments: Vec<u64>,
}

/// Counters of one [`Appender`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppenderStats {
    /// Records appended.
    pub records: u64,
    /// Bytes appended (record headers and padding included).
    pub bytes: u64,
    /// Segments written into (the one opened plus one per rollover).
    pub segments: u64,
    /// Rollovers to a new segment.
    pub rollovers: u64,
    /// Rollovers where the helper had not prepared the next segment in time, so the appending
    /// thread created it itself (file-system syscalls, and page faults on first touch).
    pub slow_rollovers: u64,
    /// Segments the helper thread prepared.
    pub prepared_by_helper: u64,
    /// Retired segments the appending thread had to unmap itself (retire queue full).
    pub sync_retires: u64,
}

/// The segment currently being appended to.
struct Active {
    index: u64,
    map: MmapRaw,
    file: File,
    path: PathBuf,
    len: usize,
    /// Offset up to which the segment has been msync'ed.
    flushed: usize,
}

impl Active {
    fn from_prepared(p: Prepared, len: usize) -> Active {
        Active {
            index: p.index,
            map: p.map,
            file: p.file,
            path: p.path,
            len,
            flushed: 0,
        }
    }
}

/// Zeroes a payload area if the caller's `fill` panics, so no half-written bytes are left where
/// the next record's commit word may land.
struct ZeroOnUnwind {
    ptr: *mut u8,
    len: usize,
}

impl Drop for ZeroOnUnwind {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the payload area inside the active mapping, reserved by the
        // append that created this guard; nothing has committed it.
        unsafe { std::ptr::write_bytes(self.ptr, 0, self.len) };
    }
}

/// The one writer of a journal directory.
///
/// `Send` (it may be created on one thread and moved to the pinned thread that appends) but not
/// `Sync`: appending needs `&mut self`, and nothing is gained by sharing it.
pub struct Appender {
    // Hot fields first.
    base: *mut u8,
    pos: usize,
    limit: usize,
    next_seq: u64,
    max_payload: usize,
    stats: AppenderStats,
    seg: Active,
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
    /// Oldest segment that may hold appended bytes not yet made durable by `flush`.
    unsynced_from: u64,
    dir_dirty: bool,
    cfg: JournalConfig,
    dir: PathBuf,
    recovery: RecoveryReport,
    _lock: File,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: `base` points into `seg.map`, which the Appender owns and which moves with it; no other
// thread accesses the active mapping through this pointer. The helper thread only touches
// segments handed to it (retired) or not yet handed over (prepared).
unsafe impl Send for Appender {}

struct ScanResult {
    /// Offset after the last good record (where the next record or the marker goes).
    end: usize,
    next_seq: u64,
    records: u64,
    eos: bool,
    bad: Option<String>,
}

/// Walks a segment from its first record, stopping at the first slot that is empty, the
/// end-of-segment marker, or bad.
///
/// # Safety
/// `base` maps `len` bytes of a segment nobody is appending to (the caller holds the lock).
unsafe fn scan(base: *const u8, len: usize, first_seq: u64) -> ScanResult {
    let mut off = SEGMENT_HEADER_LEN;
    let mut seq = first_seq;
    let mut records = 0;
    loop {
        // SAFETY: off is 8-aligned and off + TAIL_RESERVE <= len (records never cross
        // len - TAIL_RESERVE); the segment is quiescent.
        match unsafe { read_slot(base, len, off, seq) } {
            Slot::Record(r) => {
                off += r.len;
                seq += 1;
                records += 1;
            }
            Slot::Empty => {
                return ScanResult {
                    end: off,
                    next_seq: seq,
                    records,
                    eos: false,
                    bad: None,
                }
            }
            Slot::EndOfSegment => {
                return ScanResult {
                    end: off,
                    next_seq: seq,
                    records,
                    eos: true,
                    bad: None,
                }
            }
            Slot::Bad { reason, .. } => {
                return ScanResult {
                    end: off,
                    next_seq: seq,
                    records,
                    eos: false,
                    bad: Some(reason),
                }
            }
        }
    }
}

/// A recovered segment mapped read-write during open.
struct Recovered {
    index: u64,
    path: PathBuf,
    header: SegmentHeader,
    file: File,
    map: MmapRaw,
    scan: ScanResult,
}

impl Recovered {
    fn load(index: u64, path: PathBuf, header: SegmentHeader) -> Result<Recovered, JournalError> {
        let (file, map) = segment::map_rw(&path, header.segment_size)?;
        // SAFETY: we hold the journal lock, so no appender writes this mapping.
        let scan = unsafe { scan(map.as_ptr(), header.segment_size as usize, header.first_seq) };
        Ok(Recovered {
            index,
            path,
            header,
            file,
            map,
            scan,
        })
    }

    fn len(&self) -> usize {
        self.header.segment_size as usize
    }

    /// Zeroes every non-zero byte from `from` to the end of the segment; returns how many bytes
    /// the zeroed range spans (0 if it was clean).
    fn zero_from(&self, from: usize) -> Result<u64, JournalError> {
        let base = self.map.as_mut_ptr();
        // SAFETY: [from, len) is inside the mapping; we hold the lock, nobody writes it.
        let Some(end) = (unsafe { last_nonzero_end(base, from, self.len()) }) else {
            return Ok(0);
        };
        // SAFETY: as above; zeroing uncommitted/torn bytes never touches a record a reader could
        // have accepted (readers stop at `from`).
        unsafe { std::ptr::write_bytes(base.add(from), 0, end - from) };
        self.map
            .flush_range(from, end - from)
            .map_err(io_err(&self.path))?;
        Ok((end - from) as u64)
    }

    /// Writes the end-of-segment marker after the last good record.
    fn seal(&self) -> Result<(), JournalError> {
        self.zero_from(self.scan.end)?;
        // SAFETY: scan.end is 8-aligned and scan.end + TAIL_RESERVE <= len.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(self.scan.end) as *mut u32) }
            .store(END_OF_SEGMENT, Ordering::Release);
        self.map
            .flush_range(self.scan.end, TAIL_RESERVE)
            .map_err(io_err(&self.path))
    }
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// How long [`flock_within`] retries a held lock (then `take_lock` reports `Locked`).
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Takes the advisory writer lock of `dir` (`journal.lock`), or fails with `Locked`.
fn take_lock(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(segment::LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    if flock_within(&f, libc::LOCK_EX).map_err(|source| JournalError::Io {
        path: path.clone(),
        source,
    })? {
        Ok(f)
    } else {
        Err(JournalError::Locked { path })
    }
}

/// Takes flock `op` (`LOCK_EX` or `LOCK_SH`) on `f`, retrying for up to [`LOCK_RETRY`] while
/// another holder has it; `Ok(false)` if it is still held then.
///
/// Why retry: a flock belongs to the open file description, which a `fork` shares. While any
/// thread of this process is between `fork` and `exec` (spawning a child), the child holds a
/// copy of every descriptor, so a lock just released by `drop` can still look held for a
/// moment. A short bounded retry tells that apart from a journal really open elsewhere.
pub(crate) fn flock_within(f: &File, op: libc::c_int) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        // SAFETY: flock on an fd `f` owns, valid for the call.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(e);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

impl Appender {
    /// Opens the journal in `dir` for appending, creating the directory and the first segment if
    /// needed, otherwise recovering: every segment header is checked (magic, version, checksum,
    /// schema), the last segment (and the one before it) is scanned, a torn tail is zeroed, and
    /// appending continues after the last whole record. See [`RecoveryReport`].
    ///
    /// Fails with `Locked` if another appender (in any process) has the journal open, and with
    /// `SchemaMismatch` / `IncompatibleVersion` if the journal was written by an incompatible
    /// build.
    pub fn open(dir: &Path, cfg: JournalConfig) -> Result<Appender, JournalError> {
        cfg.validate()?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = take_lock(dir)?;
        segment::remove_prep_leftovers(dir)?;
        let mut report = RecoveryReport::default();

        // Headers of every segment; trailing pre-allocated (all-zero header) files are dropped.
        let mut segs: Vec<(u64, PathBuf, SegmentHeader)> = Vec::new();
        let files = segment_files(dir)?;
        let mut blank: Vec<(u64, PathBuf)> = Vec::new();
        for (idx, path) in files {
            match read_header(&path, idx)?.0 {
                HeaderState::Unused => blank.push((idx, path)),
                HeaderState::Valid(h) => {
                    if let Some((bidx, _)) = blank.first() {
                        return Err(JournalError::Corrupt {
                            segment: *bidx,
                            offset: 0,
                            reason: format!("segment header is blank but segment {idx} follows it"),
                        });
                    }
                    h.check_schema(&path, Some(cfg.schema_hash))?;
                    if let Some((pidx, _, _)) = segs.last() {
                        if *pidx + 1 != idx {
                            return Err(JournalError::Corrupt {
                                segment: idx,
                                offset: 0,
                                reason: format!("segment {} is missing", *pidx + 1),
                            });
                        }
                    }
                    segs.push((idx, path, h));
                }
            }
        }
        for (idx, path) in blank {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            report.removed_segments.push(idx);
        }

        let max_payload = cfg.max_payload();
        let shared = Shared::new(dir.to_path_buf(), cfg.segment_size, cfg.prefault);
        let (active, pos, next_seq) = match segs.pop() {
            None => {
                report.created = true;
                let h = SegmentHeader {
                    version: FORMAT_VERSION,
                    schema_hash: cfg.schema_hash,
                    index: 0,
                    segment_size: cfg.segment_size,
                    first_seq: 0,
                    created_unix_ns: unix_ns(),
                };
                let p = create_sync(dir, &h, cfg.prefault)?;
                (
                    Active::from_prepared(p, cfg.segment_size as usize),
                    SEGMENT_HEADER_LEN,
                    0,
                )
            }
            Some((li, lpath, lh)) => {
                let mut last = Recovered::load(li, lpath, lh)?;
                if let Some((pi, ppath, ph)) = segs.pop() {
                    let prev = Recovered::load(pi, ppath, ph)?;
                    if !prev.scan.eos {
                        if prev.scan.next_seq == last.header.first_seq {
                            // Died between writing the next segment's header and sealing this one.
                            prev.seal()?;
                            report.sealed_segment = Some(prev.index);
                        } else if last.scan.records == 0 && last.scan.bad.is_none() {
                            // The next segment was started but this one lost its tail (power
                            // loss): abandon the empty newer segment and continue here.
                            let (gone, gone_path) = (last.index, last.path.clone());
                            drop(last);
                            std::fs::remove_file(&gone_path).map_err(io_err(&gone_path))?;
                            report.removed_segments.push(gone);
                            last = prev;
                        } else {
                            return Err(JournalError::Corrupt {
                                segment: prev.index,
                                offset: prev.scan.end as u64,
                                reason: format!(
                                    "segment ends at seq {} without an end-of-segment marker, but \
                                     segment {} starts at seq {}",
                                    prev.scan.next_seq, last.index, last.header.first_seq
                                ),
                            });
                        }
                    } else if prev.scan.next_seq != last.header.first_seq {
                        return Err(JournalError::Corrupt {
                            segment: last.index,
                            offset: 0,
                            reason: format!(
                                "segment starts at seq {} but segment {} ended at seq {}",
                                last.header.first_seq, prev.index, prev.scan.next_seq
                            ),
                        });
                    }
                }
                let s = &last.scan;
                report.records = s.records;
                if s.eos {
                    // The last segment is full and sealed: start the next one.
                    let h = SegmentHeader {
                        version: FORMAT_VERSION,
                        schema_hash: cfg.schema_hash,
                        index: last.index + 1,
                        segment_size: cfg.segment_size,
                        first_seq: s.next_seq,
                        created_unix_ns: unix_ns(),
                    };
                    let next_seq = s.next_seq;
                    report.records = 0;
                    let p = create_sync(dir, &h, cfg.prefault)?;
                    (
                        Active::from_prepared(p, cfg.segment_size as usize),
                        SEGMENT_HEADER_LEN,
                        next_seq,
                    )
                } else {
                    let zeroed = last.zero_from(s.end)?;
                    if s.bad.is_some() || zeroed > 0 {
                        report.torn_offset = Some(s.end as u64);
                        report.torn_reason =
                            Some(s.bad.clone().unwrap_or_else(|| {
                                "uncommitted bytes after the last record".into()
                            }));
                        report.truncated_bytes = zeroed;
                    }
                    let (end, next_seq, len) = (s.end, s.next_seq, last.len());
                    if cfg.prefault {
                        // Cold path: make the rest of the segment we continue in fault-free too.
                        segment::populate(&last.map).map_err(io_err(&last.path))?;
                    }
                    let active = Active {
                        index: last.index,
                        map: last.map,
                        file: last.file,
                        path: last.path,
                        len,
                        flushed: 0,
                    };
                    (active, end, next_seq)
                }
            }
        };
        report.segment = active.index;
        report.offset = pos as u64;
        report.next_seq = next_seq;

        let helper = prefault::spawn(Arc::clone(&shared)).map_err(io_err(dir))?;
        let app = Appender {
            base: active.map.as_mut_ptr(),
            pos,
            limit: active.len - TAIL_RESERVE,
            next_seq,
            max_payload,
            stats: AppenderStats {
                segments: 1,
                ..AppenderStats::default()
            },
            seg: active,
            shared,
            helper: Some(helper),
            unsynced_from: report.segment,
            dir_dirty: true,
            cfg,
            dir: dir.to_path_buf(),
            recovery: report,
            _lock: lock,
            _not_sync: PhantomData,
        };
        app.request_next();
        Ok(app)
    }

    /// Appends one record whose payload is a copy of `payload`; returns its sequence number.
    ///
    /// Wait-free: a bounds check, the copy, one CRC32C, and one Release store. Fails with
    /// `RecordTooLarge` if the payload exceeds the maximum record size, and `InvalidKind` for
    /// kind 0.
    #[inline]
    pub fn append(
        &mut self,
        kind: u16,
        flags: u16,
        timestamp: u64,
        payload: &[u8],
    ) -> Result<u64, JournalError> {
        self.append_with(kind, flags, timestamp, payload.len(), |buf| {
            buf.copy_from_slice(payload)
        })
    }

    /// Appends one record of `len` payload bytes written in place by `fill`, which receives the
    /// record's payload slice in the mapped segment: exactly `len` bytes, 8-byte aligned, zeroed.
    /// Returns the record's sequence number.
    ///
    /// The record becomes visible to tailers only after `fill` returns and the checksum is
    /// written. If `fill` panics, the area is zeroed again and nothing is appended.
    #[inline]
    pub fn append_with<F: FnOnce(&mut [u8])>(
        &mut self,
        kind: u16,
        flags: u16,
        timestamp: u64,
        len: usize,
        fill: F,
    ) -> Result<u64, JournalError> {
        if len > self.max_payload || kind == 0 {
            return Err(self.reject(kind, len));
        }
        let rec_len = record_len(len);
        if self.pos + rec_len > self.limit {
            self.roll()?;
        }
        let seq = self.next_seq;
        // SAFETY: `pos + rec_len <= limit < segment length`, so the record lies inside the active
        // mapping. Everything from `pos` on is zero and unpublished (the segment was zero-filled,
        // recovery zeroed any torn tail, and only this appender writes, strictly forward), so no
        // reader accesses these bytes until the Release store below publishes them. All offsets
        // are 8-aligned (the mapping is page-aligned, `pos` a multiple of 8), so the typed
        // writes are aligned.
        unsafe {
            let rec = self.base.add(self.pos);
            let payload = rec.add(RECORD_HEADER_LEN);
            let guard = ZeroOnUnwind { ptr: payload, len };
            fill(std::slice::from_raw_parts_mut(payload, len));
            std::mem::forget(guard);
            (rec.add(R_KIND) as *mut u16).write(kind.to_le());
            (rec.add(R_FLAGS) as *mut u16).write(flags.to_le());
            (rec.add(R_SEQ) as *mut u64).write(seq.to_le());
            (rec.add(R_TIMESTAMP) as *mut u64).write(timestamp.to_le());
            (rec.add(R_LEN) as *mut u32).write((len as u32).to_le());
            let crc = record_crc(
                rec_len as u32,
                kind,
                flags,
                seq,
                timestamp,
                std::slice::from_raw_parts(payload, len),
            );
            (rec.add(R_CRC) as *mut u32).write(crc.to_le());
            // Release: every byte of the record written above happens-before a reader's Acquire
            // load that observes this non-zero length. The commit word is the record's only
            // publication point, so a reader sees either nothing or the whole record.
            AtomicU32::from_ptr(rec as *mut u32).store(rec_len as u32, Ordering::Release);
        }
        self.pos += rec_len;
        self.next_seq = seq + 1;
        self.stats.records += 1;
        self.stats.bytes += rec_len as u64;
        Ok(seq)
    }

    #[cold]
    fn reject(&self, kind: u16, len: usize) -> JournalError {
        if kind == 0 {
            JournalError::InvalidKind
        } else {
            JournalError::RecordTooLarge {
                len,
                max: self.max_payload as u32,
            }
        }
    }

    /// Sequence number the next appended record will get.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Largest payload `append` accepts: `max_record`, clamped to what fits in one segment.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Index of the segment currently appended to.
    pub fn segment(&self) -> u64 {
        self.seg.index
    }

    /// Bytes left in the current segment for records (header included) before a rollover.
    pub fn segment_remaining(&self) -> usize {
        self.limit - self.pos
    }

    /// What recovery found when this appender was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Counters since open.
    pub fn stats(&self) -> AppenderStats {
        AppenderStats {
            prepared_by_helper: self.shared.prepared.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Blocks (sleeping, up to `timeout`) until the helper has the next segment ready, so the
    /// next rollover is a fast one. Returns whether it is ready. Meant for warm-up and tests,
    /// not for the hot path.
    pub fn wait_next_segment_ready(&self, timeout: Duration) -> bool {
        let want = self.seg.index + 1;
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.is_ready(want) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.unpark_helper();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Makes everything appended so far durable: `fsync`s the segments this appender rolled
    /// away from since the last flush, `msync`s the written range of the current segment, and
    /// fsyncs the directory if segments were created since the last flush.
    ///
    /// Not needed for crash safety against `kill -9` (appended bytes live in the page cache), only
    /// against power loss or a kernel crash.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        while self.unsynced_from < self.seg.index {
            // fsync works on the inode, so a fresh descriptor flushes the pages the (possibly
            // already unmapped) mapping dirtied.
            let path = segment_path(&self.dir, self.unsynced_from);
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(io_err(&path))?;
            self.unsynced_from += 1;
        }
        if self.pos > self.seg.flushed {
            self.seg
                .map
                .flush_range(self.seg.flushed, self.pos - self.seg.flushed)
                .map_err(io_err(&self.seg.path))?;
            self.seg.flushed = self.pos;
        }
        if self.dir_dirty {
            segment::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Flushes and closes the journal, reporting a flush error that `Drop` would swallow.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.flush()
    }

    /// Seals the current segment and continues in the next one.
    #[cold]
    #[inline(never)]
    fn roll(&mut self) -> Result<(), JournalError> {
        let index = self.seg.index + 1;
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            schema_hash: self.cfg.schema_hash,
            index,
            segment_size: self.cfg.segment_size,
            first_seq: self.next_seq,
            created_unix_ns: unix_ns(),
        };
        let p = self.obtain(index, &header)?;
        let bytes = header.encode();
        // SAFETY: the new mapping is `segment_size >= MIN_SEGMENT_SIZE` bytes; no reader looks at
        // it before the end-of-segment marker below is published.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.map.as_mut_ptr(), bytes.len()) };
        // Release: publishes the end of this segment *and* the new segment's header written just
        // above: a tailer that Acquire-loads the marker then opens the next file and finds a
        // complete header there.
        // SAFETY: `pos <= limit = len - TAIL_RESERVE`, 8-aligned, inside the mapping.
        unsafe { AtomicU32::from_ptr(self.base.add(self.pos) as *mut u32) }
            .store(END_OF_SEGMENT, Ordering::Release);
        let len = self.cfg.segment_size as usize;
        let old = std::mem::replace(&mut self.seg, Active::from_prepared(p, len));
        self.base = self.seg.map.as_mut_ptr();
        self.pos = SEGMENT_HEADER_LEN;
        self.limit = len - TAIL_RESERVE;
        self.stats.rollovers += 1;
        self.stats.segments += 1;
        self.dir_dirty = true;
        self.retire(old);
        self.request_next();
        Ok(())
    }

    /// Gets segment `index`: from the helper if it is ready, else by creating it here.
    fn obtain(&mut self, index: u64, header: &SegmentHeader) -> Result<Prepared, JournalError> {
        if let Some(p) = self.shared.take_ready(index) {
            return Ok(p);
        }
        self.stats.slow_rollovers += 1;
        match segment::prepare(
            &self.dir,
            index,
            self.cfg.segment_size,
            false,
            Some(header),
            "sync",
        ) {
            Ok(p) => Ok(p),
            Err(PrepareError::Failed(e)) => Err(e),
            Err(PrepareError::Exists) => {
                // The helper linked it a moment ago and is about to hand it over.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    if let Some(p) = self.shared.take_ready(index) {
                        return Ok(p);
                    }
                    if Instant::now() >= deadline {
                        let path = segment_path(&self.dir, index);
                        return Err(JournalError::Io {
                            path,
                            source: std::io::Error::new(
                                std::io::ErrorKind::AlreadyExists,
                                "segment file exists but was not created by this appender",
                            ),
                        });
                    }
                    self.unpark_helper();
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Hands a finished segment to the helper for unmapping (or does it here if the queue is
    /// full).
    fn retire(&mut self, old: Active) {
        let r = Retired {
            map: old.map,
            file: old.file,
            path: old.path,
        };
        let mut q = lock(&self.shared.retired);
        if q.len() < q.capacity() {
            q.push(r);
        } else {
            drop(q);
            self.stats.sync_retires += 1;
            prefault::retire_now(r);
        }
    }

    fn request_next(&self) {
        // Release: pairs with the helper's Acquire load; nothing else is published by it.
        self.shared
            .want
            .store(self.seg.index + 1, Ordering::Release);
        self.unpark_helper();
    }

    fn unpark_helper(&self) {
        if let Some(h) = &self.helper {
            h.thread().unpark();
        }
    }
}

/// Creates a segment with its header on the calling thread (open / first segment); pre-faulted
/// when `prefault`, since open is allowed to be slow.
fn create_sync(dir: &Path, h: &SegmentHeader, prefault: bool) -> Result<Prepared, JournalError> {
    match segment::prepare(dir, h.index, h.segment_size, prefault, Some(h), "sync") {
        Ok(p) => Ok(p),
        Err(PrepareError::Failed(e)) => Err(e),
        Err(PrepareError::Exists) => Err(JournalError::Corrupt {
            segment: h.index,
            offset: 0,
            reason: "segment file appeared while the journal was being opened".into(),
        }),
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = self.flush();
        self.shared.want.store(NO_WANT, Ordering::Release);
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        let left: Vec<Retired> = lock(&self.shared.retired).drain(..).collect();
        left.into_iter().for_each(prefault::retire_now);
        self.shared
            .take_all_ready()
            .into_iter()
            .for_each(prefault::discard);
    }
}
