//! The stage runtime: pinned threads that each run one or more [`Stage`]s in a loop.
//!
//! A stage is the unit of hot-path work (feed, strategy, gateway, a journal writer). Which
//! stages share a thread, which core each thread is pinned to, and how a thread waits when none
//! of its stages had work, are configuration: a [`Profile`] read from TOML
//! (`tuning/profiles/*.toml`), not code. On a 2-core machine the whole hot path is one pinned
//! thread running every stage to completion in turn; on a co-location box it is feed, strategy
//! and gateway on three isolated cores. The stage code is identical in both layouts, so the two
//! can be benchmarked against each other on the same capture.
//!
//! Shutdown is cooperative: the runtime watches one `AtomicBool` (set by the binary's SIGINT /
//! SIGTERM handler or by a stage that has finished its input). Each thread finishes the poll
//! round it is in, calls [`Stage::shutdown`] on its stages in order (a journal stage flushes
//! there), and reports what it did. Nothing is dropped mid-record: a stage only ever returns from
//! `poll` between whole events.

use ringbuffers::wait::WaitStrategy;
use serde::Deserialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A unit of hot-path work driven by a pinned thread.
///
/// `poll` must do a bounded amount of work and return how many items it processed (0 means it
/// found nothing to do, which lets the thread's wait strategy back off). It must not block: a
/// stage that blocks starves every other stage sharing its thread.
pub trait Stage: Send {
    /// Name used by profiles to place the stage on a thread.
    fn name(&self) -> &str;
    /// Does a bounded amount of work; returns the number of items processed.
    fn poll(&mut self) -> usize;
    /// True once the stage will never have work again (its input is exhausted and drained).
    /// A thread whose stages are all finished exits on its own; live stages never finish.
    fn finished(&self) -> bool {
        false
    }
    /// Called once on the stage's own thread after its loop stops: flush, close, report.
    fn shutdown(&mut self) {}
}

/// One thread of a profile.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThreadSpec {
    /// Thread name (shows in `top -H`, `perf`, and the runtime's report).
    pub name: String,
    /// Core index to pin to (position in the list of cores this process may use). `None` runs
    /// the thread unpinned, which is only sensible for cold threads.
    #[serde(default)]
    pub core: Option<usize>,
    /// `busy-spin`, `spin-then-yield` or `park`.
    #[serde(default = "default_wait")]
    pub wait: String,
    /// Stage names, polled in this order each round.
    pub stages: Vec<String>,
}

fn default_wait() -> String {
    "busy-spin".into()
}

/// A thread-to-core layout for the hot path, read from `tuning/profiles/<name>.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, printed in reports and benchmark tables.
    pub name: String,
    /// What the layout is for.
    #[serde(default)]
    pub description: String,
    /// When true, a thread whose core does not exist on this machine is an error; when false it
    /// runs unpinned with a warning (lets the split profile run on a laptop for comparison).
    #[serde(default)]
    pub strict_pinning: bool,
    /// The threads.
    pub threads: Vec<ThreadSpec>,
    /// Cores (indexes, like [`ThreadSpec::core`]) the cold threads are confined to by
    /// [`crate::affinity::confine_cold_threads`]. Unset: every core no hot thread is pinned to.
    #[serde(default)]
    pub housekeeping: Option<Vec<usize>>,
}

/// Why a profile cannot be used or the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The profile file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// Profile path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The profile is not valid TOML for a [`Profile`].
    #[error("profile {path} is invalid: {message}")]
    Parse {
        /// Profile path or `<inline>`.
        path: String,
        /// Parser message.
        message: String,
    },
    /// The profile names a wait strategy that does not exist.
    #[error("thread '{thread}': unknown wait strategy '{wait}' (use busy-spin, spin-then-yield or park)")]
    Wait {
        /// Thread name.
        thread: String,
        /// What the profile said.
        wait: String,
    },
    /// A stage is placed on no thread, on two threads, or is not known to the engine.
    #[error("profile '{profile}': {message}")]
    Placement {
        /// Profile name.
        profile: String,
        /// What is wrong.
        message: String,
    },
    /// `strict_pinning` is on and the core does not exist.
    #[error("thread '{thread}' wants core {core} but this machine offers {available} cores")]
    NoSuchCore {
        /// Thread name.
        thread: String,
        /// Requested core.
        core: usize,
        /// Cores available.
        available: usize,
    },
    /// The OS refused to create a thread.
    #[error("cannot spawn thread '{thread}': {source}")]
    Spawn {
        /// Thread name.
        thread: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

impl Profile {
    /// Parses a profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, RuntimeError> {
        let p: Profile = toml::from_str(text).map_err(|e| RuntimeError::Parse {
            path: origin.to_string(),
            message: e.to_string().replace('\n', " "),
        })?;
        for t in &p.threads {
            WaitStrategy::parse(&t.wait).map_err(|_| RuntimeError::Wait {
                thread: t.name.clone(),
                wait: t.wait.clone(),
            })?;
        }
        Ok(p)
    }

    /// Reads and parses a profile file.
    pub fn load(path: &Path) -> Result<Profile, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The cores (indexes into [`crate::affinity::process_cores`]) left to the cold path:
    /// the profile's `housekeeping` list, or every existing core no hot thread is pinned to.
    pub fn housekeeping_cores(&self) -> Vec<usize> {
        let available = crate::affinity::process_cores().len();
        match &self.housekeeping {
            Some(list) => list.iter().copied().filter(|&c| c < available).collect(),
            None => (0..available)
                .filter(|c| !self.threads.iter().any(|t| t.core == Some(*c)))
                .collect(),
        }
    }

    /// Confines every current thread of the process (all cold at this point) to
    /// [`housekeeping_cores`](Self::housekeeping_cores); see [`crate::affinity`]. Call it just
    /// before [`Runtime::spawn`].
    pub fn confine_cold_threads(&self) -> std::io::Result<crate::affinity::Confinement> {
        crate::affinity::confine_cold_threads(&self.housekeeping_cores())
    }

    /// Checks that every stage in `stages` is placed on exactly one thread and that the profile
    /// names no stage outside [`KNOWN_STAGES`]. A known stage that this run does not have (the
    /// gateway in an offline replay or a market-data recording) is skipped, so one profile
    /// serves every mode; a thread left with no stage is not started.
    pub fn check_placement(&self, stages: &[&str]) -> Result<(), RuntimeError> {
        let err = |message: String| RuntimeError::Placement {
            profile: self.name.clone(),
            message,
        };
        let mut seen: Vec<&str> = Vec::new();
        for t in &self.threads {
            for s in &t.stages {
                if !stages.contains(&s.as_str()) && KNOWN_STAGES.contains(&s.as_str()) {
                    continue;
                }
                if !stages.contains(&s.as_str()) {
                    return Err(err(format!(
                        "thread '{}' names stage '{s}', which this engine does not have (known: {})",
                        t.name,
                        stages.join(", ")
                    )));
                }
                if seen.contains(&s.as_str()) {
                    return Err(err(format!(
                        "stage '{s}' is placed on more than one thread"
                    )));
                }
                seen.push(s);
            }
        }
        if let Some(missing) = stages.iter().find(|s| !seen.contains(s)) {
            return Err(err(format!(
                "stage '{missing}' is not placed on any thread"
            )));
        }
        Ok(())
    }
}

/// Every stage name a profile may place: the hot path's stages in data-flow order.
pub const KNOWN_STAGES: &[&str] = &["feed", "strategy", "gateway"];

/// What one thread did, returned by [`Runtime::join`].
#[derive(Clone, Debug)]
pub struct ThreadReport {
    /// Thread name from the profile.
    pub name: String,
    /// Core it asked for.
    pub core: Option<usize>,
    /// Whether pinning succeeded.
    pub pinned: bool,
    /// Poll rounds run (each polls every stage of the thread once).
    pub rounds: u64,
    /// Rounds in which no stage had work.
    pub idle_rounds: u64,
    /// Items processed, summed over the thread's stages.
    pub items: u64,
    /// Names of the stages it ran.
    pub stages: Vec<String>,
}

/// Running hot-path threads.
pub struct Runtime {
    handles: Vec<JoinHandle<ThreadReport>>,
    stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Places `stages` on threads as `profile` says and starts them. Every stage must be placed
    /// exactly once. `stop` is the shared shutdown flag: set it (from a signal handler, say) and
    /// every thread finishes its round, shuts its stages down and exits.
    pub fn spawn(
        profile: &Profile,
        stages: Vec<Box<dyn Stage>>,
        stop: Arc<AtomicBool>,
    ) -> Result<Runtime, RuntimeError> {
        let names: Vec<String> = stages.iter().map(|s| s.name().to_string()).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        profile.check_placement(&name_refs)?;
        // The list as it was before any confinement narrowed this thread's own mask.
        let cores = crate::affinity::process_cores();

        let mut pool: Vec<Option<Box<dyn Stage>>> = stages.into_iter().map(Some).collect();
        let mut handles = Vec::with_capacity(profile.threads.len());
        for spec in &profile.threads {
            let wait = WaitStrategy::parse(&spec.wait).map_err(|_| RuntimeError::Wait {
                thread: spec.name.clone(),
                wait: spec.wait.clone(),
            })?;
            let core_id = match spec.core {
                Some(c) if c < cores.len() => Some(cores[c]),
                Some(c) if profile.strict_pinning => {
                    return Err(RuntimeError::NoSuchCore {
                        thread: spec.name.clone(),
                        core: c,
                        available: cores.len(),
                    })
                }
                Some(c) => {
                    tracing::warn!(
                        thread = %spec.name,
                        core = c,
                        available = cores.len(),
                        "core not available; thread runs unpinned"
                    );
                    None
                }
                None => None,
            };
            let mine: Vec<Box<dyn Stage>> = spec
                .stages
                .iter()
                .filter(|n| names.contains(n))
                .map(|n| {
                    let i = names
                        .iter()
                        .position(|x| x == n)
                        .expect("placement checked above");
                    pool[i]
                        .take()
                        .expect("each stage placed once, checked above")
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let stop = Arc::clone(&stop);
            let mut spec = spec.clone();
            spec.stages.retain(|n| names.contains(n));
            let handle = std::thread::Builder::new()
                .name(spec.name.clone())
                .spawn(move || run_thread(spec, core_id, wait, mine, stop))
                .map_err(|source| RuntimeError::Spawn {
                    thread: profile.name.clone(),
                    source,
                })?;
            handles.push(handle);
        }
        Ok(Runtime { handles, stop })
    }

    /// Asks every thread to stop after its current round.
    pub fn request_stop(&self) {
        // Relaxed is enough: the flag carries no data, and each thread re-reads it every round,
        // so it sees the store within a round; the join below is the synchronisation point.
        self.stop.store(true, Ordering::Relaxed);
    }

    /// True when every thread has exited (all stages finished or stop requested).
    pub fn is_done(&self) -> bool {
        self.handles.iter().all(JoinHandle::is_finished)
    }

    /// Waits for every thread and returns their reports. A thread that panicked yields a report
    /// with `rounds == u64::MAX` so the caller can say so instead of panicking itself.
    pub fn join(self) -> Vec<ThreadReport> {
        self.handles
            .into_iter()
            .map(|h| {
                let name = h.thread().name().unwrap_or("?").to_string();
                h.join().unwrap_or(ThreadReport {
                    name,
                    core: None,
                    pinned: false,
                    rounds: u64::MAX,
                    idle_rounds: 0,
                    items: 0,
                    stages: Vec::new(),
                })
            })
            .collect()
    }
}

fn run_thread(
    spec: ThreadSpec,
    core: Option<core_affinity::CoreId>,
    wait: WaitStrategy,
    mut stages: Vec<Box<dyn Stage>>,
    stop: Arc<AtomicBool>,
) -> ThreadReport {
    let pinned = core.is_some_and(core_affinity::set_for_current);
    if core.is_some() && !pinned {
        tracing::warn!(thread = %spec.name, "pinning refused by the OS; running unpinned");
    }
    if !pinned {
        // An unpinned hot thread inherited the housekeeping mask from the thread that started
        // it; it belongs on every core, not squeezed in with the cold path.
        if let Err(e) = crate::affinity::release_current_thread() {
            tracing::warn!(thread = %spec.name, error = %e, "cannot widen the CPU mask");
        }
    }
    let mut waiter = wait.waiter();
    let (mut rounds, mut idle_rounds, mut items) = (0u64, 0u64, 0u64);
    // Relaxed: see `request_stop`.
    while !stop.load(Ordering::Relaxed) {
        rounds += 1;
        let mut work = 0usize;
        for s in stages.iter_mut() {
            work += s.poll();
        }
        items += work as u64;
        if work == 0 {
            idle_rounds += 1;
            if stages.iter().all(|s| s.finished()) {
                break;
            }
            waiter.idle();
        } else {
            waiter.reset();
        }
    }
    for s in stages.iter_mut() {
        s.shutdown();
    }
    ThreadReport {
        name: spec.name,
        core: spec.core,
        pinned,
        rounds,
        idle_rounds,
        items,
        stages: spec.stages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    struct Counter {
        name: &'static str,
        left: u64,
        total: Arc<AtomicU64>,
    }
    impl Stage for Counter {
        fn name(&self) -> &str {
            self.name
        }
        fn poll(&mut self) -> usize {
            if self.left == 0 {
                return 0;
            }
            self.left -= 1;
            self.total.fetch_add(1, Ordering::Relaxed);
            1
        }
        fn finished(&self) -> bool {
            self.left == 0
        }
    }

    const FUSED: &str = r#"
        name = "fused"
        [[threads]]
        name = "hot"
        core = 0
        wait = "spin-then-yield"
        stages = ["a", "b"]
    "#;

    #[test]
    fn runs_stages_to_completion_and_reports() {
        let p = Profile::from_toml(FUSED, "inline").unwrap();
        let total = Arc::new(AtomicU64::new(0));
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(Counter {
                name: "a",
                left: 1000,
                total: total.clone(),
            }),
            Box::new(Counter {
                name: "b",
                left: 500,
                total: total.clone(),
            }),
        ];
        let rt = Runtime::spawn(&p, stages, Arc::new(AtomicBool::new(false))).unwrap();
        let reports = rt.join();
        assert_eq!(total.load(Ordering::Relaxed), 1500);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].items, 1500);
        assert_eq!(reports[0].stages, vec!["a", "b"]);
    }

    #[test]
    fn placement_errors_are_clear() {
        let p = Profile::from_toml(FUSED, "inline").unwrap();
        let e = p.check_placement(&["a"]).unwrap_err().to_string();
        assert!(e.contains("does not have"), "{e}");
        let e = p.check_placement(&["a", "b", "c"]).unwrap_err().to_string();
        assert!(e.contains("'c' is not placed"), "{e}");
        let dup = FUSED.replace(r#"["a", "b"]"#, r#"["a", "a", "b"]"#);
        let e = Profile::from_toml(&dup, "inline")
            .unwrap()
            .check_placement(&["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than one thread"), "{e}");
        let bad = FUSED.replace("spin-then-yield", "nap");
        let e = Profile::from_toml(&bad, "inline").unwrap_err().to_string();
        assert!(e.contains("unknown wait strategy 'nap'"), "{e}");
    }

    #[test]
    fn stop_flag_ends_live_stages_and_strict_pinning_refuses_missing_core() {
        struct Live;
        impl Stage for Live {
            fn name(&self) -> &str {
                "live"
            }
            fn poll(&mut self) -> usize {
                0
            }
        }
        let p = Profile::from_toml(&FUSED.replace(r#"["a", "b"]"#, r#"["live"]"#), "x").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rt = Runtime::spawn(&p, vec![Box::new(Live)], stop.clone()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!rt.is_done());
        rt.request_stop();
        let r = rt.join();
        assert!(r[0].idle_rounds > 0);

        let strict = format!(
            "strict_pinning = true\n{}",
            FUSED.replace("core = 0", "core = 4096")
        );
        let p = Profile::from_toml(&strict, "x").unwrap();
        let total = Arc::new(AtomicU64::new(0));
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(Counter {
                name: "a",
                left: 1,
                total: total.clone(),
            }),
            Box::new(Counter {
                name: "b",
                left: 1,
                total,
            }),
        ];
        let e = Runtime::spawn(&p, stages, stop).err().unwrap().to_string();
        assert!(e.contains("wants core 4096"), "{e}");
    }
}
