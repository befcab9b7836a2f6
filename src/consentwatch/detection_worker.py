"""Detection in a worker process, so that the proxy's own interpreter stays free for traffic.

mitmproxy serves every connection from one Python interpreter. Detection is pure CPU (finds, parsing) and
holds the GIL: in a thread of the proxy it slows every flow down, matched or not. A worker process runs the
same `Detector` on another core; the proxy only hands it the response bytes and stores what comes back.

What the proxy pays per inspected page was measured (bench/proxy.py) and shaped this module:

- No thread of the proxy wakes up per page. Every wake-up of a second thread makes the event loop hand the
  GIL over and wait to get it back, which cost the proxy more than the work itself. So `submit` writes the
  job straight into a non-blocking pipe (a 1 MiB pipe holds several pages); only when the pipe is full does
  the rest wait in a bounded backlog, which the event loop itself writes out a moment later (a flusher thread
  does it for writes from other threads, and while the loop is blocked).
- The worker answers only with news. Seeing the same setting in the same state again changes nothing in the
  store but `last_seen`, so the worker keeps what it last reported per rule and stays silent about a repeat
  for up to REPEAT_WINDOW; state changes, notices, suggestions, errors and undecodable bodies always go back.
  The receiver thread therefore sleeps while a user reloads the same settings page.
- `drain()` sends a sync marker down the same FIFO pipe and waits for it to come back: everything queued
  before it has been detected and its news stored.
- No page can stop detection. The worker writes which frame it is on, since when, and the last frame it has
  answered into memory shared with the proxy (no message, no wake-up per page). A watchdog thread looks at it
  once a second: a page over `job_timeout` gets the worker killed; a worker that died (or was killed) is
  replaced, and the new one gets every frame the old one had not answered, except the page it was stuck on,
  which comes back as a DetectionError (counted in /v1/health). The proxy keeps references to those frames
  until they are answered, no copies. Detection never moves into the proxy's own process.

Frames to the worker: struct FRAME (length of a pickled header, length of the body), the header, the body
bytes as they are (never pickled: no copy; on Linux lent to the pipe with vmsplice, so that the proxy does not
copy them either, see _send). Answers come back through a multiprocessing Connection.

The page eye (`POST /v1/observations`) uses the same worker with a request-response frame, `observe`: the
region the extension read is detected like a response, its findings marked `seen_by: page`, and the answer
goes back to the caller's future (tagged with its request number) instead of to `on_results`, so the API can
say what was found before it stores it. A region the watchdog gives up on answers its future with the
DetectionError; one that was waiting when its worker died is sent again to the next, like any frame.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import ctypes
import dataclasses
import datetime as dt
import errno
import fcntl
import itertools
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401 - its exit handler first, so ours (below) runs before it
import os
import pickle
import select
import signal
import struct
import threading
import time
from typing import Callable

from .detect import DetectionError, Detector, Observation
from .findings import POLICY_UPDATE
from .rules.model import RuleSet, load_pack
from .pipeline import TOO_SLOW, WORKER_DIED

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
LOOP_FLUSH_FIRST = 0.0005  # seconds until the event loop writes what the pipe did not take (see _queue) ...
LOOP_FLUSH_MAX = 0.05  # ... and at most, while the worker is not reading
NAP = 0.002  # seconds the worker naps when it has read everything (see _worker)


class Repeats:
    """Which observations carry news for the store. Pure: no I/O, the clock is the observation's own.

    A repeat is an observation whose every finding equals (timestamp aside) the last one reported for its
    rule and warning kind, seen less than REPEAT_WINDOW after it. Anything else is news, and so are
    notes, suggestions, learned keys and errors. Observations with nothing to store are never news.
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
        if obs.note or obs.suggestions or obs.policy_texts or obs.learned:
            return True  # a policy page is rare, and only the store knows whether its text is new
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


class Unchanged:
    """The last frame sent to the worker, when it was a response body: the same bytes again, next, are not sent.

    An app asks for the same settings JSON again and again, and a page reloaded without a change comes back
    byte for byte. When nothing else reached the worker in between, it would find exactly what it found the
    time before and stay silent about it (see Repeats), so the proxy need not lend it the body: comparing with
    the body sent last (a memcmp, ~5 us for 120 KB) costs the proxy a tenth of sending it. Only the very last
    frame counts: any other frame (another page, a change request, a page-eye region, new rules) may have
    changed what the worker knows, so `forget()` is called for it. And only under the same request key (URL,
    method, content type, encoding), less than `window` after it was sent, by the responses' own clocks (a
    replay's recorded times), within the same UTC day (rules apply from dates). The window is half the worker's,
    so a repeat still reaches it, and the store's last_seen, in time. Pure, in memory: one reference to a flow's
    own bytes, never a copy, never written anywhere.
    """

    def __init__(self, window: float = REPEAT_WINDOW.total_seconds() / 2):
        self.window = window
        self._last: tuple[tuple, bytes, float] | None = None

    def forget(self) -> None:
        self._last = None

    def same(self, key: tuple, body: bytes, stamp: float) -> bool:
        """Whether `body` is the body of the last frame, under the same key, recently enough to be left out."""
        last = self._last
        if last is None:
            return False
        sent_key, sent_body, sent_at = last
        return (sent_key == key and 0 <= stamp - sent_at < self.window and stamp // 86400 == sent_at // 86400
                and (sent_body is body or sent_body == body))

    def remember(self, key: tuple, body: bytes, stamp: float) -> None:
        """The last frame was `body`, under `key`, at `stamp`."""
        self._last = (key, body, stamp)


class FrameReader:
    """The worker's end of the job pipe: whole frames, and whether another one is ready without waiting.

    The pipe is read into one buffer that is kept and reused (os.readv into it), and each part of a frame is
    copied out of it once. Reading with os.read allocated a fresh 1 MiB object per read, whose new pages the
    kernel had to fault in, and then appended it to the buffer: two thirds of the worker's CPU on a page
    reloaded over and over (py-spy, bench/PROFILE.md)."""

    KEEP = 16 << 20  # a buffer grown beyond this for one huge frame is given back once that frame is read

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray(PIPE_SIZE)
        self.start = 0  # the first byte not handed out yet
        self.end = 0  # the end of what was read

    def _available(self) -> int:
        return self.end - self.start

    def _take(self, n: int) -> bytes:
        if self.end - self.start < n:
            rest = self.end - self.start
            if self.start + n > len(self.buf):  # no room behind: move what is left to the front, or grow
                if n > len(self.buf):
                    bigger = bytearray(max(n, 2 * len(self.buf)))
                    bigger[:rest] = memoryview(self.buf)[self.start:self.end]
                    self.buf = bigger
                elif rest:
                    with memoryview(self.buf) as view:
                        view[:rest] = view[self.start:self.end]  # overlapping copies are moves
                self.start, self.end = 0, rest
            with memoryview(self.buf) as view:
                while self.end - self.start < n:
                    got = os.readv(self.fd, [view[self.end:]])
                    if not got:
                        raise EOFError
                    self.end += got
        with memoryview(self.buf) as view:  # one copy out of the buffer
            out = bytes(view[self.start: self.start + n])
        self.start += n
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.buf) > self.KEEP:
                self.buf = bytearray(PIPE_SIZE)
        return out

    def read(self) -> tuple[tuple, bytes | None]:
        head_len, body_len = FRAME.unpack(self._take(FRAME.size))
        head = pickle.loads(self._take(head_len))
        body = self._take(body_len) if body_len or (head[0] in ("job", "observe") and head[-1]) else None
        return head, body

    def ready(self) -> bool:
        """True when the next frame can be read without blocking (or at least started on)."""
        if self._available():
            return True
        return bool(select.select([self.fd], [], [], 0)[0])


# Where the worker says how far it got, in memory it shares with the proxy: no message and no wake-up per page.
BUSY, BUSY_SINCE, ANSWERED = 0, 1, 2  # the frame it is detecting (0: none) and since when; the last one answered
JOB_TIMEOUT = 15.0  # seconds one page may take before its worker is killed (a normal page takes milliseconds)
MAX_RESTART_DELAY = 60.0  # seconds between starts of a worker that keeps dying before it answers anything
SIGNAL_GRACE = 1.0  # seconds a worker ended by a group's SIGTERM waits to be restarted: the proxy is stopping too
_exiting = threading.Event()
# At exit, multiprocessing ends its daemon workers: that is no death to restart them after. (atexit runs this
# first: it was registered after multiprocessing's own handler.)
atexit.register(_exiting.set)


def _worker(jobs, answers, pack: dict, region: str | None, max_bytes: int, progress=None,
            make_detector: Callable = Detector, nap: float = NAP) -> None:
    # Ctrl+C reaches the whole process group: the proxy stops us (stop frame, then EOF), not the signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    detector = make_detector(load_pack(pack), region, max_bytes)
    repeats = Repeats()
    reader = FrameReader(jobs.fileno())
    out: list = []
    seq = 0  # frames read so far; the proxy numbers the frames it writes the same way

    def mark(field: int, value: float) -> None:
        if progress is not None:
            progress[field] = value

    def flush() -> None:
        if out:
            answers.send(("results", out[:]))
            out.clear()

    while True:
        try:
            head, body = reader.read()
        except (EOFError, OSError):
            return  # the proxy is gone
        seq += 1
        kind = head[0]
        if kind == "job":
            _, url, content_type, encoding, stamp, host, method, side, _has_body = head
            when = dt.datetime.fromtimestamp(stamp, dt.timezone.utc) if stamp is not None else None
            rules = detector.rules_for(host) if side == "response" else detector.request_rules_for(host)
            mark(BUSY_SINCE, time.monotonic())
            mark(BUSY, seq)
            try:
                obs = detector.detect(url, content_type, body, encoding, when, rules=rules, method=method, side=side)
            except Exception as e:  # noqa: BLE001 - the type travels back, never the message
                obs = DetectionError(type(e).__name__)
            mark(BUSY, 0)
            if repeats.news(obs, when or dt.datetime.now(dt.timezone.utc)):
                out.append((url, obs, host))
        elif kind == "observe":
            # the page eye: always answered (the caller waits), and remembered by Repeats so that the network
            # eye's next sight of the same setting in another state is news
            _, req_id, url, content_type, stamp, host, _has_body = head
            when = dt.datetime.fromtimestamp(stamp, dt.timezone.utc) if stamp is not None else None
            mark(BUSY_SINCE, time.monotonic())
            mark(BUSY, seq)
            try:
                obs = detector.detect(url, content_type, body, "", when, rules=detector.rules_for(host), seen_by="page")
                obs = dataclasses.replace(obs, suggestions=())  # the page eye keeps findings only
            except Exception as e:  # noqa: BLE001 - the type travels back, never the message
                obs = DetectionError(type(e).__name__)
            mark(BUSY, 0)
            repeats.news(obs, when or dt.datetime.now(dt.timezone.utc))
            answers.send(("observed", req_id, obs))
        elif kind == "given_up":  # a page the worker before this one was stopped on: counted, in its place
            _, url, host, why = head
            out.append((url, DetectionError(why), host))
        elif kind == "rules":
            detector = make_detector(load_pack(head[1]), region, max_bytes)
            repeats.clear()
        elif kind == "sync":
            flush()
            mark(ANSWERED, seq - 1)  # before the proxy hears of it: what it drained is never sent again
            answers.send(("synced", head[1]))
        elif kind == "stop":
            flush()
            return
        # a burst is answered once, when it is over (the proxy stores it with one disk write)
        if out and (len(out) >= 512 or not reader.ready()):
            flush()
        if not out:
            mark(ANSWERED, seq)  # only now: a frame whose answer a killed worker had not sent is sent again
        if nap and not reader.ready():
            # Nothing left to read: nap before waiting on the pipe again. A frame written while the worker naps
            # finds no reader to wake, so the proxy's write is a copy only, without waking another core (a few
            # us of the proxy's CPU per page under load); a page waits at most `nap` longer.
            time.sleep(nap)


def _ended_by_group_signal(proc) -> bool:
    """The worker ended by a SIGTERM or SIGHUP, which are sent to a whole process group when it is stopped."""
    proc.join(0.5)  # its end was seen (EOF): it is being reaped
    return proc.exitcode in (-signal.SIGTERM, -signal.SIGHUP)


def _start_ignoring_sigint(proc) -> None:
    """Start a worker with SIGINT ignored, which it inherits (exec keeps ignored signals; a blocked mask it does
    not): a Ctrl+C during its start-up (its imports take a while) cannot end it with a KeyboardInterrupt
    traceback. The proxy's own handler is back as soon as the child exists (milliseconds)."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (a restart by the watchdog): the worker ignores it from its first line
        proc.start()
        return
    try:
        proc.start()
    finally:
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)


class _Generation:
    """One worker process, its two pipes, the memory it reports progress in, and the thread reading its answers."""

    def __init__(self, ctx, pack: dict, region: str | None, max_bytes: int, make_detector: Callable):
        jobs_r, jobs_w = ctx.Pipe(duplex=False)
        answers_r, answers_w = ctx.Pipe(duplex=False)
        self.progress = ctx.RawArray("d", 3)
        self.proc = ctx.Process(target=_worker, args=(jobs_r, answers_w, pack, region, max_bytes, self.progress,
                                                      make_detector), name="consentwatch-detect", daemon=True)
        try:
            _start_ignoring_sigint(self.proc)
        finally:
            jobs_r.close()
            answers_w.close()
        self.jobs = jobs_w
        self.fd = jobs_w.fileno()
        os.set_blocking(self.fd, False)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (AttributeError, OSError):
            pass  # not Linux, or above the system's pipe-max-size: the default pipe works, with more waiting
        self.answers = answers_r
        self.receiver: threading.Thread | None = None

    def busy_for(self) -> float:
        """How long the frame being detected has taken so far (0 when none is)."""
        if not self.progress[BUSY]:
            return 0.0
        return max(0.0, time.monotonic() - self.progress[BUSY_SINCE])

    def kill(self, timeout: float) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout)

    def close(self, timeout: float) -> None:
        """After kill (or a stop): the receiver ends at the EOF of the worker's exit, then the pipes go."""
        if self.receiver is not None and self.receiver is not threading.current_thread():
            self.receiver.join(timeout)
        for conn in (self.jobs, self.answers):
            try:
                conn.close()
            except OSError:
                pass


class DetectorProcess:
    """A supervised detection worker. `on_results([(url, observation, host), ...])` runs in a receiver thread, in
    submission order, one call at a time, with the observations that carry news (see Repeats).

    A watchdog thread restarts the worker when it dies, and kills and restarts it when one page takes longer than
    `job_timeout` seconds: that page is counted (a DetectionError the store counts) and skipped, and every frame
    the old worker had not answered yet is sent again to the new one, so the pages after it are still detected.
    Detection never falls back to the proxy's process. `make_detector` builds the worker's Detector (tests hand in
    a slow one; it must be importable by name, the worker is spawned)."""

    def __init__(self, rules: RuleSet, region: str | None, max_bytes: int,
                 on_results: Callable[[list], None], on_restart: Callable[[str], None] | None = None,
                 max_backlog: int = MAX_BACKLOG, job_timeout: float | None = JOB_TIMEOUT,
                 make_detector: Callable = Detector, skip_unchanged: bool = True):
        # spawn, not fork: forking a process that runs an event loop and threads copies their locks mid-use
        self._ctx = multiprocessing.get_context("spawn")
        self.region = region
        self.max_bytes = max_bytes
        self.max_backlog = max_backlog
        self.job_timeout = job_timeout
        self.make_detector = make_detector
        self.on_results = on_results
        self.on_restart = on_restart
        self.skipped = 0  # pages not inspected because the worker was too far behind
        self.restarts = 0  # workers started again (after dying or being killed)
        self.abandoned = 0  # pages given up: too slow, or the worker died on them
        self.unchanged = 0  # bodies not sent: the same bytes as the frame sent last, moments before (Unchanged)
        self._unchanged = Unchanged() if skip_unchanged else None
        self._pack = rules.to_pack()  # the rules in force at the last answered frame: what a new worker starts with
        self._lock = threading.Lock()  # the pipe's write end, the backlog, the unanswered frames, the generation
        self._wake = threading.Condition(self._lock)
        self._backlog: collections.deque[memoryview] = collections.deque()
        self._backlog_bytes = 0
        self._loop_flush: asyncio.AbstractEventLoop | None = None  # the loop that will write the backlog (_queue)
        # Frames written (or waiting to be) that the worker has not answered yet, as (seq, head, parts): a new
        # worker gets them again. Only references: the bodies are not copied.
        self._unanswered: collections.deque[tuple[int, tuple, list]] = collections.deque()
        self._seq = 0
        self._closed = False
        self._restarting = False
        self._trouble = threading.Event()  # the worker died (or a write to it failed): restart now
        self._stopping = threading.Event()
        self._closing = threading.Event()  # stopping() or close() has begun (a drain may still need a new worker)
        self._cv = threading.Condition()
        self._synced = 0
        self._sync_sent = 0
        # page-eye requests awaiting their answer: (future, what to run on the answer first)
        self._observing: dict[int, tuple[concurrent.futures.Future, Callable | None]] = {}
        self._observe_ids = itertools.count(1)
        self._w = _Generation(self._ctx, self._pack, region, max_bytes, make_detector)
        self._start_receiver(self._w)
        self._tick = min(1.0, max(0.05, job_timeout / 4)) if job_timeout else 1.0
        self._flusher = threading.Thread(target=self._flush_loop, name="consentwatch-send", daemon=True)
        self._watchdog = threading.Thread(target=self._watch_loop, name="consentwatch-watchdog", daemon=True)
        self._flusher.start()
        self._watchdog.start()

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def proc(self):
        """The current worker process."""
        return self._w.proc

    # -- to the worker ------------------------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue a response for detection. False once closed (the caller then detects in-process)."""
        if self._closed:
            return False
        url, content_type, body, encoding, when, host, *more = job
        method = more[0] if more else None
        side = more[1] if len(more) > 1 else "response"
        # the time travels as a float: pickling a datetime costs the proxy more than the rest of the header
        stamp = when.timestamp() if when is not None else None
        key = None
        if body is not None:
            cap = _shipped_bytes(encoding, self.max_bytes)
            if cap is not None and len(body) > cap:
                body = memoryview(body)[:cap]
            elif self._unchanged is not None and stamp is not None and side == "response" \
                    and type(body) is bytes:
                key = (url, method, content_type, encoding)
                if self._unchanged.same(key, body, stamp):
                    self.unchanged += 1
                    return True
        self._write(("job", url, content_type, encoding, stamp, host, method, side, body is not None), body,
                    droppable=True, remember=(key, body, stamp) if key is not None else None)
        return True

    def observe(self, url: str, body: bytes, when: dt.datetime | None, host: str,
                then: Callable | None = None) -> concurrent.futures.Future | None:
        """Detect a region of a rendered page (the page eye). The future gives the Observation (findings marked
        seen_by page) or a DetectionError, or with `then`, what `then(observation)` returns: it runs on the
        receiver thread as soon as the answer is in (the API stores the findings there, in order with the
        network's, instead of handing them to the event loop and from there to another thread), unless the future
        was cancelled first. The future fails once this is closed. None when it is closed already."""
        if self._closed:
            return None
        fut: concurrent.futures.Future = concurrent.futures.Future()
        req_id = next(self._observe_ids)
        with self._lock:
            self._observing[req_id] = (fut, then)
        stamp = when.timestamp() if when is not None else None
        self._write(("observe", req_id, url, "text/html; charset=utf-8", stamp, host, True), body)
        if self._closed:
            self._fail_observing()
        return fut

    def _fail_observing(self) -> None:
        with self._lock:
            pending, self._observing = self._observing, {}
        for fut, _ in pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the detection worker stopped"))

    def _observed(self, req_id: int, obs) -> None:
        with self._lock:
            fut, then = self._observing.pop(req_id, (None, None))
        if fut is None or fut.done():
            return
        if then is None:
            fut.set_result(obs)
            return
        if not fut.set_running_or_notify_cancel():
            return  # the caller gave up waiting (and answered so): nothing is stored for it
        try:
            fut.set_result(then(obs))
        except Exception as e:  # noqa: BLE001 - the caller hears of it
            fut.set_exception(e)

    def set_rules(self, rules: RuleSet) -> None:
        self._write(("rules", rules.to_pack()), None)

    def _write(self, head: tuple, body, droppable: bool = False, remember: tuple | None = None) -> bool:
        """Send a frame (or queue it behind what waits). False when it was not taken: closed, or skipped.
        `remember`: (key, body, stamp) of a response body that Unchanged may leave out when it comes again next."""
        parts, size = _frame(head, body)
        with self._lock:
            if self._unchanged is not None:
                self._unchanged.forget()
            if self._closed:
                return False
            if droppable and self._backlog_bytes + size > self.max_backlog:
                self._skip()  # the worker is far behind (or one uncuttable body is huge): memory stays bounded
                return False
            self._seq += 1
            self._unanswered.append((self._seq, head, parts))
            if remember is not None and self._unchanged is not None:
                # under the lock, with the frame's place in the order: a frame another thread writes next forgets it
                self._unchanged.remember(*remember)
            self._forget_answered()
            if self._backlog or self._restarting:  # keep the order: behind what already waits
                self._queue(parts)
                return True
            try:
                written = _send(self._w.fd, parts)
            except BlockingIOError:
                written = 0
            except OSError:  # the worker is gone: the watchdog starts another, which gets this frame too
                self._restarting = True
                self._queue(parts)
                self._trouble.set()
                return True
            rest = _after(parts, written)
            if rest:
                self._queue(rest)
            return True

    def _forget_answered(self) -> None:
        answered = self._w.progress[ANSWERED]
        while self._unanswered and self._unanswered[0][0] <= answered:
            _, head, _ = self._unanswered.popleft()
            if head[0] == "rules":
                self._pack = head[1]

    def _queue(self, parts: list) -> None:
        """Behind what already waits (the lock is held). Written out by the event loop when called on it (the
        proxy's hooks and the API), else by the flusher thread."""
        for p in parts:
            view = memoryview(p)
            self._backlog.append(view)
            self._backlog_bytes += len(view)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._restarting:
            self._wake.notify()
        elif self._loop_flush is not loop:
            # A page bigger than the pipe (1 MiB) always leaves a rest. Waking the flusher thread for it made the
            # proxy's loop hand the GIL over and wait to get it back several times per page (1.6 waits per request
            # on the 1.5 MB page, bench/PROFILE.md); the loop writes the rest itself a moment later instead.
            self._loop_flush = loop
            loop.call_later(LOOP_FLUSH_FIRST, self._flush_on_loop, loop, LOOP_FLUSH_FIRST)

    def _flush_on_loop(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        """On the event loop: write what waits, as much as the pipe takes now; look again later if some is left
        (sooner while the worker keeps reading, less often while it does not)."""
        with self._lock:
            if self._closed or self._restarting or not self._backlog:
                self._loop_flush = None
                if self._backlog and not self._closed:
                    self._wake.notify()  # a restart re-queues everything: the flusher thread takes over
                return
            before = self._backlog_bytes
            self._write_backlog(self._w)
            if not self._backlog:
                self._loop_flush = None
                return
            delay = LOOP_FLUSH_FIRST if self._backlog_bytes < before else min(delay * 2, LOOP_FLUSH_MAX)
        loop.call_later(delay, self._flush_on_loop, loop, delay)

    def _write_backlog(self, gen: "_Generation") -> None:
        """Write the head of the backlog to `gen`'s pipe, as much as goes in without waiting (the lock is held)."""
        try:
            written = _send(gen.fd, list(itertools.islice(self._backlog, 64)))
        except BlockingIOError:
            return
        except OSError:
            self._restarting = True
            self._trouble.set()
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

    def _skip(self) -> None:
        self.skipped += 1
        if self.skipped == 1 or self.skipped % 1000 == 0:
            log.warning("detection is behind; %d page(s) not inspected so far", self.skipped)

    def _flush_loop(self) -> None:
        # Only busy when the pipe was full: waits for room, then writes what waits, in order.
        poller = select.poll()
        polled: _Generation | None = None
        while True:
            with self._lock:
                self._wake.wait_for(lambda: (self._backlog and not self._restarting) or self._closed)
                if self._closed:
                    return
                gen = self._w
            if gen is not polled:
                if polled is not None:
                    try:
                        poller.unregister(polled.fd)
                    except (KeyError, ValueError, OSError):
                        pass
                poller.register(gen.fd, select.POLLOUT)
                polled = gen
            poller.poll(1000)
            with self._lock:
                if self._closed:
                    return
                if self._restarting or self._w is not gen or not self._backlog:
                    continue
                self._write_backlog(gen)

    # -- from the worker ----------------------------------------------------------------------------------
    def _start_receiver(self, gen: _Generation) -> None:
        gen.receiver = threading.Thread(target=self._recv_loop, args=(gen,), name="consentwatch-recv", daemon=True)
        gen.receiver.start()

    def _recv_loop(self, gen: _Generation) -> None:
        answers = gen.answers
        while True:
            try:
                msg = answers.recv()
            except (EOFError, OSError):
                if self._w is gen and not (self._closed or self._restarting):
                    self._trouble.set()  # it died on its own: the watchdog starts another
                return
            if msg[0] == "synced":
                self._set_synced(msg[1])
                continue
            if msg[0] == "observed":
                self._observed(msg[1], msg[2])
                continue
            batch = msg[1]
            # whatever else has arrived meanwhile (the last store write took a while) goes in the same batch
            synced = None
            while len(batch) < 512 and answers.poll(0):
                try:
                    more = answers.recv()
                except (EOFError, OSError):
                    break
                if more[0] == "observed":
                    self._observed(more[1], more[2])
                    continue
                if more[0] == "synced":
                    synced = more[1]
                    break
                batch += more[1]
            try:
                self.on_results(batch)
            except Exception as e:  # noqa: BLE001 - storing failed: logged, the worker goes on
                log.error("storing findings failed: %s", type(e).__name__)
            if synced is not None:
                self._set_synced(synced)

    def _set_synced(self, token: int) -> None:
        with self._cv:
            self._synced = max(self._synced, token)
            self._cv.notify_all()

    # -- the watchdog ---------------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        fruitless = 0  # workers in a row that died before answering anything
        while not self._closed:
            self._trouble.wait(self._tick)
            if self._closed or _exiting.is_set():
                return
            gen = self._w
            died = self._trouble.is_set() or not gen.proc.is_alive()
            stuck = bool(self.job_timeout) and gen.busy_for() > self.job_timeout
            if not (died or stuck):
                continue
            quiet = False
            if died and not stuck and _ended_by_group_signal(gen.proc):
                # SIGTERM or SIGHUP to the whole process group (`timeout`, a service manager, a closed terminal)
                # ends the worker at the moment it tells the proxy to stop. The proxy's stop (`stopping`, then its
                # drain and close) follows at once; the drain still needs a worker for the pages sent before, but
                # the user hears of no death.
                quiet = self._closing.wait(SIGNAL_GRACE)
            if died and not stuck and not gen.progress[ANSWERED]:
                fruitless += 1
                if fruitless > 1 and self._stopping.wait(min(MAX_RESTART_DELAY, 2.0 ** (fruitless - 2))):
                    return  # closing
            else:
                fruitless = 0
            try:
                self._restart(gen, TOO_SLOW if stuck else WORKER_DIED, quiet)
            except Exception as e:  # noqa: BLE001 - no process could be started: try again on the next tick
                log.error("could not start a detection worker (%s); trying again", type(e).__name__)
                self._trouble.set()
                if self._stopping.wait(min(MAX_RESTART_DELAY, 1.0 + fruitless)):
                    return
                fruitless += 1

    def _restart(self, gen: _Generation, why: str, quiet: bool = False) -> None:
        with self._lock:
            if self._closed or _exiting.is_set():
                return
            self._restarting = True
        self._trouble.clear()
        gen.kill(5)
        if gen.receiver is not None:
            gen.receiver.join(10)  # its last answers are stored before the new worker's: one caller, in order
        busy = int(gen.progress[BUSY])  # the worker is dead: these are final
        with self._lock:
            self._forget_answered()
            pack = self._pack
        new = _Generation(self._ctx, pack, self.region, self.max_bytes, self.make_detector)
        given_up = None
        observed_given_up = None
        with self._lock:
            if self._closed:
                self._restarting = False
                new.kill(5)
                new.close(5)
                return
            frames = []
            for seq, head, parts in self._unanswered:
                if seq == busy and head[0] == "observe":  # a region it was stuck on: its caller hears why
                    given_up = ("observe", head[2], head[5])
                    observed_given_up = head[1]
                    continue
                if seq == busy and head[0] == "job":
                    head = ("given_up", head[1], head[5], why)
                    parts, _ = _frame(head, None)
                    given_up = head
                frames.append((head, parts))
            # the new worker numbers frames from 1 again
            self._unanswered = collections.deque((i, h, p) for i, (h, p) in enumerate(frames, 1))
            if self._unchanged is not None:
                self._unchanged.forget()  # a new worker knows nothing yet
            self._seq = len(frames)
            self._backlog.clear()
            self._backlog_bytes = 0
            self._w = new
            self._restarting = False
            for _, _, parts in self._unanswered:
                self._queue(parts)
            self.restarts += 1
            if given_up is not None:
                self.abandoned += 1
            self._wake.notify_all()
        self._start_receiver(new)
        gen.close(5)
        if observed_given_up is not None:
            self._observed(observed_given_up, DetectionError(why))
        if given_up is not None:
            what = "took longer than %s s" % self.job_timeout if why == TOO_SLOW else "was being read when it died"
            log.warning("the detection worker was restarted: a page on %s %s (not inspected)",
                        given_up[2], what)
        elif quiet:
            log.debug("the detection worker was stopped with the proxy; started it again to finish what it had")
        else:
            log.warning("the detection worker stopped; started it again")
        if self.on_restart is not None:
            try:
                self.on_restart(why)
            except Exception as e:  # noqa: BLE001
                log.error("restart listener failed: %s", type(e).__name__)

    # -- life cycle ---------------------------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until everything submitted so far is detected and its news stored. False on timeout."""
        with self._cv:
            self._sync_sent += 1
            token = self._sync_sent
        self._write(("sync", token), None)
        with self._lock:
            if self._backlog:  # the caller may be the event loop itself, which cannot write while it waits here
                self._wake.notify()
        with self._cv:
            return self._cv.wait_for(lambda: self._synced >= token or self._closed, timeout)

    def stopping(self) -> None:
        """The proxy is stopping: what is queued is still detected (drain, close), but a worker that a signal to
        the whole process group ended meanwhile is started again for that without a warning."""
        self._closing.set()

    def close(self, timeout: float = 5) -> None:
        self.stopping()
        if not self._closed:
            self.drain(timeout)
            self._write(("stop",), None)
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        self._stopping.set()
        self._trouble.set()  # the watchdog wakes up and leaves
        self._flusher.join(timeout)
        self._watchdog.join(timeout + 10)
        gen = self._w
        try:
            gen.jobs.close()  # the worker reads EOF and exits, if "stop" did not reach it
        except OSError:
            pass
        gen.proc.join(timeout)
        gen.kill(timeout)
        gen.close(timeout)
        with self._cv:
            self._cv.notify_all()
        self._fail_observing()


def _frame(head: tuple, body) -> tuple[list, int]:
    """The parts of one frame for writev, and its size."""
    head_bytes = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    body_len = len(body) if body is not None else 0
    parts = [FRAME.pack(len(head_bytes), body_len), head_bytes] + ([body] if body_len else [])
    return parts, FRAME.size + len(head_bytes) + body_len


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


# -- lending a page to the pipe instead of copying it ---------------------------------------------------------------
# os.writev copies a page into the pipe on the proxy's CPU: ~30 us for 120 KB and ~250 us for 1.5 MB here, a
# quarter of the proxy's extra time on big matched pages (bench/PROFILE.md). Linux's vmsplice() lends the
# pages instead: the pipe refers to the body's memory, and the worker's read does the one copy, on its own
# core. That is safe because a body is never written to (bytes are immutable) and outlives its stay in the pipe:
# `_unanswered` holds every frame until the worker has answered it, i.e. read it. Elsewhere (no vmsplice, or
# CONSENTWATCH_NO_VMSPLICE set), writev.
SPLICE_MIN = 16 << 10  # frames without a part this big are copied: lending saves less than it costs then
_SPLICE_F_NONBLOCK = 2


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _PyBuffer(ctypes.Structure):  # Py_buffer, part of Python's stable ABI
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


def _load_vmsplice():
    if os.environ.get("CONSENTWATCH_NO_VMSPLICE") or not hasattr(os, "splice"):  # os.splice: Linux only
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).vmsplice
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_size_t, ctypes.c_uint]
    call.restype = ctypes.c_ssize_t
    get, release = ctypes.pythonapi.PyObject_GetBuffer, ctypes.pythonapi.PyBuffer_Release
    get.argtypes, get.restype = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int], ctypes.c_int
    release.argtypes, release.restype = [ctypes.POINTER(_PyBuffer)], None
    return call, get, release


_VMSPLICE = _load_vmsplice()


def _lend(fd: int, parts: list) -> int:
    """vmsplice bytes-likes into the pipe, in one call: how much went in (BlockingIOError if nothing did)."""
    call, get, release = _VMSPLICE
    views = (_PyBuffer * len(parts))()
    iov = (_IoVec * len(parts))()
    held = 0
    try:
        for i, part in enumerate(parts):
            if get(part, ctypes.byref(views[i]), 0):  # PyBUF_SIMPLE
                raise BufferError("not a contiguous buffer")
            held += 1
            iov[i].base, iov[i].len = views[i].buf, views[i].len
        n = call(fd, iov, len(parts), _SPLICE_F_NONBLOCK)
    finally:
        for i in range(held):
            release(ctypes.byref(views[i]))
    if n < 0:
        err = ctypes.get_errno()
        raise BlockingIOError(err, os.strerror(err)) if err == errno.EAGAIN else OSError(err, os.strerror(err))
    return n


def _send(fd: int, parts: list) -> int:
    """Like os.writev(fd, parts) on a non-blocking pipe (how many bytes went in; BlockingIOError when none did),
    but a frame with a big part is lent to the pipe rather than copied (see above), header and all in one call."""
    if _VMSPLICE is None or all(len(p) < SPLICE_MIN for p in parts):
        return os.writev(fd, parts)
    return _lend(fd, parts)


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
