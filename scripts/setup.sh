#!/usr/bin/env bash
# Installs what the build and the tests need beyond the Rust toolchain, idempotently.
# Debian packages: spin (Promela model checker for the journal protocol), gcc (builds pan),
# prometheus (the metrics tests scrape the exporter with a real server; it also ships promtool).
# Safe to run repeatedly; skips what is already there. Needs root (or sudo) only when installing.
set -euo pipefail

need_apt=()
command -v spin >/dev/null 2>&1 || need_apt+=(spin)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)   # lints tuning/ and scripts/ (scripts/check-tuning.sh)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
echo "setup: ok"
