"""The original package's import name, kept so its users' code runs unchanged.

``from credential_rotation import QwenWrapper, AccountManager`` gives credrot's classes;
new code should import from ``credrot``.
"""

from __future__ import annotations

from credrot.manager import AccountManager
from credrot.wrapper import QwenWrapper, Wrapper, WrapperResult

__all__ = ["AccountManager", "QwenWrapper", "Wrapper", "WrapperResult"]
