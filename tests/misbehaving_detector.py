"""A Detector that misbehaves on marked pages, for the watchdog tests (the worker process imports it by name).

On a page holding HANG it runs the shape of the old change pattern on its bait: a match that backtracks for
hours, in C, holding the GIL, which nothing but killing the process stops. On a page holding DIE the worker
process exits on the spot. Every other page is detected as usual.
"""

from __future__ import annotations

import os
import re

from consentwatch.detect import Detector

HANG = b"<!-- hang -->"
DIE = b"<!-- die -->"
_BACKTRACKS = re.compile(r"\bupdated\W+(?:[\w'-]+\W+){0,6}?policy\b")


class MisbehavingDetector(Detector):
    def detect(self, url, content_type, body, *args, **kwargs):
        raw = bytes(body or b"")
        if HANG in raw:
            _BACKTRACKS.search("updated " + "-" * 80 + " x")
        if DIE in raw:
            os._exit(3)
        return super().detect(url, content_type, body, *args, **kwargs)
