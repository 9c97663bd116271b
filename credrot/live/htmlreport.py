"""``credrot report --html FILE``: one self-contained page of the pool's last days.

Inline CSS and inline SVG, no script, no font, no image, no link to anything: the page
opens anywhere (a mail attachment, an air-gapped machine) and needs no network at view
time. Every text from the pool is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

from credrot.live import timeline, words
from credrot.live.snapshot import Snapshot
from credrot.live.top import window_line

WIDTH = 960
ROW = 34
LEFT = 56

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
p.intro{color:#555;margin:0 0 16px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #e3e6ea;
text-align:left;vertical-align:top}th{background:#f4f6f8}
.bar{display:inline-block;width:120px;height:10px;background:#e3e6ea;margin-right:8px}
.bar i{display:block;height:10px;background:#d9534f}
.ready{color:#2e7d32}.spent{color:#b26a00}.other{color:#c62828}
.legend span{margin-right:16px}.legend b{display:inline-block;width:10px;height:10px;
margin-right:4px;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#555}
"""


def _status_class(status: str) -> str:
    if status == "ready":
        return "ready"
    return "spent" if status in ("exhausted", "rate_limited") else "other"


def _windows_cell(snap: Snapshot, row_index: int) -> str:
    row = snap.accounts[row_index]
    parts = []
    for window in row.windows:
        share = round(window.blocked(snap.taken) * 100)
        tail = escape(window_line(window, snap.taken).split(" ", 1)[1])
        parts.append(f'<div><span class="bar"><i style="width:{share}%"></i></span>{tail}</div>')
    return "".join(parts)


def _current(snap: Snapshot) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ("#", "status", "windows", "today"))
    rows = []
    for i, row in enumerate(snap.accounts):
        mark = " (active)" if row.active else ""
        status = words.status_word(row.status, row.info.model_spent)
        rows.append(
            f"<tr><td>#{row.index}{mark}</td>"
            f'<td class="{_status_class(row.status)}">{escape(status)}</td>'
            f"<td>{_windows_cell(snap, i)}</td><td>{row.calls_today}</td></tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _x(when: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds() or 1.0
    share = min(1.0, max(0.0, (when - start).total_seconds() / span))
    return LEFT + share * (WIDTH - LEFT - 8)


def _svg(
    accounts: Sequence[int], records: Sequence[timeline.Record], start: datetime, end: datetime
) -> str:
    height = ROW * len(accounts) + 24
    out = [f'<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">']
    day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while day < end:
        x = _x(day, start, end)
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" stroke="#e3e6ea"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{height - 4}">{day:%b %d}</text>')
        day += timedelta(days=1)
    rows = {index: n for n, index in enumerate(accounts)}
    for index, n in rows.items():
        y = n * ROW
        out.append(f'<text x="4" y="{y + ROW / 2 + 4}">#{index}</text>')
        out.append(
            f'<line x1="{LEFT}" y1="{y + ROW - 4}" x2="{WIDTH - 8}" '
            f'y2="{y + ROW - 4}" stroke="#c9ced4"/>'
        )
    for record in records:
        row = rows.get(record.account) if record.account is not None else None
        if row is None:
            continue
        x, y = _x(record.when, start, end), row * ROW
        tip = escape(f"{record.when:%Y-%m-%d %H:%M:%S} UTC {record.event} {record.reason}")
        if record.event == "call":
            colour = "#2e7d32" if record.reason == "ok" else "#9aa3ad"
            tag, attrs = (
                "rect",
                f'x="{x - 1:.1f}" y="{y + 14}" width="2" height="16" fill="{colour}"',
            )
        elif record.event in timeline.HIT_EVENTS:
            tag, attrs = "path", f'd="M{x:.1f} {y + 4} l6 10 h-12 z" fill="#d9534f"'
        elif record.event == "switch":
            tag = "rect"
            attrs = f'x="{x - 1:.1f}" y="{y + 2}" width="2" height="{ROW - 6}" fill="#1f6feb"'
        else:
            continue
        out.append(f"<{tag} {attrs}><title>{tip}</title></{tag}>")
    out.append("</svg>")
    return "".join(out)


def _days_table(days: dict[int, dict[str, timeline.Day]]) -> str:
    rows = []
    for index in sorted(days):
        for day, d in sorted(days[index].items()):
            rows.append(
                f"<tr><td>#{index}</td><td>{day}</td><td>{d.calls}</td>"
                f"<td>{d.hits}</td><td>{d.switches}</td></tr>"
            )
    head = "".join(
        f"<th>{c}</th>" for c in ("#", "day (UTC)", "calls ended here", "quota hits", "switches to")
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render(snap: Snapshot, records: Sequence[timeline.Record], days: int) -> str:
    end = snap.taken
    start = end - timedelta(days=days)
    accounts = sorted(
        {r.index for r in snap.accounts} | {r.account for r in records if r.account is not None}
    )
    title = escape(words.REPORT_TITLE.format(tool=snap.tool))
    intro = escape(words.report_intro(snap.tool, snap.home, days, end))
    per_day = timeline.per_day(records)
    body = (
        _svg(accounts, records, start, end)
        if accounts and records
        else f"<p>{escape(words.REPORT_EMPTY.format(days=days))}</p>"
    )
    legend = (
        '<p class="legend"><span><b style="background:#2e7d32"></b>call answered</span>'
        '<span><b style="background:#9aa3ad"></b>call failed</span>'
        '<span><b style="background:#d9534f"></b>quota hit</span>'
        '<span><b style="background:#1f6feb"></b>switch to the account</span></p>'
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<h1>{title}</h1><p class="intro">{intro}</p>'
        f"<h2>Now</h2>{_current(snap)}"
        f"<h2>Timeline</h2>{legend}{body}"
        f"<h2>Per day</h2>{_days_table(per_day)}"
        "</body></html>\n"
    )
