"""The local API in process (aiohttp test server over a real Watch and store): routes, auth, hub, PAC, token."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import subprocess
import threading

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consentwatch.api.app import Api, build_app
from consentwatch.api.auth import host_ok, origin_ok
from consentwatch.api.hub import Hub
from consentwatch.api.pac import pac_script
from consentwatch.token import get_token, token_matches
from consentwatch.pipeline import Watch
from live_support import EXT_ORIGIN, OFF_URL, RULE_ID, SETTINGS_URL, settings_html


@pytest.fixture
def watch(tmp_path):
    (tmp_path / "data").mkdir()
    w = Watch(tmp_path / "data")
    yield w
    w.close()


@pytest.fixture
async def api(watch):
    hub = Hub(ping_every=0.2)
    token = get_token(watch.data_dir)
    watch.listeners.append(hub.publish)
    server = TestServer(build_app(Api(lambda: watch, hub, lambda: token, lambda: 8080)), host="127.0.0.1")
    client = TestClient(server)
    await client.start_server()
    hub.start()
    client.token = token
    client.hub = hub
    client.auth = {"Authorization": f"Bearer {token}"}
    yield client
    await hub.close()
    await client.close()


def detect(watch: Watch, on: bool = True):
    """What the addon's worker thread does, on a real other thread."""
    t = threading.Thread(target=watch.process, args=(SETTINGS_URL if on else OFF_URL, "text/html", settings_html(on)),
                         kwargs={"host": "www.linkedin.com"})
    t.start()
    t.join()


async def recv(ws, want: str) -> dict:
    async def loop():
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg["type"] == want:
                return msg
    return await asyncio.wait_for(loop(), 5)


# -- routes ----------------------------------------------------------------------------------------------

async def test_health_needs_no_token_and_counts_errors(api, watch):
    r = await api.get("/v1/health")
    body = await r.json()
    assert r.status == 200 and body["status"] == "ok" and body["rules"] == len(watch.rules)
    assert body["proxy_port"] == 8080 and body["errors"] == 0 and body["version"]
    watch.errors["x"] += 2
    assert (await (await api.get("/v1/health")).json())["errors"] == 2


async def test_warnings_lifecycle(api, watch):
    assert (await (await api.get("/v1/warnings", headers=api.auth)).json()) == {"warnings": []}
    detect(watch, True)
    ws_list = (await (await api.get("/v1/warnings?status=active", headers=api.auth)).json())["warnings"]
    assert [w["rule_id"] for w in ws_list] == [RULE_ID]
    wid = ws_list[0]["id"]
    r = await api.post(f"/v1/warnings/{wid}/dismiss", headers=api.auth)
    assert r.status == 200 and (await r.json())["warning"]["status"] == "dismissed"
    r = await api.post(f"/v1/warnings/{wid}/dismiss", headers=api.auth)  # idempotent
    assert r.status == 200 and (await r.json())["warning"]["status"] == "dismissed"
    assert (await (await api.get("/v1/warnings", headers=api.auth)).json())["warnings"] == []
    all_ = (await (await api.get("/v1/warnings?status=all", headers=api.auth)).json())["warnings"]
    assert [w["status"] for w in all_] == ["dismissed"]
    assert (await api.post("/v1/warnings/w-nope/dismiss", headers=api.auth)).status == 404
    assert (await api.get("/v1/warnings?status=bogus", headers=api.auth)).status == 400
    assert (await api.get("/v1/warnings/x/dismiss", headers=api.auth)).status == 405
    r = await api.get("/v1/nothing-here", headers=api.auth)
    assert r.status == 404 and "error" in await r.json()


async def test_rules_route(api, watch):
    body = await (await api.get("/v1/rules", headers=api.auth)).json()
    assert body["version"] == watch.rules.version
    assert [r["id"] for r in body["rules"]] == [r.id for r in watch.rules.rules]
    assert body["rules"][0] == watch.rules.rules[0].data


async def test_report_route(api):
    assert (await api.get("/report")).status == 401
    r = await api.get("/report?format=json", headers=api.auth)
    try:
        import consentwatch.report  # noqa: F401 - written by the report engineer
    except ImportError:
        assert r.status == 404
        return
    assert r.status == 200 and r.content_type == "application/json"
    r = await api.get("/report", headers=api.auth)
    assert r.status == 200 and r.content_type == "text/html"
    assert (await api.get("/report?format=pdf", headers=api.auth)).status == 400


async def test_report_by_one_time_ticket(api):
    """A tab cannot send the token in a header, and a URL lands in history: it opens /report with a ticket."""
    assert (await api.post("/v1/tickets?for=report")).status == 401  # a ticket needs the token
    assert (await api.post(f"/v1/tickets?for=report&token={api.token}")).status == 401
    assert (await api.post("/v1/tickets?for=admin", headers=api.auth)).status == 400
    body = await (await api.post("/v1/tickets?for=report", headers=api.auth)).json()
    ticket = body["ticket"]
    assert api.token not in json.dumps(body) and body["url"] == f"/report?ticket={ticket}" and body["expires_in"] > 0
    assert (await api.get(f"/v1/warnings?ticket={ticket}")).status == 401  # only the route it was asked for
    assert (await api.get(f"/v1/ws?ticket={ticket}")).status == 401
    r = await api.get(body["url"])
    assert r.status == 200 and r.content_type == "text/html"
    assert r.headers["Referrer-Policy"] == "no-referrer"  # links out of the report do not carry its URL
    assert (await api.get(body["url"])).status == 401  # once only: the URL in history opens nothing
    assert (await api.get(f"/report?token={api.token}")).status == 401  # the token never in a URL


async def test_websocket_by_one_time_ticket(api):
    body = await (await api.post("/v1/tickets?for=ws", headers=api.auth)).json()
    assert (await api.get(f"/report?ticket={body['ticket']}")).status == 401
    ws = await api.ws_connect(body["url"])
    assert (await recv(ws, "hello"))["warnings"] == []
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await api.ws_connect(body["url"])
    assert e.value.status == 401


def test_tickets_expire_and_stay_bounded():
    from consentwatch.api.tickets import Tickets

    now = [0.0]
    t = Tickets(ttl=60, max_open=3, clock=lambda: now[0])
    old = t.issue("report")
    now[0] = 61
    assert not t.redeem(old, "/report")  # expired
    first = t.issue("report")
    rest = [t.issue("ws") for _ in range(3)]
    assert not t.redeem(first, "/report")  # pushed out by newer ones: at most max_open wait
    assert all(t.redeem(x, "/v1/ws") for x in rest)
    assert not t.redeem(None, "/report") and not t.redeem("", "/report")


async def test_auth_rules(api):
    t = api.token
    assert (await api.get("/v1/warnings")).status == 401
    assert (await api.get("/v1/warnings", headers={"Authorization": "Bearer " + t[:-1] + "x"})).status == 401
    assert (await api.get(f"/v1/warnings?token={t}")).status == 401  # the token never in a URL
    assert (await api.get("/v1/warnings", headers={**api.auth, "Host": "attacker.example"})).status == 421
    assert (await api.get("/v1/health", headers={"Host": "attacker.example"})).status == 421
    assert (await api.get("/v1/warnings", headers={**api.auth, "Origin": "https://attacker.example"})).status == 403
    r = await api.get("/v1/warnings", headers={**api.auth, "Origin": EXT_ORIGIN})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == EXT_ORIGIN and "Origin" in r.headers["Vary"]
    r = await api.options("/v1/warnings/abc/dismiss", headers={"Origin": EXT_ORIGIN,
                                                                "Access-Control-Request-Method": "POST"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == EXT_ORIGIN
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = await api.get("/v1/warnings", headers=api.auth)
    assert r.headers["Cache-Control"] == "no-store"


def test_host_and_origin_rules():
    for good in ("127.0.0.1", "127.0.0.1:8765", "localhost", "LOCALHOST:1"):
        assert host_ok(good), good
    for bad in ("", None, "127.0.0.1.nip.io", "localhost.", "evil", "127.0.0.2", "[::1]:8765", "127.0.0.1:123456",
                "localhost:80@evil"):
        assert not host_ok(bad), bad
    for good in (EXT_ORIGIN, "moz-extension://0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"):
        assert origin_ok(good)
    for bad in ("null", "https://x.example", "chrome-extension://", "chrome-extension://a/b", "file://",
                "chrome-extension://abc\r\nx: y", "safari-web-extension://abc"):
        assert not origin_ok(bad), bad


# -- WebSocket -------------------------------------------------------------------------------------------

async def test_ws_hello_events_ping_pong_and_heartbeat(api, watch):
    ws = await api.ws_connect("/v1/ws", headers=api.auth)
    assert (await recv(ws, "hello"))["warnings"] == []
    detect(watch, True)
    w = (await recv(ws, "warning"))["warning"]
    assert w["rule_id"] == RULE_ID and w["status"] == "active"
    detect(watch, False)
    assert (await recv(ws, "resolved"))["warning"]["status"] == "resolved"
    await ws.send_json({"type": "ping"})
    assert (await recv(ws, "pong")) == {"type": "pong"}
    await ws.send_str("not json")  # ignored, not fatal
    assert (await recv(ws, "ping")) == {"type": "ping"}  # the server's heartbeat (0.2 s here, 20 s for real)
    await ws.close()


async def test_ws_hello_has_the_active_warnings(api, watch):
    detect(watch, True)
    ws = await api.ws_connect("/v1/ws", headers=api.auth)
    hello = await recv(ws, "hello")
    assert [w["rule_id"] for w in hello["warnings"]] == [RULE_ID]
    await ws.close()


async def test_ws_refuses_without_token(api):
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await api.ws_connect("/v1/ws")
    assert e.value.status == 401


async def test_every_client_gets_every_event_in_order(api, watch):
    clients = [await api.ws_connect("/v1/ws", headers=api.auth) for _ in range(5)]
    for ws in clients:
        await recv(ws, "hello")
    for _ in range(3):
        detect(watch, True)
        detect(watch, False)
    for ws in clients:
        seen = []
        while len(seen) < 6:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if msg["type"] in ("warning", "resolved"):
                seen.append(msg["type"])
        assert seen == ["warning", "resolved"] * 3
        await ws.close()


async def test_dismiss_is_broadcast(api, watch):
    detect(watch, True)
    ws = await api.ws_connect("/v1/ws", headers=api.auth)
    wid = (await recv(ws, "hello"))["warnings"][0]["id"]
    await api.post(f"/v1/warnings/{wid}/dismiss", headers=api.auth)
    msg = await recv(ws, "resolved")
    assert msg["warning"]["id"] == wid and msg["warning"]["status"] == "dismissed"
    await ws.close()


async def test_hub_close_says_goodbye(api):
    ws = await api.ws_connect("/v1/ws", headers=api.auth)
    await recv(ws, "hello")
    await asyncio.wait_for(api.hub.close(), 3)
    msg = await asyncio.wait_for(ws.receive(), 3)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert api.hub.clients == set()


async def test_slow_client_is_dropped_not_waited_for(monkeypatch):
    import consentwatch.api.hub as hubmod

    monkeypatch.setattr(hubmod, "QUEUE_LIMIT", 3)
    hub = Hub(ping_every=0)
    hub.start()

    class StuckWs:
        closed = False

        async def send_str(self, text):
            await asyncio.Event().wait()  # never returns: a client that does not read

        async def close(self, **kw):
            self.closed = True

    client = hubmod.Client(StuckWs())
    hub.clients.add(client)
    for i in range(10):
        hub.send_all(f"m{i}")  # returns at once whatever the client does
    assert client not in hub.clients


# -- PAC -------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("node") is None, reason="node evaluates the PAC script")
def test_pac_script_routes_only_rule_hosts():
    script = pac_script(["www.linkedin.com", "linkedin.com", "*.substack.com"], 8080)
    hosts = ["www.linkedin.com", "LinkedIn.com", "linkedin.com.", "a.b.substack.com", "x.substack.com",
             "substack.com", "evil-linkedin.com", "linkedin.com.evil", "bank.example", "notsubstack.com"]
    js = script + "\nconsole.log(JSON.stringify(%s.map(h => FindProxyForURL('https://' + h + '/', h))));" % json.dumps(hosts)
    out = json.loads(subprocess.run(["node", "-e", js], capture_output=True, text=True, check=True).stdout)
    proxy = "PROXY 127.0.0.1:8080; DIRECT"
    assert out == [proxy, proxy, proxy, proxy, proxy, "DIRECT", "DIRECT", "DIRECT", "DIRECT", "DIRECT"]


# -- token -----------------------------------------------------------------------------------------------

def test_token_file(tmp_path):
    t = get_token(tmp_path)
    path = tmp_path / "token"
    assert len(t) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_token(tmp_path) == t
    path.chmod(0o644)
    assert get_token(tmp_path) == t and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    t2 = get_token(tmp_path)
    assert t2 != "short" and len(t2) >= 40
    assert token_matches(t2, t2) and not token_matches(t2[:-1], t2) and not token_matches(None, t2)
    assert not token_matches("", t2) and not token_matches("é" * 10, t2)


def test_token_command(tmp_path):
    import sys

    out = subprocess.run([sys.executable, "-m", "consentwatch.cli", "token", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == (tmp_path / "token").read_text().strip()
    blocker = tmp_path / "f"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "consentwatch.cli", "token", "--data-dir", str(blocker / "x")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
