"""``account-qwen``: the original package's flags, on the same core as ``credrot``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from credrot import __version__
from credrot.cli.accounts import (
    _enrol,
    _import,
    _list,
    _next,
    _remove,
    _switch,
)
from credrot.cli.base import (
    CONTEXT,
    EXIT_CODES_HELP,
    _Command,
    _main,
)
from credrot.cli.commands import (
    _stats,
)
from credrot.cli.fast import LIST_HINT

# ---------------------------------------------------------------- account-qwen
ACCOUNT_QWEN_EXAMPLES = """\b
Examples:
  account-qwen --setup             log in 5 accounts, one after another
  account-qwen --setup --count 2   log in 2 accounts
  account-qwen --add               log in one more account
  account-qwen --remove 3          remove account 3 (moved to trash/)
  account-qwen --list              list all accounts with status
  account-qwen --switch 3          switch to account 3
  account-qwen --switch-next       switch to the next usable account
  account-qwen --stats             show usage statistics"""


_ACTIONS = ("setup", "add", "remove", "list_", "switch", "switch_next", "stats")


_FLAG_NAMES = {
    "setup": "--setup",
    "add": "--add",
    "remove": "--remove N",
    "list_": "--list",
    "switch": "--switch N",
    "switch_next": "--switch-next",
    "stats": "--stats",
}


def _only_with(value: object, name: str, action: str, allowed: Sequence[str]) -> None:
    if value and action not in allowed:
        flags = " or ".join(_FLAG_NAMES[a].split()[0] for a in allowed)
        raise click.UsageError(f"{name} only goes with {flags}")


@click.command(
    "account-qwen",
    cls=_Command,
    context_settings=CONTEXT,
    epilog=ACCOUNT_QWEN_EXAMPLES + "\n\n" + EXIT_CODES_HELP,
)
@click.option("--setup", is_flag=True, help="Log in several accounts (--count, default 5).")
@click.option("--add", is_flag=True, help="Log in one more account (or --from FILE).")
@click.option("--remove", type=click.IntRange(min=1), metavar="N", help="Remove account N.")
@click.option("--list", "list_", is_flag=True, help="List all accounts with status.")
@click.option("--switch", type=click.IntRange(min=1), metavar="N", help="Switch to account N.")
@click.option("--switch-next", is_flag=True, help="Switch to the next usable account.")
@click.option("--stats", is_flag=True, help="Display usage statistics.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="With --setup.")
@click.option("--from", "source", metavar="FILE", default=None, help="With --add: import FILE.")
@click.option("--json", "as_json", is_flag=True, help="With --list or --stats.")
@click.option("--login-command", metavar="CMD", default=None, help="With --setup or --add.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, help="Seconds per login.")
@click.option("--home", default=None, metavar="DIR", help="Default: $QWEN_HOME, else ~/.qwen.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(
    __version__, "-V", "--version", prog_name="account-qwen", message="%(prog)s %(version)s"
)
@click.pass_context
def account_qwen(ctx: click.Context, /, **params: Any) -> int:
    """Manage the rotation of several Qwen Code accounts (credrot's seed interface).

    Give exactly one of --setup, --add, --remove N, --list, --switch N, --switch-next,
    --stats.
    """
    chosen = [a for a in _ACTIONS if params[a] not in (None, False)]
    if len(chosen) != 1:
        given = ", ".join(_FLAG_NAMES[a] for a in chosen) if chosen else "none"
        raise click.UsageError(
            "give exactly one of --setup, --add, --remove N, --list, --switch N, "
            f"--switch-next, --stats (given: {given})\n\n"
            + ACCOUNT_QWEN_EXAMPLES.replace("\b\n", "")
        )
    action = chosen[0]
    _only_with(params["count"], "--count", action, ("setup",))
    _only_with(params["source"], "--from", action, ("add",))
    _only_with(params["as_json"], "--json", action, ("list_", "stats"))
    _only_with(params["login_command"], "--login-command", action, ("setup", "add"))
    login = params["login_command"]
    timeout = float(params["timeout"])
    if action == "setup":
        return _enrol(ctx, params["count"] or 5, login, timeout)
    if action == "add":
        if params["source"]:
            return _import(ctx, [params["source"]])
        return _enrol(ctx, 1, login, timeout)
    if action == "remove":
        return _remove(ctx, params["remove"])
    if action == "list_":
        return _list(ctx, params["as_json"], LIST_HINT)
    if action == "switch":
        return _switch(ctx, params["switch"])
    if action == "switch_next":
        return _next(ctx)
    return _stats(ctx, params["as_json"], False, None)


def account_qwen_main(argv: Sequence[str] | None = None) -> int:
    """``account-qwen``'s entry point."""
    return _main(account_qwen, argv, "account-qwen")
