"""``AccountManager``: the pool of one tool home, as the original package's API.

A facade: every method is one named transaction of :mod:`credrot.pool` (or a read of
it). Every mutation takes the pool lock, re-reads state inside it, writes atomically and
emits one audit record; see the package's modules for how each works.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credrot import callhome
from credrot.errors import AccountNotFound, ConfigError
from credrot.fsutil import read_regular
from credrot.kinds import TOOL_LOCK_FRESH, Outcome
from credrot.pool import accounts, pointer, rotation, upkeep, views
from credrot.pool.context import STRATEGIES, Pool
from credrot.pool.layout import RUN_DIR
from credrot.pool.rotation import Lease
from credrot.pool.views import AccountInfo, PoolStatus
from credrot.profile import ToolProfile
from credrot.tools import get_profile

if TYPE_CHECKING:
    from credrot.events import Events
    from credrot.telemetry import Reading

__all__ = [
    "RUN_DIR",
    "STRATEGIES",
    "TOOL_LOCK_FRESH",
    "AccountInfo",
    "AccountManager",
    "Lease",
    "PoolStatus",
]


class AccountManager:
    """The pool of accounts of one tool home.

    ``AccountManager()`` manages Qwen Code's pool in ``$QWEN_HOME`` or ``~/.qwen``;
    ``AccountManager(qwen_dir=PATH)`` or ``AccountManager(tool="claude", home=PATH)``
    choose another home or tool.
    """

    def __init__(
        self,
        qwen_dir: str | os.PathLike[str] | None = None,
        *,
        tool: str | ToolProfile = "qwen",
        home: str | os.PathLike[str] | None = None,
        strategy: str = "fill-first",
        lock_timeout: float = 30.0,
        in_memory_fallback: bool = False,
        plugins: tuple[object, ...] = (),
        store: str | None = None,
    ) -> None:
        profile = get_profile(tool)
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})"
            )
        chosen = home if home is not None else qwen_dir
        root = Path(chosen).expanduser() if chosen is not None else profile.default_home()
        self.pool = Pool(
            profile,
            root.absolute(),
            strategy=strategy,
            lock_timeout=lock_timeout,
            in_memory_fallback=in_memory_fallback,
            plugins=plugins,
            store=store,
        )
        self.profile = profile
        self.home = self.pool.home
        self.strategy = strategy
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"AccountManager(tool={self.profile.name!r}, home={str(self.home)!r})"

    # ------------------------------------------------------------- settings
    @property
    def in_memory_fallback(self) -> bool:
        """Keep rotating in memory when the home cannot be written (the wrapper's choice)."""
        return self.pool.store.in_memory_fallback

    @in_memory_fallback.setter
    def in_memory_fallback(self, value: bool) -> None:
        self.pool.store.in_memory_fallback = value

    @property
    def persisted(self) -> bool:
        """False once a change could not be written because the home is read-only."""
        return self.pool.store.persisted

    @persisted.setter
    def persisted(self, value: bool) -> None:
        self.pool.store.persisted = value

    @property
    def notices(self) -> list[str]:
        return self.pool.notices

    @property
    def events(self) -> Events:
        return self.pool.events

    # ----------------------------------------------------------------- paths
    @property
    def accounts_dir(self) -> Path:
        return self.pool.layout.accounts_dir

    @property
    def pointer(self) -> Path:
        return self.pool.layout.pointer

    @property
    def state_path(self) -> Path:
        return self.pool.layout.state_path

    @property
    def log_path(self) -> Path:
        return self.pool.layout.log_path

    @property
    def lock_path(self) -> Path:
        return self.pool.layout.lock_path

    def slot_path(self, index: int) -> Path:
        return self.pool.layout.slot_path(index)

    # --------------------------------------------------------------- reading
    def slots(self) -> dict[int, Path]:
        """Account files by number; gaps allowed. Other names are reported, never touched."""
        return self.pool.slots.listing()

    def read_credential(self, index: int) -> bytes:
        """The raw bytes of an account's credential (for a private call home)."""
        path = self.slot_path(index)
        try:
            return read_regular(path)  # a FIFO, a link or a huge file: NotARegularFile
        except FileNotFoundError:
            raise AccountNotFound(f"no {self.profile.name} account #{index} ({path})") from None

    def pointer_state(self) -> str:
        """``link`` (to a slot), ``file`` (a regular file to adopt), ``missing`` or ``dangling``."""
        return pointer.state_of(self.pool)

    def current(self) -> int | None:
        return self.pool.store.load().current

    def list_accounts(self) -> list[AccountInfo]:
        return views.list_accounts(self.pool)

    def pool_status(
        self,
        exclude: set[int] | frozenset[int] = frozenset(),
        *,
        for_call: bool = False,
        model: str | None = None,
    ) -> PoolStatus:
        """Which accounts are usable: with no call in view (a per-model window leaves its
        account usable), or ``for_call`` asking for ``model`` (None: the default one)."""
        return views.pool_status(self.pool, exclude, for_call=for_call, model=model)

    def get_stats(self) -> dict[str, Any]:
        return views.stats(self.pool)

    # -------------------------------------------------------------- rotating
    def switch_to(self, index: int) -> int:
        """Make account ``index`` the active one."""
        return rotation.switch_to(self.pool, index)

    def switch_next(
        self, expected: int | None = None, *, reason: str = "manual"
    ) -> tuple[bool, int]:
        """Move to the next usable account.

        With ``expected``, move only if the pool is still on that account
        (compare-and-swap): N callers that saw the same failure advance it once.
        Returns ``(False, current)`` only when no other usable account exists.
        """
        return rotation.switch_next(self.pool, expected, reason)

    def lease(
        self,
        exclude: set[int] | frozenset[int] = frozenset(),
        *,
        reserve: bool = False,
        model: str | None = None,
    ) -> Lease | None:
        """The account (and its credential) for the next attempt of a call (for
        ``model``, when the call names one), or None; with ``reserve``, its call home
        too (counted in flight from now on)."""
        return rotation.lease(self.pool, exclude, reserve=reserve, model=model)

    def acquire(self, exclude: set[int] | frozenset[int] = frozenset()) -> int | None:
        """The account the next call should use, moving the pool there if needed.

        Returns None when no usable account is left (beside ``exclude``).
        """
        got = rotation.lease(self.pool, exclude)
        return got.index if got is not None else None

    def record(
        self,
        index: int,
        outcome: Outcome,
        *,
        count_call: bool = True,
        until: datetime | None = None,
        mark: bool = True,
    ) -> int | None:
        """Record what a call on ``index`` found; mark it and move the pool off it if spent.

        With ``mark=False`` only the counters change (a rate limit about to be retried).
        Returns the account the pool is on afterwards.
        """
        return rotation.settle(
            self.pool, index, outcome, count_call=count_call, until=until, mark=mark
        )

    def settle(
        self,
        lease: Lease,
        outcome: Outcome,
        refreshed: bytes | None,
        *,
        mark: bool = True,
        readings: Sequence[Reading] = (),
        request: bool = False,
    ) -> int | None:
        """:meth:`record` and the write-back of a refreshed token, in one transaction
        (with the usage the tool reported, ``readings``)."""
        return rotation.settle(
            self.pool,
            lease.index,
            outcome,
            original=lease.raw,
            refreshed=refreshed,
            mark=mark,
            started=lease.started,
            readings=readings,
            request=request,
            generation=lease.generation,
            model=lease.model,
            alone=lease.alone,
        )

    def flush(self) -> None:
        """Write the counters of successes kept for a batch now (:mod:`credrot.pool.batch`;
        they are written within a quarter second of calls, and at exit, anyway)."""
        self.pool.store.flush()

    def mark(
        self, index: int, status: str, *, until: datetime | None = None, reason: str = ""
    ) -> None:
        """Set an account's status by hand: ``exhausted``/``rate_limited`` (until T),
        ``needs_login``, ``disabled`` or ``ready`` (recovered)."""
        rotation.mark(self.pool, index, status, until=until, reason=reason)

    def reset(self, index: int | None = None) -> list[int]:
        """Forget what is known about one account (or all): they are ready again."""
        return rotation.reset(self.pool, index)

    def note_pool_exhausted(
        self, message: str, first_reset: datetime | None, request: bool = False
    ) -> None:
        rotation.note_pool_exhausted(self.pool, message, first_reset, request)

    # -------------------------------------------------------- account files
    def write_back(
        self, index: int, original: bytes, refreshed: bytes, generation: int | None = None
    ) -> bool:
        """Save a credential the tool refreshed during a call into *its own* slot.

        Written if the slot is still at ``generation`` and holds what the call started
        from, or the refreshed token is really newer (a later expiry and secrets the
        slot never held). One that cannot be written is kept and said. True when written.
        """
        return bool(accounts.write_back(self.pool, index, original, refreshed, generation))

    def kept_tokens(self) -> list[str]:
        """One sentence per refreshed token kept because its slot could not be written
        (where it is: a file in the call-home base, or this process's memory)."""
        return [
            f"account #{item.index}: a refreshed token could not be written to its slot; "
            + (f"kept in {item.path}" if item.path else f"kept in process {os.getpid()}")
            for item in callhome.kept(self.pool.layout)
        ]

    def restore_kept(self) -> list[str]:
        """Write refreshed tokens kept when their slot could not be written back."""
        return accounts.restore_kept(self.pool)

    def import_account(
        self, source: str | os.PathLike[str] | bytes, index: int | None = None
    ) -> int:
        """Add a credential (a file path or its bytes) as a new account; returns its number."""
        return accounts.import_account(self.pool, accounts.read_source(source), index)

    def remove_account(self, index: int) -> Path:
        """Move an account's file into ``trash/`` (never unlinked); returns where it went."""
        return accounts.remove_account(self.pool, index)

    # --------------------------------------------------------------- upkeep
    def repair(self) -> list[str]:
        """Adopt, restore the pointer, fix permissions. Returns what was done."""
        return upkeep.repair(self.pool)

    def dead_run_dirs(self) -> list[Path]:
        """Private call homes whose process has died (each may hold a token copy)."""
        return upkeep.dead_call_homes(self.pool)

    def clean_run_dirs(self) -> int:
        """Remove private call homes left by processes that died, saving their tokens."""
        return upkeep.reap_call_homes(self.pool)
