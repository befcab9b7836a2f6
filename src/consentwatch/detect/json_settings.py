"""JSON settings: a rule's key in a JSON document, where the rule says it means the user's choice.

A key is read only on the endpoints its rule names (`paths`, `methods`): the same name can mean something else
elsewhere (claude.ai's `grove_enabled` is the user's choice in /api/account and a rollout flag in
/api/claude_code_grove). Within a document the key may sit at any depth unless the rule says under which keys
(`within`), and it counts only when its sibling fields say so (`only_if`: a WordPress site that is private is
not shared, whatever its opt-out says). `null` or an absent key means "not chosen yet": no finding.

Response bodies and the user's own change requests (`"in": "request"`, JSON or form-encoded) are read the same
way. The same keys embedded in HTML (JSON in <script> or <code>, HTML-escaped or not) are found by a scan that
reads the object around each hit when the rule needs its siblings.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qsl

from ..rules.model import JsonKey, Rule
from ..text import JSON_QUOTE, json_key_regex

MAX_NODES = 2_000_000  # bound on the walk for pathological documents
MAX_TRAIL = 8  # object keys remembered above a node (`within` paths are at most 8 keys long)
MAX_NESTED_JSON = 64  # JSON documents inside string values (GraphQL variables sent as a string) read per body
MAX_SCAN_HITS = 64  # "key": value pairs read per key by the fallback scan
CONTEXT = 64 * 1024  # how far the scan looks around a hit for the object that holds it

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


def holders(doc: object, keys: set[str]) -> Iterator[tuple[dict, tuple[str, ...]]]:
    """Every object holding one of `keys`, with the object keys that lead to it (list positions left out,
    the last MAX_TRAIL only). Iterative: deep nesting cannot blow the stack. A string value that is itself a
    JSON document holding a wanted key (GraphQL variables sent as a string) is read too."""
    # The way down is kept as a chain of (key, parent link) pairs, built into a tuple only for the few objects
    # that hold a wanted key: a bootstrap of 400 KB has tens of thousands of objects.
    stack: list[tuple[object, tuple | None]] = [(doc, None)]
    seen = 0
    nested = 0
    dict_, list_, str_ = dict, list, str
    while stack and seen < MAX_NODES:
        node, link = stack.pop()
        seen += 1
        t = type(node)
        if t is dict_:
            if not keys.isdisjoint(node):
                yield node, _trail(link)
            for k, v in node.items():
                tv = type(v)
                if tv is dict_ or tv is list_:
                    stack.append((v, (k, link)))
                elif tv is str_ and v[:1] in ("{", "[") and nested < MAX_NESTED_JSON and any(key in v for key in keys):
                    nested += 1
                    try:
                        stack.append((json.loads(v), (k, link)))
                    except (ValueError, RecursionError):
                        pass
        elif t is list_:
            stack.extend((x, link) for x in node if type(x) is dict_ or type(x) is list_)


def _trail(link: tuple | None) -> tuple[str, ...]:
    out: list[str] = []
    while link is not None and len(out) < MAX_TRAIL:
        out.append(link[0])
        link = link[1]
    return tuple(reversed(out))


def walk_values(doc: object, keys: set[str]) -> dict[str, list[object]]:
    """Every value of every wanted key, at any depth."""
    found: dict[str, list[object]] = {}
    for obj, _ in holders(doc, keys):
        for k in keys & obj.keys():
            found.setdefault(k, []).append(obj[k])
    return found


_PARENT = re.compile(JSON_QUOTE + r"([A-Za-z0-9_$-]{1,100})" + JSON_QUOTE + r"\s*:\s*\Z")
_BRACES = re.compile(r"[{}]")


def scan_values(text: str, keys: set[str]) -> dict[str, list[object]]:
    """Regex fallback for JSON that does not parse (truncated, embedded in HTML, too deep)."""
    found: dict[str, list[object]] = {}
    for key in keys:
        for m in json_key_regex(key).finditer(text):
            raw = re.sub(JSON_QUOTE, "", m.group(1))
            found.setdefault(key, []).append(raw)
    return found


def enclosing_object(text: str, pos: int) -> tuple[dict | None, str | None]:
    """The JSON object around `pos` in `text` (decoded, whatever escaping it is embedded with), and the key
    it is the value of. (None, None) when it cannot be read within CONTEXT characters either side."""
    lo = max(0, pos - CONTEXT)
    depth = 0
    start = None
    for m in reversed(list(_BRACES.finditer(text, lo, pos))):
        if m.group() == "}":
            depth += 1
        elif depth:
            depth -= 1
        else:
            start = m.start()
            break
    if start is None:
        return None, None
    depth = 0
    end = None
    for m in _BRACES.finditer(text, start, min(len(text), start + 2 * CONTEXT)):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            end = m.end()
            break
    if end is None:
        return None, None
    raw = text[start:end]
    obj = _decode_object(raw)
    parent = _PARENT.search(text, max(0, start - 200), start)
    return obj, (parent.group(1) if parent else None)


def _decode_object(raw: str) -> dict | None:
    candidates = [raw]
    if "&" in raw:
        candidates.append(html.unescape(raw))
    if "\\" in raw:
        try:  # JSON inside a JS/JSON string: \" or \u0022 around the names
            candidates.append(json.loads('"' + raw.replace('\\x22', '\\u0022') + '"'))
        except ValueError:
            pass
    for c in candidates:
        try:
            obj = json.loads(c)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def looks_like_json(text: str) -> bool:
    head = text[:64].lstrip("\ufeff \t\r\n")
    return head[:1] in ("{", "[")


def parse_form(text: str) -> dict:
    """A form-encoded body as a JSON-like object: `a[b]=1` becomes {"a": {"b": "1"}} (PHP and Rails style),
    and every field is also kept under its full name."""
    doc: dict = {}
    for name, value in parse_qsl(text.strip(), keep_blank_values=True, max_num_fields=1000):
        doc[name] = value
        parts = re.findall(r"[^\[\]]+", name)
        if len(parts) > 1:
            node = doc
            for p in parts[:-1]:
                nxt = node.get(p)
                if not isinstance(nxt, dict):
                    nxt = node[p] = {}
                node = nxt
            node[parts[-1]] = value
    return doc


def wanted_keys(rules: list[Rule], side: str, path: str, method: str | None,
                text: str | None = None) -> dict[str, list[tuple[Rule, JsonKey]]]:
    """The rules' keys that speak on this side of this exchange (and appear in `text` at all, when given)."""
    wanted: dict[str, list[tuple[Rule, JsonKey]]] = {}
    for rule in rules:
        for jk in rule.json_keys:
            if jk.applies(side, path, method) and (text is None or jk.key in text):
                wanted.setdefault(jk.key, []).append((rule, jk))
    return wanted


def judge_document(doc: object, wanted: dict[str, list[tuple[Rule, JsonKey]]]) -> list[JsonHit]:
    hits = []
    for obj, trail in holders(doc, set(wanted)):
        for key in wanted.keys() & obj.keys():
            b = as_bool(obj[key])
            if b is None:
                continue  # null (not chosen yet), or not a yes/no: no guess
            for rule, jk in wanted[key]:
                if jk.within_matches(trail) and jk.conditions_hold(obj):
                    hits.append(JsonHit(rule, key, b, b == jk.training_when))
    return hits


def judge_text(text: str, wanted: dict[str, list[tuple[Rule, JsonKey]]]) -> list[JsonHit]:
    """The fallback: `"key": value` pairs in text that is not one JSON document."""
    hits = []
    for key, specs in wanted.items():
        for n, m in enumerate(json_key_regex(key).finditer(text)):
            if n >= MAX_SCAN_HITS:
                break
            b = as_bool(re.sub(JSON_QUOTE, "", m.group(1)))
            if b is None:
                continue
            context: tuple[dict | None, str | None] | None = None
            for rule, jk in specs:
                if jk.only_if or jk.within:
                    if context is None:
                        context = enclosing_object(text, m.start())
                    obj, parent = context
                    if jk.only_if and (obj is None or not jk.conditions_hold(obj)):
                        continue  # siblings unreadable or saying no: the key says nothing
                    if jk.within and not (parent and any(w[-1] == parent for w in jk.within)):
                        continue
                hits.append(JsonHit(rule, key, b, b == jk.training_when))
    return hits


def detect_json(text: str, rules: list[Rule], is_json: bool, path: str = "/", method: str | None = None,
                side: str = "response") -> list[JsonHit]:
    wanted = wanted_keys(rules, side, path, method, text)
    if not wanted:
        return []
    if is_json:
        try:
            return judge_document(json.loads(text.lstrip("\ufeff")), wanted)
        except (ValueError, RecursionError):
            pass  # invalid or absurdly deep JSON: fall back to scanning
    return judge_text(text, wanted)


def detect_form(text: str, rules: list[Rule], path: str = "/", method: str | None = None,
                side: str = "request") -> list[JsonHit]:
    """A form-encoded body (a change request): its fields read like a JSON object."""
    wanted = wanted_keys(rules, side, path, method, text)
    if not wanted:
        return []
    return judge_document(parse_form(text), wanted)
