"""An exclusive flock on a file inside the tool home, re-entrant within a process.

The lock file lives in the home (never /tmp: a container that mounts the home shares it)
and credrot never unlinks it. Someone else may (a cleaner, a user): after each ``flock``
the lock checks that its open file is still the one at the path, and otherwise starts
again on the new file — a lock on a deleted inode would exclude nobody.

Each path has one :class:`_Record` per process (its open file, the re-entrance depth and
the thread lock), so the bookkeeping for one lock is in one place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from credrot.errors import LockTimeout, ReadOnlyHome
from credrot.logs import LazyLogger

log = LazyLogger(__name__)

#: How long a waiter waits before ``on_blocked`` is told (a short wait is normal).
BLOCKED_AFTER = 1.0
#: ``on_blocked(pid)``: the lock is held by another process (its pid when known).
Blocked = Callable[["int | None"], None]


@dataclass
class _Record:
    """One lock path's state in this process."""

    thread_lock: threading.RLock = field(default_factory=threading.RLock)
    fd: int = -1
    dir_fd: int = -1
    depth: int = 0
    writable: bool = True


_guard = threading.Lock()
_records: dict[str, _Record] = {}


def _record(key: str) -> _Record:
    with _guard:
        found = _records.get(key)
        if found is None:
            found = _records[key] = _Record()
        return found


class PoolLock:
    """``with PoolLock(path, timeout):`` — blocks up to ``timeout`` seconds."""

    def __init__(
        self,
        path: Path,
        timeout: float = 30.0,
        *,
        on_blocked: Blocked | None = None,
        guard_dir: bool = False,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.on_blocked = on_blocked
        #: Also flock the folder holding the lock file. A file deleted while held lets
        #: the next process create and lock a new one; the folder cannot vanish that way.
        self.guard_dir = guard_dir
        self._key = os.path.abspath(self.path)

    def __repr__(self) -> str:
        return f"PoolLock({str(self.path)!r})"

    def acquire(self) -> None:
        rec = _record(self._key)
        deadline = time.monotonic() + self.timeout
        if not rec.thread_lock.acquire(timeout=max(self.timeout, 0.0)):
            raise LockTimeout(f"timed out after {self.timeout:g} s waiting for lock {self.path}")
        try:
            if rec.depth > 0:
                rec.depth += 1
                return
            while True:
                if rec.fd < 0:
                    rec.fd, rec.writable = self._open()
                self._flock(rec.fd, deadline)
                # Deleted or replaced while we waited: the lock we hold guards nothing.
                if self._same_file(rec.fd):
                    break
                fcntl.flock(rec.fd, fcntl.LOCK_UN)
                self._forget(rec)
            if self.guard_dir:
                self._lock_dir(rec, deadline)
            rec.depth = 1
            self._write_pid(rec)
        except BaseException:
            rec.thread_lock.release()
            raise

    def _lock_dir(self, rec: _Record, deadline: float) -> None:
        try:
            if rec.dir_fd < 0:
                rec.dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._flock(rec.dir_fd, deadline)
        except BaseException:
            fcntl.flock(rec.fd, fcntl.LOCK_UN)
            raise

    @staticmethod
    def _forget(rec: _Record) -> None:
        with contextlib.suppress(OSError):
            os.close(rec.fd)
        rec.fd = -1

    def _open(self) -> tuple[int, bool]:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            try:
                return os.open(self.path, flags, 0o600), True
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                # A link planted as the lock file is removed, never followed: the pid
                # would be written to its target.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                return os.open(self.path, flags, 0o600), True
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                # A read-only home: lock an existing file read-only, or not at all —
                # nothing can be written there anyway.
                try:
                    return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW), False
                except OSError:
                    raise ReadOnlyHome(
                        f"cannot create lock file {self.path}: home is read-only"
                    ) from exc
            raise

    def _same_file(self, fd: int) -> bool:
        try:
            mine, there = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)

    @staticmethod
    def _write_pid(rec: _Record) -> None:
        """The holder's pid in the file, so a waiter can say whom it waits for."""
        if not rec.writable:
            return
        with contextlib.suppress(OSError):
            # One fixed-width write (no truncation first): a pid has at most 10 digits.
            os.pwrite(rec.fd, f"{os.getpid():<11}\n".encode(), 0)

    def holder(self) -> int | None:
        """The pid written by the process holding (or last holding) the lock."""
        try:
            with open(self.path, "rb") as f:
                text = f.read(32).decode("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and len(text) < 10 else None

    def _flock(self, fd: int, deadline: float) -> None:
        delay = 0.001
        started = time.monotonic()
        told = self.on_blocked is None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if not told and now - started >= BLOCKED_AFTER:
                told = True
                assert self.on_blocked is not None
                with contextlib.suppress(Exception):  # a caller's callback never breaks a lock
                    self.on_blocked(self.holder())
            remaining = deadline - now
            if remaining <= 0:
                raise LockTimeout(
                    f"timed out after {self.timeout:g} s waiting for lock {self.path} "
                    "(another credrot process holds it)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)

    def release(self) -> None:
        rec = _record(self._key)
        if rec.depth > 1:
            rec.depth -= 1
        else:
            rec.depth = 0
            with contextlib.suppress(OSError):
                if rec.dir_fd >= 0:
                    fcntl.flock(rec.dir_fd, fcntl.LOCK_UN)
                fcntl.flock(rec.fd, fcntl.LOCK_UN)
        rec.thread_lock.release()

    @property
    def held(self) -> bool:
        with _guard:
            rec = _records.get(self._key)
        return rec is not None and rec.depth > 0

    def __enter__(self) -> PoolLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _reset_after_fork() -> None:
    # A forked child shares its parent's open lock files, and a flock belongs to the open
    # file: locking through them would pass the parent's lock. Close them; the child
    # opens its own.
    global _guard
    _guard = threading.Lock()
    for rec in _records.values():
        for fd in (rec.fd, rec.dir_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
    _records.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
