"""Token families at the simulated server, and the CLI's own refresh lock.

Claude Code's and Codex's refresh tokens are single-use: a refresh hands out a new
refresh token and spends the old one. Presenting a spent one is how the provider spots
a stolen copy, so it revokes every token of that account (the account needs a new
login). Two processes that each hold a copy of the same credential and both refresh
therefore lose the account — unless they share one home, where the genuine CLI takes
its refresh lock and re-reads the file under it, and finds the token the first process
wrote. Both halves live here so the simulator reproduces both the defect and the bare
CLI's baseline.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from credrot_sim.base import _REFRESH_BUFFER_MS, _now_ms

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from credrot_sim.creds import _Spec

#: The lock file each CLI holds in its home while it refreshes (FACTS.md). Qwen's lock
#: is an ``O_EXCL`` file credrot itself looks at, so it is left out here.
REFRESH_LOCKS = {"claude": ".oauth_refresh.lock", "codex": "auth.lock"}

#: The outcome of a call that presented a spent refresh token.
REUSED = "refresh_reused"


def spent_owner(state: dict[str, Any], refresh: str) -> str | None:
    """The account a spent (already used) refresh token belonged to, if it is one."""
    owner = state.setdefault("spent_refresh", {}).get(refresh)
    return None if owner is None else str(owner)


def revoked_owner(state: dict[str, Any], refresh: str) -> str | None:
    """The account whose family a revoked (never spent) refresh token belonged to."""
    owner = state.get("revoked_refresh", {}).get(refresh)
    return None if owner is None else str(owner)


def refused(state: dict[str, Any], spec: _Spec, refresh: str) -> tuple[str | None, str]:
    """(account, outcome) of a refresh token the server no longer knows: a spent
    single-use one revokes its family (``refresh_reused``); the newest token of a family
    revoked since is refused as ``revoked``; anything else is a plain 401 (``auth``)."""
    if not spec.rotates_refresh:
        return None, "auth"
    owner = spent_owner(state, refresh)
    if owner is not None:
        revoke(state, owner)
        return owner, REUSED
    owner = revoked_owner(state, refresh)
    return (owner, "revoked") if owner is not None else (None, "auth")


def spend(state: dict[str, Any], name: str, refresh: str) -> None:
    """Remember ``refresh`` as used: presenting it again revokes the account."""
    state["refresh_tokens"].pop(refresh, None)
    state.setdefault("spent_refresh", {})[refresh] = name


def revoke(state: dict[str, Any], name: str) -> None:
    """Revoke every access and refresh token of ``name`` (the whole family)."""
    revoked = state.setdefault("revoked_refresh", {})
    for table in ("access_tokens", "refresh_tokens"):
        for token in [t for t, owner in state[table].items() if owner == name]:
            del state[table][token]
            if table == "refresh_tokens":
                revoked[token] = name
    acc = state["accounts"][name]
    acc["revoked"] = True
    acc["revocations"] = int(acc.get("revocations", 0)) + 1


def check_refresh(state: dict[str, Any], spec: _Spec, name: str, refresh: str) -> bool:
    """Whether ``refresh`` may be used for ``name`` now; a reused single-use token
    revokes the account and answers False."""
    if not spec.rotates_refresh:
        return True
    if state["refresh_tokens"].get(refresh) == name:
        return True
    if spent_owner(state, refresh) == name:
        revoke(state, name)
    return False


def due(toks: tuple[str, str, float] | None) -> bool:
    """Whether the CLI would refresh this token before calling (inside its buffer)."""
    return toks is not None and toks[2] - _REFRESH_BUFFER_MS < _now_ms()


class RefreshGuard:
    """The CLI's refresh lock: held while a due token is refreshed, with the credential
    re-read under it (another process of the same home may have refreshed already).

    Entered only when the token loaded at start is due; a no-op for tools without a
    lock or whose token is fresh.
    """

    def __init__(self, spec: _Spec, cred_path: Path) -> None:
        self.spec = spec
        self.cred_path = cred_path
        self.fd = -1

    def __enter__(self) -> RefreshGuard:
        name = REFRESH_LOCKS.get(self.spec.name)
        if name is None:
            return self
        loaded = self.spec.read(self.cred_path)
        if loaded is None or not due(loaded[1]):
            return self
        fd = os.open(self.cred_path.parent / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
