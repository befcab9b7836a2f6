"""One writer per data dir: an advisory lock (fcntl) on `consentwatch.lock` in the data dir.

A `run` and a `replay` (or two `run`s) on one data dir would each keep their own copy of the warning store
in memory and overwrite each other's writes. So whoever opens the store for writing (`Watch`) holds this
lock for as long as it does; the lock file says who it is (pid, command, API address) so the next one can
say so in its one-line refusal. The kernel drops the lock when the process ends, however it ends: a lock
file left behind by a killed process never blocks anyone.

Within one process the lock is shared (counted): the addon reopening its store on a new option, or a test
holding two views of one directory, is still one writer.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
from pathlib import Path

LOCK_FILE = "consentwatch.lock"

_held: dict[str, tuple[int, int]] = {}  # real path of the data dir -> (fd, users) in this process
_mutex = threading.Lock()


class DataDirBusy(Exception):
    """Another process writes to this data dir. str() is the user's one line."""

    def __init__(self, data_dir: Path, info: dict):
        self.data_dir = data_dir
        self.info = info
        self.pid = info.get("pid")
        self.api = info.get("api")
        super().__init__(f"consentwatch is already running (pid {self.pid or '?'}, {self.what()})")

    def what(self) -> str:
        if self.api:
            return f"API {self.api}"
        command = self.info.get("command")
        return f"`{command}`" if isinstance(command, str) and command else "API unknown"


def _command() -> str:
    """`consentwatch run`, `consentwatch replay`, `mitmdump`...: who holds the lock, for the refusal."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = argv0.name
    if name == "__main__.py":  # python -m consentwatch(.cli), python -m pytest
        name = "consentwatch" if "consentwatch" in argv0.parts else argv0.parent.name
    if name != "consentwatch":
        return name
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return f"consentwatch {sub}".strip()


def read_info(data_dir: Path) -> dict:
    """What the lock file says (pid, command, api), or {} when it says nothing readable."""
    try:
        info = json.loads((Path(data_dir) / LOCK_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class DataDirLock:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._key = os.path.realpath(self.data_dir)
        self._mine = False

    def acquire(self) -> "DataDirLock":
        """Take the lock or raise DataDirBusy (at once: never waits)."""
        with _mutex:
            if self._mine:
                return self
            held = _held.get(self._key)
            if held is not None:
                _held[self._key] = (held[0], held[1] + 1)
                self._mine = True
                return self
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DataDirBusy(self.data_dir, read_info(self.data_dir)) from None
            except OSError:
                os.close(fd)
                raise
            _held[self._key] = (fd, 1)
            self._mine = True
        self.note(api=None)
        return self

    def note(self, **fields) -> None:
        """Say who holds the lock (the API address once it listens). Only the first holder writes."""
        with _mutex:
            held = _held.get(self._key)
            if not self._mine or held is None:
                return
            info = read_info(self.data_dir)
            if info.get("pid") != os.getpid():
                info = {"pid": os.getpid(), "command": _command(), "api": None}
            info.update(fields)
            payload = (json.dumps(info) + "\n").encode("utf-8")
            fd = held[0]
            try:  # written over the old note, then cut: a reader never finds the file empty meanwhile
                os.pwrite(fd, payload, 0)
                os.ftruncate(fd, len(payload))
            except OSError:
                pass  # the lock holds without its note; the refusal then says less

    def release(self) -> None:
        with _mutex:
            if not self._mine:
                return
            self._mine = False
            fd, users = _held[self._key]
            if users > 1:
                _held[self._key] = (fd, users - 1)
                return
            del _held[self._key]
            try:
                os.ftruncate(fd, 0)  # nobody holds it now: an old note must not name a dead process
            except OSError:
                pass
            os.close(fd)  # closing the only descriptor drops the flock
