"""End to end: headless Chromium with extension/ loaded, its traffic through the real `consentwatch run`
replaying a recorded LinkedIn settings page (AI-training toggle ON) with no network.

Order matters within this module (one recorded session, as a user would live it): see the warning, read the
popup, route with the PAC switch, then dismiss. The API-down test uses its own `consentwatch run`."""

from __future__ import annotations

import re

import pytest

from .browser_support import html_urls_in_flow, wait_until

FLOW = "linkedin/settings-on.flow"
SETTINGS_PATH = "/mypreferences/d/settings/data-for-ai-improvement"

# The PAC helper functions Chromium gives a PAC script, enough to evaluate ours in a page.
PAC_HELPERS = r"""
function isPlainHostName(h) { return h.indexOf('.') < 0; }
function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) === d; }
function localHostOrDomainIs(h, hd) { return h === hd || (h.indexOf('.') < 0 && hd.indexOf(h + '.') === 0); }
function dnsDomainLevels(h) { return h.split('.').length - 1; }
function shExpMatch(s, p) {
  const re = p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp('^' + re + '$').test(s);
}
function isResolvable() { return false; }
function dnsResolve() { return null; }
function myIpAddress() { return '127.0.0.1'; }
function isInNet() { return false; }
function weekdayRange() { return true; }
function dateRange() { return true; }
function timeRange() { return true; }
"""


@pytest.fixture(scope="module")
def run(real_run_factory):
    return real_run_factory(FLOW)


@pytest.fixture(scope="module")
def settings_url(run) -> str:
    urls = [u for u in html_urls_in_flow(run.flow) if "linkedin.com" in u]
    assert urls, f"no LinkedIn HTML page recorded in {run.flow}"
    return next((u for u in urls if SETTINGS_PATH in u), urls[0])


@pytest.fixture(scope="module")
def browser(launch_extension, run):
    return launch_extension(proxy_port=run.proxy_port)


def banner(page):
    return page.locator("[data-consentwatch-banner]")


def active(run) -> list[dict]:
    return run.warnings("active")


def test_badge_counts_warning_and_banner_names_linkedin(browser, run, settings_url, artifacts):
    browser.pair(run.base, run.token)
    browser.wait_conn("connected")
    page = browser.context.new_page()
    page.goto(settings_url, wait_until="domcontentloaded")

    warnings = wait_until(lambda: active(run), 20, what="a warning from consentwatch after loading the page")
    assert any(w["platform"] == "linkedin" for w in warnings), warnings
    browser.wait_badge(str(len(warnings)))

    banner(page).wait_for(timeout=15_000)
    assert "LinkedIn" in banner(page).inner_text()
    assert banner(page).get_attribute("data-platform") == "linkedin"
    text = banner(page).locator(".card").inner_text()
    w = next(w for w in warnings if w["platform"] == "linkedin")
    for step in w["remedy"]["steps"][:3]:
        assert step.lower() in text.lower(), step
    assert "Open LinkedIn setting" in text

    page.wait_for_timeout(300)  # the card's 180 ms fade-in
    page.screenshot(path=str(artifacts / "banner-linkedin-page.png"))
    box = banner(page).locator(".card").bounding_box()
    pad = 16
    page.screenshot(path=str(artifacts / "banner.png"), clip={
        "x": box["x"] - pad, "y": max(0, box["y"] - pad), "width": box["width"] + 2 * pad, "height": box["height"] + 2 * pad})


def test_popup_lists_warnings_by_platform(browser, run, settings_url, artifacts):
    warnings = active(run)
    w = next(w for w in warnings if w["platform"] == "linkedin")
    popup = browser.open_popup(height=760)
    popup.get_by_text(re.compile(r"Watching · \d+ warnings?")).wait_for()
    group = popup.locator("section.group[data-platform=linkedin]")
    assert group.locator("h2").inner_text().startswith("LinkedIn")
    card = group.locator(f"article[data-warning-id='{w['id']}']")
    text = card.inner_text()
    assert w["title"] in text
    if w.get("summary"):
        assert w["summary"] in text
    assert "First seen" in text  # since when
    for step in w["remedy"]["steps"]:
        assert step[:1].upper() + step[1:] in text
    region = {True: "Applies where you live", False: "Not in force where you live", None: "Not checked"}
    assert region[w.get("region_affected")] in text
    assert popup.get_by_role("button", name="Full privacy report").is_visible()
    popup.screenshot(path=str(artifacts / "popup.png"), full_page=True)

    # The button opens the platform's own setting page in a new tab. (The recording answers only the URL it
    # recorded, query string included, so the tab may show an error page: what matters is where it went.)
    target = (w["remedy"]["settings_url"] or w["url"]).rstrip("/")
    cdp = browser.context.new_cdp_session(popup)

    def tab_urls():
        return [t["url"] for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]

    with browser.context.expect_page() as opened:
        card.get_by_role("button", name="Open LinkedIn setting").click()
    wait_until(lambda: any(u.rstrip("/") == target for u in tab_urls()), 10, what=f"a tab on {target}")
    opened.value.close()


def test_banner_appears_when_warning_arrives_after_page_load(launch_extension, run, settings_url):
    fresh = launch_extension(proxy_port=run.proxy_port)
    page = fresh.context.new_page()
    page.goto(settings_url, wait_until="domcontentloaded")
    page.wait_for_timeout(500)
    assert banner(page).count() == 0  # not paired yet: no warnings known
    fresh.pair(run.base, run.token)  # the warnings now reach the worker, and it pushes them to the open tab
    banner(page).wait_for(timeout=15_000)
    assert "LinkedIn" in banner(page).inner_text()
    fresh.wait_badge(str(len(active(run))))
    fresh.context.close()


def test_report_link_opens_the_privacy_report(browser, run):
    popup = browser.open_popup()
    with browser.context.expect_page() as opened:
        popup.get_by_role("button", name="Full privacy report").click()
    report = opened.value
    report.wait_for_load_state("domcontentloaded")
    # a one-time ticket, never the token: the URL stays in the browser's history
    assert report.url.startswith(f"{run.base}/report?ticket=") and run.token not in report.url
    assert "LinkedIn" in report.locator("body").inner_text()
    # the URL left in history opens nothing: the ticket was used
    assert report.reload().status == 401
    report.close()


def evaluate_pac(page, pac: str, hosts: list[str]) -> dict[str, str]:
    return page.evaluate(
        """([helpers, pac, hosts]) => {
            const find = new Function(helpers + pac + '; return FindProxyForURL;')();
            return Object.fromEntries(hosts.map((h) => [h, find('https://' + h + '/', h)]));
        }""",
        [PAC_HELPERS, pac, hosts],
    )


def test_pac_switch_routes_only_rule_hosts(launch_extension, run, settings_url, artifacts):
    # No --proxy-server here: the extension's PAC is the only way to the proxy.
    b = launch_extension()
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    assert b.eval("() => chrome.proxy.settings.get({})")["value"]["mode"] == "system"

    popup = b.open_popup(height=760)
    toggle = popup.locator("#routing-toggle")
    toggle.wait_for()
    assert not toggle.is_checked()
    toggle.click()
    wait_until(lambda: popup.locator("#routing-toggle").is_checked(), 10, what="the switch to stay on")
    popup.get_by_text("Only the watched platforms go through consentwatch").wait_for()

    served = run.get("/v1/proxy.pac")
    setting = b.eval("() => chrome.proxy.settings.get({})")
    assert setting["levelOfControl"] == "controlled_by_this_extension"
    assert setting["value"]["mode"] == "pac_script"
    assert setting["value"]["pacScript"]["data"] == served

    # Only rule hosts would go to the proxy: evaluate the PAC the browser holds.
    rule_hosts = sorted({h for r in run.get("/v1/rules")["rules"] for h in r["hosts"]})
    concrete = [h.replace("*.", "news.") for h in rule_hosts]
    others = ["example.org", "www.google.com", "accounts.google.com", "linkedin.com.evil.example", "notlinkedin.com",
              "evil-x.com", "127.0.0.1", "localhost", "substack.com.example", "mail.proton.me"]
    page = b.context.new_page()
    page.goto("about:blank")
    verdicts = evaluate_pac(page, setting["value"]["pacScript"]["data"], concrete + others)
    proxy = f"PROXY 127.0.0.1:{run.proxy_port}"
    for h in concrete:
        assert verdicts[h].startswith(proxy), (h, verdicts[h])
    for h in others:
        assert verdicts[h] == "DIRECT", (h, verdicts[h])

    # And the browser really does it: the platform page comes from the proxy (recorded, offline) ...
    page.goto(settings_url, wait_until="domcontentloaded")
    assert "linkedin" in page.content().lower()
    banner(page).wait_for(timeout=15_000)
    # ... while any other site goes DIRECT (and, with DNS blocked in this browser, fails to resolve).
    with pytest.raises(Exception, match="ERR_NAME_NOT_RESOLVED"):
        page.goto("https://example.org/", wait_until="domcontentloaded")
    popup.bring_to_front()
    popup.screenshot(path=str(artifacts / "popup-routing-on.png"), full_page=True)

    toggle.click()
    wait_until(lambda: b.eval("() => chrome.proxy.settings.get({})")["value"]["mode"] == "system", 10,
               what="the proxy setting to be cleared")
    assert not popup.locator("#routing-toggle").is_checked()
    b.context.close()


def test_dismiss_lowers_badge_and_api_shows_dismissed(browser, run, settings_url):
    before = active(run)
    w = next(w for w in before if w["platform"] == "linkedin")
    page = browser.context.new_page()
    page.goto(settings_url, wait_until="domcontentloaded")
    banner(page).wait_for(timeout=15_000)

    popup = browser.open_popup()
    popup.locator(f"article[data-warning-id='{w['id']}']").get_by_role("button", name="Dismiss").click()
    browser.wait_badge(str(len(before) - 1) if len(before) > 1 else "")
    statuses = {x["id"]: x["status"] for x in run.warnings("all")}
    assert statuses[w["id"]] == "dismissed"
    assert w["id"] not in {x["id"] for x in active(run)}
    # Gone from the popup and from the open page, without a reload.
    popup.locator(f"article[data-warning-id='{w['id']}']").wait_for(state="detached", timeout=10_000)
    if len(before) == 1:
        banner(page).wait_for(state="detached", timeout=10_000)
        popup.get_by_role("heading", name="Nothing to act on").wait_for()


def test_api_down_popup_says_so_then_recovers(launch_extension, real_run_factory, settings_url, artifacts):
    own = real_run_factory(FLOW)
    b = launch_extension(proxy_port=own.proxy_port)
    b.pair(own.base, own.token)
    page = b.context.new_page()
    page.goto(settings_url, wait_until="domcontentloaded")
    wait_until(lambda: active(own), 20, what="a warning")
    b.wait_badge(str(len(active(own))))

    own.stop()
    b.wait_conn("down", timeout=20)
    popup = b.open_popup()
    popup.get_by_role("heading", name="consentwatch is not running").wait_for()
    assert "consentwatch run" in popup.locator("#notice").inner_text()
    assert popup.locator("#status").inner_text().strip().startswith("Not watching")
    popup.screenshot(path=str(artifacts / "popup-api-down.png"), full_page=True)

    own.start()  # same ports, same data dir: the worker's backoff finds it again by itself
    b.wait_conn("connected", timeout=40)
    popup.get_by_text(re.compile(r"Watching · \d+ warnings?")).wait_for(timeout=10_000)
    assert popup.locator("#notice").is_hidden()
    b.context.close()
