"""`rules import`: verify a pack's signature, validate it, then swap the rule database in one atomic write.

A refused import (no valid signature, an invalid pack, a failed write) raises ImportRefused with one line and
leaves the old rules in force. A running `consentwatch run` picks up an imported pack by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .diff import PackDiff, diff_packs
from .model import PACK_FORMAT, PackError, RuleSet, shipped_pack, validate_pack
from .packfile import PackFileError, read_pack_file
from .signing import SigningError, TrustedKey, bundled_keys, load_public_key, sig_path, verify
from .store import RuleStore


class ImportRefused(Exception):
    """The pack was not installed; the old rules stay in force. The message is one line for the user."""


@dataclass
class Imported:
    version: str
    rules: RuleSet
    changes: PackDiff
    signed_by: TrustedKey | None


def import_pack(path: Path, data_dir: Path, trust: list[Path] = (), allow_unsigned: bool = False,
                warn: Callable[[str], None] = lambda line: None) -> Imported:
    """Install the pack at `path` into data_dir's rule database. `warn` hears what is accepted only because of
    allow_unsigned. Raises ImportRefused (also for an unreadable file or key)."""
    try:
        raw, pack = read_pack_file(path)
        keys = bundled_keys()
        for k in trust:
            keys.append(load_public_key(k, f"--trust {k}"))
    except (PackFileError, SigningError) as e:
        raise ImportRefused(str(e)) from None

    # 1. the signature, over the exact bytes
    sig_file = sig_path(path)
    signed_by = None
    try:
        sig_text = sig_file.read_bytes()
    except FileNotFoundError:
        sig_text = None
    except OSError as e:
        raise ImportRefused(f"{sig_file}: cannot read: {e.strerror or e}") from None
    if sig_text is None:
        if not allow_unsigned:
            raise ImportRefused(f"import refused: {path} is not signed (no {sig_file.name}); "
                                f"sign it with `consentwatch rules sign`, or pass --allow-unsigned for your own draft")
        warn(f"warning: {path} is not signed; importing it because of --allow-unsigned")
    else:
        try:
            signed_by = verify(raw, sig_text, keys)
        except SigningError as e:
            if not allow_unsigned:
                raise ImportRefused(f"import refused: {path}: {e}") from None
            warn(f"warning: {path}: {e}; importing it anyway because of --allow-unsigned")

    # 2. validation, before anything is touched
    errors = validate_pack(pack) if pack.get("format") == PACK_FORMAT else [
        f"pack: format: this engine reads format {PACK_FORMAT}, the file says {pack.get('format')!r}"]
    if errors:
        raise ImportRefused(f"import refused: {path} is not a valid rule pack ({len(errors)} error(s), first: "
                            f"{errors[0]}); run `consentwatch rules validate {path}`")

    # 3. what changes, then one atomic swap
    store = RuleStore(data_dir)
    try:
        old = store.read_pack()
    except Exception:  # noqa: BLE001 - an unreadable old database is simply replaced
        old = {"version": "none", "rules": []}
    changes = diff_packs(old, pack)
    origin = f"import {Path(path).name}: " + (f"signed by {signed_by.key_id}" if signed_by else "unsigned")
    if signed_by is not None and pack == shipped_pack():
        origin = "shipped"  # the shipped pack itself: later consentwatch updates may refresh it again
    try:
        rules = store.write_pack(pack, origin)
    except PackError as e:
        raise ImportRefused(f"import refused: {e.errors[0]}") from None
    if store.meta().get("version") != str(pack["version"]):
        raise ImportRefused(f"import failed: could not write {store.path}; the old rules stay in force")
    return Imported(str(pack["version"]), rules, changes, signed_by)
