import io
import logging

import pytest

from consentwatch.logscrub import ScrubFilter, scrub, scrub_record, scrubbing_factory


def test_scrub_removes_queries_tokens_cookies():
    line = ("server_playback: killed non-replay request https://www.linkedin.com/feed/?trk=SECRET#frag "
            "Authorization: Bearer SECRET2 ws?token=SECRET3 cookie: li_at=SECRET4; JSESSIONID=x")
    out = scrub(line)
    assert "SECRET" not in out
    assert "https://www.linkedin.com/feed/?…" in out


@pytest.mark.parametrize("line", [
    "GET /report?ticket=SECRET HTTP/1.1",
    "Bad HTTP request line: b'GET http://x.example/a?q=SECRET HTTP/9'",
    "proxy-authorization: Basic SECRET",
    "next=/a?b=SECRET",
    "wss://127.0.0.1:8765/v1/ws?ticket=SECRET",
])
def test_scrub_request_targets_and_params(line):
    assert "SECRET" not in scrub(line)


def test_scrub_keeps_plain_text():
    for line in ("what? #3 is fine", "rules reloaded: pack 2026.1, 21 rules", "https://x.example/path/only"):
        assert scrub(line) == line


@pytest.mark.timeout(30)  # a hang guard: the scrubber looks at each piece of a line once
def test_scrub_is_linear_on_hostile_lines():
    assert scrub("a://" * 200_000 + "?q=SECRET").endswith("?…")
    assert "SECRET" not in scrub("cookie: " * 100_000 + "SECRET")


def _record(msg, *args, exc_info=None):
    return logging.LogRecord("mitmproxy.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_record_and_traceback_scrubbed():
    try:
        raise ValueError("bad url https://x.example/a?q=SECRET")
    except ValueError:
        import sys
        rec = scrub_record(_record("failed %s", "https://x.example/b?q=SECRET", exc_info=sys.exc_info()))
    assert rec.exc_info is None and "SECRET" not in rec.getMessage()
    assert "ValueError: bad url https://x.example/a?…" in rec.getMessage()


def test_factory_and_filter_cover_handlers_added_later():
    factory = scrubbing_factory(logging.LogRecord)
    rec = factory("mitmproxy.x", logging.WARNING, __file__, 1, "killed %s", ("https://x.example/?t=SECRET",), None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a handler that knows nothing of scrubbing (mitmproxy's termlog)
    handler.handle(rec)
    assert "SECRET" not in stream.getvalue() and "https://x.example/?…" in stream.getvalue()
    # a record made by another factory is scrubbed by the filter on our own handler
    stream2 = io.StringIO()
    ours = logging.StreamHandler(stream2)
    ours.addFilter(ScrubFilter())
    ours.handle(_record("Cookie: %s", "sid=SECRET"))
    assert "SECRET" not in stream2.getvalue()
