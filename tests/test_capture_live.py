"""`consentwatch capture` end to end: a real `consentwatch run` serving a seeded recording, curl through it."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import pytest

import capture_seeds as S
from conftest import cli
from live_support import ROOT, consentwatch_cmd, curl, start_run

pytestmark = pytest.mark.slow


class Lines:
    """A subprocess's output, line by line, without blocking the test on a read."""

    def __init__(self, stream):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.seen):
                return
            try:
                line = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
        raise AssertionError(f"no {text!r} in the output:\n{''.join(self.seen)}")

    def rest(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.q.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


def _curl_args(headers: dict) -> list[str]:
    out = []
    for k, v in headers.items():
        out += ["-H", f"{k}: {v}"]
    return out


def test_capture_records_the_platform_through_a_running_proxy(tmp_path):
    flows = S.seeded_flows()
    recording = S.write_seeded(tmp_path / "recorded.flow", flows)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run = start_run(data_dir, recording)
    try:
        cap = subprocess.Popen(consentwatch_cmd("capture", "linkedin", "--data-dir", str(data_dir),
                                                "--out", str(tmp_path / "shared")),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT)
        out = Lines(cap.stdout)
        out.wait_for("press Enter here")

        page, optout, x_query = flows[0], flows[1], flows[2]
        got = curl(run.proxy, page.request.url, *_curl_args(S.browser_headers()))
        assert got.returncode == 0, got.stderr
        assert got.stdout == page.response.raw_content  # the browser gets the page untouched (gzip and all)
        posted = curl(run.proxy, optout.request.url, "-X", "POST", "--data-binary", optout.request.raw_content.decode(),
                      *_curl_args({k: v for k, v in optout.request.headers.items() if k != "content-length"}))
        assert posted.returncode == 0 and json.loads(posted.stdout)["status"] == "ok"
        other = curl(run.proxy, x_query.request.url, *_curl_args(dict(x_query.request.headers)))
        assert other.returncode == 0 and other.stdout  # another platform: served, but not recorded
        out.wait_for("2 flow(s) recorded")

        cap.stdin.write("\n")
        cap.stdin.flush()
        assert cap.wait(60) == 0, out.rest()
        text = out.rest()
    finally:
        run.stop()

    assert "wrote 2 flow(s) from www.linkedin.com" in text
    for label in ("cookies and session values", "auth header credentials", "CSRF tokens", "e-mail addresses",
                  "phone numbers", "user, account and other ids", "names and handles", "query-string values",
                  "free text outside the settings region"):
        assert label in text, label
    for name in ("shared.flow", "shared.har"):
        data = (tmp_path / name).read_bytes()
        assert S.leftovers(data) == [], name
        assert b"x.com" not in data and b"tumblr" not in data
    # the rule still fires on the capture, as `rules test` and `replay` see it
    r = cli("rules", "test", "linkedin.genai-training", "--recording", str(tmp_path / "shared.flow"),
            "--expect", "toggle_on")
    assert r.returncode == 0, r.stdout
    r = cli("replay", "--json", str(tmp_path / "shared.har"))
    assert [json.loads(line)["kind"] for line in r.stdout.splitlines()] == ["toggle_on"]
    # nothing left behind in the data dir, nothing personal in the proxy's log
    assert list((data_dir / "capture").iterdir()) == []
    assert S.leftovers(run.output().encode()) == []
