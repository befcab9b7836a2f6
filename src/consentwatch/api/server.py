"""The API as a mitmproxy addon: the aiohttp server lives on the proxy's own loop, on 127.0.0.1 only.

Used by `consentwatch run` and by `mitmdump -s addon/consentwatch_addon.py` alike (option
`consentwatch_api_port`, 0 turns the API off).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from typing import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from mitmproxy import ctx, exceptions

from ..token import get_token
from ..detection_worker import DetectorProcess
from ..pipeline import Watch
from .app import Api, build_app
from .hub import Hub
from .observations import PageEye

log = logging.getLogger(__name__)

API_HOST = "127.0.0.1"  # never anything else: the API hands out what the user browses
DEFAULT_API_PORT = 8765


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's own request log. A malformed request (a NUL in a header, a broken request line) is the client's
    problem, answered 400 by aiohttp: one debug line. Anything else: one error line, the traceback only with -v."""

    def exception(self, msg, *args, exc_info=True, **kwargs):
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.debug(msg + " (%s, answered %s)", *args, type(exc).__name__, getattr(exc, "code", 400))
            return
        self.error(msg + ": %s", *args, type(exc).__name__ if exc else "unknown error")
        if exc is not None:
            self.debug("details", exc_info=exc)


class ApiStartError(Exception):
    """The API could not listen. The message is one line for the user."""


class ApiServer:
    """`get_watch()` is the pipeline in use (None while starting), `get_worker()` its detection worker process (None
    without one: the page eye then detects in a thread); the composition root (assembly.py) also subscribes
    `hub.publish` to its store events."""

    def __init__(self, get_watch: Callable[[], Watch | None], ping_every: float | None = None,
                 tls_failures: Callable[[], dict[str, int]] = dict,
                 get_worker: Callable[[], DetectorProcess | None] = lambda: None):
        self.get_watch = get_watch
        self.tls_failures = tls_failures  # refused TLS handshakes per host (selftest.TlsFailures.recent)
        self.get_worker = get_worker
        self.hub = Hub() if ping_every is None else Hub(ping_every)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None  # the port actually listening
        self._token: str | None = None
        self._token_dir = None
        self._restart: asyncio.Task | None = None
        self.page_eye: PageEye | None = None

    def load(self, loader) -> None:
        loader.add_option("consentwatch_api_port", int, DEFAULT_API_PORT,
                          "Port of consentwatch's local API for the browser extension, on 127.0.0.1 (0: no API).")

    def configure(self, updated: set[str]) -> None:
        if "consentwatch_api_port" in updated:
            port = ctx.options.consentwatch_api_port
            if not 0 <= port <= 65535:
                raise exceptions.OptionsError(f"consentwatch_api_port must be 0..65535, not {port}")
            if self.runner is not None and port != self.port:
                self._restart = asyncio.get_running_loop().create_task(self._restart_on(port))

    # -- what the routes need ---------------------------------------------------------------------
    def token(self) -> str:
        watch = self.get_watch()
        if watch is None:
            raise web.HTTPServiceUnavailable(reason="consentwatch is starting")
        if self._token is None or self._token_dir != watch.data_dir:
            self._token, self._token_dir = get_token(watch.data_dir), watch.data_dir
        return self._token

    def proxy_port(self) -> int | None:
        try:
            ps = ctx.master.addons.get("proxyserver")
            for addr in ps.listen_addrs():
                return addr[1]
        except Exception:  # noqa: BLE001 - not started (tests)
            pass
        return None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, port: int | None = None) -> None:
        """Listen on 127.0.0.1:port. Raises ApiStartError with a one-line message."""
        if self.runner is not None:
            return
        port = ctx.options.consentwatch_api_port if port is None else port
        if not port:
            if (watch := self.get_watch()) is not None:
                watch.lock.note(api="off")
            return
        if self.get_watch() is not None:
            self.token()  # create it now, not on the first request
        self.hub.start()
        # the page eye's regions go to the same detection worker process as the proxy's responses
        self.page_eye = PageEye(self.get_watch, self.get_worker)
        api = Api(self.get_watch, self.hub, self.token, self.proxy_port, self.tls_failures, self.page_eye)
        runner = web.AppRunner(build_app(api), access_log=None, shutdown_timeout=0.5, handle_signals=False,
                               logger=_ServerLog(logging.getLogger("aiohttp.server"), {}))
        await runner.setup()
        site = web.TCPSite(runner, API_HOST, port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            if e.errno == errno.EADDRINUSE:
                raise ApiStartError(f"API port {port} on {API_HOST} is in use (choose another with --api-port)") from None
            raise ApiStartError(f"cannot listen on {API_HOST}:{port} for the API: {e.strerror or e}") from None
        self.runner = runner
        self.port = port
        if (watch := self.get_watch()) is not None:  # the next `run` on this data dir names us in its refusal
            watch.lock.note(api=f"http://{API_HOST}:{port}")
        log.info("API listening at http://%s:%d", API_HOST, port)

    async def stop(self) -> None:
        await self.hub.close()
        if self.runner is not None:
            runner, self.runner, self.port = self.runner, None, None
            await runner.cleanup()
        if self.page_eye is not None:
            self.page_eye.close()
            self.page_eye = None

    async def _restart_on(self, port: int) -> None:
        await self.stop()
        try:
            await self.start(port)
        except ApiStartError as e:
            log.error("%s", e)

    async def running(self) -> None:
        if self.runner is None:
            try:
                await self.start()
            except ApiStartError as e:
                log.error("%s", e)

    async def done(self) -> None:
        await self.stop()
