"""``credrot store push|pull|status|keygen``: the shared store, by hand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from credrot.cli.base import CONTEXT, EXIT_OK, _Group, _manager, pool_option

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.remote.settings import StoreSettings
    from credrot.remote.sync import Remote, Row

JSON_HELP = "Machine-readable output."


def _settings(ctx: click.Context) -> StoreSettings:
    from credrot.errors import ConfigError
    from credrot.remote import words
    from credrot.remote.settings import resolve

    settings = resolve(ctx.find_root().params.get("store"))
    if settings is None:
        raise ConfigError(words.NO_STORE)
    return settings


def _local(ctx: click.Context) -> AccountManager:
    """The pool's files alone: push and pull move everything themselves."""
    root = ctx.find_root().params
    saved = root.get("store")
    root["store"] = "file"
    try:
        return _manager(ctx)
    finally:
        root["store"] = saved


def _remote(ctx: click.Context, manager: AccountManager) -> Remote:
    from credrot.remote.sync import Remote

    return Remote(_settings(ctx), manager.profile.name)


def _rows(
    what: str, manager: AccountManager, remote: Remote, rows: list[Row], as_json: bool
) -> None:
    if as_json:
        out = {
            "tool": manager.profile.name,
            "home": str(manager.home),
            "store": remote.settings.shown,
            "accounts": [r.as_dict() for r in rows],
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"credrot store {what}: {manager.profile.name} in {manager.home}")
    click.echo(f"  store {remote.settings.shown} (keys {remote.keys.base}*)")
    for r in rows:
        click.echo(f"  #{r.account:<3} {r.message}")
    if not rows:
        click.echo("  no accounts")


@click.group(cls=_Group, context_settings=CONTEXT, short_help="Share the pool through Redis.")
def store() -> None:
    """Move a pool into the shared store (Redis or Valkey) and back, look at it, make a key.

    The store is --store, $CREDROT_STORE or the config's store:. Credentials are sealed
    with the key in $CREDROT_STORE_KEY or ~/.config/credrot/store.key.
    """


@store.command(short_help="Put the local pool into the store.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def push(ctx: click.Context, as_json: bool) -> int:
    """Every account of the local pool into the store: credentials (sealed), state,
    windows. Run twice, it counts nothing twice; a newer credential in the store is kept.
    """
    from credrot.remote import sync

    manager = _local(ctx)
    remote = _remote(ctx, manager)
    _rows("push", manager, remote, sync.push(manager.pool, remote), as_json)
    return EXIT_OK


@store.command(short_help="Take the store's pool into the local home.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def pull(ctx: click.Context, as_json: bool) -> int:
    """Every account of the store into the local home: state and windows, and each
    credential unless the slot here is newer (a replaced slot is kept in backups/)."""
    from credrot.remote import sync

    manager = _local(ctx)
    remote = _remote(ctx, manager)
    manager.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new machine's first pull
    _rows("pull", manager, remote, sync.pull(manager.pool, remote), as_json)
    return EXIT_OK


@store.command(short_help="Connection, key names, accounts, leases.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> int:
    """What the store holds for this tool: the server, the key names, each account's
    credential generation and status, calls in flight and refresh leases held."""
    from credrot.remote.check import status as look
    from credrot.remote.client import connect
    from credrot.tools import get_profile

    settings = _settings(ctx)
    tool = get_profile(pool_option(ctx, "tool") or "qwen").name
    got = look(settings, tool, connect(settings))
    if as_json:
        click.echo(json.dumps({"tool": tool, **got}, indent=2))
        return EXIT_OK
    for line in _status_lines(tool, got):
        click.echo(line)
    return EXIT_OK


def _status_lines(tool: str, got: dict[str, Any]) -> list[str]:
    from datetime import datetime, timezone

    from credrot.report import local_time

    now = datetime.now(timezone.utc)
    lines = [
        f"store {got['store']}: {got['server']} {got['version']}, "
        f"{got['round_trip_ms']:.1f} ms round trip",
        f"  keys of {tool}: {got['keys']['account'].rsplit(':', 2)[0]}:*  "
        f"(key check {got['keys']['key_check']}: {'set' if got['key_check'] else 'not yet'})",
        f"  revision {got['revision']}, {len(got['accounts'])} accounts",
    ]
    for a in got["accounts"]:
        gen = f"generation {a['generation']}" if a["generation"] is not None else "no credential"
        status = a["status"].replace("_", " ")
        if a["until"]:
            status += f" until {local_time(datetime.fromtimestamp(a['until'], timezone.utc), now)}"
        extra = f", {a['in_flight']} in flight" if a["in_flight"] else ""
        if a["refreshing"]:
            extra += f", refreshing ({a['refreshing']}, fence {a['fence']})"
        lines.append(f"  #{a['account']:<3} {gen}, {status}, {a['calls']} calls{extra}")
    return lines


@store.command(short_help="Make a new key for the credentials.")
@click.option("--write", is_flag=True, help="Write it to the key file (0600), never over one.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def keygen(write: bool, as_json: bool) -> int:
    """Print a new Fernet key (stdout) and how to give it to every machine (stderr)."""
    from credrot.errors import ConfigError
    from credrot.remote import words
    from credrot.remote.seal import new_key
    from credrot.remote.settings import KEY_ENV, key_file

    key = new_key().decode("ascii")
    path = key_file()
    if write:
        import os

        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(words.key_exists(str(path))) from None
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
    if as_json:
        payload = {"env": KEY_ENV, "file": str(path), "written": write}
        if not write:
            payload["key"] = key
        click.echo(json.dumps(payload, indent=2))
    elif write:
        click.echo(words.key_written(str(path)))
    else:
        click.echo(key)
        for line in words.keygen_hint(str(path)):
            click.echo(line, err=True)
    return EXIT_OK
