"""Run a tool once: prompt on stdin, its own session, a timeout, no orphans, no hangs.

The tool is never run through a shell. One selector loop in the calling thread feeds the
prompt, reads both output streams from raw non-blocking pipes, watches the streams the
profile names for abort patterns (a tool that starts waiting for a human, like Qwen
Code's device-authorization flow in headless mode, is stopped at once instead of at the
timeout) and notices the tool's exit through a pidfd. No thread is started per run:
starting threads was a third of a short call.

Nothing the tool leaves behind can hold the call: when the tool itself has exited its
process group is killed, the pipes get a short drain window, and then they are closed
even if a daemon the tool detached (another session) still holds their other ends.

The tool also dies with its caller. A caller killed with SIGKILL cannot stop anything,
so the tool is started with the kernel's parent-death signal set (``PR_SET_PDEATHSIG``).
Setting it needs a step between fork and exec; a Python ``preexec_fn`` forces a full
``fork()`` of the caller, which costs more than a whole short tool run, so on x86-64
Linux the step is a static program of 271 bytes, held in a sealed memfd, that sets the
signal and then execs the tool (the fork stays a ``vfork``). Elsewhere it falls back to a
``preexec_fn`` through ctypes, and off Linux it is skipped.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from credrot.errors import ToolNotFound

if TYPE_CHECKING:
    import selectors
    import subprocess

    from credrot.kinds import Rule

#: Linux caps one argv string at 128 KiB; anything near that goes through stdin.
MAX_ARG_BYTES = 128 * 1024

#: Bytes kept of each output stream; the rest is read and thrown away. A real answer is
#: far below it; a runaway tool must not take the caller's memory with it.
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024

#: How long the pipes may still deliver after the tool's group is gone. Only a process
#: outside the group (a detached daemon) can keep them open longer, and it is not waited for.
DRAIN_SECONDS = 0.1

#: How long a SIGKILLed tool gets to be reaped; only a process stuck in the kernel takes longer.
_REAP_SECONDS = 2.0

#: Characters of each watched stream kept between reads, so that a pattern split across
#: two reads is still seen.
_TAIL_CHARS = 512

_READ_SIZE = 65536
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, missing from Python 3.10's fcntl
_PR_SET_PDEATHSIG = 1


@dataclass
class RunResult:
    exit_code: int | None  # None when credrot stopped the process
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    aborted: Rule | None = None
    #: Streams cut at ``max_output`` bytes (``"stdout"``, ``"stderr"``); what followed was
    #: read and discarded.
    truncated: tuple[str, ...] = ()
    #: The cap that applied to each stream, in bytes.
    max_output: int = DEFAULT_MAX_OUTPUT
    #: Bytes read past the cap and thrown away, both streams together.
    discarded: int = 0
    #: The tool's pid (also its process group and session id); None when nothing ran.
    pid: int | None = None
    #: A process outside the tool's group still held its output open after the tool was
    #: gone (a detached daemon); the pipes were closed without waiting for it.
    stray_holder: bool = False

    def cap_note(self) -> str:
        """One line saying what was cut, for a warning; empty when nothing was."""
        if not self.truncated:
            return ""
        return (
            f"{' and '.join(self.truncated)} cut at {self.max_output} bytes"
            f" ({self.discarded} more bytes discarded)"
        )


def run_tool(
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    env: Mapping[str, str] | None,
    timeout: float,
    abort_rules: Sequence[Rule] = (),
    cwd: str | None = None,
    install_hint: str = "",
    abort_streams: Sequence[str] = ("stderr",),
    max_output: int = DEFAULT_MAX_OUTPUT,
    pid_file: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Run ``argv`` once and return what it printed, never waiting past ``timeout``.

    ``abort_streams`` names the streams abort patterns are looked for in: a tool's
    answer on stdout may quote its own login box, so by default only stderr counts.
    ``pid_file``, when given, holds the tool's pid while it may run; the pid is also its
    process group, so ``os.killpg(pid, 0)`` tells a reaper whether any process of the
    tool is still alive (the file is left behind only when the caller itself is killed).
    """
    for arg in argv:
        if len(arg.encode("utf-8", errors="surrogateescape")) >= MAX_ARG_BYTES:
            raise ValueError("an argument exceeds 128 KiB; pass large prompts through stdin")
    if max_output < 0:
        raise ValueError("max_output must not be negative")
    if isinstance(abort_streams, str):
        abort_streams = (abort_streams,)
    unknown = set(abort_streams) - {"stdout", "stderr"}
    if unknown:
        raise ValueError(f"abort_streams: unknown stream {sorted(unknown)[0]!r}")
    start = time.monotonic()
    deadline = start + max(timeout, 0.0)
    proc = _spawn(argv, stdin is not None, env, cwd, install_hint)
    pid = proc.pid
    try:
        if pid_file is not None:
            _write_pid_file(pid_file, pid)
        run = _Run(proc, stdin, abort_rules, abort_streams, max_output)
    except BaseException:
        _kill_and_forget(proc)
        if pid_file is not None:
            _remove(pid_file)
        raise
    try:
        run.loop(deadline)
    except BaseException:
        # Ctrl-C or SIGTERM in the caller: the tool runs in its own session, so the
        # terminal's signal never reached it; it must not live on as an orphan.
        run.stop()
        raise
    finally:
        run.close()
        if pid_file is not None:
            _remove(pid_file)
    return RunResult(
        exit_code=None if run.stopped else run.exit_code,
        stdout=run.out.text(),
        stderr=run.err.text(),
        duration=time.monotonic() - start,
        timed_out=run.timed_out,
        aborted=run.matched,
        truncated=tuple(s.name for s in (run.out, run.err) if s.truncated),
        max_output=max_output,
        discarded=run.out.discarded + run.err.discarded,
        pid=pid,
        stray_holder=run.stray_holder,
    )


class _Stream:
    """One output pipe: what was kept of it, and the watch for abort patterns."""

    __slots__ = (
        "cap",
        "data",
        "decoder",
        "discarded",
        "fd",
        "name",
        "rules",
        "tail",
        "truncated",
    )

    def __init__(self, name: str, fd: int, cap: int, rules: Sequence[Rule]) -> None:
        self.name = name
        self.fd = fd
        self.data = bytearray()  # grows in place: no list of chunks to join at the end
        self.cap = cap
        self.truncated = False
        self.discarded = 0
        self.rules = rules
        self.tail = ""
        self.decoder: Callable[[bytes], str] | None = None
        if rules:
            import codecs

            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace").decode

    def feed(self, data: bytes) -> Rule | None:
        room = self.cap - len(self.data)
        if len(data) <= room:
            self.data += data
        else:
            if room > 0:
                self.data += data[:room]
            self.truncated = True
            self.discarded += len(data) - max(room, 0)
        if self.decoder is None:
            return None
        text = self.tail + self.decoder(data)
        for rule in self.rules:
            if rule.pattern.search(text):
                return rule
        self.tail = text[-_TAIL_CHARS:]
        return None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Run:
    """The state of one run between spawn and result; ``loop`` is the whole I/O."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        data: bytes | None,
        rules: Sequence[Rule],
        abort_streams: Sequence[str],
        cap: int,
    ) -> None:
        import selectors

        self.proc = proc
        self.pid = proc.pid
        self.exit_code: int | None = None
        self.reaped = False
        #: credrot killed the tool before it exited by itself (a timeout or an abort)
        self.stopped = False
        self.timed_out = False
        self.matched: Rule | None = None
        self.stray_holder = False
        assert proc.stdout is not None
        assert proc.stderr is not None
        watch = tuple(rules)
        self.out = _Stream(
            "stdout", proc.stdout.fileno(), cap, watch if "stdout" in abort_streams else ()
        )
        self.err = _Stream(
            "stderr", proc.stderr.fileno(), cap, watch if "stderr" in abort_streams else ()
        )
        # poll(2) needs no kernel object of its own, unlike epoll: cheaper for three fds.
        self.sel: selectors.BaseSelector = selectors.PollSelector()
        self.readers: dict[int, _Stream] = {}
        for stream in (self.out, self.err):
            os.set_blocking(stream.fd, False)
            self.sel.register(stream.fd, selectors.EVENT_READ)
            self.readers[stream.fd] = stream
        self.in_fd = -1
        self.pending = memoryview(data if data is not None else b"")
        self.grown = False
        if proc.stdin is not None:
            self.in_fd = proc.stdin.fileno()
            os.set_blocking(self.in_fd, False)
            self.sel.register(self.in_fd, selectors.EVENT_WRITE)
            self._write()
        self.pidfd = -1
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self.pidfd = pidfd_open(self.pid)
            except OSError:  # a kernel before 5.3, or a seccomp filter that refuses it
                self.pidfd = -1
        if self.pidfd >= 0:
            self.sel.register(self.pidfd, selectors.EVENT_READ)

    def loop(self, deadline: float) -> None:
        # Until the tool exits, prints an abort pattern or runs out of time.
        poll = 0.001  # without a pidfd the exit is looked for at a growing interval
        while not self.reaped and self.matched is None:
            now = time.monotonic()
            if now >= deadline:
                self.timed_out = True
                break
            wait = deadline - now
            if self.pidfd < 0:
                wait = min(wait, poll)
                poll = min(poll * 2, 0.05)
            self._pump(self.sel.select(wait))
            if self.pidfd < 0 and not self.reaped and self._exited():
                self._reap()
        if not self.reaped:
            self.stopped = True
            self._kill_group()
            self._reap(wait=_REAP_SECONDS)
        # The group is gone; what is still in the pipes is read for a short while, within
        # the call's own deadline when the tool ended in time. Only a process outside the
        # group (a daemon the tool detached) can hold them open longer.
        now = time.monotonic()
        if self.timed_out:
            end = now + 0.01  # already late: only what the kill itself lets through
        elif self.stopped:
            end = now + DRAIN_SECONDS
        else:
            end = min(now + DRAIN_SECONDS, max(deadline, now))
        while self.readers:
            wait = end - time.monotonic()
            if wait <= 0:
                break
            self._pump(self.sel.select(wait))
        if self.readers:
            self._sweep()
            self.stray_holder = bool(self.readers)

    def _pump(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, _mask in events:
            fd = key.fd
            if fd == self.pidfd:
                self._reap()
            elif fd == self.in_fd:
                self._write()
            else:
                stream = self.readers.get(fd)
                if stream is not None:
                    self._read(stream)

    def _read(self, stream: _Stream) -> bool:
        """One read; False at the end of the stream or when nothing was there."""
        try:
            data = os.read(stream.fd, _READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._forget(stream.fd)
            del self.readers[stream.fd]
            return False
        rule = stream.feed(data)
        if rule is not None and self.matched is None:
            self.matched = rule
            self.out.decoder = self.err.decoder = None  # one match is enough
            if not self.reaped:
                self.stopped = True
                self._kill_group()
        return True

    def _sweep(self) -> None:
        """Take what is already in the pipes without waiting (a few reads at most: a
        stranger may keep writing)."""
        for stream in list(self.readers.values()):
            for _ in range(16):
                if not self._read(stream):
                    break

    def _write(self) -> None:
        """Write as much of the prompt as the pipe takes now (the tool treats stdin as
        empty if nothing arrives within ~500 ms, so it goes out before anything else)."""
        while self.pending:
            try:
                n = os.write(self.in_fd, self.pending)
            except BlockingIOError:
                if self.grown or len(self.pending) <= _READ_SIZE:
                    return
                self.grown = True
                try:  # let the pipe hold the whole prompt, where the system allows it
                    import fcntl

                    fcntl.fcntl(self.in_fd, _F_SETPIPE_SZ, min(len(self.pending), 1 << 20))
                except OSError:
                    return
                continue
            except OSError:  # the tool closed its stdin: it does not want the rest
                break
            self.pending = self.pending[n:]
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.in_fd >= 0:
            self._forget(self.in_fd)
            self.in_fd = -1
            self.pending = memoryview(b"")
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def _forget(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fd)

    def _exited(self) -> bool:
        """Whether the tool has exited, without reaping it (its pid keeps the group id)."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _reap(self, wait: float = 0.0) -> None:
        """Collect the tool's exit status. The group is killed first, while the exited
        tool still holds its pid, so the signal cannot reach a newcomer that took it."""
        if self.reaped or (wait and not self._wait_exit(wait)):
            return
        self._kill_group()
        try:
            _, status = os.waitpid(self.pid, 0)
            self.exit_code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
            self.exit_code = 0
        self.reaped = True
        self.proc.returncode = self.exit_code
        if self.pidfd >= 0:
            self._forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1

    def _wait_exit(self, wait: float) -> bool:
        end = time.monotonic() + wait
        delay = 0.001
        while not self._exited():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self.pidfd >= 0:
                import select

                select.select([self.pidfd], [], [], left)
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
        return True

    def _kill_group(self) -> None:
        if not self.reaped:  # once reaped, the id may belong to someone else
            _killpg(self.pid)

    def stop(self) -> None:
        """The caller is leaving early: nothing of the tool may stay behind."""
        if not self.reaped:
            self.stopped = True
            self._kill_group()
            self._reap(wait=0.5)

    def close(self) -> None:
        self._close_stdin()
        for fd in list(self.readers):
            self._forget(fd)
        self.readers.clear()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.pidfd >= 0:
            self._forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1
        self.sel.close()


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_and_forget(proc: subprocess.Popen[bytes]) -> None:
    """Undo a spawn that could not be followed up (interrupted before the loop began)."""
    import subprocess

    _killpg(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):  # a tool stuck in the kernel stays
        proc.wait(timeout=_REAP_SECONDS)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _spawn(
    argv: Sequence[str],
    with_stdin: bool,
    env: Mapping[str, str] | None,
    cwd: str | None,
    install_hint: str,
    use_launcher: bool = True,
) -> subprocess.Popen[bytes]:
    import subprocess

    args = list(argv)
    preexec: Callable[[], None] | None = None
    launcher = _launcher() if use_launcher else None
    if launcher is not None:
        # The launcher execs a path as given, so the search happens here (as execvpe would).
        args = [launcher, str(os.getpid()), _which(args[0], env, cwd, install_hint), *args]
    elif _PDEATHSIG.available:
        preexec = _PDEATHSIG.preexec()
    try:
        return subprocess.Popen(
            args,
            bufsize=0,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            preexec_fn=preexec,
        )
    except OSError as exc:
        if launcher is not None and exc.filename == launcher:
            # The system refuses to run it (a memfd exec ban, no /proc): use the slow way.
            _LAUNCHER.broken = True
            return _spawn(argv, with_stdin, env, cwd, install_hint, use_launcher=False)
        if isinstance(exc, FileNotFoundError):
            raise ToolNotFound(_not_found(argv[0], install_hint)) from None
        if isinstance(exc, PermissionError):
            raise ToolNotFound(f"{argv[0]} is not executable") from None
        raise


def _not_found(name: str, install_hint: str) -> str:
    hint = f" (install it: {install_hint})" if install_hint else ""
    return f"{name} is not installed or not on PATH{hint}"


def _which(name: str, env: Mapping[str, str] | None, cwd: str | None, install_hint: str) -> str:
    """The file ``execvpe`` would run for ``name``, or ToolNotFound saying why not."""
    if os.sep in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d, name) for d in os.get_exec_path(env)]
    refused = False
    for path in candidates:
        where = path if cwd is None else os.path.join(cwd, path)
        try:
            st = os.stat(where)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and os.access(where, os.X_OK):
            return path
        refused = True
    if refused:
        raise ToolNotFound(f"{name} is not executable")
    raise ToolNotFound(_not_found(name, install_hint))


def _write_pid_file(path: str | os.PathLike[str], pid: int) -> None:
    """Best effort: the parent-death signal already covers the tool itself."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return
    try:
        os.write(fd, f"{pid}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


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


_LAUNCHER = _Launcher()
_PDEATHSIG = _PreexecDeathSignal()


def _launcher() -> str | None:
    return _LAUNCHER.path()
