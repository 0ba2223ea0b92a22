#!/usr/bin/env bash
# Runs the benchmark suites with full sample counts and writes bench-results/<UTC date>/:
# <suite>.json, HDR percentile files, one <suite>-percentiles.svg per suite, run-meta.json (the
# machine and this command) and report.md, which assembles them (see tuning/DEPLOY.md, step 6).
# Usage:
#   scripts/bench.sh [suite[,suite...]] [extra algo-bench args]   (default: all)
#   scripts/bench.sh --report-only bench-results/<date>           rebuild report.md from its files
#   scripts/bench.sh --list                                       the suite names
# Environment: REPS (default 5), ALGO_DATA_DIR (the recorded captures; default ../shared/data).
# Pin nothing else to the machine while it runs; on a 2-core VM expect run-to-run noise of
# 10-30% at the tail, which is why every suite repeats and reports the median. Run
# tuning/check.sh first: the report records the machine state, but not whether it was tuned.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ALGO_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  ALGO_DATA_DIR="$(cd ../shared/data && pwd)"
  export ALGO_DATA_DIR
fi
bench=(cargo run --release -p bench --bin algo-bench --)
case "${1:-}" in
  --report-only|--list|-h|--help) exec "${bench[@]}" "$@" ;;
esac
suites="${1:-all}"
[ $# -gt 0 ] && shift
exec "${bench[@]}" --suite "$suites" --reps "${REPS:-5}" "$@"
