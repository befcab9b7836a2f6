"""Parsing just enough of a page: the regions around a match, parsed with lexbor.

A 1.5 MB settings page is mostly scripts and data. Parsing all of it costs ~10 ms; parsing the few KB
around the place where a label (or a notice phrase) occurs costs well under one. When the windows would
cover most of the page, or a window turns out not to hold what we need, the whole page is parsed.
"""

from __future__ import annotations

import re
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

# A label and its control sit within a few KB of each other in any markup we have seen; a notice's
# container starts within a few KB of its words. The whole page is parsed when a window comes up empty.
BEFORE = 6 * 1024
AFTER = 6 * 1024
MAX_WINDOWS = 24


def windows(text: str, positions: list[int], before: int = BEFORE, after: int = AFTER) -> list[tuple[int, int]]:
    """Merged [start, end) spans around positions, starts moved to a tag boundary."""
    spans: list[tuple[int, int]] = []
    for pos in sorted(positions)[:MAX_WINDOWS]:
        start, end = max(0, pos - before), min(len(text), pos + after)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    out = []
    for start, end in spans:
        if start:
            lt = text.find("<", start, end)
            start = lt if lt >= 0 else start
        out.append((start, end))
    return out


def parse(text: str) -> LexborHTMLParser:
    return LexborHTMLParser(text)


def parse_regions(text: str, positions: list[int], before: int = BEFORE, after: int = AFTER) -> Iterator[LexborHTMLParser]:
    """Parsed documents for the windows around `positions` (or the whole text when that is cheaper)."""
    spans = windows(text, positions, before, after)
    if sum(e - s for s, e in spans) * 2 >= len(text):
        yield parse(text)
        return
    for s, e in spans:
        yield parse(text[s:e])


_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")


def is_hidden(node: LexborNode) -> bool:
    """Hidden from everyone: the `hidden` attribute or aria-hidden on the node or an ancestor.

    Platforms keep alternate markup (A/B variants, templates) in the page; a hidden control is not what the
    user sees, and false alarms on hidden elements are the top complaint about tools of this kind.
    """
    n: LexborNode | None = node
    depth = 0
    while n is not None and depth < 40:
        attrs = n.attributes
        if "hidden" in attrs or attrs.get("aria-hidden") == "true":
            return True
        if n.tag in ("noscript", "template"):
            return True  # a browser running scripts never shows <noscript>
        style = attrs.get("style")
        if style and _HIDDEN_STYLE.search(style) and (n is not node or "visibility" in style):
            # an inline display:none on the control itself is the common visually-hidden native checkbox
            # behind a styled switch; on an ancestor it hides the whole setting
            return True
        n = n.parent
        depth += 1
    return False


def is_disabled(node: LexborNode) -> bool:
    """A control the user cannot operate (`disabled`, aria-disabled, inside a disabled fieldset). What it shows
    is not a choice: Udemy greys its switch out outside the yearly opt-out window, X disables it for minors."""
    attrs = node.attributes
    if "disabled" in attrs or (attrs.get("aria-disabled") or "").strip().lower() == "true":
        return True
    for anc in ancestors(node, 12):
        if anc.tag == "fieldset" and "disabled" in anc.attributes:
            return True
    return False


def crowded(nodes: list[LexborNode]) -> set[int]:
    """mem_ids of the elements that hold two or more of `nodes` (a node holds itself), in time linear in the tree.

    Asking each element's subtree instead costs nodes x subtree: thousands of controls side by side took minutes.
    Each walk up stops at an element already known to hold two, so every element is passed at most twice."""
    count: dict[int, int] = {}
    for node in nodes:
        n: LexborNode | None = node
        while n is not None:
            k = count.get(n.mem_id, 0)
            if k >= 2:
                break
            count[n.mem_id] = k + 1
            n = n.parent
    return {m for m, k in count.items() if k >= 2}


def text_of(node: LexborNode, limit: int = 4000) -> str:
    t = node.text(deep=True, separator=" ", strip=True)
    return t[:limit]


def ancestors(node: LexborNode, limit: int = 40) -> Iterator[LexborNode]:
    n = node.parent
    while n is not None and limit > 0:
        yield n
        n = n.parent
        limit -= 1
