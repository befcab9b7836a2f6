"""`make bench`: every benchmark in one go, each printing its own table; `--update-readme` also rewrites the README's
generated performance tables (the blocks between `<!-- bench:NAME begin -->` and `<!-- bench:NAME end -->`) from
this run's figures, and nothing else in the README.

detect.py          detection time per page (120 KB, 1.5 MB; first view and seen before) and the no-rule fast path
                   with 20 / 1,000 / 10,000 rules
replay.py          replay throughput (flows/s)
latency.py         flow-to-WebSocket latency through a real `consentwatch run` (p50/p99)
store.py           the warning store's cost per commit (time, CPU, memory) at 10 / 1,000 / 100,000 stored items,
                   the whole-file store before the journal against the journal
page_eye.py        the extension's page eye in Chromium: content-script CPU per mutation batch on a 10,000-element
                   feed page, observation -> WebSocket and switch flip -> badge latency
proxy.py           throughput ratios against plain mitmproxy under wrk, reverse and regular mode, unmatched traffic
                   and the 120 KB and 1.5 MB settings pages, side by side, with each proxy's CPU per request, and
                   how long the proxy's event loop was blocked
page_eye_budget.py what 50 observations/s cost the proxy under wrk, and observation -> WebSocket
instructions.py    (only when named: ~12 min, needs valgrind) instructions per request, plain against consentwatch,
                   under callgrind: the comparison a noisy machine does not move

Run: .venv/bin/python bench/run_all.py [--only proxy,budget,store] [--update-readme [--even-if-unsteady]] [--rounds 5]
     [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BENCHES = ("detect", "replay", "latency", "store", "page_eye", "proxy", "budget", "instructions")
DEFAULT = BENCHES[:-1]  # instructions.py: only when named (it takes long, and needs valgrind)
SCRIPTS = {"detect": "detect.py", "replay": "replay.py", "latency": "latency.py", "store": "store.py",
           "page_eye": "page_eye.py", "proxy": "proxy.py", "budget": "page_eye_budget.py",
           "instructions": "instructions.py"}
CASE_NAMES = {"unmatched": "unmatched hosts", "matched 120 KB settings page": "LinkedIn settings page, 120 KB",
              "matched 1.5 MB settings page": "LinkedIn settings page, 1.5 MB",
              "matched 120 KB page, changing": "the same, 120 KB, different on every load",
              "matched 1.5 MB page, changing": "the same, 1.5 MB, different on every load"}
GOALS = {"unmatched": ">= 0.98", "matched 120 KB settings page": ">= 0.95", "matched 1.5 MB settings page": ">= 0.92"}


STEADY = 1.25  # slowest / fastest of the steadiness probe's runs above which a host is too noisy for throughput


def steadiness(runs: int = 12) -> tuple[float, float, float]:
    """How steady the machine is now: a fixed piece of pure Python (3 million additions), timed `runs` times a
    quarter of a second apart; (fastest, median, slowest) in ms. On a quiet host they agree within a few per cent;
    when a shared host's other tenants are busy the slowest takes up to twice the fastest, and requests/s swing as
    much from one round to the next: a 2 % effect cannot be read then (bench/PROFILE.md, "Fourth look")."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.25)
    return min(times), statistics.median(times), max(times)


def steady(*probes: tuple[float, float, float]) -> bool:
    """Whether the machine was steady through all these probes together: a host can be steady within each probe
    and still run at half speed in one of them (seen 2026-12-02: 168-184 ms, then 310-337 ms a minute later)."""
    return max(p[2] for p in probes) / min(p[0] for p in probes) <= STEADY


def steadiness_line(probe: tuple[float, float, float]) -> str:
    fast, median, slow = probe
    verdict = "steady" if steady(probe) else "NOT steady: throughput ratios may be off by several per cent"
    return f"a fixed loop took {fast:.0f} / {median:.0f} / {slow:.0f} ms (fastest / median / slowest), {verdict}"


def versions() -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"consentwatch {version('consentwatch')}, mitmproxy {version('mitmproxy')}, tinydb {version('tinydb')}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load}")


# -- the README's generated blocks --------------------------------------------------------------------------------

def md_versions(line: str) -> str:
    return f"Generated by `bench/run_all.py --update-readme` on: {line} (at the start of the run)."


def md_proxy(r: dict) -> str:
    out = [f"mitmproxy {r['mitmproxy']}; plain `mitmdump` against `mitmdump -s addon/consentwatch_addon.py`, both "
           f"running, `wrk` loading them alternately, {r['rounds']} rounds of {r['seconds']} s; ratio: of the median "
           "requests/s, paired: the median of each round's ratio; CPU: each proxy process's own CPU time per "
           "request (far less sensitive to other load than requests/s), cpu ratio = plain / consentwatch; worker: "
           "the detection worker process's CPU per request, on another core. Load average at the end: "
           f"{' '.join(f'{x:.1f}' for x in r['load'])}.", "",
           "| mode | traffic | plain req/s | + consentwatch | ratio | paired | CPU/request plain | + consentwatch "
           "| cpu ratio | worker | goal |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        out.append(f"| {x['mode']} | {CASE_NAMES.get(x['case'], x['case'])} | {x['plain']:,.0f} | {x['cw']:,.0f} | "
                   f"{x['ratio']:.3f} | {x['paired']:.3f} | {x['cpu_plain_us']:,.0f} µs | {x['cpu_cw_us']:,.0f} µs | "
                   f"{x['cpu_ratio']:.3f} | {x['worker_us']:,.0f} µs | {GOALS.get(x['case'], '')} |")
    if r["inspected"]:
        out += ["", "Pages inspected: " + ", ".join(
            f"{mode} mode {'yes (the LinkedIn warning was stored)' if ok else 'NO WARNING STORED'}"
            for mode, ok in r["inspected"].items()) + ". Event loop, lag of a 1 ms tick, p99 plain / consentwatch: "
            + ", ".join(f"{mode} {lag['plain']['p99_ms']:.1f} / {lag['cw']['p99_ms']:.1f} ms"
                        for mode, lag in r["lag"].items()) + "."]
    return "\n".join(out)


def md_budget(r: dict) -> str:
    out = [f"mitmproxy {r['mitmproxy']}; `wrk` through `mitmdump -s addon/consentwatch_addon.py` (reverse mode, "
           f"unmatched traffic) in {r['rounds']} alternating rounds of {r['seconds']} s: without observations, with "
           f"{r['rate_asked']:g} `POST /v1/observations` a second asked whose switch flips every time (each one "
           "detected in the worker, stored, announced on the WebSocket: the worst case; the next one is sent when "
           "the last one was announced, so the rate reached is lower when they take longer), and with repeats of "
           "one region (nothing changes: answered from memory once one has changed nothing, without detection). "
           f"The API's rate limit ({r.get('api_limit', 15):g}/s over time) is lifted for this; the flips at that "
           "rate are the most it admits. Load average at the end: "
           f"{' '.join(f'{x:.1f}' for x in r['load'])}.", "",
           "| observations | per s | req/s | ratio | paired | proxy CPU/request | cpu ratio | proxy CPU/observation "
           "| worker/observation | latency p50 / p95 / p99 / max |",
           "|---|---|---|---|---|---|---|---|---|---|",
           f"| none | 0 | {r['plain']:,.0f} | | | {r['cpu_plain_us']:,.0f} µs | | | | |"]
    for name, label in (("flip", "each flips the switch (POST -> WebSocket)"),
                        ("flip_at_limit", "each flips the switch, at the API's own limit"),
                        ("repeat", "repeats (POST answered)")):
        if name not in r:
            continue  # a figures file from before that case
        c = r[name]
        lat = c["latency_ms"]
        out.append(f"| {label} | {c['rate_sent']:.1f} | {c['observed']:,.0f} | {c['ratio']:.3f} | {c['paired']:.3f} | "
                   f"{c['cpu_observed_us']:,.0f} µs | {c['cpu_ratio']:.3f} | {c['cpu_per_obs_us']:,.0f} µs | "
                   f"{c['worker_us_per_obs']:,.0f} µs | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / "
                   f"{lat['max']:.1f} ms |")
    if "alone" in r:
        al = r["alone"]
        out += ["", "The same observations without `wrk` (alternating idle, flip and repeat rounds): the proxy's own "
                "CPU per observation, every thread, user + kernel (`/proc/PID/task/*/schedstat`), less the idle "
                f"proxy's {al['idle_cpu_ms_per_s']:.1f} ms/s: flips {al['flip']['cpu_per_obs_us']:,.0f} µs, repeats "
                f"{al['repeat']['cpu_per_obs_us']:,.0f} µs (a measure the machine's load hardly moves)."]
    out += ["", "Goals (issue 16): < 2 % of the proxy's throughput, p99 < 50 ms."]
    return "\n".join(out)


def md_store(r: dict) -> str:
    out = [f"Python {r['python']}; each case in its own process; wall times include the fsync.", "",
           "| storage | items stored | commits | commit p50 | p95 | max | CPU per commit | RSS / peak | files |",
           "|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        out.append(f"| {x['storage']} | {x['items']:,} | {x['commits']} | {x['p50_ms']:.1f} ms | {x['p95_ms']:.1f} ms | "
                   f"{x['max_ms']:,.0f} ms | {x['cpu_ms']:.2f} ms | {x['rss_end_mb']:.0f} / {x['peak_mb']:.0f} MB | "
                   f"{x['file_mb']:.1f} MB |")
    return "\n".join(out)


def replace_block(text: str, name: str, body: str) -> str:
    """The README with the block `name` (between its begin and end comments) replaced by `body`."""
    begin, end = f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {begin} ... {end} block to update")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(DEFAULT),
                    help=f"which benches, of {', '.join(BENCHES)} (default: all but instructions)")
    ap.add_argument("--update-readme", action="store_true",
                    help="rewrite the README's generated tables (proxy, budget, store) from this run")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of proxy.py and page_eye_budget.py")
    ap.add_argument("--seconds", type=int, default=5, help="seconds per round of proxy.py and page_eye_budget.py")
    ap.add_argument("--even-if-unsteady", action="store_true",
                    help="with --update-readme: write the throughput tables (proxy, budget) even when the steadiness "
                         "probe before or after the run found the machine too noisy for them")
    args = ap.parse_args()
    chosen = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        print(f"run_all.py: unknown bench {', '.join(unknown)} (choose from {', '.join(BENCHES)})", file=sys.stderr)
        return 2
    line = versions()
    print(line + " (other work on the machine makes throughput noisy)", flush=True)
    before = steadiness()
    print("steadiness before the run: " + steadiness_line(before), flush=True)
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-all-") as tmp:
        for name in BENCHES:
            if name not in chosen:
                continue
            extra: list[str] = []
            out = Path(tmp) / f"{name}.json"
            if name in ("proxy", "budget"):
                extra = ["--rounds", str(args.rounds), "--seconds", str(args.seconds), "--json", str(out)]
            elif name == "store":
                extra = ["--json", str(out)]
            print(f"\n=== bench/{SCRIPTS[name]} ===", flush=True)
            code = subprocess.call([sys.executable, str(HERE / SCRIPTS[name]), *extra])
            if code:
                return code
            if out.exists():
                figures[name] = json.loads(out.read_text())
    after = steadiness()
    print("\nsteadiness after the run: " + steadiness_line(after), flush=True)
    unsteady = not steady(before, after)
    if unsteady and steady(before) and steady(after):
        print("the machine's speed changed between the two probes: NOT steady", flush=True)
    if args.update_readme:
        skipped = [n for n in ("proxy", "budget") if n in figures and unsteady and not args.even_if_unsteady]
        for name in skipped:
            del figures[name]
        if skipped:
            print(f"README.md: the {' and '.join(skipped)} tables kept as they were: the machine was not steady "
                  "enough for throughput (--even-if-unsteady writes them anyway)", file=sys.stderr)
        text = README.read_text()
        if figures:
            text = replace_block(text, "versions", md_versions(f"{line}; steadiness before: {steadiness_line(before)}; "
                                                              f"after: {steadiness_line(after)}"))
        for name, render in (("proxy", md_proxy), ("budget", md_budget), ("store", md_store)):
            if name in figures:
                text = replace_block(text, name, render(figures[name]))
        README.write_text(text)
        print(f"\nREADME.md: the generated tables of {', '.join(sorted(figures)) or 'nothing'} rewritten "
              "(the rest untouched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
