"""An addon that keeps the objects built at start-up out of the garbage collector's way.

consentwatch builds its rules, detectors, stores and API once, at start-up: tens of thousands of objects that
live as long as the proxy does. Python's cyclic collector would examine them again and again while mitmproxy
allocates its objects for every flow. Once the proxy runs, `gc.freeze()` moves every object alive at that
moment into a generation the collector never examines; everything made later (flows, connections, findings) is
collected as before. Measured with bench/proxy.py, the same rounds with and without (bench/PROFILE.md): about
2 % of the proxy's throughput, on unmatched traffic and on inspected pages alike.

What it costs: a reference cycle among those start-up objects that turns into garbage later is not collected
(reference counting still frees everything else). Off with `--set consentwatch_gc_freeze=false`.
"""

from __future__ import annotations

import gc

from mitmproxy import ctx


class FreezeStartupObjects:
    def load(self, loader) -> None:
        loader.add_option("consentwatch_gc_freeze", bool, True,
                          "Once the proxy runs, exempt the objects built at start-up from Python's garbage collector "
                          "(gc.freeze): ~2 % more throughput; a cycle among them that becomes garbage stays.")

    def running(self) -> None:
        # after every other addon's running (this one comes last): the API and the stores are built by then
        if ctx.options.consentwatch_gc_freeze:
            gc.collect()  # what start-up left behind is garbage, not something to keep for ever
            gc.freeze()
