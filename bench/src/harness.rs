//! Measurement plumbing shared by every suite: pinning, the TSC clock, HDR histograms, the cost of
//! measuring itself, and the table/JSON report.
//!
//! Every latency number the harness prints is `measured - overhead`, where the overhead is the
//! p50 cost of one `quanta` raw read plus one histogram record, measured in the same process just
//! before the suite runs. Reporting it separately lets a reader judge how much of a 30 ns number is
//! the ruler.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Pins the calling thread to `core` (index into `core_affinity::get_core_ids`). Returns false
/// when the core does not exist or the OS refused, in which case the suite notes it ran unpinned.
pub fn pin_to(core: usize) -> bool {
    match core_affinity::get_core_ids() {
        Some(ids) if core < ids.len() => core_affinity::set_for_current(ids[core]),
        _ => false,
    }
}

/// Number of cores the process may run on.
pub fn core_count() -> usize {
    core_affinity::get_core_ids().map_or(1, |v| v.len())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), or `unknown`. Suites whose numbers
/// depend on the scheduler (anything crossing threads or sockets on a small machine) print it
/// at their start and end: a latency tail measured while other work competes for the cores
/// reads differently from one measured on an idle machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A TSC clock: `raw()` is one `rdtsc`, converted to nanoseconds only when recorded.
pub struct Clock {
    inner: quanta::Clock,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Calibrates `quanta` against the monotonic clock (takes a few milliseconds once).
    pub fn new() -> Self {
        Self {
            inner: quanta::Clock::new(),
        }
    }
    /// Raw TSC reading; cheap, not yet nanoseconds.
    #[inline(always)]
    pub fn raw(&self) -> u64 {
        self.inner.raw()
    }
    /// Nanoseconds between two raw readings.
    #[inline(always)]
    pub fn delta_ns(&self, start: u64, end: u64) -> u64 {
        self.inner.delta_as_nanos(start, end)
    }
}

/// An HDR histogram of nanoseconds, 1 ns .. 60 s at 3 significant digits.
pub struct LatencyHist {
    hist: Histogram<u64>,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHist {
    /// Empty histogram; allocates its buckets once here, never while recording.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        }
    }
    /// Records one sample in nanoseconds (clamped into range; a 0 becomes 1).
    #[inline(always)]
    pub fn record(&mut self, ns: u64) {
        let _ = self.hist.record(ns.clamp(1, 60_000_000_000));
    }
    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }
    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }
    /// Value at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }
    /// p50/p99/p99.9/max with `overhead_ns` subtracted (saturating at zero).
    pub fn percentiles(&self, overhead_ns: u64) -> Percentiles {
        let sub = |v: u64| v.saturating_sub(overhead_ns);
        Percentiles {
            p50: sub(self.quantile(0.5)),
            p99: sub(self.quantile(0.99)),
            p999: sub(self.quantile(0.999)),
            max: sub(self.hist.max()),
            samples: self.hist.len(),
        }
    }
    /// Writes the percentile distribution (HdrHistogram's classic text format) to `path`.
    pub fn write_percentiles(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        writeln!(f, "{:>12} {:>14} {:>10}", "value_ns", "percentile", "count")?;
        for v in self.hist.iter_quantiles(1) {
            writeln!(
                f,
                "{:>12} {:>14.6} {:>10}",
                v.value_iterated_to(),
                v.quantile_iterated_to(),
                v.count_since_last_iteration()
            )?;
        }
        Ok(())
    }
    /// Direct access for merging.
    pub fn inner(&self) -> &Histogram<u64> {
        &self.hist
    }
    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHist) {
        let _ = self.hist.add(&other.hist);
    }
    /// Adds every sample of a plain HDR histogram recorded elsewhere (e.g. the engine's own
    /// `hotpath::latency::LatencyReport`), so it can be reported and saved like a suite's own.
    /// Samples above this histogram's 60 s ceiling are dropped, as `record` would clamp them.
    pub fn add_histogram(&mut self, other: &Histogram<u64>) {
        let _ = self.hist.add(other);
    }
}

/// Latency percentiles in nanoseconds, overhead already subtracted.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Sample count.
    pub samples: u64,
}

/// The p50 cost (ns) of one raw clock read plus one histogram record, the ruler's own width.
pub fn measurement_overhead(clock: &Clock) -> Percentiles {
    let mut hist = LatencyHist::new();
    let mut sink = LatencyHist::new();
    for _ in 0..200_000 {
        let a = clock.raw();
        sink.record(a & 0xff);
        let b = clock.raw();
        hist.record(clock.delta_ns(a, b));
    }
    std::hint::black_box(&sink);
    hist.percentiles(0)
}

/// One line of a suite's results table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// What was measured, e.g. `spsc one-way latency`.
    pub case: String,
    /// Implementation, e.g. `ringbuffers::spsc` or `disruptor`.
    pub subject: String,
    /// Latency percentiles, if this row is a latency measurement.
    pub latency: Option<Percentiles>,
    /// Items per second, if this row is a throughput measurement.
    pub throughput: Option<f64>,
    /// Ratio against the row's peer (ours / peer for latency, ours / peer for throughput), when
    /// the suite computes one; the note says which direction is better.
    pub ratio: Option<f64>,
    /// Free text: peer name, target, pass/fail against the target.
    pub note: String,
}

/// Facts about the machine printed with every report, because a number without them is noise.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// cpufreq governor of cpu0, or `unknown` (typical inside a VM).
    pub governor: String,
    /// `uname -r`.
    pub kernel: String,
    /// Contents of /sys/devices/system/cpu/isolated (empty when nothing is isolated).
    pub isolated: String,
}

impl Machine {
    /// Reads what it can; never fails.
    pub fn detect() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .ok()
        };
        let cpu = read("/proc/cpuinfo")
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: core_count(),
            governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                .unwrap_or_else(|| "unknown".into()),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            isolated: read("/sys/devices/system/cpu/isolated").unwrap_or_default(),
        }
    }
}

/// A suite's full result: machine, overhead, rows. Printed as a table and saved as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Suite name (`rings`, `journal`, ...).
    pub suite: String,
    /// Where it ran.
    pub machine: Machine,
    /// Cost of the measurement itself, already subtracted from every latency row.
    pub overhead: Percentiles,
    /// How the numbers were taken: pinning, warm-up, repetitions.
    pub method: String,
    /// The results.
    pub rows: Vec<Row>,
}

impl Report {
    /// Renders the report as a fixed-width table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "== {} ==\nmachine: {} | {} cores | governor {} | kernel {} | isolated [{}]\n",
            self.suite,
            self.machine.cpu,
            self.machine.cores,
            self.machine.governor,
            self.machine.kernel,
            self.machine.isolated
        ));
        s.push_str(&format!(
            "measurement overhead (clock read + histogram record): p50 {} ns, p99 {} ns (subtracted)\n",
            self.overhead.p50, self.overhead.p99
        ));
        s.push_str(&format!("method: {}\n", self.method));
        s.push_str(&format!(
            "{:<34} {:<30} {:>8} {:>8} {:>9} {:>14} {:>7}  {}\n",
            "case", "subject", "p50 ns", "p99 ns", "p99.9 ns", "items/s", "ratio", "note"
        ));
        for r in &self.rows {
            let (p50, p99, p999) = r
                .latency
                .map(|l| (l.p50.to_string(), l.p99.to_string(), l.p999.to_string()))
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            s.push_str(&format!(
                "{:<34} {:<30} {:>8} {:>8} {:>9} {:>14} {:>7}  {}\n",
                r.case,
                r.subject,
                p50,
                p99,
                p999,
                r.throughput.map_or("-".into(), |t| format!("{t:.0}")),
                r.ratio.map_or("-".into(), |x| format!("{x:.2}")),
                r.note
            ));
        }
        s
    }

    /// Writes `<dir>/<suite>.json` and returns its path.
    pub fn save(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.suite));
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(self).expect("report serialises"),
        )?;
        Ok(path)
    }
}

/// Median of several repetitions, the number a noisy 2-core machine can stand behind.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if xs.is_empty() {
        0.0
    } else {
        xs[xs.len() / 2]
    }
}

/// Options every suite receives from the command line.
#[derive(Clone, Debug)]
pub struct SuiteOpts {
    /// Fewer samples and repetitions: for CI smoke runs, not for numbers anyone quotes.
    pub quick: bool,
    /// Independent repetitions per measurement; the median is reported.
    pub reps: usize,
    /// Core for the producer / measuring thread.
    pub core_a: usize,
    /// Core for the consumer / peer thread.
    pub core_b: usize,
    /// Directory for HDR percentile files.
    pub out_dir: PathBuf,
}

/// The CPU affinity mask of the calling thread, to hand back to [`restore_affinity`].
///
/// A suite that pins the harness's main thread (to measure in it) narrows the mask every later
/// thread inherits, and `core_affinity` then only sees that one core: the next suite's
/// "two pinned threads" would share it and measure the scheduler tick. The binary saves the
/// mask before the suites and restores it after each one.
pub fn save_affinity() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is valid; sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        set
    }
}

/// Restores the calling thread's affinity mask saved by [`save_affinity`].
pub fn restore_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid mask of the right size; pid 0 is the calling thread.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
    }
}
