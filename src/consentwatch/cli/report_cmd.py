"""`consentwatch report`: one page that shows where you stand (HTML, JSON or Markdown)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ..report import FORMATS, collect, render
from ..store.atomic import atomic_write
from .common import CliError, add_data_dir, resolve_data_dir, say, setup_logging

SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".json": "json", ".md": "md", ".markdown": "md"}


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def register(sub) -> None:
    p = sub.add_parser("report", help="where you stand: every platform seen, its AI-training state and history",
                       description="Write the privacy posture report: per platform whether it trains AI on your "
                                   "data now, since when, what you changed and when, and announced policy dates. "
                                   "Only stored facts; nothing is sent anywhere.")
    add_data_dir(p)
    p.add_argument("--out", metavar="FILE", type=Path,
                   help="write the report to FILE (default: standard output)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="html (default; a page with a timeline picture), json (for scripts) or md (Markdown). "
                        "With --out and no --format, the file name's suffix decides")
    p.add_argument("--today", type=_date, metavar="YYYY-MM-DD",
                   help="make the report as of this date (default: today); days left count from it")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    setup_logging(args.verbose)
    fmt = args.format or (SUFFIX_FORMATS.get(args.out.suffix.lower(), "html") if args.out else "html")
    directory = resolve_data_dir(args)
    report = collect(directory, args.today)
    _, text = render(report, fmt)
    if args.out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    out = args.out.expanduser()
    try:
        # the report tells which platforms you use and what you did: readable by you only
        atomic_write(out, text.encode("utf-8"), 0o600)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or e}") from None
    s = report["summary"]
    what = (f"{s['platforms_seen']} platform(s), {s['training_on']} training ON" if s["platforms_seen"]
            else "nothing observed yet")
    say(f"wrote {fmt} report to {out} ({what})")
    return 0
