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
# ISO 3166-1 alpha-2, all 249 officially assigned codes: a region that is not one of these (or EU, EEA)
# would silently match no rule's region list.
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT
MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())


class RegionError(ValueError):
    pass


def normalize_region(code: str | None) -> str | None:
    """'de' -> 'DE', 'uk' -> 'GB', '' -> None. Raises RegionError for anything else."""
    if code is None or not code.strip():
        return None
    c = ALIASES.get(code.strip().upper(), code.strip().upper())
    if c in GROUPS or c in COUNTRIES:
        return c
    shown = code.strip()[:20].encode("ascii", "backslashreplace").decode()
    raise RegionError(f"unknown region {shown!r}: use an ISO country code (DE, US, GB...), EU or EEA")


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
