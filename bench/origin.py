"""A fast loopback origin for the proxy benchmarks: fixed responses, HTTP/1.1 keep-alive, nothing else.

Run: python bench/origin.py PORT   (serves /plain and LinkedIn's settings path: 120 KB, or 1.5 MB with ?big; with
?fresh or ?big&fresh, a page that differs from the one before, as real pages do)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect import settings_page  # noqa: E402


SETTINGS = b"/mypreferences/d/settings/data-for-ai-improvement"


def response(body: bytes, ctype: str) -> bytes:
    return (f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            f"cache-control: no-store\r\n\r\n").encode() + body


def fresh(body: bytes, ctype: str):
    """A page that differs on every load, as real pages do (a CSRF token, a request id): the first 16 bytes of the
    page's token replaced by a counter. Without it every response would be the same bytes."""
    cut = body.index(b'__como_rehydration__ = ["') + len(b'__como_rehydration__ = ["')
    pre, post = response(body, ctype).split(body[cut:cut + 16], 1)
    return lambda n: b"".join((pre, b"%016d" % n, post))


SETTINGS_120K, SETTINGS_1M5 = settings_page(120_000), settings_page(1_500_000)
FRESH = {
    SETTINGS + b"?fresh": fresh(SETTINGS_120K, "text/html; charset=utf-8"),
    SETTINGS + b"?big&fresh": fresh(SETTINGS_1M5, "text/html; charset=utf-8"),
}
BODIES = {
    b"/plain": response(b"<html><body>" + b"x" * 2000 + b"</body></html>", "text/html"),
    SETTINGS: response(SETTINGS_120K, "text/html; charset=utf-8"),
    SETTINGS + b"?big": response(SETTINGS_1M5, "text/html; charset=utf-8"),
}
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class Origin(asyncio.Protocol):
    served = 0  # pages made fresh so far

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1] if b" " in head else b"/"
            if path.startswith(b"http"):  # absolute-form, if a client sends it
                path = b"/" + path.split(b"/", 3)[-1]
            make = FRESH.get(path)
            if make is not None:
                Origin.served += 1
                self.t.write(make(Origin.served))
            else:
                self.t.write(BODIES.get(path, NOT_FOUND))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Origin, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
