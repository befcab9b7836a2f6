"""The pipeline every entry point shares: detect -> state store -> listeners.

`consentwatch replay`, the mitmproxy addon and `consentwatch run` all feed responses through one
`Watch`, so a recorded flow and a live one take the same path.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from pathlib import Path
from typing import Callable

from .detect import DetectionError, Detector, Observation
from .detect.body import DEFAULT_MAX_BYTES
from .detect.policy_text import PolicySighting, change_finding, compare
from .findings import Finding
from .rules.model import RuleSet
from .rules.store import RuleStore
from .store.policies import PolicyStore
from .store.lock import DataDirLock
from .store.state import Event, StateStore
from .store.suggestions import SuggestionStore

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]

# DetectionError kinds for a page given up without an answer (detection_worker.py's watchdog): counted apart in
# /v1/health.
TOO_SLOW = "DetectionTimeout"
WORKER_DIED = "WorkerDied"
GIVEN_UP = frozenset({TOO_SLOW, WORKER_DIED})


class Watch:
    def __init__(self, data_dir: Path, region: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 rules: RuleSet | None = None, discover: bool = False):
        self.data_dir = Path(data_dir)
        self.region = region
        # one writer per data dir (store/lock.py): raises DataDirBusy, before anything is opened
        self.lock = DataDirLock(self.data_dir).acquire()
        try:
            self._open(region, max_bytes, rules, discover)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, region: str | None, max_bytes: int, rules: RuleSet | None, discover: bool) -> None:
        # Discovery (labels of AI settings no rule knows, for maintainers' `rules suggest`) stores text from
        # pages: a maintainer's choice, off unless asked for.
        self.discover = discover
        self.rule_store = RuleStore(self.data_dir)
        # a start: an unusable rules.json is set aside here; later changes come through set_rules (reload())
        self.rules = rules if rules is not None else self.rule_store.load()
        self.rules_stamp = self.rule_store.stamp()  # the rules.json these rules came from (see RulesReloader)
        self.detector = Detector(self.rules, region, max_bytes, discover=discover, learn=discover)
        self.state = StateStore(self.data_dir, region)
        self.listeners: list[Listener] = []
        self.errors: Counter[str] = Counter()  # detection errors by rule set/host, for /v1/health
        self.abandoned = 0  # pages whose detection was given up (too slow, or its worker died on them)
        self.worker_restarts = 0  # detection workers started again (told by the addon)
        self._suggestions: SuggestionStore | None = None  # opened on the first discovered setting
        self._policies: PolicyStore | None = None  # opened on the first policy page
        self._policy_pending: dict[str, tuple[PolicySighting, dict]] = {}  # stored after the warnings

    def reconfigure(self, region: str | None, max_bytes: int, discover: bool = False) -> None:
        """New region, size limit or discovery choice for the same data dir: the stores stay open, the detector
        is replaced whole."""
        self.region = region
        self.state.region = region
        self.discover = discover
        self.detector = Detector(self.rules, region, max_bytes, discover=discover, learn=discover)

    def set_rules(self, rules: RuleSet) -> None:
        """Swap the rules in force (after an import). The detector is replaced whole: no half-updated state."""
        self.rules = rules
        self.detector = Detector(rules, self.region, self.detector.max_bytes, discover=self.discover,
                                 learn=self.discover)

    def process(self, url: str, content_type: str, body: bytes | None, content_encoding: str = "",
                observed_at: dt.datetime | None = None, host: str | None = None, method: str | None = None,
                side: str = "response") -> list[Finding]:
        """Detect, store, announce. Never raises: a bug in detection must not touch the user's traffic.
        `side` "request": the body of the user's own change request (read, never kept)."""
        return self.record(url, self.detect(url, content_type, body, content_encoding, observed_at, host, method, side),
                           host)

    def detect(self, url: str, content_type: str, body: bytes | None, content_encoding: str = "",
               observed_at: dt.datetime | None = None, host: str | None = None, method: str | None = None,
               side: str = "response", seen_by: str = "network") -> Observation | DetectionError | None:
        """The detection half of `process` (a worker process runs the same through `offload`)."""
        detector = self.detector
        if host is not None:
            rules = detector.rules_for(host) if side == "response" else detector.request_rules_for(host)
        else:
            rules = None
        if rules is not None and not rules and not (side == "request" and detector.learner is not None
                                                    and detector.rules_for(host)):
            return None  # (a change request on any rule host feeds the key learner, when discovery is on)
        try:
            return detector.detect(url, content_type, body, content_encoding, observed_at, rules=rules,
                                   method=method, side=side, seen_by=seen_by)
        except Exception as e:  # noqa: BLE001 - counted, logged once per rule set, never propagated
            return DetectionError(type(e).__name__)

    def record(self, url: str, obs: Observation | DetectionError | None, host: str | None = None) -> list[Finding]:
        """The storing half of `process`: findings to the state store, events to the listeners."""
        return self.record_many([(url, obs, host)])

    def record_many(self, items: list[tuple[str, Observation | DetectionError | None, str | None]]) -> list[Finding]:
        """Store a burst of observations with one disk write, then announce: what clients hear is on disk."""
        out: list[Finding] = []
        events: list[tuple[Event, Finding]] = []
        with self.state.batch():
            for url, obs, host in items:
                for finding in self._usable(url, obs, host):
                    finding, evs = self.state.record(finding, self.rules.by_id.get(finding.rule_id))
                    out.append(finding)
                    events.extend((e, finding) for e in evs)
        if self._policy_pending:
            self._store_policy_versions()
        for event, finding in events:
            log.info("%s: %s %s (%s)", event.type, finding.rule_id, finding.kind, finding.url)
            for listener in list(self.listeners):
                try:
                    listener(event)
                except Exception as e:  # noqa: BLE001 - a broken client must not stop the others
                    log.warning("listener failed: %s", type(e).__name__)
        return out

    def _usable(self, url: str, obs: Observation | DetectionError | None, host: str | None) -> list[Finding]:
        """The findings of one observation; errors counted (logged once per rule set), suggestions kept."""
        if obs is None:
            return []
        if isinstance(obs, DetectionError):
            if obs.kind in GIVEN_UP:
                self.abandoned += 1
            key = ",".join(r.id for r in self.detector.rules_for(host or _host(url)))
            self.errors[key] += 1
            if self.errors[key] == 1:
                log.error("detection failed for rules %s: %s (further errors for them are counted, not logged)",
                          key, obs.kind)
            return []
        if obs.note and not obs.findings:
            log.debug("not inspected (%s): %s", obs.note, _host(url))
        if obs.suggestions and self.discover:
            self._store_suggestions(obs.suggestions)
        if obs.learned and self.discover:
            self._store_learned(obs.learned)
        if obs.policy_texts:
            return obs.findings + self._policy_changes(obs.policy_texts)
        return obs.findings

    def _policy_changes(self, sightings: tuple[PolicySighting, ...]) -> list[Finding]:
        """Compare each policy page's AI part with the version this install saw last. The new version is stored
        after the warnings (`_store_policy_versions`): a crash in between shows the change again, never loses it."""
        out: list[Finding] = []
        try:
            if self._policies is None:
                self._policies = PolicyStore(self.data_dir)
            for s in sightings:
                pending = self._policy_pending.get(s.key)
                previous = pending[1] if pending else self._policies.latest(s.key)
                change = compare(s, previous)
                version = {"fingerprint": s.fingerprint, "sentences": list(s.sentences),
                           "first_seen": s.observed_at, "last_seen": s.observed_at}
                if previous is not None and previous.get("fingerprint") == s.fingerprint:
                    version = {**previous, "last_seen": s.observed_at}
                self._policy_pending[s.key] = (s, version)
                if change is not None:
                    rule = self.rules.by_id.get(s.rule_id)
                    out.append(change_finding(s, change, rule.remedy if rule else None))
        except Exception as e:  # noqa: BLE001 - like discovery: never let it stop detection
            log.warning("could not compare a policy document: %s", type(e).__name__)
        return out

    def _store_policy_versions(self) -> None:
        pending, self._policy_pending = self._policy_pending, {}
        try:
            for s, _ in pending.values():
                self._policies.record(s.key, {"rule_id": s.rule_id, "platform": s.platform, "document": s.document,
                                              "title": s.title, "kind": s.kind, "url": s.url},
                                      s.fingerprint, list(s.sentences), s.observed_at)
        except Exception as e:  # noqa: BLE001
            log.warning("could not store a policy document's version: %s", type(e).__name__)

    def _store_suggestions(self, suggestions) -> None:
        """Settings that speak of AI but match no rule: host, path and label, for `rules suggest`."""
        try:
            if self._suggestions is None:
                self._suggestions = SuggestionStore(self.data_dir)
            for s in suggestions:
                if self._suggestions.add(s.host, s.path, s.label, s.platform):
                    log.info("new setting that speaks of AI on %s%s (see `consentwatch rules suggest`)", s.host, s.path)
        except Exception as e:  # noqa: BLE001 - discovery is a nicety: never let it stop detection
            log.warning("could not store a suggestion: %s", type(e).__name__)

    def _store_learned(self, learned) -> None:
        """Request fields that changed with a rule's switch (detect/learn.py): endpoint, key, polarity, label."""
        try:
            if self._suggestions is None:
                self._suggestions = SuggestionStore(self.data_dir)
            for k in learned:
                if self._suggestions.add_key(k.to_dict()):
                    log.info("learned a key for %s: %s %s%s %s (see `consentwatch rules suggest`)", k.rule_id,
                             k.method, k.host, k.path, k.key)
        except Exception as e:  # noqa: BLE001 - like discovery: never let it stop detection
            log.warning("could not store a learned key: %s", type(e).__name__)

    def close(self) -> None:
        try:
            self.state.close()
            if self._suggestions is not None:
                self._suggestions.close()
            if self._policies is not None:
                self._policies.close()
        finally:
            self.lock.release()


def _host(url: str) -> str:
    from urllib.parse import urlsplit
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
