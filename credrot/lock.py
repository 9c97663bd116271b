"""An exclusive flock on a file inside the tool home, re-entrant within a process.

The lock file lives in the home (never /tmp: a container that mounts the home shares it)
and is never unlinked, so two processes can never hold locks on different inodes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from credrot.errors import LockTimeout, ReadOnlyHome

log = logging.getLogger(__name__)

_registry_guard = threading.Lock()
_held: dict[str, tuple[int, int, int]] = {}  # path -> (fd, depth, owner thread id)
_thread_locks: dict[str, threading.RLock] = {}
#: Lock files stay open for the life of the process (they are never unlinked), which
#: saves an open and a close on every acquisition.
_fds: dict[str, int] = {}


class PoolLock:
    """``with PoolLock(path, timeout):`` — blocks up to ``timeout`` seconds."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._key = os.path.abspath(self.path)

    def __repr__(self) -> str:
        return f"PoolLock({str(self.path)!r})"

    def _thread_lock(self) -> threading.RLock:
        with _registry_guard:
            lock = _thread_locks.get(self._key)
            if lock is None:
                lock = _thread_locks[self._key] = threading.RLock()
            return lock

    def acquire(self) -> None:
        tlock = self._thread_lock()
        deadline = time.monotonic() + self.timeout
        if not tlock.acquire(timeout=max(self.timeout, 0.0)):
            raise LockTimeout(f"timed out after {self.timeout:g} s waiting for lock {self.path}")
        try:
            with _registry_guard:
                held = _held.get(self._key)
                if held is not None:
                    fd, depth, owner = held
                    _held[self._key] = (fd, depth + 1, owner)
                    return
            with _registry_guard:
                fd = _fds.get(self._key, -1)
            if fd >= 0 and not self._same_file(fd):
                # Someone replaced the lock file: a lock on the old one would guard nothing.
                with _registry_guard:
                    del _fds[self._key]
                os.close(fd)
                fd = -1
            if fd < 0:
                fd = self._open()
                with _registry_guard:
                    _fds[self._key] = fd
            self._flock(fd, deadline)
            with _registry_guard:
                _held[self._key] = (fd, 1, threading.get_ident())
        except BaseException:
            tlock.release()
            raise

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                # A read-only home: fall back to a shared read lock on an existing file,
                # or no lock at all — nothing can be written there anyway.
                try:
                    return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    raise ReadOnlyHome(
                        f"cannot create lock file {self.path}: home is read-only"
                    ) from exc
            raise

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            return False

    def _flock(self, fd: int, deadline: float) -> None:
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    f"timed out after {self.timeout:g} s waiting for lock {self.path} "
                    "(another credrot process holds it)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)

    def release(self) -> None:
        with _registry_guard:
            fd, depth, owner = _held[self._key]
            if depth > 1:
                _held[self._key] = (fd, depth - 1, owner)
            else:
                del _held[self._key]
                fcntl.flock(fd, fcntl.LOCK_UN)
        self._thread_lock().release()

    @property
    def held(self) -> bool:
        with _registry_guard:
            return self._key in _held

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
    global _registry_guard
    _registry_guard = threading.Lock()
    _held.clear()
    _thread_locks.clear()
    for fd in _fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _fds.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
