"""The page eye's budget: what 50 observations a second cost the proxy, and how soon each one is announced.

One `mitmdump -s addon/consentwatch_addon.py` in reverse mode, with its API on. `wrk` loads the proxy with
unmatched traffic (the common case) in alternating rounds (their order reversed every other round): without
observations (A), and while a client posts 50 `POST /v1/observations` a second to the API (B), each a LinkedIn
settings region whose switch flips every time, so every one of them is detected (in the worker process), stored
(a journal line) and announced on the WebSocket: the worst case. (B15) The same flips at 15 a second, the most the API's own rate limit admits over
time: the worst a page (or a looping extension bug) can make the proxy do. And (C) repeats of one region: nothing
changes, so after the first repeat the API answers them from memory (api/observations.py, `Repeat`). The API's
rate limit is lifted for this (bench/observe_unlimited.py), so that B is what it says.

Printed: requests/s A and B (median, the ratio, and the median of each round's B/A), the proxy process's CPU per
wrk request A and B (it includes serving the observations: that is their cost), the detection worker's CPU per
observation, and observation -> WebSocket (the POST sent to the `warning`/`resolved` message received) p50 / p95
/ p99 / max. Goals (issue 16): throughput cost < 2 %, p99 < 50 ms.

Then the same observations without wrk, in alternating rounds (idle, flips, repeats): the proxy's own CPU per
observation, summed over its threads from /proc/PID/task/*/schedstat (nanoseconds, user + kernel), less what the
idle proxy uses in the same time. Unlike the difference of two wrk rounds, this hardly moves with the machine's
load (each observation's work is the same whoever else runs), so it is the figure to compare changes with.

Run: .venv/bin/python bench/page_eye_budget.py [--rounds 5] [--seconds 5] [--rate 50] [--json FILE] [--alone-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxy import ADDON, MITMDUMP, cpu_seconds, free_port, start_origin, wait_port, wrk  # noqa: E402
from stats import pct  # noqa: E402

from consentwatch.api.observations import RateLimit  # noqa: E402

SETTINGS_URL = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"
EXT_ORIGIN = "chrome-extension://benchbenchbenchbenchbenchbenchbe"
API_LIMIT = RateLimit().overall[1]  # observations a second the API admits over time (all pages together)


def region(on: bool) -> str:
    """What the extension sends for LinkedIn's switch: the smallest element holding label and control."""
    return ('<div class="row"><label for="t">Use my data for training content creation AI models</label>'
            f'<input id="t" type="checkbox" role="switch"{" checked" if on else ""}></div>')


class Observer:
    """Posts one region every 1/rate s (the next one waits for the previous one's WebSocket message, so each
    latency is its own), until stopped."""

    def __init__(self, api: str, token: str, rate: float, flip: bool = True):
        self.api, self.token, self.period, self.flip = api, token, 1 / rate, flip
        self.latencies: list[float] = []
        self.sent = 0
        self.on = True
        self.refused = 0

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Origin": EXT_ORIGIN}
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{self.api}/v1/ws", headers={"Authorization": f"Bearer {self.token}"}) as ws:
                assert json.loads((await ws.receive()).data)["type"] == "hello"
                # every round starts from the switch on (the warm-up and the repeats leave it so): the first
                # region sent by a flipping observer shows it off
                self.on = True
                next_at = time.perf_counter()
                while not stop.is_set():
                    self.on = not self.on if self.flip else True
                    t0 = time.perf_counter()
                    await self._post(s, ws, headers)
                    self.latencies.append((time.perf_counter() - t0) * 1000)
                    self.sent += 1
                    next_at += self.period
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        next_at = time.perf_counter()  # behind: no burst to catch up
                if not self.on:  # leave the switch on, as every round expects to find it (not counted)
                    self.on = True
                    await self._post(s, ws, headers)

    async def _post(self, s: aiohttp.ClientSession, ws, headers: dict) -> None:
        """One region, and with flips the WebSocket message it causes."""
        body = {"url": SETTINGS_URL, "html": region(self.on), "reason": "setting"}
        async with s.post(f"{self.api}/v1/observations", json=body, headers=headers) as r:
            if r.status != 202:
                self.refused += 1
                raise SystemExit(f"POST /v1/observations answered {r.status}: {await r.text()}")
        while self.flip:  # a repeat changes nothing: no message, its latency is the POST's
            msg = await asyncio.wait_for(ws.receive(), 10)
            if json.loads(msg.data)["type"] in ("warning", "resolved"):
                break


def start(origin: int, api_port: int, data_dir: Path, prefix: tuple[str, ...] = (),
          timeout: float = 30) -> tuple[subprocess.Popen, int]:
    """consentwatch's proxy with the rate limit lifted, once it and its API listen (`prefix`: what runs it, e.g.
    bench/instructions.py's valgrind)."""
    port = free_port()
    cmd = [*prefix, MITMDUMP, "-q", "--listen-host", "127.0.0.1", "-p", str(port), "--set", "keep_host_header=true",
           "--mode", f"reverse:http://127.0.0.1:{origin}", "-s", ADDON, "-s", str(HERE / "observe_unlimited.py"),
           "--set", f"consentwatch_data_dir={data_dir}", "--set", f"consentwatch_api_port={api_port}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, timeout)
    wait_port(api_port, timeout)
    return p, port


def thread_cpu_ns(pid: int) -> int:
    """CPU nanoseconds (user + kernel) used so far by every live thread of a process (Linux schedstat: exact,
    not in 10 ms ticks like /proc/PID/stat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


async def alone_round(proc, seconds: float, observer: Observer | None) -> dict:
    """Observations (or none) for `seconds` with no other traffic: the proxy's CPU and the wall time."""
    sent0 = observer.sent if observer else 0
    c0, t0 = thread_cpu_ns(proc.pid), time.perf_counter()
    if observer is None:
        await asyncio.sleep(seconds)
    else:
        stop = asyncio.Event()
        task = asyncio.create_task(observer.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
    c1, t1 = thread_cpu_ns(proc.pid), time.perf_counter()
    return {"cpu_ns": c1 - c0, "wall": t1 - t0, "observations": (observer.sent - sent0) if observer else 0}


def alone_figures(idle: list[dict], flips: list[dict], repeats: list[dict]) -> dict:
    idle_rate = statistics.median(r["cpu_ns"] / r["wall"] for r in idle)  # ns of CPU per second, idle

    def per_obs(rounds: list[dict]) -> dict:
        each = [(r["cpu_ns"] - idle_rate * r["wall"]) / r["observations"] / 1000 for r in rounds if r["observations"]]
        return {"cpu_per_obs_us": statistics.median(each), "min_us": min(each), "max_us": max(each),
                "rate_sent": sum(r["observations"] for r in rounds) / sum(r["wall"] for r in rounds)}

    return {"idle_cpu_ms_per_s": idle_rate / 1e6, "flip": per_obs(flips), "repeat": per_obs(repeats)}


async def one_round(proc, port: int, origin: int, seconds: int, observer: Observer | None) -> dict:
    loop = asyncio.get_running_loop()
    own0, kids0 = cpu_seconds(proc.pid)
    sent0 = observer.sent if observer else 0
    stop = asyncio.Event()
    task = asyncio.create_task(observer.run(stop)) if observer else None
    try:
        rate, n = await loop.run_in_executor(None, wrk, port, origin, "cdn.example.net", "/plain", "reverse",
                                             seconds, 20)
    finally:
        stop.set()
        if task:
            await task
    own1, kids1 = cpu_seconds(proc.pid)
    sent = (observer.sent - sent0) if observer else 0
    return {"rate": rate, "cpu_us": (own1 - own0) / n * 1e6, "observations": sent,
            "worker_us_per_obs": (kids1 - kids0) / sent * 1e6 if sent else 0.0}


async def bench(args) -> dict:
    origin, origin_port = start_origin()
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-budget-"))
    api_port = free_port()
    proc = None
    try:
        proc, port = start(origin_port, api_port, tmp / "data")
        token = (tmp / "data" / "token").read_text().strip()
        api = f"http://127.0.0.1:{api_port}"
        observer = Observer(api, token, args.rate)
        capped = Observer(api, token, API_LIMIT)
        same = Observer(api, token, args.rate, flip=False)
        await one_round(proc, port, origin_port, 1, same)  # warm up, and raise the warning: the switch is on
        await one_round(proc, port, origin_port, 2, observer)
        await one_round(proc, port, origin_port, 1, same)
        for o in (observer, capped, same):
            o.latencies.clear()
        quiet, busy, at_limit, repeats = [], [], [], []
        for i in range(0 if args.alone_only else args.rounds):
            # the order alternates (forwards, then backwards): a host whose speed drifts during a round would
            # otherwise favour the same kind every round (each observer leaves the switch on, so any order works)
            kinds = ((quiet, None), (busy, observer), (at_limit, capped), (repeats, same))
            for rounds, who in kinds[::1 if i % 2 == 0 else -1]:
                rounds.append(await one_round(proc, port, origin_port, args.seconds, who))
        flip_latencies, limit_latencies, repeat_latencies = observer.latencies[:], capped.latencies[:], same.latencies[:]
        alone: tuple[list, list, list] = ([], [], [])
        for _ in range(args.rounds):
            alone[0].append(await alone_round(proc, args.seconds, None))
            alone[1].append(await alone_round(proc, args.seconds, observer))
            alone[2].append(await alone_round(proc, args.seconds, same))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        origin.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"mitmproxy": version("mitmproxy"), "rounds": args.rounds, "seconds": args.seconds,
               "rate_asked": args.rate, "alone": alone_figures(*alone)}
    if args.alone_only:
        return {**figures, "load": os.getloadavg()}
    seconds = args.rounds * args.seconds
    a = statistics.median(r["rate"] for r in quiet)
    cpu_a = statistics.median(r["cpu_us"] for r in quiet)

    def case(rounds: list[dict], lat: list[float]) -> dict:
        b = statistics.median(r["rate"] for r in rounds)
        cpu_b = statistics.median(r["cpu_us"] for r in rounds)
        rate = sum(r["observations"] for r in rounds) / seconds
        return {"rate_sent": rate, "observed": b, "ratio": b / a,
                "paired": statistics.median(y["rate"] / x["rate"] for x, y in zip(quiet, rounds)),
                "cpu_observed_us": cpu_b, "cpu_ratio": cpu_a / cpu_b,
                # the proxy's extra CPU per observation: what it costs whatever else the machine does
                "cpu_per_obs_us": (cpu_b - cpu_a) * b / rate if rate else float("nan"),
                "worker_us_per_obs": statistics.median(r["worker_us_per_obs"] for r in rounds),
                "latency_ms": {"n": len(lat), "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
                               "max": max(lat) if lat else float("nan")}}

    return {**figures, "plain": a, "cpu_plain_us": cpu_a,
            "flip": case(busy, flip_latencies), "flip_at_limit": case(at_limit, limit_latencies),
            "repeat": case(repeats, repeat_latencies), "api_limit": API_LIMIT,
            "load": os.getloadavg()}


def print_report(r: dict) -> None:
    if "plain" in r:
        print_wrk_report(r)
    al = r["alone"]
    print(f"\nthe same observations without wrk, {r['rounds']} alternating rounds of {r['seconds']}s (idle, flips, "
          f"repeats): the proxy's own CPU per observation, all threads, less the idle proxy's "
          f"{al['idle_cpu_ms_per_s']:.1f} ms/s")
    for name in ("flip", "repeat"):
        c = al[name]
        print(f"{name:<12}{c['rate_sent']:>7.1f}/s {c['cpu_per_obs_us']:>8.0f} us per observation "
              f"(rounds {c['min_us']:.0f}-{c['max_us']:.0f})")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in r['load'])}")


def print_wrk_report(r: dict) -> None:
    print(f"\nthe page eye's budget (mitmproxy {r['mitmproxy']}): wrk through the proxy (reverse mode, unmatched), "
          f"{r['rounds']} alternating rounds of {r['seconds']}s:\nwithout observations, with observations that each "
          f"flip the switch (detected, stored, announced: the worst case), and with repeats of one region "
          f"(nothing changes: answered from memory once one has changed nothing, api/observations.py); "
          f"asked {r['rate_asked']:g}/s")
    print(f"{'':<14}{'obs/s':>7}{'req/s':>8}{'ratio':>8}{'paired':>8}{'proxy CPU/req':>15}{'cpu ratio':>10}"
          f"{'proxy CPU/obs':>15}{'worker/obs':>11}   observation answered / announced, p50 p95 p99 max")
    print(f"{'none':<14}{0:>7}{r['plain']:>8.0f}{'':>16}{r['cpu_plain_us']:>12.0f} us")
    for name in ("flip", "flip_at_limit", "repeat"):
        c = r[name]
        lat = c["latency_ms"]
        print(f"{name:<14}{c['rate_sent']:>7.1f}{c['observed']:>8.0f}{c['ratio']:>8.3f}{c['paired']:>8.3f}"
              f"{c['cpu_observed_us']:>12.0f} us{c['cpu_ratio']:>10.3f}{c['cpu_per_obs_us']:>12.0f} us"
              f"{c['worker_us_per_obs']:>8.0f} us   {lat['p50']:.1f} {lat['p95']:.1f} {lat['p99']:.1f} "
              f"{lat['max']:.1f} ms ({lat['n']})")
    print(f"(flip: POST sent -> its warning/resolved message on the WebSocket; flip_at_limit: the same at "
          f"{r['api_limit']:g}/s, the most the API's own rate limit admits; repeat: the POST's answer)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rate", type=float, default=50, help="observations per second (default 50)")
    ap.add_argument("--alone-only", action="store_true", help="only the rounds without wrk (CPU per observation)")
    ap.add_argument("--json", help="also write the figures to this file (bench/run_all.py reads them)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench/page_eye_budget.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    report = asyncio.run(bench(args))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
