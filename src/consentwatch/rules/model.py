"""Rule model: a validated rule dict compiled once into the matchers the detectors need."""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import Iterable
from urllib.parse import urlsplit

import jsonschema

from .. import ENGINE_VERSION
from ..findings import Remedy
from ..text import anchor_word, json_key_regex, norm, phrase_regex, phrase_source, raw_phrase_pattern, words
from .hosts import host_key, public_suffix_problem
from .regex_safety import check_pattern

log = logging.getLogger(__name__)

PACK_FORMAT = 1
# A phrase costs one regex step per word at each place its anchor word occurs: keep phrases short.
MAX_PHRASE_WORDS = 24


class PackError(ValueError):
    """A rule pack that cannot be used. `errors` holds one line per problem."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = errors or [message]


@functools.cache
def schema() -> dict:
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text("utf-8"))


def shipped_pack() -> dict:
    return json.loads(resources.files(__package__).joinpath("pack.json").read_text("utf-8"))


def validate_pack(pack: object) -> list[str]:
    """Every schema and semantic error, each as 'rule-id: path: message'. Empty list: valid."""
    validator = jsonschema.Draft202012Validator(schema())
    errors: list[str] = []
    try:
        found = sorted(validator.iter_errors(pack), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:  # a hostile pack nested thousands deep: one line, not a traceback
        return ["pack: (pack): nested too deeply to be a rule pack"]
    for err in found:
        path = list(err.absolute_path)
        rule_id = "pack"
        if len(path) >= 2 and path[0] == "rules" and isinstance(pack, dict):
            try:
                rule_id = pack["rules"][path[1]].get("id")
            except (IndexError, AttributeError, TypeError):
                rule_id = None
            if not isinstance(rule_id, str) or not rule_id or len(rule_id) > 100:
                rule_id = f"rules[{path[1]}]"  # an id that is itself the problem is not repeated
            where = "/".join(map(str, path[2:])) or "(rule)"
        else:
            where = "/".join(map(str, path)) or "(pack)"
        msg = err.message if len(err.message) <= 240 else err.message[:240] + "…"  # it quotes the value
        if err.validator == "required":
            # name the missing field in the path too, so "hosts" appears where people look for it
            missing = re.findall(r"'([^']+)' is a required property", msg)
            if missing:
                where = (where + "/" if where not in ("(rule)", "(pack)") else "") + missing[0]
        errors.append(f"{rule_id}: {where}: {msg}")
    if not errors and isinstance(pack, dict):
        seen: set[str] = set()
        for r in pack["rules"]:
            if r["id"] in seen:
                errors.append(f"{r['id']}: id: duplicate rule id")
            seen.add(r["id"])
            if not r["id"].startswith(r["platform"] + "."):
                errors.append(f"{r['id']}: id: must start with the platform id {r['platform']!r} and a dot")
            host_lists = [("hosts", r["hosts"]), ("notices/hosts", (r.get("notices") or {}).get("hosts") or [])]
            for where, hosts in host_lists:
                for i, h in enumerate(hosts):
                    if problem := public_suffix_problem(h):
                        errors.append(f"{r['id']}: {where}/{i}: {problem}")
            for i, fx in enumerate(r["fixtures"]):
                if problem := fixture_path_problem(fx["file"]):
                    errors.append(f"{r['id']}: fixtures/{i}/file: {problem}")
            for i, a in enumerate(r["applies"]):
                if a.get("from") and a.get("until") and a["from"] > a["until"]:
                    errors.append(f"{r['id']}: applies/{i}: 'from' is after 'until'")
            setting = r.get("setting") or {}
            errors.extend(f"{r['id']}: {e}" for e in _setting_problems(setting, r))
            phrases = [(f"setting/labels/{i}", x) for i, x in enumerate(setting.get("labels", ()))]
            phrases += [(f"setting/name_states/{x}", x) for x in setting.get("name_states", {})]
            phrases += [(f"notices/about/{i}", x) for i, x in enumerate((r.get("notices") or {}).get("about", ()))]
            for where, phrase in phrases:
                n = len(words(phrase))
                if n == 0:
                    errors.append(f"{r['id']}: {where}: phrase has no letters or digits, it would match anywhere")
                elif n > MAX_PHRASE_WORDS:
                    errors.append(f"{r['id']}: {where}: phrase has {n} words (limit {MAX_PHRASE_WORDS}): "
                                  "match a shorter, distinctive part of it")
            doc_ids = [doc["id"] for doc in r.get("policy_documents", ())]
            for dup in sorted({i for i in doc_ids if doc_ids.count(i) > 1}):
                errors.append(f"{r['id']}: policy_documents: duplicate document id {dup!r}")
            for where, source, flags, anchored in pattern_sources(r):
                for problem in check_pattern(source, flags, anchored):
                    hint = " (in globs use ** at most once, as the last wildcard)" \
                        if where == "setting/pages" or where.endswith("/paths") else ""
                    errors.append(f"{r['id']}: {where}: regex {problem}{hint}")
    return errors


def _setting_problems(s: dict, rule: dict) -> list[str]:
    """What the schema cannot check about a setting and the rule's `seen_via`."""
    out = []
    for i, k in enumerate(s.get("json_keys", ())):
        if k.get("in") == "request" and not set(k.get("methods", CHANGE_METHODS)) <= CHANGE_METHODS:
            out.append(f"setting/json_keys/{i}/methods: a change request is a POST, PUT or PATCH")
        if k["key"] in (k.get("only_if") or {}):
            out.append(f"setting/json_keys/{i}/only_if: a key cannot be its own condition")
    choices = s.get("choices") or {}
    if choices:
        if set(choices.values()) != {"training", "no_training"}:
            out.append("setting/choices: name at least one option meaning training and one meaning no_training")
        for text in choices:
            if not words(text):
                out.append(f"setting/choices/{text}: option text has no letters or digits")
    eyes = {v["eye"] for v in rule.get("seen_via", ())}
    if "network" in eyes and not s.get("json_keys"):
        out.append("seen_via: eye 'network' needs setting.json_keys (the proxy reads JSON keys, not pages)")
    readable = s.get("labels") or s.get("name_states") or rule.get("notices")
    for eye in sorted(eyes & {"markup", "page"}):
        if not readable:
            out.append(f"seen_via: eye {eye!r} needs setting.labels, setting.name_states or notices")
    return out


def pattern_sources(d: dict) -> list[tuple[str, str, int, bool]]:
    """Every regex a rule compiles to, as (field path, source, flags, anchored), for the safety check.

    These are the same sources `Rule.from_dict` compiles (a test keeps the two in step)."""
    s = d.get("setting") or {}
    out: list[tuple[str, str, int, bool]] = []
    if s.get("labels"):
        # the engine runs one pattern per label (around its anchor word); each is checked, and so is their
        # union, which a pack must keep safe too
        out.extend((f"setting/labels/{i}", raw_phrase_pattern(x), 0, False) for i, x in enumerate(s["labels"]))
        out.append(("setting/labels", "|".join(f"(?:{raw_phrase_pattern(x)})" for x in s["labels"]), 0, False))
    for phrase in s.get("name_states", {}):
        out.append((f"setting/name_states/{phrase}", raw_phrase_pattern(phrase), 0, False))
    if s.get("pages"):
        out.append(("setting/pages", "^(?:" + "|".join(glob_to_regex(p) for p in s["pages"]) + ")", 0, True))
    for i, k in enumerate(s.get("json_keys", ())):
        rx = json_key_regex(k["key"])
        out.append((f"setting/json_keys/{i}/key", rx.pattern, rx.flags & ~re.UNICODE, False))
        if k.get("paths"):
            out.append((f"setting/json_keys/{i}/paths", endpoint_regex(k["paths"]), 0, True))
    notices = d.get("notices")
    if notices:
        src = phrase_source(notices["about"], stem=True)
        if src is not None:
            out.append(("notices/about", src, 0, False))
        out.append(("notices/about", "|".join(f"(?:{raw_phrase_pattern(x)})" for x in notices["about"]), 0, False))
    for i, doc in enumerate(d.get("policy_documents", ())):
        out.append((f"policy_documents/{i}/paths", policy_path_source(doc), 0, True))
    return out


def policy_path_source(doc: dict) -> str:
    """The paths of a policy document (its `paths` globs, else its URL's path): whole-path match, '/' optional at
    the end. detect/policy_text.py compiles the same source."""
    globs = doc.get("paths") or [urlsplit(doc["url"]).path or "/"]
    return "^(?:" + "|".join(glob_to_regex(g.rstrip("/") or "/") for g in globs) + ")/?$"


def fixture_path_problem(rel: str) -> str | None:
    """Why a pack's fixture path may not be used, or None: relative, inside the fixtures folder."""
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return "is absolute: fixture paths start at the fixtures folder"
    if ".." in p.parts:
        return "leaves the fixtures folder (..)"
    return None


def glob_to_regex(glob: str) -> str:
    """Path glob -> regex source. '*' stays inside one segment, '**' crosses segments; prefix match."""
    out = []
    for part in re.split(r"(\*\*|\*)", glob):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        else:
            out.append(re.escape(part))
    return "".join(out)


def endpoint_regex(globs: Iterable[str]) -> str:
    """Endpoint globs -> one anchored regex source: the whole path must match (a trailing slash aside)."""
    return "^(?:" + "|".join(glob_to_regex(g.rstrip("/") or "/") for g in globs) + ")/?$"


CHANGE_METHODS = frozenset({"POST", "PUT", "PATCH"})  # the requests whose bodies are read (change requests)
EYES = ("network", "markup", "page")


def scalar_key(value: object) -> tuple | None:
    """How `only_if` compares values: 1, 1.0 and "1" are one number, true is not 1, strings ignore case.
    None for null (which an `only_if` list uses to accept an absent field)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    if isinstance(value, str):
        v = value.strip()
        try:
            return ("n", float(v)) if v else ("s", "")
        except ValueError:
            return ("s", v.lower())
    return ("x", repr(value))


@dataclass(frozen=True, slots=True)
class Condition:
    """`only_if` for one sibling field: the values it may have (and whether absent/null is fine)."""

    field: str
    accepted: frozenset
    absent_ok: bool

    def holds(self, obj: dict) -> bool:
        if self.field not in obj or obj[self.field] is None:
            return self.absent_ok
        return scalar_key(obj[self.field]) in self.accepted


@dataclass(frozen=True, slots=True)
class JsonKey:
    """A JSON field that carries the setting's state, and where it means the user's choice."""

    key: str
    training_when: bool
    side: str = "response"  # or "request": the user's own change request
    paths: re.Pattern[str] | None = field(default=None, compare=False)
    methods: frozenset[str] | None = None
    within: tuple[tuple[str, ...], ...] = ()  # the holding object's key path must end with one of these
    only_if: tuple[Condition, ...] = ()

    @classmethod
    def from_dict(cls, k: dict) -> "JsonKey":
        side = k.get("in", "response")
        methods = k.get("methods")
        if methods is None and side == "request":
            methods = CHANGE_METHODS
        only_if = []
        for name, values in (k.get("only_if") or {}).items():
            values = values if isinstance(values, list) else [values]
            only_if.append(Condition(name, frozenset(scalar_key(v) for v in values if v is not None),
                                     any(v is None for v in values)))
        return cls(k["key"], k["training_when"], side,
                   re.compile(endpoint_regex(k["paths"])) if k.get("paths") else None,
                   frozenset(m.upper() for m in methods) if methods else None,
                   tuple(tuple(w.split(".")) for w in k.get("within", ())), tuple(only_if))

    def applies(self, side: str, path: str, method: str | None) -> bool:
        """Does this key speak on this side of this exchange? An unknown method (None) passes."""
        if side != self.side:
            return False
        if self.methods is not None and method is not None and method.upper() not in self.methods:
            return False
        return self.paths is None or self.paths.match(path) is not None

    def conditions_hold(self, obj: dict) -> bool:
        return all(c.holds(obj) for c in self.only_if)

    def within_matches(self, trail: tuple[str, ...]) -> bool:
        """`trail`: the object keys leading to the object that holds the key (list positions left out)."""
        return not self.within or any(trail[-len(w):] == w for w in self.within if len(w) <= len(trail))


@dataclass(frozen=True)
class Rule:
    """One rule, compiled. `data` keeps the validated dict for export, the API and the extension."""

    data: dict = field(repr=False)
    id: str
    platform: str
    platform_name: str
    title: str
    hosts: tuple[str, ...]
    setting_name: str
    labels: tuple[str, ...]
    labels_norm: tuple[str, ...]
    checked_means_training: bool
    json_keys: tuple[JsonKey, ...]
    notice_hosts: frozenset[str]
    remedy: Remedy
    # chosen option text (normalised) -> training?, for a select / listbox / menu / radio group named by a label
    choices: tuple[tuple[str, bool], ...] = ()
    # a phrase in a control's accessible name (normalised) -> training?
    name_states: tuple[tuple[str, bool], ...] = ()
    seen_via: tuple[dict, ...] = ()
    has_toggle: bool = False  # the labels name a checkbox/switch (checked_means), not only a choice control
    # compiled matchers
    # (anchor word, pattern) per label: find the literal, then confirm the phrase around it
    label_finders: tuple[tuple[str, re.Pattern[str]], ...] = field(repr=False, default=())
    pages: re.Pattern[str] | None = field(repr=False, default=None)
    notice_about: re.Pattern[str] | None = field(repr=False, default=None)
    notice_about_raw: re.Pattern[str] | None = field(repr=False, default=None)
    name_finders: tuple[tuple[str, re.Pattern[str]], ...] = field(repr=False, default=())

    @classmethod
    def from_dict(cls, d: dict) -> "Rule":
        s = d.get("setting") or {}
        labels = tuple(s.get("labels", ()))
        pages = s.get("pages") or []
        notices = d.get("notices")
        r = d.get("remedy", {})
        return cls(
            data=d,
            id=d["id"],
            platform=d["platform"],
            platform_name=d.get("platform_name") or d["platform"].capitalize(),
            title=d["title"],
            hosts=tuple(d["hosts"]),
            setting_name=s.get("name") or d["title"],
            labels=labels,
            labels_norm=tuple(norm(label) for label in labels),
            checked_means_training=s.get("checked_means", "training") == "training",
            json_keys=tuple(JsonKey.from_dict(k) for k in s.get("json_keys", ())),
            notice_hosts=frozenset((notices or {}).get("hosts") or d["hosts"]) if notices else frozenset(),
            remedy=Remedy(r.get("settings_url"), tuple(r.get("steps", ())), r.get("note")),
            choices=tuple((norm(text), meaning == "training") for text, meaning in (s.get("choices") or {}).items()),
            name_states=tuple((norm(p), meaning == "training") for p, meaning in (s.get("name_states") or {}).items()),
            seen_via=tuple(d.get("seen_via", ())),
            has_toggle="checked_means" in s,
            name_finders=tuple((anchor_word(p), re.compile(raw_phrase_pattern(p)))
                               for p in (s.get("name_states") or {}) if anchor_word(p)),
            label_finders=tuple((anchor_word(x), re.compile(raw_phrase_pattern(x))) for x in labels if anchor_word(x)),
            pages=re.compile("^(?:" + "|".join(glob_to_regex(p) for p in pages) + ")") if pages else None,
            notice_about=phrase_regex(notices["about"], stem=True) if notices else None,
            notice_about_raw=re.compile("|".join(f"(?:{raw_phrase_pattern(x)})" for x in notices["about"])) if notices else None,
        )

    def page_matches(self, path: str) -> bool:
        return self.pages is None or self.pages.match(path) is not None

    @property
    def request_keys(self) -> tuple[JsonKey, ...]:
        return tuple(k for k in self.json_keys if k.side == "request")

    @property
    def anchor_phrases(self) -> tuple[str, ...]:
        """What locates this rule's control in a page: its labels and the phrases of its name states (the page
        eye looks for these in the rendered DOM)."""
        return self.labels + tuple((self.data.get("setting") or {}).get("name_states", {}))

    @property
    def eyes(self) -> tuple[str, ...]:
        """The eyes that can see this rule (from `seen_via`), in the order network, markup, page."""
        have = {v.get("eye") for v in self.seen_via}
        return tuple(e for e in EYES if e in have)


_host_key = host_key
MAX_REMEMBERED_HOSTS = 4096  # distinct hosts whose rules a RuleSet remembers


class RuleSet:
    """The rules in force, indexed by host so the per-flow check is one dict lookup, whatever the rule count."""

    def __init__(self, rules: Iterable[Rule], version: str = "", skipped: list[str] | None = None):
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.version = version
        self.skipped = skipped or []  # notes on rules this engine cannot use
        self._exact: dict[str, tuple[Rule, ...]] = {}
        self._wild: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            for h in rule.hosts:
                h = _host_key(h)
                if h.startswith("*."):
                    self._wild[h[2:]] = self._wild.get(h[2:], ()) + (rule,)
                else:
                    self._exact[h] = self._exact.get(h, ()) + (rule,)
        self.by_id = {r.id: r for r in self.rules}
        self._request_rules: dict[str, tuple[Rule, ...]] = {}
        self._found: dict[str, tuple[Rule, ...]] = {}  # for_host's answers

    def request_rules_for(self, host: str) -> tuple[Rule, ...]:
        """Rules of `host` that read the user's change requests (request-side JSON keys). Empty: not ours."""
        found = self._request_rules.get(host)
        if found is None:
            found = tuple(r for r in self.for_host(host) if r.request_keys)
            if len(self._request_rules) < MAX_REMEMBERED_HOSTS:  # bounded: hosts come from traffic
                self._request_rules[host] = found
        return found

    def __len__(self) -> int:
        return len(self.rules)

    def for_host(self, host: str) -> tuple[Rule, ...]:
        """Rules whose hosts cover `host`: exact names, then *.parent wildcards. Empty tuple: ignore the flow.
        Every flow asks, and most hosts are none of ours: the answer for each host is remembered (bounded: hosts
        come from traffic), so a host seen before costs one dict lookup, a match or not."""
        found = self._found.get(host)
        if found is None:
            found = self._for_host_now(host)
            if len(self._found) >= MAX_REMEMBERED_HOSTS:
                self._found.clear()
            self._found[host] = found
        return found

    def _for_host_now(self, host: str) -> tuple[Rule, ...]:
        found = self._exact.get(host)
        if found is not None:
            return found
        key = _host_key(host)  # WWW.LinkedIn.com. is www.linkedin.com: only a miss pays for the check
        if not self._wild:
            return self._exact.get(key, ()) if key != host else ()
        host = key
        found = self._exact.get(host, ())
        rest = host
        while "." in rest:
            rest = rest.split(".", 1)[1]
            found = found + self._wild.get(rest, ())
        return found

    def host_patterns(self) -> list[str]:
        """Every host of every rule (with *. wildcards), sorted: for allow_hosts, the PAC file and the CA."""
        return sorted({_host_key(h) for r in self.rules for h in r.hosts})

    def allow_hosts_regex(self) -> str:
        """One anchored regex for mitmproxy's allow_hosts: intercept these hosts, tunnel everything else."""
        alts = []
        for h in self.host_patterns():
            if h.startswith("*."):
                alts.append(r"(?:[a-z0-9-]+\.)+" + re.escape(h[2:]))
            else:
                alts.append(re.escape(h))
        # mitmproxy matches allow_hosts ignoring case; a fully qualified name ("host.") is the same host
        return r"^(?:" + "|".join(alts) + r")\.?(?::\d+)?$"

    def to_pack(self) -> dict:
        return {"$schema": "./schema.json", "format": PACK_FORMAT, "version": self.version,
                "rules": [r.data for r in self.rules]}


def load_pack(pack: object) -> RuleSet:
    """Validate a pack and compile it. Raises PackError listing every problem; skips rules for newer engines."""
    if not isinstance(pack, dict):
        raise PackError("a rule pack must be a JSON object")
    if pack.get("format") != PACK_FORMAT:
        raise PackError(f"unknown pack format {pack.get('format')!r}: this engine reads format {PACK_FORMAT}")
    errors = validate_pack(pack)
    if errors:
        raise PackError(f"{len(errors)} error(s) in rule pack", errors)
    rules, skipped = [], []
    for d in pack["rules"]:
        need = d.get("min_engine", 1)
        if need > ENGINE_VERSION:
            note = f"{d['id']}: skipped, needs engine {need} (this is engine {ENGINE_VERSION}); update consentwatch"
            log.info(note)
            skipped.append(note)
            continue
        rules.append(Rule.from_dict(d))
    return RuleSet(rules, version=str(pack["version"]), skipped=skipped)
