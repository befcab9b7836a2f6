"""One-click pairing (issue 15 point 3), the Python side: the extension id the manifest's key fixes, the host
manifests `consentwatch trust` writes (and --remove takes back), and the native messaging protocol spoken by the
real launcher as the browser starts it, against a real `consentwatch run`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from consentwatch.native_host import (CHROMIUM_EXTENSION_ID, CHROMIUM_ORIGIN, GECKO_ID, HOST_NAME, MAX_MESSAGE,
                                      LOCK_FILE)
from consentwatch.pairing import MANIFEST_FILE, install, launcher_path, places, remove
from consentwatch.store.lock import LOCK_FILE as STORE_LOCK_FILE
from conftest import missing_prerequisite
from live_support import default_recording, start_run

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "extension" / "manifest.json").read_text("utf-8"))


def chromium_id(public_key_der: bytes) -> str:
    """Chromium's extension id: the first 128 bits of SHA-256 of the public key, as hex digits mapped 0-f -> a-p."""
    return "".join(chr(ord("a") + int(c, 16)) for c in hashlib.sha256(public_key_der).hexdigest()[:32])


def test_the_extension_id_is_the_one_the_manifest_key_gives():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    der = base64.b64decode(MANIFEST["key"], validate=True)
    assert isinstance(load_der_public_key(der), rsa.RSAPublicKey)  # a public key, nothing private
    assert chromium_id(der) == CHROMIUM_EXTENSION_ID
    assert CHROMIUM_ORIGIN == f"chrome-extension://{CHROMIUM_EXTENSION_ID}/"
    assert MANIFEST["browser_specific_settings"]["gecko"]["id"] == GECKO_ID
    assert "nativeMessaging" in MANIFEST["permissions"]
    pairing_js = (ROOT / "extension" / "background" / "pairing.js").read_text("utf-8")
    assert f"export const HOST_NAME = '{HOST_NAME}';" in pairing_js
    assert LOCK_FILE == STORE_LOCK_FILE  # the host reads the lock note without importing the store


# -- where the manifests go -----------------------------------------------------------------------------------

def test_places_follow_the_browsers_config_dirs(tmp_path):
    home = tmp_path / "home"
    dirs = {p.browser: p.directory for p in places("all", home, env={})}
    assert dirs == {"Chromium": home / ".config/chromium/NativeMessagingHosts",
                    "Google Chrome": home / ".config/google-chrome/NativeMessagingHosts",
                    "Firefox": home / ".mozilla/native-messaging-hosts"}
    xdg = {p.browser: p.directory for p in places("chromium", home, env={"XDG_CONFIG_HOME": str(tmp_path / "x")})}
    assert xdg == {"Chromium": tmp_path / "x/chromium/NativeMessagingHosts",
                   "Google Chrome": tmp_path / "x/google-chrome/NativeMessagingHosts"}
    # Chromium's own override wins over XDG; a relative value is ignored, as Chromium's XDG lookup does
    cch = places("chromium", home, env={"CHROME_CONFIG_HOME": str(tmp_path / "c"), "XDG_CONFIG_HOME": str(tmp_path / "x")})
    assert cch[0].directory == tmp_path / "c/chromium/NativeMessagingHosts"
    assert places("chromium", home, env={"XDG_CONFIG_HOME": "rel"})[0].directory == home / ".config/chromium/NativeMessagingHosts"
    custom = places("chromium", home, env={}, chromium_user_data_dirs=[tmp_path / "profile"])
    assert custom[-1].directory == tmp_path / "profile/NativeMessagingHosts"
    assert [p.browser for p in places("firefox", home, env={})] == ["Firefox"]


def cw(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "CHROME_CONFIG_HOME")}
    return subprocess.run([sys.executable, "-m", "consentwatch.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**env, "HOME": str(home)}, cwd=ROOT)


def test_trust_pairing_only_installs_the_host_everywhere_and_remove_takes_it_back(tmp_path):
    home, data, profile = tmp_path / "home", tmp_path / "data", tmp_path / "profile"
    home.mkdir()
    r = cw(home, "trust", "--pairing-only", "--data-dir", str(data), "--chromium-user-data-dir", str(profile))
    assert r.returncode == 0, r.stderr
    launcher = launcher_path(data)
    assert f"Pairing host: {launcher}" in r.stdout and r.stdout.count("pairing host installed") == 4
    assert "consentwatch CA" not in r.stdout and not (home / ".pki").exists()  # --pairing-only: no CA, no certutil
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o700
    text = launcher.read_text()
    assert text.startswith("#!/bin/sh\n") and f"exec {sys.executable} -P -m consentwatch.native_host" in text
    assert f"--data-dir {data}" in text and text.rstrip().endswith('"$@"')
    manifests = {d: json.loads((d / MANIFEST_FILE).read_text()) for d in (
        home / ".config/chromium/NativeMessagingHosts", home / ".config/google-chrome/NativeMessagingHosts",
        profile / "NativeMessagingHosts", home / ".mozilla/native-messaging-hosts")}
    for directory, m in manifests.items():
        assert m["name"] == HOST_NAME and m["type"] == "stdio" and m["path"] == str(launcher), directory
        if "mozilla" in str(directory):
            assert m["allowed_extensions"] == [GECKO_ID] and "allowed_origins" not in m
        else:
            assert m["allowed_origins"] == [CHROMIUM_ORIGIN] and "allowed_extensions" not in m

    again = cw(home, "trust", "--pairing-only", "--data-dir", str(data), "--chromium-user-data-dir", str(profile))
    assert again.returncode == 0 and again.stdout.count("pairing host already installed") == 4

    gone = cw(home, "trust", "--pairing-only", "--remove", "--data-dir", str(data), "--chromium-user-data-dir", str(profile))
    assert gone.returncode == 0 and gone.stdout.count("pairing host removed") == 4, gone.stdout + gone.stderr
    assert not launcher.exists() and not any((d / MANIFEST_FILE).exists() for d in manifests)
    assert (data / "token").exists() is False  # installing and removing the host never made a token


def test_trust_sets_up_pairing_and_the_ca_together_and_remove_undoes_both(tmp_path):
    if not shutil.which("certutil"):
        missing_prerequisite("certutil (libnss3-tools) is needed: make browser")
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    r = cw(home, "trust", "--browser", "chromium", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("pairing host installed") == 2 and "consentwatch CA:" in r.stdout and "trusted" in r.stdout
    assert (home / ".config/chromium/NativeMessagingHosts" / MANIFEST_FILE).exists()
    assert not (home / ".mozilla").exists()  # only the browser asked for
    gone = cw(home, "trust", "--browser", "chromium", "--remove", "--data-dir", str(data))
    assert gone.returncode == 0 and gone.stdout.count("pairing host removed") == 2 and "removed 1 consentwatch CA" in gone.stdout
    assert not (home / ".config/chromium/NativeMessagingHosts" / MANIFEST_FILE).exists()
    assert not launcher_path(data).exists()  # no browser's manifest points at it any more


def test_remove_takes_only_our_manifest_and_keeps_the_launcher_while_a_browser_still_uses_it(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    launcher, outcomes = install(data, "all", home, env={})
    assert [o.action for o in outcomes] == ["installed"] * 3
    other = home / ".config/chromium/NativeMessagingHosts/org.keepassxc.keepassxc_browser.json"
    other.write_text("{}")
    remove(data, "chromium", home, env={})
    assert other.exists() and launcher.exists()  # Firefox's manifest still points at it
    assert (home / ".mozilla/native-messaging-hosts" / MANIFEST_FILE).exists()
    assert [o.action for o in remove(data, "all", home, env={})] == ["absent", "absent", "removed"]
    assert not launcher.exists() and other.exists()


# -- the protocol, through the real launcher --------------------------------------------------------------------

def frame(payload: bytes | dict) -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return struct.pack("=I", len(data)) + data


def talk(launcher: Path, stream: bytes, caller: list[str] | None = None) -> tuple[int, list[dict], str]:
    """Starts the launcher as Chromium does (the caller's origin as its argument), writes `stream`, closes stdin."""
    args = [CHROMIUM_ORIGIN] if caller is None else caller
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    p = subprocess.run([str(launcher), *args], input=stream, capture_output=True, timeout=60, env=env,
                       cwd=launcher.parent)
    replies, out = [], p.stdout
    while out:
        (n,) = struct.unpack("=I", out[:4])
        assert len(out) >= 4 + n, "a reply cut short"
        replies.append(json.loads(out[4:4 + n]))
        out = out[4 + n:]
    return p.returncode, replies, p.stderr.decode()


@pytest.fixture
def host(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    launcher, _ = install(data, "chromium", tmp_path / "home", env={})
    return launcher


def test_requests_that_are_not_a_pair_are_refused_and_the_stream_goes_on(host):
    code, replies, err = talk(host, frame({"type": "pair"}) + frame({"type": "token"}) + frame(b"not json")
                              + frame(b"[1, 2]") + frame({"kind": "pair"}) + frame(b"\xff\xfe") + frame({"type": "pair"}))
    assert code == 0 and err == ""
    assert [r.get("error") for r in replies] == ["not-running", "unknown-type", "bad-request", "bad-request",
                                                 "bad-request", "bad-request", "not-running"]
    assert all(r["type"] == "error" and "\n" not in r["message"] for r in replies)
    assert "consentwatch run" in replies[0]["message"]
    assert talk(host, b"") == (0, [], "")  # the browser closed at once: a clean end


def test_bad_lengths_end_the_host_with_one_answer(host):
    # over the cap: refused without reading (or waiting for) the body it announces
    code, replies, err = talk(host, struct.pack("=I", MAX_MESSAGE + 1) + b"{")
    assert code == 1 and [r["error"] for r in replies] == ["too-large"] and "limit" in err
    code, replies, _ = talk(host, struct.pack("=I", 0xFFFFFFFF))
    assert code == 1 and [r["error"] for r in replies] == ["too-large"]
    # exactly the cap is still a message (a bad one here, but read and answered)
    padded = b'{"type": "pair"' + b" " * (MAX_MESSAGE - 16) + b"}"
    assert len(padded) == MAX_MESSAGE
    assert [r["error"] for r in talk(host, frame(padded))[1]] == ["not-running"]
    # a header or a body cut short
    for cut in (b"\x10\x00", struct.pack("=I", 50) + b'{"type": "pa'):
        code, replies, err = talk(host, cut)
        assert code == 1 and [r["error"] for r in replies] == ["bad-request"] and "ended inside" in err, cut
    # the length really is in the machine's byte order: the same bytes swapped announce another length
    swapped = struct.pack(">I" if sys.byteorder == "little" else "<I", 15) + b'{"type":"pair"}'
    assert talk(host, swapped)[1][0]["error"] == "too-large"


def test_only_our_extension_may_ask(host):
    for caller in (["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"], [], ["--parent-window=0"],
                   ["/x/consentwatch.pairing.json", "someone@else.invalid"]):
        code, replies, _ = talk(host, frame({"type": "pair"}), caller)
        assert code == 1 and [r["error"] for r in replies] == ["forbidden"], caller
    # Firefox: the manifest's path, then the add-on's id
    code, replies, _ = talk(host, frame({"type": "pair"}), [str(host.parent / MANIFEST_FILE), GECKO_ID])
    assert code == 0 and replies[0]["error"] == "not-running"


def test_a_stale_lock_note_is_not_a_running_consentwatch(host):
    data = host.parent
    (data / "token").write_text("t" * 43 + "\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "command": "consentwatch run", "api": "http://127.0.0.1:9"}))
    replies = talk(host, frame({"type": "pair"}))[1]
    assert replies[0]["error"] == "not-running"
    # a live pid whose API does not answer (the pid was reused): still not running, and no token handed out
    (data / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "command": "consentwatch run", "api": "http://127.0.0.1:9"}))
    replies = talk(host, frame({"type": "pair"}))[1]
    assert replies[0]["error"] == "not-running" and "does not answer at http://127.0.0.1:9" in replies[0]["message"]
    (data / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "api": "off"}))
    assert talk(host, frame({"type": "pair"}))[1][0]["error"] == "api-off"
    for note in ("[]", "{", json.dumps({"pid": os.getpid(), "api": "http://evil.example:80"}),
                 json.dumps({"pid": os.getpid(), "api": "http://127.0.0.1:9@evil.example"}),
                 json.dumps({"pid": True, "api": "http://127.0.0.1:9"})):
        (data / LOCK_FILE).write_text(note)
        assert talk(host, frame({"type": "pair"}))[1][0]["error"] == "not-running", note


def test_with_consentwatch_running_the_host_hands_over_its_address_and_token(host, tmp_path):
    data = host.parent
    before = sorted(p.name for p in data.iterdir())
    run = start_run(data, default_recording(tmp_path))
    try:
        code, replies, err = talk(host, frame({"type": "pair"}) + frame({"type": "pair"}))
        assert code == 0, err
        expected = {"type": "pair", "apiBase": run.api, "token": run.token, "version": "0.1.0"}
        assert replies == [expected, expected]
        assert err == ""  # the host says nothing, and so never the token

        (data / "token").rename(data / "token.moved")  # the token file gone while consentwatch runs
        code, replies, err = talk(host, frame({"type": "pair"}))
        assert code == 0 and replies[0]["error"] == "no-token" and "consentwatch token" in replies[0]["message"]
        assert not (data / "token").exists()  # the host never makes one: `consentwatch token` does
        (data / "token.moved").rename(data / "token")
    finally:
        run.stop()
    code, replies, _ = talk(host, frame({"type": "pair"}))
    assert replies[0]["error"] == "not-running"
    assert "pairing-host" in before  # the host itself wrote nothing into the data dir
