"""Policy notices: a banner or dialog on a platform's own host announcing a terms/privacy change about AI.

A notice counts when one notice-like element (dialog, alert, live region, banner, aside, or an element
whose id/class says banner/notice/modal...) says both that a policy is changing and what the rule's
`notices.about` phrases say. Not a notice: a cookie banner, an article (even on the same host) quoting
the words, anything on another host (the caller only passes the rules of the response's host).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..rules.model import Rule
from ..text import effective_date, norm, occurrences
from . import dom

CONTAINERS = (
    "dialog, aside, header, [role=dialog], [role=alertdialog], [role=alert], [role=status], [role=banner], "
    "[role=region], [role=note], [role=complementary], [aria-modal=true], [aria-live]"
)
_HINT = re.compile(r"banner|notice|notif|modal|dialog|toast|alert|announce|callout|interstitial|snackbar|"
                   r"consent|policy|terms|upsell|message|popup|overlay|sheet|prompt", re.I)
_QUOTING = {"article", "blockquote", "q", "cite"}
MAX_NOTICE_CHARS = 6000

_POLICY = (r"(?:privacy (?:policy|notice|statement)|user agreement|terms(?: of (?:service|use))?|"
           r"consumer terms|policies|data (?:use )?policy|privacy|policy|notice)")
_CHANGE = (r"(?:updat\w*|chang\w*|revis\w*|amend\w*|new)")
CHANGE_RX = re.compile(
    rf"\b{_CHANGE}\W+(?:[\w'-]+\W+){{0,6}}?{_POLICY}\b|\b{_POLICY}\W+(?:[\w'-]+\W+){{0,6}}?{_CHANGE}"
)
# Cookie banners talk about policy changes too; their policy words do not count.
_COOKIE_POLICY = re.compile(r"cookie(?:s)?\s+(?:policy|notice|statement|settings|preferences)")
# Cheap raw pre-check. Every notice names the document that changes, so look for those words first with a
# plain find (fast), then for a change word and an about phrase near each hit (regex on a small slice only).
POLICY_ANCHORS = ("privacy", "terms", "agreement", "polic")
NEAR = 3000
_RAW_CHANGE = re.compile(r"updat|chang|revis|amend")


@dataclass(frozen=True, slots=True)
class NoticeHit:
    rule: Rule
    effective_date: str | None


def _candidates(doc: LexborHTMLParser) -> list[LexborNode]:
    out = list(doc.css(CONTAINERS))
    seen = {n.mem_id for n in out}
    for n in doc.css("[class], [id]"):
        if n.mem_id in seen:
            continue
        a = n.attributes
        if _HINT.search((a.get("class") or "") + " " + (a.get("id") or "")):
            out.append(n)
    return out


def _quoted(node: LexborNode) -> bool:
    if node.tag in _QUOTING:
        return True
    return any(a.tag in _QUOTING for a in dom.ancestors(node))


def is_policy_change(text_norm: str) -> bool:
    return CHANGE_RX.search(_COOKIE_POLICY.sub(" ", text_norm)) is not None


def find_notices(doc: LexborHTMLParser, rules: list[Rule]) -> list[NoticeHit]:
    best: dict[str, tuple[int, NoticeHit]] = {}
    for node in _candidates(doc):
        if node.tag in ("html", "body") or _quoted(node):
            continue
        raw = node.text(deep=True, separator=" ", strip=True)
        if not raw or len(raw) > MAX_NOTICE_CHARS:
            continue  # a container the size of a page is not a notice
        t = norm(raw)
        if not is_policy_change(t):
            continue
        for rule in rules:
            if rule.notice_about is None or not rule.notice_about.search(t):
                continue
            if dom.is_hidden(node):
                break
            hit = NoticeHit(rule, effective_date(raw))
            # the smallest element that says it all is the notice itself
            if rule.id not in best or len(raw) < best[rule.id][0]:
                best[rule.id] = (len(raw), hit)
    return [h for _, h in best.values()]


def detect_notices(text: str, low: str, rules: list[Rule]) -> list[NoticeHit]:
    wanted = [r for r in rules if r.notice_about_raw is not None]
    if not wanted:
        return []
    positions: list[int] = []
    for anchor in POLICY_ANCHORS:
        for p in occurrences(low, anchor, dom.MAX_WINDOWS, gap=NEAR):
            start, end = max(0, p - NEAR), p + NEAR
            if _RAW_CHANGE.search(low, start, end) and any(r.notice_about_raw.search(low, start, end) for r in wanted):
                positions.append(p)
    if not positions:
        return []
    if len(low) != len(text):
        return find_notices(dom.parse(text), wanted)
    hits: dict[str, NoticeHit] = {}
    for doc in dom.parse_regions(text, positions):
        for h in find_notices(doc, wanted):
            if h.rule.id not in hits or (h.effective_date and not hits[h.rule.id].effective_date):
                hits[h.rule.id] = h
    return list(hits.values())
