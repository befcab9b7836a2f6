"""The privacy posture report: where the user stands, per platform, from stored facts only.

    content_type, text = render_report(data_dir, fmt="html")   # "html", "json" or "md"

`model.build_report` turns stored warnings, the state history and the rules into facts; `html`,
`markdown` and JSON render those same facts. The JSON follows `report/schema.json`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from importlib import resources
from pathlib import Path

from ..rules.model import PackError, RuleSet, load_pack, shipped_pack
from ..rules.store import RuleStore
from ..store.state import StateStore
from .model import build_report

FORMATS = ("html", "json", "md")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
}

__all__ = ["CONTENT_TYPES", "FORMATS", "build_report", "collect", "render", "render_report", "schema"]


@functools.cache
def schema() -> dict:
    """The JSON Schema of `render_report(..., fmt="json")`."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text("utf-8"))


def _rules(data_dir: Path):
    """The rules of the data dir, read only: a report never creates, refreshes or sets aside a rule database."""
    try:
        return RuleStore(data_dir).reload()
    except PackError:  # a bad rules.json (a running `run` keeps its rules in force): a report still renders
        return load_pack(shipped_pack())


def collect(data_dir, today: dt.date | None = None, rules: RuleSet | None = None) -> dict:
    """Read the data dir and build the report's facts (nothing is written). `rules`: the rules in force, when the
    caller has them (the running API); otherwise the data dir's."""
    data_dir = Path(data_dir)
    rules = rules if rules is not None else _rules(data_dir)
    store = StateStore(data_dir, reader=True)  # never sweeps the temp files of a writer that may be running
    try:
        warnings = store.list_warnings("all")
        history = store.list_history()
    finally:
        store.close()
    regions = [w.get("region") for w in warnings if isinstance(w.get("region"), str)]
    return build_report(warnings, history, rules, today or dt.date.today(),
                        rules_version=rules.version or None, region=regions[-1] if regions else None)


def render(report: dict, fmt: str = "html") -> tuple[str, str]:
    """Facts -> (content_type, text) in one of FORMATS."""
    if fmt == "html":
        from .html import render_html
        return CONTENT_TYPES[fmt], render_html(report)
    if fmt == "md":
        from .markdown import render_markdown
        return CONTENT_TYPES[fmt], render_markdown(report)
    if fmt == "json":
        return CONTENT_TYPES[fmt], json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


def render_report(data_dir, fmt: str = "html", today: dt.date | None = None,
                  rules: RuleSet | None = None) -> tuple[str, str]:
    """The report for a data dir as (content_type, text). fmt: 'html', 'json' or 'md'. Raises ValueError."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    return render(collect(data_dir, today, rules), fmt)
