"""What the page eye finds in many shapes of rendered settings, each drawn late by the page's own script: the
region it sends (captured by the contract fake of the API), then the real detectors on that region.

The markups follow research/real-traffic.md: X's react-native-web checkbox, a role=checkbox named from a table
header, Medium's radio pair, Substack on a blog subdomain, Quora's hidden A/B duplicate, a web component whose
switch lives in its shadow root, a label far from its switch in a long page, GitHub's <select>, Google's chip
whose name carries the state. Every region gives the verdict its page shows."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from consentwatch.detect import Detector
from consentwatch.rules.model import load_pack, shipped_pack

from .browser_support import wait_until
from .spa_pages import HTML, LocalSite


def late_page(title: str, markup: str, after: str = "") -> bytes:
    """A page whose script draws `markup` 400 ms after load, then runs `after` (setting live properties)."""
    return (f"<!doctype html><html><head><title>{title}</title></head><body><div id=root>Loading…</div><script>"
            f"setTimeout(() => {{ document.getElementById('root').innerHTML = {json.dumps(markup)}; {after} }}, 400);"
            f"</script></body></html>").encode()


X_LABEL = "Allow your posts as well as your interactions, inputs, and results with Grok to be used for training and fine-tuning"
LONG_ROWS = "".join(f"<div class=row><span>Setting {i}</span><p>{'Lorem ipsum dolor sit amet. ' * 6}</p></div>"
                    for i in range(600))
SHADOW_SWITCH = """
customElements.define('sp-switch', class extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = '<label><input type="checkbox" role="switch"><slot></slot></label>';
    root.querySelector('input').checked = this.hasAttribute('checked');
  }
});
"""

# (id, url, page, expected verdict of the real detectors on the region: (rule, state), what must be in the region)
CASES = [
    ("x-rnw", "https://x.com/settings/grok_settings", late_page(
        "Grok / X", f'<div class="css-175oi2r"><label class="css-175oi2r r-1loqt21"><div class="css-175oi2r">'
        f'<span class="css-1jxf684 r-bcqeeo">{X_LABEL}</span></div><div class="css-175oi2r">'
        f'<input type="checkbox" aria-describedby="CHECKBOX_1_LABEL" class="r-1p0dtai" style="opacity:0"></div></label>'
        f'<div id="CHECKBOX_1_LABEL" class="css-146c3p1">Your data helps improve Grok.</div></div>',
        "document.querySelector('input').checked = true;"),
     ("x.grok-training", "on"), ["checked"]),
    ("figma-header", "https://www.figma.com/files/team/123/settings", late_page(
        "Settings – Figma", '<table class="ai"><thead><tr><th id="ct-h">Content training</th><th>Status</th></tr></thead>'
        '<tbody><tr><td>Allow Figma to train on team content</td><td><div role="checkbox" aria-checked="false" '
        'aria-labelledby="ct-h" tabindex="0" class="cb"></div></td></tr></tbody></table>'),
     ("figma.content-training", "off"), ['aria-checked="false"']),
    ("medium-radio", "https://medium.com/me/settings/account", late_page(
        "Settings – Medium", '<fieldset><legend>Third-party AI and your stories</legend>'
        '<label><input type="radio" name="ai" value="reach"> Prioritize maximum reach (Default)</label>'
        '<label><input type="radio" name="ai" value="min"> Minimize third-party training</label></fieldset>',
        "document.querySelector('input[value=reach]').checked = true;"),
     ("medium.third-party-ai", "on"),  # the whole group: the chosen option is in the region
     ['<legend>Third-party AI and your stories</legend>', '<input type="radio" name="ai" checked> Prioritize maximum reach',
      '<input type="radio" name="ai"> Minimize third-party training']),
    ("substack-sub", "https://myblog.substack.com/publish/settings", late_page(
        "Settings", '<div class="setting"><input type="checkbox" id="block-ai"><label for="block-ai">Block AI training</label>'
        '<p>Ask AI companies not to train on your posts.</p></div>'),
     ("substack.block-ai-training", "on"), ['<label for="block-ai">']),
    ("quora-ab", "https://www.quora.com/settings/privacy", late_page(
        "Privacy – Quora", '<style>.variant-b{display:none}</style>'
        '<div class="variant-b"><span id="q1">Allow large language models to be trained on your content</span>'
        '<button role="switch" aria-checked="true" aria-labelledby="q1"></button></div>'
        '<div class="variant-a"><span id="q2">Allow large language models to be trained on your content</span>'
        '<button role="switch" aria-checked="false" aria-labelledby="q2"></button></div>'),
     ("quora.llm-training", "off"), ['aria-checked="false"']),
    ("adobe-shadow", "https://account.adobe.com/privacy", late_page(
        "Privacy – Adobe", '<section><h2>Data and privacy</h2><div class="row"><sp-switch checked>Content analysis</sp-switch>'
        '</div></section>', SHADOW_SWITCH),
     ("adobe.content-analysis", "on"), ['<input type="checkbox" role="switch" checked>']),
    ("pinterest-far", "https://www.pinterest.com/settings/privacy", late_page(
        "Privacy – Pinterest", f'<main><h2 id="canvas">Use your data to train Pinterest Canvas</h2>{LONG_ROWS}'
        '<footer><button role="switch" aria-checked="true" aria-labelledby="canvas"></button></footer></main>'),
     ("pinterest.canvas-training", "on"), ['aria-labelledby="canvas"', '<h2 id="canvas">']),
    ("github-select", "https://github.com/settings/copilot/features", late_page(
        "Copilot – GitHub", '<div class="form-group"><label for="training">Allow GitHub to use my data for AI model training</label>'
        '<select id="training" class="form-select"><option value="enabled">Enabled</option>'
        '<option value="disabled">Disabled</option></select></div>',
        "document.querySelector('select').value = 'enabled';"),
     ("github.copilot-training", "on"), ["<option selected>Enabled</option>", "<option>Disabled</option>"]),
    ("google-chip", "https://myactivity.google.com/product/gemini", late_page(
        "Gemini Apps Activity", '<div class="chips"><button aria-haspopup="menu" aria-label="Turn off your Keep Activity setting">'
        '<span>On</span></button></div>'),
     ("google.gemini-activity", "on"), ['aria-label="Turn off your Keep Activity setting"', "<span>On</span>"]),
]


@pytest.fixture(scope="module")
def detector():
    return Detector(load_pack(shipped_pack()), None)


LATER = ("<!doctype html><html><head><title>Privacy</title></head><body><main><h2>Generative AI</h2>"
         "<p>Use your data to train Pinterest Canvas</p><div id=slot></div></main><script>"
         "setTimeout(() => { const b = document.createElement('input'); b.type = 'checkbox';"
         " b.setAttribute('aria-label', 'Use your data to train Pinterest Canvas');"
         " document.getElementById('slot').append(b); setTimeout(() => { b.checked = true; }, 3000); }, 1500);"
         "</script></body></html>").encode()


@pytest.fixture(scope="module")
def site(request):
    s = LocalSite([(url, HTML, page) for _, url, page, _, _ in CASES]
                  + [("https://www.pinterest.com/settings/later", HTML, LATER)]).start()
    request.addfinalizer(s.stop)
    return s


@pytest.fixture(scope="module")
def browser(launch_extension, site):
    return launch_extension(args=[site.resolver_rule])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_region_sent_and_what_the_detectors_make_of_it(case, browser, fake_api, detector, artifacts):
    name, url, _, expected, must = case
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    page = browser.context.new_page()
    try:
        page.goto(url, wait_until="domcontentloaded")
        sent = wait_until(lambda: [o for o in fake_api.observations if o["url"] == url.split("?")[0]], 15,
                          what=f"an observation from {url}")
    finally:
        page.close()
    html = sent[-1]["html"]
    (artifacts / f"page-eye-{name}.html").write_text(html)
    for piece in must:
        assert piece in html, (piece, html[:2000])
    assert "<script" not in html and "<style" not in html and "value=" not in html
    assert len(html) <= 48 * 1024
    obs = detector.detect(url, "text/html", html.encode(), "", dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    got = [(f.rule_id, f.state) for f in obs.findings if f.kind != "policy_update"]
    assert got == [expected], html[:3000]


def test_a_switch_drawn_long_after_its_static_label_and_named_by_itself(browser, fake_api, site, detector):
    """The label is in the server's HTML; the app draws the switch 1.5 s later (named by its own aria-label), and
    sets its state from script 3 s after that, with no DOM change at all: a checkbox's property."""
    browser.pair(fake_api.base, fake_api.token)
    browser.wait_conn("connected")
    page = browser.context.new_page()
    try:
        page.goto("https://www.pinterest.com/settings/later", wait_until="domcontentloaded")
        first = wait_until(lambda: [o for o in fake_api.observations if o["url"].endswith("/settings/later")], 15,
                           what="the region once the switch is drawn")
        assert 'aria-label="Use your data to train Pinterest Canvas"' in first[0]["html"]
        assert " checked" not in first[0]["html"]
        later = wait_until(lambda: [o for o in fake_api.observations
                                    if o["url"].endswith("/settings/later") and " checked" in o["html"]], 15,
                           what="the state the app set from script")
    finally:
        page.close()
    obs = detector.detect("https://www.pinterest.com/settings/later", "text/html", later[-1]["html"].encode())
    assert [(f.rule_id, f.state) for f in obs.findings] == [("pinterest.canvas-training", "on")]
