"""One-time tickets: how a browser opens a URL of the API without the token in it.

A tab's URL lands in the browser's history and a WebSocket's URL may land in logs; neither can carry an
`Authorization` header. So the extension first asks `POST /v1/tickets?for=report` (or `for=ws`) with its
token and gets a random ticket that opens that one route once, within TTL seconds: `/report?ticket=...`.
A used, expired or foreign ticket is worth nothing, so the URL left in history is too.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

TTL = 60.0  # seconds from issue to use
MAX_OPEN = 64  # tickets issued and not used yet; the oldest go first
PURPOSES = {"report": "/report", "ws": "/v1/ws"}  # what a ticket may open


class Tickets:
    def __init__(self, ttl: float = TTL, max_open: int = MAX_OPEN, clock=time.monotonic):
        self.ttl = ttl
        self.max_open = max_open
        self.clock = clock
        self._open: OrderedDict[str, tuple[str, float]] = OrderedDict()  # ticket -> (path, expiry)
        self._lock = threading.Lock()

    def issue(self, purpose: str) -> str:
        path = PURPOSES[purpose]
        ticket = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._open[ticket] = (path, self.clock() + self.ttl)
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return ticket

    def redeem(self, ticket: str | None, path: str) -> bool:
        """True once for a ticket issued for `path` and not expired; the ticket is gone afterwards."""
        if not ticket:
            return False
        with self._lock:
            self._expire()
            entry = self._open.get(ticket)
            if entry is None or entry[0] != path:
                return False  # a ticket for another route stays usable for its own
            del self._open[ticket]
            return True

    def _expire(self) -> None:
        now = self.clock()
        while self._open:
            ticket, (_, expiry) = next(iter(self._open.items()))
            if expiry > now:
                break
            del self._open[ticket]
