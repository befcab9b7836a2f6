"""The rule database: a TinyDB file in the data dir, seeded from the shipped pack.

The database holds one pack at a time (table `rules`, plus `meta` with its version and origin). A pack
that fails validation never replaces a working one:

- `write_pack` (`rules import`) validates first; the old database stays when the new pack is refused.
- `load()` is for a start (`run`, `replay`, the CLI): it seeds or refreshes the shipped pack, and a `rules.json`
  that is not usable (garbage, not a rule database, an invalid pack) is moved aside as
  `rules.json.corrupt-<timestamp>`, one log line says so, and the shipped pack is installed and used.
- `reload()` is for a running process rechecking the file (and for readers such as the report): it never writes.
  An unusable file raises RulesUnusable and is left alone; the caller keeps the rules in force and says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from ..store.atomic import CorruptFile, move_aside, open_db
from .model import PackError, RuleSet, load_pack, shipped_pack

log = logging.getLogger(__name__)

RULES_FILE = "rules.json"


class RulesUnusable(PackError):
    """rules.json is there but holds no usable pack. The message is one line for the user."""


def _version_key(v) -> tuple:
    # numbers compare as numbers; a part that is not a number ranks below any number (never a TypeError)
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in str(v).replace("-", ".").split("."))


def _one_line(e: Exception) -> str:
    if isinstance(e, CorruptFile):
        return e.why
    msg = str(e) or type(e).__name__
    if isinstance(e, PackError) and e.errors and e.errors[0] != msg:
        msg = f"{msg}, first: {e.errors[0]}"
    return msg[:240]


class RuleStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / RULES_FILE

    def _read(self) -> tuple[dict | None, dict]:
        """(pack, meta) as stored; (None, {}) when there is no rules.json. Raises RulesUnusable for a file that
        is there but is not a rule database (the file is not touched)."""
        if not self.path.exists():
            return None, {}
        db = open_db(self.path, on_corrupt="raise", sweep=False)
        try:
            meta = dict(db.table("meta").get(doc_id=1) or {})
            rules = [dict(r) for r in db.table("rules").all()]
        except CorruptFile as e:
            raise RulesUnusable(e.why) from None
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            raise RulesUnusable(f"not a rule database ({type(e).__name__})") from None
        finally:
            db.close()
        if not meta:
            if not self.path.exists():  # removed meanwhile
                return None, {}
            raise RulesUnusable("no rule pack in it")
        try:
            rules.sort(key=lambda r: r.get("_order", 0))
        except TypeError:
            raise RulesUnusable("not a rule database (rule order)") from None
        for r in rules:
            r.pop("_order", None)
        pack: dict = {"$schema": meta["schema"]} if meta.get("schema") else {}
        pack.update({"format": meta.get("format", 1), "version": meta.get("version", "")})
        if meta.get("description"):
            pack["description"] = meta["description"]
        pack["rules"] = rules
        return pack, meta

    def read_pack(self) -> dict:
        """The pack in the database as written (rules for newer engines included), seeding it if needed."""
        try:
            pack, _ = self._read()
        except RulesUnusable:
            pack = None
        if pack is None:
            self.load()
            try:
                pack, _ = self._read()
            except RulesUnusable:
                pack = None
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
        """The rules to use on a start. Seeds (or refreshes) the shipped pack; an unusable rules.json is moved
        aside and the shipped pack is installed and used instead."""
        shipped = shipped_pack()
        try:
            pack, meta = self._read()
            if pack is None:
                return self._seed(shipped, "first start")
            rules = load_pack(pack)
        except PackError as e:
            return self._set_aside(shipped, _one_line(e))
        if meta.get("origin") == "shipped" and _version_key(shipped["version"]) > _version_key(meta.get("version", "")):
            return self._seed(shipped, f"shipped pack {shipped['version']} is newer")
        return rules

    def reload(self) -> RuleSet:
        """The rules in rules.json now, for a running process: never writes. Without a rules.json, the shipped pack
        (the next start installs it). Raises RulesUnusable, one line, when the file holds no usable pack."""
        try:
            pack, _ = self._read()
            if pack is None:
                return load_pack(shipped_pack())
            return load_pack(pack)
        except PackError as e:
            raise RulesUnusable(f"{self.path} is not a usable rule pack ({_one_line(e)}); it was not loaded and stays "
                                "as it is until a valid pack replaces it (consentwatch rules import)") from None

    def stamp(self) -> tuple | None:
        """rules.json's identity now (mtime, size, inode), None when there is none: a changed stamp means reload."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def meta(self) -> dict:
        try:
            return self._read()[1]
        except RulesUnusable:
            return {}

    def _seed(self, shipped: dict, why: str) -> RuleSet:
        log.info("rule database: installing shipped pack %s (%s)", shipped["version"], why)
        try:
            return self.write_pack(shipped, "shipped")
        except PackError:
            return load_pack(shipped)

    def _set_aside(self, shipped: dict, why: str) -> RuleSet:
        """One log line: what was wrong, where the bad file went, which rules are used instead."""
        try:
            where = f"moved aside to {move_aside(self.path).name}"
        except FileNotFoundError:
            where = "gone meanwhile"
        except OSError as e:
            where = f"could not be moved aside ({e.strerror or e})"
        log.error("rule database %s is not usable (%s): %s; using the shipped rules (pack %s)",
                  self.path, why, where, shipped["version"])
        try:
            return self.write_pack(shipped, "shipped")
        except PackError:
            return load_pack(shipped)
