"""A stand-in for the consentwatch local API, following the published contract (design.md, "Local API").

Used only for the extension's protocol tests that need to drive the server by hand: push a warning at a
chosen moment, drop every WebSocket, refuse a token. Every end-to-end test uses the real `consentwatch run`.
Runs on its own event loop in a thread so sync Playwright tests can use it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import secrets
import threading

from aiohttp import WSMsgType, web

ALLOWED_HOSTS = {"127.0.0.1", "localhost"}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def linkedin_warning(wid: str = "w-linkedin-1", **over) -> dict:
    w = {
        "id": wid,
        "kind": "toggle_on",
        "status": "active",
        "platform": "linkedin",
        "platform_name": "LinkedIn",
        "rule_id": "linkedin.genai-training",
        "title": "LinkedIn trains content-generating AI on your data",
        "summary": "LinkedIn uses your profile, posts and activity to train AI that writes content, unless you switch it off.",
        "setting": "Data for Generative AI Improvement",
        "state": "on",
        "url": "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement",
        "effective_date": None,
        "first_seen": "2026-11-03T09:12:00+00:00",
        "last_seen": now_iso(),
        "region_affected": True,
        "hosts": ["www.linkedin.com", "linkedin.com"],
        "remedy": {
            "settings_url": "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement",
            "steps": ["Me", "Settings & Privacy", "Data privacy", "Data for Generative AI Improvement", "switch off"],
            "note": "Opting out does not undo training that already happened.",
        },
    }
    w.update(over)
    return w


class FakeApi:
    def __init__(self, token: str = "fake-token", port: int = 0, proxy_port: int = 8080) -> None:
        self.token = token
        self.port = port
        self.proxy_port = proxy_port
        self.warnings: dict[str, dict] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.ws_connects = 0
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, origin)
        self.observations: list[dict] = []  # bodies of POST /v1/observations, as the extension sent them
        self.urls: list[str] = []  # every path with its query string, to check no token travels in one
        self.tickets: dict[str, str] = {}  # one-time ticket -> the path it opens
        from consentwatch.rules.model import shipped_pack

        self.pack = shipped_pack()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ server side
    @web.middleware
    async def guard(self, request: web.Request, handler):
        self.requests.append((request.method, request.path, request.headers.get("Origin")))
        self.urls.append(request.path_qs)
        host = (request.host or "").rsplit(":", 1)[0]
        if host not in ALLOWED_HOSTS:
            return web.Response(status=421, text="misdirected")
        origin = request.headers.get("Origin")
        if origin and not origin.startswith(("chrome-extension://", "moz-extension://")):
            return web.Response(status=403, text="forbidden origin")
        if request.method == "OPTIONS":
            resp = web.Response(status=204)
        elif request.path == "/v1/health":
            resp = await handler(request)
        else:
            auth = request.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            ticket_ok = self.tickets.pop(request.query.get("ticket", ""), None) == request.path
            if token != self.token and not ticket_ok:
                resp = web.json_response({"error": "unauthorized"}, status=401)
            else:
                resp = await handler(request)
        if origin and not isinstance(resp, web.WebSocketResponse):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST"
            resp.headers["Vary"] = "Origin"
        return resp

    async def health(self, request):
        return web.json_response({"status": "ok", "version": "0.1.0-fake", "rules": len(self.pack["rules"]),
                                  "rules_version": self.pack["version"], "proxy_port": self.proxy_port})

    async def rules(self, request):
        return web.json_response({"version": self.pack["version"], "rules": self.pack["rules"]})

    async def observe(self, request):
        # the contract: JSON {url, html, reason}, 202 with findings (this stand-in finds nothing: it only records)
        if request.content_type != "application/json":
            return web.json_response({"error": "send the observation as application/json"}, status=415)
        self.observations.append(await request.json())
        return web.json_response({"findings": []}, status=202)

    async def list_warnings(self, request):
        status = request.query.get("status", "active")
        ws = [w for w in self.warnings.values() if status == "all" or w["status"] == "active"]
        return web.json_response({"warnings": ws})

    async def dismiss(self, request):
        w = self.warnings.get(request.match_info["wid"])
        if not w:
            return web.json_response({"error": "not found"}, status=404)
        w["status"] = "dismissed"
        await self._broadcast({"type": "resolved", "warning": w})
        return web.json_response({"warning": w})

    async def pac(self, request):
        body = (
            "function FindProxyForURL(url, host) {\n"
            '  if (host == "www.linkedin.com" || host == "linkedin.com" || dnsDomainIs(host, ".substack.com"))\n'
            f'    return "PROXY 127.0.0.1:{self.proxy_port}; DIRECT";\n'
            '  return "DIRECT";\n}\n'
        )
        return web.Response(text=body, content_type="application/x-ns-proxy-autoconfig")

    async def ticket(self, request):
        path = {"report": "/report", "ws": "/v1/ws"}.get(request.query.get("for", ""))
        if path is None:
            return web.json_response({"error": "for must be one of report, ws"}, status=400)
        ticket = secrets.token_urlsafe(32)
        self.tickets[ticket] = path
        return web.json_response({"ticket": ticket, "url": f"{path}?ticket={ticket}", "expires_in": 60})

    async def report(self, request):
        return web.Response(text="<!doctype html><title>consentwatch report</title><h1>Report</h1>", content_type="text/html")

    async def ws(self, request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        self.ws_connects += 1
        self.sockets.add(sock)
        try:
            active = [w for w in self.warnings.values() if w["status"] == "active"]
            await sock.send_str(json.dumps({"type": "hello", "warnings": active}))
            async for msg in sock:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if data.get("type") == "ping":
                        await sock.send_str(json.dumps({"type": "pong"}))
        finally:
            self.sockets.discard(sock)
        return sock

    async def _broadcast(self, message: dict) -> None:
        text = json.dumps(message)
        for sock in list(self.sockets):
            try:
                await sock.send_str(text)
            except ConnectionError:
                self.sockets.discard(sock)

    # ------------------------------------------------------------------ control (from test thread)
    def _call(self, coro):
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def push(self, warning: dict) -> None:
        async def go():
            self.warnings[warning["id"]] = copy.deepcopy(warning)
            await self._broadcast({"type": "warning", "warning": warning})

        self._call(go())

    def resolve(self, wid: str) -> None:
        async def go():
            w = self.warnings[wid]
            w["status"] = "resolved"
            await self._broadcast({"type": "resolved", "warning": w})

        self._call(go())

    def drop_sockets(self) -> None:
        async def go():
            for sock in list(self.sockets):
                await sock.close()

        self._call(go())

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeApi":
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            app = web.Application(middlewares=[self.guard])
            app.router.add_get("/v1/health", self.health)
            app.router.add_get("/v1/warnings", self.list_warnings)
            app.router.add_post("/v1/warnings/{wid}/dismiss", self.dismiss)
            app.router.add_get("/v1/proxy.pac", self.pac)
            app.router.add_get("/v1/rules", self.rules)
            app.router.add_post("/v1/observations", self.observe)
            app.router.add_get("/v1/ws", self.ws)
            app.router.add_get("/report", self.report)
            app.router.add_post("/v1/tickets", self.ticket)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", self.port)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 (port 0 -> real port)
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="fakeapi", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake API did not start")
        return self

    def stop(self) -> None:
        if not self.loop:
            return

        async def go():
            for sock in list(self.sockets):
                await sock.close()
            await self.runner.cleanup()

        try:
            self._call(go())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop = None
