"""``credrot run -- ARGS``: the tool run on a usable account, each switch said on stderr.

While the wrapper rotates, one line per account left behind
(``credrot: account #2 spent (resets 00:00 UTC); trying #3``). When no answer comes, the
tool's own error output is reduced to its last distinct error line beside credrot's
line; ``--debug`` shows all of it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import click

from credrot.cli.base import (
    CONTEXT,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNUSABLE,
    _Command,
    _manager,
    _say_error,
    _stdin_bytes,
    _stdin_is_terminal,
    emit_json,
)
from credrot.kinds import OutcomeKind

if TYPE_CHECKING:
    from credrot.kinds import Outcome
    from credrot.manager import AccountManager
    from credrot.process import RunResult
    from credrot.wrapper import WrapperResult

_STACK_FRAME = re.compile(r"^\s*at\s")


def utc_when(moment: datetime, now: datetime | None = None) -> str:
    """``00:00 UTC`` within a day from now, else ``2026-12-04 00:00 UTC``."""
    now = now or datetime.now(timezone.utc)
    moment = moment.astimezone(timezone.utc)
    if timedelta(0) <= moment - now <= timedelta(hours=24):
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class SwitchReporter:
    """The ``on_attempt`` callback of ``credrot run``: says why each account was left."""

    def __init__(self, manager: AccountManager, max_retries: int) -> None:
        self.manager = manager
        self.max_retries = max_retries
        self.attempts = 0
        self.tried: set[int] = set()

    def __call__(self, index: int, run: RunResult | None, outcome: Outcome) -> None:
        self.attempts += 1
        self.tried.add(index)
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            click.echo(f"credrot: account #{index} is rate limited; backing off", err=True)
            return
        if not outcome.rotates:
            return
        infos = {info.index: info for info in self.manager.list_accounts()}
        info = infos.get(index)
        if outcome.kind is OutcomeKind.QUOTA_EXHAUSTED:
            until = (info.until if info is not None else None) or outcome.resets_at
            what = f"spent (resets {utc_when(until)})" if until is not None else "spent"
        elif outcome.kind is OutcomeKind.AUTH_FAILED:
            what = "needs a new login"
        else:
            what = "is disabled"
        now_on = self.manager.current()
        usable = [i for i, other in infos.items() if other.usable and i not in self.tried]
        if self.attempts >= self.max_retries:
            tail = f"no more tries (--max-retries {self.max_retries})"
        elif now_on in usable:
            tail = f"trying #{now_on}"
        elif usable:
            tail = f"trying #{usable[0]}"
        else:
            tail = "no other usable account"
        click.echo(f"credrot: account #{index} {what}; {tail}", err=True)


def last_error_line(result: WrapperResult) -> str:
    """The tool's own error in one line: the classified message as the tool printed it,
    else its last line that is not a stack frame (from the redacted error output)."""
    lines = [line.strip() for line in (result.stderr or "").splitlines()]
    lines = [line for line in lines if line and not _STACK_FRAME.match(line)]
    message = (result.outcome.message if result.outcome is not None else "").strip()
    first = message.splitlines()[0] if message else ""
    if first and first in lines:
        return first
    return lines[-1] if lines else ""


@click.command(
    cls=_Command,
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run the tool on a usable account, rotating.",
)
@click.option(
    "--tool", "run_tool", default=None, metavar="TOOL", help="Overrides the global --tool."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Seconds per attempt; the tool's whole process group is stopped after it.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="At most this many tool runs.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the outcome as one JSON object (the tool's answer in `output`).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    run_tool: str | None,
    timeout: float,
    max_retries: int,
    as_json: bool,
    args: tuple[str, ...],
) -> int:
    """Run the tool with ARGS on a usable account, rotating when one is spent.

    \b
    Example: git diff | credrot run -- -p "review this diff"
    Stdin is passed through; the final attempt's output is printed, and each switch is
    said on stderr. On failure only the tool's last error line is shown (all of it with
    --debug). The exit code is the tool's, or 3 when no account is usable.
    """
    from credrot.wrapper import Wrapper

    debug = bool(ctx.find_root().params.get("debug"))
    manager = _manager(ctx, run_tool)
    data: bytes | None = None
    if not _stdin_is_terminal():
        data = _stdin_bytes()
    wrapper = Wrapper(manager.profile, manager=manager, max_retries=max_retries, timeout=timeout)
    wrapper.on_attempt = SwitchReporter(manager, max_retries)
    result = wrapper.run_args(list(args), stdin=data)
    if as_json:
        return _run_json(manager, result)
    if result.output:
        click.echo(result.output, nl=False)
    if (result.success or debug) and result.stderr:
        click.echo(result.stderr, nl=False, err=True)
    if result.success:
        return result.exit_code or EXIT_OK
    error = result.error or ("no usable account" if result.pool_exhausted else "")
    tool_line = last_error_line(result)
    if tool_line and not debug and tool_line not in error:
        click.echo(f"{manager.profile.name}: {tool_line}", err=True)
    if error:
        _say_error(error)
    if result.pool_exhausted:
        return EXIT_UNUSABLE
    return result.exit_code or EXIT_ERROR


def _run_json(manager: AccountManager, result: WrapperResult) -> int:
    """``credrot run --json``: the same exit code, the outcome as one object on stdout."""
    error = result.error or ("no usable account" if result.pool_exhausted else None)
    emit_json(
        {
            "tool": manager.profile.name,
            "home": str(manager.home),
            "ok": result.success,
            "exit_code": result.exit_code,
            "output": result.output,
            "error": error,
            "tool_error": (last_error_line(result) or None) if not result.success else None,
            "outcome": result.outcome.kind.value if result.outcome is not None else None,
            "account": result.account,
            "attempts": result.attempts,
            "accounts_tried": list(result.accounts_tried),
            "switches": result.switches,
            "pool_exhausted": result.pool_exhausted,
            "first_reset": result.first_reset.isoformat() if result.first_reset else None,
        }
    )
    if result.success:
        return result.exit_code or EXIT_OK
    if error:
        _say_error(error)
    if result.pool_exhausted:
        return EXIT_UNUSABLE
    return result.exit_code or EXIT_ERROR
