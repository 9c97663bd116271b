"""The pool's named transactions on account files: import, remove, and writing back a
token the tool refreshed during a call — into *its own* slot, never the active one.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from credrot import callhome
from credrot import state as st
from credrot.errors import AccountNotFound, ConfigError, DuplicateAccount, InvalidCredential
from credrot.fsutil import NotARegularFile, atomic_write, own_dir, read_regular
from credrot.pool import pointer, select, slots
from credrot.pool.context import Pool
from credrot.pool.layout import TRASH_DIR


def save_refreshed(
    pool: Pool,
    state: st.PoolState,
    index: int,
    original: bytes | None,
    refreshed: bytes,
    generation: int | None = None,
    *,
    keep: bool = True,
) -> bool | None:
    """Write ``refreshed`` into slot ``index`` when it belongs there; the caller holds
    the lock (``state`` is the transaction's). True when written, False when it does
    not belong there, None when it does but the slot could not be written.

    Fencing: a call that started at the slot's current ``generation`` from what the slot
    still holds (``original``; None: trust the generation) writes its token back.
    Otherwise (the slot moved on meanwhile, or the start is unknown: a reaped copy)
    only a credential that is really newer is written: a later expiry than the
    slot's *and* secrets the slot never held. A copy
    the slot held before is never restored over a newer one — with single-use refresh
    tokens that would lose the account. A token that should be written but cannot be
    (read-only home, disk full) is kept (:func:`credrot.callhome.keep`) and said.
    """
    profile = pool.profile
    data, _ = profile.parse_credential(refreshed)
    if data is None:
        return False
    slot = pool.layout.slot_path(index)
    try:
        now_raw = read_regular(slot)
    except (FileNotFoundError, NotARegularFile):
        return False  # the account was removed (or replaced by a stranger) meanwhile
    if now_raw == refreshed:
        return False
    acct = state.account(index)
    new_print = slots.fingerprint(profile, data)
    now_data, _ = profile.parse_credential(now_raw)
    now_print = slots.fingerprint(profile, now_data) if now_data is not None else ""
    if new_print == now_print:
        return False  # the same tokens, written differently
    unchanged = generation == acct.generation and original in (None, now_raw)
    if not unchanged:
        if new_print in acct.held.split():
            return False  # an older copy of what the slot held
        if now_data is not None:
            old_exp, new_exp = profile.expiry(now_data), profile.expiry(data)
            if old_exp is None or new_exp is None or new_exp <= old_exp:
                return False
    why = _write_slot(pool, index, refreshed)
    if why is not None:
        if keep:
            kept = callhome.keep(pool.layout, index, acct.generation, refreshed)
            pool.unsaved.append(unsaved_text(index, why, kept))
            pool.events.audit("kept", to=index, reason=f"slot not writable ({why})")
        return None
    acct.generation += 1
    acct.held = slots.remember(acct.held, now_print, new_print)
    pool.slots.forget(index)
    pool.events.audit("refreshed", to=index, reason="token refreshed during a call")
    return True


def _write_slot(pool: Pool, index: int, raw: bytes) -> str | None:
    """Write a slot; None when done, else why it could not be."""
    if pool.store.in_memory:
        return "the home is read-only"
    try:
        atomic_write(pool.layout.slot_path(index), raw)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def unsaved_text(index: int, why: str, kept: callhome.Kept) -> str:
    where = (
        f"kept in {kept.path}"
        if kept.path is not None
        else f"kept in the memory of process {os.getpid()} only"
    )
    return (
        f"account #{index}: the refreshed token could not be written to its slot ({why}); "
        f"{where} — the next call or `credrot doctor --fix` writes it back"
    )


def write_back(
    pool: Pool,
    index: int,
    original: bytes | None,
    refreshed: bytes,
    generation: int | None = None,
    *,
    keep: bool = True,
) -> bool | None:
    """:func:`save_refreshed` in a transaction of its own."""
    if pool.profile.parse_credential(refreshed)[0] is None:
        return False
    with pool.store.transaction() as state:
        return save_refreshed(pool, state, index, original, refreshed, generation, keep=keep)


def restore_kept(pool: Pool) -> list[str]:
    """Write kept tokens back to their slots where they belong; returns what was done.
    A token whose slot meanwhile holds something newer is dropped (it is older)."""
    done: list[str] = []
    for item in callhome.kept(pool.layout):
        if item.index not in pool.slots.listing():
            continue
        written = write_back(pool, item.index, None, item.raw, item.generation, keep=False)
        if written is None:
            continue  # still not writable: kept for the next try
        callhome.drop_kept(pool.layout, item)
        if written:
            done.append(f"account #{item.index}: its kept refreshed token is back in its slot")
    return done


def import_account(pool: Pool, raw: bytes, index: int | None = None) -> int:
    """Add a credential as a new account; returns its number."""
    profile = pool.profile
    data, why = profile.parse_credential(raw)
    if data is None:
        raise InvalidCredential(f"not a valid {profile.name} credential: {why}")
    pool.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with pool.store.transaction(require_writable=True) as state:
        pointer.sync(pool, state)
        for path in (pool.home, pool.layout.accounts_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(pool.layout.accounts_dir, 0o700)
        slots = pool.slots.listing()
        owner = pool.slots.owner_of(data)
        if owner is not None:
            raise DuplicateAccount(f"this credential is already account #{owner}")
        if index is None:
            index = max(slots, default=0) + 1
        elif index < 1:
            raise ConfigError("account numbers start at 1")
        elif index in slots:
            raise DuplicateAccount(f"account #{index} already exists")
        atomic_write(pool.layout.slot_path(index), raw)
        state.accounts[index] = st.AccountState()
        pool.events.audit("added", to=index, reason="imported")
        if state.current is None or state.current not in slots:
            state.current = index
            pointer.link(pool, index, state)
        return index


def read_source(source: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InvalidCredential(f"cannot read {source}: {exc.strerror}") from None


def _trash_name(pool: Pool, index: int) -> Path:
    profile = pool.profile
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = pool.layout.trash_dir / f"{profile.account_stem}_{index}.{stamp}{profile.account_suffix}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{profile.account_stem}_{index}.{stamp}.{n}{profile.account_suffix}")
    return dest


def remove_account(pool: Pool, index: int) -> Path:
    """Move an account's file into ``trash/`` (never unlinked); returns where it went."""
    with pool.store.transaction(require_writable=True) as state:
        pointer.sync(pool, state)
        slots = pool.slots.listing()
        if index not in slots:
            raise AccountNotFound(f"no {pool.profile.name} account #{index}")
        own_dir(pool.layout.trash_dir)
        dest = _trash_name(pool, index)
        os.replace(slots[index], dest)
        pool.slots.forget(index)
        state.accounts.pop(index, None)
        pool.events.audit(
            "removed", **{"from": index, "reason": f"moved to {TRASH_DIR}/{dest.name}"}
        )
        if state.current == index:
            nxt = select.next_after(pool, state, index, exclude={index})
            if nxt is None:
                nxt = next(iter(pool.slots.listing()), None)
            if nxt is not None:
                pointer.switch(pool, state, nxt, "removed")
            else:
                state.current = None
                if os.path.islink(pool.layout.pointer):
                    os.unlink(pool.layout.pointer)  # only the link: its target is in the trash
        return dest
