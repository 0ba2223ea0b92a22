//! Test-only helpers shared by every crate's tests (a dev-dependency, never linked into the
//! engine).
//!
//! [`CountingAllocator`] is what the zero-allocation claims rest on: a test installs it as the
//! global allocator and wraps the code under test in [`count_allocations`], which counts the
//! allocations made by the calling thread only, so other test threads and the harness cannot
//! disturb the count. [`python`] finds (or creates, through `scripts/setup-python.sh`) the
//! project's `.venv` with the third-party peers the conformance tests talk to, and decides
//! whether a missing peer is a skip or a failure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Allocations made by threads that called [`track_thread`]`(true)`, process-wide.
static TRACKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static DEALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that forwards to [`System`] and counts, per thread, the allocations
/// (alloc, alloc_zeroed, realloc) and deallocations made while counting is on.
///
/// Install it in a test binary with
/// `#[global_allocator] static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;`
pub struct CountingAllocator;

impl CountingAllocator {
    #[inline]
    fn note_tracked() {
        if TRACK.try_with(Cell::get).unwrap_or(false) {
            TRACKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[inline]
    fn note(counter: &'static std::thread::LocalKey<Cell<u64>>) {
        // `try_with`: the thread-locals are const-initialised without destructors, so this
        // never allocates, and it stays safe during thread teardown.
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                let _ = counter.try_with(|n| n.set(n.get() + 1));
            }
        });
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the only addition is bumping a thread-local counter, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note(&ALLOCATIONS);
        Self::note_tracked();
        // SAFETY: forwarded with the caller's guarantees (non-zero-size layout).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note(&ALLOCATIONS);
        Self::note_tracked();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note(&ALLOCATIONS);
        Self::note_tracked();
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::note(&DEALLOCATIONS);
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Starts (`true`) or stops counting the calling thread's allocations into the process-wide
/// [`tracked_allocations`] total: for code under test that runs on a thread the test does not
/// control (a stage on a runtime thread), read from the test's own thread.
pub fn track_thread(on: bool) {
    TRACK.with(|t| t.set(on));
}

/// Allocations made so far by every thread while it was tracked (see [`track_thread`]).
pub fn tracked_allocations() -> u64 {
    TRACKED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Allocation counts of one [`count_allocations`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCount {
    /// alloc + alloc_zeroed + realloc calls.
    pub allocations: u64,
    /// dealloc calls.
    pub deallocations: u64,
}

/// Runs `f` and returns its result with the allocations this thread made meanwhile. Only
/// meaningful in a binary whose global allocator is [`CountingAllocator`].
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, AllocCount) {
    ALLOCATIONS.with(|n| n.set(0));
    DEALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    let count = AllocCount {
        allocations: ALLOCATIONS.with(Cell::get),
        deallocations: DEALLOCATIONS.with(Cell::get),
    };
    (r, count)
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // testkit lives at <root>/ringbuffers/testkit.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// True when a missing peer must fail the test instead of skipping it (`CI` or
/// `ALGO_REQUIRE_DATA` set to anything but empty, `0` or `false`).
pub fn peers_required() -> bool {
    ["ALGO_REQUIRE_DATA", "CI"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"))
}

fn importable(py: &Path, module: &str) -> bool {
    py.exists()
        && Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The `.venv` Python that can import `module`, running `scripts/setup-python.sh` first if it
/// cannot; `Err(why)` when that is impossible.
pub fn python_with(module: &str) -> Result<PathBuf, String> {
    let root = workspace_root();
    let py = root.join(".venv/bin/python");
    if importable(&py, module) {
        return Ok(py);
    }
    eprintln!("testkit: running scripts/setup-python.sh for `{module}`");
    let out = Command::new("bash")
        .arg(root.join("scripts/setup-python.sh"))
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run scripts/setup-python.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/setup-python.sh failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if importable(&py, module) {
        Ok(py)
    } else {
        Err(format!(
            "`{module}` still not importable from .venv after setup"
        ))
    }
}

/// [`python_with`], or `None` (after saying why) when the peer is optional here.
///
/// # Panics
///
/// When the peer cannot be set up and [`peers_required`] is true.
pub fn python(module: &str) -> Option<PathBuf> {
    match python_with(module) {
        Ok(p) => Some(p),
        Err(why) if peers_required() => panic!("Python peer `{module}` unavailable: {why}"),
        Err(why) => {
            eprintln!("skipping: Python peer `{module}` unavailable: {why}");
            None
        }
    }
}

/// Runs `py -c script args...` and returns its stdout; panics with both streams when the script
/// fails, so a peer's own error message is what the test failure shows.
pub fn run_script(py: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python script failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_this_thread_and_tracked_threads() {
        let (v, c) = count_allocations(|| vec![1u8; 64]);
        assert_eq!(c.allocations, 1);
        drop(v);
        let (_, c) = count_allocations(|| 1 + 1);
        assert_eq!(c, AllocCount::default());

        let before = tracked_allocations();
        std::thread::spawn(|| {
            track_thread(true);
            let v = std::hint::black_box(vec![0u64; 8]);
            track_thread(false);
            drop(v);
        })
        .join()
        .unwrap();
        assert_eq!(tracked_allocations() - before, 1);
    }
}
