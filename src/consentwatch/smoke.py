"""`python -m consentwatch.smoke`: imports every module of the package, the last step of `make install`.

An undeclared or missing dependency fails here, at install time, instead of in the user's first command.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import consentwatch


def import_all() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(consentwatch.__path__, "consentwatch.")]
    for name in names:
        if name.endswith("__main__"):
            continue  # running it would start the CLI
        importlib.import_module(name)
    return names


def main() -> int:
    names = import_all()
    print(f"consentwatch: {len(names)} modules import", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
