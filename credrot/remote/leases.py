"""Leases in the store: calls in flight per account, and the per-account refresh lease.

An in-flight lease is a member of ``P:inflight:<n>`` scored with its expiry, so a machine
that dies mid-call stops counting after the lease's time to live. The refresh lease is
``SET P:refresh:<n> <holder> NX PX <ttl>``: one holder across every machine, gone by
itself when its holder dies; each grant takes the next fencing generation from
``P:fence:<n>``, so a holder that outlived its lease can be told from the current one.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from credrot.remote import scripts
from credrot.remote.client import Batch, run_script

#: How long an in-flight lease counts if its call never says it ended (ms).
INFLIGHT_TTL_MS = 15 * 60 * 1000
#: The refresh lease's time to live (ms): a holder renews it every third of that while
#: its call runs, so a call may take as long as it needs and a dead machine's lease
#: ends within this time.
REFRESH_TTL_MS = 10_000


def holder_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"


def begin(client: Any, keys: scripts.Keys, index: int, lease_id: str, ttl_ms: int) -> Any:
    """Count a call in flight on ``index``; answers how many are now."""
    now_ms = int(time.time() * 1000)
    return run_script(client, scripts.BEGIN, [keys.inflight(index)], [lease_id, now_ms, ttl_ms])


def queue_begin(batch: Batch, keys: scripts.Keys, index: int, lease_id: str, ttl_ms: int) -> None:
    """:func:`begin` as part of a round trip of other commands."""
    now_ms = int(time.time() * 1000)
    batch.script(scripts.BEGIN, [keys.inflight(index)], [lease_id, now_ms, ttl_ms])


def queue_end(batch: Batch, keys: scripts.Keys, index: int, lease_id: str) -> None:
    batch.command("zrem", keys.inflight(index), lease_id)


def end(client: Any, keys: scripts.Keys, index: int, lease_id: str) -> None:
    client.zrem(keys.inflight(index), lease_id)


def in_flight(client: Any, keys: scripts.Keys, index: int) -> int:
    now_ms = int(time.time() * 1000)
    return int(client.zcount(keys.inflight(index), f"({now_ms}", "+inf"))


@dataclass(frozen=True)
class RefreshLease:
    index: int
    holder: str
    #: The fencing generation: larger for every later grant on this account.
    fence: int


def take_refresh(
    client: Any, keys: scripts.Keys, index: int, ttl_ms: int, holder: str | None = None
) -> RefreshLease | None:
    """The account's refresh lease, or None while another holder has it."""
    who = holder or holder_id()
    fence = int(
        run_script(
            client, scripts.TAKE_REFRESH, [keys.refresh(index), keys.fence(index)], [who, ttl_ms]
        )
    )
    return RefreshLease(index, who, fence) if fence else None


def renew_refresh(client: Any, keys: scripts.Keys, lease: RefreshLease, ttl_ms: int) -> bool:
    """Extend the lease's time to live; False when it is no longer ours."""
    got = run_script(
        client, scripts.RENEW_REFRESH, [keys.refresh(lease.index)], [lease.holder, ttl_ms]
    )
    return bool(int(got))


def give_refresh(client: Any, keys: scripts.Keys, lease: RefreshLease) -> bool:
    """Release the lease; False when it had expired (and may be someone else's now)."""
    got = run_script(client, scripts.GIVE_REFRESH, [keys.refresh(lease.index)], [lease.holder])
    return bool(int(got))


def current_fence(client: Any, keys: scripts.Keys, index: int) -> int:
    value = client.get(keys.fence(index))
    return int(value) if value is not None else 0


class Renewer:
    """Keeps a held refresh lease alive, from a daemon thread, until :meth:`stop`.

    A renewal that fails (the store went away, the lease is no longer ours) ends the
    thread: the lease then runs out by itself.
    """

    def __init__(self, client: Any, keys: scripts.Keys, lease: RefreshLease, ttl_ms: int) -> None:
        self._client, self._keys, self._lease, self._ttl_ms = client, keys, lease, ttl_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"credrot-refresh-{lease.index}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"Renewer(#{self._lease.index}, fence={self._lease.fence})"

    def _run(self) -> None:
        import redis.exceptions

        while not self._stop.wait(self._ttl_ms / 3000):
            try:
                if not renew_refresh(self._client, self._keys, self._lease, self._ttl_ms):
                    return
            except (redis.exceptions.RedisError, OSError):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


@dataclass(frozen=True)
class Held:
    """What a machine holds of an account's refresh lease in the store: the lease and
    its renewer, or nothing (:data:`UNHELD`) when the store did not answer."""

    lease: RefreshLease | None
    renewer: Renewer | None


UNHELD = Held(None, None)
