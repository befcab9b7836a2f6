"""One-click pairing: the native messaging host the browser extension asks for the API address and token.

The browser starts this program (through the launcher `consentwatch trust` writes, see pairing.py) when the
extension calls `runtime.sendNativeMessage`, and talks to it on stdin/stdout: each message is a 4-byte length in
the machine's own byte order, then that many bytes of UTF-8 JSON. The browser checks the caller against the host
manifest's allow-list; we check again (the caller's origin or id is our first arguments).

It answers one request, `{"type": "pair"}`, with the address of the `consentwatch run` that holds this data dir
(its lock note, confirmed by /v1/health) and the data dir's token; or with an error the extension shows as it is.
Nothing else is accepted: another type, a message that is not a JSON object, a message over MAX_MESSAGE bytes.
It logs nothing: its stderr carries one-line reasons, never a message's content or the token.

Only the standard library and token.py: the browser starts it on every pairing, and it must not break when a
third-party package does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from .token import existing_token

HOST_NAME = "consentwatch.pairing"
# The extension's id in Chromium and Chrome: derived from the public key in extension/manifest.json's "key"
# (tests/test_native_host.py recomputes it), so an unpacked copy has the same id on every computer.
CHROMIUM_EXTENSION_ID = "aaokogfngfglnimopiodcfeboilamcac"
CHROMIUM_ORIGIN = f"chrome-extension://{CHROMIUM_EXTENSION_ID}/"
GECKO_ID = "consentwatch@consentwatch.invalid"  # browser_specific_settings.gecko.id in the manifest

MESSAGE_TYPES = ("pair",)
MAX_MESSAGE = 4096  # a request is {"type": "pair"}: anything this long is not one of ours
HEALTH_TIMEOUT = 3.0
LOCK_FILE = "consentwatch.lock"  # store/lock.py's note: {"pid", "command", "api"}; read here without the store package
_HEADER = struct.Struct("=I")  # native byte order, as Chromium and Firefox write it
_API = re.compile(r"http://127\.0\.0\.1:[0-9]{1,5}")  # the API listens on 127.0.0.1 only (api/server.py)


class FramingError(Exception):
    """The stream cannot be read on (a cut message, an oversized one): answered if possible, then the host exits."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_message(stream: BinaryIO) -> bytes | None:
    """The next message's bytes; None at a clean end of input. Raises FramingError."""
    header = _read_exact(stream, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise FramingError("bad-request", "input ended inside a message header")
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise FramingError("too-large", f"message of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    body = _read_exact(stream, length)
    if len(body) < length:
        raise FramingError("bad-request", "input ended inside a message")
    return body


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def encode_message(obj: dict) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(data)) + data


def error(code: str, message: str) -> dict:
    return {"type": "error", "error": code, "message": message}


# -- the one request ---------------------------------------------------------------------------------------------

def running_api(data_dir: Path) -> tuple[str | None, dict]:
    """(API address, /v1/health answer) of the `consentwatch run` holding this data dir, or (None, why)."""
    try:
        note = json.loads((data_dir / LOCK_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        note = {}
    if not isinstance(note, dict):
        note = {}
    api, pid = note.get("api"), note.get("pid")
    if api == "off":
        return None, error("api-off", "consentwatch is running without its API (--api-port 0): restart it without "
                                      "that option, then pair again.")
    if not isinstance(api, str) or not _API.fullmatch(api) or not _alive(pid):
        return None, error("not-running", f"consentwatch is not running (data dir {data_dir}): start it with "
                                          "`consentwatch run`, then pair again.")
    # the note can outlive a killed process whose pid was reused: only an answering API counts
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(f"{api}/v1/health", timeout=HEALTH_TIMEOUT) as resp:
            health = json.loads(resp.read(64 * 1024))
    except (OSError, ValueError, urllib.error.URLError):
        health = None
    if not isinstance(health, dict) or health.get("status") != "ok":
        return None, error("not-running", f"consentwatch does not answer at {api}: start it with `consentwatch run`, "
                                          "then pair again.")
    return api, health


def _alive(pid) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not our consentwatch
        return False
    return True


def pair(data_dir: Path) -> dict:
    api, health = running_api(data_dir)
    if api is None:
        return health
    token = existing_token(data_dir)
    if not token:
        return error("no-token", "consentwatch has no pairing token yet: run `consentwatch token` once, then pair "
                                 "again.")
    version = health.get("version")
    return {"type": "pair", "apiBase": api, "token": token, "version": version if isinstance(version, str) else None}


def answer(raw: bytes, data_dir: Path) -> dict:
    """The reply to one message's bytes."""
    try:
        msg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return error("bad-request", "not a JSON message")
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return error("bad-request", "a message is a JSON object with a type")
    if msg["type"] not in MESSAGE_TYPES:
        return error("unknown-type", f"this host answers only {', '.join(MESSAGE_TYPES)}")
    return pair(data_dir)


def caller_allowed(args: list[str]) -> bool:
    """Chromium passes the caller's origin as the first argument; Firefox passes the manifest's path, then the
    extension's id."""
    return CHROMIUM_ORIGIN in args or GECKO_ID in args


def serve(stdin: BinaryIO, stdout: BinaryIO, data_dir: Path, callers: list[str]) -> int:
    if not caller_allowed(callers):
        stdout.write(encode_message(error("forbidden", "this host answers the consentwatch extension only")))
        stdout.flush()
        print("consentwatch pairing host: refused an unknown caller", file=sys.stderr)
        return 1
    while True:
        try:
            raw = read_message(stdin)
        except FramingError as e:
            stdout.write(encode_message(error(e.code, str(e))))
            stdout.flush()
            print(f"consentwatch pairing host: {e}", file=sys.stderr)
            return 1
        if raw is None:
            return 0
        stdout.write(encode_message(answer(raw, data_dir)))
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="consentwatch-pairing-host", add_help=False)
    parser.add_argument("--data-dir", required=True, type=Path)
    args, callers = parser.parse_known_args(argv)
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never corrupt the message stream
    try:
        return serve(sys.stdin.buffer, stdout, args.data_dir, callers)
    except BrokenPipeError:  # the browser closed the pipe after its answer
        return 0


if __name__ == "__main__":
    sys.exit(main())
