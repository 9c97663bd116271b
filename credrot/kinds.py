"""The words credrot thinks in: what a run meant, what an account is, and how one maps to the other.

Everything here is plain data with no I/O, so every layer (classification, state, pool,
surfaces) can share the vocabulary without importing one another.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from datetime import datetime

#: Linux caps one argv string at 128 KiB; anything near that goes through stdin.
MAX_ARG_BYTES = 128 * 1024
#: The tool's own refresh lock counts as held for this long (Qwen Code's stale time).
TOOL_LOCK_FRESH = 10.0


class OutcomeKind(str, enum.Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH_FAILED = "auth_failed"
    DISABLED = "disabled"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class AccountStatus(str, enum.Enum):
    """What the pool knows of one account. The values are the words of ``state.yaml``."""

    READY = "ready"
    EXHAUSTED = "exhausted"
    RATE_LIMITED = "rate_limited"
    NEEDS_LOGIN = "needs_login"
    DISABLED = "disabled"
    #: Not stored: the slot's file is not a credential the tool would accept.
    INVALID = "invalid"
    #: Not stored: usable, but already tried by the call that reports it.
    TRIED = "tried"

    def __str__(self) -> str:
        return self.value

    @property
    def timed(self) -> bool:
        """Passes by itself once its ``until`` time is reached."""
        return self in (AccountStatus.EXHAUSTED, AccountStatus.RATE_LIMITED)


#: The statuses ``state.yaml`` may hold (the others are derived when listing).
STORED_STATUSES = (
    AccountStatus.READY,
    AccountStatus.EXHAUSTED,
    AccountStatus.RATE_LIMITED,
    AccountStatus.NEEDS_LOGIN,
    AccountStatus.DISABLED,
)

#: What an outcome that rotates makes of the account it happened on.
STATUS_FOR: dict[OutcomeKind, AccountStatus] = {
    OutcomeKind.OK: AccountStatus.READY,
    OutcomeKind.QUOTA_EXHAUSTED: AccountStatus.EXHAUSTED,
    OutcomeKind.RATE_LIMITED: AccountStatus.RATE_LIMITED,
    OutcomeKind.AUTH_FAILED: AccountStatus.NEEDS_LOGIN,
    OutcomeKind.DISABLED: AccountStatus.DISABLED,
}


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    message: str = ""
    retry_after: float | None = None
    resets_at: datetime | None = None
    #: The quota window the tool named (``5h``, ``week``...; see :mod:`credrot.windows`).
    window: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.OK

    @property
    def rotates(self) -> bool:
        """True when the account cannot serve this call and another one should."""
        return self.kind in (
            OutcomeKind.QUOTA_EXHAUSTED,
            OutcomeKind.AUTH_FAILED,
            OutcomeKind.DISABLED,
        )

    @classmethod
    def success(cls) -> Outcome:
        return cls(OutcomeKind.OK)

    @classmethod
    def error(cls, message: str) -> Outcome:
        return cls(OutcomeKind.ERROR, message)


@dataclass(frozen=True)
class Rule:
    """One pattern of a tool's error output and what it means.

    The regex is compiled on first use: the profiles hold dozens of them, and a command
    that only lists the pool should not pay for compiling them at start-up. A loader of
    user-written patterns should touch ``rule.pattern`` to reject a bad one early.
    """

    kind: OutcomeKind
    source: str
    flags: int = re.IGNORECASE
    #: The quota window this text names (``5h``, ``week``, ``month``); "" for none.
    window: str = ""
    #: An abort rule with ``silence`` stops the tool only when the tool prints nothing
    #: more for this many seconds after the line (Codex's ``Reconnecting... 1/5`` before
    #: it sleeps out a long ``retry-after``; after a dropped connection it goes on soon).
    silence: float = 0.0

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.source, self.flags)

    @classmethod
    def of(cls, kind: OutcomeKind, *patterns: str, window: str = "") -> Rule:
        joined = "|".join(f"(?:{p})" for p in patterns)
        return cls(kind, joined, window=window)
