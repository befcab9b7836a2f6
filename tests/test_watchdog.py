"""The detection worker's watchdog: a page that hangs detection is given up, the worker is killed and started again,
the count shows in /v1/health, and the pages after it are still detected. A worker that dies is started again.

The worker runs tests/misbehaving_detector.py: real detection, except that a page marked HANG backtracks in C
for hours (as the old change pattern did) and a page marked DIE ends the process.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal

import pytest
from aiohttp.test_utils import TestClient, TestServer
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from conftest import LINKEDIN_URL, linkedin_page
from consentwatch.addon import ConsentWatch
from consentwatch.api.app import Api, build_app
from consentwatch.api.hub import Hub
from consentwatch.detect import DetectionError, Observation
from consentwatch.detection_worker import DetectorProcess
from consentwatch.pipeline import TOO_SLOW, WORKER_DIED
from consentwatch.rules.model import load_pack, shipped_pack
from misbehaving_detector import DIE, HANG, MisbehavingDetector

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
HOST = "www.linkedin.com"
HANG_URL = "https://www.linkedin.com/feed/hangs"
DIE_URL = "https://www.linkedin.com/feed/dies"


def page(on: bool, mark: bytes = b"") -> bytes:
    return linkedin_page(on).replace(b"</body>", mark + b"</body>")


def job(url: str, body: bytes, minute: int):
    return (url, "text/html", body, "", T0 + dt.timedelta(minutes=minute), HOST)


class Sink:
    def __init__(self):
        self.items: list = []
        self.restarted: list[str] = []

    def seen(self) -> list[tuple[str, str]]:
        out = []
        for url, obs, _ in self.items:
            if isinstance(obs, DetectionError):
                out.append((url, obs.kind))
            elif isinstance(obs, Observation):
                out.extend((url, f.kind) for f in obs.findings)
        return out


@pytest.fixture
def worker():
    made = []

    def make(**kw) -> tuple[DetectorProcess, Sink]:
        sink = Sink()
        p = DetectorProcess(load_pack(shipped_pack()), None, 2_000_000, on_results=sink.items.extend,
                            on_restart=sink.restarted.append, make_detector=MisbehavingDetector, **kw)
        made.append(p)
        return p, sink

    yield make
    for p in made:
        p.close()


def test_a_page_that_hangs_is_given_up_and_the_pages_after_it_are_detected(worker):
    p, sink = worker(job_timeout=1)
    first = p.proc.pid
    p.submit(job(LINKEDIN_URL, page(True), 0))
    p.submit(job(HANG_URL, page(True, HANG), 1))
    p.submit(job(LINKEDIN_URL, page(False), 2))  # queued behind the hang: sent again to the new worker
    p.submit(job(LINKEDIN_URL, page(True), 3))
    assert p.drain(60)
    assert sink.seen() == [(LINKEDIN_URL, "toggle_on"), (HANG_URL, TOO_SLOW), (LINKEDIN_URL, "toggle_off"),
                           (LINKEDIN_URL, "toggle_on")]
    assert (p.restarts, p.abandoned, sink.restarted) == (1, 1, [TOO_SLOW])
    assert p.proc.pid != first and p.proc.is_alive()


def test_hangs_in_a_row_each_cost_one_restart(worker):
    p, sink = worker(job_timeout=1)
    for i in range(3):
        p.submit(job(HANG_URL, page(True, HANG), 2 * i))
        p.submit(job(LINKEDIN_URL, page(i % 2 == 0), 2 * i + 1))
    assert p.drain(60)
    assert sink.seen() == [(HANG_URL, TOO_SLOW), (LINKEDIN_URL, "toggle_on"), (HANG_URL, TOO_SLOW),
                           (LINKEDIN_URL, "toggle_off"), (HANG_URL, TOO_SLOW), (LINKEDIN_URL, "toggle_on")]
    assert (p.restarts, p.abandoned) == (3, 3)


def test_the_new_worker_starts_with_the_rules_in_force(worker):
    p, sink = worker(job_timeout=1)
    pack = shipped_pack()
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    p.submit(job(LINKEDIN_URL, page(True), 0))
    p.set_rules(load_pack(pack))  # answered before the hang: the new worker must start with these rules
    p.submit(job(LINKEDIN_URL, page(False), 1))
    assert p.drain(30)
    p.submit(job(HANG_URL, page(True, HANG), 2))
    p.submit(job(LINKEDIN_URL, page(False), 3))  # no LinkedIn rule any more: nothing to report
    assert p.drain(60)
    assert sink.seen() == [(LINKEDIN_URL, "toggle_on"), (HANG_URL, TOO_SLOW)]


def test_a_worker_that_dies_on_a_page_is_restarted_and_that_page_is_not_sent_again(worker):
    p, sink = worker(job_timeout=30)
    p.submit(job(LINKEDIN_URL, page(True), 0))
    p.submit(job(DIE_URL, page(True, DIE), 1))  # sent again, it would kill every new worker too
    p.submit(job(LINKEDIN_URL, page(False), 2))
    assert p.drain(60)
    assert sink.seen() == [(LINKEDIN_URL, "toggle_on"), (DIE_URL, WORKER_DIED), (LINKEDIN_URL, "toggle_off")]
    assert (p.restarts, p.abandoned, sink.restarted) == (1, 1, [WORKER_DIED])


def test_a_worker_ended_by_sigterm_while_the_proxy_stops_is_started_again_without_a_warning(worker, caplog):
    """SIGTERM to the process group reaches the worker and the proxy at once: the proxy's stop still has the queued
    pages detected (a new worker), and says nothing of a death."""
    p, sink = worker(job_timeout=30)
    p.submit(job(LINKEDIN_URL, page(True), 0))
    assert p.drain(30)
    first = p.proc
    with caplog.at_level(logging.DEBUG, logger="consentwatch.detection_worker"):
        os.kill(first.pid, signal.SIGTERM)
        p.stopping()
        p.submit(job(LINKEDIN_URL, page(False), 1))
        assert p.drain(30)
    assert sink.seen() == [(LINKEDIN_URL, "toggle_on"), (LINKEDIN_URL, "toggle_off")]
    assert p.restarts == 1 and p.proc is not first
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [], [r.getMessage() for r in warned]
    assert any("stopped with the proxy" in r.getMessage() for r in caplog.records)


def test_a_worker_ended_by_sigterm_alone_is_started_again_with_a_warning(worker, caplog):
    """The same signal to the worker only (nobody is stopping the proxy): after the grace, a death like any other."""
    p, sink = worker(job_timeout=30)
    first = p.proc
    with caplog.at_level(logging.WARNING, logger="consentwatch.detection_worker"):
        os.kill(first.pid, signal.SIGTERM)
        p.submit(job(LINKEDIN_URL, page(True), 0))
        assert p.drain(30)
    assert sink.seen() == [(LINKEDIN_URL, "toggle_on")]
    assert p.restarts == 1 and sink.restarted == [WORKER_DIED]
    assert any("stopped; started it again" in r.getMessage() for r in caplog.records)


def make_flow(url: str, body: bytes):
    f = tflow.tflow(resp=True)
    f.request = http.Request.make("GET", url)
    f.response = http.Response.make(200, body, {"content-type": "text/html; charset=utf-8"})
    return f


async def test_through_the_addon_the_restart_shows_in_health_and_the_next_page_is_reported(data_dir):
    a = ConsentWatch(make_detector=MisbehavingDetector)
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_timeout=1.0)
        assert a.offload is not None and a.offload.job_timeout == 1.0
        for f in (make_flow(HANG_URL, page(True, HANG)), make_flow(LINKEDIN_URL, page(True))):
            before = f.get_state()
            a.response(f)
            assert f.get_state() == before  # the hook returned at once, the flow untouched
        a._drain(60)
        server = TestServer(build_app(Api(lambda: a.watch, Hub(), lambda: "t" * 32, lambda: 8080)), host="127.0.0.1")
        client = TestClient(server)
        await client.start_server()
        try:
            health = await (await client.get("/v1/health")).json()
        finally:
            await client.close()
        assert (health["abandoned"], health["worker_restarts"], health["errors"]) == (1, 1, 1)
        assert [w["rule_id"] for w in a.watch.state.list_warnings()] == ["linkedin.genai-training"]
        await a.done()


def test_the_timeout_option_refuses_negative_values(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        with pytest.raises(Exception, match="consentwatch_detect_timeout"):
            tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_timeout=-1.0)
        a.pool.shutdown()
        if a.offload is not None:
            a.offload.close()
