"""`consentwatch run`: mitmproxy (regular mode) and the local API in one process, one asyncio loop, 127.0.0.1 only.

TLS is intercepted only for the rule database's hosts (`allow_hosts`, kept in step with live rule reloads);
every other host passes as an opaque tunnel. mitmproxy signs with the install's own CA (data dir `ca/`),
whose Name Constraints permit only the rule domains (see ca.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mitmproxy import addons as mitm_addons
from mitmproxy import exceptions, master, options
from mitmproxy.addons import keepserving, readfile

from . import logs
from .addon import ConsentWatch
from .assembly import AddonGroup, default_addons, front_addons
from .ca import (CA_CERT, CA_DIR, OWN_DOMAIN, SELFTEST_HOST, SELFTEST_URL, CaError, CaStatus, covers, ensure_ca,
                 uncovered)
from .api.server import API_HOST, ApiServer, ApiStartError
from .paths import default_data_dir
from .rules.model import RuleSet
from .terminal import printable

log = logging.getLogger(__name__)

PROXY_HOST = "127.0.0.1"
# the self-test host is intercepted too (answered by the proxy itself, see selftest.py)
SELFTEST_ALLOW = r"^" + re.escape(SELFTEST_HOST) + r"(?::\d+)?$"

# Options `run` decides itself: loopback only, rule hosts only. `--set` may not change them.
FIXED_OPTIONS = {
    "mode": "use --proxy-port; consentwatch run is a regular proxy on 127.0.0.1",
    "listen_host": "consentwatch run listens on 127.0.0.1 only",
    "allow_hosts": "the intercepted hosts come from the rule database",
    "ignore_hosts": "the intercepted hosts come from the rule database",
}


class RunError(Exception):
    """Startup failed. The message is one line for the user (exit 2)."""


@dataclass
class RunConfig:
    data_dir: Path
    proxy_port: int = 8080
    api_port: int = 8765
    region: str | None = None
    sets: list[str] = field(default_factory=list)
    renew_ca: bool = False
    discover: bool = False


class InterceptRuleHosts:
    """Keeps mitmproxy's `allow_hosts` equal to the rule database's hosts, through live reloads."""

    def __init__(self, cw: ConsentWatch, opts: options.Options):
        self.opts = opts
        self.ca: CaStatus | None = None  # the install's constrained CA, when run manages it
        self._told: set[str] = set()
        self.intercepted: list[str] = []
        cw.rule_listeners.append(self._later)

    def _later(self, rules: RuleSet) -> None:
        # rule listeners may be called from inside an options update (configure): apply on the next loop turn
        try:
            asyncio.get_running_loop().call_soon(self.apply, rules)
        except RuntimeError:
            pass

    def apply(self, rules: RuleSet) -> None:
        patterns = rules.host_patterns()
        regex = rules.allow_hosts_regex()
        if self.ca is not None:
            missing = uncovered(self.ca.permitted, patterns)
            if missing:
                # the browser would refuse our certificates for these: tunnel them (the page keeps working,
                # uninspected) until the CA is renewed
                patterns = [h for h in patterns if any(covers(p, h) for p in self.ca.permitted)]
                regex = hosts_regex(patterns)
            new = [d for d in missing if d not in self._told]
            if new:
                self._told.update(new)
                log.warning("the rules now cover %s, which this install's CA may not sign for: tunnelled, not "
                            "inspected, until you renew the CA (stop consentwatch, run `consentwatch run "
                            "--renew-ca`, trust the new %s and remove the old one)", ", ".join(new),
                            self.ca.cert_path)
        if list(self.opts.allow_hosts) != [regex, SELFTEST_ALLOW]:
            self.opts.update(allow_hosts=[regex, SELFTEST_ALLOW])
            log.info("intercepting %d hosts of %d rules; all other hosts are tunnelled untouched",
                     len(patterns), len(rules))
        self.intercepted = patterns


def hosts_regex(patterns: list[str]) -> str:
    """allow_hosts for a subset of the rule hosts (same form as RuleSet.allow_hosts_regex)."""
    alts = [r"(?:[a-z0-9-]+\.)+" + re.escape(h[2:]) if h.startswith("*.") else re.escape(h) for h in patterns]
    return r"^(?:" + "|".join(alts) + r")\.?(?::\d+)?$"


def _check_sets(sets: list[str]) -> None:
    for spec in sets:
        name, eq, _ = spec.partition("=")
        name = name.strip()
        if not eq or not name:
            raise RunError(f"--set {spec!r}: expected NAME=VALUE")
        if name in FIXED_OPTIONS:
            raise RunError(f"--set {name}: {FIXED_OPTIONS[name]}")


async def build_master(cfg: RunConfig) -> tuple[master.Master, ConsentWatch, ApiServer, InterceptRuleHosts]:
    """The mitmproxy master with every option applied. Raises RunError for a bad option or data dir
    (after closing what was started: the store, any detection worker)."""
    _check_sets(cfg.sets)
    confdir = cfg.data_dir / CA_DIR
    try:
        confdir.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create {confdir}: {e.strerror or e}") from None
    # confdir first, so mitmproxy never writes a CA to ~/.mitmproxy
    # upstream_cert off: leaf certificates name only the host asked for, never the origin certificate's other
    # names, which the CA's name constraints would not permit.
    opts = options.Options(confdir=str(confdir), listen_host=PROXY_HOST, listen_port=cfg.proxy_port,
                           mode=["regular"], upstream_cert=False)
    m = master.Master(opts, with_termlog=False)
    # first in the chain: the self-test host is answered before server replay could refuse it
    m.addons.add(*front_addons())
    m.addons.add(*mitm_addons.default_addons())
    m.addons.add(keepserving.KeepServing(), readfile.ReadFile())
    # Our data dir is the option's value from the moment it exists: when a later option update fails,
    # mitmproxy rolls back to the previous values and configures again, which must never open (and lock)
    # the default data dir instead of the user's.
    opts.update_defer(consentwatch_data_dir=str(cfg.data_dir))
    parts = default_addons()
    cw: ConsentWatch
    api: ApiServer
    cw, _, api, *_ = parts
    # one entry in mitmproxy's chain (AddonGroup: each addon in it costs every event of every flow); the
    # host filter has no hook: it follows the rules through cw and sets an option, so it is not in the chain
    m.addons.add(AddonGroup(*parts))
    hosts = InterceptRuleHosts(cw, opts)
    try:
        _configure(cfg, opts, cw, hosts, confdir)
    except RunError:
        await close_addons(cw, api)
        raise
    return m, cw, api, hosts


async def close_addons(cw: ConsentWatch, api: ApiServer) -> None:
    try:
        await api.stop()
        await cw.done()
    except Exception as e:  # noqa: BLE001 - we are failing already; the first error is the one to show
        log.debug("cleanup after a failed start: %s", e)


def _configure(cfg: RunConfig, opts: options.Options, cw: ConsentWatch, hosts: "InterceptRuleHosts",
               confdir: Path) -> None:
    try:
        opts.update(keepserving=True, consentwatch_data_dir=str(cfg.data_dir),
                    consentwatch_region=cfg.region or "", consentwatch_api_port=cfg.api_port,
                    consentwatch_discover=cfg.discover)
    except exceptions.OptionsError as e:
        raise RunError(_one_line(e)) from None
    # one option at a time (repeated names together: list options), so an error can name its option
    grouped: dict[str, list[str]] = {}
    for spec in cfg.sets:
        grouped.setdefault(spec.partition("=")[0].strip(), []).append(spec)
    for name, specs in grouped.items():
        try:
            opts.set(*specs, defer=True)
        except exceptions.OptionsError as e:
            raise RunError(f"--set {name}: {_one_line(e)}") from None
    if opts.deferred:
        raise RunError(f"unknown option{'s' if len(opts.deferred) > 1 else ''}: {', '.join(sorted(opts.deferred))} "
                       "(mitmdump --options lists them)")
    for spec in cfg.sets:  # mitmproxy does not check choices of string options itself
        name = spec.partition("=")[0].strip()
        opt = dict(opts.items()).get(name)
        if opt is not None and opt.choices and opt.current() not in opt.choices:
            raise RunError(f"--set {name}: {opt.current()!r} is not one of {', '.join(opt.choices)}")
    if opts.listen_host != PROXY_HOST:
        raise RunError("consentwatch run listens on 127.0.0.1 only")
    if cw.watch is None:
        raise RunError("consentwatch did not start (no data dir)")
    if Path(opts.confdir).expanduser() == confdir:
        try:
            hosts.ca = ensure_ca(confdir, cw.watch.rules.host_patterns(), renew=cfg.renew_ca)
        except CaError as e:
            raise RunError(str(e)) from None
    hosts.apply(cw.watch.rules)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


async def _start_proxy(m: master.Master) -> tuple[str, int]:
    ps = m.addons.get("proxyserver")
    quiet = logging.getLogger("mitmproxy.addons.proxyserver")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # we say it ourselves, in one line
    try:
        ok = await ps.setup_servers()
    finally:
        quiet.setLevel(level)
    if not ok:
        for server in ps.servers:
            e = server.last_exception
            if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
                raise RunError(f"proxy port {m.options.listen_port} on {PROXY_HOST} is in use "
                               "(choose another with --proxy-port)")
            if e is not None:
                raise RunError(f"cannot start the proxy: {_one_line(e)}")
        raise RunError("cannot start the proxy")
    addrs = ps.listen_addrs()
    if not addrs:
        raise RunError("the proxy is not listening")
    return addrs[0][0], addrs[0][1]


def own_command() -> str:
    """How to type this command again: `consentwatch` when that is what PATH finds, else the path it was started by
    (`.venv/bin/consentwatch` under `make run` in a clone, where no `consentwatch` is on PATH)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if Path(argv0).name != "consentwatch":  # python -m consentwatch.cli, a test harness: the installed name
        return "consentwatch"
    found = shutil.which("consentwatch")
    if found and Path(found).resolve() == Path(argv0).resolve():
        return "consentwatch"
    return argv0


def banner(cfg: RunConfig, proxy: tuple[str, int], api: ApiServer, cw: ConsentWatch, hosts: InterceptRuleHosts,
           confdir: str | None = None) -> str:
    status = hosts.ca
    ca = status.cert_path if status else Path(confdir or cfg.data_dir / CA_DIR).expanduser() / CA_CERT
    rules = cw.watch.rules
    lines = [
        "consentwatch is running (Ctrl+C stops it).",
        f"  Proxy:   http://{proxy[0]}:{proxy[1]}  - decrypts only {len(hosts.intercepted)} hosts of "
        f"{len(rules)} rules; all other traffic is tunnelled untouched",
    ]
    if api.port:
        lines.append(f"  API:     http://{API_HOST}:{api.port}  (health: /v1/health)")
    else:
        lines.append("  API:     off")
    lines.append(f"  Check:   {SELFTEST_URL} loads in a browser that goes through this proxy and trusts its CA")
    lines += [
        f"  Data:    {cfg.data_dir}",
        f"  CA cert: {ca}",
    ]
    if status is None:
        lines.append("    (your own confdir: this CA is not limited to the rule domains by consentwatch)")
    else:
        domains = [d for d in status.permitted if d != OWN_DOMAIN]
        lines.append(f"    This install's own CA: it can sign only for {len(domains)} rule domains and its self-test "
                     "name (X.509 name constraints), never for your bank.")
        if again := status.trust_again():
            lines.append(f"    {again}")
        if status.uncovered:
            lines.append(f"    WARNING: it does not cover {', '.join(status.uncovered)} (added since it was made), "
                         "so those are tunnelled, not inspected: restart with --renew-ca and trust the new certificate.")
    cw_cmd = own_command()
    dd = "" if cfg.data_dir == default_data_dir() else f" --data-dir {cfg.data_dir}"
    lines += [
        "Next, once (README, \"Using it\"):",
        f"  1. {cw_cmd} trust{dd}",
        "       your browsers trust this CA (Linux: Chromium, Chrome, Firefox) and the extension can pair; then restart "
        "the browser",
        f"       macOS: security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db {ca}",
        f"       Windows: certutil -user -addstore Root {ca}",
    ]
    if api.port:
        lines += [
            f"  2. Load the browser extension (its folder: {cw_cmd} extension-path), click \"Pair with consentwatch\" "
            "in it and confirm:",
            "       it pairs, and turns routing on (only the rule hosts go to this proxy, by a PAC from /v1/proxy.pac)",
            "  Or pair by hand (the extension's Settings, \"Or paste the token\"):",
            f"      API address: http://{API_HOST}:{api.port}",
            f"      token:       {api.token()}   (again any time: {cw_cmd} token{dd})",
        ]
    return "\n".join(lines)


async def serve(cfg: RunConfig, out=None, on_started: Callable[[], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM. Raises RunError (before anything listens, or right after) on bad input."""
    out = out or sys.stdout
    m, cw, api, hosts = await build_master(cfg)
    try:
        proxy = await _start_proxy(m)
        try:
            await api.start()
        except ApiStartError as e:
            raise RunError(str(e)) from None
    except RunError:
        await close_addons(cw, api)
        raise

    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            os._exit(130)  # a second Ctrl+C: the user means it
        m.shutdown()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    print(printable(banner(cfg, proxy, api, cw, hosts, m.options.confdir), keep_newlines=True), file=out, flush=True)
    if on_started:
        on_started()
    await m.run()
    log.info("stopped")
    return 0


def run(cfg: RunConfig, verbose: bool = False, out=None, on_started: Callable[[], None] | None = None) -> int:
    """`consentwatch run`: until stopped. Raises RunError (one line) when it cannot start. (`demo` prints its own
    banner: `out` takes the run banner, `on_started` is called once everything listens.)"""
    startup = logs.setup(verbose, timestamps=True, hold=True)

    def started() -> None:
        startup.started()
        if on_started:
            on_started()

    return asyncio.run(serve(cfg, out=out, on_started=started))
