"""Helpers for the live tests: a recorded LinkedIn settings page, free ports, a real `consentwatch run` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS_PATH = "/mypreferences/d/settings/data-for-ai-improvement"
SETTINGS_URL = "https://www.linkedin.com" + SETTINGS_PATH
OFF_URL = "https://www.linkedin.com/mypreferences/m/settings/data-for-ai-improvement"
RULE_ID = "linkedin.genai-training"
EXT_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


def settings_html(on: bool) -> bytes:
    checked = " checked" if on else ""
    return ('<html><head><title>Data for Generative AI Improvement</title></head><body>'
            '<h1>Data for Generative AI Improvement</h1>'
            '<label for="t">Use my data for training content creation AI models</label>'
            f'<input id="t" type="checkbox"{checked}></body></html>').encode()


def write_flows(path: Path, pages: list[tuple[str, bytes]]) -> Path:
    """Recorded HTTPS flows (as `mitmdump -w` writes them), built with mitmproxy's own test helpers."""
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    with open(path, "wb") as fo:
        w = io.FlowWriter(fo)
        for url, body in pages:
            f = tflow.tflow(resp=True)
            f.request = http.Request.make("GET", url)
            f.response = http.Response.make(200, body, {"content-type": "text/html; charset=utf-8"})
            w.add(f)
    return path


def default_recording(tmp: Path) -> Path:
    return write_flows(tmp / "linkedin.flow", [(SETTINGS_URL, settings_html(True)), (OFF_URL, settings_html(False))])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPLAY_SETS = ["server_replay_reuse=true", "server_replay_extra=kill", "connection_strategy=lazy", "keepserving=true"]


def consentwatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "consentwatch.cli", *args]


@dataclass
class Running:
    proc: subprocess.Popen
    data_dir: Path
    proxy_port: int
    api_port: int
    token: str
    log_path: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def get(self, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
        return http_request(self.api + path, headers, method)


def http_request(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy from the env
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def start_run(data_dir: Path, recording: Path | None, *extra: str, api_port: int | None = None,
              proxy_port: int | None = None, wait: bool = True) -> Running:
    proxy_port = proxy_port or free_port()
    api_port = api_port or free_port()
    args = ["run", "--proxy-port", str(proxy_port), "--api-port", str(api_port), "--data-dir", str(data_dir)]
    if recording is not None:
        args += ["--set", f"server_replay={recording}"]
        for s in REPLAY_SETS:
            args += ["--set", s]
    args += list(extra)
    log_path = data_dir.parent / f"run-{proxy_port}.log"
    log = open(log_path, "wb")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(consentwatch_cmd(*args), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    log.close()
    r = Running(proc, data_dir, proxy_port, api_port, "", log_path)
    if wait:
        wait_ready(r)
        r.token = (data_dir / "token").read_text().strip()
    return r


def wait_ready(r: Running, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            raise AssertionError(f"consentwatch run exited with {r.proc.returncode}:\n{r.output()}")
        try:
            status, _, body = r.get("/v1/health")
            if status == 200 and json.loads(body)["status"] == "ok" and "is running" in r.output():
                return
        except OSError:
            pass
        time.sleep(0.05)
    r.proc.kill()
    raise AssertionError(f"consentwatch run did not come up:\n{r.output()}")


def curl(proxy: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    """A real HTTPS request through the proxy (-k: the test does not install the CA)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run(["curl", "-sS", "-k", "--max-time", "10", "--proxy", proxy, *extra, url],
                          capture_output=True, timeout=20, env=env)


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hexaddr, hexport = local.split(":")
            found.append((_addr(hexaddr, v6), int(hexport, 16)))
    return found


def _addr(hexaddr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if not v6:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc prints the address as four host-order 32-bit words
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))
