"""The network eye and the controls that are not checkboxes, detector by detector.

- JSON keys scoped to endpoints (`paths`, `methods`), to the keys above them (`within`) and to their siblings
  (`only_if`); null and absent mean "not chosen yet"; the fallback scan of embedded JSON keeps the scoping.
- The user's own change requests: request-side keys only, JSON and form bodies, GraphQL variables sent as a
  string; response-side keys never read a request and the other way round.
- Choice controls (`choices`): <select>, listbox, menu, menu button, radio groups with and without a container;
  hidden or disabled ones are not choices; a choice that names both meanings is no verdict.
- Controls whose name carries the state (`name_states`).
- `seen_by` on every finding; the shipped rules on the real shapes (OpenAI's voice/video/codex keys are not warned).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from consentwatch.detect import Detector
from consentwatch.rules import load_pack, shipped_pack
from consentwatch.rules.model import PackError, validate_pack
from rules_support import one_rule, one_rule_pack

WHEN = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc)
HTML = "text/html; charset=utf-8"
JSON = "application/json"
SHIPPED = load_pack(shipped_pack())
EX = "https://www.example.org"


def kinds_of(rules, url: str, body, content_type: str = JSON, **kw) -> list[str]:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return sorted(f.kind for f in Detector(rules).detect(url, content_type, body, observed_at=WHEN, **kw).findings)


def pack_with(**setting):
    return load_pack(one_rule_pack(setting))


# --- endpoints --------------------------------------------------------------------------------------------

SCOPED = pack_with(json_keys=[{"key": "grove_enabled", "training_when": True, "paths": ["/api/account", "/api/orgs/*/settings"]}])


@pytest.mark.parametrize("path,expect", [
    ("/api/account", ["toggle_on"]),
    ("/api/account/", ["toggle_on"]),  # a trailing slash is the same endpoint
    ("/api/orgs/7e8f/settings", ["toggle_on"]),  # * within one segment
    ("/api/orgs/7e8f/members/settings", []),  # ... never across segments
    ("/api/accounts", []),  # the whole path must match: not a prefix
    ("/api/account/avatar", []),
    ("/api/claude_code_grove", []),  # the rollout flag of the same name
])
def test_keys_are_read_only_on_their_endpoints(path: str, expect: list[str]) -> None:
    assert kinds_of(SCOPED, EX + path, {"grove_enabled": True}) == expect


def test_methods_restrict_the_response_side() -> None:
    rules = pack_with(json_keys=[{"key": "ai_ok", "training_when": True, "methods": ["GET"]}])
    assert kinds_of(rules, EX + "/s", {"ai_ok": True}, method="GET") == ["toggle_on"]
    assert kinds_of(rules, EX + "/s", {"ai_ok": True}, method="DELETE") == []
    assert kinds_of(rules, EX + "/s", {"ai_ok": True}) == ["toggle_on"]  # the method unknown (page eye): not filtered


def test_double_star_crosses_segments() -> None:
    rules = pack_with(json_keys=[{"key": "ai_ok", "training_when": True, "paths": ["/i/api/graphql/**"]}])
    assert kinds_of(rules, EX + "/i/api/graphql/abc/Anything", {"ai_ok": True}) == ["toggle_on"]
    assert kinds_of(rules, EX + "/i/api/rest/abc", {"ai_ok": True}) == []


# --- within / only_if / null --------------------------------------------------------------------------------

WITHIN = pack_with(json_keys=[{"key": "grove_enabled", "training_when": True, "within": ["settings", "a.b"]}])


@pytest.mark.parametrize("doc,expect", [
    ({"settings": {"grove_enabled": True}}, ["toggle_on"]),
    ({"account": {"settings": {"grove_enabled": False}}}, ["toggle_off"]),
    ({"accounts": [{"settings": {"grove_enabled": True}}]}, ["toggle_on"]),
    ({"a": {"b": {"grove_enabled": True}}}, ["toggle_on"]),  # a dotted path matches the end of the trail
    ({"b": {"grove_enabled": True}}, []),
    ({"features": {"grove_notice": {"grove_enabled": True}}}, []),  # a feature flag elsewhere in a bootstrap
    ({"grove_enabled": True}, []),
])
def test_within(doc, expect) -> None:
    assert kinds_of(WITHIN, EX + "/x", doc) == expect


PUBLIC = {"blog_public": [1], "wpcom_public_coming_soon": [0, False, None]}
ONLY_IF = pack_with(json_keys=[{"key": "opt_out", "training_when": False, "only_if": PUBLIC}])


@pytest.mark.parametrize("settings,expect", [
    ({"blog_public": 1, "opt_out": False}, ["toggle_on"]),
    ({"blog_public": "1", "opt_out": False}, ["toggle_on"]),  # PHP APIs stringify numbers
    ({"blog_public": 1.0, "opt_out": "false"}, ["toggle_on"]),
    ({"blog_public": 1, "opt_out": True}, ["toggle_off"]),
    ({"blog_public": 1, "wpcom_public_coming_soon": 0, "opt_out": False}, ["toggle_on"]),
    ({"blog_public": 1, "wpcom_public_coming_soon": None, "opt_out": False}, ["toggle_on"]),  # null accepted
    ({"blog_public": 1, "wpcom_public_coming_soon": 1, "opt_out": False}, []),  # coming soon: not shared
    ({"blog_public": 0, "opt_out": False}, []),  # no-index
    ({"blog_public": -1, "opt_out": False}, []),  # private
    ({"blog_public": "-1", "opt_out": True}, []),  # private says nothing either way
    ({"blog_public": True, "opt_out": False}, []),  # true is not 1
    ({"opt_out": False}, []),  # the sibling that must be there is absent
    ({"blog_public": 1, "opt_out": None}, []),
    ({"blog_public": 1}, []),
])
def test_only_if(settings, expect) -> None:
    assert kinds_of(ONLY_IF, EX + "/s", {"ID": 1, "settings": settings}) == expect


def test_only_if_reads_siblings_in_the_same_object_only() -> None:
    doc = {"blog_public": 1, "settings": {"opt_out": False}}
    assert kinds_of(ONLY_IF, EX + "/s", doc) == []


@pytest.mark.parametrize("embedded,expect", [
    ('<script>window.S={"site":{"blog_public":1,"opt_out":false}}</script>', ["toggle_on"]),
    ('<script>window.S={"site":{"blog_public":-1,"opt_out":false}}</script>', []),
    ('<code>{&quot;blog_public&quot;:1,&quot;opt_out&quot;:false}</code>', ["toggle_on"]),
    ('<code>{&quot;blog_public&quot;:0,&quot;opt_out&quot;:false}</code>', []),
    ('<script>self.__next_f.push([1,"5:{\\"blog_public\\":1,\\"opt_out\\":false}"])</script>', ["toggle_on"]),
    ('<script>var s = {"opt_out": false, "blog_public": 1 </script>', []),  # the object never closes: unreadable
])
def test_only_if_in_state_embedded_in_a_page(embedded: str, expect: list[str]) -> None:
    assert kinds_of(ONLY_IF, EX + "/settings", f"<html><body>{embedded}</body></html>", HTML) == expect


def test_within_in_state_embedded_in_a_page() -> None:
    body = '<html><script>window.S={"account":{"settings":{"grove_enabled":true}},"flags":{"grove_enabled":true}}</script></html>'
    assert kinds_of(WITHIN, EX + "/", body, HTML) == ["toggle_on"]
    body = '<html><script>window.S={"flags":{"grove_enabled":true}}</script></html>'
    assert kinds_of(WITHIN, EX + "/", body, HTML) == []


def test_truncated_json_keeps_the_scoping() -> None:
    # too big for the limit or cut in transfer: the scan reads the pair, and for only_if the object around it
    cut = b'{"ID":1,"settings":{"blog_public":1,"opt_out":false},"more":[1,2,'
    assert kinds_of(ONLY_IF, EX + "/s", cut) == ["toggle_on"]
    cut = b'{"ID":1,"settings":{"blog_public":1,"opt_out":false,"more":[1,2,'
    assert kinds_of(ONLY_IF, EX + "/s", cut) == []  # its object never closes: siblings unknown, no guess


# --- change requests ----------------------------------------------------------------------------------------

REQ = pack_with(json_keys=[
    {"key": "allowXaiDataSharing", "training_when": True, "in": "request", "paths": ["/graphql/**"]},
    {"key": "allow_xai_data_sharing", "training_when": True, "paths": ["/graphql/**"], "within": ["user_preferences"]},
])
MUTATION = EX + "/graphql/KEfCyU0XXJQ8AZOxiMWuSQ/XaiDataSharingSettingsMutation"


@pytest.mark.parametrize("body,ctype,expect", [
    ({"variables": {"allowXaiDataSharing": False}, "queryId": "KEfCyU0XXJQ8AZOxiMWuSQ"}, JSON, ["toggle_off"]),
    ({"variables": {"allowXaiDataSharing": True}, "queryId": "KEfCyU0XXJQ8AZOxiMWuSQ"}, JSON, ["toggle_on"]),
    ({"variables": json.dumps({"allowXaiDataSharing": False}), "queryId": "q"}, JSON, ["toggle_off"]),  # variables as a string
    ([{"variables": {"allowXaiDataSharing": False}}], JSON, ["toggle_off"]),  # a batch
    ({"variables": {"allowXaiDataSharing": None}}, JSON, []),
    ({"variables": {"allow_xai_data_sharing": False}}, JSON, []),  # the response-side name is not read in a request
    ("variables%5BallowXaiDataSharing%5D=false&queryId=q", "application/x-www-form-urlencoded", ["toggle_off"]),
    ("allowXaiDataSharing=true", "application/x-www-form-urlencoded; charset=UTF-8", ["toggle_on"]),
    ("allowXaiDataSharing=true", "", ["toggle_on"]),  # unlabelled form data is sniffed
    ("not json, not a form", "text/plain", []),
])
def test_change_request_bodies(body, ctype, expect) -> None:
    assert kinds_of(REQ, MUTATION, body, ctype, method="POST", side="request") == expect


def test_request_and_response_sides_stay_apart() -> None:
    answer = {"data": {"user_preferences": {"allow_xai_data_sharing": False}, "allowXaiDataSharing": True}}
    assert kinds_of(REQ, MUTATION, answer, method="POST") == ["toggle_off"]  # the response: response-side key only
    assert kinds_of(REQ, MUTATION, answer, method="POST", side="request") == ["toggle_on"]  # the request: request key only


@pytest.mark.parametrize("method,expect", [("POST", ["toggle_off"]), ("PUT", ["toggle_off"]), ("PATCH", ["toggle_off"]), ("GET", [])])
def test_only_change_methods_are_read(method: str, expect: list[str]) -> None:
    body = {"variables": {"allowXaiDataSharing": False}}
    assert kinds_of(REQ, MUTATION, body, method=method, side="request") == expect


def test_request_rules_are_only_the_rules_with_request_keys() -> None:
    assert [r.id for r in SHIPPED.request_rules_for("x.com")] == ["x.grok-training"]
    assert [r.id for r in SHIPPED.request_rules_for("claude.ai")] == ["anthropic.claude-training"]
    assert [r.id for r in SHIPPED.request_rules_for("public-api.wordpress.com")] == ["wordpress.third-party-sharing"]
    assert SHIPPED.request_rules_for("www.linkedin.com") == ()  # no request-side key: requests are never decoded
    assert SHIPPED.request_rules_for("bank.example") == ()


def test_a_request_body_is_never_read_by_the_page_detectors() -> None:
    rules = pack_with(labels=["Use my posts to train AI"], checked_means="training",
                      json_keys=[{"key": "ai_ok", "training_when": True, "in": "request"}])
    form_page = '<html><body><label><input type="checkbox" checked> Use my posts to train AI</label></body></html>'
    assert kinds_of(rules, EX + "/settings", form_page, HTML, method="POST", side="request") == []


def test_request_validation() -> None:
    bad = one_rule({"json_keys": [{"key": "ai_ok", "training_when": True, "in": "request", "methods": ["GET"]}]})
    assert any("POST, PUT or PATCH" in e for e in validate_pack({"format": 1, "version": "t", "rules": [bad]}))
    bad = one_rule({"json_keys": [{"key": "ai_ok", "training_when": True, "only_if": {"ai_ok": [1]}}]})
    assert any("its own condition" in e for e in validate_pack({"format": 1, "version": "t", "rules": [bad]}))
    bad = one_rule({"json_keys": [{"key": "ai_ok", "training_when": True, "paths": ["/a/**/b/**"]}]})
    assert any("json_keys/0/paths" in e for e in validate_pack({"format": 1, "version": "t", "rules": [bad]}))


# --- choices ---------------------------------------------------------------------------------------------------

LABEL = "Allow GitHub to use my data for AI model training"
GH = "https://github.com/settings/copilot/features"


def gh(inner: str) -> str:
    other = ('<div><strong>Copilot in GitHub.com</strong><select aria-label="Copilot in GitHub.com">'
             '<option selected>Enabled</option><option>Disabled</option></select></div>')
    return f"<!DOCTYPE html><html><body><main><form>{other}{inner}</form></main></body></html>"


def select(picked: str | None, extra: str = "") -> str:
    opts = "".join(f'<option value="{v.lower()}"{" selected" if v == picked else ""}>{v}</option>' for v in ("Enabled", "Disabled"))
    return f'<div><label for="mt">{LABEL}</label><select id="mt"{extra}>{opts}</select></div>'


@pytest.mark.parametrize("inner,expect", [
    (select("Enabled"), ["toggle_on"]),
    (select("Disabled"), ["toggle_off"]),
    (select(None), ["toggle_on"]),  # nothing selected: a browser shows the first option
    (select("Disabled", ' disabled'), []),  # a disabled control is not a choice
    (select("Enabled", ' hidden'), []),
    (f'<div><span>{LABEL}</span><select><option selected>Disabled</option><option>Enabled</option></select></div>', ["toggle_off"]),  # adjacent text
    (f'<div role="listbox" aria-label="{LABEL}"><div role="option" aria-selected="false">Enabled</div>'
     f'<div role="option" aria-selected="true">Disabled</div></div>', ["toggle_off"]),
    (f'<span id="l">{LABEL}</span><ul role="menu" aria-labelledby="l"><li role="menuitemradio" aria-checked="true">Enabled</li>'
     f'<li role="menuitemradio" aria-checked="false">Disabled</li></ul>', ["toggle_on"]),
    (f'<span id="l">{LABEL}</span><button aria-haspopup="true" aria-labelledby="l b"><span id="b">Disabled</span></button>', ["toggle_off"]),
    (f'<label id="l">{LABEL}</label><div role="combobox" aria-labelledby="l" aria-expanded="false">Enabled</div>', ["toggle_on"]),
    # an older Primer menu: <details> with a <summary> that shows the value, named only by the text beside it
    (f'<div class="Box-row"><div class="flex-auto"><strong>{LABEL}</strong><p class="note">Allow GitHub, its affiliates and third '
     f'parties to use my data.</p></div><details class="select-menu"><summary class="btn" aria-haspopup="menu">Disabled</summary>'
     f'<details-menu role="menu"><button role="menuitemradio" aria-checked="false">Enabled</button>'
     f'<button role="menuitemradio" aria-checked="true">Disabled</button></details-menu></details></div>', ["toggle_off"]),
    (f'<div><label for="mt">{LABEL}</label><select id="mt"><option selected>Enabled (recommended)</option><option>Disabled</option></select></div>',
     ["toggle_on"]),  # the option text holds the choice as whole words
    (f'<div><label for="mt">{LABEL}</label><select id="mt"><option selected>Enabled or Disabled</option></select></div>', []),  # both: no guess
    (f'<div><label for="mt">{LABEL}</label><select id="mt"><option selected>Choose…</option><option>Enabled</option></select></div>', []),
    ('<div><label for="mt">Something else</label><select id="mt"><option selected>Enabled</option></select></div>', []),
])
def test_github_dropdown(inner: str, expect: list[str]) -> None:
    assert kinds_of(SHIPPED, GH, gh(inner), HTML) == expect


MEDIUM = "https://medium.com/me/settings/account"


def radios(picked: str | None, container: bool = True, role: bool = False) -> str:
    def one(value: str, text: str) -> str:
        if role:
            return f'<div role="radio" aria-checked="{"true" if value == picked else "false"}">{text}</div>'
        c = " checked" if value == picked else ""
        return f'<label><input type="radio" name="ai" value="{value}"{c}> <span>{text}</span></label>'
    body = one("MAX", "Prioritize maximum reach (Default)") + one("MIN", "Minimize third-party training")
    if container:
        return f'<fieldset><legend>Third-party AI and your stories</legend>{body}</fieldset>'
    return f'<section><h2>Third-party AI and your stories</h2><div class="options">{body}</div></section>'


@pytest.mark.parametrize("inner,expect", [
    (radios("MAX"), ["toggle_on"]),
    (radios("MIN"), ["toggle_off"]),
    (radios(None), []),  # nothing chosen
    (radios("MAX", container=False), ["toggle_on"]),  # no fieldset: the radios sharing a name are the group
    (radios("MIN", container=False), ["toggle_off"]),
    (radios("MIN", role=True), ["toggle_off"]),
    (f'<div role="radiogroup" aria-label="Third-party AI and your stories">{radios("MAX", container=False)}</div>', ["toggle_on"]),
])
def test_medium_radio_group(inner: str, expect: list[str]) -> None:
    body = f"<!DOCTYPE html><html><body><main>{inner}<label><input type='checkbox' checked> Show follower count</label></main></body></html>"
    assert kinds_of(SHIPPED, MEDIUM, body, HTML) == expect


def test_choices_validation() -> None:
    bad = one_rule({"labels": ["AI setting"], "choices": {"On": "training", "Also on": "training"}})
    assert any("one meaning no_training" in e for e in validate_pack({"format": 1, "version": "t", "rules": [bad]}))
    bad = one_rule({"choices": {"On": "training", "Off": "no_training"}})
    assert validate_pack({"format": 1, "version": "t", "rules": [bad]})  # choices without labels


# --- name states -------------------------------------------------------------------------------------------------

GEMINI = "https://myactivity.google.com/product/gemini"


def chip(name: str, shown: str, extra: str = "") -> str:
    return (f'<!DOCTYPE html><html><head><title>Gemini Apps Activity</title></head><body><h1>Gemini Apps Activity</h1>'
            f'<div><h2>Keep activity</h2><button aria-haspopup="menu" aria-label="{name}" type="button"{extra}><span>{shown}</span></button></div>'
            f'<input type="checkbox" id="a"><label for="a">Improve Google services with your audio and Gemini Live videos &amp; screenshares.</label>'
            f'</body></html>')


@pytest.mark.parametrize("body,expect", [
    (chip("Turn off your Keep Activity setting", "On"), ["toggle_on"]),
    (chip("Turn on your Keep Activity setting", "Off"), ["toggle_off"]),
    (chip("TURN OFF your  Keep Activity setting", "On"), ["toggle_on"]),  # case and spacing do not matter
    (chip("Turn off your Keep Activity setting", "On", " hidden"), []),
    (chip("Turn off your Keep Activity setting", "On", ' aria-disabled="true"'), []),
    ('<html><body><p>Turn off your Keep Activity setting to stop saving chats.</p></body></html>', []),  # prose, not a control
    ('<html><body><h1>Gemini Apps Activity</h1><a href="/product/gemini">Gemini Apps Activity</a></body></html>', []),  # the title
    ('<html><body><div role="button" tabindex="0">Turn off your Keep Activity setting</div></body></html>', ["toggle_on"]),  # own text
])
def test_google_keep_activity_chip(body: str, expect: list[str]) -> None:
    assert kinds_of(SHIPPED, GEMINI, body, HTML) == expect


def test_name_states_follow_the_rule_pages() -> None:
    body = chip("Turn off your Keep Activity setting", "On")
    assert kinds_of(SHIPPED, "https://myactivity.google.com/product/youtube", body, HTML) == []


# --- seen_by, and the shipped rules on the real shapes ------------------------------------------------------------

def test_findings_say_which_eye_saw_them() -> None:
    det = Detector(SHIPPED)
    body = json.dumps({"data": {"user_preferences": {"allow_xai_data_sharing": True}}}).encode()
    url = "https://x.com/i/api/graphql/abc/GrokSettingsScreenQuery"
    [f] = det.detect(url, JSON, body, observed_at=WHEN).findings
    assert f.seen_by == "network" and f.to_dict()["seen_by"] == "network"
    region = chip("Turn off your Keep Activity setting", "On").encode()
    [f] = det.detect(GEMINI, HTML, region, observed_at=WHEN, seen_by="page").findings
    assert f.seen_by == "page" and f.source == "name"


@pytest.mark.parametrize("settings,expect", [
    ({"training_allowed": True}, ["toggle_on"]),
    ({"training_allowed": False}, ["toggle_off"]),
    ({"training_allowed": None}, []),
    ({"training_allowed": False, "voice_training_allowed": True, "video_training_allowed": True, "codex_training_allowed_v2": True},
     ["toggle_off"]),  # voice, video and Codex are separate switches: not warned
    ({"voice_training_allowed": True}, []),
])
def test_openai_training_allowed(settings, expect) -> None:
    url = "https://chatgpt.com/backend-api/settings/user"
    assert kinds_of(SHIPPED, url, {"user_id": "user-1", "settings": settings}) == expect


def test_openai_account_policy_is_not_the_users_choice() -> None:
    url = "https://chatgpt.com/backend-api/accounts/data_usage_for_training"
    assert kinds_of(SHIPPED, url, {"data_usage_for_training": "permitted"}) == []
    assert kinds_of(SHIPPED, url, {"training_allowed": True}) == []  # not an endpoint of the setting


@pytest.mark.parametrize("url,doc,expect", [
    ("https://claude.ai/api/account", {"settings": {"grove_enabled": True}}, ["toggle_on"]),
    ("https://claude.ai/api/account", {"settings": {"grove_enabled": None}}, []),
    ("https://claude.ai/api/claude_code_grove", {"grove_enabled": True, "domain_excluded": False}, []),
    ("https://claude.ai/edge-api/bootstrap/7e8f/app_start", {"account": {"settings": {"grove_enabled": False}}}, ["toggle_off"]),
    ("https://claude.ai/edge-api/bootstrap/7e8f/app_start", {"growthbook": {"grove_notice": {"grove_enabled": True}}}, []),
])
def test_anthropic_grove_enabled(url, doc, expect) -> None:
    assert kinds_of(SHIPPED, url, doc) == expect


def test_anthropic_settings_patch() -> None:
    url = "https://claude.ai/api/account/settings"
    assert kinds_of(SHIPPED, url, {"grove_enabled": False}, method="PATCH", side="request") == ["toggle_off"]
    assert kinds_of(SHIPPED, "https://claude.ai/api/other", {"grove_enabled": False}, method="PATCH", side="request") == []


@pytest.mark.parametrize("doc,expect", [
    ({"excludeFromTraining": False, "enableMemory": True}, ["toggle_on"]),
    ({"excludeFromTraining": True}, ["toggle_off"]),
    ({"enableMemory": True}, []),
])
def test_grok_exclude_from_training_is_inverted(doc, expect) -> None:
    assert kinds_of(SHIPPED, "https://grok.com/rest/user-settings", doc, method="POST") == expect


def test_the_shipped_pack_says_how_every_rule_is_seen() -> None:
    for r in SHIPPED.rules:
        assert r.seen_via, r.id
        assert set(r.eyes) <= {"network", "markup", "page"}
        for v in r.seen_via:
            assert v["evidence"] in ("verified", "reconstructed", "unverified")
        if "network" in r.eyes:
            assert r.json_keys, r.id  # a network claim needs a key to read


def test_a_rule_cannot_claim_an_eye_it_has_no_way_to_use() -> None:
    rule = one_rule({"labels": ["Use my posts to train AI"], "checked_means": "training"})
    rule["seen_via"] = [{"eye": "network", "where": "the API", "evidence": "verified"}]
    errors = validate_pack({"format": 1, "version": "t", "rules": [rule]})
    assert any("eye 'network' needs setting.json_keys" in e for e in errors)
    with pytest.raises(PackError):
        load_pack({"format": 1, "version": "t", "rules": [rule]})
