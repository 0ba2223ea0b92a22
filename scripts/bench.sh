#!/usr/bin/env bash
# Runs the benchmark suites with full sample counts and writes bench-results/<UTC date>/.
# Usage: scripts/bench.sh [suite[,suite...]]   (default: all)
# Pin nothing else to the machine while it runs; on a 2-core VM expect run-to-run noise of
# 10-30% at the tail, which is why every suite repeats and reports the median.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p bench --bin algo-bench -- --suite "${1:-all}" --reps "${REPS:-5}"
