"""The versions of platforms' policy documents this install has seen: their AI-relevant sentences only.

One record per rule and document (`linkedin.genai-training/privacy-policy`): the URL it was read at
(scheme://host/path), and its versions, oldest first, each with the fingerprint of its AI-relevant part,
those sentences (public legal text, normalised) and when it was first and last seen. Nothing else of the
page, and nothing of the user's, is kept. Written atomically next to the state store (policies.json).
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from tinydb import Query

from .atomic import open_db

POLICIES_FILE = "policies.json"
MAX_VERSIONS = 20  # per document: the oldest go first (a document that flips between two versions stays small)
LAST_SEEN_EVERY = dt.timedelta(seconds=60)

Q = Query()


def _parse(ts: str | None) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(ts or "")
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


class PolicyStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / POLICIES_FILE
        self.db = open_db(self.path)
        self.documents = self.db.table("documents")
        self._lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def latest(self, key: str) -> dict | None:
        """The version of document `key` this install saw last: {fingerprint, sentences, first_seen, last_seen}."""
        with self._lock:
            doc = self.documents.get(Q.key == key)
            versions = (doc or {}).get("versions") or []
            return dict(versions[-1]) if versions else None

    def all(self) -> list[dict]:
        with self._lock:
            return [dict(d) for d in self.documents.all()]

    def record(self, key: str, meta: dict, fingerprint: str, sentences: list[str], observed_at: str) -> bool:
        """Note a sighting. A new fingerprint becomes a new version; the same one only refreshes last_seen (now and
        then). Returns True when a new version was stored."""
        with self._lock:
            doc = self.documents.get(Q.key == key)
            if doc is None:
                self.documents.insert({"key": key, **meta, "versions": [self._version(fingerprint, sentences, observed_at)]})
                return True
            versions = list(doc.get("versions") or [])
            if versions and versions[-1].get("fingerprint") == fingerprint:
                last = versions[-1]
                if _parse(observed_at) - _parse(last.get("last_seen")) >= LAST_SEEN_EVERY:
                    versions[-1] = {**last, "last_seen": observed_at}
                    self.documents.update({"versions": versions, **meta}, doc_ids=[doc.doc_id])
                return False
            versions = (versions + [self._version(fingerprint, sentences, observed_at)])[-MAX_VERSIONS:]
            self.documents.update({"versions": versions, **meta}, doc_ids=[doc.doc_id])
            return True

    @staticmethod
    def _version(fingerprint: str, sentences: list[str], observed_at: str) -> dict:
        return {"fingerprint": fingerprint, "sentences": list(sentences), "first_seen": observed_at,
                "last_seen": observed_at}
