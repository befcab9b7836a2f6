"""A logging filter that keeps query strings, tokens and cookies out of every log line.

consentwatch's own messages only ever carry scheme://host/path, but it shares the process with mitmproxy,
whose addons log full URLs (server replay: "killed non-replay request https://…?token=…"). The filter sits
on the log handlers, so it covers every logger in the process, ours and theirs.
"""

from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]*)[?#][^\s'\"<>]*", re.I)
_BEARER = re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_TOKEN_PARAM = re.compile(r"(\btoken=)[^\s&'\"]+", re.I)
_COOKIE = re.compile(r"(\b(?:set-)?cookie:\s*)[^\r\n]*", re.I)


def scrub(text: str) -> str:
    text = _QUERY.sub(r"\1?…", text)
    text = _BEARER.sub(r"\1…", text)
    text = _TOKEN_PARAM.sub(r"\1…", text)
    return _COOKIE.sub(r"\1…", text)


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the emitter's problem, not ours
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = ScrubFilter()


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of `logger` (default: the root logger). Idempotent."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
