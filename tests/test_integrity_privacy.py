"""Through a real `consentwatch run`: pages reach the client byte for byte (HTTP/1.1 and HTTP/2, compressed
or not), and after the session nothing from the page, no cookie, query string or auth header is anywhere
under the data dir or in the logs."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import brotli
import pytest

from live_support import SETTINGS_URL, curl, start_run

pytestmark = pytest.mark.slow

SECRETS = ("SECRET_COOKIE_VALUE", "SECRET_QUERY_TOKEN", "SECRET_AUTH_TOKEN", "SECRET_SETCOOKIE_VALUE")
PAGE_TEXT = "Only-in-the-page sentence 7f3a9c: Ada Lovelace endorsed you for Python"


def page(on: bool) -> bytes:
    checked = " checked" if on else ""
    return (f'<html><body><p>{PAGE_TEXT}</p><label for="t">Use my data for training content creation AI '
            f'models</label><input id="t" type="checkbox"{checked}></body></html>').encode()


def recording(path: Path) -> tuple[Path, dict[str, bytes]]:
    """Three recorded pages with different encodings; returns the raw bytes each must arrive as."""
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    pages = {
        "/mypreferences/d/settings/data-for-ai-improvement": (page(True), ""),
        "/mypreferences/gz/settings/data-for-ai-improvement": (gzip.compress(page(True), mtime=0), "gzip"),
        "/mypreferences/br/settings/data-for-ai-improvement": (brotli.compress(page(True)), "br"),
    }
    raw = {}
    with open(path, "wb") as fo:
        w = io.FlowWriter(fo)
        for p, (body, enc) in pages.items():
            f = tflow.tflow(resp=True)
            # recorded with the query string the test sends: server replay matches on it
            f.request = http.Request.make("GET", "https://www.linkedin.com" + p + "?trk=SECRET_QUERY_TOKEN")
            headers = {"content-type": "text/html; charset=utf-8", "set-cookie": "bcookie=SECRET_SETCOOKIE_VALUE"}
            if enc:
                headers["content-encoding"] = enc
            f.response = http.Response.make(200, b"", headers)
            f.response.raw_content = body
            f.response.headers["content-length"] = str(len(body))
            w.add(f)
            raw[p] = body
    return path, raw


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_bytes_unchanged_and_nothing_private_kept(tmp_path, http2):
    data = tmp_path / "data"
    data.mkdir()
    rec, raw = recording(tmp_path / "pages.flow")
    r = start_run(data, rec)
    try:
        for path, expected in raw.items():
            extra = ["--http2"] if http2 else ["--http1.1"]
            extra += ["-H", "Cookie: li_at=SECRET_COOKIE_VALUE", "-H", "Authorization: Bearer SECRET_AUTH_TOKEN",
                      "-w", "\n%{http_version}"]
            done = curl(r.proxy, "https://www.linkedin.com" + path + "?trk=SECRET_QUERY_TOKEN", *extra)
            assert done.returncode == 0, done.stderr
            body, _, version = done.stdout.rpartition(b"\n")
            assert body == expected, f"{path}: the page was altered on its way to the client"
            assert version == (b"2" if http2 else b"1.1")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (data / "state.journal").exists():  # the first commit
            time.sleep(0.1)
        status, _, body = r.get("/v1/warnings", {"Authorization": f"Bearer {r.token}"})
        assert [w["rule_id"] for w in json.loads(body)["warnings"]] == ["linkedin.genai-training"]
    finally:
        r.stop()
    everything = r.output()
    for f in data.rglob("*"):
        if f.is_file():
            everything += f.read_bytes().decode("utf-8", "replace")
    for secret in SECRETS + (PAGE_TEXT, "Ada Lovelace", "trk="):
        assert secret not in everything, f"{secret!r} leaked into the data dir or the logs"
    assert SETTINGS_URL.split("//")[1].split("/")[0] in everything  # the check above did read real content
