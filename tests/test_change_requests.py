"""The user's own change requests, end to end: the addon's request hook (in the detection worker process and in a
thread), `consentwatch replay` of a recorded opt-out, and what is kept of a request body (nothing).

X's opt-out mutation is the case that needs it: its answer does not echo the new value, so only the request body
tells that the user switched training off. A warning raised from the settings query is resolved at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from conftest import FIXTURES, cli
from consentwatch.addon import MAX_REQUEST_BYTES, ConsentWatch
from consentwatch.store.state import StateStore

QUERY = "https://x.com/i/api/graphql/Xq3n1dRwq0bGfJXsmJPeXQ/GrokSettingsScreenQuery?variables=%7B%7D&trk=SECRET_QUERY_TOKEN"
MUTATION = "https://x.com/i/api/graphql/KEfCyU0XXJQ8AZOxiMWuSQ/XaiDataSharingSettingsMutation?trk=SECRET_QUERY_TOKEN"
ON = json.dumps({"data": {"user_preferences": {"allow_xai_data_sharing": True, "allow_grok_memory": False}}}).encode()
OPT_OUT = json.dumps({"variables": {"allowXaiDataSharing": False}, "queryId": "KEfCyU0XXJQ8AZOxiMWuSQ"}).encode()
ECHOLESS = b'{"data":{"user_preferences_put":"Done"}}'


def query_flow() -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request = http.Request.make("GET", QUERY)
    f.response = http.Response.make(200, ON, {"content-type": "application/json"})
    return f


def mutation_flow(body: bytes = OPT_OUT, method: str = "POST", url: str = MUTATION) -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request = http.Request.make(method, url, body, {"content-type": "application/json", "cookie": "auth_token=SECRET_COOKIE_VALUE"})
    f.response = http.Response.make(200, ECHOLESS, {"content-type": "application/json"})
    return f


def warnings(addon: ConsentWatch, status: str = "all") -> list[tuple[str, str]]:
    return [(w["rule_id"], w["status"]) for w in addon.watch.state.list_warnings(status)]


@pytest.mark.parametrize("in_process", [True, False], ids=["worker-process", "thread"])
def test_the_opt_out_request_resolves_the_warning_at_once(data_dir, in_process):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_process=in_process)
        assert (a.offload is not None) == in_process
        q = query_flow()
        a.request(q)  # a GET: never read
        a.response(q)
        a._drain()
        assert warnings(a) == [("x.grok-training", "active")]
        m = mutation_flow()
        before = m.get_state()
        a.request(m)  # the body is read here, before the platform answers
        a._drain()
        assert warnings(a) == [("x.grok-training", "resolved")]
        a.response(m)  # the answer does not echo the value: it changes nothing
        a._drain()
        assert warnings(a) == [("x.grok-training", "resolved")]
        assert m.get_state() == before  # not a byte of the flow changed
        [w] = a.watch.state.list_warnings("all")
        assert w["state"] == "off"


def test_the_request_hook_reads_only_change_requests_to_rules_that_read_requests(data_dir, monkeypatch):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_process=False)
        seen = []
        monkeypatch.setattr(a.watch, "process", lambda *job: seen.append(job))
        a.request(mutation_flow(method="GET"))
        a.request(mutation_flow(url="https://bank.example/transfer"))
        a.request(mutation_flow(url="https://www.linkedin.com/voyager/api/settings"))  # a rule host whose rule reads no request
        a.request(mutation_flow(body=b""))
        a.request(mutation_flow(body=b" " * (MAX_REQUEST_BYTES + 1)))  # an upload, not a settings change
        a._drain()
        assert seen == [] and a.inspected == 0
        for method in ("POST", "PUT", "PATCH"):
            a.request(mutation_flow(method=method))
        a._drain()
        assert [(job[6], job[7]) for job in seen] == [("POST", "request"), ("PUT", "request"), ("PATCH", "request")]
        assert all("?" in job[0] for job in seen)  # the URL goes to detection whole; findings keep only the path


def test_request_bodies_and_query_strings_are_never_stored(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir))
        q = query_flow()
        a.response(q)
        a.request(mutation_flow())
        a._drain()
    # everything written but the rule database (which names the keys it reads)
    stored = "".join(p.read_text("utf-8", "replace") for p in data_dir.rglob("*") if p.is_file() and p.name != "rules.json"
                     and p.suffix != ".pem")
    assert "x.grok-training" in stored
    for secret in ("allowXaiDataSharing", "queryId", "variables", "SECRET_QUERY_TOKEN", "SECRET_COOKIE_VALUE"):
        assert secret not in stored


def _state(data_dir: Path) -> list[tuple[str, str, str]]:
    store = StateStore(data_dir)
    try:
        return [(w["rule_id"], w["status"], w["state"]) for w in store.list_warnings("all")]
    finally:
        store.close()


def test_replay_of_a_recorded_opt_out_resolves_the_warning(data_dir):
    # one recording: the settings screen, the query (box ticked), the user's mutation (box unticked)
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(FIXTURES / "x" / "session-opt-out.flow"))
    assert r.returncode == 0, r.stderr
    found = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(f["rule_id"], f["kind"], f["seen_by"]) for f in found] == [
        ("x.grok-training", "toggle_on", "network"), ("x.grok-training", "toggle_off", "network")]
    assert all("?" not in f["url"] for f in found)
    assert found[1]["url"] == "https://x.com/i/api/graphql/KEfCyU0XXJQ8AZOxiMWuSQ/XaiDataSharingSettingsMutation"
    assert _state(data_dir) == [("x.grok-training", "resolved", "off")]


def test_replay_across_runs_raises_then_resolves(data_dir):
    r = cli("replay", "--data-dir", str(data_dir), str(FIXTURES / "x" / "graphql-on.flow"))
    assert r.returncode == 0 and "toggle_on" in r.stdout, r.stderr
    assert _state(data_dir) == [("x.grok-training", "active", "on")]
    r = cli("replay", "--data-dir", str(data_dir), str(FIXTURES / "x" / "mutation-off.flow"))
    assert r.returncode == 0 and "toggle_off" in r.stdout, r.stderr
    assert _state(data_dir) == [("x.grok-training", "resolved", "off")]
    # and the user changing their mind is a change too: ticking it again raises it again
    r = cli("replay", "--data-dir", str(data_dir), str(FIXTURES / "x" / "mutation-on.flow"))
    assert r.returncode == 0 and "toggle_reenabled" in r.stdout, r.stdout + r.stderr
    assert _state(data_dir) == [("x.grok-training", "active", "on")]
