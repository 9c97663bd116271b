"""Keeping a home healthy: repair what crashes and hand edits leave behind, and reap
the private call homes of processes that died.

A dead call home may hold the only copy of a token the tool refreshed just before its
caller was killed; it is written back to its own slot before the folder goes.
"""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

from credrot import inflight
from credrot.errors import CredrotError
from credrot.fsutil import (
    STALE_TEMP,
    NotARegularFile,
    chmod_regular,
    pid_alive,
    read_regular,
    remove_tree,
)
from credrot.pool import accounts, pointer
from credrot.pool.context import Pool


def repair(pool: Pool) -> list[str]:
    """Adopt, restore the pointer, fix permissions, clear dead writers' temp files.
    Returns what was done."""
    done: list[str] = []
    layout = pool.layout
    with pool.store.transaction(require_writable=True) as state:
        before = pointer.state_of(pool)
        pointer.sync(pool, state)
        if before != "link" and pointer.state_of(pool) == "link":
            done.append(f"pointer was {before}; now links to account #{pool.slots.linked()}")
        for index, path in pool.slots.listing().items():
            mode = chmod_regular(path, 0o600)
            if isinstance(mode, str):
                done.append(f"account #{index}: left alone, {path.name} is {mode}")
            elif mode & 0o077:
                done.append(f"account #{index}: permissions {oct(mode)} -> 0o600")
        folder = layout.accounts_dir
        with suppress(OSError):
            s = os.lstat(folder)  # a link to a folder elsewhere is not the home's to chmod
            if stat.S_ISDIR(s.st_mode) and stat.S_IMODE(s.st_mode) & 0o077:
                os.chmod(folder, 0o700, follow_symlinks=False)
                done.append(f"{folder}: permissions -> 0o700")
        done += clean_stale_temp(pool)
    return done


def stale_temp(pool: Pool) -> list[tuple[Path, str, bool]]:
    """``(path, name it was for, in accounts/)`` of each temporary file a writer that
    died left (``kill -9`` before its rename). Only files and links count: a folder
    with such a name is not credrot's."""
    found: list[tuple[Path, str, bool]] = []
    for folder, in_accounts in ((pool.home, False), (pool.layout.accounts_dir, True)):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            m = STALE_TEMP.match(entry.name)
            if m is None or pid_alive(int(m.group(2))):
                continue
            with suppress(OSError):
                if not entry.is_dir(follow_symlinks=False):
                    found.append((Path(entry.path), m.group(1), in_accounts))
    return found


def clean_stale_temp(pool: Pool) -> list[str]:
    """Remove the temporary files of writers that died before their rename.

    A pointer or state temp file is removed; a credential's is moved to ``backups/``,
    since it may hold the only copy of a token refreshed just before the crash. A link
    is removed itself (credrot never writes one there), its target never read.
    """
    done: list[str] = []
    for path, stem, in_accounts in stale_temp(pool):
        if in_accounts and not path.is_symlink():
            try:
                raw = read_regular(path)
            except (FileNotFoundError, NotARegularFile):
                continue
            dest = pointer.backup(pool, raw, f"unfinished-{stem}")
            path.unlink(missing_ok=True)
            done.append(f"unfinished write {path.name} kept as {dest}")
        else:
            path.unlink(missing_ok=True)
            done.append(f"removed {path.name}, left by a process that died")
    return done


def dead_call_homes(pool: Pool) -> list[Path]:
    """Private call homes whose caller and tool have died (each may hold a token copy)."""
    return inflight.dead(pool.layout)


def reap_call_homes(pool: Pool) -> int:
    """Remove the call homes of dead processes, saving a refreshed token in each first;
    write back tokens kept when their slot could not be written.

    A home whose caller died while its tool still runs (a tool that outlived the
    parent-death signal, or a process it started) is not removed, but the token in it
    is saved already: the next caller of that account must not refresh the old one.
    """
    accounts.restore_kept(pool)
    removed = 0
    for notice in inflight.stale_refusals(pool.layout):
        inflight.refused_done(notice)
    for root, caller, index in inflight.homes(pool.layout):
        if pid_alive(caller):
            continue
        if index is not None and not pool.profile.env_kind:
            cred = pool.profile.private_home(root) / pool.profile.credential_name
            with suppress(OSError, CredrotError):
                accounts.write_back(pool, index, b"", read_regular(cred))
        if inflight.alive(root, caller):
            continue
        removed += 1
        if root.is_dir() and not root.is_symlink():
            remove_tree(root)
        else:  # a file or a link in its place: never followed
            with suppress(OSError):
                root.unlink()
    return removed
