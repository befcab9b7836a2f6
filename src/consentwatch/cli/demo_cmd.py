"""`consentwatch demo`: recorded platform pages through the live proxy, no network, a scratch data dir."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from ..ca import CA_DIR, PUBLIC_CERT, SELFTEST_URL, CaError
from ..demo import (DEFAULT_API_PORT, DEFAULT_PROXY_PORT, MAX_LISTED, DemoError, DemoPage, choose_port, platforms,
                    read_recording, replay_sets, select, shipped_pages, shipped_pages_path, write_subset)
from ..trust import install_ca
from .common import CliError, add_region, resolve_data_dir, resolve_region
from .run_cmd import _port


def register(sub) -> None:
    p = sub.add_parser("demo", help="serve recorded platform pages through the proxy, offline, and print what to open",
                       description="Start the proxy and the API on their own ports with recorded pages of the "
                                   "platforms (shipped with consentwatch, or your own --recording), served with no "
                                   "network. Warnings go to a scratch data dir, removed when the demo stops; the "
                                   "CA is your install's, so a browser that trusts it (consentwatch trust) shows the "
                                   "pages without certificate errors.")
    p.add_argument("platform", nargs="?", metavar="PLATFORM", help="only this platform's pages (default: all)")
    p.add_argument("--recording", metavar="FILE", type=Path, action="append", default=[],
                   help="serve this recording (.flow from mitmdump -w, or .har) instead of the shipped pages; "
                        "may be repeated")
    p.add_argument("--proxy-port", metavar="PORT", help=f"proxy port (default {DEFAULT_PROXY_PORT}, or a free one "
                                                        "when taken)")
    p.add_argument("--api-port", metavar="PORT", help=f"API port (default {DEFAULT_API_PORT}, or a free one when taken)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the install whose CA signs the pages (default: your user data dir); the demo's warnings "
                        "never go there")
    add_region(p)
    p.add_argument("--list", action="store_true", help="list the platforms with recorded pages, and stop")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def _banner(pages: list[DemoPage], proxy: int, api: int, scratch: Path, cert: Path, token_file: Path,
            ignored: list[str], trust_cmd: str) -> str:
    count = f"{len(pages)} recorded page{'s' if len(pages) != 1 else ''}"
    lines = [
        f"consentwatch demo: {count}, served by the proxy with no network (Ctrl+C stops it).",
        f"  Proxy:   127.0.0.1:{proxy}   a browser that uses it, e.g.:",
        f"             chromium --user-data-dir=$(mktemp -d) --proxy-server=127.0.0.1:{proxy} URL",
        f"  API:     http://127.0.0.1:{api}   token: {token_file.read_text().strip()}",
        "             (the extension paired with this address and token routes the platforms to this demo)",
        f"  Data:    {scratch}  (scratch: removed when the demo stops)",
        f"  CA cert: {cert}",
        f"             certificate errors? `{trust_cmd}`, then restart the browser",
    ]
    if ignored:
        lines.append(f"  Query parameters ignored when matching: {', '.join(ignored)}")
    lines.append("Open:")
    width = max(len("self-test"), *(len(p.platform) for p in pages))
    for p in pages[:MAX_LISTED]:
        kind = "" if p.kind == "recorded" else f"{p.kind:<9} "
        lines.append(f"  {p.platform:<{width}}  {kind}{p.url}")
    if len(pages) > MAX_LISTED:
        lines.append(f"  ... and {len(pages) - MAX_LISTED} more")
    lines.append(f"  {'self-test':<{width}}  {SELFTEST_URL}")
    if any(p.kind == "rendered" for p in pages):
        lines.append("  (rendered: the settings page as the browser draws it; on the live site only the extension "
                     "sees that switch)")
    lines.append(f"Warnings so far: curl -H \"Authorization: Bearer $(cat {token_file})\" "
                 f"http://127.0.0.1:{api}/v1/warnings")
    return "\n".join(lines)


def run(args) -> int:
    from ..run import RunConfig, RunError, run as run_live  # mitmproxy's master: only `run` and `demo` need it

    try:
        shipped = shipped_pages()
        if args.list:
            for name in platforms(shipped):
                print(name)
            return 0
        if args.recording and args.platform:
            raise DemoError("PLATFORM picks from the shipped pages; with --recording every recorded page is served")
        proxy_given = _port("--proxy-port", args.proxy_port, allow_zero=False) if args.proxy_port else None
        api_given = _port("--api-port", args.api_port, allow_zero=False) if args.api_port else None
        region = resolve_region(args)
        home = resolve_data_dir(args)  # the install whose CA signs: the one the browser already trusts
        ignored: list[str] = []
        if args.recording:
            pages, recordings = [], []
            for path in args.recording:
                found, names = read_recording(path.expanduser())
                pages += found
                ignored += [n for n in names if n not in ignored]
                recordings.append(path.expanduser().resolve())
        else:
            pages = select(shipped, args.platform)
            recordings = [shipped_pages_path()]
        proxy_port, _ = choose_port(proxy_given, DEFAULT_PROXY_PORT, "--proxy-port", set())
        api_port, _ = choose_port(api_given, DEFAULT_API_PORT, "--api-port", {proxy_port})
    except DemoError as e:
        raise CliError(str(e)) from None

    scratch = Path(tempfile.mkdtemp(prefix="consentwatch-demo-"))
    try:
        try:
            _share_ca(home, scratch)
        except (OSError, CaError) as e:
            raise CliError(f"cannot use the CA in {home / CA_DIR}: {getattr(e, 'strerror', None) or e}") from None
        if args.platform:
            recordings = [write_subset(shipped_pages_path(), pages[0].platform, scratch / "pages.har")]
        cfg = RunConfig(data_dir=scratch, proxy_port=proxy_port, api_port=api_port, region=region,
                        sets=replay_sets(recordings, ignored))

        def started() -> None:
            trust_cmd = "consentwatch trust" + (f" --data-dir {home}" if args.data_dir else "")
            print(_banner(pages, proxy_port, api_port, scratch, home / CA_DIR / PUBLIC_CERT, scratch / "token",
                          ignored, trust_cmd), flush=True)

        try:
            return run_live(cfg, verbose=args.verbose, out=io.StringIO(), on_started=started)
        except RunError as e:
            raise CliError(str(e)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _share_ca(home: Path, scratch: Path) -> None:
    """The scratch data dir signs with the install's own CA (made now if missing, by the call `run` makes): a
    browser that trusts the install trusts the demo. A link where the system allows one, else a private copy."""
    install_ca(home)
    real = home / CA_DIR
    try:
        os.symlink(real, scratch / CA_DIR, target_is_directory=True)
    except (OSError, NotImplementedError):
        shutil.copytree(real, scratch / CA_DIR)
