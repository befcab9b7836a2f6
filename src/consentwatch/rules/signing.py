"""Signed rule packs: Ed25519 over the exact bytes of the pack file.

A signature lives next to the pack as `PACK.sig`: the base64 signature on its first line and a
`key-id:` line naming the key that made it (the first 16 hex digits of SHA-256 over the raw public key).
The key id only picks the key to try first; every trusted key is tried, so a wrong or missing id line
does not matter, and a signature only counts when it verifies.

Trusted keys: the maintainers' public keys bundled in `consentwatch/rules/keys/` plus whatever the user
names with `--trust`. Private keys never enter the repository.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_KEY_NAME = "consentwatch-signing.key"
PUBLIC_KEY_NAME = "consentwatch-signing.pub.pem"
SIG_SUFFIX = ".sig"
MAX_SIG_BYTES = 4096


class SigningError(Exception):
    """A key or signature that cannot be used. The message is one line for the user."""


@dataclass(frozen=True)
class TrustedKey:
    key: Ed25519PublicKey
    key_id: str
    origin: str  # "bundled maintainer key NAME" or the --trust file path


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sig_path(pack_path: Path) -> Path:
    return pack_path.with_name(pack_path.name + SIG_SUFFIX)


# -- keys ------------------------------------------------------------------------------------------

def keygen(directory: Path) -> tuple[Path, Path, str]:
    """Write a new key pair into `directory`: the private key (PEM, mode 0600) and the public key.

    Refuses to overwrite an existing key: losing a signing key silently is worse than an error.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise SigningError(f"cannot create {directory}: {e.strerror or e}") from None
    priv_path, pub_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    for p in (priv_path, pub_path):
        if p.exists():
            raise SigningError(f"{p} already exists; not overwriting a key (choose another directory)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pub = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        # created 0600 from the start: the key is never readable by others, not even for a moment
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(priv_path, 0o600)  # in case the umask or the filesystem widened it
        pub_path.write_bytes(pub)
    except OSError as e:
        raise SigningError(f"cannot write keys in {directory}: {e.strerror or e}") from None
    return priv_path, pub_path, key_id(private.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read(path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        why = "it is password-protected" if "password" in str(e).lower() else "not a PEM private key"
        raise SigningError(f"{path}: cannot use as a signing key ({why})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path, origin: str | None = None) -> TrustedKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise SigningError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path}: not an Ed25519 public key")
    return TrustedKey(key, key_id(key), origin or str(path))


def bundled_keys() -> list[TrustedKey]:
    """The maintainers' public keys shipped with the package (rules/keys/*pub*.pem)."""
    out = []
    folder = resources.files(__package__).joinpath("keys")
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if "pub" not in entry.name or not entry.name.endswith(".pem"):
            continue
        try:
            key = serialization.load_pem_public_key(entry.read_bytes())
        except (ValueError, TypeError, OSError):
            continue
        if isinstance(key, Ed25519PublicKey):
            out.append(TrustedKey(key, key_id(key), f"bundled maintainer key {entry.name}"))
    return out


# -- signatures ------------------------------------------------------------------------------------

def sign_bytes(private: Ed25519PrivateKey, data: bytes) -> str:
    """The text of a .sig file for `data`."""
    sig = base64.b64encode(private.sign(data)).decode("ascii")
    return f"{sig}\nkey-id: {key_id(private.public_key())}\n"


def sign_file(key_path: Path, pack_path: Path) -> tuple[Path, str]:
    private = load_private_key(key_path)
    data = _read(pack_path, "file")
    out = sig_path(pack_path)
    try:
        out.write_text(sign_bytes(private, data), encoding="ascii")
    except OSError as e:
        raise SigningError(f"cannot write {out}: {e.strerror or e}") from None
    return out, key_id(private.public_key())


def parse_sig(text: bytes) -> tuple[bytes, str | None]:
    """(signature, key id or None) from a .sig file. Raises SigningError when it is not one."""
    if len(text) > MAX_SIG_BYTES:
        raise SigningError("signature file is too large to be a signature")
    try:
        lines = [ln.strip() for ln in text.decode("ascii").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise SigningError("signature file is not text") from None
    kid = None
    sig = None
    for ln in lines:
        if ln.lower().startswith("key-id:"):
            kid = ln.split(":", 1)[1].strip().lower() or None
        elif sig is None:
            try:
                sig = base64.b64decode(ln, validate=True)
            except (binascii.Error, ValueError):
                raise SigningError("signature file does not hold a base64 signature") from None
    if sig is None or len(sig) != 64:
        raise SigningError("signature file does not hold an Ed25519 signature")
    return sig, kid


def verify(data: bytes, sig_text: bytes, keys: list[TrustedKey]) -> TrustedKey:
    """The trusted key whose signature over `data` this is. Raises SigningError otherwise."""
    sig, kid = parse_sig(sig_text)
    ordered = sorted(keys, key=lambda k: k.key_id != kid)  # the named key first, then the rest
    for k in ordered:
        try:
            k.key.verify(sig, data)
            return k
        except InvalidSignature:
            continue
    if kid and not any(k.key_id == kid for k in keys):
        raise SigningError(f"signed by key {kid}, which is not trusted (bundled maintainer keys: "
                           f"{', '.join(k.key_id for k in bundled_keys()) or 'none'}; add --trust PUBKEY)")
    raise SigningError("signature does not match the file: it was changed after signing, or signed by another key")


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SigningError(f"{path}: cannot read {what}: {e.strerror or e}") from None
