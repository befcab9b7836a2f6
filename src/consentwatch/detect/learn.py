"""Keys learned from the user's own click: which field of a change request carries a setting the page shows.

Nobody who writes the rules can see every platform's logged-in settings app, and the field an app sends when
its switch flips is rarely documented (research/real-traffic.md). The user's own browser sees both halves: the
page eye reads the switch (its rule's label, its state), and the network eye reads the change request the app
sends a moment later. When the page eye sees a rule's switch go from one state to the other and, close to it
(its report up to `WINDOW` after the request, or the request up to `SOON` after the report), a POST/PUT/PATCH to the same site carries a boolean (or a two-valued word: on/off,
enabled/disabled, ...) that changed the same way, that field is a candidate `json_keys` entry for the rule:
endpoint path, the field's dotted path in the body, and which value means training. Nothing else of the body
is kept: not its other fields, not the value beyond the polarity it implies.

Which boolean "changed": the app's earlier JSON on the same site (the settings it loaded) and its earlier change
requests give each field name its last known value (`Priors`). A field whose value differs from it flipped; when
several flipped, only one that flipped in the direction of the switch (false->true as training went on) counts,
else the one that flipped against it (an opt-out field). A body whose fields have no known value counts only
when it holds exactly one boolean. Anything else is ambiguous: no suggestion (never a guess).

Everything here is memory of the last seconds (pending events) and minutes (last values), bounded and expiring;
pure: no I/O, no clock but the observations' own timestamps. Off unless discovery is on (`run --discover`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..findings import TOGGLE_OFF, TOGGLE_ON, Finding, clean_url
from ..rules.hosts import registrable_domain
from ..rules.model import CHANGE_METHODS, Rule
from .discovery import MAX_LABEL_CHARS
from .json_settings import parse_form

WINDOW = dt.timedelta(seconds=10)  # a click and its request: how far apart, either order
# A request pairs at once only with a click this recent; else it waits for the page eye's next change. (The page
# eye reports a click a moment after the app's request, so the change before a request may be an older one.)
SOON = dt.timedelta(seconds=5)
MAX_PENDING = 32  # switch changes, and change requests, waiting for their other half
MAX_LEAVES = 64  # booleans read from one change request (a settings change carries a few)
MAX_PRIOR_LEAVES = 4000  # booleans read from one JSON response
MAX_PRIORS = 8192  # field names remembered per site
MAX_SITES = 16
PRIOR_TTL = dt.timedelta(minutes=30)  # a value the app loaded this long ago says nothing about now
PAGE_TTL = dt.timedelta(minutes=30)  # the switch's state at page load, read again when it changes
MAX_PAGES = 64
MAX_NODES = 200_000  # bound on a walk
MAX_NESTED = 16  # JSON documents inside string values (GraphQL variables sent as a string, form field `data=`)
MAX_DEPTH = 9  # a key and 8 keys above it (a `within` path is at most 8 keys)
# what a rule's `json_keys` can name (schema: key and within segments)
KEY_NAME = re.compile(r"[A-Za-z0-9_$-]{1,100}")
# a key that looks like an id (two digits in a row, as discovery's labels): an account's, never a setting's name
_ID_LIKE = re.compile(r"\d\d")
# two-valued words (the JSON readers' as_bool accepts them): "strong" like true/false
_WORDS = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False, "enabled": True,
          "disabled": False, "enable": True, "disable": False, "allowed": True, "denied": False, "allow": True,
          "deny": False}
# 0/1 may be a count as well as a flag: "weak", used only when a known earlier value shows it flipped
_DIGITS = {"1": True, "0": False}

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeySuggestion:
    """A field of a change request that changed with a rule's switch: endpoint, dotted path, polarity, label."""

    rule_id: str
    platform: str
    host: str
    path: str  # the endpoint's URL path, never a query string
    method: str
    key: str  # dotted path of the field inside the body (list positions left out)
    training_when: bool  # the value that means training is ON
    label: str  # the switch, as its rule names it
    seen: str  # ISO timestamp of the click

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "platform": self.platform, "host": self.host, "path": self.path,
                "method": self.method, "key": self.key, "training_when": self.training_when, "label": self.label,
                "seen": self.seen}


@dataclass(frozen=True, slots=True)
class SwitchChange:
    """The page eye saw a rule's switch go from `before` to `after` ("on": training allowed)."""

    site: str
    rule_id: str
    platform: str
    label: str
    before: str
    after: str
    when: dt.datetime


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A change request, reduced to what matching needs: which booleans flipped (against the last known values)
    and which booleans had no known value. Values are booleans only; nothing else of the body."""

    site: str
    host: str
    path: str
    method: str
    when: dt.datetime
    flipped: dict[str, bool] = field(default_factory=dict)  # dotted path -> new value
    unknown: dict[str, bool] = field(default_factory=dict)  # dotted path -> value (true/false or a word only)


def as_flag(value: object) -> tuple[bool, bool] | None:
    """(value, strong) for a boolean-like value, else None. JSON booleans and the two-valued words are strong;
    0/1 and "1"/"0" are weak: they may be counts."""
    if isinstance(value, bool):
        return value, True
    if isinstance(value, int) and value in (0, 1):
        return bool(value), False
    if isinstance(value, str) and len(value) <= 10:
        v = value.strip().lower()
        if v in _WORDS:
            return _WORDS[v], True
        if v in _DIGITS:
            return _DIGITS[v], False
    return None


def flags(doc: object, limit: int = MAX_LEAVES) -> dict[Path, tuple[bool, bool]]:
    """Every boolean-like leaf of a JSON-like document: path of object keys (list positions left out) ->
    (value, strong). A path seen with both values (items of a list) is left out: it names no one field.
    Keys a rule could not name (dots, brackets, spaces) or that look like ids end the walk below them. String values that are JSON
    documents are read too. Iterative and bounded."""
    out: dict[Path, tuple[bool, bool]] = {}
    mixed: set[Path] = set()
    stack: list[tuple[object, Path]] = [(doc, ())]
    seen = nested = 0
    while stack and seen < MAX_NODES and len(out) < limit:
        node, path = stack.pop()
        seen += 1
        if isinstance(node, dict):
            if len(path) >= MAX_DEPTH:
                continue
            for k, v in node.items():
                if not isinstance(k, str) or not KEY_NAME.fullmatch(k) or _ID_LIKE.search(k):
                    continue
                if isinstance(v, (dict, list)):
                    stack.append((v, path + (k,)))
                    continue
                if isinstance(v, str) and v[:1] in ("{", "[") and nested < MAX_NESTED:
                    nested += 1
                    try:
                        stack.append((json.loads(v), path + (k,)))
                    except (ValueError, RecursionError):
                        pass
                    continue
                flag = as_flag(v)
                if flag is None:
                    continue
                p = path + (k,)
                if p in mixed:
                    continue
                if p in out and out[p][0] != flag[0]:
                    del out[p]
                    mixed.add(p)
                    continue
                out[p] = flag
        elif isinstance(node, list):
            stack.extend((x, path) for x in reversed(node) if isinstance(x, (dict, list)))
    return out


def request_flags(text: str, content_type: str) -> dict[Path, tuple[bool, bool]]:
    """The booleans of a change request's body (JSON, or form-encoded as the request-side keys read it)."""
    head = text.lstrip("\ufeff \t\r\n")[:1]
    if "x-www-form-urlencoded" in (content_type or "").lower() or (head not in ("{", "[") and "=" in text[:4096]):
        return flags(parse_form(text))
    try:
        return flags(json.loads(text.lstrip("\ufeff")))
    except (ValueError, RecursionError):
        return {}


class Priors:
    """The last known value of each boolean field name per site, from the app's JSON and its change requests.
    A name seen with both values in one document is unknown (None). Bounded: sites and names, LRU; expiring."""

    def __init__(self, ttl: dt.timedelta = PRIOR_TTL):
        self.ttl = ttl
        self._sites: OrderedDict[str, OrderedDict[str, tuple[bool | None, dt.datetime]]] = OrderedDict()

    def get(self, site: str, name: str, when: dt.datetime) -> bool | None:
        known = self._sites.get(site)
        hit = known.get(name) if known else None
        if hit is None or abs(when - hit[1]) > self.ttl:
            return None
        return hit[0]

    def update(self, site: str, leaves: dict[Path, tuple[bool, bool]], when: dt.datetime) -> None:
        if not leaves:
            return
        by_name: dict[str, bool | None] = {}
        for p, (value, _) in leaves.items():
            name = p[-1]
            by_name[name] = value if by_name.get(name, value) == value else None
        known = self._sites.get(site)
        if known is None:
            known = self._sites[site] = OrderedDict()
            while len(self._sites) > MAX_SITES:
                self._sites.popitem(last=False)
        self._sites.move_to_end(site)
        for name, value in by_name.items():
            known[name] = (value, when)
            known.move_to_end(name)
        while len(known) > MAX_PRIORS:
            known.popitem(last=False)


def reduce_request(site: str, host: str, path: str, method: str, leaves: dict[Path, tuple[bool, bool]],
                   priors: Priors, when: dt.datetime) -> ChangeRequest:
    """Which booleans of a request flipped against what the site said before, and which had no known value."""
    flipped: dict[str, bool] = {}
    unknown: dict[str, bool] = {}
    for p, (value, strong) in leaves.items():
        before = priors.get(site, p[-1], when)
        if before is None:
            if strong:
                unknown[".".join(p)] = value
        elif before != value:
            flipped[".".join(p)] = value
    return ChangeRequest(site, host, path, method, when, flipped, unknown)


def match(change: SwitchChange, req: ChangeRequest, window: dt.timedelta = WINDOW) -> tuple[str, bool] | None:
    """(dotted key, training_when) when `req` carries the field that changed with the switch, else None."""
    if change.site != req.site or abs(req.when - change.when) > window or change.before == change.after:
        return None
    on = change.after == "on"
    if req.flipped:
        same = [k for k, v in req.flipped.items() if v == on]  # false -> true as training went on (and back)
        pick = same or list(req.flipped)
    else:
        pick = list(req.unknown)
    if len(pick) != 1:
        return None  # nothing changed, or several did the same way: no guess
    key = pick[0]
    value = req.flipped[key] if req.flipped else req.unknown[key]
    return key, value if on else not value


def _known_request_keys(rule: Rule | None) -> frozenset[str]:
    return frozenset(jk.key for jk in rule.json_keys if jk.side == "request") if rule else frozenset()


class Learner:
    """Pairs the page eye's switch changes with change requests. Thread-safe (the page eye and the proxy may feed
    one Detector from two threads); everything in memory, bounded, expiring.

    A request pairs with one click at most: the newest change it matches up to SOON before it, else the first
    change the page eye reports within WINDOW after it. Two flips of the same switch within the window can still pair a request with the
    wrong one; the key then shows up with both polarities, and `rules suggest` leaves it out."""

    def __init__(self, rules_by_id: dict[str, Rule], window: dt.timedelta = WINDOW):
        self.rules_by_id = rules_by_id
        self.window = window
        self.priors = Priors()
        self._changes: deque[SwitchChange] = deque(maxlen=MAX_PENDING)
        self._requests: deque[list] = deque(maxlen=MAX_PENDING)  # [ChangeRequest, paired already]
        self._pages: OrderedDict[tuple[str, str, str], tuple[str, dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: dt.datetime) -> None:
        while self._changes and now - self._changes[0].when > self.window:
            self._changes.popleft()
        while self._requests and now - self._requests[0][0].when > self.window:
            self._requests.popleft()

    def page(self, url: str, findings: list[Finding], when: dt.datetime) -> list[KeySuggestion]:
        """A page observation: its toggle findings, compared with the last observation of the same page and rule."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        out: list[KeySuggestion] = []
        with self._lock:
            for f in findings:
                if f.kind not in (TOGGLE_ON, TOGGLE_OFF) or f.state not in ("on", "off"):
                    continue
                key = (host, parts.path or "/", f.rule_id)
                last = self._pages.get(key)
                self._pages[key] = (f.state, when)
                self._pages.move_to_end(key)
                while len(self._pages) > MAX_PAGES:
                    self._pages.popitem(last=False)
                if last is None or last[0] == f.state or when - last[1] > PAGE_TTL:
                    continue
                change = SwitchChange(registrable_domain(host), f.rule_id, f.platform, f.setting[:MAX_LABEL_CHARS],
                                      last[0], f.state, when)
                self._expire(when)
                self._changes.append(change)
                for entry in reversed(self._requests):
                    if not entry[1]:
                        entry[1], learned = self._pair(change, entry[0])
                        if learned is not None:
                            out.append(learned)
        return out

    def request(self, url: str, method: str | None, content_type: str, text: str, when: dt.datetime) \
            -> list[KeySuggestion]:
        """A change request's body (read here, never kept): its booleans against the last known values."""
        if (method or "").upper() not in CHANGE_METHODS:
            return []
        leaves = request_flags(text, content_type)
        if not leaves:
            return []
        parts = urlsplit(clean_url(url))
        host = (parts.hostname or "").lower()
        site = registrable_domain(host)
        with self._lock:
            req = reduce_request(site, host, parts.path or "/", method.upper(), leaves, self.priors, when)
            self.priors.update(site, leaves, when)  # the next request compares with this one
            if not (req.flipped or req.unknown):
                return []
            self._expire(when)
            entry = [req, False]
            self._requests.append(entry)
            for change in reversed(self._changes):
                if when - change.when > SOON:
                    break  # waits for the page eye's report of its click (`page`)
                entry[1], learned = self._pair(change, req)
                if entry[1]:
                    return [learned] if learned is not None else []
        return []

    def response(self, host: str, doc: object, when: dt.datetime) -> None:
        """A JSON document the app fetched: the last known value of its boolean fields."""
        leaves = flags(doc, MAX_PRIOR_LEAVES)
        with self._lock:
            self.priors.update(registrable_domain(host), leaves, when)

    def _pair(self, change: SwitchChange, req: ChangeRequest) -> tuple[bool, KeySuggestion | None]:
        """(paired, suggestion): a pair whose field the rule reads already is paired, with nothing to suggest."""
        hit = match(change, req, self.window)
        if hit is None:
            return False, None
        key, training_when = hit
        if key.rsplit(".", 1)[-1] in _known_request_keys(self.rules_by_id.get(change.rule_id)):
            return True, None
        return True, KeySuggestion(change.rule_id, change.platform, req.host, req.path, req.method, key,
                                   training_when, change.label, max(change.when, req.when).isoformat(timespec="seconds"))
