"""`rules suggest`: settings discovered on rule hosts (labels that speak of AI but match no rule) as rule drafts,
and keys learned from the user's own click as draft `json_keys` entries of the rules in force.

A draft holds what discovery knows (host, path, label) and placeholders for the rest; TO_FILL lists what a
maintainer must add before `consentwatch rules validate` accepts it. A learned key becomes a request-side
`json_keys` entry (endpoint, method, key, `within`, polarity) added to a copy of its rule, so the draft pack
validates as it is and `rules diff @installed DRAFT` shows exactly what would change.
"""

from __future__ import annotations

import copy
import re
from typing import Callable

from .model import PACK_FORMAT, Rule, RuleSet

TO_FILL = [
    "sources: at least one public URL that documents the setting (help page, announcement)",
    ("fixtures: record the page with the setting on and off (mitmdump -w, or a HAR), put the files under "
     "tests/fixtures/<platform>/ and list them with the findings they must give"),
    "setting.checked_means: 'training' if switching it ON allows training, 'no_training' if ON is the opt-out",
    "default: what a user who never touched it gets (on/off/unknown)",
    "applies: the regions and dates it applies to",
    "summary, title, remedy.steps: in plain words, from the platform's help page",
    "setting.pages: generalise the path (replace account names or ids with *)",
]


def _slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ""
    for w in words:
        if len(out) + len(w) + 1 > limit:
            break
        out = f"{out}-{w}" if out else w
    return out or "setting"


def _draft(s: dict, rules_by_host: Callable[[str], tuple[Rule, ...]], today: str, taken: set[str]) -> dict:
    host, path, label = s["host"], s["path"], s["label"]
    platform = s.get("platform") or re.sub(r"[^a-z0-9]", "", host.split(".")[-2] if "." in host else host)
    known = rules_by_host(host)
    platform_name = known[0].platform_name if known else platform.capitalize()
    rid = f"{platform}.{_slug(label)}"
    base, n = rid, 2
    while rid in taken:
        rid, n = f"{base}-{n}", n + 1
    taken.add(rid)
    page = re.sub(r"[?#\s].*$", "", path) or "/"
    return {
        "id": rid,
        "platform": platform,
        "platform_name": platform_name,
        "title": f"{platform_name}: {label}"[:200],
        "summary": f"{platform_name} has a setting \"{label}\" that speaks of AI. Say in plain words what it does.",
        "hosts": [host],
        "setting": {"name": label, "labels": [label], "checked_means": "training", "pages": [page]},
        "default": "unknown",
        "applies": [{"regions": ["*"]}],
        "remedy": {"settings_url": f"https://{host}{page}", "steps": [f"Open https://{host}{page}",
                                                                     f"Switch \"{label}\" off"]},
        # seen once in what the server sent; say more only with evidence (the platform's client code, a recording)
        "seen_via": [{"eye": "markup", "where": f"{host}{page}: control \"{label}\"", "evidence": "unverified"}],
        "sources": [],
        "last_verified": today,
        "fixtures": [],
    }


KEY_TO_CHECK = [
    ("a learned key comes from one click on one account: before it goes into the pack, confirm it with a capture "
     "(`consentwatch capture`) that flips the switch both ways, and add that capture as a fixture"),
    "paths: generalise the endpoint (replace account names or ids with *)",
]
_JSON_KEY = re.compile(r"[A-Za-z0-9_.$-]{2,100}")  # the schema's json_key.key
_ENDPOINT = re.compile(r"/[^?#\s]{0,299}")


def json_key_entry(k: dict) -> dict | None:
    """A learned key (store/suggestions.py) as a request-side `json_keys` entry, or None when the schema could not
    hold it (a one-letter key, an odd endpoint)."""
    *within, leaf = k["key"].split(".")
    if not _JSON_KEY.fullmatch(leaf) or not _ENDPOINT.fullmatch(k["path"]):
        return None
    entry = {"key": leaf, "training_when": bool(k["training_when"]), "in": "request", "paths": [k["path"]],
             "methods": [k["method"]]}
    if within:
        entry["within"] = [".".join(within[-8:])]
    return entry


def learned_rules(learned: list[dict], rules: RuleSet) -> tuple[list[dict], list[str]]:
    """Copies of the rules in force, each with its learned keys added to `setting.json_keys`; and notes on what
    was left out (a rule no longer in force, a key seen with both polarities, one the schema cannot hold)."""
    by_rule: dict[str, list[dict]] = {}
    for k in learned:
        by_rule.setdefault(k["rule_id"], []).append(k)
    out: list[dict] = []
    notes: list[str] = []
    for rid, keys in by_rule.items():
        rule = rules.by_id.get(rid)
        if rule is None:
            notes.append(f"{rid}: not in the rules in force any more; its learned keys are left out")
            continue
        polarities: dict[tuple, set[bool]] = {}
        for k in keys:
            polarities.setdefault((k["method"], k["host"], k["path"], k["key"]), set()).add(bool(k["training_when"]))
        data = copy.deepcopy(rule.data)
        setting = data.setdefault("setting", {"name": rule.setting_name})
        entries = setting.setdefault("json_keys", [])
        added = 0
        for k in keys:
            where = (k["method"], k["host"], k["path"], k["key"])
            if len(polarities[where]) > 1:
                note = f"{rid}: {k['key']} at {k['host']}{k['path']} was seen with both polarities; left out"
                if note not in notes:
                    notes.append(note)
                continue
            entry = json_key_entry(k)
            if entry is None:
                notes.append(f"{rid}: {k['key']} at {k['host']}{k['path']} cannot be a json_keys entry; left out")
                continue
            if entry in entries:
                continue
            entries.append(entry)
            added += 1
            if k["host"] not in data["hosts"]:
                data["hosts"].append(k["host"])
            data["seen_via"].append({
                "eye": "network", "evidence": "unverified",
                "where": (f"{k['method']} {k['host']}{k['path']}: {k['key']} (learned from a click on "
                          f"\"{k['label']}\")")[:400]})
        if added:
            data["min_engine"] = max(data.get("min_engine", 1), 2)  # request-side keys need engine 2
            out.append(data)
    return out, notes


def draft_pack(suggestions: list[dict], rules: RuleSet, today: str, learned: list[dict] | None = None) -> dict:
    """One draft rule per stored suggestion, and the rules in force that learned keys, as a pack; ids of new
    drafts never collide with the rules in force."""
    taken = {r.id for r in rules.rules}
    drafts = [_draft(s, rules.for_host, today, taken) for s in suggestions]
    drafts += learned_rules(learned or [], rules)[0]
    return {"$schema": "./schema.json", "format": PACK_FORMAT, "version": f"draft-{today}",
            "description": "Drafts from `consentwatch rules suggest`: fill in what each rule needs, then validate.",
            "rules": drafts}
