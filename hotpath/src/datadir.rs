//! Where recorded captures live: `ALGO_DATA_DIR`, shared by tests, benchmarks and tools.
//!
//! Captures are never copied into the repository; they are read from `ALGO_DATA_DIR` (CI sets
//! `../shared/data`; `scripts/fetch-data.sh` downloads them for everyone else). A relative
//! `ALGO_DATA_DIR` is taken from the workspace root, because cargo runs each test from its own
//! crate's directory. When a capture is missing a test skips with a message, unless
//! `ALGO_REQUIRE_DATA=1`, in which case it fails: CI must never pass by skipping.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // hotpath's manifest dir is <root>/hotpath.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `ALGO_DATA_DIR` resolved against the workspace root; default `<root>/../shared/data`.
pub fn data_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("ALGO_DATA_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_relative() {
                root.join(d)
            } else {
                d
            }
        }
        _ => root.join("../shared/data"),
    }
}

/// True when `ALGO_REQUIRE_DATA=1`: missing captures are failures, not skips.
pub fn data_required() -> bool {
    std::env::var("ALGO_REQUIRE_DATA").as_deref() == Ok("1")
}

/// The capture at `rel` (e.g. `binance/spot/btcusdt_20240808.gz`) inside the data directory.
///
/// Returns `None` (after printing why) when it is missing and data is optional.
///
/// # Panics
///
/// When the capture is missing and `ALGO_REQUIRE_DATA=1`; that is the point of the variable.
pub fn capture(rel: &str) -> Option<PathBuf> {
    let path = data_dir().join(rel);
    if path.is_file() {
        return Some(path);
    }
    if data_required() {
        panic!(
            "ALGO_REQUIRE_DATA=1 but capture {} is missing (set ALGO_DATA_DIR or run scripts/fetch-data.sh)",
            path.display()
        );
    }
    eprintln!(
        "skipping: capture {} not found (set ALGO_DATA_DIR)",
        path.display()
    );
    None
}
