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
_CHANGE_START = r"(?:updat|chang|revis|amend|new)"  # what _CHANGE begins with (a lookahead needs no more)
# "we're changing how we use your data" announces a change without naming a policy document
_HOW_WE = r"how we (?:use|process|handle|share|collect)"
# Up to N words between a change word and a policy word. "-" and "'" belong to words ("we're", "opt-in") and are
# separators too, so with backtracking a run of 30 dashes could be split between words and separators in
# billions of ways (issue 12). Here every word and every separator run is taken whole and never given back
# (possessive): a word goes on through "-" and "'" unless the target word follows them ("self-updating" ends
# at "updating"). Each start then costs at most N words of bounded length: linear in the text
# (tests/test_regex_linear.py checks every pattern that reads page text).
_SEP = r"\W{1,256}+"


def _up_to(n: int, target: str) -> str:
    word = rf"\w{{1,64}}+(?:['-]{{1,8}}+(?!{target})\w{{1,64}}+){{0,8}}+"
    return rf"(?:{word}{_SEP}){{0,{n}}}?"


CHANGE_RX = re.compile(
    rf"\b{_CHANGE}{_SEP}{_up_to(6, _POLICY + r'\b')}{_POLICY}\b|\b{_POLICY}{_SEP}{_up_to(6, _CHANGE_START)}{_CHANGE}"
    rf"|\b{_CHANGE}{_SEP}{_up_to(3, _HOW_WE + r'\b')}{_HOW_WE}\b"
)
# Cookie banners talk about policy changes too; their policy words do not count.
_COOKIE_POLICY = re.compile(r"cookie(?:s)?\s+(?:policy|notice|statement|settings|preferences)")
# Cheap raw pre-check. Every notice names the document that changes, so look for those words first with a
# plain find (fast), then for a change word and an about phrase near each hit (regex on a small slice only).
POLICY_ANCHORS = ("privacy", "terms", "agreement", "polic", "how we ")
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


def _texts(node: LexborNode):
    """(element, text) for a candidate; for a long one (a full-page dialog), its paragraphs instead."""
    raw = node.text(deep=True, separator=" ", strip=True)
    if len(raw) <= MAX_NOTICE_CHARS:
        yield node, raw
        return
    for i, part in enumerate(node.css("p, li, section, div")):
        if i >= 400:
            return
        t = part.text(deep=True, separator=" ", strip=True)
        if t and len(t) <= MAX_NOTICE_CHARS:
            yield part, t


def find_notices(doc: LexborHTMLParser, rules: list[Rule]) -> list[NoticeHit]:
    best: dict[str, tuple[int, NoticeHit]] = {}
    for container in _candidates(doc):
        if container.tag in ("html", "body") or _quoted(container):
            continue
        for node, raw in _texts(container):
            _judge(node, raw, rules, best)
    return [h for _, h in best.values()]


def _judge(node: LexborNode, raw: str, rules: list[Rule], best: dict) -> None:
    if not raw:
        return
    t = norm(raw)
    if not is_policy_change(t):
        return
    for rule in rules:
        if rule.notice_about is None or not rule.notice_about.search(t):
            continue
        if dom.is_hidden(node):
            return
        # the smallest element that says it all is the notice itself
        if rule.id not in best or len(raw) < best[rule.id][0]:
            best[rule.id] = (len(raw), NoticeHit(rule, effective_date(raw)))


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
