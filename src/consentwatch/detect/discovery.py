"""Discovery: settings on a rule host whose label speaks of AI, models or training but matches no rule.

Platforms add new AI switches before anyone writes a rule for them. When a page on a rule host holds a
control (checkbox, switch, radio, aria-checked/aria-pressed) whose accessible name mentions AI and no rule
label, this yields a suggestion: host, path and the label text, nothing else from the page (no other text,
no query string, no state). `consentwatch rules suggest` turns the stored suggestions into rule drafts.

Labels are text from pages, so discovery is off unless a maintainer asks for it (`run --discover`), and even
then only a short name the page gave the control itself (aria-label, aria-labelledby, its <label>, its own
text) is kept: never the text around a control, never a long or personal-looking label.

Cheap by construction: a few plain `str.find`s for control markup, an AI-word check in a small window around
each, and only then a parse of those windows. Pages without AI-labelled controls cost a few finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..rules.model import Rule
from ..text import norm, occurrences
from . import dom
from .html_toggles import CONTROLS, _Names, accessible_names, unique_controls

# Words that make a setting's label "speak of AI, models or training" (matched on the normalised name).
AI_TERMS = (r"ai|a\.i\.|genai|gen ai|artificial intelligence|machine learning|ml|llms?|large language models?|"
            r"language models?|models?|generative|neural|train|trains|trained|training")
# AI products: a label that names one speaks of AI only when it also speaks of using data
# ("Allow Claude to use my location" yes; "Send me tips about Copilot" no).
AI_PRODUCTS = r"chatgpt|gpt|copilot|gemini|grok|claude|llama|meta ai"
DATA_USE = (r"use|uses|using|used|improve|improves|improving|share|sharing|shared|data|content|personal|learn|"
            r"learning|collect|collection|analy[sz]e|analysis|activity|history|memory|personali[sz]ation")
AI_NAME = re.compile(rf"(?<![a-z0-9])(?:{AI_TERMS})(?![a-z0-9])")
_PRODUCT = re.compile(rf"(?<![a-z0-9])(?:{AI_PRODUCTS})(?![a-z0-9])")
_DATA_USE = re.compile(rf"(?<![a-z0-9])(?:{DATA_USE})(?![a-z0-9])")


def speaks_of_ai(name_norm: str) -> bool:
    return bool(AI_NAME.search(name_norm) or (_PRODUCT.search(name_norm) and _DATA_USE.search(name_norm)))


# The same words in raw lower-cased markup near a control (a cheap prefilter before parsing).
_AI_RAW = re.compile(rf"(?<![a-z0-9])(?:{AI_TERMS}|{AI_PRODUCTS})(?![a-z0-9])")
# Markup that makes a toggle-like control. Attribute forms only: a JS bundle's "aria-checked": does not count.
# (role=switch requires aria-checked. Radios are not looked for on their own: each find costs ~0.4 ms per MB,
# and a radio's own name is "Allow"/"Don't allow"; radios next to a checkbox or switch are still read.)
_MARKERS = ("aria-checked=", "aria-pressed=", "checkbox")
_MARKER_CONTEXT = ("type=", "role=")
NEAR = 600  # how far from the control markup its label text may be, for the prefilter
WINDOW = 4096  # parsed around each candidate
MAX_MARKERS = 256
MAX_LABEL_CHARS = 80
MAX_LABEL_WORDS = 12
MAX_PER_PAGE = 20
SIBLING_DEPTH = 6  # ancestors searched for the radio group (fieldset, role=radiogroup)
# A label that carries what looks like personal data (an address, a count, a date, an id) is never stored.
_PERSONAL = re.compile(r"@|\d\d|https?://|www\.")  # two digits in a row: \d{2,} finds the same


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
    label = " ".join(name.split())
    if not label or len(label) > MAX_LABEL_CHARS or len(label.split()) > MAX_LABEL_WORDS or _PERSONAL.search(label):
        return None
    if not speaks_of_ai(norm(label)):
        return None
    return label


def find_suggestions(doc, rules: list[Rule], host: str, path: str) -> list[Suggestion]:
    # a rule's labels, and the options of its choice controls (Medium's radios), are known settings
    known_labels = [label for r in rules for label in r.labels_norm] + [c for r in rules for c, _ in r.choices]
    platform = rules[0].platform if rules else None
    names = _Names(doc)
    controls = unique_controls(doc)
    known: dict[int, object] = {}
    unknown = []
    for node in controls:
        all_names = accessible_names(node, names, adjacent=False)
        if any(label in norm(n) for n in all_names for label in known_labels):
            known[node.mem_id] = node  # a rule already covers this control
        elif all_names:
            unknown.append((node, all_names[0]))
    out: list[Suggestion] = []
    for node, name in unknown:
        # The accessible name is the first, most specific one (aria-labelledby, aria-label, <label>, own text,
        # nearby text), as a browser computes one name; a longer text further out is not the label.
        label = clean_label(name)
        if not label or dom.is_hidden(node) or _beside_known(node, known):
            continue
        out.append(Suggestion(host, path, label, platform))
    return out


def _is_radio(node) -> bool:
    a = node.attributes
    return (a.get("role") or "") in ("radio", "menuitemradio") or (
        node.tag == "input" and (a.get("type") or "").lower() == "radio")


def _beside_known(node, known: dict[int, object]) -> bool:
    """Another option of a radio group a rule knows (Medium's "maximum reach" beside "minimize training")."""
    if not known or not _is_radio(node):
        return False
    name = node.attributes.get("name")
    if name and any(_is_radio(k) and k.attributes.get("name") == name for k in known.values()):
        return True
    for anc in dom.ancestors(node, SIBLING_DEPTH):
        if anc.tag == "fieldset" or (anc.attributes.get("role") or "") == "radiogroup":
            return any(c.mem_id in known for c in anc.css(CONTROLS))
    return False


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
