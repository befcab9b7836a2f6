"""The page eye in real Chromium with the real extension and the real `consentwatch run`: single-page apps whose
script fetches the state under a key no rule knows and draws the switch later (tests/browser/spa_pages.py).

Through the proxy, replaying recordings: ON gives the badge, the popup entry (seen by the page) and the banner;
OFF gives no warning (yet the page eye did read it: the report says OFF, seen in the page); flipping the switch
resolves the warning live. Without the proxy (no route, no CA): the page eye alone still warns. A policy dialog
drawn by the app is a notice. And what the eye sends for a real-shaped page: small, cleaned, live state in it."""

from __future__ import annotations

import json
import re

import pytest

from .browser_support import ConsentwatchRun, wait_until
from .spa_pages import (
    CLAUDE_PAGE, GRAMMARLY_PAGE, LINKEDIN_PAGE, PINTEREST_PAGE, LocalSite, claude_dialog, grammarly,
    linkedin_real_shaped, pinterest, write_recording,
)

RULE = "pinterest.canvas-training"


def banner(page):
    return page.locator("[data-consentwatch-banner]")


def eye_stats(page) -> dict:
    """The page eye's own counters, read in the content script's isolated world (the page cannot see them)."""
    cdp = page.context.new_cdp_session(page)
    contexts: list[dict] = []
    cdp.on("Runtime.executionContextCreated", lambda e: contexts.append(e["context"]))
    cdp.send("Runtime.enable")
    try:
        ctx = wait_until(lambda: next((c for c in contexts if c.get("name") == "consentwatch"
                                       and c.get("auxData", {}).get("type") == "isolated"), None), 5,
                         what="the content scripts' isolated world")
        r = cdp.send("Runtime.evaluate", {"expression": "globalThis.__consentwatchEye.stats()",
                                          "contextId": ctx["id"], "returnByValue": True})
        return r["result"]["value"]
    finally:
        cdp.detach()


def start_run(tmp_path_factory, artifacts, name: str, entries) -> ConsentwatchRun:
    tmp = tmp_path_factory.mktemp(name)
    flow = write_recording(tmp / f"{name}.flow", entries)
    data = tmp / "data"
    data.mkdir()
    return ConsentwatchRun(flow, data, artifacts / f"consentwatch-run-{name}.log").start()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, artifacts):
    started = []

    def make(name, entries):
        run = start_run(tmp_path_factory, artifacts, name, entries)
        started.append(run)
        return run

    yield make
    for run in started:
        run.stop()


def report(run) -> dict:
    return run.get("/report?format=json")


def test_switch_on_gives_badge_popup_and_banner_then_flipping_it_resolves(runs, launch_extension, artifacts):
    run = runs("pinterest-on", pinterest(True))
    b = launch_extension(proxy_port=run.proxy_port)
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    page = b.context.new_page()
    page.goto(PINTEREST_PAGE, wait_until="domcontentloaded")

    [w] = wait_until(lambda: run.warnings(), 20, what="a warning from the page eye")
    assert (w["rule_id"], w["kind"], w["state"], w["seen_by"]) == (RULE, "toggle_on", "on", ["page"])
    assert w["url"] == PINTEREST_PAGE  # the page, not the JSON the proxy saw
    b.wait_badge("1")
    banner(page).wait_for(timeout=15_000)
    assert "Pinterest" in banner(page).inner_text()

    popup = b.open_popup(height=760)
    popup.get_by_text("Watching · 1 warning").wait_for(timeout=10_000)
    group = popup.locator("section.group[data-platform=pinterest]")
    assert group.locator(".eyes").inner_text() == "Seen by the page"
    assert group.locator(".eyes").get_attribute("data-seen-by") == "page"
    assert w["title"] in group.locator(f"article[data-warning-id='{w['id']}']").inner_text()
    popup.screenshot(path=str(artifacts / "popup-page-eye.png"), full_page=True)

    # The user flips the switch in the page: seen live, the warning resolves, badge and banner follow.
    page.bring_to_front()
    page.get_by_role("switch", name="Use your data to train Pinterest Canvas").click()
    wait_until(lambda: run.warnings() == [], 15, what="the warning to resolve")
    b.wait_badge("")
    banner(page).wait_for(state="detached", timeout=10_000)
    [gone] = run.warnings("all")
    assert gone["status"] == "resolved" and gone["state"] == "off"
    setting = next(s for p in report(run)["platforms"] if p["platform"] == "pinterest" for s in p["settings"])
    assert [c["state"] for c in setting["changes"]] == ["on", "off"]

    # ... and on again: a silent re-enable is what it would look like (here the user did it)
    page.get_by_role("switch", name="Use your data to train Pinterest Canvas").click()
    again = wait_until(lambda: run.warnings(), 15, what="the warning raised again")
    assert again[0]["kind"] == "toggle_reenabled"
    b.wait_badge("1")

    # Idle, the page eye costs nothing: no timer waits once the page stopped changing (the last re-reads of the
    # watched region end 16 s after the last change).
    stats = wait_until(lambda: (s := eye_stats(page)) and not s["timersPending"] and s, 40, interval=1,
                       what="the page eye to go idle")
    assert stats["watching"] and stats["tracked"] >= 1 and stats["sent"] >= 3 and stats["errors"] == 0
    page.wait_for_timeout(1500)
    later = eye_stats(page)
    assert later["batches"] == stats["batches"] and later["timers"] == stats["timers"]
    b.context.close()


def test_switch_off_gives_nothing_but_was_read(runs, launch_extension):
    run = runs("pinterest-off", pinterest(False))
    b = launch_extension(proxy_port=run.proxy_port)
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    page = b.context.new_page()
    page.goto(PINTEREST_PAGE, wait_until="domcontentloaded")
    page.get_by_role("switch", name="Use your data to train Pinterest Canvas").wait_for(timeout=15_000)
    # The page eye read it: the report knows the setting is OFF, seen in the page ...
    platforms = wait_until(lambda: [p for p in report(run)["platforms"] if p["platform"] == "pinterest"], 15,
                           what="the OFF state in the report")
    assert platforms[0]["status"] == "training_off" and platforms[0]["seen_by"] == ["page"]
    # ... and nothing warns.
    page.wait_for_timeout(1000)
    assert run.warnings("all") == []
    assert b.badge() == ""
    assert banner(page).count() == 0
    b.context.close()


def test_without_the_proxy_the_page_eye_still_warns(runs, launch_extension, request):
    """No --proxy-server and routing off: the platform's pages never reach consentwatch's proxy (here the test
    serves them in the browser itself), the CA is trusted nowhere. The page eye alone sees the setting."""
    run = runs("no-route", pinterest(False))  # only the API matters here
    site = LocalSite(grammarly(True)).start()
    request.addfinalizer(site.stop)
    b = launch_extension(args=[site.resolver_rule])
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    assert b.eval("() => chrome.proxy.settings.get({})")["value"]["mode"] == "system"
    # two platform tabs loading at the same moment: both get their banner
    page = b.context.new_page()
    other = b.context.new_page()
    page.goto(GRAMMARLY_PAGE, wait_until="commit")
    other.goto(GRAMMARLY_PAGE + "?tab=2", wait_until="commit")

    [w] = wait_until(lambda: run.warnings(), 20, what="a warning with no proxy in the way")
    assert "/api/v2/account/prefs" in site.requests  # the app fetched its state straight from the site
    assert (w["rule_id"], w["state"], w["seen_by"]) == ("grammarly.product-training", "on", ["page"])
    b.wait_badge("1")
    banner(page).wait_for(timeout=15_000)
    banner(other).wait_for(timeout=15_000)

    # the native checkbox, flipped by the user: a property change that only the change event tells
    page.bring_to_front()
    page.locator("label.toggle").click()
    wait_until(lambda: run.warnings() == [], 15, what="the warning to resolve")
    b.wait_badge("off")  # no warning left, and routing is off: the icon says it is not watching the traffic
    banner(other).wait_for(state="detached", timeout=10_000)
    b.context.close()


def test_a_policy_dialog_drawn_by_the_app_is_a_notice(runs, launch_extension):
    run = runs("claude", claude_dialog())
    b = launch_extension(proxy_port=run.proxy_port)
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    page = b.context.new_page()
    page.goto(CLAUDE_PAGE, wait_until="domcontentloaded")
    ws = wait_until(lambda: (ws := run.warnings()) and len(ws) >= 2 and ws, 20, what="the notice and the switch")
    kinds = {w["kind"]: w for w in ws}
    assert kinds["policy_update"]["effective_date"] == "2025-10-08"
    assert kinds["policy_update"]["seen_by"] == ["page"]
    assert kinds["toggle_on"]["rule_id"] == "anthropic.claude-training"
    b.wait_badge(str(len(ws)))
    b.context.close()


def test_what_the_page_eye_sends_for_a_real_shaped_page(launch_extension, fake_api, artifacts, request):
    site = LocalSite(linkedin_real_shaped()).start()
    request.addfinalizer(site.stop)
    b = launch_extension(args=[site.resolver_rule])
    b.pair(fake_api.base, fake_api.token)
    b.wait_conn("connected")
    page = b.context.new_page()
    page.goto(LINKEDIN_PAGE + "?trk=SECRET_TRACKING#frag", wait_until="domcontentloaded")
    sent = wait_until(lambda: [o for o in fake_api.observations if o["reason"] == "setting"], 15,
                      what="an observation")
    body = sent[0]
    assert set(body) == {"url", "html", "reason"}
    assert body["url"] == LINKEDIN_PAGE  # no query string, no fragment
    html = body["html"]
    (artifacts / "page-eye-observation.json").write_text(json.dumps(body, indent=2))
    # the live state is in the markup: the checkbox's checked property, aria-checked as it is
    assert re.search(r'<input role="switch" aria-checked="true" type="checkbox" id="adToggle_ember77" '
                     r'class="artdeco-toggle__button" checked>', html), html
    assert '<label for="adToggle_ember77" class="artdeco-toggle__label">' in html
    assert "Use my data for training content creation AI models" in html
    # the smallest region: the toggle, not the page around it
    assert html.startswith('<div class="artdeco-toggle') and len(html.encode()) < 1000, html
    for never in ("Member 3", "<script", "<style", "<img", "never sent", "S3CR3T", "TOKEN", "my private search",
                  "value=", "onclick", "data-test", "data-tracking", "trk=", "?"):
        assert never not in html, never
    # the page itself is untouched by the eye
    assert page.locator("#adToggle_ember77").get_attribute("checked") is None
    assert page.evaluate("() => document.querySelector('.artdeco-toggle').outerHTML").count("data-tracking-id") == 1
    b.context.close()
