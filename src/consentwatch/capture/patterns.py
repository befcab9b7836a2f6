"""What secrets and personal data look like: key names, value shapes, token formats. Pure, no I/O.

The scrubber and the final verification pass share these, so anything the verifier would call a leak is
something the scrubber replaces. Key names are judged by their words (`accountId`, `account_id` and
`ACCOUNT-ID` all say "account" + "id"), values by their shape.
"""

from __future__ import annotations

import functools
import re

# -- placeholders ----------------------------------------------------------------------------------
# Every placeholder is recognisable as one (a reviewer greps for "scrubbed"), and keeps the shape of what
# it replaces where a parser might care: an e-mail stays an e-mail, a number a number, a UUID a UUID.
PLACEHOLDER_DOMAIN = "scrubbed.invalid"
NUMERIC_BASE = 990_000_000  # numeric ids become 990000001, 990000002, ...
PLACEHOLDER = re.compile(r"scrubbed-[a-z]+(?:-[a-z]+)*-\d+")
_PLACEHOLDER_WHOLE = re.compile(
    r"(?:scrubbed-[a-z]+(?:-[a-z]+)*-\d+|[a-z]+-\d+@scrubbed\.invalid|99\d{7}|00000000-0000-4000-8000-\d{12})")


def is_placeholder(value: str) -> bool:
    return _PLACEHOLDER_WHOLE.fullmatch(value) is not None


# placeholders inside a longer text, to step around (a name "csrf" must not eat "scrubbed-csrf-1")
PLACEHOLDER_IN_TEXT = r"scrubbed-[a-z]+(?:-[a-z]+)*-\d+|[a-z]+-\d+@scrubbed\.invalid"
_PLACEHOLDER_SPAN = re.compile(PLACEHOLDER_IN_TEXT)


def outside_placeholders(text: str, fn) -> str:
    """fn applied to the parts of `text` between placeholders; the placeholders as they are."""
    if "scrubbed" not in text:
        return fn(text)
    out, pos = [], 0
    for m in _PLACEHOLDER_SPAN.finditer(text):
        out.append(fn(text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(fn(text[pos:]))
    return "".join(out)


class LiteralHunter:
    """Finds any of many literal values in a text, as whole words, never inside a placeholder.

    Indexed by each value's first run of letters and digits: one pass over the text's words, a dict lookup per
    word. (One regex alternation of thousands of values takes minutes to compile.)"""

    MAX_LEN = 256  # longer values are replaced where they were found; they are not hunted elsewhere

    def __init__(self, values):
        self.by_head: dict[str, list[tuple[str, int]]] = {}
        for v in sorted({v for v in values if v and 3 <= len(v) <= self.MAX_LEN}, key=len, reverse=True):
            m = _WORD.search(v)
            if m is not None:
                self.by_head.setdefault(m.group(0), []).append((v, m.start()))

    def __bool__(self) -> bool:
        return bool(self.by_head)

    def finditer(self, text: str):
        """(start, end, value) of each match, left to right, longest value first, not overlapping."""
        if not self.by_head:
            return
        guarded = [(m.start(), m.end()) for m in _PLACEHOLDER_SPAN.finditer(text)] if "scrubbed" in text else []
        g = 0
        pos = 0
        for m in _WORD.finditer(text):
            cands = self.by_head.get(m.group(0))
            if cands is None or m.start() < pos:
                continue
            while g < len(guarded) and guarded[g][1] <= m.start():
                g += 1
            if g < len(guarded) and guarded[g][0] <= m.start():
                continue  # inside a placeholder
            for value, offset in cands:
                start = m.start() - offset
                end = start + len(value)
                if start < pos or not text.startswith(value, start):
                    continue
                if (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
                    continue
                yield start, end, value
                pos = end
                break

    def sub(self, text: str, repl) -> str:
        out, last = [], 0
        for start, end, value in self.finditer(text):
            out.append(text[last:start])
            out.append(repl(value))
            last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)


_WORD = re.compile(r"[^\W_]+")


# -- value shapes ----------------------------------------------------------------------------------
EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}(?:@|%40)"
                   r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z_-])")
JWT = re.compile(r"(?<![\w-])eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
# credentials after an HTTP auth scheme, wherever they appear (headers, logs quoted in pages, scripts)
AUTH_SCHEME = re.compile(r"(?i)(?<![\w-])(bearer|basic|digest|token)(\s+)([A-Za-z0-9._~+/=-]{8,})")
API_KEYS = re.compile(
    r"(?<![\w-])(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[\w-]{20,}"
    r"|sk-(?:proj-|ant-[a-z0-9]+-)?[\w-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[\w-]{35}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----")
UUID = re.compile(r"(?<![0-9a-fA-F-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                  r"(?![0-9a-fA-F-])")
# a phone number: international (+ and 8-15 digits), or the North American 3-3-4 form
PHONE = re.compile(r"(?<![\w+])(?:\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}"
                   r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?![\w])")
# long runs of digits: user, account, post ids (Snowflake ids are 19 digits); five or more
DIGITS = re.compile(r"(?<!\d)\d{5,}(?!\d)")
TOKEN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9_+=-])[A-Za-z0-9_+=-]{20,}(?![A-Za-z0-9_+=-])")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_+/=.~-]{20,4096}")


def is_token(s: str) -> bool:
    """A random-looking credential or id: upper, lower case and several digits mixed, or a long hex run."""
    if len(s) < 20 or _TOKEN_CHARS.fullmatch(s) is None or is_placeholder(s):
        return False
    digits = sum(c.isdigit() for c in s)
    if _HEX.fullmatch(s):
        return digits >= 4 and digits < len(s)
    has_upper = any(c.isupper() for c in s)
    has_lower = any(c.islower() for c in s)
    return has_upper and has_lower and digits >= 3


def tokens(text: str):
    """Positions of token-like runs (for replacing them in free text)."""
    for m in TOKEN_CANDIDATE.finditer(text):
        if is_token(m.group(0)):
            yield m


def phone_digits_ok(s: str) -> bool:
    n = sum(c.isdigit() for c in s)
    return 8 <= n <= 15


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
# machine words: snake_case, kebab-case, dotted, lowerCamel, UPPER_CASE (enum values, setting keys, locales)
_MACHINE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,47}(?:[_.:/-][A-Za-z0-9]{1,47}){0,8}")
_LONG_DIGITS = re.compile(r"\d{4,}")
# one part of a machine word: lower case, UPPER case, lowerCamel or PascalCase (digits only at a hump's end)
_PART = re.compile(r"[a-z0-9]+|[A-Z0-9]+|[a-z]+[0-9]*(?:[A-Z][a-z]+[0-9]*)*|(?:[A-Z][a-z]+[0-9]*)+")
STATE_WORDS = frozenset({
    "true", "false", "null", "none", "on", "off", "yes", "no", "enabled", "disabled", "enable", "disable",
    "allowed", "denied", "allow", "deny", "permitted", "forbidden", "granted", "revoked", "opted_in", "opted_out",
    "public", "private", "default", "unknown", "unset", "active", "inactive", "pending", "checked", "unchecked",
})


def is_iso_date(s: str) -> bool:
    return _ISO_DATE.fullmatch(s) is not None


def is_snake_word(s: str) -> bool:
    """training_allowed: lower-case letters joined by underscores (a setting's name, not a secret)."""
    parts = s.split("_")
    return len(parts) > 1 and all(p.isascii() and p.isalpha() and p.islower() for p in parts)


def is_machine_word(s: str) -> bool:
    """An identifier a program wrote (an enum value, a setting key, a locale), not something a person typed.

    Lower case, UPPER case, lowerCamel, or words joined by _ . : / -. A capitalised single word ("Jane")
    is not one: names look like that. No runs of four or more digits (ids) and no token shapes."""
    if not s or len(s) > 64 or _MACHINE.fullmatch(s) is None or _LONG_DIGITS.search(s) or is_token(s):
        return False
    if s.lower() in STATE_WORDS:
        return True
    parts = re.split(r"[_.:/-]", s)
    if not all(_PART.fullmatch(p) for p in parts):
        return False  # "AKlEn5h" is a token's piece, not a word
    return len(parts) > 1 or s.islower() or s.isupper() or s[0].islower()


# -- key names -------------------------------------------------------------------------------------
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


def key_words(key: str) -> list[str]:
    return [w for w in _SPLIT.split(_CAMEL.sub(r"\1_\2", key).lower()) if w]


_SECRET_WORDS = {"token", "tokens", "csrf", "xsrf", "csrftoken", "xsrftoken", "secret", "secrets", "password",
                 "passwd", "pwd", "passcode", "session", "sessionid", "sessionkey", "cookie", "cookies", "jwt",
                 "bearer", "signature", "nonce", "otp", "authenticity", "credential", "credentials", "apikey",
                 "authorization", "auth", "authtoken", "accesstoken", "refreshtoken", "sid"}
_KEY_QUALIFIERS = {"api", "access", "private", "secret", "client", "session", "auth", "encryption", "signing"}
_CSRF_WORDS = {"csrf", "xsrf", "csrftoken", "xsrftoken", "authenticity"}
# platforms' own names for their CSRF tokens (Quora, Facebook, Rails)
_CSRF_NAMES = {"formkey", "fbdtsg", "dtsg", "lsd", "jazoest", "authenticitytoken", "requestverificationtoken"}
_COOKIE_WORDS = {"cookie", "cookies", "session", "sessionid", "sessionkey", "sid"}
_ID_WORDS = {"id", "ids", "uid", "uuid", "guid", "urn", "urns", "oid", "userid", "accountid", "memberid",
             "profileid", "orgid", "ownerid", "identifier", "fbid", "objectid", "entityurn"}
_EMAIL_WORDS = {"email", "emails", "mail", "emailaddress"}
_PHONE_WORDS = {"phone", "phones", "mobile", "telephone", "tel", "msisdn", "phonenumber"}
_NAME_SUFFIXES = ("firstname", "lastname", "givenname", "familyname", "middlename", "fullname", "displayname",
                  "username", "screenname", "vanityname", "nickname", "realname", "legalname", "profilename",
                  "blogname", "authorname", "ownername", "sendername", "recipientname", "contactname",
                  "accountname", "publicidentifier", "handle", "login", "maidenname", "shortname", "fullnamelocalized")
_AMBIGUOUS_NAME = {"name", "author", "owner", "sender", "recipient", "user", "member", "viewer"}
_PERSONAL = {"address", "street", "city", "zip", "zipcode", "postalcode", "postcode", "birthday", "birthdate",
             "dateofbirth", "dob", "ip", "ipaddress", "latitude", "longitude", "lat", "lng", "lon", "geo",
             "location", "bio", "headline", "about", "avatar", "picture", "photo", "timezone", "tz", "gender",
             "pronouns", "age"}
# keys whose values are enum-like even when capitalised ("Enabled", "User" as a GraphQL __typename)
ENUM_KEYS = {"type", "typename", "kind", "status", "state", "mode", "value", "level", "role", "visibility",
             "permission", "category", "locale", "lang", "language", "plan", "tier", "variant", "format", "action",
             "reason", "feature", "setting", "method", "scope", "country", "region", "code", "operationname",
             "theme", "choice", "option", "selected", "default"}

SECRET, CSRF, COOKIE, ID, EMAIL_KIND, PHONE_KIND, NAME, PERSONAL, AMBIGUOUS_NAME = (
    "token", "csrf", "cookie", "id", "email", "phone", "name", "personal", "name?")


@functools.lru_cache(maxsize=4096)
def classify_key(key: str) -> str | None:
    """What a field named `key` holds, when its name says: a kind above, or None (judge the value)."""
    if is_placeholder(key):
        return None  # a key that was an id or a token itself says nothing about its value
    ws = key_words(key)
    if not ws:
        return None
    joined = "".join(ws)
    wset = set(ws)
    if wset & _CSRF_WORDS or "csrf" in joined or "xsrf" in joined or joined in _CSRF_NAMES:
        return CSRF
    if wset & _COOKIE_WORDS or "session" in joined:
        return COOKIE
    if wset & _SECRET_WORDS or joined in _SECRET_WORDS or ("key" in wset and wset & _KEY_QUALIFIERS) \
            or any(w in joined for w in ("token", "secret", "password", "passwd", "credential")):
        return SECRET
    if wset & _EMAIL_WORDS or joined in _EMAIL_WORDS:
        return EMAIL_KIND
    if wset & _PHONE_WORDS or joined in _PHONE_WORDS:
        return PHONE_KIND
    if joined.endswith(_NAME_SUFFIXES):
        return NAME
    if ws[-1] in _ID_WORDS or joined in _ID_WORDS or "urn" in wset:
        return ID
    if joined in _PERSONAL or wset & _PERSONAL:
        return PERSONAL
    if joined in _AMBIGUOUS_NAME:
        return AMBIGUOUS_NAME
    return None


def is_enum_key(key: str | None) -> bool:
    return key is not None and ("".join(key_words(key)) in ENUM_KEYS or (key_words(key) or [""])[-1] in ENUM_KEYS)


SECRET_KINDS = (SECRET, CSRF, COOKIE)

# -- "key": "value" pairs inside text that is not parsed (scripts, broken JSON, JSON inside a string) -----
_KEY = r"[A-Za-z_$][\w$.-]{0,63}"
KV_FORMS = (
    # "key": "value"  /  key: "value"  /  key = "value"  (JSON, JavaScript)
    re.compile(r"(?<![\w$])(?P<q>[\"']?)(?P<key>" + _KEY + r")(?P=q)\s*[:=]\s*\"(?P<val>(?:[^\"\\\r\n]|\\.){0,8192})\""),
    # 'key': 'value' / key: 'value'
    re.compile(r"(?<![\w$])(?P<q>[\"']?)(?P<key>" + _KEY + r")(?P=q)\s*[:=]\s*'(?P<val>(?:[^'\\\r\n]|\\.){0,8192})'"),
    # \"key\":\"value\"  (JSON inside a JSON string)
    re.compile(r"\\\"(?P<key>" + _KEY + r")\\\"\s*:\s*\\\"(?P<val>[^\"\\]{0,8192})\\\""),
    # &quot;key&quot;:&quot;value&quot;  (JSON in an HTML attribute or escaped in markup)
    re.compile(r"&(?:quot|#34|#x22);(?P<key>" + _KEY + r")&(?:quot|#34|#x22);\s*:\s*&(?:quot|#34|#x22);"
               r"(?P<val>[^&\"<]{0,8192})&(?:quot|#34|#x22);"),
)
