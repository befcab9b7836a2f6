"""Shared CLI bits: data dir and region arguments, one-line errors."""

from __future__ import annotations

import argparse
import sys

from .. import logs
from ..paths import DataDirError, data_dir
from ..regions import RegionError, normalize_region
from ..terminal import printable


class CliError(Exception):
    """Printed as one line on stderr by `main()`, the only place that catches it; exit code 2."""

    code = 2


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR", help="where rules, warnings and state live (default: your user data dir)")


def add_region(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", metavar="CODE", help="your region: ISO country code (DE, US, GB...), EU or EEA")


def resolve_data_dir(args):
    try:
        return data_dir(args.data_dir)
    except DataDirError as e:
        raise CliError(str(e)) from None


def resolve_region(args):
    try:
        return normalize_region(getattr(args, "region", None))
    except RegionError as e:
        raise CliError(str(e)) from None


def setup_logging(verbose: bool = False) -> None:
    logs.setup(verbose)


def say(msg: str) -> None:
    """One line on stderr, with the prefix every consentwatch line has. The line quotes file names and pack
    fields: printed as they read, never as terminal commands (terminal.py)."""
    print(f"{logs.PREFIX}{printable(msg)}", file=sys.stderr, flush=True)
