"""`POST /v1/observations`: the page eye. The extension sends the region of a rendered page that holds a rule's
labelled control (or a policy notice); the same detectors read it, and only what they find is kept.

Most settings pages are single-page apps whose switch exists only in the DOM the browser builds (see
docs and design.md, "Two eyes on the same engine"), so the proxy never sees it. The region runs through the
detection worker process (offload.py), the one the proxy feeds, never on the proxy's event loop; without
a worker, a thread of its own detects it. Findings are marked `seen_by: page` and stored through the same
`Watch.record` as the network's. The region itself is never stored or logged, and the URL loses its query
string and fragment before anything else sees it.

Parsing and checking a body is a plain function (`parse_observation`), rate limiting a small class
(`RateLimit`); the route only wires them to the detector.

A page sends the same region again whenever something around it changes (a feed scrolling by, a tab coming
back): a repeat. Each one cost the proxy a frame to the worker, an answer back through the receiver thread, a
store call and two hops between threads, to learn that nothing changed (bench/PROFILE.md). So once a region has
come back and changed nothing in the store, the next identical region of that URL is answered from memory
(`Repeat`) for as long as the answer is sure to be the same: the same rules and detector, the same UTC day (a
rule may apply from a date), no write to the warning store since (any write at all: `StateStore.writes`), and
before the first `last_seen` refresh of its warnings falls due. Anything else takes the whole path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from aiohttp import web

from ..findings import clean_url
from ..detect import Observation
from ..detection_worker import DetectorProcess
from ..pipeline import Watch
from .auth import error

log = logging.getLogger(__name__)

MAX_REGION = 64 * 1024  # UTF-8 bytes of the region's markup
MAX_BODY = 4 * MAX_REGION  # the JSON around it: escaping can grow markup (\uXXXX for every non-ASCII character)
MAX_URL = 2048
MAX_REPEATS = 256  # URLs whose last unchanging region is remembered (a digest and its findings each)
REASONS = ("setting", "notice")
FIELDS = frozenset({"url", "html", "reason"})
DETECT_TIMEOUT = 10.0  # seconds to wait for the worker's answer


@dataclass(frozen=True, slots=True)
class Repeat:
    """A region whose last sight changed nothing in the store, and what the answer was: while `valid()`, the
    same region again would be detected the same and change nothing again, so its answer is known."""

    watch: Watch
    detector: object  # the Detector in force (replaced whole when rules, region or size limit change)
    digest: bytes
    day: dt.date  # UTC: detection depends on the date (rules that apply from a day on, notices)
    writes: int  # StateStore.writes right after that record(): any write since and the memory is void
    until: dt.datetime | None  # the first last_seen refresh due on its warnings (exclusive)
    answer: tuple[dict, ...]  # the findings record() returned, as the API sends them; observed_at is each repeat's

    def valid(self, watch: Watch, digest: bytes, when: dt.datetime) -> bool:
        if not (self.watch is watch and self.detector is watch.detector and self.digest == digest
                and self.day == when.date() and self.writes == watch.state.writes):
            return False
        if self.until is None:
            return True
        until = self.until if self.until.tzinfo else self.until.replace(tzinfo=dt.timezone.utc)
        return when.replace(microsecond=0) < until


def _reusable(result) -> bool:
    """Answers that depend on nothing but the region, the rules, the day and the warning store."""
    return isinstance(result, Observation) and not (result.policy_texts or result.learned or result.suggestions)


def _record(watch: Watch, obs: PageObservation, digest: bytes, when: dt.datetime,
            result) -> tuple[list, Repeat | None]:
    """Store what detection made of a region (a DetectionError is counted there: only its type, never the
    region): the findings stored, and a Repeat when storing them changed nothing (the next identical region
    can be answered without detection). Runs where the store may block (a thread), never on the loop."""
    state = watch.state
    with state.lock:  # no other write between the record and reading what it did
        before = state.writes
        findings = watch.record(obs.url, result, obs.host)
        again = None
        if state.writes == before and _reusable(result):
            again = Repeat(watch, watch.detector, digest, when.date(), state.writes,
                           state.unchanged_until(findings), tuple(f.to_dict() for f in findings))
    return findings, again


def _too_many(wait: float) -> web.Response:
    return error(429, "too many observations; slow down", {"Retry-After": str(max(1, round(wait + 0.5)))})


class ObservationError(ValueError):
    """A body this route cannot use: `status` (400, 413, 422) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PageObservation:
    url: str  # scheme://host/path: the query string and fragment are gone
    host: str
    html: bytes  # UTF-8
    reason: str


def parse_observation(raw: bytes, is_rule_host: Callable[[str], bool]) -> PageObservation:
    """A request body -> PageObservation, or ObservationError saying what is wrong with it."""
    if len(raw) > MAX_BODY:
        raise ObservationError(413, f"the body is {len(raw)} bytes; the most is {MAX_BODY}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ObservationError(400, f"the body is not JSON ({type(e).__name__})") from None
    if not isinstance(body, dict):
        raise ObservationError(400, 'the body must be a JSON object: {"url": ..., "html": ..., "reason": ...}')
    missing = sorted(FIELDS - body.keys())
    if missing:
        raise ObservationError(422, f"missing field(s): {', '.join(missing)}")
    extra = sorted(body.keys() - FIELDS)
    if extra:
        raise ObservationError(422, f"unknown field(s): {', '.join(extra)[:200]}")
    url, html, reason = body["url"], body["html"], body["reason"]
    if reason not in REASONS:
        raise ObservationError(422, f"reason must be one of {', '.join(REASONS)}")
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ObservationError(422, f"url must be a string of 1 to {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ObservationError(422, "url is not a URL") from None
    if parts.scheme != "https" or not host:
        raise ObservationError(422, "url must be https://host/path")
    if not is_rule_host(host):
        raise ObservationError(422, f"{host[:253]} is not a host any rule watches")
    if not isinstance(html, str) or not html.strip():
        raise ObservationError(422, "html must be a non-empty string (the region's markup)")
    try:
        data = html.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise ObservationError(422, "html is not valid Unicode") from None
    if len(data) > MAX_REGION:
        raise ObservationError(413, f"the region is {len(data)} bytes; the most is {MAX_REGION}: send a smaller one")
    return PageObservation(clean_url(url), host, data, reason)


class RateLimit:
    """Token buckets: one for all pages and one per host. Pure arithmetic on a clock you pass in.

    A content script sends one region per change of what it reads (coalesced), so a real page stays far below
    these; a page or extension bug that loops is cut off instead of keeping the detection worker busy.
    """

    def __init__(self, per_host: tuple[float, float] = (30, 5.0), overall: tuple[float, float] = (60, 15.0),
                 max_hosts: int = 256):
        self.per_host = per_host  # (burst, refill per second)
        self.overall = overall
        self.max_hosts = max_hosts
        self._buckets: dict[str, tuple[float, float]] = {}  # "*" or a host -> (tokens, last time)

    def _take(self, key: str, burst: float, rate: float, now: float, commit: bool) -> float:
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - last) * rate)
        if tokens < 1:
            return (1 - tokens) / rate  # seconds until one token is back
        if commit:
            self._buckets[key] = (tokens - 1, now)
        return 0.0

    def overall_wait(self, now: float) -> float:
        """The seconds until the bucket for all pages has a token again (0: it has one); nothing is counted."""
        return self._take("*", *self.overall, now, False)

    def check(self, host: str, now: float) -> float:
        """0 when allowed (and counted), else the seconds to wait."""
        wait = max(self._take("*", *self.overall, now, False), self._take(host, *self.per_host, now, False))
        if wait:
            return wait
        if len(self._buckets) > self.max_hosts:
            self._buckets = {k: v for k, v in self._buckets.items() if k == "*"}
        self._take("*", *self.overall, now, True)
        self._take(host, *self.per_host, now, True)
        return 0.0


class PageEye:
    """Detects and stores page observations. `get_offload()` gives the detection worker (or None)."""

    def __init__(self, get_watch: Callable[[], Watch | None],
                 get_offload: Callable[[], DetectorProcess | None] = lambda: None,
                 rate_limit: RateLimit | None = None, clock: Callable[[], float] = time.monotonic):
        self.get_watch = get_watch
        self.get_offload = get_offload
        self.limit = rate_limit or RateLimit()
        self.clock = clock
        # without a worker process: one thread of our own, so detection never queues behind the store's calls
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentwatch-page")
        self.seen = 0  # observations detected (for tests and logs; never their content)
        self.repeats = 0  # of them, answered from memory (Repeat)
        self._recent: dict[str, Repeat] = {}  # URL -> its last region that changed nothing (only on the loop)

    async def detect_and_record(self, watch: Watch, obs: PageObservation) -> list[dict]:
        """Detect the region off the loop and store what is found: the findings stored (Watch.record's answer),
        as the API sends them."""
        when = dt.datetime.now(dt.timezone.utc)
        digest = hashlib.blake2b(obs.html, digest_size=16).digest()
        known = self._recent.get(obs.url)
        if known is not None:
            if known.valid(watch, digest, when):
                self.repeats += 1
                stamp = when.isoformat(timespec="seconds")  # as the detector stamps a finding
                return [{**f, "observed_at": stamp} for f in known.answer]
            del self._recent[obs.url]
        findings, again = await self._detect_and_store(watch, obs, digest, when)
        if again is not None:
            if len(self._recent) >= MAX_REPEATS:
                self._recent.clear()
            self._recent[obs.url] = again
        return [f.to_dict() for f in findings]

    async def _detect_and_store(self, watch: Watch, obs: PageObservation, digest: bytes,
                                when: dt.datetime) -> tuple[list, Repeat | None]:
        offload = self.get_offload()
        store = functools.partial(_record, watch, obs, digest, when)
        # With the worker, its receiver thread stores the answer as soon as it is in (one hop back to the loop for
        # the reply, instead of one to the loop and one more to a thread for the store).
        fut = offload.observe(obs.url, obs.html, when, obs.host, then=store) if offload is not None else None
        if fut is not None:
            try:
                return await asyncio.wait_for(asyncio.wrap_future(fut), DETECT_TIMEOUT)
            except RuntimeError:
                pass  # the worker died meanwhile: detect in our thread below
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._detect_in_thread, watch, obs, when,
                                                                        store))

    @staticmethod
    def _detect_in_thread(watch: Watch, obs: PageObservation, when: dt.datetime, store: Callable):
        result = watch.detect(obs.url, "text/html; charset=utf-8", obs.html, "", when, obs.host, seen_by="page")
        # the page eye keeps findings only: no suggestions from a region (the worker drops them itself)
        if isinstance(result, Observation):
            result = dataclasses.replace(result, suggestions=())
        return store(result)

    async def handle(self, request: web.Request) -> web.Response:
        watch = self.get_watch()
        if watch is None:
            return error(503, "consentwatch is starting")
        ctype = request.content_type
        if ctype != "application/json":
            return error(415, "send the observation as application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return error(413, f"the body is {request.content_length} bytes; the most is {MAX_BODY}")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"the body is over {MAX_BODY} bytes")
        # Over the limit for all pages: refused before the body is parsed (up to 256 KiB of JSON on the proxy's
        # loop, ~0.5 ms when it is all escapes), so that a flood, from a looping extension or anything else
        # holding the token, costs the proxy little more than the request. The body is still read: left unread,
        # aiohttp drains it anyway to keep the connection (its "lingering" read), and skipping the read saved
        # nothing measurable. The per-host limit needs the URL, which is in the body.
        wait = self.limit.overall_wait(self.clock())
        if wait:
            return _too_many(wait)
        try:
            obs = parse_observation(raw, lambda h: bool(watch.detector.rules_for(h)))
        except ObservationError as e:
            return error(e.status, str(e))
        wait = self.limit.check(obs.host, self.clock())
        if wait:
            return _too_many(wait)
        try:
            findings = await self.detect_and_record(watch, obs)
        except asyncio.TimeoutError:
            return error(503, "detection is busy; try again", {"Retry-After": "2"})
        self.seen += 1
        # No log line per observation: a page sends one each time what it shows changes, and under mitmproxy every
        # log record goes to every addon. A change of state is logged by the pipeline, as the network's are.
        return web.json_response({"findings": findings}, status=202)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
