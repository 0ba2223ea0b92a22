//! Segment files: naming, listing, header I/O, mapping, and creation of new (pre-allocated,
//! optionally pre-faulted) segments.

use super::format::{HeaderState, SegmentHeader, SEGMENT_HEADER_LEN};
use super::JournalError;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// File-name suffix of a segment.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a segment still being prepared (never read as part of the journal).
pub(crate) const PREP_MARK: &str = ".seg.prep";
/// Name of the advisory lock file held by the appender.
pub const LOCK_FILE: &str = "journal.lock";

/// Path of segment `index` in `dir`: `NNNNNNNNNN.seg`.
pub fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:010}{SEGMENT_SUFFIX}"))
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses `NNNNNNNNNN.seg` (at least 10 digits) into its index.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() < 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir` as (index, path), sorted by index. Does not read them.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            return Err(JournalError::NotAJournal {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(JournalError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(idx) = name.to_str().and_then(parse_segment_name) {
            out.push((idx, entry.path()));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Reads and validates the header of one segment file; returns it with the file length.
pub(crate) fn read_header(path: &Path, index: u64) -> Result<(HeaderState, u64), JournalError> {
    let f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(JournalError::TruncatedHeader {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    f.read_exact_at(&mut b, 0).map_err(io_err(path))?;
    let st = SegmentHeader::decode(&b, path, index)?;
    if let HeaderState::Valid(h) = &st {
        check_len(h, len)?;
    }
    Ok((st, len))
}

/// A segment file must be at least as long as its header claims, or reads would fault (SIGBUS).
pub(crate) fn check_len(h: &SegmentHeader, file_len: u64) -> Result<(), JournalError> {
    if file_len < h.segment_size {
        return Err(JournalError::Corrupt {
            segment: h.index,
            offset: file_len,
            reason: format!(
                "segment file is {file_len} bytes but its header says {} (file was truncated)",
                h.segment_size
            ),
        });
    }
    Ok(())
}

/// A segment mapped read-only for a tailer or `verify`.
pub(crate) struct ReadSegment {
    pub header: SegmentHeader,
    pub map: MmapRaw,
}

impl ReadSegment {
    /// Opens, validates (magic, version, checksum, schema, length) and maps a segment read-only.
    /// Returns `Ok(None)` for a pre-allocated segment that has not been started.
    pub(crate) fn open(
        path: &Path,
        index: u64,
        schema: Option<u64>,
    ) -> Result<Option<ReadSegment>, JournalError> {
        let f = File::open(path).map_err(io_err(path))?;
        let len = f.metadata().map_err(io_err(path))?.len();
        if len < SEGMENT_HEADER_LEN as u64 {
            return Err(JournalError::TruncatedHeader {
                path: path.to_path_buf(),
                len,
            });
        }
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        f.read_exact_at(&mut b, 0).map_err(io_err(path))?;
        let h = match SegmentHeader::decode(&b, path, index)? {
            HeaderState::Unused => return Ok(None),
            HeaderState::Valid(h) => h,
        };
        h.check_schema(path, schema)?;
        check_len(&h, len)?;
        // MAP_POPULATE: map every page that is already in the page cache now (with prefault
        // on, that is the whole segment), instead of taking a minor fault every few pages
        // while following the appender — those faults were the tailer's latency tail.
        let map = MmapOptions::new()
            .len(h.segment_size as usize)
            .populate()
            .map_raw_read_only(&f)
            .map_err(io_err(path))?;
        Ok(Some(ReadSegment { header: h, map }))
    }

    pub(crate) fn base(&self) -> *const u8 {
        self.map.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.header.segment_size as usize
    }
}

/// Maps an existing segment read-write (recovery). The caller holds the journal lock.
pub(crate) fn map_rw(path: &Path, size: u64) -> Result<(File, MmapRaw), JournalError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let map = MmapOptions::new()
        .len(size as usize)
        .map_raw(&f)
        .map_err(io_err(path))?;
    Ok((f, map))
}

/// A new segment file, full length, mapped read-write; header written only if it was known when
/// the segment was created (otherwise all zero until the appender starts it).
pub(crate) struct Prepared {
    pub index: u64,
    pub map: MmapRaw,
    pub file: File,
    pub path: PathBuf,
}

/// Why [`prepare`] did not produce a segment.
pub(crate) enum PrepareError {
    /// `NNNNNNNNNN.seg` already exists (the other preparer won the race).
    Exists,
    /// Anything else.
    Failed(JournalError),
}

/// Creates segment `index` of `size` bytes under a temporary name (`<name>.prep-<who>`):
/// `set_len` + `fallocate` so no block allocation happens on first write, maps it, optionally
/// pre-faults every page writable, writes `header` if given, and only then links it to its final
/// name. The link fails if the final name exists, so two preparers (the background thread and the
/// appender's synchronous fallback) can never both hand out the same segment, and a file with a
/// segment name is always full length.
pub(crate) fn prepare(
    dir: &Path,
    index: u64,
    size: u64,
    prefault: bool,
    header: Option<&SegmentHeader>,
    who: &str,
) -> Result<Prepared, PrepareError> {
    let fail = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PrepareError::Failed(JournalError::Io { path: p, source })
    };
    let final_path = segment_path(dir, index);
    if final_path.exists() {
        return Err(PrepareError::Exists);
    }
    let tmp = dir.join(format!("{index:010}{PREP_MARK}-{who}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(fail(&tmp))?;
    let result = (|| {
        file.set_len(size).map_err(fail(&tmp))?;
        if !prefault {
            // Reserve the blocks now, so a full disk is an error here rather than a SIGBUS on the
            // appender's first write to a page. (With prefault on, populating the pages writable
            // below makes the file system reserve them, and measured ~3x faster on ext4 than
            // populating fallocated-but-unwritten extents.)
            // SAFETY: plain syscall on an fd we own. EOPNOTSUPP (tmpfs on old kernels, some
            // network file systems) is tolerated: set_len already gave the file its length.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    return Err(fail(&tmp)(e));
                }
            }
        }
        let map = MmapOptions::new()
            .len(size as usize)
            .map_raw(&file)
            .map_err(fail(&tmp))?;
        if prefault {
            populate(&map).map_err(fail(&tmp))?;
        }
        if let Some(h) = header {
            let bytes = h.encode();
            // SAFETY: the mapping is at least SEGMENT_HEADER_LEN bytes and nobody else can see
            // this file yet (it still has its temporary name).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr(), bytes.len()) };
        }
        match std::fs::hard_link(&tmp, &final_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(PrepareError::Exists),
            Err(e) => return Err(fail(&final_path)(e)),
        }
        Ok(map)
    })();
    let _ = std::fs::remove_file(&tmp);
    let map = result?;
    Ok(Prepared {
        index,
        map,
        file,
        path: final_path,
    })
}

/// Makes every page of `map` present and writable in this process's page tables, so the first
/// store to it by the appender takes no page fault. `MADV_POPULATE_WRITE` (Linux 5.14+) does it in
/// one call; otherwise every page is written once (the file is fresh and not yet visible under
/// its segment name, so writing zeros cannot clobber anything).
pub(crate) fn populate(map: &MmapRaw) -> io::Result<()> {
    let len = map.len();
    // SAFETY: madvise on a range we mapped; it only populates page tables.
    let rc = unsafe {
        libc::madvise(
            map.as_mut_ptr() as *mut libc::c_void,
            len,
            libc::MADV_POPULATE_WRITE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        // ENOSPC, ENOMEM, EFAULT (SIGBUS while populating): the segment is not usable.
        return Err(e);
    }
    // EINVAL: kernel older than 5.14; touch every page instead.
    let page = 4096;
    let mut off = 0;
    while off < len {
        // SAFETY: `off < len`, inside the mapping; nobody else accesses this file yet.
        unsafe { std::ptr::write_volatile(map.as_mut_ptr().add(off), 0u8) };
        off += page;
    }
    Ok(())
}

/// Removes `*.seg.prep-*` leftovers of a previous appender that died while preparing.
pub(crate) fn remove_prep_leftovers(dir: &Path) -> Result<(), JournalError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.contains(PREP_MARK))
        {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// fsyncs a directory so newly linked segment names survive power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
