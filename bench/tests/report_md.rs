//! `bench::report` on a run directory built by hand: two suite reports (one with HDR percentile
//! files, one with latency rows only), a layout report, run metadata and a stray JSON file. The
//! report must have a section per suite in run order, the machine, the side-by-side layout
//! table, and a well-formed SVG plot per suite with latency data.

use bench::harness::{LatencyHist, Machine, Percentiles, Report, Row};
use bench::report::{svg_well_formed, write_report, MachineFacts, RunMeta};
use std::path::Path;

/// Panics with the reason when `svg` is not a well-formed SVG drawing a line.
pub fn assert_well_formed_svg(svg: &str) {
    if let Err(e) = svg_well_formed(svg) {
        panic!("{e}");
    }
}

fn machine() -> Machine {
    Machine::detect()
}

fn lat_row(case: &str, subject: &str, p50: u64, ratio: Option<f64>) -> Row {
    Row {
        case: case.into(),
        subject: subject.into(),
        latency: Some(Percentiles {
            p50,
            p99: p50 * 3,
            p999: p50 * 9,
            max: p50 * 40,
            samples: 100_000,
        }),
        throughput: None,
        ratio,
        note: "a | pipe in a note".into(),
    }
}

fn report(suite: &str, rows: Vec<Row>) -> Report {
    Report {
        suite: suite.into(),
        machine: machine(),
        overhead: Percentiles {
            p50: 17,
            p99: 25,
            ..Default::default()
        },
        method: format!("how {suite} was measured"),
        rows,
    }
}

fn write_hdr(dir: &Path, name: &str, base: u64) {
    let mut h = LatencyHist::new();
    for i in 0..50_000u64 {
        h.record(base + (i * 7919) % (base * 4) + if i % 997 == 0 { base * 50 } else { 0 });
    }
    h.write_percentiles(&dir.join(name)).unwrap();
}

#[test]
fn report_from_saved_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    report(
        "rings",
        vec![
            lat_row("one-way", "spsc", 60, Some(0.5)),
            lat_row("one-way", "crossbeam", 120, None),
        ],
    )
    .save(d)
    .unwrap();
    write_hdr(d, "rings-spsc-latency.hdr.txt", 60);
    write_hdr(d, "rings-crossbeam-latency.hdr.txt", 120);
    // A suite whose name is a prefix of another file's must not pick that file up.
    report("journal", vec![lat_row("append", "journal", 40, None)])
        .save(d)
        .unwrap();
    write_hdr(d, "journalx-other.hdr.txt", 10);
    let mut tp = lat_row(
        "pipeline throughput (events/s)",
        "fused-2core / max",
        0,
        None,
    );
    tp.latency = None;
    tp.throughput = Some(2.5e6);
    let mut tp2 = tp.clone();
    tp2.subject = "split-4core / max".into();
    tp2.throughput = Some(2.0e6);
    tp2.ratio = Some(0.8);
    report(
        "layout",
        vec![
            lat_row("decoded -> strategy (hop)", "fused-2core / max", 90, None),
            tp,
            lat_row(
                "decoded -> strategy (hop)",
                "split-4core / max",
                180,
                Some(2.0),
            ),
            tp2,
        ],
    )
    .save(d)
    .unwrap();
    std::fs::write(d.join("other-tool.json"), b"{\"not\": \"a report\"}").unwrap();
    RunMeta {
        date: "2026-01-02 03:04:05 UTC".into(),
        command: "algo-bench --quick".into(),
        quick: true,
        machine: MachineFacts::detect(),
    }
    .save(d)
    .unwrap();

    let path = write_report(
        d,
        &["rings", "journal", "layout"],
        Some("algo-bench --report-only x"),
    )
    .unwrap();
    let md = std::fs::read_to_string(&path).unwrap();
    let pos = |s: &str| {
        md.find(s)
            .unwrap_or_else(|| panic!("report lacks {s:?}:\n{md}"))
    };
    assert!(pos("## rings") < pos("## journal") && pos("## journal") < pos("## layout"));
    for s in [
        "2026-01-02 03:04:05 UTC",
        "`algo-bench --quick`",
        "--report-only x",
        "QUICK run",
        "## Machine",
        "| CPU |",
        "| clocksource |",
        "| virtualization |",
        "Measurement overhead: p50 17 ns, p99 25 ns",
        "| one-way | spsc | 60 | 180 | 540 | - | 0.50 | a \\| pipe in a note |",
        "**Side by side**",
        "| decoded -> strategy (hop) | max | 90 / 270 / 810 | - | 180 / 540 / 1620 | 2.00 |",
        "| pipeline throughput (events/s) | max | 2500000 | - | 2000000 | 0.80 |",
        "![rings percentile distribution](rings-percentiles.svg)",
        "![journal percentile distribution](journal-percentiles.svg)",
        "![layout percentile distribution](layout-percentiles.svg)",
    ] {
        pos(s);
    }
    assert!(
        !md.contains("other-tool"),
        "a non-report JSON became a section"
    );

    // rings: one curve per HDR file, labelled by the file's suffix.
    let svg = std::fs::read_to_string(d.join("rings-percentiles.svg")).unwrap();
    assert_well_formed_svg(&svg);
    assert!(svg.contains("spsc-latency") && svg.contains("crossbeam-latency"));
    assert!(svg.contains("99.9%"), "percentile axis labels missing");
    // journal: no file of its own (journalx-* is another suite), so its rows are plotted.
    let svg = std::fs::read_to_string(d.join("journal-percentiles.svg")).unwrap();
    assert_well_formed_svg(&svg);
    assert!(!svg.contains("other"), "journal plotted journalx's file");
    assert!(svg.contains("append | journal"));
}

#[test]
fn report_without_reports_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_report(dir.path(), &[], None).unwrap_err();
    assert!(err.to_string().contains("no suite report"), "{err}");
}
