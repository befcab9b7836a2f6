"""Issue 15, as it will be checked: on a fresh HOME, `consentwatch trust --browser chromium` alone makes real
Chromium (no certificate-error bypass of any kind) load a recorded platform page through `consentwatch run` and the
self-test page; after `trust --remove` the same browser refuses both, and /v1/health counts the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from consentwatch.selftest import SELFTEST_HOST, SELFTEST_URL
from conftest import missing_prerequisite
from live_support import RULE_ID, SETTINGS_URL, default_recording, start_run
from demo_support import Demo

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _visit(pw, home: Path, proxy_port: int, urls: list[str]) -> list[str]:
    """Each URL in a fresh headless Chromium whose HOME is `home` (so it reads `home`/.pki/nssdb): the status and
    title, or the net:: error."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, proxy={"server": f"http://127.0.0.1:{proxy_port}"},
                                 env={**os.environ, "HOME": str(home)}, args=["--no-sandbox", "--disable-gpu"])
    out = []
    try:
        page = browser.new_page()  # Playwright's default: ignore_https_errors=False
        for url in urls:
            try:
                resp = page.goto(url, timeout=20000)
                out.append(f"{resp.status} {page.title()}")
            except Exception as e:  # noqa: BLE001 - the net:: error is the result
                msg = str(e)
                out.append(next((w for w in msg.replace(" ", "\n").splitlines() if w.startswith("net::")), msg))
    finally:
        browser.close()
    return out


@pytest.mark.browser
def test_fresh_home_trust_then_chromium_loads_platform_and_selftest(tmp_path):
    if not Path(CHROMIUM).exists() or not shutil.which("certutil"):
        missing_prerequisite("Debian's chromium and certutil (libnss3-tools) are needed: make browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_prerequisite("Playwright for Python is not installed")
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    env = {**os.environ, "HOME": str(home)}

    def trust(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "consentwatch.cli", "trust", "--browser", "chromium",
                               "--data-dir", str(data), *args], capture_output=True, text=True, env=env, timeout=120)

    r = trust()  # before `run`: the CA is made by trust itself
    assert r.returncode == 0, r.stderr
    nssdb = home / ".pki" / "nssdb"
    listing = subprocess.run(["certutil", "-L", "-d", f"sql:{nssdb}"], capture_output=True, text=True, check=True)
    assert "consentwatch local CA" in listing.stdout and "C,," in listing.stdout

    run = start_run(data, default_recording(tmp_path))
    try:
        with sync_playwright() as pw:
            platform, selftest = _visit(pw, home, run.proxy_port, [SETTINGS_URL, SELFTEST_URL])
            assert platform == "200 Data for Generative AI Improvement", platform
            assert selftest == "200 consentwatch self-test: OK", selftest
            status, _, body = run.get("/v1/health")
            assert json.loads(body)["tls_failures"] == {}
            status, _, body = run.get("/v1/warnings", {"Authorization": f"Bearer {run.token}"})
            assert status == 200 and RULE_ID in body.decode()

            # the demo signs with the same install's CA: the trusting browser shows its pages too
            demo = Demo(tmp_path, "x", home=data)
            try:
                demo.wait_started()
                (x_page,) = _visit(pw, home, demo.port("proxy"), [demo.opened()[0]])
                assert x_page.startswith("200 "), x_page
            finally:
                demo.stop()

            r = trust("--remove")
            assert r.returncode == 0 and "removed 1" in r.stdout, r.stdout + r.stderr
            platform, selftest = _visit(pw, home, run.proxy_port, [SETTINGS_URL, SELFTEST_URL])
            assert platform == "net::ERR_CERT_AUTHORITY_INVALID", platform
            assert selftest == "net::ERR_CERT_AUTHORITY_INVALID", selftest
            status, _, body = run.get("/v1/health")
            failures = json.loads(body)["tls_failures"]
            assert failures.get(SELFTEST_HOST, 0) >= 1 and failures.get("www.linkedin.com", 0) >= 1, failures
    finally:
        run.stop()
