"""Every sentence the live view, the report and the notifications say, in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from credrot import report
from credrot.report import human_delta, local_time, relative

INSTALL_RICH = (
    "credrot top needs the 'rich' library at a terminal: "
    "pip install 'credrot[live]' (or pipe it: credrot top | cat prints one snapshot)"
)
KEYS = "q quits"
COLUMNS = ("", "#", "status", "windows", "today", "in flight", "last switch here")
NO_ACCOUNTS = "no {tool} accounts in {home}; add one with `credrot accounts add`"
BAR_WIDTH = 12
#: The plain bar's characters: spent, free (ASCII, for any terminal and any pipe).
PLAIN_BAR = ("#", "-")


def headline(tool: str, home: str, total: int, usable: int) -> str:
    return f"{tool} pool in {home}: {total} accounts, {usable} usable"


def status_word(status: str, model_spent: Iterable[str] = ()) -> str:
    """``ready``, ``exhausted``...; ``ready (week:opus spent)`` for one model's window."""
    return report.status_word(status, model_spent)


def bar(share: float, width: int = BAR_WIDTH, chars: tuple[str, str] = PLAIN_BAR) -> str:
    filled = round(max(0.0, min(1.0, share)) * width)
    return chars[0] * filled + chars[1] * (width - filled)


def window_tail(name: str, used: float | None, until: datetime | None, now: datetime) -> str:
    """What follows a window's bar: ``quota spent, resets in 3h 12m``."""
    if until is not None and until > now:
        return f"{name} spent, resets in {human_delta((until - now).total_seconds())}"
    if used is None:
        return f"{name} unknown"
    if used >= 1.0:
        return f"{name} spent"
    if used == 0.0:
        return f"{name} not spent"
    return f"{name} {round(used * 100)}% used"


def switch_text(when: datetime, reason: str, now: datetime, source: int | None = None) -> str:
    came = f"from #{source} " if source is not None else ""
    why = f" ({reason})" if reason else ""
    return f"{came}{relative(when, now)}{why}"


def last_switch_line(
    when: datetime, source: object, target: object, reason: str, now: datetime
) -> str:
    why = f": {reason}" if reason else ""
    return f"last switch #{source} -> #{target} {relative(when, now)}{why}"


def refreshed(now: datetime) -> str:
    return f"as of {local_time(now, now)}"


# ------------------------------------------------------------------ report
REPORT_TITLE = "credrot report: {tool} pool"
REPORT_EMPTY = "nothing in rotation.log over the last {days} days"


def report_intro(tool: str, home: str, days: int, now: datetime) -> str:
    return f"{tool} pool in {home}, the last {days} days, as of {now:%Y-%m-%d %H:%M UTC}"


def day_line(day: str, calls: int, hits: int, switches: int) -> str:
    return f"{day}  calls ended here {calls}, quota hits {hits}, switches to {switches}"


# ------------------------------------------------------------------ notifications
def notice_text(event: str, tool: str, account: int | None, until: datetime | None) -> str:
    """The one line a notification says (no token, no tool output: our own words)."""
    reset = f", resets {until:%Y-%m-%d %H:%M UTC}" if until is not None else ""
    if event == "pool_exhausted":
        return f"credrot: every {tool} account is spent{reset}"
    if event == "pool_recovered":
        return f"credrot: the {tool} pool answers again (account #{account})"
    if event == "window_above":
        return f"credrot: {tool} account #{account} window is nearly or fully spent{reset}"
    return f"credrot: {tool} account #{account} is unusable{reset}"


def report_lines(
    tool: str, home: str, days: int, now: datetime, per_day: Mapping[int, Mapping[str, Any]]
) -> list[str]:
    """``credrot report`` without ``--html``: per account, one line per day."""
    lines = [report_intro(tool, home, days, now)]
    if not per_day:
        return [*lines, REPORT_EMPTY.format(days=days)]
    for index in sorted(per_day):
        lines.append(f"#{index}")
        for day, d in sorted(per_day[index].items()):
            lines.append("  " + day_line(day, d.calls, d.hits, d.switches))
    return lines


def wrote(path: str) -> str:
    return f"wrote {path} (one self-contained page; open it in any browser)"
