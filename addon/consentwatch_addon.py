"""consentwatch as a mitmproxy script:  mitmdump -s addon/consentwatch_addon.py  (or mitmproxy -s ...).

All logic lives in the `consentwatch` package (pip install -e . from the repository root); this file
only hands its addons to mitmproxy, so people keep their own mitmproxy command line.
"""

from consentwatch import logs
from consentwatch.assembly import in_script

logs.install_on_root()  # mitmproxy's own log handlers: consentwatch's lines with its prefix, scrubbed
# This module is the addon (no `addons` list): mitmproxy asks every addon it walks through for every hook of every
# flow, so the group's hooks are put here, where the walk stops.
group = in_script(globals())
