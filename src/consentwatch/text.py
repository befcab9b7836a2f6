"""Text helpers shared by the detectors: normalisation, phrase patterns, dates. Pure, no I/O."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator

# Every pattern here reads page text: each must pass rules/regex_safety.check_pattern and survive the hostile
# inputs of tests/test_regex_linear.py (which finds them by being module-level compiled patterns).
_WORD = re.compile(r"[a-z0-9][a-z0-9]*")  # = [a-z0-9]+, spelled so the checker sees a literal start
# Typographic characters platforms use in labels, mapped to what rule authors type.
_TRANSLATE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
                            "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u200b": "",
                            "\u00ad": ""})


def norm(text: str) -> str:
    """Lower-case, typographic quotes and dashes made plain, soft hyphens dropped, whitespace collapsed.

    The map runs before NFKC as well as after: NFKC turns U+2011 into U+2010, which must end up as '-'."""
    # split() and join: the same whitespace as \s+ and strip(), without a regex
    return " ".join(unicodedata.normalize("NFKC", text.translate(_TRANSLATE)).translate(_TRANSLATE).split()).lower()


def words(text: str) -> list[str]:
    return _WORD.findall(norm(text))


# Between two words of a phrase in raw markup: spaces, punctuation, entities, and tags
# (so "Use my <b>data</b>" still matches), but bounded so that a match cannot run across a page.
_GAP = r"(?:[^a-z0-9<&]|&#?[a-z0-9]{1,8};|<[^<>]{0,200}>){1,40}?"


def raw_phrase_pattern(phrase: str) -> str:
    """Regex source for a phrase in lower-cased raw HTML/JSON text. Linear: no nested quantifiers."""
    return _GAP.join(re.escape(w) for w in words(phrase))


def anchor_word(phrase: str) -> str:
    """The phrase's longest word: the literal to look for first (a plain find is ~20x faster than a regex)."""
    return max(words(phrase), key=len, default="")


def occurrences(low: str, needle: str, cap: int, gap: int = 0) -> list[int]:
    """Up to `cap` positions of `needle` in `low`, skipping hits within `gap` of the previous one."""
    out: list[int] = []
    i = low.find(needle)
    while i >= 0 and len(out) < cap:
        out.append(i)
        i = low.find(needle, i + max(len(needle), gap))
    return out


def phrase_source(phrases: list[str], stem: bool = False) -> str | None:
    """Regex source for `phrase_regex` (checked for backtracking safety when a rule is validated)."""
    # between words: any run of non-word characters (\W* already covers spaces; \s*\W*\s* would
    # give three quantifiers that can split the same run, which backtracks polynomially)
    alts = sorted({r"\W*".join(re.escape(w) for w in words(p)) for p in phrases if words(p)}, key=len, reverse=True)
    if not alts:
        return None
    return r"(?<![a-z0-9])(?:" + "|".join(alts) + ")" + ("" if stem else r"(?![a-z0-9])")


def phrase_regex(phrases: list[str], stem: bool = False) -> re.Pattern[str] | None:
    """One alternation for normalised text, word-bounded; with `stem`, the last word may go on
    ("train" also finds "training" and "trained")."""
    source = phrase_source(phrases, stem)
    return re.compile(source) if source is not None else None


_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DATE_PATTERNS = [
    # November 3, 2025 / Nov 3rd 2025
    (re.compile(_MON + r"\s{1,8}(\d{1,2})(?:st|nd|rd|th)?,?\s{1,8}(\d{4})"), ("m", "d", "y")),
    # 3 November 2025 / 3rd of November, 2025
    (re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\s{1,8}(?:of\s{1,8})?" + _MON + r",?\s{1,8}(\d{4})"), ("d", "m", "y")),
    # 2025-11-03, 2025/11/03
    (re.compile(r"(?<!\d)(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?!\d)"), ("y", "mn", "d")),
    # 03.11.2025: day first, as European notices write it
    (re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)"), ("d", "mn", "y")),
    # 11/03/2025: month first (US) unless the first number cannot be a month
    (re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)"), ("mdy", "dmy", "y")),
]
# Words that introduce the date a change takes effect. A date right after a strong cue wins; then one after a
# weak cue; then the first date. ("until" is not a cue: "you have until <date> to choose" is a deadline.)
_STRONG_CUE = re.compile(r"\b(?:effective|take[sn]? effect|taking effect|comes? into (?:force|effect)|as of|starting|"
                         r"beginning|from)(?: on)?\W*$")
_WEAK_CUE = re.compile(r"\b(?:on|begin|start|updating|updated)\W*$")


def _date_matches(text: str) -> Iterator[tuple[int, int, dt.date]]:
    """(start, end, date) of every date the patterns find in normalised text; invalid calendar dates skipped."""
    for rx, order in _DATE_PATTERNS:
        for m in rx.finditer(text):
            parts = dict(zip(order, m.groups()))
            if "mdy" in parts:
                a, b = parts.pop("mdy"), parts.pop("dmy")
                parts["mn"], parts["d"] = (b, a) if int(a) > 12 else (a, b)
            try:
                month = int(parts["mn"]) if "mn" in parts else _MONTHS[parts["m"].rstrip(".")]
                yield m.start(), m.end(), dt.date(int(parts["y"]), month, int(parts["d"]))
            except (KeyError, ValueError):
                continue


def find_dates(text: str) -> list[tuple[int, dt.date]]:
    """Dates in normalised text, with their positions. Invalid calendar dates are skipped."""
    return sorted((start, d) for start, _, d in _date_matches(text))


def effective_date(text: str) -> str | None:
    """The date a notice says its change takes effect, as ISO, or None when it gives none."""
    t = norm(text)
    dates = find_dates(t)
    if not dates:
        return None
    weak = None
    for pos, d in dates:
        before = t[max(0, pos - 40):pos]
        if _STRONG_CUE.search(before):
            return d.isoformat()
        if weak is None and _WEAK_CUE.search(before):
            weak = d
    return (weak or dates[0][1]).isoformat()


# A JSON quote as it appears in a page: plain, escaped inside a JSON string, or as an HTML entity.
JSON_QUOTE = r'(?:"|\\"|&quot;|&#34;|&#x22;|\\u0022|\\x22)'


def json_key_regex(key: str) -> re.Pattern[str]:
    """`"key" : value` in raw text (JSON that does not parse, JSON inside HTML), the value in group 1.

    The JSON detector scans with it and rule validation checks it for safety, so both see the same pattern."""
    return re.compile(JSON_QUOTE + re.escape(key) + JSON_QUOTE + r"\s*:\s*(true|false|[01](?![0-9.])|" + JSON_QUOTE
                      + r"[a-z]{2,8}" + JSON_QUOTE + ")", re.I)


def iso_dates(text: str) -> str:
    """Normalised text with every date it names written as ISO (2025-11-03), so that "November 3, 2025" and
    "3 November 2025" compare equal. Overlapping matches: the earliest, then the longest, wins."""
    spans = [(start, end, d.isoformat()) for start, end, d in _date_matches(text)]
    if not spans:
        return text
    out, pos = [], 0
    for start, end, iso in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < pos:
            continue
        out += [text[pos:start], iso]
        pos = end
    out.append(text[pos:])
    return "".join(out)
