import logging

from consentwatch.logscrub import install, scrub


def test_scrub_removes_queries_tokens_cookies():
    line = ("server_playback: killed non-replay request https://www.linkedin.com/feed/?trk=SECRET#frag "
            "Authorization: Bearer SECRET2 ws?token=SECRET3 cookie: li_at=SECRET4; JSESSIONID=x")
    out = scrub(line)
    assert "SECRET" not in out
    assert "https://www.linkedin.com/feed/?…" in out


def test_installed_filter_covers_other_loggers():
    import io

    parent = logging.getLogger("scrubtest")
    stream = io.StringIO()
    parent.addHandler(logging.StreamHandler(stream))
    install(parent)
    install(parent)  # idempotent
    assert len(parent.handlers[0].filters) == 1
    logging.getLogger("scrubtest.mitmproxy.serverplayback").warning("killed %s", "https://x.com/a?b=SECRET")
    assert "SECRET" not in stream.getvalue() and "https://x.com/a?…" in stream.getvalue()
