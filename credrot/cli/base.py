"""What every command shares: exit codes, one-line errors, the guard around each command,
the pool named by the global options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

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
        if getattr(ctx.command, "checks_config", True):
            from credrot.config import check_config

            warning = check_config()
            if warning is not None:
                click.echo(f"credrot: warning: {warning}", err=True)
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


#: Where a subcommand's own ``--tool``/``--home`` are kept (``ctx.meta`` is shared by
#: the whole command line, parsed outside in, so the later one wins).
_POOL_OPTION = "credrot.pool-option."


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        ctx.meta[_POOL_OPTION + param.name] = value


def _pool_options(names: Sequence[str]) -> list[click.Parameter]:
    """``--tool``/``--home`` for a subcommand: the same meaning as before it."""
    helps = {
        "tool": ("TOOL", "The AI CLI whose pool to use (as before the subcommand)."),
        "home": ("DIR", "The tool's home holding the pool (as before the subcommand)."),
    }
    return [
        click.Option(
            [f"--{name}"],
            default=None,
            metavar=helps[name][0],
            help=helps[name][1],
            expose_value=False,
            callback=_remember,
        )
        for name in names
    ]


def pool_option(ctx: click.Context, name: str) -> Any:
    """A global option's value: the last one given, before or after the subcommand."""
    given = ctx.meta.get(_POOL_OPTION + name)
    if given is not None:
        return given
    return ctx.find_root().params.get(name)


def emit_json(document: dict[str, Any]) -> None:
    """One JSON object on stdout (the shape every ``--json`` of a changing command shares:
    ``tool``, ``home``, ``ok``, then what the command did)."""
    import json

    click.echo(json.dumps(document, indent=2, default=str))


class _Command(click.Command):
    #: Every command stops at a broken config file first; ``doctor`` reports it instead.
    checks_config = True
    #: ``--tool``/``--home`` are accepted here too (a command with its own leaves them out).
    pool_options: tuple[str, ...] = ("tool", "home")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        have = {name for param in self.params for name in getattr(param, "opts", ())}
        wanted = [n for n in self.pool_options if f"--{n}" not in have]
        self.params.extend(_pool_options(wanted))

    def invoke(self, ctx: click.Context) -> Any:
        return _guard(ctx, lambda: super(_Command, self).invoke(ctx))


class _FindingsCommand(_Command):
    checks_config = False


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Group too
    pool_options: tuple[str, ...] = ("tool", "home")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        have = {name for param in self.params for name in getattr(param, "opts", ())}
        self.params.extend(_pool_options([n for n in self.pool_options if f"--{n}" not in have]))


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
    tool = tool or pool_option(ctx, "tool") or "qwen"
    _configure_logging(bool(root.get("debug")))
    from credrot.manager import AccountManager
    from credrot.tools import get_profile

    try:
        profile = get_profile(tool)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--tool'") from None
    manager = AccountManager(tool=profile, home=pool_option(ctx, "home"), store=root.get("store"))
    ctx.meta.setdefault(_MANAGERS, []).append(manager)
    # Said at once, not with the notices at the end: the user is waiting now.
    manager.pool.store.on_wait = lambda message: click.echo(f"credrot: {message}", err=True)
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


def _describe_unusable(manager: AccountManager) -> str:
    # judged as ``next`` judges: for a call whose model is not known (it may be the one
    # a per-model window is spent for)
    return manager.pool_status(for_call=True).describe(manager.profile.name)


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
