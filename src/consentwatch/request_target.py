"""The host and URL a request is for: mitmproxy's `pretty_host` and `pretty_url`, without their cost.

Every flow through the proxy asks for its host (the fast path: is this a rule host?), and mitmproxy's
`pretty_host` validates the name through the IDNA codec each time: ~11 us, about as much as the rest of
the addon's work on an unmatched flow. The usual Host header, `name` or `name:port` in plain ASCII, is
split here directly; anything else (IPv6 literals, non-ASCII, punycode, no Host header, malformed) takes
mitmproxy's own path, so the answers are the same for every input (tests/test_request_target.py checks
that on generated headers).
"""

from __future__ import annotations

import re

from mitmproxy import http
from mitmproxy.net.http.url import default_port

# What mitmproxy's is_valid_host accepts for plain ASCII names: labels of 1-63 letters, digits, '-' or
# '_', an optional final dot. Punycode labels ("xn--") are left to the IDNA codec.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")


_NOT_PLAIN = ("", None)  # remembered: this authority needs the full parser
_SPLITS: dict[str, tuple] = {}
MAX_SPLITS = 4096  # distinct authorities remembered; beyond this the memo starts over


def header(headers: http.Headers, name: bytes) -> str | None:
    """Same as `headers.get(name)` for a lower-case name: the values of every field by that name (any case),
    decoded as mitmproxy decodes them and joined with ", ", or None when there is none."""
    values = [v for k, v in headers.fields if k.lower() == name]
    if not values:
        return None
    if len(values) == 1:
        return values[0].decode("utf-8", "surrogateescape")
    return ", ".join(v.decode("utf-8", "surrogateescape") for v in values)


def _authority(request: http.Request) -> str | None:
    """Same as `request.host_header`."""
    data = request.data
    if data.http_version == b"HTTP/2.0" or data.http_version == b"HTTP/3":
        return request.host_header
    return header(data.headers, b"host")


def _split(authority: str) -> tuple[str, int | None] | None:
    """(name, port) of a plain `name[:port]` authority, or None when it needs the full parser."""
    parts = _SPLITS.get(authority)
    if parts is None:
        if len(_SPLITS) >= MAX_SPLITS:
            _SPLITS.clear()
        parts = _SPLITS[authority] = _split_now(authority) or _NOT_PLAIN
    return None if parts is _NOT_PLAIN else parts


def _split_now(authority: str) -> tuple[str, int | None] | None:
    if not authority.isascii() or len(authority) > 261 or "xn--" in authority.lower():
        return None
    name, colon, port = authority.rpartition(":")
    if not colon:
        name, port = authority, ""
    elif not port.isdigit() or int(port) > 65535:
        return None
    if len(name) > 255 or not _PLAIN_NAME.fullmatch(name):
        return None
    return name, int(port) if port else None


def host_of(request: http.Request) -> str:
    """Same as `request.pretty_host`. (Every flow asks, twice: _authority() and _split()'s memo are written out
    here for HTTP/1, a Python call less each.)"""
    data = request.data
    if data.http_version == b"HTTP/2.0" or data.http_version == b"HTTP/3":
        authority = request.host_header
    else:
        values = [v for k, v in data.headers.fields if k.lower() == b"host"]
        authority = values[0].decode("utf-8", "surrogateescape") if len(values) == 1 else header(data.headers, b"host")
    if not authority:
        return request.host
    parts = _SPLITS.get(authority)
    if parts is None:
        parts = _split(authority)
    elif parts is _NOT_PLAIN:
        parts = None
    return parts[0] if parts is not None else request.pretty_host


def url_of(request: http.Request) -> str:
    """Same as `request.pretty_url`."""
    authority = _authority(request)
    parts = _split(authority) if authority and request.method != "CONNECT" else None
    if parts is None:
        return request.pretty_url
    name, port = parts
    scheme = request.scheme
    port = port or default_port(scheme) or 443
    host = name if default_port(scheme) == port else f"{name}:{port}"
    path = request.path if request.path != "*" else ""
    return f"{scheme}://{host}{path}"
