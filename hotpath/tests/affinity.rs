//! Cold threads are confined to the housekeeping cores and the hot threads own theirs.
//!
//! A test binary of its own: confinement is process-wide, so it must not share a process with
//! tests that expect every core.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use hotpath::affinity::{current_thread_cpus, process_cores};
use hotpath::runtime::{Profile, Runtime, Stage};

/// Where a [`MaskProbe`] leaves the CPU mask it saw.
type Seen = Arc<Mutex<Option<Vec<usize>>>>;

/// Records the CPU mask of the thread it runs on, then finishes.
struct MaskProbe {
    name: &'static str,
    seen: Seen,
    done: bool,
}

impl Stage for MaskProbe {
    fn name(&self) -> &str {
        self.name
    }
    fn poll(&mut self) -> usize {
        if self.done {
            return 0;
        }
        *self.seen.lock().unwrap() = Some(current_thread_cpus().unwrap());
        self.done = true;
        1
    }
    fn finished(&self) -> bool {
        self.done
    }
}

fn probe(name: &'static str) -> (Box<dyn Stage>, Seen) {
    let seen = Arc::new(Mutex::new(None));
    let stage = MaskProbe {
        name,
        seen: seen.clone(),
        done: false,
    };
    (Box::new(stage), seen)
}

#[test]
fn cold_threads_leave_the_hot_core_and_hot_threads_keep_it() {
    let cores: Vec<usize> = process_cores().iter().map(|c| c.id).collect();
    let hot = cores.len() - 1;
    let profile = Profile::from_toml(
        &format!(
            r#"
            name = "test"
            [[threads]]
            name = "hot"
            core = {hot}
            stages = ["pinned"]
            [[threads]]
            name = "nowhere"
            core = 999
            stages = ["unpinned"]
            "#
        ),
        "inline",
    )
    .unwrap();

    if cores.len() < 2 {
        // One core: nothing is left for housekeeping, and confinement must say so, not fail.
        let c = profile.confine_cold_threads().unwrap();
        assert!(c.skipped.is_some(), "{c}");
        return;
    }

    // A cold thread that exists before confinement (a metrics tailer, say): it reports its
    // mask whenever asked.
    let (ask_tx, ask_rx) = mpsc::channel::<()>();
    let (mask_tx, mask_rx) = mpsc::channel::<Vec<usize>>();
    let cold = std::thread::spawn(move || {
        while ask_rx.recv().is_ok() {
            mask_tx.send(current_thread_cpus().unwrap()).unwrap();
        }
    });
    ask_tx.send(()).unwrap();
    assert_eq!(mask_rx.recv().unwrap(), cores, "before: every core");

    let housekeeping: Vec<usize> = cores[..hot].to_vec();
    let c = profile.confine_cold_threads().unwrap();
    assert_eq!(c.cpus, housekeeping, "{c}");
    assert!(c.threads >= 2, "this thread and the cold one: {c}");

    ask_tx.send(()).unwrap();
    assert_eq!(
        mask_rx.recv().unwrap(),
        housekeeping,
        "an existing cold thread"
    );
    assert_eq!(
        current_thread_cpus().unwrap(),
        housekeeping,
        "the confining thread"
    );
    let later = std::thread::spawn(|| current_thread_cpus().unwrap())
        .join()
        .unwrap();
    assert_eq!(
        later, housekeeping,
        "a thread started afterwards inherits the mask"
    );

    // The core numbering is the one from before confinement, so the hot thread still gets the
    // core the profile names, and a hot thread that cannot be pinned gets every core back.
    let (pinned, pinned_seen) = probe("pinned");
    let (unpinned, unpinned_seen) = probe("unpinned");
    let rt = Runtime::spawn(
        &profile,
        vec![pinned, unpinned],
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let reports = rt.join();
    assert!(reports.iter().any(|r| r.name == "hot" && r.pinned));
    assert_eq!(pinned_seen.lock().unwrap().clone(), Some(vec![cores[hot]]));
    assert_eq!(unpinned_seen.lock().unwrap().clone(), Some(cores.clone()));

    drop(ask_tx);
    cold.join().unwrap();
}

#[test]
fn explicit_housekeeping_list_wins_and_missing_cores_are_dropped() {
    let n = process_cores().len();
    let p = Profile::from_toml(
        r#"
        name = "explicit"
        housekeeping = [0, 64]
        [[threads]]
        name = "hot"
        core = 1
        stages = ["feed"]
        "#,
        "inline",
    )
    .unwrap();
    let expect: Vec<usize> = [0usize, 64].into_iter().filter(|&c| c < n).collect();
    assert_eq!(p.housekeeping_cores(), expect);
    let fused = Profile::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tuning/profiles/fused-2core.toml"),
    )
    .unwrap();
    // The shipped 2-core profile leaves core 0 (and any core beyond 1) to the cold path.
    assert_eq!(
        fused.housekeeping_cores(),
        (0..n).filter(|&c| c != 1).collect::<Vec<_>>()
    );
}
