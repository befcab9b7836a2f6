"""Keys learned from the user's own click, end to end: real Chromium with the real extension, the real
`consentwatch run --discover` replaying a single-page app through its proxy.

The app (Pinterest-shaped: the rule knows the switch's label but not the field the app sends) loads its settings
as JSON, draws the switch, and on a click sends a PATCH whose body carries the new value under a key no rule names,
beside another boolean that did not change and a string. The page eye sees the switch go OFF, the proxy sees the
PATCH: a suggestion appears with the key, the endpoint and the polarity, and nothing else from the page or the
body is stored (canaries in the page, the body and the query string are nowhere in the data dir). Without
`--discover` the same click stores nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .browser_support import ConsentwatchRun, consentwatch_bin, consentwatch_run_available, missing, wait_until
from .spa_pages import HTML, JS, JSON_CT, shell

PAGE = "https://www.pinterest.com/settings/privacy"
STATE = "https://www.pinterest.com/resource/UserSettingsResource/get/"
UPDATE_PATH = "/resource/UserSettingsResource/update/"
PAGE_CANARY = "CANARY-PAGE-5d1e77"
BODY_CANARY = "CANARY-BODY-9c2f41"
QUERY_CANARY = "CANARY-QUERY-0b8a13"
RULE = "pinterest.canvas-training"
LABEL = "Use your data to train Pinterest Canvas"

APP = r"""
(async () => {
  const root = document.getElementById('root');
  const res = await fetch('/resource/UserSettingsResource/get/', { credentials: 'include' });
  const state = (await res.json()).resource_response.data.settings;
  await new Promise((r) => setTimeout(r, 400)); // drawn later, like the real app
  const h = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    n.append(...kids);
    return n;
  };
  function save() { // the whole settings object, as many apps send it, and a string beside it
    return fetch('/resource/UserSettingsResource/update/?csrf=QUERY_CANARY', {
      method: 'PATCH', headers: { 'content-type': 'application/json' }, credentials: 'include',
      body: JSON.stringify({ settings: { allow_ai_training: state.allow_ai_training,
        ads_personalization: state.ads_personalization }, client_note: 'BODY_CANARY' }),
    });
  }
  function draw() {
    const on = state.allow_ai_training;
    const sw = h('button', { role: 'switch', 'aria-checked': String(on), 'aria-labelledby': 'canvas-label',
      type: 'button', class: 'Switch' });
    sw.addEventListener('click', () => {
      state.allow_ai_training = !state.allow_ai_training;
      draw();
      save().then((r) => { document.body.dataset.saved = String(r.ok); });
    });
    root.replaceChildren(h('main', {}, h('h1', {}, 'Privacy and data'),
      h('p', { class: 'who' }, 'Signed in as PAGE_CANARY'),
      h('section', {}, h('div', { class: 'SettingRow' },
        h('div', {}, h('span', { id: 'canvas-label' }, 'Use your data to train Pinterest Canvas'),
          h('p', {}, 'Allow Pinterest to use your activity to train Pinterest Canvas. PAGE_CANARY')), sw))));
  }
  draw();
})();
""".replace("QUERY_CANARY", QUERY_CANARY).replace("BODY_CANARY", BODY_CANARY).replace("PAGE_CANARY", PAGE_CANARY)


def patch_body(on: bool) -> bytes:
    # byte for byte what JSON.stringify sends: the proxy's replay matches the body
    return json.dumps({"settings": {"allow_ai_training": on, "ads_personalization": False},
                       "client_note": BODY_CANARY}, separators=(",", ":")).encode()


def write_app_recording(path: Path) -> Path:
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    state = {"resource_response": {"status": "success", "data": {
        "settings": {"allow_ai_training": True, "ads_personalization": False}, "user": {"name": PAGE_CANARY}}}}
    gets = [(PAGE, HTML, shell("Privacy and data | Pinterest", "/static/learn-app.js")),
            ("https://www.pinterest.com/static/learn-app.js", JS, APP.encode()),
            (STATE, JSON_CT, json.dumps(state).encode())]
    with open(path, "wb") as fo:
        w = io.FlowWriter(fo)
        for url, ctype, body in gets:
            f = tflow.tflow(resp=True)
            f.request = http.Request.make("GET", url)
            f.response = http.Response.make(200, body, {"content-type": ctype, "cache-control": "no-store"})
            w.add(f)
        for on in (False, True):
            f = tflow.tflow(resp=True)
            f.request = http.Request.make("PATCH", f"https://www.pinterest.com{UPDATE_PATH}?csrf={QUERY_CANARY}",
                                          patch_body(on), {"content-type": "application/json"})
            f.response = http.Response.make(200, b'{"status":"success"}', {"content-type": JSON_CT})
            w.add(f)
    return path


def learned_keys(data_dir: Path) -> list[dict]:
    try:
        doc = json.loads((data_dir / "suggestions.json").read_text())
    except (OSError, ValueError):
        return []
    return list(doc.get("keys", {}).values())


def every_byte(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    ok, why = consentwatch_run_available()
    if not ok:
        missing(why)
    return write_app_recording(tmp_path_factory.mktemp("learn") / "learn-app.flow")


def click_and_wait_for_the_page_eye(run: ConsentwatchRun, launch_extension) -> None:
    b = launch_extension(proxy_port=run.proxy_port)
    b.pair(run.base, run.token)
    b.wait_conn("connected")
    page = b.context.new_page()
    page.goto(PAGE, wait_until="domcontentloaded")
    # the page eye reads the switch ON first (a warning), then the user switches it off
    wait_until(lambda: [w for w in run.warnings() if w["rule_id"] == RULE], 20, what="the page eye's ON")
    page.get_by_role("switch", name=LABEL).click()
    # the PATCH went through the proxy and its replay answered it (a body the recording lacks would be refused)
    page.wait_for_selector("body[data-saved=true]", timeout=15_000)
    wait_until(lambda: run.warnings() == [], 15, what="the page eye's OFF")
    [w] = run.warnings("all")
    assert (w["status"], w["seen_by"]) == ("resolved", ["page"])
    b.context.close()


def test_a_click_teaches_the_key_endpoint_and_polarity_and_nothing_else_is_kept(recording, launch_extension,
                                                                                tmp_path, artifacts):
    data = tmp_path / "data"
    data.mkdir()
    log = artifacts / "consentwatch-run-learn.log"
    run = ConsentwatchRun(recording, data, log, extra=["--discover"]).start()
    try:
        click_and_wait_for_the_page_eye(run, launch_extension)
        [k] = wait_until(lambda: learned_keys(data), 15, what="a learned key in suggestions.json")
    finally:
        run.stop()
    assert {x: k[x] for x in k if x not in ("id", "first_seen")} == {
        "rule_id": RULE, "platform": "pinterest", "host": "www.pinterest.com", "path": UPDATE_PATH,
        "method": "PATCH", "key": "settings.allow_ai_training", "training_when": True, "label": LABEL}
    raw = every_byte(data)
    logged = log.read_text(errors="replace")
    for never in (PAGE_CANARY, BODY_CANARY, QUERY_CANARY, "ads_personalization", "client_note", "csrf",
                  "Signed in as"):
        assert never.encode() not in raw, f"{never} is in the data dir"
        assert never not in logged, f"{never} was logged"

    # `rules suggest` turns it into the rule's draft json_keys entry
    out = tmp_path / "drafts.json"
    r = subprocess.run([str(consentwatch_bin()), "rules", "suggest", "--data-dir", str(data), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    [rule] = [x for x in json.loads(out.read_text())["rules"] if x["id"] == RULE]
    assert rule["setting"]["json_keys"] == [{"key": "allow_ai_training", "training_when": True, "in": "request",
                                             "paths": [UPDATE_PATH], "methods": ["PATCH"], "within": ["settings"]}]
    (artifacts / "learned-key-draft.json").write_text(json.dumps(rule, indent=2))


def test_without_discover_the_same_click_stores_nothing(recording, launch_extension, tmp_path, artifacts):
    data = tmp_path / "data"
    data.mkdir()
    run = ConsentwatchRun(recording, data, artifacts / "consentwatch-run-learn-off.log").start()
    try:
        click_and_wait_for_the_page_eye(run, launch_extension)  # the app saved through the proxy, as above
    finally:
        run.stop()
    assert not (data / "suggestions.json").exists()
    raw = every_byte(data)
    for never in (PAGE_CANARY, BODY_CANARY, QUERY_CANARY, "allow_ai_training"):
        assert never.encode() not in raw, f"{never} is in the data dir"
