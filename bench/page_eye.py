"""The page eye's cost and speed, in headless Chromium with the real extension and a real `consentwatch run`.

1. CPU of the content script per mutation batch on a ~10,000-element feed page (linkedin.com/feed, a rule host,
   so the eye is on; its posts even mention "generative AI" and "privacy policy updates"). Two kinds of batch:
   `grow` appends 50 posts (~500 elements), `churn` rewrites the text and toggles a class of 100 random posts.
   Measured two ways: the eye's own clock (every slice of work and every MutationObserver callback, summed per
   batch, read from its isolated world), and the renderer's whole script time (CDP Performance.ScriptDuration)
   for the same batch on the same page served from a host with no rule (no content script): the page's own
   batch, run through CDP, is not counted there, so what the rule host shows is the extension's alone.
2. Latency: observation -> WebSocket (POST /v1/observations to the `warning`/`resolved` message: detection in
   the worker process, store, hub), and switch flip -> badge in the browser (the user clicks the switch of a
   single-page app; the content script coalesces and waits for the region to settle, 250 ms by design, the
   worker posts it, the API answers on the WebSocket, the badge changes).

Run: .venv/bin/python bench/page_eye.py [--batches 40] [--flips 20] [--posts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser.spa_pages import (  # noqa: E402
    FEED_APP, FEED_PAGE, HTML, JS, PINTEREST_PAGE, LocalSite, feed_page, pinterest, shell,
)
from live_support import start_run  # noqa: E402
from stats import pct  # noqa: E402

EXT_DIR = ROOT / "extension"
NO_RULE_FEED = "https://feed.example.org/feed/"


def row(name, v, unit="ms"):
    return (f"{name:<44}{pct(v, 50):>9.2f}{pct(v, 95):>9.2f}{max(v):>9.2f}{statistics.fmean(v):>9.2f}  {unit}"
            if v else f"{name:<44}   (no samples)")


class Browser:
    def __init__(self, pw, profile: Path, resolver: str):
        self.context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True,
            args=[f"--disable-extensions-except={EXT_DIR}", f"--load-extension={EXT_DIR}", "--no-sandbox",
                  "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--ignore-certificate-errors", resolver],
            ignore_https_errors=True)
        self.sw = self.context.service_workers[0] if self.context.service_workers else \
            self.context.wait_for_event("serviceworker", timeout=15_000)

    def pair(self, base, token):
        self.sw.evaluate("([a, t]) => chrome.storage.local.set({apiBase: a, token: t})", [base, token])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = self.sw.evaluate("() => chrome.storage.session.get(['cwState', 'cwRules'])")
            if (st.get("cwState") or {}).get("conn") == "connected" and st.get("cwRules"):
                return
            time.sleep(0.1)
        raise SystemExit("the extension did not connect")


class Isolated:
    """Evaluate in the content scripts' isolated world of a page (the page itself cannot see it)."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.contexts = []
        self.cdp.on("Runtime.executionContextCreated", lambda e: self.contexts.append(e["context"]))
        self.cdp.send("Runtime.enable")
        self.cdp.send("Performance.enable")
        page.wait_for_timeout(200)

    def eval(self, expr):
        ctx = next(c for c in self.contexts if c.get("name") == "consentwatch")
        return self.cdp.send("Runtime.evaluate", {"expression": expr, "contextId": ctx["id"],
                                                  "returnByValue": True})["result"]["value"]

    def script_ms(self) -> float:
        metrics = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        return metrics["ScriptDuration"] * 1000


def settle(page, iso: Isolated | None, quiet_ms: int = 250, timeout: float = 20):
    """Wait until the eye has no work left (no timer pending) and a moment of quiet has passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(quiet_ms)
        if iso is None or not iso.eval("globalThis.__consentwatchEye.stats().timersPending"):
            return
    raise SystemExit("the page eye did not go idle")


def feed_cpu(pw, tmp: Path, batches: int, run) -> dict:
    entries = feed_page() + [(NO_RULE_FEED, HTML, shell("Feed", "/static/feed.js")),
                             ("https://feed.example.org/static/feed.js", JS, FEED_APP.encode())]
    site = LocalSite(entries).start()
    b = Browser(pw, tmp / "profile-feed", site.resolver_rule)
    out = {}
    try:
        b.pair(run.api, run.token)
        for label, url, eye in (("eye", FEED_PAGE, True), ("no-rule host", NO_RULE_FEED, False)):
            page = b.context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function("() => window.__feed && window.__feed.nodes() >= 10000")
            iso = Isolated(page)
            settle(page, iso if eye else None, 500)
            nodes = page.evaluate("() => window.__feed.nodes()")
            res = {"nodes": nodes}
            if eye:
                st = iso.eval("globalThis.__consentwatchEye.stats()")
                res["configure_ms"] = st["configureMs"]
            for kind, js in (("grow", "() => window.__feed.grow(50)"), ("churn", "() => window.__feed.churn(100)")):
                eye_ms, script_ms = [], []
                for _ in range(batches):
                    before = iso.eval("globalThis.__consentwatchEye.stats()") if eye else None
                    s0 = iso.script_ms()
                    page.evaluate(js)
                    settle(page, iso if eye else None, 150)
                    script_ms.append(iso.script_ms() - s0)
                    if eye:
                        after = iso.eval("globalThis.__consentwatchEye.stats()")
                        eye_ms.append((after["busyMs"] - before["busyMs"]) + (after["observerMs"] - before["observerMs"]))
                res[kind] = {"eye_ms": eye_ms, "script_ms": script_ms}
            res["nodes_after"] = page.evaluate("() => window.__feed.nodes()")
            if eye:
                st = iso.eval("globalThis.__consentwatchEye.stats()")
                res["sent"] = st["sent"]
                res["max_slice_ms"] = st["maxSliceMs"]
            out[label] = res
            page.close()
    finally:
        b.context.close()
        site.stop()
    return out


async def observation_to_ws(run, n: int) -> list[float]:
    on = ('<div class="SettingRow"><span id="l">Use your data to train Pinterest Canvas</span>'
          '<button role="switch" aria-checked="{}" aria-labelledby="l"></button></div>')
    headers = {"Authorization": f"Bearer {run.token}", "Origin": "chrome-extension://benchbenchbenchbenchbenchbenchbe"}
    out = []
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(f"{run.api}/v1/ws?token={run.token}")
        assert json.loads((await ws.receive()).data)["type"] == "hello"
        for i in range(n + 10):
            body = {"url": PINTEREST_PAGE, "html": on.format("true" if i % 2 == 0 else "false"), "reason": "setting"}
            t0 = time.perf_counter()
            async with s.post(f"{run.api}/v1/observations", json=body, headers=headers) as r:
                if r.status == 429:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                assert r.status == 202, r.status
            while True:
                msg = await asyncio.wait_for(ws.receive(), 10)
                if json.loads(msg.data)["type"] in ("warning", "resolved"):
                    break
            if i >= 10:
                out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.25)  # within the API's rate limit, as a page would be
        await ws.close()
    return out


BADGE_LOG = """() => {
  globalThis.__badgeLog = [];
  let last = null;
  globalThis.__badgeTimer = setInterval(async () => {
    const t = await chrome.action.getBadgeText({});
    if (t !== last) { last = t; globalThis.__badgeLog.push([Date.now(), t]); }
  }, 2);
}"""


def flip_to_badge(pw, tmp: Path, flips: int, run) -> list[float]:
    site = LocalSite(pinterest(True)).start()
    b = Browser(pw, tmp / "profile-flip", site.resolver_rule)
    out = []
    try:
        b.pair(run.api, run.token)
        page = b.context.new_page()
        page.goto(PINTEREST_PAGE, wait_until="load")
        switch = page.get_by_role("switch", name="Use your data to train Pinterest Canvas")
        switch.wait_for()
        page.evaluate("() => { window.__clicks = []; document.addEventListener('click', () => window.__clicks.push(Date.now()), true); }")
        deadline = time.monotonic() + 20
        while b.sw.evaluate("() => chrome.action.getBadgeText({})") != "1":
            if time.monotonic() > deadline:
                raise SystemExit("no badge for the ON page")
            time.sleep(0.1)
        b.sw.evaluate(BADGE_LOG)
        for i in range(flips):
            want = "" if i % 2 == 0 else "1"
            n_log = len(b.sw.evaluate("() => globalThis.__badgeLog"))
            switch.click()
            deadline = time.monotonic() + 15
            while True:
                log = b.sw.evaluate("() => globalThis.__badgeLog")
                hit = next((t for t, text in log[n_log:] if text == want), None)
                if hit is not None:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the badge did not become {want!r} after flip {i}")
                time.sleep(0.02)
            clicked = page.evaluate("() => window.__clicks[window.__clicks.length - 1]")
            out.append(hit - clicked)
            page.wait_for_timeout(600)  # the next flip after the eye has gone quiet, as a person would
    finally:
        b.sw.evaluate("() => clearInterval(globalThis.__badgeTimer)")
        b.context.close()
        site.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40, help="mutation batches per kind (default 40)")
    ap.add_argument("--flips", type=int, default=20, help="switch flips for flip -> badge (default 20)")
    ap.add_argument("--posts", type=int, default=200, help="observations for observation -> WebSocket (default 200)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-eye-"))
    (tmp / "data").mkdir()
    run = start_run(tmp / "data", None)
    try:
        ws_ms = asyncio.run(observation_to_ws(run, args.posts))
        with sync_playwright() as pw:
            cpu = feed_cpu(pw, tmp, args.batches, run)
            flips = flip_to_badge(pw, tmp, args.flips, run)
    finally:
        run.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    eye = cpu["eye"]
    none = cpu["no-rule host"]
    print(f"page eye, headless Chromium {os.cpu_count()} CPUs; feed page of {eye['nodes']:,} elements "
          f"({eye['nodes_after']:,} at the end), {args.batches} batches of each kind")
    print(f"{'':<44}{'p50':>9}{'p95':>9}{'max':>9}{'mean':>9}")
    print(row("eye's own CPU per batch, grow 50 posts", eye["grow"]["eye_ms"]))
    print(row("eye's own CPU per batch, churn 100 posts", eye["churn"]["eye_ms"]))
    print(row("renderer script time per batch, grow (eye)", eye["grow"]["script_ms"]))
    print(row("  the same, feed on a host with no rule", none["grow"]["script_ms"]))
    print(row("renderer script time per batch, churn (eye)", eye["churn"]["script_ms"]))
    print(row("  the same, feed on a host with no rule", none["churn"]["script_ms"]))
    print(f"first look at the whole page on arrival: {eye['configure_ms']:.1f} ms; longest slice {eye['max_slice_ms']:.1f} ms; "
          f"regions sent from the feed: {eye['sent']}")
    print(row("observation -> WebSocket (POST to the event)", ws_ms))
    print(row("switch flip -> badge (in the browser)", flips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
