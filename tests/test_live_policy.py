"""A quiet policy change through `consentwatch run`: the policy page over HTTPS through the real proxy (server
replay, no network), the policy_changed warning on the WebSocket, in /v1/warnings and in /report."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

import policy_pages as pp
from live_support import EXT_ORIGIN, curl, start_run, write_flows

pytestmark = pytest.mark.slow


async def next_message(ws, want: str, timeout: float = 20) -> dict:
    async def loop():
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"WebSocket ended: {msg.type}")
            data = json.loads(msg.data)
            if data["type"] == want:
                return data
    return await asyncio.wait_for(loop(), timeout)


async def fetch(r, url: str) -> bytes:
    done = await asyncio.to_thread(curl, r.proxy, url)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


async def stored_versions(data_dir: Path, key: str, count: int, timeout: float = 20) -> list[dict]:
    """The policy store as the worker leaves it (the proxy answers before detection is done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            docs = json.loads((data_dir / "policies.json").read_text())["documents"].values()
            versions = next((d["versions"] for d in docs if d["key"] == key), [])
            if len(versions) >= count:
                return versions
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key}: {count} version(s) not stored")


async def test_policy_change_reaches_the_websocket_rest_and_report(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old_url, new_url = pp.QUORA_URL + "?ref=footer", pp.QUORA_URL + "?ref=settings"
    recording = write_flows(tmp_path / "policy.flow", [(old_url, pp.quora("v2")), (new_url, pp.quora("v1"))])
    r = start_run(data, recording)
    try:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(f"{r.api}/v1/ws", headers={"Origin": EXT_ORIGIN,
                                                           "Authorization": f"Bearer {r.token}"})
            assert (await next_message(ws, "hello"))["warnings"] == []
            # first visit: a version without AI wording, the baseline (no warning)
            assert await fetch(r, old_url) == pp.quora("v2")  # the page reaches the browser byte for byte
            await stored_versions(data, "quora.llm-training/privacy-policy", 1)
            # later the same document (another tracking query) says something new about AI
            await fetch(r, new_url)
            w = (await next_message(ws, "warning"))["warning"]
            assert w["kind"] == "policy_changed" and w["platform"] == "quora" and w["url"] == pp.QUORA_URL
            assert w["policy"]["added"] == [pp.QUORA_AI] and w["policy"]["basis"] == "seen"
            # the words the extension shows, built by the backend
            assert w["title"] == "Quora's Privacy Policy now says something new about AI"
            assert w["summary"].startswith("Quora's Privacy Policy now says: \u201cWe may license content")
            assert "New since you saw it on " in w["summary"]
            # the same version again: nothing more to hear, one warning
            await fetch(r, new_url)
            await stored_versions(data, "quora.llm-training/privacy-policy", 2)
            auth = {"Authorization": f"Bearer {r.token}"}
            code, _, body = r.get("/v1/warnings", auth)
            assert code == 200 and [x["id"] for x in json.loads(body)["warnings"]] == [w["id"]]
            code, _, html = r.get("/report", auth)
            assert code == 200 and b"train large language models" in html and b'class="ptext"' in html
            await ws.close()
        assert r.stop() == 0
    finally:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(5)
    assert "Traceback" not in r.output()
