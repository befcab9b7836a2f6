"""The detection worker: news-only answers, FIFO order, drain, a bounded backlog, a worker that dies and is restarted."""

from __future__ import annotations

import datetime as dt
import os
import select
import signal
import threading
import time

import pytest

from conftest import LINKEDIN_URL, linkedin_page
from consentwatch.detect import Detector, Observation
from consentwatch.findings import Finding
from consentwatch.detection_worker import FRAME, PIPE_SIZE, DetectorProcess, FrameReader, Repeats
from consentwatch.rules.model import load_pack, shipped_pack
from consentwatch.detect import DetectionError

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
HOST = "www.linkedin.com"


def finding(state: str = "on", kind: str | None = None, rule: str = "linkedin.genai-training", at=T0) -> Finding:
    return Finding(kind or f"toggle_{state}", "linkedin", rule, LINKEDIN_URL, "Data for Generative AI Improvement",
                   state=state, observed_at=at.isoformat())


def obs(*findings: Finding, note: str = "", suggestions=()) -> Observation:
    return Observation(list(findings), [], note, suggestions)


# -- Repeats: which observations the worker reports ------------------------------------------------------------

def test_nothing_to_store_is_never_news():
    r = Repeats()
    assert not r.news(None, T0)
    assert not r.news(obs(), T0)


def test_errors_notes_and_suggestions_are_always_news():
    r = Repeats()
    for _ in range(2):
        assert r.news(DetectionError("ValueError"), T0)
        assert r.news(obs(note="undecodable gzip"), T0)
        assert r.news(obs(suggestions=("anything",)), T0)


def test_a_repeat_is_reported_again_after_the_window():
    r = Repeats(dt.timedelta(seconds=30))
    assert r.news(obs(finding("on")), T0)
    assert not r.news(obs(finding("on", at=T0 + dt.timedelta(seconds=5))), T0 + dt.timedelta(seconds=5))
    assert not r.news(obs(finding("on")), T0 + dt.timedelta(seconds=29))
    assert r.news(obs(finding("on")), T0 + dt.timedelta(seconds=30))  # refreshes last_seen in the store
    assert not r.news(obs(finding("on")), T0 + dt.timedelta(seconds=31))


def test_every_state_change_is_news_even_back_to_an_earlier_state():
    r = Repeats()
    seq = ["on", "off", "on", "on", "off"]
    got = [r.news(obs(finding(s)), T0 + dt.timedelta(seconds=i)) for i, s in enumerate(seq)]
    assert got == [True, True, True, False, True]


def test_toggles_and_notices_of_one_rule_are_tracked_apart():
    r = Repeats()
    notice = finding(None, kind="policy_update")
    assert r.news(obs(finding("on")), T0)
    assert r.news(obs(notice), T0)
    assert not r.news(obs(finding("on")), T0)
    assert not r.news(obs(notice), T0)
    assert r.news(obs(finding("on"), finding("on", rule="other.rule")), T0)  # one new finding is enough


def test_clock_going_backwards_or_naive_times_are_news_not_errors():
    r = Repeats()
    assert r.news(obs(finding("on")), T0)
    assert r.news(obs(finding("on")), T0 - dt.timedelta(hours=1))  # an older recording replayed after
    assert not r.news(obs(finding("on")), (T0 - dt.timedelta(hours=1)).replace(tzinfo=None))
    r.clear()
    assert r.news(obs(finding("on")), T0)


# -- FrameReader: whole frames out of a pipe, however the bytes arrive -------------------------------------------

def test_frames_survive_being_written_a_few_bytes_at_a_time():
    import pickle

    r, w = os.pipe()
    body = bytes(range(256)) * 3000
    head = pickle.dumps(("job", "u", "text/html", "", None, HOST, True))
    data = (FRAME.pack(len(head), len(body)) + head + body) * 2 + FRAME.pack(len(h := pickle.dumps(("stop",))), 0) + h

    def dribble():
        for i in range(0, len(data), 7777):
            os.write(w, data[i:i + 7777])
        os.close(w)

    t = threading.Thread(target=dribble)
    t.start()
    reader = FrameReader(r)
    assert reader.read() == (("job", "u", "text/html", "", None, HOST, True), body)
    assert reader.read() == (("job", "u", "text/html", "", None, HOST, True), body)
    assert reader.read() == (("stop",), None)
    t.join()
    with pytest.raises(EOFError):
        reader.read()
    os.close(r)


def test_frames_of_every_size_come_out_whole_across_the_readers_buffer():
    """The reader reuses one buffer: frames that straddle its end are moved to the front, a frame bigger
    than it grows it (and a huge one gives the memory back afterwards), and every byte comes out in order."""
    import pickle
    import random

    rng = random.Random(16)
    sizes = [0, 1, 5000, PIPE_SIZE - 40, PIPE_SIZE + 1, 3 * PIPE_SIZE, 7, FrameReader.KEEP + 10, 300_000] + \
        [rng.randrange(0, 200_000) for _ in range(30)]
    frames = []
    for i, n in enumerate(sizes):
        body = bytes([i % 251]) * n + (i.to_bytes(4, "big") if n >= 4 else b"")[: n]
        body = body[:n]
        head = ("job", f"u{i}", "text/html", "", None, HOST, None, "response", True)
        frames.append((head, body))
    data = b"".join(FRAME.pack(len(h := pickle.dumps(head)), len(body)) + h + body for head, body in frames)
    r, w = os.pipe()

    def write_in_odd_pieces():
        i = 0
        while i < len(data):
            step = rng.choice((1, 13, 4096, 65_537, 1 << 20))
            os.write(w, data[i:i + step])
            i += step
        os.close(w)

    t = threading.Thread(target=write_in_odd_pieces)
    t.start()
    reader = FrameReader(r)
    for head, body in frames:
        got_head, got_body = reader.read()
        assert got_head == head and got_body == body, head[1]
    assert len(reader.buf) <= FrameReader.KEEP  # the huge frame's memory went back
    with pytest.raises(EOFError):
        reader.read()
    t.join()
    os.close(r)


def test_big_parts_lent_to_the_pipe_arrive_whole_and_in_order():
    """_send lends a frame with a big part to the pipe (vmsplice) and copies one without, through a full
    non-blocking pipe and partial writes, as DetectorProcess uses it: the reader gets exactly the parts, in order."""
    import sys

    from consentwatch import detection_worker as dw

    if sys.platform.startswith("linux"):
        assert dw._VMSPLICE is not None  # the lending path is the one under test here
    rng = __import__("random").Random(4)
    parts = []
    for i in range(60):
        n = rng.choice((3, 12, dw.SPLICE_MIN - 1, dw.SPLICE_MIN, 100_000, 1_500_001))
        parts.append(bytes([i]) * n if i % 3 else memoryview(os.urandom(n + 7))[5:5 + n])
    expected = b"".join(bytes(p) for p in parts)
    r, w = os.pipe()
    os.set_blocking(w, False)
    got = bytearray()

    def read_slowly():
        while True:
            chunk = os.read(r, rng.choice((1000, 70_000, 1 << 20)))
            if not chunk:
                return
            got.extend(chunk)

    t = threading.Thread(target=read_slowly)
    t.start()
    pending = list(parts)
    while pending:
        try:
            n = dw._send(w, pending[:5])
        except BlockingIOError:
            select.select([], [w], [], 1)
            continue
        rest = dw._after(pending[:5], n)
        pending = rest + pending[5:]
    os.close(w)
    t.join(30)
    os.close(r)
    assert bytes(got) == expected


# -- DetectorProcess: a real worker process ------------------------------------------------------------------------

class Sink:
    def __init__(self):
        self.batches: list[list] = []
        self.restarted: list[str] = []

    @property
    def items(self) -> list:
        return [item for batch in self.batches for item in batch]

    def kinds(self) -> list[str]:
        return [f.kind for _, o, _ in self.items if isinstance(o, Observation) for f in o.findings]


@pytest.fixture
def worker():
    made = []

    def make(**kw) -> tuple[DetectorProcess, Sink]:
        sink = Sink()
        p = DetectorProcess(load_pack(shipped_pack()), None, kw.pop("max_bytes", 2_000_000),
                            on_results=sink.batches.append, on_restart=sink.restarted.append, **kw)
        made.append(p)
        return p, sink

    yield make
    for p in made:
        p.close()


def job(on: bool, when=T0, body: bytes | None = None):
    return (LINKEDIN_URL, "text/html", body if body is not None else linkedin_page(on), "", when, HOST)


def test_the_worker_reports_the_first_view_and_state_changes_not_the_reloads(worker):
    p, sink = worker()
    for i in range(40):
        assert p.submit(job(True, T0 + dt.timedelta(seconds=i / 10)))
    assert p.submit(job(False, T0 + dt.timedelta(seconds=5)))
    assert p.submit(job(True, T0 + dt.timedelta(seconds=6)))
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on", "toggle_off", "toggle_on"]
    # the time each observation was made travels with it
    assert [f.observed_at for _, o, _ in sink.items for f in o.findings] == [
        T0.isoformat(timespec="seconds"), (T0 + dt.timedelta(seconds=5)).isoformat(timespec="seconds"),
        (T0 + dt.timedelta(seconds=6)).isoformat(timespec="seconds")]


def test_same_answers_as_detecting_in_process(worker):
    p, sink = worker()
    detector = Detector(load_pack(shipped_pack()), None)
    page = linkedin_page(True)
    p.submit(job(True, body=page))
    assert p.drain(30)
    [(url, got, host)] = sink.items
    assert (url, host) == (LINKEDIN_URL, HOST)
    assert got == detector.detect(LINKEDIN_URL, "text/html", page, "", T0, rules=detector.rules_for(HOST))


def test_a_body_over_max_bytes_is_cut_before_it_is_shipped(worker):
    p, sink = worker(max_bytes=4096)
    page = linkedin_page(True) + b"<!--" + b"x" * 3_000_000 + b"-->"
    p.submit(job(True, body=page))
    p.submit(job(True, body=b"<p>" + b"y" * 5000 + linkedin_page(True)))  # the switch lies past the cap
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on"]


def test_rules_sent_later_replace_the_old_ones_and_start_afresh(worker):
    p, sink = worker()
    p.submit(job(True))
    p.set_rules(load_pack(shipped_pack()))
    p.submit(job(True))  # the same page again: news to a fresh worker
    pack = shipped_pack()
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    p.set_rules(load_pack(pack))
    p.submit(job(False))  # no LinkedIn rule any more: nothing to report
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on", "toggle_on"]


def test_a_stalled_worker_costs_bounded_memory_and_loses_no_order(worker):
    p, sink = worker(max_backlog=3_000_000)
    os.kill(p.proc.pid, signal.SIGSTOP)  # the worker stops reading: the pipe fills, then the backlog
    try:
        big = linkedin_page(True) + b"<!--" + b"z" * 400_000 + b"-->"
        for i in range(40):
            assert p.submit(job(True, T0 + dt.timedelta(minutes=i), body=big))  # each one news (window passed)
        assert p.skipped > 0  # the rest were not inspected, and counted
        assert p._backlog_bytes <= 3_000_000
    finally:
        os.kill(p.proc.pid, signal.SIGCONT)
    assert p.drain(60)
    stamps = [f.observed_at for _, o, _ in sink.items for f in o.findings]
    assert 0 < len(stamps) == 40 - p.skipped
    assert stamps == sorted(stamps)  # in the order they were seen


def test_a_worker_that_dies_is_restarted_and_detection_goes_on(worker):
    p, sink = worker()
    p.submit(job(True))
    assert p.drain(30)
    first = p.proc.pid
    p.proc.kill()
    for i in range(1, 50):  # pages keep coming while it is dead and while it starts again: none is lost
        assert p.submit(job(i % 2 == 0, T0 + dt.timedelta(minutes=i)))
    assert p.drain(60)
    assert sink.restarted == ["WorkerDied"] and p.restarts == 1 and p.proc.pid != first
    assert sink.kinds() == ["toggle_on"] + ["toggle_off", "toggle_on"] * 24 + ["toggle_off"]
    assert p.abandoned == 0  # it died between pages: no page was given up


def test_close_stops_the_worker(worker):
    p, sink = worker()
    p.submit(job(True))
    p.close()
    assert not p.proc.is_alive()
    assert sink.kinds() == ["toggle_on"]  # what was queued was detected before it stopped


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_a_compressed_body_is_cut_where_it_still_decodes_to_max_bytes(worker, encoding):
    import gzip
    import random
    import zlib

    import brotli
    from consentwatch.detect.body import zstd  # the same zstd module the detectors read with

    encoders = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
                "zstd": zstd.compress}
    max_bytes = 64 * 1024
    noise = random.Random(7).randbytes(6 * max_bytes)  # incompressible: the worst case for the cut
    detector = Detector(load_pack(shipped_pack()), None, max_bytes)
    p, sink = worker(max_bytes=max_bytes)
    for i, page in enumerate((linkedin_page(True) + b"<!--" + noise.hex().encode() + b"-->",
                 noise[: max_bytes - 1000] + linkedin_page(True) + noise,  # the switch just inside max_bytes
                 noise)):
        body = page
        for enc in encoding.split(", "):
            body = encoders[enc](body)
        sink.batches.clear()
        p.submit((LINKEDIN_URL, "text/html", body, encoding, T0 + dt.timedelta(hours=i), HOST))
        assert p.drain(30)
        whole = detector.detect(LINKEDIN_URL, "text/html", body, encoding, T0 + dt.timedelta(hours=i), rules=detector.rules_for(HOST))
        got = [o for _, o, _ in sink.items]
        assert [f.kind for o in got for f in o.findings] == [f.kind for f in whole.findings]
        assert got == ([whole] if whole.note or whole.findings else [])


def test_one_body_bigger_than_the_backlog_is_skipped_not_buffered(worker):
    import brotli

    p, sink = worker(max_backlog=1_000_000)
    noise = __import__("random").Random(3).randbytes(1_200_000)
    huge = brotli.compress(linkedin_page(True) + noise, quality=0)  # under max_bytes + slack: not cut
    assert len(huge) > 1_000_000
    p.submit((LINKEDIN_URL, "text/html", huge, "br", T0, HOST))
    p.submit(job(True, T0 + dt.timedelta(minutes=1)))
    assert p.drain(30)
    assert p.skipped == 1 and sink.kinds() == ["toggle_on"]


# -- a page bigger than the pipe, submitted on the event loop (as the proxy's hooks do) --------------------------

def _flusher_sends(p: DetectorProcess) -> list:
    """Calls of the flusher thread's writes, recorded: the event loop must not need that thread."""
    calls = []
    original = p._write_backlog

    def recorded(gen):
        calls.append(threading.current_thread().name)
        return original(gen)

    p._write_backlog = recorded
    return calls


def test_the_event_loop_writes_the_rest_of_a_page_bigger_than_the_pipe_itself(worker):
    import asyncio

    p, sink = worker(max_bytes=8_000_000)
    calls = _flusher_sends(p)
    pages = [linkedin_page(on) + b"<!--" + b"q" * (3 * PIPE_SIZE) + b"-->" for on in (True, False, True)]

    async def submit_all() -> None:
        for i, page in enumerate(pages):
            assert p.submit(job(True, T0 + dt.timedelta(minutes=i), body=page))
        assert p._backlog_bytes > 0  # the pipe took part of the first page only
        for _ in range(2000):  # the loop goes on serving; meanwhile it writes what waits
            await asyncio.sleep(0.005)
            if not p._backlog:
                break

    asyncio.run(submit_all())
    assert not p._backlog
    assert calls and set(calls) == {"MainThread"}  # written from the loop's thread, never the flusher's
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on", "toggle_off", "toggle_on"]


def test_drain_on_the_event_loop_with_a_backlog_does_not_wait_for_the_loop(worker):
    import asyncio

    p, sink = worker(max_bytes=8_000_000)
    big = linkedin_page(True) + b"<!--" + b"q" * (2 * PIPE_SIZE) + b"-->"

    async def submit_and_drain() -> bool:
        assert p.submit(job(True, body=big))
        assert p._backlog_bytes > 0
        return p.drain(30)  # blocks the loop: the flusher thread has to write the rest

    started = time.monotonic()
    assert asyncio.run(submit_and_drain())
    assert time.monotonic() - started < 25  # (a guard against the 30 s wait, not a speed test)
    assert sink.kinds() == ["toggle_on"]


def test_a_loop_that_stops_with_a_backlog_leaves_it_to_the_flusher(worker):
    import asyncio

    p, sink = worker(max_bytes=8_000_000)
    big = linkedin_page(False) + b"<!--" + b"q" * (2 * PIPE_SIZE) + b"-->"

    async def submit_only() -> None:
        assert p.submit(job(False, body=big))

    asyncio.run(submit_only())  # the loop is gone before its write was due
    assert p.drain(30)
    assert sink.kinds() == ["toggle_off"]


# -- the same bytes again are not sent (Unchanged) --------------------------------------------------------------------

def test_unchanged_knows_the_same_bytes_within_the_window_and_day_only():
    from consentwatch.detection_worker import Unchanged

    u = Unchanged(window=15)
    key, body = ("https://x/settings", "GET", "text/html", ""), b"<p>" + b"a" * 1000
    day = 20_000 * 86400.0  # a UTC midnight
    assert not u.same(key, body, day + 100)  # never sent
    u.remember(key, body, day + 100)
    assert u.same(key, bytes(bytearray(body)), day + 100)  # equal bytes, another object
    assert u.same(key, body, day + 114.9)
    assert not u.same(key, body, day + 115)  # the window is over: sent again
    assert not u.same(key, body, day + 99)  # a clock going backwards
    assert not u.same(key, body[:-1] + b"b", day + 101)  # one byte differs
    assert not u.same(("https://x/settings", "POST", "text/html", ""), body, day + 101)  # another request
    u.remember(key, body, day + 86400 - 5)
    assert not u.same(key, body, day + 86400 + 1)  # a new UTC day: rules apply from dates
    u.remember(key, body, day + 100)
    u.forget()  # another frame went to the worker
    assert not u.same(key, body, day + 101)


def test_the_same_page_again_moments_later_is_not_sent_and_nothing_is_lost(worker):
    p, sink = worker()
    on, off = linkedin_page(True), linkedin_page(False)
    for i in range(10):  # a settings page reloaded every second: sent once
        assert p.submit(job(True, T0 + dt.timedelta(seconds=i), body=bytes(bytearray(on))))
    assert p.unchanged == 9
    assert p.submit(job(False, T0 + dt.timedelta(seconds=10), body=off))  # changed: sent, news
    assert p.submit(job(True, T0 + dt.timedelta(seconds=11), body=on))  # changed back: sent, news
    assert p.submit(job(True, T0 + dt.timedelta(seconds=42), body=on))  # the window is over: sent (last_seen)
    assert p.unchanged == 9
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on", "toggle_off", "toggle_on", "toggle_on"]


def test_a_page_is_sent_again_when_anything_else_reached_the_worker_in_between(worker):
    p, sink = worker()
    on, off = linkedin_page(True), linkedin_page(False)
    other = LINKEDIN_URL + "/off"
    assert p.submit(job(True, T0, body=on))
    assert p.submit((other, "text/html", off, "", T0 + dt.timedelta(seconds=1), HOST))  # off, on another URL
    assert p.submit(job(True, T0 + dt.timedelta(seconds=2), body=on))  # the same bytes as 2 s ago: news again
    fut = p.observe(LINKEDIN_URL, b"<p>nothing here</p>", T0 + dt.timedelta(seconds=3), HOST)
    assert fut.result(timeout=30) is not None
    assert p.submit(job(True, T0 + dt.timedelta(seconds=4), body=on))  # a region went in between: sent
    assert p.submit(job(True, T0 + dt.timedelta(seconds=5), body=on))  # nothing in between: not sent
    assert p.unchanged == 1
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on", "toggle_off", "toggle_on"]


def test_the_body_sent_last_is_remembered_with_its_frame_under_the_writers_lock(worker, monkeypatch):
    """Another thread's frame cannot come between a body's frame and its being remembered (it would then be left
    out next time although the worker saw something else last): both happen under the one lock."""
    p, _ = worker()
    held = []
    remember = type(p._unchanged).remember
    monkeypatch.setattr(type(p._unchanged), "remember",
                        lambda self, *a: (held.append(p._lock.locked()), remember(self, *a))[1])
    assert p.submit(job(True))
    assert held == [True]


def test_new_rules_see_a_page_sent_before_and_requests_are_always_sent(worker):
    p, sink = worker()
    pack = shipped_pack()
    pack["rules"] = [r for r in pack["rules"] if not r["id"].startswith("linkedin.")]
    p.set_rules(load_pack(pack))
    assert p.submit(job(True))
    p.set_rules(load_pack(shipped_pack()))  # LinkedIn's rule comes (back): the same page is news now
    assert p.submit(job(True, T0 + dt.timedelta(seconds=1)))
    form = (LINKEDIN_URL, "application/x-www-form-urlencoded", b"a=1", "", T0, HOST, "POST", "request")
    assert p.submit(form) and p.submit(form)
    assert p.unchanged == 0
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on"]


def test_without_skip_unchanged_every_body_is_sent(worker):
    p, sink = worker(skip_unchanged=False)
    for i in range(3):
        assert p.submit(job(True, T0 + dt.timedelta(seconds=i)))
    assert p.unchanged == 0 and p._unchanged is None
    assert p.drain(30)
    assert sink.kinds() == ["toggle_on"]
