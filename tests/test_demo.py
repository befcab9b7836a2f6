"""`consentwatch demo` (issue 15 point 6): the shipped recorded pages (or your own recording) through the real proxy,
no network, a scratch data dir, ports that never collide with a running `consentwatch run`, the URLs printed."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consentwatch.demo import (DEFAULT_API_PORT, DEFAULT_PROXY_PORT, DemoError, choose_port, read_recording,
                               replay_sets, shipped_pages, shipped_pages_path)
from consentwatch.findings import WARNING_KINDS
from consentwatch.replay import replay_file
from consentwatch.rules.model import shipped_pack
from consentwatch.pipeline import Watch
from conftest import FIXTURES, missing_prerequisite
from demo_support import NO_PROXY_ENV, Demo
from live_support import SETTINGS_URL, free_port, http_request, start_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _curl():
    import shutil

    if not shutil.which("curl"):
        missing_prerequisite("curl is needed")


# -- the shipped pages ----------------------------------------------------------------------------------------

def test_shipped_pages_warn_for_every_platform_and_hold_no_secrets(tmp_path):
    pages = shipped_pages()
    pack = shipped_pack()
    assert {p.platform for p in pages} == {r["platform"] for r in pack["rules"]}
    raw = shipped_pages_path().read_text("utf-8")
    assert len(raw) < 200_000  # small: package data
    doc = json.loads(raw)
    for e in doc["log"]["entries"]:
        assert "?" not in e["request"]["url"] and e["request"]["headers"] == [] and e["request"]["cookies"] == []
        assert {h["name"] for h in e["response"]["headers"]} <= {"content-type", "content-length", "cache-control"}
    assert "SECRET" not in raw and e["response"]["cookies"] == []
    # replayed through the real detectors: every platform gives a warning, every page is what its kind says
    (tmp_path / "d").mkdir()
    watch = Watch(tmp_path / "d")
    try:
        findings = list(replay_file(watch, shipped_pages_path()))
    finally:
        watch.close()
    warned = {f.platform for f in findings if f.kind in WARNING_KINDS}
    assert warned == {p.platform for p in pages}
    expected = {"settings": {"toggle_on"}, "rendered": {"toggle_on"}, "notice": {"policy_update"}}
    for page in pages:
        assert {f.kind for f in findings if f.url == page.url} == expected[page.kind], page


def test_choose_port_never_collides(tmp_path):
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        with pytest.raises(DemoError, match=f"--proxy-port {busy}: port in use"):
            choose_port(busy, DEFAULT_PROXY_PORT, "--proxy-port", set())
        port, moved = choose_port(None, busy, "--api-port", set())  # a default that is taken moves
        assert moved and port != busy
    free = free_port()
    assert choose_port(free, DEFAULT_PROXY_PORT, "--proxy-port", set()) == (free, False)
    with pytest.raises(DemoError):
        choose_port(free, DEFAULT_API_PORT, "--api-port", {free})  # never the proxy's own port
    assert DEFAULT_PROXY_PORT != 8080 and DEFAULT_API_PORT != 8765  # not `consentwatch run`'s


def test_replay_options_are_the_offline_ones(tmp_path):
    sets = replay_sets([tmp_path / "a.flow"], ["trk"])
    assert sets == [f"server_replay={tmp_path / 'a.flow'}", "server_replay_reuse=true", "server_replay_extra=kill",
                    "connection_strategy=lazy", "keepserving=true", "server_replay_ignore_params=trk"]


def test_user_recording_pages_and_query_names():
    pages, names = read_recording(FIXTURES / "linkedin" / "settings-on.flow")
    assert [p.url for p in pages] == [SETTINGS_URL] and names == ["trk"]
    with pytest.raises(DemoError, match="not a recording"):
        read_recording(ROOT / "README.md")


# -- a real demo ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_serves_the_shipped_pages_offline_beside_a_running_run(tmp_path):
    # a `consentwatch run` holds the demo's default ports: the demo moves, it never collides
    data = tmp_path / "run-data"
    data.mkdir()
    running = start_run(data, None, proxy_port=DEFAULT_PROXY_PORT if _free(DEFAULT_PROXY_PORT) else None,
                        api_port=DEFAULT_API_PORT if _free(DEFAULT_API_PORT) else None)
    demo = Demo(tmp_path)
    try:
        out = demo.wait_started()
        assert {demo.port("proxy"), demo.port("api")}.isdisjoint({running.proxy_port, running.api_port})
        urls = demo.opened()
        assert SETTINGS_URL in urls and urls[-1] == "https://selftest.consentwatch.invalid/"
        assert len(urls) == len(shipped_pages()) + 1 and not any("?" in u for u in urls)
        scratch = Path(re.search(r"Data:\s+(\S+)", out).group(1))
        assert scratch.is_dir() and scratch != demo.home

        page = demo.curl(SETTINGS_URL)
        assert page.returncode == 0, page.stderr
        assert b"Use my data for training content creation AI models" in page.stdout
        assert demo.curl("https://selftest.consentwatch.invalid/").stdout.count(b"self-test: OK") == 2
        # not recorded: refused, never fetched (there is no network here anyway)
        missing = demo.curl("https://www.linkedin.com/not-recorded", "-o", "/dev/null", "-w", "%{http_code}")
        assert missing.returncode != 0 or missing.stdout != b"200"

        token = (scratch / "token").read_text().strip()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, _, body = http_request(f"http://127.0.0.1:{demo.port('api')}/v1/warnings",
                                           {"Authorization": f"Bearer {token}"})
            if status == 200 and b"linkedin.genai-training" in body:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no warning from the demo: {body!r}")
        # the user's own data dir got the CA (so `consentwatch trust` covers the demo), never the demo's warnings
        assert (demo.home / "ca" / "consentwatch-ca-cert.pem").exists()
        assert not any((demo.home / name).exists() for name in ("state.json", "state.journal", "suggestions.json"))
        assert (scratch / "state.journal").exists()  # the store's first commit (state.json: its first compaction)
    finally:
        assert demo.stop() == 0, demo.output()
        running.stop()
    assert not scratch.exists()  # the scratch data dir is gone
    assert (demo.home / "ca" / "consentwatch-ca-cert.pem").exists()  # the CA it linked to is not


@pytest.mark.slow
def test_demo_one_platform_and_an_own_recording_with_its_query(tmp_path):
    demo = Demo(tmp_path, "x", "--proxy-port", str(free_port()), "--api-port", str(free_port()))
    try:
        demo.wait_started()
        urls = demo.opened()
        assert urls and all(u.startswith("https://x.com/") for u in urls[:-1])
        assert demo.curl(urls[0], "-o", "/dev/null", "-w", "%{http_code}").stdout == b"200"
        refused = demo.curl(SETTINGS_URL, "-o", "/dev/null", "-w", "%{http_code}")
        assert refused.returncode != 0 or refused.stdout != b"200"  # another platform's page is not served
    finally:
        demo.stop()

    # a recording whose request had a query (?trk=...): the printed address has none and still matches,
    # as does the same address with another value
    recording = FIXTURES / "linkedin" / "settings-on.flow"
    demo = Demo(tmp_path, "--recording", str(recording))
    try:
        out = demo.wait_started()
        assert demo.opened() == [SETTINGS_URL, "https://selftest.consentwatch.invalid/"]
        assert "ignored when matching: trk" in out
        for url in (SETTINGS_URL, SETTINGS_URL + "?trk=another-value"):
            page = demo.curl(url)
            assert page.returncode == 0 and b"Data for Generative AI Improvement" in page.stdout, (url, page.stderr)
    finally:
        demo.stop()


def test_demo_refuses_clearly(tmp_path):
    def demo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "consentwatch.cli", "demo", "--data-dir", str(tmp_path / "h"),
                               *args], capture_output=True, text=True, timeout=60, env=NO_PROXY_ENV)

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        r = demo("--proxy-port", str(busy))
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"--proxy-port {busy}: port in use" in r.stderr
    r = demo("myspace")
    assert r.returncode == 2 and "no recorded pages for 'myspace'; one of: " in r.stderr and "linkedin" in r.stderr
    r = demo("--recording", str(tmp_path / "nothing.flow"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nothing.flow" in r.stderr
    r = demo("linkedin", "--recording", str(FIXTURES / "linkedin" / "settings-on.flow"))
    assert r.returncode == 2 and "PLATFORM" in r.stderr
    listed = demo("--list")
    assert listed.returncode == 0 and "linkedin" in listed.stdout.split()


def _free(port: int) -> bool:
    from consentwatch.demo import port_free

    return port_free(port)
