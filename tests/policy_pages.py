"""Versions of platforms' policy pages for the policy_changed tests (issue 19): built here, not recorded.

Each page is a plausible legal document: an effective date, an address, cookie and retention wording, and
(depending on the version) the AI clauses under test. The LinkedIn and X clauses are the platforms' own
public words (see scripts/policy_documents.py for their sources); the Quora clause is made up.
"""

from __future__ import annotations

LINKEDIN_URL = "https://www.linkedin.com/legal/privacy-policy"
X_URL = "https://x.com/en/privacy"
QUORA_URL = "https://www.quora.com/about/privacy"
TUMBLR_URL = "https://www.tumblr.com/privacy/en"

LINKEDIN_OLD = ("We use the data that we have about you to provide and personalize our Services, including with the "
                "help of automated systems and inferences we make, so that our Services (including ads) can be more "
                "relevant and useful to you and others.")
LINKEDIN_AI = ("We may use your personal data to improve, develop, and provide products and Services, develop and "
               "train artificial intelligence (AI) models, develop, provide, and personalize our Services, and gain "
               "insights with the help of AI, automated systems, and inferences, so that our Services can be more "
               "relevant and useful to you and others.")
LINKEDIN_AI_2 = ("You can review LinkedIn\u2019s Responsible AI principles here and learn more about our approach to "
                 "generative AI here.")
X_2023 = ("We may use the information we collect and publicly available information to help train our machine "
          "learning or artificial intelligence models for the purposes outlined in this policy.")
X_2024 = ("If you do not opt out, in some instances the recipients of the information may use it for their own "
          "independent purposes in addition to those stated in X\u2019s Privacy Policy, including, for example, to "
          "train their artificial intelligence models, whether generative or otherwise.")
X_2024_REWORDED = ("If you do not opt out, in some instances the recipients of the information may use it for their own "
                   "independent purposes in addition to those stated in X\u2019s Privacy Policy, including, for "
                   "example, to train and fine-tune their large language models and other artificial intelligence "
                   "models.")
QUORA_AI = ("We may license content you post publicly to third parties who use it to train large language models, "
            "unless you turn this off in your privacy settings.")

COOKIES = ("We use cookies and similar technologies to recognise you and your devices, to remember your "
           "preferences and to measure how our pages are used. You can control cookies through your browser "
           "settings and our Cookie Policy.")
COOKIES_NEW = ("We and our partners use cookies, pixels and similar technologies to recognise you, to keep you signed "
               "in, to remember your choices and to understand how our pages are used. You can manage them at any "
               "time in the cookie settings linked at the bottom of every page.")
FILLER = [
    "We collect the information you give us when you create an account, such as your name, email address, phone "
    "number and password, and the information you add to your profile.",
    "We keep your personal data for as long as your account is open or as needed to provide you the Services, and "
    "we delete it within a reasonable period after you close your account, unless the law requires us to keep it.",
    "You can access, correct, download or delete your personal data at any time from your account settings, and you "
    "can contact our Data Protection Officer with any question about this policy.",
    "We share your data with service providers who help us operate the Services, under contracts that require them "
    "to protect it, and with law enforcement when the law requires us to.",
    "We use industry-standard security measures, such as encryption in transit, to protect your data, but no "
    "method of transmission over the Internet is completely secure.",
    "If we make material changes to this policy, we will notify you through the Services or by other means, so that "
    "you can review the changes before they take effect.",
]
ADDRESS = "Contact: Privacy Team, 1000 W Maude Avenue, Sunnyvale, CA 94085, USA."
ADDRESS_NEW = "Contact: Privacy Team, 222 2nd Street, San Francisco, CA 94105, USA."


def page(title: str, effective: str, use_sentences: list[str], cookies: str = COOKIES, address: str = ADDRESS,
         lang: str = "en", layout: str = "plain") -> bytes:
    """A policy page. `layout` "plain" writes sections and paragraphs; "nested" writes the same words in another
    structure (divs, spans, inline markup, a numbered list, extra whitespace, typographic quotes), as a redesign
    of the site would."""
    use = " ".join(use_sentences)
    if layout == "plain":
        body = (f"<h1>{title}</h1><p><em>Effective {effective}</em></p>"
                f"<section><h2>1. Data We Collect</h2><p>{FILLER[0]}</p><p>{FILLER[1]}</p></section>"
                f"<section><h2>2. How We Use Your Data</h2><p>How we use your personal data will depend on which "
                f"Services you use, how you use those Services and the choices you make in your settings. {use}</p>"
                f"<p>{FILLER[3]}</p></section>"
                f"<section><h2>3. Cookies</h2><p>{cookies}</p></section>"
                f"<section><h2>4. Your Choices</h2><ul><li>{FILLER[2]}</li><li>{FILLER[4]}</li></ul>"
                f"<p>{FILLER[5]}</p><address>{address}</address></section>")
    else:
        spans = "".join(f'<span class="s">{w} </span>' for w in
                        ("How we use your personal data will depend on which Services you use,",
                         "how you use those Services and the choices you make in your", '<a href="/psettings">settings</a>.'))
        use_nested = "".join(f'<span data-x="1">{s.replace(chr(39), chr(8217))}</span>\n   ' for s in use_sentences)
        body = (f'<div class="hero"><div class="t"><h1 class="title">{title}</h1></div>'
                f'<div class="date"><span>Effective</span> <b>{effective}</b></div></div>'
                f'<div class="chapter" id="data"><div class="h">1. Data We Collect</div>'
                f'<div class="para"><span>{FILLER[0]}</span></div><div class="para">{FILLER[1]}</div></div>'
                f'<div class="chapter" id="use"><h3>2. How We Use Your Data</h3>'
                f'<div class="para">\n  {spans}\n  {use_nested}</div><div class="para">{FILLER[3]}</div></div>'
                f'<div class="chapter"><h3>3. Cookies</h3><div class="para">{cookies}</div></div>'
                f'<div class="chapter"><h3>4. Your Choices</h3><ol><li><p>{FILLER[2]}</p></li><li><p>{FILLER[4]}</p>'
                f'</li></ol><div class="para">{FILLER[5]}</div><p>{address}</p></div>')
    cookie_banner = ('<div role="dialog" aria-label="Cookies"><p>We and our partners use cookies, and AI-powered '
                     'analytics, to improve this site.</p><button>Accept</button></div>')
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
            f'<script>window.__cfg={{"ai":"train models"}}</script></head><body>'
            f'<header><nav><a href="/">Home</a> <a href="/ai">Our AI features</a></nav></header>'
            f'<main>{body}</main>{cookie_banner}'
            f'<footer><a href="/ai">Learn how we use AI</a> \u00a9 2026</footer></body></html>').encode()


# The versions the tests use, by name: (url, page)
def linkedin(version: str, **kw) -> bytes:
    if version == "2020":
        return page("Privacy Policy", "August 11, 2020", [LINKEDIN_OLD], **kw)
    return page("Privacy Policy", "September 18, 2024", [LINKEDIN_AI, LINKEDIN_AI_2], **kw)


def x(version: str, **kw) -> bytes:
    if version == "2023":
        return page("X Privacy Policy", "September 29, 2023", [X_2023], **kw)
    if version == "2024":
        return page("X Privacy Policy", "November 15, 2024", [X_2023, X_2024], **kw)
    return page("X Privacy Policy", "January 15, 2026", [X_2023, X_2024_REWORDED], **kw)


def quora(version: str, **kw) -> bytes:
    return page("Privacy Policy", "May 2, 2025" if version == "v1" else "July 1, 2025",
                [QUORA_AI] if version == "v1" else [], **kw)


def shell() -> bytes:
    """What a single-page app's server sends: no text, the document arrives later (or never, logged out)."""
    return (b'<!doctype html><html lang="en"><head><title>Privacy</title></head><body><div id="root"></div>'
            b'<script src="/app.js"></script></body></html>')
