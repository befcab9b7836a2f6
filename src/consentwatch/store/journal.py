"""TinyDB storage whose commit costs the same with 10 or 100,000 documents stored: a snapshot and a journal.

`state.json` is the snapshot: a plain TinyDB JSON document (`{"table": {"doc id": {...}}}`), the format every
earlier version wrote, always replaced whole and atomically (temp file, fsync, os.replace). `state.journal`
next to it holds what changed since, one JSON line per commit, appended and fdatasync'd before the commit
returns (so before anything is announced):

    {"journal":"consentwatch","version":1}                        <- first line, always
    {"put":{"warnings":{"7":{...the whole document...}}},"del":{"history":["3"]},"clear":["x"]}

A line is one commit (a burst of findings stored in one batch is one line), applied whole: `clear` (tables
emptied), then `del` (document ids removed), then `put` (whole documents, new or replaced). Because every put
carries the whole document, applying a line twice gives the same state, which is what makes compaction safe:
it writes a new snapshot (atomic), and only then replaces the journal by an empty one (atomic); killed between
the two, the next start replays the old journal over the new snapshot and gets the same documents.

TinyDB itself rebuilds a table (two dict copies) and hands the storage the whole database on every write.
`DeltaTable` changes the table in place and tells the storage which documents it touched: with it, a commit
costs one line, whatever is stored. Compaction runs on start (when the journal holds commits) and when the
journal grows past COMPACT_FACTOR x the snapshot (at least COMPACT_MIN_BYTES), so its cost is spread over at
least as many commits as the snapshot has documents.

A torn last line (a write cut by kill -9 or a power cut: no newline at its end) was never acknowledged: it is
dropped, and the writer cuts it off. Anything else that does not parse (or a document of the wrong shape, per
the caller's `check`) is set aside like a corrupt snapshot: the journal is moved to
`state.journal.corrupt-<timestamp>`, the commits before the bad line are kept, one log line says so. A corrupt
snapshot is moved aside together with its journal (its changes are relative to that snapshot) and the store
starts empty. A reader (`writer=False`: the report, while `consentwatch run` may be writing) touches no file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from .atomic import atomic_write, move_aside, write_failed, write_worked

log = logging.getLogger(__name__)

HEADER = {"journal": "consentwatch", "version": 1}
HEADER_LINE = json.dumps(HEADER, separators=(",", ":")).encode() + b"\n"
COMPACT_FACTOR = 2  # the journal may grow to this many times the snapshot before it is folded in
COMPACT_MIN_BYTES = 4 << 20  # ... and to at least this much (a small store is not rewritten every few commits)
CHUNK_DOCS = 1000  # documents per encoded chunk of a snapshot: memory stays bounded, encoding stays in C

Check = Callable[[dict], "str | None"]


def journal_path(snapshot: Path) -> Path:
    return Path(snapshot).with_suffix(".journal")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def snapshot_chunks(data: dict[str, dict]) -> Iterator[bytes]:
    """The same bytes as one json.dumps of `data`, in pieces: a 100 MB store never becomes one 100 MB string."""
    yield b"{"
    for i, (name, docs) in enumerate(data.items()):
        yield (b"," if i else b"") + _dumps(name) + b":{"
        items = iter(docs.items())
        first = True
        while chunk := dict(islice(items, CHUNK_DOCS)):
            yield (b"" if first else b",") + _dumps(chunk)[1:-1]
            first = False
        yield b"}"
    yield b"}"


# -- reading -------------------------------------------------------------------------------------------

class BadLine(ValueError):
    pass


def _is_id(doc_id: object) -> bool:
    return isinstance(doc_id, str) and doc_id.isdigit()


def parse_line(raw: bytes, check: Check | None = None) -> dict:
    """One commit line, checked; raises BadLine with the reason."""
    try:
        line = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadLine("not JSON") from None
    if not isinstance(line, dict) or not line.keys() <= {"put", "del", "clear"}:
        raise BadLine("not a commit")
    clear, dels, puts = line.get("clear", []), line.get("del", {}), line.get("put", {})
    if not isinstance(clear, list) or not all(isinstance(t, str) for t in clear):
        raise BadLine("clear is not a list of tables")
    if not isinstance(dels, dict) or not all(isinstance(ids, list) and all(map(_is_id, ids))
                                             for ids in dels.values()):
        raise BadLine("del is not a list of document ids per table")
    if not isinstance(puts, dict) or not all(isinstance(docs, dict) and
                                             all(_is_id(i) and isinstance(d, dict) for i, d in docs.items())
                                             for docs in puts.values()):
        raise BadLine("put is not documents per table")
    if check is not None and puts and (problem := check(puts)):
        raise BadLine(f"a document of the wrong shape: {problem}")
    return line


def apply_line(data: dict[str, dict], line: dict) -> None:
    for table in line.get("clear", ()):
        data[table] = {}
    for table, ids in line.get("del", {}).items():
        docs = data.get(table)
        if docs:
            for doc_id in ids:
                docs.pop(doc_id, None)
    for table, docs in line.get("put", {}).items():
        data.setdefault(table, {}).update(docs)


@dataclass
class JournalRead:
    lines: list[dict] = field(default_factory=list)
    good_end: int = 0  # bytes up to the end of the last usable line
    torn: bool = False  # an unfinished last line was dropped
    bad: str | None = None  # why the journal is corrupt (the line number and what is wrong)


def read_journal(raw: bytes, check: Check | None = None) -> JournalRead:
    out = JournalRead()
    pos, number = 0, 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        if end < 0:
            out.torn = True
            break
        number += 1
        segment = raw[pos:end]
        if number == 1:
            try:
                header = json.loads(segment)
            except (ValueError, UnicodeDecodeError, RecursionError):
                header = None
            if not isinstance(header, dict) or header.get("journal") != HEADER["journal"]:
                out.bad = "line 1: not a consentwatch journal"
                break
            if header.get("version") != HEADER["version"]:
                out.bad = f"line 1: journal version {header.get('version')!r} is not one this version knows"
                break
        else:
            try:
                out.lines.append(parse_line(segment, check))
            except BadLine as e:
                out.bad = f"line {number}: {e}"
                break
        pos = end + 1
        out.good_end = pos
    return out


def read_stored(snapshot: str | os.PathLike, check: Check | None = None) -> dict[str, dict]:
    """What is on disk: the snapshot with its journal applied, read without touching any file."""
    return JournaledStorage(snapshot, writer=False, check=check).read()


# -- the storage ---------------------------------------------------------------------------------------

class ReadOnlyStore(RuntimeError):
    pass


class JournaledStorage(Storage):
    def __init__(self, path: str | os.PathLike, mode: int = 0o600, writer: bool = True, check: Check | None = None):
        self.path = Path(path)
        self.journal = journal_path(self.path)
        self.mode = mode
        self.writer = writer
        self.check = check  # the caller's own shape check: a reason means "corrupt", like bad JSON
        self._data: dict[str, dict] | None = None
        self._lock = threading.RLock()
        self.write_errors = 0
        self.compactions = 0
        self._compact_errors = 0
        self._defer = 0  # > 0 inside deferred(): changes are held until its end, then written as one line
        self._touched: dict[str, set[str]] = {}  # table -> ids of documents changed since the last line
        self._cleared: set[str] = set()
        self._whole = False  # the next write must be a compaction (whole data replaced, or the journal unusable)
        self._fd: int | None = None
        self._journal_size = 0  # bytes of whole lines in the journal: what the next line is appended after
        self._trim = False  # a failed append may have left part of a line: cut back to _journal_size first
        self._next_compaction = COMPACT_MIN_BYTES
        self._snapshot_size = 0
        if writer:
            # a writer killed between mkstemp and os.replace leaves its temp file: we are the one writer now
            for name in (self.path.name, self.journal.name):
                for stale in self.path.parent.glob(f".{name}.*.tmp"):
                    with contextlib.suppress(OSError):
                        stale.unlink()

    # reading ----------------------------------------------------------------------------------------
    def read(self) -> dict[str, dict]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = self._load()
                    if self._whole:
                        self._flush()  # compaction on start (or after a corrupt file was set aside)
        return self._data

    def _load(self) -> dict[str, dict]:
        # The journal is opened before the snapshot is read: a compaction in between (another process writing)
        # replaces both files, and this old journal replayed over either snapshot gives the same documents.
        journal = None
        try:
            journal = open(self.journal, "rb")
        except FileNotFoundError:
            pass
        except OSError as e:
            log.error("cannot read %s: %s", self.journal, e.strerror or e)
        try:
            data, snapshot_bad = self._load_snapshot()
            raw = b""
            if journal is not None:
                try:
                    raw = journal.read()
                except OSError as e:
                    log.error("cannot read %s: %s", self.journal, e.strerror or e)
        finally:
            if journal is not None:
                journal.close()
        self._snapshot_size = self._size(self.path)
        self._next_compaction = max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self._snapshot_size)
        if snapshot_bad:
            if raw and self.writer:
                self._set_aside(self.journal, "its snapshot was corrupt")
            self._whole = self.writer
            return {}
        done = read_journal(raw, self.check)
        for line in done.lines:
            apply_line(data, line)
        if done.bad:
            if self.writer:
                self._set_aside(self.journal, done.bad, kept=len(done.lines))
            else:
                log.warning("journal %s is corrupt (%s); using the %d commits before it", self.journal, done.bad,
                            len(done.lines))
        elif done.torn and self.writer:
            log.info("journal %s ended in an unfinished commit (never acknowledged): dropped", self.journal)
        if self.writer:
            self._journal_size = done.good_end if not done.bad else 0
            self._trim = done.torn
            # compaction on start: a journal with commits (or a bad or torn end) is folded into a new snapshot
            if raw and raw != HEADER_LINE:
                self._whole = True
        return data

    def _load_snapshot(self) -> tuple[dict[str, dict], bool]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, False
        except OSError as e:
            log.error("cannot read %s: %s; starting empty", self.path, e.strerror or e)
            return {}, False
        if not raw.strip():
            return {}, False
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not a TinyDB document")
            if self.check is not None and (problem := self.check(data)):
                raise ValueError(f"JSON of the wrong shape: {problem}")
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            why = "not JSON" if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError, RecursionError)) else str(e)
            if self.writer:
                self._set_aside(self.path, why)
            else:
                log.warning("store %s is corrupt (%s); reading it as empty", self.path, why)
            return {}, True
        return data, False

    def _set_aside(self, path: Path, why: str, kept: int | None = None) -> None:
        what = "store" if path == self.path else "journal"
        rest = "starting empty" if kept is None else f"the {kept} commits before it kept"
        try:
            target = move_aside(path)
            log.warning("%s %s was corrupt (%s): moved aside to %s, %s", what, path, why, target.name, rest)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s %s was corrupt (%s) and could not be moved aside (%s); %s", what, path, why,
                        e.strerror or e, rest)

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    # writing ----------------------------------------------------------------------------------------
    def write(self, data: dict[str, Any]) -> None:
        """The whole database replaced (TinyDB's own tables, drop_tables): written as a new snapshot."""
        self._writable()
        with self._lock:
            self._data = data
            self._whole = True
            if not self._defer:
                self._flush()

    def changed(self, table: str, doc_ids: Iterable[str], cleared: bool = False) -> None:
        """These documents of `table` changed in memory (DeltaTable calls this): they go into the next line."""
        self._writable()
        with self._lock:
            if cleared:
                self._cleared.add(table)
            self._touched.setdefault(table, set()).update(doc_ids)
            if not self._defer:
                self._flush()

    def _writable(self) -> None:
        if not self.writer:
            raise ReadOnlyStore(f"{self.path} was opened for reading only")

    @contextlib.contextmanager
    def deferred(self):
        """Every change inside the block reaches the disk as one journal line when the outermost block ends.

        Group commit: a history entry and its warning never land apart, and a burst of findings costs one
        line and one fdatasync. The caller announces what it wrote only after the block."""
        with self._lock:
            self._defer += 1
            try:
                yield
            finally:
                self._defer -= 1
                if not self._defer:
                    self._flush()

    def _flush(self) -> None:
        if not (self._whole or self._touched or self._cleared):
            return
        try:
            if self._whole:
                self._compact()
            else:
                self._append(self._commit_line())
                self._touched.clear()
                self._cleared.clear()
        except OSError as e:
            # the changes stay pending and go into the next line that can be written
            write_failed(self, self.journal, e)
            return
        write_worked(self, self.journal)
        if self._journal_size > self._next_compaction:
            try:
                self._compact()
            except OSError as e:
                # nothing is lost (the journal holds it all): try again after as many bytes more
                self._next_compaction = self._journal_size + max(COMPACT_MIN_BYTES, self._snapshot_size)
                self._compact_errors += 1
                if self._compact_errors == 1 or self._compact_errors % 100 == 0:
                    log.warning("cannot compact %s (%s); the journal keeps growing until it can",
                                self.journal, e.strerror or e)

    def _commit_line(self) -> bytes:
        data = self._data or {}
        line: dict[str, Any] = {}
        if self._cleared:
            line["clear"] = sorted(self._cleared)
        puts: dict[str, dict] = {}
        dels: dict[str, list[str]] = {}
        for table, ids in self._touched.items():
            docs = data.get(table, {})
            for doc_id in ids:
                doc = docs.get(doc_id)
                if doc is None:
                    dels.setdefault(table, []).append(doc_id)
                else:
                    puts.setdefault(table, {})[doc_id] = doc
        if dels:
            line["del"] = dels
        if puts:
            line["put"] = puts
        return _dumps(line) + b"\n"

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            self._open_journal()
        if self._trim:
            os.ftruncate(self._fd, self._journal_size)
            self._trim = False
        try:
            append_durably(self._fd, line)
        except OSError:
            self._trim = True  # part of the line may be there: the next append cuts it off first
            raise
        self._journal_size += len(line)

    def _open_journal(self) -> None:
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            atomic_write(self.journal, HEADER_LINE, self.mode)
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
            self._journal_size = len(HEADER_LINE)
            self._trim = False
        else:
            size = os.fstat(fd).st_size
            if size < len(HEADER_LINE):  # empty (or less than a header): start it again
                os.ftruncate(fd, 0)
                append_durably(fd, HEADER_LINE)
                self._journal_size = len(HEADER_LINE)
                self._trim = False
            elif size != self._journal_size:
                self._trim = True
        self._fd = fd

    def compact(self) -> None:
        """Fold the journal into a new snapshot now (it also happens by itself: on start and as it grows)."""
        self._writable()
        with self._lock:
            self._whole = True
            self._flush()

    def _compact(self) -> None:
        data = self._data or {}
        atomic_write(self.path, snapshot_chunks(data), self.mode)
        self._snapshot_size = self._size(self.path)
        self._touched.clear()
        self._cleared.clear()
        self._whole = False
        # everything is in the snapshot now; the journal starts again (if this fails, the old journal stays
        # valid over the new snapshot and the next lines go after it)
        self._next_compaction = max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self._snapshot_size)
        atomic_write(self.journal, HEADER_LINE, self.mode)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = fd
        self._journal_size = len(HEADER_LINE)
        self._trim = False
        self.compactions += 1
        self._compact_errors = 0

    @property
    def journal_bytes(self) -> int:
        return self._journal_size

    def close(self) -> None:
        with self._lock:
            if self.writer and not self._defer:
                self._flush()
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None


def append_durably(fd: int, payload: bytes) -> None:
    """Append `payload` and wait until it is on the disk (fdatasync: the data and the new length)."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)


# -- TinyDB with in-place tables ------------------------------------------------------------------------

class _TrackedTable(MutableMapping):
    """A TinyDB table's raw documents (string ids) seen with integer ids, noting each id an update touches.

    Any document read inside an update counts as touched (an update by query reads them all, and may change
    any): the journal line may then hold documents that did not change, never miss one that did."""

    __slots__ = ("raw", "id_class", "touched", "cleared")

    def __init__(self, raw: dict[str, dict], id_class: type = int):
        self.raw = raw
        self.id_class = id_class
        self.touched: set[str] = set()
        self.cleared = False

    def __getitem__(self, doc_id):
        key = str(doc_id)
        doc = self.raw[key]
        self.touched.add(key)
        return doc

    def __setitem__(self, doc_id, doc) -> None:
        key = str(doc_id)
        self.raw[key] = doc
        self.touched.add(key)

    def __delitem__(self, doc_id) -> None:
        key = str(doc_id)
        del self.raw[key]
        self.touched.add(key)

    def __contains__(self, doc_id) -> bool:
        return str(doc_id) in self.raw

    def __iter__(self):
        return (self.id_class(k) for k in list(self.raw))

    def __len__(self) -> int:
        return len(self.raw)

    def clear(self) -> None:
        self.raw.clear()
        self.touched.clear()
        self.cleared = True


class DeltaTable(Table):
    """A TinyDB table that updates its documents in place and tells the storage which ones changed.

    TinyDB's own table copies the whole table twice and hands the storage the whole database on every
    insert or update: the cost of a write grows with what is stored, whatever the storage does with it."""

    def _update_table(self, updater: Callable[[dict[int, Any]], None]) -> None:
        storage = self._storage
        changed = getattr(storage, "changed", None)
        if changed is None:
            return super()._update_table(updater)
        tables = storage.read()
        raw = tables.get(self.name)
        if raw is None:
            raw = tables[self.name] = {}
        view = _TrackedTable(raw, self.document_id_class)
        try:
            updater(view)  # type: ignore[arg-type]
        finally:
            self.clear_cache()
            if view.touched or view.cleared:
                changed(self.name, view.touched, view.cleared)


class JournaledDB(TinyDB):
    table_class = DeltaTable
    default_storage_class = JournaledStorage


def open_journaled(path: str | os.PathLike, writer: bool = True, check: Check | None = None) -> TinyDB:
    return JournaledDB(path, writer=writer, check=check)
