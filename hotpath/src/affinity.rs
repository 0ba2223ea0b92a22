//! Keeping the cold path off the hot cores.
//!
//! A [`Profile`](crate::runtime::Profile) pins each hot thread to a core of its own. Everything
//! else the process runs (the metrics exporter's tailers and HTTP server, the admin API's tokio
//! workers, the notifier, the Parquet exporter, the snapshot fetcher, the journal's prefault
//! helper, the main thread printing the status) is cold, and left alone the scheduler puts it
//! wherever it likes, including on a hot core, where it preempts a busy-spinning stage for a
//! whole time slice. That is the millisecond p99.9 the `cold` benchmark suite measured before
//! this module existed.
//!
//! [`confine_cold_threads`] fixes that once, just before the hot threads start: it restricts
//! every thread that exists at that moment to the *housekeeping* cores (the profile's
//! `housekeeping` list, or by default every core no hot thread is pinned to). Linux hands a
//! thread's affinity mask to the threads it creates, so threads the cold path starts later (a
//! tokio blocking-pool thread, a reconnecting tailer) inherit the restriction without being
//! told. The hot threads, started afterwards, each pin themselves to their own core; a hot
//! thread that cannot be pinned (its core does not exist on this machine) is given every core
//! back instead of staying confined with the cold path ([`release_current_thread`]).
//!
//! Core numbers in a profile are positions in the list of cores the process could use when it
//! started ([`process_cores`]), taken once before any confinement so that narrowing the main
//! thread's mask does not renumber them.

use std::sync::OnceLock;

use core_affinity::CoreId;

/// The cores this process could run on before anything was confined: the list profile core
/// indexes refer to. Read once (the first call) and then fixed for the life of the process.
pub fn process_cores() -> &'static [CoreId] {
    static CORES: OnceLock<Vec<CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// What [`confine_cold_threads`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// CPU ids the cold threads may now use (empty when nothing was confined).
    pub cpus: Vec<usize>,
    /// Threads of the process whose mask was narrowed.
    pub threads: usize,
    /// Why nothing was confined, when nothing was.
    pub skipped: Option<String>,
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.skipped {
            Some(why) => write!(f, "cold threads not confined: {why}"),
            None => write!(
                f,
                "cold threads confined to cpu {:?} ({} threads at start-up, and every thread they start)",
                self.cpus, self.threads
            ),
        }
    }
}

/// Restricts every current thread of the process to `housekeeping` (indexes into
/// [`process_cores`]); see the module docs. Call it from the thread that will start the hot
/// threads, after the cold threads exist and before [`Runtime::spawn`](crate::runtime::Runtime::spawn).
///
/// Nothing is confined (and `skipped` says why) when the list is empty or names no existing
/// core, or on a platform without per-thread affinity. A thread that exits while the list is
/// walked is skipped; any other refusal by the OS is an error.
pub fn confine_cold_threads(housekeeping: &[usize]) -> std::io::Result<Confinement> {
    let cores = process_cores();
    let cpus: Vec<usize> = housekeeping
        .iter()
        .filter_map(|&i| cores.get(i).map(|c| c.id))
        .collect();
    if cpus.is_empty() {
        return Ok(skipped(if cores.is_empty() {
            "this platform does not report the process's cores".into()
        } else {
            format!(
                "no housekeeping core left (the hot threads claim all {} cores)",
                cores.len()
            )
        }));
    }
    imp::confine_all_threads(&cpus).map(|threads| Confinement {
        cpus,
        threads,
        skipped: None,
    })
}

/// Gives the calling thread every core of [`process_cores`] again: for a hot thread that could
/// not be pinned, so it does not stay confined to the housekeeping cores it inherited.
pub fn release_current_thread() -> std::io::Result<()> {
    let all: Vec<usize> = process_cores().iter().map(|c| c.id).collect();
    if all.is_empty() {
        return Ok(());
    }
    imp::set_thread(0, &all)
}

/// The CPU ids the calling thread may run on (for reports and tests).
pub fn current_thread_cpus() -> std::io::Result<Vec<usize>> {
    imp::get_thread(0)
}

fn skipped(why: String) -> Confinement {
    Confinement {
        cpus: Vec::new(),
        threads: 0,
        skipped: Some(why),
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    fn cpu_set(cpus: &[usize]) -> io::Result<libc::cpu_set_t> {
        // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set (what CPU_ZERO
        // produces).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cpu {c} is beyond CPU_SETSIZE"),
                ));
            }
            // SAFETY: CPU_SET sets bit `c` of the array; `c < CPU_SETSIZE` was checked above.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
        Ok(set)
    }

    /// Sets the mask of thread `tid` (0: the calling thread).
    pub(super) fn set_thread(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
        let set = cpu_set(cpus)?;
        // SAFETY: `set` is a valid, initialised cpu_set_t and the size passed is its size; the
        // call only reads it.
        let rc =
            unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The mask of thread `tid` (0: the calling thread) as CPU ids.
    pub(super) fn get_thread(tid: libc::pid_t) -> io::Result<Vec<usize>> {
        // SAFETY: as in `cpu_set`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is writable and exactly the size passed.
        let rc = unsafe {
            libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET only reads the bit array `set`, fully initialised above.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect())
    }

    /// Narrows every thread listed in /proc/self/task. Threads started while the directory is
    /// read are children of listed threads (or of this one, already narrowed), so they inherit
    /// the new mask if they were created after their parent was narrowed; a second pass catches
    /// the ones created in between.
    pub(super) fn confine_all_threads(cpus: &[usize]) -> io::Result<usize> {
        let mut done: Vec<libc::pid_t> = Vec::new();
        for _pass in 0..2 {
            for entry in std::fs::read_dir("/proc/self/task")? {
                let Some(tid) = entry?
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<libc::pid_t>().ok())
                else {
                    continue;
                };
                if done.contains(&tid) {
                    continue;
                }
                match set_thread(tid, cpus) {
                    Ok(()) => done.push(tid),
                    // The thread exited between the listing and the call.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done.len())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "per-thread CPU affinity is implemented for Linux only",
        )
    }

    pub(super) fn set_thread(_tid: i32, _cpus: &[usize]) -> io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn get_thread(_tid: i32) -> io::Result<Vec<usize>> {
        Err(unsupported())
    }

    pub(super) fn confine_all_threads(_cpus: &[usize]) -> io::Result<usize> {
        Err(unsupported())
    }
}
