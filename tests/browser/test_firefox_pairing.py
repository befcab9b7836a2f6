"""One-click pairing in Firefox (issue 15 point 3): Debian's firefox-esr with the extension loaded by `web-ext run`, a
fresh HOME where `consentwatch trust --browser firefox` put the pairing host (~/.mozilla/native-messaging-hosts,
admitted by the add-on's gecko id), the real `consentwatch run`. Click Pair, confirm the address, paired; the
routing box, checked, meets Firefox's private-windows rule and says where to allow it."""

from __future__ import annotations

import pytest

from .browser_support import wait_until
from .firefox_support import ExtFirefox, firefox_prerequisites, trust_ca


@pytest.fixture(scope="module")
def firefox_path() -> str:
    return firefox_prerequisites()


def test_pair_in_one_click_in_firefox(firefox_path, real_run_factory, tmp_path, artifacts):
    run = real_run_factory()
    home, profile = tmp_path / "home", tmp_path / "profile"
    home.mkdir()
    profile.mkdir()
    out = trust_ca(profile, home, run.data_dir)  # the CA into this profile, and the pairing host for Firefox
    manifest = home / ".mozilla" / "native-messaging-hosts" / "consentwatch.pairing.json"
    assert f"{manifest}: pairing host installed" in out, out
    ff = ExtFirefox(firefox_path, profile, home, artifacts / "firefox-pairing-web-ext.log")
    try:
        ff.start()
        ff.open_ext_page("options.html")
        ff.wait_css("[data-pair=start]").click()
        ff.wait_css(".pair-confirm", 20)
        assert run.base in ff.text(".pair-question")
        ff.click("[data-pair=accept]")
        # the routing box came checked; this add-on may not run in private windows yet, so Firefox refuses the proxy
        # setting: paired all the same, and the outcome says where to allow it
        result = wait_until(lambda: (t := ff.text(".pair-result")) and f"Paired with consentwatch at {run.base}." in t and t,
                            20, what="paired")
        assert "Routing is still off" in result and "Run in Private Windows" in result, result
        assert ff.ext_call("browser.storage.local.get(['apiBase', 'token'])")["value"] == {"apiBase": run.base,
                                                                                           "token": run.token}
        ff.open_ext_page("popup.html")
        # paired: the popup moves past pairing to the next step (the route), never to a "Watching" it cannot prove
        wait_until(lambda: ff.text("#status-text") == "Not watching" and ff.m.execute_script("return document.querySelector('#notice').dataset.reason || ''") not in
                   (None, "", "unpaired", "unauthorized"), 20, what="the popup to move past pairing")
        ff.screenshot(artifacts / "firefox-pairing-popup.png")
    finally:
        ff.stop()
