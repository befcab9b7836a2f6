"""Keeps query strings, tokens and cookies out of every log line of the process, ours and mitmproxy's.

consentwatch's own messages only ever carry scheme://host/path, but it shares the process with mitmproxy,
whose addons log full URLs (server replay: "killed non-replay request https://…?token=…"). mitmproxy's
handlers (its terminal log, its startup error check, the legacy `add_log` event) are added to the root
logger whenever an addon or a master is created, some after us: a filter on the handlers present at
start-up would miss them. So `install()` scrubs each record where it is made (the log record factory),
before any handler, present or future, sees it. The message is rendered there once, and a traceback with
it, since a formatter may print an exception's message unfiltered (mitmproxy's does).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

# Split on what cannot be inside a URL: each piece is then looked at once (linear time, whatever the line).
_SPLIT = re.compile(r"([\s'\"<>]+)")
_BEARER = re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_SECRET_PARAM = re.compile(r"(\b(?:token|ticket)=)[^\s&'\"]+", re.I)
_COOKIE = re.compile(r"(\b(?:set-)?cookie:\s*)[^\r\n]*", re.I)
_AUTH = re.compile(r"(\b(?:proxy-)?authorization:\s*)[^\r\n]*", re.I)


def _strip_query(piece: str) -> str:
    """`https://host/path?q#f` -> `https://host/path?…`; so too an origin-form target (`/path?q`) and
    anything with a `?name=value` part."""
    q, h = piece.find("?"), piece.find("#")
    cut = min(q, h) if q >= 0 and h >= 0 else max(q, h)
    if cut < 0:
        return piece
    head = piece[:cut]
    if "://" in head or head.lstrip("([").startswith("/") or "=" in piece[cut:]:
        return head + "?…"
    return piece


def scrub(text: str) -> str:
    if "?" in text or "#" in text:
        parts = _SPLIT.split(text)
        parts[::2] = [_strip_query(p) for p in parts[::2]]
        text = "".join(parts)
    text = _BEARER.sub(r"\1…", text)
    text = _SECRET_PARAM.sub(r"\1…", text)
    text = _AUTH.sub(r"\1…", text)
    return _COOKIE.sub(r"\1…", text)


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Render the record's message (and traceback) once, scrubbed, in place."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string: keep what there is, scrubbed
        message = f"{record.msg} {record.args!r}"
    if record.exc_info and record.exc_info[0] is not None:
        message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        record.exc_info = None
        record.exc_text = None
    elif record.exc_text:
        message += "\n" + record.exc_text
        record.exc_text = None
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    record.msg, record.args = scrub(message), None
    return record


class ScrubFilter(logging.Filter):
    """The same on one handler (logs.install puts it on ours and on mitmproxy's): for records made before
    `install()`, or by another record factory."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_scrubbed", False):
            scrub_record(record)
            record._scrubbed = True
        return True


_lock = threading.Lock()
_installed = False


def scrubbing_factory(inner):
    """A log record factory that scrubs what `inner` makes."""

    def make(*args, **kwargs) -> logging.LogRecord:
        record = scrub_record(inner(*args, **kwargs))
        record._scrubbed = True
        return record

    make.scrubs = True
    return make


def install() -> None:
    """Scrub every log record the process makes from now on, whatever logger or handler. Idempotent."""
    global _installed
    with _lock:
        current = logging.getLogRecordFactory()
        if _installed and getattr(current, "scrubs", False):
            return
        logging.setLogRecordFactory(scrubbing_factory(current))
        _installed = True
