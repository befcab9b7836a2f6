"""`consentwatch trust`: sets the browsers up for consentwatch (or undoes it): this install's CA into their
certificate databases, and the pairing host (one-click pairing of the extension) where they look for it."""

from __future__ import annotations

import sys
from pathlib import Path

from ..ca import CaError
from ..ca import SELFTEST_URL
from ..pairing import HostOutcome, PairingError
from ..pairing import install as install_host
from ..pairing import remove as remove_host
from ..trust import (BROWSERS, Report, TrustError, find_certutil, fingerprint, install_ca, other_system_commands, trust,
                     untrust)
from .common import CliError, add_data_dir, resolve_data_dir, setup_logging

RESTART = ("Restart the browser now if it is running: a browser trusts a certificate imported while it runs "
           "only after a restart.")


def register(sub) -> None:
    p = sub.add_parser("trust", help="set your browsers up: trust this install's CA, and one-click pairing "
                                     "(Linux: Chromium, Chrome, Firefox)",
                       description="Install the pairing host, so the extension's \"Pair\" button can fetch the "
                                   "address and token, and import this install's CA (created now if there is none) "
                                   "into Chromium's and Chrome's NSS database (created if missing) and every Firefox "
                                   "profile's, so the platforms' pages can be read. The CA can sign only for the rule "
                                   "domains. The CA needs certutil (libnss3-tools). On macOS and Windows it prints "
                                   "the commands for the CA.")
    p.add_argument("--browser", choices=BROWSERS, default="all", help="which browsers (default: all)")
    p.add_argument("--remove", action="store_true", help="take consentwatch's CA and pairing host out of those "
                                                         "browsers again")
    p.add_argument("--pairing-only", action="store_true",
                   help="only the pairing host, not the CA (for the page eye alone; needs no certutil)")
    p.add_argument("--firefox-profile", dest="firefox_profiles", metavar="DIR", type=Path, action="append",
                   default=[], help="also this Firefox profile directory (one started with -profile DIR)")
    p.add_argument("--chromium-user-data-dir", dest="chromium_dirs", metavar="DIR", type=Path, action="append",
                   default=[], help="also pair a Chromium or Chrome started with --user-data-dir=DIR (it looks for "
                                    "the pairing host in DIR/NativeMessagingHosts)")
    add_data_dir(p)
    p.set_defaults(func=run)


def _line(o) -> str:
    where = f"  {o.db.browser:<16} {o.db.label}"
    if o.action == "already":
        return f"{where}: already trusted"
    if o.action in ("added", "created+added"):
        extra = []
        if o.action == "created+added":
            extra.append("database created")
        if o.removed:
            extra.append(f"replaced {o.removed} older consentwatch CA{'s' if o.removed > 1 else ''}")
        return f"{where}: trusted" + (f" ({', '.join(extra)})" if extra else "")
    if o.action == "removed":
        return f"{where}: removed {o.removed} consentwatch CA{'s' if o.removed > 1 else ''}"
    if o.action == "absent":
        return f"{where}: no consentwatch CA there"
    if o.action == "skipped":
        return f"{where}: skipped, {o.detail}"
    return f"{where}: FAILED: {o.detail}"


def _print(report: Report, remove: bool) -> int:
    for o in report.outcomes:
        print(_line(o))
    for note in report.notes:
        print(f"  {note}")
    done = [o for o in report.outcomes if o.action in ("added", "created+added", "already", "removed", "absent")]
    if not report.outcomes and report.notes:
        raise CliError(report.notes[0])
    if report.failed or not done:
        what = "remove" if remove else "trust"
        raise CliError(f"could not {what} the CA in every browser asked for (see above)")
    if any(o.action in ("added", "created+added", "removed") for o in report.outcomes):
        print(RESTART)
    if not remove:
        print(f"Check: with consentwatch running and the platforms routed to it, {SELFTEST_URL} shows "
              "\"consentwatch self-test: OK\".")
    return 0


def _host_line(o: HostOutcome) -> str:
    where = f"  {o.place.browser:<16} {o.place.manifest}"
    text = {"installed": "pairing host installed", "updated": "pairing host updated",
            "already": "pairing host already installed", "removed": "pairing host removed",
            "absent": "no pairing host there"}.get(o.action)
    return f"{where}: {text}" if text else f"{where}: FAILED: {o.detail}"


def _pairing(args, directory: Path) -> None:
    """The pairing host first: it needs no certutil, and the extension's "Pair" button works without the CA."""
    try:
        if args.remove:
            outcomes = remove_host(directory, args.browser, chromium_user_data_dirs=args.chromium_dirs)
        else:
            launcher, outcomes = install_host(directory, args.browser, chromium_user_data_dirs=args.chromium_dirs)
            print(f"Pairing host: {launcher}")
    except PairingError as e:
        raise CliError(str(e)) from None
    for o in outcomes:
        print(_host_line(o))
    if any(o.action == "failed" for o in outcomes):
        what = "remove" if args.remove else "install"
        raise CliError(f"could not {what} the pairing host for every browser asked for (see above)")
    if not args.remove:
        print("Pair: with consentwatch running, click \"Pair with consentwatch\" in the extension (its first-run page, "
              "popup or Settings) and confirm (no browser restart needed for that).")


def run(args) -> int:
    setup_logging()
    directory = resolve_data_dir(args)
    if sys.platform in ("darwin", "win32"):
        return _other_system(directory, args.remove)
    if not args.pairing_only:
        try:  # before anything changes: without certutil, one line and nothing done
            find_certutil()
        except TrustError as e:
            raise CliError(f"{e} (or `consentwatch trust --pairing-only` for one-click pairing alone)") from None
    _pairing(args, directory)
    if args.pairing_only:
        return 0
    try:
        if args.remove:
            report = untrust(args.browser, firefox_profile_dirs=args.firefox_profiles)
        else:
            report = trust(directory, args.browser, firefox_profile_dirs=args.firefox_profiles)
            ca = report.ca
            made = " (made now)" if ca.created else ""
            print(f"consentwatch CA: {ca.cert_path}{made}")
            print(f"  SHA-256 {fingerprint(ca.cert_path)}")
    except (TrustError, CaError) as e:
        raise CliError(str(e)) from None
    return _print(report, args.remove)


def _other_system(directory: Path, remove: bool) -> int:
    try:
        cert = install_ca(directory).cert_path
    except CaError as e:
        raise CliError(str(e)) from None
    name = "macOS" if sys.platform == "darwin" else "Windows"
    print(f"On {name}, run this yourself (the system's trust store; Chrome, Edge and Safari read it, and Firefox "
          "does when security.enterprise_roots.enabled is true in about:config):")
    for cmd in other_system_commands(sys.platform, cert, remove):
        print(f"  {cmd}")
    print(RESTART)
    raise CliError(f"consentwatch trust changes browser certificate databases on Linux only; on {name} run the "
                   "command above")
