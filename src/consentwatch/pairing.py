"""Where the browsers find consentwatch's pairing host (native_host.py): the host manifests and their launcher.

A host manifest names an executable, not a command line, so we write a small launcher into the data dir that runs
native_host with this very interpreter (a venv's or pipx's) and the data dir whose token it hands on. Linux user-level
places, as the browsers read them:

- Chromium and Chrome: `<user data dir>/NativeMessagingHosts/`. The default user data dir is
  `$CHROME_CONFIG_HOME` or `$XDG_CONFIG_HOME` (else ~/.config), then `chromium` or `google-chrome`. A browser
  started with `--user-data-dir=DIR` looks in `DIR/NativeMessagingHosts` instead (Debian's chromium 150 verified,
  tests/browser/test_pairing.py): pass that DIR with `--chromium-user-data-dir`.
- Firefox (and Debian's firefox-esr): `~/.mozilla/native-messaging-hosts/`.

Chromium admits the extension by its origin (the id the manifest's "key" fixes), Firefox by its gecko id.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .native_host import CHROMIUM_ORIGIN, GECKO_ID, HOST_NAME

LAUNCHER = "pairing-host"  # in the data dir
MANIFEST_FILE = f"{HOST_NAME}.json"
DESCRIPTION = "consentwatch: hands this computer's consentwatch address and token to its browser extension"


class PairingError(Exception):
    """One line for the user (exit 2)."""


@dataclass(frozen=True)
class HostPlace:
    browser: str  # how the user knows it: "Chromium", "Google Chrome", "Firefox"
    kind: str  # "chromium" or "firefox": which manifest format
    directory: Path

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_FILE


@dataclass
class HostOutcome:
    place: HostPlace
    action: str  # "installed", "updated", "already", "removed", "absent", "failed"
    detail: str = ""


def chromium_config_home(env: dict | None = None, home: Path | None = None) -> Path:
    env = os.environ if env is None else env
    home = Path(home or Path.home())
    given = env.get("CHROME_CONFIG_HOME") or env.get("XDG_CONFIG_HOME")
    return Path(given) if given and os.path.isabs(given) else home / ".config"


def places(browser: str = "all", home: Path | None = None, env: dict | None = None,
           chromium_user_data_dirs: list[Path] | None = None) -> list[HostPlace]:
    home = Path(home or Path.home())
    found: list[HostPlace] = []
    if browser in ("chromium", "all"):
        config = chromium_config_home(env, home)
        found.append(HostPlace("Chromium", "chromium", config / "chromium" / "NativeMessagingHosts"))
        found.append(HostPlace("Google Chrome", "chromium", config / "google-chrome" / "NativeMessagingHosts"))
        for udd in chromium_user_data_dirs or []:
            udd = Path(udd).expanduser().absolute()
            found.append(HostPlace(f"Chromium ({udd})", "chromium", udd / "NativeMessagingHosts"))
    if browser in ("firefox", "all"):
        found.append(HostPlace("Firefox", "firefox", home / ".mozilla" / "native-messaging-hosts"))
    unique: dict[Path, HostPlace] = {}
    for p in found:
        unique.setdefault(p.directory, p)
    return list(unique.values())


def launcher_path(data_dir: Path) -> Path:
    return Path(data_dir).absolute() / LAUNCHER


def launcher_text(data_dir: Path, python: str | None = None) -> str:
    # -P: nothing from the directory the browser starts it in is importable
    cmd = [python or sys.executable, "-P", "-m", "consentwatch.native_host", "--data-dir", str(Path(data_dir).absolute())]
    return ("#!/bin/sh\n"
            "# consentwatch's pairing host for the browser extension, written by `consentwatch trust`\n"
            "# (`consentwatch trust --remove` removes it). The browser adds the caller's origin or id.\n"
            f'exec {" ".join(shlex.quote(a) for a in cmd)} "$@"\n')


def manifest(kind: str, launcher: Path) -> dict:
    allowed = {"allowed_origins": [CHROMIUM_ORIGIN]} if kind == "chromium" else {"allowed_extensions": [GECKO_ID]}
    return {"name": HOST_NAME, "description": DESCRIPTION, "path": str(launcher), "type": "stdio", **allowed}


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def install(data_dir: Path, browser: str = "all", home: Path | None = None, env: dict | None = None,
            chromium_user_data_dirs: list[Path] | None = None) -> tuple[Path, list[HostOutcome]]:
    """Write the launcher, then a manifest where each browser looks. (launcher, outcomes)."""
    launcher = launcher_path(data_dir)
    try:
        _write(launcher, launcher_text(data_dir), 0o700)
    except OSError as e:
        raise PairingError(f"cannot write the pairing host {launcher}: {e.strerror or e}") from None
    outcomes = []
    for place in places(browser, home, env, chromium_user_data_dirs):
        text = json.dumps(manifest(place.kind, launcher), indent=2) + "\n"
        try:
            before = place.manifest.read_text("utf-8") if place.manifest.exists() else None
            if before == text:
                outcomes.append(HostOutcome(place, "already"))
                continue
            place.directory.mkdir(parents=True, exist_ok=True)
            _write(place.manifest, text, 0o644)
            outcomes.append(HostOutcome(place, "updated" if before is not None else "installed"))
        except (OSError, UnicodeDecodeError) as e:
            outcomes.append(HostOutcome(place, "failed", getattr(e, "strerror", None) or str(e)))
    return launcher, outcomes


def remove(data_dir: Path | None, browser: str = "all", home: Path | None = None, env: dict | None = None,
           chromium_user_data_dirs: list[Path] | None = None) -> list[HostOutcome]:
    """Take our manifest out of each place (only ours: the file named after our host), and the launcher once none
    of the places we know of (every browser's default, and the user data dirs named now) holds one."""
    outcomes = []
    for place in places(browser, home, env, chromium_user_data_dirs):
        try:
            place.manifest.unlink()
            outcomes.append(HostOutcome(place, "removed"))
        except FileNotFoundError:
            outcomes.append(HostOutcome(place, "absent"))
        except OSError as e:
            outcomes.append(HostOutcome(place, "failed", e.strerror or str(e)))
    left = [p for p in places("all", home, env, chromium_user_data_dirs) if p.manifest.exists()]
    if data_dir is not None and not left:
        try:
            launcher_path(data_dir).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise PairingError(f"cannot remove the pairing host {launcher_path(data_dir)}: {e.strerror or e}") from None
    return outcomes
