"""The per-install CA (issue 7 point 6): name constraints that permit only the rule domains, key 0600,
renewal, the warning when a pack adds a domain, and both sides proven in Chromium (rule host loads,
another host signed with the same key is refused, and the same host signed by an unconstrained CA loads)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from consentwatch.ca import (CA_CERT, CA_PEM, OWN_DOMAIN, PUBLIC_CERT, ca_domains, covers, ensure_ca, permitted_of,
                             uncovered, wanted_domains)
from consentwatch.run import RunConfig, build_master
from consentwatch.rules.model import shipped_pack
from consentwatch.rules.store import RuleStore
from conftest import missing_prerequisite
from live_support import (RULE_ID, SETTINGS_URL, free_port, settings_html, start_run, write_flows)

HOSTS = ["www.linkedin.com", "linkedin.com", "*.substack.com", "substack.com", "www.dropbox.com", "x.com",
         "api.x.com", "help.instagram.com"]


def test_wanted_domains_are_the_fewest_subtrees():
    assert wanted_domains(HOSTS) == ["help.instagram.com", "linkedin.com", "substack.com", "www.dropbox.com", "x.com"]
    assert wanted_domains(["*.substack.com"]) == ["substack.com"]
    assert covers("linkedin.com", "www.linkedin.com") and covers("linkedin.com", "linkedin.com")
    assert not covers("linkedin.com", "evillinkedin.com") and not covers("x.com", "box.com")


def test_ca_is_constrained_private_and_kept(tmp_path):
    status = ensure_ca(tmp_path, HOSTS)
    # the rule domains and our own self-test name, nothing else
    assert status.created and status.uncovered == [] and status.permitted == ca_domains(HOSTS)
    assert OWN_DOMAIN in status.permitted and set(status.permitted) - {OWN_DOMAIN} == set(wanted_domains(HOSTS))
    assert stat.S_IMODE((tmp_path / CA_PEM).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / CA_CERT).read_bytes())
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert {str(g.value) for g in nc.value.excluded_subtrees} == {"0.0.0.0/0", "::/0"}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    again = ensure_ca(tmp_path, HOSTS)
    assert not again.created and (tmp_path / CA_CERT).read_bytes() == cert.public_bytes(Encoding.PEM)
    assert (tmp_path / PUBLIC_CERT).read_bytes() == cert.public_bytes(Encoding.PEM) and again.cert_path.name == PUBLIC_CERT
    # openssl lists the constraints (how the issue is checked)
    if shutil.which("openssl"):
        text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / CA_CERT), "-noout", "-text"],
                              capture_output=True, text=True, check=True).stdout
        assert "Name Constraints: critical" in text and "DNS:linkedin.com" in text and "DNS:substack.com" in text
        assert "DNS:consentwatch.invalid" in text
        assert "DNS:bank" not in text


def test_new_domain_is_reported_and_renew_covers_it(tmp_path):
    ensure_ca(tmp_path, HOSTS)
    more = HOSTS + ["www.newplatform.example"]
    status = ensure_ca(tmp_path, more)
    assert not status.created and status.uncovered == ["www.newplatform.example"]
    renewed = ensure_ca(tmp_path, more, renew=True)
    assert renewed.created and renewed.uncovered == [] and "www.newplatform.example" in renewed.permitted


def test_unconstrained_mitmproxy_ca_is_replaced(tmp_path):
    from mitmproxy.certs import CertStore

    CertStore.create_store(tmp_path, "mitmproxy", 2048)  # what an older install left behind
    assert permitted_of(x509.load_pem_x509_certificate((tmp_path / CA_CERT).read_bytes())) is None
    status = ensure_ca(tmp_path, HOSTS)
    assert status.created and status.replaced_unconstrained
    assert permitted_of(x509.load_pem_x509_certificate((tmp_path / CA_CERT).read_bytes())) == ca_domains(HOSTS)


def test_every_replaced_ca_says_trust_it_again(tmp_path):
    """The certificate the user trusted is no longer the one in use: renewed, expired, unreadable, unconstrained."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from mitmproxy.certs import CertStore

    first = ensure_ca(tmp_path / "a", HOSTS)
    assert first.created and first.trust_again() is None  # a first install: "trust it once" is enough
    assert ensure_ca(tmp_path / "a", HOSTS).trust_again() is None  # kept: nothing to do
    renewed = ensure_ca(tmp_path / "a", HOSTS, renew=True)
    assert "trust it again" in renewed.trust_again() and "renewed" in renewed.trust_again()

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / CA_PEM).write_text("not a certificate")
    assert "could not be read" in ensure_ca(tmp_path / "b", HOSTS).trust_again()

    CertStore.create_store(tmp_path / "c", "mitmproxy", 2048)
    unconstrained = ensure_ca(tmp_path / "c", HOSTS)
    assert "unrestricted" in unconstrained.trust_again() and "trust it again" in unconstrained.trust_again()

    # an expired CA (same key, validity in the past): replaced, and the user told
    ensure_ca(tmp_path / "d", HOSTS)
    raw = (tmp_path / "d" / CA_PEM).read_bytes()
    key = serialization.load_pem_private_key(raw, None)
    old = x509.load_pem_x509_certificates(raw)[0]
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now - dt.timedelta(days=1)))
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    expired = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    (tmp_path / "d" / CA_PEM).write_bytes(key_pem + expired.public_bytes(Encoding.PEM))
    status = ensure_ca(tmp_path / "d", HOSTS)
    assert status.created and "expired" in status.trust_again()


async def test_run_uses_the_constrained_ca_and_warns_when_a_pack_adds_a_domain(tmp_path, caplog):
    data = tmp_path / "d"
    data.mkdir()
    m, cw, api, hosts = await build_master(RunConfig(data_dir=data, proxy_port=free_port(), api_port=0))
    try:
        assert Path(m.options.confdir) == data / "ca" and m.options.upstream_cert is False
        assert hosts.ca is not None and hosts.ca.uncovered == []
        assert uncovered(hosts.ca.permitted, cw.watch.rules.host_patterns()) == []
        pack = shipped_pack()
        pack["version"] = "9999.9"
        pack["rules"][0] = {**pack["rules"][0], "hosts": pack["rules"][0]["hosts"] + ["www.newplatform.example"]}
        RuleStore(data).write_pack(pack, "import")
        assert await m.addons.get("consentwatch_addons").get("rulesreloader").check()
        await asyncio.sleep(0)
        assert any("newplatform.example" in r.getMessage() and "--renew-ca" in r.getMessage() for r in caplog.records)
        # until renewed, the new host is tunnelled (a certificate the browser would refuse is never presented)
        regex, selftest = m.options.allow_hosts
        assert re.search(selftest, "selftest.consentwatch.invalid:443") and not re.search(selftest, "x.com:443")
        assert not re.search(regex, "www.newplatform.example:443") and re.search(regex, "www.linkedin.com:443")
        assert "www.newplatform.example" not in hosts.intercepted
    finally:
        await cw.done()


def test_renew_ca_flag_and_banner(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    r = start_run(data, None)
    first = (data / "ca" / CA_CERT).read_bytes()
    assert "rule domains" in r.output() and str(data / "ca" / PUBLIC_CERT) in r.output()
    assert f"token:       {r.token}" in r.output()
    # what to do next: trust (with this data dir, as the command was typed), then the extension's Pair button
    assert f"1. consentwatch trust --data-dir {data}" in r.output()
    assert 'click "Pair with consentwatch" in it and confirm' in r.output()
    assert r.stop() == 0
    r = start_run(data, None, "--renew-ca")
    try:
        assert (data / "ca" / CA_CERT).read_bytes() != first
        assert "renewed" in r.output() and "trust it again" in r.output()
    finally:
        r.stop()


# -- Chromium: both sides --------------------------------------------------------------------------------



def _trusting_home(tmp: Path, ca_cert: Path, name: str) -> Path:
    home = tmp / name
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nss}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{nss}", "-A", "-t", "C,,", "-n", name, "-i", str(ca_cert)],
                   check=True, capture_output=True)
    return home


def _mitmdump(confdir: Path, recording: Path, tmp: Path) -> tuple[subprocess.Popen, int]:
    """Anyone holding the CA key: a plain mitmdump signing for every host with it."""
    port = free_port()
    log = open(tmp / f"mitmdump-{port}.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mitmdump")), "-q", "--listen-host", "127.0.0.1",
                             "-p", str(port), "--set", f"confdir={confdir}", "--set", "upstream_cert=false",
                             "--set", f"server_replay={recording}", "--set", "server_replay_reuse=true",
                             "--set", "server_replay_extra=kill", "--set", "connection_strategy=lazy",
                             "--set", "keepserving=true"], stdout=log, stderr=subprocess.STDOUT)
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("mitmdump did not start")


def _visit(pw, chromium: str, home: Path, proxy_port: int, urls: list[str]) -> list[str]:
    browser = pw.chromium.launch(executable_path=chromium, proxy={"server": f"http://127.0.0.1:{proxy_port}"},
                                 env={**os.environ, "HOME": str(home)}, args=["--no-sandbox", "--disable-gpu"])
    out = []
    try:
        page = browser.new_page()
        for url in urls:
            try:
                resp = page.goto(url, timeout=20000)
                out.append(f"{resp.status} {page.title()}")
            except Exception as e:  # noqa: BLE001 - the net:: error is the result
                msg = str(e)
                out.append(next((w for w in msg.replace(" ", "\n").splitlines() if w.startswith("net::")), msg))
    finally:
        browser.close()
    return out


@pytest.mark.browser
def test_chromium_trusts_the_ca_for_rule_domains_only(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium or not shutil.which("certutil"):
        missing_prerequisite("Chromium and certutil (libnss3-tools) are needed: make browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_prerequisite("Playwright for Python is not installed")
    bank = "https://www.bank.example/"
    recording = write_flows(tmp_path / "two.flow", [(SETTINGS_URL, settings_html(True)),
                                                   (bank, b"<html><head><title>Bank</title></head></html>")])
    data = tmp_path / "d"
    data.mkdir()
    run = start_run(data, recording)
    home = _trusting_home(tmp_path, data / "ca" / PUBLIC_CERT, "consentwatch")
    procs = []
    try:
        with sync_playwright() as pw:
            # the product path: consentwatch run, the user trusting this install's CA
            (page,) = _visit(pw, chromium, home, run.proxy_port, [SETTINGS_URL])
            assert page == "200 Data for Generative AI Improvement", page
            # a stolen key: signing for a bank with it is refused by the browser
            thief, thief_port = _mitmdump(data / "ca", recording, tmp_path)
            procs.append(thief)
            linkedin, other = _visit(pw, chromium, home, thief_port, [SETTINGS_URL, bank])
            assert linkedin.startswith("200") and other == "net::ERR_CERT_INVALID", (linkedin, other)
            # control: the same forgery with mitmproxy's unconstrained default CA is accepted
            plain, plain_port = _mitmdump(tmp_path / "plain-ca", recording, tmp_path)
            procs.append(plain)
            for _ in range(100):
                if (tmp_path / "plain-ca" / CA_CERT).exists():
                    break
                time.sleep(0.05)
            plain_home = _trusting_home(tmp_path, tmp_path / "plain-ca" / CA_CERT, "mitmproxy-default")
            (forged,) = _visit(pw, chromium, plain_home, plain_port, [bank])
            assert forged == "200 Bank", forged
        code, _, body = run.get("/v1/warnings", {"Authorization": f"Bearer {run.token}"})
        assert RULE_ID in body.decode()
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        run.stop()
