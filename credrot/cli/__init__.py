"""The command line: ``credrot ...`` and the seed-compatible ``account-qwen``.

Thin over the core: click parses, plain functions call the core and print. Heavy
modules (the manager, the wrapper, pluggy, the simulator) are imported inside the
commands that need them, and this package imports click only when a command needs it:
``account-qwen --list`` is answered without it (:mod:`credrot.cli.fast`).

Every entry point is ``main(argv=None) -> int``. Exit codes: 0 ok, 1 error, 2 usage,
3 no usable account, 130 interrupted. Errors are one line on stderr (a traceback only
with ``--debug``); warnings the core collected are printed as ``credrot: warning: ...``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from credrot.cli.account_qwen import account_qwen
    from credrot.cli.base import EXIT_UNUSABLE
    from credrot.cli.main import cli

__all__ = ["EXIT_UNUSABLE", "account_qwen", "account_qwen_main", "cli", "main"]

_WHERE = {
    "EXIT_UNUSABLE": "credrot.cli.base",
    "account_qwen": "credrot.cli.account_qwen",
    "cli": "credrot.cli.main",
}


def main(argv: Sequence[str] | None = None) -> int:
    """``credrot``'s entry point."""
    from credrot.cli.main import main as full

    return full(argv)


def account_qwen_main(argv: Sequence[str] | None = None) -> int:
    """``account-qwen``'s entry point."""
    from credrot.cli.fast import account_qwen_list

    args = list(sys.argv[1:] if argv is None else argv)
    code = account_qwen_list(args)
    if code is not None:
        return code
    from credrot.cli.account_qwen import account_qwen_main as full

    return full(args)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'credrot.cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Keeps ``credrot.cli.main`` the entry point: importing the submodule of the same
    name would otherwise make the attribute that module (it stays in ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "main" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
