"""credrot: keep several accounts for a quota-limited AI CLI and rotate between them.

The public names are imported lazily so ``import credrot`` (and every console script)
starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AccountInfo",
    "AccountManager",
    "CredrotError",
    "Outcome",
    "OutcomeKind",
    "QwenWrapper",
    "ToolProfile",
    "Wrapper",
    "WrapperResult",
    "classify",
    "get_profile",
]

_WHERE = {
    "AccountInfo": "credrot.manager",
    "AccountManager": "credrot.manager",
    "CredrotError": "credrot.errors",
    "Outcome": "credrot.kinds",
    "OutcomeKind": "credrot.kinds",
    "classify": "credrot.classify",
    "QwenWrapper": "credrot.wrapper",
    "Wrapper": "credrot.wrapper",
    "WrapperResult": "credrot.wrapper",
    "ToolProfile": "credrot.profile",
    "get_profile": "credrot.tools",
}

if TYPE_CHECKING:
    from credrot.classify import classify
    from credrot.errors import CredrotError
    from credrot.kinds import Outcome, OutcomeKind
    from credrot.manager import AccountInfo, AccountManager
    from credrot.profile import ToolProfile
    from credrot.tools import get_profile
    from credrot.wrapper import QwenWrapper, Wrapper, WrapperResult


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'credrot' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
