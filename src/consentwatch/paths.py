"""Where consentwatch keeps its files: one data dir, private to the user."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


class DataDirError(OSError):
    pass


def default_data_dir() -> Path:
    """The platform's user data dir (not created)."""
    return Path(platformdirs.user_data_dir("consentwatch", appauthor=False))


def data_dir(given: str | os.PathLike | None = None) -> Path:
    """The data dir (created 0700 if missing). Default: the platform's user data dir."""
    path = Path(given).expanduser() if given else default_data_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataDirError(f"data dir {path} is not writable: {e.strerror or e}") from None
    return path
