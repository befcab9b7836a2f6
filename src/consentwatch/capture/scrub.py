"""The scrubber: one recording's flows in, the same flows with everything personal replaced, out.

What goes: cookies, auth headers, CSRF and bearer tokens (in headers, bodies, inline scripts), query-string
values, e-mail addresses, phone numbers, user and account ids, names from profile fields, and free text
outside the settings region. Each removed value becomes a stable placeholder (the same value gets the same
placeholder everywhere in one recording), shaped like what it replaces where a parser might care.

What stays: the JSON and HTML structure, key names, booleans, state words and machine identifiers, and the
settings region: the labelled control of a rule with the text around it, and a policy notice about AI. So
a scrubbed recording still makes the rule fire.

Two passes. `scrub_flow` handles one flow as it comes (the capture addon calls it per flow, so raw bodies do
not linger) and learns every value it removed from a structured place (a cookie, a profile field). `finish`
then hunts those values everywhere in the whole recording: a user id learned from the tenth response is
removed from the first one's URL too. Bodies are stored decoded (Content-Encoding removed), as UTF-8.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from mitmproxy import http
from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..detect.body import BodyError, DEFAULT_MAX_BYTES, decompress, to_text
from ..rules.model import Rule, RuleSet
from ..text import norm
from . import patterns as P

MAX_BODY = DEFAULT_MAX_BYTES  # decoded bytes kept per body; more is cut (and counted)
REGION_TEXT = 4000  # an element with more text than this is a page section, not a setting's label
ROW_TEXT = 1500  # a setting's row (label, description, control) holds about this much text at most
NOTICE_TEXT = 8000  # a policy notice's dialog: what the notice detector reads, and a little more
_BOOL_WORDS = {"true", "false", "1", "0", "on", "off", "yes", "no", "enabled", "disabled", "allowed", "denied"}

# Header values kept as they are (still searched for e-mails and tokens): none of them says who you are.
KEEP_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "accept-ranges", "access-control-allow-credentials",
    "access-control-allow-headers", "access-control-allow-methods", "access-control-expose-headers",
    "access-control-max-age", "access-control-request-headers", "access-control-request-method", "age",
    "alt-svc", "cache-control", "connection", "content-language", "content-length", "content-type",
    "cross-origin-embedder-policy", "cross-origin-opener-policy", "cross-origin-resource-policy", "date", "dnt",
    "expires", "host", "keep-alive", "last-modified", "pragma", "priority", "referrer-policy", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
    "sec-fetch-user", "sec-gpc", "server", "strict-transport-security", "te", "transfer-encoding", "upgrade",
    "upgrade-insecure-requests", "vary", "x-content-type-options", "x-frame-options", "x-xss-protection",
    "x-requested-with", "content-range", "if-modified-since", "permissions-policy", ":method", ":scheme",
    ":path", ":authority", ":status",
})
URL_HEADERS = frozenset({"referer", "origin", "location", "content-location", "access-control-allow-origin"})
_SET_COOKIE_ATTRS = {"path", "domain", "expires", "max-age", "secure", "httponly", "samesite", "priority",
                     "partitioned"}

# How the summary names each kind of removal.
KIND_LABELS = {
    "cookie": "cookies and session values",
    "auth": "auth header credentials",
    "csrf": "CSRF tokens",
    "token": "tokens, keys and secrets",
    "query": "query-string values",
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "id": "user, account and other ids",
    "name": "names and handles",
    "personal": "personal fields (address, location, bio, photo)",
    "text": "free text outside the settings region",
    "header": "other header values",
    "comment": "HTML comments",
    "template": "HTML templates",
    "binary": "binary bodies (images, fonts, uploads...)",
    "asset": "script and style files",
    "undecodable": "bodies that could not be decoded",
    "redact": "words you asked to remove (--redact)",
}


@dataclass
class Placeholders:
    """Value -> placeholder for one recording, and what was removed, by kind."""

    by_value: dict[str, str] = field(default_factory=dict)
    numbers: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)  # occurrences replaced, by kind
    distinct: Counter = field(default_factory=Counter)  # distinct values replaced, by kind
    literals: dict[str, tuple[str, str]] = field(default_factory=dict)  # value -> (kind, placeholder): hunted later
    protected_words: set[str] = field(default_factory=set)

    def get(self, kind: str, value: str, hunt: bool = True) -> str:
        if P.is_placeholder(value.strip()):
            return value  # scrubbing a scrubbed recording again changes nothing
        ph = self.by_value.get(value)
        if ph is None:
            ph = self._make(kind, value)
            self.by_value[value] = ph
            self.by_value[ph] = ph
            self.distinct[kind] += 1
        if hunt:
            self.learn(kind, value, ph)  # also when first seen as free text, now as a name
        self.removed[kind] += 1
        return ph

    def number(self, kind: str, value: str) -> int:
        """A numeric placeholder (a JSON number stays a number), shared with the string form of the same id."""
        if P.is_placeholder(value):
            return int(value)
        ph = self.by_value.get(value)
        if ph is None or not ph.isdigit():
            self.numbers["#"] += 1
            ph = str(P.NUMERIC_BASE + self.numbers["#"])
            if value not in self.by_value:
                self.by_value[value] = ph
                self.distinct[kind] += 1
                self.learn(kind, value, ph)
        self.removed[kind] += 1
        return int(ph)

    def _make(self, kind: str, value: str) -> str:
        self.numbers[kind] += 1
        n = self.numbers[kind]
        if P.EMAIL.fullmatch(value.strip()):
            return f"email-{n}@{P.PLACEHOLDER_DOMAIN}"
        if kind == "id" and value.isdigit():
            self.numbers["#"] += 1
            return str(P.NUMERIC_BASE + self.numbers["#"])
        if kind == "id" and P.UUID.fullmatch(value):
            return f"00000000-0000-4000-8000-{n:012d}"
        return f"scrubbed-{kind}-{n}"

    def learn(self, kind: str, value: str, ph: str) -> None:
        """Remember a removed value to hunt for in the rest of the recording (names also word by word)."""
        value = value.strip()
        if self._huntable(value, kind):
            self.literals.setdefault(value, (kind, ph))
        if kind in ("name", "redact"):
            for word in re.findall(r"[^\W\d_][\w'-]{2,}", value):
                if self._huntable(word):
                    self.literals.setdefault(word, (kind, ph))

    def _huntable(self, value: str, kind: str = "") -> bool:
        if len(value) < 4 and not (len(value) == 3 and value[:1].isupper()):
            return False
        if kind in ("cookie", "csrf", "token", "auth", "header", "query") and len(value) < 8:
            return False  # "dark" as a theme cookie is no secret, and it is a word in class names
        if kind == "id" and len(value) < 5:
            return False
        low = value.lower()
        if low in P.STATE_WORDS or low in self.protected_words or P.is_placeholder(value):
            return False
        if low in ("scrubbed", "invalid", "email", "http", "https"):
            return False
        return not value.isdigit() or len(value) >= 5


def _variants(value: str) -> set[str]:
    """How one value may be written elsewhere: as is, URL-encoded, HTML-escaped, JSON-escaped."""
    out = {value, quote(value, safe=""), quote(value, safe="@"), htmllib.escape(value, quote=True),
           json.dumps(value, ensure_ascii=True)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    return {v for v in out if v}


class Scrubber:
    """Scrubs the flows of one recording. `rules` decide the settings regions to keep (by each flow's host);
    `keep` adds phrases to keep (a label for a platform no rule knows yet); `redact` adds words to remove
    everywhere (your own name, handle or blog name, which no pattern can recognise)."""

    def __init__(self, rules: RuleSet | None = None, keep: Iterable[str] = (), redact: Iterable[str] = (),
                 max_body: int = MAX_BODY):
        self.rules = rules if rules is not None else RuleSet([])
        self.ph = Placeholders()
        self.max_body = max_body
        self.notes: Counter = Counter()  # flows seen, bodies cut...
        self.keep = tuple(p for p in (norm(k) for k in keep) if p)
        self.json_keys: set[str] = set()
        self.values_kept: set[str] = set()  # choice names: "Enabled", "Disabled"
        for rule in self.rules.rules:
            s = rule.data.get("setting") or {}
            for jk in s.get("json_keys", ()):
                self.json_keys.add(jk["key"])
                self.json_keys.update((jk.get("only_if") or {}).keys())
            for name in ("choices", "name_states"):
                self.values_kept.update((s.get(name) or {}).keys())
        for phrase in self._all_phrases():
            self.ph.protected_words.update(re.findall(r"[a-z0-9]+", phrase))
        for host in self.rules.host_patterns():  # a user called "linkedin" must not rename the host
            self.ph.protected_words.update(re.findall(r"[a-z0-9]+", host))
        self.ph.protected_words.update(k.lower() for k in self.json_keys)
        for word in redact:
            word = word.strip()
            if word:
                self.ph.by_value.setdefault(word, self.ph._make("redact", word))
                self.ph.literals[word] = ("redact", self.ph.by_value[word])
        self._phrases_by_host: dict[str, tuple[str, ...]] = {}
        self._notice_phrases = frozenset(p for r in self.rules.rules for p in self._notices_of(r))

    # -- phrases that mark the settings region ------------------------------------------------------
    def _rule_phrases(self, rule: Rule) -> list[str]:
        s = rule.data.get("setting") or {}
        out = list(rule.labels_norm)
        out += [norm(x) for x in (s.get("name_states") or {})]
        out += self._notices_of(rule)
        return [p for p in out if p]

    @staticmethod
    def _notices_of(rule: Rule) -> list[str]:
        return [n for x in (rule.data.get("notices") or {}).get("about", ()) if (n := norm(x))]

    def _all_phrases(self) -> list[str]:
        return [p for r in self.rules.rules for p in self._rule_phrases(r)] + list(self.keep)

    def phrases_for(self, host: str) -> tuple[str, ...]:
        found = self._phrases_by_host.get(host)
        if found is None:
            found = tuple(dict.fromkeys([p for r in self.rules.for_host(host) for p in self._rule_phrases(r)]
                                        + list(self.keep)))
            self._phrases_by_host[host] = found
        return found

    # -- report ---------------------------------------------------------------------------------------
    def report(self) -> dict:
        return {"removed": dict(self.ph.removed), "distinct": dict(self.ph.distinct), "notes": dict(self.notes)}

    # -- pass 1: one flow -----------------------------------------------------------------------------
    def scrub_flow(self, flow: http.HTTPFlow) -> http.HTTPFlow:
        """A scrubbed copy of `flow` (the flow itself is not touched)."""
        f = flow.copy()
        self.notes["flows"] += 1
        f.comment = ""
        f.marked = ""
        f.metadata = {}
        f.websocket = None
        f.client_conn.certificate_list = []  # a client certificate names its owner
        host = f.request.pretty_host
        phrases = self.phrases_for(host)
        req = f.request
        req.path = self.request_path(req.path)
        req.headers = self.headers(req.headers)
        self.body(req, phrases, request=True)
        req.trailers = None
        if f.response is not None:
            f.response.headers = self.headers(f.response.headers)
            self.body(f.response, phrases, request=False)
            f.response.trailers = None
        return f

    # -- strings --------------------------------------------------------------------------------------
    def patterns(self, text: str, ids: bool = True) -> str:
        """Secrets and personal data recognisable by their shape, replaced wherever they are (placeholders
        stay whole). `ids=False` leaves digit runs alone (a header's max-age is not an account number)."""
        return P.outside_placeholders(text, lambda part: self._patterns(part, ids))

    def _patterns(self, text: str, ids: bool) -> str:
        if _PLAIN_WORD.fullmatch(text):
            return text  # a key or a word: no digit, no @, no quote, too short for a token (most of a JSON document)
        ph = self.ph

        def secret_kv(m: re.Match) -> str:
            kind = P.classify_key(m.group("key"))
            val = m.group("val")
            if kind not in P.SECRET_KINDS or not val.strip() or P.is_placeholder(val) or \
                    val.strip().lower() in P.STATE_WORDS:
                return m.group(0)
            start, end = m.span("val")
            return m.group(0)[:start - m.start()] + ph.get(kind, val) + m.group(0)[end - m.start():]

        for rx in P.KV_FORMS:  # "csrfToken": "..." in text no parser reads (what the verifier looks for too)
            text = rx.sub(secret_kv, text)

        def sub(kind: str):
            def repl(m: re.Match) -> str:
                s = m.group(0)
                return s if P.is_placeholder(s) else ph.get(kind, s)
            return repl

        def auth(m: re.Match) -> str:
            creds = m.group(3)
            if P.is_placeholder(creds) or not _credential_like(creds):
                return m.group(0)
            return m.group(1) + m.group(2) + ph.get("auth", creds)

        def phone(m: re.Match) -> str:
            s = m.group(0)
            return ph.get("phone", s) if P.phone_digits_ok(s) else s

        if "PRIVATE KEY" in text:
            text = re.sub(r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----.*?(?:-----END [A-Z ]{0,20}PRIVATE KEY-----|$)",
                          sub("token"), text, flags=re.S)
        text = P.JWT.sub(sub("token"), text)
        text = P.API_KEYS.sub(sub("token"), text)
        text = P.AUTH_SCHEME.sub(auth, text)
        text = P.EMAIL.sub(sub("email"), text)
        text = P.UUID.sub(sub("id"), text)
        text = P.TOKEN_CANDIDATE.sub(lambda m: ph.get("token", m.group(0)) if P.is_token(m.group(0)) else m.group(0),
                                     text)
        if ids:
            text = P.PHONE.sub(phone, text)
            text = P.DIGITS.sub(sub("id"), text)
        return text

    def value(self, s: str, key: str | None, phrases: tuple[str, ...] = ()) -> str:
        """One string value (JSON, a form field, an attribute) under `key`: kept, or its placeholder."""
        if not s or s.isspace() or P.is_placeholder(s):
            return s
        if key is not None and key in self.json_keys:
            return self.patterns(s)  # the rule's own key: its value is the state
        kind = P.classify_key(key) if key else None
        ph = self.ph
        if kind in P.SECRET_KINDS:
            return ph.get(kind, s)
        if kind == P.EMAIL_KIND:
            return ph.get("email", s)
        if kind == P.PHONE_KIND:
            return ph.get("phone", s)
        if kind == P.ID:
            return s if _enum_identifier(s) or s.lower() in P.STATE_WORDS else ph.get("id", s)
        if kind == P.NAME:
            return ph.get("name", s)
        if kind == P.PERSONAL:
            return ph.get("personal", s)
        if kind == P.AMBIGUOUS_NAME:
            if _enum_identifier(s) or s in self.values_kept or _protected(s, phrases):
                return self.patterns(s)
            return ph.get("name", s)
        return self.free_value(s, key, phrases)

    def free_value(self, s: str, key: str | None, phrases: tuple[str, ...]) -> str:
        """A string whose key says nothing: judged by its shape."""
        ph = self.ph
        stripped = s.strip()
        if s in self.values_kept or _protected(s, phrases):
            return self.patterns(s)
        if _looks_url(stripped):
            return self.url(stripped)
        if P.EMAIL.fullmatch(stripped):
            return ph.get("email", s)
        if P.UUID.fullmatch(stripped) or (stripped.isdigit() and len(stripped) >= 5):
            return ph.get("id", s)
        if P.is_token(stripped):
            return ph.get("token", s)
        if stripped.lower() in P.STATE_WORDS or P.is_iso_date(stripped) or P.is_machine_word(stripped):
            return s
        if P.is_enum_key(key) and re.fullmatch(r"[A-Z][A-Za-z]{1,47}", stripped):
            return s  # "Enabled" as a status, "UserPreferences" as a __typename
        if stripped[:1] in "{[":
            try:
                doc = json.loads(stripped)
            except (ValueError, RecursionError):
                doc = None
            if isinstance(doc, (dict, list)):
                return json.dumps(self.json(doc, key, phrases), ensure_ascii=False, separators=(",", ":"))
        if any(c.isalpha() for c in s):
            return ph.get("text", s, hunt=False)
        return self.patterns(s)

    # -- JSON -----------------------------------------------------------------------------------------
    def json(self, node, key: str | None, phrases: tuple[str, ...]):
        if isinstance(node, dict):
            return {self.json_key(k): self.json(v, k, phrases) for k, v in node.items()}
        if isinstance(node, list):
            return [self.json(v, key, phrases) for v in node]
        if node is None or isinstance(node, bool):
            return node
        if isinstance(node, int):
            return self.number(node, key)
        if isinstance(node, str):
            return self.value(node, key, phrases)
        return node  # floats: measurements, not identities

    def number(self, n: int, key: str | None) -> int:
        if key is not None and key in self.json_keys:
            return n
        kind = P.classify_key(key) if key else None
        if kind in (P.ID, P.PHONE_KIND) + P.SECRET_KINDS and abs(n) >= 1000:
            return self.ph.number("phone" if kind == P.PHONE_KIND else "id", str(n))
        if kind == P.PERSONAL:
            self.ph.removed["personal"] += 1
            return 0
        if abs(n) >= 10 ** 11:  # a bare 12+ digit number is an id (or a millisecond timestamp): either way, gone
            return self.ph.number("id", str(n))
        return n

    def json_key(self, k: str) -> str:
        """Keys stay (rules match them), unless a key is itself an id, an address or a token (maps keyed by id)."""
        if _PLAIN_WORD.fullmatch(k):
            return k
        if P.DIGITS.fullmatch(k) or P.UUID.fullmatch(k):
            return self.ph.get("id", k)
        if P.EMAIL.fullmatch(k):
            return self.ph.get("email", k)
        if P.is_token(k):
            return self.ph.get("token", k)
        return self.patterns(k)

    def json_text(self, text: str, phrases: tuple[str, ...]) -> str:
        """A JSON document (possibly behind an anti-XSSI prefix); text that does not parse is scrubbed as code."""
        prefix, rest = _split_xssi(text)
        try:
            doc = json.loads(rest)
        except (ValueError, RecursionError):
            return prefix + self.code(rest, phrases)
        try:
            out = self.json(doc, None, phrases)
        except RecursionError:
            return prefix + self.code(rest, phrases)
        return prefix + json.dumps(out, ensure_ascii=False, separators=(",", ":"))

    def code(self, text: str, phrases: tuple[str, ...]) -> str:
        """Script, broken JSON, plain text: "key": "value" pairs judged by key, then the shape patterns."""
        parts = _assignment(text)
        if parts is not None:
            head, doc, tail = parts
            try:
                body = json.dumps(self.json(doc, None, phrases), ensure_ascii=False, separators=(",", ":"))
                return head + body + tail
            except RecursionError:
                pass
        for i, rx in enumerate(P.KV_FORMS):
            text = rx.sub(lambda mm, i=i: self._kv(mm, i, phrases), text)
        return self.patterns(text)

    def _kv(self, m: re.Match, form: int, phrases: tuple[str, ...]) -> str:
        key, raw = m.group("key"), m.group("val")
        if form == 0:
            try:
                val = json.loads('"' + raw + '"')
            except ValueError:
                val = raw
        elif form == 3:
            val = htmllib.unescape(raw)
        else:
            val = raw
        new = self.value(val, key, phrases)
        if new == val:
            return m.group(0)
        start, end = m.span("val")
        s0 = m.start(0)
        whole = m.group(0)
        return whole[:start - s0] + _reescape(new, form) + whole[end - s0:]

    # -- URLs -----------------------------------------------------------------------------------------
    def request_path(self, path: str) -> str:
        """A request's path and query: ids in the path and every query value replaced."""
        p, q, query = path.partition("?")
        p = self.path(p)
        if not q:
            return p
        return p + "?" + self.query(query)

    def path(self, p: str) -> str:
        segs = p.split("/")
        return "/".join(self.segment(s) for s in segs)

    def segment(self, seg: str) -> str:
        if not seg:
            return seg
        raw = unquote(seg)
        if P.is_placeholder(raw):
            return seg
        if P.EMAIL.fullmatch(raw):
            return quote(self.ph.get("email", raw), safe="@")
        if P.UUID.fullmatch(raw) or P.DIGITS.fullmatch(raw):
            return self.ph.get("id", raw)
        if P.is_token(raw):
            return self.ph.get("token", raw)
        new = self.patterns(raw)
        return seg if new == raw else quote(new, safe="@:;=,+-._~")

    def query(self, query: str) -> str:
        out = []
        for part in query.split("&"):
            if not part:
                continue
            k, eq, v = part.partition("=")
            name = unquote(k.replace("+", " "))
            value = unquote(v.replace("+", " "))
            new_name = self.json_key(name)
            new_value = self.query_value(name, value) if eq else value
            out.append(quote(new_name, safe="[]") + (("=" + quote(new_value, safe="")) if eq else ""))
        return "&".join(out)

    def query_value(self, key: str, v: str) -> str:
        if not v or v.lower() in _BOOL_WORDS or P.is_placeholder(v):
            return v
        if v in self.json_keys or P.is_snake_word(v):
            return v  # a setting's name (feature=training_allowed)
        if v[:1] in "{[":
            try:
                doc = json.loads(v)
            except (ValueError, RecursionError):
                doc = None
            if isinstance(doc, (dict, list)):  # GraphQL variables: keep the structure and the booleans
                return json.dumps(self.json(doc, key, ()), ensure_ascii=False, separators=(",", ":"))
        kind = P.classify_key(key)
        if P.EMAIL.fullmatch(v):
            return self.ph.get("email", v)
        if kind in P.SECRET_KINDS or kind in (P.ID, P.EMAIL_KIND, P.PHONE_KIND, P.NAME):
            return self.ph.get({P.EMAIL_KIND: "email", P.PHONE_KIND: "phone"}.get(kind, kind), v)
        return self.ph.get("query", v)

    def url(self, u: str) -> str:
        """A URL inside a body or header: scheme and host kept; credentials, ids, query values and fragment go."""
        try:
            parts = urlsplit(u)
        except ValueError:
            return self.ph.get("text", u, hunt=False)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, netloc = netloc.rpartition("@")
            self.ph.get("auth", userinfo)
        path = self.path(parts.path)
        query = self.query(parts.query) if parts.query else ""
        if parts.fragment:
            self.ph.removed["query"] += 1
        return urlunsplit((parts.scheme, netloc, path, query, ""))

    # -- headers --------------------------------------------------------------------------------------
    def headers(self, headers: http.Headers) -> http.Headers:
        fields = []
        for name, value in headers.items(multi=True):
            low = name.lower()
            new = self.header(low, value)
            if new is None:
                continue
            fields.append((name.encode("utf-8", "surrogateescape"), new.encode("utf-8", "surrogateescape")))
        return http.Headers(fields)

    def header(self, low: str, value: str) -> str | None:
        ph = self.ph
        if low == "cookie":
            parts = []
            for c in value.split(";"):
                n, eq, v = c.strip().partition("=")
                v = v.strip('"')  # a quoted cookie value is the same value as elsewhere unquoted
                if not n and not v:
                    continue
                parts.append(f"{n}={ph.get('cookie', v)}" if eq and v else f"{n}{eq}{v}")
            return "; ".join(parts)
        if low == "set-cookie":
            first, *attrs = value.split(";")
            n, eq, v = first.strip().partition("=")
            v = v.strip('"')
            out = [f"{n}={ph.get('cookie', v)}" if eq and v else first.strip()]
            for a in attrs:
                an, aeq, av = a.strip().partition("=")
                if an.lower() in _SET_COOKIE_ATTRS:
                    out.append(a.strip())
            return "; ".join(out)
        if low in ("authorization", "proxy-authorization"):
            scheme, sp, creds = value.strip().partition(" ")
            if not sp:
                return ph.get("auth", value)
            return f"{scheme} {ph.get('auth', creds.strip())}"
        if low in KEEP_HEADERS:
            return self.patterns(value, ids=False)
        if low == "user-agent":
            return re.sub(r"\([^)]*\)", "(scrubbed)", value, count=1)  # the OS and device details
        if low in URL_HEADERS or low == "link":
            return self.url(value) if _looks_url(value.strip()) else self.patterns(value)
        if low == "content-encoding":
            return value  # dropped by body() once the body is stored decoded
        kind = P.classify_key(low)
        if kind in P.SECRET_KINDS:
            return ph.get(kind, value)
        if kind is not None and kind != P.AMBIGUOUS_NAME:
            return ph.get({P.EMAIL_KIND: "email", P.PHONE_KIND: "phone"}.get(kind, kind), value)
        v = value.strip()
        if v.lower() in P.STATE_WORDS or P.is_machine_word(v) or (v.isdigit() and len(v) < 5):
            return value
        return ph.get("header", value)

    # -- bodies ---------------------------------------------------------------------------------------
    def body(self, msg: http.Message, phrases: tuple[str, ...], request: bool) -> None:
        raw = msg.raw_content
        ct = msg.headers.get("content-type", "")
        ce = msg.headers.get("content-encoding", "")
        if not raw:
            msg.headers.pop("content-encoding", None)
            return
        declared = _declared_kind(ct)
        if declared in ("binary", "asset", "multipart"):
            self._drop_body(msg, {"multipart": "binary"}.get(declared, declared))
            return
        try:
            data, note = decompress(raw, ce, self.max_body)
        except BodyError:
            self._drop_body(msg, "undecodable")
            return
        except Exception:  # noqa: BLE001 - a decoder bug must not leave raw bytes in a shared file
            self._drop_body(msg, "undecodable")
            return
        if len(data) >= self.max_body:
            self.notes["bodies cut"] += 1
        sniffed = _sniff_kind(data)
        kind = declared or sniffed
        if kind in ("text", "html") and sniffed == "json" and _parses(data.decode("utf-8", "replace")):
            kind = "json"  # an API that labels its JSON text/plain or text/html
        if kind == "binary":
            self._drop_body(msg, "binary")
            return
        text = to_text(data, ct)
        if kind == "json":
            out = self.json_text(text, phrases)
        elif kind == "html":
            out = self.html(text, phrases)
        elif kind == "form":
            out = self.form(text)
        else:
            out = self.code(text, phrases)
        msg.headers.pop("content-encoding", None)
        if ct:
            msg.headers["content-type"] = _utf8(ct)
        msg.set_content(out.encode("utf-8", "surrogatepass"))

    def _drop_body(self, msg: http.Message, kind: str) -> None:
        self.ph.removed[kind] += 1
        msg.headers.pop("content-encoding", None)
        msg.set_content(b"")

    def form(self, text: str) -> str:
        out = []
        for k, v in parse_qsl(text, keep_blank_values=True):
            nv = self.query_value(k, v)
            out.append(quote(self.json_key(k), safe="[]") + "=" + quote(nv, safe=""))
        return "&".join(out)

    # -- HTML -----------------------------------------------------------------------------------------
    def html(self, text: str, phrases: tuple[str, ...]) -> str:
        doc = LexborHTMLParser(text)
        kept = self.region_nodes(doc, phrases)
        nodes = list(doc.root.traverse(include_text=True)) if doc.root is not None else []
        drop = []
        for node in nodes:
            tag = node.tag
            if tag == "-comment":
                self.ph.removed["comment"] += 1
                drop.append(node)
            elif tag == "-text":
                self._html_text(node, node.mem_id in kept, phrases)
            elif tag == "template":
                self.ph.removed["template"] += 1  # inert markup, never shown as is; its content is not walked
                drop.append(node)
            else:
                self._html_attrs(node, node.mem_id in kept, phrases)
        for node in drop:  # after the walk: removing a node while walking would cut the walk short
            node.decompose()
        return doc.html or ""

    def region_nodes(self, doc: LexborHTMLParser, phrases: tuple[str, ...]) -> set[int]:
        """mem_ids of the nodes in the settings regions: kept as they are (shape patterns still apply).

        A setting's region: the element holding its label, widened to the nearest ancestor that also holds
        the control (while that stays a setting row, not a page section), plus a control the label names from
        elsewhere. A notice's region: the dialog, banner or alert that holds the phrase."""
        if doc.root is None or not phrases:
            return set()
        notice = set(self._notice_phrases)
        roots: dict[int, LexborNode] = {}
        anchors = [(p, max(p.split(), key=len)) for p in phrases]
        seen: set[tuple[int, str]] = set()  # (parent, phrase) already looked at: siblings share their ancestors
        for node in doc.root.traverse(include_text=True):
            if node.tag == "-text":
                parent = node.parent
                if parent is None or parent.tag in ("script", "style", "noscript", "textarea", "title"):
                    continue
                low = (node.text_content or "").lower()
                for phrase, anchor in anchors:
                    if anchor not in low or (parent.mem_id, phrase) in seen:
                        continue
                    seen.add((parent.mem_id, phrase))
                    el = _smallest_holding(parent, phrase)
                    if el is None or el.mem_id in roots:
                        continue
                    if phrase in notice:
                        root = _notice_container(el)
                        roots[root.mem_id] = root
                    else:
                        root = _with_control(el)
                        roots[root.mem_id] = root
                        for c in _controls_named_by(doc, el):
                            roots[c.mem_id] = c
        labels = [p for p in phrases if p not in notice]
        if labels:  # a control named by an attribute: Google's "Turn off your Keep Activity setting" button
            for node in doc.css("[aria-label], [title], [alt], [placeholder], [value]"):
                attrs = node.attributes
                named = " ".join(v for a in _NAMING_ATTRS if (v := attrs.get(a)))
                if named and any(p in norm(named) for p in labels):
                    parent = node.parent
                    row = parent is not None and parent.tag not in ("html", "body", "main", "form") \
                        and _text_len(parent) <= ROW_TEXT
                    root = parent if row else node
                    roots[root.mem_id] = root
        kept: set[int] = set()
        for root in roots.values():
            for n in root.traverse(include_text=True):
                kept.add(n.mem_id)
        return kept

    def _html_text(self, node: LexborNode, in_region: bool, phrases: tuple[str, ...]) -> None:
        text = node.text_content or ""
        if not text.strip():
            return
        parent = node.parent
        ptag = parent.tag if parent is not None else ""
        if ptag == "script":
            stype = (parent.attributes.get("type") or "").lower()
            new = self.json_text(text, phrases) if "json" in stype else self.code(text, phrases)
        elif ptag == "style":
            new = self.code(text, phrases)
        elif in_region:
            new = self.patterns(text)
        elif text.lstrip()[:1] in "{[" and _parses(text):
            new = self.json_text(text, phrases)  # API payloads embedded in markup (<code>, hidden divs)
        elif _protected(text, phrases):
            new = self.patterns(text)
        else:
            core = text.strip()
            if any(c.isalpha() for c in core):
                lead = text[:len(text) - len(text.lstrip())]
                trail = text[len(text.rstrip()):]
                new = lead + self.ph.get("text", core, hunt=False) + trail
            else:
                new = self.patterns(text)
        if new != text:
            node.replace_with(new)

    def _html_attrs(self, node: LexborNode, in_region: bool, phrases: tuple[str, ...]) -> None:
        attrs = node.attributes
        if not attrs:
            return
        field_name = attrs.get("name") or attrs.get("property") or attrs.get("itemprop")
        for name, value in list(attrs.items()):
            if value is None or value == "":
                continue
            low = name.lower()
            new = self._attr(node.tag, low, value, field_name, in_region, phrases)
            if new != value:
                node.attrs[name] = new

    def _attr(self, tag: str, low: str, value: str, field_name: str | None, in_region: bool,
              phrases: tuple[str, ...]) -> str:
        if low in _URL_ATTRS:
            return self.url(value.strip()) if _looks_url(value.strip()) or value.startswith("/") else self.patterns(value)
        if low == "srcset":
            return ", ".join(self.url(p.strip().split(" ")[0]) + (" " + " ".join(p.strip().split(" ")[1:])
                             if len(p.strip().split(" ")) > 1 else "") for p in value.split(",") if p.strip())
        if low == "nonce":
            return self.ph.get("token", value)
        if low in ("value", "content") and field_name and tag in ("input", "meta", "textarea", "option", "param"):
            kind = P.classify_key(field_name)
            if in_region and kind not in P.SECRET_KINDS:
                return self.patterns(value)
            return self.value(value, field_name, phrases)
        if low in _TEXT_ATTRS or low in ("value", "content"):
            if in_region or _protected(value, phrases):
                return self.patterns(value)
            return self.value(value, None, phrases)
        if low.startswith("data-"):
            if value.lstrip()[:1] in "{[" and _parses(value):
                return self.json_text(value, phrases)
            return self.value(value, low[5:], phrases) if P.classify_key(low[5:]) else self.patterns(value)
        if value.lstrip()[:1] in "{[" and _parses(value):
            return self.json_text(value, phrases)  # component props: <x-app props='{"authToken": ...}'>
        # structure (id, for, class, aria-labelledby, role, checked, style...): ids inside keep their links,
        # because the same value always gets the same placeholder
        return self.patterns(value)

    # -- pass 2: the whole recording --------------------------------------------------------------
    def finish(self, flows: list[http.HTTPFlow]) -> list[http.HTTPFlow]:
        """Hunt every value removed anywhere in the recording, in every flow (in place); returns `flows`."""
        hunt, owner = self.hunter()
        if not hunt:
            return flows

        def repl(value: str) -> str:
            kind, ph = owner[value]
            self.ph.removed[kind] += 1
            return ph

        def sub(text: str) -> str:
            return hunt.sub(text, repl)

        for f in flows:
            for msg in (f.request, f.response):
                if msg is None:
                    continue
                if msg is f.request:
                    new_path = sub(msg.path)
                    if new_path != msg.path:
                        msg.path = new_path
                    new_host = sub(msg.host)  # a blog's own subdomain
                    if new_host != msg.host:
                        msg.host = new_host
                        for conn in (f.client_conn, f.server_conn):
                            if conn.sni:
                                conn.sni = sub(conn.sni)
                        if f.server_conn.address:
                            f.server_conn.address = (sub(f.server_conn.address[0]),
                                                     f.server_conn.address[1])
                fields = []
                changed = False
                for name, value in msg.headers.items(multi=True):
                    nv = sub(value)
                    changed |= nv != value
                    fields.append((name.encode("utf-8", "surrogateescape"), nv.encode("utf-8", "surrogateescape")))
                if changed:
                    msg.headers = http.Headers(fields)
                raw = msg.raw_content
                if raw:
                    text = raw.decode("utf-8", "surrogateescape")
                    new = sub(text)
                    if new != text:
                        msg.set_content(new.encode("utf-8", "surrogateescape"))
        return flows

    def hunter(self) -> tuple[P.LiteralHunter, dict[str, tuple[str, str]]]:
        """A hunter for every removed value in every way it may be written, and what replaces each."""
        owner: dict[str, tuple[str, str]] = {}
        for value, (kind, ph) in self.ph.literals.items():
            for v in _variants(value):
                if len(v) >= 3:
                    owner.setdefault(v, (kind, ph))
        return P.LiteralHunter(owner), owner


# -- helpers ---------------------------------------------------------------------------------------

_PLAIN_WORD = re.compile(r"[A-Za-z_-]{0,40}")
_NAMING_ATTRS = ("aria-label", "title", "alt", "placeholder", "value")
_URL_ATTRS = {"href", "src", "action", "formaction", "poster", "cite", "background", "data-src", "data-href",
              "ping", "manifest", "xlink:href", "longdesc", "usemap", "codebase", "icon"}
_TEXT_ATTRS = {"aria-label", "title", "alt", "placeholder", "label", "aria-description", "aria-valuetext",
               "aria-roledescription", "summary", "srcdoc", "aria-placeholder", "download"}
_ASSIGNEE = re.compile(r"\s{0,40}(?:(?:var|let|const)\s{1,10})?[\w$.\[\]'\"]{1,120}\s{0,10}")
_XSSI = re.compile(r"\A(?:\)\]\}'|for\s*\(;;\);|while\s*\(1\);)\s*")


def _assignment(text: str) -> tuple[str, object, str] | None:
    """`window.__STATE__ = {...};` -> (head, the parsed JSON, tail), or None. By hand, not by one regex: a
    pattern for "anything, then the last bracket" backtracks over the whole script from every start."""
    eq = text.find("=", 0, 200)
    if eq < 0 or not _ASSIGNEE.fullmatch(text, 0, eq) or text[eq + 1:eq + 2] == "=":
        return None
    body = text[eq + 1:]
    start = len(body) - len(body.lstrip())
    stripped = body.rstrip()
    end = len(stripped) - 1 if stripped.endswith(";") else len(stripped)
    core = body[start:end].rstrip()
    if core[:1] not in ("{", "[") or core[-1:] not in ("}", "]"):
        return None
    try:
        doc = json.loads(core)
    except (ValueError, RecursionError):
        return None
    return text[:eq + 1] + body[:start], doc, body[start + len(core):]


def _split_xssi(text: str) -> tuple[str, str]:
    m = _XSSI.match(text.lstrip("\ufeff"))
    if m:
        t = text.lstrip("\ufeff")
        return t[:m.end()], t[m.end():]
    return "", text.lstrip("\ufeff")


def _parses(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except (ValueError, RecursionError):
        return False


def _looks_url(s: str) -> bool:
    return s.startswith(("http://", "https://", "//")) and " " not in s


def _credential_like(s: str) -> bool:
    return any(c.isdigit() or c in "=+/._~-" for c in s) and not s.isalpha()


def _enum_identifier(s: str) -> bool:
    """snake_case or UPPER_CASE identifiers: a setting's id, not a person's."""
    return re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*", s) is not None \
        and not P.DIGITS.search(s)


def _protected(s: str, phrases: tuple[str, ...]) -> bool:
    if not phrases:
        return False
    n = norm(s)
    return any(p in n for p in phrases)


def _reescape(value: str, form: int) -> str:
    if form == 0:
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if form == 3:
        return htmllib.escape(value, quote=True)
    if form == 1:
        return value.replace("\\", "\\\\").replace("'", "\\'")
    return value.replace("\\", "").replace('"', "")


def _declared_kind(ct: str) -> str | None:
    c = ct.split(";")[0].strip().lower()
    if not c:
        return None
    if c.startswith("multipart/"):
        return "multipart"
    if c == "application/x-www-form-urlencoded":
        return "form"
    if "json" in c:
        return "json"
    if "html" in c or c.endswith("/xml") or c.endswith("+xml") and not c.startswith("image/"):
        return "html"
    if "javascript" in c or "ecmascript" in c or c == "text/css":
        return "asset"
    if c.startswith(("image/", "audio/", "video/", "font/")) or c in (
            "application/pdf", "application/zip", "application/wasm", "application/x-protobuf",
            "application/protobuf", "application/vnd.google.protobuf", "application/grpc", "application/gzip"):
        return "binary"
    if c.startswith("text/"):
        return "text"
    return None  # octet-stream and friends: sniffed


def _sniff_kind(data: bytes) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        return "json"
    if head[:1] == b"<":
        return "html"
    sample = data[:4096]
    if b"\x00" in sample:
        return "binary"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:
            return "binary"
    return "text"


def _utf8(ct: str) -> str:
    if re.search(r"charset\s*=", ct, re.I):
        return re.sub(r"charset\s*=\s*[\"']?[A-Za-z0-9_.:-]+[\"']?", "charset=utf-8", ct, flags=re.I)
    main = ct.split(";")[0].strip().lower()
    if main.startswith("text/") or "json" in main or "html" in main or "xml" in main:
        return ct + "; charset=utf-8"
    return ct


def _text_len(node: LexborNode) -> int:
    return len(node.text(deep=True, separator=" ", strip=True))


def _smallest_holding(el: LexborNode | None, phrase: str, depth: int = 10) -> LexborNode | None:
    """The nearest element (from `el` up) whose text contains `phrase`, if it is not a whole page section."""
    n = el
    while n is not None and depth > 0:
        if n.tag in ("html", "body", "head", "title"):
            return None
        t = n.text(deep=True, separator=" ", strip=True)
        if len(t) > REGION_TEXT * 2:
            return None
        if phrase in norm(t):
            return n
        n = n.parent
        depth -= 1
    return None


_CONTROLS = ("input, select, textarea, button, [role=switch], [role=checkbox], [role=radio], [role=combobox], "
             "[role=listbox], [role=menuitemcheckbox], [role=menuitemradio], [aria-checked], [aria-pressed]")


def _with_control(el: LexborNode, depth: int = 6) -> LexborNode:
    """From a label element up to the nearest ancestor that also holds a control: the setting's region."""
    n = el
    limit = max(ROW_TEXT, 2 * _text_len(el))
    while n is not None and depth > 0:
        if n.tag in ("html", "body", "main", "form") or _text_len(n) > limit:
            break
        if n.css_first(_CONTROLS) is not None or n.tag in ("input", "select", "button", "textarea"):
            return n
        n = n.parent
        depth -= 1
    return el


_NOTICE_HINT = re.compile(r"banner|notice|notif|modal|dialog|toast|alert|announce|callout|interstitial|snackbar|"
                          r"consent|policy|terms|upsell|message|popup|overlay|sheet|prompt", re.I)
_NOTICE_ROLES = {"dialog", "alertdialog", "alert", "status", "banner", "region", "note", "complementary"}


def _notice_container(el: LexborNode, depth: int = 12) -> LexborNode:
    """The dialog, banner or alert around a notice's words (what the notice detector reads), else the words."""
    n = el
    while n is not None and depth > 0:
        if n.tag in ("html", "body"):
            break
        a = n.attributes
        if n.tag in ("dialog", "aside", "header") or (a.get("role") or "") in _NOTICE_ROLES \
                or "aria-modal" in a or "aria-live" in a \
                or _NOTICE_HINT.search((a.get("class") or "") + " " + (a.get("id") or "")):
            return n if _text_len(n) <= NOTICE_TEXT else el
        n = n.parent
        depth -= 1
    return el


def _controls_named_by(doc: LexborHTMLParser, el: LexborNode) -> list[LexborNode]:
    """Controls elsewhere on the page that a label element names (label[for], aria-labelledby)."""
    out = []
    ids = []
    for n in [el, *el.css("[id], label[for]")]:
        a = n.attributes
        if n.tag == "label" and a.get("for"):
            ids.append(("id", a["for"]))
        if a.get("id"):
            ids.append(("ref", a["id"]))
    for how, ident in ids[:16]:
        if not re.fullmatch(r"[\w:.-]{1,100}", ident):
            continue
        sel = f'[id="{ident}"]' if how == "id" else f'[aria-labelledby~="{ident}"]'
        for c in doc.css(sel):
            parent = c.parent
            row = parent is not None and parent.tag not in ("html", "body", "main", "form") \
                and _text_len(parent) <= ROW_TEXT
            out.append(parent if row else c)
    return out
