"""`consentwatch run`: the proxy and the local API, until stopped."""

from __future__ import annotations

from .common import CliError, add_data_dir, add_region, resolve_data_dir, resolve_region


def _port(flag: str, text: str, allow_zero: bool) -> int:
    # checked here rather than by argparse, so a bad port is one line on stderr like every other startup error
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"{flag}: not a port number: {text!r}") from None
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise CliError(f"{flag}: port out of range: {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="start the proxy and the local API for the browser extension",
        description="Start mitmproxy (regular mode, 127.0.0.1) and the local API in one process. TLS is "
                    "decrypted only for the hosts of the rule database; everything else is tunnelled untouched.")
    p.add_argument("--proxy-port", default="8080", metavar="PORT", help="proxy port (default 8080)")
    p.add_argument("--api-port", default="8765", metavar="PORT",
                   help="API port for the browser extension (default 8765, 0: no API)")
    add_data_dir(p)
    add_region(p)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="any mitmproxy option, as with mitmdump --set (repeatable), e.g. server_replay=FILE.flow")
    p.add_argument("--discover", action="store_true",
                   help="for rule maintainers: keep the short labels of AI settings no rule knows yet, and the "
                        "request field (endpoint, key, polarity) that changed when you flipped a rule's switch, for "
                        "`consentwatch rules suggest` (off by default: they come from your pages and requests)")
    p.add_argument("--renew-ca", action="store_true",
                   help="make a new CA for the current rule domains (then trust it and remove the old one)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..run import RunConfig, RunError, run as run_live  # mitmproxy's master: only `run` needs it

    proxy_port = _port("--proxy-port", args.proxy_port, allow_zero=False)
    api_port = _port("--api-port", args.api_port, allow_zero=True)
    region = resolve_region(args)
    directory = resolve_data_dir(args)
    cfg = RunConfig(data_dir=directory, proxy_port=proxy_port, api_port=api_port, region=region,
                    sets=list(args.sets), renew_ca=args.renew_ca, discover=args.discover)
    try:
        return run_live(cfg, verbose=args.verbose)
    except RunError as e:
        raise CliError(str(e)) from None
