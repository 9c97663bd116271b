"""``credrot top``: the pool at a glance, refreshed in place until ``q``.

Built on rich's ``Live`` and ``Table`` rather than Textual: the view is one table that
redraws every second and a single key to quit, which ``Live`` does in a plain terminal
(over SSH, in tmux) with no application framework, no CSS and no event loop of its own.
rich is an optional extra; without a terminal the view prints one plain snapshot and
needs no rich at all. rich honours ``NO_COLOR`` by itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from credrot.live import words
from credrot.live.snapshot import AccountRow, Snapshot, Window


def window_line(window: Window, now: datetime, chars: tuple[str, str] = words.PLAIN_BAR) -> str:
    tail = words.window_tail(window.name, window.used, window.until, now)
    return f"{words.bar(window.blocked(now), chars=chars)} {tail}"


def cells(row: AccountRow, now: datetime, chars: tuple[str, str] = words.PLAIN_BAR) -> list[str]:
    """One account's cells, in the order of :data:`words.COLUMNS`."""
    switched = "-"
    if row.switched_in is not None:
        source = row.switched_in.raw.get("from")
        switched = words.switch_text(
            row.switched_in.when,
            row.switched_in.reason,
            now,
            source if isinstance(source, int) else None,
        )
    return [
        "*" if row.active else "",
        str(row.index),
        words.status_word(row.status, row.info.model_spent),
        "\n".join(window_line(w, now, chars) for w in row.windows),
        str(row.calls_today),
        str(row.in_flight),
        switched,
    ]


def header(snap: Snapshot) -> list[str]:
    lines = [words.headline(snap.tool, snap.home, len(snap.accounts), snap.usable)]
    last = snap.last_switch
    if last is not None:
        lines.append(
            words.last_switch_line(
                last.when, last.raw.get("from"), last.raw.get("to"), last.reason, snap.taken
            )
        )
    return lines


def plain_lines(snap: Snapshot) -> list[str]:
    """The snapshot as text: what ``credrot top`` prints when stdout is not a terminal."""
    lines = header(snap)
    if not snap.accounts:
        return [*lines, words.NO_ACCOUNTS.format(tool=snap.tool, home=snap.home)]
    rows = [list(words.COLUMNS)]
    for row in snap.accounts:
        base = cells(row, snap.taken)
        first, *more = base[3].split("\n")
        base[3] = first
        rows.append(base)
        rows.extend(["", "", "", extra, "", "", ""] for extra in more)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines.append("")
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return lines


def rich_view(snap: Snapshot, unicode: bool) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    chars = ("█", "░") if unicode else words.PLAIN_BAR
    table = Table(expand=False, header_style="bold")
    for name in words.COLUMNS:
        table.add_column(name, no_wrap=name != "last switch here")
    for row in snap.accounts:
        texts = [Text(c) for c in cells(row, snap.taken, chars)]
        timed = row.status in ("exhausted", "rate_limited")
        style = "green" if row.usable else ("yellow" if timed else "red")
        texts[2].stylize(style)
        if row.active:
            texts[0].stylize("bold")
            texts[1].stylize("bold")
        table.add_row(*texts)
    parts: list[Any] = [Text(line) for line in header(snap)]
    if not snap.accounts:
        parts.append(Text(words.NO_ACCOUNTS.format(tool=snap.tool, home=snap.home)))
    else:
        parts.append(table)
    parts.append(Text(f"{words.refreshed(snap.taken)} · {words.KEYS}", style="dim"))
    return Group(*parts)


@contextlib.contextmanager
def keys(stream: Any) -> Iterator[Callable[[float], str]]:
    """Read single keys from a terminal without echo; elsewhere only wait."""
    try:
        fd = stream.fileno()
        is_tty = os.isatty(fd)
    except (AttributeError, ValueError, OSError):
        fd, is_tty = -1, False
    if not is_tty:
        import time

        def wait_only(timeout: float) -> str:
            time.sleep(timeout)
            return ""

        yield wait_only
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 32).decode("utf-8", "replace") if ready else ""

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def live(take: Callable[[], Snapshot], interval: float) -> None:
    """Redraw until ``q`` (or Ctrl-C); each refresh reads the pool without its lock."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    unicode = console.encoding.lower().startswith("utf")
    with (
        keys(sys.stdin) as wait,
        Live(rich_view(take(), unicode), console=console, screen=True, auto_refresh=False) as view,
    ):
        while True:
            pressed = wait(interval)
            if "q" in pressed.lower():
                return
            view.update(rich_view(take(), unicode), refresh=True)


def rich_missing() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return True
    return False
