"""The `consentwatch` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from . import replay_cmd, rules_cmd

    parser = argparse.ArgumentParser(prog="consentwatch", description="Warns you when a platform trains AI on your data by default.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (replay_cmd, rules_cmd):
        module.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
