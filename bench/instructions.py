"""Instructions per request through the proxy (valgrind's callgrind): the measure a noisy machine does not move.

On a shared virtual machine requests/s, and even CPU time per request, swing by tens of per cent from one second
to the next (on 2026-12-02 a fixed Python loop took 208-390 ms here, and plain mitmdump served 450-690 requests/s
against 1,170 the day before), which drowns a 2 % effect in `bench/proxy.py`. Instructions do not depend on how
fast the machine is at the moment. This runs plain `mitmdump` and `mitmdump -s addon/consentwatch_addon.py`, one
after the other, under callgrind with counting switched on only after a warm-up, sends N sequential keep-alive
requests through each, and prints instructions per request and the ratio plain / consentwatch. With
`--observations N` it also counts what one page-eye observation costs the proxy: a repeat, and a flip of the
switch (bench/PROFILE.md, "Fifth look": a flip's CPU is far more than its instructions).

What it counts: the proxy process's user-space instructions, every thread. Not the kernel's work (copies into
the worker's pipe, wake-ups), not the detection worker (another process, on another core), not time spent
waiting for the GIL or for caches: a floor on the cost, not a throughput. Use it to compare changes on a noisy
day, and `bench/proxy.py` for the ratio a user sees.

Run: .venv/bin/python bench/instructions.py [--requests 300] [--modes reverse,regular] [--cases unmatched,120,1.5]
     [--observations 40]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxy import CASES, free_port, mitmdump_cmd, start_origin, wait_port  # noqa: E402

WARM_UP = 40  # requests before counting: imports, caches, the first page's detection
# A callgrind file's cost: its "totals:" line (its "summary:" line, 0 when counting starts switched off, is
# only read when there is no totals line)
TOTAL = re.compile(rb"^totals:\s+(\d+)", re.M)
SUMMARY = re.compile(rb"^summary:\s+(\d+)", re.M)


def proxy_cmd(mode: str, origin: int, port: int, with_addon: bool, data_dir: Path, out: Path) -> list[str]:
    return (["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable]
            + mitmdump_cmd(mode, origin, port, with_addon, data_dir))


def send(conn: http.client.HTTPConnection, mode: str, origin: int, host: str, path: str, n: int) -> None:
    # regular mode: absolute-form requests to the origin's IP with the platform's Host header (as bench/proxy.py)
    target = path if mode == "reverse" else f"http://127.0.0.1:{origin}{path}"
    for _ in range(n):
        conn.request("GET", target, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{host}{path}: HTTP {r.status}")


def cost(dump: Path) -> int | None:
    """The instructions one callgrind file counts (None: no total in it)."""
    b = dump.read_bytes()
    m = TOTAL.search(b) or SUMMARY.search(b)
    return int(m.group(1)) if m else None


def callgrind(proc: subprocess.Popen, *args: str) -> None:
    """callgrind_control for the proxy under valgrind: -i on / -i off (counting), -d (dump)."""
    subprocess.run(["callgrind_control", *args, str(proc.pid)], check=True, capture_output=True)


def stop(proc: subprocess.Popen) -> None:
    """End the proxy (valgrind writes its last dump as it exits)."""
    proc.terminate()
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def count(mode: str, origin: int, host: str, path: str, with_addon: bool, requests: int, tmp: Path) -> int:
    """Instructions the proxy executed for `requests` requests, after a warm-up."""
    port = free_port()
    out = tmp / f"callgrind.{mode}.{with_addon}.{host}.{abs(hash(path))}.out"
    proc = subprocess.Popen(proxy_cmd(mode, origin, port, with_addon, tmp / f"data-{port}", out),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=600)  # imports under valgrind take a while
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        send(conn, mode, origin, host, path, WARM_UP)
        callgrind(proc, "-i", "on")
        send(conn, mode, origin, host, path, requests)
        callgrind(proc, "-i", "off")
        conn.close()
    finally:
        stop(proc)
    totals = [c for f in tmp.glob(out.name + "*") if (c := cost(f)) is not None]
    if not totals:
        raise RuntimeError(f"callgrind wrote no totals for {host}{path} ({'consentwatch' if with_addon else 'plain'})")
    return sum(totals)


def dumped(out: Path) -> int:
    """The instructions in the dumps callgrind has written so far (then removed: the next count starts at 0)."""
    total = 0
    for f in out.parent.glob(out.name + "*"):
        total += cost(f) or 0
        f.unlink()
    return total


async def count_observations(origin: int, n: int, tmp: Path) -> dict[str, float]:
    """Instructions the proxy executes per page-eye observation, `n` of each kind after 10 uncounted: a repeat of a
    region (answered from memory) and one whose switch flips (detected in the worker, stored, announced), as
    bench/page_eye_budget.py sends them (the rate limit lifted, the next one sent once the last was answered)."""
    import page_eye_budget as budget

    out = tmp / "callgrind.observations.out"
    api_port = free_port()
    proc, _ = budget.start(origin, api_port, tmp / "data-observations", timeout=600,
                           prefix=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                   f"--callgrind-out-file={out}", sys.executable))
    try:
        token = (tmp / "data-observations" / "token").read_text().strip()
        api = f"http://127.0.0.1:{api_port}"
        per: dict[str, float] = {}
        for kind in ("repeat", "flip"):
            # uncounted: the first repeats raise the warning (the switch shown on), which the flips then toggle
            await _observe(budget.Observer(api, token, 5, flip=kind == "flip"), 10)
            callgrind(proc, "-i", "on")
            observer = budget.Observer(api, token, 5, flip=kind == "flip")
            await _observe(observer, n)
            callgrind(proc, "-i", "off")
            dumped(out)  # what the uncounted ones left behind, if anything
            callgrind(proc, "-d")
            per[kind] = dumped(out) / observer.sent
        return per
    finally:
        stop(proc)


async def _observe(observer, n: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(observer.run(stop))
    while observer.sent < n and not task.done():
        await asyncio.sleep(0.05)
    stop.set()
    await task


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="counted requests per proxy and case (default 300)")
    ap.add_argument("--modes", default="reverse", help="reverse, regular, or both (default reverse)")
    ap.add_argument("--cases", default="unmatched,120,1.5", help="of bench/proxy.py's: unmatched, 120, 1.5")
    ap.add_argument("--observations", type=int, default=0, metavar="N",
                    help="also count N page-eye observations of each kind, a repeat and a flip (~3 min for 40)")
    args = ap.parse_args()
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("bench/instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    origin, origin_port = start_origin()
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-instr-"))
    wanted = args.cases.split(",")
    try:
        print(f"instructions per request through the proxy (callgrind, {args.requests} sequential keep-alive "
              f"requests after {WARM_UP} uncounted; the proxy process only, user space, every thread)")
        print(f"{'mode':<9} {'case':<32} {'plain':>12} {'+consentwatch':>14} {'ratio':>7}")
        for mode in args.modes.split(","):
            for key, name, host, path, _ in CASES:
                if key not in wanted:
                    continue
                plain = count(mode, origin_port, host, path, False, args.requests, tmp) / args.requests
                cw = count(mode, origin_port, host, path, True, args.requests, tmp) / args.requests
                print(f"{mode:<9} {name:<32} {plain / 1e6:>10.3f} M {cw / 1e6:>12.3f} M {plain / cw:>7.3f}", flush=True)
        if args.observations:
            per = asyncio.run(count_observations(origin_port, args.observations, tmp))
            print(f"\npage eye, instructions per observation in the proxy ({args.observations} of each, POST -> "
                  f"answered, and for a flip the WebSocket message): repeat {per['repeat'] / 1e6:.3f} M, "
                  f"flip {per['flip'] / 1e6:.3f} M", flush=True)
    finally:
        origin.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
