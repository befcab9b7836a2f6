"""`make bench`: every benchmark in one go, each printing its own table.

detect.py   detection time per page (120 KB, 1.5 MB; first view and seen before) and the no-rule fast path
            with 20 / 1,000 / 10,000 rules
replay.py   replay throughput (flows/s)
latency.py  flow-to-WebSocket latency through a real `consentwatch run` (p50/p99)
proxy.py    throughput ratios against plain mitmproxy under wrk, reverse and regular mode, side by side,
            and how long the proxy's event loop was blocked
store.py    the warning store's cost per commit (time, CPU, memory) at 10 / 1,000 / 100,000 stored items,
            the whole-file store before the journal against the journal
page_eye.py the extension's page eye in Chromium: content-script CPU per mutation batch on a 10,000-element
            feed page, observation -> WebSocket and switch flip -> badge latency
"""

import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent

# what the figures were measured with: the README's tables say the same
load = " ".join(f"{x:.1f}" for x in os.getloadavg())
print(f"consentwatch {version('consentwatch')}, mitmproxy {version('mitmproxy')}, tinydb {version('tinydb')}, "
      f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
      f"load average {load} (other work on the machine makes throughput noisy)", flush=True)

for script, args in (("detect.py", []), ("replay.py", []), ("latency.py", []), ("store.py", []),
                     ("page_eye.py", []),
                     ("proxy.py", ["--rounds", "5"])):
    print(f"\n=== bench/{script} ===", flush=True)
    code = subprocess.call([sys.executable, str(HERE / script), *args])
    if code:
        sys.exit(code)
