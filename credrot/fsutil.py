"""Small filesystem primitives with one owner, because two modules must agree on them.

``atomic_write`` names its temporary files so that :func:`stale_temp` can recognise
those of a writer that died (``kill -9``) before its rename; the pool's repair and the
call-home reaper use ``pid_alive`` on the pid in those names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

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

    A failure leaves the old file untouched and no temporary file behind.
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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
