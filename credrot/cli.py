"""The command line: ``credrot ...`` and the seed-compatible ``account-qwen``.

Thin over the core: parse, call, print. Heavy modules (the manager, the wrapper, pluggy,
the simulator) are imported inside the commands that need them, so ``account-qwen
--list`` starts about as fast as importing click and yaml.

Every entry point is ``main(argv=None) -> int``. Exit codes: 0 ok, 1 error, 2 usage,
3 no usable account, 130 interrupted. Errors are one line on stderr (a traceback only
with ``--debug``); warnings the core collected are printed as ``credrot: warning: ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from credrot import __version__
from credrot.errors import ConfigError, CredrotError

if TYPE_CHECKING:
    from credrot.manager import AccountManager

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNUSABLE = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\b
Exit codes:
  0    ok
  1    error
  2    usage error
  3    no usable account (all spent, or none in the pool)
  130  interrupted"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_MANAGERS = "credrot.managers"
_PRINTED = "credrot.printed-notices"


# ------------------------------------------------------------------ plumbing
def _say_error(message: str) -> None:
    first = (message.strip().splitlines() or ["unknown error"])[0]
    click.echo(f"credrot: error: {first}", err=True)


def _flush_notices(ctx: click.Context) -> None:
    printed: set[str] = ctx.meta.setdefault(_PRINTED, set())
    for manager in ctx.meta.get(_MANAGERS, []):
        for notice in manager.notices:
            if notice not in printed:
                printed.add(notice)
                click.echo(f"credrot: warning: {notice}", err=True)


def _guard(ctx: click.Context, call: Callable[[], Any]) -> Any:
    """Run a command: its int return is the exit code; errors become one line."""
    debug = bool(ctx.find_root().params.get("debug"))
    code = EXIT_OK
    try:
        rv = call()
        code = rv if isinstance(rv, int) else EXIT_OK
    except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except KeyboardInterrupt:
        click.echo("", err=True)
        _say_error("interrupted")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # `credrot accounts list | head -1`: the reader left; nothing more to say.
        import contextlib
        import os

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_ERROR
    except CredrotError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _say_error(str(exc))
        code = EXIT_ERROR
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        _say_error(f"{exc.strerror or exc}{where}")
        code = EXIT_ERROR
    except Exception as exc:
        if debug:
            raise
        _say_error(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
        )
        code = EXIT_ERROR
    finally:
        _flush_notices(ctx)
    if code != EXIT_OK:
        raise click.exceptions.Exit(code)
    return code


class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        return _guard(ctx, lambda: super(_Command, self).invoke(ctx))


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too


def _configure_logging(debug: bool) -> None:
    import logging

    logger = logging.getLogger("credrot")
    if getattr(logger, "_credrot_cli", False):
        return
    logger._credrot_cli = True  # type: ignore[attr-defined]
    if debug:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("credrot: debug: %(name)s: %(message)s"))
        logger.setLevel(logging.DEBUG)
    else:
        # The core logs its notices too; the CLI prints them itself, once.
        handler = logging.NullHandler()
    logger.addHandler(handler)


def _manager(ctx: click.Context, tool: str | None = None) -> AccountManager:
    root = ctx.find_root().params
    tool = tool or root.get("tool") or "qwen"
    _configure_logging(bool(root.get("debug")))
    from credrot.manager import AccountManager
    from credrot.tools import get_profile

    try:
        profile = get_profile(tool)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--tool'") from None
    manager = AccountManager(tool=profile, home=root.get("home"))
    ctx.meta.setdefault(_MANAGERS, []).append(manager)
    return manager


def _main(command: click.Command, argv: Sequence[str] | None, prog: str) -> int:
    try:
        rv = command.main(
            args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False
        )
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    return rv if isinstance(rv, int) else EXIT_OK


# -------------------------------------------------------- shared actions
def _list(ctx: click.Context, as_json: bool, empty_hint: str) -> int:
    from credrot import report

    manager = _manager(ctx)
    infos = manager.list_accounts()
    tool = manager.profile.name
    if as_json:
        click.echo(report.accounts_json(tool, str(manager.home), infos))
        return EXIT_OK
    if not infos:
        click.echo(f"no {tool} accounts in {manager.home}; {empty_hint}")
        return EXIT_OK
    usable = sum(1 for i in infos if i.usable)
    click.echo(f"{tool} accounts in {manager.home} ({len(infos)}, {usable} usable; * = active)")
    for line in report.accounts_table(infos):
        click.echo("  " + line)
    return EXIT_OK


def _stats(ctx: click.Context, as_json: bool, prom: bool, output: str | None) -> int:
    from credrot import report

    manager = _manager(ctx)
    stats = manager.get_stats()
    if prom:
        text = report.prometheus(stats, manager.list_accounts())
    elif as_json:
        text = report.stats_json(stats) + "\n"
    else:
        text = "\n".join(report.stats_lines(stats)) + "\n"
    if output is None or output == "-":
        click.echo(text, nl=False)
        return EXIT_OK
    from pathlib import Path

    from credrot.state import atomic_write

    # Written by rename, so node_exporter's textfile collector never reads half a file.
    atomic_write(Path(output), text.encode("utf-8"), mode=0o644)
    return EXIT_OK


def _describe_unusable(manager: AccountManager) -> str:
    return manager.pool_status().describe(manager.profile.name)


def _switch(ctx: click.Context, index: int) -> int:
    manager = _manager(ctx)
    manager.switch_to(index)
    click.echo(f"switched to account #{index}")
    info = next((i for i in manager.list_accounts() if i.index == index), None)
    if info is not None and not info.usable:
        from datetime import datetime, timezone

        from credrot import report

        state = report.status_text(info, datetime.now(timezone.utc))
        click.echo(
            f"credrot: warning: account #{index} is {state}; calls will move off it",
            err=True,
        )
    return EXIT_OK


def _next(ctx: click.Context) -> int:
    manager = _manager(ctx)
    before = manager.current()
    moved, index = manager.switch_next()
    if not moved:
        _say_error(f"no other usable account: {_describe_unusable(manager)}")
        return EXIT_UNUSABLE
    if index == before:
        click.echo(f"staying on account #{index}")
    else:
        click.echo(f"switched to account #{index}")
    return EXIT_OK


def _remove(ctx: click.Context, index: int) -> int:
    manager = _manager(ctx)
    dest = manager.remove_account(index)
    click.echo(f"removed account #{index}; its file was moved to {dest}")
    return EXIT_OK


def _stdin_bytes() -> bytes:
    stream = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stream.read().encode("utf-8")


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is None or sys.stdin.isatty()
    except (ValueError, OSError):
        return True


def _read_source(source: str) -> bytes | str:
    return _stdin_bytes() if source == "-" else source


def _import(ctx: click.Context, sources: Sequence[str]) -> int:
    manager = _manager(ctx)
    for source in sources:
        index = manager.import_account(_read_source(source))
        label = "stdin" if source == "-" else source
        click.echo(f"added account #{index} from {label} ({manager.slot_path(index)})")
    return EXIT_OK


def _enrol(
    ctx: click.Context, count: int, login_command: str | None, timeout: float
) -> int:
    from credrot.login import enrol

    manager = _manager(ctx)

    def progress(kind: str, message: str) -> None:
        if kind == "added":
            click.echo(message)
        else:
            click.echo(f"credrot: {message}", err=True)

    added = enrol(
        manager, count, command=login_command, timeout=timeout, on_event=progress
    )
    if count > 1:
        click.echo(f"{len(added)} of {count} accounts added")
    return EXIT_OK


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
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(
    __version__, "-V", "--version", prog_name="credrot", message="%(prog)s %(version)s"
)
def cli(tool: str, home: str | None, debug: bool) -> None:
    """Keep several accounts of a quota-limited AI CLI and rotate between them.

    \b
    Start here:
      credrot accounts add --count 3   log in three accounts (private homes)
      credrot demo                     watch rotation work on simulated accounts
      credrot run -- -p "hello"        run the tool; a spent account is skipped
    """


@cli.group(context_settings=CONTEXT)
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
@click.pass_context
def accounts_add(
    ctx: click.Context,
    count: int,
    sources: tuple[str, ...],
    login_command: str | None,
    timeout: float,
) -> int:
    """Log in new accounts, each with a private temporary home, and add them.

    The login never sees the real home, so it cannot overwrite an existing account.
    The credential it writes is validated, refused if already in the pool, and saved
    in the next free slot (0600). Ctrl-C leaves no half-written file.
    """
    if sources:
        if count != 1:
            raise click.UsageError("--count cannot be combined with --from")
        return _import(ctx, sources)
    return _enrol(ctx, count, login_command, timeout)


@accounts.command("remove", context_settings=CONTEXT, short_help="Remove account N (to trash/).")
@click.argument("index", type=click.IntRange(min=1), metavar="N")
@click.pass_context
def accounts_remove(ctx: click.Context, index: int) -> int:
    """Remove account N (its file is moved to the home's trash/, never deleted)."""
    return _remove(ctx, index)


@accounts.command("switch", context_settings=CONTEXT)
@click.argument("index", type=click.IntRange(min=1), metavar="N")
@click.pass_context
def accounts_switch(ctx: click.Context, index: int) -> int:
    """Make account N the active one."""
    return _switch(ctx, index)


@accounts.command("next", context_settings=CONTEXT)
@click.pass_context
def accounts_next(ctx: click.Context) -> int:
    """Move to the next usable account (exit 3 when there is none)."""
    return _next(ctx)


@accounts.command("reset", context_settings=CONTEXT, short_help="Make account N (or all) ready.")
@click.argument("index", type=click.IntRange(min=1), metavar="[N]", required=False)
@click.pass_context
def accounts_reset(ctx: click.Context, index: int | None) -> int:
    """Forget that account N (default: every account) is spent: ready again."""
    manager = _manager(ctx)
    done = manager.reset(index)
    if not done:
        click.echo("no accounts to reset")
    else:
        click.echo(f"ready again: {', '.join(f'#{i}' for i in done)}")
    return EXIT_OK


@cli.command(context_settings=CONTEXT, short_help="Counters: calls, quota hits, switches.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--prometheus",
    "prom",
    is_flag=True,
    help="Prometheus text format (credrot_* metrics, labels tool and account).",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write to FILE atomically (for node_exporter's textfile collector).",
)
@click.pass_context
def stats(ctx: click.Context, as_json: bool, prom: bool, output: str | None) -> int:
    """Totals and per-account counters: calls, successes, quota hits, switches."""
    if as_json and prom:
        raise click.UsageError("choose one of --json and --prometheus")
    return _stats(ctx, as_json, prom, output)


@cli.command(context_settings=CONTEXT, short_help="Check the tool and the pool; --fix repairs.")
@click.option("--fix", is_flag=True, help="Apply the safe fixes (adopt, restore link, chmod).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--skip-tool", is_flag=True, help="Don't look for the tool or run its --version.")
@click.pass_context
def doctor(ctx: click.Context, fix: bool, as_json: bool, skip_tool: bool) -> int:
    """Check the tool, the home, permissions, the pointer, credentials, locks.

    Each finding comes with its fix; --fix applies the safe ones. Exit 1 when an
    error remains.
    """
    import json

    from credrot.doctor import apply_fixes, diagnose

    manager = _manager(ctx)
    findings = diagnose(manager, tool=not skip_tool)
    done: list[str] = []
    if fix:
        done = apply_fixes(manager, findings)
        tool_findings = [f for f in findings if f.check == "tool"]
        findings = tool_findings + diagnose(manager, tool=False)
    errors = [f for f in findings if f.level == "error"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tool": manager.profile.name,
                    "home": str(manager.home),
                    "fixed": done,
                    "findings": [f.as_dict() for f in findings],
                    "ok": not errors,
                },
                indent=2,
            )
        )
        return EXIT_ERROR if errors else EXIT_OK
    click.echo(f"credrot doctor: {manager.profile.name} in {manager.home}")
    for line in done:
        click.echo(f"  fixed  {line}")
    for f in findings:
        click.echo(f"  {f.level:<5}  {f.message}")
        if f.fix and f.level in ("warn", "error"):
            how = " (credrot doctor --fix does this)" if f.fixable else ""
            click.echo(f"         fix: {f.fix}{how}")
    problems = [f for f in findings if f.level in ("warn", "error")]
    fixable = sum(1 for f in problems if f.fixable)
    if problems:
        click.echo(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
            + (f", {fixable} fixable with --fix" if fixable else "")
        )
    else:
        click.echo("no problems found")
    return EXIT_ERROR if errors else EXIT_OK


@cli.command(
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
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    run_tool: str | None,
    timeout: float,
    max_retries: int,
    args: tuple[str, ...],
) -> int:
    """Run the tool with ARGS on a usable account, rotating when one is spent.

    \b
    Example: git diff | credrot run -- -p "review this diff"
    Stdin is passed through; the final attempt's output is printed. The exit code is
    the tool's, or 3 when no account is usable.
    """
    from credrot.wrapper import Wrapper

    manager = _manager(ctx, run_tool)
    data: bytes | None = None
    if not _stdin_is_terminal():
        data = _stdin_bytes()
    wrapper = Wrapper(manager.profile, manager=manager, max_retries=max_retries, timeout=timeout)
    result = wrapper.run_args(list(args), stdin=data)
    if result.output:
        click.echo(result.output, nl=False)
    if result.stderr:
        click.echo(result.stderr, nl=False, err=True)
    if result.pool_exhausted:
        _say_error(result.error or "no usable account")
        return EXIT_UNUSABLE
    if result.success:
        return result.exit_code or EXIT_OK
    if result.error:
        _say_error(result.error)
    return result.exit_code or EXIT_ERROR


@cli.command(context_settings=CONTEXT, short_help="Watch rotation work on simulated accounts.")
@click.pass_context
def demo(ctx: click.Context) -> int:
    """See rotation work: simulated accounts in a throwaway pool, no real account needed.

    Nothing in your real home is read or written, and nothing goes over the network.
    """
    from credrot.demo import run_demo

    root = ctx.find_root().params
    _configure_logging(bool(root.get("debug")))
    return run_demo(click.echo, tool=root.get("tool") or "qwen")


def main(argv: Sequence[str] | None = None) -> int:
    """``credrot``'s entry point."""
    return _main(cli, argv, "credrot")


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
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=600.0, help="Seconds per login."
)
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
        return _list(ctx, params["as_json"], "run 'account-qwen --setup' or '--add'")
    if action == "switch":
        return _switch(ctx, params["switch"])
    if action == "switch_next":
        return _next(ctx)
    return _stats(ctx, params["as_json"], False, None)


def account_qwen_main(argv: Sequence[str] | None = None) -> int:
    """``account-qwen``'s entry point."""
    return _main(account_qwen, argv, "account-qwen")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["EXIT_UNUSABLE", "account_qwen", "account_qwen_main", "cli", "main"]
