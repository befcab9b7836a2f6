"""What an installed consentwatch knows about itself: where its browser extension is, and how it starts at login.

The extension lives at the top of the repository (`extension/`, loaded unpacked from a clone); a wheel carries the
same files inside the package (`consentwatch/extension/`, see setup.py). Autostart is a systemd user unit that runs
`consentwatch run` with this very interpreter (a venv's or pipx's), so it keeps working whatever PATH the login
session has. macOS (launchd) is documented in the README.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import consentwatch

UNIT_NAME = "consentwatch.service"
SYSTEMCTL_TIMEOUT = 30


class InstallError(Exception):
    """One line for the user (exit 2)."""


def extension_dir() -> Path | None:
    """The unpacked extension to load in the browser: the installed package's copy, else the clone's."""
    package = Path(consentwatch.__file__).resolve().parent
    for candidate in (package / "extension", package.parents[1] / "extension"):
        if (candidate / "manifest.json").is_file():
            return candidate
    return None


# -- autostart (systemd user unit) ---------------------------------------------------------------------------

def unit_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def run_command(run_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "consentwatch.cli", "run", *run_args]


def _systemd_quote(arg: str) -> str:
    # systemd expands % specifiers and $ variables in ExecStart: double them; then shell-like quoting
    return shlex.quote(arg.replace("%", "%%").replace("$", "$$"))


def unit_text(run_args: list[str]) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in run_command(run_args))
    return (
        "# Written by `consentwatch autostart --enable`; `consentwatch autostart --disable` removes it.\n"
        "[Unit]\n"
        "Description=consentwatch: warns when a platform trains AI on your data by default\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        # a second start while one runs fails at once (port in use, or the data dir's lock): no restart loop then
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def _systemctl(*args: str) -> subprocess.CompletedProcess | None:
    exe = shutil.which("systemctl")
    if not exe:
        return None
    try:
        return subprocess.run([exe, "--user", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=SYSTEMCTL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess([exe], 1, "", str(e))


def _first_line(p: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (p.stderr or p.stdout or "").splitlines() if line.strip()]
    return lines[0] if lines else f"exit {p.returncode}"


def enable(run_args: list[str], start: bool = True) -> tuple[Path, str]:
    """Write the unit, then enable (and start) it. (unit path, what happened). Raises InstallError when the unit
    is written but systemd could not enable it: the message says how to finish by hand."""
    path = unit_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(unit_text(run_args), "utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise InstallError(f"cannot write {path}: {e.strerror or e}") from None
    if not start:
        return path, "written"
    by_hand = f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
    reload = _systemctl("daemon-reload")
    if reload is None:
        raise InstallError(f"wrote {path}, but there is no systemctl here: start `consentwatch run` at login "
                           "another way (see README)")
    if reload.returncode != 0:
        raise InstallError(f"wrote {path}, but systemd did not take it ({_first_line(reload)}); in your desktop "
                           f"session run: {by_hand}")
    p = _systemctl("enable", "--now", UNIT_NAME)
    if p is None or p.returncode != 0:
        raise InstallError(f"wrote {path}, but systemd did not enable it ({_first_line(p) if p else 'no systemctl'}); "
                           f"in your desktop session run: {by_hand}")
    return path, "enabled and started"


def disable() -> tuple[Path, bool]:
    """Stop and disable the unit, then remove it. (unit path, whether there was one)."""
    path = unit_path()
    existed = path.exists()
    if existed:
        _systemctl("disable", "--now", UNIT_NAME)  # fine to fail: no user session, or never enabled
        try:
            path.unlink()
        except OSError as e:
            raise InstallError(f"cannot remove {path}: {e.strerror or e}") from None
        _systemctl("daemon-reload")
    return path, existed
