"""The addon with mitmproxy's own test helpers: host filter, read-only, same findings as replay."""

import gzip

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from conftest import LINKEDIN_URL, linkedin_page
from consentwatch.addon import ConsentWatch


def make_flow(url, body, headers=None):
    f = tflow.tflow(resp=True)
    f.request = http.Request.make("GET", url)
    f.response = http.Response.make(200, b"", {"content-type": "text/html", **(headers or {})})
    f.response.raw_content = body
    return f


def run_flows(addon, flows):
    for f in flows:
        addon.response(f)
    addon._drain()


def test_rule_host_is_inspected_and_left_untouched(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir))
        body = gzip.compress(linkedin_page(True))
        f = make_flow(LINKEDIN_URL, body, {"content-encoding": "gzip"})
        before = f.get_state()
        run_flows(a, [f])
        assert f.get_state() == before  # not a byte changed, not killed, not intercepted
        assert [w["rule_id"] for w in a.watch.state.list_warnings()] == ["linkedin.genai-training"]


def test_other_hosts_are_never_decoded(data_dir, monkeypatch):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir))
        f = make_flow("https://bank.example/account", b"\x1f\x8b broken", {"content-encoding": "gzip"})
        calls = []
        monkeypatch.setattr(a.watch, "process", lambda *x, **k: calls.append(x))
        a.response(f)
        assert calls == [] and a.inspected == 0


def test_bad_region_option_is_refused(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        try:
            tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_region="Atlantis")
        except Exception as e:
            assert "ISO country code" in str(e)
        else:
            raise AssertionError("bad region accepted")


def test_detection_error_never_touches_the_flow_and_is_counted_once(data_dir, monkeypatch, caplog):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        # in-process detection, so the test can break the detector it runs
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_process=False)

        def boom(*args, **kwargs):
            raise RuntimeError("detector bug with SECRET_PAGE_TEXT")

        monkeypatch.setattr(a.watch.detector, "detect", boom)
        flows = [make_flow(LINKEDIN_URL, linkedin_page(True)) for _ in range(5)]
        states = [f.get_state() for f in flows]
        run_flows(a, flows)
        assert [f.get_state() for f in flows] == states
        assert all(f.error is None and f.response is not None for f in flows)
        assert sum(a.watch.errors.values()) == 5
        logged = [r for r in caplog.records if "detection failed" in r.getMessage()]
        assert len(logged) == 1  # once per rule set, then counted
        assert "SECRET_PAGE_TEXT" not in caplog.text  # the exception's text is not logged, only its type


def test_a_new_data_dir_does_not_wait_for_the_old_one_on_the_event_loop(tmp_path, monkeypatch):
    """configure() runs on the proxy's loop: the old data dir's queued work finishes in the store thread, after
    configure has returned, and lands in the old data dir."""
    import threading

    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(old_dir), consentwatch_detect_process=False)
        old_watch = a.watch
        gate = threading.Event()
        real = old_watch.process

        def slow_process(*args, **kwargs):
            gate.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(old_watch, "process", slow_process)
        a.response(make_flow(LINKEDIN_URL, linkedin_page(True)))
        release = threading.Timer(20, gate.set)  # only if configure() waited for the queued job
        release.start()
        try:
            tctx.configure(a, consentwatch_data_dir=str(new_dir))
            assert not gate.is_set()  # configure returned while the old job was still waiting
            assert a.watch is not old_watch and a.watch.data_dir == new_dir
        finally:
            gate.set()
            release.cancel()
        a.pool.submit(lambda: None).result(30)  # the old job, then the old watch's retirement
        from consentwatch.store.journal import read_stored
        stored = read_stored(old_dir / "state.json")["warnings"]
        assert [w["rule_id"] for w in stored.values()] == ["linkedin.genai-training"]
        assert a.watch.state.list_warnings() == []


def test_same_data_dir_new_region_keeps_the_stores(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_process=False)
        watch, state = a.watch, a.watch.state
        tctx.configure(a, consentwatch_region="DE")
        assert a.watch is watch and a.watch.state is state
        assert watch.region == "DE" and state.region == "DE" and watch.detector.region == "DE"
        run_flows(a, [make_flow(LINKEDIN_URL, linkedin_page(True))])
        assert [w["region"] for w in a.watch.state.list_warnings()] == ["DE"]
