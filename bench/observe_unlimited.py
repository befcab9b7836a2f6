"""Bench-only mitmproxy script: lifts the page eye's rate limit, so that every observation the budget bench sends
(50 a second, more than the API's 15 a second allow) is detected, stored and announced: the worst case.

Loaded after addon/consentwatch_addon.py by bench/page_eye_budget.py; never part of consentwatch.
"""

from mitmproxy import ctx
from mitmproxy.addonmanager import traverse

from consentwatch.api.observations import RateLimit

UNLIMITED = (1e9, 1e9)  # (burst, refill per second)


class ObserveUnlimited:
    def running(self):
        # runs after consentwatch's own running hook (scripts run in the order they were given): the API is up
        for addon in traverse(ctx.master.addons.chain):
            if getattr(addon, "name", None) == "consentwatch_addons":
                api = addon.get("apiserver")
                api.page_eye.limit = RateLimit(per_host=UNLIMITED, overall=UNLIMITED)
                return
        raise RuntimeError("bench/observe_unlimited.py: consentwatch's addons are not loaded")


addons = [ObserveUnlimited()]
