"""A Binance-like combined-stream server for hotpath/tests/live_feed.rs.

Serves a real capture (hftbacktest format: gzip text, `<recv ns> <json>` per line) over
WebSocket with the `websockets` package, an implementation nobody in this project wrote. Each
capture line's JSON goes out as one text message; every FRAG_EVERY-th message is fragmented into
three frames, and every PING_EVERY messages the server pings and awaits the client's pong. The
client must connect at `/stream?streams=<the expected streams>`; anything else is answered
with HTTP 400 and reported.

One shared cursor runs over the capture, across connections, so a client that reconnects
continues where its previous connection stopped. Scenarios (`--scenario`):

* `full`: serve everything on one connection.
* `drop`: after `--cut` messages, make sure the client has read them (a ping whose pong comes
  back), then abort the TCP connection without a close frame; answer the next connection
  attempt with HTTP 503 (the client must back off and retry); serve the rest on the one after.
* `silent`: after `--cut` messages (confirmed the same way), stop sending and stop reading (so
  the client's own pings go unanswered) until the client gives up and reconnects; serve the
  rest on the new connection.

`--rate <messages per second>` paces the sending (default: as fast as the client reads); the
snapshot test uses it so that a REST snapshot fetched in the meantime can still be joined.

When the whole capture is out, a last ping/pong confirms the client read everything, and the
server prints `DONE ...`. It then keeps serving (idle) until stdin closes or the test kills it.

Protocol on stdout, one line each: `PORT <port>`, `CONN <n> <accepted|rejected|bad> <path>`,
`CUT <n> <scenario>`, `DONE sent=<messages> frags=<n> pings=<n> pongs=<n> conns=<n>`, and
`ERROR <why>` for anything the test must fail on.
"""

import argparse
import asyncio
import gzip
import http
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve

FRAG_EVERY = 97
PING_EVERY = 500


def out(line):
    print(line, flush=True)


class Server:
    def __init__(self, lines, streams, scenario, cut, rate=0.0):
        self.rate = rate
        self.lines = lines
        self.streams = streams
        self.scenario = scenario
        self.cut = cut
        self.pos = 0
        self.conns = 0
        self.cut_done = False
        self.rejected = False
        self.frags = 0
        self.pings = 0
        self.pongs = 0
        self.new_conn = asyncio.Event()

    def process_request(self, connection, request):
        self.conns += 1
        n = self.conns
        parts = urlsplit(request.path)
        streams = parse_qs(parts.query).get("streams", [""])[0]
        if parts.path != "/stream" or streams != self.streams:
            out(f"CONN {n} bad {request.path}")
            out(f"ERROR unexpected request target {request.path!r}, wanted /stream?streams={self.streams}")
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "unknown streams\n")
        if self.scenario == "drop" and self.cut_done and not self.rejected:
            self.rejected = True
            out(f"CONN {n} rejected {request.path}")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "try again\n")
        out(f"CONN {n} accepted {request.path}")
        self.new_conn.set()
        return None

    async def ping(self, ws):
        """Ping and await the pong: proves the client has read everything sent before."""
        waiter = await ws.ping(b"srv-%d" % self.pings)
        self.pings += 1
        await asyncio.wait_for(waiter, 20)
        self.pongs += 1

    async def handler(self, ws):
        loop = asyncio.get_running_loop()
        t0, first = loop.time(), self.pos
        try:
            while self.pos < len(self.lines):
                i = self.pos
                if self.rate > 0 and (i - first) % 20 == 0:
                    due = t0 + (i - first) / self.rate
                    if due > loop.time():
                        await asyncio.sleep(due - loop.time())
                msg = self.lines[i]
                if i % FRAG_EVERY == FRAG_EVERY - 1 and len(msg) >= 3:
                    a, b = len(msg) // 3, 2 * len(msg) // 3
                    await ws.send([msg[:a], msg[a:b], msg[b:]])
                    self.frags += 1
                else:
                    await ws.send(msg)
                self.pos = i + 1
                if self.pos % PING_EVERY == 0:
                    await self.ping(ws)
                if self.scenario != "full" and not self.cut_done and self.pos == self.cut:
                    await self.ping(ws)
                    self.cut_done = True
                    out(f"CUT {self.pos} {self.scenario}")
                    self.new_conn.clear()
                    if self.scenario == "drop":
                        ws.transport.abort()
                        return
                    # silent: neither send nor read (pings from the client go unanswered)
                    ws.transport.pause_reading()
                    await asyncio.wait_for(self.new_conn.wait(), 60)
                    ws.transport.abort()
                    return
            await self.ping(ws)
            out(
                f"DONE sent={self.pos} frags={self.frags} pings={self.pings} "
                f"pongs={self.pongs} conns={self.conns}"
            )
            await ws.wait_closed()
        except Exception as e:  # report, do not crash the server
            if not (self.scenario != "full" and self.cut_done and self.pos == self.cut):
                out(f"ERROR handler at message {self.pos}: {e!r}")


def load(path):
    lines = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                lines.append(line.split(" ", 1)[1])
    return lines


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", required=True)
    ap.add_argument("--streams", required=True)
    ap.add_argument("--scenario", choices=["full", "drop", "silent"], default="full")
    ap.add_argument("--cut", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0)
    args = ap.parse_args()
    lines = load(args.capture)
    cut = args.cut or len(lines) // 2
    srv = Server(lines, args.streams, args.scenario, cut, args.rate)
    async with serve(
        srv.handler,
        "127.0.0.1",
        0,
        process_request=srv.process_request,
        compression=None,
        max_size=None,
        ping_interval=None,
        max_queue=None,
    ) as server:
        out(f"PORT {server.sockets[0].getsockname()[1]} lines={len(lines)} cut={cut}")
        # Serve until the test closes our stdin (or kills us).
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
