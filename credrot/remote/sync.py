"""``credrot store push|pull|status``: a whole pool into the store, back, and a look at it.

Both directions hold the local pool lock and run against the pool's files alone (no
live sync in between), and both can be run again at no cost: counters take the larger
value, a deadline only moves later, a window is taken when its copy is newer.

Credentials move only forward. A slot and the store's copy of its account are ordered
by what this machine last synced (``.credrot-store.json``): a slot changed since it
synced generation *g* is newer than *g*, a store past *g* is newer than the slot. A pool
never synced with this store is ordered by the tokens' expiry (the one that expires
later was refreshed later); on a tie the store's copy stands.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from credrot import state as st
from credrot import windows
from credrot.pool import pointer
from credrot.remote import cache, creds, merge, scripts, words
from credrot.remote.client import call, connect, run_script
from credrot.remote.seal import Sealer
from credrot.remote.settings import StoreSettings, load_key

if TYPE_CHECKING:
    from credrot.pool.context import Pool


@dataclass
class Row:
    """What push or pull did to one account."""

    account: int
    credential: str  # created | updated | same | kept-store | kept-local | taken | invalid
    generation: int | None
    state: str  # pushed | pulled | -
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Remote:
    """The store as one tool's pool sees it: connection, key names, the sealer."""

    def __init__(self, settings: StoreSettings, tool: str, *, need_key: bool = True) -> None:
        self.settings = settings
        self.keys = scripts.Keys(settings.prefix, tool)
        self.identity = cache.identity(settings, self.keys)
        self.client: Any = connect(settings)
        self.sealer: Sealer | None = None
        key, where = load_key()
        if key is not None:
            self.sealer = Sealer(key, where)
        elif need_key:
            from credrot.errors import ConfigError

            raise ConfigError(words.no_key(settings.shown, where))

    def __repr__(self) -> str:
        return f"Remote({self.identity!r})"

    def sealed(self) -> Sealer:
        assert self.sealer is not None
        return self.sealer

    def accounts(self) -> list[int]:
        """Every account number the store has heard of."""
        return sorted(int(i) for i in self.client.zrange(self.keys.changes, 0, -1))


def _expiry(pool: Pool, raw: bytes) -> float | None:
    data, _ = pool.profile.parse_credential(raw)
    return pool.profile.expiry(data) if data is not None else None


def _local_is_newer(
    pool: Pool, mark: cache.SyncMark, index: int, here: bytes, stored: tuple[int, bytes]
) -> bool:
    gen, theirs = stored
    synced = mark.gens.get(index)
    if synced is not None and synced == gen:
        return mark.fps.get(index) != cache.fingerprint(here)
    if synced is not None and synced < gen:
        return False
    mine, other = _expiry(pool, here), _expiry(pool, theirs)
    return mine is not None and (other is None or mine > other)


# ------------------------------------------------------------------ push
def push(pool: Pool, remote: Remote) -> list[Row]:
    """Every account of the local pool into the store (the pool lock is held)."""
    return call(remote.settings, lambda: _push(pool, remote))


def _push(pool: Pool, remote: Remote) -> list[Row]:
    client, keys, sealer = remote.client, remote.keys, remote.sealed()
    creds.ensure_key(client, keys, sealer)
    rows: list[Row] = []
    with pool.store.transaction() as state:
        mark, before = cache.load(pool.home, remote.identity)
        for index in pool.slots.listing():
            slot = pool.slots.read(index)
            if slot.raw is None or slot.data is None:
                rows.append(Row(index, "invalid", None, "-", words.INVALID_SLOT))
                continue
            rows.append(_push_one(pool, remote, mark, index, slot.raw, state.account(index)))
        cache.save(pool.home, mark, before)
    return rows


def _push_one(
    pool: Pool,
    remote: Remote,
    mark: cache.SyncMark,
    index: int,
    raw: bytes,
    acct: st.AccountState,
) -> Row:
    client, keys, sealer = remote.client, remote.keys, remote.sealed()
    stored = creds.fetch(client, keys, sealer, index)
    fp = cache.fingerprint(raw)
    put = [keys.rev, keys.changes, keys.cred(index)]
    if stored is None:
        got = run_script(client, scripts.PUT_CRED, put, [index, 1, sealer.seal(raw), "create"])
        what, gen = ("created" if int(got[0]) == 1 else "kept-store"), int(got[1])
    elif stored[1] == raw:
        what, gen = "same", stored[0]
    elif _local_is_newer(pool, mark, index, raw, stored):
        got = run_script(client, scripts.PUT_CRED, put, [index, stored[0], sealer.seal(raw), "cas"])
        what, gen = ("updated", int(got[1])) if int(got[0]) == 1 else ("kept-store", int(got[1]))
    else:
        what, gen = "kept-store", stored[0]
    if what != "kept-store":
        mark.gens[index], mark.fps[index] = gen, fp
    args = merge.push_args(index, acct)
    run_script(client, scripts.PUSH_ACCT, [keys.rev, keys.changes, keys.acct(index)], args)
    return Row(index, what, gen, "pushed", words.pushed(what, gen))


# ------------------------------------------------------------------ pull
def pull(pool: Pool, remote: Remote) -> list[Row]:
    """Every account of the store into the local pool (the pool lock is held)."""
    return call(remote.settings, lambda: _pull(pool, remote))


def _pull(pool: Pool, remote: Remote) -> list[Row]:
    client, keys, sealer = remote.client, remote.keys, remote.sealed()
    sealer.check(client.get(keys.keycheck))
    rows: list[Row] = []
    now = time.time()
    with pool.store.transaction() as state:
        mark, before = cache.load(pool.home, remote.identity)
        for index in remote.accounts():
            h: merge.Hash = client.hgetall(keys.acct(index))
            stored = creds.fetch(client, keys, sealer, index)
            what, gen = "-", None
            if stored is not None:
                what, gen = _pull_cred(pool, mark, index, stored), stored[0]
            if not h and what in ("-", "invalid"):
                continue
            acct = state.account(index)
            if h:
                merge.to_local(h, acct, now)
                merge.windows_into(h, acct)
                if acct.last_outcome == "ok" and acct.last_used is not None:
                    windows.heal(acct, acct.last_used)  # a later success ended those marks
            rows.append(Row(index, what, gen, "pulled" if h else "-", words.pulled(what, gen)))
        cache.save(pool.home, mark, before)
        pointer.sync(pool, state)  # a home that had no account gets its link
    return rows


def _pull_cred(pool: Pool, mark: cache.SyncMark, index: int, stored: tuple[int, bytes]) -> str:
    gen, raw = stored
    slot = pool.slots.read(index)
    if slot.raw == raw:
        mark.gens[index], mark.fps[index] = gen, cache.fingerprint(raw)
        return "same"
    if pool.profile.parse_credential(raw)[0] is None:
        return "invalid"
    if slot.raw is not None and slot.data is not None:
        if _local_is_newer(pool, mark, index, slot.raw, stored):
            mark.gens[index] = gen  # the slot is offered as the next generation
            return "kept-local"
        pointer.backup(pool, slot.raw, f"account-{index}-before-pull")  # an older copy, kept
    creds.install(pool, mark, index, gen, raw)
    return "taken"
