"""Throughput through the proxy: plain mitmdump (A) against mitmdump + consentwatch (B), side by side.

Both proxies run at once; wrk loads one at a time, alternating A B, B A, A B ... for several rounds, and the table
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


def start_origin() -> tuple[subprocess.Popen, int]:
    """bench/origin.py on a free port, once it listens."""
    port = free_port()
    origin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "origin.py"), str(port)],
                              stdout=subprocess.PIPE, text=True)
    origin.stdout.readline()
    return origin, port


def mitmdump_cmd(mode: str, origin: int, port: int, with_addon: bool, data_dir: Path,
                 scripts: tuple[str, ...] = ()) -> list[str]:
    """The proxy every bench compares: plain mitmdump, or with consentwatch (after `scripts`), in `mode`."""
    cmd = [MITMDUMP, "-q", "--listen-host", "127.0.0.1", "-p", str(port), "--set", "keep_host_header=true",
           "--set", "stream_large_bodies=100m"]
    for script in scripts:
        cmd += ["-s", script]
    if mode == "reverse":
        cmd += ["--mode", f"reverse:http://127.0.0.1:{origin}"]
    # regular mode: clients send absolute-form requests to the origin's IP (there is no DNS offline) with the
    # platform's Host header, which is what pretty_host and so consentwatch go by
    if with_addon:
        cmd += ["-s", ADDON, "--set", f"consentwatch_data_dir={data_dir}", "--set", "consentwatch_api_port=0"]
    return cmd


def start_proxy(mode: str, origin: int, with_addon: bool, data_dir: Path, lag_out: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = mitmdump_cmd(mode, origin, port, with_addon, data_dir, scripts=(str(ROOT / "bench" / "looplag.py"),))
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "LOOPLAG_OUT": str(lag_out)})
    wait_port(port)
    return p, port


LUA_REGULAR = """
wrk.path = "http://127.0.0.1:%d%s"
wrk.headers["Host"] = "%s"
"""


TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds used so far by a process itself and by its live descendants (the detection worker).
    Unlike throughput, CPU time per request hardly depends on what else shares the machine."""
    stats = {int(d): st for d in os.listdir("/proc") if d.isdigit() and (st := _stat(int(d)))}
    own = stats.get(pid, (0, 0.0))[1]
    kids, seen = 0.0, {pid}
    changed = True
    while changed:
        changed = False
        for child, (ppid, cpu) in stats.items():
            if ppid in seen and child not in seen:
                seen.add(child)
                kids += cpu
                changed = True
    return own, kids


def wrk(port: int, origin: int, host: str, path: str, mode: str, seconds: int, conns: int) -> tuple[float, int]:
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
    n = re.search(r"(\d+) requests in", out)
    if not m or not n or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(m.group(1)), int(n.group(1))


def measured(proc: subprocess.Popen, *wrk_args) -> tuple[float, float, float]:
    """wrk through one proxy: (requests/s, proxy CPU us per request, its workers' CPU us per request)."""
    own0, kids0 = cpu_seconds(proc.pid)
    rate, n = wrk(*wrk_args)
    own1, kids1 = cpu_seconds(proc.pid)
    return rate, (own1 - own0) / n * 1e6, (kids1 - kids0) / n * 1e6


SETTINGS = "/mypreferences/d/settings/data-for-ai-improvement"
# (key for --cases, name, host, path, wrk connections). A page reloaded unchanged is the same bytes each time, and
# consentwatch does not send the same bytes to its worker again within 15 s (detection_worker.Unchanged); the
# "changing" cases are pages that differ on every load (a token), each one inspected.
CASES = [
    ("unmatched", "unmatched", "cdn.example.net", "/plain", 20),
    ("120", "matched 120 KB settings page", "www.linkedin.com", SETTINGS, 10),
    ("1.5", "matched 1.5 MB settings page", "www.linkedin.com", SETTINGS + "?big", 4),
    ("120changing", "matched 120 KB page, changing", "www.linkedin.com", SETTINGS + "?fresh", 10),
    ("1.5changing", "matched 1.5 MB page, changing", "www.linkedin.com", SETTINGS + "?big&fresh", 4),
]


def print_report(report: dict) -> None:
    print(f"\nthroughput through the proxy (mitmproxy {report['mitmproxy']}), median of {report['rounds']} alternating "
          f"rounds of {report['seconds']}s (requests/s); ratio: of the medians, paired: median of each round's ratio.")
    print("CPU: the proxy process's own CPU time per request (us), which depends far less on other load than "
          "requests/s;\ncpu ratio = plain / +consentwatch; worker: the detection worker's CPU per request (another core)")
    print(f"{'mode':<9} {'case':<30} {'plain':>7} {'+cw':>7} {'ratio':>7} {'paired':>7} {'cpu plain':>10} "
          f"{'cpu +cw':>8} {'cpu ratio':>10} {'worker':>7}")
    for r in report["rows"]:
        print(f"{r['mode']:<9} {r['case']:<30} {r['plain']:>7.0f} {r['cw']:>7.0f} {r['ratio']:>7.3f} "
              f"{r['paired']:>7.3f} {r['cpu_plain_us']:>10.0f} {r['cpu_cw_us']:>8.0f} {r['cpu_ratio']:>10.3f} "
              f"{r['worker_us']:>7.0f}")
    for mode, ok in report["inspected"].items():
        print(f"{mode}: pages inspected? " + ("yes: linkedin.genai-training warning stored" if ok
                                              else "NO WARNING STORED"))
    print("\nproxy event loop blocked (lag of a 1 ms tick over the whole run), plain vs +consentwatch")
    print(f"{'mode':<9} {'p99 plain':>10} {'p99 +cw':>9} {'max plain':>10} {'max +cw':>9}")
    for mode, lag in report["lag"].items():
        a, b = lag["plain"], lag["cw"]
        print(f"{mode:<9} {a['p99_ms']:>8.1f}ms {b['p99_ms']:>7.1f}ms {a['max_ms']:>8.1f}ms {b['max_ms']:>7.1f}ms")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in report['load'])}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--modes", default="reverse,regular")
    ap.add_argument("--cases", default=",".join(key for key, *_ in CASES),
                    help="which cases to run: unmatched, 120 (KB page), 1.5 (MB page), 120changing, 1.5changing "
                         "(pages that differ on every load)")
    ap.add_argument("--json", help="also write the figures to this file (bench/run_all.py reads them)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench/proxy.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    origin, origin_port = start_origin()
    rows = []
    procs = []
    lags: dict[str, list[dict]] = {}
    inspected: dict[str, bool] = {}
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    try:
        for mode in args.modes.split(","):
            data_dir = tmp / mode
            lag_a, lag_b = tmp / f"lag-{mode}-plain.json", tmp / f"lag-{mode}-cw.json"
            plain, pa = start_proxy(mode, origin_port, False, data_dir, lag_a)
            watched, pb = start_proxy(mode, origin_port, True, data_dir, lag_b)
            procs += [plain, watched]
            for key, name, host, path, conns in CASES:
                if key not in args.cases.split(","):
                    continue
                a_runs, b_runs = [], []
                for i in range(args.rounds):
                    # which proxy goes first alternates (A B, B A, ...): a host speeding up or slowing down during
                    # a round would otherwise favour the same one every round
                    for runs, proc, port in ((a_runs, plain, pa), (b_runs, watched, pb))[::1 if i % 2 == 0 else -1]:
                        runs.append(measured(proc, port, origin_port, host, path, mode, args.seconds, conns))
                a, b = statistics.median(r[0] for r in a_runs), statistics.median(r[0] for r in b_runs)
                # each round's B/A, A and B measured back to back: less exposed to load from elsewhere
                paired = statistics.median(y[0] / x[0] for x, y in zip(a_runs, b_runs))
                cpu_a, cpu_b = statistics.median(r[1] for r in a_runs), statistics.median(r[1] for r in b_runs)
                worker = statistics.median(r[2] for r in b_runs)
                rows.append({"mode": mode, "case": name, "plain": a, "cw": b, "ratio": b / a, "paired": paired,
                             "cpu_plain_us": cpu_a, "cpu_cw_us": cpu_b, "cpu_ratio": cpu_a / cpu_b,
                             "worker_us": worker})
            for p in (plain, watched):
                p.terminate()
                p.wait(timeout=10)
            lags[mode] = [json.loads(p.read_text()) for p in (lag_a, lag_b)]
            if not any(name.startswith("matched") and key in args.cases.split(",") for key, name, *_ in CASES):
                continue
            state = read_stored(data_dir / "state.json")
            rules = {w["rule_id"] for w in state.get("warnings", {}).values()}
            inspected[mode] = "linkedin.genai-training" in rules
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        origin.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"mitmproxy": version("mitmproxy"), "rounds": args.rounds, "seconds": args.seconds, "rows": rows,
              "lag": {mode: {"plain": a, "cw": b} for mode, (a, b) in lags.items()}, "inspected": inspected,
              "load": os.getloadavg()}
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
