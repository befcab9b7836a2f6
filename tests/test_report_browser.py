"""The report page in real headless Chromium (Debian's, driven by Playwright for Python).

The page is written by the real `consentwatch report --out`, opened from disk with JavaScript switched
off (it must need none) and every request watched (it must load nothing). Screenshots land in
tests/artifacts/ (git-ignored) for people to look at: report.png, report-print.png, report-mobile.png,
report-empty.png, report-200-changes.png, report-fixtures.png, and report.pdf.

Under CI (CI=true) a missing Chromium or Playwright fails; elsewhere it skips with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, cli, missing_prerequisite
from test_report import T0, _fixture_flows, days, fill

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check", "--lang=en-US"]




def _chromium() -> str | None:
    for cand in (os.environ.get("CONSENTWATCH_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if not path:
        missing_prerequisite("Chromium not found (apt-get install chromium, or `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_prerequisite("Playwright for Python is not installed (make install)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=FLAGS)
        yield b
        b.close()


class Opened:
    """One report page, JavaScript off, with every request and console error it caused."""

    def __init__(self, browser, html_file: Path, width: int = 1100):
        self.context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 900},
                                           locale="en-US", timezone_id="UTC")
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = html_file.resolve().as_uri()
        self.page.goto(self.url)

    def close(self):
        self.context.close()

    def shot(self, name: str, **kw) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True, **kw)
        assert path.stat().st_size > 5_000
        return path

    def self_contained(self):
        assert self.requests == [self.url], f"the page loaded something else: {self.requests}"
        assert not self.errors, self.errors


def _report(data_dir: Path, out: Path, today: str) -> Path:
    res = cli("report", "--data-dir", str(data_dir), "--out", str(out), "--today", today)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture
def story_html(data_dir: Path, tmp_path: Path) -> Path:
    fill(data_dir, ("li-on", days(0)), ("li-off", days(2)), ("li-on", days(26)), ("li-on", days(30)),
         ("wp-on", days(5)), ("wp-off", days(6)), ("x-on", days(10)), ("li-notice", days(12)))
    return _report(data_dir, tmp_path / "report.html", "2025-10-25")


def _visible_at_centre(page, locator) -> bool:
    """The element is painted where it is: nothing covers the middle of its box."""
    box = locator.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return locator.evaluate(
        "(el, [x, y]) => { const h = document.elementFromPoint(x, y); return h === el || el.contains(h); }", [x, y])


def _all_text_inside(svg) -> list[str]:
    """Every label of the picture lies inside it (nothing clipped at an edge)."""
    return svg.evaluate("""svg => { const b = svg.getBoundingClientRect(); const out = [];
        for (const t of svg.querySelectorAll('text')) { const r = t.getBoundingClientRect();
          if (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1)
            out.push(t.textContent); }
        return out; }""")


def test_report_renders_with_timeline_and_platforms(browser, story_html):
    o = Opened(browser, story_html)
    try:
        page = o.page
        assert page.title().startswith("Where you stand on AI training")
        svg = page.locator("svg.timeline")
        assert svg.count() == 1 and svg.is_visible()
        box = svg.bounding_box()
        assert box["width"] >= 600 and box["height"] >= 120, box
        # the picture names every platform and paints its states
        for name in ("LinkedIn", "X", "WordPress.com"):
            assert page.locator("article.platform h3").filter(has_text=name).first.is_visible()
            label = svg.locator("text").filter(has_text=name).first
            assert label.is_visible()
            lb = label.bounding_box()
            assert lb["x"] >= box["x"] - 1, f"{name} label cut off on the left"
        page.locator("article.platform h3").get_by_text("X", exact=True).wait_for()
        for cls in ("seg-on", "seg-off"):
            seg = svg.locator(f"rect.{cls}").first
            assert seg.is_visible() and _visible_at_centre(page, seg), cls
        assert svg.locator("path.mark-reenable").count() == 1
        assert svg.locator("path.mark-notice").count() == 1
        assert svg.get_by_text("Today, 25 Oct 2025").is_visible()
        assert _all_text_inside(svg) == []
        # the facts a person needs at a glance
        li = page.locator('article[data-platform="linkedin"]')
        for text in ("Training ON", "Re-enabled after you opted out", "Policy change in 9 days",
                     "Takes effect 3 Nov 2025, in 9 days", "You opted out", "Open the setting on www.linkedin.com"):
            assert li.get_by_text(text).first.is_visible(), text
        wp = page.locator('article[data-platform="wordpress"]')
        assert wp.get_by_text("Training OFF").first.is_visible()
        assert page.locator(".headline").inner_text().startswith("2 of the 3 platforms you use train AI")
        # nothing overflows sideways
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        o.self_contained()
        o.shot("report.png")

        # printed: same picture, history tables unfolded, the settings address written out
        page.emulate_media(media="print")
        assert svg.is_visible()
        assert li.locator("details.history table").is_visible()
        assert page.locator("a.button").first.evaluate(
            "el => getComputedStyle(el, '::after').content").find("https://www.linkedin.com/") >= 0
        o.shot("report-print.png")
        pdf = ARTIFACTS / "report.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
    finally:
        o.close()


def test_report_on_a_phone(browser, story_html):
    o = Opened(browser, story_html, width=390)
    try:
        assert o.page.locator("svg.timeline").is_visible()
        assert o.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        o.shot("report-mobile.png")
    finally:
        o.close()


def test_empty_report_explains_what_to_do(browser, tmp_path):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    o = Opened(browser, _report(empty, tmp_path / "empty.html", "2025-10-25"))
    try:
        page = o.page
        assert page.get_by_role("heading", name="Nothing observed yet").is_visible()
        for text in ("consentwatch run", "consentwatch token", "consentwatch replay --data-dir DIR FILE"):
            assert page.get_by_text(text).first.is_visible(), text
        assert page.locator("svg").count() == 0
        o.self_contained()
        o.shot("report-empty.png")
    finally:
        o.close()


def test_two_hundred_changes_render_compactly(browser, data_dir, tmp_path):
    steps = [("li-on" if i % 2 == 0 else "li-off", T0 + dt.timedelta(hours=13 * i)) for i in range(200)]
    fill(data_dir, *steps, ("x-off", days(40)), ("wp-on", days(5)))
    o = Opened(browser, _report(data_dir, tmp_path / "big.html", "2026-01-10"))
    try:
        page = o.page
        svg = page.locator("svg.timeline")
        assert svg.is_visible()
        assert svg.locator("rect[class^=seg-]").count() < 40
        assert svg.get_by_text("re-enabled 99 times after you opted out").is_visible()
        assert _all_text_inside(svg) == []
        history = page.locator('article[data-platform="linkedin"] details.history')
        assert not history.locator("table").first.is_visible()  # folded until asked for
        history.locator("summary").click()  # <details> opens without any script
        assert history.locator("table").first.is_visible()
        assert history.locator("tr").count() < 30
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 4000, f"the page grew to {height}px"
        o.self_contained()
        o.shot("report-200-changes.png")
    finally:
        o.close()


def test_report_over_the_recorded_fixtures(browser, data_dir, tmp_path):
    """LinkedIn, X and WordPress.com recordings replayed, then the page as a user opens it."""
    flows = _fixture_flows()
    if not flows:
        missing_prerequisite("no recorded fixture flows under tests/fixtures/{linkedin,x,wordpress}")
    res = cli("replay", "--data-dir", str(data_dir), *map(str, flows))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "fixtures.html"
    assert cli("report", "--data-dir", str(data_dir), "--out", str(out)).returncode == 0
    o = Opened(browser, out)
    try:
        svg = o.page.locator("svg.timeline")
        assert svg.is_visible() and _all_text_inside(svg) == []
        for name in ("LinkedIn", "X", "WordPress.com"):
            assert o.page.locator("article.platform h3").get_by_text(name, exact=True).is_visible(), name
            assert svg.locator("text").get_by_text(name, exact=True).first.is_visible(), name
        o.self_contained()
        o.shot("report-fixtures.png")
    finally:
        o.close()
