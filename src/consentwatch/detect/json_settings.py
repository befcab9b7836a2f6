"""JSON settings: a rule's key anywhere in a JSON document (nesting is unknown), with its meaning.

Settings APIs change shape more often than they rename fields, so the key is matched at any depth.
The same keys embedded in HTML (JSON in <script> or <code>, HTML-escaped or not) are found too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..rules.model import JsonKey, Rule
from ..text import JSON_QUOTE, json_key_regex

MAX_NODES = 2_000_000  # bound on the walk for pathological documents

_TRUTHY = {"true", "1", "on", "yes", "enabled", "enable", "allowed", "allow"}
_FALSY = {"false", "0", "off", "no", "disabled", "disable", "denied", "deny"}


@dataclass(frozen=True, slots=True)
class JsonHit:
    rule: Rule
    key: str
    value: bool
    training_on: bool


def as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUTHY:
            return True
        if v in _FALSY:
            return False
    return None


def walk_values(doc: object, keys: set[str]) -> dict[str, list[object]]:
    """Every value of every wanted key, at any depth. Iterative: deep nesting cannot blow the stack."""
    found: dict[str, list[object]] = {}
    stack = [doc]
    seen = 0
    while stack and seen < MAX_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            for k, v in node.items():
                if k in keys:
                    found.setdefault(k, []).append(v)
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(x for x in node if isinstance(x, (dict, list)))
    return found


def scan_values(text: str, keys: set[str]) -> dict[str, list[object]]:
    """Regex fallback for JSON that does not parse (truncated, embedded in HTML, too deep)."""
    found: dict[str, list[object]] = {}
    for key in keys:
        for m in json_key_regex(key).finditer(text):
            raw = re.sub(JSON_QUOTE, "", m.group(1))
            found.setdefault(key, []).append(raw)
    return found


def looks_like_json(text: str) -> bool:
    head = text[:64].lstrip("\ufeff \t\r\n")
    return head[:1] in ("{", "[")


def detect_json(text: str, rules: list[Rule], is_json: bool) -> list[JsonHit]:
    wanted: dict[str, list[tuple[Rule, JsonKey]]] = {}
    for rule in rules:
        for jk in rule.json_keys:
            # cheap pre-check: the bare key must appear at all
            if jk.key in text:
                wanted.setdefault(jk.key, []).append((rule, jk))
    if not wanted:
        return []
    values: dict[str, list[object]] | None = None
    if is_json:
        try:
            values = walk_values(json.loads(text.lstrip("\ufeff")), set(wanted))
        except (ValueError, RecursionError):
            values = None  # invalid or absurdly deep JSON: fall back to scanning
    if values is None:
        values = scan_values(text, set(wanted))
    hits = []
    for key, vals in values.items():
        for rule, jk in wanted[key]:
            for v in vals:
                b = as_bool(v)
                if b is not None:
                    hits.append(JsonHit(rule, key, b, b == jk.training_when))
    return hits
