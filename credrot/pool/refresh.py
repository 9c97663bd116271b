"""Refresh leases: one refreshing call per account at a time.

Each call runs the tool against a private copy of its account's credential, which also
hides the tool's own refresh lock. With single-use refresh tokens (Claude Code, Codex)
two calls that both refresh the same copy lose the account: the provider sees a reused
token and revokes the whole family. So a call whose token the tool is about to refresh
(inside the profile's ``refresh_margin`` of expiry, expiry unknown, or the last call on
the account ended in an auth error) first takes an exclusive lease on that account: a
``flock`` on ``.credrot-leases/<N>.lease``. It holds it until the refreshed token is
written back to the slot. Other callers of that account wait for it, bounded by their
budget, and then start from the slot's fresh credential without a lease of their own.
Calls with a fresh token never touch the lease.

With a shared store the lease is taken in the store too, after the local one (so one
process per machine asks): ``SET NX PX`` with a fencing generation, renewed while the
call runs, so two machines never refresh one account at once either. A store that
does not answer leaves the local lease alone in force (fail open).

The lease file is never deleted (two processes could otherwise lock different inodes);
a holder that dies drops its ``flock`` with its last file descriptor, and a caller that
takes the lease next first saves any token the dead holder's call home still holds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from credrot.errors import LockTimeout, ReadOnlyHome
from credrot.fsutil import own_dir
from credrot.kinds import OutcomeKind
from credrot.lock import PoolLock
from credrot.pool.layout import Layout
from credrot.profile import ToolProfile

#: credrot decides before the tool has started; the tool checks its own margin once it
#: runs (node start-up, a loaded machine). A call whose token would enter the tool's
#: margin that much later must hold the lease too, or it could refresh without it.
START_SLACK = 30.0


def due(profile: ToolProfile, data: Mapping[str, object], last_outcome: str, now: float) -> bool:
    """Whether a call starting now on this credential will make the tool refresh it."""
    if profile.env_kind:
        return False  # an API key has nothing to refresh
    if last_outcome == OutcomeKind.AUTH_FAILED.value:
        return True
    expiry = profile.expiry(data)
    return expiry is None or expiry - profile.refresh_margin - START_SLACK <= now


class SharedLeases(Protocol):
    """The refresh lease across machines (:class:`credrot.remote.shared.SharedPool`)."""

    def take_refresh(self, index: int, deadline: float) -> object | None: ...
    def give_refresh(self, held: object) -> None: ...


class RefreshLease:
    """The exclusive lease on one account's refresh; ``acquire`` waits at most until
    ``deadline`` (a ``time.monotonic`` value)."""

    def __init__(self, layout: Layout, index: int, shared: SharedLeases | None = None) -> None:
        self.index = index
        self.path = layout.lease_dir / f"{index}.lease"
        self._lock: PoolLock | None = None
        self._shared = shared
        self._remote: object | None = None

    def __repr__(self) -> str:
        return f"RefreshLease(#{self.index}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self, deadline: float) -> bool:
        """True once held; False when the deadline passed first or no lease file can
        be made (a read-only home, where nothing could be written back either)."""
        try:
            own_dir(self.path.parent)
        except OSError:
            return False
        lock = PoolLock(self.path, timeout=max(0.0, deadline - time.monotonic()))
        try:
            lock.acquire()
        except (LockTimeout, ReadOnlyHome, OSError):
            return False
        if self._shared is not None:
            try:
                remote = self._shared.take_refresh(self.index, deadline)
            except BaseException:
                lock.release()
                raise
            if remote is None:
                lock.release()
                return False
            self._remote = remote
        self._lock = lock
        return True

    def release(self) -> None:
        lock, self._lock = self._lock, None
        remote, self._remote = self._remote, None
        try:
            if remote is not None and self._shared is not None:
                self._shared.give_refresh(remote)
        finally:
            if lock is not None:
                lock.release()
