"""The timeline picture: one row per observed setting, inline SVG, no script, no external asset.

Colours carry meaning twice (hue and lightness) so the picture still reads printed in grey: ON is a
dark terracotta bar, OFF a light green one. A row with many changes is drawn in bins (a few pixels
each) so 200 changes stay a readable band instead of 200 slivers; re-enable markers turn into a count.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from .fmt import MONTHS, clean, fmt_date, setting_sentence
from .model import parse_date, parse_ts

W = 800
LABEL_W = 236
PAD_R = 24
TOP = 30
ROW_H = 42  # a row: markers above the bar, the bar, the setting's name under the platform's
LANE_H = 18  # extra height for a row with a lane under the bar (policy dates, a count of re-enables)
BAR_Y = 11  # bar top, inside a row
BAR_H = 14
AXIS_H = 30
LEGEND_ROW = 20
X0, X1 = LABEL_W, W - PAD_R
PW = X1 - X0

ON, OFF, MIXED = "#b4532a", "#a5d6bb", "url(#cw-mixed)"
OFF_EDGE = "#3f8a64"
NOTICE = "#4f55b8"
TEXT = "#7a4a9c"  # a policy document's AI text changed
TRACK = "#ece9e2"
INK, MUTED = "#22252b", "#5d6470"
MAX_SEGMENTS = 60  # more than this (or slivers under MIN_W px): draw in bins
MIN_W = 1.5
BIN_W = 4.0
MAX_MARKERS = 8
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="4" stroke-linejoin="round"'  # text over lines
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

_UTC = dt.UTC


def _e(s) -> str:
    return escape(str(s), quote=True)


def _day(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, tzinfo=_UTC)


class _Scale:
    def __init__(self, start: dt.date, end: dt.date):
        t0, t1 = _day(start), _day(end) + dt.timedelta(days=1)
        if t1 - t0 < dt.timedelta(days=14):  # a short history still gets a readable axis
            t0 = t1 - dt.timedelta(days=14)
        pad = max(dt.timedelta(days=1), (t1 - t0) * 0.03)
        self.t0, self.t1 = t0 - pad, t1 + pad
        self.total = (self.t1 - self.t0).total_seconds()

    def x(self, t: dt.datetime) -> float:
        f = (t - self.t0).total_seconds() / self.total
        return round(X0 + min(max(f, 0.0), 1.0) * PW, 1)


def _ticks(scale: _Scale) -> list[tuple[dt.datetime, str]]:
    days = (scale.t1 - scale.t0).days
    out: list[tuple[dt.datetime, str]] = []
    if days <= 120:
        step = next(s for s in (1, 2, 7, 14, 28) if days / s <= 9)
        d = scale.t0.date() + dt.timedelta(days=1)
        if step >= 7:
            d += dt.timedelta(days=(7 - d.weekday()) % 7)  # Mondays
        while _day(d) <= scale.t1:
            out.append((_day(d), f"{d.day} {MONTHS[d.month - 1]}"))
            d += dt.timedelta(days=step)
        return out
    months = days / 30.4
    step = next((s for s in (1, 2, 3, 6, 12, 24, 60) if months / s <= 9), 120)
    k = scale.t0.year * 12 + scale.t0.month  # index of the first whole month in range (0-based month + 1)
    first = True
    while True:
        y, m = divmod(k, 12)
        m += 1
        t = dt.datetime(y, m, 1, tzinfo=_UTC)
        if t > scale.t1:
            break
        if step < 12 and (m - 1) % step == 0:
            out.append((t, f"{MONTHS[m - 1]} {y}" if (first or m == 1) else MONTHS[m - 1]))
            first = False
        elif step >= 12 and m == 1 and y % (step // 12) == 0:
            out.append((t, str(y)))
        k += 1
    return out


def _text_w(text: str, size: float = 11.5) -> float:
    """Rough width of a line of text in the sans-serif fonts browsers pick (for backing boxes and wrapping)."""
    return len(text) * size * 0.56


def _periods(changes: list[dict], until: dt.datetime) -> list[tuple[dt.datetime, dt.datetime, str]]:
    stamps = [(parse_ts(c["at"]), c["state"]) for c in changes]
    stamps = [(t, s) for t, s in stamps if t]
    out = []
    for i, (t, s) in enumerate(stamps):
        end = stamps[i + 1][0] if i + 1 < len(stamps) else max(until, t)
        out.append((t, end, s))
    return out


def _bar(scale: _Scale, periods, y: float) -> tuple[list[str], bool]:
    """Rects for one row. Returns (svg parts, drawn in bins?)."""
    parts: list[str] = []
    spans = [(scale.x(a), scale.x(b), s) for a, b, s in periods]
    binned = len(spans) > MAX_SEGMENTS or any(0 < x1 - x0 < MIN_W for x0, x1, _ in spans[:-1])
    if not binned:
        for k, (x0, x1, s) in enumerate(spans):
            w = max(x1 - x0, 3.0 if k == len(spans) - 1 else 1.0)  # a single observation still shows
            fill = ON if s == "on" else OFF
            edge = f' stroke="{OFF_EDGE}" stroke-width="0.8"' if s == "off" else ""
            parts.append(f'<rect class="seg-{s}" x="{x0}" y="{y}" width="{round(w, 1)}" height="{BAR_H}" '
                         f'fill="{fill}"{edge}/>')
        return parts, False
    # bins: share of ON time per BIN_W pixels, then merge neighbours of the same class
    start, end = spans[0][0], spans[-1][1]
    n = max(1, int((end - start) / BIN_W + 0.999))
    classes: list[str] = []
    i = 0
    for b in range(n):
        b0, b1 = start + b * BIN_W, min(start + (b + 1) * BIN_W, end)
        on = total = 0.0
        while i < len(spans) and spans[i][1] <= b0:
            i += 1
        j = i
        while j < len(spans) and spans[j][0] < b1:
            overlap = min(spans[j][1], b1) - max(spans[j][0], b0)
            if overlap > 0:
                total += overlap
                on += overlap if spans[j][2] == "on" else 0
            j += 1
        if total <= 0:  # zero-width changes only: count them
            states = [s for x0, x1, s in spans if b0 <= x0 <= b1]
            frac = states.count("on") / len(states) if states else 0
        else:
            frac = on / total
        classes.append("on" if frac >= 0.9 else "off" if frac <= 0.1 else "mixed")
    runs: list[tuple[int, int, str]] = []
    for k, c in enumerate(classes):
        if runs and runs[-1][2] == c:
            runs[-1] = (runs[-1][0], k + 1, c)
        else:
            runs.append((k, k + 1, c))
    for a, b, c in runs:
        x0 = round(start + a * BIN_W, 1)
        x1 = round(min(start + b * BIN_W, end), 1)
        fill = {"on": ON, "off": OFF, "mixed": MIXED}[c]
        edge = f' stroke="{OFF_EDGE}" stroke-width="0.8"' if c == "off" else ""
        parts.append(f'<rect class="seg-{c}" x="{x0}" y="{y}" width="{max(round(x1 - x0, 1), 1.0)}" '
                     f'height="{BAR_H}" fill="{fill}"{edge}/>')
    return parts, True


def _rows(report: dict) -> list[dict]:
    rows = []
    for p in report["platforms"]:
        name = clean(p["name"], 30)
        texts = p.get("policy_changes") or []
        for i, s in enumerate(p["settings"]):
            rows.append({"name": name, "label": clean(s["setting"], 38), "setting": s,
                         "notices": p["notices"] if i == 0 else [], "texts": texts if i == 0 else [],
                         "full": f"{clean(p['name'])}: {clean(s['setting'])}"})
        if not p["settings"]:
            label = "policy notice" if p["notices"] else "policy text"
            rows.append({"name": name, "label": label, "setting": None, "notices": p["notices"], "texts": texts,
                         "full": f"{clean(p['name'])}: {label}"})
    for row in rows:
        s = row["setting"]
        many = bool(s) and len(s["reenabled_at"]) > MAX_MARKERS
        row["lanes"] = int(many) + len(row["notices"]) + len(row["texts"])  # one lane each: nothing overlaps
        row["h"] = ROW_H + LANE_H * row["lanes"]
    return rows


def _legend(used: dict) -> list[tuple[str, str]]:
    items = []
    if used["on"]:
        items.append((f'<rect x="0" y="-9" width="18" height="10" fill="{ON}"/>', "training ON"))
    if used["off"]:
        items.append((f'<rect x="0" y="-9" width="18" height="10" fill="{OFF}" stroke="{OFF_EDGE}" '
                      f'stroke-width="0.8"/>', "training OFF"))
    if used["mixed"]:
        items.append((f'<rect x="0" y="-9" width="18" height="10" fill="{MIXED}"/>', "switched often"))
    if used["reenable"]:
        items.append((f'<path d="M4,-11 L14,-11 L9,-3 Z" fill="{ON}"/>', "re-enabled after you opted out"))
    if used["notice"]:
        items.append((f'<line x1="0" y1="-4" x2="12" y2="-4" stroke="{NOTICE}" stroke-width="2" '
                       f'stroke-dasharray="4 3"/><path d="M15,-10 L21,-4 L15,2 L9,-4 Z" fill="{NOTICE}"/>',
                      "policy announced, takes effect"))
    if used.get("text"):
        items.append((f'<rect x="4" y="-9" width="10" height="10" fill="{TEXT}"/>', "policy text about AI changed"))
    return items


def _text_change(c: dict) -> str:
    """'+1 AI sentence, 1 reworded' for a timeline label."""
    bits = []
    if c["added"]:
        bits.append(f"+{len(c['added'])} AI sentence{'s' if len(c['added']) != 1 else ''}")
    if c["reworded"]:
        bits.append(f"{len(c['reworded'])} reworded")
    if c["removed"]:
        bits.append(f"-{len(c['removed'])} removed")
    return ", ".join(bits) or "changed"


def timeline_svg(report: dict) -> str:
    """The whole picture as one <svg> element (empty string when nothing was observed)."""
    if not report["span"]:
        return ""
    today = parse_date(report["today"]) or dt.date.today()
    scale = _Scale(parse_date(report["span"]["start"]), parse_date(report["span"]["end"]))
    now = _day(today) + dt.timedelta(days=1)  # states last until the end of today
    x_today = scale.x(now)
    rows = _rows(report)
    plot_h = sum(r["h"] for r in rows)
    axis_y = TOP + plot_h
    out: list[str] = []
    desc: list[str] = []
    used = dict.fromkeys(("on", "off", "mixed", "reenable", "notice", "text"), False)

    # the future (after today), lightly hatched; then gridlines and the axis
    if x_today < X1:
        out.append(f'<rect x="{x_today}" y="{TOP - 6}" width="{round(X1 - x_today, 1)}" height="{plot_h + 6}" '
                   f'fill="url(#cw-future)"/>')
    for t, label in _ticks(scale):
        x = scale.x(t)
        if not X0 <= x <= X1:
            continue
        out.append(f'<line x1="{x}" y1="{TOP - 6}" x2="{x}" y2="{axis_y}" stroke="#dedad1" stroke-width="1"/>')
        out.append(f'<text x="{x}" y="{axis_y + 17}" text-anchor="middle" font-size="12" fill="{MUTED}">'
                   f'{_e(label)}</text>')
    out.append(f'<line x1="{X0}" y1="{axis_y}" x2="{X1}" y2="{axis_y}" stroke="#b9b4a9" stroke-width="1"/>')

    y = TOP
    for i, row in enumerate(rows):
        by = y + BAR_Y
        lane = by + BAR_H + 10  # centre line of the next free lane under the bar
        g = [f'<g class="row"><title>{_e(row["full"])}</title>']
        if i and rows[i - 1]["name"] != row["name"]:
            g.append(f'<line x1="12" y1="{y}" x2="{X1}" y2="{y}" stroke="#ebe7df" stroke-width="1"/>')
        g.append(f'<text x="{X0 - 14}" y="{by + 6}" text-anchor="end" font-size="14" font-weight="600" '
                 f'fill="{INK}">{_e(row["name"])}</text>')
        g.append(f'<text x="{X0 - 14}" y="{by + 22}" text-anchor="end" font-size="11.5" fill="{MUTED}">'
                 f'{_e(row["label"])}</text>')
        g.append(f'<rect x="{X0}" y="{by}" width="{PW}" height="{BAR_H}" rx="3" fill="{TRACK}"/>')
        s = row["setting"]
        if s and s["changes"]:
            # a state holds until a change is observed (the store records changes, not every page view)
            periods = _periods(s["changes"], now)
            parts, binned = _bar(scale, periods, by)
            g += parts
            used["mixed"] |= binned and any("seg-mixed" in p for p in parts)
            used["on"] |= any(p[2] == "on" for p in periods)
            used["off"] |= any(p[2] == "off" for p in periods)
            re_on = [t for t in (parse_ts(t) for t in s["reenabled_at"]) if t]
            if 0 < len(re_on) <= MAX_MARKERS:
                for t in re_on:
                    x = scale.x(t)
                    g.append(f'<path class="mark-reenable" d="M{x - 6},{by - 10} L{x + 6},{by - 10} L{x},{by - 1} Z" '
                             f'fill="{ON}" stroke="#fff" stroke-width="1"/>')
                used["reenable"] = True
            elif re_on:
                g.append(f'<text class="mark-reenable-count" x="{X0}" y="{lane + 4}" font-size="11.5" '
                         f'fill="{ON}">re-enabled {len(re_on)} times after you opted out</text>')
                lane += LANE_H
            a, b = setting_sentence(s)
            desc.append(f"{row['full']}: {a}{b}")
        for n in row["notices"]:
            eff = parse_date(n["effective_date"])
            seen = parse_ts(n["first_seen"])
            used["notice"] = True
            if seen and eff and scale.x(_day(eff)) - scale.x(seen) > 4:
                g.append(f'<line x1="{scale.x(seen)}" y1="{lane}" x2="{scale.x(_day(eff))}" y2="{lane}" '
                         f'stroke="{NOTICE}" stroke-width="2" stroke-dasharray="4 3"/>')
            if eff:
                x = scale.x(_day(eff))
                if _day(eff) < scale.t0:  # in effect since before the picture starts: an arrow to the left
                    x = X0 + 8
                    g.append(f'<path class="mark-notice" d="M{x - 8},{lane} L{x + 2},{lane - 6} L{x + 2},{lane + 6} Z" '
                             f'fill="{NOTICE}"/>')
                else:
                    g.append(f'<path class="mark-notice" d="M{x},{lane - 7} L{x + 7},{lane} L{x},{lane + 7} '
                             f'L{x - 7},{lane} Z" fill="{NOTICE}" stroke="#fff" stroke-width="1.2"/>')
                label = ("takes effect " if n["days_left"] else "in effect since ") + fmt_date(n["effective_date"])
                tw = _text_w(label)
                if x > X0 + (X1 - X0) * 0.55:
                    tx, anchor, rx = x - 11, "end", x - 11 - tw
                else:
                    tx, anchor, rx = x + 11, "start", x + 11
                g.append(f'<rect x="{round(rx - 3, 1)}" y="{lane - 8}" width="{round(tw + 6, 1)}" height="16" '
                         f'rx="3" fill="#fff"/><text x="{tx}" y="{lane + 4}" text-anchor="{anchor}" '
                         f'font-size="11.5" fill="{NOTICE}">{_e(label)}</text>')
                desc.append(f"{clean(row['name'])}: policy change, {label}.")
            elif seen:
                x = scale.x(seen)
                g.append(f'<circle class="mark-notice" cx="{x}" cy="{lane}" r="5" fill="#fff" stroke="{NOTICE}" '
                         f'stroke-width="2"/><text x="{x + 10}" y="{lane + 4}" font-size="11.5" fill="{NOTICE}" {HALO}>'
                         f'policy notice, no date given</text>')
                desc.append(f"{clean(row['name'])}: policy notice seen {fmt_date(n['first_seen'])}, no date given.")
            lane += LANE_H
        for c in row["texts"]:
            used["text"] = True
            t = parse_ts(c["seen_at"]) if c["basis"] == "seen" else (_day(parse_date(c["since"])) if parse_date(c["since"]) else None)
            if t is None:
                continue
            label = f"{clean(c['title'], 40)}: {_text_change(c)}"
            x = scale.x(t)
            if t < scale.t0:  # a clause added before the picture starts: an arrow to the left
                x = X0 + 8
                g.append(f'<path class="mark-text" d="M{x - 8},{lane} L{x + 2},{lane - 6} L{x + 2},{lane + 6} Z" '
                         f'fill="{TEXT}"/>')
                label += f" (added {fmt_date(c['since'])})"
            else:
                g.append(f'<rect class="mark-text" x="{x - 5}" y="{lane - 5}" width="10" height="10" fill="{TEXT}" '
                         f'stroke="#fff" stroke-width="1.2"/>')
            tw = _text_w(label)
            tx, anchor = (x - 11, "end") if x > X0 + (X1 - X0) * 0.55 else (x + 11, "start")
            g.append(f'<text x="{tx}" y="{lane + 4}" text-anchor="{anchor}" font-size="11.5" fill="{TEXT}" {HALO}>'
                     f'{_e(label)}</text>')
            desc.append(f"{clean(row['name'])}: {label}, seen {fmt_date(c['seen_at'])}.")
            lane += LANE_H
        g.append("</g>")
        out += g
        y += row["h"]

    out.append(f'<line x1="{x_today}" y1="{TOP - 8}" x2="{x_today}" y2="{axis_y}" stroke="{INK}" '
               f'stroke-width="1.2" stroke-dasharray="3 3"/>')
    today_label = f"Today, {fmt_date(report['today'])}"
    half = _text_w(today_label, 12) * 1.08 / 2  # bold is wider
    anchor = "end" if x_today + half > W - 4 else "start" if x_today - half < 4 else "middle"
    tx = x_today + (6 if anchor == "end" else -6 if anchor == "start" else 0)  # "end" near the edge: keep on page
    tx = min(tx, W - 4) if anchor == "end" else tx
    out.append(f'<text x="{round(tx, 1)}" y="{TOP - 12}" text-anchor="{anchor}" font-size="12" font-weight="600" '
               f'fill="{INK}" {HALO}>{_e(today_label)}</text>')

    # legend, wrapped onto as many lines as it needs
    lx, ly = X0 - 100, axis_y + AXIS_H + 10
    for icon, text in _legend(used):
        wdt = 30 + _text_w(text, 12)
        if lx + wdt > W and lx > X0 - 100:
            lx, ly = X0 - 100, ly + LEGEND_ROW
        out.append(f'<g transform="translate({round(lx, 1)},{ly})">{icon}<text x="26" y="0" font-size="12" '
                   f'fill="{MUTED}">{_e(text)}</text></g>')
        lx += wdt + 14
    height = ly + 12

    defs = (
        '<defs>'
        '<pattern id="cw-mixed" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="{OFF}"/><rect width="3" height="6" fill="{ON}"/></pattern>'
        '<pattern id="cw-future" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="8" height="8" fill="#f8f6f1"/><rect width="1" height="8" fill="#e7e2d7"/></pattern>'
        '</defs>'
    )
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" '
        f'height="{height}" role="img" aria-labelledby="cw-tl-title cw-tl-desc" font-family="{_e(FONT)}">'
        f'<title id="cw-tl-title">Timeline of your AI-training settings</title>'
        f'<desc id="cw-tl-desc">{_e(" ".join(desc))}</desc>{defs}{"".join(out)}</svg>'
    )
