"""A Binance-like REST depth endpoint for hotpath/tests/snapshot_fetch.rs.

Python's own `http.server` (HTTP/1.1, keep-alive), an implementation nobody in this project
wrote, serves `GET <--path>?symbol=<--symbol>&limit=<n>` from a real capture (hftbacktest
format: gzip text, `<recv ns> <json>` per line):

* the first `--rate-limited` requests are answered `429` with `Retry-After: 1` (a Binance
  error body, Content-Length framing);
* the next one gets the capture's own REST snapshot (the line starting with
  `{"lastUpdateId"`), byte for byte, with Content-Length;
* later ones, with `--resnapshot-at K`, get the book of that snapshot with the capture's depth
  diffs applied up to the first diff at or after stream line K (counting the capture's lines
  without the snapshot line, as the WebSocket server of the test serves them), its
  `lastUpdateId` being that diff's `u`, the best 1000 levels per side; without it, the captured
  snapshot again. Those answers use chunked transfer encoding.

Every answer carries `X-MBX-USED-WEIGHT-1M` (20 per request served so far). Anything but the
expected path and symbol gets `400` with Binance's `-1121 Invalid symbol.` body.

Protocol on stdout, one line each: `PORT <port>`, `REQ <n> status=<code> conn=<connection>
weight=<w> at=<monotonic seconds> <path>`, `ERROR <why>` for anything the test must fail on.
Runs until stdin closes.
"""

import argparse
import gzip
import json
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def out(line):
    print(line, flush=True)


def load(path):
    """(captured snapshot line, stream lines without it)."""
    snapshot, stream = None, []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            body = line.split(" ", 1)[1]
            if body.startswith('{"lastUpdateId"'):
                if snapshot is None:
                    snapshot = body
            else:
                stream.append(body)
    if snapshot is None:
        raise SystemExit("ERROR capture has no REST snapshot line")
    return snapshot, stream


def later_snapshot(snapshot, stream, at):
    """The captured snapshot moved forward through the stream's diffs to line `at`."""
    snap = json.loads(snapshot)
    last = snap["lastUpdateId"]
    bids = {p: q for p, q in snap["bids"]}
    asks = {p: q for p, q in snap["asks"]}
    e = t = None
    for i, line in enumerate(stream):
        msg = json.loads(line)
        data = msg.get("data", msg)
        if data.get("e") != "depthUpdate" or data["u"] < last:
            continue
        for side, levels in ((bids, data["b"]), (asks, data["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        last, e, t = data["u"], data["E"], data.get("T")
        if i >= at:
            break
    top_bids = sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:1000]
    top_asks = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))[:1000]
    body = {"lastUpdateId": last, "E": e, "T": t, "bids": top_bids, "asks": top_asks}
    return json.dumps(body, separators=(",", ":"))


class State:
    def __init__(self, args, snapshot, later):
        self.args = args
        self.snapshot = snapshot.encode()
        self.later = later.encode() if later is not None else None
        self.lock = threading.Lock()
        self.requests = 0
        self.served = 0
        self.conns = 0


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            with state.lock:
                state.conns += 1
                self.conn_no = state.conns

        def log_message(self, fmt, *args):  # quiet: the protocol lines are on stdout
            pass

        def send(self, status, body, chunked=False, extra=()):
            with state.lock:
                weight = 20 * (state.served + 1)
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("X-MBX-USED-WEIGHT-1M", str(weight))
            for k, v in extra:
                self.send_header(k, v)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                step = 4093
                for i in range(0, len(body), step):
                    part = body[i : i + step]
                    self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
            return weight

        def do_GET(self):
            with state.lock:
                state.requests += 1
                n = state.requests
            parts = urlsplit(self.path)
            q = parse_qs(parts.query)
            ok = (
                parts.path == state.args.path
                and q.get("symbol") == [state.args.symbol]
                and q.get("limit", ["0"])[0].isdigit()
            )
            if not ok:
                status = 400
                weight = self.send(400, b'{"code":-1121,"msg":"Invalid symbol."}')
            elif n <= state.args.rate_limited:
                status = 429
                weight = self.send(
                    429,
                    b'{"code":-1003,"msg":"Too many requests; please use the websocket."}',
                    extra=[("Retry-After", "1")],
                )
            else:
                status = 200
                with state.lock:
                    first = state.served == 0
                    state.served += 1
                if first:
                    weight = self.send(200, state.snapshot)
                else:
                    weight = self.send(200, state.later or state.snapshot, chunked=True)
            out(
                f"REQ {n} status={status} conn={self.conn_no} weight={weight} "
                f"at={time.monotonic():.3f} {self.path}"
            )

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--symbol", required=True)
    ap.add_argument("--rate-limited", type=int, default=1)
    ap.add_argument("--resnapshot-at", type=int, default=-1)
    args = ap.parse_args()
    snapshot, stream = load(args.capture)
    later = later_snapshot(snapshot, stream, args.resnapshot_at) if args.resnapshot_at >= 0 else None
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(State(args, snapshot, later)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out(f"PORT {server.server_address[1]} snapshot_bytes={len(snapshot)}")
    sys.stdin.read()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
