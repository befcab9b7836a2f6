"""Single-page apps for the page eye's tests, as readable sources, and recordings of them (.flow) to serve through
the real proxy. Like the platforms' real settings pages (research/real-traffic.md): the server sends a shell,
the app's script fetches the state as JSON under a key no rule knows, and draws the switch only later. So the
proxy sees nothing it can use; only the rendered page tells the state.

Each app lets the user flip the switch (a click), as the real ones do, without any request the recording lacks.
"""

from __future__ import annotations

import json
from pathlib import Path

HTML = "text/html; charset=utf-8"
JS = "application/javascript; charset=utf-8"
JSON_CT = "application/json; charset=utf-8"


def shell(title: str, script: str, extra_head: str = "") -> bytes:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>{extra_head}</head>"
            f"<body><div id=root><div class=spinner aria-busy=true>Loading…</div></div>"
            f"<script src='{script}'></script></body></html>").encode()


# -- Pinterest: a switch drawn as role=switch with aria-checked, named by aria-labelledby -----------------------

PINTEREST_PAGE = "https://www.pinterest.com/settings/privacy"
PINTEREST_STATE = "https://www.pinterest.com/resource/UserSettingsResource/get/"

PINTEREST_APP = r"""
(async () => {
  const root = document.getElementById('root');
  const res = await fetch('/resource/UserSettingsResource/get/', { credentials: 'include' });
  const body = await res.json();
  let on = body.resource_response.data.p13n_gen_canvas; // a field no rule names
  await new Promise((r) => setTimeout(r, 600)); // the app draws the settings later
  const h = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    n.append(...kids);
    return n;
  };
  const nav = h('nav', { 'aria-label': 'Settings' },
    h('a', { href: '/settings/profile?ref=nav&session=abc123' }, 'Public profile'),
    h('a', { href: '/settings/privacy?ref=nav' }, 'Privacy and data'));
  const row = () => {
    const sw = h('button', { role: 'switch', 'aria-checked': String(on), 'aria-labelledby': 'canvas-label',
      class: 'Switch' + (on ? ' Switch--on' : ''), 'data-test-id': 'canvas-toggle', type: 'button' }, h('span', { class: 'knob' }));
    sw.addEventListener('click', () => { on = !on; draw(); });
    return h('div', { class: 'SettingRow' },
      h('div', { class: 'SettingText' },
        h('span', { id: 'canvas-label', class: 'tBold' }, 'Use your data to train Pinterest Canvas'),
        h('p', {}, 'Allow Pinterest to use your activity to train Pinterest Canvas, our text-to-image model.')),
      sw);
  };
  function draw() { // like a framework: the section is rebuilt on every change
    root.replaceChildren(nav, h('main', {}, h('h1', {}, 'Privacy and data'),
      h('section', { class: 'SettingsSection' }, h('h2', {}, 'Generative AI'), row(),
        h('div', { class: 'SettingRow' }, h('span', { id: 'pers' }, 'Personalise ads'),
          h('button', { role: 'switch', 'aria-checked': 'false', 'aria-labelledby': 'pers', type: 'button' })))));
  }
  draw();
})();
"""


def pinterest(on: bool) -> list[tuple[str, str, bytes]]:
    state = {"resource_response": {"status": "success", "data": {"p13n_gen_canvas": on, "ads_personalization": False}}}
    return [
        (PINTEREST_PAGE, HTML, shell("Privacy and data | Pinterest", "/static/settings-app.js")),
        ("https://www.pinterest.com/static/settings-app.js", JS, PINTEREST_APP.encode()),
        (PINTEREST_STATE, JSON_CT, json.dumps(state).encode()),
    ]


# -- Grammarly: a native checkbox inside its label, its state set as a property (no attribute) ------------------

GRAMMARLY_PAGE = "https://account.grammarly.com/security/privacy"

GRAMMARLY_APP = r"""
(async () => {
  const root = document.getElementById('root');
  const res = await fetch('/api/v2/account/prefs');
  const prefs = await res.json();
  await new Promise((r) => setTimeout(r, 400));
  root.innerHTML = '<main><h1>Privacy</h1><form class="prefs">'
    + '<label class="field">Display name <input type="text" name="display" class="text"></label>'
    + '<div class="setting"><label class="toggle"><input type="checkbox" class="visually-hidden" name="pit">'
    + '<span class="slider" aria-hidden="true"></span><span class="name">Product Improvement and Training</span></label>'
    + '<p>Let Grammarly use your content to improve and train its products.</p></div></form></main>';
  root.querySelector('input[name=display]').value = 'Jane Q. Private';
  // React-style: the state is a property, never an attribute
  root.querySelector('input[name=pit]').checked = prefs.data.flags.pi_t === 1;
})();
"""


def grammarly(on: bool) -> list[tuple[str, str, bytes]]:
    return [
        (GRAMMARLY_PAGE, HTML, shell("Privacy · Grammarly", "/static/account.js")),
        ("https://account.grammarly.com/static/account.js", JS, GRAMMARLY_APP.encode()),
        ("https://account.grammarly.com/api/v2/account/prefs", JSON_CT,
         json.dumps({"data": {"flags": {"pi_t": 1 if on else 0}}}).encode()),
    ]


# -- Anthropic: the consent dialog, drawn over the chat after the app has loaded ----------------------------------

CLAUDE_PAGE = "https://claude.ai/new"

CLAUDE_APP = r"""
(async () => {
  const root = document.getElementById('root');
  root.innerHTML = '<main><h1>How can I help you today?</h1><textarea aria-label="Write your prompt"></textarea></main>';
  await fetch('/api/bootstrap/app_start');
  await new Promise((r) => setTimeout(r, 700));
  const d = document.createElement('div');
  d.setAttribute('role', 'dialog');
  d.setAttribute('aria-modal', 'true');
  d.setAttribute('aria-labelledby', 'dlg-title');
  d.className = 'fixed inset-0 z-50 modal';
  d.innerHTML = '<div class="panel"><h2 id="dlg-title">Updates to Consumer Terms and Policies</h2>'
    + '<p>We are updating our Consumer Terms and Privacy Policy. These changes will take effect on October 8, 2025.</p>'
    + '<p>You can choose whether to allow the use of your chats and coding sessions to train and improve Anthropic AI models.</p>'
    + '<div class="row"><span id="grove-label">Help improve Claude</span>'
    + '<button type="button" role="switch" aria-checked="true" aria-labelledby="grove-label"></button></div>'
    + '<button type="button" class="accept">Accept</button></div>';
  document.body.append(d);
})();
"""


def claude_dialog() -> list[tuple[str, str, bytes]]:
    return [
        (CLAUDE_PAGE, HTML, shell("Claude", "/static/app.js")),
        ("https://claude.ai/static/app.js", JS, CLAUDE_APP.encode()),
        ("https://claude.ai/api/bootstrap/app_start", JSON_CT, json.dumps({"account": {"uuid": "x"}}).encode()),
    ]


# -- LinkedIn, real-shaped: artdeco toggle markup in a full page (for "what the page eye sends") ------------------

LINKEDIN_PAGE = "https://www.linkedin.com/mypreferences/d/settings/data-for-ai-improvement"

LINKEDIN_APP = r"""
(async () => {
  const root = document.getElementById('root');
  await new Promise((r) => setTimeout(r, 300));
  const posts = Array.from({ length: 40 }, (_, i) => `<li class="feed-item"><img src="/media/p${i}.jpg?token=T${i}" alt="">`
    + `<a href="/in/member-${i}?trk=feed&session=S3CR3T">Member ${i}</a><p>Post ${i}: generative AI is everywhere.</p></li>`).join('');
  root.innerHTML = '<header class="global-nav"><a href="/feed/?trk=nav_logo">Home</a>'
    + '<input type="search" class="search-global-typeahead__input" aria-label="Search"></header>'
    + '<div class="scaffold-layout"><aside class="left"><ul>' + posts + '</ul></aside>'
    + '<main class="mypreferences"><h1 class="t-20">Data for Generative AI Improvement</h1>'
    + '<section class="artdeco-card"><style>.x{color:red}</style><script>window.__secret = "never sent";</script>'
    + '<p class="t-14">Allow the use of your personal data and content you create on LinkedIn for training content creation AI models.'
    + ' <a href="https://www.linkedin.com/help/linkedin/answer/a5538339?lang=en&trk=abc#section">Learn more</a></p>'
    + '<div class="artdeco-toggle artdeco-toggle--32dp" data-test-toggle="ember77" data-tracking-id="abc123xyz">'
    + '<label for="adToggle_ember77" class="artdeco-toggle__label"><span class="a11y-text">Use my data for training content creation AI models</span></label>'
    + '<input role="switch" aria-checked="true" type="checkbox" id="adToggle_ember77" class="artdeco-toggle__button" value="on" onclick="void 0">'
    + '<div class="artdeco-toggle__text" aria-hidden="true">On</div></div>'
    + '<img src="https://media.licdn.com/dms/image/abc?e=123&t=TOKEN" alt="illustration"></section></main></div>';
  document.querySelector('#adToggle_ember77').checked = true;
  document.querySelector('.search-global-typeahead__input').value = 'my private search';
})();
"""


def linkedin_real_shaped() -> list[tuple[str, str, bytes]]:
    return [
        (LINKEDIN_PAGE, HTML, shell("Data for Generative AI Improvement | LinkedIn", "/static/prefs.js")),
        ("https://www.linkedin.com/static/prefs.js", JS, LINKEDIN_APP.encode()),
    ]


# -- a feed page of 10,000 nodes, growing in batches (the page eye's benchmark) -----------------------------------

FEED_PAGE = "https://www.linkedin.com/feed/"

FEED_APP = r"""
(() => {
  const root = document.getElementById('root');
  const list = document.createElement('ul');
  list.className = 'feed';
  root.replaceChildren(list);
  let n = 0;
  const post = () => {
    const li = document.createElement('li');
    li.className = 'feed-item';
    n += 1;
    // 10 nodes per post: the item, a header link, an avatar span, the text, three buttons with names
    li.innerHTML = `<div class="actor"><a href="/in/m${n}?trk=feed">Member ${n}</a><span class="avatar"></span></div>`
      + `<p class="commentary">Post ${n}: thoughts on generative AI, privacy policy updates and training data.</p>`
      + `<div class="actions"><button aria-label="Like">Like</button><button aria-label="Comment">Comment</button>`
      + `<button aria-label="Share">Share</button></div>`;
    return li;
  };
  window.__feed = {
    grow(count) { const f = document.createDocumentFragment(); for (let i = 0; i < count; i += 1) f.append(post()); list.append(f); },
    churn(count) { // a live feed: counters tick, classes change, text is rewritten
      const items = list.children;
      for (let i = 0; i < count; i += 1) {
        const li = items[(Math.random() * items.length) | 0];
        li.classList.toggle('seen');
        li.querySelector('.commentary').firstChild.data = `Post edited ${Math.random()}`;
      }
    },
    nodes() { return document.getElementsByTagName('*').length; },
  };
  window.__feed.grow(1120); // ~10,000 elements
})();
"""


def feed_page() -> list[tuple[str, str, bytes]]:
    return [
        (FEED_PAGE, HTML, shell("Feed | LinkedIn", "/static/feed.js")),
        ("https://www.linkedin.com/static/feed.js", JS, FEED_APP.encode()),
    ]


def write_recording(path: Path, entries: list[tuple[str, str, bytes]]) -> Path:
    """A .flow file with one recorded GET per entry (as `mitmdump -w` writes them)."""
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    with open(path, "wb") as fo:
        w = io.FlowWriter(fo)
        for url, ctype, body in entries:
            f = tflow.tflow(resp=True)
            f.request = http.Request.make("GET", url)
            f.response = http.Response.make(200, body, {"content-type": ctype, "cache-control": "no-store"})
            w.add(f)
    return path


class LocalSite:
    """The recorded pages from a real HTTPS server on 127.0.0.1 (a throwaway self-signed certificate), for the
    browser to reach with no proxy: Chromium maps the platform's host name here (`resolver_rule`)."""

    def __init__(self, entries: list[tuple[str, str, bytes]]):
        # (host, path) -> (content type, body): several hosts share one server, told apart by the Host header
        self.entries = {(url.split("/")[2], "/" + url.split("://", 1)[1].split("/", 1)[1]): (ctype, body)
                        for url, ctype, body in entries}
        self.hosts = sorted({url.split("/")[2] for url, _, _ in entries})
        self.requests: list[str] = []
        self.server = None

    def start(self) -> "LocalSite":
        import ssl
        import tempfile
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                site.requests.append(self.path)
                host = (self.headers.get("Host") or "").split(":")[0]
                hit = site.entries.get((host, self.path)) or site.entries.get((host, self.path.split("?")[0]))
                if hit is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", hit[0])
                self.send_header("Content-Length", str(len(hit[1])))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(hit[1])

            def log_message(self, *args):
                pass

        cert, key = _self_signed(self.hosts)
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fc, \
                tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fk:
            fc.write(cert)
            fk.write(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(fc.name, fk.name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="local-site").start()
        return self

    @property
    def resolver_rule(self) -> str:
        """A --host-resolver-rules value: the site's hosts here, every other name unresolvable (nothing leaves)."""
        maps = ", ".join(f"MAP {h}:443 127.0.0.1:{self.port}" for h in self.hosts)
        return f"--host-resolver-rules={maps}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _self_signed(hosts: list[str]) -> tuple[bytes, bytes]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def route_all(context, entries: list[tuple[str, str, bytes]]) -> None:
    """Serve the entries to a browser context without any proxy (Playwright answers the requests itself)."""
    by_url = {url: (ctype, body) for url, ctype, body in entries}
    hosts = {url.split("/")[2] for url in by_url}

    def serve(route):
        url = route.request.url.split("#")[0]
        hit = by_url.get(url) or by_url.get(url.split("?")[0])
        if hit is None:
            route.fulfill(status=404, content_type="text/plain", body="not recorded")
            return
        route.fulfill(status=200, content_type=hit[0], body=hit[1])

    for host in hosts:
        context.route(f"https://{host}/**", serve)
