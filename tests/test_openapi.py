"""The API's OpenAPI description (api/openapi.json, served at /v1/openapi.json) and the constant-time token compare.

In process: the description against the routes the aiohttp app registers, the OpenAPI 3.1 meta-schema, and real
bodies. tests/test_api_schemathesis.py fuzzes a real `consentwatch run` with it.
"""

from __future__ import annotations

import ast
import hmac
import inspect
import json
import textwrap
import threading

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consentwatch import token as token_module
from consentwatch.api.app import REPORT_FORMATS, STATUSES, Api, build_app, openapi_description
from consentwatch.api.auth import PUBLIC_PATHS
from consentwatch.api.hub import Hub
from consentwatch.token import get_token, token_matches
from consentwatch.pipeline import Watch
from live_support import EXT_ORIGIN, SETTINGS_URL, settings_html

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def watch(tmp_path):
    (tmp_path / "data").mkdir()
    w = Watch(tmp_path / "data")
    yield w
    w.close()


@pytest.fixture
async def api(watch):
    hub = Hub(ping_every=0)
    token = get_token(watch.data_dir)
    client = TestClient(TestServer(build_app(Api(lambda: watch, hub, lambda: token, lambda: 8080)), host="127.0.0.1"))
    await client.start_server()
    hub.start()
    client.auth = {"Authorization": f"Bearer {token}"}
    client.token = token
    yield client
    await hub.close()
    await client.close()


def registered_routes() -> set[tuple[str, str]]:
    app = build_app(Api(lambda: None, Hub(ping_every=0), lambda: "t" * 40, lambda: None))
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


def described_routes(spec: dict) -> set[tuple[str, str]]:
    return {(m, path) for path, item in spec["paths"].items() for m in item if m in HTTP_METHODS}


def resolved(spec: dict, schema: dict) -> dict:
    """A body schema with the description's components, for jsonschema."""
    return {**schema, "components": spec["components"]}


# -- the description and the app agree -------------------------------------------------------------------

def test_every_registered_route_is_described_and_every_described_route_exists():
    spec = openapi_description()
    routes, described = registered_routes(), described_routes(spec)
    assert routes - described == set(), "routes the app serves that openapi.json does not describe"
    assert described - routes == set(), "routes openapi.json describes that the app does not serve"
    assert {"/v1/health", "/v1/warnings", "/v1/warnings/{id}/dismiss", "/v1/rules", "/v1/proxy.pac", "/v1/ws",
            "/v1/tickets", "/report", "/v1/openapi.json", "/v1/observations"} == {p for _, p in routes}


def test_description_is_valid_openapi_and_states_the_auth_rules():
    import schemathesis

    spec = openapi_description()
    schemathesis.openapi.from_dict(json.loads(json.dumps(spec))).validate()  # the OpenAPI 3.1 meta-schema
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    # the token never in a URL: only the routes a browser opens by URL take a one-time ticket there
    assert not [s for s in schemes.values() if s.get("in") == "query" and s.get("name") == "token"]
    assert schemes["ticket"]["in"] == "query" and schemes["ticket"]["name"] == "ticket"
    assert spec["security"] == [{"bearerToken": []}]
    by_ticket = {path for path, item in spec["paths"].items() for op in item.values()
                 if {"ticket": []} in op.get("security", [])}
    assert by_ticket == {"/report", "/v1/ws"}
    assert "no token" in spec["info"]["description"] and "/v1/openapi.json" in spec["info"]["description"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert {"403", "421"} <= codes, (method, path)  # Origin and Host are checked on every route
            public = path in PUBLIC_PATHS
            assert (op.get("security") == []) == public, (method, path)
            assert ("401" in codes) != public, (method, path)
            assert codes & {"200", "101", "202"}, (method, path)
            for resp in op["responses"].values():
                assert "$ref" in resp or resp.get("description"), (method, path, resp)
    assert "404" in spec["paths"]["/v1/warnings/{id}/dismiss"]["post"]["responses"]
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_enums_follow_the_code():
    spec = openapi_description()
    status = spec["paths"]["/v1/warnings"]["get"]["parameters"][0]["schema"]["enum"]
    assert status == list(STATUSES)
    fmt = spec["paths"]["/report"]["get"]["parameters"][0]["schema"]["enum"]
    assert fmt == list(REPORT_FORMATS)


def test_warning_schema_is_the_stored_shape(watch):
    """The Warning schema requires exactly the keys the store writes (state.py _new_warning)."""
    t = threading.Thread(target=watch.process, args=(SETTINGS_URL, "text/html", settings_html(True)),
                         kwargs={"host": "www.linkedin.com"})
    t.start()
    t.join()
    [warning] = watch.state.list_warnings("all")
    spec = openapi_description()
    schema = spec["components"]["schemas"]["Warning"]
    assert set(schema["required"]) == set(warning) == set(schema["properties"])
    jsonschema.validate({"warnings": [warning]}, resolved(spec, {"$ref": "#/components/schemas/WarningList"}))


# -- served, without a token, and the bodies match -------------------------------------------------------

async def test_description_is_served_without_a_token(api):
    r = await api.get("/v1/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    spec = await r.json()
    assert described_routes(spec) == described_routes(openapi_description())
    assert spec["servers"] == [{"url": f"http://127.0.0.1:{api.port}", "description": "this consentwatch"}]
    from consentwatch import __version__
    assert spec["info"]["version"] == __version__
    # the Host and Origin rules hold for it like for every route
    assert (await api.get("/v1/openapi.json", headers={"Host": "attacker.example"})).status == 421
    assert (await api.get("/v1/openapi.json", headers={"Origin": "https://attacker.example"})).status == 403
    r = await api.get("/v1/openapi.json", headers={"Origin": EXT_ORIGIN})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == EXT_ORIGIN


async def test_bodies_match_their_schemas(api, watch):
    spec = openapi_description()

    def check(body, path, method="get", code="200"):
        resp = spec["paths"][path][method]["responses"][code]
        if "$ref" in resp:
            resp = spec["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        schema = resp["content"]["application/json"]["schema"]
        jsonschema.validate(body, resolved(spec, schema))

    check(await (await api.get("/v1/health")).json(), "/v1/health")
    check(await (await api.post("/v1/tickets?for=report", headers=api.auth)).json(), "/v1/tickets", "post")
    check(await (await api.post("/v1/tickets?for=pdf", headers=api.auth)).json(), "/v1/tickets", "post", "400")
    check(await (await api.get("/v1/rules", headers=api.auth)).json(), "/v1/rules")
    check(await (await api.get("/v1/warnings?status=bogus", headers=api.auth)).json(), "/v1/warnings", code="400")
    check(await (await api.get("/v1/warnings")).json(), "/v1/warnings", code="401")
    check(await (await api.post("/v1/warnings/w-0/dismiss", headers=api.auth)).json(), "/v1/warnings/{id}/dismiss",
          "post", "404")
    t = threading.Thread(target=watch.process, args=(SETTINGS_URL, "text/html", settings_html(True)),
                         kwargs={"host": "www.linkedin.com"})
    t.start()
    t.join()
    body = await (await api.get("/v1/warnings", headers=api.auth)).json()
    check(body, "/v1/warnings")
    wid = body["warnings"][0]["id"]
    check(await (await api.post(f"/v1/warnings/{wid}/dismiss", headers=api.auth)).json(),
          "/v1/warnings/{id}/dismiss", "post")


async def test_wrong_method_is_405_with_allow(api):
    r = await api.delete("/v1/warnings", headers=api.auth)
    assert r.status == 405 and r.headers["Allow"] == "GET" and "error" in await r.json()


# -- the token is compared in constant time ----------------------------------------------------------------

async def test_token_compare_goes_through_hmac_compare_digest(api, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    wrong = api.token[:-1] + ("x" if api.token[-1] != "x" else "y")
    assert (await api.get("/v1/warnings", headers={"Authorization": f"Bearer {wrong}"})).status == 401
    assert calls == [(wrong.encode(), api.token.encode())]
    assert (await api.get("/v1/rules", headers={"Authorization": f"Bearer {api.token}"})).status == 200
    assert calls[-1] == (api.token.encode(), api.token.encode())
    assert (await api.get("/v1/warnings", headers=api.auth)).status == 200
    assert len(calls) == 3
    assert token_matches("a" * 43, "a" * 43) and not token_matches("a" * 43, "b" * 43)
    assert not token_matches(None, "a" * 43) and not token_matches("", "a" * 43)
    assert len(calls) == 5  # None and "" never reach a comparison


def test_token_matches_has_no_plain_comparison():
    """No ==, !=, startswith or `in` on the secret: a plain comparison stops at the first differing byte."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(token_module.token_matches)))
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert compares == []
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "hmac.compare_digest" in calls
    assert not {c for c in calls if c.endswith((".startswith", ".endswith", ".find", ".index"))}
