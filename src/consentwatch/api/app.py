"""The routes. Store calls run in a thread (the store fsyncs), never on the loop that carries the user's traffic."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from importlib import resources
from typing import Callable

from aiohttp import web

from .. import __version__
from ..report import render_report
from ..ca import SELFTEST_URL
from ..pipeline import Watch
from .auth import PUBLIC_PATHS, error, make_auth_middleware
from .hub import Hub
from .observations import MAX_BODY, PageEye
from .pac import pac_script
from .tickets import PURPOSES, Tickets

log = logging.getLogger(__name__)

STATUSES = ("active", "resolved", "dismissed", "all")
REPORT_FORMATS = ("html", "json", "md")


@functools.cache
def openapi_description() -> dict:
    """The API's OpenAPI description as shipped (api/openapi.json, package data)."""
    return json.loads(resources.files(__package__).joinpath("openapi.json").read_text("utf-8"))


def _json(data, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, ensure_ascii=False), content_type="application/json")


class Api:
    def __init__(self, get_watch: Callable[[], Watch | None], hub: Hub, get_token: Callable[[], str],
                 proxy_port: Callable[[], int | None], tls_failures: Callable[[], dict[str, int]] = dict,
                 page_eye: PageEye | None = None):
        self.get_watch = get_watch
        self.hub = hub
        self.get_token = get_token
        self.proxy_port = proxy_port
        self.tls_failures = tls_failures
        # the page eye detects in the proxy's worker process when it is given one (api/server.py does)
        self.page_eye = page_eye or PageEye(get_watch)
        self.tickets = Tickets()

    def watch(self) -> Watch:
        w = self.get_watch()
        if w is None:
            raise web.HTTPServiceUnavailable(reason="consentwatch is starting")
        return w

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    # -- routes ---------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        w = self.get_watch()
        return _json({"status": "ok" if w else "starting", "version": __version__,
                      "rules": len(w.rules) if w else 0, "rules_version": w.rules.version if w else None,
                      "proxy_port": self.proxy_port(), "errors": sum(w.errors.values()) if w else 0,
                      "abandoned": w.abandoned if w else 0, "worker_restarts": w.worker_restarts if w else 0,
                      # host names and counts only: enough to say "this browser does not trust the CA"
                      "selftest_url": SELFTEST_URL, "tls_failures": self.tls_failures()})

    async def openapi(self, request: web.Request) -> web.Response:
        """The description itself needs no token: it holds no user data. It names the address it was read from
        (the middleware has checked the Host already) and this install's version."""
        spec = copy.deepcopy(openapi_description())
        spec["info"]["version"] = __version__
        spec["servers"] = [{"url": f"http://{request.host}", "description": "this consentwatch"}]
        return _json(spec)

    async def warnings(self, request: web.Request) -> web.Response:
        status = request.query.get("status", "active")
        if status not in STATUSES:
            return error(400, f"status must be one of {', '.join(STATUSES)}")
        w = self.watch()
        return _json({"warnings": await self._in_thread(w.state.list_warnings, status)})

    async def dismiss(self, request: web.Request) -> web.Response:
        w = self.watch()
        warning, events = await self._in_thread(w.state.dismiss, request.match_info["id"])
        if warning is None:
            return error(404, "no such warning")
        for event in events:
            self.hub.broadcast(event)  # on disk already: dismiss() wrote before returning
        return _json({"warning": warning})

    async def rules(self, request: web.Request) -> web.Response:
        rules = self.watch().rules
        return _json({"version": rules.version, "rules": [r.data for r in rules.rules]})

    async def pac(self, request: web.Request) -> web.Response:
        port = self.proxy_port()
        if not port:
            return error(503, "the proxy is not listening")
        text = pac_script(self.watch().rules.host_patterns(), port)
        return web.Response(text=text, content_type="application/x-ns-proxy-autoconfig")

    async def ws(self, request: web.Request) -> web.StreamResponse:
        w = self.watch()
        return await self.hub.serve(request, lambda: self._in_thread(w.state.list_warnings, "active"))

    async def ticket(self, request: web.Request) -> web.Response:
        """A one-time ticket for a URL the browser opens itself (a tab, a WebSocket): the token stays out of it."""
        purpose = request.query.get("for", "")
        if purpose not in PURPOSES:
            return error(400, f"for must be one of {', '.join(PURPOSES)}")
        ticket = self.tickets.issue(purpose)
        return _json({"ticket": ticket, "url": f"{PURPOSES[purpose]}?ticket={ticket}",
                      "expires_in": int(self.tickets.ttl)})

    async def report(self, request: web.Request) -> web.Response:
        fmt = request.query.get("format", "html")
        if fmt not in REPORT_FORMATS:
            return error(400, f"format must be one of {', '.join(REPORT_FORMATS)}")
        w = self.watch()
        content_type, text = await self._in_thread(render_report, w.data_dir, fmt, None, w.rules)
        ctype, _, params = content_type.partition(";")
        charset = "utf-8"
        if "charset=" in params:
            charset = params.split("charset=", 1)[1].strip() or charset
        return web.Response(text=text, content_type=ctype.strip(), charset=charset)


def build_app(api: Api) -> web.Application:
    # only POST /v1/observations reads a body (and checks its size itself)
    app = web.Application(middlewares=[make_auth_middleware(api.get_token, PUBLIC_PATHS, api.tickets)],
                          client_max_size=MAX_BODY)
    # every route here is in api/openapi.json and the other way round (tests/test_openapi.py checks)
    app.add_routes([
        web.get("/v1/health", api.health, allow_head=False),
        web.get("/v1/openapi.json", api.openapi, allow_head=False),
        web.get("/v1/warnings", api.warnings, allow_head=False),
        web.post("/v1/warnings/{id}/dismiss", api.dismiss),
        web.get("/v1/rules", api.rules, allow_head=False),
        web.get("/v1/proxy.pac", api.pac, allow_head=False),
        web.get("/v1/ws", api.ws, allow_head=False),
        web.post("/v1/observations", api.page_eye.handle),
        web.post("/v1/tickets", api.ticket),
        web.get("/report", api.report, allow_head=False),
    ])
    return app
