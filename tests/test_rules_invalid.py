"""Invalid rules never replace working ones.

- A running instance whose rules.json is overwritten with garbage or an invalid pack keeps the rules in force,
  says so in one line, leaves the file alone, and picks up the next valid pack.
- A start (`replay`, `run`, the CLI) with such a rules.json moves it aside as rules.json.corrupt-<timestamp>,
  says so in one line, and uses the shipped rules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from mitmproxy.test import taddons

from conftest import LINKEDIN_URL, cli, linkedin_page, write_flow
from consentwatch.addon import ConsentWatch
from consentwatch.rules.model import shipped_pack
from consentwatch.rules.store import RULES_FILE, RuleStore, RulesUnusable
from consentwatch.rules_reloader import RulesReloader
from consentwatch.pipeline import Watch
from live_support import RULE_ID, default_recording, start_run


def pack_without_linkedin(version: str) -> dict:
    pack = shipped_pack()
    pack["version"] = version
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    return pack


def invalid_pack_db() -> str:
    """A well-formed rule database whose pack fails validation (a rule without hosts, a bad regex flag...)."""
    pack = shipped_pack()
    rules = {str(i + 1): {**r, "_order": i} for i, r in enumerate(pack["rules"])}
    del rules["1"]["hosts"]
    rules["2"]["id"] = "NOT A VALID ID"
    return json.dumps({"meta": {"1": {"format": 1, "version": "6666.6", "origin": "import x"}}, "rules": rules})


BAD = {
    "garbage": b"\x00garbage{{{",
    "empty": b"",
    "not-tables": b"[1, 2, 3]",
    "deeply-nested": b"[" * 100000 + b"]" * 100000,
    "meta-not-an-object": b'{"meta": {"1": 5}, "rules": {}}',
    "no-pack": b'{"_default": {}}',
    "invalid-pack": invalid_pack_db().encode(),
}


# -- a start: moved aside, shipped rules, one line ---------------------------------------------------------

@pytest.mark.parametrize("name", list(BAD))
def test_a_start_with_a_bad_rules_json_moves_it_aside_and_uses_the_shipped_rules(data_dir, caplog, name):
    RuleStore(data_dir).write_pack(pack_without_linkedin("9999.1"), "import")
    (data_dir / RULES_FILE).write_bytes(BAD[name])
    caplog.set_level(logging.INFO, logger="consentwatch")
    rules = RuleStore(data_dir).load()
    assert rules.version == shipped_pack()["version"] and RULE_ID in rules.by_id
    [aside] = data_dir.glob("rules.json.corrupt-*")
    assert aside.read_bytes() == BAD[name]
    lines = [r for r in caplog.records if r.name.startswith("consentwatch")]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR, [r.getMessage() for r in lines]
    msg = lines[0].getMessage()
    assert "not usable" in msg and aside.name in msg and "shipped rules" in msg
    # the shipped pack is installed again: the next start is quiet
    caplog.clear()
    assert RuleStore(data_dir).load().version == rules.version and RuleStore(data_dir).meta()["origin"] == "shipped"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_read_pack_and_meta_survive_a_bad_rules_json(data_dir):
    (data_dir / RULES_FILE).write_bytes(b"garbage")
    assert RuleStore(data_dir).meta() == {}
    assert RuleStore(data_dir).read_pack()["version"] == shipped_pack()["version"]
    assert len(list(data_dir.glob("rules.json.corrupt-*"))) == 1


def test_odd_versions_compare_without_error(data_dir):
    pack = shipped_pack()
    pack["version"] = "abc"  # an old shipped pack with a version that is not numbers
    RuleStore(data_dir).write_pack(pack, "shipped")
    assert RuleStore(data_dir).load().version == shipped_pack()["version"]


# -- rules in force: kept, file left alone ------------------------------------------------------------------

def test_while_a_watch_holds_the_rules_a_bad_file_raises_on_reload_and_stays(data_dir):
    RuleStore(data_dir).write_pack(pack_without_linkedin("9999.1"), "import")
    watch = Watch(data_dir)
    try:
        assert watch.rules.version == "9999.1"
        for name, raw in BAD.items():
            (data_dir / RULES_FILE).write_bytes(raw)
            with pytest.raises(RulesUnusable, match="not a usable rule pack") as e:
                RuleStore(data_dir).reload()
            assert "\n" not in str(e.value), name
            assert (data_dir / RULES_FILE).read_bytes() == raw, name
            assert not list(data_dir.glob("*corrupt*")), name
    finally:
        watch.close()
    assert RuleStore(data_dir).load().version == shipped_pack()["version"]  # now a start: moved aside


def test_report_renders_while_run_keeps_its_rules(data_dir):
    from consentwatch.report import render_report

    watch = Watch(data_dir)
    try:
        (data_dir / RULES_FILE).write_bytes(b"garbage")
        ctype, text = render_report(data_dir, "json")
        assert ctype == "application/json" and json.loads(text)
    finally:
        watch.close()


async def test_live_reload_keeps_the_rules_in_force_and_says_so_once(data_dir, caplog):
    caplog.set_level(logging.INFO, logger="consentwatch")
    cw = ConsentWatch()
    reloader = RulesReloader(cw, every=0.02)
    heard = []
    cw.rule_listeners.append(heard.append)
    with taddons.context(cw, reloader) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(data_dir))
        reloader.running()
        try:
            await asyncio.to_thread(RuleStore(data_dir).write_pack, pack_without_linkedin("9999.1"), "import")
            await wait_for(lambda: cw.watch.rules.version == "9999.1")
            for name in ("garbage", "invalid-pack"):
                before = len(heard)
                caplog.clear()
                (data_dir / RULES_FILE).write_bytes(BAD[name])
                await asyncio.sleep(0.3)  # many reload checks
                assert cw.watch.rules.version == "9999.1" and len(heard) == before, name
                kept = [r.getMessage() for r in caplog.records if "keeping the rules in force" in r.getMessage()]
                assert len(kept) == 1 and "rules.json is not a usable rule pack" in kept[0], (name, kept)
                assert not [r for r in caplog.records if "reloaded" in r.getMessage()]
                assert (data_dir / RULES_FILE).read_bytes() == BAD[name]
            # the next valid pack is picked up as usual
            await asyncio.to_thread(RuleStore(data_dir).write_pack, pack_without_linkedin("9999.2"), "import")
            await wait_for(lambda: cw.watch.rules.version == "9999.2")
        finally:
            reloader.done()
            await cw.done()


async def wait_for(cond, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- end to end: a real `consentwatch run`, then `consentwatch replay` with the same data dir --------------

@pytest.mark.slow
def test_run_keeps_its_rules_then_replay_falls_back_to_the_shipped_ones(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    r = start_run(data, default_recording(tmp_path))
    auth = {"Authorization": f"Bearer {r.token}"}

    def version() -> str:
        return json.loads(r.get("/v1/rules", auth)[2])["version"]

    try:
        RuleStore(data).write_pack(pack_without_linkedin("9999.1"), "import")  # what `rules import` does
        deadline = time.monotonic() + 10
        while version() != "9999.1":
            assert time.monotonic() < deadline, r.output()
            time.sleep(0.05)
        (data / RULES_FILE).write_bytes(BAD["garbage"])
        time.sleep(2.5)  # a reload check (every 2 s) sees it
        (data / RULES_FILE).write_bytes(BAD["invalid-pack"])
        time.sleep(2.5)
        assert version() == "9999.1"
        health = json.loads(r.get("/v1/health")[2])
        assert health["status"] == "ok" and health["rules_version"] == "9999.1"
    finally:
        assert r.stop() == 0
    out = r.output()
    kept = [line for line in out.splitlines() if "keeping the rules in force" in line]
    assert len(kept) == 2 and all("rules.json is not a usable rule pack" in line for line in kept), out
    assert "Traceback" not in out and "rules reloaded: pack 2" not in out
    assert (data / RULES_FILE).read_bytes() == BAD["invalid-pack"]  # left for the user to see

    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    res = cli("replay", "--json", "--data-dir", str(data), str(on))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["rule_id"] == RULE_ID  # the shipped rules (9999.1 had no LinkedIn rule)
    [aside] = data.glob("rules.json.corrupt-*")
    assert aside.read_bytes() == BAD["invalid-pack"]
    assert "moved aside to rules.json.corrupt-" in res.stderr and res.stderr.count("not usable") == 1
