#!/usr/bin/env bash
# Fuzz the hot-path decoders: every cargo-fuzz target under hotpath/fuzz/ for N seconds each (default 60),
# starting from a seed corpus built from the real captures, and report how many executions ran
# clean. A crash stops the run with libFuzzer's report and the input under hotpath/fuzz/artifacts/<target>/;
# fix the bug and add the input to the regression tests (hotpath/tests/binance_decode.rs).
#
#   scripts/fuzz.sh [seconds]
#
# Needs the nightly toolchain (cargo-fuzz builds with sanitizers) and cargo-fuzz, which is
# installed from crates.io if missing. Captures come from ALGO_DATA_DIR (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-60}"
export ALGO_DATA_DIR="${ALGO_DATA_DIR:-../shared/data}"
DATA="$ALGO_DATA_DIR/binance"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is required (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz
fi
mapfile -t TARGETS < <(cargo +nightly fuzz list --fuzz-dir hotpath/fuzz)
if [ ! -d "$DATA" ]; then
  echo "fuzz.sh: no captures under $DATA (set ALGO_DATA_DIR or run scripts/fetch-data.sh)" >&2
  exit 2
fi

# Seed corpora for the decoder targets: real messages of every kind and venue (at most 4 KB
# each), a few REST snapshots cut down to a handful of levels, and the decimal strings they
# contain (prefixed by a scale byte, as the decimal target expects). Other targets start from
# whatever corpus they have.
python3 - "$DATA" hotpath/fuzz/corpus <<'PY'
import gzip, hashlib, json, os, re, sys
data, out = sys.argv[1], sys.argv[2]
def put(target, blob):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(blob).hexdigest()), "wb") as f:
        f.write(blob)
messages = []
for sub in ("spot", "usdm"):
    for name in sorted(os.listdir(os.path.join(data, sub))):
        with gzip.open(os.path.join(data, sub, name), "rt") as f:
            messages += [line.split(" ", 1)[1].rstrip("\n") for line in f]
for name in ("BINANCE.ws.1.0", "BINANCE_DELIVERY.ws.1.0"):
    with open(os.path.join(data, "cryptofeed", name)) as f:
        messages += [l.split(": ", 1)[1] for l in f.read().split("\n")[1:] if ": " in l]
    with open(os.path.join(data, "cryptofeed", name.replace(".ws.1.0", ".http.0.0"))) as f:
        messages += [l.split(" -> ", 1)[1].split(": ", 1)[1] for l in f if " -> " in l]
seen, decimals = {}, set()
for m in messages:
    if m.startswith('{"lastUpdateId"'):
        snap = json.loads(m)
        snap["bids"], snap["asks"] = snap["bids"][:3], snap["asks"][:3]
        m, kind = json.dumps(snap, separators=(",", ":")), "snapshot"
    else:
        kind = re.search(r'"stream":"[^@"]*@([A-Za-z_]+)', m).group(1)
    if len(m) > 4096 or seen.get(kind, 0) >= 60:
        continue
    seen[kind] = seen.get(kind, 0) + 1
    put("binance_scanner", m.encode())
    decimals.update(re.findall(r'"(-?[0-9]*\.?[0-9]+)"', m))
for extra in ('{"e":"trade","s":"BTC\\u0055SDT","t":1,"p":"1","q":"1","T":1,"m":false,"x":"\\ud83d\\ude00"}',
              '{"data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"},"data":5,"x":[[[{}]]]}'):
    put("binance_scanner", extra.encode())
for i, d in enumerate(sorted(decimals)[:2000]):
    put("decimal", bytes([i % 20]) + d.encode())
print("seed corpus:", {t: len(os.listdir(os.path.join(out, t))) for t in os.listdir(out)})
PY

summary=()
for t in "${TARGETS[@]}"; do
  log="hotpath/fuzz/artifacts/$t.log"
  mkdir -p "hotpath/fuzz/artifacts/$t"
  extra=()
  if [ "$t" = binance_scanner ]; then extra=(-dict=hotpath/fuzz/binance.dict); fi
  echo "=== $t: ${SECS}s ==="
  if ! cargo +nightly fuzz run --fuzz-dir hotpath/fuzz "$t" "hotpath/fuzz/corpus/$t" -- \
      -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 "${extra[@]}" 2>&1 | tee "$log"; then
    echo "fuzz.sh: $t FAILED; see $log and hotpath/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  summary+=("$t: ${runs:-?} executions in ${SECS}s, no crash")
done
echo
printf '%s\n' "${summary[@]}"
