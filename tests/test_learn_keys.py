"""Keys learned from the user's own click (detect/learn.py): a rule's switch the page eye saw flip, paired with the
boolean of a change request that changed the same way, becomes a suggestion (endpoint, key, polarity, label), and
`rules suggest` turns it into a draft `json_keys` entry. Only with discovery on; nothing else of the body is kept.

The matcher is tested as the pure functions it is, then through the Detector, the pipeline (Watch and its store),
the addon with its detection worker process, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from conftest import cli
from consentwatch.addon import ConsentWatch
from consentwatch.detect import Detector
from consentwatch.detect.learn import (
    WINDOW, ChangeRequest, Learner, Priors, SwitchChange, flags, match, reduce_request, request_flags,
)
from consentwatch.pipeline import Watch
from consentwatch.rules.model import load_pack, shipped_pack, validate_pack
from consentwatch.store.suggestions import SuggestionStore

T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
SITE = "pinterest.com"
PAGE = "https://www.pinterest.com/settings/privacy"
STATE = "https://www.pinterest.com/resource/UserSettingsResource/get/"
UPDATE = "https://www.pinterest.com/resource/UserSettingsResource/update/"
RULE = "pinterest.canvas-training"
LABEL = "Use your data to train Pinterest Canvas"
CANARY = "CANARY-7f3a9c-never-stored"


def s(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def change(before: str, after: str, at: float = 0, site: str = SITE) -> SwitchChange:
    return SwitchChange(site, RULE, "pinterest", LABEL, before, after, s(at))


def request(body: dict, priors: dict | None = None, at: float = 1, site: str = SITE) -> ChangeRequest:
    p = Priors()
    if priors is not None:
        p.update(site, flags(priors), s(at - 5))
    return reduce_request(site, "www.pinterest.com", "/api/settings", "PATCH", flags(body), p, s(at))


# -- the matcher: pure functions ---------------------------------------------------------------------------------

def test_same_way_a_field_that_flipped_with_the_switch_means_training_when_true():
    req = request({"settings": {"allow_ai_training": False, "ads": False}}, {"allow_ai_training": True, "ads": False})
    assert req.flipped == {"settings.allow_ai_training": False} and req.unknown == {}
    assert match(change("on", "off"), req) == ("settings.allow_ai_training", True)
    # and switched back on: the same key, the same polarity
    back = request({"settings": {"allow_ai_training": True, "ads": False}}, {"allow_ai_training": False})
    assert match(change("off", "on"), back) == ("settings.allow_ai_training", True)


def test_opposite_polarity_an_opt_out_field_means_training_when_false():
    req = request({"prefs": {"ai_opt_out": True}}, {"ai_opt_out": False})
    assert match(change("on", "off"), req) == ("prefs.ai_opt_out", False)
    req = request({"ai_opt_out": False}, {"ai_opt_out": True})
    assert match(change("off", "on"), req) == ("ai_opt_out", False)


def test_a_lone_boolean_with_no_known_value_counts_and_its_polarity_follows_the_switch():
    assert match(change("on", "off"), request({"settings": {"allow_ai_training": False}})) == \
        ("settings.allow_ai_training", True)
    assert match(change("on", "off"), request({"exclude_from_training": True})) == ("exclude_from_training", False)
    # two-valued words are booleans too
    assert match(change("off", "on"), request({"ai": {"training": "enabled"}})) == ("ai.training", True)


def test_wrong_site_never_matches():
    req = request({"allow_ai_training": False}, site="linkedin.com")
    assert match(change("on", "off"), req) is None


def test_too_late_or_too_early_never_matches_either_order_within_the_window_does():
    body = {"allow_ai_training": False}
    limit = WINDOW.total_seconds()
    assert match(change("on", "off", at=0), request(body, at=limit - 0.5)) is not None  # request after the click
    # (the Learner pairs a request that late only with a click reported after it: see below)
    assert match(change("on", "off", at=limit - 0.5), request(body, at=0)) is not None  # request before the page
    assert match(change("on", "off", at=0), request(body, at=limit + 1)) is None
    assert match(change("on", "off", at=limit + 1), request(body, at=0)) is None


def test_non_booleans_are_never_candidates():
    req = request({"settings": {"allow_ai_training": "maybe", "count": 5, "name": "Alex", "ratio": 0.5,
                                "tags": ["a", "b"], "nothing": None}})
    assert req.flipped == {} and req.unknown == {}
    assert match(change("on", "off"), req) is None
    # 0/1 may be a count: only when a known value shows it flipped
    assert match(change("on", "off"), request({"pi_t": 0})) is None
    assert match(change("on", "off"), request({"pi_t": 0}, {"pi_t": 1})) == ("pi_t", True)


def test_several_booleans_changed_only_the_one_that_flipped_the_same_way_counts():
    before = {"allow_ai_training": True, "email_digest": False, "ads": True}
    req = request({"allow_ai_training": False, "email_digest": True, "ads": True}, before)
    assert req.flipped == {"allow_ai_training": False, "email_digest": True}
    assert match(change("on", "off"), req) == ("allow_ai_training", True)
    # two flipped the same way: which one is the switch is unknowable, so nothing
    req = request({"allow_ai_training": False, "ads": False}, before)
    assert match(change("on", "off"), req) is None
    # several booleans, none with a known value: nothing either
    assert match(change("on", "off"), request({"a_flag": False, "b_flag": True})) is None
    # nothing changed at all (the app saved the whole form): nothing
    assert match(change("on", "off"), request(before, before)) is None


def test_booleans_in_lists_nested_json_and_forms():
    assert flags({"variables": json.dumps({"input": {"allowXaiDataSharing": False}})}) == \
        {("variables", "input", "allowXaiDataSharing"): (False, True)}
    assert flags({"items": [{"on": True}, {"on": False}], "keep": [{"x": True}]}) == {("keep", "x"): (True, True)}
    assert request_flags("settings%5Bai_training%5D=off&csrf=" + CANARY, "application/x-www-form-urlencoded") == \
        {("settings", "ai_training"): (False, True)}
    assert request_flags("not json {", "application/json") == {}
    # keys a rule could not name, and keys that look like ids (an account's), are not read
    assert flags({"a.b": True, "with space": False, "ok_key": True, "users": {"u_48213": {"ai": False}}}) == \
        {("ok_key",): (True, True)}


def test_a_switch_that_did_not_change_is_no_event():
    assert match(change("on", "on"), request({"allow_ai_training": True})) is None


# -- through the Detector: page eye, proxy and the learner in one -----------------------------------------------

def region(on: bool) -> bytes:
    return (f'<div class="SettingRow"><span id="l">{LABEL}</span><p>Signed in as {CANARY}</p>'
            f'<button role="switch" aria-checked="{str(on).lower()}" aria-labelledby="l"></button></div>').encode()


def settings_json(on: bool) -> bytes:
    return json.dumps({"resource_response": {"data": {"settings": {"allow_ai_training": on, "ads": False},
                                                      "user": {"name": CANARY}}}}).encode()


def patch_body(on: bool) -> bytes:
    return json.dumps({"settings": {"allow_ai_training": on, "ads": False}, "client_note": CANARY}).encode()


def feed(d: Detector, request_first: bool, gap: float = 1.0, body: bytes | None = None, host: str = "www.pinterest.com"):
    """The app loads its state, the page eye reads the switch ON, the user flips it: the app's PATCH and the
    page eye's OFF `gap` seconds apart, in either order. Returns what each step learned."""
    learned = []
    d.detect(STATE, "application/json", settings_json(True), observed_at=s(0))
    learned += d.detect(PAGE, "text/html", region(True), observed_at=s(1), seen_by="page").learned
    steps = [
        lambda at: d.detect(UPDATE.replace("www.pinterest.com", host) + "?csrf=" + CANARY, "application/json",
                            body or patch_body(False), observed_at=s(at), method="PATCH", side="request",
                            rules=()).learned,
        lambda at: d.detect(PAGE, "text/html", region(False), observed_at=s(at), seen_by="page").learned,
    ]
    if not request_first:
        steps.reverse()
    learned += steps[0](10)
    learned += steps[1](10 + gap)
    return learned


@pytest.fixture
def rules():
    return load_pack(shipped_pack())


@pytest.mark.parametrize("request_first", [True, False], ids=["request-then-page", "page-then-request"])
def test_the_detector_learns_the_key_in_either_order(rules, request_first):
    [k] = feed(Detector(rules, learn=True), request_first)
    assert k.to_dict() == {"rule_id": RULE, "platform": "pinterest", "host": "www.pinterest.com",
                           "path": "/resource/UserSettingsResource/update/", "method": "PATCH",
                           "key": "settings.allow_ai_training", "training_when": True, "label": LABEL,
                           "seen": s(11).isoformat(timespec="seconds")}
    assert CANARY not in json.dumps(k.to_dict())


def test_a_request_long_after_a_change_waits_for_the_click_the_page_eye_reports_next(rules):
    """The page loaded with the switch in another state than last seen (changed elsewhere): that is no click. The
    user's click then sends its request before the page eye reports it: the request pairs with the click."""
    d = Detector(rules, learn=True)
    d.detect(PAGE, "text/html", region(False), observed_at=s(0), seen_by="page")
    d.detect(STATE, "application/json", settings_json(True), observed_at=s(59))
    assert d.detect(PAGE, "text/html", region(True), observed_at=s(60), seen_by="page").learned == ()  # reloaded
    assert d.detect(UPDATE, "application/json", patch_body(False), observed_at=s(66), method="PATCH",
                    side="request").learned == ()
    [k] = d.detect(PAGE, "text/html", region(False), observed_at=s(67), seen_by="page").learned
    assert (k.key, k.training_when) == ("settings.allow_ai_training", True)


def test_the_detector_learns_nothing_too_late_on_another_site_or_with_discovery_off(rules):
    assert feed(Detector(rules, learn=True), True, gap=WINDOW.total_seconds() + 2) == []
    # linkedin is a rule host too, but another site than the Pinterest page
    assert feed(Detector(rules, learn=True), True, host="www.linkedin.com") == []
    off = Detector(rules)  # a Detector learns only when asked (Watch asks with discovery on: see below)
    assert off.learner is None and feed(off, True) == []


def test_a_field_the_rule_reads_already_is_not_suggested_again(rules):
    """X's rule reads allowXaiDataSharing in the opt-out mutation: a click there teaches nothing new."""
    d = Detector(rules, learn=True)
    x_page = "https://x.com/settings/grok_settings"
    label = "Allow your public data as well as your interactions, inputs, and results with Grok and xAI to be used for training and fine-tuning"

    def x_region(on: bool) -> bytes:
        return (f'<label><input type="checkbox"{" checked" if on else ""}><span>{label}</span></label>').encode()

    first = d.detect(x_page, "text/html", x_region(True), observed_at=s(0), seen_by="page")
    assert [f.rule_id for f in first.findings] == ["x.grok-training"]
    mutation = "https://x.com/i/api/graphql/KEfCyU0XXJQ8AZOxiMWuSQ/XaiDataSharingSettingsMutation"
    body = json.dumps({"variables": {"allowXaiDataSharing": False}}).encode()
    assert d.detect(mutation, "application/json", body, observed_at=s(1), method="POST", side="request").learned == ()
    assert d.detect(x_page, "text/html", x_region(False), observed_at=s(2), seen_by="page").learned == ()
    # the same click with a field the rule does not know yet is learned
    other = json.dumps({"variables": {"grokTrainingAllowed": True}}).encode()
    assert d.detect(x_page, "text/html", x_region(True), observed_at=s(3), seen_by="page").learned == ()
    [k] = d.detect(mutation, "application/json", other, observed_at=s(4), method="POST", side="request").learned
    assert (k.rule_id, k.key, k.training_when) == ("x.grok-training", "variables.grokTrainingAllowed", True)


def test_the_learner_is_bounded():
    learner = Learner({})
    for i in range(500):
        learner.request(f"https://www.pinterest.com/api/{i}", "POST", "application/json",
                        json.dumps({f"flag_{i}": True}), s(i))
    assert len(learner._requests) <= 32
    big = {f"k{i}": i % 2 == 0 for i in range(20_000)}
    learner.response("www.pinterest.com", big, s(0))
    assert sum(len(v) for v in learner.priors._sites.values()) <= 8192 + 500


# -- the pipeline and its store: what is kept, and nothing when discovery is off ---------------------------------

def run_click(watch: Watch, t: float = 0) -> None:
    """The same click through Watch: the proxy's jobs by `process`, the page eye's by `detect` + `record`."""
    watch.process(STATE, "application/json", settings_json(True), observed_at=s(t), host="www.pinterest.com",
                  method="GET")
    for at, on in ((t + 1, True), (t + 11, False)):
        if not on:
            watch.process(UPDATE + "?csrf=" + CANARY, "application/json", patch_body(False), observed_at=s(t + 10),
                          host="www.pinterest.com", method="PATCH", side="request")
        obs = watch.detect(PAGE, "text/html", region(on), observed_at=s(at), host="www.pinterest.com", seen_by="page")
        watch.record(PAGE, obs, "www.pinterest.com")


def every_byte(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def test_the_store_keeps_endpoint_key_polarity_and_label_only(data_dir):
    watch = Watch(data_dir, discover=True)
    try:
        run_click(watch)
        run_click(watch, 60)  # the page loaded again, the same click: one entry
    finally:
        watch.close()
    store = SuggestionStore(data_dir)
    try:
        [k] = store.list_keys()
        assert store.list() == []
    finally:
        store.close()
    assert {x: k[x] for x in k if x not in ("id", "first_seen")} == {
        "rule_id": RULE, "platform": "pinterest", "host": "www.pinterest.com",
        "path": "/resource/UserSettingsResource/update/", "method": "PATCH", "key": "settings.allow_ai_training",
        "training_when": True, "label": LABEL}
    raw = every_byte(data_dir)
    for never in (CANARY.encode(), b"client_note", b"csrf", b'"ads"', b"Signed in"):
        assert never not in raw, never


def test_nothing_is_stored_when_discovery_is_off(data_dir):
    watch = Watch(data_dir, discover=False)
    try:
        run_click(watch)
    finally:
        watch.close()
    assert not (data_dir / "suggestions.json").exists()
    assert b"allow_ai_training" not in every_byte(data_dir) and CANARY.encode() not in every_byte(data_dir)


# -- the addon: the request hook, the detection worker process and the page eye's frame -------------------------

def flow(method: str, url: str, body: bytes, response: bytes = b"{}") -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request = http.Request.make(method, url, body, {"content-type": "application/json",
                                                     "cookie": "session=" + CANARY})
    f.response = http.Response.make(200, response, {"content-type": "application/json"})
    return f


@pytest.mark.parametrize("discover", [True, False], ids=["discover", "default"])
def test_through_the_addon_and_its_worker_process(data_dir, discover):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_discover=discover)
        assert a.offload is not None
        # the learner keeps recent answers for a while: with discovery on, the same answer again is sent too
        assert (a.offload._unchanged is None) == discover
        get = flow("GET", STATE, b"", settings_json(True))
        a.request(get)
        a.response(get)
        a._drain()

        def page_eye(on: bool) -> None:  # what POST /v1/observations does (api/observations.py)
            fut = a.offload.observe(PAGE, region(on), dt.datetime.now(dt.timezone.utc), "www.pinterest.com")
            a.watch.record(PAGE, fut.result(timeout=30), "www.pinterest.com")

        page_eye(True)
        patch = flow("PATCH", UPDATE + "?csrf=" + CANARY, patch_body(False))
        patch.request.timestamp_start = dt.datetime.now(dt.timezone.utc).timestamp()
        a.request(patch)
        a.response(patch)
        a._drain()
        page_eye(False)
        a._drain()
        [w] = a.watch.state.list_warnings("all")
        assert (w["rule_id"], w["state"]) == (RULE, "off")  # the page eye's own work goes on as before
    store = SuggestionStore(data_dir)
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if discover:
        assert [(k["key"], k["path"], k["training_when"]) for k in keys] == \
            [("settings.allow_ai_training", "/resource/UserSettingsResource/update/", True)]
    else:
        assert keys == []
    assert CANARY.encode() not in every_byte(data_dir)


def test_with_discovery_the_request_hook_reads_change_requests_to_every_rule_host_and_no_other(data_dir):
    a = ConsentWatch()
    with taddons.context(a) as tctx:
        for discover, expected in ((False, 0), (True, 1)):
            tctx.configure(a, consentwatch_data_dir=str(data_dir), consentwatch_detect_process=False,
                           consentwatch_discover=discover)
            a.inspected = 0
            a.request(flow("PATCH", UPDATE, patch_body(False)))  # pinterest's rule reads no request
            a.request(flow("GET", UPDATE, b""))
            a.request(flow("PATCH", "https://bank.example/transfer", patch_body(False)))
            a._drain()
            assert a.inspected == expected, discover


# -- `rules suggest`: a draft json_keys entry for the rule --------------------------------------------------------

def test_rules_suggest_drafts_the_rule_with_its_learned_key(data_dir, tmp_path):
    watch = Watch(data_dir, discover=True)
    try:
        run_click(watch)
    finally:
        watch.close()
    out = tmp_path / "drafts.json"
    r = cli("rules", "suggest", "--data-dir", str(data_dir), "--out", str(out))
    assert r.returncode == 0, r.stderr
    pack = json.loads(out.read_text())
    assert validate_pack(pack) == []
    [rule] = [x for x in pack["rules"] if x["id"] == RULE]
    entry = {"key": "allow_ai_training", "training_when": True, "in": "request",
             "paths": ["/resource/UserSettingsResource/update/"], "methods": ["PATCH"], "within": ["settings"]}
    assert rule["setting"]["json_keys"] == [entry]
    assert rule["min_engine"] == 2
    assert any("learned from a click" in v["where"] for v in rule["seen_via"])
    assert "learned: pinterest.canvas-training: PATCH www.pinterest.com/resource/UserSettingsResource/update/ " \
           "settings.allow_ai_training (true means training on)" in r.stderr
    assert json.dumps(entry) in r.stderr
    # the draft rule reads the next opt-out request by itself
    drafted = load_pack(pack)
    obs = Detector(drafted, discover=False).detect(UPDATE, "application/json", patch_body(False), method="PATCH",
                                                   side="request")
    assert [(f.rule_id, f.state) for f in obs.findings] == [(RULE, "off")]
    # and `rules diff` shows a maintainer exactly that change
    d = cli("rules", "diff", "@installed", str(out), "--data-dir", str(data_dir))
    assert d.returncode == 1 and RULE in d.stdout


def test_rules_suggest_leaves_out_a_key_seen_with_both_polarities(data_dir):
    store = SuggestionStore(data_dir)
    base = {"rule_id": RULE, "platform": "pinterest", "host": "www.pinterest.com", "path": "/api/s",
            "method": "POST", "key": "flag", "label": LABEL, "seen": s(0).isoformat()}
    try:
        assert store.add_key({**base, "training_when": True})
        assert not store.add_key({**base, "training_when": True})  # a repeat
        assert store.add_key({**base, "training_when": False})
    finally:
        store.close()
    r = cli("rules", "suggest", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rules"] == []
    assert "seen with both polarities; left out" in r.stderr
