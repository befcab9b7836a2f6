"""Flow-to-WebSocket latency of `consentwatch run`: how long after a settings page passes the proxy the
browser extension hears about it.

A real `consentwatch run` subprocess serves a recording of LinkedIn's AI-training settings page, ON and
OFF (server replay, loopback, no network). One WebSocket client is connected as the extension would be.
The benchmark fetches the page through the proxy over HTTPS, alternating ON and OFF so that every fetch
changes the stored state and is announced (warning, resolved, warning re-enabled, ...), and times:

  response -> WS   from the moment the client has the whole response to the WebSocket message
  request -> WS    from sending the request to the WebSocket message (includes the proxy round trip)

The path measured: response hook -> worker thread -> detectors -> store (fsynced atomic write) ->
loop.call_soon_threadsafe -> WebSocket send. Goal: p99 under 50 ms on loopback.

Run: .venv/bin/python bench/latency.py [-n 400] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from live_support import OFF_URL, SETTINGS_URL, default_recording, start_run  # noqa: E402
from stats import pct  # noqa: E402


async def measure(n: int, warmup: int) -> tuple[list[float], list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    data = tmp / "data"
    data.mkdir()
    run = start_run(data, default_recording(tmp))
    resp_to_ws: list[float] = []
    req_to_ws: list[float] = []
    try:
        async with aiohttp.ClientSession() as ws_session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=1)) as web:
            ws = await ws_session.ws_connect(f"{run.api}/v1/ws", headers={"Authorization": f"Bearer {run.token}"})
            assert json.loads((await ws.receive()).data)["type"] == "hello"
            for i in range(warmup + n):
                url = SETTINGS_URL if i % 2 == 0 else OFF_URL
                t0 = time.perf_counter()
                async with web.get(url, proxy=run.proxy) as r:
                    await r.read()
                    assert r.status == 200
                t1 = time.perf_counter()
                while True:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    t2 = time.perf_counter()
                    if json.loads(msg.data)["type"] in ("warning", "resolved"):
                        break
                if i >= warmup:
                    resp_to_ws.append((t2 - t1) * 1000)
                    req_to_ws.append((t2 - t0) * 1000)
            await ws.close()
    finally:
        run.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return resp_to_ws, req_to_ws


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=400, help="measured fetches (default 400)")
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    resp_to_ws, req_to_ws = asyncio.run(measure(args.n, args.warmup))
    print(f"flow-to-WebSocket latency, consentwatch run on loopback, {args.n} announced flows "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}")
    for name, v in (("response -> WS", resp_to_ws), ("request -> WS", req_to_ws)):
        print(f"{name:<18}{pct(v, 50):>9.2f}{pct(v, 90):>9.2f}{pct(v, 99):>9.2f}{max(v):>9.2f}"
              f"{statistics.fmean(v):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
