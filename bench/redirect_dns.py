"""Bench-only mitmproxy script: stands in for DNS in regular proxy mode (there is none offline).

Every upstream connection goes to the loopback origin, whatever host the client asked for. Loaded into
both the plain and the consentwatch proxy, so it costs both sides the same.
"""

import os


class RedirectDNS:
    def server_connect(self, data):
        data.server.address = ("127.0.0.1", int(os.environ["BENCH_ORIGIN_PORT"]))


addons = [RedirectDNS()]
