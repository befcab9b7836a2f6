"""Unit tests of each detector path, through the public `Detector.detect` with the shipped rules.

HTML toggles: every accessible-name method, every state attribute, hidden controls, inverted semantics.
JSON settings: a key at any depth, with its semantics, also embedded in HTML. Notices: dates in the formats
platforms use, and what is not a notice. Robustness: broken or hostile bodies never raise, never invent a
finding, and the work is bounded. A hypothesis fuzz of `detect` on a rule host.

TestEdgeCases holds inputs the engine once got wrong (found while writing these tests, then fixed).
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import json
import random
import time
import zlib

import brotli
import pytest
from consentwatch.detect.body import zstd  # the same zstd module the detectors read with
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentwatch.detect import Detector
from consentwatch.rules import load_pack, shipped_pack

RULES = load_pack(shipped_pack())
WHEN = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc)
HTML = "text/html; charset=utf-8"
JSON = "application/json"

OPENAI = "https://chatgpt.com/"
OPENAI_LABEL = "Improve the model for everyone"
DROPBOX = "https://www.dropbox.com/account/third_party_ai"
LINKEDIN = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"
LINKEDIN_LABEL = "Use my data for training content creation AI models"
X_SETTINGS = "https://x.com/settings/grok_settings"
X_API = "https://x.com/i/api/graphql/Xq3n1dRwq0bGfJXsmJPeXQ/GrokSettingsScreenQuery"
CLAUDE = "https://claude.ai/new"
WP_API = "https://public-api.wordpress.com/rest/v1.4/sites/218765432/settings"


def embedded_rules():
    """One rule with an unscoped key and a label, on www.example.org: state embedded in any page of the host."""
    from rules_support import one_rule_pack

    return load_pack(one_rule_pack({"labels": ["Use my posts to train AI"], "checked_means": "training",
                                    "json_keys": [{"key": "allow_xai_data_sharing", "training_when": True}]}))


def detect(url: str, body: bytes | str | None, content_type: str = HTML, encoding: str = "", *, region: str | None = None,
           when: dt.datetime = WHEN, max_bytes: int | None = None):
    det = Detector(RULES, region=region) if max_bytes is None else Detector(RULES, region=region, max_bytes=max_bytes)
    if isinstance(body, str):
        body = body.encode()
    return det.detect(url, content_type, body, encoding, observed_at=when)


def kinds(url: str, body, *args, **kw) -> list[str]:
    return sorted(f.kind for f in detect(url, body, *args, **kw).findings)


def page(inner: str, title: str = "Settings") -> str:
    # A control of another setting in the same section stops the "adjacent text" search from reaching
    # unrelated text, so each test exercises the naming method it is about.
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<nav><a href='/'>Home</a><a href='/settings'>Settings</a></nav><main><section>{inner}"
            f"<div class='row'><span>Dark mode</span><button role='switch' aria-checked='true' aria-label='Dark mode'></button></div>"
            f"</section></main></body></html>")


def on_off(state: bool) -> list[str]:
    return ["toggle_on"] if state else ["toggle_off"]


# --- HTML: how a control gets its name ----------------------------------------------------------------

NAMING = {
    "label_for": '<label for="t1">{L}</label><div><input id="t1" type="checkbox"{C}></div>',
    "label_for_button": '<label for="sw">{L}</label><button id="sw" type="button" role="switch" aria-checked="{B}"></button>',
    "wrapping_label": '<label class="row"><span>{L}</span><input type="checkbox"{C}></label>',
    "wrapping_label_text_after": '<label><input type="checkbox"{C}> {L}</label>',
    "aria_labelledby": '<div><h3 id="h1">{L}</h3></div><div class="far"><p>Other text</p>'
                       '<button role="switch" aria-checked="{B}" aria-labelledby="h1"></button>'
                       '<button role="switch" aria-checked="false" aria-label="Unrelated"></button></div>',
    "aria_labelledby_two_ids": '<span id="a1">Improve the model</span><span id="a2">for everyone</span>'
                               '<div><button role="switch" aria-checked="{B}" aria-labelledby="a1 a2"></button>'
                               '<button role="switch" aria-checked="false" aria-label="Unrelated"></button></div>',
    "aria_label_on_input": '<input type="checkbox" role="switch" aria-label="{L}"{C}>',
    "aria_label_on_button": '<button type="button" role="switch" aria-checked="{B}" aria-label="{L}"><span></span></button>',
    "own_text": '<button type="button" role="switch" aria-checked="{B}">{L}</button>',
    "own_text_role_checkbox": '<div role="checkbox" tabindex="0" aria-checked="{B}"><span>{L}</span></div>',
    "title_attribute": '<input type="checkbox" title="{L}"{C}>',
    "adjacent_sibling_div": '<div class="row"><div class="text">{L}</div><button type="button" role="switch" aria-checked="{B}"></button></div>',
    "adjacent_nested": '<div class="row"><div><div><span>{L}</span></div></div><div><div><button role="switch" aria-checked="{B}"></button></div></div></div>',
    "adjacent_with_description": '<div class="row"><div><div class="title">{L}</div><div class="desc">Allow your content to be used to train our models.</div></div>'
                                 '<div class="ctl"><div class="state">On</div><button role="switch" aria-checked="{B}"></button></div></div>',
    "label_split_by_tags_and_entities": '<label for="t2">Improve the <b>model</b> for&nbsp;<em>everyone</em></label><input id="t2" type="checkbox"{C}>',
    "label_case_and_whitespace": '<label for="t3">  IMPROVE the model\n\t for   Everyone </label><input id="t3" type="checkbox"{C}>',
    "label_with_trailing_text": '<label for="t4">Improve the model for everyone (recommended)</label><input id="t4" type="checkbox"{C}>',
}


def _fill(template: str, state: bool, label: str = OPENAI_LABEL) -> str:
    return template.format(L=label, C=" checked" if state else "", B="true" if state else "false")


@pytest.mark.parametrize("state", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("method", list(NAMING))
def test_accessible_name_methods(method: str, state: bool) -> None:
    assert kinds(OPENAI, page(_fill(NAMING[method], state))) == on_off(state)


@pytest.mark.parametrize("state", [True, False], ids=["on", "off"])
def test_aria_labelledby_far_away_in_a_big_page(state: bool) -> None:
    # the label and the switch are further apart than the window parsed around the label
    noise = ("<div class='feed-item'><p>" + "lorem ipsum dolor sit amet " * 40 + "</p></div>\n") * 100
    inner = (f"<h3 id='far-label'>{OPENAI_LABEL}</h3>{noise * 3}"
             f"<div><button role='switch' aria-checked='{'true' if state else 'false'}' aria-labelledby='far-label'></button>"
             f"<button role='switch' aria-checked='false' aria-label='Other'></button></div>")
    body = page(inner)
    assert len(body) > 100_000
    assert kinds(OPENAI, body) == on_off(state)


def test_typographic_characters_in_the_label() -> None:
    # curly quotes, non-breaking spaces: platforms typeset labels; rule authors type ASCII
    body = page('<label for="tp">Prevent third-party\u00a0sharing for \u201ccatpictures\u201d</label>'
                '<input id="tp" type="checkbox" role="switch">')
    assert kinds("https://www.tumblr.com/settings/blog/catpictures", body) == ["toggle_on"]


# A control the author named (aria-label, aria-labelledby, <label>) keeps that name: text around it is not its name.
def test_explicitly_named_control_does_not_take_ancestor_text() -> None:
    body = ("<html><body><div class='settings-shell'><div class='sidebar'><nav><a href='/account/third_party_ai'>Third-party AI</a></nav>"
            "<div class='theme'><button role='switch' aria-checked='true' aria-label='Dark mode'></button></div></div>"
            "<main><h1>General</h1><p>Nothing here</p></main></div></body></html>")
    assert kinds("https://www.dropbox.com/account/general", body) == []


def test_like_button_under_a_post_quoting_an_inverted_label() -> None:
    body = ("<html><body><main><div class='post-container'><article><h1>Why I block AI training</h1>"
            "<p>Substack has a switch called Block AI training.</p></article>"
            "<div class='footer'><button aria-pressed='false' aria-label='Like (42)'>42</button></div></div></main></body></html>")
    assert kinds("https://catsandcode.substack.com/p/why-i-block-ai-training", body) == []


def test_many_quoting_posts_do_not_make_an_off() -> None:
    item = f"<div class='post'><p>{LINKEDIN_LABEL}? Turn it off!</p><button aria-pressed='false' aria-label='Like'>Like</button></div>"
    assert kinds(LINKEDIN, f"<html><body><div class='feed'>{item * 50}</div></body></html>") == []


def test_a_label_without_a_control_is_nothing() -> None:
    assert kinds(OPENAI, page(f"<p>Go to Settings and switch off “{OPENAI_LABEL}”.</p>")) == []


def test_text_inputs_and_hidden_inputs_are_not_toggles() -> None:
    body = page(f'<label for="q">{OPENAI_LABEL}</label><input id="q" type="text" value="true">'
                f'<input type="hidden" name="improve_model" value="on" aria-label="{OPENAI_LABEL}">')
    assert kinds(OPENAI, body) == []


def test_another_rules_label_on_this_host_is_ignored() -> None:
    # the LinkedIn label served by chatgpt.com: only the rules of the response's host are consulted
    assert kinds(OPENAI, page(_fill(NAMING["label_for"], True, LINKEDIN_LABEL))) == []


def test_settings_page_path_is_respected() -> None:
    # Google's rule lists its page ("Keep Activity" is too common a name to trust anywhere on the host);
    # the same markup elsewhere on myactivity.google.com is not the setting
    body = page('<button aria-haspopup="menu" aria-label="Turn off your Keep Activity setting"><span>On</span></button>')
    assert kinds("https://myactivity.google.com/product/gemini", body) == ["toggle_on"]
    assert kinds("https://myactivity.google.com/product/gemini/settings", body) == ["toggle_on"]
    assert kinds("https://myactivity.google.com/product/youtube", body) == []


def test_a_specific_label_counts_on_any_page_of_the_host() -> None:
    # LinkedIn's label is specific enough to trust wherever the switch is shown: the settings page under
    # another path, or an "updates to our terms" interstitial over the feed with the switch in it
    body = page(_fill(NAMING["label_for"], True, LINKEDIN_LABEL))
    assert kinds(LINKEDIN, body) == ["toggle_on"]
    assert kinds("https://www.linkedin.com/settings/data-for-ai-improvement", body) == ["toggle_on"]
    assert kinds("https://www.linkedin.com/feed/", body) == ["toggle_on"]


# --- HTML: state -------------------------------------------------------------------------------------

@pytest.mark.parametrize("control,expect", [
    ('<input id="s" type="checkbox" checked>', ["toggle_on"]),
    ('<input id="s" type="checkbox" checked="">', ["toggle_on"]),
    ('<input id="s" type="checkbox" checked="checked">', ["toggle_on"]),
    ('<input id="s" type="checkbox" CHECKED>', ["toggle_on"]),
    ('<input id="s" type="checkbox">', ["toggle_off"]),
    # a control the user cannot operate is not a choice (Udemy outside its opt-out window, X for minors)
    ('<input id="s" type="checkbox" checked disabled>', []),
    ('<button id="s" role="switch" aria-checked="true" aria-disabled="true"></button>', []),
    ('<fieldset disabled><input id="s" type="checkbox" checked></fieldset>', []),
    ('<input id="s" type="checkbox" role="switch" aria-checked="true" checked>', ["toggle_on"]),
    ('<button id="s" role="switch" aria-checked="true"></button>', ["toggle_on"]),
    ('<button id="s" role="switch" aria-checked="TRUE"></button>', ["toggle_on"]),
    ('<button id="s" role="switch" aria-checked=" false "></button>', ["toggle_off"]),
    ('<button id="s" role="switch" aria-checked="mixed"></button>', []),
    ('<button id="s" role="switch"></button>', []),  # no state at all: no verdict
    ('<button id="s" type="button" aria-pressed="true"></button>', ["toggle_on"]),
    ('<button id="s" type="button" aria-pressed="false"></button>', ["toggle_off"]),
    ('<div id="s" role="menuitemcheckbox" aria-checked="true" aria-labelledby="lbl"></div>', ["toggle_on"]),
    ('<div id="s" role="checkbox" aria-checked="false" aria-labelledby="lbl"></div>', ["toggle_off"]),
])
def test_state_attributes(control: str, expect: list[str]) -> None:
    # <label for> names the labelable elements (input, button); the div roles take aria-labelledby
    assert kinds(OPENAI, page(f'<label id="lbl" for="s">{OPENAI_LABEL}</label>{control}')) == expect


@pytest.mark.parametrize("checked,expect", [("MAXIMUM_REACH", ["toggle_on"]), ("MINIMIZE_TRAINING", ["toggle_off"])])
def test_radio_group_medium(checked: str, expect: list[str]) -> None:
    def radio(value: str, text: str) -> str:
        c = " checked" if value == checked else ""
        return f'<label><input type="radio" name="ai" value="{value}"{c}> <span>{text}</span></label>'
    body = page('<fieldset role="radiogroup"><legend>Third-party AI and your stories</legend>'
                + radio("MAXIMUM_REACH", "Prioritize maximum reach (Default)")
                + radio("MINIMIZE_TRAINING", "Minimize third-party training") + "</fieldset>")
    assert kinds("https://medium.com/me/settings/account", body) == expect


def test_one_on_switch_among_several_is_enough() -> None:
    body = page('<button role="switch" aria-checked="false" aria-label="Model training on text"></button>'
                '<button role="switch" aria-checked="true" aria-label="Model training on voice"></button>')
    assert kinds("https://copilot.microsoft.com/", body) == ["toggle_on"]


# --- HTML: hidden controls ---------------------------------------------------------------------------

HIDDEN_WRAPPERS = {
    "hidden_attribute": '<div hidden>{X}</div>',
    "aria_hidden": '<div aria-hidden="true">{X}</div>',
    "display_none": '<div style="display: none">{X}</div>',
    "display_none_compact": '<div class="variant-b" style="color:red;display:none;">{X}</div>',
    "template": '<template id="variant-b">{X}</template>',
    "hidden_grandparent": '<div hidden><section><div class="row">{X}</div></section></div>',
}


@pytest.mark.parametrize("wrapper", list(HIDDEN_WRAPPERS))
def test_hidden_controls_are_ignored(wrapper: str) -> None:
    hidden_on = HIDDEN_WRAPPERS[wrapper].format(X=_fill(NAMING["wrapping_label"], True))
    assert kinds(OPENAI, page(hidden_on)) == []
    # a hidden ON variant next to the visible OFF switch: the user sees OFF
    visible_off = _fill(NAMING["aria_label_on_button"], False)
    assert kinds(OPENAI, page(hidden_on + visible_off)) == ["toggle_off"]


def test_visually_hidden_native_input_still_counts() -> None:
    # custom switches hide the native checkbox with CSS; the user operates it through the label
    body = page(f'<label class="toggle"><input type="checkbox" class="sr-only" style="display:none" checked>'
                f'<span class="track"></span><span>{OPENAI_LABEL}</span></label>')
    assert kinds(OPENAI, body) == ["toggle_on"]


# --- inverted semantics ------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expect", [
    ("false", ["toggle_on"]), ("true", ["toggle_off"]),
    ('"false"', ["toggle_on"]), ('"true"', ["toggle_off"]),
    ("0", ["toggle_on"]), ("1", ["toggle_off"]),
    ("null", []), ('"sometimes"', []), ("2", []),
])
def test_wordpress_opt_out_key_is_inverted(value: str, expect: list[str]) -> None:
    body = '{"ID":218765432,"settings":{"blog_public":1,"wpcom_data_sharing_opt_out":%s}}' % value
    assert kinds(WP_API, body, JSON) == expect


def test_wordpress_computed_key_never_travels() -> None:
    # wpcom_prevent_third_party_sharing is computed in the browser: a body carrying it is not the API's answer
    assert kinds(WP_API, '{"settings":{"blog_public":1,"wpcom_prevent_third_party_sharing":false}}', JSON) == []


@pytest.mark.parametrize("checked,expect", [("false", ["toggle_on"]), ("true", ["toggle_off"])])
def test_substack_block_ai_training_is_inverted(checked: str, expect: list[str]) -> None:
    body = page(f'<div class="setting-row"><div class="setting-label">Block AI training</div>'
                f'<button type="button" role="switch" aria-checked="{checked}" aria-label="Block AI training"></button></div>')
    assert kinds("https://catsandcode.substack.com/publish/settings", body) == expect


@pytest.mark.parametrize("checked,expect", [("", ["toggle_on"]), (" checked", ["toggle_off"])])
def test_tumblr_prevent_sharing_is_inverted(checked: str, expect: list[str]) -> None:
    body = page(f'<label><div>Prevent third-party sharing for catpictures</div><input type="checkbox" role="switch"{checked}></label>')
    assert kinds("https://www.tumblr.com/settings/blog/catpictures", body) == expect


# --- JSON settings -----------------------------------------------------------------------------------

def _prefs(value) -> dict:
    return {"user_preferences": {"allow_xai_data_sharing": value}}


@pytest.mark.parametrize("doc,expect", [
    ({"data": _prefs(True)}, ["toggle_on"]),  # the real nesting: data.user_preferences
    ({"data": {"viewer": {"user_results": {"result": _prefs(True)}}}}, ["toggle_on"]),  # any depth under user_preferences
    ({"data": {"viewer": {"user_results": {"result": _prefs(False)}}}}, ["toggle_off"]),
    ([{"id": 1}, {"x": [[_prefs(True)]]}], ["toggle_on"]),  # list positions do not count
    ({"data": _prefs("true")}, ["toggle_on"]),
    ({"data": _prefs("enabled")}, ["toggle_on"]),
    ({"data": _prefs(None)}, []),  # null: not chosen yet
    ({"data": {"user_preferences": {}}}, []),  # absent
    ({"data": _prefs({"value": True})}, []),  # not a boolean: no guess
    ({"allow_xai_data_sharing": True}, []),  # not under user_preferences: not the setting
    ({"data": {"user_preferences": {"allow_xai_personalization": True, "allow_grok_memory": True}}}, []),
    ({"a": _prefs(False), "b": _prefs(True)}, ["toggle_on"]),  # any ON wins
])
def test_json_key_at_any_depth(doc, expect) -> None:
    assert kinds(X_API, json.dumps(doc), JSON) == expect


def test_json_key_very_deep() -> None:
    doc: dict = {"grove_enabled": True}
    for i in range(500):
        doc = {f"level{i}": doc}
    assert kinds("https://claude.ai/api/account", json.dumps(doc), JSON) == ["toggle_on"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "text/plain",
                                          "application/octet-stream", "", "application/vnd.api+json", "text/javascript"])
def test_json_whatever_the_content_type(content_type: str) -> None:
    assert kinds("https://claude.ai/api/account", b'{"settings":{"grove_enabled":true}}', content_type) == ["toggle_on"]


def test_json_with_bom_and_utf16() -> None:
    body = {"grove_enabled": True, "name": "Zoë"}
    assert kinds("https://claude.ai/api/account", codecs.BOM_UTF8 + json.dumps(body).encode(), JSON) == ["toggle_on"]
    assert kinds("https://claude.ai/api/account", codecs.BOM_UTF16_LE + json.dumps(body).encode("utf-16-le"), JSON) == ["toggle_on"]


@pytest.mark.parametrize("embedded,expect", [
    ('<code style="display: none">{&quot;user_preferences&quot;:{&quot;allow_xai_data_sharing&quot;:true}}</code>', ["toggle_on"]),
    ('<code style="display: none">{&quot;allow_xai_data_sharing&quot;:false}</code>', ["toggle_off"]),
    ('<code>{&#34;allow_xai_data_sharing&#34;: true}</code>', ["toggle_on"]),
    ('<code>{&#x22;allow_xai_data_sharing&#x22;:true}</code>', ["toggle_on"]),
    ('<script>window.__INITIAL_STATE__={"settings":{"allow_xai_data_sharing":true}};</script>', ["toggle_on"]),
    ('<script>self.__next_f.push([1,"5:{\\"allow_xai_data_sharing\\":true}"])</script>', ["toggle_on"]),
    ('<script type="application/json" id="state">{"allow_xai_data_sharing" : false}</script>', ["toggle_off"]),
    ('<p>the field allow_xai_data_sharing is true by default</p>', []),  # prose, not JSON
])
def test_json_embedded_in_html(embedded: str, expect: list[str]) -> None:
    # a rule whose key is read on any page of its host (the shipped X rule reads only the GraphQL API)
    body = f"<html><body><div id='react-root'></div>{embedded}</body></html>"
    obs = Detector(embedded_rules()).detect("https://www.example.org/settings", HTML, body.encode(), observed_at=WHEN)
    assert sorted(f.kind for f in obs.findings) == expect


def test_embedded_state_of_a_scoped_key_is_not_read_on_other_pages() -> None:
    body = '<html><body><script>window.__S={"user_preferences":{"allow_xai_data_sharing":true}}</script></body></html>'
    assert kinds("https://x.com/home", body) == []
    assert kinds(X_SETTINGS, body) == []


def test_json_and_html_disagree_on_state_any_on_wins() -> None:
    body = page('<label><span>Use my posts to train AI</span><input type="checkbox"></label>'
                '<script>window.__S={"allow_xai_data_sharing":true}</script>')
    obs = Detector(embedded_rules()).detect("https://www.example.org/settings", HTML, body.encode(), observed_at=WHEN)
    assert [f.kind for f in obs.findings] == ["toggle_on"]


# --- notices -----------------------------------------------------------------------------------------

def notice_page(text: str, container: str = '<div role="dialog" aria-modal="true">{T}</div>') -> str:
    return ("<!DOCTYPE html><html><head><title>Feed</title></head><body><header role='banner'><nav><a href='/'>Home</a></nav></header>"
            "<main><div class='feed'><p>Someone shared a post about sourdough.</p></div></main>"
            + container.format(T=text) + "</body></html>")


LI_NOTICE = "We're updating our User Agreement and Privacy Policy to explain how we use your data to train generative AI models. {D}"


@pytest.mark.parametrize("date_text,iso", [
    ("On November 3, 2025, these changes take effect.", "2025-11-03"),
    ("The changes are effective 28 September 2025.", "2025-09-28"),
    ("Effective: 2025-11-03", "2025-11-03"),
    ("Effective Nov. 3, 2025.", "2025-11-03"),
    ("Effective Nov 3 2025.", "2025-11-03"),
    ("They take effect on November 3rd, 2025.", "2025-11-03"),
    ("Starting from the 3rd of November, 2025.", "2025-11-03"),
    ("Beginning Sept. 28, 2025.", "2025-09-28"),
    ("As of 1 Jan 2026.", "2026-01-01"),
    ("Posted August 28, 2025. These changes take effect on September 28, 2025.", "2025-09-28"),
    ("Read more in our Help Center.", None),
    ("Effective February 30, 2025.", None),  # not a date
])
def test_notice_effective_dates(date_text: str, iso: str | None) -> None:
    obs = detect("https://www.linkedin.com/feed/", notice_page(LI_NOTICE.format(D=date_text)))
    assert [(f.kind, f.effective_date) for f in obs.findings] == [("policy_update", iso)]


@pytest.mark.parametrize("container", [
    '<div role="dialog" aria-modal="true"><h2>Updates to our terms</h2><p>{T}</p></div>',
    '<div role="alertdialog">{T}</div>',
    '<div role="alert"><p>{T}</p></div>',
    '<div role="status" aria-live="polite">{T}</div>',
    '<dialog open><p>{T}</p><form method="dialog"><button>OK</button></form></dialog>',
    '<aside class="promo"><p>{T}</p></aside>',
    '<div class="artdeco-global-alert"><p>{T}</p></div>',
    '<div id="policy-update-banner"><span>{T}</span></div>',
    '<section class="interstitial"><p>{T}</p></section>',
])
def test_notice_containers(container: str) -> None:
    body = notice_page(LI_NOTICE.format(D="On November 3, 2025."), container)
    assert kinds("https://www.linkedin.com/feed/", body) == ["policy_update"]


@pytest.mark.parametrize("name,body", [
    ("cookie_policy", notice_page("We've updated our Cookie Policy. We use cookies to improve our services. See our Privacy Policy.",
                                  '<div role="dialog" aria-label="Cookie consent">{T}</div>')),
    ("cookies_policy", notice_page("We've updated our Cookies Policy, effective 1 March 2026. Learn about generative AI at our "
                                   "<a href='/ai'>help centre</a>.", '<div role="dialog">{T}</div>')),
    ("in_article", notice_page(LI_NOTICE.format(D="On November 3, 2025."), '<article><div role="alert">{T}</div></article>')),
    ("in_blockquote", notice_page(LI_NOTICE.format(D=""), '<blockquote class="notice">{T}</blockquote>')),
    ("plain_paragraph", notice_page(LI_NOTICE.format(D=""), '<div class="feed-post"><p>{T}</p></div>')),
    ("hidden", notice_page(LI_NOTICE.format(D=""), '<div role="dialog" hidden>{T}</div>')),
    ("aria_hidden", notice_page(LI_NOTICE.format(D=""), '<div aria-hidden="true"><div role="dialog">{T}</div></div>')),
    ("not_about_ai", notice_page("We're updating our User Agreement to explain new payment options, effective 1 March 2026.")),
    ("about_ai_no_change", notice_page("Try our generative AI writing assistant: draft posts in seconds.")),
])
def test_not_a_notice(name: str, body: str) -> None:
    assert kinds("https://www.linkedin.com/feed/", body) == []


def test_notice_on_a_host_without_rules_is_nothing() -> None:
    body = notice_page(LI_NOTICE.format(D="On November 3, 2025."))
    assert kinds("https://techcrunch.com/2025/09/18/linkedin-ai/", body) == []
    assert kinds("https://www.linkedin.com.evil.example/feed/", body) == []


def test_notice_needs_html() -> None:
    text = LI_NOTICE.format(D="On November 3, 2025.")
    assert kinds("https://www.linkedin.com/feed/", json.dumps({"message": text}), JSON) == []


def test_notice_and_toggle_in_the_same_page() -> None:
    body = notice_page("We're updating our Consumer Terms and Privacy Policy, effective 28 September 2025. "
                       '<label for="c">Allow the use of your chats and coding sessions to train and improve Anthropic AI models</label>'
                       '<button id="c" role="switch" aria-checked="true"></button>')
    obs = detect(CLAUDE, body)
    assert sorted((f.kind, f.effective_date) for f in obs.findings) == [("policy_update", "2025-09-28"), ("toggle_on", None)]


# --- robustness --------------------------------------------------------------------------------------

LINKEDIN_OFF = page(_fill(NAMING["label_for"], False, LINKEDIN_LABEL), title="Data for Generative AI Improvement | LinkedIn")
LINKEDIN_ON = page(_fill(NAMING["label_for"], True, LINKEDIN_LABEL), title="Data for Generative AI Improvement | LinkedIn")


def _feed_noise(size: int) -> str:
    item = ("<div class='feed-item'><p>" + "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 20
            + "</p><button aria-pressed='false'>Like</button><button>Comment</button></div>\n")
    return item * (size // len(item) + 1)


def test_20mb_page_is_bounded() -> None:
    body = LINKEDIN_OFF.replace("</main>", _feed_noise(20 * 1024 * 1024) + "</main>").encode()
    assert len(body) > 20 * 1024 * 1024
    start = time.perf_counter()
    obs = detect(LINKEDIN, body)
    elapsed = time.perf_counter() - start
    assert [f.kind for f in obs.findings] == ["toggle_off"]
    assert elapsed < 10, f"{elapsed:.2f}s"


def test_20mb_page_with_the_toggle_beyond_the_limit() -> None:
    # Only the first max_bytes are read: a switch 20 MB down the page is not seen (and nothing is invented).
    body = LINKEDIN_ON.replace("<main>", "<main>" + _feed_noise(20 * 1024 * 1024)).encode()
    start = time.perf_counter()
    obs = detect(LINKEDIN, body)
    assert obs.findings == []
    assert time.perf_counter() - start < 10


def test_max_bytes_is_honoured() -> None:
    body = LINKEDIN_ON.replace("<main>", "<main>" + "<p>padding</p>" * 1000).encode()
    assert kinds(LINKEDIN, body) == ["toggle_on"]
    assert detect(LINKEDIN, body, max_bytes=4096).findings == []


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", lambda b: gzip.compress(b, mtime=0)),
    ("br", lambda b: brotli.compress(b, quality=1)),
    ("zstd", lambda b: zstd.compress(b, level=1)),
    ("deflate", lambda b: zlib.compress(b, 1)),
])
def test_decompression_bombs_are_bounded(encoding, compress) -> None:
    bomb = compress(b"<html><body>" + b"\n" * (64 * 1024 * 1024) + b"</body></html>")
    assert len(bomb) < 512 * 1024
    start = time.perf_counter()
    obs = detect(LINKEDIN, bomb, HTML, encoding)
    assert obs.findings == []
    assert time.perf_counter() - start < 10


def test_deep_json_key_found_by_the_fallback_scan() -> None:
    n = 100_000
    body = ('{"a":' * n + '{"grove_enabled":true}' + "}" * n).encode()
    start = time.perf_counter()
    assert kinds("https://claude.ai/api/account", body, JSON) == ["toggle_on"]
    assert time.perf_counter() - start < 3


def test_deeply_nested_html() -> None:
    n = 50_000
    body = "<html><body>" + "<div>" * n + _fill(NAMING["label_for"], True) + "</div>" * n + "</body></html>"
    start = time.perf_counter()
    obs = detect(OPENAI, body)  # the verdict is not the point; not crashing and not hanging is
    assert time.perf_counter() - start < 10
    assert {f.kind for f in obs.findings} <= {"toggle_on"}


@pytest.mark.parametrize("body,ct,enc", [
    (None, HTML, ""),
    (b"", HTML, ""),
    (b"\x00" * 1000, HTML, ""),
    (b"\xff\xfe\x00", HTML, ""),
    (b"\x1f\x8b\x08\x00garbage", HTML, "gzip"),
    (b"\x1f\x8b", HTML, ""),
    (b"\x28\xb5\x2f\xfdgarbage", JSON, ""),
    (b"<html><body>\xc3\x28\xa0\xa1</body></html>", HTML, ""),
    (b"<html" * 10000, HTML, ""),
    (b"<!--" + b"x" * 100000, HTML, ""),
    (b"<html><body><label for=a>Use my data for training content creation AI models", HTML, ""),
    (b"{" * 200000, JSON, ""),
    (b'{"grove_enabled": tru', JSON, ""),
    (b"[" * 100 + b"]" * 99, JSON, ""),
    (b"plain text with no markup at all", "text/plain", ""),
    (b"<html></html>", HTML, "identity"),
    (b"<html></html>", HTML, "x-unknown, gzip"),
    (b"<html></html>", "text/html; charset=nonsense-42", ""),
    (b"<html><meta charset='utf-16'><body>x</body></html>", "text/html", ""),
    (b"<?xml version='1.0' encoding='bogus'?><html/>", "application/xhtml+xml", ""),
])
def test_broken_bodies_never_raise(body, ct, enc) -> None:
    for url in (LINKEDIN, "https://claude.ai/api/claude_code_grove", X_API):
        obs = detect(url, body, ct, enc)
        assert [f for f in obs.findings if f.kind != "toggle_off"] == []


def test_garbage_with_html_content_type() -> None:
    rnd = random.Random(7)
    for size in (10, 1000, 100_000, 2_000_000):
        junk = bytes(rnd.getrandbits(8) for _ in range(size))
        for enc in ("", "gzip", "br", "zstd", "deflate"):
            assert detect(LINKEDIN, junk, HTML, enc).findings == []


def test_no_rule_host_is_not_decoded() -> None:
    # the fast path: a host without a rule returns at once, whatever the body
    obs = detect("https://example.org/settings", b"\x1f\x8b\x08\x00garbage", HTML, "gzip")
    assert obs.findings == [] and obs.note == ""


def test_findings_never_carry_the_query_string_or_fragment() -> None:
    obs = detect(LINKEDIN + "?trk=SECRET_QUERY_TOKEN&token=abc#frag", LINKEDIN_ON)
    assert [f.url for f in obs.findings] == [LINKEDIN]
    assert "SECRET" not in json.dumps([f.to_dict() for f in obs.findings])


# --- fuzz --------------------------------------------------------------------------------------------

FUZZ_URLS = [LINKEDIN, X_API, X_SETTINGS, "https://claude.ai/api/claude_code_grove", WP_API, "https://medium.com/me/settings/account",
             "https://www.reddit.com/", "https://catsandcode.substack.com/publish/settings"]
CONTENT_TYPES = ["text/html", "text/html; charset=utf-8", "text/html; charset=windows-1252", "text/html; charset=shift_jis",
                 "text/html; charset=utf-16", "application/json", "application/json; charset=latin-1", "text/plain", "", "image/png",
                 "text/html; charset=", "text/html; charset=\"utf-8", "application/xhtml+xml"]
ENCODINGS = ["", "gzip", "br", "zstd", "deflate", "identity", "gzip, br", "br, gzip", "x-gzip", "compress", "GZIP", " gzip ", ","]
CHARSETS = ["utf-8", "utf-16", "utf-16-le", "utf-32", "cp1252", "latin-1", "shift_jis", "euc-jp", "koi8-r", "gb18030"]
FRAGMENTS = [
    "<html>", "<body>", "</div>", "<div hidden>", "<main>", "<label for='t'>", "</label>", "<input id='t' type='checkbox' checked>",
    "<button role='switch' aria-checked='true'>", "<button aria-pressed='false'>", "<div role='dialog'>", "<article>",
    LINKEDIN_LABEL, "Minimize third-party training", "Block AI training", "We're updating our Privacy Policy",
    "generative AI", "effective 28 September 2025", "On November 3, 2025", "&quot;", "&nbsp;", "<!--", "<script>", "</script>",
    '{"allow_xai_data_sharing":true}', '"grove_enabled":false', '\\"wpcom_data_sharing_opt_out\\":false', "{", "[", "]", "}",
    "\x00", "\ufeff", "\u2011", "\ud7ff", "é", "日本語",
]


def _compress(data: bytes, encoding: str) -> bytes:
    for enc in [e.strip().lower() for e in encoding.split(",") if e.strip()]:
        if enc in ("gzip", "x-gzip"):
            data = gzip.compress(data, compresslevel=1, mtime=0)
        elif enc == "br":
            data = brotli.compress(data, quality=1)
        elif enc == "zstd":
            data = zstd.compress(data, level=1)
        elif enc == "deflate":
            data = zlib.compress(data, 1)
    return data


def _check(obs) -> None:
    assert isinstance(obs.findings, list)
    for f in obs.findings:
        assert f.kind in ("toggle_on", "toggle_off", "policy_update")
        assert "?" not in f.url


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
@given(url=st.sampled_from(FUZZ_URLS), body=st.binary(max_size=4096), ct=st.sampled_from(CONTENT_TYPES),
       enc=st.sampled_from(ENCODINGS))
def test_fuzz_random_bytes(url, body, ct, enc) -> None:
    _check(detect(url, body, ct, enc))


@FUZZ
@given(url=st.sampled_from(FUZZ_URLS), parts=st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40)), max_size=60),
       charset=st.sampled_from(CHARSETS), ct=st.sampled_from(CONTENT_TYPES), enc=st.sampled_from(ENCODINGS),
       cut=st.one_of(st.none(), st.integers(min_value=0, max_value=5000)))
def test_fuzz_markup_charsets_encodings(url, parts, charset, ct, enc, cut) -> None:
    data = "".join(parts).encode(charset, errors="replace")
    data = _compress(data, enc if enc != "compress" else "")
    if cut is not None:
        data = data[:cut]  # truncated streams too
    _check(detect(url, data, ct, enc))


# --- known engine bugs -------------------------------------------------------------------------------

class TestEdgeCases:
    """Inputs the engine once got wrong: dates, escaped quotes, long dialogs, hidden content, hyphens."""

    def test_effective_date_not_fooled_by_words_ending_in_on(self) -> None:
        body = notice_page("We're updating our Consumer Terms and Privacy Policy to train and improve our AI models. "
                           "Last revision: August 28, 2025. The new terms are effective September 28, 2025.")
        assert [f.effective_date for f in detect(CLAUDE, body).findings] == ["2025-09-28"]

    def test_effective_date_prefers_take_effect_over_until(self) -> None:
        body = notice_page("We're updating our Consumer Terms to train our AI models on your chats. You have until October 8, 2025 "
                           "to make your choice. The new terms take effect on September 28, 2025.")
        assert [f.effective_date for f in detect(CLAUDE, body).findings] == ["2025-09-28"]

    def test_effective_date_numeric_dmy(self) -> None:
        body = notice_page(LI_NOTICE.format(D="Effective 03.11.2025."))
        assert [f.effective_date for f in detect("https://www.linkedin.com/feed/", body).findings] == ["2025-11-03"]

    @pytest.mark.parametrize("quote", ["\\u0022", "\\x22"])
    def test_json_key_with_unicode_escaped_quotes(self, quote: str) -> None:
        body = f'<html><script>var s = JSON.parse("{{{quote}allow_xai_data_sharing{quote}:true}}")</script></html>'
        obs = Detector(embedded_rules()).detect("https://www.example.org/", HTML, body.encode(), observed_at=WHEN)
        assert [f.kind for f in obs.findings] == ["toggle_on"]

    def test_long_policy_dialog(self) -> None:
        body = notice_page("<h2>Updates to our terms</h2><p>We're updating our Consumer Terms and Privacy Policy so that we can train and "
                           "improve our AI models with your chats, effective 28 September 2025.</p>"
                           "<div>" + "Here is what else changes in the policy. " * 200 + "</div>")
        assert [f.kind for f in detect(CLAUDE, body).findings] == ["policy_update"]

    def test_change_announcement_without_a_policy_word(self) -> None:
        body = notice_page("We're changing how we use your data: from November 3, 2025 we will use it to train generative AI models.")
        assert kinds("https://www.linkedin.com/feed/", body) == ["policy_update"]

    def test_noscript_fallback_is_not_visible(self) -> None:
        assert kinds(OPENAI, page("<noscript>" + _fill(NAMING["wrapping_label"], True) + "</noscript>")) == []

    def test_visibility_hidden(self) -> None:
        assert kinds(OPENAI, page('<div style="visibility: hidden">' + _fill(NAMING["wrapping_label"], True) + "</div>")) == []

    @pytest.mark.parametrize("hyphen", ["\u2011", "\u2010"])
    def test_non_breaking_hyphen_in_label(self, hyphen: str) -> None:
        body = page(f'<label for="s">Prevent third{hyphen}party sharing for catpictures</label><input id="s" type="checkbox">')
        assert kinds("https://www.tumblr.com/settings/blog/catpictures", body) == ["toggle_on"]

    def test_soft_hyphen_in_label(self) -> None:
        body = page('<label for="s">Prevent third-&shy;party sharing</label><input id="s" type="checkbox">')
        assert kinds("https://www.tumblr.com/settings/blog/catpictures", body) == ["toggle_on"]


class TestRulePackNoticeTerms:
    """Rule-data issues, not engine bugs: some `notices.about` phrases are product names, not training words."""

    def test_x_terms_update_about_grok_features(self) -> None:
        body = notice_page("We've updated our Terms of Service. Grok Imagine is now available to Premium subscribers.")
        assert kinds("https://x.com/home", body) == []

    def test_github_copilot_billing_terms(self) -> None:
        body = notice_page("We are updating the GitHub Copilot Product Specific Terms to add premium request billing, effective June 4, 2025.",
                           '<div class="flash flash-warn" role="alert">{T}</div>')
        assert kinds("https://github.com/", body) == []
