"""Shared test helpers. Test files build what they need from these small factories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

LINKEDIN_URL = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"


def linkedin_page(on: bool) -> bytes:
    checked = " checked" if on else ""
    return (f'<html><body><h1>Data for Generative AI Improvement</h1><div class="row">'
            f'<label for="t">Use my data for training content creation AI models</label>'
            f'<input id="t" type="checkbox"{checked}></div></body></html>').encode()


def write_flow(path: Path, url: str, body: bytes, content_type: str = "text/html; charset=utf-8",
               headers: dict | None = None, timestamp: float | None = None) -> Path:
    """One recorded HTTPS flow, as `mitmdump -w` writes it."""
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    f = tflow.tflow(resp=True)
    f.request = http.Request.make("GET", url, b"", {"cookie": "session=SECRET_COOKIE_VALUE",
                                                     "authorization": "Bearer SECRET_AUTH_TOKEN"})
    f.response = http.Response.make(200, b"", {"content-type": content_type, **(headers or {})})
    f.response.raw_content = body
    f.response.headers["content-length"] = str(len(body))
    if timestamp:
        f.request.timestamp_start = f.request.timestamp_end = timestamp
        f.response.timestamp_start = f.response.timestamp_end = timestamp
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fo:
        io.FlowWriter(fo).add(f)
    return path


IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_prerequisite(reason: str):
    """A missing browser, tool or fixture: a failure under CI (CI=true), a skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing prerequisite fails, it does not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def cli(*args: str, check: bool = False):
    """Run the real `consentwatch` command in a subprocess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "consentwatch.cli", *args], capture_output=True, text=True,
                          timeout=120, check=check)


@pytest.fixture(autouse=True)
def _no_frozen_objects_left_behind():
    """A test that runs consentwatch's addons in this process (`running`) freezes the objects alive then
    (gc_freeze.py): thawed after each test, so that what one test made can still be collected in the next."""
    yield
    import gc

    gc.unfreeze()
