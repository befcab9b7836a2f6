"""Rule pack files: reading one (one-line errors), the bytes consentwatch writes, and an export.

An export writes the pack in canonical form; when it is the shipped pack unchanged, the maintainers' signature
beside it (it holds for these exact bytes); and the schema beside it, so editors check the pack as it is typed.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..store.atomic import atomic_write
from .model import PACK_FORMAT, schema, shipped_pack, validate_pack
from .signing import sig_path

SHIPPED_PACK_NAME = "pack.json"


class PackFileError(Exception):
    """A pack file that cannot be read or written. The message is one line for the user."""


def canonical_bytes(pack: dict) -> bytes:
    """How consentwatch writes a pack: 2-space JSON, UTF-8, trailing newline. Byte-stable, so signatures hold."""
    return (json.dumps(pack, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_pack_file(path: Path) -> tuple[bytes, dict]:
    """(raw bytes, parsed pack). Raises PackFileError with one line when the file is unusable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PackFileError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        pack = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise PackFileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise PackFileError(f"{path}: not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise PackFileError(f"{path}: nested too deeply to be a rule pack") from None
    if not isinstance(pack, dict):
        raise PackFileError(f"{path}: a rule pack is a JSON object with format, version and rules")
    return raw, pack


def export_form(pack: dict) -> tuple[dict, str | None]:
    """The pack as an export writes it, and a note when the database's pack was invalid (the shipped pack, which is
    what is in force then, is exported instead)."""
    note = None
    if validate_pack(pack):
        note = "the rule database is invalid; exporting the shipped pack, which is what is in force"
        pack = shipped_pack()
    out: dict = {"$schema": pack.get("$schema") or "./schema.json", "format": pack.get("format", PACK_FORMAT),
                 "version": pack["version"]}
    if pack.get("description"):
        out["description"] = pack["description"]
    out["rules"] = pack["rules"]
    return out, note


def write_export(path: Path, out: dict) -> list[str]:
    """Write an exported pack (see export_form) and what goes beside it. Returns what was written, one line each.
    Raises PackFileError when the pack itself cannot be written."""
    data = canonical_bytes(out)
    try:
        atomic_write(path, data, 0o644)
    except OSError as e:
        raise PackFileError(f"cannot write {path}: {e.strerror or e}") from None
    notes = [f"wrote rule pack {out['version']} ({len(out['rules'])} rules) to {path}"]
    # The shipped pack, unchanged: its maintainer signature holds for these exact bytes, so pass it on.
    shipped = resources.files(__package__).joinpath(SHIPPED_PACK_NAME)
    shipped_sig = resources.files(__package__).joinpath(SHIPPED_PACK_NAME + ".sig")
    try:
        if shipped_sig.is_file() and shipped.read_bytes() == data:
            sig_path(path).write_bytes(shipped_sig.read_bytes())
            notes.append(f"it is the shipped pack, unchanged: wrote the maintainers' signature to {sig_path(path)}")
    except OSError as e:
        notes.append(f"could not copy the shipped signature: {e.strerror or e}")
    schema_file = path.parent / "schema.json"
    if out["$schema"] == "./schema.json" and not schema_file.exists():
        try:
            schema_file.write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
            notes.append(f"wrote {schema_file} beside it, so editors check the pack as you type")
        except OSError:
            pass
    return notes
