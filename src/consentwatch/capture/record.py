"""The proxy side of `consentwatch capture`: record one platform's flows while the user flips its switch.

How `capture` talks to the running proxy: files in the data dir's `capture/` directory (0700), no network,
no API token, and nothing for the proxy to do while no capture runs but one stat() every half second.

    capture/request.json   written by `capture`: {"id", "platform", "state": "recording" | "stop"}; `capture`
                           touches it every second, so a capture killed with -9 is noticed and dropped
    capture/<id>.json      the status: "recording" with a flow count (written by the proxy), then "done",
                           "refused", "failed" or "cancelled" with what was removed, by kind (by the worker)
    capture/<id>.flow      written by the worker when done: the scrubbed, verified recording

While a capture runs, the response hook takes the state of each flow to the platform's rule hosts (the same
immutable body bytes, not a copy) and queues it; one sender thread passes it to a worker process started
for this capture, which scrubs each flow in memory as it arrives and drops the raw one. Scrubbing a big page
costs a second of CPU: in the proxy's own interpreter that would slow every other flow down. On "stop" the
worker hunts the removed values through the whole recording, verifies it, and only then writes it.
Unscrubbed bytes never reach the disk, and a scrubber bug can only end the capture, never the proxy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mitmproxy import http

from ..request_target import host_of
from ..store.atomic import atomic_write

if TYPE_CHECKING:
    from ..rules.model import RuleSet

log = logging.getLogger(__name__)

CAPTURE_DIR = "capture"
REQUEST_FILE = "request.json"
POLL_EVERY = 0.5  # seconds between the proxy's looks at request.json
STALE_AFTER = 15.0  # a request not touched for this long belongs to a `capture` that is gone
MAX_SECONDS = 30 * 60  # a capture left running stops itself (and is written) after this
MAX_FLOWS = 5000
MAX_BYTES = 256 * 1024 * 1024  # raw bytes handed to the worker at most; flows beyond are counted, not kept
WORKER_EXIT = 300.0  # seconds the worker may take to scrub the rest, verify and write
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
    rules: "RuleSet"  # the rules in force when the capture started
    started: float = field(default_factory=time.monotonic)
    taken: int = 0  # flows handed to the worker
    raw_bytes: int = 0
    skipped: int = 0  # over the limits
    hosts: set[str] = field(default_factory=set)
    last_status: float = 0.0
    worker: "_Worker | None" = None

    def status(self, state: str, **extra) -> dict:
        return {"id": self.id, "platform": self.platform, "state": state, "flows": self.taken,
                "skipped": self.skipped, "hosts": sorted(self.hosts), **extra}

    @property
    def status_path(self) -> Path:
        return self.directory / f"{self.id}.json"


class CaptureRecorder:
    """mitmproxy addon: records one platform's flows, scrubbed, while `consentwatch capture` asks for it."""

    def __init__(self, get_watch: Callable[[], object], poll_every: float = POLL_EVERY):
        self.get_watch = get_watch  # the pipeline in force: its data dir and rules
        self.poll_every = poll_every
        self.session: Session | None = None
        # the sender: starts the worker, hands it the flows, writes the progress; one thread, in order
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentwatch-capture")
        self._poller: asyncio.Task | None = None
        self._stamp: tuple | None = None
        self._request: dict | None = None
        self._ended: set[str] = set()
        # No capture, no response hook: in an AddonGroup (assembly.py) every flow's response then goes to
        # detection alone, with nothing in between. The group sets hooks_changed to hear when this changes.
        self.hooks_off: frozenset[str] = frozenset({"response"})
        self.hooks_changed: Callable[[], None] | None = None

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
        self.pool.submit(self._send, s, flow.get_state())

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
                log.error("capture: %s", type(e).__name__)

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
        s = Session(rid, platform, directory, rules)
        if not any(r.platform == platform for r in rules.rules):
            self._ended.add(rid)
            self.pool.submit(_write_json, s.status_path,
                             s.status("failed", error=f"no rule for platform {platform!r} in the running proxy"))
            return
        self.session = s
        self._listen(True)
        log.info("capture: recording %s (scrubbed in memory, written when `capture` stops)", platform)
        self.pool.submit(self._begin, s)

    def _listen(self, on: bool) -> None:
        self.hooks_off = frozenset() if on else frozenset({"response"})
        if self.hooks_changed is not None:
            self.hooks_changed()

    def _progress(self, s: Session) -> None:
        now = time.monotonic()
        if now - s.last_status >= 1.0:
            s.last_status = now
            self.pool.submit(self._write_status, s, "recording")

    def _end(self, s: Session, how: str) -> None:
        self.session = None
        self._listen(False)
        self._ended.add(s.id)
        self.pool.submit(self._finish, s, how)  # after every flow already queued: one sender, in order

    # -- the sender thread ----------------------------------------------------------------------------
    def _begin(self, s: Session) -> None:
        self._write_status(s, "recording")
        try:
            s.worker = _Worker(s)
        except Exception as e:  # noqa: BLE001 - no worker, no capture: say so, record nothing
            log.warning("capture: cannot start the scrubbing worker (%s)", type(e).__name__)
            self._write_status(s, "failed", error=f"cannot start the scrubbing worker ({type(e).__name__})")

    def _send(self, s: Session, state: dict) -> None:
        if s.worker is not None:
            s.worker.send(("flow", state))

    def _write_status(self, s: Session, state: str, **extra) -> None:
        try:
            _write_json(s.status_path, s.status(state, **extra))
        except OSError as e:
            log.warning("capture: cannot write the status: %s", e.strerror or e)

    def _finish(self, s: Session, how: str) -> None:
        w = s.worker
        if w is None:
            if how == "cancelled":
                self._write_status(s, "cancelled")
            return  # the worker never started: its failure is the status already
        w.send((how if how == "cancelled" else "stop", s.status("done")))
        code = w.wait(WORKER_EXIT)
        if code == 0:
            return  # the worker wrote the final status (and `capture` may have collected and removed it already)
        final = read_json(s.status_path) or {}
        if final.get("state") not in FINAL_STATES:
            why = "it took too long" if code is None else f"it ended with code {code}"
            log.warning("capture: the scrubbing worker failed (%s); nothing was written", why)
            try:
                (s.directory / f"{s.id}.flow").unlink()
            except OSError:
                pass
            self._write_status(s, "failed", error=f"the scrubbing worker failed ({why})")


def _valid_id(rid: str) -> bool:
    return len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)


class _Worker:
    """The worker process of one capture, and the pipe to it."""

    def __init__(self, s: Session):
        # spawn, not fork: forking a process that runs an event loop and threads copies their locks mid-use
        ctx = multiprocessing.get_context("spawn")
        r, w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_scrub_worker, args=(r, str(s.directory), s.id, s.rules.to_pack()),
                                name="consentwatch-capture", daemon=True)
        self.proc.start()
        r.close()
        self.conn = w
        self.broken = False

    def send(self, msg: tuple) -> None:
        if self.broken:
            return
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            self.broken = True  # the worker died: _finish says so

    def wait(self, timeout: float) -> int | None:
        try:
            self.conn.close()
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join(5)
            return None
        return self.proc.exitcode


def _scrub_worker(conn, directory: str, sid: str, pack: dict) -> None:
    """The worker: scrub each flow as it comes, then (on "stop") hunt, verify, write; or (on "cancelled") drop.
    Whatever goes wrong, only its type is told (a message could quote the traffic)."""
    try:
        _scrub(conn, Path(directory), sid, pack)
    except BaseException as e:  # noqa: BLE001 - no traceback on the proxy's terminal: it may hold content
        try:
            _write_json(Path(directory) / f"{sid}.json", {"id": sid, "state": "failed", "error": type(e).__name__})
        except OSError:
            pass


def _scrub(conn, base: Path, sid: str, pack: dict) -> None:
    from ..rules.model import load_pack
    from .files import Refused, finish, flow_bytes
    from .scrub import Scrubber

    scrubber = Scrubber(load_pack(pack))
    flows: list[http.HTTPFlow] = []
    errors = 0
    how, status = "cancelled", {"id": sid, "flows": 0}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the proxy is gone: nobody will collect this
        if msg[0] == "flow":
            try:
                flows.append(scrubber.scrub_flow(http.HTTPFlow.from_state(msg[1])))
            except Exception:  # noqa: BLE001 - the flow is left out, never written unscrubbed
                errors += 1
        else:
            how, status = msg
            break
    status = {**status, "errors": errors}
    if how == "cancelled":
        _write_json(base / f"{sid}.json", {**status, "state": "cancelled"})
        return
    try:
        result = finish(flows, scrubber)
    except Refused as e:
        _write_json(base / f"{sid}.json", {**status, "state": "refused", "leaks": [str(x) for x in e.leaks[:50]]})
        return
    atomic_write(base / f"{sid}.flow", flow_bytes(result.flows), 0o600)
    _write_json(base / f"{sid}.json", {**status, "state": "done", "removed": result.removed,
                                       "distinct": result.distinct, "notes": result.notes, "file": f"{sid}.flow"})


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
