"""The pool's named transactions for rotating: switch, lease an account for a call,
record what the call found.

Each function is one transaction (:meth:`FileStore.transaction`): one lock take, one
state load, one save if something changed. Switching is compare-and-swap where callers
race (``switch_next(expected=)``): N callers that saw the same failure advance the pool
once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from credrot import callhome, inflight, windows
from credrot import state as st
from credrot.errors import AccountNotFound, ConfigError, InvalidCredential
from credrot.kinds import AccountStatus, Outcome, OutcomeKind
from credrot.pool import accounts, marking, pointer, refresh, select, upkeep
from credrot.pool.alone import alone_now
from credrot.pool.alone import lease as lease_alone
from credrot.pool.context import Pool
from credrot.pool.lease import Lease as Lease
from credrot.pool.refresh import RefreshLease

if TYPE_CHECKING:
    from credrot.telemetry import Reading


def switch_to(pool: Pool, index: int) -> int:
    """Make account ``index`` the active one."""
    with pool.store.transaction(require_writable=True) as state:
        pointer.sync(pool, state)
        if index not in pool.slots.listing():
            raise AccountNotFound(
                f"no {pool.profile.name} account #{index} in {pool.layout.accounts_dir}"
            )
        slot = pool.slots.read(index)
        if slot.why is not None:
            raise InvalidCredential(f"account #{index} is not a valid credential: {slot.why}")
        if state.current != index or pointer.state_of(pool) != "link":
            pointer.switch(pool, state, index, "manual")
        return index


def switch_next(pool: Pool, expected: int | None, reason: str) -> tuple[bool, int]:
    """Move to the next usable account; with ``expected``, only if still on it (CAS)."""
    with pool.store.transaction(require_writable=True) as state:
        pointer.sync(pool, state)
        now = time.time()
        current = state.current
        moved = expected is not None and current is not None and current != expected
        if moved and current is not None and pool.usable(state, current, now):
            return True, current  # another caller already moved the pool off ``expected``
        nxt = select.next_after(pool, state, current, exclude=set(), now=now)
        if nxt is None:
            return False, current if current is not None else 0
        pointer.switch(pool, state, nxt, reason)
        return True, nxt


def lease(
    pool: Pool,
    exclude: frozenset[int] | set[int] = frozenset(),
    *,
    reserve: bool = False,
    model: str | None = None,
) -> Lease | None:
    """The account the next attempt should use, with its credential; the pool moves
    there if needed. None when no usable account is left (beside ``exclude``).
    ``model``: the model the call names (a per-model window of another one is no bar).

    With ``reserve`` the attempt's call home is made here, under the lock, so it counts
    as in flight for the next caller's choice; a caller finding the chosen account
    busier than another usable one starts there (:func:`.select.relieve`) without
    moving the pool.
    """
    if reserve:
        got = lease_alone(pool, exclude, model)  # no lock needed: see its module
        if got is not None:
            return got
    upkept = not reserve
    heeded = reserve
    while True:
        try:
            return _lease(pool, exclude, reserve=reserve, model=model, upkept=upkept, heeded=heeded)
        except _Upkeep:
            upkeep.reap_call_homes(pool)  # then leased again, whatever it could not do
            upkept = True
        except _Settling as wait:
            _wait_for_marks(pool, wait.accounts)
            heeded = False  # the marks are saved now, or they never came


class _Upkeep(Exception):
    """A caller died with a call home, or a token waits for its slot: the reaper comes
    first (the dead caller may have refreshed the token the lease would hand out)."""


class _Settling(Exception):
    """Every account the lease could start on was just refused to another caller, whose
    mark is on its way: the lease waits for it rather than spend a run on it."""

    def __init__(self, accounts: frozenset[int]) -> None:
        super().__init__()
        self.accounts = accounts


#: The longest wait for another caller to record the refusal it announced.
SETTLE_WAIT = 2.0


def _wait_for_marks(pool: Pool, accounts: frozenset[int]) -> None:
    """Until no live caller announces a refusal on ``accounts`` (at most SETTLE_WAIT)."""
    deadline = time.monotonic() + SETTLE_WAIT
    while time.monotonic() < deadline and inflight.census(pool.layout).refused & accounts:
        time.sleep(0.005)


def _lease(
    pool: Pool,
    exclude: frozenset[int] | set[int],
    *,
    reserve: bool,
    model: str | None,
    upkept: bool,
    heeded: bool,
) -> Lease | None:
    """``heeded``: an account another caller was just refused on is not started on
    (:mod:`credrot.inflight`); the pool itself moves only on the mark."""
    with pool.store.transaction(keep_batch=True) as state:
        census = inflight.census(pool.layout) if reserve else None
        if census is not None and not upkept and (census.dead or census.kept):
            raise _Upkeep
        flying = census.flying if census is not None else {}
        refused = census.refused - set(exclude) if census is not None and heeded else set()
        if flying:  # another caller is choosing too: it sees what this one counted
            pool.store.batch.apply(state)
        pointer.sync(pool, state)
        now = time.time()
        while True:
            choice, reason = select.call_choice(pool, state, exclude=exclude, now=now, model=model)
            if choice is None:
                return None
            start, avoid = choice, {*exclude, *refused}
            if choice in refused:
                other, _ = select.call_choice(pool, state, exclude=avoid, now=now, model=model)
                if other is None:
                    raise _Settling(frozenset(refused))
                start = other
            if flying:
                start = select.spread_choice(
                    pool, state, start, flying, exclude=avoid, now=now, model=model
                )
            slot = pool.slots.read(start)
            if slot.raw is not None and slot.data is not None:
                break
            exclude = {*exclude, start}  # vanished or damaged since it was listed
        if choice != state.current:
            pointer.switch(pool, state, choice, reason, model=model)
        acct = state.account(start)
        pool.store.began(start, now)
        raw, data = slot.raw, slot.data
        if census is not None and census.kept:
            raw, data = _kept_or(pool, start, acct.generation, raw, data)
        due = refresh.due(pool.profile, data, acct.last_outcome, now)
        home = callhome.reserve(pool.layout, start) if reserve else None
        alone = census is not None and not flying
        return Lease(start, raw, data, now, due, home, acct.generation, model, alone)


def _kept_or(
    pool: Pool, index: int, generation: int, raw: bytes, data: dict[str, object]
) -> tuple[bytes, dict[str, object]]:
    """A refreshed token kept because the slot could not take it is newer than the
    slot: a call starts from it (with a single-use refresh token the slot's is spent)."""
    for item in reversed(callhome.kept(pool.layout)):  # the newest first
        if item.index == index and item.generation == generation:
            kept_data, _ = pool.profile.parse_credential(item.raw)
            if kept_data is not None:
                return item.raw, kept_data
    return raw, data


def hold_refresh(
    pool: Pool, got: Lease, deadline: float
) -> tuple[Lease, RefreshLease | None] | None:
    """Take the account's refresh lease when the call will refresh its token.

    Returns the lease to run on (re-read after the wait: the holder before may have
    refreshed the token, then no lease is kept) and the refresh lease if still held;
    None when the wait outlasted ``deadline`` or the account became unusable meanwhile.
    """
    if not got.refresh_due:
        return got, None
    held = RefreshLease(pool.layout, got.index, pool.store.shared)
    try:
        if not held.acquire(deadline):
            callhome.discard(got.home)
            return None
        upkeep.reap_call_homes(pool)  # a dead holder's refreshed token reaches its slot
        fresh = _reread(pool, got)
    except BaseException:
        held.release()
        callhome.discard(got.home)
        raise
    if fresh is None or not fresh.refresh_due:
        held.release()
        if fresh is None:
            callhome.discard(got.home)
            return None
        return fresh, None
    return fresh, held


def _reread(pool: Pool, got: Lease) -> Lease | None:
    index = got.index
    with pool.store.transaction() as state:
        now = time.time()
        slot = pool.slots.read(index)
        if slot.raw is None or slot.data is None or not pool.usable(state, index, now, got.model):
            return None
        acct = state.account(index)
        due = refresh.due(pool.profile, slot.data, acct.last_outcome, now)
        return replace(
            got,
            raw=slot.raw,
            data=slot.data,
            started=now,
            refresh_due=due,
            generation=acct.generation,
        )


def settle(
    pool: Pool,
    index: int,
    outcome: Outcome,
    *,
    original: bytes | None = None,
    refreshed: bytes | None = None,
    mark: bool = True,
    count_call: bool = True,
    until: datetime | None = None,
    started: float | None = None,
    readings: Sequence[Reading] = (),
    request: bool = False,
    generation: int | None = None,
    model: str | None = None,
    alone: bool = False,
) -> int | None:
    """Record what an attempt on ``index`` found, in one transaction with the write-back
    of a token the tool refreshed meanwhile; move the pool off a spent account.
    ``started``: when the attempt began (a success clears only older marks);
    ``generation``: the slot's generation then (fencing, see :mod:`.accounts`);
    ``alone``: no other call was in flight at its lease (a plain success is then kept
    for the next write, see :mod:`.batch`).

    Returns the account the pool is on afterwards. ``request``: the first attempt of a
    wrapper call (counted once in ``requests``).
    """

    def record(state: st.PoolState, now: float) -> None:
        _record(
            pool,
            state,
            index,
            outcome,
            now,
            mark=mark,
            count_call=count_call,
            until=until,
            started=started,
            readings=readings,
            request=request,
            model=model,
        )

    kept = pool.store.batch
    if (
        alone
        and not kept.due()
        and _counters_only(pool, index, outcome, original, refreshed, until, readings)
        and alone_now(pool, reserved=True)  # still: but this attempt's own home
    ):
        at = time.time()
        kept.add(lambda state: record(state, at), pool.store.flush)
        return pool.store.last_current
    with pool.store.transaction() as state:
        if refreshed is not None and original is not None:
            accounts.save_refreshed(pool, state, index, original, refreshed, generation)
        record(state, time.time())
        pool.store.ended(index)
        return state.current


def _counters_only(
    pool: Pool,
    index: int,
    outcome: Outcome,
    original: bytes | None,
    refreshed: bytes | None,
    until: datetime | None,
    readings: Sequence[Reading],
) -> bool:
    """Whether settling this attempt changes nothing but the account's counters: a
    success with no new token, no usage reading and no window, on an account this
    process last saw ready (a second caller could need nothing else from it now)."""
    store = pool.store
    last = store.last
    if outcome.kind is not OutcomeKind.OK or readings or until is not None or last is None:
        return False
    if (refreshed is not None and refreshed != original) or not store.may_keep():
        return False
    acct = last.accounts.get(index)
    return (
        acct is not None
        and acct.status == st.READY.value
        and acct.until is None
        and not acct.windows
        and acct.last_outcome in ("", OutcomeKind.OK.value)
        and not pool.limits.caps_for(index)
    )


def _record(
    pool: Pool,
    state: st.PoolState,
    index: int,
    outcome: Outcome,
    now: float,
    *,
    mark: bool,
    count_call: bool,
    until: datetime | None,
    started: float | None,
    readings: Sequence[Reading],
    request: bool,
    model: str | None,
) -> None:
    state.requests += request
    acct = state.account(index)
    before = acct.effective_status(now)
    per_model = pool.profile.per_model_windows
    # A per-model window's quota leaves the account's status alone (other models)
    model_only = windows.model_only(outcome, per_model)
    spent = marking.apply(
        acct,
        outcome,
        pool.profile,
        now,
        count_call=count_call,
        until=until,
        mark=mark and not model_only,
        started=started,
    )
    if model_only and mark:
        acct.quota_hits += 1
    windows.after_call(
        acct,
        index,
        outcome,
        now,
        started=started,
        limits=pool.limits,
        readings=readings,
        counted=count_call,
        per_model=per_model,
        model=model,
    )
    recovered = acct.effective_status(now) is AccountStatus.READY
    if outcome.kind is OutcomeKind.OK and before is not AccountStatus.READY and recovered:
        pool.events.audit("recovered", to=index, reason="call succeeded")
    if spent:
        until_at = acct.until
        pool.events.exhausted(index, outcome, None if until_at is None else _utc(until_at))
        if state.current == index or state.current is None:
            pointer.sync(pool, state)
            nxt = select.next_after(pool, state, index, exclude=set(), now=now)
            if nxt is not None and not pool.store.in_memory:
                pointer.switch(pool, state, nxt, outcome.kind.value)
            elif nxt is not None:
                state.current = nxt
    if model_only and mark:
        window = windows.entries(acct).get(outcome.window, {}).get("until")
        pool.events.exhausted(index, outcome, None if window is None else _utc(window))


def mark(
    pool: Pool, index: int, status: str, *, until: datetime | None = None, reason: str = ""
) -> None:
    """Set an account's status by hand: ``exhausted``/``rate_limited`` (until T),
    ``needs_login``, ``disabled`` or ``ready`` (recovered)."""
    if status not in st.STATUSES:
        raise ConfigError(f"unknown status {status!r} (choose from {', '.join(st.STATUSES)})")
    chosen = AccountStatus(status)
    if chosen.timed and until is None:
        raise ConfigError(f"status {status!r} needs an until time")
    with pool.store.transaction(require_writable=True) as state:
        if index not in pool.slots.listing():
            raise AccountNotFound(f"no {pool.profile.name} account #{index}")
        marking.set_status(
            state.account(index), chosen, until if chosen.timed else None, reason, time.time()
        )
        if chosen is AccountStatus.READY:
            windows.heal(state.account(index), None)  # recovered by hand: every window
        pool.events.audit(
            "marked" if chosen is not AccountStatus.READY else "recovered",
            to=index,
            reason=f"{status} {reason}".strip(),
        )


def reset(pool: Pool, index: int | None = None) -> list[int]:
    """Forget what is known about one account (or all): they are ready again."""
    with pool.store.transaction(require_writable=True) as state:
        slots = pool.slots.listing()
        if index is not None and index not in slots:
            raise AccountNotFound(f"no {pool.profile.name} account #{index}")
        targets = [index] if index is not None else list(slots)
        for i in targets:
            marking.set_status(state.account(i), AccountStatus.READY, None, "")
            windows.heal(state.account(i), None)  # every window's mark goes too
            pool.events.audit("reset", to=i, reason="manual reset")
        return targets


def note_pool_exhausted(
    pool: Pool, message: str, first_reset: datetime | None, request: bool = False
) -> None:
    from credrot.errors import ReadOnlyHome

    try:
        with pool.store.transaction() as state:
            state.pool_exhausted += 1
            state.requests += request
    except ReadOnlyHome:
        pass
    pool.events.pool_exhausted(message, first_reset)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
