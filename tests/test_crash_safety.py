"""kill -9 in a loop while the store writes (appends, and compactions): it always loads, and nothing announced
is lost."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from consentwatch.store.journal import HEADER_LINE
from consentwatch.store.state import StateStore

WRITER = r"""
import datetime as dt, sys
import consentwatch.store.journal as journal
from consentwatch.findings import Finding, Remedy
from consentwatch.store.state import StateStore
journal.COMPACT_MIN_BYTES = int(sys.argv[3])  # small: kills land in compactions too
s = StateStore(sys.argv[1])
start = int(sys.argv[2])
t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
for i in range(start, start + 100000):
    at = (t0 + dt.timedelta(seconds=i)).isoformat()
    if i % 3:
        f = Finding(kind="policy_update", platform="linkedin", rule_id=f"linkedin.rule-{i}",
                    url="https://www.linkedin.com/p", setting="s", observed_at=at, remedy=Remedy(None, ()))
    else:  # a state change of one of a few settings: a history entry and an update of its warning
        state = "on" if i % 2 else "off"
        f = Finding(kind="toggle_" + state, platform="linkedin", rule_id=f"linkedin.toggle-{i % 7}",
                    url="https://www.linkedin.com/t", setting="s", state=state, observed_at=at,
                    remedy=Remedy(None, ()))
    _, events = s.record(f)
    for e in events:
        # announced only after record() returned, i.e. after the write
        print(e.warning["id"], f.kind.startswith("toggle"), flush=True)
"""

@pytest.mark.parametrize("compact_min", [4 << 20, 20_000], ids=["journal", "compacting"])
def test_kill_9_loop_loses_nothing(tmp_path, compact_min):
    data = tmp_path / "data"
    data.mkdir()
    announced: set[str] = set()
    toggles = 0  # announced state changes: each one came with a history entry in the same commit
    rnd = random.Random(1)
    start = 0
    for round_ in range(12):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(start), str(compact_min)],
                             stdout=subprocess.PIPE, text=True)
        lines = []
        # let it write for a random while, then kill it mid-stride
        deadline = time.monotonic() + rnd.uniform(0.3, 0.9)
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
        os.kill(p.pid, signal.SIGKILL)
        lines += p.stdout.read().splitlines()
        p.wait()
        for line in lines:
            if line.strip():
                wid, toggle = line.split()
                announced.add(wid)
                toggles += toggle == "True"
        start += 100000
        assert not list(data.glob("*corrupt*")), "a kill -9 corrupted the store"
        store = StateStore(data)  # must load, whole (and folds the journal into a new snapshot)
        on_disk = {w["id"] for w in store.list_warnings("all")}
        history = len(store.list_history())
        store.close()
        missing = announced - on_disk
        assert not missing, f"round {round_}: {len(missing)} announced warnings lost"
        assert history >= toggles, f"round {round_}: {toggles - history} announced state changes lost"
        assert not list(data.glob("*corrupt*")), "a kill -9 corrupted the store"
        json.loads((data / "state.json").read_text())
        assert (data / "state.journal").read_bytes() == HEADER_LINE
    assert len(announced) > 50 and toggles > 10
    # a killed writer may leave its temp file; the next open sweeps it away
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]
