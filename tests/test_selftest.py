"""The self-test page (issue 15 point 2): answered by the proxy itself, routed by the PAC, inside the CA's name
constraints; refused TLS handshakes counted per host and reported by /v1/health."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from cryptography import x509

from consentwatch.api.pac import pac_script
from consentwatch.ca import CA_CERT, covers, permitted_of
from consentwatch.selftest import (SELFTEST_HOST, SELFTEST_URL, TlsFailures, is_selftest, refused_certificate)
from conftest import missing_prerequisite
from live_support import SETTINGS_URL, default_recording, start_run

NO_PROXY_ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def curl_trusting(proxy: str, url: str, ca: str | None, *extra: str) -> subprocess.CompletedProcess:
    """curl through the proxy; with `ca` it trusts that CA only (no -k anywhere here)."""
    if not shutil.which("curl"):
        missing_prerequisite("curl is needed")
    args = ["curl", "-sS", "--max-time", "10", "--proxy", proxy, *extra]
    if ca:
        args += ["--cacert", ca]
    return subprocess.run([*args, url], capture_output=True, timeout=30, env=NO_PROXY_ENV)


def health(r) -> dict:
    status, _, body = r.get("/v1/health")
    assert status == 200
    return json.loads(body)


# -- pure parts -------------------------------------------------------------------------------------------------

def test_selftest_host_is_ours_and_cannot_exist():
    assert SELFTEST_URL == "https://selftest.consentwatch.invalid/"
    assert is_selftest("selftest.consentwatch.invalid") and is_selftest("SELFTEST.consentwatch.invalid.")
    assert not is_selftest("consentwatch.invalid") and not is_selftest("selftest.consentwatch.invalid.evil")
    assert SELFTEST_HOST.endswith(".invalid")  # RFC 6761: never resolves, so nothing can go upstream


def test_refused_certificate_reads_mitmproxys_messages():
    # the texts mitmproxy 12 writes into conn.error (proxy/layers/tls.py, ClientTLSLayer.on_handshake_error)
    assert refused_certificate("The client does not trust the proxy's certificate for x.com (tlsv1 alert unknown ca)")
    assert refused_certificate("The client may not trust the proxy's certificate for x.com (sslv3 alert bad certificate)")
    assert not refused_certificate("connection closed early")
    assert not refused_certificate("Client and mitmproxy cannot agree on a TLS version to use. You may need to adjust "
                                   "mitmproxy's tls_version_client_min option.")
    assert not refused_certificate("The client disconnected during the handshake. If this happens consistently for "
                                   "x.com, this may indicate that the client does not trust the proxy's certificate.")
    assert not refused_certificate(None) and not refused_certificate("")


class _Conn:
    def __init__(self, sni, error=None):
        self.sni, self.error = sni, error


class _Data:
    def __init__(self, sni, error=None):
        self.conn = _Conn(sni, error)


def test_tls_failures_window_success_and_bounds():
    now = [1000.0]
    counter = TlsFailures(window=600, clock=lambda: now[0])
    refused = "The client does not trust the proxy's certificate for h (tlsv1 alert unknown ca)"
    counter.tls_failed_client(_Data("WWW.LinkedIn.com.", refused))
    counter.tls_failed_client(_Data("www.linkedin.com", refused))
    counter.tls_failed_client(_Data("x.com", refused))
    counter.tls_failed_client(_Data("x.com", "connection closed early"))  # not a refusal
    counter.tls_failed_client(_Data(None, refused))  # no SNI: nothing to report it under
    assert counter.recent() == {"www.linkedin.com": 2, "x.com": 1}
    now[0] += 400
    counter.tls_failed_client(_Data("x.com", refused))
    now[0] += 300  # the first three are now older than the window
    assert counter.recent() == {"x.com": 1}
    counter.tls_established_client(_Data("x.com"))  # trusted now: the count goes
    assert counter.recent() == {}
    for i in range(1500):
        counter.tls_failed_client(_Data(f"h{i}.example", refused))
    assert len(counter.recent()) == 1000 and "h1499.example" in counter.recent()


def test_pac_routes_the_selftest_host():
    script = pac_script(["www.linkedin.com"], 8080)
    assert json.dumps(SELFTEST_HOST) in script
    if shutil.which("node") is None:
        missing_prerequisite("node evaluates the PAC script")
    hosts = [SELFTEST_HOST, "SelfTest.ConsentWatch.invalid.", "other.consentwatch.invalid", "bank.example"]
    js = script + "\nconsole.log(JSON.stringify(%s.map(h => FindProxyForURL('https://' + h + '/', h))));" % json.dumps(hosts)
    out = json.loads(subprocess.run(["node", "-e", js], capture_output=True, text=True, check=True).stdout)
    assert out == ["PROXY 127.0.0.1:8080; DIRECT"] * 2 + ["DIRECT"] * 2


# -- a real `consentwatch run` ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("replaying", [False, True], ids=["live", "server-replay-kill"])
def test_selftest_answered_by_the_proxy_and_refusals_counted(tmp_path, replaying):
    data = tmp_path / "d"
    data.mkdir()
    # live: the default eager connection strategy (no DNS for .invalid: an upstream attempt would fail);
    # replaying: server_replay_extra=kill refuses whatever is not recorded, and the self-test still answers
    r = start_run(data, default_recording(tmp_path) if replaying else None)
    ca = str(data / "ca" / CA_CERT)
    try:
        cert = x509.load_pem_x509_certificate((data / "ca" / CA_CERT).read_bytes())
        assert any(covers(p, SELFTEST_HOST) for p in permitted_of(cert))
        assert health(r)["tls_failures"] == {} and health(r)["selftest_url"] == SELFTEST_URL

        ok = curl_trusting(r.proxy, SELFTEST_URL, ca, "-i")
        assert ok.returncode == 0, ok.stderr
        head, _, body = ok.stdout.decode().partition("\r\n\r\n<!doctype")
        assert re.search(r"^HTTP/\S+ 200", head.split("\r\n\r\n")[-1], re.M)
        assert "x-consentwatch-selftest: ok" in head.lower() and "cache-control: no-store" in head.lower()
        assert "<title>consentwatch self-test: OK</title>" in body
        # other paths: 404, plain HTTP: sent to the HTTPS page
        assert curl_trusting(r.proxy, SELFTEST_URL + "nothing", ca, "-o", "/dev/null", "-w", "%{http_code}").stdout == b"404"
        plain = curl_trusting(r.proxy, f"http://{SELFTEST_HOST}/", None, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
        assert plain.stdout.decode() == f"308 {SELFTEST_URL}"

        # a client that does not trust the CA: TLS error for it, and the refusal is counted per host
        # (a rule host needs the recording: live, this machine has no route to it and the proxy answers 502)
        urls = [SELFTEST_URL, SELFTEST_URL] + ([SETTINGS_URL] if replaying else [])
        for url in urls:
            refused = curl_trusting(r.proxy, url, None)
            assert refused.returncode == 60, refused.stderr  # curl: peer certificate cannot be authenticated
        rule_host = {"www.linkedin.com": 1} if replaying else {}
        assert health(r)["tls_failures"] == {SELFTEST_HOST: 2, **rule_host}
        # a trusted handshake to a host clears that host's count
        assert curl_trusting(r.proxy, SELFTEST_URL, ca).returncode == 0
        assert health(r)["tls_failures"] == rule_host
        if replaying:
            page = curl_trusting(r.proxy, SETTINGS_URL, ca)
            assert page.returncode == 0 and b"Data for Generative AI Improvement" in page.stdout
    finally:
        r.stop()
    out = r.output()
    # answered in the proxy: no upstream connection was attempted for it
    assert "Unable to establish TLS connection with server" not in out and "Cannot connect to" not in out
    assert not [line for line in out.splitlines() if "killed" in line and SELFTEST_HOST in line]
