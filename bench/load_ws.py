"""Load: 200 WebSocket clients and 100 new warnings a second for 60 s through a real `consentwatch run`.

A real `consentwatch run` subprocess (free ports, a temp data dir) serves a recording of N LinkedIn pages
(server replay, loopback, no network), each with a policy notice that takes effect on a different date:

    https://www.linkedin.com/feed/?n=i   <div role="dialog">We're updating our Privacy Policy. From <date i>
                                          we will use your data to train generative AI models.</div>

so every page is a new warning (warnings are one per rule and notice date). The clients connect to /v1/ws
as the extension does (in worker processes, so that reading 20,000 messages a second is not what limits the
benchmark), then the pages are fetched through the proxy over HTTPS at the given rate: the whole real path,
response hook -> detection worker -> state store (fsynced) -> WebSocket hub -> every client.

Checked: every client gets every warning (counted per client, by notice date); the memory of the
`consentwatch run` process (VmRSS from /proc/PID/status, sampled every second) stays flat.
Printed: warnings sent, stored and delivered per client (min/max), delivery latency p50/p99 (from the
moment the fetch had its response to the moment a client read the message), RSS start/end/max.

Run: .venv/bin/python bench/load_ws.py [--clients 200] [--rate 100] [--seconds 60] [--procs 4]
Exit status 1 when a client missed a warning.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from live_support import start_run, write_flows  # noqa: E402

FIRST_DATE = dt.date(2030, 1, 1)
DATE_FIELD = '"effective_date":"'  # how the hub writes it (compact JSON): found without parsing each message


def notice_date(i: int) -> dt.date:
    return FIRST_DATE + dt.timedelta(days=i)


def notice_url(i: int) -> str:
    return f"https://www.linkedin.com/feed/?n={i}"


def notice_page(i: int) -> bytes:
    d = notice_date(i)
    return ('<html><head><title>Feed | LinkedIn</title></head><body><main>'
            '<div role="dialog"><h2>Updates to our terms</h2><p>We\'re updating our Privacy Policy. '
            f'From {d.day} {d:%B %Y} we will use your data to train generative AI models.</p></div>'
            '</main></body></html>').encode()


def make_recording(path: Path, n: int) -> Path:
    """N recorded pages, one per notice date. Server replay tells them apart by the query (?n=i)."""
    return write_flows(path, [(notice_url(i), notice_page(i)) for i in range(n)])


# -- memory of the consentwatch process ---------------------------------------------------------------------

def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class RssSampler(threading.Thread):
    """VmRSS of the process (and, separately, of its children: the detection worker) every `every` seconds."""

    def __init__(self, pid: int, every: float = 1.0):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.every = every
        self.main: list[tuple[float, int]] = []
        self.kids: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            kb = rss_kb(self.pid)
            if kb is not None:
                self.main.append((now, kb))
                self.kids.append((now, sum(rss_kb(c) or 0 for c in children(self.pid))))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self.join(5)


# -- the clients ------------------------------------------------------------------------------------------

async def client_group(ws_url: str, token: str, n_clients: int, expected: int, ready, go_deadline, report) -> None:
    """n_clients WebSockets in one event loop. Each records, per notice index, when it read the warning.

    ready(): called once all are connected (and have their hello). go_deadline(): the monotonic time after which
    to stop waiting (None: not yet known). report(results) gets [{"times": {index: t}, "closed": bool}, ...].
    """
    results = [{"times": {}, "closed": False, "other": 0} for _ in range(n_clients)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for _ in range(n_clients):
            ws = await session.ws_connect(ws_url, max_msg_size=0, autoping=True,
                                          headers={"Authorization": f"Bearer {token}"})
            first = await ws.receive(timeout=30)
            assert first.type == aiohttp.WSMsgType.TEXT and json.loads(first.data)["type"] == "hello", first
            sockets.append(ws)
        ready()

        async def read(ws, res) -> None:
            times = res["times"]
            while len(times) < expected:
                msg = await ws.receive()
                now = time.monotonic()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    res["closed"] = True
                    return
                text = msg.data
                if not text.startswith('{"type":"warning"'):
                    res["other"] += 1
                    continue
                at = text.find(DATE_FIELD)
                if at < 0:
                    res["other"] += 1
                    continue
                day = dt.date.fromisoformat(text[at + len(DATE_FIELD):at + len(DATE_FIELD) + 10])
                times.setdefault((day - FIRST_DATE).days, now)

        readers = [asyncio.ensure_future(read(ws, res)) for ws, res in zip(sockets, results)]
        pending = set(readers)
        while pending:
            deadline = go_deadline()
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            _, pending = await asyncio.wait(pending, timeout=timeout)
            if deadline is not None and time.monotonic() >= deadline:
                break
        for r in pending:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()
    report([{"times": r["times"], "closed": r["closed"], "other": r["other"]} for r in results])


def _group_process(ws_url: str, token: str, n_clients: int, expected: int, conn) -> None:
    """A worker process: one client group; talks to the parent over a pipe (ready, deadline, results)."""
    deadline: list[float | None] = [None]

    def go_deadline():
        if deadline[0] is None and conn.poll():
            deadline[0] = conn.recv()
        return deadline[0]

    asyncio.run(client_group(ws_url, token, n_clients, expected, lambda: conn.send("ready"), go_deadline, conn.send))


class Groups:
    """The clients, split over `procs` worker processes (0: in this process, on this loop)."""

    def __init__(self, ws_url: str, token: str, clients: int, expected: int, procs: int):
        self.ws_url, self.token, self.expected = ws_url, token, expected
        self.procs = procs
        sizes = [clients // max(procs, 1) + (1 if i < clients % max(procs, 1) else 0) for i in range(max(procs, 1))]
        self.sizes = [s for s in sizes if s]
        self.results: list[dict] = []
        self._deadline: float | None = None
        self._local: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._conns = []
        self._procs = []

    async def start(self) -> None:
        if self.procs == 0:
            self._local = asyncio.ensure_future(client_group(
                self.ws_url, self.token, self.sizes[0], self.expected, self._ready.set, lambda: self._deadline,
                self.results.extend))
            await asyncio.wait_for(self._ready.wait(), 120)
            return
        ctx = multiprocessing.get_context("spawn")
        for size in self.sizes:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_group_process, args=(self.ws_url, self.token, size, self.expected, child), daemon=True)
            p.start()
            self._conns.append(parent)
            self._procs.append(p)
        for conn in self._conns:
            msg = await asyncio.to_thread(_recv, conn, 120)
            assert msg == "ready", msg

    async def finish(self, deadline: float) -> list[dict]:
        """Every client stops once it has every warning, or at `deadline` (monotonic)."""
        self._deadline = deadline
        if self._local is not None:
            await self._local
            return self.results
        for conn in self._conns:
            conn.send(deadline)
        for conn in self._conns:
            self.results.extend(await asyncio.to_thread(_recv, conn, max(30.0, deadline - time.monotonic() + 60)))
        for p in self._procs:
            p.join(10)
        return self.results


def _recv(conn, timeout: float):
    if not conn.poll(timeout):
        raise TimeoutError("a client process did not answer")
    return conn.recv()


# -- the load ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    clients: int
    rate: float
    seconds: float
    sent: int = 0
    failed: int = 0
    send_seconds: float = 0.0
    stored: int = 0
    delivered: list[int] = field(default_factory=list)  # per client
    closed: int = 0
    drain_seconds: float = 0.0  # after the last response, until the last client had the last warning
    announced_during_feed: int = 0  # warnings some client had before the last page was fetched
    announce_rate: list[float] = field(default_factory=list)  # new warnings/s reaching a client, per window
    window: float = 10.0
    latencies_ms: list[float] = field(default_factory=list)
    spread_ms: list[float] = field(default_factory=list)  # per warning: first client to last client
    rss_kb: list[int] = field(default_factory=list)  # consentwatch run, one sample a second
    worker_rss_kb: list[int] = field(default_factory=list)  # its detection worker process
    state_bytes: int = 0  # state.json and state.journal at the end
    log_tail: str = ""

    @property
    def expected(self) -> int:
        return self.sent

    @property
    def everyone_got_everything(self) -> bool:
        return self.failed == 0 and bool(self.delivered) and min(self.delivered) == self.sent and self.closed == 0

    def table(self) -> str:
        lat = sorted(self.latencies_ms)
        spread = sorted(self.spread_ms)
        rss = self.rss_kb or [0]
        wrss = self.worker_rss_kb or [0]
        rows = [
            ("clients", f"{self.clients}"),
            ("warnings sent", (f"{self.sent} in {self.send_seconds:.1f} s ({self.sent / max(self.send_seconds, 1e-9):.1f}/s;"
                               f" target {self.rate:g}/s for {self.seconds:g} s), {self.failed} failed fetches")),
            ("warnings stored", f"{self.stored}"),
            ("delivered per client", (f"min {min(self.delivered, default=0)}, max {max(self.delivered, default=0)}"
                                      f" of {self.sent}; {self.closed} clients disconnected")),
            ("all delivered", "yes" if self.everyone_got_everything else "NO"),
            ("announced during feed", f"{self.announced_during_feed} of {self.sent}"),
            ("drain after last send", f"{self.drain_seconds:.1f} s"),
            ("delivery latency", (f"p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {lat[-1] if lat else 0:.0f}"
                                  f" ms ({len(lat)} deliveries; from the page's response to a client reading it)")),
            ("fan-out spread", (f"p50 {pct(spread, 50):.0f} ms, p99 {pct(spread, 99):.0f} ms"
                                " (one warning, first client to last client)")),
            (f"announced/s, per {self.window:g} s", " ".join(f"{r:.0f}" for r in self.announce_rate)),
            ("RSS consentwatch run", (f"start {rss[0] / 1024:.1f} MB, end {rss[-1] / 1024:.1f} MB,"
                                      f" max {max(rss) / 1024:.1f} MB ({len(self.rss_kb)} samples)")),
            ("RSS detection worker", (f"start {wrss[0] / 1024:.1f} MB, end {wrss[-1] / 1024:.1f} MB,"
                                      f" max {max(wrss) / 1024:.1f} MB")),
            ("state.json + state.journal at the end", f"{self.state_bytes / 1e6:.1f} MB"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def run_load(clients: int = 200, rate: float = 100, seconds: float = 60, procs: int = 4,
                   drain: float = 600, concurrency: int = 32, progress=None) -> Result:
    """Start `consentwatch run`, connect the clients, feed rate*seconds new warnings, wait for them, measure."""
    n = max(1, round(rate * seconds))
    res = Result(clients, rate, seconds)
    say = progress or (lambda *_: None)
    tmp = Path(tempfile.mkdtemp(prefix="cw-load-"))
    data = tmp / "data"
    data.mkdir()
    say(f"recording {n} notice pages")
    run = start_run(data, make_recording(tmp / "notices.flow", n))
    sampler = RssSampler(run.proc.pid)
    sampler.start()
    try:
        say(f"connecting {clients} WebSocket clients")
        groups = Groups(f"{run.api}/v1/ws", run.token, clients, n, procs)
        await groups.start()
        responded: dict[int, float] = {}
        say(f"fetching {n} pages through the proxy at {rate:g}/s")
        connector = aiohttp.TCPConnector(ssl=False, limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as web:
            async def fetch(i: int) -> None:
                try:
                    async with web.get(notice_url(i), proxy=run.proxy) as r:
                        await r.read()
                        if r.status != 200:
                            raise RuntimeError(r.status)
                    responded[i] = time.monotonic()
                except Exception as e:  # noqa: BLE001 - counted
                    res.failed += 1
                    if res.failed <= 3:
                        say(f"fetch {i} failed: {type(e).__name__} {e}")

            t0 = time.monotonic()
            tasks = []
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(fetch(i)))
            await asyncio.gather(*tasks)
            last = time.monotonic()
            res.sent = len(responded)
            res.send_seconds = last - t0
        say(f"sent {res.sent} in {res.send_seconds:.1f} s; waiting for every client to have every warning"
            f" (at most {drain:g} s)")
        results = await groups.finish(last + drain)
        got_last = max((t for r in results for t in r["times"].values()), default=last)
        res.drain_seconds = max(0.0, got_last - last)
        res.delivered = [sum(1 for i in r["times"] if i in responded) for r in results]
        res.closed = sum(1 for r in results if r["closed"])
        res.latencies_ms = sorted((t - responded[i]) * 1000 for r in results for i, t in r["times"].items()
                                  if i in responded)
        first: dict[int, float] = {}
        final: dict[int, float] = {}
        for r in results:
            for i, t in r["times"].items():
                first[i] = min(first.get(i, t), t)
                final[i] = max(final.get(i, t), t)
        res.spread_ms = sorted((final[i] - first[i]) * 1000 for i in first if len(results) > 1)
        res.announced_during_feed = sum(1 for t in first.values() if t <= last)
        res.window = win = 10.0 if seconds >= 20 else 1.0
        counts = [0] * (int((max(first.values(), default=t0) - t0) // win) + 1)
        for t in first.values():
            counts[max(0, int((t - t0) // win))] += 1
        res.announce_rate = [c / win for c in counts]
        try:
            res.state_bytes = sum(p.stat().st_size for p in (data / "state.json", data / "state.journal")
                                  if p.exists())
        except OSError:
            pass
        status, _, body = run.get("/v1/warnings?status=all", {"Authorization": f"Bearer {run.token}"})
        res.stored = len(json.loads(body)["warnings"]) if status == 200 else -1
        await asyncio.sleep(1.5)  # one more memory sample after the load
    finally:
        sampler.stop()
        try:
            run.stop()
        finally:
            res.log_tail = "\n".join(run.output().splitlines()[-20:])
            shutil.rmtree(tmp, ignore_errors=True)
    res.rss_kb = [kb for _, kb in sampler.main]
    res.worker_rss_kb = [kb for _, kb in sampler.kids]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200, help="WebSocket clients (default 200)")
    ap.add_argument("--rate", type=float, default=100, help="new warnings per second (default 100)")
    ap.add_argument("--seconds", type=float, default=60, help="how long to feed them (default 60)")
    ap.add_argument("--procs", type=int, default=4, help="client processes (default 4; 0: in this process)")
    ap.add_argument("--drain", type=float, default=600,
                    help="longest wait after the last page for the clients to have every warning (default 600 s)")
    ap.add_argument("--rss-every", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    res = asyncio.run(run_load(args.clients, args.rate, args.seconds, args.procs, args.drain,
                               progress=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)))
    print(f"\nconsentwatch run under load: {args.clients} WebSocket clients, {args.rate:g} new warnings/s for "
          f"{args.seconds:g} s (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(res.table())
    if res.rss_kb:
        print("RSS consentwatch run, MB, every 10 s: "
              + " ".join(f"{kb / 1024:.0f}" for kb in res.rss_kb[::10]))
    if not res.everyone_got_everything:
        print("\nNOT every client got every warning. Last lines of consentwatch run:\n" + res.log_tail)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
