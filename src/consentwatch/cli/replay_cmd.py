"""`consentwatch replay`: recorded traffic in, findings out."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..findings import WARNING_KINDS
from ..pipeline import Watch
from ..replay import ReplayError, replay_file
from ..store.lock import DataDirBusy
from ..terminal import printable, printable_json
from .common import CliError, add_region, resolve_data_dir, resolve_region, say, setup_logging


def register(sub) -> None:
    p = sub.add_parser("replay", help="run recorded traffic (.flow or .har) through the detectors",
                       description="Run recorded traffic (.flow from mitmdump -w, .har from browser devtools) "
                                   "through the detectors and the state store, in order. Without --data-dir the "
                                   "findings go to a scratch data dir that is removed afterwards, so a test "
                                   "recording never lands in your own report.")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    p.add_argument("--data-dir", metavar="DIR",
                   help="keep the state here (e.g. to replay an OFF page, then an ON page; default: a scratch "
                        "dir, removed afterwards). Not the data dir of a running `consentwatch run`")
    add_region(p)
    p.add_argument("--fail-on-warning", action="store_true", help="exit 1 when any warning was found")
    p.add_argument("--discover", action="store_true",
                   help="for rule maintainers: keep the short labels of AI settings no rule knows yet "
                        "(for `consentwatch rules suggest`)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _table_row(f) -> str:
    what = f.state or (f"effective {f.effective_date}" if f.effective_date else "")
    return printable(f"{f.kind:<17} {f.platform:<13} {f.rule_id:<32} {what:<21} {f.url}")


def _scratch_dir() -> Path:
    """A fresh data dir with the rules of the user's own data dir (if it has any), nothing else of it."""
    from ..paths import default_data_dir
    from ..rules.store import RULES_FILE

    scratch = Path(tempfile.mkdtemp(prefix="consentwatch-replay-"))
    try:
        shutil.copyfile(default_data_dir() / RULES_FILE, scratch / RULES_FILE)
    except OSError:
        pass  # no rules of one's own: the shipped rules, as on a first start
    return scratch


def run(args) -> int:
    setup_logging(args.verbose)
    region = resolve_region(args)
    if args.data_dir:
        return _replay(args, resolve_data_dir(args), region)
    directory = _scratch_dir()
    say(f"replaying into a scratch data dir ({directory}), removed afterwards; pass --data-dir to keep the state")
    try:
        return _replay(args, directory, region)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _replay(args, directory: Path, region) -> int:
    try:
        watch = Watch(directory, region, discover=args.discover)
    except DataDirBusy as e:
        raise CliError(f"replay refused: {e} with data dir {directory}, and two writers would overwrite each "
                       "other's warnings; stop it, or leave out --data-dir to replay into a scratch dir") from None
    bad = False
    warned = False
    printed_header = False
    try:
        for path in args.files:
            try:
                for f in replay_file(watch, path):
                    warned |= f.kind in WARNING_KINDS
                    if args.json:
                        print(printable_json(json.dumps(f.to_dict(), ensure_ascii=False)), flush=True)
                    else:
                        if not printed_header:
                            print(f"{'KIND':<17} {'PLATFORM':<13} {'RULE':<32} {'STATE':<21} URL")
                            printed_header = True
                        print(_table_row(f))
            except ReplayError as e:
                say(str(e))  # this file is unreadable; the others still run
                bad = True
    finally:
        unsaved = watch.state.storage.write_errors
        watch.close()
    if not args.json and not printed_header and not bad:
        print("no findings")
    if unsaved:
        raise CliError(f"the findings above could not be saved to {watch.state.path} (see the error above): "
                       "the data dir keeps its earlier state")
    if bad:
        return 2
    return 1 if (warned and args.fail_on_warning) else 0
