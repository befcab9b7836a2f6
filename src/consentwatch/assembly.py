"""Where consentwatch's addons are put together, like mitmproxy's `default_addons()`: nothing else builds them.

`consentwatch run` (run.py) and the `mitmdump -s` script (addon/consentwatch_addon.py) both start here, so
they run the same addons, wired the same way.
"""

from __future__ import annotations

from .addon import ConsentWatch
from .api.server import ApiServer
from .rules_reloader import RulesReloader


def default_addons() -> list:
    """Detection, the rules reloader beside it, and the API (which reads detection's pipeline and hears its events)."""
    detection = ConsentWatch()
    api = ApiServer(lambda: detection.watch)
    detection.listeners.append(api.hub.publish)
    return [detection, RulesReloader(detection), api]
