#!/usr/bin/env bash
# Model-checks the journal protocol (ringbuffers/verification/journal.pml) with Spin.
#
# Runs an exhaustive safety search (all interleavings, every crash point) of the model in both
# crash modes -- kill -9 and power loss (-DTORN) -- and requires "errors: 0" from each. Then it
# runs the model's deliberately broken variants (mutants) and requires each of them to FAIL, so
# a model whose assertions can no longer fire does not pass silently.
#
# Installs spin (and gcc) with apt-get when missing: non-interactive, as root or through sudo.
# Exit status: 0 when every check behaves as expected, 1 otherwise. Takes a few seconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$root/ringbuffers/verification/journal.pml"

install_pkg() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing $* (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$@" >/dev/null; }
}
command -v spin >/dev/null 2>&1 || install_pkg spin
command -v gcc >/dev/null 2>&1 || install_pkg gcc

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$model" "$work/journal.pml"

failed=0

# check <label> <pass|fail> [spin -D options...]
check() {
    local label="$1" expect="$2"
    shift 2
    local out="$work/out.txt"
    (
        cd "$work"
        rm -f pan pan.* ./*.trail
        spin -a "$@" journal.pml >/dev/null
        gcc -O2 -DSAFETY -DVECTORSZ=2048 -w -o pan pan.c
        ./pan -m1000000 -w22 >"$out" 2>&1 || true
    )
    local errors states depth
    errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -n1)"
    states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | head -n1)"
    depth="$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | head -n1)"
    if [ -z "$errors" ]; then
        echo "FAIL  $label: no verdict from pan" >&2
        cat "$out" >&2
        failed=1
        return
    fi
    if grep -q "max search depth too small" "$out"; then
        echo "FAIL  $label: search depth limit hit, the search was not exhaustive" >&2
        failed=1
        return
    fi
    if [ "$expect" = pass ]; then
        if [ "$errors" = 0 ]; then
            echo "ok    $label: errors: 0, $states states stored, depth $depth (exhaustive)"
        else
            echo "FAIL  $label: errors: $errors" >&2
            grep -E "assertion violated|invalid end state" "$out" >&2 || true
            failed=1
        fi
    else
        if [ "$errors" != 0 ]; then
            local why
            why="$(grep -oE "assertion violated.*|invalid end state.*" "$out" | head -n1)"
            echo "ok    $label: caught ($why)"
        else
            echo "FAIL  $label: the mutant passed; the model's assertions cannot see this bug" >&2
            failed=1
        fi
    fi
}

echo "spin: $(spin -V)"
check "journal protocol, kill -9" pass
check "journal protocol, power loss (torn records)" pass -DTORN
check "mutant: commit word stored before the payload" fail -DBUG_COMMIT_FIRST
check "mutant: end-of-segment marker before the next header" fail -DBUG_MARKER_FIRST
check "mutant: recovery leaves the torn bytes" fail -DBUG_NO_ZERO
check "mutant: recovery leaves the torn bytes (power loss)" fail -DTORN -DBUG_NO_ZERO

if [ "$failed" -ne 0 ]; then
    echo "check-promela: FAILED" >&2
    exit 1
fi
echo "check-promela: all checks passed"
