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
    with contextlib.suppress(KeyboardInterrupt):
        top.live(lambda: snapshot.take(manager), interval)
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
