"""Bench-only mitmproxy script: how long the proxy's event loop was blocked (max and p99 lag of a 1 ms tick).

Loaded into both the plain and the consentwatch proxy by bench/proxy.py; writes its figures as JSON to
$LOOPLAG_OUT when mitmproxy shuts down.
"""

import asyncio
import json
import os
import time


class LoopLag:
    def __init__(self):
        self.lags: list[float] = []
        self.task = None

    def running(self):
        self.task = asyncio.get_running_loop().create_task(self.tick())

    async def tick(self):
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - t - 0.001)

    def done(self):
        if self.task:
            self.task.cancel()
        lags = sorted(self.lags) or [0.0]
        out = os.environ.get("LOOPLAG_OUT")
        if out:
            with open(out, "w") as f:
                json.dump({"max_ms": lags[-1] * 1e3, "p99_ms": lags[int(len(lags) * 0.99)] * 1e3,
                           "ticks": len(lags)}, f)


addons = [LoopLag()]
