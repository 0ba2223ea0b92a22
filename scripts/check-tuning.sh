#!/usr/bin/env bash
# Tests the tuning scripts: tuning/check.sh (table and --json, validated with python3's
# json.tool), tuning/apply.sh --dry-run, each must exit 0 and print every check/step name
# (taken from their --list); `--strict` must agree with the BAD count; the systemd unit must
# pass `systemd-analyze verify` (paths under /opt are not installed here and are ignored); and
# the scripts are linted by shellcheck when it is installed (scripts/setup.sh installs it).
# Usage: scripts/check-tuning.sh        Prints "N passed, 0 failed" and exits 0 when all pass.
# `ok` cannot fail, so `cond && ok .. || ko ..` is a safe if-then-else here.
# shellcheck disable=SC2015
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
ko() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Every name in $1 (one per line) must occur in file $2.
all_named() {
  local missing=""
  while IFS= read -r n; do
    grep -q -- "$n" "$2" || missing="$missing $n"
  done <<<"$1"
  printf '%s' "${missing# }"
}

checks="$(tuning/check.sh --list)"
steps="$(tuning/apply.sh --list)"
[ "$(printf '%s\n' "$checks" | wc -l)" -ge 10 ] && ok "check.sh --list names $(printf '%s\n' "$checks" | wc -l) checks" || ko "check.sh --list"

if tuning/check.sh >"$tmp/check.txt" 2>"$tmp/check.err"; then ok "check.sh exits 0"; else ko "check.sh exit $?: $(cat "$tmp/check.err")"; fi
m="$(all_named "$checks" "$tmp/check.txt")"
[ -z "$m" ] && ok "check.sh prints every check" || ko "check.sh does not print: $m"
if grep -Eq '^[a-z_]+ +(OK|WARN|BAD|UNKNOWN) ' "$tmp/check.txt"; then ok "check.sh lines carry a grade"; else ko "check.sh: no graded line"; fi

if tuning/check.sh --json >"$tmp/check.json" 2>"$tmp/check.err"; then ok "check.sh --json exits 0"; else ko "check.sh --json exit $?"; fi
if python3 -m json.tool "$tmp/check.json" >/dev/null; then ok "check.sh --json is valid JSON"; else ko "check.sh --json is not valid JSON"; fi
m="$(all_named "$checks" "$tmp/check.json")"
[ -z "$m" ] && ok "check.sh --json names every check" || ko "check.sh --json lacks: $m"
# The JSON's checks are exactly the listed ones, each with a known grade.
if python3 - "$tmp/check.json" "$checks" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
names = [c["name"] for c in doc["checks"]]
assert names == sys.argv[2].split(), (names, sys.argv[2].split())
assert all(c["grade"] in ("OK", "WARN", "BAD", "UNKNOWN") for c in doc["checks"])
assert sum(doc["summary"].values()) == len(names)
PY
then ok "check.sh --json structure"; else ko "check.sh --json structure"; fi

nbad="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["BAD"])' "$tmp/check.json")"
tuning/check.sh --strict >/dev/null 2>&1
rc=$?
if { [ "$nbad" -gt 0 ] && [ "$rc" -ne 0 ]; } || { [ "$nbad" -eq 0 ] && [ "$rc" -eq 0 ]; }; then
  ok "check.sh --strict exit $rc with $nbad BAD"
else
  ko "check.sh --strict exit $rc with $nbad BAD"
fi

# Unprivileged: must still exit 0 and print every check (as nobody, when we can switch user).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  if setpriv --reuid=65534 --regid=65534 --clear-groups bash tuning/check.sh >"$tmp/nobody.txt" 2>&1; then
    m="$(all_named "$checks" "$tmp/nobody.txt")"
    [ -z "$m" ] && ok "check.sh unprivileged prints every check" || ko "check.sh unprivileged lacks: $m"
  else
    ko "check.sh unprivileged exit $?: $(tail -3 "$tmp/nobody.txt")"
  fi
fi

if tuning/apply.sh --dry-run >"$tmp/apply.txt" 2>&1; then ok "apply.sh --dry-run exits 0"; else ko "apply.sh --dry-run exit $?: $(tail -3 "$tmp/apply.txt")"; fi
m="$(all_named "$(printf '%s\n' "$steps" | sed 's/.*/[&]/')" "$tmp/apply.txt")"
[ -z "$m" ] && ok "apply.sh --dry-run prints every step" || ko "apply.sh --dry-run lacks: $m"
if grep -q 'isolcpus=' "$tmp/apply.txt" || grep -q 'already on the running kernel' "$tmp/apply.txt"; then
  ok "apply.sh prints the kernel command-line advice"
else
  ko "apply.sh: no kernel command-line advice"
fi
if grep -Eq '^  (write|run):' "$tmp/apply.txt"; then ko "apply.sh --dry-run changed something"; else ok "apply.sh --dry-run changes nothing"; fi
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  if setpriv --reuid=65534 --regid=65534 --clear-groups bash tuning/apply.sh >/dev/null 2>&1; then
    ko "apply.sh ran without root and without --dry-run"
  else
    ok "apply.sh refuses without root"
  fi
fi

if command -v systemd-analyze >/dev/null 2>&1; then
  # Paths under /opt/algo-engine exist only on a deployed box.
  out="$(systemd-analyze verify tuning/systemd/algo-engine.service 2>&1 | grep -v '/opt/algo-engine/.* is not executable' || true)"
  [ -z "$out" ] && ok "systemd-analyze verify algo-engine.service" || ko "systemd-analyze: $out"
fi

if command -v shellcheck >/dev/null 2>&1; then
  if shellcheck -x tuning/check.sh tuning/apply.sh scripts/check-tuning.sh scripts/bench.sh >"$tmp/sc.txt" 2>&1; then
    ok "shellcheck"
  else
    ko "shellcheck:"; cat "$tmp/sc.txt"
  fi
else
  echo "skip shellcheck (not installed; scripts/setup.sh installs it)"
fi

echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
