"""The rule database: a TinyDB file in the data dir, seeded from the shipped pack.

The database holds one pack at a time (table `rules`, plus `meta` with its version and origin). A pack
that fails validation never replaces a working one; a database that is corrupt or invalid falls back to
the shipped pack, with a log line, so detection keeps running.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from ..store.atomic import open_db
from .model import PackError, RuleSet, load_pack, shipped_pack

log = logging.getLogger(__name__)

RULES_FILE = "rules.json"


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in str(v).replace("-", ".").split("."))


class RuleStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / RULES_FILE

    def _read(self) -> tuple[dict | None, dict]:
        db = open_db(self.path)
        try:
            meta = db.table("meta").get(doc_id=1) or {}
            rules = [dict(r) for r in db.table("rules").all()]
        finally:
            db.close()
        if not meta:
            return None, {}
        rules.sort(key=lambda r: r.get("_order", 0))
        for r in rules:
            r.pop("_order", None)
        pack: dict = {"$schema": meta["schema"]} if meta.get("schema") else {}
        pack.update({"format": meta.get("format", 1), "version": meta.get("version", "")})
        if meta.get("description"):
            pack["description"] = meta["description"]
        pack["rules"] = rules
        return pack, dict(meta)

    def read_pack(self) -> dict:
        """The pack in the database as written (rules for newer engines included), seeding it if needed."""
        pack, _ = self._read()
        if pack is None:
            self.load()
            pack, _ = self._read()
        return pack if pack is not None else shipped_pack()

    def write_pack(self, pack: dict, origin: str) -> RuleSet:
        """Validate, then replace the database in one atomic write. Raises PackError; the old DB stays."""
        ruleset = load_pack(pack)
        db = open_db(self.path)
        try:
            # build the whole new content in memory, then one storage write: readers never see a mix
            meta = {"format": pack["format"], "version": str(pack["version"]), "origin": origin,
                    "installed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            for key, field in (("schema", "$schema"), ("description", "description")):
                if isinstance(pack.get(field), str):
                    meta[key] = pack[field]  # kept so that an export gives back the pack as imported
            content = {
                "meta": {"1": meta},
                "rules": {str(i + 1): {**r, "_order": i} for i, r in enumerate(pack["rules"])},
            }
            db.storage.write(content)
            if db.storage.write_errors:
                raise PackError(f"could not write {self.path}")
        finally:
            db.close()
        return ruleset

    def load(self) -> RuleSet:
        """The rules in force. Seeds (or refreshes) from the shipped pack when appropriate."""
        shipped = shipped_pack()
        pack, meta = self._read()
        if pack is None:
            return self._seed(shipped, "first start")
        if meta.get("origin") == "shipped" and _version_key(shipped["version"]) > _version_key(meta.get("version", "")):
            return self._seed(shipped, f"shipped pack {shipped['version']} is newer")
        try:
            return load_pack(pack)
        except PackError as e:
            log.error("rule database %s is invalid (%s); using the shipped rules", self.path, "; ".join(e.errors[:3]))
            return load_pack(shipped)

    def meta(self) -> dict:
        return self._read()[1]

    def _seed(self, shipped: dict, why: str) -> RuleSet:
        log.info("rule database: installing shipped pack %s (%s)", shipped["version"], why)
        try:
            return self.write_pack(shipped, "shipped")
        except PackError:
            return load_pack(shipped)
