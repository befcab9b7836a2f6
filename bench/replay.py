"""Replay throughput: recorded flows per second through `consentwatch replay`'s pipeline (read, filter,
detect, store), in process. A realistic mix: most flows go to hosts without a rule (scripts, images, APIs
of other sites), some are platform pages and setting APIs, every body a different one.

Run: .venv/bin/python bench/replay.py [-n 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect import settings_page  # noqa: E402


def write_mix(path: Path, n: int) -> dict[str, int]:
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    page_on = settings_page(120_000)
    counts = {"no rule": 0, "settings page": 0, "settings API": 0, "other page on a rule host": 0}
    with open(path, "wb") as fo:
        w = io.FlowWriter(fo)
        for i in range(n):
            f = tflow.tflow(resp=True)
            kind = i % 20
            if kind == 0:  # 5%: the settings page (each copy differs: no memo hits)
                url, body, ct = ("https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement",
                                 page_on + f"<!-- {i} -->".encode(), "text/html; charset=utf-8")
                counts["settings page"] += 1
            elif kind == 1:  # 5%: a settings API
                url, body, ct = ("https://x.com/i/api/graphql/q/GrokSettingsScreenQuery",
                                 b'{"data":{"viewer":{"user_preferences":{"allow_xai_data_sharing":%d}}},"n":%d}'
                                 % (i % 2, i), "application/json")
                counts["settings API"] += 1
            elif kind < 5:  # 15%: other pages of the platforms
                url, body, ct = (f"https://www.linkedin.com/feed/update/{i}",
                                 b"<html><body>" + b"<div class=post>post text</div>" * 300 + b"</body></html>",
                                 "text/html")
                counts["other page on a rule host"] += 1
            else:  # 75%: everything else
                url, body, ct = (f"https://cdn{i % 7}.example.net/asset/{i}.js", b"x" * 20_000, "application/javascript")
                counts["no rule"] += 1
            f.request = http.Request.make("GET", url)
            f.response = http.Response.make(200, body, {"content-type": ct})
            w.add(f)
    return counts


def main() -> None:
    from consentwatch.replay import replay_file
    from consentwatch.paths import data_dir
    from consentwatch.pipeline import Watch

    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cw-replay-"))
    counts = write_mix(tmp / "mix.flow", args.n)
    watch = Watch(data_dir(tmp / "data"))
    t = time.perf_counter()
    findings = sum(1 for _ in replay_file(watch, tmp / "mix.flow"))
    elapsed = time.perf_counter() - t
    watch.close()
    print(f"replay of {args.n} recorded flows ({', '.join(f'{v} {k}' for k, v in counts.items())})")
    print(f"{'flows/s':>10} {'elapsed':>9} {'findings':>9}")
    print(f"{args.n / elapsed:>10.0f} {elapsed:>8.2f}s {findings:>9}")


if __name__ == "__main__":
    main()
