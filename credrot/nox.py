"""nox sessions for any project that uses credrot: ``accounts-setup`` and ``rotation-stats``.

Register them in your own ``noxfile.py`` with one line::

    import credrot.nox  # noqa: F401  (adds the sessions accounts-setup and rotation-stats)

Both run in the environment nox itself runs in (where credrot is installed, since the
noxfile imports it), so they need no network and no virtualenv of their own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import nox

#: Options of the ``credrot`` group that may appear anywhere in the posargs.
_GLOBAL_OPTIONS = ("--tool", "--home")


def split_posargs(posargs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--tool T`` / ``--home D`` (global options) from the command's own."""
    global_args: list[str] = []
    rest: list[str] = []
    args = list(posargs)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_OPTIONS:
            if "=" in arg:
                global_args.append(arg)
            elif i + 1 < len(args):
                global_args += [arg, args[i + 1]]
                i += 1
            else:
                rest.append(arg)  # let click report the missing value
        else:
            rest.append(arg)
        i += 1
    return global_args, rest


@nox.session(name="accounts-setup", venv_backend="none")
def accounts_setup(session: nox.Session) -> None:
    """Log in new accounts interactively, each in a private home (e.g. -- --count 5)."""
    if not session.interactive:
        session.error(
            "accounts-setup logs in accounts at a terminal, and this session is not "
            "interactive; run it from a terminal, or import a credential file with "
            "`credrot accounts add --from FILE`"
        )
    global_args, rest = split_posargs(session.posargs)
    session.run(
        sys.executable, "-m", "credrot", *global_args, "accounts", "add", *rest, external=True
    )


@nox.session(name="rotation-stats", venv_backend="none")
def rotation_stats(session: nox.Session) -> None:
    """Show the pool's counters (-- --json, or -- --prometheus -o FILE)."""
    global_args, rest = split_posargs(session.posargs)
    session.run(sys.executable, "-m", "credrot", *global_args, "stats", *rest, external=True)
