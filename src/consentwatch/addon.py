"""The mitmproxy addon: hooks only. Filtering by host, then detection off the event loop.

Read-only by construction: the hooks never assign to the flow, never kill or intercept it, and detection
starts only after the response hook has returned, so the page reaches the browser unchanged and
undelayed whatever the detectors do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
from pathlib import Path

from mitmproxy import ctx, exceptions, http

from .detect.body import DEFAULT_MAX_BYTES
from .paths import DataDirError, data_dir
from .regions import RegionError, normalize_region
from .watch import Watch

log = logging.getLogger(__name__)


class ConsentWatch:
    def __init__(self) -> None:
        self.watch: Watch | None = None
        # One worker thread: detection and store writes happen in arrival order, with one writer,
        # and never on the proxy's event loop.
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentwatch")
        self.pending: set[concurrent.futures.Future] = set()
        self.inspected = 0

    def load(self, loader) -> None:
        loader.add_option("consentwatch_data_dir", str, "",
                          "Where consentwatch keeps its rule database and warnings (default: the user data dir).")
        loader.add_option("consentwatch_region", str, "",
                          "Your region (ISO country code, EU or EEA): decides which rules apply. Empty: all.")
        loader.add_option("consentwatch_max_bytes", int, DEFAULT_MAX_BYTES,
                          "Most decoded bytes of one response that consentwatch inspects.")

    def configure(self, updated: set[str]) -> None:
        if not updated & {"consentwatch_data_dir", "consentwatch_region", "consentwatch_max_bytes"} and self.watch:
            return
        try:
            region = normalize_region(ctx.options.consentwatch_region)
        except RegionError as e:
            raise exceptions.OptionsError(str(e)) from None
        if ctx.options.consentwatch_max_bytes < 1024:
            raise exceptions.OptionsError("consentwatch_max_bytes must be at least 1024")
        try:
            directory = data_dir(ctx.options.consentwatch_data_dir or None)
        except DataDirError as e:
            raise exceptions.OptionsError(str(e)) from None
        if self.watch is not None:
            self._drain()
            self.watch.close()
        self.watch = Watch(Path(directory), region, ctx.options.consentwatch_max_bytes)
        log.info("consentwatch: %d rules for %d hosts, data in %s", len(self.watch.rules),
                 len(self.watch.rules.host_patterns()), directory)

    def response(self, flow: http.HTTPFlow) -> None:
        watch = self.watch
        if watch is None or flow.response is None:
            return
        host = flow.request.pretty_host
        if not watch.detector.rules_for(host):
            return  # the fast path: not a rule host, nothing decoded, nothing kept
        resp = flow.response
        when = dt.datetime.fromtimestamp(resp.timestamp_end or resp.timestamp_start or 0, dt.timezone.utc) \
            if (resp.timestamp_end or resp.timestamp_start) else None
        # Copy what detection needs (bytes are immutable): the flow itself is not touched again.
        job = (flow.request.pretty_url, resp.headers.get("content-type", ""), resp.raw_content,
               resp.headers.get("content-encoding", ""), when, host)
        self.inspected += 1
        fut = self.pool.submit(watch.process, *job)
        self.pending.add(fut)
        fut.add_done_callback(self.pending.discard)

    def _drain(self) -> None:
        for fut in list(self.pending):
            try:
                fut.result(timeout=30)
            except Exception:  # noqa: BLE001 - process() already logs
                pass

    async def done(self) -> None:
        # `mitmdump -r` exits right after the last flow: finish what is queued before closing the store.
        await asyncio.get_running_loop().run_in_executor(None, self._drain)
        self.pool.shutdown(wait=True)
        if self.watch:
            self.watch.close()


addons = [ConsentWatch()]
