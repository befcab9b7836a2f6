"""The report as Markdown: the same facts as the HTML page, for notes, issues and e-mail.

Stored strings are cleaned to one line and every Markdown/HTML punctuation character is
backslash-escaped, so a hostile platform name cannot open a link, an image, raw HTML or a new block.
"""

from __future__ import annotations

import re

from .fmt import (
    STATUS_LABEL,
    clean,
    fmt_date,
    fmt_datetime,
    fmt_month,
    headline,
    notice_when,
    page_only,
    plural,
    safe_url,
    seen_phrase,
    seen_by_text,
    setting_sentence,
    short_url,
)
from .model import RECENT_CHANGES, TRAINING_OFF

FULL_HISTORY_UP_TO = 12
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~!$]|&(?=#?\w+;))")
_BLOCK_START = re.compile(r"^(\s*(?:\d+)?)([-+=.)])")


def md(value, limit: int = 300, start: bool = False) -> str:
    """One line of stored text, inert in Markdown: no emphasis, link, image, HTML or code; with `start`
    (the text begins a line) no list, heading or quote either."""
    s = _SPECIAL.sub(r"\\\1", clean(value, limit))
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s) if start else s


def _link(url) -> str:
    href = safe_url(url)
    if href and not re.search(r"[<>]", href):
        return f"<{href}>"
    return md(url)


def _setting(s: dict) -> list[str]:
    word, rest = setting_sentence(s)
    sep = "" if rest.startswith((".", ",", ":")) else " "
    out = [f"**{word}**{sep}{md(rest)}", "", f"- Setting: {md(s['setting'])}"]
    if s["changes_total"] > 1 or (s["first_seen"] and s["first_seen"] != s["since"]):
        state = "training ON" if s["first_seen_on"] == s["first_seen"] else "training OFF"
        out.append(f"- First seen: {fmt_date(s['first_seen'])}, {state}")
    if s["turned_off_at"]:
        extra = f" (the last of {s['times_turned_off']} times)" if s["times_turned_off"] > 1 else ""
        out.append(f"- You opted out: {fmt_date(s['turned_off_at'])}{extra}")
    if s["reenabled_at"]:
        n = len(s["reenabled_at"])
        extra = f" (the last of {n} times)" if n > 1 else ""
        flag = (", **after you had opted out**. If you did not switch it back on yourself, the platform did."
                if s["reenabled_now"] else "")
        out.append(f"- Re-enabled: {fmt_date(s['reenabled_at'][-1])}{extra}{flag}")
    w = s["warning"] or {}
    if w.get("status") == "dismissed" and w.get("dismissed_at"):
        out.append(f"- You dismissed the warning: {fmt_date(w['dismissed_at'])}")
    out.append("")
    if s["summary"]:
        out += [md(s["summary"], 600, start=True), ""]
    changes = s["changes"]
    if len(changes) > 1:
        shown = changes if len(changes) <= FULL_HISTORY_UP_TO else changes[-RECENT_CHANGES:]
        offset = len(changes) - len(shown)
        title = (f"History ({plural(len(changes), 'observed change')})" if not offset else
                 f"History: {len(changes)} observed changes; the latest {RECENT_CHANGES}")
        out += [f"{title}:", ""]
        for i, c in enumerate(shown):
            if offset + i == 0:
                what = "first seen: training " + ("ON" if c["state"] == "on" else "OFF")
            else:
                what = "training switched " + ("ON" if c["state"] == "on" else "OFF")
            out.append(f"- {fmt_datetime(c['at'])}: {what}")
        if offset:
            out += ["", "| Month | Switched ON | Switched OFF |", "|---|---|---|"]
            out += [f"| {fmt_month(m['month'])} | {m['turned_on']} | {m['turned_off']} |"
                    for m in reversed(s["changes_by_month"])]
        out.append("")
    return out


def render_markdown(report: dict) -> str:
    out = ["# Where you stand on AI training", "",
           f"As of {fmt_date(report['today'])}, from what consentwatch saw on this computer.", "",
           md(headline(report), 600, start=True), ""]
    if not report["platforms"]:
        names = ", ".join(md(x["name"], 40) for x in report["not_seen"][:8])
        out += [
            "## Nothing observed yet", "",
            "consentwatch only knows what it sees while you browse. To fill this report:", "",
            "1. Start it: `consentwatch run` (it prints where its certificate is and how to trust it).",
            "2. Trust its certificate; it can only vouch for the watched platforms.",
            "3. Send the platforms' traffic through it with the consentwatch browser extension "
            "(pair it with `consentwatch token`).",
            "4. Browse as usual and open your privacy settings" + (f" on {names}." if names else "."), "",
            "Recorded traffic instead: `consentwatch replay --data-dir DIR FILE`, then "
            "`consentwatch report --data-dir DIR`.", ""]
        return "\n".join(out)
    s = report["summary"]
    out += [f"- Platforms seen: {s['platforms_seen']}", f"- Training ON: {s['training_on']}",
            f"- Training OFF: {s['training_off']}", f"- Policy changes coming: {s['policy_changes_coming']}"]
    if s["silently_reenabled"]:
        out.append(f"- Opt-outs undone (training back on): {s['silently_reenabled']}")
    out.append("")
    for p in report["platforms"]:
        badges = [STATUS_LABEL[p["status"]]] + (["re-enabled after you opted out"] if p["reenabled"] else [])
        out += [f"## {md(p['name'], 80)}: {', '.join(badges)}", ""]
        for st in p["settings"]:
            out += _setting(st)
        if not p["settings"]:
            out += ["Setting not seen yet." if p["has_setting"] else "There is no setting to watch here.", ""]
        if eyes := seen_by_text(p.get("seen_by")):
            out += [f"{eyes}.", ""]
        if p["notices"]:
            out += ["Policy notices:", ""]
            for n in p["notices"]:
                when = notice_when(n, report["today"])
                where = f" on {md(short_url(n['seen_on']))}" if n["seen_on"] else ""
                out.append(f"- {when[0].upper() + when[1:]}: {md(n['title'])} (seen {fmt_date(n['first_seen'])}{where})")
            out.append("")
        for c in p.get("policy_changes") or []:
            if c["basis"] == "shipped":
                out += [f"{md(c['title'], 120, start=True)}: AI clause added on {fmt_date(c['since'])} "
                        f"(known history; you first opened it {fmt_date(c['seen_at'])}):", ""]
            else:
                out += [f"{md(c['title'], 120, start=True)} changed what it says about AI (seen {fmt_date(c['seen_at'])}; "
                        f"before that you saw it {fmt_date(c['last_seen_before'])}):", ""]
            out += [f"- added: {md(a, 1200)}" for a in c["added"]]
            out += ["- reworded: " + " ".join(md(r["text"], 1200) if r["op"] == "=" else f"~~{md(r['text'], 1200)}~~"
                                             if r["op"] == "-" else f"**{md(r['text'], 1200)}**" for r in rw["diff"])
                    for rw in c["reworded"]]
            out += [f"- removed: ~~{md(r, 1200)}~~" for r in c["removed"]]
            out.append("")
        for r in p["remedies"]:
            label = "How to opt out" + (" (if it comes back on)" if p["status"] == TRAINING_OFF else "")
            out += [f"{label}:", ""]
            out += [f"{i}. {md(step, 200)}" for i, step in enumerate(r["steps"], 1)]
            if r["settings_url"]:
                out += ["", f"Setting: {_link(r['settings_url'])}"]
            if r["note"]:
                out += ["", f"_{md(r['note'], 600)}_"]
            out.append("")
        if p.get("seen_via"):
            out += [f"consentwatch reads it from {md(seen_phrase(p['seen_via']), 400)}.", ""]
    if report["not_seen"]:
        out += ["## Not seen yet", "", "consentwatch also watches " +
                ", ".join(md(x["name"], 40) for x in report["not_seen"]) + ".", ""]
        page = [x for x in report["not_seen"] if page_only(x.get("seen_via"))]
        if page:
            out += ["Only the browser extension can see these (their settings exist only in the page your browser "
                    "shows): " + ", ".join(md(x["name"], 40) for x in page) + ".", ""]
    out += ["---", "", "Only stored facts: setting states and dates, policy dates, the rules' advice. "
            "No page content beyond the AI sentences of public policy documents." + (f" Rules {md(report['rules_version'], 40)}." if report.get("rules_version") else ""),
            ""]
    return "\n".join(out)
