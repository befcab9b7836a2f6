"""Where consentwatch's addons are put together, like mitmproxy's `default_addons()`: nothing else builds them.

`consentwatch run` (run.py) and the `mitmdump -s` script (addon/consentwatch_addon.py) both start here, so
they run the same addons, wired the same way.
"""

from __future__ import annotations

from .addon import ConsentWatch
from .api.server import ApiServer
from .capture.record import CaptureRecorder
from .rules_reloader import RulesReloader
from .selftest import SelfTest, TlsFailures


def front_addons() -> list:
    """What must see a flow before mitmproxy's own addons do: the self-test page, which server replay with
    `server_replay_extra=kill` would otherwise refuse. `consentwatch run` adds these first; a `-s` script's
    addons always come after mitmproxy's, so the script adds them with the rest."""
    return [SelfTest()]


def default_addons() -> list:
    """Detection, the rules reloader beside it, the count of refused TLS handshakes, the API (which reads
    detection's pipeline, hears its events and reports the count), and the recorder behind `consentwatch capture`
    (idle unless asked)."""
    detection = ConsentWatch()
    failures = TlsFailures()
    api = ApiServer(lambda: detection.watch, tls_failures=failures.recent)
    detection.listeners.append(api.hub.publish)
    return [detection, RulesReloader(detection), api, failures, CaptureRecorder(lambda: detection.watch)]
