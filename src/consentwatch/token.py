"""The API pairing token: random, created on first need, readable by the user only (file `token`, mode 0600)."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "token"
_MIN_LEN = 32  # a shorter (hand-edited, truncated) token is replaced, not trusted


def token_path(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def get_token(data_dir: Path) -> str:
    """The token of this install, created (atomically, 0600) if it does not exist yet."""
    path = token_path(data_dir)
    existing = _read(path)
    if existing:
        return existing
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if another process created the token meanwhile: then theirs wins, both agree
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # file systems without hard links
        if _read(path) is None:
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return _read(path) or token


def existing_token(data_dir: Path) -> str | None:
    """The token if this install has a usable one; never creates, repairs or removes anything (the pairing host
    only hands it on)."""
    try:
        text = token_path(data_dir).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if len(text) >= _MIN_LEN and not any(c.isspace() for c in text) else None


def _read(path: Path) -> str | None:
    try:
        text = path.read_text("ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if len(text) < _MIN_LEN:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return None
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return text


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison (no early exit on the first differing byte)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))
