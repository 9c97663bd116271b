"""``credrot top`` (alias ``watch``) and ``credrot report``: the pool shown, not told."""

from __future__ import annotations

import contextlib
import sys

import click

from credrot.cli.base import CONTEXT, EXIT_ERROR, EXIT_OK, _Command, _manager, _say_error


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (ValueError, OSError):
        return False


def _top(ctx: click.Context, interval: float, once: bool) -> int:
    from credrot.live import snapshot, top, words

    manager = _manager(ctx)
    if once or not _stdout_is_terminal():
        for line in top.plain_lines(snapshot.take(manager)):
            click.echo(line)
        return EXIT_OK
    if top.rich_missing():
        _say_error(words.INSTALL_RICH)
        return EXIT_ERROR
    watcher = snapshot.Watcher(manager)
    with contextlib.suppress(KeyboardInterrupt):
        top.live(watcher.take, interval)
    return EXIT_OK


_TOP_HELP = """Every account at a glance, refreshed in place: status, each quota window
as a bar with its reset countdown, calls today, calls in flight, the last switch and why.

\b
Press q to quit. NO_COLOR is honoured. When stdout is not a terminal (a pipe, a file)
one plain snapshot is printed instead. The live view needs the 'rich' extra:
pip install 'credrot[live]'."""


def _top_command(name: str, short: str) -> click.Command:
    @click.command(name, cls=_Command, context_settings=CONTEXT, short_help=short, help=_TOP_HELP)
    @click.option(
        "--interval",
        type=click.FloatRange(min=0.2, max=3600),
        default=1.0,
        show_default=True,
        help="Seconds between refreshes.",
    )
    @click.option("--once", is_flag=True, help="Print one plain snapshot and exit.")
    @click.pass_context
    def command(ctx: click.Context, interval: float, once: bool) -> int:
        return _top(ctx, interval, once)

    return command


top = _top_command("top", "The pool at a glance, live (q quits).")
watch = _top_command("watch", "Same as top.")


@click.command(
    "report",
    cls=_Command,
    context_settings=CONTEXT,
    short_help="The last days: calls, quota hits, switches (--html FILE for a page).",
)
@click.option(
    "--html",
    "html_file",
    metavar="FILE",
    default=None,
    help="Write one self-contained HTML page (timeline per account, current windows).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1, max=366),
    default=7,
    show_default=True,
    help="How many days back, as far as rotation.log reaches.",
)
@click.pass_context
def report(ctx: click.Context, html_file: str | None, days: int) -> int:
    """What the pool did over the last days, from rotation.log, and its windows now.

    Without --html: per account, one line per day (calls, quota hits, switches to it).
    With --html FILE: a page that needs no network to view (FILE - for stdout).
    """
    from datetime import timedelta

    from credrot.live import htmlreport, snapshot, timeline, words

    manager = _manager(ctx)
    snap = snapshot.take(manager)
    records = timeline.read(manager.home, since=snap.taken - timedelta(days=days))
    if html_file is None:
        per_day = timeline.per_day(records)
        lines = words.report_lines(snap.tool, snap.home, days, snap.taken, per_day)
        for line in lines:
            click.echo(line)
        return EXIT_OK
    page = htmlreport.render(snap, records, days)
    if html_file == "-":
        click.echo(page, nl=False)
        return EXIT_OK
    from pathlib import Path

    from credrot.fsutil import atomic_write

    atomic_write(Path(html_file), page.encode("utf-8"), mode=0o644)
    click.echo(words.wrote(html_file))
    return EXIT_OK
