#!/usr/bin/env bash
# The main job on the embedded default: builds the release binary and runs the engine against the
# built-in venue simulator (embedded default configuration), then inspects the journals it wrote.
# Extra arguments go to `algo-engine run` (e.g. --profile tuning/profiles/split-4core.toml,
# --speed 10x, --capture <file>, --duration 30).
set -euo pipefail
cd "$(dirname "$0")/.."
export ALGO_DATA_DIR="${ALGO_DATA_DIR:-../shared/data}"
if [ ! -d "$ALGO_DATA_DIR/binance" ]; then
  echo "run: no captures under $ALGO_DATA_DIR; fetching them (scripts/fetch-data.sh)"
  scripts/fetch-data.sh "$ALGO_DATA_DIR"
fi
cargo build --release --bin algo-engine
journal="${ALGO_JOURNAL:-journal/run-$(date -u +%Y%m%dT%H%M%SZ)}"
target/release/algo-engine run --journal "$journal" "$@"
echo
for dir in "$journal" "$journal/strategy" "$journal/gateway"; do
  [ -d "$dir" ] && target/release/algo-engine journal inspect "$dir"
done
