"""The finding: what a detector saw on one response. Plain data, shared by every part."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOGGLE_ON = "toggle_on"
TOGGLE_OFF = "toggle_off"
TOGGLE_REENABLED = "toggle_reenabled"
POLICY_UPDATE = "policy_update"
# A policy document's AI-relevant sentences changed since this install last saw it (detect/policy_text.py).
POLICY_CHANGED = "policy_changed"
# Kinds that become (or keep alive) a warning; toggle_off only resolves one.
WARNING_KINDS = (TOGGLE_ON, TOGGLE_REENABLED, POLICY_UPDATE, POLICY_CHANGED)
# Which eye saw it: the proxy reading traffic, or the extension reading the rendered page (POST /v1/observations).
NETWORK, PAGE = "network", "page"
EYES = (NETWORK, PAGE)


@dataclass(frozen=True, slots=True)
class Remedy:
    settings_url: str | None
    steps: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return {"settings_url": self.settings_url, "steps": list(self.steps), "note": self.note}


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What a policy document says about AI now that it did not (public legal text only, nothing of the user's).

    basis "seen": against the version this install saw last (`seen_before`..`last_seen_before`);
    basis "shipped": the first sighting, against the dated history shipped in the rules (`added_on`, `sources`).
    `headline` and `text` are the words the extension shows as they are."""

    document: str
    title: str
    kind: str  # "privacy" or "terms"
    url: str
    basis: str
    since: str | None  # ISO date: when the user last saw the earlier version, or when the clause was added
    seen_now: str
    fingerprint: str
    headline: str
    text: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reworded: tuple[tuple[str, str], ...] = ()  # (before, after)
    added_on: tuple[tuple[str, str], ...] = ()  # shipped basis: (sentence, ISO date it was added)
    sources: tuple[str, ...] = ()
    seen_before: str | None = None
    last_seen_before: str | None = None
    previous_fingerprint: str | None = None

    def to_dict(self) -> dict:
        return {
            "document": self.document, "title": self.title, "kind": self.kind, "url": self.url, "basis": self.basis,
            "since": self.since, "seen_now": self.seen_now, "seen_before": self.seen_before,
            "last_seen_before": self.last_seen_before, "fingerprint": self.fingerprint,
            "previous_fingerprint": self.previous_fingerprint, "headline": self.headline, "text": self.text,
            "added": list(self.added), "removed": list(self.removed),
            "reworded": [{"before": a, "after": b} for a, b in self.reworded],
            "added_on": [{"text": t, "date": d} for t, d in self.added_on], "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    platform: str
    rule_id: str
    url: str  # scheme://host/path, never a query string or fragment
    setting: str
    state: str | None = None  # "on" / "off" for toggles
    effective_date: str | None = None  # ISO date, for notices that state one
    observed_at: str = ""  # ISO timestamp
    remedy: Remedy = field(default_factory=lambda: Remedy(None, ()))
    source: str = ""  # which detector: html, choice, name, json, request or notice (for logs and tests)
    seen_by: str = NETWORK  # which eye delivered what was read: network (the proxy) or page (the extension)
    policy: PolicyChange | None = None  # policy_changed only

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "platform": self.platform,
            "rule_id": self.rule_id,
            "url": self.url,
            "setting": self.setting,
            "state": self.state,
            "effective_date": self.effective_date,
            "observed_at": self.observed_at,
            "remedy": self.remedy.to_dict(),
            "seen_by": self.seen_by,
            **({"policy": self.policy.to_dict()} if self.policy is not None else {}),
        }

    def replace(self, **changes) -> "Finding":
        return dataclasses.replace(self, **changes)


def clean_url(url: str) -> str:
    """scheme://host/path of a URL: the query string and fragment can carry tokens, so they never leave here."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.port and not (
        (parts.scheme == "https" and parts.port == 443) or (parts.scheme == "http" and parts.port == 80)
    ):
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path or '/'}"
