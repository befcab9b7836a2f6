"""Every regex that reads page text is linear: proven by the rules' own checker, then attacked.

The detectors' patterns are found, not listed: every compiled pattern at module level in consentwatch.text and
consentwatch.detect.* (alone, or in a list or tuple), so a new one is checked the day it is added. Each must pass
rules/regex_safety.check_pattern, the proof rule patterns get at validation. The checker lets a bounded repeat
sit inside another bounded repeat (the tag gap between the words of a label is one), which it cannot prove
unambiguous; so each pattern is also run over hostile inputs built from its own words and from the characters
that make patterns backtrack, under a hang guard far above what a linear pattern needs.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
import signal
import time
from contextlib import contextmanager

import pytest

import consentwatch.detect
from consentwatch.detect import notices
from consentwatch.rules.model import load_pack, pattern_sources, shipped_pack
from consentwatch.rules.regex_safety import check_pattern

try:
    import re._constants as C  # type: ignore[import-not-found]
    import re._parser as P  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

MODULES = ["consentwatch.text"] + [f"consentwatch.detect.{m.name}" for m in pkgutil.iter_modules(consentwatch.detect.__path__)]
HANG_GUARD = 20  # seconds for one pattern's whole battery; a linear pattern needs well under one

# The pattern issue 12 found: "Updated" and 30 dashes took minutes. Kept to show that both checks catch it.
OLD_CHANGE_RX = (r"\b(?:updat\w*|chang\w*|revis\w*|amend\w*|new)\W+(?:[\w'-]+\W+){0,6}?(?:privacy|policy|terms)\b")


def page_text_patterns() -> dict[str, re.Pattern]:
    found: dict[str, re.Pattern] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            items = value if isinstance(value, (list, tuple)) else [value]
            for i, item in enumerate(items):
                if isinstance(item, tuple) and item and isinstance(item[0], re.Pattern):
                    item = item[0]
                if isinstance(item, re.Pattern):
                    found[f"{name}.{attr}" + (f"[{i}]" if items is value else "")] = item
    return found


def rule_patterns() -> dict[str, re.Pattern]:
    """What the shipped rules compile to and the detectors run (labels, notice phrases, JSON keys)."""
    out: dict[str, re.Pattern] = {}
    for rule in load_pack(shipped_pack()).rules:
        for i, (_, rx) in enumerate(rule.label_finders):
            out[f"{rule.id} label {i}"] = rx
        for what in ("notice_about", "notice_about_raw"):
            if (rx := getattr(rule, what)) is not None:
                out[f"{rule.id} {what}"] = rx
    from consentwatch.text import json_key_regex

    for d in shipped_pack()["rules"]:
        for k in (d.get("setting") or {}).get("json_keys", ()):
            out[f"{d['id']} json key {k['key']}"] = json_key_regex(k["key"])
    return out


def _source(rx: re.Pattern) -> str:
    return rx.pattern.decode("latin-1") if isinstance(rx.pattern, bytes) else rx.pattern


def test_the_detectors_patterns_are_all_found():
    names = set(page_text_patterns())
    for expected in ("consentwatch.detect.notices.CHANGE_RX", "consentwatch.detect.notices._COOKIE_POLICY",
                     "consentwatch.text._DATE_PATTERNS[0]", "consentwatch.detect.body._META_CHARSET",
                     "consentwatch.detect.discovery._AI_RAW", "consentwatch.detect.dom._HIDDEN_STYLE"):
        assert expected in names
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(page_text_patterns()))
def test_every_page_text_pattern_passes_the_rules_checker(name):
    rx = page_text_patterns()[name]
    assert check_pattern(_source(rx), rx.flags & ~re.UNICODE) == []


def test_the_checker_refuses_the_old_change_pattern():
    assert any("nested quantifiers" in p for p in check_pattern(OLD_CHANGE_RX))


def test_the_shipped_rules_compile_to_checked_patterns():
    for d in shipped_pack()["rules"]:
        for where, source, flags, anchored in pattern_sources(d):
            assert check_pattern(source, flags, anchored) == [], f"{d['id']} {where}"


# -- hostile inputs ----------------------------------------------------------------------------------------------

# Characters that sit in both a word and a separator, start tags and entities, or collapse under normalisation.
BAIT_CHARS = " -'\"<>&;:=./\\\t0a\u2014\u2019"


def _literal_words(rx: re.Pattern) -> list[str]:
    """Runs of literal characters anywhere in the pattern: the words that lead a matcher into its repeats."""
    words: set[str] = set()

    def walk(items) -> None:
        run = ""
        for op, av in items:
            if op == C.LITERAL:
                run += chr(av)
                continue
            if len(run) >= 2:
                words.add(run)
            run = ""
            if op == C.SUBPATTERN:
                walk(av[-1])
            elif op == C.BRANCH:
                for alt in av[1]:
                    walk(alt)
            elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
                walk(av[2])
            elif op in (C.ASSERT, C.ASSERT_NOT):
                walk(av[1])
        if len(run) >= 2:
            words.add(run)

    walk(P.parse(_source(rx), rx.flags & ~re.UNICODE))
    return sorted(words, key=lambda w: (-len(w), w))[:24]


def hostile_inputs(rx: re.Pattern, n: int = 4000):
    """(what, text): the pattern's words around long runs of each bait character, and interleaved with them."""
    words = _literal_words(rx) or ["x"]
    for w in words:
        for c in BAIT_CHARS:
            yield f"{w!r} + {c!r}*{n}", f"{w} {c * n} {w}"
            yield f"({w!r} + {c!r})*k", (w + c) * (n // (len(w) + 1))
        yield f"{w!r} + mixed", w + " " + "-' \u2014a" * (n // 5) + "x"
    yield "all words, 40-char bait runs", " ".join(w + " " + c * 40 for w in words for c in BAIT_CHARS)


class Hung(Exception):
    pass


@contextmanager
def hang_guard(seconds: int):
    # The regex engine checks for signals while it matches, so an alarm stops a runaway match with a clear failure.
    def alarm(*_):
        raise Hung()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_battery(rx: re.Pattern, seconds: int) -> str | None:
    """None when every hostile input was matched in time; else what was running when the guard went off."""
    what = ""
    try:
        with hang_guard(seconds):
            for what, text in hostile_inputs(rx):
                subject = text.encode("latin-1", "replace") if isinstance(rx.pattern, bytes) else text
                for _ in rx.finditer(subject):
                    pass
                for low in (subject.lower(),):
                    rx.search(low)
    except Hung:
        return what
    return None


@pytest.mark.parametrize("name", sorted(page_text_patterns()) + sorted(rule_patterns()))
def test_every_pattern_survives_hostile_inputs(name):
    rx = {**page_text_patterns(), **rule_patterns()}[name]
    started = time.monotonic()
    stuck = run_battery(rx, HANG_GUARD)
    assert stuck is None, f"{name} still matching {stuck} after {time.monotonic() - started:.0f} s"


def test_the_hostile_inputs_catch_the_old_change_pattern():
    # the battery must be able to fail: the old pattern does not get through it
    assert run_battery(re.compile(OLD_CHANGE_RX), 2) is not None


# -- the new change pattern says what the old one said ----------------------------------------------------------

def _old_full_pattern() -> re.Pattern:
    return re.compile(
        rf"\b{notices._CHANGE}\W+(?:[\w'-]+\W+){{0,6}}?{notices._POLICY}\b"
        rf"|\b{notices._POLICY}\W+(?:[\w'-]+\W+){{0,6}}?{notices._CHANGE}"
        rf"|\b{notices._CHANGE}\W+(?:[\w'-]+\W+){{0,3}}?{notices._HOW_WE}\b")


def test_the_change_pattern_agrees_with_the_old_one_on_sentences():
    # On short sentences (where the old pattern is quick) both must agree, whatever the apostrophes and dashes.
    old = _old_full_pattern()
    vocab = ("updated update changes changing revised amended new news privacy policy notice statement user agreement "
             "terms of service use consumer policies data how we process share collect our the your to we're it's "
             "e-mail opt-in a and will be from effective november ai models generative train self-updating").split()
    seps = [" ", " ", " ", ", ", ". ", " - ", "-", "'", " '", "' ", ": ", " -- ", "/", " (", ") ", ' "', "--", "-'-", "''"]
    rnd = random.Random(12)
    disagree = []
    for _ in range(20_000):
        s = "".join(rnd.choice(vocab) + rnd.choice(seps) for _ in range(rnd.randint(1, 16))).strip()
        if (old.search(s) is None) != (notices.CHANGE_RX.search(s) is None):
            disagree.append(s)
    assert disagree == []


@pytest.mark.parametrize("text, changes", [
    ("we're updating our privacy policy on november 3, 2025", True),
    ("terms of service - updated", True),
    ("our privacy notice is self-updating", True),
    ("we've made changes to how we use your data", True),
    ("updated " + "-" * 40 + " privacy policy", True),
    ("read our privacy policy to learn more", False),
    ("updated " + "-" * 40 + " x", False),
    ("updated one two three four five six seven privacy", False),
])
def test_change_pattern_examples(text, changes):
    assert notices.is_policy_change(text) is changes
