"""The tool dies with its caller: the kernel's parent-death signal, set before exec.

A caller killed with ``kill -9`` cannot stop its tool (the tool runs in its own session,
out of reach of the terminal's signals), so the tool is started with
``PR_SET_PDEATHSIG(SIGKILL)``. A ``preexec_fn`` would do it, but forces a full fork (3x
the cost of a 1 ms tool); on x86-64 Linux a 271-byte static launcher in a sealed memfd
sets the signal and execs the tool, so spawning stays a ``vfork``. Elsewhere the
``preexec_fn`` is the fallback.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1

# --- dying with the caller ------------------------------------------------------------

# The launcher, x86-64 (as assembled by GNU as; argv = launcher, caller pid, path, argv...):
#   mov $157,%eax; mov $1,%edi; mov $9,%esi; syscall   prctl(PR_SET_PDEATHSIG, SIGKILL)
#   mov $110,%eax; syscall                            getppid()
#   mov 16(%rsp),%rsi; xor %ecx,%ecx                  parse argv[1], the caller's pid
# 1: movzbl (%rsi),%edx; test %edx,%edx; jz 2f
#   imul $10,%rcx,%rcx; lea -48(%rcx,%rdx),%rcx; inc %rsi; jmp 1b
# 2: cmp %rax,%rcx; jne 3f                            the caller died before prctl: stop
#   mov (%rsp),%rcx; mov 24(%rsp),%rdi                argc; argv[2], the tool's path
#   lea 32(%rsp),%rsi; lea 16(%rsp,%rcx,8),%rdx       argv + 3; envp
#   mov $59,%eax; syscall                             execve(path, argv + 3, envp)
# 3: mov $60,%eax; mov $127,%edi; syscall             exit(127)
_LAUNCHER_CODE_X86_64 = bytes.fromhex(
    "b89d000000bf01000000be090000000f05b86e0000000f05488b74241031c90fb61685d2740e"
    "486bc90a488d4c11d048ffc6ebeb4839c1751a488b0c24488b7c2418488d742420488d54cc10"
    "b83b0000000f05b83c000000bf7f0000000f05"
)


def _elf_x86_64(code: bytes) -> bytes:
    """A static ELF executable of ``code``: one read+execute segment, no stack execution."""
    import struct

    base = 0x400000
    header_size = 64 + 2 * 56
    size = header_size + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, base + header_size, 64, 0, 0, 64, 56, 2, 0, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    stack = struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16)
    return header + load + stack + code


class _Launcher:
    """The launcher program in a sealed memfd, created on first use, once per process.

    It is run as ``/proc/<caller pid>/fd/<n>``: the memfd stays close-on-exec in the
    caller, so the tool never inherits it, and the seals keep anyone from changing it.
    """

    def __init__(self) -> None:
        self.fd = -1
        self.ident: tuple[int, int] = (0, 0)
        self.broken = not (sys.platform.startswith("linux") and os.uname().machine == "x86_64")
        self.lock = _thread.allocate_lock()  # threads calling at once make one memfd

    def path(self) -> str | None:
        if self.broken:
            return None
        with self.lock:
            return self._path()

    def _path(self) -> str | None:
        if self.fd >= 0:
            try:
                st = os.fstat(self.fd)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != self.ident:
                self.fd = -1  # someone closed it (and the number may be another file now)
        if self.fd < 0 and not self._create():
            self.broken = True
            return None
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def _create(self) -> bool:
        import fcntl

        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is None:
            return False
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        try:
            try:
                fd = memfd_create("credrot-launcher", flags | 0x0010)  # MFD_EXEC (Linux 6.3)
            except OSError:
                fd = memfd_create("credrot-launcher", flags)
        except OSError:
            return False
        try:
            os.write(fd, _elf_x86_64(_LAUNCHER_CODE_X86_64))
            os.fchmod(fd, 0o500)
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_WRITE)
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return False
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        return True


class _PreexecDeathSignal:
    """The slow fallback: ``prctl`` through ctypes between fork and exec."""

    def __init__(self) -> None:
        self.available = sys.platform.startswith("linux")
        self._prctl: Callable[..., int] | None = None

    def preexec(self) -> Callable[[], None] | None:
        if self._prctl is None:
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                prctl = libc.prctl
                prctl.argtypes = [
                    ctypes.c_int,
                    ctypes.c_ulong,
                    ctypes.c_ulong,
                    ctypes.c_ulong,
                    ctypes.c_ulong,
                ]
                prctl.restype = ctypes.c_int
            except (OSError, AttributeError):
                self.available = False
                return None
            self._prctl = prctl
        prctl_fn = self._prctl
        parent = os.getpid()

        def set_death_signal() -> None:
            prctl_fn(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the caller died before prctl took effect
                os._exit(127)

        return set_death_signal


LAUNCHER = _Launcher()
PDEATHSIG = _PreexecDeathSignal()
