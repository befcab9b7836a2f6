"""Wording and formatting shared by the HTML and Markdown renderers (no markup here)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from .model import POLICY_CHANGE_COMING, POLICY_IN_EFFECT, TRAINING_OFF, TRAINING_ON, UNKNOWN, parse_date, parse_ts

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")

STATUS_LABEL = {
    TRAINING_ON: "Training ON",
    POLICY_CHANGE_COMING: "Policy change coming",
    POLICY_IN_EFFECT: "Policy notice",
    TRAINING_OFF: "Training OFF",
    UNKNOWN: "Not checked",
}


def clean(value, limit: int = 300) -> str:
    """One line of display text: no control or bidi-override characters, no runs of whitespace, bounded."""
    if value is None:
        return ""
    s = _SPACE.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def fmt_date(value) -> str:
    """'2025-11-03' or a timestamp -> '3 Nov 2025' (the timestamp's UTC date). Unreadable -> ''."""
    t = parse_ts(value) if isinstance(value, str) and len(value) > 10 else None
    d = t.astimezone(dt.UTC).date() if t else parse_date(value)
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}" if d else ""


def fmt_datetime(value) -> str:
    t = parse_ts(value)
    if not t:
        return ""
    t = t.astimezone(dt.UTC)
    return f"{t.day} {MONTHS[t.month - 1]} {t.year}, {t:%H:%M} UTC"


def fmt_month(ym: str) -> str:
    d = parse_date(ym + "-01")
    return f"{MONTHS[d.month - 1]} {d.year}" if d else clean(ym)


def iso_date(value) -> str:
    """A machine-readable date for <time datetime>."""
    t = parse_ts(value) if isinstance(value, str) and len(value) > 10 else None
    d = t.astimezone(dt.UTC).date() if t else parse_date(value)
    return d.isoformat() if d else ""


def safe_url(value) -> str | None:
    """An http(s) URL fit for a link, or None (javascript:, data:, whitespace tricks... are shown as text)."""
    if not isinstance(value, str) or len(value) > 2000 or _CONTROL.search(value) or _SPACE.search(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    return value


def short_url(value) -> str:
    """'https://www.linkedin.com/feed/' -> 'www.linkedin.com/feed/' for display."""
    s = clean(value, 120)
    return re.sub(r"^https?://", "", s)


def host_of(value) -> str:
    try:
        return urlsplit(value).hostname or ""
    except (ValueError, TypeError):
        return ""


def days_phrase(days: int) -> str:
    return "tomorrow" if days == 1 else f"in {days} days"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def notice_when(n: dict, today: str) -> str:
    """'takes effect 3 Nov 2025, in 9 days' / 'in effect since 3 Nov 2025' / 'no date given'."""
    if n["effective_date"] is None:
        return "no effective date given"
    when = fmt_date(n["effective_date"])
    if n["days_left"]:
        return f"takes effect {when}, {days_phrase(n['days_left'])}"
    if n["effective_date"] == today:
        return f"takes effect today, {when}"
    return f"in effect since {when}"


def headline(report: dict) -> str:
    s = report["summary"]
    n = s["platforms_seen"]
    if n == 0:
        return "Nothing observed yet."
    on = s["training_on"]
    known = sum(1 for p in report["platforms"] if any(x["state"] for x in p["settings"]))
    parts = []
    if on:
        parts.append(f"{on} of the {n} platforms you use {'trains' if on == 1 else 'train'} AI on your data right now."
                     if n > 1 else "The platform you use trains AI on your data right now.")
    elif known == 0:
        what = "policy notices" if s.get("policy_notices") or not s.get("policy_text_changes") else "policy texts"
        parts.append(f"consentwatch has seen {what} from {plural(n, 'platform')}, but none of their settings yet.")
    elif known == n:
        parts.append(f"None of the {n} platforms you use is training AI on your data, as far as consentwatch has "
                     "seen." if n > 1 else
                     "The platform you use is not training AI on your data, as far as consentwatch has seen.")
    else:
        rest = f"{n - known} more only showed a policy notice."
        parts.append(f"The one platform whose setting consentwatch has seen does not train AI on your data; {rest}"
                     if known == 1 else
                     f"None of the {known} platforms whose setting consentwatch has seen trains AI on your data; {rest}")
    r = s["silently_reenabled"]
    if r:
        parts.append(f"{'One opt-out was' if r == 1 else f'{r} opt-outs were'} undone: training is back on.")
    t = s.get("policy_text_changes") or 0
    if t:
        parts.append(f"{'A privacy policy or terms document says' if t == 1 else f'{t} times a policy document said'}"
                     " something new about AI.")
    c = s["policy_changes_coming"]
    if c:
        parts.append(f"{'A policy change is' if c == 1 else f'{c} policy changes are'} coming.")
    return " ".join(parts)


def setting_sentence(s: dict) -> tuple[str, str]:
    """The current state of a setting: ('Training ON', ' again since 16 Oct 2025, after you had opted out.')."""
    if s["state"] == "on":
        if s["reenabled_now"]:
            return "Training ON", f" again since {fmt_date(s['since'])}, after you had opted out."
        return "Training ON", f" since at least {fmt_date(s['since'])}."
    if s["state"] == "off":
        if s["turned_off_at"]:
            return "Training OFF", f" since {fmt_date(s['since'])}: you opted out."
        return "Training OFF", f" since at least {fmt_date(s['since'])}: it was already off when first seen."
    return "Not observed yet", "."


EYE_WORDS = {"network": "the data the web app fetches", "markup": "the page the server sends",
             "page": "the page your browser shows (extension)"}


def seen_phrase(seen_via) -> str:
    """How consentwatch can see a platform, in words: "the data the web app fetches (verified in its code), …"."""
    how = {"verified": "verified in its code", "reconstructed": "reconstructed", "unverified": "unverified"}
    parts = [f"{EYE_WORDS[v['eye']]} ({how.get(v['evidence'], v['evidence'])})" for v in seen_via or ()
             if v.get("eye") in EYE_WORDS]
    return ", ".join(parts)


# which eye did see it (a report's `seen_by`), as against how it can be seen (`seen_via`, above)
EYE_TEXT = {"network": "in its traffic, by consentwatch's proxy", "page": "in the page, by the browser extension"}


def seen_by_text(eyes) -> str:
    """'Seen in the page, by the browser extension' (and/or the proxy); '' when no eye is named."""
    parts = [EYE_TEXT[e] for e in eyes or () if e in EYE_TEXT]
    return ("Seen " + " and ".join(parts)) if parts else ""


def page_only(seen_via) -> bool:
    """Only the rendered page shows the state: the proxy alone never sees it, the browser extension must."""
    eyes = {v.get("eye") for v in seen_via or ()}
    return eyes == {"page"}
