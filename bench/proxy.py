"""Throughput through the proxy: plain mitmdump (A) against mitmdump + consentwatch (B), side by side.

Both proxies run at once; wrk loads one at a time, alternating A B A B for several rounds, and the table
shows the median requests/s and the ratio B/A. Cases: unmatched traffic, and matched LinkedIn settings
pages of 120 KB and 1.5 MB, in reverse mode (keep_host_header, Host: www.linkedin.com) and regular mode.
Afterwards the consentwatch data dir must hold the LinkedIn warning: proof the pages were inspected.

Run: make bench   (or .venv/bin/python bench/proxy.py [--rounds 3] [--seconds 4])
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from consentwatch.store.journal import read_stored

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MITMDUMP = str(BIN / "mitmdump")
ADDON = str(ROOT / "addon" / "consentwatch_addon.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def start_proxy(mode: str, origin: int, with_addon: bool, data_dir: Path, lag_out: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [MITMDUMP, "-q", "--listen-host", "127.0.0.1", "-p", str(port), "--set", "keep_host_header=true",
           "--set", "stream_large_bodies=100m", "-s", str(ROOT / "bench" / "looplag.py")]
    if mode == "reverse":
        cmd += ["--mode", f"reverse:http://127.0.0.1:{origin}"]
    # regular mode: clients send absolute-form requests to the origin's IP (there is no DNS offline) with the
    # platform's Host header, which is what pretty_host and so consentwatch go by
    if with_addon:
        cmd += ["-s", ADDON, "--set", f"consentwatch_data_dir={data_dir}", "--set", "consentwatch_api_port=0"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "LOOPLAG_OUT": str(lag_out)})
    wait_port(port)
    return p, port


LUA_REGULAR = """
wrk.path = "http://127.0.0.1:%d%s"
wrk.headers["Host"] = "%s"
"""


def wrk(port: int, origin: int, host: str, path: str, mode: str, seconds: int, conns: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if mode == "regular":
            f.write(LUA_REGULAR % (origin, path, host))
        else:
            f.write(f'wrk.headers["Host"] = "{host}"\n')
        script = f.name
    url = f"http://127.0.0.1:{port}{path}"
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    os.unlink(script)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(m.group(1))


CASES = [
    ("unmatched", "cdn.example.net", "/plain", 20),
    ("matched 120 KB settings page", "www.linkedin.com", "/mypreferences/d/settings/data-for-ai-improvement", 10),
    ("matched 1.5 MB settings page", "www.linkedin.com", "/mypreferences/d/settings/data-for-ai-improvement?big", 4),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--modes", default="reverse,regular")
    ap.add_argument("--cases", default="unmatched,120,1.5",
                    help="which cases to run: unmatched, 120 (KB page), 1.5 (MB page)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench/proxy.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    origin_port = free_port()
    origin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "origin.py"), str(origin_port)],
                              stdout=subprocess.PIPE, text=True)
    origin.stdout.readline()
    rows = []
    procs = []
    lags: dict[str, list[dict]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    try:
        for mode in args.modes.split(","):
            data_dir = tmp / mode
            lag_a, lag_b = tmp / f"lag-{mode}-plain.json", tmp / f"lag-{mode}-cw.json"
            plain, pa = start_proxy(mode, origin_port, False, data_dir, lag_a)
            watched, pb = start_proxy(mode, origin_port, True, data_dir, lag_b)
            procs += [plain, watched]
            for name, host, path, conns in CASES:
                if not any(c in name.split() for c in args.cases.split(",")):
                    continue
                a_runs, b_runs = [], []
                for _ in range(args.rounds):
                    a_runs.append(wrk(pa, origin_port, host, path, mode, args.seconds, conns))
                    b_runs.append(wrk(pb, origin_port, host, path, mode, args.seconds, conns))
                a, b = statistics.median(a_runs), statistics.median(b_runs)
                # each round's B/A, A and B measured back to back: less exposed to load from elsewhere
                paired = statistics.median(y / x for x, y in zip(a_runs, b_runs))
                rows.append((mode, name, a, b, b / a, paired))
            for p in (plain, watched):
                p.terminate()
                p.wait(timeout=10)
            lags[mode] = [json.loads(p.read_text()) for p in (lag_a, lag_b)]
            if not any(name.startswith("matched") and any(c in name.split() for c in args.cases.split(","))
                       for name, *_ in CASES):
                continue
            state = read_stored(data_dir / "state.json")
            rules = {w["rule_id"] for w in state.get("warnings", {}).values()}
            rows.append((mode, "inspected? " + ("yes: linkedin.genai-training warning stored" if
                                                  "linkedin.genai-training" in rules else "NO WARNING STORED"),
                         None, None, None, None))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        origin.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nthroughput through the proxy (mitmproxy {version('mitmproxy')}), median of {args.rounds} alternating "
          f"rounds of {args.seconds}s (requests/s); ratio: of the medians, paired: median of each round's ratio")
    print(f"{'mode':<9} {'case':<44} {'plain':>9} {'+consentwatch':>14} {'ratio':>7} {'paired':>7}")
    for mode, name, a, b, r, paired in rows:
        if a is None:
            print(f"{mode:<9} {name}")
        else:
            print(f"{mode:<9} {name:<44} {a:>9.0f} {b:>14.0f} {r:>7.3f} {paired:>7.3f}")
    print("\nproxy event loop blocked (lag of a 1 ms tick over the whole run), plain vs +consentwatch")
    print(f"{'mode':<9} {'p99 plain':>10} {'p99 +cw':>9} {'max plain':>10} {'max +cw':>9}")
    for mode, (a, b) in lags.items():
        print(f"{mode:<9} {a['p99_ms']:>8.1f}ms {b['p99_ms']:>7.1f}ms {a['max_ms']:>8.1f}ms {b['max_ms']:>7.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
