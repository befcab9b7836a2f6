"""One-click pairing in real Chromium (issue 15 point 3): a fresh HOME, the real `consentwatch run`, the pairing host
installed by `consentwatch trust --pairing-only`, the extension loaded unpacked with the id its manifest key fixes.
Click Pair, confirm the address, and the extension is paired; with the confirmation's routing box (checked by default)
the same click applies the PAC, and on the first-run page of a browser that trusts the CA that one click ends at
"Watching"; unchecked, routing stays off. Test connection saves what it verified; a Chromium started with its own
--user-data-dir looks for the host there, and says what to run when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from consentwatch.native_host import CHROMIUM_EXTENSION_ID

from .browser_support import EXT_DIR, NO_DNS, ExtBrowser, wait_until

NOT_INSTALLED = "pairing helper is not installed for this browser: run “consentwatch trust”"


def launch(pw, chromium_path: str, user_data_dir: Path, home: Path) -> ExtBrowser:
    context = pw.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=chromium_path, headless=True,
        env={**os.environ, "HOME": str(home)},
        args=[f"--disable-extensions-except={EXT_DIR}", f"--load-extension={EXT_DIR}", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
              "--no-default-browser-check", "--lang=en-US", NO_DNS],
    )
    sw = next((w for w in context.service_workers if w.url.startswith("chrome-extension://")), None)
    if sw is None:
        sw = context.wait_for_event("serviceworker", timeout=15_000)
    return ExtBrowser(context, sw.url.split("/")[2])


def trust(home: Path, data_dir: Path, *extra: str, ca: bool = False) -> str:
    """`consentwatch trust` for Chromium in this HOME: the pairing host only, or with ca=True the CA too."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "CHROME_CONFIG_HOME")}
    only = [] if ca else ["--pairing-only"]
    r = subprocess.run([sys.executable, "-m", "consentwatch.cli", "trust", *only, "--browser", "chromium",
                        "--data-dir", str(data_dir), *extra], capture_output=True, text=True, timeout=120,
                       env={**env, "HOME": str(home)})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def result_text(page) -> str:
    """The pairing control's outcome line, without waiting for it (the popup takes the control away once paired)."""
    return page.evaluate("() => { const r = document.querySelector('.pair-result'); return r && !r.hidden ? r.textContent : ''; }")


def pair_on(page, api_base: str, shot: Path | None = None, routing: bool = True) -> None:
    """Click Pair, check the address the confirmation names (and that its routing box starts checked), set the box,
    confirm."""
    page.click("[data-pair=start]")
    page.wait_for_selector(".pair-confirm:not([hidden])", timeout=20_000)
    assert api_base in page.locator(".pair-question").text_content()
    box = page.locator("[data-pair=routing]")
    assert box.is_checked() and "Also turn routing on" in page.locator(".pair-routing").inner_text()
    if not routing:
        box.uncheck()
    if shot:
        page.screenshot(path=str(shot))
    page.click("[data-pair=accept]")


def proxy_setting(browser: ExtBrowser) -> dict:
    return browser.eval("() => chrome.proxy.settings.get({})")


def test_pair_in_one_click_from_the_options_page(pw, chromium_path, real_run_factory, tmp_path, artifacts):
    run = real_run_factory()
    home = tmp_path / "home"
    home.mkdir()
    # Chromium's default user data dir for this HOME: where `trust` puts the host without being told
    browser = launch(pw, chromium_path, home / ".config" / "chromium", home)
    try:
        assert browser.ext_id == CHROMIUM_EXTENSION_ID  # the manifest's key, as Chromium computes it
        options = browser.open_page("options.html", 900, 900)
        # before `consentwatch trust`: one line that says what to run, and the paste fallback is right there
        options.click("[data-pair=start]")
        wait_until(lambda: NOT_INSTALLED in result_text(options), 20, what="not-installed message")
        assert options.locator("#token").is_visible()

        out = trust(home, run.data_dir)
        assert str(home / ".config/chromium/NativeMessagingHosts/consentwatch.pairing.json") in out
        # the running browser finds the host at once: no restart. The routing box unchecked: pairing only
        pair_on(options, run.base, routing=False)
        wait_until(lambda: result_text(options) == f"Paired with consentwatch at {run.base}.", 20, what="paired")
        options.screenshot(path=str(artifacts / "pairing-options-paired.png"))
        saved = browser.eval("() => chrome.storage.local.get(['apiBase', 'token'])")
        assert saved == {"apiBase": run.base, "token": run.token}
        assert options.input_value("#token") == run.token and options.input_value("#apiBase") == run.base
        assert browser.eval("() => chrome.storage.session.get('cwPairOffer')") in ({}, {"cwPairOffer": None})

        popup = browser.open_popup()
        # paired without routing: the next thing the popup asks for is the route, and no PAC was applied
        wait_until(lambda: popup.locator("#notice").get_attribute("data-reason") == "routing-off", 20,
                   what="popup past pairing")
        assert popup.locator("[data-pair=start]").count() == 0
        assert proxy_setting(browser)["levelOfControl"] != "controlled_by_this_extension"
        browser.wait_conn("connected")
    finally:
        browser.context.close()


def test_test_connection_saves_what_it_verified(pw, chromium_path, real_run_factory, tmp_path):
    run = real_run_factory()
    home = tmp_path / "home"
    home.mkdir()
    browser = launch(pw, chromium_path, tmp_path / "profile", home)
    try:
        options = browser.open_page("options.html", 900, 900)
        options.fill("#apiBase", run.base)
        options.fill("#token", "not-the-token-" + "x" * 30)
        options.click("#test")
        wait_until(lambda: "refused this token" in (options.locator("#result").text_content() or ""), 20, what="refused")
        assert browser.eval("() => chrome.storage.local.get(['apiBase', 'token'])") == {}  # a refused token is not kept
        options.fill("#token", run.token)
        options.click("#test")
        wait_until(lambda: "Saved." in (options.locator("#result").text_content() or ""), 20, what="saved")
        assert options.locator("#result").get_attribute("data-ok") == "true"
        assert browser.eval("() => chrome.storage.local.get(['apiBase', 'token'])") == {"apiBase": run.base, "token": run.token}
        browser.wait_conn("connected")
    finally:
        browser.context.close()


def test_a_custom_user_data_dir_looks_there_and_the_popup_pairs(pw, chromium_path, real_run_factory, tmp_path, artifacts):
    run = real_run_factory()
    home = tmp_path / "home"
    home.mkdir()
    trust(home, run.data_dir)  # the default places only
    custom = tmp_path / "custom-profile"
    browser = launch(pw, chromium_path, custom, home)
    try:
        popup = browser.open_popup()
        popup.wait_for_selector("[data-pair=start]", timeout=20_000)
        assert popup.locator("#status-text").text_content() == "Not watching"
        # nothing at the default address (this run has ports of its own): pairing is offered, since it finds them
        # (or, should another consentwatch hold the default port on this machine, it is "not paired" there)
        assert popup.locator("#notice").get_attribute("data-reason") in ("backend-down", "unpaired")
        popup.click("[data-pair=start]")
        # Debian's chromium with --user-data-dir=DIR reads DIR/NativeMessagingHosts, not ~/.config/chromium's
        wait_until(lambda: NOT_INSTALLED in result_text(popup), 20, what="not-installed message")
        popup.screenshot(path=str(artifacts / "pairing-popup-not-installed.png"))

        out = trust(home, run.data_dir, "--chromium-user-data-dir", str(custom))
        assert str(custom / "NativeMessagingHosts" / "consentwatch.pairing.json") in out
        pair_on(popup, run.base, artifacts / "pairing-popup-confirm.png")
        # once paired the popup moves on, past pairing and (the routing box was checked) past routing: this HOME has
        # the pairing host but not the CA, so the self-test through the applied PAC says what is left
        wait_until(lambda: popup.locator("#notice").get_attribute("data-reason") == "ca-untrusted", 30,
                   what="popup past pairing and routing")
        popup.screenshot(path=str(artifacts / "pairing-popup-paired.png"))
        assert popup.locator("[data-pair=start]").count() == 0
        assert popup.locator("#routing-toggle").is_checked()
        assert proxy_setting(browser)["levelOfControl"] == "controlled_by_this_extension"
        assert browser.eval("() => chrome.storage.local.get(['token'])") == {"token": run.token}
    finally:
        browser.context.close()


def test_one_click_on_the_first_run_page_pairs_and_routes_to_watching(pw, chromium_path, real_run_factory, tmp_path,
                                                                      artifacts):
    """The new user's path: `consentwatch trust` (CA and pairing host), the extension installed (its first-run page
    opens), Pair, confirm with the routing box as it comes (checked): the PAC is applied and the self-test passes."""
    run = real_run_factory()
    home = tmp_path / "home"
    home.mkdir()
    out = trust(home, run.data_dir, ca=True)
    assert "pairing host installed" in out and "trusted" in out
    browser = launch(pw, chromium_path, home / ".config" / "chromium", home)
    try:
        first_url = f"{browser.origin}/firstrun.html"
        # the tab the extension opened on install; Playwright may not attach to it, so the same page again if need be
        first = next((p for p in browser.context.pages if p.url == first_url), None) \
            or browser.open_page("firstrun.html", 900, 1000)
        first.set_viewport_size({"width": 900, "height": 1000})
        # the first-run page carries the pairing control itself (no detour through Settings), even while nothing
        # answers at the default address: this run listens on ports of its own, which pairing finds out
        item = first.locator("#checklist li[data-item=paired]")
        item.locator("[data-pair=start]").wait_for(timeout=20_000)
        assert proxy_setting(browser)["levelOfControl"] != "controlled_by_this_extension"
        pair_on(first, run.base, artifacts / "pairing-firstrun-confirm.png")
        wait_until(lambda: f"Paired with consentwatch at {run.base}. Routing is on." in result_text(first)
                   or first.locator("#verdict").get_attribute("data-verdict") == "watching", 20, what="paired and routed")
        # the PAC applied is the API's own (only the rule hosts to the proxy)
        setting = proxy_setting(browser)
        assert setting["levelOfControl"] == "controlled_by_this_extension"
        assert setting["value"]["mode"] == "pac_script"
        applied = setting["value"]["pacScript"]["data"]
        req = urllib.request.Request(f"{run.base}/v1/proxy.pac", headers={"Authorization": f"Bearer {run.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            served = resp.read().decode()
        assert applied.startswith(served)  # the same script (or it with a "re-applied" comment line after it)
        assert f"PROXY 127.0.0.1:{run.proxy_port}" in applied
        assert browser.eval("() => chrome.storage.local.get('routing')")["routing"]["enabled"] is True
        # the self-test proves route and certificate: every item green, "Watching"
        first.locator("#verdict[data-verdict=watching]").wait_for(timeout=40_000)
        done = {li.get_attribute("data-item"): li.get_attribute("data-done") for li in first.locator("#checklist li").all()}
        assert done == {"backend": "true", "paired": "true", "route": "true", "certificate": "true", "page-eye": "true"}
        first.screenshot(path=str(artifacts / "pairing-firstrun-watching.png"), full_page=True)
    finally:
        browser.context.close()
