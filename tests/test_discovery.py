"""Discovery: AI-labelled settings on rule hosts that no rule knows become suggestions, then rule drafts."""

from __future__ import annotations

import json

import pytest

from consentwatch.detect import Detector
from consentwatch.detect.discovery import candidate_positions, clean_label, discover
from consentwatch.rules.model import load_pack, shipped_pack
from consentwatch.store.suggestions import SuggestionStore
from consentwatch.pipeline import Watch

from conftest import cli, write_flow

URL = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"
PAGE = """<html><body><main><h1>Settings</h1>
<p>PRIVATE_PAGE_TEXT Jane Doe, member since 2011</p>
<div class="row"><span id="l1">Use my data for training content creation AI models</span>
  <button role="switch" aria-checked="true" aria-labelledby="l1"></button></div>
<div class="row"><label><input type="checkbox" checked> Allow partners to train AI models on my posts</label></div>
<div class="row"><label for="e">Show jane@example.com to AI recruiters</label><input id="e" type="checkbox"></div>
<div class="row"><span>Show profile photo</span><button role="switch" aria-checked="false"></button></div>
<div hidden><button role="switch" aria-checked="true" aria-label="Hidden AI experiment"></button></div>
<div><button aria-pressed="false" aria-label="Improve Copilot with my code"></button></div>
<div role="radiogroup"><span role="radio" aria-checked="true">Personalised AI replies</span></div>
</main></body></html>"""


@pytest.fixture(scope="module")
def detector():
    return Detector(load_pack(shipped_pack()))


def test_unknown_ai_controls_become_suggestions_and_nothing_else(detector):
    obs = detector.detect(URL + "?trk=SECRET_QUERY", "text/html", PAGE.encode())
    assert [f.kind for f in obs.findings] == ["toggle_on"]  # the known rule still works
    labels = [s.label for s in obs.suggestions]
    assert labels == ["Allow partners to train AI models on my posts", "Improve Copilot with my code",
                      "Personalised AI replies"]
    for s in obs.suggestions:
        assert s.host == "www.linkedin.com" and s.path == "/mypreferences/d/settings/data-for-ai-improvement"
        assert s.platform == "linkedin"
        assert set(s.to_dict()) == {"host", "path", "label", "platform"}
    # not suggested: the rule's own label, non-AI settings, hidden controls, labels carrying personal data
    flat = json.dumps([s.to_dict() for s in obs.suggestions])
    for absent in ("Use my data for training", "profile photo", "Hidden AI", "jane@example.com", "PRIVATE_PAGE_TEXT",
                   "SECRET_QUERY", "trk"):
        assert absent not in flat


def test_no_suggestions_off_rule_hosts_or_without_ai_words(detector):
    assert detector.detect("https://www.example.com/settings", "text/html", PAGE.encode()).suggestions == ()
    plain = PAGE.replace("AI", "email").replace("train", "notify").replace("Copilot", "digest").replace("model", "post")
    assert detector.detect(URL, "text/html", plain.encode()).suggestions == ()
    off = Detector(load_pack(shipped_pack()), discover=False)
    assert off.detect(URL, "text/html", PAGE.encode()).suggestions == ()


def test_prefilter_ignores_script_text_and_stays_cheap():
    # a JS bundle that talks about aria-checked and AI is not a control: nothing is parsed
    bundle = ('<script>var a={"aria-checked":true, ai:1, model:"train"}; // checkbox</script>' * 20_000).lower()
    assert candidate_positions(bundle) == []
    rules = list(load_pack(shipped_pack()).for_host("www.linkedin.com"))
    assert discover(bundle, bundle, rules, "www.linkedin.com", "/feed/") == []


@pytest.mark.parametrize("name, ok", [
    ("Use my posts to train AI", True), ("Improve the model for everyone", True), ("Gemini Apps Activity", True),
    ("Show my email", False), ("Call 0123456789 about AI", False), ("x" * 200 + " AI", False),
    ("Details at https://example.com/ai", False), ("   ", False), ("Maintain my feed", False),
])
def test_clean_label(name, ok):
    assert (clean_label(name) is not None) == ok


def test_watch_stores_deduplicated_suggestions(tmp_path):
    watch = Watch(tmp_path, rules=load_pack(shipped_pack()), discover=True)
    try:
        for _ in range(3):
            watch.process(URL + "?q=SECRET", "text/html", PAGE.encode(), host="www.linkedin.com")
    finally:
        watch.close()
    raw = (tmp_path / "suggestions.json").read_text()
    for absent in ("SECRET", "PRIVATE_PAGE_TEXT", "jane@example.com", "Jane Doe"):
        assert absent not in raw
    store = SuggestionStore(tmp_path)
    try:
        items = store.list()
    finally:
        store.close()
    assert len(items) == 3
    assert {(i["host"], i["path"]) for i in items} == {("www.linkedin.com", "/mypreferences/d/settings/data-for-ai-improvement")}


def test_replay_then_suggest_prints_drafts_ready_for_validate(tmp_path, data_dir):
    flow = write_flow(tmp_path / "page.flow", URL + "?trk=SECRET_QUERY", PAGE.encode())
    r = cli("replay", "--discover", "--data-dir", str(data_dir), str(flow))
    assert r.returncode == 0, r.stderr
    r = cli("rules", "suggest", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    draft = json.loads(r.stdout)
    assert draft["format"] == 1 and "$schema" in draft
    labels = [x["setting"]["labels"][0] for x in draft["rules"]]
    assert "Allow partners to train AI models on my posts" in labels
    rule = draft["rules"][labels.index("Allow partners to train AI models on my posts")]
    assert rule["id"] == "linkedin.allow-partners-to-train-ai-models-on-my" and rule["platform"] == "linkedin"
    assert rule["hosts"] == ["www.linkedin.com"]
    assert rule["setting"]["pages"] == ["/mypreferences/d/settings/data-for-ai-improvement"]
    assert "sources" in r.stderr and "fixtures" in r.stderr  # says what to fill in
    assert "SECRET_QUERY" not in r.stdout + r.stderr

    # as printed: valid JSON in the pack format; validate names what is missing
    f = tmp_path / "draft.json"
    f.write_text(r.stdout)
    v = cli("rules", "validate", str(f))
    assert v.returncode == 1 and "sources" in v.stdout
    # after the author fills sources and fixtures, it validates
    for x in draft["rules"]:
        x["sources"] = ["https://www.linkedin.com/help/linkedin/answer/example"]
        x["fixtures"] = [{"file": "linkedin/new-setting-on.flow", "expect": ["toggle_on"]}]
    f.write_text(json.dumps(draft, indent=2))
    v = cli("rules", "validate", str(f))
    assert v.returncode == 0, v.stdout + v.stderr


def test_suggest_with_nothing_stored(data_dir):
    r = cli("rules", "suggest", "--data-dir", str(data_dir))
    assert r.returncode == 0 and r.stdout == "" and "no suggestions" in r.stderr


def test_not_suggested_other_radios_of_a_known_group_names_beyond_the_label_and_product_mentions(detector):
    page = """<html><body><main>
    <fieldset role="radiogroup"><legend>Third-party AI and your stories</legend>
      <label><input type="radio" name="t" value="a" checked> Prioritize maximum reach: includes third-party AI training</label>
      <label><input type="radio" name="t" value="b"> Minimize third-party training</label></fieldset>
    <div><button role="checkbox" aria-checked="false" aria-label="Select all chats"></button>
      <span>You have 42 previous chats with Claude about AI</span></div>
    <div><label><input type="checkbox"> Send me product updates and tips about Copilot</label></div>
    <div><label><input type="checkbox" checked> Allow Copilot to use my code snippets</label></div>
    </main></body></html>"""
    obs = detector.detect("https://medium.com/me/settings/account", "text/html", page.encode())
    assert [f.rule_id for f in obs.findings] == ["medium.third-party-ai"]
    assert [s.label for s in obs.suggestions] == ["Allow Copilot to use my code snippets"]


def test_the_shipped_fixtures_suggest_only_real_unknown_ai_settings(tmp_path):
    from conftest import FIXTURES

    from consentwatch.replay import replay_file

    flows = sorted(FIXTURES.glob("*/*.flow"))
    assert flows, "tests/fixtures holds no flows: run `make fixtures` and commit them"
    watch = Watch(tmp_path, rules=load_pack(shipped_pack()), discover=True)
    try:
        for f in flows:
            list(replay_file(watch, f))
    finally:
        watch.close()
    store = SuggestionStore(tmp_path)
    try:
        labels = [s["label"] for s in store.list()]
    finally:
        store.close()
    # every label speaks of AI, none carries numbers or addresses from the page
    assert all(("AI" in x or "model" in x.lower() or "train" in x.lower() or "gemini" in x.lower()) for x in labels), labels
    assert not any(ch.isdigit() for x in labels for ch in x), labels


def test_discovery_is_off_unless_a_maintainer_asks(tmp_path, data_dir):
    """By default nothing from a page's labels is kept: not by Watch, not by replay, not by run's worker."""
    watch = Watch(tmp_path, rules=load_pack(shipped_pack()))
    try:
        watch.process(URL, "text/html", PAGE.encode(), host="www.linkedin.com")
    finally:
        watch.close()
    assert not (tmp_path / "suggestions.json").exists()
    flow = write_flow(tmp_path / "page.flow", URL, PAGE.encode())
    assert cli("replay", "--data-dir", str(data_dir), str(flow)).returncode == 0
    assert not (data_dir / "suggestions.json").exists()
    r = cli("rules", "suggest", "--data-dir", str(data_dir))
    assert r.stdout == "" and "--discover" in r.stderr


def test_only_the_controls_own_short_label_is_kept(detector):
    """A control named only by the text around it (a post, a sentence about a person) gives no suggestion;
    a long label, even the control's own, is not kept either."""
    page = """<html><body><main>
    <div class="post"><p>Jane Doe shared that her AI coach helps with her diabetes</p>
      <button role="switch" aria-checked="true"></button></div>
    <div><label><input type="checkbox"> Let our AI models learn from the messages you exchange with your
      doctor, your family and the other members of your support group</label></div>
    <div><button role="switch" aria-checked="false" aria-label="Use my posts to train AI"></button></div>
    </main></body></html>"""
    obs = detector.detect(URL, "text/html", page.encode())
    assert [s.label for s in obs.suggestions] == ["Use my posts to train AI"]


async def test_run_worker_discovers_only_with_the_option(tmp_path):
    """The detection worker process gets the choice too (it runs its own Detector)."""
    import asyncio

    import functools

    from consentwatch.detection_worker import DetectorProcess

    got: list = []
    for discover in (False, True):
        got.clear()
        # what the addon hands the worker (addon._start_offload)
        proc = DetectorProcess(load_pack(shipped_pack()), None, 1 << 20, on_results=got.extend,
                               make_detector=functools.partial(Detector, discover=discover))
        try:
            proc.submit((URL, "text/html", PAGE.encode(), "", None, "www.linkedin.com"))
            assert await asyncio.to_thread(proc.drain, 30)
        finally:
            proc.close()
        suggestions = [s for _, obs, _ in got for s in getattr(obs, "suggestions", ())]
        assert bool(suggestions) == discover
