"""The command line: ``credrot ...`` and the seed-compatible ``account-qwen``.

Thin over the core: click parses, plain functions call the core and print. Heavy
modules (the manager, the wrapper, pluggy, the simulator) are imported inside the
commands that need them, so ``account-qwen --list`` starts about as fast as importing
click.

Every entry point is ``main(argv=None) -> int``. Exit codes: 0 ok, 1 error, 2 usage,
3 no usable account, 130 interrupted. Errors are one line on stderr (a traceback only
with ``--debug``); warnings the core collected are printed as ``credrot: warning: ...``.
"""

from __future__ import annotations

from credrot.cli.account_qwen import account_qwen, account_qwen_main
from credrot.cli.base import EXIT_UNUSABLE
from credrot.cli.main import cli, main

__all__ = ["EXIT_UNUSABLE", "account_qwen", "account_qwen_main", "cli", "main"]
