"""Policy documents: what a platform's privacy policy or terms say about AI, and what changed since last time.

A rule may list its platform's policy documents (`policy_documents`: URL, path globs, and the dated history
of their AI clauses that the maintainers could source). When a response on one of those pages passes an eye,
`PolicyIndex.read` keeps only the sentences that speak of AI, models, machine learning or training (a shared
vocabulary plus the rule's `notices.about` phrases), normalised (whitespace, quotes, dashes, numbering; dates
and punctuation do not count when comparing), and a fingerprint of that AI-relevant part. Nothing else of
the page leaves this module. `compare` then says what changed against the version this install saw last
(or, the first time, which clauses the shipped history dates).

Pure: no I/O, no clock (the caller passes the observation time). Every pattern here is linear-time
(checked by rules/regex_safety.py in the tests).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser

from ..findings import POLICY_CHANGED, Finding, PolicyChange, Remedy
from ..rules.model import Rule, policy_path_source
from ..text import iso_dates, norm

# A page with less visible text than this is a shell, an error page or a login wall, not the document: reading
# it would "remove" every clause.
MIN_TEXT_CHARS = 1500
MIN_SENTENCE_CHARS = 12
MAX_SENTENCE_CHARS = 1200  # a table flattened into one "sentence" is cut here
MAX_SENTENCES = 200
# Two sentences this alike (word sequences) are one clause reworded; a shipped clause matches a page sentence
# at SHIPPED_MATCH (the page may differ in a link word or a comma).
REWORDED = 0.6
SHIPPED_MATCH = 0.9

# Never part of the document's text: scripts, navigation, dialogs (cookie banners live there), hidden parts.
_DROP = ("script, style, noscript, template, svg, iframe, object, nav, footer, dialog, button, "
         "[hidden], [aria-hidden=true], [role=dialog], [role=alertdialog], [role=navigation], "
         "[role=contentinfo], [role=banner], [style*='display:none'], [style*='display: none']")
_BLOCK = frozenset(
    "address article aside blockquote body caption dd details dl div dt fieldset figcaption figure form h1 h2 h3 "
    "h4 h5 h6 header hr html li main ol p pre section summary table tbody td tfoot th thead tr ul".split())
_BREAK = frozenset(("br", "hr"))

# Typographic characters made plain (str.replace per character: str.translate with a dict is ~50x slower).
_TYPO = (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u00a0", " "), ("\u2013", "-"),
         ("\u2014", "-"), ("\u2010", "-"), ("\u2011", "-"), ("\u200b", ""), ("\u00ad", ""), ("\u2026", "..."))
# A sentence ends at . ! or ? (a closing quote or bracket may follow) before a space and a capital or a digit.
_SPLIT = re.compile(r"""(?:(?<=[.!?])|(?<=[.!?]["')\]])) (?=["'(\[]?[A-Z0-9])""")
# Section numbers and bullets in front of a block or sentence: "2.1 ", "1. ", "(a) ", "iv) ", "• ".
_NUMBERING = re.compile(r"(?:\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,6})[.)]|\d{1,3}(?:\.\d{1,3}){1,4}\.?|[*>\u2022\u00b7\u25aa\u25e6-]) ")
_NOT_WORD = re.compile(r"[^a-z0-9]")

# The shared vocabulary (on normalised, lower-case text). Training words count only beside a model-ish word,
# so "we train our staff" stays out.
AI_TERMS = re.compile(
    r"(?<![a-z0-9])(?:ai|a\.i\.|artificial intelligence|machine[- ]learning|deep[- ]learning|neural networks?|"
    r"(?:large )?language models?|llms?|genai|gen ai|generative|foundation models?|chatbots?)(?![a-z0-9])")
TRAIN_TERMS = re.compile(r"(?<![a-z0-9])(?:train|trains|trained|training|retrain(?:s|ed|ing)?|"
                         r"fine[- ]?tun(?:e|es|ed|ing))(?![a-z0-9])")
MODEL_TERMS = re.compile(r"(?<![a-z0-9])(?:models?|algorithms?|systems?|technolog(?:y|ies))(?![a-z0-9])")
# A whole document starts with <!doctype>, <html>, <head> or <body> (within its first bytes, after a BOM or comments).
_WHOLE = re.compile(r"<(?:!doctype|html|head|body)[\s>]", re.I)
WHOLE_WITHIN = 4096
PATTERNS = (_SPLIT, _NUMBERING, AI_TERMS, TRAIN_TERMS, MODEL_TERMS, _WHOLE)  # for the linear-time check


@dataclass(frozen=True, slots=True)
class DatedClause:
    """One clause of the shipped history: added on `date` (and, if it was, removed on `removed`)."""

    text: str
    key: str
    date: str
    removed: str | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class PolicyDocument:
    rule: Rule
    id: str
    kind: str  # "privacy" or "terms"
    title: str
    url: str
    hosts: frozenset[str]
    paths: re.Pattern[str]
    sources: tuple[str, ...]
    history: tuple[DatedClause, ...]


@dataclass(frozen=True, slots=True)
class PolicySighting:
    """The AI-relevant part of one policy page as seen once: all that is kept of it."""

    rule_id: str
    platform: str
    platform_name: str
    document: str
    kind: str
    title: str
    url: str  # the page: scheme://host/path
    sentences: tuple[str, ...]  # in page order, one per clause (display form)
    fingerprint: str
    observed_at: str
    dated: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (page sentence, date the history says it was added, sources)

    @property
    def key(self) -> str:
        return f"{self.rule_id}/{self.document}"


# -- text ------------------------------------------------------------------------------------------------

def _plain(text: str) -> str:
    for typo, plain in _TYPO:
        if typo in text:
            text = text.replace(typo, plain)
    return text


def clean_lines(text: str) -> str:
    """Typographic quotes and dashes made plain, NFKC; line breaks and case kept."""
    t = _plain(text)
    if not unicodedata.is_normalized("NFKC", t):
        t = _plain(unicodedata.normalize("NFKC", t))  # NFKC turns U+2011 into U+2010
    return t


def clean(text: str) -> str:
    """`clean_lines`, whitespace collapsed: the form a sentence is kept in."""
    return " ".join(clean_lines(text).split())


def sentence_key(sentence: str) -> str:
    """What a sentence is compared by: its words, lower case, dates as ISO; punctuation and spacing do not count."""
    return " ".join(_NOT_WORD.sub(" ", iso_dates(norm(sentence))).split())


def fingerprint(keys: Iterable[str]) -> str:
    """Of the AI-relevant part: the same clauses give the same fingerprint, in any order or markup."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:32]


def _strip_numbering(s: str) -> str:
    for _ in range(2):
        m = _NUMBERING.match(s)
        if m is None:
            break
        s = s[m.end():]
    return s


def _cut(s: str) -> str:
    if len(s) <= MAX_SENTENCE_CHARS:
        return s
    cut = s.rfind(" ", 0, MAX_SENTENCE_CHARS)
    return s[:cut if cut > MAX_SENTENCE_CHARS // 2 else MAX_SENTENCE_CHARS] + " ..."


def speaks_of_ai(sentence: str, about: re.Pattern[str] | None = None, cleaned: bool = False) -> bool:
    """`cleaned`: the sentence already went through `clean` (lower case is then all `norm` would add)."""
    low = sentence.lower() if cleaned else norm(sentence)
    if AI_TERMS.search(low):
        return True
    if TRAIN_TERMS.search(low) and MODEL_TERMS.search(low):
        return True
    return about is not None and about.search(low) is not None


def page_language(doc: LexborHTMLParser) -> str:
    node = doc.css_first("html")
    return ((node.attributes.get("lang") if node is not None else None) or "").strip().lower()


def text_blocks(doc: LexborHTMLParser) -> list[str]:
    """The document's visible text, one string per block (paragraph, list item, cell, heading), in order.

    Inline markup does not split a block, so the same words give the same blocks however the page nests them."""
    body = doc.body
    if body is None:
        return []
    root = body
    main = doc.css_first("main") or doc.css_first("[role=main]")
    if main is not None and len(main.text(deep=True)) * 2 >= len(body.text(deep=True)):
        root = main  # the document itself; a <main> holding a small part of the text is a hero, not the policy
    for node in root.css(_DROP):
        node.decompose()
    if root.tag == "body":
        for node in root.css("body > header"):
            node.decompose()
    memo: dict[int, int] = {}

    def block_of(node) -> int:
        chain: list[int] = []
        found = 0
        n = node.parent
        while n is not None:
            key = n.mem_id
            if key in memo:
                found = memo[key]
                break
            chain.append(key)
            if n.tag in _BLOCK:
                found = key
                break
            n = n.parent
        for key in chain:
            memo[key] = found
        return found

    out: list[str] = []
    last = -1
    for node in root.traverse(include_text=True):
        tag = node.tag
        if tag == "-text":
            block = block_of(node)
            if block != last:
                out.append("\n")
                last = block
            out.append(node.text_content or "")
        elif tag in _BREAK:
            out.append("\n")
            last = -1
    return [b for b in (" ".join(x.split()) for x in clean_lines("".join(out)).split("\n")) if b]


def ai_sentences(blocks: Iterable[str], about: re.Pattern[str] | None = None) -> list[str]:
    """The sentences of `blocks` that speak of AI, normalised, one per clause (the first wins), page order."""
    out: list[str] = []
    seen: set[str] = set()
    seen_text: set[str] = set()
    for block in blocks:
        low = block.lower()
        if not (AI_TERMS.search(low) or TRAIN_TERMS.search(low) or (about is not None and about.search(low))):
            continue  # most of a policy: no sentence of this block can speak of AI
        for part in _SPLIT.split(_strip_numbering(block)):
            s = _cut(_strip_numbering(part.strip()))
            if len(s) < MIN_SENTENCE_CHARS or s in seen_text or not speaks_of_ai(s, about, cleaned=True):
                continue
            seen_text.add(s)
            key = sentence_key(s)
            if key and key not in seen:
                seen.add(key)
                out.append(s)
                if len(out) >= MAX_SENTENCES:
                    return out
    return out


# -- rule data -------------------------------------------------------------------------------------------

def _history(doc: dict) -> tuple[DatedClause, ...]:
    """Clauses the history dates, each with the date it was (last) added and, if so, removed after that."""
    added: dict[str, DatedClause] = {}
    for change in sorted(doc.get("history", ()), key=lambda c: c["date"]):
        sources = tuple(change.get("sources", ()))
        for text in change.get("removed", ()):
            key = sentence_key(text)
            if key in added and added[key].removed is None:
                c = added[key]
                added[key] = DatedClause(c.text, c.key, c.date, change["date"], c.sources)
        for text in change.get("added", ()):
            key = sentence_key(text)
            added[key] = DatedClause(clean(text), key, change["date"], None, sources)
    return tuple(added.values())


class PolicyIndex:
    """The policy documents of a rule set, by host: one dict lookup per response, a path match per document."""

    def __init__(self, rules: Iterable[Rule]):
        self.by_host: dict[str, list[PolicyDocument]] = {}
        for rule in rules:
            for d in rule.data.get("policy_documents", ()):
                host = (urlsplit(d["url"]).hostname or "").lower()
                doc = PolicyDocument(
                    rule=rule, id=d["id"], kind=d["kind"], title=d.get("title") or d["id"], url=d["url"],
                    hosts=frozenset([host, *d.get("hosts", ())]),
                    paths=re.compile(policy_path_source(d)), sources=tuple(d.get("sources", ())),
                    history=_history(d))
                for h in doc.hosts:
                    self.by_host.setdefault(h, []).append(doc)

    def __bool__(self) -> bool:
        return bool(self.by_host)

    def documents_for(self, host: str, path: str, rules: Iterable[Rule] | None = None) -> list[PolicyDocument]:
        docs = self.by_host.get(host)
        if not docs:
            return []
        ids = None if rules is None else {r.id for r in rules}
        return [d for d in docs if (ids is None or d.rule.id in ids) and d.paths.match(path)]

    def read(self, host: str, path: str, url: str, html: str, when: dt.datetime,
             rules: Iterable[Rule] | None = None) -> tuple[list[PolicySighting], str]:
        """Sightings of the policy documents this page is (usually none), and a note when a page was not read."""
        docs = self.documents_for(host, path, rules)
        if not docs:
            return [], ""
        if _WHOLE.search(html, 0, WHOLE_WITHIN) is None:
            # a region of the page (the page eye sends the smallest one that holds what it saw) is not the
            # document: reading it would "remove" every clause outside it
            return [], "policy page region, not the whole document"
        parsed = LexborHTMLParser(html)
        lang = page_language(parsed)
        if lang and not lang.startswith("en"):
            return [], "policy page not in English"  # the vocabulary is English: a translation is not a change
        blocks = text_blocks(parsed)
        if sum(len(b) for b in blocks) < MIN_TEXT_CHARS:
            return [], "policy page without its text"
        stamp = when.isoformat(timespec="seconds")
        out = []
        for doc in docs:
            sentences = ai_sentences(blocks, doc.rule.notice_about)
            keys = [sentence_key(s) for s in sentences]
            out.append(PolicySighting(
                rule_id=doc.rule.id, platform=doc.rule.platform, platform_name=doc.rule.platform_name,
                document=doc.id, kind=doc.kind, title=doc.title, url=url, sentences=tuple(sentences),
                fingerprint=fingerprint(keys), observed_at=stamp, dated=_dated(sentences, keys, doc.history)))
        return out, ""


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _dated(sentences, keys, history: tuple[DatedClause, ...]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Page sentences that are clauses the shipped history dates (and does not say were removed)."""
    live = [c for c in history if c.removed is None]
    out = []
    for s, k in zip(sentences, keys):
        best = next((c for c in live if c.key == k), None)
        if best is None:
            scored = [(_similar(c.key, k), c) for c in live]
            scored = [(r, c) for r, c in scored if r >= SHIPPED_MATCH]
            best = max(scored, key=lambda rc: rc[0])[1] if scored else None
        if best is not None:
            out.append((s, best.date, best.sources))
    return tuple(out)


# -- what changed ----------------------------------------------------------------------------------------

def diff(old: Iterable[str], new: Iterable[str]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(added, removed, reworded) between two lists of sentences, compared by `sentence_key`."""
    old_by = {sentence_key(s): s for s in old}
    new_by = {sentence_key(s): s for s in new}
    gone = [k for k in old_by if k not in new_by]
    came = [k for k in new_by if k not in old_by]
    pairs = sorted(((_similar(o, n), o, n) for o in gone for n in came), reverse=True)
    reworded: list[tuple[str, str]] = []
    used_o: set[str] = set()
    used_n: set[str] = set()
    for ratio, o, n in pairs:
        if ratio < REWORDED:
            break
        if o in used_o or n in used_n:
            continue
        used_o.add(o)
        used_n.add(n)
        reworded.append((old_by[o], new_by[n]))
    added = [new_by[k] for k in came if k not in used_n]
    removed = [old_by[k] for k in gone if k not in used_o]
    order = {s: i for i, s in enumerate(new_by.values())}
    reworded.sort(key=lambda p: order.get(p[1], 0))
    return added, removed, reworded


def compare(s: PolicySighting, previous: dict | None) -> PolicyChange | None:
    """What `s` says about AI that the previous version did not (None: nothing new).

    `previous` is the stored version this install saw last ({fingerprint, sentences, first_seen, last_seen}),
    or None the first time: then only clauses the shipped history dates are news (the first sighting of an
    undated document just sets the baseline)."""
    if previous is None:
        if not s.dated:
            return None
        newest_first = sorted(s.dated, key=lambda d: d[1], reverse=True)  # stable: page order within a date
        added_on = tuple((text, date) for text, date, _ in newest_first)
        sources = tuple(dict.fromkeys(src for _, _, srcs in s.dated for src in srcs))
        return _change(s, "shipped", added=tuple(t for t, _ in added_on), added_on=added_on, sources=sources,
                       since=max(d for _, d in added_on))
    if previous.get("fingerprint") == s.fingerprint:
        return None
    added, removed, reworded = diff(previous.get("sentences") or (), s.sentences)
    if not (added or removed or reworded):
        return None
    return _change(s, "seen", added=tuple(added), removed=tuple(removed), reworded=tuple(reworded),
                   seen_before=previous.get("first_seen"), last_seen_before=previous.get("last_seen"),
                   previous_fingerprint=previous.get("fingerprint"),
                   since=(previous.get("last_seen") or "")[:10] or None)


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _quote(s: str, limit: int = 280) -> str:
    if len(s) > limit:
        s = s[: s.rfind(" ", 0, limit) if s.rfind(" ", 0, limit) > limit // 2 else limit] + " ..."
    return f"\u201c{s}\u201d"


def _change(s: PolicySighting, basis: str, since: str | None, **kw) -> PolicyChange:
    doc = f"{_possessive(s.platform_name)} {s.title}"
    added, removed, reworded = kw.get("added", ()), kw.get("removed", ()), kw.get("reworded", ())
    if basis == "shipped":
        first = kw["added_on"][0]
        headline = f"{doc} says something about AI that was added on {first[1]}"
        text = f"{doc} says: {_quote(first[0])} This clause was added on {first[1]}."
        others = sorted({d for _, d in kw["added_on"][1:]}, reverse=True)
        if others:
            text += (f" It has {len(kw['added_on']) - 1} more dated AI clause(s), added on "
                     f"{', '.join(others)}.")
    else:
        when = f" on {since}" if since else ""
        if added or reworded:
            new = added[0] if added else reworded[0][1]
            headline = f"{doc} now says something new about AI"
            text = f"{doc} now says: {_quote(new)} New since you saw it{when}."
            more = len(added) + len(reworded) - 1
            if more > 0:
                text += f" {more} more AI sentence(s) changed."
            if removed:
                text += f" {len(removed)} AI sentence(s) were removed."
        else:
            headline = f"{doc} no longer says something it said about AI"
            text = f"{doc} no longer says: {_quote(removed[0])} It did when you saw it{when}."
            if len(removed) > 1:
                text += f" {len(removed) - 1} more AI sentence(s) were removed."
    return PolicyChange(
        document=s.document, title=s.title, kind=s.kind, url=s.url, basis=basis, since=since,
        seen_now=s.observed_at, fingerprint=s.fingerprint, headline=headline, text=text, **kw)


def change_finding(s: PolicySighting, change: PolicyChange, remedy: Remedy | None = None) -> Finding:
    return Finding(kind=POLICY_CHANGED, platform=s.platform, rule_id=s.rule_id, url=s.url, setting=s.title,
                   observed_at=s.observed_at, remedy=remedy or Remedy(None, ()), source="policy", policy=change)
