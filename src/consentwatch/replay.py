"""Recorded traffic (.flow from `mitmdump -w`, .har from browser devtools) through the live pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

from mitmproxy import exceptions, http, io

from .findings import Finding
from .pipeline import Watch


class ReplayError(Exception):
    """A file that cannot be read as recorded traffic. The message is one line for the user."""


def read_flows(path: Path) -> Iterator[http.HTTPFlow]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ReplayError(f"{path}: cannot open: {e.strerror or e}") from None
    with f:
        try:
            for flow in io.FlowReader(f).stream():
                if isinstance(flow, http.HTTPFlow):
                    yield flow
        except exceptions.FlowReadException as e:
            what = "HAR" if str(path).lower().endswith(".har") else "flow"
            raise ReplayError(f"{path}: not a readable {what} file ({str(e).splitlines()[0][:120]})") from None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ReplayError(f"{path}: not a readable flow or HAR file ({type(e).__name__})") from None


CHANGE_METHODS = ("POST", "PUT", "PATCH")


def replay_file(watch: Watch, path: Path) -> Iterator[Finding]:
    """Each flow as the live addon sees it: the user's change request (its body) first, then the response."""
    for flow in read_flows(path):
        req = flow.request
        if req.method.upper() in CHANGE_METHODS and req.raw_content:
            ts = req.timestamp_start
            when = dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts and ts > 0 else None
            yield from watch.process(req.pretty_url, req.headers.get("content-type", ""), req.raw_content,
                                     req.headers.get("content-encoding", ""), when, host=req.pretty_host,
                                     method=req.method, side="request")
        resp = flow.response
        if resp is None:
            continue
        ts = resp.timestamp_end or resp.timestamp_start
        when = dt.datetime.fromtimestamp(ts, dt.timezone.utc) if ts and ts > 0 else None
        yield from watch.process(req.pretty_url, resp.headers.get("content-type", ""), resp.raw_content,
                                 resp.headers.get("content-encoding", ""), when, host=req.pretty_host,
                                 method=req.method)
