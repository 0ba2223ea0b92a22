#!/usr/bin/env bash
# Downloads the recorded market data the tests and benchmarks read (through ALGO_DATA_DIR) from
# their public origins, and checks each file against the SHA-256 the project was tested with.
# Usage: scripts/fetch-data.sh [DEST]     (default: ../shared/data, the layout CI uses)
# The files are never copied into this repository.
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
mkdir -p "$dest"

HFTBT=https://raw.githubusercontent.com/nkaz001/hftbacktest/master/examples
CRYPTOFEED=https://raw.githubusercontent.com/bmoscon/cryptofeed/master/sample_data
LEAN=https://raw.githubusercontent.com/QuantConnect/Lean/master/Data/forex/fxcm/tick/eurusd

# sha256  relative-path  url
files=(
"5d263f4c5379cfc27379ef0e22779aa33804463d1b69c292e9c0714e31f2e1b4  binance/spot/btcusdt_20240808.gz  $HFTBT/spot/btcusdt_20240808.gz"
"179a67651ec90f8d299c033f85df29027315a30a738eae74a1388d560f80a737  binance/spot/ethusdt_20240808.gz  $HFTBT/spot/ethusdt_20240808.gz"
"0ad7b3a0f5cff220761ea890cfd6e3c15f6899edc7f94637ec915043d7a72251  binance/usdm/btcusdt_20240808.gz  $HFTBT/usdm/btcusdt_20240808.gz"
"6b76bc224bbb7fe402e7206066775e17e18dbc697247fbab8ebcc38289a3f772  binance/usdm/ethusdt_20240808.gz  $HFTBT/usdm/ethusdt_20240808.gz"
"f482e6ea64cb2cbbf2ea6d038f509d9587720631f4287747d2edc480e880c21d  binance/cryptofeed/BINANCE.http.0.0  $CRYPTOFEED/BINANCE.http.0.0"
"5ba2e0cc8204e49dff3d4c608dbb1c3cacc06d432d910ccc31f6b94136bfa5d2  binance/cryptofeed/BINANCE.ws.1.0  $CRYPTOFEED/BINANCE.ws.1.0"
"10f8dc737932ae6eda49d92b2bfc7d31a9edbb9d3286024b5baf9443f5ca1fc6  binance/cryptofeed/BINANCE_DELIVERY.http.0.0  $CRYPTOFEED/BINANCE_DELIVERY.http.0.0"
"e83e056ff2aac09ac7ad4ae9ab54c3b86e9eac0f5423cc7fd33f8316e76e21e6  binance/cryptofeed/BINANCE_DELIVERY.ws.1.0  $CRYPTOFEED/BINANCE_DELIVERY.ws.1.0"
"7b9911c860d28329cb19512578036c595212d810c227d1a0f72d972218919828  fx/fxcm/eurusd/20140505_quote.zip  $LEAN/20140505_quote.zip"
"a4d4cb82de802d972b00599b711e9d5c7afb90180b403a43009c366bd29a4a01  fx/fxcm/eurusd/20140506_quote.zip  $LEAN/20140506_quote.zip"
"a2d350856b1fdc3738521e93fb2c0328df48077fc4f127d961425efab2102627  fx/fxcm/eurusd/20140507_quote.zip  $LEAN/20140507_quote.zip"
"389b8d4212b059a861439e0d684e94a2e591a0af7a8882c2a6d81bc46879c5af  fx/fxcm/eurusd/20140508_quote.zip  $LEAN/20140508_quote.zip"
"0a2df63aeb3eb7b37b568f36d08d6628f3054bcf00378884659247d15e1506ce  fx/fxcm/eurusd/20140509_quote.zip  $LEAN/20140509_quote.zip"
)

fail=0
for entry in "${files[@]}"; do
  read -r sum rel url <<<"$(eval echo "$entry")"
  out="$dest/$rel"
  if [ -f "$out" ] && echo "$sum  $out" | sha256sum -c --quiet - 2>/dev/null; then
    echo "ok       $rel"
    continue
  fi
  mkdir -p "$(dirname "$out")"
  echo "fetching $rel"
  if ! curl -fsSL --retry 3 -o "$out.part" "$url"; then
    echo "FAILED   $rel ($url)" >&2; fail=1; continue
  fi
  if echo "$sum  $out.part" | sha256sum -c --quiet - 2>/dev/null; then
    mv "$out.part" "$out"
  else
    echo "CHECKSUM MISMATCH $rel: the origin changed the file; keeping it as $out.part" >&2; fail=1
  fi
done
exit $fail
