"""The tool's own credential path (``oauth_creds.json`` for Qwen): a relative link into
``accounts/`` that names the active account.

The tool may replace the link with a regular file (a token refresh by rename, a login):
before the pointer moves, that file is *adopted* into the slot of the account it belongs
to, so a refreshed token is never thrown away. Credential bytes that match no account
are kept in ``backups/``, never deleted.
"""

from __future__ import annotations

import os
import stat
import time
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

from credrot import reasons
from credrot import state as st
from credrot.fsutil import NotARegularFile, atomic_write, own_dir, read_regular, temp_name
from credrot.kinds import TOOL_LOCK_FRESH
from credrot.pool import select
from credrot.pool.context import Pool
from credrot.pool.slots import fingerprint, remember


def state_of(pool: Pool) -> str:
    """``link`` (to a slot), ``file`` (a regular file to adopt), ``missing`` or ``dangling``."""
    return _looked(pool)[0]


def link_of(pool: Pool) -> int | None:
    """The account the pointer links, when it is a link to a slot."""
    kind, target = _looked(pool)
    return target if kind == "link" else None


def _looked(pool: Pool) -> tuple[str, int | None]:
    """:func:`state_of`, and the account linked to when it is ``link``."""
    try:
        s = os.lstat(pool.layout.pointer)
    except FileNotFoundError:
        return "missing", None
    if stat.S_ISLNK(s.st_mode):
        target = pool.slots.linked()
        return ("link", target) if target is not None else ("dangling", None)
    return "file", None


#: A tool lock dated further ahead than this (the clock was set back since it was
#: written) is not a refresh in progress: its age cannot be told.
TOOL_LOCK_SKEW = 2.0


def tool_lock_fresh(age: float) -> bool:
    """Whether a tool lock ``age`` seconds old means the tool is refreshing right now."""
    return -TOOL_LOCK_SKEW <= age < TOOL_LOCK_FRESH


def wait_for_tool_lock(pool: Pool) -> None:
    """Don't move the pointer while the tool itself is refreshing the credential.

    The wait is bounded (the tool itself ignores its lock after ``TOOL_LOCK_FRESH``
    seconds); a lock dated in the future is not waited for, and both are said.
    """
    path = pool.layout.tool_lock
    if path is None:
        return
    deadline = time.monotonic() + TOOL_LOCK_FRESH + 1.0
    while True:
        try:
            age = time.time() - os.lstat(path).st_mtime
        except OSError:
            return
        if age < -TOOL_LOCK_SKEW:
            pool.notice(
                f"{path.name} is dated {-age:.0f} s in the future (the clock was set back?): "
                "not waiting for it"
            )
            return
        if not tool_lock_fresh(age):
            return
        if time.monotonic() >= deadline:
            pool.notice(
                f"{path.name} was still fresh after {TOOL_LOCK_FRESH + 1.0:g} s of waiting: "
                "the pointer moved anyway"
            )
            return
        time.sleep(0.05)


def link(pool: Pool, index: int, state: st.PoolState, *, adopt: bool = True) -> None:
    """Point the tool's credential path at account ``index``."""
    store = pool.store
    if not store.writable():
        if store.in_memory_fallback:
            store.persisted = False
            return
        raise store.read_only_error()
    wait_for_tool_lock(pool)
    # The tool may have replaced the link since this operation began: save it first.
    if adopt:
        adopt_file(pool, state)
    _move_folder_aside(pool)
    tmp = temp_name(pool.layout.pointer, "lnk")
    os.symlink(pool.layout.rel_target(index), tmp)
    try:
        os.replace(tmp, pool.layout.pointer)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # A running CLI reloads the credential only when its mtime is newer.
    with suppress(OSError):
        os.utime(pool.layout.slot_path(index), follow_symlinks=False)
        pool.slots.touched(index)


def _move_folder_aside(pool: Pool) -> None:
    """A folder where the pointer belongs would block every switch: it is moved aside
    (kept, with what it holds) and said."""
    path = pool.layout.pointer
    with suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            aside = path.with_name(f"{path.name}.moved-{os.getpid()}-{os.urandom(4).hex()}")
            os.rename(path, aside)
            pool.notice(f"{path} was a folder, not a link to an account; moved to {aside.name}")


def switch(
    pool: Pool, state: st.PoolState, to: int, reason: str, *, model: str | None = None
) -> None:
    """Make ``to`` the active account: state, pointer, and the event.

    ``reason`` is the cause (``quota_exhausted``, ``current unusable``, ``manual`` ...);
    the event says it as one sentence about the account left behind (:mod:`credrot.reasons`);
    ``model``: the model of the call the pool moves for.
    """
    before = state.current
    left = state.accounts.get(before) if before is not None else None
    per_model = pool.profile.per_model_windows
    invalid = None
    if before is not None and reason == "current unusable":
        invalid = pool.slots.read(before).why  # cached: no parse
    why = reasons.switch(
        reason,
        before,
        left,
        to,
        time.time(),
        pool.limits,
        model=model,
        per_model=per_model,
        invalid=invalid,
    )
    state.current = to
    state.switches_total += 1
    state.last_switch = time.time()
    state.last_switch_from, state.last_switch_to = before, to
    state.account(to).switches_to += 1
    link(pool, to, state)
    pool.events.switched(before, to, why.sentence, cause=reason, **why.fields())


def backup(pool: Pool, raw: bytes, label: str) -> Path:
    """Keep credential bytes that belong nowhere (evidence, never a restore source)."""
    folder = own_dir(pool.layout.backup_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest = folder / f"{label}-{stamp}{pool.profile.account_suffix}"
    atomic_write(dest, raw)
    return dest


def _ensure_dirs(pool: Pool) -> None:
    for path in (pool.home, pool.layout.accounts_dir):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(pool.layout.accounts_dir, 0o700)


def adopt_file(pool: Pool, state: st.PoolState) -> int | None:
    """Save a regular file at the pointer into the account it belongs to.

    Returns that account's number, or None when the file was kept as a backup.
    """
    layout, profile = pool.layout, pool.profile
    try:
        s = os.lstat(layout.pointer)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(s.st_mode) or not stat.S_ISREG(s.st_mode):
        return None
    try:
        raw = read_regular(layout.pointer)
    except NotARegularFile as exc:
        pool.notice(f"{layout.pointer} is {exc.reason}; left as it is")
        return None
    except FileNotFoundError:
        return None
    data, why = profile.parse_credential(raw)
    slots = pool.slots.listing()
    if data is None:
        dest = backup(pool, raw, "unrecognised")
        pool.notice(f"{layout.pointer} was not a valid credential ({why}); kept as {dest}")
        pool.events.audit("adopted", to=None, reason=f"invalid credential kept as {dest.name}")
        return None
    owner = pool.slots.owner_of(data)
    confirmed = owner is not None
    if owner is None and state.current in slots:
        owner = state.current
    if owner is None and not slots:
        _ensure_dirs(pool)
        owner = 1
    if owner is None:
        dest = backup(pool, raw, "unowned")
        pool.notice(f"{layout.pointer} matched no account; kept as {dest}")
        pool.events.audit("adopted", to=None, reason=f"unowned credential kept as {dest.name}")
        return None
    slot = layout.slot_path(owner)
    try:
        old: bytes | None = read_regular(slot)
    except (FileNotFoundError, NotARegularFile):
        old = None  # nothing there, or nothing a credential can be: replaced, not followed
    if old is not None:
        if old == raw:
            return owner
        old_data, _ = profile.parse_credential(old)
        old_exp = profile.expiry(old_data) if old_data else None
        new_exp = profile.expiry(data)
        mine = fingerprint(profile, data)
        now = fingerprint(profile, old_data) if old_data else ""
        older = mine != now and mine in state.account(owner).held.split()  # held before
        if confirmed and old_exp is not None and new_exp is not None and new_exp < old_exp:
            older = True
        if older:
            dest = backup(pool, raw, f"older-{owner}")
            pool.events.audit("adopted", to=owner, reason=f"older copy kept as {dest.name}")
            return owner
        if not confirmed:
            dest = backup(pool, old, f"replaced-{owner}")
            pool.notice(
                f"adopted {layout.pointer} into account #{owner} (the active one); "
                f"its previous file is kept as {dest}"
            )
    atomic_write(slot, raw)
    pool.slots.forget(owner)
    acct = state.account(owner)
    acct.generation += 1  # fencing: a call that started before this write is older
    acct.held = remember(acct.held, fingerprint(profile, data))
    pool.events.audit("adopted", to=owner, reason="refreshed credential saved to its slot")
    return owner


def sync(pool: Pool, state: st.PoolState) -> bool:
    """Adopt a regular pointer file and restore a missing or dangling link.

    Returns True when ``state`` changed.
    """
    if not pool.store.writable():
        return False
    kind, target = _looked(pool)
    if kind == "link":
        if target != state.current:
            state.current = target  # the link was moved by hand: the link wins
            return True
        return False
    owner = None
    if kind == "file":
        wait_for_tool_lock(pool)
        owner = adopt_file(pool, state)
    slots = pool.slots.listing()
    if not slots:
        return owner is not None
    for index in slots:
        state.account(index)
    pick = state.current if state.current in slots else owner
    if pick is None:
        pick = select.next_after(pool, state, None, exclude=set()) or next(iter(slots))
    state.current = pick
    # A file was adopted just above; adopting it again would back it up twice.
    link(pool, pick, state, adopt=kind != "file")
    if kind != "file":
        pool.events.audit("restored", to=pick, reason=f"pointer was {kind}")
    return True
