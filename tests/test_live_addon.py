"""The live addons with mitmproxy's own test helpers (taddons, tflow): API option, events to the WebSocket,
live rule reload, and the master `consentwatch run` builds (allow_hosts from the rules, fixed options)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from consentwatch.addon import ConsentWatch
from consentwatch.assembly import default_addons
from consentwatch.rules_reloader import RulesReloader
from consentwatch.run import FIXED_OPTIONS, RunConfig, RunError, build_master
from consentwatch.rules.model import shipped_pack
from consentwatch.rules.store import RuleStore
from consentwatch.store.journal import read_stored
from live_support import RULE_ID, SETTINGS_URL, free_port, settings_html


def settings_flow(on: bool = True) -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request = http.Request.make("GET", SETTINGS_URL)
    f.response = http.Response.make(200, settings_html(on), {"content-type": "text/html"})
    return f


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def pack_without_linkedin(version: str) -> dict:
    pack = shipped_pack()
    pack["version"] = version
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    return pack


# -- the API addon ---------------------------------------------------------------------------------------

def test_api_port_option(data):
    cw, _, api, *_ = default_addons()
    with taddons.context(cw, api) as tctx:
        assert tctx.options.consentwatch_api_port == 8765
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(api, consentwatch_api_port=70000)
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(api, consentwatch_api_port=-1)
        tctx.configure(api, consentwatch_api_port=0)


async def test_api_off_when_port_zero(data):
    cw, _, api, *_ = default_addons()
    with taddons.context(cw, api) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data))
        tctx.configure(api, consentwatch_api_port=0)
        await api.running()
        assert api.runner is None and api.port is None
        await api.done()
        await cw.done()


async def test_flow_to_websocket_through_the_addons(data):
    """A response hook on the proxy's loop -> worker thread -> store -> hub -> WebSocket client."""
    cw, _, api, *_ = default_addons()
    port = free_port()
    with taddons.context(cw, api) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data))
        tctx.configure(api, consentwatch_api_port=port)
        await api.running()
        assert api.port == port
        token = (data / "token").read_text().strip()
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(f"http://127.0.0.1:{port}/v1/ws", headers={"Authorization": f"Bearer {token}"})
            assert json.loads((await ws.receive()).data) == {"type": "hello", "warnings": []}
            f = settings_flow(True)
            before = f.get_state()
            cw.response(f)  # returns at once: detection runs on the worker thread
            assert f.get_state() == before
            msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert msg["type"] == "warning" and msg["warning"]["rule_id"] == RULE_ID
            # what the client heard is on disk
            stored = read_stored(data / "state.json")["warnings"]
            assert [w["id"] for w in stored.values()] == [msg["warning"]["id"]]
            other = tflow.tflow(resp=True)  # not a rule host: nothing
            cw.response(other)
            assert cw.inspected == 1
            await api.done()  # closes the client (1001)
            closing = await asyncio.wait_for(ws.receive(), 3)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await cw.done()


async def test_api_port_change_restarts_the_server(data):
    cw, _, api, *_ = default_addons()
    p1, p2 = free_port(), free_port()
    with taddons.context(cw, api) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data))
        tctx.configure(api, consentwatch_api_port=p1)
        await api.running()
        tctx.configure(api, consentwatch_api_port=p2)
        await api._restart
        assert api.port == p2
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{p2}/v1/health") as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientConnectionError):
                await s.get(f"http://127.0.0.1:{p1}/v1/health")
        await api.done()
        await cw.done()


async def test_api_port_in_use_is_logged_not_raised(data, caplog):
    import socket

    cw, _, api, *_ = default_addons()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with taddons.context(cw, api) as tctx:
            tctx.configure(cw, consentwatch_data_dir=str(data))
            tctx.configure(api, consentwatch_api_port=busy.getsockname()[1])
            await api.running()
            assert api.runner is None
            assert any("in use" in r.getMessage() for r in caplog.records)
            await cw.done()


# -- live rule reload ------------------------------------------------------------------------------------

async def test_rules_reload_when_rules_json_changes(data):
    cw = ConsentWatch()
    reloader = RulesReloader(cw, every=0)
    heard = []
    cw.rule_listeners.append(heard.append)
    with taddons.context(cw) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data))
        assert heard and RULE_ID in heard[-1].by_id
        assert await reloader.check() is False  # unchanged: nothing read
        RuleStore(data).write_pack(pack_without_linkedin("9999.1"), "import")
        assert await reloader.check() is True
        assert cw.watch.rules.version == "9999.1" and RULE_ID not in cw.watch.rules.by_id
        assert heard[-1] is cw.watch.rules
        assert await reloader.check() is False
        # the new rules are in force for flows: linkedin is no longer inspected
        cw.response(settings_flow(True))
        cw._drain()
        assert cw.inspected == 0 and cw.watch.state.list_warnings() == []
        await cw.done()


async def test_reload_loop_runs_on_the_loop(data):
    cw = ConsentWatch()
    reloader = RulesReloader(cw, every=0.05)
    with taddons.context(cw, reloader) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data))
        reloader.running()
        RuleStore(data).write_pack(pack_without_linkedin("9999.2"), "import")
        for _ in range(100):
            if cw.watch.rules.version == "9999.2":
                break
            await asyncio.sleep(0.02)
        assert cw.watch.rules.version == "9999.2"
        await cw.done()
        reloader.done()
        assert reloader._task is None


# -- the master `run` builds -----------------------------------------------------------------------------

async def test_run_master_intercepts_only_rule_hosts(data):
    m, cw, api, hosts = await build_master(RunConfig(data_dir=data, proxy_port=free_port(), api_port=0))
    try:
        assert m.options.listen_host == "127.0.0.1" and m.options.mode == ["regular"]
        assert Path(m.options.confdir) == data / "ca"
        assert m.options.keepserving is True
        regex, _selftest = m.options.allow_hosts
        assert regex == cw.watch.rules.allow_hosts_regex()
        rx = re.compile(regex, re.IGNORECASE)
        for h in ("www.linkedin.com:443", "linkedin.com", "WWW.LINKEDIN.COM:443", "x.y.substack.com:443"):
            assert rx.search(h), h
        for h in ("127.0.0.1:443", "www.bank.example:443", "evil-linkedin.com:443", "www.linkedin.com.evil:443",
                  "substack.com.evil:443", "[::1]:443"):
            assert not rx.search(h), h
        # a live reload moves allow_hosts with it
        RuleStore(data).write_pack(pack_without_linkedin("9999.3"), "import")
        assert await m.addons.get("consentwatch_addons").get("rulesreloader").check()
        await asyncio.sleep(0)
        regex, _selftest = m.options.allow_hosts
        assert not re.search(regex, "www.linkedin.com:443") and regex == cw.watch.rules.allow_hosts_regex()
    finally:
        await cw.done()


@pytest.mark.parametrize("name", sorted(FIXED_OPTIONS))
async def test_run_refuses_to_widen_interception(data, name):
    with pytest.raises(RunError):
        await build_master(RunConfig(data_dir=data, sets=[f"{name}=x"]))


async def test_run_master_bad_options(data):
    with pytest.raises(RunError, match="unknown option"):
        await build_master(RunConfig(data_dir=data, sets=["nope=1"]))
    with pytest.raises(RunError, match="consentwatch_region"):
        await build_master(RunConfig(data_dir=data, sets=["consentwatch_region=Narnia"]))
    m, cw, _, _ = await build_master(RunConfig(data_dir=data, sets=["server_replay_reuse=true", "anticache=true"]))
    assert m.options.server_replay_reuse and m.options.anticache
    await cw.done()
