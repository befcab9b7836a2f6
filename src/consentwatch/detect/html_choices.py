"""Controls that are not checkboxes: choice controls and controls whose name carries the state.

- **Choices** (`setting.choices`): a `<select>`, an ARIA listbox, menu or combobox, a menu button, or a radio group
  (`fieldset`, `role=radiogroup`, or radios sharing a name) whose accessible name contains one of the rule's
  labels. Its chosen option (the selected `<option>`, `aria-selected`/`aria-checked` item, the checked radio, or
  the text a menu button shows) is matched, as whole words, against the rule's option texts. GitHub's
  "Allow GitHub to use my data for AI model training" is an Enabled/Disabled dropdown.
- **Name states** (`setting.name_states`): a button, link or menu button whose accessible name contains one of the
  rule's phrases. Google's "Keep activity" chip is a menu button named "Turn off your Keep Activity setting"
  while the setting is on; it has no checked state at all.

Hidden and disabled controls are not choices. Keyed on names and ARIA semantics, never on class names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..rules.model import Rule
from ..text import norm
from . import dom
from .html_toggles import ADJACENT_DEPTH, CONTROLS, _Names, accessible_names, authored_names, label_positions

CONTAINERS = "select, [role=listbox], [role=menu], [role=radiogroup], fieldset, [role=combobox], [aria-haspopup]"
POPUPS = "[role=menu], [role=listbox]"  # the list a menu button or combobox opens: part of the same control
RADIOS = "input[type=radio], [role=radio], [role=menuitemradio]"
ACTIONABLE = ("button, [role=button], a[href], [role=link], [aria-haspopup], [role=menuitem], [role=tab], "
              "input[type=button], input[type=submit], summary")
_CHECKED = ("[aria-checked=true], [aria-selected=true]")


@dataclass(frozen=True, slots=True)
class ChoiceHit:
    rule: Rule
    choice: str  # the option text that matched (normalised): for logs and tests
    training_on: bool


def _unique(nodes) -> list[LexborNode]:
    seen: set[int] = set()
    out = []
    for n in nodes:
        if n.mem_id not in seen:
            seen.add(n.mem_id)
            out.append(n)
    return out


def _word_in(needle: str, hay: str) -> bool:
    return re.search(r"(?<![a-z0-9])" + re.escape(needle) + r"(?![a-z0-9])", hay) is not None


def meaning_of(option: str, rule: Rule, drop: tuple[str, ...] = ()) -> tuple[str, bool] | None:
    """What the chosen option's text means for `rule`: (choice, training?) or None when no single meaning."""
    text = norm(option)
    for label in drop:  # a menu button's text may hold its label too; the label is not the value
        text = text.replace(label, " ")
    text = " ".join(text.split())
    if not text:
        return None
    for choice, training in rule.choices:
        if text == choice:
            return choice, training
    found = {(c, t) for c, t in rule.choices if _word_in(c, text)}
    if len({t for _, t in found}) == 1:
        return max(found, key=lambda ct: len(ct[0]))
    return None  # none, or both meanings named: no guess


def container_names(node: LexborNode, names: _Names) -> list[str]:
    """The accessible names of a choice container: aria-labelledby, aria-label, <label for>, a wrapping
    <label>, a fieldset's <legend>; only when the author named it none of those ways, the text around it."""
    out = authored_names(node, names)
    if node.tag == "fieldset":
        legend = node.css_first("legend")
        if legend is not None:
            out.append(dom.text_of(legend))
    if any(out):
        return [n for n in out if n]
    # unnamed: the text next to it, climbing while an ancestor holds no other control
    for anc in [node] + list(dom.ancestors(node, ADJACENT_DEPTH)):
        if anc.tag in ("body", "html", "form", "main"):
            break
        if anc is not node and _holds_other_controls(anc, node):
            break
        out.append(dom.text_of(anc))
    return [n for n in out if n]


def _holds_other_controls(anc: LexborNode, group: LexborNode) -> bool:
    """Does `anc` hold a control that is not part of `group`? A menu button and the menu it opens are one control."""
    inside = {c.mem_id for c in group.css(f"{CONTROLS}, {CONTAINERS}")} | {group.mem_id}
    popup_parts = {c.mem_id for p in anc.css(POPUPS) for c in [p, *p.css(f"{CONTROLS}, {CONTAINERS}")]}
    return any(c.mem_id not in inside and c.mem_id not in popup_parts for c in anc.css(f"{CONTROLS}, {CONTAINERS}"))


def chosen_text(node: LexborNode, names: _Names) -> str | None:
    """The text of the option chosen in a choice container, or None when nothing is chosen (or readable)."""
    tag, role = node.tag, (node.attributes.get("role") or "").lower()
    if tag == "select":
        options = node.css("option")
        picked = [o for o in options if "selected" in o.attributes] or options[:1]  # a browser shows the first
        if not picked:
            return None
        o = picked[0]
        return dom.text_of(o) or o.attributes.get("label") or o.attributes.get("value")
    if role in ("listbox", "menu"):
        for item in node.css(_CHECKED):
            if item.mem_id != node.mem_id:
                return _name(item, names)
        return None
    if tag == "fieldset" or role == "radiogroup":
        for radio in node.css(RADIOS):
            if _radio_checked(radio):
                return _name(radio, names)
        return None
    # a menu button or select-only combobox shows its current value as its own text (or aria-valuetext)
    return node.attributes.get("aria-valuetext") or dom.text_of(node) or node.attributes.get("value")


def _radio_checked(radio: LexborNode) -> bool:
    if radio.tag == "input":
        return "checked" in radio.attributes
    return (radio.attributes.get("aria-checked") or "").strip().lower() == "true"


def _name(node: LexborNode, names: _Names) -> str | None:
    found = accessible_names(node, names)
    return found[0] if found else (dom.text_of(node) or None)


def _loose_radio_groups(doc: LexborHTMLParser, done: set[int]) -> list[LexborNode]:
    """Radio groups without a fieldset or radiogroup: the lowest element holding a checked radio and another
    radio of the same group."""
    out = []
    for radio in doc.css(RADIOS):
        if radio.mem_id in done or not _radio_checked(radio):
            continue
        for anc in dom.ancestors(radio, 6):
            if len(anc.css(RADIOS)) >= 2:
                if anc.mem_id not in done:
                    out.append(anc)
                break
    return out


def find_choices(doc: LexborHTMLParser, rules: list[Rule], names: _Names | None = None) -> list[ChoiceHit]:
    names = names or _Names(doc)
    hits: list[ChoiceHit] = []
    containers = _unique(doc.css(CONTAINERS))
    done = {r.mem_id for c in containers for r in c.css(RADIOS)}
    groups = [(c, False) for c in containers] + [(g, True) for g in _loose_radio_groups(doc, done)]
    for node, loose in groups:
        if dom.is_hidden(node) or dom.is_disabled(node) or (node.attributes.get("aria-haspopup") or "").lower() == "false":
            continue
        all_names = [norm(n) for n in container_names(node, names)]
        matched = [(rule, label) for rule in rules for label in rule.labels_norm if any(label in n for n in all_names)]
        if not matched:
            continue
        if loose:
            picked = next((_name(r, names) for r in node.css(RADIOS) if _radio_checked(r)), None)
        else:
            picked = chosen_text(node, names)
        if not picked:
            continue
        for rule, label in matched:
            meaning = meaning_of(picked, rule, drop=rule.labels_norm)
            if meaning is not None:
                hits.append(ChoiceHit(rule, meaning[0], meaning[1]))
    return _dedupe(hits)


def find_name_states(doc: LexborHTMLParser, rules: list[Rule], names: _Names | None = None) -> list[ChoiceHit]:
    """Buttons and links whose accessible name (the first of aria-labelledby, aria-label, own text, title)
    contains a rule's name-state phrase."""
    names = names or _Names(doc)
    hits: list[ChoiceHit] = []
    for node in _unique(doc.css(ACTIONABLE)):
        attrs = node.attributes
        name = None
        if ref := attrs.get("aria-labelledby"):
            name = " ".join(t for i in ref.split() if (t := names.text_by_id(i)) is not None)
        name = name or attrs.get("aria-label") or dom.text_of(node, 600) or attrs.get("title") or attrs.get("value")
        if not name:
            continue
        n = norm(name)
        found = [(rule, phrase, training) for rule in rules for phrase, training in rule.name_states if phrase in n]
        if found and not dom.is_hidden(node) and not dom.is_disabled(node):
            hits.extend(ChoiceHit(rule, phrase, training) for rule, phrase, training in found)
    return _dedupe(hits)


def _dedupe(hits: list[ChoiceHit]) -> list[ChoiceHit]:
    seen: set[tuple[str, bool]] = set()
    out = []
    for h in hits:
        if (h.rule.id, h.training_on) not in seen:
            seen.add((h.rule.id, h.training_on))
            out.append(h)
    return out


def _in_regions(text: str, low: str, positions: list[int], find) -> list[ChoiceHit]:
    if not positions:
        return []
    if len(low) != len(text):  # lower() changed lengths (rare scripts): positions are not exact
        return find(dom.parse(text))
    hits: list[ChoiceHit] = []
    for doc in dom.parse_regions(text, positions):
        hits.extend(find(doc))
    return _dedupe(hits)


def detect_choices(text: str, low: str, rules: list[Rule], path: str) -> list[ChoiceHit]:
    """Choice controls for `rules` in an HTML page. `low` is text.lower()."""
    wanted = [r for r in rules if r.choices and r.label_finders and r.page_matches(path)]
    if not wanted:
        return []
    return _in_regions(text, low, label_positions(low, wanted), lambda doc: find_choices(doc, wanted))


def detect_name_states(text: str, low: str, rules: list[Rule], path: str) -> list[ChoiceHit]:
    """Controls whose name carries the state, for `rules`, in an HTML page. `low` is text.lower()."""
    wanted = [r for r in rules if r.name_finders and r.page_matches(path)]
    if not wanted:
        return []
    positions = label_positions(low, wanted, finders="name_finders")
    return _in_regions(text, low, positions, lambda doc: find_name_states(doc, wanted))
