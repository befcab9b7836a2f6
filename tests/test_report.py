"""The privacy posture report: facts (model), HTML, Markdown, JSON against its schema, and the CLI.

Data dirs are filled the way users fill them: responses through `Watch.process` (the pipeline replay and
the live proxy share) or recorded flows through `consentwatch replay`. The Chromium rendering test is
tests/test_report_browser.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from conftest import FIXTURES, LINKEDIN_URL, cli, linkedin_page, write_flow

from consentwatch.report import CONTENT_TYPES, build_report, collect, render, render_report, schema
from consentwatch.report.html import render_html
from consentwatch.report.markdown import md, render_markdown
from consentwatch.report.model import RECENT_CHANGES
from consentwatch.rules.model import shipped_pack
from consentwatch.pipeline import Watch

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 9, 20, 9, 30, tzinfo=UTC)
TODAY = dt.date(2025, 10, 25)
WP_URL = "https://public-api.wordpress.com/rest/v1.4/sites/1/settings"
X_URL = "https://x.com/i/api/graphql/x/GrokSettingsScreenQuery"
NOTICE_URL = "https://www.linkedin.com/feed/"
NOTICE_TEXT = ("We're updating our Privacy Policy. On November 3, 2025 we will use data to train "
               "content-generating AI models.")

BODIES = {
    "li-on": (LINKEDIN_URL, "text/html", linkedin_page(True)),
    "li-off": (LINKEDIN_URL, "text/html", linkedin_page(False)),
    "wp-on": (WP_URL, "application/json", b'{"settings": {"blog_public": 1, "wpcom_data_sharing_opt_out": false}}'),
    "wp-off": (WP_URL, "application/json", b'{"settings": {"blog_public": 1, "wpcom_data_sharing_opt_out": true}}'),
    "x-on": (X_URL, "application/json", b'{"data":{"user_preferences":{"allow_xai_data_sharing":true}}}'),
    "x-off": (X_URL, "application/json", b'{"data":{"user_preferences":{"allow_xai_data_sharing":false}}}'),
    "li-notice": (NOTICE_URL, "text/html", f'<html><body><div role="dialog">{NOTICE_TEXT}</div></body></html>'.encode()),
}


def fill(data_dir: Path, *steps: tuple[str, dt.datetime]) -> Path:
    """Feed (body name, observed_at) pairs through the real pipeline; the store is on disk afterwards."""
    watch = Watch(data_dir)
    try:
        for name, at in steps:
            url, ctype, body = BODIES[name]
            found = watch.process(url, ctype, body, observed_at=at)
            assert found, f"{name} was not detected: the test data no longer matches the rules"
    finally:
        watch.close()
    return data_dir


def days(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def platform(report: dict, pid: str) -> dict:
    return next(p for p in report["platforms"] if p["platform"] == pid)


def validate(report_or_text) -> dict:
    doc = json.loads(report_or_text) if isinstance(report_or_text, str) else report_or_text
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)
    return doc


@pytest.fixture
def story(data_dir: Path) -> Path:
    """LinkedIn ON, turned off, silently back on, a notice; WordPress.com ON then off; X ON."""
    return fill(data_dir,
                ("li-on", days(0)), ("li-off", days(2)), ("li-on", days(26)), ("li-on", days(30)),
                ("wp-on", days(5)), ("wp-off", days(6)),
                ("x-on", days(10)),
                ("li-notice", days(12)))


# -- the facts ------------------------------------------------------------------------------------------------


def test_schema_itself_is_valid():
    jsonschema.Draft202012Validator.check_schema(schema())


def test_story_facts(story):
    r = validate(collect(story, TODAY))
    assert [p["platform"] for p in r["platforms"]] == ["linkedin", "x", "wordpress"]  # most urgent first
    assert r["summary"] == {"platforms_seen": 3, "training_on": 2, "training_off": 1, "policy_changes_coming": 1,
                            "policy_notices": 1, "silently_reenabled": 1, "state_changes": 6, "policy_text_changes": 0}
    assert r["span"] == {"start": "2025-09-20", "end": "2025-11-03"}
    names = {p["platform"]: p["name"] for p in r["platforms"]}
    assert names == {"linkedin": "LinkedIn", "x": "X", "wordpress": "WordPress.com"}
    # the platforms never seen are listed, so the user knows what else is watched
    assert "Meta" in [x["name"] for x in r["not_seen"]]
    assert not {"linkedin", "x", "wordpress"} & {x["platform"] for x in r["not_seen"]}


def test_the_report_says_how_each_platform_can_be_seen(story):
    r = validate(collect(story, TODAY))
    assert platform(r, "x")["seen_via"] == [{"eye": "network", "evidence": "verified"}, {"eye": "page", "evidence": "reconstructed"}]
    assert platform(r, "linkedin")["seen_via"] == [{"eye": "markup", "evidence": "unverified"},
                                                   {"eye": "page", "evidence": "reconstructed"}]
    not_seen = {x["platform"]: x["seen_via"] for x in r["not_seen"]}
    assert not_seen["perplexity"] == [{"eye": "page", "evidence": "reconstructed"}]
    assert {e["eye"] for e in not_seen["anthropic"]} == {"network", "page"}
    html, markdown = render_html(r), render_markdown(r)
    assert "consentwatch reads it from the data the web app fetches (verified in its code)" in html
    assert "consentwatch reads it from the data the web app fetches (verified in its code)" in markdown
    for text in (html, markdown):
        line = next(x for x in text.split("Only the browser extension can see these")[1:2])
        assert "Perplexity" in line and "Anthropic" not in line.split(".")[0]


def test_reenabled_after_opt_out(story):
    li = platform(collect(story, TODAY), "linkedin")
    assert li["status"] == "training_on" and li["reenabled"] is True
    (s,) = li["settings"]
    assert s["state"] == "on"
    assert s["first_seen_on"] == days(0).isoformat()
    assert s["turned_off_at"] == days(2).isoformat()
    assert s["reenabled_at"] == [days(26).isoformat()]
    assert s["reenabled_now"] is True
    assert s["since"] == days(26).isoformat()
    assert s["last_seen"] == days(30).isoformat()
    assert [c["state"] for c in s["changes"]] == ["on", "off", "on"]
    assert li["remedies"][0]["settings_url"] == LINKEDIN_URL
    assert li["remedies"][0]["steps"][0] == "Me"


def test_turned_off_by_the_user(story):
    wp = platform(collect(story, TODAY), "wordpress")
    assert wp["status"] == "training_off" and wp["reenabled"] is False
    (s,) = wp["settings"]
    assert s["state"] == "off" and s["turned_off_at"] == days(6).isoformat() and s["since"] == days(6).isoformat()
    assert s["first_seen_on"] == days(5).isoformat() and s["off_when_first_seen"] is False
    assert s["times_turned_off"] == 1 and s["reenabled_at"] == []
    assert s["warning"]["status"] == "resolved"


def test_already_off_when_first_seen(data_dir):
    r = validate(collect(fill(data_dir, ("x-off", days(1))), TODAY))
    (s,) = platform(r, "x")["settings"]
    assert s["state"] == "off" and s["off_when_first_seen"] is True
    assert s["turned_off_at"] is None and s["first_seen_on"] is None and s["warning"] is None
    assert platform(r, "x")["status"] == "training_off"
    html = render_html(r)
    assert "already off when first seen" in html
    assert "You opted out" not in html


@pytest.mark.parametrize("today,days_left,in_effect,status,phrase", [
    (dt.date(2025, 10, 25), 9, False, "policy_change_coming", "in 9 days"),
    (dt.date(2025, 11, 2), 1, False, "policy_change_coming", "tomorrow"),
    (dt.date(2025, 11, 3), None, True, "policy_in_effect", "takes effect today"),
    (dt.date(2026, 1, 10), None, True, "policy_in_effect", "in effect since 3 Nov 2025"),
])
def test_policy_notice_days_left(data_dir, today, days_left, in_effect, status, phrase):
    r = validate(collect(fill(data_dir, ("li-notice", days(12))), today))
    li = platform(r, "linkedin")
    (n,) = li["notices"]
    assert n["effective_date"] == "2025-11-03"
    assert n["days_left"] == days_left and n["in_effect"] is in_effect
    assert n["seen_on"] == NOTICE_URL
    assert li["status"] == status and li["settings"] == []
    assert li["remedies"], "a notice alone still says how to opt out"
    assert r["summary"]["policy_changes_coming"] == (1 if days_left else 0)
    assert phrase.lower() in render_html(r).lower()
    assert phrase.lower() in render_markdown(r).lower()
    # the picture shows the date; a coming change stretches the timeline to it
    assert r["span"]["end"] == max(today, dt.date(2025, 11, 3)).isoformat()


def test_notices_without_settings(data_dir):
    """Policy notices only: a platform with a setting not seen yet, one with no setting at all, one undated."""
    def notice(wid, pid, rule_id, eff, status="active"):
        return {"id": wid, "kind": "policy_update", "status": status, "platform": pid, "rule_id": rule_id,
                "effective_date": eff, "first_seen": days(1).isoformat(), "last_seen": days(1).isoformat(),
                "url": f"https://www.{pid}.com/", "dismissed_at": days(2).isoformat() if status == "dismissed" else None}
    warnings = [notice("w1", "linkedin", "linkedin.genai-training", "2025-11-03"),
                notice("w2", "reddit", "reddit.ai-licensing", None),
                notice("w3", "github", "github.copilot-training", "2026-04-24", "dismissed")]
    history = [{"rule_id": "x.grok-training", "platform": "x", "state": "off", "observed_at": days(3).isoformat()}]
    r = validate(build_report(warnings, history, shipped_pack()["rules"], TODAY, region="DE"))
    assert [p["platform"] for p in r["platforms"]] == ["github", "linkedin", "reddit", "x"]
    assert [p["status"] for p in r["platforms"]] == ["policy_change_coming", "policy_change_coming",
                                                     "policy_in_effect", "training_off"]
    assert platform(r, "reddit")["has_setting"] is False and platform(r, "linkedin")["has_setting"] is True
    assert platform(r, "reddit")["notices"][0]["in_effect"] is None  # no date: neither coming nor in effect
    assert platform(r, "github")["notices"][0]["days_left"] == 181
    assert r["summary"]["policy_changes_coming"] == 2 and r["region"] == "DE"
    html = render_html(r)
    assert "The one platform whose setting consentwatch has seen does not train AI on your data; 3 more" in html
    assert "No effective date given" in html and "no setting to watch here" in html
    assert "Setting not seen yet" in html and "You dismissed it." in html and "region DE" in html
    gh = re.search(r'data-platform="github".*?</article>', html, re.S).group(0)
    assert gh.count('class="badge') == 1 and "Policy change in 181 days" in gh
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert svg.count('class="mark-notice"') == 3 and "policy notice, no date given" in svg


@pytest.mark.parametrize("states,expected", [
    ({"x": "on"}, "The platform you use trains AI on your data right now."),
    ({"x": "off"}, "The platform you use is not training AI on your data, as far as consentwatch has seen."),
    ({"x": "on", "linkedin": "off"}, "1 of the 2 platforms you use trains AI on your data right now."),
    ({"x": "on", "linkedin": "on", "wordpress": "off"}, "2 of the 3 platforms you use train AI"),
    ({"x": "off", "linkedin": "off"}, "None of the 2 platforms you use is training AI on your data"),
])
def test_headline(states, expected):
    rule = {"x": "x.grok-training", "linkedin": "linkedin.genai-training", "wordpress": "wordpress.third-party-sharing"}
    history = [{"rule_id": rule[p], "platform": p, "state": st, "observed_at": days(1).isoformat()}
               for p, st in states.items()]
    r = build_report([], history, shipped_pack()["rules"], TODAY)
    assert expected in render_html(r)
    assert expected in render_markdown(r)


def test_dismissed_warning_is_still_training_on(data_dir):
    fill(data_dir, ("x-on", days(1)))
    watch = Watch(data_dir)
    try:
        (w,) = watch.state.list_warnings("all")
        watch.state.dismiss(w["id"], when=days(3))
    finally:
        watch.close()
    r = validate(collect(data_dir, TODAY))
    x = platform(r, "x")
    assert x["status"] == "training_on"  # dismissing a warning does not switch anything off
    assert x["settings"][0]["warning"] == {"id": w["id"], "status": "dismissed", "dismissed_at": days(3).isoformat()}
    html = render_html(r)
    assert "Warning dismissed" in html and "You dismissed the warning" in html


def test_empty_state_explains_what_to_do_and_writes_nothing(tmp_path):
    empty = tmp_path / "nothing-yet"
    empty.mkdir()
    r = validate(collect(empty, TODAY))
    assert r["platforms"] == [] and r["span"] is None and r["summary"]["platforms_seen"] == 0
    assert r["not_seen"][0]["name"] == "LinkedIn"  # the rule pack's order: the best-known platforms first
    html = render_html(r)
    for must in ("Nothing observed yet", "consentwatch run", "consentwatch replay", "certificate", "extension"):
        assert must in html
    assert "<svg" not in html
    text = render_markdown(r)
    assert "consentwatch run" in text and "consentwatch replay" in text
    assert list(empty.iterdir()) == [], "a report must not create files in the data dir"


def test_two_hundred_changes_stay_readable(data_dir):
    steps = [("li-on" if i % 2 == 0 else "li-off", T0 + dt.timedelta(hours=13 * i)) for i in range(200)]
    fill(data_dir, *steps)
    r = validate(collect(data_dir, dt.date(2026, 1, 10)))
    (s,) = platform(r, "linkedin")["settings"]
    assert s["changes_total"] == 200 and len(s["changes"]) == 200
    assert s["times_turned_off"] == 100 and len(s["reenabled_at"]) == 99
    assert s["state"] == "off" and s["reenabled_now"] is False
    assert sum(m["turned_on"] + m["turned_off"] for m in s["changes_by_month"]) == 200
    months = [m["month"] for m in s["changes_by_month"]]
    assert months == ["2025-09", "2025-10", "2025-11", "2025-12", "2026-01"]  # 200 x 13 h from 20 Sep

    html = render_html(r)
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    # the timeline is drawn in bins, not 200 slivers, and the 99 re-enables are a count, not 99 markers
    assert len(re.findall(r"<rect class=\"seg-", svg)) < 40
    assert "mark-reenable\"" not in svg and "re-enabled 99 times" in svg
    # the page lists the latest changes and a per-month table, not 200 rows
    history = re.search(r'<details class="history">.*?</details>', html, re.S).group(0)
    assert history.count("<tr>") == 1 + RECENT_CHANGES + 1 + len(months)
    assert "200 observed changes" in history
    assert len(html) < 60_000
    assert render_markdown(r).count("training switched") == RECENT_CHANGES


def test_few_changes_are_all_listed_and_marked(story):
    html = render_report(story, "html", TODAY)[1]
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert svg.count('class="mark-reenable"') == 1
    assert svg.count('class="mark-notice"') == 1
    assert "Today, 25 Oct 2025" in svg
    for name in ("LinkedIn", "X", "WordPress.com", "Data for Generative AI Improvement"):
        assert f">{name}</text>" in svg
    li = re.search(r'data-platform="linkedin".*?</article>', html, re.S).group(0)
    assert "Re-enabled after you opted out" in li and "Policy change in 9 days" in li
    assert "You opted out" in li and "22 Sep 2025" in li and "First seen" in li
    assert 'href="https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"' in li
    assert "Takes effect 3 Nov 2025, in 9 days" in li


def test_same_input_same_report(story):
    assert render_report(story, "html", TODAY) == render_report(story, "html", TODAY)
    assert render_report(story, "json", TODAY) == render_report(story, "json", TODAY)


def test_only_stored_facts_never_page_content_or_query_strings(tmp_path, data_dir):
    flows = [
        write_flow(tmp_path / "a.flow", LINKEDIN_URL + "?trk=SECRET_QUERY_TOKEN", linkedin_page(True) +
                   b"<p>PRIVATE_PAGE_TEXT of the member</p>", timestamp=1_760_000_000),
        write_flow(tmp_path / "b.flow", NOTICE_URL + "?session=SECRET_QUERY_TOKEN",
                   f'<div role="dialog">{NOTICE_TEXT} PRIVATE_PAGE_TEXT</div>'.encode(), timestamp=1_760_000_100),
    ]
    assert cli("replay", "--data-dir", str(data_dir), *map(str, flows)).returncode == 0
    for fmt in ("html", "json", "md"):
        text = render_report(data_dir, fmt, TODAY)[1]
        for secret in ("SECRET_QUERY_TOKEN", "SECRET_COOKIE_VALUE", "SECRET_AUTH_TOKEN", "PRIVATE_PAGE_TEXT",
                       "We're updating our Privacy Policy", "trk="):
            assert secret not in text, (fmt, secret)
        assert "LinkedIn" in text


def test_render_report_formats(story):
    for fmt, ctype in CONTENT_TYPES.items():
        got_type, text = render_report(story, fmt, TODAY)
        assert got_type == ctype and text
    validate(render_report(story, "json", TODAY)[1])
    with pytest.raises(ValueError, match="unknown report format"):
        render_report(story, "pdf")
    with pytest.raises(ValueError):
        render({"platforms": []}, "xml")


# -- hostile data (an imported rule pack is somebody else's text) -----------------------------------------------

EVIL = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&</style>\u202e[x](javascript:alert(3))'


def hostile_report() -> dict:
    rule = {
        "id": "evil.x", "platform": "evil", "platform_name": "Evil " + EVIL, "title": "T " + EVIL,
        "summary": "S " + EVIL, "hosts": ["evil.example"],
        "setting": {"name": "N " + EVIL},
        "remedy": {"settings_url": "javascript:alert(4)", "steps": ["# step " + EVIL, "1. " + EVIL],
                   "note": "note " + EVIL},
        "sources": ["javascript:alert(5)", "https://ok.example/src"], "last_verified": "2025-01-01",
    }
    warnings = [
        {"id": "w-1", "kind": "toggle_on", "status": "active", "platform": "evil", "platform_name": EVIL,
         "rule_id": "evil.x", "title": EVIL, "setting": EVIL, "state": "on", "url": "https://evil.example/a",
         "first_seen": days(0).isoformat(), "last_seen": days(1).isoformat(),
         "remedy": {"settings_url": "data:text/html,<script>alert(6)</script>", "steps": [EVIL]}},
        {"id": "w-2", "kind": "policy_update", "status": "active", "platform": "evil", "rule_id": "evil.x",
         "title": EVIL, "url": 'https://evil.example/"><script>alert(7)</script>', "effective_date": "2025-11-01",
         "first_seen": days(2).isoformat(), "last_seen": days(2).isoformat()},
    ]
    history = [{"rule_id": "evil.x", "platform": "evil", "state": "on", "observed_at": days(0).isoformat(),
                "url": "https://evil.example/a", "setting": EVIL}]
    return build_report(warnings, history, [rule], TODAY, rules_version=EVIL)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs


def test_hostile_strings_are_text_in_html():
    r = validate(hostile_report())
    html = render_html(r)
    parser = _Tags()
    parser.feed(html)
    allowed = {"html", "head", "meta", "title", "style", "body", "main", "header", "footer", "section", "article",
               "div", "p", "h1", "h2", "h3", "h4", "span", "strong", "b", "ul", "ol", "li", "dl", "dt", "dd",
               "details", "summary", "table", "tr", "th", "td", "time", "a", "code", "br",
               "svg", "defs", "pattern", "rect", "g", "text", "line", "path", "circle", "desc"}
    assert parser.tags <= allowed, parser.tags - allowed
    assert not [a for a, _ in parser.attrs if a.startswith("on")]
    hrefs = [v for a, v in parser.attrs if a == "href"]
    assert hrefs == ["https://ok.example/src"], hrefs  # javascript: and data: never become links
    assert "<script" not in html and "<img" not in html and "\u202e" not in html
    assert html.count("</style>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" not in html
    assert "default-src 'none'" in html


def test_hostile_strings_are_inert_in_markdown():
    text = render_markdown(hostile_report())
    # every < and every ] is escaped, except the <https://...> autolinks made on purpose
    assert not re.search(r"(?<!\\)<(?!https://)", text)
    assert not re.search(r"(?<!\\)\]", text)
    assert "\\<script\\>" in text and "\\[x\\](javascript:alert(3))" in text
    assert "\n# step" not in text and "\n1. 1." not in text
    assert "<javascript" not in text and "<data:" not in text
    assert md("1. item", start=True) == "1\\. item" and md("- item", start=True) == "\\- item"
    assert md("# x") == "\\# x" and md("a & b") == "a & b" and md("&amp;") == "\\&amp;"


def test_garbage_in_the_store_does_not_break_the_report():
    warnings = [None, 3, {"kind": "toggle_on"}, {"rule_id": "linkedin.genai-training", "kind": "toggle_on",
                                                 "first_seen": "not a date", "state": "maybe"},
                {"rule_id": "x.grok-training", "kind": "policy_update", "effective_date": "soon", "status": "weird",
                 "first_seen": "yesterday", "dismissed_at": 12}]
    history = [{"rule_id": "linkedin.genai-training", "state": "on", "observed_at": "yesterday"},
               {"rule_id": "x.grok-training", "state": "sideways", "observed_at": days(1).isoformat()},
               {"no": "rule"}, "junk"]
    r = validate(build_report(warnings, history, shipped_pack()["rules"], TODAY))
    assert {p["platform"] for p in r["platforms"]} == {"linkedin", "x"}
    assert platform(r, "x")["notices"][0]["effective_date"] is None
    render_html(r)
    render_markdown(r)


# -- the command ----------------------------------------------------------------------------------------------


def test_cli_html_to_stdout_by_default(story):
    res = cli("report", "--data-dir", str(story), "--today", "2025-10-25")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("<!doctype html>") and "<svg" in res.stdout
    for name in ("LinkedIn", "X", "WordPress.com"):
        assert f">{name}</h3>" in res.stdout
    assert res.stderr == ""


def test_cli_json_validates(story):
    res = cli("report", "--data-dir", str(story), "--format", "json", "--today", "2025-10-25")
    assert res.returncode == 0, res.stderr
    doc = validate(res.stdout)
    assert doc["today"] == "2025-10-25" and doc["summary"]["training_on"] == 2


def test_cli_out_file(story, tmp_path):
    out = tmp_path / "report.html"
    res = cli("report", "--data-dir", str(story), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert "wrote html report" in res.stderr and str(out) in res.stderr
    assert out.read_text("utf-8").startswith("<!doctype html>")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600  # which platforms you use is nobody else's business
    # the suffix picks the format when --format is not given; --format wins over it
    res = cli("report", "--data-dir", str(story), "--out", str(tmp_path / "r.json"))
    assert res.returncode == 0 and validate((tmp_path / "r.json").read_text("utf-8"))
    res = cli("report", "--data-dir", str(story), "--out", str(tmp_path / "r.json"), "--format", "md")
    assert res.returncode == 0 and (tmp_path / "r.json").read_text("utf-8").startswith("# Where you stand")


def test_cli_markdown(story):
    res = cli("report", "--data-dir", str(story), "--format", "md", "--today", "2025-10-25")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# Where you stand on AI training")
    assert "## LinkedIn: Training ON" in res.stdout and "## WordPress.com: Training OFF" in res.stdout


def test_cli_errors_are_one_line(story, tmp_path):
    res = cli("report", "--data-dir", str(story), "--out", str(tmp_path / "missing" / "dir" / "r.html"))
    assert res.returncode == 2 and "cannot write" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = cli("report", "--data-dir", str(story), "--today", "someday")
    assert res.returncode == 2 and "not a date" in res.stderr
    res = cli("report", "--data-dir", str(story), "--format", "pdf")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_cli_after_replay_of_recorded_flows(tmp_path, data_dir):
    """The check in the issue: recordings replayed into a data dir, then `report --out` and `--format json`."""
    flows = [
        write_flow(tmp_path / "li-on.flow", LINKEDIN_URL, linkedin_page(True), timestamp=1_758_000_000),
        write_flow(tmp_path / "li-off.flow", LINKEDIN_URL, linkedin_page(False), timestamp=1_758_200_000),
        write_flow(tmp_path / "wp.flow", WP_URL, BODIES["wp-on"][2], "application/json", timestamp=1_758_100_000),
        write_flow(tmp_path / "x.flow", X_URL, BODIES["x-on"][2], "application/json", timestamp=1_758_300_000),
    ]
    assert cli("replay", "--data-dir", str(data_dir), *map(str, flows)).returncode == 0
    out = tmp_path / "report.html"
    assert cli("report", "--data-dir", str(data_dir), "--out", str(out)).returncode == 0
    html = out.read_text("utf-8")
    assert "<svg" in html
    for name in ("LinkedIn", "X", "WordPress.com"):
        assert f">{name}</h3>" in html
    res = cli("report", "--data-dir", str(data_dir), "--format", "json")
    doc = validate(res.stdout)
    assert {p["platform"]: p["status"] for p in doc["platforms"]} == {
        "linkedin": "training_off", "wordpress": "training_on", "x": "training_on"}


def _fixture_flows() -> list[Path]:
    return sorted(p for plat in ("linkedin", "x", "wordpress") for p in (FIXTURES / plat).glob("*.flow"))


@pytest.mark.skipif(not _fixture_flows(), reason="no recorded fixture flows under tests/fixtures/ yet")
def test_cli_report_over_the_recorded_fixtures(tmp_path, data_dir):
    flows = _fixture_flows()
    res = cli("replay", "--data-dir", str(data_dir), *map(str, flows))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "report.html"
    res = cli("report", "--data-dir", str(data_dir), "--out", str(out))
    assert res.returncode == 0, res.stderr
    doc = validate(cli("report", "--data-dir", str(data_dir), "--format", "json").stdout)
    html = out.read_text("utf-8")
    assert doc["platforms"] and "<svg" in html
    for p in doc["platforms"]:
        assert f">{p['name']}</h3>" in html
