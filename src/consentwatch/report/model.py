"""The report's facts: stored warnings + state history + rules -> one structure per platform.

A pure function, no I/O: the HTML, Markdown and JSON renderers all read what `build_report` returns,
so the three formats always tell the same story. Only stored facts go in: rule texts, setting states
and their times, notice dates, and URLs that are already scheme://host/path. Nothing is guessed: a
setting never observed has no state, a notice without a date has no countdown.

Vocabulary (state means "is the platform using your data for AI", whatever the switch's own wording):
- `turned_off_at`: the last time the state went from on to off (the user switched it off);
- `reenabled_at`: every off -> on change after that (a silent re-opt-in, unless the user did it);
- `off_when_first_seen`: the first observation was already off (switched off before consentwatch looked).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

REPORT_FORMAT = 1
RECENT_CHANGES = 10  # renderers list this many changes in full; older ones are counted per month

# platform status, most urgent first (also the sort order of the report)
TRAINING_ON = "training_on"
POLICY_CHANGE_COMING = "policy_change_coming"
POLICY_IN_EFFECT = "policy_in_effect"
TRAINING_OFF = "training_off"
UNKNOWN = "unknown"
STATUS_ORDER = (TRAINING_ON, POLICY_CHANGE_COMING, POLICY_IN_EFFECT, TRAINING_OFF, UNKNOWN)

TOGGLE_KINDS = ("toggle_on", "toggle_reenabled")
SEEN_BY = ("network", "page")  # which eye did see it: the proxy reading traffic; the extension reading the page
POLICY_KIND = "policy_update"
POLICY_TEXT_KIND = "policy_changed"

_UTC = dt.UTC


def parse_ts(value: Any) -> dt.datetime | None:
    """ISO timestamp (or date) -> aware datetime; None for anything unreadable. Naive means UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_UTC)


def parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ts(value: Any) -> str | None:
    """A stored timestamp passed on as stored, or None when it is not one."""
    return value if parse_ts(value) else None


def _url(value: Any) -> str | None:
    """An http(s) URL, or None: a pack's javascript: or data: 'link' is not a fact worth passing on."""
    s = _str(value)
    return s if s and re.match(r"https?://[^\s/?#]+", s, re.I) and not re.search(r"\s", s) else None


def _ts_key(value: Any) -> dt.datetime:
    return parse_ts(value) or dt.datetime.min.replace(tzinfo=_UTC)


def _rules_by_id(rules: Any) -> dict[str, dict]:
    """Accepts a RuleSet, {id: rule dict}, or an iterable of rule dicts / Rule objects."""
    if rules is None:
        return {}
    if hasattr(rules, "rules"):  # RuleSet
        rules = rules.rules
    if isinstance(rules, Mapping):
        items = rules.values()
    else:
        items = rules
    out: dict[str, dict] = {}
    for r in items:
        data = getattr(r, "data", r)
        if isinstance(data, Mapping) and isinstance(data.get("id"), str):
            out[data["id"]] = dict(data)
    return out


EYES = ("network", "markup", "page")
_EVIDENCE = ("verified", "reconstructed", "unverified")


def seen_via(rules: Iterable[dict | None]) -> list[dict]:
    """How consentwatch can see a platform, from its rules' `seen_via`: each eye once (network, markup, page), with
    the strongest evidence any rule has for it. Nothing is claimed that no rule says."""
    best: dict[str, str] = {}
    for rule in rules:
        for v in (rule or {}).get("seen_via") or []:
            if not isinstance(v, Mapping):
                continue
            eye, ev = v.get("eye"), v.get("evidence")
            if eye in EYES and ev in _EVIDENCE and (eye not in best or _EVIDENCE.index(ev) < _EVIDENCE.index(best[eye])):
                best[eye] = ev
    return [{"eye": e, "evidence": best[e]} for e in EYES if e in best]


def _remedy(rule: dict | None, warning: dict | None) -> dict | None:
    """The rule's current remedy (rules get corrected), else what the warning stored when it was raised."""
    for src in ((rule or {}).get("remedy"), (warning or {}).get("remedy")):
        if isinstance(src, Mapping) and (src.get("steps") or src.get("settings_url")):
            steps = [s for s in src.get("steps") or [] if isinstance(s, str) and s]
            return {"settings_url": _url(src.get("settings_url")), "steps": steps, "note": _str(src.get("note"))}
    return None


def _warning_ref(w: dict | None) -> dict | None:
    if not w:
        return None
    status = w.get("status") if w.get("status") in ("active", "resolved", "dismissed") else "active"
    return {"id": _str(w.get("id")) or "", "status": status, "dismissed_at": _ts(w.get("dismissed_at"))}


def _setting_facts(rule_id: str, entries: list[dict], warning: dict | None, rule: dict | None) -> dict:
    # keep only real changes, oldest first (the store already does; a hand-edited file may not)
    changes: list[dict] = []
    for h in sorted(entries, key=lambda h: _ts_key(h.get("observed_at"))):
        state = h.get("state")
        if state not in ("on", "off") or parse_ts(h.get("observed_at")) is None:
            continue
        if changes and changes[-1]["state"] == state:
            continue
        changes.append({"state": state, "at": h["observed_at"]})
    if not changes and warning and warning.get("state") in ("on", "off") and parse_ts(warning.get("first_seen")):
        # a warning without history (older data): it is the one observation we have
        changes.append({"state": warning["state"], "at": warning["first_seen"]})

    turned_off: list[str] = []
    reenabled: list[str] = []
    for prev, cur in zip(changes, changes[1:]):
        if prev["state"] == "on" and cur["state"] == "off":
            turned_off.append(cur["at"])
        elif prev["state"] == "off" and cur["state"] == "on":
            reenabled.append(cur["at"])

    by_month: dict[str, dict] = {}
    for c in changes:
        month = parse_ts(c["at"]).astimezone(_UTC).strftime("%Y-%m")  # UTC, as the renderers show dates
        m = by_month.setdefault(month, {"month": month, "turned_on": 0, "turned_off": 0})
        m["turned_on" if c["state"] == "on" else "turned_off"] += 1

    state = changes[-1]["state"] if changes else None
    first_on = next((c["at"] for c in changes if c["state"] == "on"), None)
    seen = [t for t in (changes[-1]["at"] if changes else None, (warning or {}).get("last_seen")) if parse_ts(t)]
    rule = rule or {}
    w = warning or {}
    setting = (rule.get("setting") or {}).get("name") if isinstance(rule.get("setting"), Mapping) else None
    last = entries[-1] if entries else {}
    return {
        "rule_id": rule_id,
        "setting": _str(setting) or _str(w.get("setting")) or _str(last.get("setting")) or rule_id,
        "title": _str(rule.get("title")) or _str(w.get("title")) or rule_id,
        "summary": _str(rule.get("summary")) or _str(w.get("summary")),
        "state": state,
        "since": changes[-1]["at"] if changes else None,
        "first_seen": changes[0]["at"] if changes else _ts(w.get("first_seen")),
        "first_seen_on": first_on,
        "off_when_first_seen": bool(changes) and changes[0]["state"] == "off",
        "turned_off_at": turned_off[-1] if turned_off else None,
        "times_turned_off": len(turned_off),
        "reenabled_at": reenabled,
        "reenabled_now": state == "on" and bool(reenabled),
        "last_seen": max(seen, key=_ts_key) if seen else None,
        "seen_on": _url(w.get("url")) or _url(last.get("url")),
        "warning": _warning_ref(warning),
        "changes_total": len(changes),
        "changes": changes,
        "changes_by_month": sorted(by_month.values(), key=lambda m: m["month"]),
    }


def _notice_facts(w: dict, rule: dict | None, today: dt.date) -> dict:
    eff = parse_date(w.get("effective_date"))
    days_left = (eff - today).days if eff else None
    rule = rule or {}
    return {
        "id": _str(w.get("id")) or "",
        "rule_id": _str(w.get("rule_id")) or "",
        "title": _str(rule.get("title")) or _str(w.get("title")) or _str(w.get("rule_id")) or "",
        "effective_date": eff.isoformat() if eff else None,
        "days_left": days_left if days_left is not None and days_left > 0 else None,
        "in_effect": (days_left <= 0) if days_left is not None else None,
        "first_seen": _ts(w.get("first_seen")),
        "last_seen": _ts(w.get("last_seen")),
        "seen_on": _url(w.get("url")),
        "warning": _warning_ref(w),
    }


def _strs(value: Any, limit: int = 200) -> list[str]:
    return [v for v in value if isinstance(v, str) and v][:limit] if isinstance(value, list) else []


def word_diff(before: str, after: str) -> list[dict]:
    """The words of a reworded sentence as runs: {"op": "=", "-" or "+", "text"}."""
    a, b = before.split(), after.split()
    out: list[dict] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append({"op": "=", "text": " ".join(a[i1:i2])})
            continue
        if i2 > i1:
            out.append({"op": "-", "text": " ".join(a[i1:i2])})
        if j2 > j1:
            out.append({"op": "+", "text": " ".join(b[j1:j2])})
    return out


def _policy_change_facts(w: dict) -> dict:
    """A policy_changed warning: the document, when, and the change as sentences (a word diff for rewordings)."""
    pol = w.get("policy") if isinstance(w.get("policy"), Mapping) else {}
    reworded = []
    for r in pol.get("reworded") or []:
        if isinstance(r, Mapping) and isinstance(r.get("before"), str) and isinstance(r.get("after"), str):
            reworded.append({"before": r["before"], "after": r["after"], "diff": word_diff(r["before"], r["after"])})
    added_on = [{"text": a["text"], "date": a["date"]} for a in pol.get("added_on") or []
                if isinstance(a, Mapping) and isinstance(a.get("text"), str) and parse_date(a.get("date"))]
    return {
        "id": _str(w.get("id")) or "",
        "rule_id": _str(w.get("rule_id")) or "",
        "document": _str(pol.get("document")) or "",
        "title": _str(pol.get("title")) or _str(w.get("setting")) or "policy document",
        "kind": pol.get("kind") if pol.get("kind") in ("privacy", "terms") else None,
        "url": _url(pol.get("url")) or _url(w.get("url")),
        "basis": pol.get("basis") if pol.get("basis") in ("seen", "shipped") else "seen",
        "since": parse_date(pol.get("since")).isoformat() if parse_date(pol.get("since")) else None,
        "seen_at": _ts(w.get("first_seen")),
        "seen_before": _ts(pol.get("seen_before")),
        "last_seen_before": _ts(pol.get("last_seen_before")),
        "headline": _str(w.get("title")) or "",
        "added": _strs(pol.get("added")),
        "removed": _strs(pol.get("removed")),
        "reworded": reworded,
        "added_on": added_on,
        "sources": [u for u in _strs(pol.get("sources")) if _url(u)],
        "warning": _warning_ref(w),
    }


def _platform_status(settings: list[dict], notices: list[dict]) -> str:
    if any(s["state"] == "on" for s in settings):
        return TRAINING_ON
    if any(n["days_left"] for n in notices):
        return POLICY_CHANGE_COMING
    if notices and not settings:
        return POLICY_IN_EFFECT
    if settings and all(s["state"] == "off" for s in settings):
        return TRAINING_OFF
    if notices:
        return POLICY_IN_EFFECT
    return UNKNOWN


def build_report(warnings: Iterable[dict], history: Iterable[dict], rules: Any, today: dt.date,
                 rules_version: str | None = None, region: str | None = None) -> dict:
    """Per-platform facts, most urgent platform first. `today` decides days left; nothing else reads a clock."""
    rules_by_id = _rules_by_id(rules)
    warnings = [w for w in warnings if isinstance(w, Mapping)]
    history = [h for h in history if isinstance(h, Mapping) and isinstance(h.get("rule_id"), str)]

    toggles: dict[str, dict] = {}
    notices_w: list[dict] = []
    texts_w: list[dict] = []
    for w in sorted(warnings, key=lambda w: _ts_key(w.get("first_seen"))):
        rid = w.get("rule_id")
        if not isinstance(rid, str):
            continue
        if w.get("kind") == POLICY_KIND:
            notices_w.append(dict(w))
        elif w.get("kind") == POLICY_TEXT_KIND:
            texts_w.append(dict(w))
        elif w.get("kind") in TOGGLE_KINDS:
            toggles[rid] = dict(w)  # one per rule; the latest wins if a file holds more

    hist_by_rule: dict[str, list[dict]] = {}
    for h in history:
        hist_by_rule.setdefault(h["rule_id"], []).append(dict(h))

    def platform_of(rule_id: str, *docs: dict | None) -> str:
        for d in (rules_by_id.get(rule_id), *docs):
            if d and isinstance(d.get("platform"), str) and d["platform"]:
                return d["platform"]
        return rule_id.split(".", 1)[0]

    platforms: dict[str, dict] = {}

    def platform_entry(pid: str) -> dict:
        return platforms.setdefault(pid, {"platform": pid, "settings": [], "notices": [], "policy_changes": [],
                                          "_names": []})

    for rid in sorted(set(hist_by_rule) | set(toggles)):
        entries = hist_by_rule.get(rid, [])
        warning = toggles.get(rid)
        pid = platform_of(rid, warning, entries[0] if entries else None)
        p = platform_entry(pid)
        p["settings"].append(_setting_facts(rid, entries, warning, rules_by_id.get(rid)))
        if warning:
            p["_names"].append(warning.get("platform_name"))
    for w in notices_w:
        pid = platform_of(w["rule_id"], w)
        p = platform_entry(pid)
        p["notices"].append(_notice_facts(w, rules_by_id.get(w["rule_id"]), today))
        p["_names"].append(w.get("platform_name"))

    for w in texts_w:
        p = platform_entry(platform_of(w["rule_id"], w))
        p["policy_changes"].append(_policy_change_facts(w))
        p["_names"].append(w.get("platform_name"))

    out_platforms = []
    for pid, p in platforms.items():
        rule_ids = ([s["rule_id"] for s in p["settings"]] + [n["rule_id"] for n in p["notices"]]
                    + [c["rule_id"] for c in p["policy_changes"]])
        names = [rules_by_id.get(r, {}).get("platform_name") for r in rule_ids] + p.pop("_names")
        name = next((n for n in names if isinstance(n, str) and n.strip()), None) or pid
        # notices: coming ones first (soonest first), then in effect (newest first), then undated
        p["notices"].sort(key=lambda n: (0, n["effective_date"]) if n["days_left"] else
                          (1, "~" if n["effective_date"] is None else "", _neg_date(n["effective_date"])))
        remedies, sources, verified = [], [], []
        for rid in dict.fromkeys(rule_ids):
            rule = rules_by_id.get(rid)
            warning = toggles.get(rid) or next((w for w in notices_w if w["rule_id"] == rid), None)
            rem = _remedy(rule, warning)
            if rem:
                setting = next((s["setting"] for s in p["settings"] if s["rule_id"] == rid), None)
                remedies.append({"rule_id": rid, "setting": setting or _setting_name(rule) or rid, **rem})
            for src in (rule or {}).get("sources") or []:
                if _url(src) and src not in sources:
                    sources.append(src)
            if rule and parse_date(rule.get("last_verified")):
                verified.append(rule["last_verified"][:10])
        status = _platform_status(p["settings"], p["notices"])
        # which eyes saw it: the proxy (network) and/or the extension in the rendered page (page); records from
        # before the page eye existed were the proxy's
        eyes = {e for h in history if h["rule_id"] in rule_ids for e in _eyes(h.get("seen_by"))}
        eyes |= {e for w in warnings if w.get("rule_id") in rule_ids for e in _eyes(w.get("seen_by"))}
        has_setting = bool(p["settings"]) or any(
            isinstance((rules_by_id.get(rid) or {}).get("setting"), Mapping) for rid in rule_ids)
        out_platforms.append({
            "platform": pid,
            "name": name,
            "status": status,
            "policy_change_coming": any(n["days_left"] for n in p["notices"]),
            "reenabled": any(s["reenabled_now"] for s in p["settings"]),
            "has_setting": has_setting,
            "settings": p["settings"],
            "notices": p["notices"],
            "policy_changes": sorted(p["policy_changes"], key=lambda c: _ts_key(c["seen_at"]), reverse=True),
            "remedies": remedies,
            "sources": sources,
            "rules_verified": min(verified) if verified else None,
            "seen_via": seen_via(rules_by_id.get(rid) for rid in dict.fromkeys(rule_ids)),
            "seen_by": [e for e in SEEN_BY if e in eyes],
        })
    out_platforms.sort(key=lambda p: (STATUS_ORDER.index(p["status"]), not p["reenabled"],
                                      p["name"].casefold(), p["platform"]))

    seen_ids = {p["platform"] for p in out_platforms}
    watched: dict[str, str] = {}
    for r in rules_by_id.values():
        pid = r.get("platform")
        if isinstance(pid, str) and pid not in seen_ids and pid not in watched:
            watched[pid] = _str(r.get("platform_name")) or pid
    not_seen = [{"platform": k, "name": v,  # rule pack order
                 "seen_via": seen_via(r for r in rules_by_id.values() if r.get("platform") == k)} for k, v in watched.items()]

    stamps = [parse_ts(c["at"]) for p in out_platforms for s in p["settings"] for c in s["changes"]]
    stamps += [parse_ts(n["first_seen"]) for p in out_platforms for n in p["notices"]]
    stamps += [parse_ts(c["seen_at"]) for p in out_platforms for c in p["policy_changes"]]
    dates = [t.date() for t in stamps if t]
    ends = [today] + [parse_date(n["effective_date"]) for p in out_platforms for n in p["notices"] if n["days_left"]]
    span = {"start": min(dates).isoformat(), "end": max(d for d in ends if d).isoformat()} if dates else None
    if span and span["start"] > span["end"]:  # observations stamped after `today` (clock skew)
        span["end"] = span["start"]

    settings_all = [s for p in out_platforms for s in p["settings"]]
    return {
        "report": "consentwatch-privacy-posture",
        "format": REPORT_FORMAT,
        "today": today.isoformat(),
        "rules_version": rules_version,
        "region": region,
        "summary": {
            "platforms_seen": len(out_platforms),
            "training_on": sum(p["status"] == TRAINING_ON for p in out_platforms),
            "training_off": sum(p["status"] == TRAINING_OFF for p in out_platforms),
            "policy_changes_coming": sum(p["policy_change_coming"] for p in out_platforms),
            "policy_notices": sum(len(p["notices"]) for p in out_platforms),
            "silently_reenabled": sum(s["reenabled_now"] for s in settings_all),
            "state_changes": sum(s["changes_total"] for s in settings_all),
            "policy_text_changes": sum(len(p["policy_changes"]) for p in out_platforms),
        },
        "span": span,
        "platforms": out_platforms,
        "not_seen": not_seen,
    }


def _eyes(value: Any) -> set[str]:
    """The eyes a stored record names (a string on history, a list on warnings); none named: the proxy's."""
    if value is None:
        return {"network"}
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {e for e in items if e in SEEN_BY}


def _setting_name(rule: dict | None) -> str | None:
    s = (rule or {}).get("setting")
    return _str(s.get("name")) if isinstance(s, Mapping) else None


def _neg_date(iso: str | None) -> int:
    d = parse_date(iso)
    return -d.toordinal() if d else 0
