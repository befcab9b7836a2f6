"""Text from rule packs, pages and file names, made safe to print on a terminal.

A pack is input from someone else, and so are the pages discovery reads and the names of the files people
hand us. Printed raw, an escape sequence in a rule id or a file name could clear the screen, rewrite the line
that says "import refused", or set the terminal's title; a newline could forge a line of output; a
right-to-left override could make one name read as another. So every such value is printed through here:
control characters (C0 but tab, DEL, C1) and Unicode's invisible direction and line controls become visible
escapes. The text otherwise stays as it was, so names in any script print as themselves.
"""

from __future__ import annotations

import builtins
import re

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: object, keep_newlines: bool = False) -> str:
    """One line (or, with keep_newlines, several) that prints as what it says: controls shown as \\x1b etc."""
    rx = _UNSAFE_KEEP_NEWLINES if keep_newlines else _UNSAFE
    return rx.sub(_escape, str(text))


def printable_json(text: str) -> str:
    """JSON text (as json.dumps writes it) with the same characters as JSON escapes: still valid, same data.
    Plain text reads the same way (`\\u001b[2J`); only line breaks stay, which JSON text needs."""
    return _UNSAFE_KEEP_NEWLINES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def safe_print(*args, sep: str = " ", end: str = "\n", file=None, flush: bool = False) -> None:
    """print(), for modules whose every line may quote a pack field or a file name."""
    builtins.print(*(printable_json(str(a)) for a in args), sep=sep, end=end, file=file, flush=flush)
