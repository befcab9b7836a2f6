"""The extension as files: manifest for both browsers, strict CSP, no remote code, content scripts only on
rule hosts, the message allow-list, and `web-ext lint` (Mozilla's linter) with no errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import resources

import pytest

from consentwatch.ca import SELFTEST_HOST

from .browser_support import EXT_DIR, missing

MANIFEST = json.loads((EXT_DIR / "manifest.json").read_text())
EXT_FILES = [p for p in EXT_DIR.rglob("*") if "node_modules" not in p.parts and p.is_file()]
JS = {p.relative_to(EXT_DIR).as_posix(): p.read_text() for p in EXT_FILES if p.suffix == ".js"}
HTML = {p.relative_to(EXT_DIR).as_posix(): p.read_text() for p in EXT_FILES if p.suffix == ".html"}

SELFTEST_ORIGIN = f"https://{SELFTEST_HOST}"  # the extension fetches it to prove the route (status.js)

# Rule hosts that only serve JSON to apps: no page to show a banner on, so no content script there.
API_ONLY_HOSTS = {"api.x.com", "public-api.wordpress.com"}


def rule_hosts() -> set[str]:
    pack = json.loads((resources.files("consentwatch.rules") / "pack.json").read_text())
    return {h for rule in pack["rules"] for h in rule["hosts"]}


def match_hosts() -> list[str]:
    hosts = []
    for cs in MANIFEST["content_scripts"]:
        for m in cs["matches"]:
            found = re.fullmatch(r"https://([^/]+)/\*", m)
            assert found, f"content script match {m!r} is not https://HOST/*"
            hosts.append(found.group(1))
    return hosts


def covers(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


def test_manifest_loads_in_chromium_and_firefox():
    assert MANIFEST["manifest_version"] == 3
    bg = MANIFEST["background"]
    assert bg["service_worker"] == "background.js"  # Chromium
    assert bg["scripts"] == ["background.js"]  # Firefox
    assert bg["type"] == "module"  # both: background.js imports lib/common.js and background/*.js
    imported = re.findall(r"^import (?:[^;]+ from )?'(\./[^']+)';", JS["background.js"], re.M)
    assert "./lib/common.js" in imported
    for rel in imported:
        assert (EXT_DIR / rel).is_file(), rel
    gecko = MANIFEST["browser_specific_settings"]["gecko"]
    assert re.fullmatch(r"[\w.+-]+@[\w.-]+", gecko["id"])
    # Every file the manifest names exists, so it loads unpacked as is.
    named = [bg["service_worker"], *bg["scripts"], MANIFEST["action"]["default_popup"], MANIFEST["options_ui"]["page"],
             *MANIFEST["icons"].values(), *MANIFEST["action"]["default_icon"].values()]
    named += [js for cs in MANIFEST["content_scripts"] for js in cs["js"]]
    for rel in named:
        assert (EXT_DIR / rel).is_file(), rel
    # Pages load only local scripts and styles.
    for name, html in HTML.items():
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert "://" not in ref and not ref.startswith("//"), f"{name} references {ref}"
            assert (EXT_DIR / ref).is_file(), f"{name}: {ref} missing"


def test_permissions_are_minimal():
    # scripting: content scripts for rule hosts a newer pack adds, only where the user grants the optional host
    # permission (the popup asks); nothing is injected on demand (no executeScript anywhere, see below).
    # nativeMessaging: one-click pairing asks consentwatch's own host (native_host.py) for the address and token
    assert sorted(MANIFEST["permissions"]) == ["alarms", "nativeMessaging", "proxy", "scripting", "storage"]
    assert MANIFEST["host_permissions"] == ["http://127.0.0.1/*", "http://localhost/*"]
    assert MANIFEST["optional_host_permissions"] == ["https://*/*"]
    assert "externally_connectable" not in MANIFEST
    assert "web_accessible_resources" not in MANIFEST


def test_csp_is_strict():
    csp = MANIFEST["content_security_policy"]["extension_pages"]
    directives = {d.split()[0]: d.split()[1:] for d in (x.strip() for x in csp.split(";")) if d}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert "unsafe" not in csp and "data:" not in csp and "blob:" not in csp
    for src in directives["connect-src"]:
        # this computer, and the self-test page the proxy answers itself (a name that cannot exist in DNS)
        assert re.fullmatch(r"(http|ws)://(127\.0\.0\.1|localhost):\*", src) or src == SELFTEST_ORIGIN, src
    assert [s.rstrip(";") for s in csp.split() if s.startswith("https:")] == [SELFTEST_ORIGIN]


def test_no_remote_or_dynamic_code():
    banned = [r"\beval\s*\(", r"new\s+Function\s*\(", r"\.innerHTML\s*=", r"outerHTML\s*=", r"insertAdjacentHTML",
              r"document\.write", r"\bimport\s*\(", r"setTimeout\s*\(\s*['\"]", r"executeScript", r"insertCSS"]
    for name, text in JS.items():
        for pat in banned:
            assert not re.search(pat, text), f"{name} matches {pat}"
        # The only literal URLs: this computer (the local API), the SVG namespace, and host-permission match
        # patterns built from rule hosts (https://${host}/*).
        for url in re.findall(r"\b(?:https?|wss?)://[^\s'\"`)]+", text):
            allowed = url.startswith(("http://127.0.0.1", "http://localhost", "http://${", "http://www.w3.org/2000/svg"))
            assert allowed or url in ("https://${h}/*", "https://${host}/*"), f"{name}: {url}"


def test_content_script_runs_only_on_rule_hosts():
    rules = rule_hosts()
    patterns = match_hosts()
    for p in patterns:
        assert any(covers(p, h) for h in rules), f"content script on {p}, which no rule names"
        if p.startswith("*."):
            assert p[2:] in {h.removeprefix("www.") for h in rules} | {h.removeprefix("*.") for h in rules}, p
    for h in rules - API_ONLY_HOSTS:
        assert any(covers(p, h.removeprefix("*.")) for p in patterns), f"rule host {h} has no banner"
    cs = MANIFEST["content_scripts"]
    assert len(cs) == 1 and cs[0]["all_frames"] is False
    # the shared helpers first, then the page eye and the banner (both use CW from lib/common.js)
    assert cs[0]["js"] == ["lib/common.js", "content/eye.js", "content/banner.js"]


def test_the_page_eye_only_reads():
    """No click, focus, typing, event, attribute or property write on the page's own nodes in the page eye."""
    eye = JS["content/eye.js"]
    for pat in [r"\.click\s*\(", r"\.focus\s*\(", r"\.blur\s*\(", r"dispatchEvent", r"\.value\s*=[^=]",
                r"\.checked\s*=[^=]", r"\.selected\s*=[^=]", r"setAttribute", r"removeAttribute", r"\.append(?:Child)?\(",
                r"\.remove\(\)", r"\.textContent\s*=[^=]", r"\.innerText\s*=", r"\.cloneNode", r"\.replaceWith",
                r"insertBefore", r"\.style\.", r"classList\.", r"\.dataset\."]:
        assert not re.search(pat, eye), pat


def test_content_scripts_accept_only_their_own_message():
    """The worker's handler tables are checked in tests/extension (node); here, each content script listens for
    exactly one type from the worker, and asks only for page:* types."""
    eye, banner = JS["content/eye.js"], JS["content/banner.js"]
    assert "const INBOUND = CW.TO_PAGE.rules;" in eye and "msg.type !== INBOUND" in eye
    assert "const INBOUND = CW.TO_PAGE.warnings;" in banner and "msg.type !== INBOUND" in banner
    for text in (eye, banner):
        assert set(re.findall(r"type: '([a-z]+:[a-z-]+)'", text)) <= {"page:get", "page:rules", "page:observe",
                                                                      "page:dismiss", "page:open-settings"}


def web_ext_bin() -> str | None:
    local = EXT_DIR / "node_modules" / ".bin" / "web-ext"
    if local.exists():
        return str(local)
    return shutil.which("web-ext")


def test_web_ext_lint_has_no_errors():
    exe = web_ext_bin()
    if not exe or not shutil.which("node"):
        missing("web-ext is not installed (cd extension && npm install; `make browser` does it)")
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "WEB_EXT_NO_INPUT": "true"}
    out = subprocess.run([exe, "lint", "--source-dir", ".", "--output", "json", "--no-input"], cwd=EXT_DIR,
                         capture_output=True, text=True, timeout=180, env=env)
    text = out.stdout.strip()
    start = text.find("{")
    assert start >= 0, f"web-ext lint printed no JSON (exit {out.returncode}):\n{out.stderr[-2000:]}"
    report = json.loads(text[start:])
    errors = [f"{m['code']}: {m.get('file')}: {m['message']}" for m in report["errors"]]
    assert not errors, "web-ext lint errors:\n" + "\n".join(errors)
    # The one expected warning: Firefox ignores background.service_worker (Chromium needs it).
    warnings = [m for m in report["warnings"] if m.get("dataPath") != "/background/service_worker"
                and "service_worker" not in m["message"]]
    assert not warnings, [f"{m['code']}: {m['message']}" for m in warnings]


@pytest.mark.parametrize("name", sorted(JS))
def test_js_parses(name):
    node = shutil.which("node")
    if not node:
        missing("node is not installed")
    out = subprocess.run([node, "--check", str(EXT_DIR / name)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


COMMON_CHECKS = r"""
const vm = require('vm');
const fs = require('fs');
const ctx = { URL, Intl, Date, console };
ctx.globalThis = ctx;
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[1], 'utf8'), ctx);
const CW = ctx.CW;
const out = {};
out.bases = ['', 'http://127.0.0.1:9000', 'localhost:8765', 'http://127.0.0.1:8765/v1', 'http://[::1]:1',
  'https://127.0.0.1:8765', 'http://evil.example:8765', 'http://127.0.0.1.evil.example', 'http://user:pw@127.0.0.1:1',
  'javascript:alert(1)', 'http://10.0.0.1:8765'].map((b) => [b, CW.normalizeApiBase(b)]);
out.tokens = ['', ' abc ', 'a b', 'x'.repeat(600)].map((t) => CW.normalizeToken(t).ok);
out.hosts = [['www.linkedin.com', 'www.linkedin.com'], ['linkedin.com', 'www.linkedin.com'], ['a.substack.com', '*.substack.com'],
  ['substack.com', '*.substack.com'], ['evilsubstack.com', '*.substack.com']].map(([h, p]) => CW.hostMatches(h, p));
const w = CW.sanitizeWarning({ id: 'w-1', kind: 'toggle_on', title: 'T', platform: 'linkedin', url: 'javascript:alert(1)',
  remedy: { settings_url: 'http://insecure.example/', steps: ['a', 3, 'b'] }, hosts: ['x.com', {}], extra: 'dropped' });
out.warning = w;
out.badIds = [null, {}, { id: '<img>' }, { id: '' }].map((x) => CW.sanitizeWarning(x));
console.log(JSON.stringify(out));
"""


def test_common_helpers_refuse_what_they_should():
    node = shutil.which("node")
    if not node:
        missing("node is not installed")
    out = subprocess.run([node, "-e", COMMON_CHECKS, str(EXT_DIR / "lib" / "common.js")], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    bases = {b: (r["value"] if r["ok"] else None) for b, r in got["bases"]}
    assert bases == {
        "": "http://127.0.0.1:8765", "http://127.0.0.1:9000": "http://127.0.0.1:9000",
        "localhost:8765": "http://localhost:8765", "http://127.0.0.1:8765/v1": "http://127.0.0.1:8765",
        "http://[::1]:1": None, "https://127.0.0.1:8765": None, "http://evil.example:8765": None,
        "http://127.0.0.1.evil.example": None, "http://user:pw@127.0.0.1:1": None, "javascript:alert(1)": None,
        "http://10.0.0.1:8765": None,
    }
    assert got["tokens"] == [True, True, False, False]
    assert got["hosts"] == [True, False, True, True, False]
    w = got["warning"]
    assert w["url"] is None and w["remedy"]["settings_url"] is None  # only https survives
    assert w["remedy"]["steps"] == ["a", "b"] and w["hosts"] == ["x.com"] and "extra" not in w
    assert got["badIds"] == [None, None, None, None]
