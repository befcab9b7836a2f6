"""Signed rule packs: keygen, sign, verify; and the shipped pack's maintainer signature."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from consentwatch.rules import signing
from consentwatch.rules.signing import SigningError

from conftest import ROOT, cli

RULES_DIR = ROOT / "src" / "consentwatch" / "rules"
MAINTAINER_KEY = Path("/work/maintainer-key/consentwatch-signing.key")


def test_keygen_writes_private_0600_and_public_named_pub(tmp_path):
    priv, pub, kid = signing.keygen(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert "pub" in pub.name and "pub" not in priv.name
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    assert signing.load_public_key(pub).key_id == kid and len(kid) == 16
    with pytest.raises(SigningError, match="already exists"):
        signing.keygen(tmp_path / "k")  # never overwrites a key


def test_sign_verify_and_tamper(tmp_path):
    priv, pub, kid = signing.keygen(tmp_path)
    f = tmp_path / "pack.json"
    f.write_bytes(b'{"format": 1}\n')
    sig, signer = signing.sign_file(priv, f)
    assert sig == tmp_path / "pack.json.sig" and signer == kid
    text = sig.read_text()
    assert f"key-id: {kid}" in text
    trusted = [signing.load_public_key(pub)]
    assert signing.verify(f.read_bytes(), sig.read_bytes(), trusted).key_id == kid
    with pytest.raises(SigningError, match="changed after signing"):
        signing.verify(b'{"format": 2}\n', sig.read_bytes(), trusted)
    other = signing.keygen(tmp_path / "other")[1]
    with pytest.raises(SigningError, match="not trusted"):
        signing.verify(f.read_bytes(), sig.read_bytes(), [signing.load_public_key(other)])
    # a wrong key-id line does not matter when a trusted key verifies; garbage is refused cleanly
    relabelled = text.replace(kid, "0" * 16).encode()
    assert signing.verify(f.read_bytes(), relabelled, trusted).key_id == kid
    for junk in (b"", b"not base64 !!!", b"AAAA\n", b"\xff\xfe" * 10, b"A" * 10_000):
        with pytest.raises(SigningError):
            signing.verify(f.read_bytes(), junk, trusted)


def test_bad_keys_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    with pytest.raises(SigningError, match="not a PEM public key"):
        signing.load_public_key(bad)
    with pytest.raises(SigningError, match="signing key"):
        signing.load_private_key(bad)
    with pytest.raises(SigningError, match="cannot read"):
        signing.load_public_key(tmp_path / "missing.pem")
    r = cli("rules", "import", str(tmp_path / "x.json"), "--trust", str(bad))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_only_public_maintainer_keys_are_in_the_repository():
    keys = sorted((RULES_DIR / "keys").iterdir())
    assert keys, "the maintainers' public key must be bundled"
    for k in keys:
        assert "pub" in k.name and b"PRIVATE" not in k.read_bytes()
    assert signing.bundled_keys(), "bundled keys must load"
    tracked = __import__("subprocess").run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    for line in tracked.splitlines():
        if line.startswith(("src/", "tests/", "docs/")) and line.endswith((".key", ".pem")):
            assert "pub" in Path(line).name, f"{line} looks like a private key in git"


def test_shipped_pack_signature_is_current():
    """The shipped pack.json is signed by a bundled maintainer key. When pack.json changes, re-sign it:
    consentwatch rules sign --key /work/maintainer-key/consentwatch-signing.key src/consentwatch/rules/pack.json"""
    pack = RULES_DIR / "pack.json"
    sig = RULES_DIR / "pack.json.sig"
    assert sig.is_file()
    try:
        signing.verify(pack.read_bytes(), sig.read_bytes(), signing.bundled_keys())
    except SigningError as e:
        pytest.fail(f"pack.json.sig does not verify ({e}); re-sign: consentwatch rules sign --key "
                    f"{MAINTAINER_KEY} src/consentwatch/rules/pack.json")
