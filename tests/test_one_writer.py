"""One writer per data dir: a lock names the running instance; replay gets a scratch dir unless told; an
observation older than what is stored never turns into a "re-enabled" warning."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from consentwatch.findings import TOGGLE_OFF, TOGGLE_ON, TOGGLE_REENABLED, Finding, Remedy
from consentwatch.store.lock import LOCK_FILE, DataDirBusy, DataDirLock
from consentwatch.store.journal import read_stored
from consentwatch.store.state import StateStore
from consentwatch.pipeline import Watch
from conftest import LINKEDIN_URL, cli, linkedin_page, write_flow
from live_support import ROOT, consentwatch_cmd, default_recording, free_port, start_run

# -- the lock itself ------------------------------------------------------------------------------------------

def test_lock_is_exclusive_across_processes_and_says_who_holds_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from consentwatch.store.lock import DataDirLock;"
         f"l = DataDirLock({str(tmp_path)!r}).acquire(); l.note(api='http://127.0.0.1:9'); print('held', flush=True);"
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy) as e:
            DataDirLock(tmp_path).acquire()
        assert str(e.value) == f"consentwatch is already running (pid {holder.pid}, API http://127.0.0.1:9)"
        with pytest.raises(DataDirBusy):
            Watch(tmp_path)  # the store is never opened meanwhile
        assert not (tmp_path / "state.json").exists() and not (tmp_path / "state.journal").exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
    Watch(tmp_path).close()  # free again once the holder is gone


def test_a_killed_holder_leaves_no_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from consentwatch.store.lock import DataDirLock;"
         f"DataDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock with the process
    lock = DataDirLock(tmp_path).acquire()
    lock.release()


def test_lock_is_shared_within_one_process(tmp_path):
    a = Watch(tmp_path)
    b = Watch(tmp_path)  # e.g. the addon reopening its store: still one writer
    b.close()
    a.close()
    info = json.loads((tmp_path / LOCK_FILE).read_text() or "{}")
    assert info == {}  # released: no note naming a process that no longer holds it


# -- run and replay -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_second_run_and_replay_refuse_while_run_holds_the_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = start_run(data, default_recording(tmp_path))
    try:
        before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file() and p.name != LOCK_FILE}
        done = subprocess.run(consentwatch_cmd("run", "--proxy-port", str(free_port()), "--api-port",
                                               str(free_port()), "--data-dir", str(data)),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        err = done.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"consentwatch is already running (pid {first.proc.pid}, API http://127.0.0.1:{first.api_port})" in err

        on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
        r = cli("replay", "--data-dir", str(data), str(on))
        assert r.returncode == 2 and "replay refused" in r.stderr and f"pid {first.proc.pid}" in r.stderr
        assert "scratch" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        after = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file() and p.name != LOCK_FILE}
        assert after == before  # nothing written

        # mitmdump with the addon is a writer too
        mitmdump = Path(sys.executable).with_name("mitmdump")
        md = subprocess.run([str(mitmdump), "-q", "--listen-host", "127.0.0.1", "-p", str(free_port()),
                             "-s", str(ROOT / "addon" / "consentwatch_addon.py"),
                             "--set", f"consentwatch_data_dir={data}", "--set", "consentwatch_api_port=0",
                             "--set", f"confdir={tmp_path / 'conf'}"], capture_output=True, text=True, timeout=60)
        assert md.returncode != 0 and "consentwatch is already running" in md.stdout + md.stderr
    finally:
        assert first.stop() == 0
    # stopped: the data dir is free again
    again = start_run(data, None)
    assert again.stop() == 0


async def test_a_refused_start_never_touches_the_default_data_dir(tmp_path, monkeypatch):
    """When an option update fails, mitmproxy rolls back to the previous values and configures again: that
    must not open (or lock) the default data dir instead of the one asked for."""
    from consentwatch.run import RunConfig, RunError, build_master

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from consentwatch.store.lock import DataDirLock;"
         f"DataDirLock({str(data)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError) as e:
            await build_master(RunConfig(data_dir=data, proxy_port=0, api_port=0))
        assert f"consentwatch is already running (pid {holder.pid}" in str(e.value) and str(data) in str(e.value)
    finally:
        holder.stdin.close()
        holder.wait(10)
    with pytest.raises(RunError):  # a bad option, rolled back the same way
        await build_master(RunConfig(data_dir=data, proxy_port=0, api_port=0, sets=["consentwatch_max_bytes=10"]))
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_replay_without_data_dir_uses_a_scratch_dir(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
    real = home / ".local" / "share" / "consentwatch"
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    for _ in range(2):
        r = subprocess.run(consentwatch_cmd("replay", "--json", str(on)), capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        assert "scratch data dir" in r.stderr and "--data-dir" in r.stderr
        # each run starts fresh: the same recording twice is a first sighting twice, never a "re-enable"
        assert [json.loads(x)["kind"] for x in r.stdout.splitlines()] == ["toggle_on"]
    assert not real.exists()  # the user's own data dir: untouched
    scratch = Path(r.stderr.split("scratch data dir (", 1)[1].split(")", 1)[0])
    assert not scratch.exists()  # and the scratch dir is gone


def test_replay_into_a_scratch_dir_uses_your_own_rules(tmp_path):
    """The scratch dir starts with the rule database of your data dir, not only the shipped one."""
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
    from consentwatch.rules.model import shipped_pack
    from consentwatch.rules.store import RuleStore

    real = home / ".local" / "share" / "consentwatch"
    real.mkdir(parents=True)
    pack = shipped_pack()
    pack["version"] = "9999.1"
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    RuleStore(real).write_pack(pack, "import")
    before = sorted(p.name for p in real.iterdir())
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    r = subprocess.run(consentwatch_cmd("replay", str(on)), capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "no findings", r.stdout + r.stderr  # no LinkedIn rule there
    assert sorted(p.name for p in real.iterdir()) == before


# -- an old observation never re-enables -------------------------------------------------------------------

def _finding(kind: str, when: dt.datetime) -> Finding:
    return Finding(kind=kind, platform="linkedin", rule_id="linkedin.genai-training", url=LINKEDIN_URL,
                   setting="Data for Generative AI Improvement", state="on" if kind == TOGGLE_ON else "off",
                   effective_date=None, observed_at=when.isoformat(timespec="seconds"),
                   remedy=Remedy(settings_url=LINKEDIN_URL, steps=("Switch it off",)))


def test_an_older_observation_never_produces_a_reenable(tmp_path):
    t = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    store = StateStore(tmp_path)
    try:
        store.record(_finding(TOGGLE_OFF, t + dt.timedelta(days=2)))  # the newest known: off
        stale, events = store.record(_finding(TOGGLE_ON, t))  # an old recording of the page, still on
        assert stale.kind == TOGGLE_ON and events == []
        assert store.list_warnings("all") == []
        assert [h["state"] for h in store.list_history()] == ["off"]
        fresh, events = store.record(_finding(TOGGLE_ON, t + dt.timedelta(days=3)))  # really on again, later
        assert fresh.kind == TOGGLE_REENABLED and [e.type for e in events] == ["warning"]
    finally:
        store.close()


def test_replaying_an_old_recording_after_a_newer_one_raises_nothing(tmp_path, data_dir):
    off = write_flow(tmp_path / "off.flow", LINKEDIN_URL, linkedin_page(False), timestamp=1_770_000_000)
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True), timestamp=1_760_000_000)
    assert cli("replay", "--data-dir", str(data_dir), str(off)).returncode == 0
    r = cli("replay", "--json", "--fail-on-warning", "--data-dir", str(data_dir), str(on))
    assert [json.loads(x)["kind"] for x in r.stdout.splitlines()] == ["toggle_on"]
    state = read_stored(data_dir / "state.json")  # snapshot + journal
    assert [w for w in state.get("warnings", {}).values() if w["status"] == "active"] == []
