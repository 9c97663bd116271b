"""Small filesystem primitives with one owner, because two modules must agree on them.

``read_regular`` is the one way a credential or the state file is read: a FIFO, socket,
device, directory or symbolic link planted in the home must neither hang the reader
(which holds the pool lock) nor lead it outside the home, and a huge file must not be
copied into memory on every call.

``atomic_write`` names its temporary files so that :func:`stale_temp` can recognise
those of a writer that died (``kill -9``) before its rename; the pool's repair and the
call-home reaper use ``pid_alive`` on the pid in those names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from credrot.errors import ReadOnlyHome

#: ``atomic_write`` and pointer temp names: ``.<name>.<pid>.<hex>.tmp|lnk``.
STALE_TEMP = re.compile(r"^\.(.+)\.(\d+)\.[0-9a-f]{8}\.(?:tmp|lnk)$")


def is_read_only_error(exc: OSError) -> bool:
    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def temp_name(path: Path, kind: str = "tmp") -> Path:
    """A sibling of ``path`` that :data:`STALE_TEMP` recognises, unique to this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.{kind}")


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a mix.

    A failure leaves the old file untouched and no temporary file behind. Without
    ``fsync`` the new file is swapped in (:func:`_swap_in`) rather than renamed over the
    old one: ext4 flushes a file renamed over another at once, which is most of what a
    write of a few counters costs.
    """
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if is_read_only_error(exc):
            raise ReadOnlyHome(f"cannot write {path}: {path.parent} is read-only") from None
        raise
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if fsync or not _swap_in(tmp, path):
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: ``renameat2`` from the C library (None: not there, or refused once).
_RENAMEAT2: list[Callable[..., int] | None] = []
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _renameat2() -> Callable[..., int] | None:
    if not _RENAMEAT2:
        try:
            import ctypes  # here, not at the top: only a write of counters needs it

            _RENAMEAT2.append(ctypes.CDLL(None, use_errno=True).renameat2)
        except (OSError, AttributeError):
            _RENAMEAT2.append(None)
    return _RENAMEAT2[0]


def _swap_in(tmp: Path, path: Path) -> bool:
    """Exchange ``tmp`` and the regular file at ``path`` in one step, then remove the
    old one now at ``tmp``; False (nothing done) where that cannot be done."""
    call = _renameat2()
    if call is None:
        return False
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False  # a folder or link planted there: os.replace refuses or drops it
    except OSError:
        return False
    if call(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) != 0:
        import ctypes

        if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            _RENAMEAT2[0] = None  # a filesystem or kernel without it: rename from now on
        return False
    try:
        os.unlink(tmp)
    except IsADirectoryError:  # a folder swapped in since the check: put it back
        call(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE)
        return False
    except OSError:
        pass  # the old file is left under a temporary name, removed by the pool's repair
    return True


def read_bytes(path: Path) -> bytes:
    """A whole small file with the fewest system calls (no buffering, no tty probe)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


#: Credentials are a few KiB; anything over this is refused unread.
MAX_CREDENTIAL_BYTES = 1 << 20

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
)


class NotARegularFile(OSError):
    """A path that must be a small regular file is not; ``reason`` says what it is."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words (``a FIFO``, ``a directory``, ...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path | str, cap: int = MAX_CREDENTIAL_BYTES) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes, read without blocking.

    The file is opened ``O_NONBLOCK | O_NOFOLLOW`` (a FIFO opens at once, a symbolic
    link is not followed) and checked with ``fstat`` before a byte is read, so the check
    and the read concern the same file. Raises :class:`NotARegularFile` with the reason
    for anything else, ``FileNotFoundError`` when it is missing.
    """
    fd, s = _open_regular_fd(path)
    try:
        if s.st_size > cap:
            raise NotARegularFile(path, f"{s.st_size} bytes, over the {cap}-byte cap")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:  # it grew while being read
                raise NotARegularFile(path, f"over the {cap}-byte cap")
    finally:
        os.close(fd)


def chmod_regular(path: Path | str, mode: int) -> int | str:
    """Give a regular file ``mode`` if others than its owner may use it, never through a
    symbolic link.

    Returns the bits it had before, or what the path is instead (a reason) when it is
    not a regular file: a link planted in the home must not lead a chmod outside it.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        try:
            return kind_of(os.lstat(path).st_mode)
        except OSError:
            return "not a regular file"
    try:
        s = os.fstat(fd)
        if not stat.S_ISREG(s.st_mode):
            return kind_of(s.st_mode)
        before = stat.S_IMODE(s.st_mode)
        if before & 0o077:
            os.fchmod(fd, mode)
        return before
    finally:
        os.close(fd)


_PID = [os.getpid()]


def my_pid() -> int:
    """This process's pid, without a system call each time (a call asks it a dozen times;
    a forked child is told its own at once)."""
    return _PID[0]


os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def own_dir(path: Path) -> Path:
    """``path`` as a folder of the home's own (``.credrot-run``, ``backups`` ...): made
    0700 when missing. A link or a file in its place is never credrot's: it is moved
    aside as ``<name>.moved-<pid>-<hex>`` (nothing lost) and a new folder made, so no
    token copy is written, and nothing chmodded, through it."""
    for _ in range(3):
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            pass
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                return path
            aside = path.with_name(f"{path.name}.moved-{os.getpid()}-{os.urandom(4).hex()}")
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                os.rename(path, aside)
    raise NotADirectoryError(errno.ENOTDIR, "not a folder of the home's own", str(path))


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for reading if it is a regular file: a FIFO opens without
    waiting and a link is not followed (both raise :class:`NotARegularFile`), so a log
    planted as ``/dev/zero`` or a pipe cannot hang or flood its reader."""
    return os.fdopen(_open_regular_fd(path)[0], "rb")


def _open_regular_fd(path: Path | str) -> tuple[int, os.stat_result]:
    """A read-only fd on ``path`` and its ``fstat``, if it is a regular file: checked on
    the fd itself (so the check and the read concern the same file); a FIFO opens without
    waiting and a link is not followed, both raise :class:`NotARegularFile`."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFile(path, "a symbolic link (not followed)") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # a socket, a device
            try:
                what = kind_of(os.lstat(path).st_mode)
            except OSError:
                what = "not a regular file"
            raise NotARegularFile(path, f"{what}, not a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotARegularFile(path, f"{kind_of(st.st_mode)}, not a regular file")
    return fd, st


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path | str) -> None:
    """Remove ``path`` and all under it, never following a link (a link is removed,
    not what it points at); what cannot be removed is left, silently."""
    with contextlib.suppress(OSError):
        try:
            os.unlink(path)  # a file or a link: one system call
            return
        except (IsADirectoryError, PermissionError):  # a folder (EISDIR, or EPERM on BSD)
            pass
        fd = os.open(path, DIR_FLAGS)
        try:
            clear_dir(fd)
        finally:
            os.close(fd)
        os.rmdir(path)


def clear_dir(fd: int, keep: Callable[[os.DirEntry[str]], bool] | None = None) -> bool:
    """Remove what the open folder ``fd`` holds (but the entries ``keep`` accepts),
    relative to ``fd`` so that a folder swapped for a link is never followed. Whether
    all of it went."""
    with os.scandir(fd) as it:
        entries = list(it)
    cleared = True
    for entry in entries:
        if keep is not None and keep(entry):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=fd)
                continue
            sub = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            try:
                clear_dir(sub)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=fd)
        except OSError:
            cleared = False
    return cleared
