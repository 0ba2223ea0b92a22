#!/usr/bin/env bash
# Installs what the build and the tests need beyond the Rust toolchain, idempotently.
# Debian packages: spin (Promela model checker for the journal protocol), gcc (builds pan).
# Safe to run repeatedly; skips what is already there. Needs root (or sudo) only when installing.
set -euo pipefail

need_apt=()
command -v spin >/dev/null 2>&1 || need_apt+=(spin)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
echo "setup: ok"
