"""`consentwatch autostart`: start `consentwatch run` at login (a systemd user unit), or stop doing so."""

from __future__ import annotations

import sys

from ..install import InstallError, disable, enable, unit_text
from .common import CliError, resolve_data_dir, resolve_region
from .run_cmd import _port


def register(sub) -> None:
    p = sub.add_parser("autostart", help="start consentwatch at login (systemd user unit), or stop doing so",
                       description="--enable writes a systemd user unit that runs `consentwatch run` with this "
                                   "install's Python, then enables and starts it; --disable stops and removes it. "
                                   "macOS: see the README (launchd).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--enable", action="store_true", help="write, enable and start the unit")
    what.add_argument("--disable", action="store_true", help="stop, disable and remove the unit")
    what.add_argument("--show", action="store_true", help="print the unit that --enable would write")
    p.add_argument("--no-start", action="store_true", help="with --enable: only write the unit")
    p.add_argument("--data-dir", metavar="DIR", help="passed to `consentwatch run` (default: your user data dir)")
    p.add_argument("--region", metavar="CODE", help="passed to `consentwatch run`")
    p.add_argument("--proxy-port", metavar="PORT", help="passed to `consentwatch run` (default 8080)")
    p.add_argument("--api-port", metavar="PORT", help="passed to `consentwatch run` (default 8765)")
    p.set_defaults(func=run)


def _run_args(args) -> list[str]:
    out: list[str] = []
    if args.data_dir:
        out += ["--data-dir", str(resolve_data_dir(args))]  # absolute: the unit does not start where you are
    region = resolve_region(args)
    if region:
        out += ["--region", str(region)]
    if args.proxy_port:
        out += ["--proxy-port", str(_port("--proxy-port", args.proxy_port, allow_zero=False))]
    if args.api_port:
        out += ["--api-port", str(_port("--api-port", args.api_port, allow_zero=True))]
    return out


def run(args) -> int:
    if args.disable:
        try:
            path, existed = disable()
        except InstallError as e:
            raise CliError(str(e)) from None
        print(f"removed {path}; consentwatch no longer starts at login" if existed
              else f"no autostart unit at {path}: nothing to do")
        return 0
    if sys.platform == "darwin" or sys.platform == "win32":
        raise CliError("autostart writes a systemd user unit (Linux); on macOS use launchd as the README shows")
    run_args = _run_args(args)
    if args.show:
        print(unit_text(run_args), end="")
        return 0
    try:
        path, what = enable(run_args, start=not args.no_start)
    except InstallError as e:
        raise CliError(str(e)) from None
    if what == "written":
        print(f"wrote {path}; to enable it: systemctl --user daemon-reload && "
              "systemctl --user enable --now consentwatch.service")
    else:
        print(f"{path}: {what}; consentwatch now starts at login (logs: journalctl --user -u consentwatch)")
    return 0
