"""What this machine last saw of the store: ``.credrot-store.json`` in the tool home.

The pool's own ``state.yaml`` is the machine's cache of the shared state; this file says
how far it is synced: the store's revision, each credential's generation and the
fingerprint (SHA-256) of the bytes that generation had here, and the accounts marked
while the store was unreachable. It holds no secret. Read and written under the pool
lock; a damaged or foreign file starts a fresh sync (nothing is lost: the store and the
slots keep the data).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from credrot.fsutil import atomic_write

if TYPE_CHECKING:
    from credrot.remote.scripts import Keys
    from credrot.remote.settings import StoreSettings

NAME = ".credrot-store.json"


def identity(settings: StoreSettings, keys: Keys) -> str:
    """Which store and namespace a mark belongs to (no password in it)."""
    return f"{settings.shown}#{keys.base}"


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass
class SyncMark:
    store: str
    epoch: str = ""
    rev: int = 0
    gens: dict[int, int] = field(default_factory=dict)
    fps: dict[int, str] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    accounts_mtime: int = 0
    #: Until when (epoch s) the store counts as down for every process of this machine.
    down_until: float = 0.0
    #: The revision as last written (this machine's own changes advance ``rev`` in
    #: memory; the file is rewritten for them only every :data:`REV_SLACK` revisions —
    #: a process starting from an older revision fetches a few accounts again).
    saved_rev: int = 0

    def text(self) -> str:
        return json.dumps(
            {
                "store": self.store,
                "epoch": self.epoch,
                "rev": self.rev,
                "gens": {str(k): v for k, v in sorted(self.gens.items())},
                "fps": {str(k): v for k, v in sorted(self.fps.items())},
                "dirty": sorted(self.dirty),
                "accounts_mtime": self.accounts_mtime,
                "down_until": self.down_until,
            }
        )


#: What a mark held when it was read or written: :func:`save` writes only when it changed.
Saved = tuple[object, ...]
#: The last mark this process read or wrote per file, by the file's identity: a pool of
#: a thousand accounts is not parsed again for every transaction.
_MEMO: dict[Path, tuple[tuple[int, int, int], SyncMark]] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _copy(mark: SyncMark) -> SyncMark:
    return SyncMark(
        mark.store,
        mark.epoch,
        mark.rev,
        dict(mark.gens),
        dict(mark.fps),
        set(mark.dirty),
        mark.accounts_mtime,
        mark.down_until,
        mark.saved_rev,
    )


def _saved(mark: SyncMark) -> Saved:
    return (
        mark.store,
        mark.epoch,
        mark.saved_rev,
        dict(mark.gens),
        dict(mark.fps),
        set(mark.dirty),
        mark.accounts_mtime,
        mark.down_until,
    )


def _parse(text: str, store: str) -> SyncMark:
    raw = json.loads(text)
    if not isinstance(raw, dict) or raw.get("store") != store:
        raise ValueError("another store")
    mark = SyncMark(
        store,
        str(raw["epoch"]),
        int(raw["rev"]),
        {int(k): int(v) for k, v in raw["gens"].items()},
        {int(k): str(v) for k, v in raw["fps"].items()},
        {int(i) for i in raw["dirty"]},
        int(raw["accounts_mtime"]),
        float(raw["down_until"]),
    )
    mark.saved_rev = mark.rev
    return mark


def load(home: Path, store: str) -> tuple[SyncMark, Saved]:
    """(the mark, what it held as read) — a fresh mark for another store or a damaged
    file."""
    path = home / NAME
    stamp = _stamp(path)
    memo = _MEMO.get(path)
    if stamp is not None and memo is not None and memo[0] == stamp and memo[1].store == store:
        mark = _copy(memo[1])
        return mark, _saved(mark)
    try:
        mark = _parse(path.read_text(encoding="utf-8"), store)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        mark = SyncMark(store)
        return mark, _saved(mark)
    if stamp is not None:
        _MEMO[path] = (stamp, _copy(mark))
    return mark, _saved(mark)


REV_SLACK = 64


def save(home: Path, mark: SyncMark, before: Saved) -> Saved:
    """Write the mark if more than its revision changed (or that by a lot); what the
    file now holds."""
    if abs(mark.rev - mark.saved_rev) < REV_SLACK and _saved(mark) == before:
        return before
    mark.saved_rev = mark.rev
    now = _saved(mark)
    if now == before:
        return before
    path = home / NAME
    atomic_write(path, mark.text().encode("utf-8"), fsync=False)
    stamp = _stamp(path)
    if stamp is not None:
        _MEMO[path] = (stamp, _copy(mark))
    return now
