"""The finding: what a detector saw on one response. Plain data, shared by every part."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOGGLE_ON = "toggle_on"
TOGGLE_OFF = "toggle_off"
TOGGLE_REENABLED = "toggle_reenabled"
POLICY_UPDATE = "policy_update"
# Kinds that become (or keep alive) a warning; toggle_off only resolves one.
WARNING_KINDS = (TOGGLE_ON, TOGGLE_REENABLED, POLICY_UPDATE)


@dataclass(frozen=True, slots=True)
class Remedy:
    settings_url: str | None
    steps: tuple[str, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return {"settings_url": self.settings_url, "steps": list(self.steps), "note": self.note}


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
    seen_by: str = "network"  # which eye delivered what was read: network (the proxy) or page (the extension)

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
