"""The report as one self-contained HTML page: inline CSS and SVG, no script, no external asset.

Every stored string passes through `_t` (clean + escape) on its way into the page: platform names and
rule texts can come from an imported rule pack, so they are data, never markup. Links are made only
from http(s) URLs; a Content-Security-Policy forbids scripts and every fetch anyway.
"""

from __future__ import annotations

from html import escape

from .fmt import (
    STATUS_LABEL,
    clean,
    days_phrase,
    fmt_date,
    fmt_datetime,
    fmt_month,
    headline,
    host_of,
    iso_date,
    notice_when,
    page_only,
    plural,
    safe_url,
    seen_phrase,
    seen_by_text,
    setting_sentence,
    short_url,
)
from .model import POLICY_CHANGE_COMING, POLICY_IN_EFFECT, RECENT_CHANGES, TRAINING_OFF, TRAINING_ON
from .svg import timeline_svg

FULL_HISTORY_UP_TO = 12  # more changes than this: the last RECENT_CHANGES in full, the rest per month

# In a <meta> (the page is also a file on disk); frame-ancestors only works as a header, which the API can add.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
:root{--ink:#22252b;--muted:#5d6470;--bg:#f5f3ee;--card:#fff;--line:#e2ddd3;
--on:#a3461f;--on-bg:#fbece4;--off:#2b6f4d;--off-bg:#e4f2ea;--notice:#434aa8;--notice-bg:#eceefb;
--grey:#5d6470;--grey-bg:#eeece7}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:880px;margin:0 auto;padding:36px 22px 56px}
h1{font-size:30px;line-height:1.2;margin:4px 0 6px;letter-spacing:-.01em}
h2{font-size:19px;margin:36px 0 12px}
h3{font-size:21px;margin:0}
h4{font-size:14px;margin:18px 0 6px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
p{margin:6px 0}
a{color:#2f4fa8}
code{font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--grey-bg);
padding:1px 5px;border-radius:4px}
.brand{font-size:13px;font-weight:700;letter-spacing:.12em;text-transform:uppercase;color:var(--muted);margin:0}
.asof{color:var(--muted);margin:0 0 14px}
.headline{font-size:19px;margin:10px 0 16px;max-width:46em}
.tally{display:flex;flex-wrap:wrap;gap:10px;list-style:none;padding:0;margin:0}
.tally li{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:8px 14px;
min-width:120px;font-size:14px;color:var(--muted)}
.tally b{display:block;font-size:24px;line-height:1.2;color:var(--ink)}
.tally .t-on b{color:var(--on)}.tally .t-off b{color:var(--off)}.tally .t-coming b{color:var(--notice)}
.box{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px}
.timeline{display:block;width:100%;height:auto}
.tl{overflow-x:auto}.tl .timeline{min-width:620px}
.platform{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--grey);
border-radius:12px;padding:20px 24px;margin:0 0 18px}
.platform.s-training_on{border-left-color:var(--on)}
.platform.s-training_off{border-left-color:var(--off)}
.platform.s-policy_change_coming,.platform.s-policy_in_effect{border-left-color:var(--notice)}
.phead{display:flex;flex-wrap:wrap;align-items:center;gap:8px 10px;margin-bottom:8px}
.phead h3{margin-right:6px}
.badge{display:inline-block;padding:3px 11px;border-radius:999px;font-size:13px;font-weight:650;
line-height:1.4;border:1px solid transparent}
.b-on{background:var(--on-bg);color:var(--on);border-color:#efc9b6}
.b-off{background:var(--off-bg);color:var(--off);border-color:#bfe0cc}
.b-notice{background:var(--notice-bg);color:var(--notice);border-color:#cfd3f4}
.b-grey{background:var(--grey-bg);color:var(--grey)}
.setting{margin-top:10px}
.setting+.setting{border-top:1px solid var(--line);padding-top:14px}
.rtitle{font-weight:600;margin:10px 0 0}
.summary{color:var(--muted);margin:2px 0 10px;max-width:46em}
.now{font-size:18px;margin:4px 0 8px}
.now span{font-weight:700}.now .st-on{color:var(--on)}.now .st-off{color:var(--off)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:8px 0 4px}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0}
.alert{color:var(--on)}
.notices ul{list-style:none;padding:0;margin:0}
.notices li{background:var(--notice-bg);border-radius:8px;padding:8px 12px;margin:6px 0}
.notices .when{font-weight:650;color:var(--notice)}
.notices .seen{color:var(--muted);font-size:14px}
.ptext ul{list-style:none;padding:0;margin:0}
.ptext li{background:var(--notice-bg);border-radius:8px;padding:8px 12px;margin:6px 0}
.ptext .when{font-weight:650;color:var(--notice)}.ptext .seen{color:var(--muted);font-size:14px}
.ptext q{quotes:none;display:block;font-size:15px;margin:4px 0;padding-left:10px;border-left:3px solid var(--line)}
.ptext ins{background:#dff0e3;text-decoration:none}.ptext del{background:#f8e1d8}
.ptext q.add{border-left-color:var(--off)}.ptext q.rem{border-left-color:var(--on);text-decoration:line-through;color:var(--muted)}
ol.steps{margin:4px 0 10px;padding-left:24px}
ol.steps li{margin:2px 0}
.button{display:inline-block;background:#2f4fa8;color:#fff;text-decoration:none;padding:7px 14px;
border-radius:8px;font-weight:600;font-size:15px}
.note{color:var(--muted);font-size:14px;max-width:46em}
.meta{color:var(--muted);font-size:13px;margin-top:14px}
.meta a{color:var(--muted)}
details{margin:10px 0 0}
summary{cursor:pointer;color:var(--muted);font-size:14px}
table{border-collapse:collapse;font-size:14px;margin:8px 0}
th,td{text-align:left;padding:3px 16px 3px 0;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-weight:600}
.empty h2{margin-top:0}.empty ol{padding-left:22px}.empty li{margin:8px 0}
.quiet{color:var(--muted)}
footer{margin-top:40px;color:var(--muted);font-size:13px;border-top:1px solid var(--line);padding-top:14px}
@media (max-width:600px){main{padding:22px 14px}h1{font-size:25px}.platform{padding:16px}}
@media print{
.tl{overflow:visible}.tl .timeline{min-width:0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@page{margin:16mm 14mm}
body{background:#fff;font-size:11pt}
main{max-width:none;padding:0}
.box,.platform,.tally li{border-color:#ccc}
.platform,.box,.notices li,tr{break-inside:avoid}
h2{break-after:avoid}
a{color:inherit}
.button{background:none;color:var(--ink);padding:0;font-weight:600}
a.button::after{content:" (" attr(href) ")";font-weight:400;word-break:break-all}
details::details-content{content-visibility:visible;display:contents}
details>summary{list-style:none}
}
"""


def _t(value, limit: int = 300) -> str:
    """Stored text -> safe HTML text."""
    return escape(clean(value, limit), quote=True)


def _time(value, text: str | None = None) -> str:
    iso = iso_date(value)
    shown = text if text is not None else fmt_date(value)
    if not iso:
        return escape(shown)
    return f'<time datetime="{iso}">{escape(shown)}</time>'


def _link(url, text: str, cls: str = "") -> str:
    href = safe_url(url)
    if not href:
        return escape(text)
    c = f' class="{cls}"' if cls else ""
    return f'<a{c} href="{escape(href, quote=True)}" rel="noopener noreferrer" target="_blank">{escape(text)}</a>'


def _badges(p: dict) -> str:
    st = p["status"]
    cls = {TRAINING_ON: "b-on", TRAINING_OFF: "b-off", POLICY_CHANGE_COMING: "b-notice",
           POLICY_IN_EFFECT: "b-notice"}.get(st, "b-grey")
    out = [f'<span class="badge {cls}">{escape(STATUS_LABEL[st])}</span>']
    if p["reenabled"]:
        out.append('<span class="badge b-on">Re-enabled after you opted out</span>')
    coming = [n for n in p["notices"] if n["days_left"]]
    if coming:
        when = escape(days_phrase(coming[0]["days_left"]))
        if st == POLICY_CHANGE_COMING:  # one badge says it all
            out[0] = f'<span class="badge b-notice">Policy change {when}</span>'
        else:
            out.append(f'<span class="badge b-notice">Policy change {when}</span>')
    dismissed = [s for s in p["settings"] if s["state"] == "on" and (s["warning"] or {}).get("status") == "dismissed"]
    if dismissed:
        out.append('<span class="badge b-grey">Warning dismissed</span>')
    return "".join(out)


def _history(s: dict) -> str:
    changes = s["changes"]
    n = len(changes)
    if n <= 1:
        return ""

    def row(i: int, c: dict) -> str:
        if i == 0:
            what = "first seen: training ON" if c["state"] == "on" else "first seen: training OFF"
        else:
            what = "training switched ON" if c["state"] == "on" else "training switched OFF"
        return f"<tr><td>{_time(c['at'], fmt_datetime(c['at']))}</td><td>{what}</td></tr>"

    head = "<tr><th>When</th><th>What consentwatch saw</th></tr>"
    if n <= FULL_HISTORY_UP_TO:
        body = "".join(row(i, c) for i, c in enumerate(changes))
        return (f'<details class="history"><summary>History: {plural(n, "observed change")}</summary>'
                f"<table>{head}{body}</table></details>")
    first, last = changes[0]["at"], changes[-1]["at"]
    recent = "".join(row(n - RECENT_CHANGES + i, c) for i, c in enumerate(changes[-RECENT_CHANGES:]))
    months = "".join(
        f"<tr><td>{escape(fmt_month(m['month']))}</td><td>{m['turned_on']}</td><td>{m['turned_off']}</td></tr>"
        for m in reversed(s["changes_by_month"]))
    return (
        f'<details class="history"><summary>History: {n} observed changes between {_time(first)} and '
        f"{_time(last)}: you opted out {plural(s['times_turned_off'], 'time')}, it came back on "
        f"{plural(len(s['reenabled_at']), 'time')}</summary>"
        f"<p class=\"quiet\">The latest {RECENT_CHANGES}:</p><table>{head}{recent}</table>"
        f"<p class=\"quiet\">Per month:</p><table><tr><th>Month</th><th>Switched ON</th><th>Switched OFF</th></tr>"
        f"{months}</table></details>"
    )


def _facts(s: dict) -> list[tuple[str, str]]:
    """What happened to a setting, as (label, HTML) pairs; only what adds to the 'now' line."""
    facts = [("Setting", f"<strong>{_t(s['setting'])}</strong>")]
    if s["changes_total"] > 1 or (s["first_seen"] and s["first_seen"] != s["since"]):
        state = "training ON" if s["first_seen_on"] == s["first_seen"] else "training OFF"
        facts.append(("First seen", f"{_time(s['first_seen'])}, {state}"))
    if s["turned_off_at"]:
        extra = f" (the last of {s['times_turned_off']} times)" if s["times_turned_off"] > 1 else ""
        facts.append(("You opted out", _time(s["turned_off_at"]) + extra))
    if s["reenabled_at"]:
        n = len(s["reenabled_at"])
        when = _time(s["reenabled_at"][-1]) + (f" (the last of {n} times)" if n > 1 else "")
        if s["reenabled_now"]:
            facts.append(("Re-enabled", f'<strong class="alert">{when}</strong>, after you had opted out. '
                                        "If you did not switch it back on yourself, the platform did."))
        else:
            facts.append(("Re-enabled", when))
    w = s["warning"] or {}
    if w.get("status") == "dismissed" and w.get("dismissed_at"):
        facts.append(("You dismissed the warning", _time(w["dismissed_at"])))
    return facts


def _setting(s: dict) -> str:
    word, rest = setting_sentence(s)
    cls = {"on": "st-on", "off": "st-off"}.get(s["state"], "st-unknown")
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in _facts(s))
    summary = f'<p class="summary">{_t(s["summary"], 600)}</p>' if s["summary"] else ""
    return (
        f'<div class="setting" data-rule="{_t(s["rule_id"], 120)}">'
        f'<p class="now"><span class="{cls}">{escape(word)}</span>{escape(rest)}</p>'
        f'<p class="rtitle">{_t(s["title"])}</p>{summary}'
        f'<dl class="facts">{dl}</dl>{_history(s)}</div>'
    )


def _notices(p: dict, today: str) -> str:
    if not p["notices"]:
        return ""
    items = []
    for n in p["notices"]:
        when = notice_when(n, today)
        seen = f"Seen {_time(n['first_seen'])}"
        if n["seen_on"]:
            seen += f" on {_t(short_url(n['seen_on']))}"
        dismissed = " You dismissed it." if (n["warning"] or {}).get("status") == "dismissed" else ""
        items.append(f'<li><span class="when">{escape(when[0].upper() + when[1:])}</span>: {_t(n["title"])}'
                     f'<br><span class="seen">{seen}.{dismissed}</span></li>')
    return f'<div class="notices"><h4>Policy notices</h4><ul>{"".join(items)}</ul></div>'


def _diff_runs(runs: list[dict]) -> str:
    tags = {"-": "del", "+": "ins"}
    return " ".join(f"<{tags[r['op']]}>{_t(r['text'], 1200)}</{tags[r['op']]}>" if r["op"] in tags else _t(r["text"], 1200)
                    for r in runs)


def _policy_texts(p: dict) -> str:
    """What the policy documents say about AI now and did not before: a small diff per change."""
    if not p.get("policy_changes"):
        return ""
    items = []
    for c in p["policy_changes"]:
        doc = _link(c["url"], clean(c["title"], 120)) if c["url"] else _t(c["title"], 120)
        if c["basis"] == "shipped":
            when = f"{doc}: AI clause added on {_time(c['since'])} (known history)"
            seen = f"You first opened it {_time(c['seen_at'])}."
        else:
            when = f"{doc} changed what it says about AI"
            seen = f"Seen {_time(c['seen_at'])}; before that you saw it {_time(c['last_seen_before'])}."
        lines = [f'<q class="add">+ {_t(a, 1200)}</q>' for a in c["added"]]
        lines += [f'<q class="rew">~ {_diff_runs(r["diff"])}</q>' for r in c["reworded"]]
        lines += [f'<q class="rem">- {_t(r, 1200)}</q>' for r in c["removed"]]
        dismissed = " You dismissed it." if (c["warning"] or {}).get("status") == "dismissed" else ""
        items.append(f'<li data-document="{_t(c["document"], 80)}"><span class="when">{when}</span>{"".join(lines)}'
                     f'<span class="seen">{seen}{dismissed}</span></li>')
    return f'<div class="ptext"><h4>Policy text about AI</h4><ul>{"".join(items)}</ul></div>'


def _remedies(p: dict) -> str:
    out = []
    for r in p["remedies"]:
        steps = "".join(f"<li>{_t(step, 200)}</li>" for step in r["steps"])
        link = ""
        if safe_url(r["settings_url"]):
            link = f'<p>{_link(r["settings_url"], "Open the setting on " + host_of(r["settings_url"]), "button")}</p>'
        elif r["settings_url"]:
            link = f'<p class="note">Setting: {_t(r["settings_url"])}</p>'
        note = f'<p class="note">{_t(r["note"], 600)}</p>' if r["note"] else ""
        label = "How to opt out" + (f": {clean(r['setting'])}" if len(p["remedies"]) > 1 else "")
        body = f'<ol class="steps">{steps}</ol>{link}{note}'
        if p["status"] == TRAINING_OFF:  # nothing to do now: keep the steps at hand, folded
            out.append(f'<details class="remedy"><summary>{escape(label)} (if it comes back on)</summary>{body}</details>')
        else:
            out.append(f'<div class="remedy"><h4>{escape(label)}</h4>{body}</div>')
    return "".join(out)


def _meta(p: dict) -> str:
    bits = []
    if eyes := seen_by_text(p.get("seen_by")):
        bits.append(f'<span class="eyes" data-seen-by="{escape(" ".join(p["seen_by"]))}">{escape(eyes)}</span>')
    if p["rules_verified"]:
        bits.append(f"Facts checked by the rule maintainers on {_time(p['rules_verified'])}")
    srcs = [u for u in p["sources"] if safe_url(u)][:4]
    if srcs:
        bits.append("sources: " + ", ".join(_link(u, host_of(u).removeprefix("www.")) for u in srcs))
    if p.get("seen_via"):
        bits.append("consentwatch reads it from " + escape(seen_phrase(p["seen_via"])))
    return f'<p class="meta">{"; ".join(bits)}.</p>' if bits else ""


def _platform(p: dict, today: str) -> str:
    settings = "".join(_setting(s) for s in p["settings"])
    if not p["settings"] and p["has_setting"]:
        settings = ('<p class="now">Setting not seen yet: open it (steps below) while consentwatch runs to '
                    "learn whether it is on.</p>")
    elif not p["settings"]:
        news = "policy notice" if p["notices"] else "policy text"
        settings = f'<p class="now">There is no setting to watch here: the {news} below is the news.</p>'
    return (
        f'<article class="platform s-{escape(p["status"])}" data-platform="{_t(p["platform"], 60)}">'
        f'<div class="phead"><h3>{_t(p["name"], 80)}</h3>{_badges(p)}</div>'
        f"{settings}{_notices(p, today)}{_policy_texts(p)}{_remedies(p)}{_meta(p)}</article>"
    )


def _tally(report: dict) -> str:
    s = report["summary"]
    items = [("t-seen", s["platforms_seen"], "platforms seen" if s["platforms_seen"] != 1 else "platform seen"),
             ("t-on", s["training_on"], "training ON"),
             ("t-off", s["training_off"], "training OFF")]
    if s["policy_changes_coming"]:
        items.append(("t-coming", s["policy_changes_coming"], "policy changes coming"
                      if s["policy_changes_coming"] != 1 else "policy change coming"))
    if s["silently_reenabled"]:
        items.append(("t-on", s["silently_reenabled"], "opt-outs undone" if s["silently_reenabled"] != 1
                      else "opt-out undone"))
    return '<ul class="tally">' + "".join(f'<li class="{c}"><b>{n}</b>{escape(t)}</li>' for c, n, t in items) + "</ul>"


def _empty(report: dict) -> str:
    names = ", ".join(clean(x["name"], 40) for x in report["not_seen"][:8])
    more = " and others" if len(report["not_seen"]) > 8 else ""
    platforms = f" ({escape(names)}{more})" if names else ""
    return f"""<section class="box empty">
<h2>Nothing observed yet</h2>
<p>consentwatch only knows what it sees while you browse. As soon as it has seen a platform's AI-training
setting or a policy notice, this page shows where you stand.</p>
<ol>
<li><strong>Start it:</strong> <code>consentwatch run</code>. It prints where its certificate is and how to trust it.</li>
<li><strong>Trust its certificate</strong> in your browser or system. It can only vouch for the watched platforms'
addresses, so it cannot be used to impersonate your bank.</li>
<li><strong>Send the platforms' traffic through it:</strong> the consentwatch browser extension does this for the
watched platforms only (pair it with <code>consentwatch token</code>).</li>
<li><strong>Browse as usual</strong>, and open your privacy settings on the platforms you use{platforms}.</li>
</ol>
<p class="quiet">Have recorded traffic (.flow or .har)? <code>consentwatch replay --data-dir DIR FILE</code>, then
<code>consentwatch report --data-dir DIR</code>.</p>
</section>"""


def _not_seen(report: dict) -> str:
    if not report["not_seen"]:
        return ""
    names = ", ".join(_t(x["name"], 40) for x in sorted(report["not_seen"], key=lambda x: clean(x["name"]).casefold()))
    page = [x for x in report["not_seen"] if page_only(x.get("seen_via"))]
    extension = ""
    if page:
        extension = ('<p class="quiet">Only the browser extension can see these: their settings exist only in the page '
                     "your browser shows: " + ", ".join(_t(x["name"], 40) for x in sorted(page, key=lambda x: clean(x["name"]).casefold()))
                     + ".</p>")
    return (f'<section><h2>Not seen yet</h2><p class="quiet">consentwatch also watches {names}. Open your privacy '
            f"settings there while it runs to see where you stand.</p>{extension}</section>")


def render_html(report: dict) -> str:
    today = report["today"]
    platforms = report["platforms"]
    if platforms:
        svg = timeline_svg(report)
        body = (
            f'<section><h2>Timeline</h2><div class="box tl">{svg}</div></section>'
            f'<section><h2>Platforms</h2>{"".join(_platform(p, today) for p in platforms)}</section>'
            f"{_not_seen(report)}"
        )
    else:
        body = _empty(report)
    region = f" · region {_t(report['region'], 10)}" if report.get("region") else ""
    rules = f" Rules {_t(report['rules_version'], 40)}." if report.get("rules_version") else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>Where you stand on AI training · consentwatch</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<p class="brand">consentwatch report</p>
<h1>Where you stand on AI training</h1>
<p class="asof">As of {_time(today)}{region}, from what consentwatch saw on this computer</p>
{f'<p class="headline">{escape(headline(report))}</p>' if platforms else ""}
{_tally(report) if platforms else ""}
</header>
{body}
<footer>
<p>This page holds only what consentwatch stored: the state of each AI-training setting and when it changed,
the dates of policy notices, the AI sentences of public policy documents, and the rules' advice. No other page content, no messages, nothing from your account.
It was made on your computer and sent nowhere.{rules}</p>
</footer>
</main>
</body>
</html>
"""
