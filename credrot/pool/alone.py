"""The lease of a caller alone on the pool, taken without the pool lock.

When no other call is in flight, nothing is kept back for a write, the pointer links
the active account and that account is the one to use, a lease changes nothing: it
reads the state, reserves a call home and reads the credential. The lock would order
it only against another caller's transaction — and every caller that settles has its
call home in flight, which sends this one to the locked lease. So the lease reads the
state file as it is (it is always replaced whole), reserves its home, and looks at the
call-home base once more: a caller that appeared meanwhile sends it to the locked lease
too (the home given back), so two callers starting together still spread.

Anything else — a switch, a dead caller's home, a kept token, a pointer to repair, a
shared store, a batch due for writing — is the locked lease's (:func:`.rotation.lease`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection

from credrot import callhome, inflight
from credrot import state as st
from credrot.pool import refresh, select
from credrot.pool.context import Pool
from credrot.pool.lease import Lease


def lease(pool: Pool, exclude: frozenset[int] | set[int], model: str | None) -> Lease | None:
    """The lease, or None when it needs the lock (see the module's text)."""
    store = pool.store
    if not store.may_keep() or store.batch.due() or not alone_now(pool, reserved=False):
        return None
    state, _ = st.load_state(pool.layout.state_path)
    if state is None or state.current is None:
        return None
    choice = state.current
    if not _links(pool, choice):
        return None  # missing, a file to adopt, moved by hand: the locked lease repairs it
    now = time.time()
    if not _stays(pool, state, exclude, now, model):
        return None
    slot = pool.slots.read(choice)
    if slot.raw is None or slot.data is None:
        return None
    acct = state.account(choice)
    due = refresh.due(pool.profile, slot.data, acct.last_outcome, now)
    home = callhome.reserve(pool.layout, choice)
    if not alone_now(pool, reserved=callhome.in_base(pool.layout, home)):
        callhome.discard(home)  # someone started meanwhile: the lock orders the two
        return None
    store.seen(state)
    return Lease(choice, slot.raw, slot.data, now, due, home, acct.generation, model, alone=True)


def _links(pool: Pool, index: int) -> bool:
    """The pointer is credrot's own link to ``index``'s slot (one ``readlink``: a file,
    a missing pointer or any other text is the locked lease's to repair)."""
    try:
        return os.readlink(pool.layout.pointer) == pool.layout.rel_target(index)
    except OSError:
        return False


def _stays(
    pool: Pool, state: st.PoolState, exclude: Collection[int], now: float, model: str | None
) -> bool:
    """The strategy keeps the pool on its active account for this call (``fill-first``
    does while it is usable: asked directly, the common case)."""
    current = state.current
    if current is None or current in exclude:
        return False
    if pool.strategy == "fill-first":
        return pool.usable(state, current, now, model)
    choice, _reason = select.call_choice(pool, state, exclude=exclude, now=now, model=model)
    return choice == current


def alone_now(pool: Pool, *, reserved: bool) -> bool:
    """No call in flight but this one's own home (``reserved``: in the call-home base
    already), no dead home, no kept token. Once the home is reserved, the base's link
    count is enough when it says no other folder is there (a kept token was ruled out by
    the look before the reservation)."""
    if reserved:
        beside = callhome.beside_mine(pool.layout)
        if beside is not None and beside <= 0:
            return True
    census = inflight.census(pool.layout)
    if census.dead or census.kept or census.refused:
        return False
    return sum(census.flying.values()) <= int(reserved)
