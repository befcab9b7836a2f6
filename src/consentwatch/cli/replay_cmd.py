"""`consentwatch replay`: recorded traffic in, findings out."""

from __future__ import annotations

import json
from pathlib import Path

from ..findings import WARNING_KINDS
from ..replay import ReplayError, replay_file
from ..pipeline import Watch
from .common import add_data_dir, add_region, resolve_data_dir, resolve_region, say, setup_logging


def register(sub) -> None:
    p = sub.add_parser("replay", help="run recorded traffic (.flow or .har) through the detectors",
                       description="Run recorded traffic (.flow from mitmdump -w, .har from browser devtools) "
                                   "through the detectors and the state store, in order.")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    add_data_dir(p)
    add_region(p)
    p.add_argument("--fail-on-warning", action="store_true", help="exit 1 when any warning was found")
    p.add_argument("--discover", action="store_true",
                   help="for rule maintainers: keep the short labels of AI settings no rule knows yet "
                        "(for `consentwatch rules suggest`)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _table_row(f) -> str:
    what = f.state or (f"effective {f.effective_date}" if f.effective_date else "")
    return f"{f.kind:<17} {f.platform:<13} {f.rule_id:<32} {what:<21} {f.url}"


def run(args) -> int:
    setup_logging(args.verbose)
    directory = resolve_data_dir(args)
    region = resolve_region(args)
    watch = Watch(directory, region, discover=args.discover)
    bad = False
    warned = False
    printed_header = False
    try:
        for path in args.files:
            try:
                for f in replay_file(watch, path):
                    warned |= f.kind in WARNING_KINDS
                    if args.json:
                        print(json.dumps(f.to_dict(), ensure_ascii=False), flush=True)
                    else:
                        if not printed_header:
                            print(f"{'KIND':<17} {'PLATFORM':<13} {'RULE':<32} {'STATE':<21} URL")
                            printed_header = True
                        print(_table_row(f))
            except ReplayError as e:
                say(str(e))  # this file is unreadable; the others still run
                bad = True
    finally:
        watch.close()
    if not args.json and not printed_header and not bad:
        print("no findings")
    if bad:
        return 2
    return 1 if (warned and args.fail_on_warning) else 0
