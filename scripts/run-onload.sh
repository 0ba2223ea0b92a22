#!/usr/bin/env bash
# Runs a command under OpenOnload's latency profile:
#   scripts/run-onload.sh [--allow-missing] [--profile=NAME] -- <command> [args...]
#   scripts/run-onload.sh target/release/algo-engine run --config engine.toml
# Onload accelerates the engine's plain BSD sockets (the mio driver) by LD_PRELOAD interposition;
# the engine detects it at start-up (net::onload::detect) and forces the mio/epoll driver, since
# io_uring would bypass Onload.
# Without the `onload` launcher on PATH this explains and exits 2, unless --allow-missing is
# given, in which case the command runs plainly (kernel stack) after a warning.
set -euo pipefail

allow_missing=0
profile=latency
while [ $# -gt 0 ]; do
  case "$1" in
    --allow-missing) allow_missing=1; shift ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) break ;;
  esac
done

if [ $# -eq 0 ]; then
  echo "run-onload: no command given (see --help)" >&2
  exit 64
fi

if command -v onload >/dev/null 2>&1; then
  echo "run-onload: onload --profile=$profile $*" >&2
  exec onload --profile="$profile" "$@"
fi

cat >&2 <<MSG
run-onload: the OpenOnload launcher 'onload' is not installed on this machine.
  OpenOnload needs a Solarflare/Xilinx/AMD NIC and its driver package (onload + sfc kernel
  module), installed from the vendor's packages. Without it the engine runs on the
  kernel TCP stack and the configured socket driver is used as is.
MSG
if [ "$allow_missing" -eq 1 ]; then
  echo "run-onload: --allow-missing given: running the command without Onload" >&2
  exec "$@"
fi
exit 2
