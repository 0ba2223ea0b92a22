//! `cold` suite: does the cold path slow the hot path? The same capture through the same feed +
//! strategy pipeline (the fused 2-core profile, wired as `algo-engine run` wires it, see
//! [`crate::layout`]) with and without every cold consumer tailing its journals.
//!
//! DESIGN.md promises that cold threads "never slow the hot path, and a cold thread that falls
//! behind only lags": they only read the mapped journal segments (acquire loads), never write
//! anything the hot threads read, and take no lock the hot threads take. This suite measures the
//! promise instead of asserting it: the hot path's own stamps (receive -> decoded, decoded ->
//! strategy, from the strategy stage's `LatencyReport`) with the metrics exporter (HTTP server +
//! one tailer per journal), the notifier (tailing, no channels) and the Parquet exporter all
//! running, against the same run without them, alternating, at max pace and paced. As in
//! `algo-engine run`, every thread but the pinned hot one is confined to the housekeeping cores
//! first (`hotpath::affinity`): on a 2-core machine the cold threads share core 0 with the
//! kernel while the hot thread owns core 1, so what shows up is cache and memory-bandwidth
//! interference, not CPU contention.

use crate::harness::{Clock, LatencyHist, Machine, Report, Row, SuiteOpts};
use crate::layout::{profile_dir, ruler, run_with, CAPTURE};
use anyhow::{bail, Context};
use hotpath::runtime::Profile;
use std::path::Path;

/// Frames replayed in a `--quick` run.
const QUICK_FRAMES: usize = 10_000;

/// The cold consumers of `algo-engine run`, tailing the journals under `dir`.
struct Cold {
    metrics: coldpath::metrics::MetricsHandle,
    notify: coldpath::notify::NotifyHandle,
    export: coldpath::export::ExportHandle,
    _out: tempfile::TempDir,
}

impl Cold {
    fn start(dir: &Path) -> anyhow::Result<Cold> {
        let metrics = coldpath::metrics::spawn(
            coldpath::metrics::MetricsConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                ..Default::default()
            },
            coldpath::metrics::JournalSource::engine_layout(dir),
            None,
        )
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let out = tempfile::tempdir()?;
        let notify = coldpath::notify::spawn(
            coldpath::notify::NotifyConfig::default(),
            vec![dir.to_path_buf(), dir.join("strategy")],
            out.path().join("notify"),
        )
        .map_err(|e| anyhow::anyhow!("notify: {e}"))?;
        let export = coldpath::export::spawn(
            coldpath::export::engine_sources(dir),
            out.path().join("data"),
            coldpath::export::ExportConfig::default(),
        )
        .map_err(|e| anyhow::anyhow!("export: {e}"))?;
        Ok(Cold {
            metrics,
            notify,
            export,
            _out: out,
        })
    }

    fn stop(self) {
        self.metrics.shutdown();
        let _ = self.notify.stop();
        let _ = self.export.stop();
    }
}

/// Runs the suite; see the module docs.
pub fn run(opts: &SuiteOpts) -> anyhow::Result<Report> {
    let clock = Clock::new();
    let ov = ruler(&clock);
    let machine = Machine::detect();
    let profile = Profile::load(&profile_dir().join("fused-2core.toml"))?;
    let Some(path) = hotpath::datadir::capture(CAPTURE) else {
        if hotpath::datadir::data_required() {
            bail!("capture {CAPTURE} not found under ALGO_DATA_DIR (ALGO_REQUIRE_DATA is set)");
        }
        return Ok(Report {
            suite: "cold".into(),
            machine,
            overhead: ov,
            method: "not run: capture not found (set ALGO_DATA_DIR)".into(),
            rows: Vec::new(),
        });
    };
    // As `algo-engine run` does: every thread but the pinned hot one stays off the hot core.
    // The cold consumers are started by this thread and inherit its (confined) mask, for the
    // runs alone and with them alike; the mask is widened again when the suite ends.
    let confined = profile.confine_cold_threads()?;
    let result = measure(opts, &clock, ov, machine, &profile, &path, &confined);
    let everything: Vec<usize> = (0..hotpath::affinity::process_cores().len()).collect();
    hotpath::affinity::confine_cold_threads(&everything)?;
    result
}

fn measure(
    opts: &SuiteOpts,
    clock: &Clock,
    ov: crate::harness::Percentiles,
    machine: Machine,
    profile: &Profile,
    path: &Path,
    confined: &hotpath::affinity::Confinement,
) -> anyhow::Result<Report> {
    let input = coldpath::replay::load_hftbacktest(path, opts.quick.then_some(QUICK_FRAMES))
        .with_context(|| format!("loading {}", path.display()))?;
    let span_s = match (input.frames.first(), input.frames.last()) {
        (Some(a), Some(b)) => b.0.saturating_sub(a.0) as f64 / 1e9,
        _ => 0.0,
    };
    let paced = (span_s / if opts.quick { 0.5 } else { 2.0 }).max(1.0);
    let paces: [(&str, Option<f64>); 2] = [("max", None), ("paced", Some(paced))];
    // [pace][without, with] -> (decode, hop)
    let mut acc: Vec<[(LatencyHist, LatencyHist); 2]> = paces
        .iter()
        .map(|_| {
            [
                (LatencyHist::new(), LatencyHist::new()),
                (LatencyHist::new(), LatencyHist::new()),
            ]
        })
        .collect();
    {
        let tmp = tempfile::tempdir()?;
        run_with(profile, &input, None, tmp.path(), clock, |_| Ok(()))?;
    }
    for _ in 0..opts.reps.max(1) {
        for (ai, (_, speed)) in paces.iter().enumerate() {
            for with in [false, true] {
                let tmp = tempfile::tempdir()?;
                let mut cold = None;
                let r = run_with(profile, &input, *speed, tmp.path(), clock, |d| {
                    if with {
                        cold = Some(Cold::start(d)?);
                    }
                    Ok(())
                })?;
                if let Some(c) = cold {
                    c.stop();
                }
                let slot = &mut acc[ai][usize::from(with)];
                slot.0.add_histogram(&r.latency.decode_ns);
                slot.1.add_histogram(&r.latency.hop_ns);
            }
        }
    }
    std::fs::create_dir_all(&opts.out_dir)?;
    let mut rows = Vec::new();
    for (ai, (pace, _)) in paces.iter().enumerate() {
        for (hi, hop_name) in [(0usize, "recv -> decoded"), (1, "decoded -> strategy")] {
            let pick = |w: usize| {
                if hi == 0 {
                    &acc[ai][w].0
                } else {
                    &acc[ai][w].1
                }
            };
            let without = pick(0).percentiles(ov.p50);
            let with = pick(1).percentiles(ov.p50);
            for (w, label) in [(0usize, "hot path alone"), (1, "with every cold consumer")] {
                let slug = format!(
                    "cold-{pace}-{}-{}",
                    if hi == 0 { "decode" } else { "hop" },
                    if w == 0 { "alone" } else { "with-cold" }
                );
                pick(w).write_percentiles(&opts.out_dir.join(format!("{slug}.hdr.txt")))?;
                let p = if w == 0 { without } else { with };
                rows.push(Row {
                    case: format!("{hop_name} / {pace}"),
                    subject: label.into(),
                    latency: Some(p),
                    throughput: None,
                    ratio: (w == 1 && without.p999 > 0)
                        .then(|| with.p999 as f64 / without.p999 as f64),
                    note: if w == 1 {
                        "ratio: p99.9 with cold consumers / alone (1.0 = no interference)".into()
                    } else {
                        "baseline".into()
                    },
                });
            }
        }
    }
    let method = format!(
        "{} frames of {CAPTURE}{} through feed -> ring -> strategy (fused-2core profile), \
         alternately alone and with the metrics exporter, the notifier and the Parquet exporter \
         tailing the run's journals; latencies from the strategy stage's LatencyReport (the \
         engine's own stamps), merged over {} repetitions, overhead p50 subtracted. Paces: max, \
         and the recorded timeline {paced:.0}x faster. {confined}.",
        input.frames.len(),
        if opts.quick {
            " (QUICK run: not for quoting)"
        } else {
            ""
        },
        opts.reps.max(1)
    );
    Ok(Report {
        suite: "cold".into(),
        machine,
        overhead: ov,
        method,
        rows,
    })
}
