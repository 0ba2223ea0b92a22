//! The appender's cold helper thread ("journal-prefault").
//!
//! It does the slow, syscall-heavy parts of segment management off the hot path:
//! - **prepare**: create the next [`AHEAD`] segments under temporary names, give them their full
//!   length, map them, pre-fault every page writable (when `prefault` is on), link them to their
//!   final names, and park them in the `ready` slots for the appender's next rollovers. Working
//!   ahead by more than one segment absorbs scheduling jitter of this cold thread;
//! - **retire**: unmap and close segments the appender has rolled away from (so the `munmap`, and
//!   its TLB shootdown, does not happen on the appending thread). Durability of retired segments
//!   is `Appender::flush`'s job (it `fsync`s them by path); unmapping does not lose anything, the
//!   dirty pages stay in the page cache.
//!
//! Hand-off uses a `Mutex<[Option<Prepared>; AHEAD]>` and a `Mutex<Vec<Retired>>` with
//! pre-reserved capacity: an uncontended std mutex is one atomic RMW to lock and one to unlock,
//! no syscall and no allocation, and the helper never does I/O while holding either. The
//! appender wakes the thread with `Thread::unpark` once per rollover (a futex wake when the helper
//! is parked — the single syscall a fast rollover makes); otherwise the helper sleeps, re-checking
//! every 100 ms.

use super::format::SEGMENT_HEADER_LEN;
use super::segment::{self, PrepareError, Prepared};
use memmap2::MmapRaw;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `want` value meaning "nothing to prepare".
pub(crate) const NO_WANT: u64 = u64::MAX;

/// How many segments beyond the current one the helper keeps prepared.
pub(crate) const AHEAD: usize = 2;

/// Capacity reserved for retired segments awaiting unmap.
pub(crate) const RETIRE_CAPACITY: usize = 16;

/// A segment the appender has finished with.
pub(crate) struct Retired {
    pub map: MmapRaw,
    pub file: File,
    /// Kept so its memory is freed on the helper thread, not the appending one.
    pub path: PathBuf,
}

/// State shared between the appender and its helper thread.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub segment_size: u64,
    pub prefault: bool,
    /// Index of the next segment the appender will need (Release by the appender, Acquire here).
    pub want: AtomicU64,
    /// Prepared segments waiting for the appender.
    pub ready: Mutex<[Option<Prepared>; AHEAD]>,
    /// Segments to unmap.
    pub retired: Mutex<Vec<Retired>>,
    /// Segments the helper prepared (for stats).
    pub prepared: AtomicU64,
    pub shutdown: AtomicBool,
}

impl Shared {
    pub(crate) fn new(dir: PathBuf, segment_size: u64, prefault: bool) -> Arc<Shared> {
        Arc::new(Shared {
            dir,
            segment_size,
            prefault,
            want: AtomicU64::new(NO_WANT),
            ready: Mutex::new([const { None }; AHEAD]),
            retired: Mutex::new(Vec::with_capacity(RETIRE_CAPACITY)),
            prepared: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
        })
    }
}

impl Shared {
    /// Takes prepared segment `index` if the helper has it ready (no allocation, no syscall).
    pub(crate) fn take_ready(&self, index: u64) -> Option<Prepared> {
        lock(&self.ready)
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(|p| p.index == index))
            .and_then(Option::take)
    }

    /// Whether prepared segment `index` is ready.
    pub(crate) fn is_ready(&self, index: u64) -> bool {
        lock(&self.ready)
            .iter()
            .any(|s| s.as_ref().is_some_and(|p| p.index == index))
    }

    /// Removes every prepared segment (appender shutdown).
    pub(crate) fn take_all_ready(&self) -> Vec<Prepared> {
        lock(&self.ready)
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }

    /// Parks a freshly prepared segment; drops entries the appender has moved past.
    fn store_ready(&self, p: Prepared, want: u64) {
        let mut unwanted: [Option<Prepared>; AHEAD + 1] = [const { None }; AHEAD + 1];
        {
            let mut slots = lock(&self.ready);
            for (s, u) in slots.iter_mut().zip(unwanted.iter_mut()) {
                if s.as_ref().is_some_and(|q| q.index < want) {
                    *u = s.take();
                }
            }
            match slots.iter_mut().find(|s| s.is_none()) {
                Some(free) => *free = Some(p),
                None => unwanted[AHEAD] = Some(p),
            }
        }
        // File removal happens outside the lock the appender may be waiting on.
        unwanted.into_iter().flatten().for_each(discard);
    }
}

/// Processes one retired segment: unmap and close it.
pub(crate) fn retire_now(r: Retired) {
    drop(r.map);
    drop(r.file);
    drop(r.path);
}

/// Spawns the helper thread.
pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("journal-prefault".into())
        .spawn(move || run(&shared))
}

fn run(sh: &Shared) {
    // Next segment index to prepare.
    let mut next = 0u64;
    let mut batch: Vec<Retired> = Vec::with_capacity(RETIRE_CAPACITY);
    loop {
        // Prepare first: a late segment costs the appender a slow rollover, a late unmap costs
        // nothing but address space.
        let want = sh.want.load(Ordering::Acquire);
        let mut busy = false;
        if want != NO_WANT {
            next = next.max(want);
            if next < want + AHEAD as u64 {
                busy = true;
                match segment::prepare(&sh.dir, next, sh.segment_size, sh.prefault, None, "bg") {
                    Ok(p) => {
                        sh.prepared.fetch_add(1, Ordering::Relaxed);
                        sh.store_ready(p, want);
                    }
                    // The appender created it itself (slow rollover), or preparing failed and the
                    // appender will create it synchronously (and report the error if that fails).
                    Err(PrepareError::Exists) | Err(PrepareError::Failed(_)) => {}
                }
                next += 1;
            }
        }
        {
            let mut q = lock(&sh.retired);
            batch.extend(q.drain(..));
        }
        batch.drain(..).for_each(retire_now);
        if sh.shutdown.load(Ordering::Acquire) {
            return;
        }
        if !busy && lock(&sh.retired).is_empty() {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}

/// Unmaps a prepared segment that will never be used and deletes its file — but only if its
/// header is still all zero, i.e. no appender ever started it and no reader ever treated it as
/// part of the journal.
pub(crate) fn discard(p: Prepared) {
    // SAFETY: every segment mapping is at least SEGMENT_HEADER_LEN bytes; an unused segment is
    // written by nobody.
    let header = unsafe { std::slice::from_raw_parts(p.map.as_ptr(), SEGMENT_HEADER_LEN) };
    let blank = header.iter().all(|&b| b == 0);
    let path = p.path.clone();
    drop(p);
    if blank {
        let _ = std::fs::remove_file(path);
    }
}

/// Locks ignoring poisoning: the protected data is a plain hand-off slot that stays consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
