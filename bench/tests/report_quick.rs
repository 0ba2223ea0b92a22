//! The smoke run scripts/test.sh does (`algo-bench --quick --out DIR`), checked for what the
//! report promises: every suite `algo-bench --list` names has its JSON and its section in
//! `report.md`, the machine and the command are recorded, every plot the report links is a
//! well-formed SVG, and `--report-only` rebuilds the same sections from the saved files.
//! Needs the recorded captures (ALGO_DATA_DIR); with ALGO_REQUIRE_DATA=1 their absence fails.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_algo-bench"))
}

#[test]
fn quick_run_writes_a_complete_report() {
    let data = hotpath::datadir::capture("binance/spot/btcusdt_20240808.gz");
    if data.is_none() {
        assert!(
            !hotpath::datadir::data_required(),
            "capture missing and ALGO_REQUIRE_DATA is set"
        );
        eprintln!("skipped: captures not found (set ALGO_DATA_DIR)");
        return;
    }
    let list = bin().arg("--list").output().unwrap();
    assert!(list.status.success());
    let suites: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(suites.iter().any(|s| s == "layout"), "{suites:?}");

    // scripts/test.sh runs the release smoke run first and points ALGO_BENCH_SMOKE_DIR at its
    // output, so CI checks that run's report instead of repeating every suite in a debug build.
    let tmp = tempfile::tempdir().unwrap();
    let smoke = std::env::var_os("ALGO_BENCH_SMOKE_DIR").map(std::path::PathBuf::from);
    let dir_path = match smoke {
        Some(d) => {
            let copy = tmp.path().join("smoke");
            std::fs::create_dir_all(&copy).unwrap();
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
                }
            }
            copy
        }
        None => {
            let out = bin()
                .args(["--quick", "--out"])
                .arg(tmp.path())
                .env("ALGO_DATA_DIR", hotpath::datadir::data_dir())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "algo-bench --quick failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            tmp.path().to_path_buf()
        }
    };
    let dir = DirRef(&dir_path);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("QUICK run") && md.contains("--quick"), "{md}");
    assert!(md.contains("## Machine") && md.contains("| kernel |"));
    for s in &suites {
        assert!(
            dir.path().join(format!("{s}.json")).is_file(),
            "{s}.json missing"
        );
        assert!(md.contains(&format!("\n## {s}\n")), "no section for {s}");
    }
    assert!(md.contains("**Side by side**"), "layout comparison missing");
    let mut svgs = 0;
    for (i, _) in md.match_indices("](") {
        let rest = &md[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let link = &rest[..end];
        if link.ends_with(".svg") {
            let svg = std::fs::read_to_string(dir.path().join(link)).unwrap();
            if let Err(e) = bench::report::svg_well_formed(&svg) {
                panic!("{link}: {e}");
            }
            svgs += 1;
        }
    }
    assert!(
        svgs >= suites.len(),
        "{svgs} SVG links for {} suites",
        suites.len()
    );

    std::fs::remove_file(dir.path().join("report.md")).unwrap();
    let re = bin().arg("--report-only").arg(dir.path()).output().unwrap();
    assert!(
        re.status.success(),
        "{}",
        String::from_utf8_lossy(&re.stderr)
    );
    let md2 = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md2.contains("rebuilt from the saved JSON"));
    for s in &suites {
        assert!(
            md2.contains(&format!("\n## {s}\n")),
            "rebuilt report lacks {s}"
        );
    }
}

/// A directory with `path()`, so the checks read the same for either source of the report.
struct DirRef<'a>(&'a std::path::Path);

impl DirRef<'_> {
    fn path(&self) -> &std::path::Path {
        self.0
    }
}
