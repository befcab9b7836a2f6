"""Browser fixtures: Debian's Chromium with extension/ loaded (Playwright for Python), the real
`consentwatch run` serving a recorded fixture, and a contract fake of the API for protocol tests.

Under CI (CI=true) anything missing (Chromium, Playwright, node/web-ext, `consentwatch run`, a fixture)
fails the test; on a developer's machine it skips with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .browser_support import (
    ARTIFACTS, EXT_DIR, NO_DNS, ConsentwatchRun, ExtBrowser, consentwatch_run_available, find_chromium,
    fixture_flow, missing,
)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if not path:
        missing("Chromium not found (apt-get install chromium, or `make browser`)")
    return path


@pytest.fixture(scope="module")
def pw(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (make install)")
    manager = sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def launch_extension(pw, chromium_path, tmp_path_factory):
    """Factory: launch_extension(proxy_port=None, args=[]) -> ExtBrowser (closed at module end)."""
    opened = []

    def launch(proxy_port: int | None = None, args: list[str] | None = None) -> ExtBrowser:
        profile = tmp_path_factory.mktemp("chromium-profile")
        flags = [
            f"--disable-extensions-except={EXT_DIR}",
            f"--load-extension={EXT_DIR}",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--lang=en-US",
            NO_DNS,
            "--ignore-certificate-errors",  # the proxy's CA is not installed in this throwaway profile
        ]
        if proxy_port:
            flags.append(f"--proxy-server=127.0.0.1:{proxy_port}")
        flags += args or []
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium_path, headless=True, args=flags,
            ignore_https_errors=True, viewport={"width": 1280, "height": 800}, locale="en-US",
            timezone_id="UTC",
        )
        opened.append(context)
        sw = next((w for w in context.service_workers if w.url.startswith("chrome-extension://")), None)
        if sw is None:
            sw = context.wait_for_event("serviceworker", timeout=15_000)
        ext_id = sw.url.split("/")[2]
        close_first_run(context, ext_id)
        return ExtBrowser(context, ext_id)

    yield launch
    for context in opened:
        try:
            context.close()
        except Exception:  # noqa: BLE001 (already gone)
            pass


def close_first_run(context, ext_id: str, timeout: float = 5.0) -> None:
    """The extension opens its first-run page on install (tests/browser/test_status.py checks it): closed here, so
    that it neither polls nor takes the foreground from the pages a test opens. Found through CDP: Playwright may
    not attach to a tab the browser opened during launch."""
    url = f"chrome-extension://{ext_id}/firstrun.html"
    cdp = context.new_cdp_session(context.pages[0] if context.pages else context.new_page())
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "page" and t["url"] == url]
            if found:
                for t in found:
                    cdp.send("Target.closeTarget", {"targetId": t["targetId"]})
                break
            time.sleep(0.1)
    finally:
        cdp.detach()
    # Playwright may have attached to the tab meanwhile: until it has seen the tab close, a context-wide call
    # (route, add_init_script) also goes to the closing tab and fails with TargetClosedError (seen under load).
    # Waiting on the page pumps Playwright's events; a tab that is already gone has no page here.
    for page in context.pages:
        if page.url == url and not page.is_closed():
            page.wait_for_event("close", timeout=timeout * 1000)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------------------------- fake API


@pytest.fixture
def fake_api():
    from .fakeapi import FakeApi

    api = FakeApi().start()
    yield api
    api.stop()


# ---------------------------------------------------------------------------------------------- real run


@pytest.fixture(scope="module")
def real_run_factory(tmp_path_factory, artifacts):
    """Factory: real_run_factory(flow_rel, extra=[]) -> started ConsentwatchRun (stopped at module end)."""
    ok, why = consentwatch_run_available()
    if not ok:
        missing(why)
    runs = []

    def make(flow_rel: str = "linkedin/settings-on.flow", extra: list[str] | None = None) -> ConsentwatchRun:
        flow = fixture_flow(flow_rel)
        data_dir = tmp_path_factory.mktemp("cw-data")
        run = ConsentwatchRun(flow, data_dir, artifacts / f"consentwatch-run-{len(runs)}.log", extra)
        runs.append(run)
        return run.start()

    yield make
    for run in runs:
        run.stop()
