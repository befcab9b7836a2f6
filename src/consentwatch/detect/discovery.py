"""Discovery: settings on a rule host whose label speaks of AI, models or training but matches no rule.

Platforms add new AI switches before anyone writes a rule for them. When a page on a rule host holds a
control (checkbox, switch, radio, aria-checked/aria-pressed) whose accessible name mentions AI and no rule
label, this yields a suggestion: host, path and the label text, nothing else from the page (no other text,
no query string, no state). `consentwatch rules suggest` turns the stored suggestions into rule drafts.

Cheap by construction: a few plain `str.find`s for control markup, an AI-word check in a small window around
each, and only then a parse of those windows. Pages without AI-labelled controls cost a few finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..rules.model import Rule
from ..text import norm, occurrences
from . import dom
from .html_toggles import _Names, accessible_names, unique_controls

# Words that make a setting's label "speak of AI, models or training" (matched on the normalised name).
AI_TERMS = (r"ai|a\.i\.|genai|gen ai|artificial intelligence|machine learning|ml|llms?|large language models?|"
            r"language models?|models?|generative|neural|train|trains|trained|training|chatgpt|gpt|copilot|"
            r"gemini|grok|claude|llama")
AI_NAME = re.compile(rf"(?<![a-z0-9])(?:{AI_TERMS})(?![a-z0-9])")
# The same words in raw lower-cased markup near a control (a cheap prefilter before parsing).
_AI_RAW = AI_NAME
# Markup that makes a toggle-like control. Attribute forms only: a JS bundle's "aria-checked": does not count.
# (role=switch requires aria-checked. Radios are not looked for on their own: each find costs ~0.4 ms per MB,
# and a radio's own name is "Allow"/"Don't allow"; radios next to a checkbox or switch are still read.)
_MARKERS = ("aria-checked=", "aria-pressed=", "checkbox")
_MARKER_CONTEXT = ("type=", "role=")
NEAR = 600  # how far from the control markup its label text may be, for the prefilter
WINDOW = 4096  # parsed around each candidate
MAX_MARKERS = 256
MAX_LABEL_CHARS = 160
MAX_PER_PAGE = 20
# A label that carries what looks like personal data is never stored.
_PERSONAL = re.compile(r"@|\d{5,}|https?://")


@dataclass(frozen=True, slots=True)
class Suggestion:
    host: str
    path: str
    label: str
    platform: str | None = None

    def to_dict(self) -> dict:
        return {"host": self.host, "path": self.path, "label": self.label, "platform": self.platform}


def _marker_positions(low: str) -> list[int]:
    positions = []
    for marker in _MARKERS:
        for p in occurrences(low, marker, MAX_MARKERS, gap=64):
            if marker == "checkbox":
                before = low[max(0, p - 7):p]  # type="checkbox", role='checkbox', type=checkbox
                if not any(c in before for c in _MARKER_CONTEXT):
                    continue
            positions.append(p)
    return positions


def candidate_positions(low: str) -> list[int]:
    """Control markup with an AI word nearby, in lower-cased page text."""
    out = []
    for p in _marker_positions(low):
        if _AI_RAW.search(low, max(0, p - NEAR), p + NEAR):
            out.append(p)
            if len(out) >= dom.MAX_WINDOWS:
                break
    return out


def clean_label(name: str) -> str | None:
    """The label as stored: whitespace collapsed, short, speaks of AI, and carries nothing personal."""
    label = re.sub(r"\s+", " ", name).strip()
    if not label or len(label) > MAX_LABEL_CHARS or _PERSONAL.search(label):
        return None
    if not AI_NAME.search(norm(label)):
        return None
    return label


def find_suggestions(doc, rules: list[Rule], host: str, path: str) -> list[Suggestion]:
    known = [label for r in rules for label in r.labels_norm]
    platform = rules[0].platform if rules else None
    names = _Names(doc)
    out: list[Suggestion] = []
    for node in unique_controls(doc):
        all_names = accessible_names(node, names)
        if not all_names:
            continue
        normed = [norm(n) for n in all_names]
        if any(label in n for n in normed for label in known):
            continue  # a rule already covers this control
        if dom.is_hidden(node):
            continue
        for name in all_names:  # most specific first: aria-labelledby, aria-label, <label>, own text, nearby text
            label = clean_label(name)
            if label:
                out.append(Suggestion(host, path, label, platform))
                break
    return out


def discover(text: str, low: str, rules: list[Rule], host: str, path: str) -> list[Suggestion]:
    """Suggestions for one HTML page of a rule host. `low` is text.lower(); `path` has no query string."""
    positions = candidate_positions(low)
    if not positions:
        return []
    if len(low) != len(text):  # lower() changed lengths: positions are not exact, read the whole page
        docs = [dom.parse(text)]
    else:
        spans = dom.windows(text, positions, WINDOW, WINDOW)
        docs = [dom.parse(text)] if sum(e - s for s, e in spans) * 2 >= len(text) else \
            [dom.parse(text[s:e]) for s, e in spans]
    seen: set[str] = set()
    out: list[Suggestion] = []
    for doc in docs:
        for s in find_suggestions(doc, rules, host, path):
            key = norm(s.label)
            if key not in seen:
                seen.add(key)
                out.append(s)
                if len(out) >= MAX_PER_PAGE:
                    return out
    return out
