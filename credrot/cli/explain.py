"""``credrot explain [N]``: why each account is used or skipped, in one sentence each.

Read without the pool lock, like ``list``: the state (status, quota windows, caps, the
tool's own usage readings) says why an account is out now and until when; the last
switch in ``rotation.log`` that left or reached it says why the pool moved. Old log lines
that held only a cause (``quota_exhausted``) are said in words too.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from credrot.cli.base import CONTEXT, EXIT_OK, _Command, _manager

if TYPE_CHECKING:
    from credrot.live.timeline import Record
    from credrot.manager import AccountManager


def _last_switches(manager: AccountManager) -> dict[int, Record]:
    """Per account, the latest switch that left it or reached it."""
    from credrot.live import timeline

    found: dict[int, Record] = {}
    for record in timeline.read(manager.home, events=("switch",)):
        for key in ("from", "to"):
            value = record.raw.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                found[value] = record
    return found


def _index(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def explain_pool(manager: AccountManager, only: int | None = None) -> dict[str, Any]:
    """What ``credrot explain`` says, as data: one entry per account (or for ``only``)."""
    from credrot import reasons
    from credrot.errors import AccountNotFound
    from credrot.report import human_delta

    pool = manager.pool
    state = pool.store.load()
    now = time.time()
    slots = pool.slots.listing()
    if only is not None and only not in slots:
        raise AccountNotFound(
            f"no {pool.profile.name} account #{only} in {pool.layout.accounts_dir}"
        )
    active = pool.slots.linked()
    if active is None:
        active = state.current
    switches = _last_switches(manager)
    rows: list[dict[str, Any]] = []
    for index in slots:
        if only is not None and index != only:
            continue
        acct = state.accounts.get(index)
        invalid = pool.slots.read(index).why
        why = room = None
        if invalid is None and acct is not None:
            why = reasons.out(acct, index, now, pool.limits)
            room = reasons.headroom(acct, index, now, pool.limits)
        record = switches.get(index)
        last = None
        if record is not None:
            until = record.until.timestamp() if record.until is not None else None
            last = reasons.LastSwitch(
                human_delta(now - record.when.timestamp()),
                _index(record.raw.get("from")),
                _index(record.raw.get("to")) or index,
                record.reason,
                until,
            )
        sentence = reasons.explain(
            index,
            now,
            invalid=invalid,
            why=why,
            active=index == active,
            last=last,
            per_model=pool.profile.per_model_windows,
            room=room,
        )
        rows.append(
            {
                "account": index,
                "usable": invalid is None and why is None,
                "active": index == active,
                "sentence": sentence,
                "window": why.window if why else None,
                "signal": why.signal if why else None,
                "until": _iso(why.until) if why else None,
                "headroom": room if why is None and invalid is None else None,
                "last_switch": None
                if record is None
                else {
                    "time": record.when.isoformat(),
                    "from": record.raw.get("from"),
                    "to": record.raw.get("to"),
                    "reason": reasons.readable(record.reason),
                    "cause": record.raw.get("cause"),
                },
            }
        )
    usable = sum(1 for row in rows if row["usable"])
    return {
        "tool": pool.profile.name,
        "home": str(pool.home),
        "current": active,
        "usable": usable,
        "accounts": rows,
    }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


@click.command(
    "explain",
    cls=_Command,
    context_settings=CONTEXT,
    short_help="Why each account is used or skipped: window, signal, until when.",
)
@click.argument("index", type=click.IntRange(min=1), required=False, metavar="[N]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def explain(ctx: click.Context, index: int | None, as_json: bool) -> int:
    """Say in one sentence per account (or for account N) why calls use it or skip it:
    which quota window, what signal (the tool's quota message, its own usage report, a
    configured cap, a mark by hand), until when, and what the last switch that left or
    reached it said."""
    data = explain_pool(_manager(ctx), index)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return EXIT_OK
    if index is None:
        from credrot.reasons import pool_headline

        click.echo(
            pool_headline(
                data["tool"], data["home"], len(data["accounts"]), data["usable"], data["current"]
            )
        )
    for row in data["accounts"]:
        click.echo(row["sentence"])
    if not data["accounts"]:
        from credrot.reasons import NO_ACCOUNTS

        click.echo(NO_ACCOUNTS.format(tool=data["tool"], home=data["home"]))
    return EXIT_OK
