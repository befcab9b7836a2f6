"""`consentwatch token`: prints the pairing token the browser extension needs."""

from __future__ import annotations

from ..token import get_token
from .common import CliError, add_data_dir, resolve_data_dir


def register(sub) -> None:
    p = sub.add_parser("token", help="print the API pairing token for the browser extension",
                       description="Print the token the browser extension needs (created on first use, "
                                   "kept in the data dir, readable by you only).")
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    directory = resolve_data_dir(args)
    try:
        print(get_token(directory))
    except OSError as e:
        raise CliError(f"cannot create the token in {directory}: {e.strerror or e}") from None
    return 0
