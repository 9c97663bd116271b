"""The ``credrot`` group and its global options; the entry point ``main(argv) -> int``."""

from __future__ import annotations

from collections.abc import Sequence

import click

from credrot import __version__
from credrot.cli.accounts import accounts
from credrot.cli.base import (
    CONTEXT,
    EXIT_CODES_HELP,
    _Group,
    _main,
)
from credrot.cli.commands import demo, doctor, stats
from credrot.cli.explain import explain
from credrot.cli.runner import run
from credrot.cli.sim import sim
from credrot.cli.store import store
from credrot.cli.view import report, top, watch


# ------------------------------------------------------------------ credrot
@click.group(cls=_Group, context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.option(
    "--tool",
    default="qwen",
    show_default=True,
    metavar="TOOL",
    help="The AI CLI whose pool to use.",
)
@click.option(
    "--home",
    default=None,
    metavar="DIR",
    help="The tool's home holding the pool (default: $QWEN_HOME, else ~/.qwen).",
)
@click.option(
    "--store",
    default=None,
    envvar="CREDROT_STORE",
    metavar="URL",
    help="Share the pool through redis://HOST:PORT/DB (default: file, or the config's store).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(
    __version__, "-V", "--version", prog_name="credrot", message="%(prog)s %(version)s"
)
def cli(tool: str, home: str | None, store: str | None, debug: bool) -> None:
    """Keep several accounts of a quota-limited AI CLI and rotate between them.

    \b
    Start here:
      credrot accounts add --count 3   log in three accounts (private homes)
      credrot demo                     watch rotation work on simulated accounts
      credrot run -- -p "hello"        run the tool; a spent account is skipped
    """


for _command in (accounts, stats, explain, doctor, run, demo, sim, top, watch, report, store):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """``credrot``'s entry point."""
    return _main(cli, argv, "credrot")
