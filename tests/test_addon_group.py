"""AddonGroup: consentwatch's addons as one entry in mitmproxy's chain, each hook handed to the parts that have it."""

import asyncio
import logging
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.hooks import DoneHook, all_hooks
from mitmproxy.addonmanager import traverse
from mitmproxy.addons.script import load_script
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.test import taddons, tflow

from consentwatch.assembly import AddonGroup, default_addons
from consentwatch.run import RunConfig, build_master
from consentwatch.selftest import SelfTest
from live_support import free_port


class Recorder:
    def __init__(self, name, calls, fail=None):
        self.name, self.calls, self.fail = name, calls, fail

    def configure(self, updated):
        self.calls.append((self.name, "configure"))
        if self.fail == "configure":
            raise exceptions.OptionsError(f"{self.name} refuses")

    async def done(self):
        await asyncio.sleep(0)
        self.calls.append((self.name, "done"))
        if self.fail == "done":
            raise RuntimeError(f"{self.name} broke")


class SyncDone:
    def __init__(self, calls):
        self.calls = calls

    def done(self):
        self.calls.append(("sync", "done"))

    def response(self, flow):
        self.calls.append(("sync", "response"))


def test_the_group_has_only_the_hooks_its_parts_have():
    group = AddonGroup(*default_addons())
    present = {h for h in all_hooks if hasattr(group, h)}
    assert present == {h for h in all_hooks if any(callable(getattr(p, h, None)) for p in group.parts)}
    assert {"load", "configure", "running", "done", "response"} <= present
    assert not present & {"requestheaders", "responseheaders", "client_connected", "server_connect", "update"}
    # a hook only one part has is that part's own method: nothing in between
    single = [(h, owners[0]) for h in present
              if len(owners := [p for p in group.parts if callable(getattr(p, h, None))]) == 1]
    assert single
    for hook, part in single:
        assert getattr(group, hook) == getattr(part, hook)
    assert not hasattr(group, "addons")  # mitmproxy does not walk into it on every event


async def test_each_hook_reaches_the_parts_that_have_it_in_order(caplog):
    calls = []
    group = AddonGroup(Recorder("a", calls, fail="done"), SyncDone(calls), Recorder("b", calls))
    with taddons.context(group) as tctx:
        tctx.configure(group, listen_port=1)
        assert calls == [("a", "configure"), ("b", "configure")]
        calls.clear()
        await tctx.master.addons.handle_lifecycle(http_layer.HttpResponseHook(tflow.tflow(resp=True)))
        assert calls == [("sync", "response")]
        calls.clear()
        await tctx.master.addons.trigger_event(DoneHook())
        # a's error is logged as mitmproxy logs an addon's, and the parts after it still run
        assert calls == [("a", "done"), ("sync", "done"), ("b", "done")]
        assert "a broke" in caplog.text


async def test_a_sync_hook_that_fails_is_logged_and_the_next_part_still_runs(caplog):
    calls = []

    class Broken:
        def response(self, flow):
            calls.append("broken")
            raise ValueError("broken part")

    class Halting:
        def response(self, flow):
            calls.append("halting")
            raise exceptions.AddonHalt()

    group = AddonGroup(Broken(), SyncDone(calls))
    with taddons.context(group) as tctx:
        await tctx.master.addons.handle_lifecycle(http_layer.HttpResponseHook(tflow.tflow(resp=True)))
    assert calls == ["broken", ("sync", "response")]
    assert "Addon error: broken part" in caplog.text and "ValueError" in caplog.text
    calls.clear()
    with pytest.raises(exceptions.AddonHalt):  # goes through the group, as from an addon of its own
        AddonGroup(Halting(), SyncDone(calls)).response(tflow.tflow(resp=True))
    assert calls == ["halting"]


def test_options_error_goes_through_and_stops_the_rest():
    calls = []
    group = AddonGroup(Recorder("a", calls, fail="configure"), Recorder("b", calls))
    with taddons.context(group) as tctx:
        with pytest.raises(exceptions.OptionsError, match="a refuses"):
            tctx.configure(group, listen_port=1)
    assert calls and set(calls) == {("a", "configure")}  # (again for the rollback) and b never


SCRIPT = Path(__file__).resolve().parents[1] / "addon" / "consentwatch_addon.py"


def test_the_script_module_is_the_group_and_the_walk_stops_there():
    """mitmproxy walks script -> module -> the module's `addons` on every event: the script's module carries the
    group's hooks itself and has no `addons`, so the walk ends at it, and the module keeps up when a part's
    hooks change (the capture recorder's response hook comes and goes)."""
    module = load_script(str(SCRIPT))
    group = module.group
    assert isinstance(group, AddonGroup) and isinstance(group.parts[0], SelfTest)
    assert list(traverse([module])) == [module] and not hasattr(module, "addons")
    assert {h for h in all_hooks if callable(getattr(module, h, None))} == \
        {h for h in all_hooks if hasattr(group, h)}
    for hook in all_hooks:
        assert getattr(module, hook, None) is getattr(group, hook, None)
    # found by name as the group is under `consentwatch run`
    assert module.name == "consentwatch_addons" and module.get("apiserver") is group.get("apiserver") is not None
    recorder = group.get("capturerecorder")
    detection = group.get("consentwatch")
    assert module.response == detection.response  # no capture: nothing in between
    recorder._listen(True)
    assert module.response is group.response and module.response != detection.response
    recorder._listen(False)
    assert module.response == detection.response


async def test_run_puts_one_entry_in_the_chain(data_dir):
    data = data_dir
    m, cw, api, hosts = await build_master(RunConfig(data_dir=data, proxy_port=free_port(), api_port=0))
    try:
        ours = [a for a in m.addons.chain if a.__class__.__module__.startswith("consentwatch")]
        # the self-test first (it must answer before mitmproxy's server replay), then everything else as one
        assert [type(a) for a in ours] == [SelfTest, AddonGroup]
        assert cw in ours[1].parts and api in ours[1].parts and hosts not in m.addons.chain
        assert len(list(traverse([ours[1]]))) == 1
    finally:
        await cw.done()
        await api.stop()


def test_a_group_logs_nothing_by_being_there(caplog):
    caplog.set_level(logging.DEBUG)
    AddonGroup(*default_addons())
    assert caplog.text == ""
