"""The mitmproxy addon: hooks only. Filtering by host, then detection off the event loop.

Read-only by construction: the hooks never assign to the flow, never kill or intercept it, and detection
starts only after the response hook has returned, so the page reaches the browser unchanged and
undelayed whatever the detectors do.

Rules that change while running come in through `set_rules` (rules_reloader.py watches rules.json);
`rule_listeners` hear of every new rule set (`consentwatch run` updates the intercepted hosts).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import logging
import os
import time
from pathlib import Path
from typing import Callable

from mitmproxy import ctx, exceptions, http

from .detect.body import DEFAULT_MAX_BYTES
from .detect import Detector
from .detection_worker import JOB_TIMEOUT, DetectorProcess
from .paths import DataDirError, data_dir
from .regions import RegionError, normalize_region
from .request_target import header, host_of, url_of
from .rules.model import RuleSet
from .pipeline import Listener, Watch
from .store.lock import DataDirBusy

log = logging.getLogger(__name__)


CHANGE_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A settings change is a few hundred bytes of JSON or form data; a bigger body is an upload, not a change.
MAX_REQUEST_BYTES = 64 * 1024


class ConsentWatch:
    def __init__(self, make_detector: Callable = Detector) -> None:
        self.watch: Watch | None = None
        # Store event listeners (the API's WebSocket hub); every Watch this addon creates shares the list.
        self.listeners: list[Listener] = []
        # Called on the event loop with the new RuleSet after a live reload (or a new data dir).
        self.rule_listeners: list[Callable[[RuleSet], None]] = []
        # One worker thread: detection and store writes happen in arrival order, with one writer,
        # and never on the proxy's event loop.
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentwatch")
        self.pending: set[concurrent.futures.Future] = set()
        # With consentwatch_detect_process on, detection itself runs in a worker process (see detection_worker.py);
        # the thread above then only stores what it finds.
        self.offload: DetectorProcess | None = None
        self.make_detector = make_detector  # what the worker process builds its Detector with (tests slow it down)
        self.inspected = 0

    def load(self, loader) -> None:
        loader.add_option("consentwatch_data_dir", str, "",
                          "Where consentwatch keeps its rule database and warnings (default: the user data dir).")
        loader.add_option("consentwatch_region", str, "",
                          "Your region (ISO country code, EU or EEA): decides which rules apply. Empty: all.")
        loader.add_option("consentwatch_max_bytes", int, DEFAULT_MAX_BYTES,
                          "Most decoded bytes of one response that consentwatch inspects.")
        loader.add_option("consentwatch_discover", bool, False,
                          "For rule maintainers: keep the short labels of AI settings no rule knows yet (host, path "
                          "and the control's own label, nothing else from the page), and the change-request field "
                          "that flips with a rule's switch (endpoint, key, polarity), for `consentwatch rules suggest`.")
        loader.add_option("consentwatch_detect_process", bool, True,
                          "Run detection in a worker process, so pages being inspected do not slow the proxy down "
                          "(off: a thread of the proxy process, where the detectors' linear-time patterns and "
                          "bounded work are the only guard: a page cannot be abandoned there).")
        loader.add_option("consentwatch_detect_timeout", float, JOB_TIMEOUT,
                          "Seconds one page may take in the detection worker process; a page that takes longer is "
                          "given up and counted (/v1/health), and the worker is started again (0: no limit).")

    def configure(self, updated: set[str]) -> None:
        # Only our own options matter. (Another addon registering an option also calls configure: starting
        # a Watch then would open the default data dir before ours is set.)
        if not updated & {"consentwatch_data_dir", "consentwatch_region", "consentwatch_max_bytes",
                          "consentwatch_detect_process", "consentwatch_detect_timeout", "consentwatch_discover"}:
            return
        try:
            region = normalize_region(ctx.options.consentwatch_region)
        except RegionError as e:
            raise exceptions.OptionsError(str(e)) from None
        if ctx.options.consentwatch_max_bytes < 1024:
            raise exceptions.OptionsError("consentwatch_max_bytes must be at least 1024")
        if not ctx.options.consentwatch_detect_timeout >= 0:
            raise exceptions.OptionsError("consentwatch_detect_timeout must be 0 (no limit) or more seconds")
        try:
            directory = data_dir(ctx.options.consentwatch_data_dir or None)
        except DataDirError as e:
            raise exceptions.OptionsError(str(e)) from None
        old_watch, old_offload = self.watch, self.offload
        if old_watch is not None and _same_dir(old_watch.data_dir, Path(directory)):
            # same files: keep the stores (a second StateStore on them would lose the first one's writes)
            old_watch.reconfigure(region, ctx.options.consentwatch_max_bytes, ctx.options.consentwatch_discover)
        else:
            try:
                self.watch = Watch(Path(directory), region, ctx.options.consentwatch_max_bytes,
                                   discover=ctx.options.consentwatch_discover)
            except DataDirBusy as e:  # another process writes there (store/lock.py): the old watch stays
                raise exceptions.OptionsError(f"{e} with data dir {directory}: stop it first, or choose another "
                                              "data dir") from None
            self.watch.listeners = self.listeners
        self.offload = None
        self._start_offload(self.watch.rules)
        # what the old watch and worker still hold is finished off the event loop, never waited for here
        self._retire(old_watch if old_watch is not self.watch else None, old_offload)
        self._notify_rules(self.watch.rules)
        log.info("%d rules for %d hosts, data in %s", len(self.watch.rules),
                 len(self.watch.rules.host_patterns()), directory)

    def request(self, flow: http.HTTPFlow) -> None:
        """The user's own change request (POST/PUT/PATCH to a rule host whose rules read requests): its body goes
        to detection as it is, read in memory and never kept. The new value is known before the platform answers,
        and some answers do not echo it (X's opt-out mutation)."""
        watch = self.watch
        req = flow.request
        if watch is None or req.method not in CHANGE_METHODS:
            return
        host = host_of(req)
        if not watch.detector.request_rules_for(host) and not (watch.discover and watch.detector.rules_for(host)):
            return  # (with discovery on, every rule host's: the key learner pairs them with a switch the page eye saw)
        body = req.raw_content
        if not body or len(body) > MAX_REQUEST_BYTES:
            return
        when = dt.datetime.fromtimestamp(req.timestamp_start, dt.timezone.utc) if req.timestamp_start else None
        job = (url_of(req), header(req.headers, b"content-type") or "", body,
               header(req.headers, b"content-encoding") or "", when, host, req.method, "request")
        self._submit(watch, job)

    def response(self, flow: http.HTTPFlow) -> None:
        watch = self.watch
        if watch is None or flow.response is None:
            return
        host = host_of(flow.request)  # = pretty_host, which every flow would pay ~11 us for
        if not watch.detector.rules.for_host(host):  # (= detector.rules_for, a Python call less on every flow)
            return  # the fast path: not a rule host, nothing decoded, nothing kept
        resp = flow.response
        when = dt.datetime.fromtimestamp(resp.timestamp_end or resp.timestamp_start or 0, dt.timezone.utc) \
            if (resp.timestamp_end or resp.timestamp_start) else None
        # Copy what detection needs (bytes are immutable): the flow itself is not touched again.
        # (header() reads what headers.get() reads, at a quarter of its cost)
        job = (url_of(flow.request), header(resp.headers, b"content-type") or "", resp.raw_content,
               header(resp.headers, b"content-encoding") or "", when, host, flow.request.method)
        self._submit(watch, job)

    def _submit(self, watch, job: tuple) -> None:
        """To the detection worker's pipe; to the thread pool in thread mode (detect_process=false) or once the
        worker is closed (the proxy is shutting down or changing data dir), never on the event loop."""
        self.inspected += 1
        if self.offload is not None and self.offload.submit(job):
            return
        fut = self.pool.submit(watch.process, *job)
        self.pending.add(fut)
        fut.add_done_callback(self.pending.discard)

    def _start_offload(self, rules: RuleSet) -> None:
        watch = self.watch
        if ctx.options.consentwatch_detect_process and watch is not None:
            try:
                # The worker's answers arrive in order on its receiver thread, which stores them itself: a hop to
                # the store thread would cost the proxy more CPU than the storing. StateStore's lock keeps writes
                # whole.
                self.offload = DetectorProcess(rules, watch.region, watch.detector.max_bytes,
                                               on_results=watch.record_many, on_restart=self._offload_restarted,
                                               job_timeout=ctx.options.consentwatch_detect_timeout or None,
                                               # the worker builds its own Detector: it needs the choice too
                                               make_detector=functools.partial(self.make_detector,
                                                                               discover=watch.discover,
                                                                               learn=watch.discover),
                                               # the key learner keeps recent answers for a while: it sees all
                                               skip_unchanged=not watch.discover)
            except Exception as e:  # noqa: BLE001 - no processes allowed here: a thread will do
                log.warning("no detection worker process (%s); detecting in a thread", e)

    def _offload_restarted(self, why: str) -> None:
        # The worker was started again (detection_worker.py); a page it gave up reaches the store as a
        # DetectionError. (A retired worker is closed, and closed workers are not restarted.)
        watch = self.watch
        if watch is not None:
            watch.worker_restarts += 1

    def _retire(self, watch: Watch | None, offload: DetectorProcess | None) -> None:
        """Close an old worker and watch in the store thread: after the jobs queued before (the pool keeps order),
        and after the worker has handed back what it was given (close() drains it)."""
        if watch is None and offload is None:
            return

        def retire() -> None:
            if offload is not None:
                offload.close()
            if watch is not None:
                watch.close()

        self.pool.submit(retire)

    def set_rules(self, rules: RuleSet) -> None:
        """Put new rules in force (a live reload): pipeline, worker, then the rule listeners."""
        watch = self.watch
        if watch is None:
            return
        watch.set_rules(rules)
        if self.offload is not None:
            self.offload.set_rules(rules)
        self._notify_rules(rules)

    def _notify_rules(self, rules: RuleSet) -> None:
        for listener in list(self.rule_listeners):
            try:
                listener(rules)
            except Exception as e:  # noqa: BLE001
                log.error("rule listener failed: %s", e)

    def _drain(self, timeout: float = 30) -> None:
        """Wait until every queued response is detected and stored (detection first: it queues the storing)."""
        deadline = time.monotonic() + timeout
        if self.offload is not None:
            self.offload.drain(timeout)
        while self.pending and time.monotonic() < deadline:
            for fut in list(self.pending):
                try:
                    fut.result(timeout=max(0.01, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - record() already logs and counts
                    pass

    async def done(self) -> None:
        if self.offload is not None:
            self.offload.stopping()  # a worker ended by the same SIGTERM as the proxy is no news to log
        # `mitmdump -r` exits right after the last flow: finish what is queued before closing the store.
        await asyncio.get_running_loop().run_in_executor(None, self._drain)
        if self.offload is not None:
            self.offload.close()
            self.offload = None
        # Bounded: _drain gave the thread its 30 s; a detection still running then is not waited for.
        self.pool.shutdown(wait=not self.pending, cancel_futures=True)
        if self.watch:
            self.watch.close()


def _same_dir(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
