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

from tinydb import Query

from ..findings import POLICY_UPDATE, TOGGLE_OFF, TOGGLE_ON, TOGGLE_REENABLED, Finding
from ..rules.model import Rule
from .atomic import open_db

STATE_FILE = "state.json"
LAST_SEEN_EVERY = dt.timedelta(seconds=60)  # page views only refresh last_seen this often (disk writes)

ACTIVE, RESOLVED, DISMISSED = "active", "resolved", "dismissed"
Q = Query()


@dataclass(frozen=True, slots=True)
class Event:
    """Something clients should hear: type 'warning' (new or re-raised) or 'resolved' (off or dismissed)."""

    type: str
    warning: dict


def warning_key(f: Finding) -> str:
    if f.kind == POLICY_UPDATE:
        return f"{f.rule_id}:policy:{f.effective_date or 'undated'}"
    return f"{f.rule_id}:toggle"


def warning_id(key: str) -> str:
    return "w-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _parse(ts: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


class StateStore:
    def __init__(self, data_dir: Path, region: str | None = None):
        self.path = Path(data_dir) / STATE_FILE
        self.db = open_db(self.path)
        self.region = region
        self.warnings = self.db.table("warnings")
        self.history = self.db.table("history")
        self._lock = threading.RLock()

    @property
    def storage(self):
        return self.db.storage

    def close(self) -> None:
        self.db.close()

    # -- reading ---------------------------------------------------------------------------------
    def list_warnings(self, status: str = ACTIVE) -> list[dict]:
        with self._lock:
            docs = self.warnings.all() if status == "all" else self.warnings.search(Q.status == status)
            return sorted((dict(d) for d in docs), key=lambda w: w.get("first_seen", ""))

    def get(self, wid: str) -> dict | None:
        with self._lock:
            doc = self.warnings.get(Q.id == wid)
            return dict(doc) if doc else None

    def list_history(self) -> list[dict]:
        with self._lock:
            return sorted((dict(d) for d in self.history.all()), key=lambda h: h.get("observed_at", ""))

    def last_state(self, rule_id: str) -> str | None:
        entries = self.history.search(Q.rule_id == rule_id)
        if not entries:
            return None
        # observed_at has one-second precision: within the same second, the later write (doc_id) wins
        return max(entries, key=lambda h: (h.get("observed_at", ""), h.doc_id)).get("state")

    # -- writing ---------------------------------------------------------------------------------
    def record(self, finding: Finding, rule: Rule | None = None) -> tuple[Finding, list[Event]]:
        """Store one finding. Returns it (kind may become toggle_reenabled) and the events to announce.

        Events are returned only after the write: whatever a client hears about is already on disk.
        """
        with self._lock, self._one_write():
            if finding.kind in (TOGGLE_ON, TOGGLE_OFF):
                previous = self.last_state(finding.rule_id)
                if finding.kind == TOGGLE_ON and previous == "off":
                    finding = finding.replace(kind=TOGGLE_REENABLED)
                if previous != finding.state:
                    self.history.insert({"rule_id": finding.rule_id, "platform": finding.platform,
                                         "state": finding.state, "observed_at": finding.observed_at,
                                         "url": finding.url, "setting": finding.setting})
            if finding.kind == TOGGLE_OFF:
                return finding, self._resolve(finding)
            return finding, self._raise(finding, rule)

    @contextlib.contextmanager
    def _one_write(self):
        """The history entry and the warning change of one finding reach the disk in one atomic write
        (half the fsyncs on the path to the WebSocket, and never one without the other after a crash)."""
        storage = self.db.storage

        def hold(data: dict) -> None:
            storage._data = data  # what TinyDB reads back meanwhile
            pending[:] = [data]

        pending: list[dict] = []
        storage.write = hold  # TinyDB calls storage.write(data); the instance attribute shadows the method
        try:
            yield
        finally:
            del storage.write
            if pending:
                storage.write(pending[0])

    def _raise(self, f: Finding, rule: Rule | None) -> list[Event]:
        key = warning_key(f)
        existing = self.warnings.get(Q.key == key)
        if existing is None:
            w = self._new_warning(key, f, rule)
            self.warnings.insert(w)
            return [Event("warning", w)]
        if existing["status"] == ACTIVE or (existing["status"] == DISMISSED and f.kind != TOGGLE_REENABLED):
            # same warning seen again: refresh last_seen now and then, never re-announce a dismissed one
            if _parse(f.observed_at) - _parse(existing.get("last_seen", "")) >= LAST_SEEN_EVERY:
                self.warnings.update({"last_seen": f.observed_at}, Q.key == key)
            return []
        # resolved before (turned off), or dismissed and now silently re-enabled: raise it again
        update = {"status": ACTIVE, "kind": f.kind, "state": f.state, "last_seen": f.observed_at, "url": f.url,
                  "reactivated_at": f.observed_at, "resolved_at": None, "dismissed_at": None}
        self.warnings.update(update, Q.key == key)
        return [Event("warning", dict(self.warnings.get(Q.key == key)))]

    def _resolve(self, f: Finding) -> list[Event]:
        key = warning_key(f)
        existing = self.warnings.get(Q.key == key)
        if existing is None or existing["status"] != ACTIVE:
            return []
        self.warnings.update({"status": RESOLVED, "state": "off", "resolved_at": f.observed_at,
                              "last_seen": f.observed_at}, Q.key == key)
        return [Event("resolved", dict(self.warnings.get(Q.key == key)))]

    def dismiss(self, wid: str, when: dt.datetime | None = None) -> tuple[dict | None, list[Event]]:
        with self._lock:
            doc = self.warnings.get(Q.id == wid)
            if doc is None:
                return None, []
            if doc["status"] == DISMISSED:
                return dict(doc), []
            stamp = (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
            self.warnings.update({"status": DISMISSED, "dismissed_at": stamp}, Q.id == wid)
            w = dict(self.warnings.get(Q.id == wid))
            return w, [Event("resolved", w)]

    def _new_warning(self, key: str, f: Finding, rule: Rule | None) -> dict:
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
        }
