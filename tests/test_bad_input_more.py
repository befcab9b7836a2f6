"""Bad input, the remaining cases: one clear line, nothing lost, no traceback, nothing printed raw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consentwatch.api.app import Api, build_app
from consentwatch.api.hub import Hub
from consentwatch.rule_tests import test_rules as run_rule_tests
from consentwatch.rules.model import load_pack, shipped_pack, validate_pack
from consentwatch.token import get_token
from consentwatch.pipeline import Watch
from conftest import LINKEDIN_URL, cli, linkedin_page, write_flow
from live_support import SETTINGS_URL, consentwatch_cmd, default_recording, free_port, settings_html
from test_rules_cli import new_rule, write_pack

# -- state.json: valid JSON, wrong types -----------------------------------------------------------------------

GOOD_WARNING = {"id": "w-1", "key": "linkedin.genai-training:toggle", "kind": "toggle_on", "status": "active",
                "rule_id": "linkedin.genai-training", "first_seen": "2026-11-01T10:00:00+00:00",
                "last_seen": "2026-11-01T10:00:00+00:00"}
WRONG_SHAPES = {
    "warning-not-an-object": {"warnings": {"1": "a string"}},
    "key-is-a-number": {"warnings": {"1": {**GOOD_WARNING, "key": 5}}},
    "status-is-a-list": {"warnings": {"1": {**GOOD_WARNING, "status": ["active"]}}},
    "unknown-status": {"warnings": {"1": {**GOOD_WARNING, "status": "exploded"}}},
    "first-seen-is-a-number": {"warnings": {"1": {**GOOD_WARNING, "first_seen": 1700000000}}},
    "remedy-is-a-string": {"warnings": {"1": {**GOOD_WARNING, "remedy": "steps"}}},
    "history-state-missing": {"history": {"1": {"rule_id": "linkedin.genai-training", "observed_at": "x"}}},
    "history-rule-id-null": {"history": {"1": {"rule_id": None, "state": "on", "observed_at": "x"}}},
    "doc-id-not-a-number": {"warnings": {"abc": GOOD_WARNING}},
}


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
async def test_state_of_the_wrong_shape_is_set_aside_and_the_api_answers(tmp_path, name, caplog):
    data = tmp_path / "data"
    data.mkdir()
    raw = json.dumps(WRONG_SHAPES[name]).encode()
    (data / "state.json").write_bytes(raw)
    watch = Watch(data)
    try:
        [aside] = data.glob("state.json.corrupt-*")
        assert aside.read_bytes() == raw  # kept for the user, byte for byte
        assert any("wrong shape" in r.getMessage() for r in caplog.records)
        token = get_token(data)
        client = TestClient(TestServer(build_app(Api(lambda: watch, Hub(ping_every=0), lambda: token, lambda: 8080)),
                                       host="127.0.0.1"))
        await client.start_server()
        try:
            auth = {"Authorization": f"Bearer {token}"}
            for status in ("active", "all"):
                r = await client.get(f"/v1/warnings?status={status}", headers=auth)
                assert r.status == 200 and (await r.json())["warnings"] == []
            r = await client.get("/report?format=json", headers=auth)
            assert r.status == 200
            # and the store works again: a real finding is stored and served
            t = threading.Thread(target=watch.process, args=(SETTINGS_URL, "text/html", settings_html(True)),
                                 kwargs={"host": "www.linkedin.com"})
            t.start()
            t.join()
            r = await client.get("/v1/warnings", headers=auth)
            assert [w["rule_id"] for w in (await r.json())["warnings"]] == ["linkedin.genai-training"]
        finally:
            await client.close()
    finally:
        watch.close()


def test_state_of_the_wrong_shape_replay_goes_on(tmp_path, data_dir):
    (data_dir / "state.json").write_text(json.dumps(WRONG_SHAPES["key-is-a-number"]))
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(on))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["kind"] == "toggle_on" and "moved aside" in r.stderr
    r = cli("report", "--format", "json", "--data-dir", str(data_dir))
    assert r.returncode == 0 and "Traceback" not in r.stderr


# -- a deeply nested pack ------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [900, 5_000, 200_000])
def test_deeply_nested_pack_is_one_line_not_a_traceback(tmp_path, data_dir, depth):
    f = tmp_path / "deep.json"
    f.write_text('{"format": 1, "version": "1", "rules": [{"id": ' + "[" * depth + "]" * depth + "}]}")
    for args, codes in ((["validate", str(f)], (1, 2)),
                        (["import", str(f), "--allow-unsigned", "--data-dir", str(data_dir)], (2,)),
                        (["test", "--pack", str(f)], (2,)),
                        (["diff", str(f), "@shipped"], (2,)),
                        (["sign", "--key", str(tmp_path / "no.key"), str(f)], (2,))):
        r = cli("rules", *args)
        assert r.returncode in codes, (args, r.returncode, r.stderr[-500:])
        out = r.stdout + r.stderr
        assert "Traceback" not in out and "RecursionError" not in out, (args, out[-2000:])
        assert all(len(line) < 600 for line in out.splitlines()), args  # no line repeats the hostile value
        err = [x for x in r.stderr.splitlines() if x.startswith("consentwatch:")]
        assert len(err) == 1, (args, r.stderr[-1000:])


def test_nested_too_deep_for_the_validator_is_one_error():
    deep = {"format": 1, "version": "1", "rules": []}
    node: list = deep["rules"]
    for _ in range(5_000):  # a Python object deeper than the validator recurses
        inner: list = []
        node.append(inner)
        node = inner
    errors = validate_pack(deep)
    assert len(errors) >= 1 and all(len(e) < 600 for e in errors)


# -- escape codes in pack fields and file names ---------------------------------------------------------------

ESC = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"


def test_escape_codes_in_pack_fields_and_file_names_are_never_printed_raw(tmp_path, data_dir):
    pack = shipped_pack()
    pack["version"] = f"2099.1{ESC}"
    pack["description"] = f"evil{ESC}"
    rule = new_rule()
    rule["title"] = f"Example{ESC}"
    pack["rules"].append(rule)
    name = tmp_path / f"pack{ESC.replace(chr(7), '')}.json"
    write_pack(name, pack)
    runs = [
        cli("rules", "validate", str(name)),
        cli("rules", "import", str(name), "--allow-unsigned", "--data-dir", str(data_dir)),
        cli("rules", "list", "--data-dir", str(data_dir)),
        cli("rules", "list", "--json", "--data-dir", str(data_dir)),
        cli("rules", "show", "example.ai-training", "--data-dir", str(data_dir)),
        cli("rules", "diff", "@shipped", str(name)),
        cli("rules", "diff", "--json", "@shipped", str(name)),
        cli("rules", "validate", str(tmp_path / f"missing{ESC}.json")),
        cli("replay", "--data-dir", str(data_dir), str(tmp_path / f"missing{ESC}.flow")),
    ]
    assert runs[1].returncode == 0, runs[1].stderr
    for r in runs:
        out = r.stdout + r.stderr
        assert "Traceback" not in out, out
        for ch in "\x1b\x07\x9b\u202e":
            assert ch not in out, (r.args, repr(out[:400]))
    assert "2099.1\\u001b[2J" in runs[1].stdout or "2099.1\\x1b[2J" in runs[1].stdout  # shown, not obeyed
    # JSON output stays JSON, with the same data
    assert json.loads(runs[4].stdout)["title"] == f"Example{ESC}"
    listed = json.loads(runs[3].stdout)
    assert next(x for x in listed if x["id"] == "example.ai-training")["title"] == f"Example{ESC}"


def test_escape_codes_in_log_lines_are_shown_not_obeyed(tmp_path):
    bad_dir = tmp_path / f"d{ESC}"
    bad_dir.mkdir()
    (bad_dir / "state.json").write_text("{not json")
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    r = cli("replay", "--data-dir", str(bad_dir), str(on))
    assert r.returncode == 0 and "moved aside" in r.stderr
    assert "\x1b" not in r.stderr and "\\x1b[2J" in r.stderr


# -- fixture paths ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["../../outside.flow", "/etc/outside.flow", "linkedin/../../outside.flow"])
def test_fixture_path_cannot_leave_the_fixtures_folder(tmp_path, path):
    pack = shipped_pack()
    rule = new_rule()
    rule["fixtures"] = [{"file": path, "expect": ["toggle_on"]}]
    pack["rules"].append(rule)
    assert any("fixtures/0/file" in e and "fixtures folder" in e for e in validate_pack(pack))
    f = write_pack(tmp_path / "p.json", pack)
    r = cli("rules", "validate", str(f))
    assert r.returncode == 1 and "fixtures folder" in r.stdout


def test_rules_test_never_reads_outside_the_fixtures_folder(tmp_path):
    """Even a pack that skipped validation (or a symlink in the folder) cannot make `rules test` read
    another file: the path is checked where it is opened."""
    base = tmp_path / "fixtures"
    (base / "example").mkdir(parents=True)
    outside = write_flow(tmp_path / "outside.flow", "https://www.example.org/settings/ai", b"<html>secret</html>")
    (base / "example" / "link.flow").symlink_to(outside)
    pack = shipped_pack()
    pack["rules"] = [new_rule()]
    rules = load_pack(pack)
    for path in ("../outside.flow", "example/link.flow", str(outside)):
        pack["rules"][0]["fixtures"] = [{"file": path, "expect": ["toggle_on"]}]
        [result] = run_rule_tests(pack, rules, None, base)
        assert result.status == "FAIL" and result.fixtures[0].problem == "the fixture path leaves the fixtures folder"


# -- replay: nothing saved, exit non-zero ---------------------------------------------------------------------

def test_replay_exits_non_zero_when_nothing_could_be_saved(tmp_path, data_dir):
    # the store's files cannot be written: directories in their place (the snapshot and its journal)
    (data_dir / "state.json").mkdir()
    (data_dir / "state.journal").mkdir()
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(on))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert json.loads(r.stdout.splitlines()[0])["kind"] == "toggle_on"  # what was found is still shown
    assert "could not be saved" in r.stderr and "Traceback" not in r.stderr


# -- --region ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("region", ["ZZ", "XX", "AA", "EUR", "D"])
def test_region_must_be_a_real_code(tmp_path, region):
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    r = cli("replay", "--region", region, "--data-dir", str(tmp_path / "d"), str(on))
    assert r.returncode == 2 and "ISO country code" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert cli("replay", "--region", "ch", "--data-dir", str(tmp_path / "d"), str(on)).returncode == 0


# -- Ctrl+C ------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["running", "starting"])
def test_ctrl_c_stops_run_and_its_worker_without_a_traceback(tmp_path, when, sig):
    """SIGINT to the whole process group, as a terminal sends it (SIGTERM too, as `timeout` and service managers
    send it): the worker process gets it too, and its end is no death to report or restart it after."""
    data = tmp_path / "data"
    data.mkdir()
    log_path = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(consentwatch_cmd("run", "--proxy-port", str(free_port()), "--api-port",
                                                 str(free_port()), "--data-dir", str(data),
                                                 "--set", f"server_replay={default_recording(tmp_path)}"),
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "is running" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.02)
        if when == "running":
            time.sleep(1.0)  # the detection worker is up and waiting for pages
        os.killpg(proc.pid, sig)
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log_path.read_text(errors="replace")
    assert code == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "detection worker stopped" not in out, out
