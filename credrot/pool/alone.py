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

import time

from credrot import callhome, inflight
from credrot import state as st
from credrot.fsutil import my_pid
from credrot.pool import pointer, refresh, select
from credrot.pool.context import Pool
from credrot.pool.lease import Lease


def lease(pool: Pool, exclude: frozenset[int] | set[int], model: str | None) -> Lease | None:
    """The lease, or None when it needs the lock (see the module's text)."""
    store = pool.store
    if store.shared is not None or store.in_memory or not store.persisted or store.batch.due():
        return None
    if not _alone(pool):
        return None
    state, _ = st.load_state(pool.layout.state_path)
    if state is None or state.current is None:
        return None
    if pointer.link_of(pool) != state.current:
        return None  # missing, a file to adopt, moved by hand: the locked lease repairs it
    now = time.time()
    choice, _reason = select.call_choice(pool, state, exclude=exclude, now=now, model=model)
    if choice is None or choice != state.current:
        return None
    slot = pool.slots.read(choice)
    if slot.raw is None or slot.data is None:
        return None
    acct = state.account(choice)
    due = refresh.due(pool.profile, slot.data, acct.last_outcome, now)
    home = callhome.reserve(pool.layout, choice)
    if not _alone(pool, own=home.name):
        callhome.discard(home)  # someone started meanwhile: the lock orders the two
        return None
    store.seen(state)
    return Lease(choice, slot.raw, slot.data, now, due, home, acct.generation, model, alone=True)


def _alone(pool: Pool, own: str | None = None) -> bool:
    """No call in flight but ``own`` (the home just reserved), no dead home, no kept
    token. Once a home is reserved, a look at the base's link count is enough when it
    says no other folder is there (a kept token was ruled out by the look before)."""
    if own is not None:
        beside = callhome.beside_mine(pool.layout)
        if beside is not None and beside <= 0:
            return True
    census = inflight.census(pool.layout)
    if census.dead or census.kept:
        return False
    mine = 1 if own is not None and own.startswith(f"{my_pid()}-") else 0
    return sum(census.flying.values()) <= mine
