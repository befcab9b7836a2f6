"""The final pass: does a known secret pattern, or any value the scrubber removed, survive anywhere?

Run on every recording before it is written (and on any file with `consentwatch capture --check`). It looks
at everything a recording carries: the URL, every header, both bodies (decoded, whatever the headers say).
A leak names its kind, the flow and the place, never the value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import unquote

from mitmproxy import http

from ..detect.body import read_body
from . import patterns as P

_BOOL_WORDS = {"true", "false", "1", "0", "on", "off", "yes", "no", "enabled", "disabled", "allowed", "denied"}
_SECRET_HEADERS = ("authorization", "proxy-authorization")


@dataclass(frozen=True, slots=True)
class Leak:
    kind: str  # what survived: "e-mail address", "JWT", "cookie value", "removed value (name)"...
    flow: int  # index of the flow in the recording (0-based)
    where: str  # "url", "request header Cookie", "response body"...

    def __str__(self) -> str:
        return f"flow {self.flow + 1}, {self.where}: {self.kind}"


def _texts(f: http.HTTPFlow):
    """(where, text, is_header_value, header name) for every part of a flow."""
    req = f.request
    yield "url", req.pretty_url, None
    for name, value in req.headers.items(multi=True):
        yield f"request header {name}", value, name.lower()
    yield "request body", _body_text(req), None
    if f.response is not None:
        for name, value in f.response.headers.items(multi=True):
            yield f"response header {name}", value, name.lower()
        yield "response body", _body_text(f.response), None


def _body_text(msg: http.Message) -> str:
    raw = msg.raw_content
    if not raw:
        return ""
    ce = msg.headers.get("content-encoding", "")
    if ce:
        text, _ = read_body(raw, msg.headers.get("content-type", ""), ce)
        # an undecodable body is checked as the bytes it is
        return text if text is not None else raw.decode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # every byte a character: nothing can hide in an undecodable body


def find_leaks(flows: Iterable[http.HTTPFlow], removed: Iterable[str] = (), allowed_values: Iterable[str] = (),
               removed_kinds: dict[str, str] | None = None) -> list[Leak]:
    """Every place where a known secret pattern, or one of the `removed` values, is still there.

    `allowed_values` are query values that may stay (the rule's own key names); `removed_kinds` says what each
    removed value was, for the message."""
    allowed = set(allowed_values)
    hunt = P.LiteralHunter(removed)
    leaks: list[Leak] = []
    for i, f in enumerate(flows):
        for where, text, header in _texts(f):
            if not text:
                continue
            if header is not None:
                leaks.extend(Leak(k, i, where) for k in _header_problems(header, text))
            elif where == "url":
                leaks.extend(Leak(k, i, where) for k in _query_problems(f.request, allowed))
            leaks.extend(Leak(k, i, where) for k in pattern_problems(text))
            if hunt:
                for _, _, value in hunt.finditer(text):
                    kind = (removed_kinds or {}).get(value, "")
                    leaks.append(Leak(f"removed value{f' ({kind})' if kind else ''} still present", i, where))
                    break
    return leaks


def pattern_problems(text: str) -> list[str]:
    """Known secret shapes in one text: a list of kinds (empty: clean)."""
    out = []
    if P.PRIVATE_KEY.search(text):
        out.append("private key")
    if P.JWT.search(text):
        out.append("JWT")
    if P.API_KEYS.search(text):
        out.append("API key")
    for m in P.AUTH_SCHEME.finditer(text):
        creds = m.group(3)
        if m.group(1).lower() in ("bearer", "basic") and not P.is_placeholder(creds) and \
                any(c.isdigit() or c in "=+/._~-" for c in creds) and not creds.isalpha():
            out.append(f"{m.group(1).lower()} credentials")
            break
    for m in P.EMAIL.finditer(text):
        if not P.is_placeholder(unquote(m.group(0))):
            out.append("e-mail address")
            break
    for m in P.tokens(text):
        out.append("token-like string")
        break
    for rx in P.KV_FORMS:
        for m in rx.finditer(text):
            if P.classify_key(m.group("key")) in P.SECRET_KINDS and not _harmless(_unescaped(m.group("val"))):
                out.append(f"secret field {m.group('key')!r}")
                break
    return out


def _unescaped(value: str) -> str:
    """A quoted value as the scrubber saw it: JSON's escapes decoded ("\\u001f" is the one character the scrubber
    kept as blank), or the text as it is where it is not valid JSON string content."""
    if "\\" not in value:
        return value
    try:
        return json.loads(f'"{value}"')
    except ValueError:
        return value


def _harmless(value: str) -> bool:
    v = value.strip()
    return not v or v.lower() in P.STATE_WORDS or v.lower() in _BOOL_WORDS or P.is_placeholder(v) \
        or v.lower() in ("undefined", "null") or (v.isdigit() and len(v) < 4)


def _header_problems(name: str, value: str) -> list[str]:
    if name == "cookie":
        for c in value.split(";"):
            _, eq, v = c.strip().partition("=")
            if eq and not _harmless(v):
                return ["cookie value"]
    elif name == "set-cookie":
        _, eq, v = value.split(";")[0].strip().partition("=")
        if eq and not _harmless(v):
            return ["set-cookie value"]
    elif name in _SECRET_HEADERS:
        creds = value.strip().partition(" ")[2] or value.strip()
        if not _harmless(creds):
            return ["auth header credentials"]
    elif P.classify_key(name) in P.SECRET_KINDS and not _harmless(value):
        return [f"secret header {name}"]
    return []


def _query_problems(req: http.Request, allowed: set[str]) -> list[str]:
    _, q, query = req.path.partition("?")
    if not q:
        return []
    for part in query.split("&"):
        _, eq, v = part.partition("=")
        v = unquote(v.replace("+", " "))
        if not eq or not v or v.lower() in _BOOL_WORDS or P.is_placeholder(v) or v in allowed or P.is_snake_word(v):
            continue
        if v[:1] in "{[":
            continue  # structured (GraphQL variables): checked with the URL's patterns
        return ["query-string value"]
    return []
