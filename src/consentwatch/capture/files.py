"""Recordings in and out: scrub, verify, then write, in that order, or write nothing.

`scrub_flows` is the one path every recording takes (the capture addon's and `capture --scrub`'s): pass 1
per flow, pass 2 over the whole recording, the final verification pass with every removed value; a
surviving secret raises `Refused` and nothing is written.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mitmproxy import http
from mitmproxy import io as mio
from mitmproxy.addons.savehar import SaveHar

from ..replay import ReplayError, read_flows
from ..store.atomic import atomic_write
from .scrub import KIND_LABELS, Scrubber
from .verify import Leak, find_leaks

OUT_MODE = 0o600  # the user's own file; they decide whom to share it with


class Refused(Exception):
    """A known secret pattern survived the scrubber: nothing was written."""

    def __init__(self, leaks: list[Leak]):
        super().__init__(f"{len(leaks)} place(s) still hold a secret-looking value")
        self.leaks = leaks


@dataclass
class Scrubbed:
    flows: list[http.HTTPFlow]
    removed: dict[str, int] = field(default_factory=dict)
    distinct: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        return summary_lines(self.removed, self.distinct)


def summary_lines(removed: dict[str, int], distinct: dict[str, int]) -> list[str]:
    """What was removed, by kind: `  e-mail addresses        4 (2 different)`."""
    lines = []
    for kind, n in sorted(removed.items(), key=lambda kv: (-kv[1], kv[0])):
        label = KIND_LABELS.get(kind, kind)
        d = distinct.get(kind)
        lines.append(f"  {label:<48} {n:>5}" + (f"  ({d} different)" if d and d != n else ""))
    return lines


def scrub_flows(flows: Iterable[http.HTTPFlow], scrubber: Scrubber) -> Scrubbed:
    """Scrub every HTTP flow, hunt the removed values through all of them, verify. Raises Refused."""
    out = [scrubber.scrub_flow(f) for f in flows if isinstance(f, http.HTTPFlow)]
    return finish(out, scrubber)


def finish(scrubbed: list[http.HTTPFlow], scrubber: Scrubber) -> Scrubbed:
    """Pass 2 and the verification of flows that went through `scrubber.scrub_flow` already."""
    scrubber.finish(scrubbed)
    verify(scrubbed, scrubber)
    report = scrubber.report()
    hosts = sorted({f.request.pretty_host for f in scrubbed})
    return Scrubbed(scrubbed, report["removed"], report["distinct"], report["notes"], hosts)


def verify(flows: list[http.HTTPFlow], scrubber: Scrubber | None = None) -> None:
    removed: dict[str, str] = {}
    allowed: set[str] = set()
    if scrubber is not None:
        _, owner = scrubber.hunter()
        removed = {v: kind for v, (kind, _) in owner.items()}
        allowed = scrubber.json_keys
    leaks = find_leaks(flows, removed, allowed, removed)
    if leaks:
        raise Refused(leaks)


def read_recording(path: Path) -> list[http.HTTPFlow]:
    """Every HTTP flow of a .flow or .har file. Raises ReplayError (one line) for an unreadable file."""
    return list(read_flows(Path(path)))


def flow_bytes(flows: list[http.HTTPFlow]) -> bytes:
    buf = io.BytesIO()
    w = mio.FlowWriter(buf)
    for f in flows:
        w.add(f)
    return buf.getvalue()


def har_bytes(flows: list[http.HTTPFlow]) -> bytes:
    return (json.dumps(SaveHar().make_har(flows), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def out_paths(out: Path) -> tuple[Path, Path]:
    """FILE.flow and FILE.har for --out FILE (whichever of the two it names, or neither)."""
    out = Path(out)
    if out.suffix.lower() in (".flow", ".har"):
        stem = out.with_suffix("")
    else:
        stem = out
    return stem.with_name(stem.name + ".flow"), stem.with_name(stem.name + ".har")


def write_recording(flows: list[http.HTTPFlow], out: Path, scrubber: Scrubber | None = None) -> tuple[Path, Path]:
    """Verify once more, then write FILE.flow and FILE.har atomically. Raises Refused, OSError."""
    verify(flows, scrubber)
    flow_path, har_path = out_paths(out)
    flow_data, har_data = flow_bytes(flows), har_bytes(flows)
    atomic_write(flow_path, flow_data, OUT_MODE)
    atomic_write(har_path, har_data, OUT_MODE)
    return flow_path, har_path


__all__ = ["Refused", "ReplayError", "Scrubbed", "finish", "read_recording", "scrub_flows", "summary_lines",
           "verify", "write_recording", "out_paths"]
