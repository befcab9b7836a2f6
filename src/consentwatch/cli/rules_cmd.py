"""`consentwatch rules ...`: the rule database for users and maintainers."""

from __future__ import annotations

import json

from ..rules.store import RuleStore
from .common import CliError, add_data_dir, fail, resolve_data_dir, setup_logging


def register(sub) -> None:
    p = sub.add_parser("rules", help="list, check and manage the rule database")
    rs = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    lp = rs.add_parser("list", help="list the rules in force")
    lp.add_argument("--json", action="store_true", help="the full rules, one JSON array")
    add_data_dir(lp)
    lp.set_defaults(func=cmd_list)


def _load(args):
    setup_logging()
    return RuleStore(resolve_data_dir(args)).load()


def cmd_list(args) -> int:
    try:
        rules = _load(args)
    except CliError as e:
        return fail(str(e))
    if args.json:
        print(json.dumps([r.data for r in rules.rules], indent=2, ensure_ascii=False))
        return 0
    print(f"rule pack {rules.version}: {len(rules)} rules")
    print(f"{'ID':<34} {'PLATFORM':<13} {'VERIFIED':<11} HOSTS")
    for r in rules.rules:
        print(f"{r.id:<34} {r.platform:<13} {r.data['last_verified']:<11} {', '.join(r.hosts)}")
    for note in rules.skipped:
        print(f"note: {note}")
    return 0
