#!/usr/bin/env python3
"""Independent statistics of a recorded capture, for checking `algo-engine journal stats`.

Reads the capture files directly with the Python standard library only (gzip, json, zipfile,
decimal.Decimal) -- none of the engine's code -- and prints JSON in the same shape as
`algo-engine journal stats --json` (coldpath::stats): per `venue:SYMBOL` and per event type the
count, smallest/largest venue time, min/max price, and for trades the quantity by aggressor side,
the exact notional and the VWAP. coldpath/tests/import_stats.rs imports the same capture through
the engine and requires every number to agree (VWAP to the last unit of the engine's scale).

All arithmetic is exact: Decimal with 60 digits of precision and the Inexact trap set, so a sum
that would need rounding raises instead. Only the VWAP is a rounded quotient: it is printed with
36 significant digits (ROUND_HALF_EVEN), and the test rounds it to the engine's VWAP scale.

Differences from the engine's output, by construction:
  * values are printed normalised (`0.02`, not `0.02000`); compare by value;
  * `price_scale`, `qty_scale`, `vwap_scale` and `instrument` are null (this reader has no
    instrument table);
  * `book_gaps` counts breaks of Binance's update-id chain in each symbol's diff stream (spot:
    `U > previous u + 1`; futures: `pu != previous u`; a diff not newer than the previous one is a
    duplicate and ignored); `book_resyncs` is null (it depends on the engine's sync state).

Usage: check_stats.py CAPTURE --format hftbacktest|cryptofeed|lean-fx [--venue VENUE]
"""

import argparse
import decimal
import gzip
import json
import os
import re
import sys
import zipfile
import zlib
from decimal import Decimal

CTX = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.Inexact,
                                                                      decimal.InvalidOperation])
decimal.setcontext(CTX)
VWAP_CTX = decimal.Context(prec=36, rounding=decimal.ROUND_HALF_EVEN)
FX_PRICE_DECIMALS = 5


def dec(s):
    """A Binance decimal string as an exact Decimal (rejects exponents, NaN, junk)."""
    if not isinstance(s, str) or not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", s):
        raise ValueError(f"bad decimal {s!r}")
    return Decimal(s)


def fmt(d):
    """Exact plain decimal string, normalised (no exponent)."""
    if d is None:
        return None
    d = d.normalize(CTX)
    s = format(d, "f")
    return "0" if s in ("-0", "0") else s


class Kind:
    def __init__(self, name):
        self.name = name
        self.count = 0
        self.first = None
        self.last = None
        self.min = None
        self.max = None
        self.trade = name in ("trade", "agg_trade")
        self.buy = Decimal(0)
        self.sell = Decimal(0)
        self.unknown = Decimal(0)
        self.notional = Decimal(0)
        self.depth_updates = 0
        self.snapshot_levels = 0

    def time(self, ns):
        if ns:
            self.first = ns if self.first is None else min(self.first, ns)
            self.last = ns if self.last is None else max(self.last, ns)

    def lo(self, p):
        if self.min is None or p < self.min:
            self.min = p

    def hi(self, p):
        if self.max is None or p > self.max:
            self.max = p

    def out(self):
        o = {
            "count": self.count,
            "first_venue_ns": self.first,
            "last_venue_ns": self.last,
            "min_price": fmt(self.min),
            "max_price": fmt(self.max),
        }
        if self.trade:
            qty = self.buy + self.sell + self.unknown
            o.update({
                "buy_qty": fmt(self.buy),
                "sell_qty": fmt(self.sell),
                "unknown_qty": fmt(self.unknown),
                "qty": fmt(qty),
                "notional": fmt(self.notional),
                "vwap": format(VWAP_CTX.divide(self.notional, qty), "f") if qty > 0 else None,
                "vwap_scale": None,
            })
        if self.name == "depth_level":
            o["depth_updates"] = self.depth_updates
            o["snapshot_levels"] = self.snapshot_levels
        return o


class Stats:
    def __init__(self):
        self.symbols = {}
        self.feed_errors = 0
        self.raw_frames = 0
        self.chain = {}  # key -> last u

    def sym(self, venue, symbol):
        key = f"{venue}:{symbol.upper()}"
        if key not in self.symbols:
            self.symbols[key] = {"venue": venue, "symbol": symbol.upper(), "kinds": {},
                                 "gaps": 0}
        return self.symbols[key]

    def kind(self, venue, symbol, name):
        s = self.sym(venue, symbol)
        if name not in s["kinds"]:
            s["kinds"][name] = Kind(name)
        return s["kinds"][name]

    def reset_chains(self):
        self.chain = {}

    # ---- Binance messages ----

    def binance(self, venue, msg, snapshot_symbol=None):
        """Account one raw Binance message (already JSON-decoded). Raises on malformed data.

        Everything is validated before anything is counted, so a message either counts
        completely or is a feed error."""
        if isinstance(msg, dict) and "lastUpdateId" in msg and "bids" in msg:
            if snapshot_symbol is None:
                raise ValueError("depth snapshot without a symbol")
            levels = [(dec(p), dec(q)) for p, q in msg["bids"] + msg["asks"]]
            int(msg["lastUpdateId"])
            k = self.kind(venue, snapshot_symbol, "depth_level")
            ns = int(msg["E"]) * 1_000_000 if "E" in msg else 0
            for p, _q in levels:
                k.count += 1
                k.snapshot_levels += 1
                k.time(ns)
                k.lo(p)
                k.hi(p)
            return
        d = msg["data"] if isinstance(msg, dict) and "data" in msg else msg
        if not isinstance(d, dict):
            raise ValueError("not an object")
        e = d.get("e")
        if e in ("trade", "aggTrade"):
            p, q, m, t = dec(d["p"]), dec(d["q"]), d["m"], int(d["T"])
            if not isinstance(m, bool):
                raise ValueError("m is not a bool")
            sym = d["s"]
            k = self.kind(venue, sym, "trade" if e == "trade" else "agg_trade")
            k.count += 1
            k.time(t * 1_000_000)
            k.lo(p)
            k.hi(p)
            if m:
                k.sell += q
            else:
                k.buy += q
            k.notional += p * q
        elif e == "bookTicker" or (e is None and {"u", "s", "b", "B", "a", "A"} <= d.keys()):
            b, a = dec(d["b"]), dec(d["a"])
            dec(d["B"]), dec(d["A"]), int(d["u"])
            ns = int(d["E"]) * 1_000_000 if "E" in d else 0
            k = self.kind(venue, d["s"], "book_ticker")
            k.count += 1
            k.time(ns)
            if b != 0:
                k.lo(b)
            if a != 0:
                k.hi(a)
        elif e == "depthUpdate":
            levels = [(dec(p), dec(q)) for p, q in d["b"] + d["a"]]
            U, u, pu = int(d["U"]), int(d["u"]), d.get("pu")
            ns = int(d["E"]) * 1_000_000
            sym = d["s"]
            key = (venue, sym.upper())
            s = self.sym(venue, sym)
            prev = self.chain.get(key)
            if prev is not None and u > prev:
                broken = (int(pu) != prev) if pu is not None else (U > prev + 1)
                if broken:
                    s["gaps"] += 1
            if prev is None or u > prev:
                self.chain[key] = u
            if not levels:
                return
            k = self.kind(venue, sym, "depth_level")
            for p, _q in levels:
                k.count += 1
                k.time(ns)
                k.lo(p)
                k.hi(p)
            k.depth_updates += 1
        elif e == "kline":
            kl = d["k"]
            lo, hi = dec(kl["l"]), dec(kl["h"])
            dec(kl["o"]), dec(kl["c"]), dec(kl["v"])
            k = self.kind(venue, d["s"], "kline")
            k.count += 1
            k.time(int(d["E"]) * 1_000_000)
            k.lo(lo)
            k.hi(hi)
        elif isinstance(msg, dict) and "result" in msg and "id" in msg:
            return  # subscription acknowledgement
        else:
            raise ValueError(f"unknown message type {e!r}")

    def frame(self, venue, raw, snapshot_symbol=None):
        self.raw_frames += 1
        try:
            msg = json.loads(raw)
            self.binance(venue, msg, snapshot_symbol)
        except (ValueError, KeyError, TypeError, IndexError, decimal.DecimalException):
            self.feed_errors += 1

    def output(self):
        symbols = {}
        for key in sorted(self.symbols):
            s = self.symbols[key]
            symbols[key] = {
                "instrument": None,
                "venue": s["venue"],
                "symbol": s["symbol"],
                "price_scale": None,
                "qty_scale": None,
                "events": {n: k.out() for n, k in sorted(s["kinds"].items())},
                "book_gaps": s["gaps"],
                "book_resyncs": None,
            }
        return {"feed_errors": self.feed_errors, "raw_frames": self.raw_frames,
                "symbols": symbols}


# ---- capture formats ----

def venue_from_path(path):
    parts = [p.lower() for p in os.path.normpath(os.path.abspath(path)).split(os.sep)]
    for name, venue in (("spot", "binance_spot"), ("usdm", "binance_usdm"),
                        ("coinm", "binance_coinm")):
        if name in parts:
            return venue
    return None


def lines(f):
    """Lines without their end-of-line bytes; blank lines skipped."""
    for raw in f:
        raw = raw.rstrip(b"\r\n")
        if raw:
            yield raw


def hftbacktest(st, path, venue):
    symbol = os.path.basename(path).split("_")[0].split(".")[0].upper()
    with gzip.open(path, "rb") as f:
        try:
            for line in lines(f):
                ts, sep, rest = line.partition(b" ")
                if not sep or not ts.isdigit() or not rest:
                    st.feed_errors += 1
                    continue
                st.frame(venue, rest, snapshot_symbol=symbol)
        except (EOFError, OSError, zlib.error):
            st.feed_errors += 1  # the gzip stream ends early: one error, like the engine


def secs_ok(s):
    return re.fullmatch(rb"\d+(\.\d*)?", s) is not None


def cryptofeed(st, path, venue_arg):
    # REST responses: `<url> -> <s.frac>: <body>`; merged by receive time like the engine does
    # (only the order matters for the chain check, and REST bodies carry no chain).
    http = []
    d = os.path.dirname(path)
    prefix = os.path.basename(path).split(".ws.")[0] + ".http."
    for name in sorted(os.listdir(d or ".")):
        if not name.startswith(prefix):
            continue
        with open(os.path.join(d, name), "rb") as f:
            for line in lines(f):
                m = re.fullmatch(rb"(\S+) -> (\d+(?:\.\d*)?): (.*)", line, re.S)
                if not m:
                    st.feed_errors += 1
                    continue
                http.append((m.group(1).decode(), m.group(3)))
    venue = venue_arg
    with open(path, "rb") as f:
        for line in lines(f):
            if b" <-> " in line:
                url, _, ts = line.partition(b" <-> ")
                if not secs_ok(ts):
                    st.feed_errors += 1
                    continue
                host = url.decode(errors="replace")
                venue = venue_arg or ("binance_coinm" if "dstream." in host else
                                      "binance_usdm" if "fstream." in host else "binance_spot")
                st.reset_chains()
                continue
            ts, sep, rest = line.partition(b": ")
            if not sep or not secs_ok(ts) or not rest:
                st.feed_errors += 1
                continue
            st.frame(venue or "binance_spot", rest)
    for url, body in http:
        m = re.search(r"[?&]symbol=([A-Za-z0-9_]+)", url)
        v = venue or ("binance_coinm" if "dapi." in url else
                      "binance_usdm" if "fapi." in url else "binance_spot")
        if "exchangeInfo" in url:
            st.raw_frames += 1  # instrument definitions, not market events
        elif "/depth" in url and m:
            st.frame(v, body, snapshot_symbol=m.group(1))
        else:
            st.frame(v, body)


def lean_fx(st, path, venue):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        csv_name = names[0]
        data = z.read(csv_name)
    parts = csv_name.split("_")
    pair = parts[1].upper() if len(parts) > 1 else os.path.basename(os.path.dirname(path)).upper()
    import datetime
    day = datetime.datetime.strptime(os.path.basename(path)[:8], "%Y%m%d").replace(
        tzinfo=datetime.timezone.utc)
    midnight_ns = int(day.timestamp()) * 1_000_000_000
    k = None
    for line in lines(data.splitlines()):
        f = line.split(b",")
        try:
            if len(f) != 3 or not f[0].isdigit():
                raise ValueError("framing")
            ms = int(f[0])
            if ms >= 2 * 86_400_000:
                raise ValueError("time")
        except ValueError:
            st.feed_errors += 1
            continue
        st.raw_frames += 1
        try:
            bid, ask = dec(f[1].decode()), dec(f[2].decode())
            # The forex instrument's price scale is 5 (FXCM EUR/USD in 1/10 pip): a quote with a
            # non-zero sixth decimal is not representable and is a feed error, as in the engine.
            for v in (bid, ask):
                if v.normalize(CTX).as_tuple().exponent < -FX_PRICE_DECIMALS:
                    raise ValueError("too precise")
        except (ValueError, UnicodeDecodeError, decimal.DecimalException):
            st.feed_errors += 1
            continue
        if k is None:
            k = st.kind(venue or "fxcm", pair, "quote")
        k.count += 1
        k.time(midnight_ns + ms * 1_000_000)
        if bid != 0:
            k.lo(bid)
        if ask != 0:
            k.hi(ask)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--format", required=True, choices=["hftbacktest", "cryptofeed", "lean-fx"])
    ap.add_argument("--venue", help="binance_spot | binance_usdm | binance_coinm | fxcm")
    a = ap.parse_args()
    st = Stats()
    if a.format == "hftbacktest":
        venue = a.venue or venue_from_path(a.capture)
        if venue is None:
            sys.exit("cannot tell the venue from the path; pass --venue")
        hftbacktest(st, a.capture, venue)
    elif a.format == "cryptofeed":
        cryptofeed(st, a.capture, a.venue)
    else:
        lean_fx(st, a.capture, a.venue)
    json.dump(st.output(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
