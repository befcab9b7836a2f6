"""A real `consentwatch demo` subprocess for the tests: start, read what it printed, curl through it, stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_PROXY_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class Demo:
    def __init__(self, tmp: Path, *args: str, home: Path | None = None):
        self.home = home or tmp / "home-data"
        self.log = tmp / f"demo-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "consentwatch.cli", "demo", "--data-dir",
                                          str(self.home), *args], stdout=out, stderr=subprocess.STDOUT,
                                         env=NO_PROXY_ENV, cwd=ROOT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if "Warnings so far:" in out:
                return out
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited with {self.proc.returncode}:\n{out}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"demo did not start:\n{self.output()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def port(self, what: str) -> int:
        pattern = {"proxy": r"Proxy:\s+127\.0\.0\.1:(\d+)", "api": r"API:\s+http://127\.0\.0\.1:(\d+)"}[what]
        return int(re.search(pattern, self.output()).group(1))

    def opened(self) -> list[str]:
        block = self.output().split("Open:\n", 1)[1].split("Warnings so far:", 1)[0]
        return re.findall(r"(https://\S+)", block)

    def curl(self, url: str, *extra: str) -> subprocess.CompletedProcess:
        ca = self.home / "ca" / "consentwatch-ca-cert.pem"  # trusted: no -k
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", f"http://127.0.0.1:{self.port('proxy')}",
                               "--cacert", str(ca), *extra, url], capture_output=True, timeout=30, env=NO_PROXY_ENV)
