"""HTML toggles: find the control whose accessible name matches a rule's label and read its state.

Keyed on label text and ARIA semantics, never on class names: platforms redesign constantly, but a
switch keeps being a switch with a name. The accessible name comes from, in order: aria-labelledby,
aria-label, <label for>, a wrapping <label>; for a control the author did not name that way, its own
text, its title, and the text next to it (the nearest ancestors that hold this control and no other).
"""

from __future__ import annotations

from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..rules.model import Rule
from ..text import norm, occurrences
from . import dom

CONTROLS = (
    "input, [role=switch], [role=checkbox], [role=radio], [role=menuitemcheckbox], [role=menuitemradio], "
    "[aria-checked], [aria-pressed]"
)
_TOGGLE_INPUT_TYPES = {"checkbox", "radio"}
_TRUE = {"true"}
_FALSE = {"false"}
ADJACENT_DEPTH = 4
MAX_LABELLEDBY = 16  # ids read from one aria-labelledby: a name from more is not a label (hundreds were sent)


@dataclass(frozen=True, slots=True)
class ToggleHit:
    rule: Rule
    checked: bool
    training_on: bool
    label: str  # the accessible name that matched (for logs and suggestions; never page content beyond it)


def control_state(node: LexborNode) -> bool | None:
    """True checked/pressed, False not, None unknown (mixed, or a role without a state)."""
    attrs = node.attributes
    for attr in ("aria-checked", "aria-pressed"):
        v = attrs.get(attr)
        if v is not None:
            v = v.strip().lower()
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
            return None
    if node.tag == "input":
        return "checked" in attrs
    return None


def unique_controls(root) -> list[LexborNode]:
    """Toggle-like controls under `root`, each once (a union selector can yield a node per branch)."""
    seen: set[int] = set()
    out = []
    for c in root.css(CONTROLS):
        if c.mem_id not in seen and _is_control(c):
            seen.add(c.mem_id)
            out.append(c)
    return out


def _is_control(node: LexborNode) -> bool:
    if node.tag == "input":
        return (node.attributes.get("type") or "").lower() in _TOGGLE_INPUT_TYPES
    return True


class _Names:
    """Lazy indexes of one parsed document: ids and label[for]. `far_ids`/`far_for` carry label texts found
    in another window of the same page (a label far from its control)."""

    def __init__(self, doc: LexborHTMLParser, far_ids: dict[str, str] | None = None,
                 far_for: dict[str, list[str]] | None = None):
        self.doc = doc
        self._ids: dict[str, LexborNode] | None = None
        self._texts: dict[str, str | None] = {}  # text by id, each read once however many controls name it
        self._crowded: set[int] | None = None
        self._for: dict[str, list[str]] | None = None
        self.far_ids = far_ids or {}
        self.far_for = far_for or {}

    def text_by_id(self, ident: str) -> str | None:
        if ident not in self._texts:
            node = self.by_id(ident)
            self._texts[ident] = dom.text_of(node) if node is not None else self.far_ids.get(ident)
        return self._texts[ident]

    def holds_other_control(self, ancestor: LexborNode) -> bool:
        """Whether an ancestor of a control holds another control too (or is one)."""
        if self._crowded is None:
            self._crowded = dom.crowded(unique_controls(self.doc))
        return ancestor.mem_id in self._crowded

    def by_id(self, ident: str) -> LexborNode | None:
        if self._ids is None:
            self._ids = {}
            for n in self.doc.css("[id]"):
                self._ids.setdefault(n.attributes.get("id") or "", n)
        return self._ids.get(ident)

    def label_for(self, ident: str) -> list[str]:
        if self._for is None:
            self._for = {}
            for n in self.doc.css("label[for]"):
                self._for.setdefault(n.attributes.get("for") or "", []).append(dom.text_of(n))
        return self._for.get(ident, []) + self.far_for.get(ident, [])


def authored_names(node: LexborNode, names: _Names) -> list[str]:
    """The names the author gave a control: aria-labelledby (at most MAX_LABELLEDBY ids), aria-label, a
    <label for> and a wrapping <label>. Shared by switches and choice controls."""
    attrs = node.attributes
    out: list[str] = []
    if ref := attrs.get("aria-labelledby"):
        parts = [t for i in list(dict.fromkeys(ref.split()))[:MAX_LABELLEDBY] if (t := names.text_by_id(i)) is not None]
        out.append(" ".join(parts))
    if v := attrs.get("aria-label"):
        out.append(v)
    if ident := attrs.get("id"):
        out.extend(names.label_for(ident))
    for anc in dom.ancestors(node, 8):
        if anc.tag == "label":
            out.append(dom.text_of(anc))
            break
    return out


def accessible_names(node: LexborNode, names: _Names, adjacent: bool = True) -> list[str]:
    attrs = node.attributes
    out = authored_names(node, names)
    if any(out):
        # The author named the control (aria-labelledby, aria-label, a <label>): that is its name. Text
        # around it is someone else's: a Like button under a post that quotes a setting is not that setting.
        return [n for n in out if n]
    if node.tag != "input":
        out.append(dom.text_of(node))
    if v := attrs.get("title"):
        out.append(v)
    if not adjacent:  # the control's own names only, never the text around it
        return [n for n in out if n]
    # adjacent text: climb while the ancestor holds no other control
    for depth, anc in enumerate(dom.ancestors(node, ADJACENT_DEPTH)):
        if anc.tag in ("body", "html", "form", "main"):
            break
        if names.holds_other_control(anc):
            break
        out.append(dom.text_of(anc))
    return [n for n in out if n]


def find_toggles(doc: LexborHTMLParser, rules: list[Rule], names: _Names | None = None) -> list[ToggleHit]:
    """Every visible control in `doc` whose name contains one of the rules' labels, with its state."""
    names = names or _Names(doc)
    hits: list[ToggleHit] = []
    candidates = unique_controls(doc)
    for node in candidates:
        for name in accessible_names(node, names):
            n = norm(name)
            matched = [(rule, label) for rule in rules for label in rule.labels_norm if label in n]
            if not matched:
                continue
            # one control, one verdict: the first (most specific) name that matched decides
            state = control_state(node)
            if state is not None and not dom.is_hidden(node) and not dom.is_disabled(node):
                for rule, label in matched:
                    hits.append(ToggleHit(rule, state, state == rule.checked_means_training, label))
            break
    return _dedupe(hits)


def _dedupe(hits: list[ToggleHit]) -> list[ToggleHit]:
    seen: set[tuple[str, bool]] = set()
    out = []
    for h in hits:
        key = (h.rule.id, h.training_on)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


REACH = 800  # how far a label phrase may extend around its anchor word in raw markup


def label_positions(low: str, rules: list[Rule], finders: str = "label_finders") -> list[int]:
    """Where any of the rules' labels occur in lower-cased markup (anchor word found, phrase confirmed).
    `finders` names the rule attribute with the (anchor, pattern) pairs to look for (labels by default).

    Matches inside <head> (a <title> naming the setting) are skipped: no control lives there."""
    head_end = low.find("</head>", 0, 1 << 20)
    positions = []
    for r in rules:
        for anchor, rx in getattr(r, finders):
            for p in occurrences(low, anchor, dom.MAX_WINDOWS):
                if p < head_end:
                    continue
                m = rx.search(low, max(0, p - REACH), p + REACH)
                if m:
                    positions.append(m.start())
    return positions


MAX_LABEL_ELEMENT = 600  # an element with more text than this is a container, not a label


def far_references(doc: LexborHTMLParser, rules: list[Rule]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Label elements in `doc` that point elsewhere: their id (for aria-labelledby) and their `for` target."""
    by_id: dict[str, str] = {}
    by_for: dict[str, list[str]] = {}
    for n in doc.css("[id], label[for]"):
        raw = dom.text_of(n, MAX_LABEL_ELEMENT + 1)
        if not raw or len(raw) > MAX_LABEL_ELEMENT:
            continue
        t = norm(raw)
        if not any(lab in t for r in rules for lab in r.labels_norm):
            continue
        if ident := n.attributes.get("id"):
            by_id[ident] = raw
        if n.tag == "label" and (target := n.attributes.get("for")):
            by_for.setdefault(target, []).append(raw)
    return by_id, by_for


def detect_toggles(text: str, low: str, rules: list[Rule], path: str) -> list[ToggleHit]:
    """Toggles for `rules` in an HTML page. `low` is text.lower(), shared with the other detectors."""
    wanted = [r for r in rules if r.label_finders and r.has_toggle and r.page_matches(path)]
    if not wanted:
        return []
    positions = label_positions(low, wanted)
    if not positions:
        return []  # no label anywhere: nothing to parse
    if len(low) != len(text):  # lower() changed lengths (rare scripts): positions are not exact
        return find_toggles(dom.parse(text), wanted)
    hits: list[ToggleHit] = []
    far_ids: dict[str, str] = {}
    far_for: dict[str, list[str]] = {}
    for doc in dom.parse_regions(text, positions):
        found = find_toggles(doc, wanted)
        hits.extend(found)
        if not found:
            ids, fors = far_references(doc, wanted)
            far_ids.update(ids)
            far_for.update(fors)
    if not hits and (far_ids or far_for):
        # The label is here, its control elsewhere (aria-labelledby / label[for] across the page): go to where
        # the control names that id, and read it there with the label's text.
        refs = [p for ident in list(far_ids) + list(far_for)
                for p in occurrences(low, ident.lower(), 8) if all(abs(p - q) > dom.BEFORE for q in positions)]
        names_for = lambda doc: _Names(doc, far_ids, far_for)  # noqa: E731
        for doc in dom.parse_regions(text, refs):
            hits.extend(find_toggles(doc, wanted, names_for(doc)))
    return _dedupe(hits)
