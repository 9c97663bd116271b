"""What the call-home base says about the pool, from a look at it: the calls in flight
per account (the pool spreads parallel callers by them; ``credrot top`` shows them),
which homes are dead, and whether a refreshed token waits for its slot.

A home stays alive while its caller lives *or* while any process of its tool still runs
(``.credrot-tool.pid`` names the tool's process group): a home is never reaped under a
live tool, so a token the tool refreshes late still reaches its slot.

A caller whose tool run was just refused on an account (its quota spent, its login
gone) says so at once with a file ``refused-<account>-<pid>-<random>`` in the base,
before it waits for the pool lock to record the mark, and removes it once the mark is
saved: a caller leasing meanwhile does not start on that account (see
:func:`credrot.pool.rotation.lease`). Under many parallel callers the wait for the lock
is the longest part of a refusal, and the refused account looked ready all along.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from credrot import callhome
from credrot.fsutil import my_pid, pid_alive, read_regular
from credrot.pool.layout import Layout


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie does not count: a
    caller killed with ``kill -9`` leaves its dead tool to whoever adopts it)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        procs = os.listdir("/proc")
    except OSError:
        return True
    for name in procs:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def alive(root: Path, caller: int) -> bool:
    """Whether the call in ``root`` (made by process ``caller``) may still be running."""
    if pid_alive(caller):
        return True
    if root.is_symlink():
        return False  # planted in place of a call home: never followed
    try:  # never a FIFO: read_regular
        text = read_regular(root / callhome.TOOL_PID, cap=64).decode("ascii").strip()
    except (OSError, ValueError):
        return False
    return text.isdigit() and int(text) > 1 and _group_alive(int(text))


def homes(layout: Layout) -> list[tuple[Path, int, int | None]]:
    """Every call home of the pool: (root, caller pid, account)."""
    found = []
    for entry in callhome.run_entries(layout):
        parsed = layout.parse_call_dir(entry.name)
        if parsed is not None:
            found.append((Path(entry.path), parsed[0], parsed[1]))
    return found


@dataclass(frozen=True)
class Census:
    """What the call-home base says, from one look at it."""

    #: Calls running now, per account: the live call homes.
    flying: dict[int, int]
    #: Some home's caller has died: a token it refreshed may not be in its slot yet.
    dead: bool
    #: A refreshed token is kept because its slot could not take it.
    kept: bool
    #: Accounts a live caller was just refused on: their marks are on the way.
    refused: frozenset[int] = field(default_factory=frozenset)


def census(layout: Layout) -> Census:
    me = my_pid()
    counts: dict[int, int] = {}
    dead = False
    kept = callhome.kept_in_memory(layout)
    refused: set[int] = set()
    for entry in callhome.run_entries(layout):
        if entry.name.startswith(callhome.KEPT_PREFIX):
            kept = True
            continue
        notice = _refusal(entry.name)
        if notice is not None:
            if _live_notice(entry, notice[1]):
                refused.add(notice[0])
            else:
                dead = True  # its caller died before the mark: the reaper removes it
            continue
        parsed = layout.parse_call_dir(entry.name)
        if parsed is None:
            continue
        caller, index = parsed
        if caller != me and not pid_alive(caller):
            dead = True
            if index is None or not alive(Path(entry.path), caller):
                continue
        if index is not None:
            counts[index] = counts.get(index, 0) + 1
    return Census(counts, dead, kept, frozenset(refused))


def in_flight(layout: Layout) -> dict[int, int]:
    """Calls running now, per account: the live call homes."""
    return census(layout).flying


def dead(layout: Layout) -> list[Path]:
    """Call homes whose caller has died and whose tool no longer runs."""
    return [root for root, caller, _ in homes(layout) if not alive(root, caller)]


#: The name of a refusal notice: ``refused-<account>-<pid>-<random>``.
REFUSED_PREFIX = "refused-"


#: A notice older than this is stale whoever has its pid now: a mark waits for the
#: pool lock at most its timeout (30 s by default), then the notice goes either way.
NOTICE_TTL = 120.0


def _live_notice(entry: os.DirEntry[str], caller: int) -> bool:
    """A notice whose caller lives and is recent (a pid reused after a ``kill -9`` in
    the moment a notice stands must not bar the account for good)."""
    if caller != my_pid() and not pid_alive(caller):
        return False
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime < NOTICE_TTL
    except OSError:
        return False


def _refusal(name: str) -> tuple[int, int] | None:
    """(account, caller pid) of a refusal notice's name, or None for anything else."""
    if not name.startswith(REFUSED_PREFIX):
        return None
    parts = name[len(REFUSED_PREFIX) :].split("-", 2)
    if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


def refusing(layout: Layout, index: int) -> Path | None:
    """Say that this caller's run on ``index`` was just refused (None when the base
    cannot take the notice: the mark still follows, only later for the others)."""
    path = layout.run_dir / f"{REFUSED_PREFIX}{index}-{my_pid()}-{os.urandom(4).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except OSError:
        return None
    return path


def refused_done(path: Path | None) -> None:
    """The mark is saved (or could not be): the notice goes."""
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def stale_refusals(layout: Layout) -> list[Path]:
    """Refusal notices whose caller died before it recorded the mark (or so long ago
    that the pid is someone else's now)."""
    found = []
    for entry in callhome.run_entries(layout):
        notice = _refusal(entry.name)
        if notice is not None and not _live_notice(entry, notice[1]):
            found.append(Path(entry.path))
    return found
