"""Warnings and the history of observed setting states, deduplicated, on disk before anyone hears of them.

One warning per rule (per notice date for policy notices), not one per page view. The history keeps
only changes of state (on -> off -> on), which is what the report needs and what `toggle_reenabled`
is computed from. Nothing from a page is stored beyond the rule's own facts and the URL's path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from tinydb import Query

from ..findings import EYES, POLICY_CHANGED, POLICY_UPDATE, TOGGLE_OFF, TOGGLE_ON, TOGGLE_REENABLED, Finding
from .atomic import open_db
from .journal import open_journaled

STATE_FILE = "state.json"
LAST_SEEN_EVERY = dt.timedelta(seconds=60)  # page views only refresh last_seen this often (disk writes)

ACTIVE, RESOLVED, DISMISSED = "active", "resolved", "dismissed"
Q = Query()


class RuleFacts(Protocol):
    """What a new warning copies from its rule (rules.model.Rule has it). The store knows findings, not rules."""

    data: dict
    platform_name: str
    hosts: Sequence[str]


@dataclass(frozen=True, slots=True)
class Event:
    """Something clients should hear: type 'warning' (new or re-raised) or 'resolved' (off or dismissed)."""

    type: str
    warning: dict


def warning_key(f: Finding) -> str:
    if f.kind == POLICY_UPDATE:
        return f"{f.rule_id}:policy:{f.effective_date or 'undated'}"
    if f.kind == POLICY_CHANGED and f.policy is not None:
        # one per version of the document's AI part: the same text seen again is the same warning
        return f"{f.rule_id}:policy-text:{f.policy.document}:{f.policy.fingerprint}"
    return f"{f.rule_id}:toggle"


def warning_id(key: str) -> str:
    return "w-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _parse(ts: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


# What every stored document must look like for the code that reads it (the API, the report, record()).
# A file that is valid JSON but holds something else (hand-edited, another program's, a future format) is
# set aside like a corrupt one: starting empty is better than a traceback on every request.
_STR, _OPT_STR = (str,), (str, type(None))
WARNING_FIELDS = {"id": _STR, "key": _STR, "kind": _STR, "status": _STR, "rule_id": _STR, "first_seen": _STR,
                  "last_seen": _STR}
WARNING_OPTIONAL = {"platform": _STR, "platform_name": _OPT_STR, "title": _OPT_STR, "summary": _OPT_STR,
                    "setting": _OPT_STR, "state": _OPT_STR, "url": _OPT_STR, "effective_date": _OPT_STR,
                    "region": _OPT_STR, "region_affected": (bool, type(None)), "hosts": (list,),
                    "remedy": (dict, type(None)), "resolved_at": _OPT_STR, "dismissed_at": _OPT_STR,
                    "reactivated_at": _OPT_STR, "policy": (dict, type(None))}
HISTORY_FIELDS = {"rule_id": _STR, "state": _STR, "observed_at": _STR}
HISTORY_OPTIONAL = {"platform": _STR, "url": _OPT_STR, "setting": _OPT_STR}


def state_problem(data: object) -> str | None:
    """Why stored state cannot be used as it is (one line), or None when every document has its shape."""
    if data is None:
        return None
    if not isinstance(data, dict):
        return "not an object of tables"
    for table, required, optional in (("warnings", WARNING_FIELDS, WARNING_OPTIONAL),
                                      ("history", HISTORY_FIELDS, HISTORY_OPTIONAL)):
        docs = data.get(table, {})
        if not isinstance(docs, dict):
            return f"{table} is not a table"
        for doc_id, doc in docs.items():
            if not str(doc_id).isdigit() or not isinstance(doc, dict):
                return f"{table}/{doc_id} is not a document"
            for name, types in required.items():
                if not isinstance(doc.get(name), types):
                    return f"{table}/{doc_id}/{name} is missing or not a {types[0].__name__}"
            for name, types in optional.items():
                if name in doc and not isinstance(doc[name], types):
                    return f"{table}/{doc_id}/{name} is not a {types[0].__name__}"
            if table == "warnings" and doc["status"] not in (ACTIVE, RESOLVED, DISMISSED):
                return f"{table}/{doc_id}/status {doc['status']!r} is not one this version knows"
    return None


class StateStore:
    def __init__(self, data_dir: Path, region: str | None = None, journal: bool = True, reader: bool = False):
        self.path = Path(data_dir) / STATE_FILE
        # A snapshot and a journal (store/journal.py): a commit appends one line, whatever is stored.
        # journal=False: the whole file rewritten on every commit, as before the journal (bench/store.py
        # measures both). Documents of the wrong shape are set aside like a corrupt file (state_problem); a
        # reader (the report) touches no file: a writer may be running (it holds the data dir's lock).
        self.db = open_journaled(self.path, writer=not reader, check=state_problem) if journal else \
            open_db(self.path, sweep=not reader, check=state_problem)
        self.region = region
        self.warnings = self.db.table("warnings")
        self.history = self.db.table("history")
        self._lock = threading.RLock()
        # Indexes over the tables, so a finding costs the same with 10 or 10,000 warnings stored
        # (TinyDB's queries scan every document).
        self._by_key: dict[str, int] = {}
        self._by_id: dict[str, int] = {}
        for d in self.warnings.all():
            self._index(d, d.doc_id)
        self._last: dict[str, tuple[str, int, str]] = {}  # rule id -> (observed_at, doc_id, state)
        # Changes made so far (history entries, warnings inserted or updated): equal before and after a record()
        # means it changed nothing. The page eye answers a repeat from memory while this stays the same.
        self.writes = 0
        for h in self.history.all():
            self._note_history(h.get("rule_id", ""), h.get("observed_at", ""), h.doc_id, h.get("state"))

    @property
    def storage(self):
        return self.db.storage

    @property
    def lock(self) -> threading.RLock:
        """Held by every read and write: hold it too to read `writes` together with what a record() did."""
        return self._lock

    def close(self) -> None:
        self.db.close()

    # -- reading ---------------------------------------------------------------------------------
    def list_warnings(self, status: str = ACTIVE) -> list[dict]:
        with self._lock:
            docs = self.warnings.all() if status == "all" else self.warnings.search(Q.status == status)
            return sorted((dict(d) for d in docs), key=lambda w: w.get("first_seen", ""))

    def get(self, wid: str) -> dict | None:
        with self._lock:
            doc_id = self._by_id.get(wid)
            doc = self.warnings.get(doc_id=doc_id) if doc_id is not None else None
            return dict(doc) if doc else None

    def list_history(self) -> list[dict]:
        with self._lock:
            return sorted((dict(d) for d in self.history.all()), key=lambda h: h.get("observed_at", ""))

    def last_state(self, rule_id: str) -> str | None:
        last = self._last.get(rule_id)
        return last[2] if last else None

    def _note_history(self, rule_id: str, observed_at: str, doc_id: int, state) -> None:
        # observed_at has one-second precision: within the same second, the later write (doc_id) wins
        if (observed_at, doc_id) > self._last.get(rule_id, ("", 0, ""))[:2]:
            self._last[rule_id] = (observed_at, doc_id, state)

    def _index(self, warning: dict, doc_id: int) -> None:
        if "key" in warning:
            self._by_key[warning["key"]] = doc_id
        if "id" in warning:
            self._by_id[warning["id"]] = doc_id

    def _find(self, key: str):
        doc_id = self._by_key.get(key)
        return self.warnings.get(doc_id=doc_id) if doc_id is not None else None

    @contextlib.contextmanager
    def batch(self):
        """Findings recorded inside the block reach the disk in one atomic write at its end; announce their
        events after the block, never inside it."""
        with self._lock, self.db.storage.deferred():
            yield

    # -- writing ---------------------------------------------------------------------------------
    def record(self, finding: Finding, rule: RuleFacts | None = None) -> tuple[Finding, list[Event]]:
        """Store one finding. Returns it (kind may become toggle_reenabled) and the events to announce.

        Events are returned only after the write: whatever a client hears about is already on disk.
        """
        with self.batch():
            if finding.kind in (TOGGLE_ON, TOGGLE_OFF):
                last = self._last.get(finding.rule_id)
                if last is not None and _parse(finding.observed_at) < _parse(last[0]):
                    # older than what is known (an old recording replayed, a late answer): history does not
                    # run backwards, so it changes nothing, and above all raises no "re-enabled"
                    return finding, []
                previous = last[2] if last else None
                if finding.kind == TOGGLE_ON and previous == "off":
                    finding = finding.replace(kind=TOGGLE_REENABLED)
                if previous != finding.state:
                    self.writes += 1
                    doc_id = self.history.insert({"rule_id": finding.rule_id, "platform": finding.platform,
                                                  "state": finding.state, "observed_at": finding.observed_at,
                                                  "url": finding.url, "setting": finding.setting,
                                                  "seen_by": finding.seen_by})
                    self._note_history(finding.rule_id, finding.observed_at, doc_id, finding.state)
            if finding.kind == TOGGLE_OFF:
                return finding, self._resolve(finding)
            return finding, self._raise(finding, rule)

    def _raise(self, f: Finding, rule: RuleFacts | None) -> list[Event]:
        key = warning_key(f)
        existing = self._find(key)
        if existing is None:
            self.writes += 1
            w = self._new_warning(key, f, rule)
            self._index(w, self.warnings.insert(w))
            return [Event("warning", w)]
        ids = [existing.doc_id]
        eyes = _with_eye(existing.get("seen_by"), f.seen_by)
        if existing["status"] == ACTIVE or (existing["status"] == DISMISSED and f.kind != TOGGLE_REENABLED):
            # same warning seen again: refresh last_seen now and then, never re-announce a dismissed one
            update = {}
            if _parse(f.observed_at) - _parse(existing.get("last_seen", "")) >= LAST_SEEN_EVERY:
                update["last_seen"] = f.observed_at
            if eyes != existing.get("seen_by"):
                update["seen_by"] = eyes  # the other eye saw it too: clients hear of it (once per eye)
            if update:
                self.writes += 1
                self.warnings.update(update, doc_ids=ids)
            if "seen_by" in update and existing["status"] == ACTIVE:
                return [Event("warning", dict(self.warnings.get(doc_id=ids[0])))]
            return []
        # resolved before (turned off), or dismissed and now silently re-enabled: raise it again
        update = {"status": ACTIVE, "kind": f.kind, "state": f.state, "last_seen": f.observed_at, "url": f.url,
                  "reactivated_at": f.observed_at, "resolved_at": None, "dismissed_at": None, "seen_by": eyes}
        self.writes += 1
        self.warnings.update(update, doc_ids=ids)
        return [Event("warning", dict(self.warnings.get(doc_id=ids[0])))]

    def _resolve(self, f: Finding) -> list[Event]:
        existing = self._find(warning_key(f))
        if existing is None or existing["status"] != ACTIVE:
            return []
        self.writes += 1
        self.warnings.update({"status": RESOLVED, "state": "off", "resolved_at": f.observed_at,
                              "last_seen": f.observed_at}, doc_ids=[existing.doc_id])
        return [Event("resolved", dict(self.warnings.get(doc_id=existing.doc_id)))]

    def dismiss(self, wid: str, when: dt.datetime | None = None) -> tuple[dict | None, list[Event]]:
        with self.batch():
            doc_id = self._by_id.get(wid)
            doc = self.warnings.get(doc_id=doc_id) if doc_id is not None else None
            if doc is None:
                return None, []
            if doc["status"] == DISMISSED:
                return dict(doc), []
            stamp = (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
            self.writes += 1
            self.warnings.update({"status": DISMISSED, "dismissed_at": stamp}, doc_ids=[doc.doc_id])
            w = dict(self.warnings.get(doc_id=doc.doc_id))
        return w, [Event("resolved", w)]

    def unchanged_until(self, findings: Sequence[Finding]) -> dt.datetime | None:
        """Until when (exclusive, for an observed_at to the second) recording these findings again changes
        nothing, given that recording them just now changed nothing and nothing else is written meanwhile
        (`writes` stays the same): the first refresh of `last_seen` due on one of their warnings. None when none
        is ever due. Call it with the store's lock held, right after that record()."""
        with self._lock:
            due = None
            for f in findings:
                existing = self._find(warning_key(f))
                if existing is None or f.kind == TOGGLE_OFF:
                    continue  # an "off" changes only an active warning, and none was (nothing changed)
                at = _parse(existing.get("last_seen", "")) + LAST_SEEN_EVERY
                due = at if due is None else min(due, at)
            return due

    def _new_warning(self, key: str, f: Finding, rule: RuleFacts | None) -> dict:
        data = rule.data if rule else {}
        return {
            "id": warning_id(key), "key": key, "kind": f.kind, "status": ACTIVE,
            "platform": f.platform, "platform_name": rule.platform_name if rule else f.platform,
            "rule_id": f.rule_id, "title": data.get("title", f.setting), "summary": data.get("summary", ""),
            "setting": f.setting, "state": f.state, "url": f.url, "effective_date": f.effective_date,
            "first_seen": f.observed_at, "last_seen": f.observed_at,
            "region": self.region, "region_affected": True if self.region else None,
            "hosts": list(rule.hosts) if rule else [], "remedy": f.remedy.to_dict(),
            "resolved_at": None, "dismissed_at": None, "reactivated_at": None,
            "policy": None,  # policy_changed: the change itself (below)
            "seen_by": [f.seen_by],
            **(_policy_fields(f) if f.policy is not None else {}),
        }


def _policy_fields(f: Finding) -> dict:
    """A policy_changed warning speaks in the words the detector built, and carries the change itself."""
    return {"title": f.policy.headline, "summary": f.policy.text, "policy": f.policy.to_dict()}


def _with_eye(eyes, eye: str) -> list[str]:
    """The eyes that saw a warning, with `eye` added, in a fixed order (network, page). Older files have none."""
    have = set(eyes) if isinstance(eyes, list) else set()
    have.add(eye)
    return [e for e in EYES if e in have] + sorted(e for e in have if e not in EYES)
