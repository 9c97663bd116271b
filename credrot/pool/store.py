"""The pool's state on disk, and the one way to change it: a locked transaction.

``with store.transaction() as state:`` takes the pool lock, loads ``state.yaml`` once,
hands the state to the caller and saves it only if it changed — so every named
operation (switch, acquire, record, import, ...) reads and writes the same way, and a
caller that raises leaves the file as it was.

A home that cannot be written (a read-only container mount) either refuses the change
(:class:`ReadOnlyHome`) or, when the caller asked for it (the wrapper), keeps rotating
on an in-memory copy and says so through :attr:`FileStore.persisted`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from credrot import state as st
from credrot.errors import ConfigError, ReadOnlyHome
from credrot.fsutil import is_read_only_error
from credrot.lock import PoolLock
from credrot.pool import batch
from credrot.pool.layout import Layout


class Shared(Protocol):
    """A store every machine shares, kept in step with the files in each transaction
    (:class:`credrot.remote.shared.SharedPool`)."""

    def pull(self, state: st.PoolState) -> None: ...
    def push(self, state: st.PoolState) -> None: ...
    def peek(self, state: st.PoolState) -> None: ...
    def began(self, index: int, started: float) -> None: ...
    def ended(self, index: int) -> None: ...
    def take_refresh(self, index: int, deadline: float) -> object | None: ...
    def give_refresh(self, held: object) -> None: ...


class FileStore:
    def __init__(
        self,
        layout: Layout,
        *,
        lock_timeout: float,
        in_memory_fallback: bool,
        notice: Callable[[str], None],
        rebuild: Callable[[], st.PoolState],
    ) -> None:
        self.layout = layout
        self.lock_timeout = lock_timeout
        #: Keep rotating in memory when the home cannot be written (the wrapper's choice).
        self.in_memory_fallback = in_memory_fallback
        #: False once a change could not be written because the home is read-only.
        self.persisted = True
        self._memory: st.PoolState | None = None
        self._notice = notice
        self._rebuild = rebuild
        self._loaded_text: str | None = None
        #: Told at once when the pool lock is held by another process for a while (a
        #: CLI prints it); without it the wait becomes one of the notices.
        self.on_wait: Callable[[str], None] | None = None
        #: The shared store mirrored in each transaction, if the pool has one.
        self.shared: Shared | None = None
        self._depth = 0
        self._lock: PoolLock | None = None
        #: Settlements that changed only counters, not written yet (:mod:`.batch`).
        self.batch = batch.for_pool(layout.state_path)
        #: The state as this process last left a transaction (what it knows under the lock).
        self.last: st.PoolState | None = None

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def writable(self) -> bool:
        """Whether changes to files of the home can be made right now."""
        return self._memory is None and os.access(self.layout.home, os.W_OK)

    def read_only_error(self) -> ReadOnlyHome:
        return ReadOnlyHome(f"{self.layout.home} is read-only: nothing was changed")

    def require_writable(self) -> None:
        """Refuse a change up front on a read-only home (unless rotating in memory)."""
        if (
            self._memory is None
            and not self.in_memory_fallback
            and not os.access(self.layout.home, os.W_OK)
        ):
            raise self.read_only_error()

    # ----------------------------------------------------------------- load/save
    def load(self) -> st.PoolState:
        """The state as it is now (no lock: a reader may see it a moment old)."""
        state = self._load()
        if self.shared is not None and self._depth == 0:
            self.shared.peek(state)
        self.batch.replay(state)
        return state

    def _load(self) -> st.PoolState:
        if self._memory is not None:
            self._loaded_text = self._memory.to_text()
            return self._memory
        path = self.layout.state_path
        state, why = st.load_state(path)
        if state is not None:
            self._loaded_text = state.loaded_text or state.to_text()
            state.accounts.warn = self._notice
            return state
        if why is not None:
            aside = None
            if os.access(self.layout.home, os.W_OK):
                aside = st.set_aside(path, why)
            kept, _ = st.load_state(self.layout.durable_path)
            self._notice(
                f"state file {path} was corrupt ({why}); "
                + (f"kept as {aside.name}; " if aside else "")
                + (
                    "state taken from its last flushed save (counters since then are lost)"
                    if kept is not None
                    else "state rebuilt from the accounts on disk"
                )
            )
            if kept is not None:
                kept.accounts.warn = self._notice
                self._loaded_text = None  # written again at the next change
                return kept
        rebuilt = self._rebuild()
        # A corrupt file is replaced on the next change; a missing one only when
        # something changes (a read-only command never creates it).
        self._loaded_text = None if why is not None else rebuilt.to_text()
        return rebuilt

    def save(self, state: st.PoolState, text: str | None = None) -> None:
        """``text``: the state's text before the generation is counted (no second one)."""
        state.generation += 1
        if self._memory is not None:
            self._memory = state
            return
        if text is not None:  # the generation is in the head line: only that is redone
            text = state.head_line() + "".join(text.partition("\n")[1:])
        try:
            st.save_state(self.layout.state_path, state, text, self.layout.durable_path)
        except OSError as exc:
            if not isinstance(exc, ReadOnlyHome) and not is_read_only_error(exc):
                raise
            if not self.in_memory_fallback:
                raise self.read_only_error() from None
            self.persisted = False
            self._memory = state

    def _blocked(self, pid: int | None) -> None:
        holder = f" (pid {pid})" if pid is not None and pid != os.getpid() else ""
        message = f"waiting for another credrot{holder} to release {self.layout.lock_path.name}"
        (self.on_wait or self._notice)(message)

    # --------------------------------------------------------------- transaction
    @contextmanager
    def locked(self) -> Iterator[None]:
        """The pool lock alone (a read-only home is used unlocked when allowed)."""
        if not self.layout.home.is_dir():
            raise ConfigError(f"{self.layout.profile.name} home {self.layout.home} does not exist")
        lock = self._lock
        if lock is None or lock.timeout != self.lock_timeout:
            lock = self._lock = PoolLock(
                self.layout.lock_path, self.lock_timeout, on_blocked=self._blocked, guard_dir=True
            )
        try:
            lock.acquire()
        except ReadOnlyHome:
            if not self.in_memory_fallback:
                raise
            self.persisted = False
            yield
            return
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def transaction(
        self, *, require_writable: bool = False, keep_batch: bool = False
    ) -> Iterator[st.PoolState]:
        """Lock, load once, yield the state, save it if it changed, unlock.

        The settlements kept in :attr:`batch` are written with it, unless ``keep_batch``
        (a lease) and they are not due yet; the body may still :meth:`.Batch.apply` them.
        """
        with self.locked():
            state = self._load()
            before = self._loaded_text
            if require_writable:
                self.require_writable()
            outer = self._depth == 0
            self._depth += 1
            try:
                if self.shared is not None:
                    self.shared.pull(state)
                if outer and (not keep_batch or self.batch.due()):
                    self.batch.apply(state)
                yield state
                if self.shared is not None:
                    self.shared.push(state)
                if before is None or not state.unchanged():
                    text = state.to_text()
                    if before is None or text != before:
                        self.save(state, text)
                if outer:
                    self.batch.saved()
                    self.last = state
            finally:
                self._depth -= 1
                if outer:
                    self.batch.unsaved()

    def may_keep(self) -> bool:
        """Whether a settlement may be kept for a later write (:mod:`.batch`) or a lease
        taken without the lock: the files alone hold the pool, and they can be written."""
        return self.shared is None and self._memory is None and self.persisted

    def seen(self, state: st.PoolState) -> None:
        """A state read without the lock is what this process last saw."""
        state.accounts.warn = self._notice
        self.last = state

    @property
    def last_current(self) -> int | None:
        return None if self.last is None else self.last.current

    def flush(self, wait: float | None = None) -> None:
        """Write the settlements kept in :attr:`batch` now; ``wait``: the longest wait
        for the pool lock, if shorter than the store's (then a busy lock raises
        :class:`LockTimeout` and they wait for the next write)."""
        if not len(self.batch):
            return
        timeout = self.lock_timeout
        if wait is not None:
            self.lock_timeout = min(timeout, wait)
        try:
            with self.transaction():
                pass
        finally:
            self.lock_timeout = timeout

    def began(self, index: int, started: float) -> None:
        """A call starts on ``index`` (the shared store counts it in flight)."""
        if self.shared is not None:
            self.shared.began(index, started)

    def ended(self, index: int) -> None:
        if self.shared is not None:
            self.shared.ended(index)
