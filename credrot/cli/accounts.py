"""``credrot accounts ...``: list, add (log in or import), remove, switch, next, reset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from credrot.cli.base import (
    CONTEXT,
    EXIT_OK,
    EXIT_UNUSABLE,
    _describe_unusable,
    _Group,
    _manager,
    _say_error,
    _stdin_bytes,
    emit_json,
)

#: ``--json`` of a command that changes the pool (its shape is in the README).
JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Say what changed as one JSON object on stdout."
)


def _envelope(manager: AccountManager, ok: bool = True, **fields: object) -> dict[str, object]:
    return {"tool": manager.profile.name, "home": str(manager.home), "ok": ok, **fields}


if TYPE_CHECKING:
    from credrot.manager import AccountManager


# -------------------------------------------------------- shared actions
def _list(ctx: click.Context, as_json: bool, empty_hint: str) -> int:
    from credrot.cli.fast import list_lines

    for line in list_lines(_manager(ctx), as_json, empty_hint):
        click.echo(line)
    return EXIT_OK


def _switch(ctx: click.Context, index: int, as_json: bool = False) -> int:
    manager = _manager(ctx)
    before = manager.current()
    manager.switch_to(index)
    info = next((i for i in manager.list_accounts() if i.index == index), None)
    if as_json:
        usable = info is not None and info.usable
        emit_json(_envelope(manager, active=index, previous=before, usable=usable))
        return EXIT_OK
    click.echo(f"switched to account #{index}")
    if info is not None and not info.usable:
        from datetime import datetime, timezone

        from credrot import report

        state = report.status_text(info, datetime.now(timezone.utc))
        click.echo(
            f"credrot: warning: account #{index} is {state}; calls will move off it",
            err=True,
        )
    return EXIT_OK


def _next(ctx: click.Context, as_json: bool = False) -> int:
    manager = _manager(ctx)
    before = manager.current()
    moved, index = manager.switch_next()
    if as_json:
        error = None if moved else f"no other usable account: {_describe_unusable(manager)}"
        emit_json(_envelope(manager, moved, active=manager.current(), previous=before, error=error))
        if error is not None:
            _say_error(error)
        return EXIT_OK if moved else EXIT_UNUSABLE
    if not moved:
        _say_error(f"no other usable account: {_describe_unusable(manager)}")
        return EXIT_UNUSABLE
    if index == before:
        click.echo(f"staying on account #{index}")
    else:
        click.echo(f"switched to account #{index}")
    return EXIT_OK


def _remove(ctx: click.Context, index: int, as_json: bool = False) -> int:
    manager = _manager(ctx)
    dest = manager.remove_account(index)
    if as_json:
        emit_json(_envelope(manager, removed=index, moved_to=str(dest)))
        return EXIT_OK
    click.echo(f"removed account #{index}; its file was moved to {dest}")
    return EXIT_OK


def _read_source(source: str) -> bytes | str:
    return _stdin_bytes() if source == "-" else source


def _import(ctx: click.Context, sources: Sequence[str], as_json: bool = False) -> int:
    manager = _manager(ctx)
    added: list[dict[str, object]] = []
    try:
        for source in sources:
            index = manager.import_account(_read_source(source))
            label = "stdin" if source == "-" else source
            added.append({"index": index, "path": str(manager.slot_path(index)), "from": label})
            if not as_json:
                click.echo(f"added account #{index} from {label} ({manager.slot_path(index)})")
    finally:
        # What was added before a refused file is said too (the error follows on stderr).
        if as_json:
            emit_json(_envelope(manager, len(added) == len(sources), added=added))
    return EXIT_OK


def _enrol(
    ctx: click.Context,
    count: int,
    login_command: str | None,
    timeout: float,
    as_json: bool = False,
) -> int:
    from credrot.login import enrol

    manager = _manager(ctx)

    def progress(kind: str, message: str) -> None:
        if kind == "added" and not as_json:
            click.echo(message)
        elif kind != "added":
            click.echo(f"credrot: {message}", err=True)

    added = enrol(manager, count, command=login_command, timeout=timeout, on_event=progress)
    if as_json:
        rows = [{"index": a.index, "path": str(a.path), "from": "login"} for a in added]
        emit_json(_envelope(manager, len(added) == count, added=rows))
    elif count > 1:
        click.echo(f"{len(added)} of {count} accounts added")
    return EXIT_OK


@click.group(cls=_Group, context_settings=CONTEXT)
def accounts() -> None:
    """List, add, remove, switch and reset the accounts of the pool."""


@accounts.command("list", context_settings=CONTEXT, short_help="List accounts with their status.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def accounts_list(ctx: click.Context, as_json: bool) -> int:
    """Every account: active marker, status, calls today, last use, token expiry."""
    return _list(ctx, as_json, "add one with `credrot accounts add`")


@accounts.command(
    "add", context_settings=CONTEXT, short_help="Log in new accounts (private homes), or import."
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many accounts to log in, one after another.",
)
@click.option(
    "--from",
    "sources",
    multiple=True,
    metavar="FILE",
    help="Import an existing credential file (`-` reads stdin) instead of logging in.",
)
@click.option(
    "--login-command",
    metavar="CMD",
    default=None,
    help="How to start the tool's login (default for qwen: `qwen --auth-type qwen-oauth`; "
    "env CREDROT_LOGIN_COMMAND).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for each login.",
)
@JSON_OPTION
@click.pass_context
def accounts_add(
    ctx: click.Context,
    count: int,
    sources: tuple[str, ...],
    login_command: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Log in new accounts, each with a private temporary home, and add them.

    The login never sees the real home, so it cannot overwrite an existing account.
    The credential it writes is validated, refused if already in the pool, and saved
    in the next free slot (0600). Ctrl-C leaves no half-written file.
    """
    if sources:
        if count != 1:
            raise click.UsageError("--count cannot be combined with --from")
        return _import(ctx, sources, as_json)
    return _enrol(ctx, count, login_command, timeout, as_json)


@accounts.command("remove", context_settings=CONTEXT, short_help="Remove account N (to trash/).")
@click.argument("index", type=click.IntRange(min=1), metavar="N")
@JSON_OPTION
@click.pass_context
def accounts_remove(ctx: click.Context, index: int, as_json: bool) -> int:
    """Remove account N (its file is moved to the home's trash/, never deleted)."""
    return _remove(ctx, index, as_json)


@accounts.command("switch", context_settings=CONTEXT)
@click.argument("index", type=click.IntRange(min=1), metavar="N")
@JSON_OPTION
@click.pass_context
def accounts_switch(ctx: click.Context, index: int, as_json: bool) -> int:
    """Make account N the active one."""
    return _switch(ctx, index, as_json)


@accounts.command("next", context_settings=CONTEXT)
@JSON_OPTION
@click.pass_context
def accounts_next(ctx: click.Context, as_json: bool) -> int:
    """Move to the next usable account (exit 3 when there is none)."""
    return _next(ctx, as_json)


@accounts.command("reset", context_settings=CONTEXT, short_help="Make account N (or all) ready.")
@click.argument("index", type=click.IntRange(min=1), metavar="[N]", required=False)
@JSON_OPTION
@click.pass_context
def accounts_reset(ctx: click.Context, index: int | None, as_json: bool) -> int:
    """Forget that account N (default: every account) is spent: ready again."""
    manager = _manager(ctx)
    done = manager.reset(index)
    if as_json:
        emit_json(_envelope(manager, reset=done))
    elif not done:
        click.echo("no accounts to reset")
    else:
        click.echo(f"ready again: {', '.join(f'#{i}' for i in done)}")
    return EXIT_OK
