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

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from credrot.deathsig import LAUNCHER as _LAUNCHER
from credrot.deathsig import PDEATHSIG as _PDEATHSIG
from credrot.errors import ToolNotFound
from credrot.kinds import MAX_ARG_BYTES
from credrot.runloop import REAP_SECONDS, _Run, killpg

if TYPE_CHECKING:
    import subprocess

    from credrot.kinds import Rule


#: Bytes kept of each output stream; the rest is read and thrown away. A real answer is
#: far below it; a runaway tool must not take the caller's memory with it.
DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024


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


#: (the environment's raw form, its text form) when :func:`environ` last copied it.
_ENVIRON: list[tuple[dict[bytes, bytes], dict[str, str]]] = []


def environ() -> Mapping[str, str]:
    """``os.environ`` as a plain mapping, copied again only when it changed: decoding
    every variable is a tenth of what credrot adds to a quick call."""
    raw = getattr(os.environ, "_data", None)
    if not isinstance(raw, dict):
        return dict(os.environ)
    if not _ENVIRON or _ENVIRON[0][0] != raw:
        _ENVIRON[:] = [(dict(raw), dict(os.environ))]
    return _ENVIRON[0][1]


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
    keep_pid_file: bool = False,
    meanwhile: Callable[[], None] | None = None,
) -> RunResult:
    """Run ``argv`` once and return what it printed, never waiting past ``timeout``.

    ``abort_streams`` names the streams abort patterns are looked for in: a tool's
    answer on stdout may quote its own login box, so by default only stderr counts.
    ``pid_file``, when given, holds the tool's pid while it may run; the pid is also its
    process group, so ``os.killpg(pid, 0)`` tells a reaper whether any process of the
    tool is still alive (the file is left behind only when the caller itself is killed).
    With ``keep_pid_file`` the file is written in place and says ``0`` after the run
    instead of being removed (a folder reused for the next run keeps it).
    ``meanwhile``: work of the caller's done once while a tool that takes a while runs
    (it must not raise).
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
    pid_fd = -1
    try:
        if pid_file is not None:
            pid_fd = _write_pid_file(pid_file, pid, keep_pid_file)
        run = _Run(proc, stdin, abort_rules, abort_streams, max_output)
    except BaseException:
        _kill_and_forget(proc)
        if pid_file is not None:
            _done_with(pid_file, keep_pid_file, pid_fd)
        raise
    try:
        run.loop(deadline, meanwhile)
    except BaseException:
        # Ctrl-C or SIGTERM in the caller: the tool runs in its own session, so the
        # terminal's signal never reached it; it must not live on as an orphan.
        run.stop()
        raise
    finally:
        run.close()
        if pid_file is not None:
            _done_with(pid_file, keep_pid_file, pid_fd)
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


def _kill_and_forget(proc: subprocess.Popen[bytes]) -> None:
    """Undo a spawn that could not be followed up (interrupted before the loop began)."""
    import subprocess

    killpg(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):  # a tool stuck in the kernel stays
        proc.wait(timeout=REAP_SECONDS)
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


#: A pid file written in place is always this long (a pid, spaces, a newline).
PID_FILE_WIDTH = 12


def _in_place_text(pid: int) -> str:
    return f"{pid:<{PID_FILE_WIDTH - 1}}\n"


def _write_pid_file(path: str | os.PathLike[str], pid: int, in_place: bool = False) -> int:
    """Best effort: the parent-death signal already covers the tool itself. In place,
    no new file is made when one is there (a new file costs the disk far more), and the
    file is left open for :func:`_done_with` (the fd, else -1)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    text = _in_place_text(pid) if in_place else f"{pid}\n"
    try:
        fd = os.open(path, flags if in_place else flags | os.O_TRUNC, 0o600)
    except OSError:
        return -1
    try:
        os.write(fd, text.encode())
        if in_place and os.fstat(fd).st_size != len(text):
            os.ftruncate(fd, len(text))
    except OSError:
        pass
    if in_place:
        return fd
    os.close(fd)
    return -1


def _done_with(path: str | os.PathLike[str], keep: bool, fd: int = -1) -> None:
    if not keep:
        _remove(path)
        return
    if fd < 0:
        fd = _write_pid_file(path, 0, in_place=True)
    else:
        with contextlib.suppress(OSError):
            os.pwrite(fd, _in_place_text(0).encode(), 0)
    if fd >= 0:
        os.close(fd)


def _remove(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _launcher() -> str | None:
    return _LAUNCHER.path()
