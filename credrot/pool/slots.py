"""The account files of a home: which exist, and what each holds.

Listing and parsing are cached on what the filesystem says changed, because every call
asks for both: the listing on the directory's (inode, mtime) — trusted only once that
mtime is older than the filesystem's timestamp granularity, so a change made by another
process in the same clock tick is never missed — and each parsed credential on the
file's (inode, size, mtime).

A slot must be a regular file of at most 1 MiB under its one canonical name
(``oauth_creds_1.json``, never ``_01``; numbers start at 1). Anything else planted in
``accounts/`` — a FIFO, socket, device, directory or a symbolic link leading out of the
home — is listed as invalid with the reason and never opened in a way that blocks or
follows it; another spelling of a number is reported and ignored, so directory order
can never decide which file an account is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from credrot.fsutil import NotARegularFile, read_regular
from credrot.pool.layout import Layout
from credrot.profile import ToolProfile

#: Fingerprints remembered per slot (each 16 hex digits).
HELD_KEPT = 16


def fingerprint(profile: ToolProfile, data: Mapping[str, object]) -> str:
    """A short one-way digest of a credential's secrets: two copies of one token pair
    share it, a refreshed credential does not; nothing of a token can be read from it."""
    import hashlib

    secrets = "\0".join(sorted(profile.secrets_of(data)))
    return hashlib.sha256(secrets.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def remember(held: str, *prints: str) -> str:
    """``held`` (space separated, newest last) with ``prints`` added, the oldest dropped."""
    kept = [p for p in held.split() if p not in prints]
    kept += [p for i, p in enumerate(prints) if p and p not in prints[:i]]
    return " ".join(kept[-HELD_KEPT:])


@dataclass(frozen=True)
class SlotRead:
    """One slot's credential as read now: its bytes and data, or why it is unusable."""

    raw: bytes | None
    data: dict[str, object] | None
    why: str | None

    @property
    def valid(self) -> bool:
        return self.data is not None


class Slots:
    def __init__(self, layout: Layout, profile: ToolProfile, notice: Callable[[str], None]):
        self.layout = layout
        self.profile = profile
        self._notice = notice
        self._listing: tuple[tuple[int, int], dict[int, Path]] | None = None
        self._parsed: dict[int, tuple[tuple[int, int, int], SlotRead]] = {}

    def listing(self) -> dict[int, Path]:
        """Account files by number (gaps allowed); other names are reported, never touched."""
        folder = self.layout.accounts_dir
        try:
            st_dir = os.stat(folder)
        except FileNotFoundError:
            return {}
        except NotADirectoryError:
            self._notice(f"{folder} is not a directory")
            return {}
        key = (st_dir.st_ino, st_dir.st_mtime_ns)
        cached = self._listing
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        found: dict[int, Path] = {}
        for entry in entries:
            index = self.layout.slot_index(entry.name)
            if index is None:
                if not entry.name.startswith(".") and not entry.name.endswith(".tmp"):
                    self._notice(
                        f"ignoring {entry.path}: not named "
                        f"{self.profile.account_stem}_<number>{self.profile.account_suffix}"
                    )
                continue
            canonical = self.layout.slot_name(index) if index > 0 else None
            if entry.name != canonical:
                self._notice(
                    f"ignoring {entry.path}: "
                    + (
                        f"not the canonical name {canonical} of account #{index}"
                        if canonical
                        else "account numbers start at 1"
                    )
                )
                continue
            found[index] = Path(entry.path)
        result = dict(sorted(found.items()))
        settled = time.time_ns() - st_dir.st_mtime_ns > 50_000_000
        self._listing = (key, result) if settled else None
        return dict(result)

    def read(self, index: int) -> SlotRead:
        """The slot's credential, parsed once per version of the file."""
        path = self.layout.slot_path(index)
        try:
            s = os.lstat(path)
        except FileNotFoundError:
            return SlotRead(None, None, "file is missing")
        key = (s.st_ino, s.st_size, s.st_mtime_ns)
        cached = self._parsed.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            raw = read_regular(path)
        except FileNotFoundError:
            return SlotRead(None, None, "file is missing")
        except NotARegularFile as exc:
            return SlotRead(None, None, f"it is {exc.reason}")
        except OSError as exc:
            return SlotRead(None, None, f"cannot be read ({exc.strerror})")
        data, why = self.profile.parse_credential(raw)
        result = SlotRead(raw, data, why)
        self._parsed[index] = (key, result)
        return result

    def forget(self, index: int) -> None:
        """Drop what is cached of a slot this process just rewrote."""
        self._parsed.pop(index, None)

    def touched(self, index: int) -> None:
        """Only the slot's mtime changed (a pointer move bumps it): keep the parse."""
        cached = self._parsed.get(index)
        if cached is None:
            return
        try:
            s = os.lstat(self.layout.slot_path(index))
        except OSError:
            return
        if (s.st_ino, s.st_size) == cached[0][:2]:
            self._parsed[index] = ((s.st_ino, s.st_size, s.st_mtime_ns), cached[1])

    def linked(self) -> int | None:
        """The account the tool's credential path links to, if it is a link to a slot."""
        try:
            target = os.readlink(self.layout.pointer)
        except OSError:
            return None
        index = self.layout.slot_index(os.path.basename(target))
        # Only the link credrot writes counts: ``accounts/<slot>``, not a path that
        # merely ends in a slot's name (``../../elsewhere/oauth_creds_2.json``).
        if index is None or target != self.layout.rel_target(index):
            return None
        return index if self.layout.slot_path(index).exists() else None

    def owner_of(self, data: Mapping[str, object]) -> int | None:
        """The account a credential belongs to, by identity (not every secret: two
        ``env`` accounts may share a base URL)."""
        ident = self.profile.identity_of(data)
        if not ident:
            return None
        for index in self.listing():
            slot = self.read(index)
            if slot.data is not None and ident & self.profile.identity_of(slot.data):
                return index
        return None
