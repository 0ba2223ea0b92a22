"""WebSocket conformance peer for hotpath/net/tests/ws_python_peer.rs.

A real, independent RFC 6455 implementation (the `websockets` package) serving one connection on
127.0.0.1. It checks what the Rust client sends (a text and a large masked binary message), then
sends a deterministic stream: many text messages, large ones (> 64 KiB, forcing 64-bit lengths),
fragmented text and binary messages (an iterable passed to send() goes out as fragments), and
pings whose pongs it awaits. It ends with "DONE <count> <sha1>" over the data messages, then a
close with code 1000 and a reason, and checks the client echoed code 1000.

Protocol on stdout, one line each: "PORT <port>" once listening, then "RESULT ok ..." or
"RESULT fail <why>". Exit status 0 only if everything checked out.
"""

import asyncio
import hashlib
import struct
import sys

from websockets.asyncio.server import serve

N_SMALL = 2000
PING_EVERY = 100
EXPECTED_BINARY = bytes(i % 251 for i in range(150_000))


class Peer:
    def __init__(self):
        self.sha = hashlib.sha1()
        self.count = 0
        self.pongs = 0
        self.result = "fail handler did not run"
        self.done = asyncio.Event()

    def account(self, kind, payload):
        # kind: b"T" text, b"B" binary; payload as bytes.
        self.sha.update(kind + struct.pack(">Q", len(payload)) + payload)
        self.count += 1

    async def send_text(self, ws, text):
        await ws.send(text)
        self.account(b"T", text.encode())

    async def send_binary(self, ws, data):
        await ws.send(data)
        self.account(b"B", data)

    async def send_fragments(self, ws, parts):
        # A list of str goes out as one fragmented text message, of bytes as binary.
        await ws.send(parts)
        if isinstance(parts[0], str):
            self.account(b"T", "".join(parts).encode())
        else:
            self.account(b"B", b"".join(parts))

    async def ping(self, ws, i):
        waiter = await ws.ping(f"ping-{i}".encode())
        await asyncio.wait_for(waiter, 10)
        self.pongs += 1

    async def handler(self, ws):
        try:
            hello = await asyncio.wait_for(ws.recv(), 10)
            if hello != "HELLO from rust \u20ac":
                raise AssertionError(f"bad hello {hello!r}")
            blob = await asyncio.wait_for(ws.recv(), 10)
            if blob != EXPECTED_BINARY:
                raise AssertionError(f"bad binary from client ({len(blob)} bytes)")

            pings = 0
            for i in range(N_SMALL):
                await self.send_text(
                    ws,
                    f'{{"e":"aggTrade","s":"ETHUSDT","a":{i},"p":"{3000 + i / 100:.2f}",'
                    f'"q":"{i % 97}.5","note":"caf\u00e9 \u65e5\u672c {"x" * (i % 300)}"}}',
                )
                if i % PING_EVERY == 0:
                    await self.ping(ws, i)
                    pings += 1
                if i % 400 == 3:
                    # Large text messages: 64-bit payload lengths.
                    await self.send_text(ws, f"big-{i}:" + "\u00e9" * (40_000 + i))
                if i % 250 == 5:
                    await self.send_fragments(
                        ws, [f"frag-{i}-a;", "\u20ac" * 1000, f";frag-{i}-end"]
                    )
                if i % 500 == 7:
                    await self.send_fragments(
                        ws, [bytes([i % 256]) * 70_000, b"", bytes(range(256)) * 300]
                    )
            await self.send_binary(ws, bytes(range(256)) * 4096)  # 1 MiB binary
            await self.send_text(ws, "")  # empty message
            digest = self.sha.hexdigest()
            count = self.count
            await ws.send(f"DONE {count} {digest} {pings}")
            await ws.close(1000, "peer done")
            rcvd = ws.protocol.close_rcvd
            if rcvd is None or rcvd.code != 1000:
                raise AssertionError(f"client close reply {rcvd!r}")
            if self.pongs != pings:
                raise AssertionError(f"{self.pongs} pongs for {pings} pings")
            self.result = f"ok messages={count} pings={pings} pongs={self.pongs} close_rcvd={rcvd.code}"
        except Exception as e:  # report any failure to the Rust side
            self.result = f"fail {e!r}"
        finally:
            self.done.set()


async def main():
    peer = Peer()
    async with serve(
        peer.handler,
        "127.0.0.1",
        0,
        compression=None,
        max_size=None,
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        try:
            await asyncio.wait_for(peer.done.wait(), 120)
        except asyncio.TimeoutError:
            peer.result = "fail no client within 120 s"
    print(f"RESULT {peer.result}", flush=True)
    return 0 if peer.result.startswith("ok") else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
