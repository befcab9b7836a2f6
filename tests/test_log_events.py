"""mitmproxy's deprecated `add_log` event: sent only while some addon listens (logs.HeardOnly), since each one is a
hop to the proxy's loop and a walk over every addon there. The lines themselves reach every other handler."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import options
from mitmproxy.log import LegacyLogEvents
from mitmproxy.master import Master

from consentwatch.logs import HeardOnly, gate_legacy_log_events


class Listens:
    def __init__(self):
        self.entries = []

    def add_log(self, entry):
        self.entries.append(entry.msg)


async def test_the_add_log_event_goes_out_only_while_an_addon_has_the_hook():
    master = Master(options.Options())
    try:
        gate_legacy_log_events(master)
        gate_legacy_log_events(master)  # once
        [handler] = [h for h in logging.getLogger().handlers if isinstance(h, LegacyLogEvents) and h.master is master]
        assert sum(isinstance(f, HeardOnly) for f in handler.filters) == 1
        sent = []
        real = master.event_loop.call_soon_threadsafe
        master.event_loop.call_soon_threadsafe = lambda *a: sent.append(a) or real(*a)
        log = logging.getLogger("consentwatch.test")
        log.warning("nobody listens")
        assert sent == []  # no hop to the loop, no walk over the addons

        listener = Listens()
        master.addons.add(listener)
        log.warning("someone listens")
        for _ in range(100):  # hang guard
            if listener.entries:
                break
            await asyncio.sleep(0.01)
        assert len(listener.entries) == 1 and listener.entries[0].endswith("someone listens") and len(sent) == 1

        master.addons.remove(listener)
        log.warning("nobody again")
        assert len(sent) == 1

        # the answer is kept between changes of the addons, and follows a swap that keeps their number
        class Silent:
            pass

        master.addons.add(Silent())
        log.warning("still nobody")
        assert len(sent) == 1
        master.addons.remove(master.addons.get("silent"))
        master.addons.add(listener)
        log.warning("a listener in its place")
        assert len(sent) == 2
    finally:
        vars(master.event_loop).pop("call_soon_threadsafe", None)
        master._legacy_log_events.uninstall()
