"""The pool's named transactions on account files: import, remove, and writing back a
token the tool refreshed during a call — into *its own* slot, never the active one.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from credrot import state as st
from credrot.errors import AccountNotFound, ConfigError, DuplicateAccount, InvalidCredential
from credrot.fsutil import NotARegularFile, atomic_write, read_regular
from credrot.pool import pointer, select
from credrot.pool.context import Pool
from credrot.pool.layout import TRASH_DIR


def save_refreshed(pool: Pool, index: int, original: bytes, refreshed: bytes) -> bool:
    """Write ``refreshed`` into slot ``index`` if it is newer; the caller holds the lock.

    Written only if the slot still holds what the call started from, or the refreshed
    token expires later than what the slot holds now. Returns True when written.
    """
    profile = pool.profile
    data, _ = profile.parse_credential(refreshed)
    if data is None:
        return False
    if pool.store.in_memory or not os.access(pool.layout.accounts_dir, os.W_OK):
        return False
    slot = pool.layout.slot_path(index)
    try:
        now_raw = read_regular(slot)
    except (FileNotFoundError, NotARegularFile):
        return False  # the account was removed (or replaced by a stranger) meanwhile
    if now_raw == refreshed:
        return False
    if now_raw != original:
        now_data, _ = profile.parse_credential(now_raw)
        old_exp = profile.expiry(now_data) if now_data else None
        new_exp = profile.expiry(data)
        if old_exp is not None and (new_exp is None or new_exp <= old_exp):
            return False
    atomic_write(slot, refreshed)
    pool.slots.forget(index)
    pool.events.audit("refreshed", to=index, reason="token refreshed during a call")
    return True


def write_back(pool: Pool, index: int, original: bytes, refreshed: bytes) -> bool:
    """:func:`save_refreshed` in a locked section of its own."""
    if pool.profile.parse_credential(refreshed)[0] is None:
        return False
    with pool.store.locked():
        return save_refreshed(pool, index, original, refreshed)


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
        pool.layout.trash_dir.mkdir(mode=0o700, exist_ok=True)
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
