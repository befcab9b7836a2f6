"""Helpers for the browser tests (imported by conftest.py and the tests): paths, the CI rule for missing
prerequisites, the extension-in-Chromium handle and the real `consentwatch run` process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import missing_prerequisite as missing  # noqa: F401 - the tests' one rule: fail under CI, else skip

REPO = Path(__file__).resolve().parents[2]
EXT_DIR = REPO / "extension"
ARTIFACTS = REPO / "tests" / "artifacts"
FIXTURES = REPO / "tests" / "fixtures"

# Blocks every DNS lookup in the browser: nothing can leave the machine, and a host that is *not* sent to
# the proxy fails fast with ERR_NAME_NOT_RESOLVED (how the PAC test tells DIRECT from PROXY).
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    """Polls predicate() until it returns a truthy value; returns it, or fails with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


def find_chromium() -> str | None:
    for cand in (os.environ.get("CONSENTWATCH_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


class ExtBrowser:
    """One Chromium profile with the extension loaded, plus helpers that act as the tests' hands."""

    def __init__(self, context, ext_id: str):
        self.context = context
        self.ext_id = ext_id

    @property
    def origin(self) -> str:
        return f"chrome-extension://{self.ext_id}"

    @property
    def worker(self):
        for sw in self.context.service_workers:
            if sw.url.startswith(self.origin + "/"):
                return sw
        return self.context.wait_for_event("serviceworker", predicate=lambda w: w.url.startswith(self.origin + "/"),
                                           timeout=15_000)

    def eval(self, js: str, arg=None):
        return self.worker.evaluate(js, arg)

    def pair(self, api_base: str, token: str) -> None:
        self.eval("([apiBase, token]) => chrome.storage.local.set({apiBase, token})", [api_base, token])

    def unpair(self) -> None:
        self.eval("() => chrome.storage.local.remove(['apiBase', 'token'])")

    def badge(self) -> str:
        return self.eval("() => chrome.action.getBadgeText({})")

    def wait_badge(self, expected: str, timeout: float = 20.0) -> None:
        wait_until(lambda: self.badge() == expected, timeout, what=f"badge {expected!r} (now {self.badge()!r})")

    def state(self) -> dict:
        return self.eval("() => chrome.storage.session.get('cwState').then(r => r.cwState || {})")

    def wait_conn(self, conn: str, timeout: float = 20.0) -> dict:
        return wait_until(lambda: (s := self.state()).get("conn") == conn and s, timeout, what=f"conn={conn}")

    def open_page(self, path: str, width: int = 380, height: int = 640):
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{self.origin}/{path}")
        return page

    def open_popup(self, height: int = 640):
        return self.open_page("popup.html", 380, height)


def consentwatch_bin() -> Path:
    return Path(sys.executable).parent / "consentwatch"


def consentwatch_run_available() -> tuple[bool, str]:
    exe = consentwatch_bin()
    if not exe.exists():
        return False, f"{exe} does not exist (make install)"
    try:
        out = subprocess.run([str(exe), "run", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`consentwatch run --help` failed: {e}"
    if out.returncode != 0:
        return False, f"`consentwatch run --help` exited {out.returncode}: {(out.stderr or out.stdout).strip()[-300:]}"
    return True, ""


class ConsentwatchRun:
    """The real `consentwatch run` (proxy + API in one process) replaying a recorded .flow offline."""

    def __init__(self, flow: Path, data_dir: Path, log_path: Path, extra: list[str] | None = None):
        self.flow = flow
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra = extra or []
        self.proxy_port = free_port()
        self.api_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 60.0) -> "ConsentwatchRun":
        cmd = [
            str(consentwatch_bin()), "run",
            "--proxy-port", str(self.proxy_port), "--api-port", str(self.api_port), "--data-dir", str(self.data_dir),
            "--set", f"server_replay={self.flow}", "--set", "server_replay_reuse=true",
            "--set", "server_replay_extra=kill", "--set", "connection_strategy=lazy", "--set", "keepserving=true",
            *self.extra,
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._log.write(f"\n$ {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"consentwatch run exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                health = self.get("/v1/health", auth=False)
                if health.get("status") == "ok" and self._proxy_listening():
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise AssertionError(f"consentwatch run did not answer /v1/health within {timeout:.0f}s:\n{self.log_tail()}")
        if self.token is None:
            out = subprocess.run([str(consentwatch_bin()), "token", "--data-dir", str(self.data_dir)],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, f"consentwatch token failed: {out.stderr}"
            self.token = out.stdout.strip().splitlines()[-1].strip()
        return self

    def _proxy_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.proxy_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def request(self, method: str, path: str, auth: bool = True, origin: str | None = None):
        req = urllib.request.Request(self.base + path, method=method)
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if origin:
            req.add_header("Origin", origin)
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read().decode()
            ctype = resp.headers.get("Content-Type", "")
        return json.loads(body) if "json" in ctype else body

    def get(self, path: str, auth: bool = True):
        return self.request("GET", path, auth=auth)

    def warnings(self, status: str = "active") -> list[dict]:
        return self.get(f"/v1/warnings?status={status}")["warnings"]


def fixture_flow(rel: str) -> Path:
    """A recorded fixture under tests/fixtures/. CONSENTWATCH_E2E_FLOW=/path/x.flow replaces the LinkedIn one
    (to run the end-to-end tests against another recording of the same page)."""
    override = os.environ.get("CONSENTWATCH_E2E_FLOW")
    path = Path(override) if override and rel.startswith("linkedin/") else FIXTURES / rel
    if not path.exists():
        missing(f"recorded fixture {path} is missing (make fixtures)")
    return path


def html_urls_in_flow(path: Path) -> list[str]:
    """The recorded page URLs (HTML responses) in a mitmproxy .flow file, in recording order."""
    from mitmproxy import http
    from mitmproxy import io as mio

    urls = []
    with open(path, "rb") as fh:
        for flow in mio.FlowReader(fh).stream():
            if isinstance(flow, http.HTTPFlow) and flow.response is not None:
                if "html" in flow.response.headers.get("content-type", "") and flow.request.method == "GET":
                    urls.append(flow.request.pretty_url)
    return urls
