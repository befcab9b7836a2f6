"""Detection in a worker process, so that the proxy's own interpreter stays free for traffic.

mitmproxy serves every connection from one Python interpreter. Detection is pure CPU (finds, parsing) and
holds the GIL: in a thread of the proxy it slows every flow down, matched or not. A worker process runs the
same `Detector` on another core; the proxy only hands it the response bytes and stores what comes back.

What the proxy pays per inspected page was measured (bench/proxy.py) and shaped this module:

- No thread of the proxy wakes up per page. Every wake-up of a second thread makes the event loop hand the
  GIL over and wait to get it back, which cost the proxy more than the work itself. So `submit` writes the
  job straight into a non-blocking pipe (a 1 MiB pipe holds several pages); only when the pipe is full does
  the rest wait in a bounded backlog that a flusher thread writes out.
- The worker answers only with news. Seeing the same setting in the same state again changes nothing in the
  store but `last_seen`, so the worker keeps what it last reported per rule and stays silent about a repeat
  for up to REPEAT_WINDOW; state changes, notices, suggestions, errors and undecodable bodies always go back.
  The receiver thread therefore sleeps while a user reloads the same settings page.
- `drain()` sends a sync marker down the same FIFO pipe and waits for it to come back: everything queued
  before it has been detected and its news stored.

Frames to the worker: struct FRAME (length of a pickled header, length of the body), the header, the body
bytes as they are (never pickled: no copy). Answers come back through a multiprocessing Connection.
"""

from __future__ import annotations

import collections
import datetime as dt
import fcntl
import itertools
import logging
import multiprocessing
import os
import pickle
import select
import struct
import threading
from typing import Callable

from .detect import DetectionError, Detector, Observation
from .findings import POLICY_UPDATE
from .rules.model import RuleSet, load_pack

log = logging.getLogger(__name__)

# url, content type, body, encoding, when, host[, method[, side]]: side "request" is the body of the user's own
# change request (read by request-side keys only), "response" (the default) everything else
Job = tuple

FRAME = struct.Struct("!IQ")  # header length, body length
PIPE_SIZE = 1 << 20  # ask the kernel for a 1 MiB pipe: a burst of pages goes in without waiting
ENCODED_SLACK = 256 << 10  # see _shipped_bytes()
CUTTABLE = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd", "identity"})
MAX_BACKLOG = 64 << 20  # bytes waiting for a slow worker; beyond this, pages are skipped (and counted)
REPEAT_WINDOW = dt.timedelta(seconds=30)  # a repeat is still reported this often (it refreshes last_seen)


class Repeats:
    """Which observations carry news for the store. Pure: no I/O, the clock is the observation's own.

    A repeat is an observation whose every finding equals (timestamp aside) the last one reported for its
    rule and warning kind, seen less than REPEAT_WINDOW after it. Anything else is news, and so are
    notes, suggestions and errors. Observations with nothing to store are never news.
    """

    def __init__(self, window: dt.timedelta = REPEAT_WINDOW):
        self.window = window
        self._last: dict[tuple[str, bool], tuple[object, dt.datetime]] = {}

    def clear(self) -> None:
        self._last.clear()

    def news(self, obs, when: dt.datetime) -> bool:
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        if obs is None:
            return False
        if not isinstance(obs, Observation):
            return True  # a DetectionError: counted by the proxy
        if obs.note or obs.suggestions:
            return True
        if not obs.findings:
            return False
        keyed = [((f.rule_id, f.kind == POLICY_UPDATE), f.replace(observed_at="")) for f in obs.findings]
        fresh = False
        for key, sig in keyed:
            last = self._last.get(key)
            if last is None or last[0] != sig or not (dt.timedelta(0) <= when - last[1] < self.window):
                fresh = True
                break
        if fresh:
            for key, sig in keyed:
                self._last[key] = (sig, when)
        return fresh


class FrameReader:
    """The worker's end of the job pipe: whole frames, and whether another one is ready without waiting."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0

    def _available(self) -> int:
        return len(self.buf) - self.pos

    def _take(self, n: int) -> bytes:
        while self._available() < n:
            chunk = os.read(self.fd, max(n - self._available(), PIPE_SIZE))
            if not chunk:
                raise EOFError
            if self.pos and self.pos >= len(self.buf) // 2:
                del self.buf[: self.pos]
                self.pos = 0
            self.buf += chunk
        with memoryview(self.buf) as view:  # one copy, and the view is gone before the buffer next grows
            out = bytes(view[self.pos: self.pos + n])
        self.pos += n
        return out

    def read(self) -> tuple[tuple, bytes | None]:
        head_len, body_len = FRAME.unpack(self._take(FRAME.size))
        head = pickle.loads(self._take(head_len))
        body = self._take(body_len) if body_len or (head[0] == "job" and head[-1]) else None
        return head, body

    def ready(self) -> bool:
        """True when the next frame can be read without blocking (or at least started on)."""
        if self._available():
            return True
        return bool(select.select([self.fd], [], [], 0)[0])


def _worker(jobs, answers, pack: dict, region: str | None, max_bytes: int) -> None:
    detector = Detector(load_pack(pack), region, max_bytes)
    repeats = Repeats()
    reader = FrameReader(jobs.fileno())
    out: list = []

    def flush() -> None:
        if out:
            answers.send(("results", out[:]))
            out.clear()

    while True:
        try:
            head, body = reader.read()
        except (EOFError, OSError):
            return  # the proxy is gone
        kind = head[0]
        if kind == "job":
            _, url, content_type, encoding, stamp, host, method, side, _has_body = head
            when = dt.datetime.fromtimestamp(stamp, dt.timezone.utc) if stamp is not None else None
            rules = detector.rules_for(host) if side == "response" else detector.request_rules_for(host)
            try:
                obs = detector.detect(url, content_type, body, encoding, when, rules=rules, method=method, side=side)
            except Exception as e:  # noqa: BLE001 - the type travels back, never the message
                obs = DetectionError(type(e).__name__)
            if repeats.news(obs, when or dt.datetime.now(dt.timezone.utc)):
                out.append((url, obs, host))
        elif kind == "rules":
            detector = Detector(load_pack(head[1]), region, max_bytes)
            repeats.clear()
        elif kind == "sync":
            flush()
            answers.send(("synced", head[1]))
        elif kind == "stop":
            flush()
            return
        # a burst is answered once, when it is over (the proxy stores it with one disk write)
        if out and (len(out) >= 512 or not reader.ready()):
            flush()


class DetectorProcess:
    """A detection worker. `on_results([(url, observation, host), ...])` runs in the receiver thread, in
    submission order, with the observations that carry news (see Repeats)."""

    def __init__(self, rules: RuleSet, region: str | None, max_bytes: int,
                 on_results: Callable[[list], None], on_dead: Callable[[], None],
                 max_backlog: int = MAX_BACKLOG):
        # spawn, not fork: forking a process that runs an event loop and threads copies their locks mid-use
        ctx = multiprocessing.get_context("spawn")
        jobs_r, jobs_w = ctx.Pipe(duplex=False)
        answers_r, answers_w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_worker, args=(jobs_r, answers_w, rules.to_pack(), region, max_bytes),
                                name="consentwatch-detect", daemon=True)
        self.proc.start()
        jobs_r.close()
        answers_w.close()
        self._jobs = jobs_w
        self._fd = jobs_w.fileno()
        os.set_blocking(self._fd, False)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (AttributeError, OSError):
            pass  # not Linux, or above the system's pipe-max-size: the default pipe works, with more waiting
        self._answers = answers_r
        self.max_bytes = max_bytes
        self.max_backlog = max_backlog
        self.on_results = on_results
        self.on_dead = on_dead
        self.alive = True
        self.skipped = 0  # pages not inspected because the worker was too far behind
        self._lock = threading.Lock()  # the pipe's write end and the backlog
        self._backlog: collections.deque[memoryview] = collections.deque()
        self._backlog_bytes = 0
        self._wake = threading.Condition(self._lock)
        self._cv = threading.Condition()
        self._synced = 0
        self._sync_sent = 0
        self._flusher = threading.Thread(target=self._flush_loop, name="consentwatch-send", daemon=True)
        self._receiver = threading.Thread(target=self._recv_loop, name="consentwatch-recv", daemon=True)
        self._flusher.start()
        self._receiver.start()

    # -- to the worker ------------------------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue a response for detection. False when the worker is gone (the caller detects in-process)."""
        if not self.alive:
            return False
        url, content_type, body, encoding, when, host, *more = job
        method = more[0] if more else None
        side = more[1] if len(more) > 1 else "response"
        if body is not None:
            cap = _shipped_bytes(encoding, self.max_bytes)
            if cap is not None and len(body) > cap:
                body = memoryview(body)[:cap]
        # the time travels as a float: pickling a datetime costs the proxy more than the rest of the header
        stamp = when.timestamp() if when is not None else None
        self._write(("job", url, content_type, encoding, stamp, host, method, side, body is not None), body,
                    droppable=True)
        return True

    def set_rules(self, rules: RuleSet) -> None:
        self._write(("rules", rules.to_pack()), None)

    def _write(self, head: tuple, body, droppable: bool = False) -> None:
        head_bytes = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
        body_len = len(body) if body is not None else 0
        parts = [FRAME.pack(len(head_bytes), body_len), head_bytes] + ([body] if body_len else [])
        size = FRAME.size + len(head_bytes) + body_len
        with self._lock:
            if not self.alive:
                return
            if droppable and self._backlog_bytes + size > self.max_backlog:
                self._skip()  # the worker is far behind (or one uncuttable body is huge): memory stays bounded
                return
            if self._backlog:  # keep the order: behind what already waits
                self._queue(parts)
                return
            try:
                written = os.writev(self._fd, parts)
            except BlockingIOError:
                written = 0
            except OSError:
                self._die_locked("the detection worker stopped taking work")
                return
            rest = _after(parts, written)
            if rest:
                self._queue(rest)

    def _queue(self, parts: list) -> None:
        for p in parts:
            view = memoryview(p)
            self._backlog.append(view)
            self._backlog_bytes += len(view)
        self._wake.notify()

    def _skip(self) -> None:
        self.skipped += 1
        if self.skipped == 1 or self.skipped % 1000 == 0:
            log.warning("detection is behind; %d page(s) not inspected so far", self.skipped)

    def _flush_loop(self) -> None:
        # Only busy when the pipe was full: waits for room, then writes what waits, in order.
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while True:
            with self._lock:
                self._wake.wait_for(lambda: self._backlog or not self.alive)
                if not self.alive:
                    return
            poller.poll(1000)
            with self._lock:
                if not self.alive:
                    return
                try:
                    written = os.writev(self._fd, list(itertools.islice(self._backlog, 64)))
                except BlockingIOError:
                    continue
                except OSError:
                    self._die_locked("the detection worker stopped taking work")
                    return
                self._backlog_bytes -= written
                while written:
                    head = self._backlog[0]
                    if len(head) <= written:
                        written -= len(head)
                        self._backlog.popleft()
                    else:
                        self._backlog[0] = head[written:]
                        written = 0

    # -- from the worker ----------------------------------------------------------------------------------
    def _recv_loop(self) -> None:
        while True:
            try:
                msg = self._answers.recv()
            except (EOFError, OSError):
                if self.alive:
                    self._die("the detection worker exited")
                return
            if msg[0] == "synced":
                with self._cv:
                    self._synced = msg[1]
                    self._cv.notify_all()
                continue
            batch = msg[1]
            # whatever else has arrived meanwhile (the last store write took a while) goes in the same batch
            synced = None
            while len(batch) < 512 and self._answers.poll(0):
                try:
                    more = self._answers.recv()
                except (EOFError, OSError):
                    break
                if more[0] == "synced":
                    synced = more[1]
                    break
                batch += more[1]
            try:
                self.on_results(batch)
            except Exception as e:  # noqa: BLE001 - storing failed: logged, the worker goes on
                log.error("storing findings failed: %s", type(e).__name__)
            if synced is not None:
                with self._cv:
                    self._synced = synced
                    self._cv.notify_all()

    # -- life cycle ---------------------------------------------------------------------------------------
    def _die(self, why: str) -> None:
        with self._lock:
            self._die_locked(why)

    def _die_locked(self, why: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self._backlog.clear()  # what was in flight is lost with the worker
        self._backlog_bytes = 0
        self._wake.notify_all()
        log.error("%s; detecting in the proxy process from now on", why)
        with self._cv:
            self._cv.notify_all()
        self.on_dead()  # (called under our lock: it must not call back into this object)

    def drain(self, timeout: float) -> bool:
        """Wait until everything submitted so far is detected and its news stored. False on timeout."""
        with self._cv:
            self._sync_sent += 1
            token = self._sync_sent
        self._write(("sync", token), None)
        with self._cv:
            return self._cv.wait_for(lambda: self._synced >= token or not self.alive, timeout)

    def close(self, timeout: float = 5) -> None:
        if self.alive:
            self.drain(timeout)
            self._write(("stop",), None)
        with self._lock:
            self.alive = False
            self._wake.notify_all()
        self._flusher.join(timeout)
        self._jobs.close()  # the worker reads EOF and exits, if "stop" did not reach it
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)
        self._receiver.join(timeout)  # ends at the EOF of the worker's exit
        self._answers.close()


def _shipped_bytes(content_encoding: str, max_bytes: int) -> int | None:
    """How much of a body the worker can need, or None for all of it.

    Only max_bytes decoded bytes are ever read, so the rest is not shipped. A compressed body is cut a
    little later: its first max_bytes + ENCODED_SLACK bytes decode to at least max_bytes (gzip, deflate
    and brotli stream; zstd loses the cut block, at most 128 KiB), and the decoders keep what a cut stream
    yields (detect/body.py). An encoding we do not know is shipped whole.
    """
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    if not encodings or encodings == ["identity"]:
        return max_bytes
    if all(e in CUTTABLE for e in encodings):
        return max_bytes + ENCODED_SLACK
    return None


def _after(parts: list, written: int) -> list:
    """What of `parts` (bytes-likes) is left after `written` bytes of them went out."""
    rest = []
    for p in parts:
        n = len(p)
        if written >= n:
            written -= n
            continue
        rest.append(memoryview(p)[written:] if written else p)
        written = 0
    return rest
