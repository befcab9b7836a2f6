"""consentwatch as a mitmproxy script:  mitmdump -s addon/consentwatch_addon.py  (or mitmproxy -s ...).

All logic lives in the `consentwatch` package (pip install -e . from the repository root); this file
only hands its addons to mitmproxy, so people keep their own mitmproxy command line.
"""

from consentwatch import logs
from consentwatch.assembly import script_addons

logs.install_on_root()  # mitmproxy's own log handlers: consentwatch's lines with its prefix, scrubbed
addons = script_addons()  # one group: mitmproxy asks each addon it sees for every hook of every flow
