"""TinyDB storage that never leaves a half-written file behind.

TinyDB's own JSONStorage rewrites the file in place: a crash mid-write corrupts it. Here every write
goes to a temp file in the same directory, is fsynced, then os.replace()d over the old file, so a reader
(or the next start after kill -9) sees either the old or the new content, whole. Reads come from memory
after the first load. A file that does not parse is moved aside as NAME.corrupt-<timestamp>, with one log
line, and the store starts empty: the tool keeps working and the user's old data is kept for inspection.
(With on_corrupt="raise" the reader gets CorruptFile instead and the file stays where it is: the rule store
decides itself what a bad rule database means.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

from tinydb import TinyDB
from tinydb.storages import Storage

log = logging.getLogger(__name__)


class CorruptFile(ValueError):
    """The file is there but is not a JSON document of tables (on_corrupt="raise")."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} is not valid ({why})")
        self.path = path
        self.why = why


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | os.PathLike, mode: int = 0o600, on_corrupt: str = "move", sweep: bool = True,
                 check: Callable[[dict], str | None] | None = None):
        if on_corrupt not in ("move", "raise"):
            raise ValueError(f"on_corrupt must be 'move' or 'raise', not {on_corrupt!r}")
        self.path = Path(path)
        self.mode = mode
        self.on_corrupt = on_corrupt
        self.check = check  # the caller's own shape check: a reason means "corrupt", like bad JSON
        self._data: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.write_errors = 0
        self._defer = 0  # > 0 inside deferred(): writes are held in memory until its end
        self._dirty = False
        # a writer killed between mkstemp and os.replace leaves its temp file: we are the one writer now
        # (sweep=False: a reader of a file another process writes, e.g. the rule database while `rules import` runs)
        for stale in (self.path.parent.glob(f".{self.path.name}.*.tmp") if sweep else ()):
            try:
                stale.unlink()
            except OSError:
                pass

    def read(self) -> dict[str, Any] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def _load(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.error("cannot read %s: %s; starting empty", self.path, e.strerror or e)
            return None
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not a TinyDB document")
            if self.check is not None and (problem := self.check(data)):
                raise ValueError(f"JSON of the wrong shape: {problem}")
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            why = "not JSON" if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)) else str(e)
            if self.on_corrupt == "raise":
                raise CorruptFile(self.path, why) from None
            self._move_aside(why)
            return None
        return data

    def _move_aside(self, why: str) -> None:
        try:
            target = move_aside(self.path)
            log.warning("store %s was corrupt (%s): moved aside to %s, starting empty", self.path, why, target.name)
        except OSError as e:
            log.warning("store %s was corrupt (%s) and could not be moved aside (%s); starting empty",
                        self.path, why, e.strerror or e)

    def write(self, data: dict[str, Any]) -> None:
        self._data = data  # what TinyDB reads back meanwhile
        if self._defer:
            self._dirty = True
            return
        self._write_now(data)

    @contextlib.contextmanager
    def deferred(self):
        """Every write inside the block reaches the disk as one atomic write when the outermost block ends.

        Group commit: a history entry and its warning never land apart, and a burst of findings costs one
        encode + fsync instead of one each. The caller announces what it wrote only after the block."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
            if not self._defer and self._dirty:
                self._dirty = False
                self._write_now(self._data)

    def _write_now(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._lock:
            try:
                atomic_write(self.path, payload, self.mode)
            except OSError as e:
                write_failed(self, self.path, e)
                return
            write_worked(self, self.path)

    def close(self) -> None:
        pass


def write_failed(storage: Any, path: Path, e: OSError) -> None:
    """A storage's write failed (disk full, read-only media...): it keeps serving from memory; said once per streak
    (and every 100th time), counted in `storage.write_errors`."""
    storage.write_errors += 1
    if storage.write_errors == 1 or storage.write_errors % 100 == 0:
        log.error("cannot write %s (%s); keeping changes in memory", path, e.strerror or e)


def write_worked(storage: Any, path: Path) -> None:
    """A storage's write went through: a streak of failures, if any, ends (and is said to)."""
    if storage.write_errors:
        log.info("writing %s works again", path)
        storage.write_errors = 0


def move_aside(path: Path) -> Path:
    """Rename a bad file to NAME.corrupt-<timestamp> next to it (kept for inspection). Raises OSError."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    return target


def atomic_write(path: Path, payload: bytes | Iterable[bytes], mode: int = 0o600) -> None:
    """Write `payload` (bytes, or pieces of them) to `path` so that readers see the old file or the new one,
    never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                f.write(payload)
            else:
                for piece in payload:
                    f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def open_db(path: str | os.PathLike, on_corrupt: str = "move", sweep: bool = True,
            check: Callable[[dict], str | None] | None = None) -> TinyDB:
    return TinyDB(path, storage=AtomicJSONStorage, on_corrupt=on_corrupt, sweep=sweep, check=check)
