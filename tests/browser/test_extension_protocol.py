"""The extension's side of the API protocol, driven by a contract fake of the API so the server can be made to
push, drop its sockets, go away and come back at chosen moments. The same behaviours against the real
`consentwatch run` are in test_extension_e2e.py."""

from __future__ import annotations

import time

import pytest

from .browser_support import wait_until
from .fakeapi import FakeApi, linkedin_warning

PAGE = ("<!doctype html><html><head><title>Settings | LinkedIn</title></head><body style='font-family:serif'>"
        "<h1 id=page-title>Data for Generative AI Improvement</h1><p>recorded page stand-in</p></body></html>")


def x_warning(wid="w-x-1"):
    return linkedin_warning(
        wid, platform="x", platform_name="X", rule_id="x.grok-training", title="X trains Grok on your posts",
        hosts=["x.com", "twitter.com"], url="https://x.com/settings/grok_settings",
        remedy={"settings_url": "https://x.com/settings/grok_settings", "steps": ["More", "Settings and privacy"], "note": None},
    )


@pytest.fixture(scope="module")
def browser(launch_extension):
    b = launch_extension()

    def serve(route):
        route.fulfill(status=200, content_type="text/html", body=PAGE)

    # Platform pages are answered by the test itself (no proxy here); everything else finds no DNS.
    b.context.route("https://www.linkedin.com/**", serve)
    b.context.route("https://example.org/**", serve)
    return b


@pytest.fixture(autouse=True)
def fresh_pages(browser):
    yield
    for page in list(browser.context.pages)[1:]:
        page.close()


def banner(page):
    return page.locator("[data-consentwatch-banner]")


def test_unpaired_popup_says_so_and_badge_is_off(browser, fake_api, artifacts):
    browser.pair(fake_api.base, "")  # consentwatch runs (a stopped one would be the first thing to fix), no token
    state = browser.wait_conn("unpaired")
    assert state["warnings"] == []
    browser.wait_badge("off")
    popup = browser.open_popup()
    popup.get_by_role("heading", name="Not watching — not paired yet").wait_for()
    notice = popup.locator("#notice").inner_text()
    assert "Pair with consentwatch" in notice and "Paste a token instead" in notice
    assert popup.locator("#routing").is_hidden()
    popup.screenshot(path=str(artifacts / "popup-not-paired.png"), full_page=True)


def test_push_after_page_load_shows_banner_and_badge(browser, fake_api, artifacts):
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    page = browser.context.new_page()
    page.goto("https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement")
    other = browser.context.new_page()
    other.goto("https://example.org/")
    time.sleep(0.5)
    # no proxy in this module (routing off): the icon says "off" when no warning is counted
    assert banner(page).count() == 0 and browser.badge() == "off"

    fake_api.push(linkedin_warning())  # arrives after the page loaded
    browser.wait_badge("1")
    banner(page).wait_for(timeout=10_000)
    assert "LinkedIn" in banner(page).inner_text()
    assert banner(page).get_attribute("data-platform") == "linkedin"
    card = banner(page).locator(".card").inner_text().lower()
    assert "how to switch it off" in card and "data privacy" in card and "open linkedin setting" in card
    # The page itself is untouched (its own heading and style), and a non-rule host gets no content script.
    assert page.locator("#page-title").inner_text() == "Data for Generative AI Improvement"
    assert other.evaluate("() => !!globalThis.__consentwatchBanner") is False
    assert banner(other).count() == 0

    # A warning for another platform counts on the badge but stays off LinkedIn's page.
    fake_api.push(x_warning())
    browser.wait_badge("2")
    time.sleep(0.3)
    assert banner(page).get_attribute("data-warning-ids") == "w-linkedin-1"

    # Resolved by the server (the user switched it off): badge and banner follow.
    fake_api.resolve("w-linkedin-1")
    browser.wait_badge("1")
    banner(page).wait_for(state="detached", timeout=10_000)
    fake_api.resolve("w-x-1")
    browser.wait_badge("off")


def test_banner_close_hides_and_dismiss_calls_api(browser, fake_api):
    fake_api.push(linkedin_warning())
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_badge("1")
    page = browser.context.new_page()
    page.goto("https://www.linkedin.com/feed/")
    banner(page).wait_for()
    banner(page).get_by_role("button", name="Hide for now").click()
    banner(page).wait_for(state="detached")
    assert browser.badge() == "1"  # hidden on this page only

    page.reload()
    banner(page).wait_for()
    banner(page).get_by_role("button", name="Dismiss").click()
    banner(page).wait_for(state="detached")
    browser.wait_badge("off")
    assert fake_api.warnings["w-linkedin-1"]["status"] == "dismissed"
    assert ("POST", "/v1/warnings/w-linkedin-1/dismiss", f"chrome-extension://{browser.ext_id}") in fake_api.requests


def test_reconnects_after_socket_drop_and_api_restart(browser, fake_api):
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    before = fake_api.ws_connects
    fake_api.drop_sockets()
    wait_until(lambda: fake_api.ws_connects > before, 10, what="a new WebSocket after the drop")
    browser.wait_conn("connected")
    # every socket opened with a fresh one-time ticket, never the token in its URL
    assert fake_api.ws_connects >= 2
    assert not [u for u in fake_api.urls if fake_api.token in u or "token=" in u]
    assert sum(u.startswith("/v1/ws?ticket=") for u in fake_api.urls) == fake_api.ws_connects

    port = fake_api.port
    fake_api.stop()
    browser.wait_conn("down", timeout=10)
    popup = browser.open_popup()
    popup.get_by_role("heading", name="consentwatch is not running").wait_for()

    again = FakeApi(port=port, token=fake_api.token).start()
    try:
        again.warnings["w-linkedin-1"] = linkedin_warning()
        # Backoff retries by itself (no user action); the popup follows live.
        browser.wait_badge("1", timeout=25)
        # connected again, and honest about it: nothing routes the platforms here, so not "Watching"
        popup.locator("#status-text").filter(has_text="Not watching · 1 warning").wait_for(timeout=10_000)
        popup.locator("#notice[data-reason=routing-off]").wait_for()
    finally:
        again.stop()


def test_settings_change_applies_without_restart(browser, fake_api):
    other = FakeApi().start()
    try:
        other.warnings["w-linkedin-1"] = linkedin_warning()
        other.warnings["w-x-1"] = x_warning()
        browser.pair(fake_api.base, fake_api.token)
        browser.wait_conn("connected")
        browser.wait_badge("off")
        browser.pair(other.base, other.token)
        browser.wait_badge("2")
        # the badge can come from the HTTP sync a moment before the WebSocket is up
        wait_until(lambda: other.ws_connects >= 1, 15, what="the WebSocket to the new address")
        # A wrong token: the popup says the token was refused, the badge clears.
        browser.pair(other.base, "not-the-token")
        browser.wait_conn("unauthorized")
        browser.wait_badge("off")
        popup = browser.open_popup()
        popup.get_by_role("heading", name="The token was not accepted").wait_for()
    finally:
        other.stop()


def test_message_allow_list(browser, fake_api):
    fake_api.push(linkedin_warning())
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_badge("1")
    popup = browser.open_popup()
    send = """(msg) => chrome.runtime.sendMessage(msg).then((r) => ({reply: r ?? null}), (e) => ({error: String(e)}))"""
    ok = popup.evaluate(send, {"type": "ui:get-state"})
    assert ok["reply"]["ok"] and ok["reply"]["result"]["warnings"][0]["id"] == "w-linkedin-1"
    # Unknown types, and page:* types from something that is not a content script on a rule host, get nothing.
    for msg in ({"type": "evil"}, {"type": "page:get"}, {"type": "page:dismiss", "id": "w-linkedin-1"}, {"kind": "x"}, "str"):
        got = popup.evaluate(send, msg)
        assert not (got.get("reply") or {}).get("ok"), (msg, got)
    assert fake_api.warnings["w-linkedin-1"]["status"] == "active"


def test_options_page_tests_connection(browser, fake_api, artifacts):
    page = browser.open_page("options.html", 900, 820)
    page.fill("#apiBase", "https://evil.example:8765")
    page.click("#test")
    page.get_by_text("Use http://").wait_for()
    page.fill("#apiBase", fake_api.base)
    page.fill("#token", "wrong")
    page.click("#test")
    page.get_by_text("refused this token").wait_for()
    page.fill("#token", fake_api.token)
    page.click("#save")
    page.locator("#result[data-ok=true]").wait_for()
    assert "Connected to consentwatch" in page.locator("#result").inner_text()
    stored = browser.eval("() => chrome.storage.local.get(['apiBase', 'token'])")
    assert stored == {"apiBase": fake_api.base, "token": fake_api.token}
    browser.wait_conn("connected")
    page.screenshot(path=str(artifacts / "options.png"), full_page=True)


def test_worker_stopped_by_browser_catches_up_on_wake(browser, fake_api):
    """MV3 stops idle workers: the state survives in storage.session and the next event (here the popup)
    wakes the worker, which polls /v1/warnings and reconnects. The alarm does the same once a minute."""
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    alarm = browser.eval("() => chrome.alarms.get('consentwatch-poll')")
    assert alarm and alarm["periodInMinutes"] == 1

    page = browser.context.new_page()
    page.goto("about:blank")
    cdp = browser.context.new_cdp_session(page)
    cdp.send("ServiceWorker.enable")
    cdp.send("ServiceWorker.stopAllWorkers")
    wait_until(lambda: not fake_api.sockets, 10, what="the worker's socket to close with the worker")
    fake_api.warnings["w-linkedin-1"] = linkedin_warning()  # happens while the worker sleeps
    connects = fake_api.ws_connects

    popup = browser.open_popup()
    popup.locator("#status-text").filter(has_text="Not watching · 1 warning").wait_for(timeout=15_000)
    browser.wait_badge("1")
    assert fake_api.ws_connects > connects


def test_routing_switch_stays_disabled_when_render_disables_it(browser, fake_api):
    """consentwatch went away between the popup's last render and the switch's change: the worker says so, render
    disables the switch, and the change handler leaves it that way (it used to re-enable it)."""
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    popup = browser.open_popup()
    toggle = popup.locator("#routing-toggle")
    toggle.wait_for()
    assert toggle.is_enabled()
    fake_api.stop()
    browser.wait_conn("down", timeout=10)
    popup.evaluate("""() => { const t = document.getElementById('routing-toggle');
                              t.checked = true; t.dispatchEvent(new Event('change')); }""")
    popup.wait_for_function("() => /not running/.test(document.getElementById('routing-error').textContent)",
                            timeout=10_000)
    popup.wait_for_timeout(300)
    assert popup.evaluate("() => document.getElementById('routing-toggle').disabled") is True
    assert popup.evaluate("() => document.getElementById('routing-toggle').checked") is False


def test_popup_asks_before_the_page_eye_reads_a_platform_a_newer_pack_added(browser, fake_api):
    """A rule host the manifest does not list gets no content script until the user allows it in the popup."""
    import copy

    rule = copy.deepcopy(next(r for r in fake_api.pack["rules"] if r["id"] == "pinterest.canvas-training"))
    rule.update(id="newco.training", platform="newco", hosts=["www.newco.example", "api.newco.example"])
    fake_api.pack = {**fake_api.pack, "version": "2099.01.01", "rules": [*fake_api.pack["rules"], rule]}
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    popup = browser.open_popup(height=760)
    section = popup.locator("#pages")
    section.wait_for(timeout=10_000)
    assert "www.newco.example" in section.inner_text() and "api.newco" not in section.inner_text()
    assert section.get_by_role("button", name="Allow").is_visible()
    # nothing registered without the user's permission
    assert browser.eval("() => chrome.scripting.getRegisteredContentScripts()") == []
