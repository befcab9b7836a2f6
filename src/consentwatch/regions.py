"""Where and when a rule applies: the user's region (ISO code, EU or EEA) against a rule's `applies`."""

from __future__ import annotations

import datetime as dt

EU = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
EEA = EU | {"IS", "LI", "NO"}
GROUPS = {"EU": EU, "EEA": EEA}
# The UK's ISO code is GB; people type UK.
ALIASES = {"UK": "GB", "EL": "GR"}


class RegionError(ValueError):
    pass


def normalize_region(code: str | None) -> str | None:
    """'de' -> 'DE', 'uk' -> 'GB', '' -> None. Raises RegionError for anything else."""
    if code is None or not code.strip():
        return None
    c = ALIASES.get(code.strip().upper(), code.strip().upper())
    if c in GROUPS or (len(c) == 2 and c.isalpha() and c.isascii()):
        return c
    raise RegionError(f"unknown region {code!r}: use an ISO country code (DE, US, GB...), EU or EEA")


def _countries(code: str) -> frozenset[str]:
    return GROUPS.get(code, frozenset({code}))


def in_region_list(region: str, listed: list[str]) -> bool:
    """Is the user's region covered by a list such as ["EU", "CH", "GB"] or ["*"]?"""
    mine = _countries(region)
    for entry in listed:
        if entry == "*":
            return True
        # A user who says "EU" is in any EU country: EU and EEA entries both cover them.
        if mine & _countries(entry) == mine or (region in GROUPS and mine & _countries(entry)):
            return True
    return False


def applies(applies_list: list[dict], region: str | None, on: dt.date) -> bool:
    """True when the rule covers `region` on date `on`. No region given: assume it applies (warn rather than miss)."""
    for entry in applies_list:
        start = entry.get("from")
        end = entry.get("until")
        if start and on < dt.date.fromisoformat(start):
            continue
        if end and on > dt.date.fromisoformat(end):
            continue
        if region is None:
            return True
        if in_region_list(region, entry["regions"]) and not in_region_list(region, entry.get("except", [])):
            return True
    return False
