"""Every file and folder name of a tool home, in one place.

The pool's modules, the call homes and ``doctor`` all ask this module where things are,
so a name (``.credrot-run/<pid>-<slot>-…``, ``accounts/<stem>_<N><suffix>``) is written
once and parsed by the same code that wrote it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from credrot.fsutil import my_pid
from credrot.profile import ToolProfile

ACCOUNTS_DIR = "accounts"
STATE_FILE = "state.yaml"
#: The state as of its last save that waited for the disk (a hard link, see pool/store).
DURABLE_FILE = "state.durable.yaml"
LOG_FILE = "rotation.log"
LOCK_FILE = ".credrot.lock"
TRASH_DIR = "trash"
BACKUP_DIR = "backups"
#: Private call homes, one per running attempt: ``<pid>-<slot>-<random>``.
RUN_DIR = ".credrot-run"
#: One refresh lease file per account, ``<N>.lease`` (never deleted: see pool/refresh).
LEASE_DIR = ".credrot-leases"
#: Entries of the real home that a private call home never links.
POOL_ENTRIES = frozenset(
    {
        ACCOUNTS_DIR,
        STATE_FILE,
        DURABLE_FILE,
        LOG_FILE,
        LOG_FILE + ".1",
        LOCK_FILE,
        RUN_DIR,
        LEASE_DIR,
        TRASH_DIR,
        BACKUP_DIR,
    }
)


class Layout:
    """Where one tool home keeps what (paths only; nothing here touches the disk)."""

    def __init__(self, home: Path, profile: ToolProfile) -> None:
        self.home = home
        self.profile = profile
        self._slot_paths: dict[int, Path] = {}
        stem, suffix = re.escape(profile.account_stem), re.escape(profile.account_suffix)
        #: Any number, so a non-canonical name (``_01``, ``_0``) can be reported.
        self.slot_re = re.compile(rf"^{stem}_(\d+){suffix}$")

    def __repr__(self) -> str:
        return f"Layout({str(self.home)!r})"

    @functools.cached_property
    def accounts_dir(self) -> Path:
        return self.home / ACCOUNTS_DIR

    @functools.cached_property
    def pointer(self) -> Path:
        return self.home / self.profile.credential_name

    @functools.cached_property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def durable_path(self) -> Path:
        return self.home / DURABLE_FILE

    @functools.cached_property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @functools.cached_property
    def lock_path(self) -> Path:
        return self.home / LOCK_FILE

    @functools.cached_property
    def run_dir(self) -> Path:
        return self.home / RUN_DIR

    @functools.cached_property
    def run_base(self) -> str:
        """:attr:`run_dir` as text: a call's home is named and renamed in it twice a
        call, and a path object's text is built each time it is asked."""
        return str(self.run_dir)

    @functools.cached_property
    def lease_dir(self) -> Path:
        return self.home / LEASE_DIR

    @functools.cached_property
    def trash_dir(self) -> Path:
        return self.home / TRASH_DIR

    @functools.cached_property
    def backup_dir(self) -> Path:
        return self.home / BACKUP_DIR

    @functools.cached_property
    def tool_lock(self) -> Path | None:
        name = self.profile.tool_lock_name
        return self.home / name if name else None

    def slot_name(self, index: int) -> str:
        return self.profile.slot_name(index)

    def slot_path(self, index: int) -> Path:
        path = self._slot_paths.get(index)
        if path is None:
            path = self._slot_paths[index] = self.accounts_dir / self.slot_name(index)
        return path

    def rel_target(self, index: int) -> str:
        """The pointer's link text: relative, so the home still works mounted elsewhere."""
        return f"{ACCOUNTS_DIR}/{self.slot_name(index)}"

    def slot_index(self, name: str) -> int | None:
        """The account number of a slot file name, or None when it is not one."""
        m = self.slot_re.match(name)
        return int(m.group(1)) if m is not None else None

    def call_dir_prefix(self, index: int) -> str:
        return f"{my_pid()}-{index}-"

    @staticmethod
    def parse_call_dir(name: str) -> tuple[int, int | None] | None:
        """(pid, slot) of a call home's folder name, or None for anything else."""
        parts = name.split("-", 2)
        if not parts[0].isdigit():
            return None
        slot = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        return int(parts[0]), slot
