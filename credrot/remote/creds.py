"""Credentials in the store, each with its generation: every machine starts from the
newest token, and a write-back from an older generation is refused.

A slot whose bytes differ from the fingerprint of the generation this machine last
synced was changed here (an import, a token the tool refreshed during a call, one saved
while the store was down): it is offered to the store as the next generation of the one
it came from. If another machine got there first the offer is refused and this machine
takes the store's copy instead — so a refresh on one machine is used by all, and a stale
copy never replaces a newer one. The refused bytes are kept in ``backups/`` (they may be
an account imported here under a number another machine took at the same moment).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credrot.fsutil import atomic_write
from credrot.remote import scripts
from credrot.remote.cache import SyncMark, fingerprint
from credrot.remote.client import run_script
from credrot.remote.seal import Sealer

if TYPE_CHECKING:
    from credrot.pool.context import Pool


def ensure_key(client: Any, keys: scripts.Keys, sealer: Sealer) -> None:
    """Write the key check value if the store has none; refuse a key that differs."""
    from credrot.remote.seal import KEYCHECK

    pipe = client.pipeline(transaction=False)
    pipe.set(keys.keycheck, sealer.seal(KEYCHECK), nx=True)
    pipe.get(keys.keycheck)
    sealer.check(pipe.execute()[1])


def fetch(client: Any, keys: scripts.Keys, sealer: Sealer, index: int) -> tuple[int, bytes] | None:
    gen, blob = client.hmget(keys.cred(index), ["gen", "blob"])
    if gen is None or blob is None:
        return None
    return int(gen), sealer.open(blob, f"the credential of account #{index}")


def install(pool: Pool, mark: SyncMark, index: int, gen: int, raw: bytes) -> bool:
    """Make slot ``index`` hold generation ``gen``; True when the file was rewritten."""
    path = pool.layout.slot_path(index)
    try:
        here = path.read_bytes()
    except FileNotFoundError:
        here = None
    mark.gens[index], mark.fps[index] = gen, fingerprint(raw)
    if here == raw:
        return False
    if pool.profile.parse_credential(raw)[0] is None:
        return False  # never replace a slot with something the tool cannot read
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, raw)
    pool.slots.forget(index)
    pool.events.audit("synced", to=index, reason=f"credential generation {gen} from the store")
    return True


def offer(
    client: Any, keys: scripts.Keys, sealer: Sealer, pool: Pool, mark: SyncMark, index: int
) -> int | None:
    """Offer slot ``index`` to the store if it changed here; the store's revision when
    written, None when there was nothing to offer or the store's copy won."""
    slot = pool.slots.read(index)
    if slot.raw is None or slot.data is None:
        return None
    fp = fingerprint(slot.raw)
    if mark.fps.get(index) == fp:
        return None
    known = index in mark.gens
    mode = "cas" if known else "create"
    expected = mark.gens.get(index, 1)
    args = [index, expected, sealer.seal(slot.raw), mode]
    got = run_script(client, scripts.PUT_CRED, [keys.rev, keys.changes, keys.cred(index)], args)
    if int(got[0]) == 1:
        mark.gens[index], mark.fps[index] = int(got[1]), fp
        return int(got[2])
    newer = fetch(client, keys, sealer, index)
    if newer is not None:
        if newer[1] != slot.raw:
            kept = _backup(pool, index, slot.raw)
            pool.events.audit(
                "store-refused",
                to=index,
                reason=f"generation {newer[0]} in the store is newer; this copy is kept as "
                f"{kept.parent.name}/{kept.name}",
            )
        install(pool, mark, index, *newer)
    return None


def _backup(pool: Pool, index: int, raw: bytes) -> Path:
    """Keep bytes the store refused where credentials that belong nowhere go."""
    folder = pool.layout.backup_dir
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 10**9:09d}Z"
    dest = folder / f"account-{index}-not-stored-{stamp}{pool.profile.account_suffix}"
    atomic_write(dest, raw)
    return dest


def offer_changed(
    client: Any, keys: scripts.Keys, sealer: Sealer, pool: Pool, mark: SyncMark
) -> list[int]:
    """Offer every slot changed since the last sync (only when the folder changed)."""
    folder = pool.layout.accounts_dir
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return []
    if mtime == mark.accounts_mtime and time.time_ns() - mtime > 50_000_000:
        return []  # (a change in the same clock tick as the last look is looked for)
    revs = []
    for index in pool.slots.listing():
        rev = offer(client, keys, sealer, pool, mark, index)
        if rev is not None:
            revs.append(rev)
    mark.accounts_mtime = os.stat(folder).st_mtime_ns
    return revs
