"""Hostile pages: responses from a rule host built to make detection slow, each of a different shape.

Each shape aims at one place where detection does work that grows with what a page controls: a regex
that could backtrack (every pattern that runs on page text has its bait here), repeated labels, controls
named by hundreds of ids, containers nested thousands deep, huge or deeply nested JSON. The pages are
built, not recorded: the same sizes every run. A page's path says which shape it is, so its findings
(if any) are told apart from those of the real settings page replayed after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conftest import FIXTURES

LINKEDIN = "https://www.linkedin.com"
CLAUDE_ACCOUNT = "https://claude.ai/api/account"  # where anthropic.claude-training reads its JSON key
SETTINGS_FIXTURE = FIXTURES / "linkedin" / "settings-on.flow"
SETTINGS_PATH = "/mypreferences/d/settings/data-for-ai-improvement"
LABEL = "Use my data for training content creation AI models"


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    content_type: str
    body: bytes
    expect: tuple[str, ...] = ()  # the findings the page itself must give, as "kind rule-id"

    @property
    def path(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.url).path


def _html(inner: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}<title>LinkedIn</title></head><body>{inner}</body></html>".encode()


# -- backtracking bait: one for each pattern that reads page text ----------------------------------------------

def _change_bait(run: str) -> str:
    # A dialog that passes every cheap pre-check (a policy word, a change word and a rule's phrase within a few KB)
    # and then hands the change/policy pattern a long run of characters that are both word-ish and not, with no
    # policy word after it. The policy word stands more than six words before the change word.
    return (f'<div role="dialog" class="policy-update-modal"><p>Read the privacy centre at any time; one two three '
            f'four five six seven eight nine ten: generative AI. Updated {run} x</p></div>')


def change_bait(runs: int = 1) -> list[Page]:
    shapes = {
        "dashes": "-" * 40, "em-dashes": "\u2014" * 40, "apostrophes": "'" * 40, "curly-apostrophes": "\u2019" * 40,
        "hyphenated": "a-" * 40, "mixed": "-'\u2014 " * 12 + "-'" * 20,
    }
    pages = []
    for name, run in shapes.items():
        pages.append(Page(f"change-{name}", f"{LINKEDIN}/feed/hostile-change-{name}", "text/html",
                          _html(_change_bait(run) * runs)))
    # the policy word first, the change word never comes
    policy_first = ('<div role="dialog"><p>generative AI; Privacy ' + "-" * 40 + " x</p></div>")
    pages.append(Page("change-policy-first", f"{LINKEDIN}/feed/hostile-change-policy-first", "text/html",
                      _html(policy_first * runs)))
    how_we = ('<div role="dialog"><p>generative AI privacy. one two three four five six seven eight: changing '
              + "'-" * 30 + " how we x</p></div>")
    pages.append(Page("change-how-we", f"{LINKEDIN}/feed/hostile-change-how-we", "text/html", _html(how_we * runs)))
    return pages


def phrase_bait() -> list[Page]:
    """Near misses for the patterns compiled from rules: labels, notice phrases (raw and normalised)."""
    gap = "<b>" * 40 + "&nbsp;" * 5 + " -" * 30  # more gap than a phrase allows
    label_words = LABEL.split()
    near_miss = gap.join(label_words)
    # each word of the label, then the next word after too long a gap, many times over
    labels = "".join(f"<p>{near_miss}</p>" for _ in range(3000))
    about = ("<div class='notice'>We updated our privacy policy: generative " + "- " * 3000 + "models</div>") * 50
    stems = "<div role='dialog'>privacy policy updated " + " ".join(["train"] * 2000) + "ing</div>"
    return [
        Page("phrase-labels", f"{LINKEDIN}{SETTINGS_PATH}/hostile-labels", "text/html", _html(labels)),
        Page("phrase-about", f"{LINKEDIN}/feed/hostile-about", "text/html", _html(about)),
        Page("phrase-stems", f"{LINKEDIN}/feed/hostile-stems", "text/html", _html(stems * 20)),
    ]


def date_bait() -> list[Page]:
    """A real-looking notice whose text is full of almost-dates (the effective-date patterns)."""
    junk = " ".join(["3rd of"] * 300 + ["2025-11"] * 200 + ["11/03/"] * 200 + ["03.11."] * 200 + ["November 3,"] * 200)
    notice = (f'<div role="dialog"><p>We are updating our privacy policy to train generative AI models. '
              f'{junk}</p></div>')
    return [Page("dates", f"{LINKEDIN}/feed/hostile-dates", "text/html", _html(notice))]


def json_scan_bait() -> list[Page]:
    """The JSON key scanner (HTML-embedded JSON): the key, a long blank run, and no colon; every quote style."""
    key = "grove_enabled"
    quotes = ['"', '\\"', "&quot;", "&#34;", "&#x22;", "\\u0022", "\\x22"]
    parts = [f"{q}{key}{q}" + " " * 2000 + "," for q in quotes for _ in range(300)]
    return [Page("json-scan", f"{CLAUDE_ACCOUNT}?shape=scan", "text/html",
                 _html("<script>var s = [" + "".join(parts) + "];</script>"))]


def attribute_bait() -> list[Page]:
    """Styles, class names and charset declarations built for the small patterns (hidden, notice hints, charset)."""
    style = "display" + " " * 20000 + ": block; visibility" + " " * 20000 + ": visible"
    controls = "".join(f'<div class="{"modal" * 2000}"><label>{LABEL}<input type="checkbox" style="{style}"></label>'
                       f"</div>" for _ in range(20))
    head = "<meta " + " " * 150 + "charset" + " " * 4000 + "= utf-8>"
    return [Page("attributes", f"{LINKEDIN}{SETTINGS_PATH}/hostile-attributes", "text/html",
                 _html(controls, head=head))]


def discovery_bait() -> list[Page]:
    """Hundreds of AI-labelled controls no rule knows, each with a long label (discovery, then its label checks)."""
    label = "Use " + " ".join(["machine learning 12 www. @"] * 40)
    controls = "".join(f'<div><input type="checkbox" id="c{i}" aria-label="{label} {i}"> AI model training</div>'
                       for i in range(3000))
    return [Page("discovery", f"{LINKEDIN}/settings/hostile-discovery", "text/html", _html(controls))]


# -- other shapes ----------------------------------------------------------------------------------------------

def quoted_labels(n: int = 5000) -> list[Page]:
    """Thousands of quotations of a rule's label and of a notice, in text, in attributes and in scripts."""
    quoted = "".join(
        f'<blockquote cite="x"><p>&ldquo;{LABEL}&rdquo; and &quot;Data for Generative AI Improvement&quot;: we updated '
        f'our privacy policy to train generative AI models</p></blockquote><span aria-label="{LABEL}">{i}</span>'
        for i in range(n))
    script = "<script>var labels = [" + ",".join(f'"{LABEL} {i}"' for i in range(n)) + "];</script>"
    return [Page("quoted-labels", f"{LINKEDIN}{SETTINGS_PATH}/hostile-quoted", "text/html", _html(quoted + script))]


def _spread_labels(blocks: list[str], every: int) -> str:
    # A rule's label every few blocks: the label finder then marks so many places that the whole page is parsed.
    return "".join((f"<i>{LABEL}</i>" if i % every == 0 else "") + b for i, b in enumerate(blocks))


def many_ids(controls: int = 150, ids: int = 500) -> list[Page]:
    """Controls each named by hundreds of ids (aria-labelledby), the ids naming an element with a long text, and
    hundreds of <label for> naming one control; a rule's label throughout so the page is read whole."""
    filler = "lorem ipsum " * 8000
    refs = " ".join(["big"] * (ids // 2) + [f"n{i}" for i in range(ids // 2)])
    targets = "".join(f'<b id="n{i}">{i}</b>' for i in range(ids // 2))
    switch = f'<div role="switch" aria-checked="true" aria-labelledby="{refs}"></div>'
    labels = "".join('<label for="t">lorem ipsum</label>' for _ in range(ids)) + '<input id="t" type="checkbox" checked>'
    body = f'<div id="big">{filler}</div>' + targets + _spread_labels([switch] * controls, 6) + labels
    return [Page("many-ids", f"{LINKEDIN}{SETTINGS_PATH}/hostile-ids", "text/html", _html(body))]


def many_choice_ids(controls: int = 150, ids: int = 500) -> list[Page]:
    """The same for choice controls (GitHub's Enabled/Disabled dropdown): selects and radio groups each named
    by hundreds of ids, and thousands of unnamed selects side by side, with the rule's label throughout."""
    label = "Allow GitHub to use my data for AI model training"
    filler = "lorem ipsum " * 8000
    refs = " ".join(["label"] + ["big"] * (ids // 2) + [f"n{i}" for i in range(ids // 2)])
    targets = f'<b id="label">{label}</b>' + "".join(f'<b id="n{i}">{i}</b>' for i in range(ids // 2))
    select = (f'<select aria-labelledby="{refs}"><option selected>Enabled</option><option>Disabled</option></select>'
              f'<div role="radiogroup" aria-labelledby="{refs}"><div role="radio" aria-checked="true">Enabled</div></div>')
    unnamed = "<span><select><option selected>Enabled</option><option>Disabled</option></select></span>" * 3000
    body = (f'<div id="big">{filler}</div>' + targets + "".join(f"<p>{label}</p>{select}" for _ in range(controls))
            + f"<div><p>{label}</p>{unnamed}</div>")
    # the label is among the ids, so the dropdowns are read as the setting: Enabled means training
    return [Page("many-choice-ids", "https://github.com/settings/copilot/features/hostile-choices", "text/html",
                 _html(body), expect=("toggle_on github.copilot-training",))]


def many_controls(n: int = 6000) -> list[Page]:
    """Thousands of controls nobody named, side by side in one container: each one's name is looked for in the
    text around it, and the container around it holds all the others."""
    blocks = ['<span><input type="checkbox"></span>'] * n
    return [Page("many-controls", f"{LINKEDIN}{SETTINGS_PATH}/hostile-controls", "text/html",
                 _html("<div>" + _spread_labels(blocks, n // 30) + "</div>"))]


def nested_containers(depth: int = 3000) -> list[Page]:
    """Notice-like containers nested thousands deep around a long text that passes the notice pre-checks, and
    ids nested as deep around a rule's label."""
    text = ("We updated our privacy policy to train generative AI models. " + "lorem ipsum " * 1000)
    notices = '<div class="modal notice">' * depth + text + "</div>" * depth
    ids = "".join(f'<div id="d{i}">' for i in range(depth)) + LABEL + "</div>" * depth
    return [Page("nested-containers", f"{LINKEDIN}/feed/hostile-nested", "text/html", _html(notices + ids))]


def huge_json() -> list[Page]:
    """A settings API answer with a key a rule reads: an array of a million items, and nesting far past what
    the JSON parser takes (it falls back to scanning)."""
    key = '"grove_enabled": true'
    array = ("{" + '"items": [' + ",".join(["{\"a\": [1, 2, {\"b\": null}]}"] * 200_000) + "], " + key + "}").encode()
    deep = ("[" * 200_000 + "{" + key + "}" + "]" * 200_000).encode()
    deep_dicts = ('{"a":' * 100_000 + "{" + key + "}" + "}" * 100_000).encode()
    on = ("toggle_on anthropic.claude-training",)  # the key is there, set: detection still reads it
    return [
        Page("json-array", f"{CLAUDE_ACCOUNT}?shape=array", "application/json", array, on),
        Page("json-deep-list", f"{CLAUDE_ACCOUNT}?shape=deep-list", "application/json", deep, on),
        Page("json-deep-dict", f"{CLAUDE_ACCOUNT}?shape=deep-dict", "application/json", deep_dicts, on),
    ]


def all_pages() -> list[Page]:
    return (change_bait() + phrase_bait() + date_bait() + json_scan_bait() + attribute_bait() + discovery_bait()
            + quoted_labels() + many_ids() + many_choice_ids() + many_controls() + nested_containers() + huge_json())


def write_replay(path: Path, page: Page) -> Path:
    """A recording: the hostile page, then the real LinkedIn settings page (switch on), as `mitmdump -w` writes."""
    from conftest import write_flow

    if path.exists():
        path.unlink()
    write_flow(path, page.url, page.body, page.content_type)
    with open(path, "ab") as fo:
        fo.write(SETTINGS_FIXTURE.read_bytes())
    return path
