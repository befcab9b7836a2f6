"""The mitmproxy addon: hooks only. Filtering by host, then detection off the event loop.

Read-only by construction: the hooks never assign to the flow, never kill or intercept it, and detection
starts only after the response hook has returned, so the page reaches the browser unchanged and
undelayed whatever the detectors do.

While running, `rules.json` in the data dir is checked every couple of seconds: a pack imported by
`consentwatch rules import` (an atomic replace) is picked up without a restart, and `rule_listeners`
hear of it (`consentwatch run` updates the intercepted hosts).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Callable

from mitmproxy import ctx, exceptions, http

from .detect.body import DEFAULT_MAX_BYTES
from .paths import DataDirError, data_dir
from .regions import RegionError, normalize_region
from .rules.model import RuleSet
from .rules.store import RULES_FILE, RuleStore
from .watch import Listener, Watch

log = logging.getLogger(__name__)


RELOAD_EVERY = 2.0  # seconds between checks of rules.json


class ConsentWatch:
    def __init__(self, reload_every: float = RELOAD_EVERY) -> None:
        self.watch: Watch | None = None
        # Store event listeners (the API's WebSocket hub); every Watch this addon creates shares the list.
        self.listeners: list[Listener] = []
        # Called on the event loop with the new RuleSet after a live reload (or a new data dir).
        self.rule_listeners: list[Callable[[RuleSet], None]] = []
        self.reload_every = reload_every
        self._rules_stamp: tuple | None = None
        self._reloader: asyncio.Task | None = None
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
        # Only our own options matter. (Another addon registering an option also calls configure: starting
        # a Watch then would open the default data dir before ours is set.)
        if not updated & {"consentwatch_data_dir", "consentwatch_region", "consentwatch_max_bytes"}:
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
        self.watch.listeners = self.listeners
        self._rules_stamp = _stamp(self.watch.data_dir / RULES_FILE)
        self._notify_rules(self.watch.rules)
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

    # -- live rule reload -----------------------------------------------------------------------------
    def running(self) -> None:
        if self.reload_every and self._reloader is None:
            self._reloader = asyncio.get_running_loop().create_task(self._reload_loop(), name="consentwatch-rules")

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reload_every)
            try:
                await self.check_rules()
            except Exception as e:  # noqa: BLE001 - keep the rules in force, try again later
                log.error("consentwatch: reloading the rules failed (%s); keeping the rules in force", e)

    async def check_rules(self) -> bool:
        """Reload the rules if rules.json changed since we last read it. True when new rules are in force."""
        watch = self.watch
        if watch is None:
            return False
        path = watch.data_dir / RULES_FILE
        before = _stamp(path)
        if before == self._rules_stamp:
            return False
        self._rules_stamp = before
        rules = await asyncio.get_running_loop().run_in_executor(None, RuleStore(watch.data_dir).load)
        # If the file changed again while we read it (or load() re-seeded it), the next check reads it again.
        if watch is not self.watch:
            return False
        old = watch.rules
        watch.set_rules(rules)
        log.info("consentwatch: rules reloaded: pack %s, %d rules for %d hosts (was pack %s, %d rules)",
                 rules.version, len(rules), len(rules.host_patterns()), old.version, len(old))
        self._notify_rules(rules)
        return True

    def _notify_rules(self, rules: RuleSet) -> None:
        for listener in list(self.rule_listeners):
            try:
                listener(rules)
            except Exception as e:  # noqa: BLE001
                log.error("consentwatch: rule listener failed: %s", e)

    def _drain(self) -> None:
        for fut in list(self.pending):
            try:
                fut.result(timeout=30)
            except Exception:  # noqa: BLE001 - process() already logs
                pass

    async def done(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            self._reloader = None
        # `mitmdump -r` exits right after the last flow: finish what is queued before closing the store.
        await asyncio.get_running_loop().run_in_executor(None, self._drain)
        self.pool.shutdown(wait=True)
        if self.watch:
            self.watch.close()


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def make_addons() -> list:
    """The addons for a mitmproxy master: detection, then the API (which needs the detection's store)."""
    from .api.server import ApiServer

    cw = ConsentWatch()
    return [cw, ApiServer(cw)]


addons = make_addons()
