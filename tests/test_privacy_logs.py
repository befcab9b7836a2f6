"""No query string reaches a log line or a file, whoever logs it: end to end, on mitmproxy's own log lines.

A real `consentwatch run` (and a real `mitmdump -s addon/consentwatch_addon.py`) serves a recording with
server_replay_extra=kill, then gets requests whose query strings carry secrets: one the replay kills (mitmproxy
logs "killed non-replay request <url>"), one over plain HTTP, one whose TLS handshake fails, and malformed
requests mitmproxy answers 400 and logs. Nothing here installs the scrubbing itself: the entry points must.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live_support import ROOT, Running, curl, default_recording, free_port, start_run

pytestmark = pytest.mark.slow

SECRETS = [b"KILLSECRET", b"HTTPSECRET", b"TLSSECRET", b"HEADERSECRET", b"LINESECRET", b"ORIGINSECRET"]


def _no_proxy_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except OSError:
            pass
        return out


def _hostile_traffic(proxy_port: int) -> None:
    proxy = f"http://127.0.0.1:{proxy_port}"
    # the kill path: a rule host, a request the recording does not hold
    assert curl(proxy, "https://www.linkedin.com/feed/?trk=KILLSECRET").returncode != 0
    curl(proxy, "http://www.linkedin.com/feed/?trk=HTTPSECRET")
    # a client that does not trust the CA: the handshake fails, mitmproxy logs it
    done = subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", proxy,
                           "https://www.linkedin.com/jobs/?q=TLSSECRET"], capture_output=True, env=_no_proxy_env(),
                          timeout=20)
    assert done.returncode != 0
    # client errors: a broken header line, a broken request line, an origin-form target
    assert b"400" in _raw(proxy_port, b"GET http://www.linkedin.com/x?q=HEADERSECRET HTTP/1.1\r\n"
                                      b"Host: www.linkedin.com\r\nBad Header\r\n\r\n")
    assert b"400" in _raw(proxy_port, b"GET http://www.linkedin.com/x?q=LINESECRET HTTP/9.9 extra\r\n\r\n")
    _raw(proxy_port, b"GET /x?q=ORIGINSECRET HTTP/1.1\r\nHost: www.linkedin.com\r\n\r\n")


def _assert_nowhere(text: bytes, data: Path) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text.decode(errors="replace"))
    for path in [p for p in data.rglob("*") if p.is_file()]:
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret not in content, (path, secret)


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_run_logs_no_query_string(tmp_path, verbose):
    data = tmp_path / "data"
    data.mkdir()
    r = start_run(data, default_recording(tmp_path), *(["-v"] if verbose else []))
    try:
        _hostile_traffic(r.proxy_port)
        time.sleep(0.5)  # mitmproxy logs a connection's end after answering it
    finally:
        assert r.stop() == 0
    out = r.output()
    # the lines are there (mitmproxy's own), without their query strings
    assert "killed non-replay request https://www.linkedin.com/feed/?…" in out, out
    assert "killed non-replay request http://www.linkedin.com/feed/?…" in out, out
    if verbose:
        assert "TLS handshake failed" in out and "Invalid header line" in out, out
    _assert_nowhere(out.encode(), data)


def test_mitmdump_script_logs_no_query_string(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    mitmdump = Path(sys.executable).with_name("mitmdump")
    proxy_port, api_port = free_port(), free_port()
    log_path = tmp_path / "mitmdump.log"
    # flow_detail=0: mitmdump's own flow listing (not a log) prints every URL whole; the log is what we scrub
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(mitmdump), "--listen-host", "127.0.0.1", "-p", str(proxy_port),
                                 "-s", str(ROOT / "addon" / "consentwatch_addon.py"),
                                 "--set", "flow_detail=0", "--set", "termlog_verbosity=debug",
                                 "--set", f"consentwatch_data_dir={data}", "--set", f"consentwatch_api_port={api_port}",
                                 "--set", f"confdir={tmp_path / 'conf'}",
                                 "--set", f"server_replay={default_recording(tmp_path)}",
                                 "--set", "server_replay_extra=kill", "--set", "connection_strategy=lazy"],
                                stdout=log, stderr=subprocess.STDOUT, env=_no_proxy_env())
    r = Running(proc, data, proxy_port, api_port, "", log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if r.get("/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, r.output()
            time.sleep(0.05)
        _hostile_traffic(proxy_port)
        time.sleep(0.5)
    finally:
        r.stop()
    out = r.output()
    assert "killed non-replay request https://www.linkedin.com/feed/?…" in out, out
    assert "TLS handshake failed" in out, out
    _assert_nowhere(out.encode(), data)


def test_every_command_scrubs_its_log():
    """`replay`, `rules`, `report`, `token`: the CLI entry point scrubs before the command runs."""
    code = ("import logging, sys\n"
            "from consentwatch import cli\n"
            "cli.main(['rules', 'validate', '/nonexistent.json'])\n"
            "logging.getLogger('mitmproxy.proxy.server').warning('request https://x.example/a?q=CLISECRET')\n"
            "logging.getLogger('consentwatch').warning('Cookie: sid=CLISECRET')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "https://x.example/a?…" in done.stderr, done.stderr
    assert "CLISECRET" not in done.stderr + done.stdout
