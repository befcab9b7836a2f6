"""schemathesis (the `st` command) against a real `consentwatch run`, using the description it serves.

With the token: every check schemathesis has (no 500s, status codes, content types, bodies and headers as
described, auth not ignored, unsupported methods refused with Allow, ...). Without it: every request to every
route gets 401, except the two public ones (`/v1/health`, `/v1/openapi.json`) and CORS preflights (OPTIONS).
Per-route tweaks live in tests/schemathesis.toml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from live_support import ROOT, SETTINGS_URL, curl, default_recording, start_run

pytestmark = pytest.mark.slow

CONFIG = ROOT / "tests" / "schemathesis.toml"
PUBLIC = {"/v1/health", "/v1/openapi.json"}
EXAMPLES = "15"  # per operation and phase: a run takes a few seconds


def st_command() -> list[str]:
    exe = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if exe is None:
        pytest.fail("schemathesis is a test dependency (pip install -e '.[test]'): `st` not found")
    return [exe, "--no-color", "--config-file", str(CONFIG)]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("st")
    data = tmp / "data"
    data.mkdir()
    r = start_run(data, default_recording(tmp))
    # one real warning, through the proxy, so the warning routes answer with something in them
    assert curl(r.proxy, SETTINGS_URL).returncode == 0
    yield r
    r.stop()


def st_run(running, tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    res = subprocess.run([*st_command(), "run", f"{running.api}/v1/openapi.json", "-n", EXAMPLES,
                          "--report", "har", "--report-har-path", str(tmp_path / "st.har"), *args],
                         capture_output=True, text=True, timeout=150, cwd=tmp_path, env=env, check=False)
    entries = json.loads((tmp_path / "st.har").read_text())["log"]["entries"] if (tmp_path / "st.har").exists() else []
    return res, entries


def summary(entries: list[dict]) -> Counter:
    return Counter((e["request"]["method"], _route(urlsplit(e["request"]["url"]).path), e["response"]["status"])
                   for e in entries)


def _route(path: str) -> str:
    if path.startswith("/v1/warnings/") and path.endswith("/dismiss"):
        return "/v1/warnings/{id}/dismiss"
    return path


def test_schemathesis_with_the_token_finds_nothing(running, tmp_path):
    res, entries = st_run(running, tmp_path, "-H", f"Authorization: Bearer {running.token}", "--checks", "all")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    seen = summary(entries)
    assert len(entries) > 200
    assert not [k for k in seen if k[2] >= 500], seen
    # the token got through: every operation answered with success at least once
    for method, route, code in (("GET", "/v1/health", 200), ("GET", "/v1/warnings", 200), ("GET", "/v1/rules", 200),
                                ("GET", "/v1/proxy.pac", 200), ("GET", "/report", 200), ("GET", "/v1/ws", 101),
                                ("POST", "/v1/warnings/{id}/dismiss", 404), ("POST", "/v1/observations", 202),
                                ("POST", "/v1/observations", 422), ("POST", "/v1/tickets", 200)):
        assert seen[(method, route, code)], (method, route, code, seen)
    assert "Traceback" not in running.output()


def test_schemathesis_without_the_token_gets_401_everywhere_but_the_public_routes(running, tmp_path):
    res, entries = st_run(running, tmp_path, "--checks", "not_a_server_error,status_code_conformance,"
                          "content_type_conformance,response_schema_conformance,response_headers_conformance")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    seen = summary(entries)
    assert len(entries) > 200
    wrong = {k: n for k, n in seen.items() if k[1] not in PUBLIC and k[0] != "OPTIONS" and k[2] != 401}
    assert wrong == {}, "answered without a token"
    routes = {k[1] for k in seen if k[2] == 401}
    assert routes == {"/v1/warnings", "/v1/warnings/{id}/dismiss", "/v1/rules", "/v1/proxy.pac", "/v1/ws", "/report",
                      "/v1/observations", "/v1/tickets"}
    assert seen[("GET", "/v1/health", 200)]
    # preflights need no token (a browser sends none) but answer nothing but CORS headers
    assert all(code == 204 for (method, _, code) in seen if method == "OPTIONS")
    # schemathesis does not fetch its own description as a test case: read it without a token here
    status, _, body = running.get("/v1/openapi.json")
    assert status == 200 and json.loads(body)["paths"]
    status, _, _ = running.get("/v1/openapi.json", {"Host": "attacker.example"})
    assert status == 421
    assert "Traceback" not in running.output()
