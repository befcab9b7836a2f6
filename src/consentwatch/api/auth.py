"""One middleware for every request: Host (DNS rebinding) -> Origin -> CORS preflight -> token -> CORS headers.

- `Host` must be 127.0.0.1 or localhost (any port): anything else is a rebinding attempt, 421.
- An `Origin`, when sent, must be a browser extension's (chrome-extension:// or moz-extension://): 403.
  Web pages always send one on cross-origin requests, so no page can talk to the API.
- The token travels only as `Authorization: Bearer ...`, never in a URL, and is compared in constant time:
  missing or wrong, 401. Public paths (`/v1/health`, `/v1/openapi.json`) need none. The two routes a browser
  opens by URL (`/report` in a tab, `/v1/ws`) also take a one-time `?ticket=` (tickets.py) instead.
- CORS answers the requesting extension's exact origin, never `*`; preflights (OPTIONS) need no token.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Iterable

from aiohttp import web

from ..token import token_matches
from .tickets import PURPOSES, Tickets

LOCAL_HOST = re.compile(r"^(?:127\.0\.0\.1|localhost)(?::\d{1,5})?$", re.IGNORECASE)
EXTENSION_ORIGIN = re.compile(r"^(?:chrome-extension|moz-extension)://[A-Za-z0-9._-]{1,128}$")

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
PUBLIC_PATHS = ("/v1/health", "/v1/openapi.json")  # no token: neither holds user data


def host_ok(host: str | None) -> bool:
    return bool(host) and LOCAL_HOST.match(host) is not None


def origin_ok(origin: str) -> bool:
    return EXTENSION_ORIGIN.match(origin) is not None


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json",
                        headers=headers)


def make_auth_middleware(get_token: Callable[[], str], public: Iterable[str] = PUBLIC_PATHS,
                         tickets: Tickets | None = None):
    public = frozenset(public)
    by_ticket = frozenset(PURPOSES.values()) if tickets is not None else frozenset()

    def allowed(request: web.Request) -> bool:
        if request.path in public or token_matches(bearer(request), get_token()):
            return True
        return request.path in by_ticket and request.method == "GET" and \
            tickets.redeem(request.query.get("ticket"), request.path)

    @web.middleware
    async def auth(request: web.Request, handler):
        if not host_ok(request.headers.get("Host")):
            return error(421, "this API answers to 127.0.0.1 and localhost only")
        origin = request.headers.get("Origin")
        if origin is not None and not origin_ok(origin):
            return error(403, "only the consentwatch browser extension may use this API")
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {"Vary": "Origin"}
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={
                **cors, "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": "600"})
        if not allowed(request):
            return error(401, "missing or wrong token (consentwatch token prints it)",
                         {**cors, "WWW-Authenticate": 'Bearer realm="consentwatch"'})
        try:
            response = await handler(request)
        except web.HTTPException as e:
            # as JSON, keeping what the status needs (Allow on a 405)
            keep = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "retry-after")}
            response = error(e.status, e.reason, keep or None)
        if not response.prepared:  # a WebSocket has sent its headers already
            response.headers.update(cors)
            response.headers.setdefault("Cache-Control", "no-store")
            # a link followed from the report page must not carry its URL (with its used ticket) anywhere
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return auth
