"""Recorded platform pages served through the live proxy with no network: what `consentwatch demo` needs.

`pages.har` (package data, written by tests/fixtures/make_demo.py) holds, per rule, the recorded settings pages and
setting APIs with the AI-training switch ON, the policy-update notices, and settings pages as the browser draws them
(rendered regions): the same bodies the rule tests replay, scrubbed.
The proxy serves them with mitmproxy's server replay and these options, each needed offline:

- `server_replay_reuse`: a recorded page answers every time it is opened, not once;
- `server_replay_extra=kill`: what was not recorded is refused, never fetched;
- `connection_strategy=lazy`: no upstream connection before answering (there is no DNS offline);
- `keepserving`: the proxy keeps running once every recording has been served;
- `server_replay_ignore_params`: the query parameters the recordings carry, so the address consentwatch prints
  (never with a query string) and the same address with other values both find the recorded page.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PAGES_FILE = "pages.har"
REPLAY_OPTIONS = ("server_replay_reuse=true", "server_replay_extra=kill", "connection_strategy=lazy",
                  "keepserving=true")
# Not the ports of `consentwatch run` (8080, 8765), so a demo and a running `make run` never collide.
DEFAULT_PROXY_PORT = 8081
DEFAULT_API_PORT = 8766
MAX_LISTED = 60


class DemoError(Exception):
    """One line for the user (exit 2)."""


@dataclass(frozen=True)
class DemoPage:
    platform: str
    kind: str  # "settings", "notice", "rendered" (as the browser draws it), or "recorded" (your own recording)
    url: str  # scheme://host/path: what to open; never a query string


def shipped_pages_path() -> Path:
    # installed as plain files (wheel or editable), so a path the proxy can open
    return Path(str(resources.files(__package__).joinpath(PAGES_FILE)))


def shipped_pages(path: Path | None = None) -> list[DemoPage]:
    doc = json.loads((path or shipped_pages_path()).read_text("utf-8"))
    return [DemoPage(e.get("_platform", ""), e.get("_kind", "recorded"), e["request"]["url"])
            for e in doc["log"]["entries"]]


def platforms(pages: list[DemoPage]) -> list[str]:
    return sorted({p.platform for p in pages})


def select(pages: list[DemoPage], platform: str | None) -> list[DemoPage]:
    if not platform:
        return pages
    chosen = [p for p in pages if p.platform == platform.strip().lower()]
    if not chosen:
        raise DemoError(f"no recorded pages for {platform!r}; one of: {', '.join(platforms(pages))}")
    return chosen


def write_subset(src: Path, platform: str, out: Path) -> Path:
    """The shipped HAR with only one platform's pages (server replay then refuses the others)."""
    doc = json.loads(src.read_text("utf-8"))
    doc["log"]["entries"] = [e for e in doc["log"]["entries"] if e.get("_platform") == platform]
    out.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return out


def read_recording(path: Path) -> tuple[list[DemoPage], list[str]]:
    """A user's recording (.flow from mitmdump -w, or .har): (the GET pages it answers, the names of the query
    parameters its requests carry). Raises DemoError with one line when it cannot be read."""
    from mitmproxy import exceptions, http, io

    try:
        flows = list(io.read_flows_from_paths([str(path)]))
    except (exceptions.FlowReadException, OSError, ValueError, KeyError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DemoError(f"{path}: not a recording mitmproxy can read ({why})") from None
    pages: list[DemoPage] = []
    names: set[str] = set()
    seen: set[str] = set()
    for f in flows:
        if not isinstance(f, http.HTTPFlow) or f.response is None:
            continue
        names.update(k for k, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(f.request.path).query,
                                                           keep_blank_values=True))
        if f.request.method != "GET":
            continue
        url = f"{f.request.scheme}://{f.request.pretty_host}{f.request.path.split('?', 1)[0]}"
        if url not in seen:
            seen.add(url)
            pages.append(DemoPage(f.request.pretty_host, "recorded", url))
    if not pages:
        raise DemoError(f"{path}: no answered GET request in it, nothing a browser could open")
    return pages, sorted(names)


def replay_sets(recordings: list[Path], ignore_params: list[str]) -> list[str]:
    """The `--set` options for `consentwatch run` that serve `recordings` offline."""
    sets = [f"server_replay={p}" for p in recordings] + list(REPLAY_OPTIONS)
    sets += [f"server_replay_ignore_params={name}" for name in ignore_params]
    return sets


# -- ports ----------------------------------------------------------------------------------------------------

def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the proxy and the API bind
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(avoid: set[int]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise DemoError("no free port on 127.0.0.1")


def choose_port(given: int | None, default: int, flag: str, avoid: set[int]) -> tuple[int, bool]:
    """(port, moved): a port given on the command line must be free (else a clear refusal); the default moves to
    a free port when taken (a `consentwatch run` or another demo may hold it)."""
    if given is not None:
        if given in avoid or not port_free(given):
            raise DemoError(f"{flag} {given}: port in use on 127.0.0.1 (by `consentwatch run` or another demo?); "
                            f"choose another, or leave {flag} out to get a free one")
        return given, False
    if default not in avoid and port_free(default):
        return default, False
    return any_free_port(avoid | {default}), True
