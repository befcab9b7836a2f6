"""The proxy side of `consentwatch capture`: record one platform's flows while the user flips its switch.

How `capture` talks to the running proxy: files in the data dir's `capture/` directory (0700), no network,
no API token, and nothing for the proxy to do while no capture runs but one stat() every half second.

    capture/request.json   written by `capture`: {"id", "platform", "state": "recording" | "stop"}; `capture`
                           touches it every second, so a capture killed with -9 is noticed and dropped
    capture/<id>.json      written by the proxy: the status ("recording" with a flow count, then "done",
                           "refused", "failed" or "cancelled", with what was removed by kind)
    capture/<id>.flow      written by the proxy when done: the scrubbed, verified recording

While a capture runs, the response hook copies the flows of the platform's rule hosts (references to the
same immutable bytes: no copy of the bodies) and hands them to one worker thread, which scrubs each in
memory; the raw flow is dropped once scrubbed. On "stop" the worker hunts the removed values through the
whole recording, verifies it, and only then writes it. Unscrubbed bytes never reach the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mitmproxy import http

from ..request_target import host_of
from ..store.atomic import atomic_write
from .files import Refused, finish, flow_bytes
from .scrub import Scrubber

log = logging.getLogger(__name__)

CAPTURE_DIR = "capture"
REQUEST_FILE = "request.json"
POLL_EVERY = 0.5  # seconds between the proxy's looks at request.json
STALE_AFTER = 15.0  # a request not touched for this long belongs to a `capture` that is gone
MAX_SECONDS = 30 * 60  # a capture left running stops itself (and is written) after this
MAX_FLOWS = 5000
MAX_BYTES = 256 * 1024 * 1024  # raw bytes held for scrubbing at most; flows beyond are counted, not kept
FINAL_STATES = ("done", "refused", "failed", "cancelled")


def capture_dir(data_dir: Path) -> Path:
    d = Path(data_dir) / CAPTURE_DIR
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8"), 0o600)


def read_json(path: Path, limit: int = 1 << 20) -> dict | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError:
        return None
    if len(raw) > limit:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Session:
    id: str
    platform: str
    directory: Path
    scrubber: Scrubber
    rules: object  # the RuleSet in force when the capture started
    started: float = field(default_factory=time.monotonic)
    flows: list[http.HTTPFlow] = field(default_factory=list)
    taken: int = 0  # flows handed to the worker
    raw_bytes: int = 0
    skipped: int = 0  # over the limits
    errors: int = 0  # flows the scrubber failed on (dropped: never written unscrubbed)
    hosts: set[str] = field(default_factory=set)
    last_status: float = 0.0

    def status(self, state: str, **extra) -> dict:
        return {"id": self.id, "platform": self.platform, "state": state, "flows": self.taken,
                "skipped": self.skipped, "errors": self.errors, "hosts": sorted(self.hosts), **extra}


class CaptureRecorder:
    """mitmproxy addon: records one platform's flows, scrubbed, while `consentwatch capture` asks for it."""

    def __init__(self, get_watch: Callable[[], object], poll_every: float = POLL_EVERY):
        self.get_watch = get_watch  # the pipeline in force: its data dir and rules
        self.poll_every = poll_every
        self.session: Session | None = None
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentwatch-capture")
        self._poller: asyncio.Task | None = None
        self._stamp: tuple | None = None
        self._request: dict | None = None
        self._ended: set[str] = set()

    # -- hooks ----------------------------------------------------------------------------------------
    def running(self) -> None:
        if self._poller is None and self.poll_every:
            self._poller = asyncio.get_running_loop().create_task(self._poll_loop(), name="consentwatch-capture")

    def response(self, flow: http.HTTPFlow) -> None:
        s = self.session
        if s is None or flow.response is None:
            return
        host = host_of(flow.request)
        if not any(r.platform == s.platform for r in s.rules.for_host(host)):
            return
        size = len(flow.request.raw_content or b"") + len(flow.response.raw_content or b"")
        if s.taken >= MAX_FLOWS or s.raw_bytes + size > MAX_BYTES:
            s.skipped += 1
            return
        s.taken += 1
        s.raw_bytes += size
        s.hosts.add(host)
        # get_state() shares the (immutable) body bytes: the live flow is neither copied nor touched
        self.pool.submit(self._add, s, flow.get_state())

    async def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.session is not None:
            self._end(self.session, "done")  # the proxy stops: keep what was recorded for `capture` to collect
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.pool.shutdown(wait=True))

    # -- the request file -----------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_every)
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - a capture problem must never touch the proxy
                log.error("consentwatch capture: %s", type(e).__name__)

    def check(self, now: float | None = None) -> None:
        """Start, stop or drop a capture as request.json says. Cheap: one stat() when nothing changed."""
        watch = self.get_watch()
        if watch is None:
            return
        path = Path(watch.data_dir) / CAPTURE_DIR / REQUEST_FILE
        try:
            st = os.stat(path)
        except OSError:
            st = None
        s = self.session
        if st is None:
            self._stamp = self._request = None
            if s is not None:
                self._end(s, "cancelled")
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            self._request = read_json(path, 64 * 1024)
        req = self._request or {}
        stale = (now or time.time()) - st.st_mtime > STALE_AFTER
        rid, state = str(req.get("id") or ""), req.get("state")
        if s is not None:
            if rid != s.id or stale:
                self._end(s, "cancelled")
                s = None
            elif state == "stop" or time.monotonic() - s.started > MAX_SECONDS:
                self._end(s, "done")
                return
            else:
                self._progress(s)
                return
        if s is None and state == "recording" and not stale and _valid_id(rid) and rid not in self._ended:
            self._start(rid, str(req.get("platform") or ""), path.parent)

    def _start(self, rid: str, platform: str, directory: Path) -> None:
        rules = self.get_watch().rules
        s = Session(rid, platform, directory, Scrubber(rules), rules)
        if not any(r.platform == platform for r in rules.rules):
            self._ended.add(rid)
            self.pool.submit(_write_json, directory / f"{rid}.json",
                             s.status("failed", error=f"no rule for platform {platform!r} in the running proxy"))
            return
        self.session = s
        log.info("consentwatch capture: recording %s (scrubbed in memory, written when `capture` stops)", platform)
        self.pool.submit(self._write_status, s, "recording")

    def _progress(self, s: Session) -> None:
        now = time.monotonic()
        if now - s.last_status >= 1.0:
            s.last_status = now
            self.pool.submit(self._write_status, s, "recording")

    def _end(self, s: Session, how: str) -> None:
        self.session = None
        self._ended.add(s.id)
        self.pool.submit(self._finish, s, how)  # after every flow already queued: one worker, in order

    # -- the worker thread ----------------------------------------------------------------------------
    def _add(self, s: Session, state: dict) -> None:
        try:
            s.flows.append(s.scrubber.scrub_flow(http.HTTPFlow.from_state(state)))
        except Exception as e:  # noqa: BLE001 - the flow is dropped, never written unscrubbed
            s.errors += 1
            log.warning("consentwatch capture: could not scrub a flow (%s); left out", type(e).__name__)

    def _write_status(self, s: Session, state: str, **extra) -> None:
        try:
            _write_json(s.directory / f"{s.id}.json", s.status(state, **extra))
        except OSError as e:
            log.warning("consentwatch capture: cannot write the status: %s", e.strerror or e)

    def _finish(self, s: Session, how: str) -> None:
        status = s.directory / f"{s.id}.json"
        try:
            if how == "cancelled":
                s.flows.clear()
                _write_json(status, s.status("cancelled"))
                return
            try:
                result = finish(s.flows, s.scrubber)
            except Refused as e:
                s.flows.clear()
                _write_json(status, s.status("refused", leaks=[str(leak) for leak in e.leaks[:50]]))
                return
            atomic_write(s.directory / f"{s.id}.flow", flow_bytes(result.flows), 0o600)
            s.flows.clear()
            _write_json(status, s.status("done", removed=result.removed, distinct=result.distinct,
                                         notes=result.notes, file=f"{s.id}.flow"))
        except Exception as e:  # noqa: BLE001 - say so; never leave the recording half-written
            s.flows.clear()
            try:
                _write_json(status, s.status("failed", error=type(e).__name__))
            except OSError:
                pass


def _valid_id(rid: str) -> bool:
    return len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)


# -- the `capture` command's side ------------------------------------------------------------------------

class CaptureClient:
    """Asks the running proxy (through the data dir) to record a platform, and collects the result."""

    def __init__(self, data_dir: Path, platform: str):
        self.dir = capture_dir(Path(data_dir))
        self.platform = platform
        self.id = uuid.uuid4().hex
        self.request = self.dir / REQUEST_FILE
        self.status_path = self.dir / f"{self.id}.json"
        self.flow_path = self.dir / f"{self.id}.flow"

    def busy(self) -> dict | None:
        """Another capture's live request, if one is running."""
        try:
            st = os.stat(self.request)
        except OSError:
            return None
        if time.time() - st.st_mtime > STALE_AFTER:
            return None
        req = read_json(self.request, 64 * 1024)
        return req if req and req.get("state") == "recording" else None

    def start(self) -> None:
        _write_json(self.request, {"id": self.id, "platform": self.platform, "state": "recording",
                                   "pid": os.getpid()})

    def heartbeat(self) -> None:
        try:
            os.utime(self.request)
        except OSError:
            pass

    def stop(self) -> None:
        _write_json(self.request, {"id": self.id, "platform": self.platform, "state": "stop", "pid": os.getpid()})

    def status(self) -> dict | None:
        return read_json(self.status_path)

    def cleanup(self) -> None:
        for p in (self.status_path, self.flow_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        req = read_json(self.request, 64 * 1024)
        if req is None or req.get("id") == self.id:
            try:
                self.request.unlink()
            except FileNotFoundError:
                pass
