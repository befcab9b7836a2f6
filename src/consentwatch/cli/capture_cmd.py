"""`consentwatch capture`: a recording of a platform's settings traffic that is safe to share.

    capture PLATFORM [--out FILE]            record from the running proxy while you flip the switch once
    capture --scrub IN.flow|IN.har --out F   the same scrubber on a recording you already have
    capture --check FILE...                  the final verification pass alone (for maintainers)

Exit codes: 0 written (or clean), 1 refused (a secret-looking value survived: nothing written) or --check
found one, 2 unusable input (no running proxy, unknown platform, unreadable file).
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from pathlib import Path

from .common import CliError, add_data_dir, resolve_data_dir, say, setup_logging

ACK_TIMEOUT = 6.0  # seconds to wait for the running proxy to take the request
COLLECT_TIMEOUT = 180.0  # seconds to wait for the proxy to scrub, verify and write the recording


def register(sub) -> None:
    p = sub.add_parser(
        "capture", help="record a platform's settings traffic, scrubbed, to share with the rule maintainers",
        description="Record the traffic of one platform's rule hosts from the running `consentwatch run` while "
                    "you open its settings page and flip the switch once. Cookies, auth headers, tokens, query "
                    "values, e-mail addresses, phone numbers, ids, names and free text outside the settings "
                    "region are replaced by placeholders in memory, before anything is written; a final pass "
                    "refuses to write a file in which a known secret pattern survives. Writes FILE.flow and "
                    "FILE.har. See docs/RULES.md, 'From a capture to a pull request'.")
    p.add_argument("platform", nargs="?", metavar="PLATFORM", help="the platform to record (as in `rules list`)")
    p.add_argument("--out", metavar="FILE", type=Path,
                   help="where to write (FILE.flow and FILE.har; default: capture-PLATFORM-DATE in this directory)")
    p.add_argument("--scrub", metavar="IN", type=Path, help="scrub this .flow or .har instead of recording")
    p.add_argument("--check", metavar="FILE", type=Path, nargs="+",
                   help="only run the verification pass on these recordings; exit 1 when something is found")
    p.add_argument("--seconds", metavar="N", type=float,
                   help="stop recording after N seconds (default: when you press Enter or Ctrl+C)")
    p.add_argument("--redact", metavar="TEXT", action="append", default=[],
                   help="also remove this text everywhere: your name, handle or blog name (repeatable)")
    p.add_argument("--keep", metavar="PHRASE", action="append", default=[],
                   help="(--scrub) keep the region around this label too: a setting no rule knows yet (repeatable)")
    p.add_argument("--pack", metavar="FILE", type=Path,
                   help="(--scrub) take the settings regions from this rule pack (default: the shipped pack, or "
                        "the rules installed in --data-dir)")
    add_data_dir(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    setup_logging(args.verbose)
    modes = sum(x is not None for x in (args.platform, args.scrub, args.check))
    if modes != 1:
        raise CliError("give a PLATFORM to record, or --scrub IN --out OUT, or --check FILE...")
    if args.check:
        return _check(args.check)
    if args.scrub is not None:
        return _scrub(args)
    return _record(args)


# -- shared ----------------------------------------------------------------------------------------

def _rules(args, installed: bool):
    """--pack, else the data dir's rules when `installed` (recording) or --data-dir is given, else the shipped
    pack (scrubbing a file does not need, or touch, your data dir)."""
    from ..rules.model import PackError, load_pack, shipped_pack
    from ..rules.packfile import PackFileError, read_pack_file
    from ..rules.store import RuleStore

    if getattr(args, "pack", None):
        try:
            _, pack = read_pack_file(args.pack)
        except PackFileError as e:
            raise CliError(str(e)) from None
    elif installed or args.data_dir:
        return RuleStore(resolve_data_dir(args)).load()
    else:
        pack = shipped_pack()
    try:
        return load_pack(pack)
    except PackError as e:
        raise CliError(f"{args.pack or 'the shipped pack'}: invalid rule pack ({e.errors[0]})") from None


def _print_summary(flows: int, hosts: list[str], removed: dict, distinct: dict, written: tuple[Path, Path]) -> None:
    from ..capture.files import summary_lines

    print(f"wrote {flows} flow(s) from {', '.join(hosts) or 'no host'}:")
    print(f"  {written[0]}")
    print(f"  {written[1]}")
    lines = summary_lines(removed, distinct)
    if lines:
        print("removed (replaced by placeholders such as scrubbed-name-1, email-1@scrubbed.invalid, 990000001):")
        print("\n".join(lines))
    else:
        print("removed: nothing (the recording held nothing personal that consentwatch recognises)")
    print("before you share it, read it once yourself (docs/RULES.md, 'From a capture to a pull request'): a name "
          "that no field labels as one (a blog name in a URL, say) can only be removed with --redact.")
    print(f"try it: consentwatch replay {written[0]}")


def _refused(leaks) -> int:
    say("refused to write the recording: these still look like secrets after scrubbing (nothing was written):")
    for leak in leaks[:20]:
        print(f"  {leak}", file=sys.stderr)
    if len(leaks) > 20:
        print(f"  ... and {len(leaks) - 20} more", file=sys.stderr)
    print("please report this (the kinds and places above, never the file) so the scrubber learns it", file=sys.stderr)
    return 1


# -- --check ---------------------------------------------------------------------------------------

def _check(paths: list[Path]) -> int:
    from ..capture.files import read_recording
    from ..capture.verify import find_leaks
    from ..replay import ReplayError

    found = False
    for path in paths:
        try:
            flows = read_recording(path)
        except ReplayError as e:
            raise CliError(str(e)) from None
        leaks = find_leaks(flows)
        if leaks:
            found = True
            print(f"{path}: {len(leaks)} place(s) look like secrets or personal data:")
            for leak in leaks[:50]:
                print(f"  {leak}")
        else:
            print(f"{path}: {len(flows)} flow(s), no known secret pattern (cookies, auth, tokens, e-mails, query "
                  "values); now read it yourself for names and text")
    return 1 if found else 0


# -- --scrub ---------------------------------------------------------------------------------------

def _scrub(args) -> int:
    from ..capture.files import Refused, read_recording, scrub_flows, write_recording
    from ..capture.scrub import Scrubber
    from ..replay import ReplayError

    if args.out is None:
        raise CliError("--scrub needs --out FILE (FILE.flow and FILE.har are written)")
    rules = _rules(args, installed=False)
    try:
        flows = read_recording(args.scrub)
    except ReplayError as e:
        raise CliError(str(e)) from None
    if not flows:
        raise CliError(f"{args.scrub}: no HTTP flows in it")
    scrubber = Scrubber(rules, keep=args.keep, redact=args.redact)
    try:
        result = scrub_flows(flows, scrubber)
        written = write_recording(result.flows, args.out, scrubber)
    except Refused as e:
        return _refused(e.leaks)
    except OSError as e:
        raise CliError(f"cannot write {args.out}: {e.strerror or e}") from None
    _print_summary(len(result.flows), result.hosts, result.removed, result.distinct, written)
    return 0


# -- recording from the running proxy -------------------------------------------------------------------

def _record(args) -> int:
    from ..capture.record import FINAL_STATES, CaptureClient

    data_dir = resolve_data_dir(args)
    rules = _rules(args, installed=True)
    platform = args.platform.strip().lower()
    mine = [r for r in rules.rules if r.platform == platform]
    if not mine:
        known = sorted({r.platform for r in rules.rules})
        raise CliError(f"no rule for platform {args.platform!r}; known platforms: {', '.join(known)}")
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be more than 0")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or Path(f"capture-{platform}-{stamp}")
    hosts = sorted({h for r in mine for h in r.hosts})
    client = CaptureClient(data_dir, platform)
    other = client.busy()
    if other:
        raise CliError(f"another capture is running on {data_dir} (pid {other.get('pid', '?')}): stop it first")
    client.start()
    try:
        status = _wait_for(client, lambda s: s is not None, ACK_TIMEOUT)
        if status is None:
            raise CliError(f"no `consentwatch run` is using {data_dir}: start it (with the same --data-dir), route "
                           "the browser through it, then run capture again")
        if status.get("state") == "failed":
            raise CliError(f"the running proxy cannot record {platform}: {status.get('error', 'unknown error')}")
        settings = next((r.remedy.settings_url for r in mine if r.remedy.settings_url), None)
        print(f"recording {platform} ({', '.join(hosts)}) through the running consentwatch.")
        print(f"  1. open {settings or 'the settings page'} in the browser that uses consentwatch")
        print("  2. flip the AI-training switch once (and back, to keep your setting)")
        how = f"wait {args.seconds:g} s" if args.seconds else "press Enter here (Ctrl+C works too)"
        print(f"  3. {how}")
        print("everything is scrubbed in memory before it is written; nothing leaves this machine.", flush=True)
        status = _until_stopped(client, args.seconds)
        client.stop()
        print("stopping: scrubbing and checking the recording...", flush=True)
        status = _wait_for(client, lambda s: s is not None and s.get("state") in FINAL_STATES, COLLECT_TIMEOUT)
        if status is None:
            raise CliError("the running proxy did not finish the recording in time (is it still running?)")
        return _collect(client, status, args, rules, out)
    finally:
        client.cleanup()


def _wait_for(client, ok, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status()
        if ok(status):
            return status
        client.heartbeat()
        time.sleep(0.1)
    return None


def _until_stopped(client, seconds: float | None) -> dict | None:
    from ..capture.record import FINAL_STATES

    pressed = threading.Event()

    def read_stdin() -> None:
        try:
            if sys.stdin is not None and sys.stdin.readline():
                pressed.set()
        except (OSError, ValueError):
            pass

    threading.Thread(target=read_stdin, name="capture-stdin", daemon=True).start()
    deadline = time.monotonic() + seconds if seconds else None
    shown = -1
    status = None
    last_beat = 0.0
    try:
        while not pressed.is_set() and (deadline is None or time.monotonic() < deadline):
            now = time.monotonic()
            if now - last_beat >= 1.0:
                client.heartbeat()
                last_beat = now
            status = client.status() or status
            if status is not None:
                if status.get("state") in FINAL_STATES:
                    break  # the proxy ended it (it stopped, or the capture ran out of time)
                n = int(status.get("flows", 0))
                if n != shown:
                    shown = n
                    print(f"  {n} flow(s) recorded", flush=True)
            pressed.wait(0.25)
    except KeyboardInterrupt:
        pass
    return status


def _collect(client, status: dict, args, rules, out: Path) -> int:
    from ..capture.files import Refused, read_recording, write_recording
    from ..capture.scrub import Scrubber
    from ..capture.verify import Leak
    from ..replay import ReplayError

    state = status.get("state")
    if state == "refused":
        return _refused(status.get("leaks") or [Leak("unknown", 0, "unknown")])
    if state == "cancelled":
        raise CliError("the capture was cancelled by the proxy (it lost track of this command)")
    if state != "done":
        raise CliError(f"the recording failed in the proxy: {status.get('error', state)}")
    if not status.get("flows"):
        raise CliError(f"nothing was recorded: is the browser sending {args.platform} through consentwatch? "
                       "(the extension's routing switch, or the browser's proxy setting), and is the CA trusted?")
    try:
        flows = read_recording(client.flow_path)
    except ReplayError as e:
        raise CliError(f"cannot read what the proxy recorded: {e}") from None
    removed = dict(status.get("removed") or {})
    distinct = dict(status.get("distinct") or {})
    scrubber = Scrubber(rules, redact=args.redact)  # the proxy scrubbed; here: your own words, and a last check
    try:
        scrubber.finish(flows)
        written = write_recording(flows, out, scrubber)
    except Refused as e:
        return _refused(e.leaks)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or e}") from None
    for kind, n in scrubber.ph.removed.items():
        removed[kind] = removed.get(kind, 0) + n
    hosts = sorted({f.request.pretty_host for f in flows})
    _print_summary(len(flows), hosts, removed, distinct, written)
    skipped = int(status.get("skipped") or 0) + int(status.get("errors") or 0)
    if skipped:
        print(f"note: {skipped} flow(s) were left out (over the size limits, or they could not be scrubbed)")
    return 0
