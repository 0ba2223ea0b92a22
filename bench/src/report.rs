//! The run report: `report.md` assembled from the suites' saved [`Report`]s, with the machine it
//! ran on and an SVG plot of every suite's percentile distributions.
//!
//! Every suite already saves `<suite>.json` and HDR percentile files (`<suite>-*.hdr.txt`, or
//! `<suite>_*.hgrm`) into the run directory; this module only reads that directory, so the
//! report of a run can be rebuilt later from its files alone (`algo-bench --report-only <dir>`).
//! The pieces:
//! - [`MachineFacts`]: what a latency number depends on (CPU model, cores, governor, isolation
//!   from `/proc/cmdline`, kernel, clocksource and TSC flags, SMT, THP, virtualization), read
//!   without privileges and never failing; saved with the run's command and date as
//!   [`RUN_META`] so a rebuilt report still names the machine that produced the numbers;
//! - [`load_reports`]: every `*.json` in the directory that is a suite [`Report`];
//! - [`plot_suite`]: one `<suite>-percentiles.svg` per suite, latency against percentile on the
//!   usual "nines" axis, from the HDR files (or from the rows' p50/p99/p99.9/max when a suite saved
//!   none). `plotters` is built with only `svg_backend` and `line_series`: without a font feature
//!   it estimates text extents itself and writes `<text>` elements, so no system font is needed
//!   and the viewer renders the labels;
//! - [`render_markdown`] / [`write_report`]: the markdown, one section per suite in run order
//!   (method, measurement overhead, a p50/p99/p99.9 table with peer ratios, the plot), and for
//!   the `layout` suite a side-by-side table of the profiles.

use crate::harness::{Report, Row};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File name of the run's metadata (machine, command, date) in the run directory.
pub const RUN_META: &str = "run-meta.json";
/// File name of the report in the run directory.
pub const REPORT_MD: &str = "report.md";

/// What a latency number depends on, read from /proc and /sys. Fields that cannot be read
/// (typical inside containers and VMs) say `unknown` rather than failing.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MachineFacts {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// Logical CPUs online (/sys/devices/system/cpu/online).
    pub online: String,
    /// cpufreq governor of cpu0.
    pub governor: String,
    /// `isolcpus=` from /proc/cmdline, empty when absent.
    pub isolcpus: String,
    /// `nohz_full=` from /proc/cmdline, empty when absent.
    pub nohz_full: String,
    /// `rcu_nocbs=` from /proc/cmdline, empty when absent.
    pub rcu_nocbs: String,
    /// /sys/devices/system/cpu/isolated (what the kernel actually isolated).
    pub isolated: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Current clocksource (`tsc` is what quanta's raw reads assume).
    pub clocksource: String,
    /// Which of `constant_tsc` / `nonstop_tsc` the CPU flags carry.
    pub tsc_flags: String,
    /// SMT state from /sys/devices/system/cpu/smt/control.
    pub smt: String,
    /// Transparent huge pages setting (the bracketed choice).
    pub thp: String,
    /// `none`, or what betrayed a hypervisor (cpuinfo flag, DMI vendor).
    pub virtualization: String,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The value of `key=` on a kernel command line (`isolcpus=managed_irq,2-3` gives
/// `managed_irq,2-3`); `None` when the parameter is absent.
pub fn cmdline_param(cmdline: &str, key: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|w| {
        w.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

/// The chosen value of a sysfs multiple-choice file: `always [madvise] never` gives `madvise`.
pub fn bracketed(choice: &str) -> String {
    choice
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or(choice.trim())
        .to_string()
}

/// Names a hypervisor from /proc/cpuinfo's text and the DMI system vendor / product name:
/// `none` when neither shows one.
pub fn detect_virtualization(cpuinfo: &str, dmi: &str) -> String {
    const VENDORS: [(&str, &str); 8] = [
        ("qemu", "QEMU/KVM"),
        ("kvm", "KVM"),
        ("vmware", "VMware"),
        ("virtualbox", "VirtualBox"),
        ("xen", "Xen"),
        ("microsoft", "Hyper-V"),
        ("amazon ec2", "AWS Nitro"),
        ("google", "Google Compute Engine"),
    ];
    let dmi_l = dmi.to_ascii_lowercase();
    if let Some((_, name)) = VENDORS.iter().find(|(k, _)| dmi_l.contains(k)) {
        return format!("{name} (DMI: {})", dmi.trim());
    }
    let hyper = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if hyper {
        "yes (cpuinfo flag `hypervisor`)".into()
    } else {
        "none".into()
    }
}

impl MachineFacts {
    /// Reads everything it can; never fails.
    pub fn detect() -> Self {
        let unknown = || "unknown".to_string();
        let cpuinfo = read_trim("/proc/cpuinfo").unwrap_or_default();
        let cmdline = read_trim("/proc/cmdline").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(unknown, |s| s.trim().to_string());
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let tsc: Vec<&str> = ["constant_tsc", "nonstop_tsc"]
            .into_iter()
            .filter(|f| flags.contains(f))
            .collect();
        let dmi = [
            "/sys/class/dmi/id/sys_vendor",
            "/sys/class/dmi/id/product_name",
        ]
        .iter()
        .filter_map(|p| read_trim(p))
        .collect::<Vec<_>>()
        .join(" ");
        MachineFacts {
            cpu,
            cores: crate::harness::core_count(),
            online: read_trim("/sys/devices/system/cpu/online").unwrap_or_else(unknown),
            governor: read_trim("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                .unwrap_or_else(|| "unknown (no cpufreq: VM or container)".into()),
            isolcpus: cmdline_param(&cmdline, "isolcpus").unwrap_or_default(),
            nohz_full: cmdline_param(&cmdline, "nohz_full").unwrap_or_default(),
            rcu_nocbs: cmdline_param(&cmdline, "rcu_nocbs").unwrap_or_default(),
            isolated: read_trim("/sys/devices/system/cpu/isolated").unwrap_or_default(),
            kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(unknown),
            clocksource: read_trim(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .unwrap_or_else(unknown),
            tsc_flags: if flags.is_empty() {
                unknown()
            } else if tsc.is_empty() {
                "none".into()
            } else {
                tsc.join(" ")
            },
            smt: read_trim("/sys/devices/system/cpu/smt/control").unwrap_or_else(unknown),
            thp: read_trim("/sys/kernel/mm/transparent_hugepage/enabled")
                .map_or_else(unknown, |s| bracketed(&s)),
            virtualization: detect_virtualization(&cpuinfo, &dmi),
        }
    }

    /// `(name, value)` pairs in report order; empty values read as `(none)`.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let or_none = |s: &str| {
            if s.is_empty() {
                "(none)".to_string()
            } else {
                s.to_string()
            }
        };
        vec![
            ("CPU", self.cpu.clone()),
            (
                "cores usable / online",
                format!("{} / {}", self.cores, self.online),
            ),
            ("governor (cpu0)", self.governor.clone()),
            ("isolcpus", or_none(&self.isolcpus)),
            ("nohz_full", or_none(&self.nohz_full)),
            ("rcu_nocbs", or_none(&self.rcu_nocbs)),
            ("isolated (kernel)", or_none(&self.isolated)),
            ("kernel", self.kernel.clone()),
            ("clocksource", self.clocksource.clone()),
            ("TSC flags", self.tsc_flags.clone()),
            ("SMT", self.smt.clone()),
            ("transparent hugepages", self.thp.clone()),
            ("virtualization", self.virtualization.clone()),
        ]
    }
}

/// The run's metadata, saved as [`RUN_META`] when the suites run and read back by
/// `--report-only`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    /// UTC date and time the run started, `YYYY-MM-DD HH:MM:SS UTC`.
    pub date: String,
    /// The command line that produced the run.
    pub command: String,
    /// Whether it was a `--quick` run (numbers not for quoting).
    pub quick: bool,
    /// Where it ran.
    pub machine: MachineFacts,
}

impl RunMeta {
    /// Metadata for a run starting now with this process's command line.
    pub fn now(quick: bool) -> Self {
        RunMeta {
            date: utc_datetime(unix_now()),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            quick,
            machine: MachineFacts::detect(),
        }
    }

    /// Writes `<dir>/run-meta.json`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(RUN_META), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Reads `<dir>/run-meta.json`, if present and valid.
    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read(dir.join(RUN_META)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD` of a Unix time, UTC (civil-from-days, Howard Hinnant; no date crate for one
/// string).
pub fn utc_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
pub fn utc_datetime(secs: u64) -> String {
    let t = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        utc_date(secs),
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Every `*.json` in `dir` that parses as a suite [`Report`], in file-name order, and the
/// names of the JSON files that did not (run metadata, other tools' output).
pub fn load_reports(dir: &Path) -> anyhow::Result<(Vec<Report>, Vec<String>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == RUN_META {
            continue;
        }
        match std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Report>(&b).ok())
        {
            Some(r) => reports.push(r),
            None => skipped.push(name),
        }
    }
    Ok((reports, skipped))
}

/// Orders reports as `order` lists suite names; suites not in it follow, alphabetically.
pub fn order_reports(mut reports: Vec<Report>, order: &[&str]) -> Vec<Report> {
    reports.sort_by_key(|r| {
        (
            order
                .iter()
                .position(|s| *s == r.suite)
                .unwrap_or(usize::MAX),
            r.suite.clone(),
        )
    });
    reports
}

/// The HDR percentile files of `suite` in `dir`: `<suite>-*.hdr.txt`, `<suite>_*.hgrm` (and the
/// `-`/`_` mixes), sorted by name.
pub fn percentile_files(dir: &Path, suite: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                        return false;
                    };
                    let Some(rest) = name.strip_prefix(suite) else {
                        return false;
                    };
                    (rest.starts_with('-') || rest.starts_with('_'))
                        && (name.ends_with(".hdr.txt") || name.ends_with(".hgrm"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Parses the harness's percentile text (`value_ns percentile count` per line, header first)
/// into `(percentile, value_ns)` points; lines that are not three numbers are skipped.
pub fn parse_percentiles(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let v: f64 = it.next()?.parse().ok()?;
            let q: f64 = it.next()?.parse().ok()?;
            it.next()?.parse::<u64>().ok()?;
            (q.is_finite() && v.is_finite()).then_some((q, v))
        })
        .collect()
}

/// The "nines" of a percentile: 0.9 -> 1, 0.99 -> 2, 0.999 -> 3 (capped at 7).
fn nines(q: f64) -> f64 {
    (-(1.0 - q.clamp(0.0, 1.0 - 1e-7)).log10()).clamp(0.0, 7.0)
}

/// One named percentile curve.
struct Curve {
    label: String,
    points: Vec<(f64, f64)>,
}

/// The curves of a suite: its HDR files, or failing that its latency rows' percentiles.
fn curves(dir: &Path, report: &Report) -> Vec<Curve> {
    let mut out = Vec::new();
    for p in percentile_files(dir, &report.suite) {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let points: Vec<(f64, f64)> = parse_percentiles(&text)
            .into_iter()
            .filter(|&(q, v)| q < 1.0 && v > 0.0)
            .map(|(q, v)| (nines(q), v))
            .collect();
        if points.len() >= 2 {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = name
                .trim_end_matches(".hdr.txt")
                .trim_end_matches(".hgrm")
                .trim_start_matches(report.suite.as_str())
                .trim_start_matches(['-', '_'])
                .to_string();
            out.push(Curve { label, points });
        }
    }
    if out.is_empty() {
        for r in &report.rows {
            if let Some(l) = r.latency.filter(|l| l.samples > 0) {
                let top = 1.0 - 1.0 / (l.samples as f64).max(10_000.0);
                let points = [(0.5, l.p50), (0.99, l.p99), (0.999, l.p999), (top, l.max)]
                    .iter()
                    .map(|&(q, v)| (nines(q), (v as f64).max(1.0)))
                    .collect();
                out.push(Curve {
                    label: format!("{} | {}", r.case, r.subject),
                    points,
                });
            }
        }
    }
    out
}

/// Most curves drawn in one plot; more would be an unreadable legend.
const MAX_CURVES: usize = 16;

/// Writes `<dir>/<suite>-percentiles.svg`: latency (log ns) against percentile for every curve
/// of the suite. Returns the file name, or `None` when the suite has no latency data.
pub fn plot_suite(dir: &Path, report: &Report) -> anyhow::Result<Option<String>> {
    let mut cs = curves(dir, report);
    if cs.is_empty() {
        return Ok(None);
    }
    cs.truncate(MAX_CURVES);
    let (mut lo, mut hi, mut xmax) = (f64::MAX, 1.0f64, 1.0f64);
    for c in &cs {
        for &(x, y) in &c.points {
            lo = lo.min(y);
            hi = hi.max(y);
            xmax = xmax.max(x);
        }
    }
    let lo = (lo / 1.5).max(1.0);
    let hi = (hi * 1.5).max(lo * 10.0);
    let xmax = xmax.ceil().max(2.0);
    let name = format!("{}-percentiles.svg", report.suite);
    let path = dir.join(&name);
    let height = 420 + 18 * cs.len() as u32;
    {
        let root = SVGBackend::new(&path, (900, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: latency by percentile", report.suite),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xmax, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ns, log scale)")
            .x_labels(xmax as usize + 1)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, c) in cs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(c.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    let written = std::fs::read_to_string(&path)?;
    svg_well_formed(&written)
        .map_err(|e| anyhow::anyhow!("{} is not a valid SVG: {e}", path.display()))?;
    Ok(Some(name))
}

/// Checks that `svg` is one well-formed `<svg>` element (every opened tag closed, in order)
/// that draws at least one line: what a report's plot must be before it is linked.
pub fn svg_well_formed(svg: &str) -> Result<(), String> {
    let mut body = svg.trim_start();
    if body.starts_with("<?xml") {
        let end = body.find("?>").ok_or("XML declaration not closed")?;
        body = body[end + 2..].trim_start();
    }
    if !body.starts_with("<svg") {
        return Err(format!(
            "not an SVG: {:?}",
            &body.chars().take(60).collect::<String>()
        ));
    }
    if !svg.trim_end().ends_with("</svg>") {
        return Err("SVG not closed".into());
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').ok_or("tag not closed")? + i;
        let tag = &rest[i + 1..j];
        rest = &rest[j + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_default();
            if open != name.trim() {
                return Err(format!("</{}> closes <{open}>", name.trim()));
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or_default());
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed tags: {stack:?}"));
    }
    if !(svg.contains("<polyline") || svg.contains("<path")) {
        return Err("SVG draws no line".into());
    }
    Ok(())
}

/// Axis label of a "nines" position: 0 -> `0%`, 1 -> `90%`, 2 -> `99%`, 3 -> `99.9%`.
fn percentile_label(x: f64) -> String {
    let n = x.round() as i32;
    if (x - f64::from(n)).abs() > 1e-6 {
        return String::new();
    }
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        n => format!("99.{}%", "9".repeat((n - 2).max(0) as usize)),
    }
}

/// Escapes `|` and newlines so free text stays inside one markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn lat(r: &Row) -> (String, String, String) {
    r.latency.map_or(("-".into(), "-".into(), "-".into()), |l| {
        (l.p50.to_string(), l.p99.to_string(), l.p999.to_string())
    })
}

/// The `layout` suite's rows pivoted: one line per (case, pace), one column group per profile.
fn side_by_side(report: &Report, out: &mut String) {
    // Subjects are `<profile> / <pace>`.
    let split = |s: &str| -> (String, String) {
        match s.rsplit_once(" / ") {
            Some((p, pace)) => (p.to_string(), pace.to_string()),
            None => (s.to_string(), String::new()),
        }
    };
    let mut profiles: Vec<String> = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &report.rows {
        let (p, pace) = split(&r.subject);
        if !profiles.contains(&p) {
            profiles.push(p);
        }
        let k = (r.case.clone(), pace);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if profiles.len() < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "\n**Side by side** (latency p50 / p99 / p99.9 ns, or items/s; ratio = profile / {}):\n",
        profiles[0]
    );
    let mut head = "| measure | pace |".to_string();
    let mut rule = "|---|---|".to_string();
    for p in &profiles {
        let _ = write!(head, " {p} | ratio |");
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for (case, pace) in &keys {
        let mut line = format!("| {} | {} |", cell(case), pace);
        for p in &profiles {
            let r = report
                .rows
                .iter()
                .find(|r| &r.case == case && split(&r.subject) == (p.clone(), pace.clone()));
            let (v, ratio) = match r {
                Some(r) => (
                    match (r.latency, r.throughput) {
                        (Some(l), _) => format!("{} / {} / {}", l.p50, l.p99, l.p999),
                        (None, Some(t)) => format!("{t:.0}"),
                        _ => "-".into(),
                    },
                    r.ratio.map_or("-".into(), |x| format!("{x:.2}")),
                ),
                None => ("-".into(), "-".into()),
            };
            let _ = write!(line, " {v} | {ratio} |");
        }
        let _ = writeln!(out, "{line}");
    }
}

/// Renders `report.md`: header (date, command, machine), a summary of the suites, then one
/// section per suite. `plots[i]` is the SVG file name of `reports[i]`, if any; `rebuilt` is
/// the command that rebuilt the report from saved files, when it is not the run itself.
pub fn render_markdown(
    meta: &RunMeta,
    reports: &[Report],
    plots: &[Option<String>],
    rebuilt: Option<&str>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# algo-engine benchmark report\n");
    let _ = writeln!(s, "- date: {}", meta.date);
    let _ = writeln!(s, "- command: `{}`", meta.command);
    if let Some(cmd) = rebuilt {
        let _ = writeln!(s, "- report rebuilt from the saved JSON by: `{cmd}`");
    }
    if meta.quick {
        let _ = writeln!(
            s,
            "- **QUICK run** (smoke test): short samples, numbers not meant to be quoted"
        );
    }
    let _ = writeln!(
        s,
        "- every latency is `measured - measurement overhead` (the overhead of each suite is \
         given in its section); ratios compare ours with the named peer in the same run\n"
    );
    let _ = writeln!(s, "## Machine\n\n| fact | value |\n|---|---|");
    for (k, v) in meta.machine.pairs() {
        let _ = writeln!(s, "| {k} | {} |", cell(&v));
    }
    let _ = writeln!(
        s,
        "\n## Suites\n\n| suite | rows | overhead p50 / p99 ns | plot |\n|---|---:|---:|---|"
    );
    for (r, p) in reports.iter().zip(plots) {
        let _ = writeln!(
            s,
            "| [{0}](#{0}) | {1} | {2} / {3} | {4} |",
            r.suite,
            r.rows.len(),
            r.overhead.p50,
            r.overhead.p99,
            p.as_deref()
                .map_or("-".to_string(), |p| format!("[svg]({p})"))
        );
    }
    for (r, p) in reports.iter().zip(plots) {
        let _ = writeln!(s, "\n## {}\n", r.suite);
        let _ = writeln!(
            s,
            "Measurement overhead: p50 {} ns, p99 {} ns (subtracted from every latency row). \
             Machine as recorded by the suite: {} | {} cores | governor {} | kernel {} | \
             isolated [{}].\n",
            r.overhead.p50,
            r.overhead.p99,
            r.machine.cpu,
            r.machine.cores,
            r.machine.governor,
            r.machine.kernel,
            r.machine.isolated
        );
        let _ = writeln!(s, "Method: {}\n", cell(&r.method));
        let _ = writeln!(
            s,
            "| case | subject | p50 ns | p99 ns | p99.9 ns | items/s | ratio | note |\n\
             |---|---|---:|---:|---:|---:|---:|---|"
        );
        for row in &r.rows {
            let (p50, p99, p999) = lat(row);
            let _ = writeln!(
                s,
                "| {} | {} | {p50} | {p99} | {p999} | {} | {} | {} |",
                cell(&row.case),
                cell(&row.subject),
                row.throughput.map_or("-".into(), |t| format!("{t:.0}")),
                row.ratio.map_or("-".into(), |x| format!("{x:.2}")),
                cell(&row.note)
            );
        }
        if r.suite == "layout" {
            side_by_side(r, &mut s);
        }
        match p {
            Some(p) => {
                let _ = writeln!(s, "\n![{} percentile distribution]({p})", r.suite);
            }
            None => {
                let _ = writeln!(s, "\n(no latency rows to plot)");
            }
        }
    }
    s
}

/// Builds `<dir>/report.md` (and the SVG plots) from what the run left in `dir`. `order` is
/// the suites' run order; `rebuilt` is the command that rebuilt the report, when it is not the
/// run itself. Returns the report's path.
pub fn write_report(dir: &Path, order: &[&str], rebuilt: Option<&str>) -> anyhow::Result<PathBuf> {
    let (reports, skipped) = load_reports(dir)?;
    if reports.is_empty() {
        anyhow::bail!("no suite report (*.json) in {}", dir.display());
    }
    if !skipped.is_empty() {
        eprintln!(
            "report: not suite reports, left out: {}",
            skipped.join(", ")
        );
    }
    let reports = order_reports(reports, order);
    let meta = RunMeta::load(dir).unwrap_or_else(|| RunMeta {
        date: format!("unknown (report built {})", utc_datetime(unix_now())),
        command: "unknown (no run-meta.json in the directory)".into(),
        quick: false,
        machine: MachineFacts::detect(),
    });
    let mut plots = Vec::with_capacity(reports.len());
    for r in &reports {
        plots.push(plot_suite(dir, r)?);
    }
    let md = render_markdown(&meta, &reports, &plots, rebuilt);
    let path = dir.join(REPORT_MD);
    std::fs::write(&path, md)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_params() {
        let c = "BOOT_IMAGE=/vmlinuz ro isolcpus=managed_irq,domain,2-3 nohz_full=2-3 quiet";
        assert_eq!(
            cmdline_param(c, "isolcpus").as_deref(),
            Some("managed_irq,domain,2-3")
        );
        assert_eq!(cmdline_param(c, "nohz_full").as_deref(), Some("2-3"));
        assert_eq!(cmdline_param(c, "rcu_nocbs"), None);
        assert_eq!(cmdline_param("nohz_fullx=1", "nohz_full"), None);
    }

    #[test]
    fn bracketed_choice() {
        assert_eq!(bracketed("always [madvise] never"), "madvise");
        assert_eq!(bracketed("on"), "on");
    }

    #[test]
    fn virtualization() {
        assert_eq!(detect_virtualization("flags\t: fpu tsc", ""), "none");
        assert!(detect_virtualization("flags\t: fpu hypervisor", "").starts_with("yes"));
        assert!(detect_virtualization("", "QEMU Standard PC").starts_with("QEMU"));
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_datetime(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
    }

    #[test]
    fn percentile_text() {
        let t =
            "    value_ns     percentile      count\n  25  0.000000  2\n  31  0.500000 10\nbad\n";
        assert_eq!(parse_percentiles(t), vec![(0.0, 25.0), (0.5, 31.0)]);
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(1.5), "");
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }
}
