"""Rule regexes are checked at validate time so none can backtrack catastrophically (issue 7, point 3)."""

from __future__ import annotations

import copy
import re
import time

import pytest

from consentwatch.detect import Detector
from consentwatch.rules.model import MAX_PHRASE_WORDS, Rule, load_pack, pattern_sources, shipped_pack, validate_pack
from consentwatch.rules.regex_safety import MAX_PATTERN_CHARS, check_pattern


@pytest.mark.parametrize("source", [
    r"(a+)+$", r"(?:x{1,5})*", r"(a|aa)*b", r".*a.*", r"^/a/.*/b/.*", r"x\s*\W*\s*y", r"(a)\1", r"a*b",
])
def test_unsafe_shapes_are_refused(source):
    assert check_pattern(source), source


@pytest.mark.parametrize("source", [
    r"^/a/[^/]*/b/[^/]*", r"x\W*y\W*z", r"(?:x{1,5}){1,3}", r"^a*", r"^/settings/.*", r"word(?:a|b)\s*:\s*(?:1|0)",
])
def test_safe_shapes_pass(source):
    assert check_pattern(source) == [], source


def test_length_is_bounded():
    assert "too long" in check_pattern("a" * (MAX_PATTERN_CHARS + 1))[0]


def test_shipped_rules_are_safe_and_sources_match_the_compiled_rules():
    pack = shipped_pack()
    assert validate_pack(pack) == []
    for d in pack["rules"]:
        rule = Rule.from_dict(d)
        runs = [rx for _, rx in rule.label_finders] + [rule.pages, rule.notice_about, rule.notice_about_raw]
        compiled = {p.pattern for p in runs if p}
        checked = {src for _, src, _, _ in pattern_sources(d)}
        assert compiled <= checked, d["id"]  # every regex the engine runs was checked


def _pack_with(**setting_changes):
    pack = copy.deepcopy(shipped_pack())
    rule = pack["rules"][0]
    rule["setting"].update(setting_changes)
    return pack, rule["id"]


def test_validate_refuses_polynomial_globs():
    pack, rid = _pack_with(pages=["/**/settings/**/ai"])
    errors = validate_pack(pack)
    assert any(e.startswith(f"{rid}: setting/pages: regex") for e in errors), errors


def test_validate_refuses_too_long_and_empty_phrases():
    pack, _ = _pack_with(labels=["a " * (MAX_PHRASE_WORDS + 1), "?!?"])
    errors = validate_pack(pack)
    assert any("setting/labels/0" in e and "words" in e for e in errors), errors
    assert any("setting/labels/1" in e and "anywhere" in e for e in errors), errors


# Labels written to hurt a backtracking engine. They must validate (they are just words once split) and run fast.
PATHOLOGICAL = [
    "(a+)+$ (a|a)* ((b*)*)* .*.*.*=x",
    " ".join(["a"] * (MAX_PHRASE_WORDS - 1) + ["b"]),
    " ".join(["aa"] * MAX_PHRASE_WORDS),
    "a&amp;a&amp;a&amp;a<b>a</b>a a a a a a a a a c",
]
NASTY_PAGES = [
    "a " * 400_000,
    "aa " * 300_000,
    "a <i> " * 150_000,
    "a &amp; " * 150_000,
    "a" + " " * 600_000,
    ("a" + "<" * 50) * 15_000,
    "<div role=switch aria-checked=true>" + "a " * 200_000 + "</div>",
]


@pytest.mark.parametrize("label", PATHOLOGICAL)
def test_pathological_labels_cannot_backtrack_catastrophically(label):
    pack, rid = _pack_with(labels=[label], checked_means="training")
    pack["rules"][0]["notices"]["about"] = [label]
    assert validate_pack(pack) == []
    rules = load_pack(pack)
    rule = rules.by_id[rid]
    detector = Detector(rules)
    for page in NASTY_PAGES:
        start = time.perf_counter()
        # the compiled patterns themselves, searched where the engine searches them (windows around anchors)
        for _, rx in rule.label_finders:
            rx.search(page[:200_000])
        rule.notice_about.search(page[:6000])
        # and the whole engine on a ~1 MB page
        detector.detect("https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement",
                        "text/html", page.encode())
        elapsed = time.perf_counter() - start
        assert elapsed < 3.0, (label, page[:20], elapsed)


def test_phrase_regex_is_unchanged_in_meaning():
    # \W* between words covers exactly what \s*\W*\s* did (spaces are non-word characters)
    from consentwatch.text import phrase_regex
    phrases = ["content-generating AI", "train", "AI models"]
    new = phrase_regex(phrases, stem=True)
    old = re.compile(r"(?<![a-z0-9])(?:content\s*\W*\s*generating\s*\W*\s*ai|ai\s*\W*\s*models|train)")
    samples = ["we use content - generating ai models", "content generating ai", "contentgenerating ai",
               "training", "ai  ,  models", "retrain", "ai_models", "content\u00a0generating ai", "c ai"]
    for s in samples:
        assert bool(new.search(s)) == bool(old.search(s)), s
