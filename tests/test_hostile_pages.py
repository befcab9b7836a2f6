"""Hostile pages (tests/hostile_pages.py) cannot stop detection: each is read in bounded time, and the real LinkedIn
settings page after it is still reported, by the detectors, by `consentwatch replay`, and through the live proxy.

Before issue 12 the backtracking bait took minutes (the process was killed at 60 s), controls named by hundreds of
ids took 9 s and thousands of unnamed controls 26 s for the detectors alone. Times are not asserted: the guards
below only stop a hang, far above what any shape needs now.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import hostile_pages as hp
from consentwatch.detect import Detector
from consentwatch.replay import read_flows
from consentwatch.rules.model import load_pack, shipped_pack
from live_support import curl, start_run

PAGES = {p.name: p for p in hp.all_pages()}
GUARD = 30  # seconds: a hang guard, not a timing assertion
RULE = "linkedin.genai-training"


class Hung(Exception):
    pass


@contextmanager
def hang_guard(seconds: int, what: str):
    def alarm(*_):
        raise Hung(f"{what} still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def settings_flow():
    [flow] = list(read_flows(hp.SETTINGS_FIXTURE))
    return flow


def found(obs) -> list[str]:
    return sorted(f"{f.kind} {f.rule_id}" for f in obs.findings)


def test_every_shape_is_there():
    names = set(PAGES)
    assert {"change-dashes", "change-em-dashes", "change-apostrophes", "quoted-labels", "many-ids", "many-choice-ids", "many-controls",
            "json-array", "json-deep-list", "nested-containers"} <= names
    assert all(p.url.startswith(("https://www.linkedin.com/", "https://claude.ai/", "https://github.com/")) for p in PAGES.values())


@pytest.mark.parametrize("name", sorted(PAGES))
def test_detectors_read_the_hostile_page_then_the_settings_page(name):
    page = PAGES[name]
    detector = Detector(load_pack(shipped_pack()), None)
    with hang_guard(GUARD, name):
        obs = detector.detect(page.url, page.content_type, page.body)
    assert found(obs) == sorted(page.expect)
    flow = settings_flow()
    after = detector.detect(flow.request.pretty_url, flow.response.headers["content-type"], flow.response.raw_content)
    assert found(after) == [f"toggle_on {RULE}"]


def test_the_notice_detector_still_reads_a_notice_after_the_bait():
    # the bait is in a dialog like a real notice, and the real notice on the same page is still found
    detector = Detector(load_pack(shipped_pack()), None)
    [notice] = list(read_flows(hp.FIXTURES / "linkedin" / "notice.flow"))
    bait = PAGES["change-dashes"].body.replace(b"</body>", b"")
    body = bait + notice.response.raw_content
    with hang_guard(GUARD, "bait + notice"):
        obs = detector.detect(notice.request.pretty_url, "text/html", body)
    assert [(f.kind, f.rule_id, f.effective_date) for f in obs.findings] == [("policy_update", RULE, "2025-11-03")]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_replay_of_the_hostile_page_then_the_settings_page(name, tmp_path):
    recording = hp.write_replay(tmp_path / f"{name}.flow", PAGES[name])
    data = tmp_path / "data"
    data.mkdir()
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "consentwatch.cli", "replay", "--json", "--data-dir", str(data),
                        str(recording)], capture_output=True, text=True, timeout=GUARD)
    assert r.returncode == 0, r.stderr
    findings = [json.loads(line) for line in r.stdout.splitlines()]
    settings = [f for f in findings if f["url"].endswith(hp.SETTINGS_PATH)]
    assert [(f["kind"], f["rule_id"]) for f in settings] == [("toggle_on", RULE)], findings
    hostile = sorted(f"{f['kind']} {f['rule_id']}" for f in findings if f not in settings)
    assert hostile == sorted(PAGES[name].expect)
    assert time.monotonic() - started < GUARD


def test_live_proxy_serves_every_hostile_page_and_still_reports_the_settings_page(tmp_path):
    """Through `consentwatch run`: each hostile page reaches the client whole, and the settings page after them
    all is reported; no page had to be given up."""
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    recording = tmp_path / "hostile.flow"
    settings = settings_flow()
    with open(recording, "wb") as fo:
        w = io.FlowWriter(fo)
        for page in PAGES.values():
            f = tflow.tflow(resp=True)
            f.request = http.Request.make("GET", page.url)
            f.response = http.Response.make(200, page.body, {"content-type": page.content_type})
            w.add(f)
        w.add(settings)
    data = tmp_path / "data"
    data.mkdir()
    r = start_run(data, recording)
    try:
        for page in PAGES.values():
            got = curl(r.proxy, page.url, "-o", str(tmp_path / "page"), "-w", "%{http_code}")
            assert got.stdout == b"200" and (tmp_path / "page").read_bytes() == page.body, page.name
        assert curl(r.proxy, settings.request.pretty_url, "-o", "/dev/null").returncode == 0
        auth = {"Authorization": f"Bearer {r.token}"}
        deadline = time.monotonic() + GUARD
        warnings = []
        while time.monotonic() < deadline:
            warnings = json.loads(r.get("/v1/warnings", auth)[2])["warnings"]
            if any(w["rule_id"] == RULE for w in warnings):
                break
            time.sleep(0.2)
        assert [w["rule_id"] for w in warnings if w["rule_id"] == RULE] == [RULE], r.output()
        health = json.loads(r.get("/v1/health")[2])
        assert health["status"] == "ok" and health["abandoned"] == 0 and health["worker_restarts"] == 0
    finally:
        r.stop()
