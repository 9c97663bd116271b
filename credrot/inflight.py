"""What the call-home base says about the pool, from a look at it: the calls in flight
per account (the pool spreads parallel callers by them; ``credrot top`` shows them),
which homes are dead, and whether a refreshed token waits for its slot.

A home stays alive while its caller lives *or* while any process of its tool still runs
(``.credrot-tool.pid`` names the tool's process group): a home is never reaped under a
live tool, so a token the tool refreshes late still reaches its slot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def census(layout: Layout) -> Census:
    me = my_pid()
    counts: dict[int, int] = {}
    dead = False
    kept = callhome.kept_in_memory(layout)
    for entry in callhome.run_entries(layout):
        if entry.name.startswith(callhome.KEPT_PREFIX):
            kept = True
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
    return Census(counts, dead, kept)


def in_flight(layout: Layout) -> dict[int, int]:
    """Calls running now, per account: the live call homes."""
    return census(layout).flying


def dead(layout: Layout) -> list[Path]:
    """Call homes whose caller has died and whose tool no longer runs."""
    return [root for root, caller, _ in homes(layout) if not alive(root, caller)]
