"""Two small mitmproxy addons that let the browser and the user know, not guess, whether interception works.

- `SelfTest` answers `https://selftest.consentwatch.invalid/` itself, like mitmproxy's mitm.it: the name cannot
  exist in DNS (`.invalid`, RFC 6761), the PAC routes it to the proxy, `allow_hosts` intercepts it and the CA's
  name constraints permit it. So a page that loads proves the route and the trust; a TLS error means the browser
  does not trust the CA; no connection at all means the browser does not send it to the proxy.
  Nothing about it is ever sent upstream.
- `TlsFailures` counts the recent client TLS handshakes that failed because the client refused our certificate,
  per host: `/v1/health` reports the counts (host names and numbers only), so the extension can tell "the CA is
  not trusted in this browser" from "nothing happened".
"""

from __future__ import annotations

import collections
import time
from typing import Callable

from mitmproxy import exceptions, http, tls

from .ca import SELFTEST_HOST, SELFTEST_URL
from .request_target import host_of

__all__ = ["SELFTEST_HOST", "SELFTEST_URL", "SelfTest", "TlsFailures"]
SELFTEST_HEADER = "X-Consentwatch-Selftest"

# Answered with this exact page; a person opening it reads what it proves.
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>consentwatch self-test: OK</title></head>
<body><h1>consentwatch self-test: OK</h1>
<p>This page was answered by your local consentwatch proxy, over HTTPS with its own certificate authority.
Your browser sends the platforms to consentwatch and trusts its CA: pages of the platforms it watches are read.</p>
</body></html>
"""

FAILURE_WINDOW = 600.0  # seconds: "recent" TLS failures
MAX_PER_HOST = 1000  # bound on remembered failures per host (a client retrying in a loop)
MAX_HOSTS = 1000  # the rule database's hosts are far fewer; anything beyond is forgotten first


def is_selftest(host: str | None) -> bool:
    return (host or "").lower().rstrip(".") == SELFTEST_HOST


def selftest_response() -> http.Response:
    return http.Response.make(200, PAGE, {
        "content-type": "text/html; charset=utf-8",
        # a cached answer would claim a route that may be gone
        "cache-control": "no-store",
        SELFTEST_HEADER: "ok",
    })


class SelfTest:
    """Answers the self-test host in the proxy. `consentwatch run` puts it first in the addon chain and it stops the
    chain for that host (AddonHalt), so server replay with `server_replay_extra=kill` does not refuse it."""

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if is_selftest(flow.request.host):
            # accept the tunnel here: with the default eager connection strategy mitmproxy would otherwise try to
            # reach a host that cannot exist, and answer 502
            flow.response = http.Response.make(200)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if is_selftest(data.client_hello.sni):
            data.establish_server_tls_first = False  # there is no server
            raise exceptions.AddonHalt()

    def request(self, flow: http.HTTPFlow) -> None:
        # host_of = pretty_host without the IDNA codec, which would cost every flow ~11 us (this runs on all of them)
        if is_selftest(host_of(flow.request)) and flow.response is None and flow.live:
            if flow.request.scheme != "https":
                # plain HTTP proves the route but not the trust: the test is the HTTPS page
                flow.response = http.Response.make(308, b"", {"location": SELFTEST_URL, "cache-control": "no-store"})
            elif flow.request.path.split("?", 1)[0] == "/":
                flow.response = selftest_response()
            else:
                flow.response = http.Response.make(404, b"", {"cache-control": "no-store"})
            raise exceptions.AddonHalt()


def refused_certificate(error: str | None) -> bool:
    """Does mitmproxy's text for a failed client handshake say the client refused our certificate?
    ("does not trust", "may not trust": an alert such as unknown_ca or bad_certificate.) A client that merely
    went away early ("connection closed early") or could not agree on a TLS version does not count."""
    return bool(error) and "trust the proxy's certificate" in error and "disconnected" not in error


class TlsFailures:
    """Client TLS handshakes refused per host (SNI), in the last FAILURE_WINDOW seconds. A successful handshake
    for a host clears its count: once the browser trusts the CA (and was restarted), the count goes back to 0."""

    def __init__(self, window: float = FAILURE_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._failures: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()

    def tls_failed_client(self, data: tls.TlsData) -> None:
        host = (data.conn.sni or "").lower().rstrip(".")
        if not host or not refused_certificate(data.conn.error):
            return
        times = self._failures.pop(host, None) or collections.deque(maxlen=MAX_PER_HOST)
        times.append(self.clock())
        self._failures[host] = times
        while len(self._failures) > MAX_HOSTS:
            self._failures.popitem(last=False)

    def tls_established_client(self, data: tls.TlsData) -> None:
        host = (data.conn.sni or "").lower().rstrip(".")
        self._failures.pop(host, None)

    def recent(self) -> dict[str, int]:
        """{host: refused handshakes in the window}, hosts without recent failures left out."""
        cutoff = self.clock() - self.window
        out = {}
        for host in list(self._failures):
            times = self._failures[host]
            while times and times[0] < cutoff:
                times.popleft()
            if times:
                out[host] = len(times)
            else:
                del self._failures[host]
        return dict(sorted(out.items()))
