#!/usr/bin/env python3
"""Reference candles and TA-Lib indicators for hotpath/tests/analytics_talib.rs.

Usage: talib_reference.py OUT_DIR LEAN_QUOTE_ZIP...

For every Lean FX quote zip (one CSV `<ms since midnight UTC>,<bid>,<ask>`, the date in the
file name) this script builds, independently of the engine, the 1m / 5m / 15m candles of the
mid price the way hotpath::analytics::candles documents them:

* mid = (bid + ask) / 2, kept exact as an integer mantissa at one more decimal than the quotes
  (bid and ask at 5 decimals -> mid mantissa (bid + ask) * 5 at 6 decimals);
* buckets aligned to the epoch, a quote at exactly the boundary opens the new candle, no candle
  for a bucket without quotes, a quote from an earlier bucket is applied to the open candle and
  counted as late;
* tick volume (one per quote), sides by the tick rule (up = buy, down = sell, unchanged = the
  previous side, the first quote of the day unclassified);

and runs TA-Lib's RSI(14), ATR(14), PLUS_DI(14), MINUS_DI(14), ADX(14) over the candles (prices
as mantissa / 10^6 in float64). It writes OUT_DIR/<zip stem>_<tf>.csv with one row per candle
(the last, still open candle included) and prints the TA-Lib version.
"""

import csv
import io
import math
import os
import sys
import zipfile
from datetime import datetime, timezone

import numpy as np
import talib

QUOTE_SCALE = 5
MID_SCALE = QUOTE_SCALE + 1
TIMEFRAMES = (("1m", 60), ("5m", 300), ("15m", 900))
PERIOD = 14


def parse_mantissa(s, scale):
    s = s.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    whole, _, frac = s.partition(".")
    if len(frac) > scale:
        if frac[scale:].strip("0"):
            raise ValueError("too precise: " + s)
        frac = frac[:scale]
    m = int(whole or "0") * 10**scale + int(frac.ljust(scale, "0") or "0")
    return -m if neg else m


def midnight_ns(name):
    d = datetime.strptime(os.path.basename(name)[:8], "%Y%m%d").replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000_000


def quotes(path):
    base = midnight_ns(path)
    with zipfile.ZipFile(path) as z:
        text = z.read(z.namelist()[0]).decode("ascii")
    for line in text.splitlines():
        if not line.strip():
            continue
        ms, bid, ask = line.split(",")
        b, a = parse_mantissa(bid, QUOTE_SCALE), parse_mantissa(ask, QUOTE_SCALE)
        if b <= 0 or a <= 0:
            continue
        yield base + int(ms) * 1_000_000, (b + a) * 5


def candles(ticks, secs):
    tf = secs * 1_000_000_000
    out = []
    cur = None
    last_mid = None
    last_side = 0  # 0 unknown, 1 buy, 2 sell
    for ns, mid in ticks:
        if last_mid is None:
            side = 0
        elif mid > last_mid:
            side = 1
        elif mid < last_mid:
            side = 2
        else:
            side = last_side
        last_mid, last_side = mid, side
        bucket = ns - ns % tf
        if cur is None or bucket > cur["open_time_ns"]:
            if cur is not None:
                out.append(cur)
            cur = dict(open_time_ns=bucket, first_ns=ns, last_ns=ns, open=mid, high=mid,
                       low=mid, close=mid, volume=0, buy_volume=0, sell_volume=0, ticks=0,
                       buy_ticks=0, sell_ticks=0, late=0)
        else:
            if bucket < cur["open_time_ns"]:
                cur["late"] += 1
            cur["high"] = max(cur["high"], mid)
            cur["low"] = min(cur["low"], mid)
            cur["close"] = mid
            cur["last_ns"] = max(cur["last_ns"], ns)
        cur["volume"] += 1
        cur["ticks"] += 1
        if side == 1:
            cur["buy_volume"] += 1
            cur["buy_ticks"] += 1
        elif side == 2:
            cur["sell_volume"] += 1
            cur["sell_ticks"] += 1
    if cur is not None:
        out.append(cur)
    return out


FIELDS = ["open_time_ns", "first_ns", "last_ns", "open", "high", "low", "close", "volume",
          "buy_volume", "sell_volume", "ticks", "buy_ticks", "sell_ticks", "late",
          "rsi", "atr", "plus_di", "minus_di", "adx"]


def fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    print("talib", talib.__version__, "numpy", np.__version__)
    for path in sys.argv[2:]:
        ticks = list(quotes(path))
        stem = os.path.basename(path).rsplit(".", 1)[0]
        for name, secs in TIMEFRAMES:
            cs = candles(ticks, secs)
            div = float(10**MID_SCALE)
            h = np.array([c["high"] / div for c in cs], dtype=np.float64)
            lo = np.array([c["low"] / div for c in cs], dtype=np.float64)
            cl = np.array([c["close"] / div for c in cs], dtype=np.float64)
            ind = dict(
                rsi=talib.RSI(cl, timeperiod=PERIOD),
                atr=talib.ATR(h, lo, cl, timeperiod=PERIOD),
                plus_di=talib.PLUS_DI(h, lo, cl, timeperiod=PERIOD),
                minus_di=talib.MINUS_DI(h, lo, cl, timeperiod=PERIOD),
                adx=talib.ADX(h, lo, cl, timeperiod=PERIOD),
            )
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(FIELDS)
            for i, c in enumerate(cs):
                row = [c[f] for f in FIELDS[:14]] + [float(ind[k][i]) for k in FIELDS[14:]]
                w.writerow([fmt(v) for v in row])
            with open(os.path.join(out_dir, f"{stem}_{name}.csv"), "w") as f:
                f.write(buf.getvalue())
            print(f"{stem} {name}: {len(ticks)} quotes, {len(cs)} candles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
