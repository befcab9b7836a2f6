"""Detection in a worker process, so that the proxy's own interpreter stays free for traffic.

mitmproxy serves every connection from one Python interpreter. Detection is pure CPU (finds, parsing) and
holds the GIL: in a thread of the proxy it slows every flow down, matched or not. A worker process runs the
same `Detector` on another core; the proxy only hands it the response bytes and stores what comes back.

Deliberately lean (concurrent.futures' process pool costs ~0.4 ms of the proxy's CPU per task): one pipe,
one sender thread, one receiver thread. One worker, FIFO both ways, so results come back in the order the
responses were seen and state changes are recorded in that order.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import queue
import threading
from typing import Callable

from .detect import Detector
from .rules.model import RuleSet, load_pack

log = logging.getLogger(__name__)

Job = tuple[str, str, "bytes | None", str, "dt.datetime | None", str]  # url, content type, body, encoding, when, host


def _worker(conn, pack: dict, region: str | None, max_bytes: int) -> None:
    from .watch import DetectionError

    detector = Detector(load_pack(pack), region, max_bytes)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the proxy is gone
        if msg is None:
            return
        if msg[0] == "rules":
            detector = Detector(load_pack(msg[1]), region, max_bytes)
            continue
        results = []
        for url, content_type, body, encoding, when, host in msg[1]:
            try:
                results.append(detector.detect(url, content_type, body, encoding, when, rules=detector.rules_for(host)))
            except Exception as e:  # noqa: BLE001 - the type travels back, never the message
                results.append(DetectionError(type(e).__name__))
        conn.send(results)


class DetectorProcess:
    """A detection worker. `on_results([(url, observation, host), ...])` runs in the receiver thread, in
    submission order, with every answer that has arrived (a burst is stored with one disk write).
    `pending` counts jobs not yet answered."""

    def __init__(self, rules: RuleSet, region: str | None, max_bytes: int,
                 on_results: Callable[[list], None], on_dead: Callable[[], None]):
        # spawn, not fork: forking a process that runs an event loop and threads copies their locks mid-use
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker, args=(child, rules.to_pack(), region, max_bytes),
                                name="consentwatch-detect", daemon=True)
        self.proc.start()
        child.close()
        self.max_bytes = max_bytes
        self.on_results = on_results
        self.on_dead = on_dead
        self.alive = True
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._meta: queue.SimpleQueue = queue.SimpleQueue()  # (url, host) of each job in flight, FIFO
        self._cv = threading.Condition()
        self.pending = 0
        self._sender = threading.Thread(target=self._send_loop, name="consentwatch-send", daemon=True)
        self._receiver = threading.Thread(target=self._recv_loop, name="consentwatch-recv", daemon=True)
        self._sender.start()
        self._receiver.start()

    def submit(self, job: Job) -> bool:
        """Queue a response for detection. False when the worker is gone (the caller detects in-process)."""
        if not self.alive:
            return False
        url, content_type, body, encoding, when, host = job
        if body and not encoding.strip():
            body = body[: self.max_bytes]  # only this much is ever read: do not ship the rest
        with self._cv:
            self.pending += 1
        self._meta.put((url, host))
        self._outbox.put((url, content_type, body, encoding, when, host))
        return True

    def set_rules(self, rules: RuleSet) -> None:
        self._outbox.put(("rules", rules.to_pack()))

    def _send_loop(self) -> None:
        # Under load, whatever queued up while the last send was under way goes as one batch: one pickle, one
        # write and one wake-up of the worker for many responses.
        while True:
            item = self._outbox.get()
            batch = []
            while True:
                if item is None or (isinstance(item, tuple) and item[0] == "rules"):
                    break
                batch.append(item)
                if len(batch) >= 64:
                    item = False
                    break
                try:
                    item = self._outbox.get_nowait()
                except queue.Empty:
                    item = False
                    break
            try:
                if batch:
                    self.conn.send(("jobs", batch))  # pickles, then writes with the GIL released
                if item is None or item:
                    self.conn.send(item)
            except (OSError, ValueError):
                self._die("the detection worker stopped taking work")
                return
            if item is None:
                return

    def _recv_loop(self) -> None:
        while True:
            try:
                results = self.conn.recv()
                # whatever else has arrived meanwhile (the last store write took a while) goes in the same batch
                while len(results) < 512 and self.conn.poll(0):
                    results += self.conn.recv()
            except (EOFError, OSError):
                if self.alive:
                    self._die("the detection worker exited")
                return
            batch = []
            for result in results:
                url, host = self._meta.get()
                batch.append((url, result, host))
            try:
                self.on_results(batch)
            except Exception as e:  # noqa: BLE001 - storing failed: logged, the worker goes on
                log.error("consentwatch: storing findings failed: %s", type(e).__name__)
            with self._cv:
                self.pending -= len(results)
                self._cv.notify_all()

    def _die(self, why: str) -> None:
        if not self.alive:
            return
        self.alive = False
        log.error("consentwatch: %s; detecting in the proxy process from now on", why)
        with self._cv:
            self.pending = 0  # what was in flight is lost with the worker
            self._cv.notify_all()
        self.on_dead()

    def drain(self, timeout: float) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self.pending == 0 or not self.alive, timeout)

    def close(self, timeout: float = 5) -> None:
        self.drain(timeout)
        self.alive = False
        self._outbox.put(None)
        self._sender.join(timeout)
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
        try:
            self.conn.close()
        except OSError:
            pass
