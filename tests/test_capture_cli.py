"""`consentwatch capture --scrub/--check`, `rules test --recording`, and the proxy-side recorder with a real Watch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import capture_seeds as S
from conftest import FIXTURES, cli
from consentwatch.capture.files import read_recording
from consentwatch.capture.record import (CAPTURE_DIR, REQUEST_FILE, STALE_AFTER, CaptureClient, CaptureRecorder,
                                         read_json)
from consentwatch.pipeline import Watch


@pytest.fixture
def seeded(tmp_path) -> Path:
    return S.write_seeded(tmp_path / "raw.flow")


def test_scrub_writes_flow_and_har_and_says_what_it_removed(tmp_path, seeded):
    r = cli("capture", "--scrub", str(seeded), "--out", str(tmp_path / "shared.flow"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "wrote 6 flow(s) from public-api.wordpress.com, www.linkedin.com, www.tumblr.com, x.com" in out
    for label in ("cookies and session values", "auth header credentials", "CSRF tokens", "tokens, keys and secrets",
                  "e-mail addresses", "phone numbers", "user, account and other ids", "names and handles",
                  "query-string values", "free text outside the settings region"):
        assert label in out, label
    assert S.leftovers(out.encode()) == []  # the summary counts, it never quotes
    for name in ("shared.flow", "shared.har"):
        assert S.leftovers((tmp_path / name).read_bytes()) == []
    # the rules say on the shared files what they say on the raw recording: the page states, the X opt-out request
    assert _replayed(tmp_path / "shared.flow") == _replayed(tmp_path / "shared.har") == _replayed(seeded)
    assert set(S.EXPECTED.items()) <= _replayed(seeded)


def _replayed(path: Path) -> set[tuple[str, str]]:
    r = cli("replay", "--json", str(path))  # a scratch data dir each time: nothing carries over
    return {(f["rule_id"], f["kind"]) for f in map(json.loads, r.stdout.splitlines())}


def test_scrub_a_har_and_redact(tmp_path):
    har = S.write_seeded(tmp_path / "devtools.har")
    r = cli("capture", "--scrub", str(har), "--out", str(tmp_path / "x"), "--redact", S.BLOG)
    assert r.returncode == 0, r.stderr
    assert "words you asked to remove (--redact)" in r.stdout
    data = (tmp_path / "x.flow").read_bytes() + (tmp_path / "x.har").read_bytes()
    assert S.BLOG.encode() not in data and S.leftovers(data) == []
    assert _replayed(tmp_path / "x.flow") == _replayed(har)


def test_check_reports_kinds_and_places_never_values(tmp_path, seeded):
    r = cli("capture", "--check", str(seeded))
    assert r.returncode == 1
    assert "flow 1, request header cookie: cookie value" in r.stdout
    assert "flow 5, response body: secret field 'API_TOKEN'" in r.stdout
    assert S.leftovers(r.stdout.encode()) == []
    cli("capture", "--scrub", str(seeded), "--out", str(tmp_path / "ok"), check=True)
    r = cli("capture", "--check", str(tmp_path / "ok.flow"), str(tmp_path / "ok.har"))
    assert r.returncode == 0 and r.stdout.count("no known secret pattern") == 2


def test_committed_captures_are_clean():
    """What a maintainer runs before accepting a capture, for every capture in the repository."""
    captures = sorted((FIXTURES / "captures").rglob("*.flow")) + sorted((FIXTURES / "captures").rglob("*.har"))
    assert captures, "tests/fixtures/captures/ holds at least the example capture"
    r = cli("capture", "--check", *map(str, captures))
    assert r.returncode == 0, r.stdout
    for path in captures:
        assert S.leftovers(path.read_bytes()) == []


def test_rules_test_on_a_capture(tmp_path, seeded):
    cli("capture", "--scrub", str(seeded), "--out", str(tmp_path / "cap"), check=True)
    r = cli("rules", "test", "--recording", str(tmp_path / "cap.flow"), "-v")
    assert r.returncode == 0, r.stdout
    for rule_id in S.EXPECTED:
        assert f"PASS {rule_id}" in r.stdout
    assert "4 rule(s): 4 passed, 0 failed" in r.stdout
    r = cli("rules", "test", "linkedin.genai-training", "--recording", str(tmp_path / "cap.har"), "--expect", "toggle_on")
    assert r.returncode == 0, r.stdout
    r = cli("rules", "test", "linkedin.genai-training", "--recording", str(tmp_path / "cap.har"), "--expect", "none")
    assert r.returncode == 1 and "expected no finding, got toggle_on" in r.stdout
    r = cli("rules", "test", "github.copilot-training", "--recording", str(tmp_path / "cap.flow"))
    assert r.returncode == 1 and "the rule gives no finding on this recording" in r.stdout
    r = cli("rules", "test", "--recording", str(tmp_path / "cap.flow"), "--expect", "toggle_maybe")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown kind 'toggle_maybe'" in r.stderr


@pytest.mark.parametrize("args, message", [
    ((), "give a PLATFORM to record, or --scrub IN --out OUT, or --check FILE..."),
    (("linkedin", "--scrub", "x.flow"), "give a PLATFORM to record"),
    (("--scrub", "nope.flow", "--out", "y"), "nope.flow: cannot open"),
    (("--scrub", "nope.flow"), "--scrub needs --out FILE"),
    (("nosuchplatform",), "no rule for platform 'nosuchplatform'; known platforms: adobe,"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    r = cli("capture", *args, "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2
    assert r.stderr.startswith("consentwatch: ") and r.stderr.count("\n") == 1 and message in r.stderr


def test_not_a_recording(tmp_path):
    bad = tmp_path / "notes.har"
    bad.write_text("hello")
    r = cli("capture", "--scrub", str(bad), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "not a readable HAR file" in r.stderr and not list(tmp_path.glob("o.*"))


def test_capture_without_a_running_proxy_says_so(tmp_path):
    r = cli("capture", "linkedin", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--seconds", "1")
    assert r.returncode == 2 and "no `consentwatch run` is using" in r.stderr
    assert not (tmp_path / "d" / CAPTURE_DIR / REQUEST_FILE).exists()  # the request is withdrawn
    assert not list(tmp_path.glob("o.*"))


# -- the recorder addon, with a real Watch on a data dir ---------------------------------------------------

@pytest.fixture
def recorder(data_dir):
    watch = Watch(data_dir)
    rec = CaptureRecorder(lambda: watch, poll_every=0)
    yield rec
    if rec.session is not None:
        rec._end(rec.session, "cancelled")  # its worker process ends too
    rec.pool.shutdown(wait=True)
    watch.close()


def _settle(rec: CaptureRecorder) -> None:
    rec.pool.submit(lambda: None).result(timeout=60)  # one worker: everything queued before is done


def test_recorder_records_only_its_platform_scrubbed(recorder, data_dir):
    client = CaptureClient(data_dir, "linkedin")
    flows = S.seeded_flows()
    recorder.response(flows[0])  # before any request: not recorded
    client.start()
    recorder.check()
    _settle(recorder)
    assert client.status()["state"] == "recording"
    for f in flows:
        recorder.response(f)  # two LinkedIn flows, the others belong to other platforms
    client.stop()
    recorder.check()
    _settle(recorder)
    status = client.status()
    assert status["state"] == "done" and status["flows"] == 2 and status["hosts"] == ["www.linkedin.com"]
    assert status["removed"]["cookie"] > 0 and status["removed"]["email"] > 0
    assert S.leftovers(json.dumps(status).encode()) == []
    recorded = read_recording(client.flow_path)
    assert [f.request.method for f in recorded] == ["GET", "POST"]
    assert S.leftovers(client.flow_path.read_bytes()) == []
    # the live flows were not touched
    assert flows[0].request.headers["cookie"].startswith(f"li_at={S.COOKIE_LI_AT}")
    assert flows[0].response.headers["content-encoding"] == "gzip"
    # nothing else in the capture dir: no raw spool, ever
    assert sorted(p.name for p in client.dir.iterdir()) == sorted([REQUEST_FILE, client.status_path.name,
                                                                   client.flow_path.name])
    client.cleanup()
    assert list(client.dir.iterdir()) == []
    recorder.check()
    assert recorder.session is None


def test_in_a_group_the_recorder_takes_responses_only_while_it_records(recorder, data_dir):
    """No capture, no response hook: the group hands each response to the other parts with nothing in between
    (every flow would pay for the recorder's call otherwise); a capture switches it on, its end off again."""
    from consentwatch.assembly import AddonGroup

    class Detection:
        def __init__(self):
            self.seen = 0

        def response(self, flow):
            self.seen += 1

    detection = Detection()
    group = AddonGroup(detection, recorder)
    assert group.response == detection.response
    client = CaptureClient(data_dir, "linkedin")
    client.start()
    recorder.check()
    _settle(recorder)
    assert group.response != detection.response
    for f in S.seeded_flows():
        group.response(f)
    assert detection.seen == len(S.seeded_flows())
    client.stop()
    recorder.check()
    _settle(recorder)
    assert client.status()["flows"] == 2  # the recorder got the LinkedIn ones through the group
    assert group.response == detection.response and recorder.session is None
    group.response(S.seeded_flows()[0])
    assert detection.seen == len(S.seeded_flows()) + 1
    client.cleanup()


def test_recorder_drops_a_capture_whose_command_is_gone(recorder, data_dir):
    client = CaptureClient(data_dir, "linkedin")
    client.start()
    recorder.check()
    recorder.response(S.seeded_flows()[0])
    recorder.check(now=time.time() + STALE_AFTER + 1)  # `capture` was killed: nobody touches the request
    _settle(recorder)
    assert client.status()["state"] == "cancelled"
    assert not client.flow_path.exists() and recorder.session is None


def test_recorder_refuses_an_unknown_platform_and_a_second_capture_waits(recorder, data_dir):
    client = CaptureClient(data_dir, "myspace")
    client.start()
    recorder.check()
    _settle(recorder)
    status = client.status()
    assert status["state"] == "failed" and "no rule for platform 'myspace'" in status["error"]
    assert recorder.session is None
    client.cleanup()
    first = CaptureClient(data_dir, "x")
    first.start()
    recorder.check()
    assert CaptureClient(data_dir, "x").busy()["id"] == first.id


def test_request_file_garbage_is_ignored(recorder, data_dir):
    d = data_dir / CAPTURE_DIR
    d.mkdir()
    (d / REQUEST_FILE).write_text('{"id": "../../etc", "platform": "linkedin", "state": "recording"}')
    recorder.check()
    assert recorder.session is None
    (d / REQUEST_FILE).write_text("not json")
    recorder.check()
    assert recorder.session is None and read_json(d / REQUEST_FILE) is None
