"""Which account a call or a switch should use: the strategies, as pure functions.

``fill-first`` stays on the active account until it is spent, then takes the next one in
cyclic order; ``round-robin`` moves on at every call; ``least-used`` takes the account
with the fewest calls today. "Usable" is a predicate the caller passes in, so these
functions read no file and can be tested on plain numbers.

Parallel callers are spread over the accounts by their calls in flight (:func:`relieve`):
a caller whose account already carries more calls in flight than another usable account
starts on the least loaded one instead (fewest in flight, then fewest calls today), and
the pool's active account does not move for it. One caller at a time never sees another
call in flight, so every strategy keeps its meaning; eight callers on four accounts run
two on each, and each account runs out with at most the calls it carried then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence

from credrot import state as st
from credrot.pool.context import Pool

Usable = Callable[[int], bool]


def cyclic_after(
    order: Sequence[int], usable: Usable, *, after: int | None, exclude: Collection[int]
) -> int | None:
    """The first usable account after ``after`` in cyclic order (never ``after`` itself)."""
    start = 0
    if after is not None:
        start = next((pos for pos, i in enumerate(order) if i > after), len(order))
    for i in [*order[start:], *order[:start]]:
        if i in exclude or i == after:
            continue
        if usable(i):
            return i
    return None


def least_used(
    order: Sequence[int],
    usable: Usable,
    load: Callable[[int], tuple[float, ...]],
    *,
    exclude: Collection[int],
) -> int | None:
    """The usable account with the smallest ``load`` key (ties: lowest number)."""
    for i in sorted((i for i in order if i not in exclude), key=lambda i: (*load(i), i)):
        if usable(i):
            return i
    return None


def pick(
    strategy: str,
    order: Sequence[int],
    usable: Usable,
    load: Callable[[int], tuple[float, ...]],
    *,
    after: int | None,
    exclude: Collection[int],
) -> int | None:
    if strategy == "least-used":
        return least_used(order, usable, load, exclude=exclude)
    return cyclic_after(order, usable, after=after, exclude=exclude)


def for_call(
    strategy: str,
    order: Sequence[int],
    usable: Usable,
    load: Callable[[int], tuple[float, ...]],
    *,
    current: int | None,
    exclude: Collection[int],
) -> tuple[int | None, str]:
    """(the account for the next call, why the pool moves there if it does)."""
    current_ok = (
        current is not None and current not in exclude and current in order and usable(current)
    )
    if strategy == "fill-first" and current_ok:
        return current, ""
    if strategy == "least-used":
        choice = least_used(order, usable, load, exclude=exclude)
        return choice, "least-used" if current_ok else "current unusable"
    choice = cyclic_after(order, usable, after=current, exclude=exclude)
    if choice is None and current_ok:
        return current, ""
    return choice, "round-robin" if current_ok else "current unusable"


def relieve(
    order: Sequence[int],
    usable: Usable,
    flying: Mapping[int, int],
    load: Callable[[int], tuple[float, ...]],
    *,
    chosen: int,
    exclude: Collection[int],
) -> int:
    """The account a call starts on, given the calls in flight on each: ``chosen``
    unless another usable account carries fewer, or as many but has been used less;
    then the one carrying fewest (ties: the smaller ``load``, then the lowest number).

    Evening out the use, not only the calls in flight, makes the accounts run out at
    about the same moment, when each has only its own few calls in flight: the fewest
    tool runs meet a spent account (a lone caller never sees a call in flight, so the
    strategy's choice stands for it)."""
    mine = flying.get(chosen, 0)
    if mine == 0:
        return chosen
    own = load(chosen)

    def lighter_than_chosen(i: int) -> bool:
        theirs = flying.get(i, 0)
        return theirs < mine or (theirs == mine and load(i) < own)

    lighter = [i for i in order if i != chosen and i not in exclude and lighter_than_chosen(i)]
    for i in sorted(lighter, key=lambda i: (flying.get(i, 0), *load(i), i)):
        if usable(i):
            return i
    return chosen


# --------------------------------------------------------------- on a pool
def _load_of(state: st.PoolState, now: float) -> Callable[[int], tuple[float, ...]]:
    def load(i: int) -> tuple[float, ...]:
        acct = state.account(i)
        return (acct.calls_on(now), acct.last_used or 0.0)

    return load


def next_after(
    pool: Pool,
    state: st.PoolState,
    after: int | None,
    *,
    exclude: Collection[int],
    now: float | None = None,
) -> int | None:
    """The next usable account of ``pool`` after ``after``, by the pool's strategy."""
    when = time.time() if now is None else now
    return pick(
        pool.strategy,
        list(pool.slots.listing()),
        lambda i: pool.usable(state, i, when),
        _load_of(state, when),
        after=after,
        exclude=exclude,
    )


def call_choice(
    pool: Pool,
    state: st.PoolState,
    *,
    exclude: Collection[int],
    now: float,
    model: str | None = None,
) -> tuple[int | None, str]:
    return for_call(
        pool.strategy,
        list(pool.slots.listing()),
        lambda i: pool.usable(state, i, now, model),
        _load_of(state, now),
        current=state.current,
        exclude=exclude,
    )


def spread_choice(
    pool: Pool,
    state: st.PoolState,
    chosen: int,
    flying: Mapping[int, int],
    *,
    exclude: Collection[int],
    now: float,
    model: str | None = None,
) -> int:
    return relieve(
        list(pool.slots.listing()),
        lambda i: pool.usable(state, i, now, model),
        flying,
        _load_of(state, now),
        chosen=chosen,
        exclude=exclude,
    )
