"""kill -9 in a loop while the store writes: it always loads, and no announced warning is lost."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from consentwatch.store.state import StateStore

WRITER = r"""
import sys
from consentwatch.findings import Finding, Remedy
from consentwatch.store.state import StateStore
s = StateStore(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 100000):
    f = Finding(kind="policy_update", platform="linkedin", rule_id=f"linkedin.rule-{i}",
                url="https://www.linkedin.com/p", setting="s", observed_at="2026-01-01T00:00:00+00:00",
                remedy=Remedy(None, ()))
    _, events = s.record(f)
    for e in events:
        # announced only after record() returned, i.e. after the write
        print(e.warning["id"], flush=True)
"""


def test_kill_9_loop_loses_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    announced: set[str] = set()
    rnd = random.Random(1)
    start = 0
    for round_ in range(12):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(start)], stdout=subprocess.PIPE, text=True)
        # let it write for a random while, then kill it mid-stride
        deadline = time.monotonic() + rnd.uniform(0.3, 0.9)
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            announced.add(line.strip())
        os.kill(p.pid, signal.SIGKILL)
        rest = p.stdout.read()
        announced.update(x for x in rest.split() if x)
        p.wait()
        start += 100000
        store = StateStore(data)  # must load, whole
        on_disk = {w["id"] for w in store.list_warnings("all")}
        store.close()
        missing = announced - on_disk
        assert not missing, f"round {round_}: {len(missing)} announced warnings lost"
        assert not list(data.glob("*corrupt*")), "a kill -9 corrupted the store"
        json.loads((data / "state.json").read_text())
    assert len(announced) > 50
    # a killed writer may leave its temp file; the next open sweeps it away
    assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]
