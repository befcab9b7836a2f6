"""`rules suggest`: settings discovered on rule hosts (labels that speak of AI but match no rule) as rule drafts.

A draft holds what discovery knows (host, path, label) and placeholders for the rest; TO_FILL lists what a
maintainer must add before `consentwatch rules validate` accepts it.
"""

from __future__ import annotations

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


def draft_pack(suggestions: list[dict], rules: RuleSet, today: str) -> dict:
    """One draft rule per stored suggestion, as a pack; ids never collide with the rules in force."""
    taken = {r.id for r in rules.rules}
    drafts = [_draft(s, rules.for_host, today, taken) for s in suggestions]
    return {"$schema": "./schema.json", "format": PACK_FORMAT, "version": f"draft-{today}",
            "description": "Drafts from `consentwatch rules suggest`: fill in what each rule needs, then validate.",
            "rules": drafts}
