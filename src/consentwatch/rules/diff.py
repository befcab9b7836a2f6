"""What changes between two rule packs: rules added, removed and changed (which fields), hosts added and removed.

`rules diff A B` prints it, and `rules import` prints it before it swaps the database, so a maintainer (or a
user) sees what a new pack will do: above all, which new hosts it will intercept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Fields whose value is a dict: report changes one level down (setting.labels, remedy.steps...).
_NESTED = ("setting", "notices", "remedy")


@dataclass
class RuleChange:
    id: str
    fields: list[str]  # dotted paths of the fields that differ
    details: list[str] = field(default_factory=list)  # "+x"/"-y" lines for list fields people care about


@dataclass
class PackDiff:
    old_version: str
    new_version: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    new_hosts: list[str] = field(default_factory=list)
    dropped_hosts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.new_hosts or self.dropped_hosts)

    def lines(self) -> list[str]:
        out = []
        if self.old_version != self.new_version:
            out.append(f"version: {self.old_version} -> {self.new_version}")
        for rid in self.added:
            out.append(f"added:   {rid}")
        for rid in self.removed:
            out.append(f"removed: {rid}")
        for ch in self.changed:
            out.append(f"changed: {ch.id}: {', '.join(ch.fields)}")
            out.extend(f"           {d}" for d in ch.details)
        if self.new_hosts:
            out.append(f"new hosts: {', '.join(self.new_hosts)}")
        if self.dropped_hosts:
            out.append(f"hosts no longer watched: {', '.join(self.dropped_hosts)}")
        if self.empty:
            out.append("no rule changes")
        return out

    def to_dict(self) -> dict:
        return {"old_version": self.old_version, "new_version": self.new_version, "added": self.added,
                "removed": self.removed,
                "changed": [{"id": c.id, "fields": c.fields, "details": c.details} for c in self.changed],
                "new_hosts": self.new_hosts, "dropped_hosts": self.dropped_hosts}


def _hosts(pack: dict) -> set[str]:
    out = set()
    for r in pack.get("rules", ()):
        out.update(h.lower() for h in r.get("hosts", ()))
        out.update(h.lower() for h in (r.get("notices") or {}).get("hosts", ()))
    return out


def _list_details(name: str, a, b) -> list[str]:
    if not (isinstance(a, list) and isinstance(b, list)) or not all(isinstance(x, str) for x in a + b):
        return []
    return [f"{name} +{x!r}" for x in b if x not in a] + [f"{name} -{x!r}" for x in a if x not in b]


def _rule_change(a: dict, b: dict) -> RuleChange | None:
    fields: list[str] = []
    details: list[str] = []
    for key in sorted(set(a) | set(b), key=lambda k: (list(b).index(k) if k in b else len(b), k)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key in _NESTED and isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if va.get(sub) != vb.get(sub):
                    fields.append(f"{key}.{sub}")
                    details.extend(_list_details(f"{key}.{sub}", va.get(sub), vb.get(sub)))
        else:
            fields.append(key)
            if key in ("hosts", "sources"):
                details.extend(_list_details(key, va, vb))
            elif key == "last_verified":
                details.append(f"last_verified {va} -> {vb}")
    return RuleChange(a.get("id") or b.get("id"), fields, details) if fields else None


def diff_packs(old: dict, new: dict) -> PackDiff:
    old_rules = {r.get("id"): r for r in old.get("rules", ()) if isinstance(r, dict)}
    new_rules = {r.get("id"): r for r in new.get("rules", ()) if isinstance(r, dict)}
    d = PackDiff(str(old.get("version", "")), str(new.get("version", "")))
    d.added = [rid for rid in new_rules if rid not in old_rules]
    d.removed = [rid for rid in old_rules if rid not in new_rules]
    for rid, r in new_rules.items():
        if rid in old_rules:
            ch = _rule_change(old_rules[rid], r)
            if ch:
                d.changed.append(ch)
    old_hosts, new_hosts = _hosts(old), _hosts(new)
    d.new_hosts = sorted(new_hosts - old_hosts)
    d.dropped_hosts = sorted(old_hosts - new_hosts)
    return d
