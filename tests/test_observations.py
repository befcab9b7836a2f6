"""POST /v1/observations, the page eye: parsing and limits, the same detectors in the worker process, findings
marked seen_by page and stored like the network's, nothing else kept, and a clear 4xx for every bad body."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import LINKEDIN_URL, linkedin_page
from consentwatch.api.app import Api, build_app, openapi_description
from consentwatch.api.hub import Hub
from consentwatch.api.observations import (
    MAX_BODY, MAX_REGION, ObservationError, PageEye, RateLimit, parse_observation,
)
from consentwatch.detect import DetectionError
from consentwatch.detection_worker import DetectorProcess
from consentwatch.token import get_token
from consentwatch.pipeline import Watch
from live_support import EXT_ORIGIN

HOST = "www.linkedin.com"
RULE = "linkedin.genai-training"


def region(on: bool, extra: str = "") -> str:
    """What the extension sends for LinkedIn's switch: the smallest element holding label and control."""
    checked = " checked" if on else ""
    return (f'<div class="row"><label for="t">Use my data for training content creation AI models</label>'
            f'<input id="t" type="checkbox" role="switch"{checked}>{extra}</div>')


def body(html: str, url: str = LINKEDIN_URL + "?trk=SECRET_QUERY#frag", reason: str = "setting", **more) -> bytes:
    return json.dumps({"url": url, "html": html, "reason": reason, **more}).encode()


def rule_host(h: str) -> bool:
    return h in {"www.linkedin.com", "linkedin.com"}


# -- parsing a body: one clear status and message per problem --------------------------------------------------

def test_a_good_body_loses_its_query_string_and_fragment():
    obs = parse_observation(body(region(True)), rule_host)
    assert obs.url == LINKEDIN_URL and obs.host == HOST and obs.reason == "setting"
    assert obs.html == region(True).encode()


@pytest.mark.parametrize("raw, status, says", [
    (b"{not json", 400, "not JSON"),
    (b"\xff\xfe", 400, "not JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'"a string"', 400, "JSON object"),
    (json.dumps({"url": LINKEDIN_URL, "html": "<p>x</p>"}).encode(), 422, "missing field(s): reason"),
    (body("<p>x</p>", extra=1), 422, "unknown field(s): extra"),
    (body("<p>x</p>", reason="other"), 422, "reason must be one of setting, notice"),
    (body("<p>x</p>", url="http://www.linkedin.com/x"), 422, "https://host/path"),
    (body("<p>x</p>", url="https://example.org/x"), 422, "example.org is not a host any rule watches"),
    (body("<p>x</p>", url="https://www.linkedin.com:99999/x"), 422, "not a URL"),
    (body("<p>x</p>", url=""), 422, "url must be a string"),
    (body("<p>x</p>", url=7), 422, "url must be a string"),
    (body("   "), 422, "non-empty string"),
    (body(None), 422, "non-empty string"),
    (b'{"url": "https://www.linkedin.com/", "html": "\\ud800", "reason": "notice"}', 422, "not valid Unicode"),
    (body("x" * (MAX_REGION + 1)), 413, f"the most is {MAX_REGION}"),
    (b" " * (MAX_BODY + 1), 413, f"the most is {MAX_BODY}"),
])
def test_bad_bodies_get_a_clear_status_and_message(raw, status, says):
    with pytest.raises(ObservationError) as e:
        parse_observation(raw, rule_host)
    assert e.value.status == status and says in str(e.value)
    assert "\n" not in str(e.value)


def test_a_region_of_exactly_the_cap_is_taken():
    html = "<p>" + "é" * ((MAX_REGION - 7) // 2) + "</p>"
    assert len(html.encode()) <= MAX_REGION
    assert parse_observation(body(html), rule_host).html == html.encode()


# -- rate limiting ----------------------------------------------------------------------------------------------

def test_rate_limit_per_host_and_overall_refills_with_time():
    rl = RateLimit(per_host=(3, 1.0), overall=(5, 2.0))
    assert [rl.check("a", 0.0) for _ in range(3)] == [0, 0, 0]
    assert rl.check("a", 0.0) == pytest.approx(1.0)  # the host's bucket is empty: a second for one token
    assert rl.check("b", 0.0) == 0 and rl.check("b", 0.0) == 0
    assert rl.check("c", 0.0) == pytest.approx(0.5)  # the overall bucket is empty now
    assert rl.check("a", 1.0) == 0  # refilled
    assert rl.check("a", 1.0) > 0


# -- the route, in process --------------------------------------------------------------------------------------

@pytest.fixture
def watch(data_dir):
    w = Watch(data_dir)
    yield w
    w.close()


async def client_for(watch, page_eye=None):
    hub = Hub(ping_every=0)
    token = get_token(watch.data_dir)
    events = []
    watch.listeners.append(lambda e: events.append(e))
    client = TestClient(TestServer(build_app(Api(lambda: watch, hub, lambda: token, lambda: 8080, page_eye=page_eye)),
                                   host="127.0.0.1"))
    await client.start_server()
    hub.start()
    client.auth = {"Authorization": f"Bearer {token}", "Origin": EXT_ORIGIN}
    client.events = events
    client.hub = hub
    return client


@pytest.fixture
async def api(watch):
    client = await client_for(watch)
    yield client
    await client.hub.close()
    await client.close()


async def post(api, raw: bytes, **headers):
    return await api.post("/v1/observations", data=raw,
                          headers={**api.auth, "Content-Type": "application/json", **headers})


async def test_on_then_off_raises_and_resolves_a_warning_seen_by_the_page(api, watch):
    r = await post(api, body(region(True)))
    assert r.status == 202 and r.headers["Access-Control-Allow-Origin"] == EXT_ORIGIN
    [f] = (await r.json())["findings"]
    assert (f["rule_id"], f["kind"], f["state"], f["seen_by"], f["url"]) == (RULE, "toggle_on", "on", "page", LINKEDIN_URL)
    [w] = watch.state.list_warnings("active")
    assert w["seen_by"] == ["page"] and w["url"] == LINKEDIN_URL
    assert [e.type for e in api.events] == ["warning"]

    r = await post(api, body(region(False)))
    assert [f["kind"] for f in (await r.json())["findings"]] == ["toggle_off"]
    assert watch.state.list_warnings("active") == []
    assert [e.type for e in api.events] == ["warning", "resolved"]
    assert [(h["state"], h["seen_by"]) for h in watch.state.list_history()] == [("on", "page"), ("off", "page")]

    # only findings were stored: no markup, no query string
    # every file the state store keeps (the snapshot and its journal)
    stored = "".join(f.read_text(errors="replace") for f in watch.data_dir.glob("state.*") if f.is_file())
    assert "toggle_off" in stored or '"off"' in stored  # the check below looks where the findings are
    assert "SECRET_QUERY" not in stored and "<label" not in stored and "frag" not in stored


async def test_a_region_without_a_setting_finds_nothing_and_stores_nothing(api, watch):
    r = await post(api, body("<div><p>Use my data for training content creation AI models</p></div>"))
    assert r.status == 202 and (await r.json()) == {"findings": []}
    assert watch.state.list_warnings("all") == [] and watch.state.list_history() == []


async def test_a_notice_dialog_drawn_by_the_page(api, watch):
    html = ('<div role="dialog" aria-modal="true"><h2>We are updating our privacy policy</h2>'
            '<p>Starting November 3, 2025 we will use your data to train generative AI models.</p></div>')
    r = await post(api, body(html, url="https://www.linkedin.com/feed/", reason="notice"))
    [f] = (await r.json())["findings"]
    assert (f["kind"], f["effective_date"], f["seen_by"]) == ("policy_update", "2025-11-03", "page")


async def test_the_network_and_the_page_both_saw_it(api, watch):
    t = threading.Thread(target=watch.process, args=(LINKEDIN_URL, "text/html", linkedin_page(True)),
                         kwargs={"host": HOST})
    t.start()
    t.join()
    [w] = watch.state.list_warnings("active")
    assert w["seen_by"] == ["network"]
    await post(api, body(region(True)))
    [w] = watch.state.list_warnings("active")
    assert w["seen_by"] == ["network", "page"]
    assert [e.type for e in api.events] == ["warning", "warning"]  # clients hear that the page saw it too
    await post(api, body(region(True)))
    assert len(api.events) == 2  # the same again: nothing new to say


async def test_a_repeat_that_changed_nothing_is_answered_without_detection_until_the_store_changes(watch, monkeypatch):
    detected = []
    real = Watch.detect
    monkeypatch.setattr(watch, "detect", lambda *a, **k: detected.append(k.get("seen_by")) or real(watch, *a, **k))
    eye = PageEye(lambda: watch)
    api = await client_for(watch, eye)
    try:
        answers = []
        for _ in range(4):  # a change, a repeat that changes nothing (detected), then repeats known from it
            r = await post(api, body(region(True)))
            assert r.status == 202
            answers.append((await r.json())["findings"])
        assert len(detected) == 2 and eye.repeats == 2
        assert [e.type for e in api.events] == ["warning"]
        assert all([(f["kind"], f["state"], f["seen_by"], f["url"]) for f in a] ==
                   [("toggle_on", "on", "page", LINKEDIN_URL)] for a in answers)
        # from memory: what the whole path answered, but for the time of its own sight
        assert [{**f, "observed_at": ""} for f in answers[2]] == [{**f, "observed_at": ""} for f in answers[1]]
        assert all(f["observed_at"] for a in answers for f in a)
        writes = watch.state.writes

        r = await post(api, body(region(True, "<span>another region</span>")))  # not the same region: detected
        assert len(detected) == 3 and watch.state.writes == writes

        # the network eye sees the switch off: a write, so the page's next "on" is detected and stored again
        t = threading.Thread(target=watch.process, args=(LINKEDIN_URL, "text/html", linkedin_page(False)),
                             kwargs={"host": HOST})
        t.start()
        t.join()
        assert watch.state.writes > writes and watch.state.list_warnings("active") == []
        r = await post(api, body(region(True)))
        assert [f["kind"] for f in (await r.json())["findings"]] == ["toggle_reenabled"]
        assert detected.count("page") == 4 and [w["status"] for w in watch.state.list_warnings("all")] == ["active"]
        assert [e.type for e in api.events] == ["warning", "resolved", "warning"]
    finally:
        await api.hub.close()
        await api.close()


def test_a_repeat_is_known_only_while_nothing_would_change():
    import datetime as dt
    from consentwatch.api.observations import Repeat

    class W:  # what Repeat.valid reads of a Watch
        detector = object()

        class state:
            writes = 7

    w = W()
    day = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
    known = Repeat(w, w.detector, b"d", day.date(), 7, day + dt.timedelta(seconds=60), ())
    assert known.valid(w, b"d", day + dt.timedelta(seconds=59, microseconds=999))
    assert not known.valid(w, b"d", day + dt.timedelta(seconds=60))  # last_seen is due for a refresh
    assert not known.valid(w, b"other", day)
    assert not known.valid(W(), b"d", day)  # another pipeline
    w.state.writes = 8
    assert not known.valid(w, b"d", day)  # the store changed
    w.state.writes = 7
    w.detector = object()
    assert not known.valid(w, b"d", day)  # new rules (or region, or size limit)
    w.detector = known.detector
    later = Repeat(w, w.detector, b"d", day.date(), 7, None, ())
    assert later.valid(w, b"d", day + dt.timedelta(hours=13)) and not later.valid(w, b"d", day + dt.timedelta(days=1))


async def test_requests_that_are_refused_before_detection(api, watch):
    assert (await api.post("/v1/observations", data=body(region(True)),
                           headers={"Content-Type": "application/json"})).status == 401
    r = await post(api, body(region(True)), Origin="https://www.linkedin.com")
    assert r.status == 403  # a web page may not post observations, even the platform's own
    r = await post(api, body(region(True)), **{"Content-Type": "text/plain"})
    assert r.status == 415 and "application/json" in (await r.json())["error"]
    r = await post(api, b"x" * (MAX_BODY + 10))
    assert r.status == 413
    r = await post(api, body(region(True), url="https://example.org/"))
    assert r.status == 422 and "not a host any rule watches" in (await r.json())["error"]
    assert watch.state.list_warnings("all") == []


async def test_too_many_observations_get_429_with_retry_after(watch):
    api = await client_for(watch, PageEye(lambda: watch, rate_limit=RateLimit(per_host=(2, 0.01), overall=(50, 1))))
    try:
        codes = [(await post(api, body(region(True)))).status for _ in range(3)]
        assert codes == [202, 202, 429]
        r = await post(api, body(region(True)))
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and "slow down" in (await r.json())["error"]
    finally:
        await api.hub.close()
        await api.close()


def test_the_overall_limit_is_read_without_counting():
    rl = RateLimit(per_host=(10, 1.0), overall=(2, 1.0))
    assert rl.overall_wait(0.0) == 0 and rl.overall_wait(0.0) == 0  # asking takes no token
    assert rl.check("a", 0.0) == 0 and rl.check("b", 0.0) == 0
    assert rl.overall_wait(0.0) == pytest.approx(1.0)
    assert rl.overall_wait(1.0) == 0


async def test_over_the_overall_limit_the_body_is_not_parsed(watch):
    """A flood is refused before its body is parsed: even a body that is not JSON gets 429, not 400, and
    nothing is stored for it."""
    api = await client_for(watch, PageEye(lambda: watch, rate_limit=RateLimit(per_host=(50, 1), overall=(1, 0.01))))
    try:
        assert (await post(api, body(region(True)))).status == 202
        r = await post(api, b"{not json")
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        r = await post(api, body(region(False)))  # a change, refused all the same: nothing parsed, nothing stored
        assert r.status == 429
        assert [w["state"] for w in watch.state.list_warnings("all")] == ["on"]
    finally:
        await api.hub.close()
        await api.close()


async def test_bodies_match_the_description(api, watch):
    spec = openapi_description()
    op = spec["paths"]["/v1/observations"]["post"]

    def check(payload, code):
        resp = op["responses"][str(code)]
        if "$ref" in resp:
            resp = spec["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        schema = resp["content"]["application/json"]["schema"]
        jsonschema.validate(payload, {**schema, "components": spec["components"]})

    example = op["requestBody"]["content"]["application/json"]["examples"]["setting"]["value"]
    jsonschema.validate(example, {**spec["components"]["schemas"]["Observation"], "components": spec["components"]})
    r = await post(api, json.dumps(example).encode())
    assert r.status == 202
    body202 = await r.json()
    assert body202["findings"]
    check(body202, 202)
    for raw, code in ((b"[]", 400), (body("<p>", reason="x"), 422), (b"x" * (MAX_BODY + 1), 413)):
        r = await post(api, raw)
        assert r.status == code
        check(await r.json(), code)
    r = await post(api, b"{}", **{"Content-Type": "text/plain"})
    check(await r.json(), 415)
    w = (await (await api.get("/v1/warnings", headers=api.auth)).json())["warnings"][0]
    assert w["seen_by"] == ["page"]


# -- off the proxy's loop: the detection worker process (supervised), or a thread of its own without one -------

async def test_detection_runs_in_the_worker_process_not_on_the_loop(watch, monkeypatch):
    def not_here(*a, **k):
        raise AssertionError("detected in the proxy process")

    monkeypatch.setattr(watch, "detect", not_here)
    proc = DetectorProcess(watch.rules, watch.region, watch.detector.max_bytes, on_results=watch.record_many)
    api = await client_for(watch, PageEye(lambda: watch, lambda: proc))
    try:
        r = await post(api, body(region(True)))
        [f] = (await r.json())["findings"]
        assert f["seen_by"] == "page" and f["kind"] == "toggle_on"
        assert watch.state.list_warnings("active")[0]["seen_by"] == ["page"]
        assert watch.errors == {}

        # the worker dies: its watchdog starts another, and the page eye goes on there (never on the loop)
        first = proc.proc.pid
        os.kill(first, signal.SIGKILL)
        for _ in range(200):
            if proc.proc.pid != first and proc.proc.is_alive():
                break
            await asyncio.sleep(0.05)
        r = await post(api, body(region(False)))
        assert [f["kind"] for f in (await r.json())["findings"]] == ["toggle_off"]
        assert proc.restarts >= 1
    finally:
        proc.close()
        await api.hub.close()
        await api.close()


async def test_a_region_that_hangs_detection_holds_up_nothing_on_the_loop(watch):
    """Detection of a region never runs on the loop that serves the proxy and the API: while the worker is stuck
    on one (a match backtracking in C, holding its GIL), the same loop answers other requests, and the stuck
    region's POST is answered once the watchdog gives it up."""
    from misbehaving_detector import HANG, MisbehavingDetector

    proc = DetectorProcess(watch.rules, watch.region, watch.detector.max_bytes, on_results=watch.record_many,
                           job_timeout=2, make_detector=MisbehavingDetector)
    api = await client_for(watch, PageEye(lambda: watch, lambda: proc))
    try:
        stuck = asyncio.ensure_future(post(api, body(region(True, HANG.decode()))))
        for _ in range(3000):  # hang guard only: the worker starts on it within moments
            if proc._w.busy_for() > 0:
                break
            await asyncio.sleep(0.01)
        assert proc._w.busy_for() > 0 and not stuck.done()
        for _ in range(5):
            r = await api.get("/v1/health", headers=api.auth)
            assert r.status == 200
        r = await post(api, b"{}")  # another observation request, refused before detection: answered too
        assert r.status == 422
        assert not stuck.done()  # all of that while the region was still being detected
        r = await asyncio.wait_for(stuck, 120)
        assert r.status == 202 and (await r.json())["findings"] == []
        assert proc.abandoned == 1 and sum(watch.errors.values()) == 1
    finally:
        proc.close()
        await api.hub.close()
        await api.close()


async def test_without_a_worker_process_a_thread_of_its_own_detects(watch, monkeypatch):
    loop_thread = threading.current_thread()
    where = []
    real = Watch.detect
    monkeypatch.setattr(watch, "detect", lambda *a, **k: where.append(threading.current_thread()) or real(watch, *a, **k))
    api = await client_for(watch)  # consentwatch_detect_process=false: no worker to hand it to
    try:
        r = await post(api, body(region(True)))
        assert [f["seen_by"] for f in (await r.json())["findings"]] == ["page"]
        assert where and where[0] is not loop_thread and where[0].name.startswith("consentwatch-page")
    finally:
        await api.hub.close()
        await api.close()


def test_the_worker_answers_observations_and_keeps_serving_responses(watch):
    got = []
    done = threading.Event()

    def on_results(batch):
        got.extend(batch)
        done.set()

    proc = DetectorProcess(watch.rules, watch.region, watch.detector.max_bytes, on_results=on_results)
    try:
        fut = proc.observe(LINKEDIN_URL, region(True).encode(), None, HOST)
        obs = fut.result(30)
        assert [(f.kind, f.seen_by) for f in obs.findings] == [("toggle_on", "page")]
        assert obs.suggestions == ()
        # the network eye's response right after, in another state: news (the worker remembered the page's view)
        proc.submit((LINKEDIN_URL, "text/html", linkedin_page(False), "", None, HOST))
        assert proc.drain(30) and done.wait(5)
        assert [(f.kind, f.seen_by) for _, o, _ in got for f in o.findings] == [("toggle_off", "network")]
    finally:
        proc.close()
    assert proc.observe(LINKEDIN_URL, b"<p>x</p>", None, HOST) is None


def test_a_region_the_worker_is_stuck_on_is_given_up_and_the_next_one_answered(watch):
    from misbehaving_detector import HANG, MisbehavingDetector

    from consentwatch.pipeline import TOO_SLOW

    proc = DetectorProcess(watch.rules, watch.region, watch.detector.max_bytes, on_results=lambda b: None,
                           job_timeout=1, make_detector=MisbehavingDetector)
    try:
        stuck = proc.observe(LINKEDIN_URL, region(True, HANG.decode()).encode(), None, HOST)
        after = proc.observe(LINKEDIN_URL, region(False).encode(), None, HOST)
        assert stuck.result(60) == DetectionError(TOO_SLOW)
        assert [(f.kind, f.seen_by) for f in after.result(60).findings] == [("toggle_off", "page")]
        assert proc.abandoned == 1 and proc.restarts == 1
    finally:
        proc.close()


# -- the report says which eyes saw each platform -----------------------------------------------------------------

def test_the_report_names_the_eyes_per_platform(tmp_path):
    import datetime as dt

    from consentwatch.report import render_report, schema
    from consentwatch.store.state import StateStore
    from consentwatch.findings import Finding

    data = tmp_path / "data"
    data.mkdir()
    w = Watch(data)
    rules = w.rules
    w.close()
    store = StateStore(data)
    lk = rules.by_id[RULE]
    gh = rules.by_id["github.copilot-training"]
    at = "2026-11-20T10:00:00+00:00"
    store.record(Finding("toggle_on", "linkedin", RULE, LINKEDIN_URL, "x", "on", observed_at=at, seen_by="page"), lk)
    store.record(Finding("toggle_on", "github", gh.id, "https://github.com/settings/copilot/features", "x", "on",
                         observed_at=at), gh)
    # a record from before the page eye: no seen_by at all, which was the proxy
    store.history.insert({"rule_id": "pinterest.canvas-training", "platform": "pinterest", "state": "off",
                          "observed_at": at, "url": "https://www.pinterest.com/settings/privacy", "setting": "x"})
    store.close()

    _, text = render_report(data, "json", dt.date(2026, 11, 23))
    report = json.loads(text)
    jsonschema.validate(report, schema())
    eyes = {p["platform"]: p["seen_by"] for p in report["platforms"]}
    assert eyes == {"linkedin": ["page"], "github": ["network"], "pinterest": ["network"]}
    _, html = render_report(data, "html", dt.date(2026, 11, 23))
    assert 'data-seen-by="page">Seen in the page, by the browser extension' in html
    assert "Seen in its traffic, by consentwatch&#x27;s proxy" in html
    _, md = render_report(data, "md", dt.date(2026, 11, 23))
    assert "Seen in the page, by the browser extension." in md
