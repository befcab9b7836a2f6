"""The detection engine: picks the rules for a host, decodes the body once, runs the three detectors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import OrderedDict
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..findings import PAGE, POLICY_UPDATE, TOGGLE_OFF, TOGGLE_ON, Finding, clean_url
from ..regions import applies, normalize_region
from ..rules.model import Rule, RuleSet
from .body import DEFAULT_MAX_BYTES, read_body
from .discovery import Suggestion, discover
from .learn import KeySuggestion, Learner
from .html_choices import detect_choices, detect_name_states
from .html_toggles import detect_toggles
from .json_settings import detect_form, detect_json, looks_like_json
from .notices import detect_notices
from .policy_text import PolicyIndex, PolicySighting

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the detectors saw, before region filtering and before the state store adds history."""

    findings: list[Finding]
    skipped_region: list[str]  # rule ids that matched but do not apply to the user's region
    note: str = ""  # why nothing was read (undecodable body...), safe to log: never content
    suggestions: tuple[Suggestion, ...] = ()  # AI-labelled controls no rule knows (host, path, label only)
    policy_texts: tuple[PolicySighting, ...] = ()  # AI-relevant sentences of a policy document (policy_text.py)
    learned: tuple[KeySuggestion, ...] = ()  # request fields that changed with a rule's switch (learn.py)


@dataclass(frozen=True, slots=True)
class DetectionError:
    """Detection raised: only the exception's type travels (its message may quote the page)."""

    kind: str


def _kind_of(content_type: str, text: str) -> str:
    ct = (content_type or "").split(";")[0].strip().lower()
    if "json" in ct or ct.endswith("+json"):
        return "json" if looks_like_json(text) else ("html" if text.lstrip()[:1] == "<" else "json")
    if "html" in ct or "xml" in ct:
        return "json" if looks_like_json(text) else "html"
    # unlabelled or mis-labelled (text/plain, octet-stream): sniff
    head = text.lstrip("\ufeff \t\r\n")[:1]
    if head in ("{", "["):
        return "json"
    if head == "<":
        return "html"
    return "other"


MEMO_SIZE = 64
LEARN_MAX_BYTES = 512 * 1024  # JSON answers read for the last known values of their booleans (learn.py)


def _restamp(obs: Observation, when: dt.datetime) -> Observation:
    stamp = when.isoformat(timespec="seconds")
    return dataclasses.replace(obs, findings=[f.replace(observed_at=stamp) for f in obs.findings],
                               policy_texts=tuple(dataclasses.replace(p, observed_at=stamp) for p in obs.policy_texts))


class Detector:
    def __init__(self, rules: RuleSet, region: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 discover: bool = True, memo_size: int = MEMO_SIZE, learn: bool = False):
        self.rules = rules
        self.region = normalize_region(region)  # "de" and "uk" mean DE and GB here too
        self.max_bytes = max_bytes
        self.discover = discover  # look for AI settings no rule knows (see detect/discovery.py)
        # Detection is a pure function of its inputs, so the same response seen again (a settings page
        # reloaded, an app polling its settings API) is answered from memory: hashing the body costs ~50x
        # less than reading it. Only the observation's timestamps are renewed.
        self._memo: OrderedDict[tuple, Observation] = OrderedDict()
        self.memo_size = memo_size
        self.policies = PolicyIndex(rules.rules)
        # keys learned from the user's own click (learn.py): on with discovery (`run --discover`), never by default
        self.learner = Learner(rules.by_id) if learn else None

    def rules_for(self, host: str) -> tuple[Rule, ...]:
        """The fast path: one dict lookup. An empty tuple means the flow is not ours; nothing is decoded."""
        return self.rules.for_host(host)

    def request_rules_for(self, host: str) -> tuple[Rule, ...]:
        """Rules that read the user's change requests on `host` (request-side keys). Empty: the request is not read."""
        return self.rules.request_rules_for(host)

    def detect(self, url: str, content_type: str, body: bytes | None, content_encoding: str = "",
               observed_at: dt.datetime | None = None, rules: tuple[Rule, ...] | None = None,
               method: str | None = None, side: str = "response", seen_by: str = "network") -> Observation:
        """What `rules` (default: the rules of the URL's host) see in one body.

        `side` "response" (a page or an API answer; `method` is the request's, None when unknown) or "request"
        (the body of the user's own POST/PUT/PATCH: only request-side keys are read, nothing is kept).
        `seen_by` names the eye that delivered the body ("network": the proxy; "page": the extension)."""
        obs = self._detect(url, content_type, body, content_encoding, observed_at, rules, method, side, seen_by)
        if self.learner is not None:
            learned = self._learn(url, content_type, body, content_encoding, observed_at, method, side, seen_by, obs)
            if learned:
                obs = dataclasses.replace(obs, learned=tuple(learned))
        return obs

    def _learn(self, url, content_type, body, content_encoding, observed_at, method, side, seen_by,
               obs: Observation) -> list[KeySuggestion]:
        """Feed the learner (learn.py). Outside the memo: the same body seen again is still a new event. Never
        raises: learning must not stop detection."""
        try:
            host = (urlsplit(url).hostname or "").lower().rstrip(".")
            if not self.rules_for(host):
                return []
            when = observed_at or dt.datetime.now(dt.timezone.utc)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            if seen_by == PAGE:
                return self.learner.page(url, obs.findings, when)
            if not body:
                return []
            if side == "request":
                text, _ = read_body(body, content_type, content_encoding, self.max_bytes)
                return self.learner.request(url, method, content_type, text, when) if text else []
            ct = (content_type or "").lower()
            if len(body) <= LEARN_MAX_BYTES and ("json" in ct or not ct or "text/plain" in ct):
                text, _ = read_body(body, content_type, content_encoding, LEARN_MAX_BYTES)
                if text and looks_like_json(text):
                    self.learner.response(host, json.loads(text.lstrip("\ufeff")), when)
        except (ValueError, RecursionError):
            pass
        except Exception as e:  # noqa: BLE001 - a bug here must not cost the user a finding
            log.warning("learning a key failed: %s", type(e).__name__)
        return []

    def _detect(self, url: str, content_type: str, body: bytes | None, content_encoding: str = "",
                observed_at: dt.datetime | None = None, rules: tuple[Rule, ...] | None = None,
                method: str | None = None, side: str = "response", seen_by: str = "network") -> Observation:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if rules is None:
            rules = self.rules_for(host) if side == "response" else self.request_rules_for(host)
        if not rules:
            return Observation([], [])
        when = observed_at or dt.datetime.now(dt.timezone.utc)
        key = (tuple(r.id for r in rules), host, parts.path, content_type, content_encoding, when.date(),
               method, side, seen_by, len(body or b""), hash(body)) if self.memo_size else None
        if key is not None and (seen := self._memo.get(key)) is not None:
            self._memo.move_to_end(key)
            return _restamp(seen, when)
        text, note = read_body(body, content_type, content_encoding, self.max_bytes)
        if text is None:
            obs = Observation([], [], note)
        elif side == "request":
            obs = self._detect_request(rules, parts.path or "/", clean_url(url), content_type, text, when, note,
                                       method, seen_by)
        else:
            obs = self._detect_text(rules, host, parts.path or "/", clean_url(url), content_type, text, when, note,
                                    method, seen_by)
        if key is not None:
            self._memo[key] = obs
            if len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        return obs

    def _detect_request(self, rules, path, url, content_type, text, when, note, method, seen_by) -> Observation:
        """The user's own change request: the new value of a setting, in a JSON or form-encoded body."""
        rules = list(rules)
        head = text.lstrip("\ufeff \t\r\n")[:1]
        if "x-www-form-urlencoded" in (content_type or "").lower() or (head not in ("{", "[") and "=" in text[:4096]):
            hits = detect_form(text, rules, path, method)
        else:
            hits = detect_json(text, rules, is_json=True, path=path, method=method, side="request")
        verdicts: dict[str, tuple[Rule, bool, str]] = {}
        for h in hits:
            _vote(verdicts, h.rule, h.training_on, "request")
        findings, skipped = self._toggle_findings(verdicts, url, when, seen_by)
        return Observation(findings, skipped, note)

    def _detect_text(self, rules, host, path, url, content_type, text, when, note, method=None,
                     seen_by="network") -> Observation:
        kind = _kind_of(content_type, text)
        stamp = when.isoformat(timespec="seconds")
        verdicts: dict[str, tuple[Rule, bool, str]] = {}  # rule id -> (rule, training_on, source)

        def vote(rule: Rule, training_on: bool, source: str) -> None:
            _vote(verdicts, rule, training_on, source)

        notice_hits = []
        suggestions: tuple[Suggestion, ...] = ()
        policy_texts: list[PolicySighting] = []
        if kind in ("json", "html"):
            for h in detect_json(text, list(rules), is_json=(kind == "json"), path=path, method=method):
                vote(h.rule, h.training_on, "json")
        if kind == "html":
            low = text.lower()
            for h in detect_toggles(text, low, list(rules), path):
                vote(h.rule, h.training_on, "html")
            for c in detect_choices(text, low, list(rules), path):
                vote(c.rule, c.training_on, "choice")
            for c in detect_name_states(text, low, list(rules), path):
                vote(c.rule, c.training_on, "name")
            notice_rules = [r for r in rules if host in r.notice_hosts]
            if notice_rules:
                notice_hits = detect_notices(text, low, notice_rules)
            if self.discover:
                suggestions = tuple(discover(text, low, list(rules), host, path))
            if self.policies:
                policy_texts, why = self.policies.read(host, path, url, text, when, rules)
                note = note or why

        findings, skipped = self._toggle_findings(verdicts, url, when, seen_by)
        today = when.date()
        for h in notice_hits:
            if not applies(h.rule.data["applies"], self.region, today) and not _announces_future(h.effective_date, today):
                skipped.append(h.rule.id)
                continue
            findings.append(Finding(
                kind=POLICY_UPDATE, platform=h.rule.platform, rule_id=h.rule.id, url=url, setting=h.rule.setting_name,
                effective_date=h.effective_date, observed_at=stamp, remedy=h.rule.remedy, source="notice",
                seen_by=seen_by))
        return Observation(findings, skipped, note, suggestions, tuple(policy_texts))

    def _toggle_findings(self, verdicts, url, when, seen_by) -> tuple[list[Finding], list[str]]:
        findings: list[Finding] = []
        skipped: list[str] = []
        stamp = when.isoformat(timespec="seconds")
        for rule, training_on, source in verdicts.values():
            if training_on and not applies(rule.data["applies"], self.region, when.date()):
                skipped.append(rule.id)
                continue
            findings.append(Finding(
                kind=TOGGLE_ON if training_on else TOGGLE_OFF, platform=rule.platform, rule_id=rule.id, url=url,
                setting=rule.setting_name, state="on" if training_on else "off", observed_at=stamp,
                remedy=rule.remedy, source=source, seen_by=seen_by))
        return findings, skipped


def _vote(verdicts: dict, rule: Rule, training_on: bool, source: str) -> None:
    # any control saying "training on" wins: one ON switch is enough to warn
    prev = verdicts.get(rule.id)
    if prev is None or (training_on and not prev[1]):
        verdicts[rule.id] = (rule, training_on, source)


def _announces_future(effective: str | None, today: dt.date) -> bool:
    # A notice about a change still to come concerns the user even where the rule does not apply yet.
    try:
        return effective is not None and dt.date.fromisoformat(effective) >= today
    except ValueError:
        return False
