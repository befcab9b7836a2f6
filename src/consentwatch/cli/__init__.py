"""The `consentwatch` command. Each subcommand lives in its own module with a `register(subparsers)`.

Commands parse and print; the work is the library's. A command that cannot go on raises CliError, which `main()`
alone turns into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__, logscrub
from . import (autostart_cmd, capture_cmd, demo_cmd, extension_cmd, replay_cmd, report_cmd, rules_cmd, run_cmd,
               token_cmd, trust_cmd)
from .common import CliError, say

# In the order `--help` lists them.
COMMANDS = (run_cmd, demo_cmd, trust_cmd, extension_cmd, autostart_cmd, replay_cmd, token_cmd, rules_cmd, report_cmd,
            capture_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consentwatch",
                                     description="Warns you when a platform you use trains AI on your data by default.")
    parser.add_argument("--version", action="version", version=f"consentwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logscrub.install()  # before anything logs: no query string, token or cookie in any log line of any command
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        say(str(e))
        return e.code
    except BrokenPipeError:
        # `consentwatch rules list | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
