"""Quiet policy changes (issue 19): a policy page's AI sentences, compared with the version this install saw last.

The pure parts (extraction, normalisation, fingerprint, diff, shipped history) are tested directly; the whole
path runs through the real `consentwatch replay` CLI, two or three replays into one data dir, and the report.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

import policy_pages as pp
from conftest import cli, missing_prerequisite, write_flow
from consentwatch.detect import policy_text as pt
from consentwatch.detect.engine import Detector
from consentwatch.rules.model import load_pack, shipped_pack
from consentwatch.rules.regex_safety import check_pattern
from consentwatch.store.journal import read_stored

ROOT = Path(__file__).resolve().parents[1]
RULES = load_pack(shipped_pack())
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


def read(url: str, body: bytes, when: dt.datetime = T0) -> list[pt.PolicySighting]:
    obs = Detector(RULES, discover=False, memo_size=0).detect(url, "text/html; charset=utf-8", body, observed_at=when)
    return list(obs.policy_texts)


def sentences_of(body: bytes) -> list[str]:
    return pt.ai_sentences(pt.text_blocks(LexborHTMLParser(body.decode())))


# -- what is kept of a page ------------------------------------------------------------------------------

def test_only_the_ai_sentences_of_the_document_are_kept():
    [s] = read(pp.LINKEDIN_URL, pp.linkedin("2024"))
    assert s.rule_id == "linkedin.genai-training" and s.document == "privacy-policy" and s.kind == "privacy"
    assert s.sentences == (pp.LINKEDIN_AI, pp.LINKEDIN_AI_2.replace("\u2019", "'"))
    # nothing from the script, the navigation, the cookie dialog or the footer, though each speaks of AI
    for outside in ("train models", "Our AI features", "AI-powered analytics", "Learn how we use AI"):
        assert not any(outside in x for x in s.sentences)
    assert re.fullmatch(r"[0-9a-f]{32}", s.fingerprint)


def test_an_older_version_without_ai_wording_keeps_nothing():
    [s] = read(pp.LINKEDIN_URL, pp.linkedin("2020"))
    assert s.sentences == () and s.fingerprint == pt.fingerprint([])


def test_same_words_in_other_markup_give_the_same_fingerprint():
    plain = read(pp.LINKEDIN_URL, pp.linkedin("2024"))[0]
    nested = read(pp.LINKEDIN_URL + "?trk=footer&lipi=abc", pp.linkedin("2024", layout="nested"))[0]
    assert nested.fingerprint == plain.fingerprint
    assert nested.url == pp.LINKEDIN_URL  # never the query string


def test_edits_elsewhere_change_nothing():
    base = read(pp.LINKEDIN_URL, pp.linkedin("2024"))[0]
    edited = read(pp.LINKEDIN_URL, pp.page("Privacy Policy", "January 5, 2026", [pp.LINKEDIN_AI, pp.LINKEDIN_AI_2],
                                           cookies=pp.COOKIES_NEW, address=pp.ADDRESS_NEW))[0]
    assert edited.fingerprint == base.fingerprint


def test_normalisation_of_whitespace_quotes_dates_and_numbering():
    a = sentences_of(b"<html><body><main><p>2.1 We train our AI models on posts published after "
                     b"November 3, 2025.</p><p>" + b"x " * 900 + b"</p></main></body></html>")
    b = sentences_of("<html><body><main><ol><li>(a) We\u00a0train our  \u201cAI\u201d models on posts published "
                     "after 3 November 2025 .</li></ol><p>".encode() + b"x " * 900 + b"</p></main></body></html>")
    assert a == ["We train our AI models on posts published after November 3, 2025."]  # numbering gone, case kept
    assert [pt.sentence_key(x) for x in a] == [pt.sentence_key(x) for x in b]
    assert pt.sentence_key(a[0]).endswith("2025 11 03")
    # a different date is a different clause
    assert pt.sentence_key("Training starts November 3, 2025.") != pt.sentence_key("Training starts November 10, 2025.")


@pytest.mark.parametrize("sentence, ai", [
    ("We use machine learning to rank your feed.", True),
    ("Our generative AI features may make mistakes.", True),
    ("We may use your posts to train our models.", True),
    ("Partners may fine-tune their systems with this data.", True),
    ("We train our staff on how to protect your data.", False),
    ("We keep your data for 30 days after you close your account.", False),
    ("Our team works with aid organisations in Kenya.", False),
])
def test_vocabulary(sentence, ai):
    assert pt.speaks_of_ai(sentence) is ai


def test_rule_phrases_count_too():
    x_rule = RULES.by_id["x.grok-training"]  # its notices.about lists "fine-tun" and "train"
    assert pt.speaks_of_ai("We train our staff on the rules.", x_rule.notice_about)


def test_a_translation_or_an_empty_shell_is_not_read():
    det = Detector(RULES, discover=False, memo_size=0)
    fr = det.detect(pp.LINKEDIN_URL, "text/html", pp.linkedin("2024", lang="fr-FR"), observed_at=T0)
    shell = det.detect(pp.LINKEDIN_URL, "text/html", pp.shell(), observed_at=T0)
    assert fr.policy_texts == () and "English" in fr.note
    assert shell.policy_texts == () and shell.note


def test_a_region_of_the_page_is_not_the_document():
    # what the page eye sends: the smallest region around what it saw, not the whole policy
    region = b'<div role="region"><p>' + pp.QUORA_AI.encode() + b"</p>" + b"<p>More text here.</p>" * 200 + b"</div>"
    obs = Detector(RULES, discover=False, memo_size=0).detect(pp.QUORA_URL, "text/html", region, observed_at=T0)
    assert obs.policy_texts == () and "region" in obs.note


def test_a_main_element_that_is_only_a_hero_does_not_hide_the_document():
    head, _, tail = pp.quora("v1").rpartition(b"</main>")
    body = head.replace(b"<main>", b'<main><h1>Privacy</h1></main><div class="doc">') + b"</div>" + tail
    [s] = read(pp.QUORA_URL, body)
    assert s.sentences == (pp.QUORA_AI,)


def test_other_pages_of_the_host_are_not_policy_documents():
    det = Detector(RULES, discover=False, memo_size=0)
    for url in ("https://www.linkedin.com/feed/", "https://www.linkedin.com/legal/privacy-policy/archive",
                "https://www.linkedin.com/legal/cookie-policy"):
        assert det.detect(url, "text/html", pp.linkedin("2024"), observed_at=T0).policy_texts == (), url
    # language prefixes are globs in the rule: x.com/de/privacy is the same document (read when in English)
    assert read("https://x.com/privacy", pp.x("2023")) and read("https://x.com/en-gb/privacy", pp.x("2023"))


def test_diff_tells_added_removed_and_reworded():
    added, removed, reworded = pt.diff([pp.X_2023, pp.X_2024, pp.QUORA_AI],
                                       [pp.LINKEDIN_AI, pp.X_2023.replace(".", " . "), pp.X_2024_REWORDED])
    assert added == [pp.LINKEDIN_AI]
    assert removed == [pp.QUORA_AI]
    assert reworded == [(pp.X_2024, pp.X_2024_REWORDED)]


def test_compare_first_sighting_same_version_and_change():
    v1 = read(pp.QUORA_URL, pp.quora("v1"))[0]
    assert pt.compare(v1, None) is None  # no shipped history for it: the first sighting is the baseline
    stored = {"fingerprint": v1.fingerprint, "sentences": list(v1.sentences), "first_seen": "2026-11-02T09:00:00+00:00",
              "last_seen": "2026-11-04T09:00:00+00:00"}
    assert pt.compare(read(pp.QUORA_URL, pp.quora("v1", layout="nested"))[0], stored) is None
    change = pt.compare(read(pp.QUORA_URL, pp.quora("v2"))[0], stored)
    assert change.basis == "seen" and change.removed == (pp.QUORA_AI,) and not change.added
    assert change.since == "2026-11-04" and change.last_seen_before == "2026-11-04T09:00:00+00:00"
    assert change.text.startswith("Quora's Privacy Policy no longer says: \u201cWe may license")
    assert "It did when you saw it on 2026-11-04." in change.text


def test_first_sighting_dates_the_clauses_the_shipped_history_knows():
    [s] = read(pp.LINKEDIN_URL, pp.linkedin("2024"))
    change = pt.compare(s, None)
    assert change.basis == "shipped" and change.since == "2024-09-18"
    assert [d for _, d in change.added_on] == ["2024-09-18", "2024-09-18"]
    assert change.headline == "LinkedIn's Privacy Policy says something about AI that was added on 2024-09-18"
    assert "This clause was added on 2024-09-18." in change.text
    assert change.sources and all(u.startswith("https://") for u in change.sources)
    [x] = read(pp.X_URL, pp.x("2024"))
    assert sorted(d for _, d in pt.compare(x, None).added_on) == ["2023-09-29", "2024-11-15"]


# -- rules, patterns, the pack ---------------------------------------------------------------------------

def test_patterns_are_linear_time():
    patterns = [v for v in vars(pt).values() if isinstance(v, re.Pattern)]
    assert len(patterns) >= len(pt.PATTERNS)
    for rx in patterns:
        assert check_pattern(rx.pattern, rx.flags & ~re.UNICODE) == [], rx.pattern


def test_a_hostile_page_is_read_in_bounded_work():
    # many "sentences", dots and AI words: the caps hold and nothing backtracks (the pytest timeout guards it)
    junk = ("<p>" + "AI. " * 50_000 + "</p>" + "<p>" + "a" * 200_000 + ". AI " + "." * 100_000 + "</p>").encode()
    [s] = read(pp.LINKEDIN_URL, b"<html lang=en><body><main>" + junk + b"</main></body></html>")
    assert len(s.sentences) <= pt.MAX_SENTENCES
    assert all(len(x) <= pt.MAX_SENTENCE_CHARS + 4 for x in s.sentences)


def test_shipped_documents_and_history():
    documented = [r for r in RULES.rules if r.data.get("policy_documents")]
    assert {r.platform for r in documented} >= {"linkedin", "x", "meta", "reddit", "quora", "tumblr", "perplexity"}
    watched = 0
    for rule in documented:
        for doc in rule.data["policy_documents"]:
            assert doc["sources"] and doc["kind"] in ("privacy", "terms")
            host = doc["url"].split("/")[2]
            if rule in RULES.for_host(host):
                watched += 1
                path = "/" + doc["url"].split("/", 3)[3]
                assert Detector(RULES).policies.documents_for(host, path.rstrip("/") or "/"), doc["url"]
            for change in doc.get("history", ()):
                dt.date.fromisoformat(change["date"])
                assert change["sources"], (rule.id, doc["id"])
                for clause in [*change.get("added", ()), *change.get("removed", ())]:
                    assert pt.speaks_of_ai(clause, rule.notice_about), clause  # the engine would keep it
    assert watched >= 10


def test_the_pack_holds_the_scripted_policy_documents():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "policy_documents.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


# -- end to end: `consentwatch replay`, the same data dir across replays ---------------------------------

def replay(data_dir: Path, flow: Path) -> list[dict]:
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(flow))
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines()]


def changes(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["kind"] == "policy_changed"]


def test_replay_linkedin_clause_added_then_nothing_for_repeats_queries_markup_and_other_edits(tmp_path, data_dir):
    first = write_flow(tmp_path / "2020.flow", pp.LINKEDIN_URL, pp.linkedin("2020"), timestamp=1_725_000_000)
    assert changes(replay(data_dir, first)) == []  # first sighting, no dated clause: the baseline
    second = write_flow(tmp_path / "2024.flow", pp.LINKEDIN_URL, pp.linkedin("2024"), timestamp=1_727_000_000)
    [f] = changes(replay(data_dir, second))
    assert f["platform"] == "linkedin" and f["rule_id"] == "linkedin.genai-training" and f["url"] == pp.LINKEDIN_URL
    pol = f["policy"]
    assert pol["basis"] == "seen" and pol["document"] == "privacy-policy"
    assert pol["added"] == [pp.LINKEDIN_AI, pp.LINKEDIN_AI_2.replace("\u2019", "'")]
    assert pol["removed"] == [] and pol["reworded"] == []
    seen_first = dt.datetime.fromtimestamp(1_725_000_000, dt.timezone.utc)
    assert pol["seen_before"] == pol["last_seen_before"] == seen_first.isoformat(timespec="seconds")
    assert pol["since"] == seen_first.date().isoformat()
    assert pol["text"].startswith("LinkedIn's Privacy Policy now says: \u201cWe may use your personal data")
    assert pol["text"].endswith(f"New since you saw it on {seen_first.date().isoformat()}. 1 more AI sentence(s) changed.")

    # the same version again, with a tracking query, in another markup, with new cookie wording, address and date
    again = tmp_path / "again.flow"
    write_flow(again, pp.LINKEDIN_URL, pp.linkedin("2024"), timestamp=1_728_000_000)
    write_flow(again, pp.LINKEDIN_URL + "?trk=hp-footer&lipi=urn%3Ali", pp.linkedin("2024"), timestamp=1_728_000_100)
    write_flow(again, pp.LINKEDIN_URL, pp.linkedin("2024", layout="nested"), timestamp=1_728_000_200)
    write_flow(again, pp.LINKEDIN_URL, pp.page("Privacy Policy", "March 3, 2026", [pp.LINKEDIN_AI, pp.LINKEDIN_AI_2],
                                               cookies=pp.COOKIES_NEW, address=pp.ADDRESS_NEW), timestamp=1_728_000_300)
    assert changes(replay(data_dir, again)) == []

    # what is stored: the document's AI sentences and when each version was seen, nothing else of the page
    stored = json.loads((data_dir / "policies.json").read_text())["documents"]
    [doc] = stored.values()
    assert set(doc) == {"key", "rule_id", "platform", "document", "title", "kind", "url", "versions"}
    assert doc["url"] == pp.LINKEDIN_URL and [len(v["sentences"]) for v in doc["versions"]] == [0, 2]
    assert all(set(v) == {"fingerprint", "sentences", "first_seen", "last_seen"} for v in doc["versions"])
    everything = "".join((data_dir / name).read_text() for name in ("policies.json", "state.json", "state.journal")
                         if (data_dir / name).exists())
    for absent in ("trk=", "Sunnyvale", "San Francisco", "cookies", "SECRET_COOKIE_VALUE", "Data Protection Officer"):
        assert absent not in everything

    # the report shows the change, with its sentences
    r = cli("report", "--format", "json", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    [p] = [p for p in report["platforms"] if p["platform"] == "linkedin"]
    [c] = p["policy_changes"]
    assert c["added"] == pol["added"] and c["basis"] == "seen" and report["summary"]["policy_text_changes"] == 1
    html = cli("report", "--format", "html", "--data-dir", str(data_dir)).stdout
    assert 'class="mark-text"' in html and "develop and train artificial intelligence (AI) models" in html


def test_replay_x_first_visit_dates_clauses_then_a_rewording_is_a_change(tmp_path, data_dir):
    first = write_flow(tmp_path / "x1.flow", pp.X_URL + "?s=09", pp.x("2024"), timestamp=1_760_000_000)
    [f] = changes(replay(data_dir, first))
    pol = f["policy"]
    assert f["platform"] == "x" and pol["basis"] == "shipped" and pol["since"] == "2024-11-15"
    assert {a["date"] for a in pol["added_on"]} == {"2023-09-29", "2024-11-15"}
    assert "This clause was added on" in pol["text"]

    reworded = write_flow(tmp_path / "x2.flow", pp.X_URL, pp.x("2026"), timestamp=1_770_000_000)
    [g] = changes(replay(data_dir, reworded))
    assert g["policy"]["basis"] == "seen" and g["policy"]["added"] == [] and g["policy"]["removed"] == []
    assert [(r["before"], r["after"]) for r in g["policy"]["reworded"]] == [
        (pp.X_2024.replace("\u2019", "'"), pp.X_2024_REWORDED.replace("\u2019", "'"))]
    assert g["policy"]["text"].startswith("X's Privacy Policy now says: \u201cIf you do not opt out")

    same = write_flow(tmp_path / "x3.flow", pp.X_URL, pp.x("2026", layout="nested"), timestamp=1_770_100_000)
    assert changes(replay(data_dir, same)) == []
    # the report's word diff shows what was reworded
    report = json.loads(cli("report", "--format", "json", "--data-dir", str(data_dir)).stdout)
    [p] = [p for p in report["platforms"] if p["platform"] == "x"]
    diff = p["policy_changes"][0]["reworded"][0]["diff"]
    assert {"op": "+", "text": "and fine-tune"} in diff or any(d["op"] == "+" and "fine-tune" in d["text"] for d in diff)


def test_replay_quora_clause_removed(tmp_path, data_dir):
    assert changes(replay(data_dir, write_flow(tmp_path / "q1.flow", pp.QUORA_URL, pp.quora("v1")))) == []
    [f] = changes(replay(data_dir, write_flow(tmp_path / "q2.flow", pp.QUORA_URL, pp.quora("v2"))))
    assert f["platform"] == "quora" and f["policy"]["removed"] == [pp.QUORA_AI] and f["policy"]["added"] == []


def test_replay_a_shell_or_a_translation_between_two_views_changes_nothing(tmp_path, data_dir):
    flow = tmp_path / "views.flow"
    write_flow(flow, pp.QUORA_URL, pp.quora("v1"), timestamp=1_760_000_000)
    write_flow(flow, pp.QUORA_URL, pp.shell(), timestamp=1_760_000_100)
    write_flow(flow, pp.QUORA_URL, pp.quora("v2", lang="de"), timestamp=1_760_000_200)
    write_flow(flow, pp.QUORA_URL, pp.quora("v1", layout="nested"), timestamp=1_760_000_300)
    assert changes(replay(data_dir, flow)) == []
    stored = json.loads((data_dir / "policies.json").read_text())["documents"]
    assert [len(d["versions"]) for d in stored.values()] == [1]


# -- the extension shows the backend's words ---------------------------------------------------------------

SANITIZE = r"""
const fs = require('fs'); const vm = require('vm');
const ctx = { URL, Intl, Date, console }; ctx.globalThis = ctx; vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[1], 'utf8'), ctx);
console.log(JSON.stringify([ctx.CW.sanitizeWarning(JSON.parse(process.argv[2])), ctx.CW.KINDS]));
"""


def test_the_extension_keeps_a_policy_change_and_its_words(tmp_path, data_dir):
    node = shutil.which("node")
    if not node:
        missing_prerequisite("node is not installed")
    replay(data_dir, write_flow(tmp_path / "q1.flow", pp.QUORA_URL, pp.quora("v2")))
    replay(data_dir, write_flow(tmp_path / "q2.flow", pp.QUORA_URL, pp.quora("v1")))
    [w] = json.loads(cli("report", "--format", "json", "--data-dir", str(data_dir)).stdout)["platforms"][0]["policy_changes"]
    stored = read_stored(data_dir / "state.json")["warnings"]
    [warning] = [x for x in stored.values() if x["id"] == w["id"]]
    out = subprocess.run([node, "-e", SANITIZE, str(ROOT / "extension" / "lib" / "common.js"), json.dumps(warning)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    shown, kinds = json.loads(out.stdout)
    assert shown["kind"] == "policy_changed" and kinds["policy_changed"] == "Policy text changed"
    assert shown["title"] == warning["title"] and shown["summary"] == warning["summary"]
    assert "now says" in shown["summary"] and "New since you saw it on" in shown["summary"]


def test_first_visit_names_the_newest_clause_first():
    [x] = read(pp.X_URL, pp.x("2024"))
    change = pt.compare(x, None)
    assert [d for _, d in change.added_on] == ["2024-11-15", "2023-09-29"]
    assert change.headline == "X's Privacy Policy says something about AI that was added on 2024-11-15"
    assert change.text.endswith("This clause was added on 2024-11-15. It has 1 more dated AI clause(s), added on 2023-09-29.")
