"""Discovered settings: controls on rule hosts whose label speaks of AI but matches no rule.

One entry per host + path + label, nothing else from the page: `rules suggest` turns them into rule
drafts for maintainers. Bounded: at most `MAX_SUGGESTIONS` entries; repeats only bump a counter now and then.

The table `keys` holds keys learned from the user's own click (detect/learn.py): one entry per rule, endpoint,
key and polarity, with the switch's label. No value but the polarity, nothing else of the request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path

from tinydb import Query

from .atomic import open_db

SUGGESTIONS_FILE = "suggestions.json"
MAX_SUGGESTIONS = 500
Q = Query()
# what a learned key's entry holds (detect/learn.py KeySuggestion): nothing else is ever written
KEY_FIELDS = ("rule_id", "platform", "host", "path", "method", "key", "training_when", "label", "seen")


def suggestion_key(host: str, path: str, label: str) -> str:
    return hashlib.sha256(f"{host}\0{path}\0{label}".encode()).hexdigest()[:20]


class SuggestionStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / SUGGESTIONS_FILE
        self.db = open_db(self.path)
        self.table = self.db.table("suggestions")
        self._lock = threading.Lock()
        self._seen: set[str] | None = None  # keys already stored: repeats cost no disk write
        self.keys = self.db.table("keys")
        self._seen_keys: set[str] | None = None

    def add(self, host: str, path: str, label: str, platform: str | None = None,
            when: dt.datetime | None = None) -> bool:
        """Store one suggestion. True when it is new."""
        key = suggestion_key(host, path, label)
        with self._lock:
            if self._seen is None:
                self._seen = {d.get("key") for d in self.table.all()}
            if key in self._seen or len(self._seen) >= MAX_SUGGESTIONS:
                return False
            stamp = (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
            self.table.insert({"key": key, "host": host, "path": path, "label": label, "platform": platform,
                               "first_seen": stamp})
            self._seen.add(key)
            return True

    def add_key(self, learned: dict) -> bool:
        """Store one learned key (KeySuggestion.to_dict()). True when it is new; a repeat writes nothing."""
        fields = {k: learned[k] for k in KEY_FIELDS}
        key = suggestion_key(fields["rule_id"], f"{fields['method']} {fields['host']}{fields['path']}",
                             f"{fields['key']}={fields['training_when']}")
        with self._lock:
            if self._seen_keys is None:
                self._seen_keys = {d.get("id") for d in self.keys.all()}
            if key in self._seen_keys or len(self._seen_keys) >= MAX_SUGGESTIONS:
                return False
            seen = fields.pop("seen")
            self.keys.insert({"id": key, **fields, "first_seen": seen})
            self._seen_keys.add(key)
            return True

    def list_keys(self) -> list[dict]:
        with self._lock:
            return sorted((dict(d) for d in self.keys.all()),
                          key=lambda d: (d.get("rule_id", ""), d.get("host", ""), d.get("path", ""), d.get("key", "")))

    def list(self) -> list[dict]:
        with self._lock:
            return sorted((dict(d) for d in self.table.all()), key=lambda d: (d.get("host", ""), d.get("path", ""),
                                                                                d.get("label", "")))

    def close(self) -> None:
        self.db.close()
