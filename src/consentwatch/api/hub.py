"""WebSocket fan-out: store events (from the detection thread) to every connected client, in order.

Each client has its own bounded queue and sender task, so one slow client never holds up the others or
the proxy: a client whose queue overflows is disconnected and, on reconnecting, gets a fresh `hello`
snapshot (the store is the truth; the socket only says "look again").
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from aiohttp import WSCloseCode, web

from ..store.state import Event

log = logging.getLogger(__name__)

PING_EVERY = 20.0  # seconds: keeps an MV3 service worker alive (Chrome counts WebSocket messages)
QUEUE_LIMIT = 1000
CLOSE_TIMEOUT = 0.5  # seconds to wait for a client's close frame on shutdown

_STOP = object()


def dumps(msg: dict) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


class Client:
    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)

    def put(self, text) -> bool:
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            return False


class Hub:
    def __init__(self, ping_every: float = PING_EVERY):
        self.ping_every = ping_every
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pinger: asyncio.Task | None = None
        self.closing = False

    # -- lifecycle (on the loop) --------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closing = False
        if self.ping_every and self._pinger is None:
            self._pinger = self.loop.create_task(self._ping_loop(), name="consentwatch-ws-ping")

    async def close(self) -> None:
        """Say goodbye to every client (1001 going away) without waiting long for their answers."""
        self.closing = True
        if self._pinger:
            self._pinger.cancel()
            self._pinger = None
        clients = list(self.clients)
        if clients:
            await asyncio.wait([asyncio.ensure_future(_close_ws(c.ws)) for c in clients], timeout=CLOSE_TIMEOUT + 0.5)
        self.clients.clear()

    # -- events (any thread) ------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        """A Watch listener: called on the detection thread after the warning is on disk."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.broadcast, event)
        except RuntimeError:  # loop closed meanwhile (shutdown)
            pass

    def broadcast(self, event: Event) -> None:
        """On the loop: one JSON text for all clients."""
        self.send_all(dumps({"type": event.type, "warning": event.warning}))

    def send_all(self, text: str) -> None:
        for c in list(self.clients):
            if not c.put(text):
                log.warning("a WebSocket client is not reading; disconnecting it (it will resync on reconnect)")
                self.clients.discard(c)
                _drop_oldest_and_put(c, _STOP)

    async def _ping_loop(self) -> None:
        ping = dumps({"type": "ping"})
        while True:
            await asyncio.sleep(self.ping_every)
            self.send_all(ping)

    # -- one connection -----------------------------------------------------------------------------
    async def serve(self, request: web.Request, snapshot: Callable[[], Awaitable[list[dict]]]) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT, max_msg_size=64 * 1024, autoping=True)
        await ws.prepare(request)
        if self.closing:
            await ws.close(code=WSCloseCode.GOING_AWAY)
            return ws
        client = Client(ws)
        # Register before reading the snapshot: an event in between is sent twice (harmless, ids dedupe),
        # never lost.
        self.clients.add(client)
        sender = asyncio.get_running_loop().create_task(self._send(client, snapshot), name="consentwatch-ws-send")
        try:
            async for msg in ws:
                if msg.type == web.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and data.get("type") == "ping":
                        client.put(dumps({"type": "pong"}))
                elif msg.type == web.WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(client)
            if not sender.done():
                client.put(_STOP) or _drop_oldest_and_put(client, _STOP)
                try:
                    await asyncio.wait_for(sender, timeout=CLOSE_TIMEOUT + 0.5)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    sender.cancel()
        return ws

    async def _send(self, client: Client, snapshot) -> None:
        ws = client.ws
        try:
            warnings = await snapshot()
            await ws.send_str(dumps({"type": "hello", "warnings": warnings}))
            while True:
                item = await client.queue.get()
                if item is _STOP:
                    break
                await ws.send_str(item)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        except Exception as e:  # noqa: BLE001 - one client's failure is not the server's
            log.warning("WebSocket send failed: %s", type(e).__name__)
        finally:
            self.clients.discard(client)
            await _close_ws(ws)


def _drop_oldest_and_put(client: Client, item) -> None:
    try:
        client.queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    client.put(item)


async def _close_ws(ws: web.WebSocketResponse) -> None:
    if ws.closed:
        return
    try:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"consentwatch stopping")
    except Exception:  # noqa: BLE001 - already gone
        pass
