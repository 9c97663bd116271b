"""Counters of plain successes written in batches, while the caller is alone.

A call that succeeded on a ready account with no quota windows changes only counters
(``calls``, ``successes``, ``requests``, when it was last used). Writing them is most of
what credrot costs per call of a quick tool: a second lock take, a load and a new state
file. So such a settlement is kept in this process as the operation itself and replayed
on the state in the next transaction that writes: at the latest the next lease after
:data:`MAX_COUNT` of them or :data:`MAX_AGE` seconds, any other transaction, a reader
of this process (:meth:`Batch.replay`), :meth:`flush` and the process's exit.

Nothing a second caller must know waits: a status, a mark, a window, a refreshed token
and every outcome but a success are written at once, and the next lease that sees
another call in flight writes the batch first (see :func:`credrot.pool.rotation.lease`).
What a ``kill -9`` can lose is at most :data:`MAX_COUNT` successes' counters, never a
mark or a token.

The operations are replayed rather than their results merged because they are
increments: the state a later transaction loads may have changed meanwhile, and
replaying on it counts exactly what happened.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from credrot.errors import NEVER_RAISED, CredrotError
from credrot.fsutil import my_pid
from credrot.logs import LazyLogger

if TYPE_CHECKING:
    from credrot.state import PoolState

log = LazyLogger(__name__)

#: Settlements kept before the next lease writes them.
MAX_COUNT = 16
#: Seconds the oldest one is kept before the next lease writes them.
MAX_AGE = 0.25
#: The longest wait for the pool lock while a tool runs (a busy lock: the next write).
MEANWHILE_WAIT = 0.05

Op = Callable[["PoolState"], None]


class Batch:
    """The settlements kept for one pool in this process (see the module's text); every
    store of the pool in the process shares it, so each of them reads them."""

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self._since = 0.0
        self._pid = my_pid()
        #: How many of them the open transaction's state holds.
        self._applied = 0
        self._flush: Callable[[float | None], None] | None = None
        #: Audit lines of the kept calls, written when their counters are.
        self._lines: list[Callable[[], None]] = []
        #: Settlements kept so far (a caller tells by it whether its own was).
        self.added = 0

    def __len__(self) -> int:
        return len(self._ops) if self._pid == my_pid() else 0

    def add(self, op: Op, flush: Callable[[float | None], None]) -> None:
        """``flush``: writes them (a transaction of the store that kept this one)."""
        if self._pid != my_pid():  # a forked child: the parent writes its own
            self._ops, self._lines, self._pid = [], [], my_pid()
        if not self._ops:
            self._since = time.monotonic()
        self._flush = flush
        self._ops.append(op)
        self.added += 1

    def later(self, write: Callable[[], None]) -> None:
        """An audit line of a kept call: written with the counters (at once when they
        were written meanwhile), so the log keeps its order."""
        if len(self):
            self._lines.append(write)
        else:
            write()

    def due(self) -> bool:
        return len(self) >= MAX_COUNT or (
            len(self) > 0 and time.monotonic() - self._since >= MAX_AGE
        )

    def apply(self, state: PoolState) -> None:
        """Into the open transaction's state; forgotten only once it is saved."""
        end = len(self)  # another thread may add one meanwhile: it waits for the next
        for op in self._ops[self._applied : end]:
            op(state)
        self._applied = max(self._applied, end)
        lines, self._lines = self._lines, []
        for write in lines:  # before what the transaction itself logs
            write()

    def replay(self, state: PoolState) -> None:
        """Into a state read without the lock (what this process knows is in it)."""
        for op in self._ops[: len(self)]:
            op(state)

    def saved(self) -> None:
        del self._ops[: self._applied]
        self._applied = 0
        if not self._ops:
            self._flush = None

    def unsaved(self) -> None:
        self._applied = 0

    def flush(self, wait: float | None = None) -> None:
        """``wait``: the longest wait for the pool lock (the store's own if None)."""
        if len(self) and self._flush is not None:
            self._flush(wait)

    def meanwhile(self) -> Callable[[], None] | None:
        """What a call does while a tool that takes a while runs: the counters kept from
        the calls before reach the file, so other processes see them now (never raises)."""
        return self._write_quietly if len(self) else None

    def _write_quietly(self) -> None:
        try:
            self.flush(MEANWHILE_WAIT)  # never holds the call past its own timeout
        except _QUIET as exc:  # the next write takes them
            log.debug("call counts not written yet: %s", exc)


_QUIET: tuple[type[BaseException], ...] = (CredrotError, *NEVER_RAISED)
_BATCHES: dict[str, Batch] = {}


def for_pool(state_path: Path) -> Batch:
    """The batch of the pool whose state file is ``state_path``."""
    key = str(state_path)
    batch = _BATCHES.get(key)
    if batch is None:
        batch = _BATCHES[key] = Batch()
    return batch


def _flush_all() -> None:
    """At exit: the kept settlements are written (a failure is logged, never raised);
    a pool whose home is gone has nothing left to count in."""
    for key, batch in list(_BATCHES.items()):
        if not len(batch) or not os.path.isdir(os.path.dirname(key)):
            continue
        try:
            batch.flush()
        except Exception as exc:  # the process is ending: say it, do not raise
            log.warning("%d call counts not written at exit: %s", len(batch), exc)


atexit.register(_flush_all)
