"""``account-qwen --list`` without click: the most frequent read, started fast.

Only the exact shape ``--list [--json] [--home DIR]`` is taken here, and only when no
config file can be in the way (``$CREDROT_CONFIG`` unset and nothing where
:func:`credrot.configpath.config_path` looks), so nothing needs checking first. Anything
else -- another flag, a config file, an error on the way -- is left to the click
command, which says it in its one line (the listing is read-only, so starting again
there changes nothing). What is printed is the same text, built by the same functions
(:func:`list_lines`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from credrot.manager import AccountManager

#: What ``account-qwen --list`` suggests for an empty pool.
LIST_HINT = "run 'account-qwen --setup' or '--add'"


def list_lines(manager: AccountManager, as_json: bool, empty_hint: str) -> list[str]:
    """The lines of ``accounts list`` / ``account-qwen --list`` (``--json``: one object)."""
    from credrot import report

    infos = manager.list_accounts()
    tool = manager.profile.name
    if as_json:
        return [report.accounts_json(tool, str(manager.home), infos)]
    if not infos:
        return [f"no {tool} accounts in {manager.home}; {empty_hint}"]
    usable = sum(1 for i in infos if i.usable)
    head = f"{tool} accounts in {manager.home} ({len(infos)}, {usable} usable; * = active)"
    return [head, *("  " + line for line in report.accounts_table(infos))]


def _parse(argv: Sequence[str]) -> tuple[bool, str | None] | None:
    """(as_json, home) for ``--list [--json] [--home DIR]`` in any order, else None."""
    listed = as_json = False
    home: str | None = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--list" and not listed:
            listed = True
        elif arg == "--json":
            as_json = True
        elif arg == "--home" and args and args[0] and not args[0].startswith("-"):
            home = args.pop(0)
        elif arg.startswith("--home=") and len(arg) > len("--home="):
            home = arg[len("--home=") :]
        else:
            return None
    return (as_json, home) if listed else None


def _config_may_exist() -> bool:
    from credrot.configpath import CONFIG_ENV, config_path

    return bool(os.environ.get(CONFIG_ENV)) or os.path.lexists(config_path())


def account_qwen_list(argv: Sequence[str]) -> int | None:
    """Run ``account-qwen --list`` here and return its exit code, or None to leave it to
    the click command."""
    parsed = _parse(argv)
    if parsed is None or _config_may_exist():
        return None
    as_json, home = parsed
    from credrot import logs

    logs.quiet = True  # the core's notices are printed below, once, not logged
    try:
        from credrot.manager import AccountManager

        manager = AccountManager(home=home)
        manager.pool.store.on_wait = lambda message: print(f"credrot: {message}", file=sys.stderr)
        lines = list_lines(manager, as_json, LIST_HINT)
        notices = list(dict.fromkeys(manager.notices))
    except KeyboardInterrupt:
        print("\ncredrot: error: interrupted", file=sys.stderr)
        return 130
    except Exception:
        return None  # the click command says what went wrong, in one line
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `account-qwen --list | head -1`: the reader left; nothing more to say.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    for notice in notices:
        print(f"credrot: warning: {notice}", file=sys.stderr)
    return 0
