#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
#   formatting, clippy with warnings denied, every unit/integration test of the workspace,
#   the loom model of the SPSC ring, the Promela model of the journal protocol, and a quick run of
#   every benchmark suite so the benchmarks cannot rot.
# Real captures are read from ALGO_DATA_DIR (default ../shared/data); with ALGO_REQUIRE_DATA=1 a
# test that cannot find its data fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

export ALGO_DATA_DIR="${ALGO_DATA_DIR:-../shared/data}"
if [ -d "$ALGO_DATA_DIR" ]; then
  ALGO_DATA_DIR="$(cd "$ALGO_DATA_DIR" && pwd)"   # tests run from their crate's directory
fi
export ALGO_DATA_DIR
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n=== %s ===\n' "$*"; }

step "setup"
scripts/setup.sh
scripts/setup-python.sh   # peers for the conformance tests (Python websockets) in .venv

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "benchmark smoke run (quick mode; numbers not for quoting)"
cargo run --release -p bench --bin algo-bench -- --quick --out target/bench-smoke

step "cargo test (workspace)"
# bench/tests/report_quick.rs checks the smoke run's report.md, SVGs and --report-only.
ALGO_BENCH_SMOKE_DIR="$PWD/target/bench-smoke" cargo test --workspace

step "loom model of the SPSC ring"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p ringbuffers --test spsc_loom --release

step "Promela model of the journal protocol"
scripts/check-promela.sh

step "monitoring config (promtool rules/tests, dashboard queries)"
scripts/check-monitoring.sh

step "tuning scripts (check/apply dry run, shellcheck)"
scripts/check-tuning.sh

echo
echo "all checks passed"
