"""consentwatch's one logging set-up, and its one log prefix.

Every line consentwatch itself logs starts with PREFIX, in whichever program shows it: the CLI, `consentwatch
run`, or mitmproxy running the `-s` script (which installs the filters on mitmproxy's own handlers). Messages
are written without it; a handler filter puts it on, so it is never doubled and never missing.

Both set-ups also scrub every log record where it is made (logscrub.install: the record factory), so that
handlers mitmproxy adds later, which no filter of ours sits on, never see a query string, token or cookie.
"""

from __future__ import annotations

import logging
import sys

from . import logscrub
from .terminal import printable

PREFIX = "consentwatch: "
NOISY = ("asyncio", "hpack", "aiohttp.access")  # their INFO lines say nothing a user needs


class OwnPrefix(logging.Filter):
    """Puts PREFIX before the lines of consentwatch's own loggers (not mitmproxy's, not aiohttp's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] == "consentwatch" and not getattr(record, "consentwatch_prefixed", False):
            record.msg = PREFIX + str(record.msg)
            record.consentwatch_prefixed = True  # the record may reach several handlers
        return True


_PREFIX = OwnPrefix()


class HeardOnly(logging.Filter):
    """On mitmproxy's `LegacyLogEvents` handler: a record goes on only while some addon has an `add_log` hook.

    mitmproxy turns every log record, of any level and from any thread, into the deprecated `add_log` event: a
    hop to the proxy's event loop and a walk over every addon there, ~100 us of the proxy's CPU per line
    (bench/PROFILE.md: a tenth of what a page-eye observation that changes a setting's state cost). None of
    mitmproxy's own addons has the hook any more; while no loaded addon has it, the event reaches nobody, so the
    record is not sent there at all. Every other handler (the terminal, the console's and mitmweb's event log)
    gets it as before. `addons` is mitmproxy's AddonManager: its `lookup` names every addon, nested ones too."""

    def __init__(self, addons):
        super().__init__()
        self.addons = addons
        self._seen: tuple = ()  # the addons at the last look (held: a new addon cannot reuse an old one's id)
        self._heard = False  # whether one of them has the hook

    def filter(self, record: logging.LogRecord) -> bool:
        # The answer changes when the addons do, so every addon is asked only then. (Comparing the tuple of the
        # same objects is done in C, by identity: 0.4 us for mitmdump's 34 addons against 2 us for asking each.
        # An addon that grew an add_log method while loaded would go unseen; mitmproxy has none such.)
        now = tuple(self.addons.lookup.values())
        if now != self._seen:
            self._heard = any(hasattr(a, "add_log") for a in now)
            self._seen = now
        return self._heard


def gate_legacy_log_events(master) -> None:
    """HeardOnly on `master`'s LegacyLogEvents handler (once)."""
    from mitmproxy.log import LegacyLogEvents

    for handler in logging.getLogger().handlers:
        if isinstance(handler, LegacyLogEvents) and getattr(handler, "master", None) is master and \
                not any(isinstance(f, HeardOnly) for f in handler.filters):
            handler.addFilter(HeardOnly(master.addons))


class LegacyLogGate:
    """The mitmproxy addon that puts HeardOnly in place once the proxy runs (`consentwatch run` and `-s` alike)."""

    def running(self) -> None:
        from mitmproxy import ctx

        gate_legacy_log_events(ctx.master)


class PrintableFormatter(logging.Formatter):
    """Lines that quote a path, a host or a pack field show its escape codes instead of obeying them."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def install(handler: logging.Handler) -> None:
    """The prefix and the scrubbing (logscrub) on one handler. Idempotent."""
    if _PREFIX not in handler.filters:
        handler.addFilter(_PREFIX)
    if not any(isinstance(f, logscrub.ScrubFilter) for f in handler.filters):
        handler.addFilter(logscrub.ScrubFilter())


def install_on_root() -> None:
    """The filters on every handler the root logger has now (mitmproxy's, under `mitmdump -s`), and the
    scrubbing on every record from now on, whatever handler shows it."""
    logscrub.install()
    for handler in logging.getLogger().handlers:
        install(handler)


class StartupLog(logging.Handler):
    """Holds log records until startup succeeded: a failed start prints its one line and nothing else."""

    def __init__(self, target: logging.Handler):
        super().__init__()
        self.target = target
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def started(self) -> None:
        _replace_ours(self.target)
        for record in self.records:
            if record.levelno >= self.target.level and self.target.filter(record):
                self.target.handle(record)
        self.records.clear()


_ours: logging.Handler | None = None  # the handler setup() put on the root logger (replaced, never stacked)


def _replace_ours(handler: logging.Handler) -> None:
    global _ours
    root = logging.getLogger()
    if _ours is not None:
        root.removeHandler(_ours)
    root.addHandler(handler)
    _ours = handler


def setup(verbose: bool = False, *, timestamps: bool = False, hold: bool = False) -> StartupLog | None:
    """Log to stderr. The CLI: warnings and errors only. `run` (timestamps=True): consentwatch's INFO lines too,
    held back until `StartupLog.started()` when hold=True."""
    logscrub.install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(message)s", "%H:%M:%S") if timestamps
                         else PrintableFormatter("%(message)s"))
    install(handler)
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    if timestamps:
        logging.getLogger("consentwatch").setLevel(logging.DEBUG if verbose else logging.INFO)
        for noisy in NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if hold:
        buffered = StartupLog(handler)
        _replace_ours(buffered)
        return buffered
    _replace_ours(handler)
    return None
