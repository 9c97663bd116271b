"""What every pool operation needs, in one object: profile, layout, slots, store, events.

The named transactions (:mod:`.rotation`, :mod:`.accounts`, :mod:`.upkeep`) are plain
functions over a :class:`Pool`, so each reads top to bottom and none of them is a method
of a class that knows everything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from credrot import state as st
from credrot import windows
from credrot.kinds import AccountStatus
from credrot.logs import LazyLogger
from credrot.pool.layout import Layout
from credrot.pool.slots import Slots
from credrot.pool.store import FileStore
from credrot.profile import ToolProfile

if TYPE_CHECKING:
    from credrot.events import Events

log = LazyLogger("credrot.manager")

STRATEGIES = ("fill-first", "round-robin", "least-used")


class Pool:
    def __init__(
        self,
        profile: ToolProfile,
        home: Path,
        *,
        strategy: str,
        lock_timeout: float,
        in_memory_fallback: bool,
        plugins: tuple[object, ...],
        store: str | None = None,
    ) -> None:
        self.profile = profile
        self.home = home
        self.strategy = strategy
        self.layout = Layout(home, profile)
        self.notices: list[str] = []
        #: Sentences about refreshed tokens that could not be written to their slots
        #: (where each was kept); the wrapper moves them into its result's warnings.
        self.unsaved: list[str] = []
        self.slots = Slots(self.layout, profile, self.notice)
        self.store = FileStore(
            self.layout,
            lock_timeout=lock_timeout,
            in_memory_fallback=in_memory_fallback,
            notice=self.notice,
            rebuild=self.rebuild,
        )
        self._attach_shared(store)
        self._plugins = plugins
        self._events: Events | None = None
        self._reported_invalid: set[tuple[int, str | None]] = set()
        self._limits: tuple[float, windows.Limits] | None = None
        #: Limits set in code (tests, embedding programs); None: the config file's.
        self.limits_override: windows.Limits | None = None

    @property
    def limits(self) -> windows.Limits:
        """Caps and ``rotate_at`` for this tool: the config file's ``limits:`` section,
        looked at again at most once a second."""
        if self.limits_override is not None:
            return self.limits_override
        now = time.monotonic()
        if self._limits is None or now - self._limits[0] > 1.0:
            from credrot.limits import load_limits

            self._limits = (now, load_limits(self.profile.name))
        return self._limits[1]

    def _attach_shared(self, store: str | None) -> None:
        """Mirror the pool into a shared store when one is set (``store=``,
        ``$CREDROT_STORE`` or the config's ``store:``); the file store alone otherwise."""
        from credrot.remote.settings import resolve

        settings = resolve(store)
        if settings is not None:
            from credrot.remote.shared import SharedPool

            self.store.shared = SharedPool(self, settings)

    @property
    def events(self) -> Events:
        """The pool's hooks; pluggy is imported on first use, so read-only commands
        (``account-qwen --list``) start without it."""
        if self._events is None:
            from credrot.events import Events

            self._events = Events(self.profile.name, self.home, self._plugins)
        return self._events

    def notice(self, message: str) -> None:
        """A warning for the user, said once (the CLI prints them; the log keeps them)."""
        if message not in self.notices:
            self.notices.append(message)
            log.warning("%s", message)

    def rebuild(self) -> st.PoolState:
        """A state for the accounts on disk, when ``state.yaml`` is missing or corrupt."""
        state = st.PoolState()
        for index in self.slots.listing():
            state.account(index)
        target = self.slots.linked()
        if target is not None and target in state.accounts:
            state.current = target
        return state

    # ------------------------------------------------------------- usability
    def valid(self, index: int) -> bool:
        """Whether a slot holds a usable credential; an invalid one is audited once."""
        slot = self.slots.read(index)
        if slot.data is None and (index, slot.why) not in self._reported_invalid:
            self._reported_invalid.add((index, slot.why))
            self.events.audit("invalid", to=index, reason=f"never activated: {slot.why}")
        return slot.data is not None

    def usable(
        self, state: st.PoolState, index: int, now: float | None = None, model: str | None = None
    ) -> bool:
        """Whether account ``index`` can take a call (for ``model``, when the call names one)."""
        acct = state.accounts.get(index)
        when = time.time() if now is None else now
        if acct is not None and acct.effective_status(when) is not AccountStatus.READY:
            return False
        per_model = self.profile.per_model_windows
        if (
            acct is not None
            and windows.blocked(acct, index, when, self.limits, model=model, per_model=per_model)
            is not None
        ):
            return False
        return self.valid(index)
