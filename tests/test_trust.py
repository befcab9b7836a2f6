"""`consentwatch trust` (issue 15 point 1) with the real certutil on fresh home directories: Chromium's NSS db created
and the CA listed, Firefox profiles found through profiles.ini, renewal replaces, --remove undoes, clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from consentwatch.ca import PUBLIC_CERT, ensure_ca
from consentwatch.trust import NICKNAME, firefox_profiles, is_consentwatch_ca, other_system_commands, parse_listing
from conftest import missing_prerequisite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _certutil():
    if not shutil.which("certutil"):
        missing_prerequisite("certutil (libnss3-tools) is needed: make browser")


def cw(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "consentwatch.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def listed(db: Path) -> list[tuple[str, str]]:
    out = subprocess.run(["certutil", "-L", "-d", f"sql:{db}"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[1].startswith("Certificate Nickname"), out
    return parse_listing(out)


def certs_named(db: Path, name: str) -> list[bytes]:
    p = subprocess.run(["certutil", "-L", "-d", f"sql:{db}", "-n", name, "-a"], capture_output=True, text=True)
    if p.returncode:
        return []
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(p.stdout.encode())]


def der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def new_nss_db(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{path}", "--empty-password"], check=True, capture_output=True)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_chromium_fresh_home_db_created_ca_listed_then_removed(home, tmp_path):
    data = tmp_path / "data"
    nssdb = home / ".pki" / "nssdb"
    assert not nssdb.exists() and not data.exists()  # no CA yet, and Chromium never ran
    r = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    cert = data / "ca" / PUBLIC_CERT
    assert cert.exists()  # made by the same call `run` makes
    assert "(made now)" in r.stdout and "database created" in r.stdout and "Restart" in r.stdout
    assert "selftest.consentwatch.invalid" in r.stdout
    assert (nssdb / "cert9.db").exists() and listed(nssdb) == [(NICKNAME, "C,,")]
    assert certs_named(nssdb, NICKNAME) == [der(cert)]
    assert "Firefox" not in r.stdout  # only the browser asked for

    again = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert again.returncode == 0 and "already trusted" in again.stdout and "Restart" not in again.stdout
    assert certs_named(nssdb, NICKNAME) == [der(cert)]

    # renewed CA (run --renew-ca): trusting again replaces the old one, never leaves both
    old = der(cert)
    ensure_ca(data / "ca", ["www.linkedin.com"], renew=True)
    assert der(cert) != old
    renewed = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert renewed.returncode == 0 and "replaced 1 older consentwatch CA" in renewed.stdout
    assert certs_named(nssdb, NICKNAME) == [der(cert)]

    gone = cw(home, "trust", "--browser", "chromium", "--remove", "--data-dir", str(data))
    assert gone.returncode == 0 and "removed 1 consentwatch CA" in gone.stdout
    assert listed(nssdb) == []
    assert cert.exists()  # the CA itself stays; only the browsers stop trusting it
    assert "no consentwatch CA there" in cw(home, "trust", "--browser", "chromium", "--remove").stdout


def test_firefox_every_profile_gets_the_ca(home, tmp_path):
    data = tmp_path / "data"
    root = home / ".mozilla" / "firefox"
    esr = new_nss_db(root / "abcd1234.default-esr")  # Debian firefox-esr's profile, used before: has cert9.db
    (root / "never.started").mkdir()  # listed, never started: no database yet
    absolute = new_nss_db(tmp_path / "elsewhere" / "work")  # IsRelative=0
    unlisted = new_nss_db(root / "made-with-profile-flag")  # `firefox -profile DIR` beside the others
    (root / "profiles.ini").write_text(
        "[Install4F96D1932A9F858E]\nDefault=abcd1234.default-esr\nLocked=1\n\n"
        "[Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd1234.default-esr\nDefault=1\n\n"
        "[Profile1]\nName=fresh\nIsRelative=1\nPath=never.started\n\n"
        f"[Profile2]\nName=work\nIsRelative=0\nPath={absolute}\n\n"
        "[Profile3]\nName=gone\nIsRelative=1\nPath=deleted.profile\n\n"
        "[General]\nStartWithLastProfile=1\nVersion=2\n")
    xdg = new_nss_db(home / ".config" / "mozilla" / "firefox" / "xyz.default-release")  # newer Firefox's place
    (xdg.parent / "profiles.ini").write_text("[Profile0]\nName=default-release\nIsRelative=1\nPath=xyz.default-release\n")
    extra = new_nss_db(tmp_path / "custom-profile")
    assert {p.name for _, p in firefox_profiles(home)} == {"abcd1234.default-esr", "never.started", "work",
                                                           "made-with-profile-flag", "xyz.default-release"}

    r = cw(home, "trust", "--browser", "firefox", "--firefox-profile", str(extra), "--data-dir", str(data))
    assert r.returncode == 0, r.stdout + r.stderr
    cert = der(data / "ca" / PUBLIC_CERT)
    for profile in (esr, root / "never.started", absolute, unlisted, xdg, extra):
        assert listed(profile) == [(NICKNAME, "C,,")], profile
        assert certs_named(profile, NICKNAME) == [cert]
    assert "profile default-esr" in r.stdout and "Chromium" not in r.stdout
    assert not (home / ".pki").exists()  # Chromium's db is left alone when only Firefox was asked for

    gone = cw(home, "trust", "--browser", "firefox", "--remove", "--firefox-profile", str(extra))
    assert gone.returncode == 0, gone.stdout + gone.stderr
    for profile in (esr, root / "never.started", absolute, unlisted, xdg, extra):
        assert listed(profile) == [], profile


def test_a_ca_imported_by_hand_is_replaced_and_other_cas_are_untouched(home, tmp_path):
    from mitmproxy.certs import CertStore

    data = tmp_path / "data"
    nssdb = new_nss_db(home / ".pki" / "nssdb")
    old = tmp_path / "old"
    ensure_ca(old, ["www.linkedin.com"])
    # what the README used to say: certutil ... -n consentwatch
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-t", "C,,", "-n", "consentwatch", "-i",
                    str(old / PUBLIC_CERT)], check=True)
    CertStore.create_store(tmp_path / "other", "mitmproxy", 2048)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-t", "C,,", "-n", "someone else's CA", "-i",
                    str(tmp_path / "other" / "mitmproxy-ca-cert.pem")], check=True)
    r = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert "replaced 1 older consentwatch CA" in r.stdout
    assert sorted(listed(nssdb)) == [(NICKNAME, "C,,"), ("someone else's CA", "C,,")]
    assert cw(home, "trust", "--browser", "chromium", "--remove").returncode == 0
    assert listed(nssdb) == [("someone else's CA", "C,,")]


def test_errors_are_one_line(home, tmp_path):
    data = tmp_path / "data"
    # no certutil on PATH
    r = cw(home, "trust", "--data-dir", str(data), path=str(tmp_path / "empty-bin"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "certutil not found" in r.stderr and "libnss3-tools" in r.stderr
    assert not (home / ".pki").exists()
    # Firefox asked for, none there
    r = cw(home, "trust", "--browser", "firefox", "--data-dir", str(data))
    assert r.returncode == 2 and "no profile found" in r.stderr and r.stderr.count("\n") == 1
    # not a profile directory
    r = cw(home, "trust", "--browser", "firefox", "--firefox-profile", str(tmp_path / "nope"), "--data-dir", str(data))
    assert r.returncode == 2 and "no Firefox profile directory" in r.stderr
    # a database certutil cannot use: the failure names it and says how to do it by hand
    broken = home / ".pki" / "nssdb"
    broken.mkdir(parents=True)
    (broken / "cert9.db").write_bytes(b"not a database")
    r = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert r.returncode == 2 and "FAILED" in r.stdout and "by hand: certutil -d sql:" in r.stdout
    assert (broken / "cert9.db").read_bytes() == b"not a database"  # nothing lost
    # a bad --browser is argparse's one line
    r = cw(home, "trust", "--browser", "safari")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_consentwatch_cas_are_recognised_by_subject(tmp_path):
    from mitmproxy.certs import CertStore

    ensure_ca(tmp_path / "ours", ["x.com"])
    CertStore.create_store(tmp_path / "theirs", "mitmproxy", 2048)
    assert is_consentwatch_ca(x509.load_pem_x509_certificate((tmp_path / "ours" / PUBLIC_CERT).read_bytes()))
    assert not is_consentwatch_ca(x509.load_pem_x509_certificate(
        (tmp_path / "theirs" / "mitmproxy-ca-cert.pem").read_bytes()))


def test_other_systems_get_exact_commands(tmp_path):
    cert = tmp_path / "consentwatch-ca-cert.pem"
    assert other_system_commands("darwin", cert, False) == [
        f"security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db {cert}"]
    assert other_system_commands("win32", cert, False) == [f"certutil -user -addstore Root {cert}"]
    assert "delete-certificate" in other_system_commands("darwin", cert, True)[0]
    assert "-delstore Root" in other_system_commands("win32", cert, True)[0]
