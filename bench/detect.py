"""Detection cost: a 1.5 MB settings page, the no-rule fast path (the request's host, then one lookup), and
the per-flow cost as rules grow.

Prints a table; asserts nothing (tests never assert wall-clock time). Run: .venv/bin/python bench/detect.py
"""

from __future__ import annotations

import base64
import copy
import random
import gzip
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mitmproxy import http  # noqa: E402

from consentwatch.detect import Detector  # noqa: E402
from consentwatch.request_target import host_of  # noqa: E402
from consentwatch.rules.model import RuleSet, Rule, load_pack, shipped_pack  # noqa: E402

# minified-bundle-like filler: varied characters, like the real scripts and tracking blobs of a big page
TOKEN = base64.b64encode(random.Random(7).randbytes(220)).decode()
URL = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"


def settings_page(size: int) -> bytes:
    """A LinkedIn-like settings page: mostly scripts, JSON blobs and markup, the toggle near the end."""
    noise = ('<div class="artdeco-card"><span class="t-14">Some setting with a long explanation</span>'
             '<a href="/mypreferences/d/other">Change</a></div>\n'
             '<code style="display:none" id="bpr-guid-1">{&quot;data&quot;:{&quot;entityUrn&quot;:'
             '&quot;urn:li:fs_miniProfile:ACoAAB&quot;,&quot;trackingId&quot;:&quot;x1y2&quot;}}</code>\n'
             '<script>window.__como_rehydration__ = ["' + TOKEN + '"];function f(e,t){return e&&t?e.map(n=>n.id):[]}</script>\n')
    toggle = ('<section><h1>Data for Generative AI Improvement</h1><div class="row">'
              '<label for="genai-toggle">Use my data for training content creation AI models</label>'
              '<input type="checkbox" id="genai-toggle" role="switch" checked aria-checked="true"></div></section>')
    head = "<!doctype html><html><head><meta charset='utf-8'><title>Settings</title></head><body>"
    n = (size - len(head) - len(toggle)) // len(noise)
    return (head + noise * (n * 3 // 4) + toggle + noise * (n - n * 3 // 4) + "</body></html>").encode()


def timeit(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def many_rules(n: int) -> RuleSet:
    base = shipped_pack()["rules"]
    rules = []
    for i in range(n):
        d = copy.deepcopy(base[i % len(base)])
        d["id"] = f"{d['platform']}.synthetic-{i}"
        d["hosts"] = [f"h{i}.{h.lstrip('*.')}" for h in d["hosts"]]
        rules.append(Rule.from_dict(d))
    return RuleSet(rules, "bench")


def main() -> None:
    rules = load_pack(shipped_pack())
    det = Detector(rules, memo_size=0)  # first views: every page read in full
    seen = Detector(rules)  # the same page again: answered from the memo after hashing the body
    rows = []
    for label, size in (("120 KB settings page", 120_000), ("1.5 MB settings page", 1_500_000)):
        page = settings_page(size)
        assert det.detect(URL, "text/html; charset=utf-8", page).findings, "the bench page must be detected"
        ts = timeit(lambda: det.detect(URL, "text/html; charset=utf-8", page), 40)
        rows.append((label, statistics.median(ts) * 1e3, max(ts) * 1e3, "ms"))
        gz = gzip.compress(page)
        ts = timeit(lambda: det.detect(URL, "text/html", gz, "gzip"), 20)
        rows.append((label + " (gzip)", statistics.median(ts) * 1e3, max(ts) * 1e3, "ms"))
        ts = timeit(lambda: seen.detect(URL, "text/html; charset=utf-8", bytes(bytearray(page))), 20)
        rows.append((label + ", seen before (memo)", statistics.median(ts) * 1e3, max(ts) * 1e3, "ms"))
    page = settings_page(1_500_000).replace(b"Use my data for training", b"Show my profile photo to")
    ts = timeit(lambda: det.detect(URL, "text/html", page), 40)
    rows.append(("1.5 MB page on rule host, no label", statistics.median(ts) * 1e3, max(ts) * 1e3, "ms"))
    # what the response hook does for every flow: the request's host, then one lookup
    requests = [http.Request.make("GET", f"https://cdn{i}.example.net/asset.js", headers={"host": ""})
                for i in range(1000)]  # make() fills the Host header in from the URL, as a browser sends it
    for label, host in (("host of a request: host_of", host_of),
                        ("host of a request: mitmproxy pretty_host", lambda r: r.pretty_host)):
        ts = timeit(lambda: [host(r) for r in requests], 50)
        rows.append((label, statistics.median(ts) / len(requests) * 1e6, max(ts) / len(requests) * 1e6, "µs"))
    for n in (20, 1_000, 10_000):
        rs = rules if n == 20 else many_rules(n)
        d = Detector(rs)
        def fast():
            for r in requests:
                d.rules_for(host_of(r))
        ts = timeit(fast, 200)
        rows.append((f"no-rule fast path, {n} rules", statistics.median(ts) / len(requests) * 1e6,
                     max(ts) / len(requests) * 1e6, "µs"))
    print(f"{'case':<42} {'median':>10} {'max':>10}")
    for label, med, mx, unit in rows:
        print(f"{label:<42} {med:>8.3f}{unit:>2} {mx:>8.3f}{unit:>2}")


if __name__ == "__main__":
    main()
