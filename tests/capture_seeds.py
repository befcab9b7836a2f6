"""A recording seeded with secrets and personal data in every place a capture can hold them.

Cookies, bearer and CSRF tokens, an API token inside Tumblr's ___INITIAL_STATE___, query strings, e-mail
addresses, phone numbers, user and account ids, names in profile fields and free text, in headers, queries,
JSON and HTML, some of it compressed. Each page also carries a real setting in a real state, so a test can
prove both halves: none of SECRETS survives the scrubber, and the rule still fires.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import brotli
from consentwatch.detect.body import zstd
from mitmproxy import http, io
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.test import tflow

T0 = 1795176000.0  # 2026-11-20T12:00:00Z, after every rule's start date

COOKIE_LI_AT = "AQEDARe7Kx9cookieVALUEq2W8zPx41"
JSESSIONID = "ajax:5839201746382910475"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lcXVpbm4ifQ.Sg9x2K7pQ1wZ3v8m4N6b0cY5tR1eU7iO"
API_TOKEN = "Tk4aB7cD9eF1gH3iJ5kL7mN9oP1qR3sT5"
X_CSRF = "9f8e7d6c5b4a39281706f5e4d3c2b1a0deadbeef"
SET_COOKIE = "c0ffee12-3456-7890-abcd-ef0123456789"
EMAIL = "jane.quinn@example.com"
EMAIL2 = "j.quinn+news@mail.example.org"
PHONE = "+49 151 23456789"
PHONE_US = "(415) 555-0142"
MEMBER_ID = "812345678"
SNOWFLAKE = "1587349201865223168"
URN = "urn:li:fsd_profile:ACoAABcdEfGh1234567890"
SITE_ID = "214365879"
FIRST, LAST = "Janelle", "Quinnsworth"
HANDLE = "janellequinn-4711"
SCREEN_NAME = "jquinnsworth"
FREE_TEXT = "packing for our holiday in Lisbon"
QUERY_SECRET = "sEcReTqUeRy98765"
BLOG = "sourdoughdiaries"  # a blog name: nothing marks it as personal, only --redact can remove it

SECRETS = (COOKIE_LI_AT, JSESSIONID, "5839201746382910475", BEARER, API_TOKEN, X_CSRF, SET_COOKIE, EMAIL,
           "jane.quinn", EMAIL2, "15123456789", "151 23456789", PHONE_US, "555-0142", MEMBER_ID, SNOWFLAKE,
           "ACoAABcdEfGh1234567890", SITE_ID, FIRST, LAST, HANDLE, SCREEN_NAME, "Lisbon", "holiday",
           QUERY_SECRET)

LINKEDIN = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"
LABEL = "Use my data for training content creation AI models"


def linkedin_html(on: bool) -> str:
    checked = " checked" if on else ""
    state = json.dumps({"data": {"entityUrn": URN, "firstName": FIRST, "lastName": LAST, "publicIdentifier": HANDLE,
                                 "emailAddress": EMAIL, "phoneNumbers": [{"number": PHONE}], "memberId": int(MEMBER_ID),
                                 "headline": "Baker at Northwind", "premium": False}})
    return f"""<!DOCTYPE html><html lang="en"><head><title>{FIRST} {LAST} | LinkedIn</title>
<meta name="csrf-token" content="{JSESSIONID}">
<script>window.__li_config = {{"member": {{"id": {MEMBER_ID}, "csrfToken": "{X_CSRF}", "email": "{EMAIL}"}}}};</script>
</head><body>
<header role="banner"><nav><a href="https://www.linkedin.com/in/{HANDLE}/?trk=nav_{QUERY_SECRET}">Signed in as {FIRST} {LAST}</a>
<img src="https://media.licdn.com/dms/image/profile/{MEMBER_ID}?e=1795176000&amp;t={QUERY_SECRET}" alt="{FIRST} {LAST}"></nav></header>
<code id="bpr-guid-1207" style="display: none">{state.replace('"', '&quot;')}</code>
<!-- rendered for member {MEMBER_ID} ({EMAIL}) -->
<main><h1>Data for Generative AI Improvement</h1>
<div class="setting-row"><label for="adToggle_ember412">{LABEL}</label>
<input role="switch" type="checkbox" id="adToggle_ember412"{checked}>
<p>Call us at {PHONE_US} or write to {EMAIL2}</p></div>
<section class="feed"><p>{FIRST} wrote: {FREE_TEXT}</p></section></main></body></html>"""


def x_graphql() -> str:
    return json.dumps({"data": {"viewer": {"user_results": {"result": {
        "__typename": "User", "rest_id": SNOWFLAKE,
        "legacy": {"screen_name": SCREEN_NAME, "name": f"{FIRST} {LAST}", "description": FREE_TEXT,
                   "location": "Lisbon, Portugal"}}}},
        "user_preferences": {"allow_xai_data_sharing": True, "allow_xai_personalization": True,
                             "allow_grok_memory": False}}})


def tumblr_html() -> str:
    state = json.dumps({"routeName": "settings-blog", "API_TOKEN": API_TOKEN, "isLoggedIn": True,
                        "user": {"name": SCREEN_NAME, "email": EMAIL, "uuid": "t:" + SET_COOKIE}})
    return f"""<html><head><script id="___INITIAL_STATE___" type="application/json">{state}</script></head><body>
<main><h1>Blog settings</h1><div class="row"><label><span>Prevent third-party sharing for {BLOG}</span>
<input type="checkbox" role="switch" name="prevent_third_party_sharing"></label></div>
<p>Posted by {SCREEN_NAME}: {FREE_TEXT}</p></main></body></html>"""


def wordpress_json() -> str:
    return json.dumps({"ID": int(SITE_ID), "name": f"{FIRST}'s kitchen", "URL": f"https://{HANDLE}.example.com",
                       "settings": {"admin_email": EMAIL, "blog_public": 1, "wpcom_coming_soon": 0,
                                    "wpcom_public_coming_soon": 0, "wpcom_data_sharing_opt_out": False,
                                    "timezone_string": "Europe/Lisbon"}})


def _flow(method: str, url: str, req_headers: dict, req_body: bytes, resp_headers: dict, resp_body: bytes,
          n: int) -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request = http.Request.make(method, url, b"", req_headers)
    f.request.raw_content = req_body
    if req_body:
        f.request.headers["content-length"] = str(len(req_body))
    f.response = http.Response.make(200, b"", resp_headers)
    f.response.raw_content = resp_body
    f.response.headers["content-length"] = str(len(resp_body))
    ts = T0 + n
    f.request.timestamp_start = f.request.timestamp_end = ts
    f.response.timestamp_start = f.response.timestamp_end = ts
    return f


def browser_headers(referer: str = "") -> dict:
    h = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0",
         "accept-language": "en-GB,en;q=0.9",
         "cookie": f'li_at={COOKIE_LI_AT}; JSESSIONID="{JSESSIONID}"; lang=v=2&lang=en-us',
         "authorization": f"Bearer {BEARER}", "csrf-token": JSESSIONID, "x-li-member": MEMBER_ID}
    if referer:
        h["referer"] = referer
    return h


SET_COOKIE_HEADER = f'bcookie="v=2&{SET_COOKIE}"; Domain=.linkedin.com; Path=/; Secure; SameSite=None'
HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"


def seeded_flows() -> list[http.HTTPFlow]:
    """Six flows: LinkedIn's page (gzip) and the user's opt-out POST, X's GraphQL (br) and mutation, Tumblr's
    page with its API token, WordPress's site settings (zstd)."""
    q = f"?trk=public_profile&email={EMAIL.replace('@', '%40')}&uid={MEMBER_ID}&session={QUERY_SECRET}"
    return [
        _flow("GET", LINKEDIN + q, browser_headers(), b"",
              {"content-type": HTML, "content-encoding": "gzip", "set-cookie": SET_COOKIE_HEADER},
              gzip.compress(linkedin_html(True).encode(), mtime=0), 0),
        _flow("POST", "https://www.linkedin.com/psettings/data-for-ai-improvement",
              {**browser_headers(LINKEDIN + q), "content-type": "application/x-www-form-urlencoded"},
              f"csrfToken={X_CSRF}&allowGenAiTraining=false&memberId={MEMBER_ID}&note={FREE_TEXT}".encode(),
              {"content-type": JSON}, json.dumps({"status": "ok", "memberId": int(MEMBER_ID)}).encode(), 1),
        _flow("GET", "https://x.com/i/api/graphql/Ab12Cd34Ef56Gh78Ij90Kl/GrokSettingsScreenQuery"
              f"?variables=%7B%22userId%22%3A%22{SNOWFLAKE}%22%2C%22withGrok%22%3Atrue%7D",
              {"authorization": f"Bearer {BEARER}", "x-csrf-token": X_CSRF, "cookie": f"ct0={X_CSRF}"}, b"",
              {"content-type": JSON, "content-encoding": "br"}, brotli.compress(x_graphql().encode()), 2),
        _flow("POST", "https://x.com/i/api/graphql/Zz98Yy76Xx54Ww32Vv10Uu/XaiDataSharingSettingsMutation",
              {"authorization": f"Bearer {BEARER}", "x-csrf-token": X_CSRF, "content-type": "application/json"},
              json.dumps({"variables": {"allowXaiDataSharing": False, "userId": SNOWFLAKE},
                          "queryId": "Zz98Yy76Xx54Ww32Vv10Uu"}).encode(),
              {"content-type": JSON}, json.dumps({"data": {"user_preferences_put": {"__typename": "Ok"}}}).encode(), 3),
        _flow("GET", f"https://www.tumblr.com/settings/blog/{BLOG}", {"cookie": f"sid={COOKIE_LI_AT}"}, b"",
              {"content-type": HTML}, tumblr_html().encode(), 4),
        _flow("GET", f"https://public-api.wordpress.com/rest/v1.4/sites/{SITE_ID}/settings",
              {"authorization": f"X-WPCOOKIE {COOKIE_LI_AT}:1:https://wordpress.com"}, b"",
              {"content-type": JSON, "content-encoding": "zstd"}, zstd.compress(wordpress_json().encode()), 5),
    ]


# what the rules must still say about each scrubbed flow (rule id -> finding kind)
EXPECTED = {"linkedin.genai-training": "toggle_on", "x.grok-training": "toggle_on",
            "tumblr.third-party-sharing": "toggle_on", "wordpress.third-party-sharing": "toggle_on"}


def write_seeded(path: Path, flows: list[http.HTTPFlow] | None = None) -> Path:
    flows = seeded_flows() if flows is None else flows
    if path.suffix == ".har":
        path.write_text(json.dumps(SaveHar().make_har(flows)), encoding="utf-8")
    else:
        with open(path, "wb") as fo:
            w = io.FlowWriter(fo)
            for f in flows:
                w.add(f)
    return path


def leftovers(data: bytes) -> list[str]:
    """Which seeded secrets are still in these bytes (as written, URL-encoded, JSON- or HTML-escaped)."""
    from urllib.parse import quote

    text = data.decode("utf-8", "replace")
    found = []
    for s in SECRETS:
        forms = {s, quote(s, safe=""), quote(s, safe="@"), json.dumps(s)[1:-1], s.replace('"', "&quot;")}
        if any(f in text for f in forms):
            found.append(s)
    return found
