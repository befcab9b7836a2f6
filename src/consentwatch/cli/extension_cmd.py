"""`consentwatch extension-path`: where the browser extension is, to load it unpacked."""

from __future__ import annotations

from ..install import extension_dir
from .common import CliError


def register(sub) -> None:
    p = sub.add_parser("extension-path", help="print where the browser extension is (to load it unpacked)",
                       description="Print the directory of consentwatch's browser extension: in Chromium or Chrome, "
                                   "chrome://extensions > Developer mode > Load unpacked > this directory; in "
                                   "Firefox, about:debugging > This Firefox > Load Temporary Add-on > its "
                                   "manifest.json.")
    p.set_defaults(func=run)


def run(args) -> int:
    path = extension_dir()
    if path is None:
        raise CliError("this install has no browser extension (built without extension/?); "
                       "reinstall from the repository")
    print(path)
    return 0
