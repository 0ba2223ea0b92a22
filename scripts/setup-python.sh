#!/usr/bin/env bash
# Creates the Python virtual environment .venv in the repository root and installs
# scripts/python-requirements.txt into it. Idempotent: re-running does nothing unless the
# requirements file changed (its hash is stamped into .venv) or the venv is missing/broken.
# Used by tests that need a real third-party peer (e.g. hotpath/net/tests/ws_python_peer.rs).
# Environment: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
REQ=scripts/python-requirements.txt
STAMP=.venv/.requirements.sha256

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup-python: $PY not found; install Python 3 (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi

# Serialise concurrent runs (several test binaries may call this at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/setup-python.$(pwd | sha256sum | cut -c1-16).lock"
  flock 9
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  rm -rf .venv
  if ! "$PY" -m venv .venv; then
    # Debian's python3 ships venv without ensurepip; the python3-venv package adds it.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup-python: installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv
      "$PY" -m venv .venv
    else
      echo "setup-python: '$PY -m venv' failed (Debian: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup-python: .venv up to date"
  exit 0
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ"
echo "$want" > "$STAMP"
echo "setup-python: .venv ready ($(.venv/bin/python --version 2>&1))"
